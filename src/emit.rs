//! The port a source writes into. A source frames its log into transactions (`begin`, `emit`,
//! `commit`) and this turns each change into an envelope, hands it to the sink, and registers
//! it with the acknowledgement tracker, through the one transaction state machine
//! ([`TxnFrame`]) that decides what may become a checkpoint.
//!
//! Sources depend on this module and on `core`; the pipeline creates the emitter and owns the
//! other end (tracker, checkpoint). Nothing here knows which source is writing.

use std::fmt;
use std::sync::{Arc, Mutex};

use crate::core::acks::{AckTracker, HoldId, TxnId};
use crate::core::checkpoint::SourceIdentity;
use crate::core::commit_gate::CommitGate;
use crate::core::envelope::{Change, Encode, Op, OpSet, Record, RecordBuf};
use crate::core::pause::{PauseClock, PauseReport};
use crate::core::position::Position;
use crate::core::snapshot::SnapshotProgress;
use crate::core::status::{ConnectorStatus, State};
use crate::core::txn::TxnFrame;
use crate::core::txn_meta::{self, AvroIds, MetaFormat, OpenTxn};
use crate::encode::registry::RegistryError;
use crate::encode::subjects::SchemaIdCache;
use crate::error::{SessionError, SinkError, SourceError};
use crate::metrics::ConnectorMetrics;
use crate::sink::Sink;

/// Transactions the tracker may hold unconfirmed before the source is made to wait. Each holds
/// its end position (for MySQL a GTID set, which can be long), so this bounds memory while the
/// broker is slow or down; the producer queue bounds the events themselves.
pub const MAX_PENDING_TRANSACTIONS: usize = 10_000;

/// A change encoded earlier, sent later ([`Emitter::render_held`]).
pub struct HeldRecord {
    topic: String,
    key: Option<Vec<u8>>,
    value: Vec<u8>,
    /// The key as cdcd's JSON (what snapshot deduplication compares).
    key_identity: Option<Vec<u8>>,
    op: Op,
    /// The table, as transaction metadata names it.
    collection: String,
}

impl HeldRecord {
    /// Key and value bytes.
    pub fn size(&self) -> usize {
        self.key.as_ref().map_or(0, Vec::len) + self.value.len()
    }

    pub fn key_identity(&self) -> Option<&[u8]> {
        self.key_identity.as_deref()
    }
}

/// How the emitter picks each record's encoding.
enum Encoding {
    /// The same for every record.
    Fixed(Encode),
    /// Avro, with each table version's registry ids.
    Avro(Box<SchemaIdCache>),
}

pub struct Emitter {
    sink: Sink,
    tracker: Arc<AckTracker>,
    buf: RecordBuf,
    encoding: Encoding,
    identity: Arc<Mutex<Option<SourceIdentity>>>,
    frame: TxnFrame,
    events: u64,
    /// Key and value bytes of the changes emitted (tombstones not counted).
    bytes: u64,
    status: Arc<ConnectorStatus>,
    metrics: ConnectorMetrics,
    /// Source commit time of the open transaction.
    source_ts_us: i64,
    /// Exactly-once: where the checkpointer may commit the Kafka transaction.
    gate: Option<Arc<CommitGate>>,
    /// Transaction metadata: how BEGIN records are written, and where.
    meta: Option<(MetaFormat, String)>,
    /// The open source transaction's metadata (none for snapshot chunks).
    open: Option<OpenTxn>,
    /// BEGIN's key and value.
    meta_buf: (Vec<u8>, Vec<u8>),
    /// `[events] skipped_operations`: changes of these kinds are not published.
    skipped: OpSet,
    /// `[events] tombstones_on_delete`.
    tombstones: bool,
}

impl Emitter {
    pub fn new(
        sink: Sink,
        tracker: Arc<AckTracker>,
        identity: Arc<Mutex<Option<SourceIdentity>>>,
        status: Arc<ConnectorStatus>,
        metrics: ConnectorMetrics,
    ) -> Self {
        Emitter {
            sink,
            tracker,
            buf: RecordBuf::default(),
            encoding: Encoding::Fixed(Encode::Friendly),
            identity,
            frame: TxnFrame::new(),
            events: 0,
            bytes: 0,
            status,
            metrics,
            source_ts_us: 0,
            gate: None,
            meta: None,
            open: None,
            meta_buf: (Vec::new(), Vec::new()),
            skipped: OpSet::default(),
            tombstones: true,
        }
    }

