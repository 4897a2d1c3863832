//! MySQL / MariaDB snapshots, read in chunks while the binlog streams (the watermark algorithm of
//! Netflix's DBLog, as in Debezium's incremental snapshots), for the initial snapshot and for
//! tables added later alike. No lock is taken (no `FLUSH TABLES WITH READ LOCK`), and no
//! transaction stays open longer than one chunk's read.
//!
//! Workers read chunks ([`reader`]); the stream hands every chunk to the [`Snapshotter`] between
//! event groups once it has passed the chunk's binlog position, and the chunk is emitted right
//! there, without the rows the binlog changed since (their events already carry newer state).
//!
//! Which binlog transactions a chunk's read saw: on MariaDB, exactly those before the snapshot's
//! own binlog position. On MySQL the read's window is the span around opening its transaction;
//! with GTIDs, the transactions in the `gtid_executed` taken before opening it were committed,
//! and so seen, and every other one is treated as unseen, even one already in the binlog before
//! the window (binary-log group commit writes the binlog before the engine commits).

pub mod reader;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::table::Table;
use super::values::{Identity, Key, Reshaped, Row, TextCells};
use super::xa::Xid;
use super::TableName;
use crate::core::envelope::{now_us, Change, Op, WriteJson};
use crate::core::position::{BinlogPosition, Position};
use crate::core::recent_keys::{key_hash, Seen, Superseded, CAPACITY};
use crate::core::snapshot::{SnapshotKind, SnapshotMarker, SnapshotProgress};
use crate::emit::Emitter;
use crate::error::SessionError;
use crate::source::chunks::SnapshotEngine;
use reader::{ChunkRead, ReadSettings, TablePlan};

/// What the tables to read need from the session that starts them.
pub struct TableSetup {
    pub name: TableName,
    pub table: Arc<Table>,
    /// The unique, non-null columns chunks are cut by (`table::chunk_key`); empty: the table
    /// is read whole.
    pub chunk_key: Vec<usize>,
    pub estimate: u64,
}

struct TableRun {
    table: Arc<Table>,
    kind: SnapshotKind,
    /// Cut by a unique key, so the binlog's changes supersede chunk rows by key (else by table).
    keyed: bool,
}

pub struct Snapshotter {
    engine: SnapshotEngine<ReadSettings>,
    /// By the engine's table index.
    runs: Vec<TableRun>,
    /// The id under which each table's changes are remembered, by `(db, table)`.
    ids: HashMap<(String, String), u32>,
    server_id: u32,
    key_scratch: Vec<u8>,
    /// The GTIDs of the recent transactions whose changes were recorded, by the number the
    /// record carries (MySQL: to tell whether a chunk's read saw them).
    txns: VecDeque<(u32, String)>,
    /// The XIDs of the recent XA transactions whose changes were recorded, by number (MariaDB:
    /// to tell a chunk read as one committed apart, see `MyRows::prepared_xa`).
    xa_txns: VecDeque<(u32, Xid)>,
    /// The last transaction numbered: its group's start, and its number.
    last_txn: Option<(u64, u32)>,
}

impl Snapshotter {
    /// A snapshotter for a stream that starts at binlog position `from` (as one number),
    /// reading with `workers` readers the tables [`Snapshotter::add`] gives it.
    pub fn new(settings: ReadSettings, workers: usize, progress: SnapshotProgress, from: u64) -> Self {
        let server_id = settings.info.server_id;
        Snapshotter {
            engine: SnapshotEngine::new(settings, workers, progress, from),
            runs: Vec::new(),
            ids: HashMap::new(),
            server_id,
            key_scratch: Vec::new(),
            txns: VecDeque::new(),
            xa_txns: VecDeque::new(),
            last_txn: None,
        }
    }

    /// Adds a table whose progress says it still needs reading (returns whether it did); it is
    /// read from [`Snapshotter::launch`] on.
    pub fn add(&mut self, setup: TableSetup) -> bool {
        let name = setup.name.to_string();
        let Some(p) = self.engine.ledger().progress().table(&name) else { return false };
        let kind = p.kind;
        let keyed = !setup.chunk_key.is_empty();
        let plan = TablePlan::new(setup.name.clone(), setup.table.clone(), p.filter.clone(), setup.chunk_key);
        let Some(index) = self.engine.add(&name, setup.estimate, plan) else { return false };
        debug_assert_eq!(index, self.runs.len());
        let next_id = self.ids.len() as u32;
        self.ids.entry((setup.table.db.clone(), setup.table.name.clone())).or_insert(next_id);
        self.runs.push(TableRun { table: setup.table, kind, keyed });
        true
    }

    /// Starts reading the tables added since the last call, and tells the status how many
    /// rows the running snapshot is now estimated to read.
    pub fn launch(&mut self, emitter: &Emitter) {
        self.engine.launch();
        emitter.set_snapshot_estimate(self.estimated_rows());
    }

