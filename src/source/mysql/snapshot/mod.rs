//! MySQL / MariaDB snapshots, read in chunks while the binlog streams (the watermark algorithm of
//! Netflix's DBLog, as in Debezium's incremental snapshots), for the initial snapshot and for
//! tables added later alike. No lock is taken (no `FLUSH TABLES WITH READ LOCK`), and no
//! transaction stays open longer than one chunk's read.
//!
//! Workers read chunks ([`reader`]); the stream hands every chunk to the [`Snapshotter`] between
//! event groups once it has passed the chunk's binlog position, and the chunk is emitted right
//! there, without the rows the binlog changed since (their events already carry newer state).

pub mod reader;

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{mpsc, Mutex};

use super::table::Table;
use super::values::{Key, Row, TextCells};
use super::TableName;
use crate::core::envelope::{now_us, Change, Op, WriteJson};
use crate::core::position::{BinlogPosition, Position};
use crate::core::recent_keys::{key_hash, RecentKeys, Superseded};
use crate::core::snapshot::{SnapshotKind, SnapshotMarker, SnapshotProgress};
use crate::emit::Emitter;
use crate::error::{SessionError, SourceError};
use crate::source::chunks::{ChunkLedger, Job, JobQueues};
use crate::source::TaskGuard;
use reader::{ChunkRead, ReadSettings, TablePlan};

/// What the tables to read need from the session that starts them.
pub struct TableSetup {
    pub name: TableName,
    pub table: Arc<Table>,
    pub estimate: u64,
}

struct TableRun {
    table: Arc<Table>,
    kind: SnapshotKind,
}

pub struct Snapshotter {
    ledger: ChunkLedger,
    runs: Vec<TableRun>,
    by_name: HashMap<(String, String), usize>,
    results: mpsc::Receiver<Result<ChunkRead, SourceError>>,
    retry: mpsc::UnboundedSender<Job>,
    /// Chunks read, waiting for the stream to pass their binlog position.
    ready: Vec<ChunkRead>,
    max_ready: usize,
    recent: RecentKeys,
    tasks: Vec<TaskGuard>,
    finished: bool,
    server_id: u32,
    key_scratch: Vec<u8>,
}