    /// Which changes are published: none of the `skipped` kinds, and a tombstone after each
    /// delete when `tombstones` is set.
    pub fn set_events(&mut self, skipped: OpSet, tombstones: bool) {
        self.skipped = skipped;
        self.tombstones = tombstones;
    }

    /// Whether changes of kind `op` are left out. A source asks before anything else that
    /// depends on the change being published (snapshot deduplication must not drop a chunk
    /// row in favour of a change nobody will see).
    pub fn skips(&self, op: Op) -> bool {
        self.skipped.contains(op)
    }

    /// Turns on transaction metadata: BEGIN records to `topic`, and a `transaction` block in
    /// each change of a source transaction (ENDs are sent once acknowledged, see
    /// `AckTracker::take_ready_end`).
    pub fn set_transaction_metadata(&mut self, format: MetaFormat, topic: String) {
        self.meta = Some((format, topic));
    }

    /// Names the open source transaction for transaction metadata (PostgreSQL: `xid:lsn`;
    /// MySQL: its GTID, else `file:pos`); `id` is only called when metadata is on. Snapshot
    /// chunks are not named and get none, as in Debezium.
    pub fn name_transaction(&mut self, id: impl FnOnce() -> String) {
        if self.meta.is_some() && self.frame.is_open() {
            self.open = Some(OpenTxn::new(id(), self.source_ts_us));
        }
    }

    /// Under exactly-once: tells `gate` where source transactions end, and waits before a
    /// transaction's first record while a commit is wanted.
    pub fn set_commit_gate(&mut self, gate: Arc<CommitGate>) {
        self.gate = Some(gate);
    }

    /// Sets the record encoding (cdcd's JSON unless told otherwise).
    pub fn set_encoding(&mut self, encode: Encode) {
        self.encoding = Encoding::Fixed(encode);
    }

    /// Encodes records as Avro with the schema ids `ids` registers.
    pub fn set_avro(&mut self, ids: SchemaIdCache) {
        self.encoding = Encoding::Avro(Box::new(ids));
    }

    /// The source says what it is doing (snapshotting, streaming), for readiness and status.
    pub fn set_state(&self, state: State) {
        self.status.set(state);
    }

    /// The server's estimate of how many rows the snapshot about to run will read.
    pub fn set_snapshot_estimate(&self, rows: u64) {
        self.status.set_snapshot_estimate(rows);
    }

    /// Records which source the positions belong to; required before anything is checkpointed.
    pub fn set_identity(&self, id: SourceIdentity) {
        *self.identity.lock().unwrap_or_else(|e| e.into_inner()) = Some(id);
    }

    /// Opens a transaction; `label` says where it starts (shown if the framing goes wrong).
    /// Its source time is taken as now (snapshots); see [`Emitter::begin_at`].
    pub fn begin(&mut self, label: impl fmt::Display) -> Result<(), SourceError> {
        self.begin_at(label, crate::core::envelope::now_us())
    }

    /// Opens a transaction the source committed at `source_ts_us` (µs since the epoch).
    pub fn begin_at(&mut self, label: impl fmt::Display, source_ts_us: i64) -> Result<(), SourceError> {
        self.source_ts_us = source_ts_us;
        self.frame.begin(label)?;
        self.open = None;
        Ok(())
    }

    pub fn in_transaction(&self) -> bool {
        self.frame.is_open()
    }

    /// The index within the open transaction that the next emitted change gets (for the
    /// `source.position` of its envelope).
    pub fn next_index(&self) -> u64 {
        self.frame.next_index()
    }

    /// Sends one change of the open transaction (and, for a delete with a key, its tombstone).
    /// Waits while the sink or the tracker is full: that wait is the back-pressure that stops
    /// the source from reading further.
    pub async fn emit(&mut self, topic: &str, change: &Change<'_>) -> Result<(), SessionError> {
        if self.skips(change.op) {
            return Ok(());
        }
        self.render(topic, change).await?;
        self.send_rendered(topic, change.op).await
    }

