//! Streaming: reads pgoutput from the slot, turns each change into an envelope, and keeps the
//! server informed of durable progress (standby status updates) from a separate task so that a
//! blocked sink never makes the server time us out.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;
use tokio::sync::{mpsc, watch};

use super::catalog::{Catalog, TableRef};
use super::conn::{ReplicationReader, ReplicationWriter};
use super::live::LiveTables;
use super::pgoutput::{self, cell_text, Cell, Message, OldTuple, RelationMsg};
use super::protocol::{self, ReplicationMessage};
use super::relation::{ColumnDef, Identity, Key, Relation, Reshaped, Row, SourceBlock, SourceContext};
use super::snapshot::Snapshotter;
use super::values::kind_of;
use crate::core::envelope::{now_us, Change, Op, WriteJson};
use crate::core::position::{Lsn, Position};
use crate::core::snapshot::SnapshotMarker;
use crate::emit::Emitter;
use crate::error::{SessionError, SourceError};

/// How often a running snapshot looks for chunks it may emit when no message arrives.
const SNAPSHOT_TICK: Duration = Duration::from_millis(10);

/// The transaction being streamed (its framing lives in the emitter).
struct Txn {
    final_lsn: Lsn,
    commit_ts_us: i64,
    xid: u32,
}

pub struct Streamer<'a> {
    pub catalog: &'a mut Catalog,
    pub ctx: SourceContext,
    pub emitter: &'a mut Emitter,
    /// Transactions whose commit LSN is before this were already delivered.
    pub resume_at: Lsn,
    relations: HashMap<u32, Relation>,
    /// Relations the publication sends but `tables` does not select (a publication `FOR ALL
    /// TABLES`, or one that held a table before it left `tables`): their changes are not
    /// published. Kept whole, so a table that starts to match later can be built then.
    ignored: HashMap<u32, RelationMsg>,
    txn: Option<Txn>,
    /// Commit LSN of the last transaction streamed in this session (Debezium's `sequence`).
    last_commit: Option<Lsn>,
    /// Inside a transaction that is skipped as already delivered.
    skipping: bool,
    old: Vec<Cell>,
    new: Vec<Cell>,
    merged: Vec<Cell>,
    /// A changed row's identity, where it is not its message key.
    identity_scratch: Vec<u8>,
    last_mark: Lsn,
    /// Bound on catalog lookups made while streaming (same as the connection's).
    timeout: Duration,
    /// Reads tables in chunks while streaming (`None`: the server cannot, before 14).
    snapshot: Option<Snapshotter>,
    /// New tables and signals, handled between transactions.
    live: Option<LiveTables>,
    /// Snapshot chunks wait for log positions no commit of theirs marks (`source.read_only`):
    /// on a quiet database only a keepalive moves the stream past them, so while a snapshot
    /// runs the server is asked for one every [`PROBE_INTERVAL`] (when it was last asked).
    probe: Option<Instant>,
    /// `snapshot = "initial_only"`: end the session once the snapshot is taken.
    initial_only: bool,
}

/// Why a stream ended without an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StreamEnd {
    Shutdown,
    /// `snapshot = "initial_only"`: every table was read and checkpointed.
    SnapshotTaken,
}

/// How often a read-only snapshot asks the server where its stream is.
const PROBE_INTERVAL: Duration = Duration::from_millis(200);

impl<'a> Streamer<'a> {
    pub fn new(catalog: &'a mut Catalog, ctx: SourceContext, emitter: &'a mut Emitter, resume_at: Lsn) -> Self {
        Self {
            catalog,
            ctx,
            emitter,
            resume_at,
            relations: HashMap::new(),
            ignored: HashMap::new(),
            txn: None,
            last_commit: None,
            skipping: false,
            old: Vec::new(),
            new: Vec::new(),
            merged: Vec::new(),
            identity_scratch: Vec::new(),
            last_mark: resume_at,
            timeout: Duration::from_secs(30),
            snapshot: None,
            live: None,
            probe: None,
            initial_only: false,
        }
    }