impl Snapshotter {
    /// Starts reading every unfinished table of `progress` with `workers` readers; the stream
    /// calls [`Snapshotter::emit_ready`] from binlog position `from` (as one number) on.
    pub fn start(
        settings: ReadSettings,
        workers: usize,
        progress: SnapshotProgress,
        tables: Vec<TableSetup>,
        from: u64,
    ) -> Self {
        let workers = workers.max(1);
        let server_id = settings.info.server_id;
        let mut ledger = ChunkLedger::new(progress, workers);
        let mut runs = Vec::new();
        let mut plans = Vec::new();
        for setup in tables {
            let name = setup.name.to_string();
            let Some(index) = ledger.add_table(&name, setup.estimate) else { continue };
            let Some(p) = ledger.progress().table(&name) else { continue };
            plans.push(TablePlan {
                index,
                name: setup.name.clone(),
                table: setup.table.clone(),
                filter: p.filter.clone(),
                start: p.done_upto.clone(),
            });
            runs.push(TableRun { table: setup.table, kind: p.kind });
        }
        let by_name = runs.iter().enumerate().map(|(i, r)| ((r.table.db.clone(), r.table.name.clone()), i)).collect();
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
            by_name,
            results: results_rx,
            retry: retry_tx,
            ready: Vec::new(),
            max_ready: workers * 2,
            recent: RecentKeys::new(from),
            tasks,
            server_id,
            key_scratch: Vec::new(),
        }
    }

    pub fn is_finished(&self) -> bool {
        self.finished
    }

    pub fn estimated_rows(&self) -> u64 {
        self.ledger.estimated_rows()
    }

    /// The id under which changes of `db.name` are remembered, while its table is being read.
    pub fn watched(&self, db: &str, name: &str) -> Option<u32> {
        if self.finished {
            return None;
        }
        self.by_name.get(&(db.to_string(), name.to_string())).map(|&i| i as u32)
    }

    /// The binlog changed `key` of table `id` in the group starting at `pos`.
    pub fn record(&mut self, id: u32, pos: u64, key: Option<&[u8]>) {
        if let Some(k) = key {
            self.recent.record(id, pos, 0, key_hash(k));
        }
    }

    /// The binlog truncated table `id` in the group starting at `pos`.
    pub fn record_truncate(&mut self, id: u32, pos: u64) {
        self.recent.record_truncate(id, pos, 0);
    }

    /// Between event groups, with the stream at `here`: emits every chunk whose binlog position
    /// the stream has reached, as long as few enough emitted chunks wait for the checkpoint.
    pub async fn emit_ready(&mut self, emitter: &mut Emitter, here: &BinlogPosition) -> Result<(), SessionError> {
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
        let at = here.as_u64();
        self.ready.sort_by_key(|c| c.emit_at);
        while self.ready.first().is_some_and(|c| c.emit_at <= at)
            && self.ledger.may_emit(emitter.durable_snapshot_step())
        {
            let chunk = self.ready.remove(0);
            if self.ledger.stale(&chunk.job) {
                continue;
            }
            self.emit_chunk(emitter, chunk, here).await?;
        }
        self.recent.prune(self.ready.iter().map(|c| c.lo).min());
        self.ledger.report(false);
        if self.ledger.all_done() {
            self.finished = true;
            self.tasks.clear();
            self.ledger.report(true);
            emitter.set_state(crate::core::status::State::Streaming);
        }
        Ok(())
    }

    async fn emit_chunk(
        &mut self,
        emitter: &mut Emitter,
        chunk: ChunkRead,
        here: &BinlogPosition,
    ) -> Result<(), SessionError> {
        let idx = chunk.job.table;
        let (table, kind) = (self.runs[idx].table.clone(), self.runs[idx].kind);
        let superseded = match self.recent.superseded(idx as u32, chunk.lo, |_| false) {
            Ok(s) => s,
            Err(_) => {
                tracing::warn!(table = %self.ledger.name(idx), "snapshot chunk read too long ago to check against the binlog (too many changes meanwhile); reading it again");
                let _ = self.retry.send(self.ledger.retry(&chunk.job));
                return Ok(());
            }
        };
        let outcome = self.ledger.begin(&chunk.place());
        let n = chunk.rows.len();
        let first = (0..n).find(|&i| self.kept(&table, &chunk.rows[i], &superseded));
        let last = (0..n).rev().find(|&i| self.kept(&table, &chunk.rows[i], &superseded));
        let plain = if kind == SnapshotKind::Incremental { SnapshotMarker::Incremental } else { SnapshotMarker::Yes };
        emitter.begin(format_args!(
            "snapshot chunk {} of {} at {}:{}",
            chunk.job.seq,
            self.ledger.name(idx),
            chunk.at.file,
            chunk.at.pos
        ))?;
        let here_u64 = here.as_u64();
        let mut emitted = 0u64;
        for (i, cells) in chunk.rows.iter().enumerate() {
            let (is_first, is_last) = (Some(i) == first, Some(i) == last);
            let marker = if is_first || is_last { self.ledger.marker(&outcome, is_first, is_last) } else { plain };
            let after = Row { table: &table, cells };
            let key = table.has_key().then_some(Key(Row { table: &table, cells }));
            let source = super::stream::SourceBlock {
                table: &table,
                ts_us: chunk.read_at_us,
                snapshot: marker,
                server_id: self.server_id,
                gtid: chunk.at.gtid.as_deref(),
                file: &chunk.at.file,
                pos: chunk.at.pos,
                row: 0,
                txn_start: here_u64,
                index: i as u64,
            };
            let change = Change {
                op: Op::Read,
                key: key.as_ref().map(|k| k as _),
                before: None,
                after: Some(&after),
                source: &source,
                ts_us: now_us(),
            };
            if emitter.emit_unless(&table.topic, &change, &superseded).await? {
                emitted += 1;
            }
        }
        let progress = self.ledger.finish(outcome, emitted);
        emitter.commit_with(Position::Mysql(here.clone()), Some(progress))?;
        Ok(())
    }

    /// Whether `cells` survive the binlog's changes.
    fn kept(&mut self, table: &Table, cells: &TextCells, superseded: &Superseded) -> bool {
        if !table.has_key() {
            return !superseded.all;
        }
        self.key_scratch.clear();
        Key(Row { table, cells }).write_json(&mut self.key_scratch);
        !superseded.contains(key_hash(&self.key_scratch))
    }
}
