//! PostgreSQL snapshots, read in chunks while the log streams (the watermark algorithm of
//! Netflix's DBLog, as in Debezium's incremental snapshots), for the initial snapshot and for
//! tables added later alike.
//!
//! Workers read chunks in short transactions ([`reader`]); the stream hands every chunk to the
//! [`Snapshotter`] between transactions once it has passed the chunk's watermark, and the chunk
//! is emitted right there, in log order, without the rows the log changed meanwhile (their
//! events already carry newer state). So no transaction stays open longer than one chunk,
//! streaming never pauses, and per key the last event is the source's row.
//!
//! Each emitted chunk advances its table's `done_upto` over the contiguous run of delivered
//! ranges; the progress reaches the checkpoint through the acknowledgement tracker, so after a
//! crash only ranges not yet delivered are read again (at most one per worker).

pub mod copy;
pub mod reader;

pub use copy::parse_copy_line;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, Mutex};

use super::catalog::TableRef;
use super::relation::{Key, Relation, Row, SourceBlock};
use crate::core::envelope::{now_us, Change, Op, WriteJson};
use crate::core::position::{Lsn, Position};
use crate::core::recent_keys::{key_hash, RecentKeys, Superseded};
use crate::core::snapshot::{SnapshotKind, SnapshotMarker, SnapshotProgress};
use crate::emit::Emitter;
use crate::error::{SessionError, SourceError};
use crate::source::chunks::ChunkLedger;
use crate::source::chunks::{Job, JobQueues};
use crate::source::TaskGuard;
use reader::{ChunkRead, ReadSettings, TablePlan};

/// One table being read, as the stream side needs it.
struct TableRun {
    oid: u32,
    rel: Arc<Relation>,
    kind: SnapshotKind,
}

/// What the tables to read need from the session that starts them.
pub struct TableSetup {
    pub table: TableRef,
    pub rel: Arc<Relation>,
    /// Without a key: the table's size in blocks and blocks per chunk.
    pub blocks: u64,
    pub blocks_per_chunk: u64,
    pub estimate: u64,
}

pub struct Snapshotter {
    ledger: ChunkLedger,
    runs: Vec<TableRun>,
    by_oid: HashMap<u32, usize>,
    results: mpsc::Receiver<Result<ChunkRead, SourceError>>,
    retry: mpsc::UnboundedSender<Job>,
    /// Chunks read, waiting for the stream to pass their watermark.
    ready: Vec<ChunkRead>,
    max_ready: usize,
    recent: RecentKeys,
    tasks: Vec<TaskGuard>,
    finished: bool,
    key_scratch: Vec<u8>,
}