    /// [`Emitter::emit`] for a change consumers need whatever `skipped_operations` says: the
    /// TRUNCATE a slot repair sends before snapshotting again, without which they would keep
    /// the rows deleted while no slot recorded changes.
    pub async fn emit_required(&mut self, topic: &str, change: &Change<'_>) -> Result<(), SessionError> {
        self.render(topic, change).await?;
        self.send_rendered(topic, change.op).await
    }

    /// Encodes `change` into the record buffers. A value that does not fit its schema stops
    /// the connector: sending it some other way would change the contract silently.
    async fn render(&mut self, topic: &str, change: &Change<'_>) -> Result<(), SourceError> {
        let encode = match (&mut self.encoding, change.schema) {
            (Encoding::Fixed(encode), _) => *encode,
            (Encoding::Avro(cache), Some(schema)) => {
                let ids = cache.ids(topic, schema).await.map_err(registry_error)?;
                Encode::Avro { key_id: ids.key, value_id: ids.value }
            }
            (Encoding::Avro(_), None) => {
                return Err(SourceError::Fatal(format!(
                    "cannot encode a change of topic {topic} as Avro: the source built no schema for its table. \
                     This is a bug in cdcd; please report it"
                )))
            }
        };
        let block = self.open.as_mut().map(|t| t.event(change.collection));
        self.buf.encode(change, encode, block).map_err(|e| {
            SourceError::Fatal(format!(
                "cannot encode a change of topic {topic}: {e}. This is a bug in cdcd's type mapping; \
                 please report it with the column's type"
            ))
        })
    }

    async fn send_rendered(&mut self, topic: &str, op: Op) -> Result<(), SessionError> {
        let txn = self.next_slot().await?;
        let record = self.buf.record(topic);
        let bytes = record.key.map_or(0, <[u8]>::len) + record.value.map_or(0, <[u8]>::len);
        let has_key = record.key.is_some();
        self.sink.send(record, txn).await?;
        if op == Op::Delete && has_key && self.tombstones {
            self.sink.send(self.buf.tombstone(topic), txn).await?;
        }
        self.count(topic, op, bytes);
        Ok(())
    }

    /// The tracker slot of the open transaction's next event; waits for room before its first.
    async fn next_slot(&mut self) -> Result<TxnId, SessionError> {
        if self.frame.next_index() == 0 {
            if let Some(gate) = &self.gate {
                gate.wait_if_wanted().await;
            }
            self.wait_for_room().await?;
            // Before the transaction takes a tracker slot: a registry that fails leaves none.
            self.register_meta_schemas().await?;
        }
        let (txn, index) = self.frame.event(&self.tracker).map_err(SourceError::from)?;
        if index == 0 {
            self.tracker.set_source_ts(txn, self.source_ts_us);
            if let Some(gate) = &self.gate {
                gate.record();
            }
            self.send_begin(txn).await?;
        }
        Ok(txn)
    }

    /// Transaction metadata: a named transaction's BEGIN, before its first change and in its
    /// tracker slot (so it is delivered, or the transaction is read again).
    async fn send_begin(&mut self, txn: TxnId) -> Result<(), SessionError> {
        let (Some((format, topic)), Some(open)) = (&self.meta, &self.open) else { return Ok(()) };
        self.tracker.collect_offsets(txn);
        let (key, value) = &mut self.meta_buf;
        txn_meta::write_begin(key, value, format, &open.id, open.ts_us).map_err(|e| {
            SourceError::Fatal(format!("cannot encode the BEGIN record of transaction {}: {e}", open.id))
        })?;
        let record = Record { topic, key: Some(key), value: Some(value), partition: Some(txn_meta::PARTITION) };
        self.sink.send(record, txn).await?;
        Ok(())
    }

