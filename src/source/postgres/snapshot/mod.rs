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

use super::catalog::{sql_err, Catalog, TableMeta, TableRef};
use super::relation::{ColumnDef, Identity, Key, Relation, Reshaped, Row, SourceBlock, SourceContext};
use super::values::kind_of;
use crate::core::envelope::{now_us, Change, Op, WriteJson};
use crate::core::position::{Lsn, Position};
use crate::core::recent_keys::{key_hash, Seen, Superseded};
use crate::core::snapshot::{SnapshotKind, SnapshotMarker, SnapshotProgress};
use crate::emit::Emitter;
use crate::error::{SessionError, SourceError};
use crate::source::chunks::SnapshotEngine;
use reader::{ChunkRead, ReadSettings, TablePlan};

/// One table being read, as the stream side needs it.
struct TableRun {
    oid: u32,
    rel: Arc<Relation>,
    kind: SnapshotKind,
    /// Cut by a unique key, so the log's changes supersede chunk rows by key (else by table).
    keyed: bool,
}

/// What the tables to read need from the session that starts them.
pub struct TableSetup {
    pub table: TableRef,
    pub rel: Arc<Relation>,
    /// The unique, non-null columns chunks are cut by (the relation's identity when it is
    /// one); empty: by `ctid` blocks.
    pub chunk_key: Vec<usize>,
    /// Without a chunk key: the table's size in blocks and blocks per chunk.
    pub blocks: u64,
    pub blocks_per_chunk: u64,
    pub estimate: u64,
}

pub struct Snapshotter {
    engine: SnapshotEngine<ReadSettings>,
    /// By the engine's table index.
    runs: Vec<TableRun>,
    by_oid: HashMap<u32, usize>,
    key_scratch: Vec<u8>,
}

impl Snapshotter {
    /// A snapshotter for a stream that starts at log position `from`, reading with `workers`
    /// readers the tables [`Snapshotter::add`] gives it.
    pub fn new(settings: ReadSettings, workers: usize, progress: SnapshotProgress, from: Lsn) -> Self {
        Snapshotter {
            engine: SnapshotEngine::new(settings, workers, progress, from.0),
            runs: Vec::new(),
            by_oid: HashMap::new(),
            key_scratch: Vec::new(),
        }
    }