impl Snapshotter {
    /// Starts reading every unfinished table of `progress` (matched to `tables` by name) with
    /// `workers` readers; the stream calls [`Snapshotter::emit_ready`] from log position `from` on.
    pub fn start(
        settings: ReadSettings,
        workers: usize,
        progress: SnapshotProgress,
        tables: Vec<TableSetup>,
        from: Lsn,
    ) -> Self {
        let workers = workers.max(1);
        let mut ledger = ChunkLedger::new(progress, workers);
        let mut runs = Vec::new();
        let mut plans = Vec::new();
        for setup in tables {
            let name = setup.table.to_string();
            let Some(index) = ledger.add_table(&name, setup.estimate) else { continue };
            let Some(p) = ledger.progress().table(&name) else { continue };
            plans.push(TablePlan {
                index,
                table: setup.table.clone(),
                rel: setup.rel.clone(),
                filter: p.filter.clone(),
                start: p.done_upto.clone(),
                blocks: setup.blocks,
                blocks_per_chunk: setup.blocks_per_chunk,
                // With a key, rows the log also has are dropped by key instead.
                streamed_after: p
                    .streamed_after
                    .as_deref()
                    .filter(|_| !setup.rel.has_key())
                    .and_then(reader::Visibility::parse),
            });
            runs.push(TableRun { oid: setup.rel.id, kind: p.kind, rel: setup.rel });
        }
        let by_oid = runs.iter().enumerate().map(|(i, r)| (r.oid, i)).collect();
        let settings = Arc::new(settings);
        let plans = Arc::new(plans);
        let (planned_tx, planned_rx) = mpsc::channel(workers);
        let (retry_tx, retry_rx) = mpsc::unbounded_channel();
        let (results_tx, results_rx) = mpsc::channel(workers);
        let queues = Arc::new(Mutex::new(JobQueues::new(retry_rx, planned_rx)));
        let mut tasks = Vec::new();
        if !runs.is_empty() {
            let (s, p, tx) = (settings.clone(), plans.clone(), results_tx.clone());
            tasks.push(TaskGuard(tokio::spawn(async move {
                if let Err(e) = reader::plan(s, p, planned_tx).await {
                    let _ = tx.send(Err(e)).await;
                }
            })));
            for _ in 0..workers {
                let fut = reader::work(settings.clone(), plans.clone(), queues.clone(), results_tx.clone());
                tasks.push(TaskGuard(tokio::spawn(fut)));
            }
            tracing::info!(
                tables = runs.len(),
                estimated_rows = ledger.estimated_rows(),
                workers,
                chunk_rows = settings.chunk_rows,
                "snapshot started (chunks read while streaming)"
            );
        }
        Snapshotter {
            finished: runs.is_empty(),
            ledger,
            runs,
            by_oid,
            results: results_rx,
            retry: retry_tx,
            ready: Vec::new(),
            max_ready: workers * 2,
            recent: RecentKeys::new(from.0),
            tasks,
            key_scratch: Vec::new(),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Rows the server estimates the tables being read hold.
    pub fn estimated_rows(&self) -> u64 {
        self.ledger.estimated_rows()
    }

    /// Whether changes of relation `oid` must be remembered (its table is being read).
    pub fn watches(&self, oid: u32) -> bool {
        !self.finished && self.by_oid.contains_key(&oid)
    }

    /// The log changed `key` of relation `oid` in transaction `xid`, committed at `pos`.
    pub fn record(&mut self, oid: u32, pos: Lsn, xid: u32, key: Option<&[u8]>) {
        if let (true, Some(k)) = (self.watches(oid), key) {
            self.recent.record(oid, pos.0, xid, key_hash(k));
        }
    }

    /// The log truncated relation `oid`.
    pub fn record_truncate(&mut self, oid: u32, pos: Lsn, xid: u32) {
        if self.watches(oid) {
            self.recent.record_truncate(oid, pos.0, xid);
        }
    }

    /// Between transactions, at log position `at`: emits every chunk whose watermark the stream
    /// has passed, as long as few enough emitted chunks wait for the checkpoint.
    pub async fn emit_ready(&mut self, emitter: &mut Emitter, at: Lsn) -> Result<(), SessionError> {
        if self.finished {
            return Ok(());
        }
        while self.ready.len() < self.max_ready {
            match self.results.try_recv() {
                Ok(Ok(chunk)) => self.ready.push(chunk),
                Ok(Err(e)) => return Err(e.into()),
                Err(_) => break,
            }
        }
        self.ready.sort_by_key(|c| c.emit_at);
        while self.ready.first().is_some_and(|c| c.emit_at <= at)
            && self.ledger.may_emit(emitter.durable_snapshot_step())
        {
            let chunk = self.ready.remove(0);
            if self.ledger.stale(&chunk.job) {
                continue;
            }
            self.emit_chunk(emitter, chunk, at).await?;
        }
        self.recent.prune(self.ready.iter().map(|c| c.lo.0).min());
        self.ledger.report(false);
        if self.ledger.all_done() {
            self.finished = true;
            self.tasks.clear();
            self.ledger.report(true);
            emitter.set_state(crate::core::status::State::Streaming);
        }
        Ok(())
    }

    async fn emit_chunk(&mut self, emitter: &mut Emitter, chunk: ChunkRead, at: Lsn) -> Result<(), SessionError> {
        let idx = chunk.job.table;
        let (oid, rel, kind) = {
            let r = &self.runs[idx];
            (r.oid, r.rel.clone(), r.kind)
        };
        let superseded = match self.recent.superseded(oid, chunk.lo.0, |x| chunk.visibility.invisible(x)) {
            Ok(s) => s,
            Err(nc) => {
                tracing::warn!(table = %self.ledger.name(idx), from = %Lsn(nc.from), kept_from = %Lsn(nc.horizon), "snapshot chunk read too long ago to check against the log (too many changes meanwhile); reading it again");
                let _ = self.retry.send(self.ledger.retry(&chunk.job));
                return Ok(());
            }
        };
        let outcome = self.ledger.begin(&chunk.place());
        let n = chunk.rows.len();
        let first = (0..n).find(|&i| self.kept(&rel, &chunk, i, &superseded));
        let last = (0..n).rev().find(|&i| self.kept(&rel, &chunk, i, &superseded));
        let plain = if kind == SnapshotKind::Incremental { SnapshotMarker::Incremental } else { SnapshotMarker::Yes };
        emitter.begin(format_args!(
            "snapshot chunk {} of {} at lsn {}",
            chunk.job.seq,
            self.ledger.name(idx),
            chunk.emit_at
        ))?;
        let mut emitted = 0u64;
        for i in 0..n {
            let cells = chunk.rows.row(i);
            let (is_first, is_last) = (Some(i) == first, Some(i) == last);
            let marker = if is_first || is_last { self.ledger.marker(&outcome, is_first, is_last) } else { plain };
            let row = Row { rel: &rel, cells, data: &chunk.rows.data };
            let key = rel.has_key().then_some(Key(Row { rel: &rel, cells, data: &chunk.rows.data }));
            let source = SourceBlock {
                rel: &rel,
                ts_us: chunk.read_at_us,
                snapshot: marker,
                tx_id: None,
                lsn: chunk.emit_at,
                commit_lsn: at,
                index: i as u64,
            };
            let change = Change {
                op: Op::Read,
                key: key.as_ref().map(|k| k as _),
                before: None,
                after: Some(&row),
                source: &source,
                ts_us: now_us(),
            };
            if emitter.emit_unless(&rel.topic, &change, &superseded).await? {
                emitted += 1;
            }
        }
        let progress = self.ledger.finish(outcome, emitted);
        emitter.commit_with(Position::Postgres { lsn: at }, Some(progress))?;
        Ok(())
    }

    /// Whether row `i` of `chunk` survives the log's changes.
    fn kept(&mut self, rel: &Relation, chunk: &ChunkRead, i: usize, superseded: &Superseded) -> bool {
        if !rel.has_key() {
            return !superseded.all;
        }
        self.key_scratch.clear();
        Key(Row { rel, cells: chunk.rows.row(i), data: &chunk.rows.data }).write_json(&mut self.key_scratch);
        !superseded.contains(key_hash(&self.key_scratch))
    }
}