    /// Transaction metadata in Avro: registers the transaction topic's schemas once, before the
    /// first BEGIN; the END sender shares the ids.
    async fn register_meta_schemas(&mut self) -> Result<(), SourceError> {
        if let (Some((MetaFormat::Avro(ids), topic)), Encoding::Avro(cache)) = (&self.meta, &mut self.encoding) {
            if ids.get().is_none() {
                let schemas = txn_meta::schemas();
                let got = cache.ids_of(topic, &schemas.key, &schemas.value).await.map_err(registry_error)?;
                let _ = ids.set(AvroIds { key: got.key.unwrap_or_default(), value: got.value });
            }
        }
        Ok(())
    }

    fn count(&mut self, topic: &str, op: Op, bytes: usize) {
        self.metrics.event(topic, op, bytes);
        self.events += 1;
        self.bytes += bytes as u64;
    }

    /// Encodes `change` now to send it later with [`Emitter::send_held`], in another transaction:
    /// the changes of a prepared XA transaction wait for its `XA COMMIT`.
    pub async fn render_held(&mut self, topic: &str, change: &Change<'_>) -> Result<HeldRecord, SessionError> {
        // Rendered before the transaction that sends it is known: its `transaction` block is
        // filled in by `send_held`.
        let open = self.open.take();
        let rendered = self.render(topic, change).await;
        self.open = open;
        rendered?;
        Ok(HeldRecord {
            topic: topic.to_string(),
            key: self.buf.key_bytes().map(<[u8]>::to_vec),
            value: self.buf.value.clone(),
            key_identity: self.buf.key_identity().map(<[u8]>::to_vec),
            op: change.op,
            collection: change.collection.to_string(),
        })
    }

    /// Sends a change rendered earlier as part of the open transaction.
    pub async fn send_held(&mut self, held: &HeldRecord) -> Result<(), SessionError> {
        if self.skips(held.op) {
            return Ok(());
        }
        // Rendered before this transaction was known: its `transaction` block is filled in now.
        let value = match self.open.as_mut() {
            Some(open) => txn_meta::with_block(&held.value, open.event(&held.collection)),
            None => None,
        };
        let value = value.as_deref().unwrap_or(&held.value);
        let txn = self.next_slot().await?;
        let topic = held.topic.as_str();
        let key = held.key.as_deref();
        self.sink.send(Record { topic, key, value: Some(value), partition: None }, txn).await?;
        if held.op == Op::Delete && key.is_some() && self.tombstones {
            self.sink.send(Record { topic, key, value: None, partition: None }, txn).await?;
        }
        self.count(topic, held.op, held.size());
        Ok(())
    }

    /// Keeps the checkpoint at `at` or before until [`Emitter::release`] (or the session's end).
    pub fn hold(&self, at: Position) -> HoldId {
        self.tracker.hold(at)
    }

    pub fn release(&self, id: HoldId) {
        self.tracker.release(id)
    }

    /// Releases `id` once everything up to `at` is delivered (see `AckTracker::release_after`).
    pub fn release_after(&self, id: HoldId, at: Position) {
        self.tracker.release_after(id, at)
    }

    /// Closes the open transaction at `position`, its end in the source's log. It becomes
    /// checkpointable once its events and every earlier one are delivered.
    pub fn commit(&mut self, position: Position) -> Result<(), SessionError> {
        self.commit_with(position, None)
    }

    /// Closes a snapshot chunk emitted at `position` (the stream position it was placed at):
    /// `progress` is checkpointed once its rows and everything before them are delivered.
    pub fn commit_with(
        &mut self,
        position: Position,
        progress: Option<Arc<SnapshotProgress>>,
    ) -> Result<(), SessionError> {
        self.sink.end_txn()?;
        if let (Some(open), Some(txn)) = (self.open.take(), self.frame.slot()) {
            self.tracker.set_end(txn, open.end());
        }
        let closed = self.gate.as_ref().map(|_| (position.clone(), progress.clone()));
        self.frame.commit(&self.tracker, position, progress).map_err(SourceError::from)?;
        if let (Some(gate), Some((position, progress))) = (&self.gate, closed) {
            gate.closed(position, progress);
        }
        Ok(self.health()?)
    }