    /// Records a snapshot of `table` asked for while streaming; returns the progress to
    /// checkpoint before [`Snapshotter::add`] starts it.
    pub fn request(&mut self, table: &str, filter: Option<String>) -> Arc<SnapshotProgress> {
        self.engine.ledger_mut().request(table, filter, None)
    }

    /// Records that the binlog holds `table` from its creation on, so it needs no snapshot (a
    /// run of it still going is dropped); returns the progress to checkpoint.
    pub fn streamed_from_creation(&mut self, table: &str) -> Arc<SnapshotProgress> {
        self.engine.ledger_mut().streamed_only(table)
    }

    /// Stops the incremental snapshot of `table` (every one when `None`); returns the progress
    /// to checkpoint when one was running.
    pub fn stop(&mut self, table: Option<&str>, emitter: &Emitter) -> Option<Arc<SnapshotProgress>> {
        self.engine.stop(table, emitter)
    }

    pub fn is_running(&self) -> bool {
        self.engine.is_running()
    }

    /// Whether every table is read and the checkpoint store holds that (`snapshot =
    /// "initial_only"` then stops), as far as `emitter` knows.
    pub fn taken_and_checkpointed(&self, emitter: &Emitter) -> bool {
        !self.is_running() && emitter.durable_snapshot_step() >= self.engine.ledger().progress().step
    }

    pub fn estimated_rows(&self) -> u64 {
        self.engine.ledger().estimated_rows()
    }

    /// The id under which changes of `db.name` are remembered, while a snapshot runs.
    pub fn watched(&self, db: &str, name: &str) -> Option<u32> {
        if !self.engine.is_running() {
            return None;
        }
        self.ids.get(&(db.to_string(), name.to_string())).copied()
    }

    /// When chunk rows of `db.name` are matched to the binlog's changes by whole row (no unique
    /// key cuts the table): the definition its chunks are read under, in whose columns the
    /// binlog's old rows are recorded.
    pub fn image_shape(&self, db: &str, name: &str) -> Option<Arc<Table>> {
        if !self.engine.is_running() {
            return None;
        }
        // The table's latest run: an earlier one (before a key was added, say) is over.
        let run = self.runs.iter().rev().find(|r| r.table.db == db && r.table.name == name)?;
        (!run.keyed).then(|| run.table.clone())
    }

    fn id_of(&self, table: &Table) -> u32 {
        self.ids.get(&(table.db.clone(), table.name.clone())).copied().unwrap_or(u32::MAX)
    }

    /// The number the changes of the group starting at `pos` (with `gtid`) are recorded under.
    fn txn(&mut self, pos: u64, gtid: Option<&str>) -> u32 {
        if let Some((_, n)) = self.last_txn.filter(|(start, _)| *start == pos) {
            return n;
        }
        let n = self.last_txn.map_or(1, |(_, n)| n.wrapping_add(1).max(1));
        self.last_txn = Some((pos, n));
        if let Some(g) = gtid {
            remember(&mut self.txns, n, g.to_string());
        }
        n
    }

    /// The changes recorded for the group starting at `pos` are those of XA transaction `xid`
    /// (published at its `XA COMMIT`).
    pub fn note_xa(&mut self, pos: u64, gtid: Option<&str>, xid: &Xid) {
        let n = self.txn(pos, gtid);
        if self.xa_txns.back().is_none_or(|(last, _)| *last != n) {
            remember(&mut self.xa_txns, n, xid.clone());
        }
    }

    /// The binlog changed `key` of table `id` in the group starting at `pos`, whose GTID is
    /// `gtid`.
    pub fn record(&mut self, id: u32, pos: u64, gtid: Option<&str>, key: Option<&[u8]>) {
        if let Some(k) = key {
            let txn = self.txn(pos, gtid);
            self.engine.recent().record(id, pos, txn, key_hash(k));
        }
    }

    /// The binlog truncated table `id` in the group starting at `pos`.
    pub fn record_truncate(&mut self, id: u32, pos: u64, gtid: Option<&str>) {
        let txn = self.txn(pos, gtid);
        self.engine.recent().record_truncate(id, pos, txn);
    }

    /// Between event groups, with the stream at `here`: emits every chunk whose binlog position
    /// the stream has reached, as long as few enough emitted chunks wait for the checkpoint.
    pub async fn emit_ready(&mut self, emitter: &mut Emitter, here: &BinlogPosition) -> Result<(), SessionError> {
        if !self.engine.is_running() {
            return Ok(());
        }
        while let Some(chunk) = self.engine.next_ready(here.as_u64(), emitter.durable_snapshot_step())? {
            self.emit_chunk(emitter, chunk, here).await?;
        }
        if let Some(progress) = self.engine.take_changed() {
            emitter.mark_progress(Position::Mysql(here.clone()), progress)?;
        }
        self.engine.settle(emitter);
        Ok(())
    }