    /// Reads tables in chunks while streaming; their rows are emitted between transactions.
    pub fn with_snapshot(mut self, snapshot: Option<Snapshotter>) -> Self {
        self.snapshot = snapshot;
        self
    }

    /// Asks the server for its stream position while a snapshot runs (see `probe`).
    pub fn with_read_only_watermarks(mut self, read_only: bool) -> Self {
        self.probe = read_only.then(Instant::now);
        self
    }

    /// Picks up new tables and snapshot signals while streaming.
    pub fn with_live_tables(mut self, live: LiveTables) -> Self {
        self.live = Some(live);
        self
    }

    fn snapshot_running(&self) -> bool {
        self.snapshot.as_ref().is_some_and(Snapshotter::is_running)
    }

    /// `snapshot = "initial_only"`: every table is read and checkpointed, and no transaction is
    /// open, so the session may end.
    fn initial_snapshot_taken(&self) -> bool {
        self.initial_only
            && !self.emitter.in_transaction()
            && !self.skipping
            && self.snapshot.as_ref().is_none_or(|s| s.taken_and_checkpointed(self.emitter))
    }

    /// Ends the session once the initial snapshot is taken (`snapshot = "initial_only"`).
    pub fn with_initial_only(mut self, initial_only: bool) -> Self {
        self.initial_only = initial_only;
        self
    }

    /// Between transactions: takes new tables and signals, and emits the snapshot chunks the
    /// stream has now passed.
    async fn between_transactions(&mut self) -> Result<(), SessionError> {
        if let Some(live) = self.live.as_mut().filter(|l| l.due()) {
            let progress = live.apply(self.catalog, self.snapshot.as_mut(), self.emitter, &self.ctx).await?;
            if let Some(p) = progress {
                self.emitter.mark_progress(Position::Postgres { lsn: self.last_mark }, p)?;
            }
            self.adopt_captured().await?;
        }
        if let Some(s) = &mut self.snapshot {
            s.emit_ready(self.emitter, self.last_mark).await?;
        }
        Ok(())
    }