    /// A position between transactions with nothing to deliver (keepalive, new slot, snapshot
    /// skipped): checkpointable once everything before it is delivered.
    pub fn mark(&mut self, position: Position) -> Result<(), SourceError> {
        self.mark_with(position, None)
    }

    fn mark_with(&mut self, position: Position, progress: Option<Arc<SnapshotProgress>>) -> Result<(), SourceError> {
        let closed = self.gate.as_ref().map(|_| (position.clone(), progress.clone()));
        self.frame.mark(&self.tracker, position, progress)?;
        if let (Some(gate), Some((position, progress))) = (&self.gate, closed) {
            gate.closed(position, progress);
        }
        Ok(())
    }

    /// The newest snapshot step the checkpoint store holds: chunks emitted after it would be
    /// read again after a crash.
    pub fn durable_snapshot_step(&self) -> u64 {
        self.tracker.durable_step()
    }

    /// Snapshot progress with no rows to deliver (a new plan, a chunk the log superseded).
    pub fn mark_progress(&mut self, position: Position, progress: Arc<SnapshotProgress>) -> Result<(), SourceError> {
        self.mark_with(position, Some(progress))
    }

    /// The message key of the change last emitted (`None` for a keyless table) in cdcd's JSON,
    /// whatever the wire encoding: what "the same row" means to consumers, so what snapshot
    /// deduplication compares.
    pub fn last_key(&self) -> Option<&[u8]> {
        self.buf.key_identity()
    }

    /// Like [`Emitter::mark`] for a place the log reached through events that carry no change
    /// (a binlog rotation, a new file's header), where the source cannot tell whether it lies
    /// past the last boundary: a place that does not is ignored.
    pub fn mark_if_ahead(&mut self, position: Position) -> Result<(), SourceError> {
        if !self.frame.is_ahead(&position) {
            return Ok(());
        }
        self.mark(position)
    }

    /// Fails once any delivery has failed definitively or the sink is broken.
    pub fn health(&self) -> Result<(), SinkError> {
        if let Some(reason) = self.tracker.failure() {
            return Err(SinkError::Delivery(reason));
        }
        self.sink.health()
    }

    /// Changes emitted since start.
    /// The connector's counters, for what the source itself has to report.
    pub fn metrics(&self) -> &ConnectorMetrics {
        &self.metrics
    }

    pub fn events(&self) -> u64 {
        self.events
    }

    /// Key and value bytes of the changes emitted since start.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The session ended: any open transaction is forgotten (re-read by the next session).
    pub(crate) fn end_session(&mut self) {
        self.frame.reset();
        self.open = None;
    }

    pub(crate) fn sink_mut(&mut self) -> &mut Sink {
        &mut self.sink
    }

    async fn wait_for_room(&self) -> Result<(), SinkError> {
        let mut pause = PauseClock::new();
        while self.tracker.pending_slots() >= MAX_PENDING_TRANSACTIONS {
            self.health()?;
            match pause.wait().await {
                Some(PauseReport::Started) => tracing::info!(
                    pending_transactions = self.tracker.pending_slots(),
                    in_flight = self.tracker.in_flight(),
                    "{MAX_PENDING_TRANSACTIONS} transactions await the broker's acknowledgement; reading paused"
                ),
                Some(PauseReport::Continuing) => tracing::warn!(
                    pending_transactions = self.tracker.pending_slots(),
                    in_flight = self.tracker.in_flight(),
                    waited_secs = pause.waited().as_secs(),
                    "reading still paused: {MAX_PENDING_TRANSACTIONS} transactions await the broker's acknowledgement"
                ),
                None => {}
            }
        }
        Ok(())
    }
}

/// A registry that said no stops the connector (sending the record without its schema would
/// break every reader); one that cannot be reached is retried.
fn registry_error(e: RegistryError) -> SourceError {
    match e {
        RegistryError::Refused { .. } => SourceError::Fatal(format!(
            "{e}. Make the change compatible with the subject's compatibility level, or change that level \
             (PUT /config/<subject>), then restart"
        )),
        RegistryError::Unavailable { .. } => SourceError::Transient(e.to_string()),
        RegistryError::Config(_) => SourceError::Fatal(e.to_string()),
    }
}