    async fn emit_chunk(
        &mut self,
        emitter: &mut Emitter,
        chunk: ChunkRead,
        here: &BinlogPosition,
    ) -> Result<(), SessionError> {
        let idx = chunk.job.table;
        // The rows' own definition: the table's columns may have changed since the run began.
        let (table, kind, keyed) = (chunk.rows.table.clone(), self.runs[idx].kind, self.runs[idx].keyed);
        let id = self.id_of(&table);
        let (lo, committed) = (chunk.lo, chunk.rows.committed_before.clone());
        let txns = &self.txns;
        let (prepared, xa_txns) = (chunk.rows.prepared_xa.clone(), &self.xa_txns);
        let in_engine_after_read =
            |txn: u32| prepared.as_ref().is_some_and(|p| by_txn(xa_txns, txn).is_some_and(|x| p.contains(x)));
        let seen = |pos: u64, txn: u32| match (&committed, by_txn(txns, txn).map(String::as_str)) {
            _ if in_engine_after_read(txn) => Seen::AfterRead,
            (Some(set), Some(gtid)) if set.contains(gtid) => Seen::Before,
            (Some(_), Some(_)) => Seen::AfterRead,
            _ if pos >= lo => Seen::AfterRead,
            _ => Seen::Before,
        };
        let Some(mut superseded) = self.engine.superseded(id, &chunk, seen) else {
            return Ok(());
        };
        let outcome = self.engine.ledger_mut().begin(&chunk.place());
        let shape = self.runs[idx].table.clone();
        let kept: Vec<bool> =
            chunk.rows.rows.iter().map(|c| self.kept(&table, &shape, keyed, c, &mut superseded)).collect();
        let first = kept.iter().position(|&k| k);
        let last = kept.iter().rposition(|&k| k);
        let plain = if kind == SnapshotKind::Incremental { SnapshotMarker::Incremental } else { SnapshotMarker::Yes };
        emitter.begin(format_args!(
            "snapshot chunk {} of {} at {}:{}",
            chunk.job.seq,
            self.engine.ledger().name(idx),
            chunk.rows.at.file,
            chunk.rows.at.pos
        ))?;
        let here_u64 = here.as_u64();
        let mut emitted = 0u64;
        // One processing time for the chunk: reading the clock per row costs more than the row.
        let emitted_at = now_us();
        for (i, cells) in chunk.rows.rows.iter().enumerate().filter(|(i, _)| kept[*i]) {
            let (is_first, is_last) = (Some(i) == first, Some(i) == last);
            let marker =
                if is_first || is_last { self.engine.ledger().marker(&outcome, is_first, is_last) } else { plain };
            let after = Row { table: &table, cells };
            let key = table.has_key().then_some(Key(Row { table: &table, cells }));
            let source = super::stream::SourceBlock {
                table: &table,
                ts_us: chunk.read_at_us,
                snapshot: marker,
                server_id: self.server_id,
                gtid: chunk.rows.at.gtid.as_deref(),
                file: &chunk.rows.at.file,
                pos: chunk.rows.at.pos,
                row: 0,
                thread: None,
                txn_start: here_u64,
                index: i as u64,
            };
            let change = Change {
                op: Op::Read,
                key: key.as_ref().map(|k| k as _),
                before: None,
                after: Some(&after),
                source: &source,
                collection: &table.collection,
                schema: table.typed.as_ref().map(|t| &t.schema),
                ts_us: emitted_at,
            };
            emitter.emit(&table.topic, &change).await?;
            emitted += 1;
        }
        let progress = self.engine.ledger_mut().finish(outcome, emitted);
        emitter.commit_with(Position::Mysql(here.clone()), Some(progress))?;
        Ok(())
    }

    /// Whether `cells` survive the binlog's changes: by the row's identity when the table is
    /// cut by a unique key, else by its whole image, once per change that removed such a row
    /// after the read. Whole images are compared in `shape`, the run's definition, which is
    /// the one the stream records old rows in even after the table's columns changed.
    fn kept(
        &mut self,
        table: &Table,
        shape: &Table,
        keyed: bool,
        cells: &TextCells,
        superseded: &mut Superseded,
    ) -> bool {
        if superseded.all {
            return false;
        }
        self.key_scratch.clear();
        if keyed {
            if superseded.keys.is_empty() {
                return true;
            }
            Identity(Row { table, cells }).write_json(&mut self.key_scratch);
            return !superseded.contains(key_hash(&self.key_scratch));
        }
        if superseded.removed.is_empty() {
            return true;
        }
        Reshaped(Row { table, cells }, shape).write_json(&mut self.key_scratch);
        !self.engine.drop_removed(superseded, key_hash(&self.key_scratch))
    }
}

/// Keeps `value` for transaction `n`, the oldest making room past [`CAPACITY`].
fn remember<T>(list: &mut VecDeque<(u32, T)>, n: u32, value: T) {
    if list.len() >= CAPACITY {
        list.pop_front();
    }
    list.push_back((n, value));
}

/// What [`remember`] kept for transaction `txn` (a GTID, an XID), while it is remembered; the
/// numbers grow, so the list is sorted.
fn by_txn<T>(list: &VecDeque<(u32, T)>, txn: u32) -> Option<&T> {
    let i = list.binary_search_by_key(&txn, |(n, _)| *n).ok()?;
    list.get(i).map(|(_, v)| v)
}