    /// Streams until shutdown (Ok) or an error. Every status update asks the server to reply,
    /// so silence longer than `timeout` means the connection or the server is gone.
    #[allow(clippy::too_many_arguments)]
    pub async fn run(
        mut self,
        mut reader: ReplicationReader,
        writer: ReplicationWriter,
        start: Lsn,
        durable: watch::Receiver<Option<Position>>,
        status_interval: Duration,
        timeout: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<StreamEnd, SessionError> {
        self.timeout = timeout;
        let (reply_tx, reply_rx) = mpsc::channel(4);
        let mut status = tokio::spawn(status_writer(writer, durable, start, reply_rx, status_interval));
        // While a snapshot runs, chunks may wait for earlier ones to be checkpointed; on a quiet
        // database no message would come to emit them, so look again on a short tick.
        let mut snapshot_tick = tokio::time::interval(SNAPSHOT_TICK);
        snapshot_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let result = async {
            loop {
                if *shutdown.borrow() {
                    return Ok(StreamEnd::Shutdown);
                }
                if self.initial_snapshot_taken() {
                    return Ok(StreamEnd::SnapshotTaken);
                }
                if let Some(data) = reader.buffered_copy_data()? {
                    self.on_message(data, &reply_tx).await?;
                    continue;
                }
                // The next look for new tables, which must happen on a quiet database too.
                // (Inside a transaction it waits for the commit, which looks anyway.)
                let discovery = self
                    .live
                    .as_ref()
                    .and_then(LiveTables::next_discovery)
                    .filter(|_| !self.emitter.in_transaction() && !self.skipping);
                let discovery_due = tokio::time::sleep_until(discovery.unwrap_or_else(Instant::now).into());
                let data = tokio::select! {
                    biased;
                    _ = shutdown.changed() => return Ok(StreamEnd::Shutdown),
                    // Reading a message is cancel-safe (a partial frame stays in the buffer).
                    _ = snapshot_tick.tick(), if self.snapshot_running() || self.initial_only => {
                        if !self.emitter.in_transaction() && !self.skipping {
                            self.between_transactions().await?;
                        }
                        if self.probe.is_some_and(|last| last.elapsed() >= PROBE_INTERVAL) {
                            self.probe = Some(Instant::now());
                            let _ = reply_tx.try_send(());
                        }
                        continue;
                    }
                    _ = discovery_due, if discovery.is_some() => {
                        self.between_transactions().await?;
                        continue;
                    }
                    // The status writer only ends when it cannot write: the connection is gone.
                    ended = &mut status => {
                        let why = match ended {
                            Ok(Err(e)) => e,
                            Ok(Ok(())) => "the status writer stopped".to_string(),
                            Err(e) => format!("the status writer failed: {e}"),
                        };
                        return Err(SourceError::Transient(format!("replication connection: {why}")).into());
                    }
                    d = tokio::time::timeout(timeout, reader.next_copy_data()) => d.map_err(|_| SourceError::Transient(format!(
                        "PostgreSQL sent nothing for {} s although status updates asked it to reply: the connection or the server is unresponsive (source.timeout_secs); reconnecting",
                        timeout.as_secs()
                    )))??,
                };
                self.on_message(data, &reply_tx).await?;
            }
        }
        .await;
        status.abort();
        result
    }

    /// One CopyData payload of the replication stream: a keepalive or a pgoutput message.
    async fn on_message(&mut self, data: Bytes, reply_tx: &mpsc::Sender<()>) -> Result<(), SessionError> {
        match protocol::parse(data).map_err(|e| SourceError::Transient(e.to_string()))? {
            ReplicationMessage::Keepalive { wal_end, reply } => {
                if reply {
                    let _ = reply_tx.try_send(());
                }
                // Between transactions every commit before wal_end has been sent, so the
                // position is safe to confirm once what came before is delivered.
                if !self.emitter.in_transaction() && !self.skipping && wal_end > self.last_mark {
                    self.last_mark = wal_end;
                    self.emitter.mark(Position::Postgres { lsn: wal_end })?;
                }
                if !self.emitter.in_transaction() && !self.skipping {
                    self.between_transactions().await?;
                }
            }
            ReplicationMessage::XLogData { wal_start, data } => self.handle(wal_start, &data).await?,
        }
        Ok(())
    }

    async fn handle(&mut self, wal_start: Lsn, data: &[u8]) -> Result<(), SessionError> {
        let msg = pgoutput::decode(data, &mut self.old, &mut self.new)
            .map_err(|e| SourceError::Fatal(format!("{e}; please report this with the server version")))?;
        match msg {
            Message::Begin { final_lsn, commit_ts_us, xid } => {
                if final_lsn < self.resume_at {
                    self.skipping = true;
                    return Ok(());
                }
                let commit_ts_us = commit_ts_us.saturating_add(protocol::PG_EPOCH_OFFSET_US);
                self.emitter.begin_at(format_args!("lsn {final_lsn} (xid {xid})"), commit_ts_us)?;
                // Transaction metadata's id: the xid and the commit record's LSN (decimal, as
                // Debezium writes LSNs), the same in BEGIN, each change and END.
                self.emitter.name_transaction(|| format!("{xid}:{}", final_lsn.0));
                self.txn = Some(Txn { final_lsn, commit_ts_us, xid });
            }
            Message::Commit { end_lsn, .. } => {
                if std::mem::take(&mut self.skipping) {
                    return Ok(());
                }
                self.last_commit = self.txn.take().map(|t| t.final_lsn).or(self.last_commit);
                self.last_mark = self.last_mark.max(end_lsn);
                // Snapshots asked for by this transaction's signals are checkpointed with it,
                // so a crash cannot pass the signals without keeping the request.
                let progress = match self.live.as_mut().filter(|l| l.has_requests()) {
                    Some(live) => live.apply(self.catalog, self.snapshot.as_mut(), self.emitter, &self.ctx).await?,
                    None => None,
                };
                self.adopt_captured().await?;
                self.emitter.commit_with(Position::Postgres { lsn: end_lsn }, progress)?;
                self.between_transactions().await?;
            }
            Message::Relation(r) if !self.selects(&r) => {
                if self.ignored.insert(r.id, r.clone()).is_none() {
                    tracing::info!(table = %format_args!("{}.{}", r.namespace, r.name), "the publication sends this table but source.tables does not select it: its changes are not published");
                }
                self.relations.remove(&r.id);
            }
            Message::Relation(r) => {
                self.ignored.remove(&r.id);
                let limit = self.timeout;
                let rel = tokio::time::timeout(limit, self.build_relation(r)).await.map_err(|_| {
                    SourceError::Transient(format!("catalog lookup took over {} s; reconnecting", limit.as_secs()))
                })??;
                self.relations.insert(rel.id, rel);
            }
            _ if self.skipping => {}
            Message::Insert { rel } | Message::Update { rel, .. } | Message::Delete { rel, .. }
                if !self.ignored.is_empty() && self.ignored.contains_key(&rel) => {}
            Message::Insert { rel } if self.is_signal(rel) => self.signal(data, rel),
            Message::Update { rel, .. } | Message::Delete { rel, .. } if self.is_signal(rel) => {}
            Message::Insert { rel } => self.emit_row(data, rel, wal_start, Op::Create, None, Some(Tuple::New)).await?,
            Message::Update { rel, old } => self.update(data, rel, wal_start, old).await?,
            Message::Delete { rel, .. } => {
                self.emit_row(data, rel, wal_start, Op::Delete, Some(Tuple::Old), None).await?
            }
            Message::Truncate { rels, .. } => {
                let rels: Vec<u32> = rels.into_iter().filter(|r| !self.ignored.contains_key(r)).collect();
                for rel in rels {
                    self.emit_row(data, rel, wal_start, Op::Truncate, None, None).await?;
                    // A skipped TRUNCATE must not empty a snapshot chunk either: its rows would
                    // then reach nobody.
                    if self.emitter.skips(Op::Truncate) {
                        continue;
                    }
                    if let (Some(s), Some(t)) = (&mut self.snapshot, &self.txn) {
                        s.record_truncate(rel, t.final_lsn, t.xid);
                    }
                }
            }
            Message::Type { .. } | Message::Ignored(_) => {}
        }
        Ok(())
    }

    async fn update(&mut self, data: &[u8], rel_id: u32, lsn: Lsn, old: OldTuple) -> Result<(), SessionError> {
        self.relation(rel_id)?;
        // An unchanged TOAST value is not sent in the new tuple; with REPLICA IDENTITY FULL the
        // old tuple has it, so fill it in rather than emit a placeholder.
        if old == OldTuple::Full {
            self.merged.clear();
            let old_cells = &self.old;
            self.merged.extend(self.new.iter().enumerate().map(|(i, &c)| match c {
                Cell::Unchanged => old_cells.get(i).copied().unwrap_or(c),
                _ => c,
            }));
            std::mem::swap(&mut self.new, &mut self.merged);
        }
        let rel = self.relation(rel_id)?;
        let key_changed = old != OldTuple::None
            && rel.has_key()
            && rel.key.iter().any(|&i| {
                let text = |cells: &[Cell]| cells.get(i).and_then(|&c| cell_text(data, c));
                text(&self.old) != text(&self.new)
            });
        if key_changed {
            // Like Debezium: a primary-key change is a delete of the old key (with tombstone)
            // followed by a create of the new one, so each key's history stays in one partition.
            self.emit_row(data, rel_id, lsn, Op::Delete, Some(Tuple::Old), None).await?;
            self.emit_row(data, rel_id, lsn, Op::Create, None, Some(Tuple::New)).await
        } else {
            let before = (old == OldTuple::Full).then_some(Tuple::Old);
            self.emit_row(data, rel_id, lsn, Op::Update, before, Some(Tuple::New)).await
        }
    }

    /// Whether `tables` (or the signal table) selects the relation.
    fn selects(&self, r: &RelationMsg) -> bool {
        let table = TableRef { schema: r.namespace.clone(), name: r.name.clone() };
        self.live.as_ref().is_none_or(|live| live.captures(&table))
    }

    /// Builds the ignored relations whose tables `tables` now selects (found by discovery), so
    /// their changes from here on are published.
    async fn adopt_captured(&mut self) -> Result<(), SessionError> {
        let adopt: Vec<u32> = self.ignored.values().filter(|r| self.selects(r)).map(|r| r.id).collect();
        for id in adopt {
            let Some(r) = self.ignored.remove(&id) else { continue };
            let rel = self.build_relation(r).await?;
            self.relations.insert(rel.id, rel);
        }
        Ok(())
    }

    fn is_signal(&self, rel: u32) -> bool {
        match (&self.live, self.relations.get(&rel)) {
            (Some(live), Some(r)) => live.is_signal(&r.table),
            _ => false,
        }
    }

    /// A row inserted into the signal table: taken at its transaction's commit, not emitted.
    fn signal(&mut self, data: &[u8], rel: u32) {
        let (Some(live), Some(r)) = (&mut self.live, self.relations.get(&rel)) else { return };
        let column = |name: &str| {
            let i = r.columns.iter().position(|c| c.name == name)?;
            let text = cell_text(data, *self.new.get(i)?)?;
            Some(String::from_utf8_lossy(text).into_owned())
        };
        let kind = column("type").unwrap_or_default();
        live.signal_row(&column("id").unwrap_or_default(), &kind, column("data").as_deref());
    }

    fn relation(&self, id: u32) -> Result<&Relation, SourceError> {
        self.relations.get(&id).ok_or_else(|| {
            SourceError::Transient(format!("change for relation {id} arrived before its Relation message"))
        })
    }

    /// Emits one change of `rel_id`; `data` is the message whose bytes the tuple cells point into.
    async fn emit_row(
        &mut self,
        data: &[u8],
        rel_id: u32,
        lsn: Lsn,
        op: Op,
        before: Option<Tuple>,
        after: Option<Tuple>,
    ) -> Result<(), SessionError> {
        let Some(txn) = self.txn.as_ref() else {
            return Err(SourceError::from(crate::core::txn::FramingError::EventOutsideTransaction).into());
        };
        if self.emitter.skips(op) {
            return Ok(());
        }
        let rel = self
            .relations
            .get(&rel_id)
            .ok_or_else(|| SourceError::Transient(format!("change for unknown relation {rel_id}")))?;
        let pick = |t: Tuple| match t {
            Tuple::Old => self.old.as_slice(),
            Tuple::New => self.new.as_slice(),
        };
        let index = self.emitter.next_index();
        let source = SourceBlock {
            rel,
            ts_us: txn.commit_ts_us,
            snapshot: SnapshotMarker::No,
            tx_id: Some(txn.xid as u64),
            lsn,
            commit_lsn: txn.final_lsn,
            index,
            last_commit_lsn: self.last_commit,
        };
        let before_row = before.map(|t| Row { rel, cells: pick(t), data });
        let after_row = after.map(|t| Row { rel, cells: pick(t), data });
        let key_tuple = after.or(before);
        let key = match key_tuple {
            Some(t) if rel.has_key() => Some(Key(Row { rel, cells: pick(t), data })),
            _ => None,
        };
        let change = Change {
            op,
            key: key.as_ref().map(|k| k as _),
            before: before_row.as_ref().map(|r| r as _),
            after: after_row.as_ref().map(|r| r as _),
            source: &source,
            collection: &rel.collection,
            schema: rel.schema.as_ref(),
            ts_us: now_us(),
        };
        let (commit_lsn, xid) = (txn.final_lsn, txn.xid);
        self.emitter.emit(&rel.topic, &change).await?;
        if op != Op::Truncate {
            if let Some(s) = self.snapshot.as_mut().filter(|s| s.watches(rel_id)) {
                let scratch = &mut self.identity_scratch;
                if let Some(shape) = s.image_shape(rel_id) {
                    // No unique key to match chunk rows by: the row the change replaced or
                    // removed, whole (REPLICA IDENTITY FULL logs all of it), in the columns the
                    // chunks are read with.
                    if let Some(old) = before {
                        scratch.clear();
                        Reshaped(Row { rel, cells: pick(old), data }, &shape).write_json(scratch);
                        s.record(rel_id, commit_lsn, xid, Some(scratch.as_slice()));
                    }
                } else {
                    // Snapshot chunks are told apart by identity, which is the message key
                    // unless `key_columns` replaced a primary key. A key change supersedes the
                    // old key too.
                    let mut old_identity = None;
                    if let Some(old) = before.filter(|_| !rel.identity.is_empty()) {
                        scratch.clear();
                        Identity(Row { rel, cells: pick(old), data }).write_json(scratch);
                        old_identity = Some(scratch.clone());
                    }
                    let identity = if rel.identity == rel.key && rel.key_is_raw() {
                        self.emitter.last_key()
                    } else {
                        scratch.clear();
                        if let Some(t) = key_tuple.filter(|_| !rel.identity.is_empty()) {
                            Identity(Row { rel, cells: pick(t), data }).write_json(scratch);
                        }
                        (!scratch.is_empty()).then_some(scratch.as_slice())
                    };
                    if old_identity.as_deref().is_some_and(|old| Some(old) != identity) {
                        s.record(rel_id, commit_lsn, xid, old_identity.as_deref());
                    }
                    s.record(rel_id, commit_lsn, xid, identity);
                }
            }
        }
        Ok(())
    }

    async fn build_relation(&mut self, r: RelationMsg) -> Result<Relation, SessionError> {
        let mut columns = Vec::with_capacity(r.columns.len());
        // The key is the primary key as the catalog has it now; pgoutput only marks the replica
        // identity, which is every column under REPLICA IDENTITY FULL. NOT NULL, which the
        // typed encodings' schemas carry, is also only in the catalog.
        let meta = self.catalog.table_meta(r.id).await.ok();
        for c in &r.columns {
            let not_null =
                meta.as_ref().and_then(|m| m.columns.iter().find(|m| m.name == c.name)).is_some_and(|m| m.not_null);
            let pg = self.catalog.pg_type(c.type_oid, c.type_mod).await?;
            columns.push(ColumnDef { name: c.name.clone(), kind: kind_of(&pg), pg, not_null });
        }
        let table = TableRef { schema: r.namespace.clone(), name: r.name.clone() };
        let key = match meta {
            Some(meta) => meta.key,
            None => r.columns.iter().filter(|c| c.flags & 1 == 1).map(|c| c.name.clone()).collect(),
        };
        let rel = Relation::new(r.id, table, columns, &key, &self.ctx)?;
        if !rel.has_key() {
            tracing::warn!(table = %rel.table, "table has no primary key and no key_columns: its events get a null Kafka key (no per-row ordering across partitions)");
        }
        tracing::debug!(table = %rel.table, columns = r.columns.len(), "relation");
        Ok(rel)
    }
}

#[derive(Clone, Copy)]
enum Tuple {
    Old,
    New,
}

/// Sends standby status updates: on the interval, on request, and whenever the durable position
/// moves. The flushed position never goes below `start`.
/// Returns only when a write fails (the error) or the session is over.
async fn status_writer(
    mut w: ReplicationWriter,
    mut durable: watch::Receiver<Option<Position>>,
    start: Lsn,
    mut reply: mpsc::Receiver<()>,
    interval: Duration,
) -> Result<(), String> {
    let mut flushed = start;
    let mut buf = BytesMut::with_capacity(64);
    loop {
        if let Some(Position::Postgres { lsn }) = *durable.borrow_and_update() {
            flushed = flushed.max(lsn);
        }
        buf.clear();
        // Asking for a reply turns every status update into a liveness probe.
        protocol::standby_status(&mut buf, flushed, flushed, now_us(), true);
        w.write_all(&buf).await.map_err(|e| format!("sending a status update failed: {e}"))?;
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            r = durable.changed() => if r.is_err() { return Ok(()) },
            r = reply.recv() => if r.is_none() { return Ok(()) },
        }
    }
}