    /// Adds a table whose progress says it still needs reading (returns whether it did); it is
    /// read from [`Snapshotter::launch`] on.
    pub fn add(&mut self, setup: TableSetup) -> bool {
        let name = setup.table.to_string();
        let Some(p) = self.engine.ledger().progress().table(&name) else { return false };
        let kind = p.kind;
        let keyed = !setup.chunk_key.is_empty();
        let plan = TablePlan {
            latest: std::sync::Mutex::new(None),
            table: setup.table.clone(),
            rel: setup.rel.clone(),
            filter: p.filter.clone(),
            chunk_key: setup.chunk_key,
            blocks: setup.blocks,
            blocks_per_chunk: setup.blocks_per_chunk,
            // With a key, rows the log also has are dropped by key instead.
            streamed_after: p.streamed_after.as_deref().filter(|_| !keyed).and_then(reader::Visibility::parse),
        };
        let Some(index) = self.engine.add(&name, setup.estimate, plan) else { return false };
        debug_assert_eq!(index, self.runs.len());
        self.by_oid.insert(setup.rel.id, index);
        self.runs.push(TableRun { oid: setup.rel.id, kind, rel: setup.rel, keyed });
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
    pub fn request(
        &mut self,
        table: &str,
        filter: Option<String>,
        streamed_after: Option<String>,
    ) -> Arc<SnapshotProgress> {
        self.engine.ledger_mut().request(table, filter, streamed_after)
    }

    /// Records that `table` needs no snapshot (the connector does not snapshot); returns the
    /// progress to checkpoint.
    pub fn streamed_only(&mut self, table: &str) -> Arc<SnapshotProgress> {
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

    /// Rows the server estimates the tables being read hold.
    pub fn estimated_rows(&self) -> u64 {
        self.engine.ledger().estimated_rows()
    }

    /// Whether changes of relation `oid` must be remembered (its table is being read).
    pub fn watches(&self, oid: u32) -> bool {
        self.engine.is_running() && self.by_oid.contains_key(&oid)
    }

    /// When chunk rows of relation `oid` are matched to the log's changes by whole row (no
    /// unique key cuts the table): the definition its chunks are read under, in whose columns
    /// the log's old rows are recorded.
    pub fn image_shape(&self, oid: u32) -> Option<Arc<Relation>> {
        self.by_oid.get(&oid).map(|&i| &self.runs[i]).filter(|r| !r.keyed).map(|r| r.rel.clone())
    }

    /// The log changed `key` of relation `oid` in transaction `xid`, committed at `pos`.
    pub fn record(&mut self, oid: u32, pos: Lsn, xid: u32, key: Option<&[u8]>) {
        if let (true, Some(k)) = (self.watches(oid), key) {
            self.engine.recent().record(oid, pos.0, xid, key_hash(k));
        }
    }

    /// The log truncated relation `oid`.
    pub fn record_truncate(&mut self, oid: u32, pos: Lsn, xid: u32) {
        if self.watches(oid) {
            self.engine.recent().record_truncate(oid, pos.0, xid);
        }
    }

    /// Between transactions, at log position `at`: emits every chunk whose watermark the stream
    /// has passed, as long as few enough emitted chunks wait for the checkpoint.
    pub async fn emit_ready(&mut self, emitter: &mut Emitter, at: Lsn) -> Result<(), SessionError> {
        if !self.engine.is_running() {
            return Ok(());
        }
        while let Some(chunk) = self.engine.next_ready(at.0, emitter.durable_snapshot_step())? {
            self.emit_chunk(emitter, chunk, at).await?;
        }
        if let Some(progress) = self.engine.take_changed() {
            emitter.mark_progress(Position::Postgres { lsn: at }, progress)?;
        }
        self.engine.settle(emitter);
        Ok(())
    }

    async fn emit_chunk(&mut self, emitter: &mut Emitter, chunk: ChunkRead, at: Lsn) -> Result<(), SessionError> {
        let idx = chunk.job.table;
        // The rows' own relation: the table's columns may have changed since the run began.
        let (oid, rel, kind, keyed) = {
            let r = &self.runs[idx];
            (r.oid, chunk.rows.rel.clone(), r.kind, r.keyed)
        };
        // The read's snapshot tells exactly which transactions it saw.
        let (lo, visibility) = (chunk.lo, &chunk.rows.visibility);
        let seen = |pos: u64, xid: u32| {
            if visibility.invisible(xid) {
                Seen::AfterRead
            } else if pos >= lo {
                Seen::InRead
            } else {
                Seen::Before
            }
        };
        let Some(mut superseded) = self.engine.superseded(oid, &chunk, seen) else {
            return Ok(());
        };
        let outcome = self.engine.ledger_mut().begin(&chunk.place());
        let n = chunk.rows.rows.len();
        let shape = self.runs[idx].rel.clone();
        let kept: Vec<bool> = (0..n).map(|i| self.kept(&rel, &shape, keyed, &chunk, i, &mut superseded)).collect();
        let first = kept.iter().position(|&k| k);
        let last = kept.iter().rposition(|&k| k);
        let plain = if kind == SnapshotKind::Incremental { SnapshotMarker::Incremental } else { SnapshotMarker::Yes };
        emitter.begin(format_args!(
            "snapshot chunk {} of {} at lsn {}",
            chunk.job.seq,
            self.engine.ledger().name(idx),
            Lsn(chunk.emit_at)
        ))?;
        let mut emitted = 0u64;
        // One processing time for the chunk: reading the clock per row costs more than the row.
        let emitted_at = now_us();
        for i in (0..n).filter(|&i| kept[i]) {
            let cells = chunk.rows.rows.row(i);
            let (is_first, is_last) = (Some(i) == first, Some(i) == last);
            let marker =
                if is_first || is_last { self.engine.ledger().marker(&outcome, is_first, is_last) } else { plain };
            let row = Row { rel: &rel, cells, data: &chunk.rows.rows.data };
            let key = rel.has_key().then_some(Key(Row { rel: &rel, cells, data: &chunk.rows.rows.data }));
            let source = SourceBlock {
                rel: &rel,
                ts_us: chunk.read_at_us,
                snapshot: marker,
                tx_id: None,
                lsn: Lsn(chunk.emit_at),
                commit_lsn: at,
                index: i as u64,
                last_commit_lsn: None,
            };
            let change = Change {
                op: Op::Read,
                key: key.as_ref().map(|k| k as _),
                before: None,
                after: Some(&row),
                source: &source,
                collection: &rel.collection,
                schema: rel.schema.as_ref(),
                ts_us: emitted_at,
            };
            emitter.emit(&rel.topic, &change).await?;
            emitted += 1;
        }
        let progress = self.engine.ledger_mut().finish(outcome, emitted);
        tracing::debug!(table = %self.engine.ledger().name(idx), seq = chunk.job.seq, rows = emitted, step = progress.step, "snapshot chunk emitted");
        emitter.commit_with(Position::Postgres { lsn: at }, Some(progress))?;
        Ok(())
    }

    /// Whether row `i` of `chunk` survives the log's changes: by its identity when the table
    /// is cut by a unique key, else by its whole image, once per change that removed such a
    /// row after the read (the chunk then holds a row the log has since replaced or deleted).
    /// Whole images are compared in `shape`, the run's relation, which is the one the stream
    /// records old rows in even after the table's columns changed.
    fn kept(
        &mut self,
        rel: &Relation,
        shape: &Relation,
        keyed: bool,
        chunk: &ChunkRead,
        i: usize,
        superseded: &mut Superseded,
    ) -> bool {
        if superseded.all {
            return false;
        }
        let row = Row { rel, cells: chunk.rows.rows.row(i), data: &chunk.rows.rows.data };
        if keyed {
            if superseded.keys.is_empty() {
                return true;
            }
            self.key_scratch.clear();
            Identity(row).write_json(&mut self.key_scratch);
            return !superseded.contains(key_hash(&self.key_scratch));
        }
        if superseded.removed.is_empty() {
            return true;
        }
        self.key_scratch.clear();
        Reshaped(row, shape).write_json(&mut self.key_scratch);
        !self.engine.drop_removed(superseded, key_hash(&self.key_scratch))
    }
}

/// Refuses a table that would be snapshotted by physical position (no unique key to cut it by)
/// on a standby. Such chunks tell the log's changes apart by the transactions their snapshot
/// saw, and on a standby `pg_current_snapshot()` lists none as in progress (recovery keeps them
/// elsewhere): a transaction running while a chunk is read would be taken as seen, so a row it
/// then deletes could come back, or a row it inserts arrive twice.
pub fn exact_on_standby(setup: &TableSetup, on_standby: bool) -> Result<(), SourceError> {
    if on_standby && setup.chunk_key.is_empty() {
        return Err(SourceError::Fatal(format!(
            "table {} has no primary key or unique index over non-null columns, and a standby cannot snapshot such a table exactly (PostgreSQL does not tell which transactions a standby's snapshot saw). Give it a primary key, or snapshot it from the primary (source.read_only works there too), or leave it out of the snapshot (snapshot = \"never\")",
            setup.table
        )));
    }
    Ok(())
}

/// The relation `meta` describes, as chunks read and render it.
pub async fn relation_of(
    catalog: &mut Catalog,
    meta: &TableMeta,
    ctx: &SourceContext,
) -> Result<Relation, SourceError> {
    let mut columns = Vec::with_capacity(meta.columns.len());
    for c in &meta.columns {
        let pg = catalog.pg_type(c.type_oid, c.typmod).await?;
        columns.push(ColumnDef { name: c.name.clone(), kind: kind_of(&pg), pg, not_null: c.not_null });
    }
    Relation::new(meta.oid, meta.table.clone(), columns, &meta.key, ctx)
}

/// What the snapshot readers need to know about `table`.
pub async fn table_setup(
    catalog: &mut Catalog,
    table: &TableRef,
    ctx: &SourceContext,
    chunk_rows: u32,
) -> Result<TableSetup, SourceError> {
    let meta = catalog.table_meta_by_name(table).await?;
    let rel = relation_of(catalog, &meta, ctx).await?;
    let chunk_key = if !meta.key.is_empty() {
        rel.identity.clone()
    } else if rel.identity.is_empty() {
        Vec::new()
    } else {
        // Configured key columns: chunk by them only where a unique index proves them unique
        // and none can be null; else a key shared by rows would end a chunk inside its run.
        let names: Vec<&str> = rel.identity.iter().map(|&i| rel.columns[i].name.as_str()).collect();
        let not_null = rel.identity.iter().all(|&i| meta.columns.get(i).is_some_and(|c| c.not_null));
        let unique = catalog.unique_column_sets(meta.oid).await?;
        if not_null && unique.iter().any(|set| set.iter().all(|c| names.contains(&c.as_str()))) {
            rel.identity.clone()
        } else {
            tracing::info!(
                table = %table,
                key_columns = %names.join(", "),
                "snapshot: key_columns are not proven unique (no unique index over non-null columns among them), so the table is read by physical position (ctid); they remain the Kafka message key"
            );
            Vec::new()
        }
    };
    let size = catalog
        .client()
        .query_one(
            "SELECT GREATEST(reltuples, 0)::int8, GREATEST(relpages, 0)::int8, (pg_relation_size(oid) / current_setting('block_size')::int8) FROM pg_class WHERE oid = $1",
            &[&meta.oid],
        )
        .await
        .map_err(|e| sql_err("snapshot: table size", e))?;
    let (tuples, pages, blocks): (i64, i64, i64) = (size.get(0), size.get(1), size.get(2));
    // Without statistics, assume the densest table (tiny rows: about 290 per 8 kB block).
    let per_block = if tuples > 0 && pages > 0 { (tuples / pages).max(1) } else { 290 } as u64;
    Ok(TableSetup {
        table: table.clone(),
        rel: Arc::new(rel),
        chunk_key,
        blocks: blocks.max(0) as u64,
        blocks_per_chunk: (u64::from(chunk_rows) / per_block).max(1),
        estimate: tuples as u64,
    })
}
