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

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{mpsc, Mutex};

use super::catalog::TableRef;
use super::relation::{Key, Relation, Row, SourceBlock};
use crate::core::envelope::{now_us, Change, Op, WriteJson};
use crate::core::position::{Lsn, Position};
use crate::core::recent_keys::{key_hash, RecentKeys, Superseded};
use crate::core::snapshot::{SnapshotKind, SnapshotMarker, SnapshotProgress};
use crate::emit::Emitter;
use crate::error::{SessionError, SourceError};
use crate::source::TaskGuard;
use reader::{ChunkRead, Job, JobQueues, ReadSettings, TablePlan};

/// How often progress is logged.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// One table being read, as the stream side tracks it.
struct TableRun {
    name: String,
    oid: u32,
    rel: Arc<Relation>,
    kind: SnapshotKind,
    estimate: u64,
    /// The first range not yet emitted; ranges after it that were emitted wait in `held`.
    next_seq: u64,
    held: BTreeMap<u64, Held>,
}

#[derive(Clone)]
struct Held {
    done_upto: Option<Vec<String>>,
    complete: bool,
    table_end: bool,
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
    progress: SnapshotProgress,
    runs: Vec<TableRun>,
    by_oid: HashMap<u32, usize>,
    results: mpsc::Receiver<Result<ChunkRead, SourceError>>,
    retry: mpsc::UnboundedSender<Job>,
    /// Chunks read, waiting for the stream to pass their watermark.
    ready: Vec<ChunkRead>,
    max_ready: usize,
    /// Steps of chunks emitted but not yet in the checkpoint store. Bounded by the number of
    /// workers: what a crash makes us read (and publish) again is at most one chunk per worker.
    unsaved: VecDeque<u64>,
    max_unsaved: usize,
    recent: RecentKeys,
    tasks: Vec<TaskGuard>,
    started: Instant,
    last_report: Instant,
    rows_this_run: u64,
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
        let mut runs = Vec::new();
        let mut plans = Vec::new();
        for setup in tables {
            let name = setup.table.to_string();
            let Some(p) = progress.table(&name).filter(|p| !p.done) else { continue };
            plans.push(TablePlan {
                index: runs.len(),
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
            runs.push(TableRun {
                name,
                oid: setup.rel.id,
                rel: setup.rel,
                kind: p.kind,
                estimate: setup.estimate,
                next_seq: 0,
                held: BTreeMap::new(),
            });
        }
        let by_oid = runs.iter().enumerate().map(|(i, r)| (r.oid, i)).collect();
        let workers = workers.max(1);
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
            let total: u64 = runs.iter().map(|r| r.estimate).sum();
            tracing::info!(
                tables = runs.len(),
                estimated_rows = total,
                workers,
                chunk_rows = settings.chunk_rows,
                "snapshot started (chunks read while streaming)"
            );
        }
        let now = Instant::now();
        Snapshotter {
            finished: runs.is_empty(),
            progress,
            runs,
            by_oid,
            results: results_rx,
            retry: retry_tx,
            ready: Vec::new(),
            max_ready: workers * 2,
            unsaved: VecDeque::new(),
            max_unsaved: workers,
            recent: RecentKeys::new(from.0),
            tasks,
            started: now,
            last_report: now,
            rows_this_run: 0,
            key_scratch: Vec::new(),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    /// Rows the server estimates the tables being read hold.
    pub fn estimated_rows(&self) -> u64 {
        self.runs.iter().map(|r| r.estimate).sum()
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
    /// has passed.
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
        let durable = emitter.durable_snapshot_step();
        while self.unsaved.front().is_some_and(|&s| s <= durable) {
            self.unsaved.pop_front();
        }
        while self.unsaved.len() < self.max_unsaved && self.ready.first().is_some_and(|c| c.emit_at <= at) {
            let chunk = self.ready.remove(0);
            self.emit_chunk(emitter, chunk, at).await?;
            self.unsaved.push_back(self.progress.step);
        }
        self.recent.prune(self.ready.iter().map(|c| c.lo.0).min());
        self.report(false);
        if self.progress.tables.iter().filter(|t| self.by_name(&t.table).is_some()).all(|t| t.done) {
            self.finished = true;
            self.tasks.clear();
            self.report(true);
            emitter.set_state(crate::core::status::State::Streaming);
        }
        Ok(())
    }

    fn by_name(&self, name: &str) -> Option<usize> {
        self.runs.iter().position(|r| r.name == name)
    }

    async fn emit_chunk(&mut self, emitter: &mut Emitter, chunk: ChunkRead, at: Lsn) -> Result<(), SessionError> {
        let idx = chunk.job.table;
        let (oid, rel, kind, name) = {
            let r = &self.runs[idx];
            (r.oid, r.rel.clone(), r.kind, r.name.clone())
        };
        let superseded = match self.recent.superseded(oid, chunk.lo.0, |x| chunk.visibility.invisible(x)) {
            Ok(s) => s,
            Err(nc) => {
                tracing::warn!(table = %name, from = %Lsn(nc.from), kept_from = %Lsn(nc.horizon), "snapshot chunk read too long ago to check against the log (too many changes meanwhile); reading it again");
                let _ = self.retry.send(chunk.job.clone());
                return Ok(());
            }
        };
        let step = self.advance(idx, &chunk);
        let table_done = step.as_ref().is_some_and(|s| s.table_done);
        let n = chunk.rows.len();
        let first = (0..n).find(|&i| self.kept(&rel, &chunk, i, &superseded));
        let last = (0..n).rev().find(|&i| self.kept(&rel, &chunk, i, &superseded));
        let marker_of = |this: &Self, i: usize| -> SnapshotMarker {
            if kind == SnapshotKind::Incremental {
                return SnapshotMarker::Incremental;
            }
            let initial = || this.progress.tables.iter().filter(|t| t.kind == SnapshotKind::Initial);
            if Some(i) == last && table_done {
                let others_done = initial().all(|t| t.done || t.table == name);
                return if others_done { SnapshotMarker::Last } else { SnapshotMarker::LastInTable };
            }
            if Some(i) == first {
                if initial().all(|t| t.rows == 0) {
                    return SnapshotMarker::First;
                }
                if this.progress.table(&name).is_some_and(|t| t.rows == 0) {
                    return SnapshotMarker::FirstInTable;
                }
            }
            SnapshotMarker::Yes
        };
        let markers: Vec<(usize, SnapshotMarker)> =
            [first, last].into_iter().flatten().map(|i| (i, marker_of(self, i))).collect();
        emitter.begin(format_args!("snapshot chunk {} of {name} at lsn {}", chunk.job.seq, chunk.emit_at))?;
        let mut emitted = 0u64;
        for i in 0..n {
            let cells = chunk.rows.row(i);
            let marker = markers.iter().find(|(j, _)| *j == i).map_or(
                if kind == SnapshotKind::Incremental { SnapshotMarker::Incremental } else { SnapshotMarker::Yes },
                |(_, m)| *m,
            );
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
        self.rows_this_run += emitted;
        self.progress.step += 1;
        if let Some(t) = self.progress.table_mut(&name) {
            t.rows += emitted;
            if let Some(s) = step {
                t.done_upto = s.done_upto;
                t.done = s.table_done;
            }
        }
        if table_done {
            let rows = self.progress.table(&name).map_or(0, |t| t.rows);
            tracing::info!(table = %name, rows, "snapshot of table done");
        }
        let progress = Arc::new(self.progress.clone());
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

    /// Records that `chunk` is emitted; returns how far its table is now done over the
    /// contiguous run of emitted ranges (`None`: an earlier range is still missing).
    fn advance(&mut self, idx: usize, chunk: &ChunkRead) -> Option<Step> {
        let run = &mut self.runs[idx];
        let mut cur =
            Held { done_upto: chunk.done_upto.clone(), complete: chunk.complete, table_end: chunk.table_end() };
        if chunk.job.seq != run.next_seq {
            run.held.insert(chunk.job.seq, cur);
            return None;
        }
        loop {
            if !cur.complete {
                return Some(Step { done_upto: cur.done_upto, table_done: false });
            }
            if cur.table_end {
                return Some(Step { done_upto: cur.done_upto, table_done: true });
            }
            run.next_seq += 1;
            match run.held.remove(&run.next_seq) {
                Some(h) => cur = h,
                None => return Some(Step { done_upto: cur.done_upto, table_done: false }),
            }
        }
    }

    fn report(&mut self, last: bool) {
        if !last && self.last_report.elapsed() < REPORT_EVERY {
            return;
        }
        self.last_report = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.rows_this_run as f64 / secs;
        if last {
            tracing::info!(
                rows = self.rows_this_run,
                secs = secs as u64,
                rows_per_sec = rate as u64,
                "snapshot finished"
            );
            return;
        }
        for r in &self.runs {
            let Some(t) = self.progress.table(&r.name).filter(|t| !t.done) else { continue };
            let left = r.estimate.saturating_sub(t.rows);
            let eta = if rate > 0.0 { (left as f64 / rate) as u64 } else { 0 };
            tracing::info!(table = %r.name, rows = t.rows, estimated_rows = r.estimate, rows_per_sec = rate as u64, eta_secs = eta, "snapshot in progress");
        }
    }
}

struct Step {
    done_upto: Option<Vec<String>>,
    table_done: bool,
}
