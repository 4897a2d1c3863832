//! Snapshot readers: a planner that cuts each table into ranges, and workers (each with its own
//! connection) that read them. Every chunk is read in a short REPEATABLE READ transaction of its
//! own, between two log positions:
//!
//! 1. `lo`: the WAL insert position (a standby's replay position), taken before the read's
//!    snapshot;
//! 2. the read, and its snapshot's transaction list (`pg_current_snapshot()`);
//! 3. `emit_at`: a transactional logical message written after the read, so the stream sees a
//!    commit past it even when the database is otherwise idle; with `source.read_only`, a log
//!    position read instead ([`read_only_position`]).
//!
//! The stream emits the chunk once it passes `emit_at`, dropping the rows the log changed since
//! `lo` (see `core::recent_keys`). Tables with a unique key are cut by key (keyset pagination
//! over the key's index); tables without one by block ranges of `ctid`. `key_columns` that no
//! unique index proves unique are only a message key: such tables are cut by `ctid` too, since
//! resuming at `key > last` would skip the rows that share the last key.

use std::sync::Arc;

use futures_util::StreamExt;

use super::copy::RowBuf;
use crate::core::envelope::now_us;
use crate::core::position::Lsn;
use crate::error::{ServerFailure, SourceError};
use crate::source::chunks::engine::{Limiter, PieceSender};
use crate::source::chunks::{filter_failure, ChunkReader, Job, Piece};
use crate::source::postgres::catalog::{quote_ident, quote_literal, sql_err, Catalog, TableRef};
use crate::source::postgres::pgoutput::cell_text;
use crate::source::postgres::relation::{Relation, SourceContext};
use crate::source::postgres::tls::PgUrl;

/// One table to read.
pub struct TablePlan {
    pub table: TableRef,
    pub rel: Arc<Relation>,
    pub filter: Option<String>,
    /// Indexes of the unique, non-null columns chunks are cut by; empty: by `ctid` blocks.
    pub chunk_key: Vec<usize>,
    /// Without a chunk key: the table's size in blocks when planned, and blocks per chunk.
    pub blocks: u64,
    pub blocks_per_chunk: u64,
    /// Without a key: rows written by transactions this view cannot see were streamed; skip them.
    pub streamed_after: Option<Visibility>,
    /// The columns as the last chunk found them (see [`as_read`]).
    pub latest: std::sync::Mutex<Option<Latest>>,
}

/// A relation read from the catalog, and the fingerprint of its columns it was read at.
pub struct Latest {
    fingerprint: String,
    rel: Arc<Relation>,
    chunk_key: Vec<usize>,
}

impl TablePlan {
    /// The same table under another relation.
    fn with(&self, rel: Arc<Relation>, chunk_key: Vec<usize>) -> TablePlan {
        TablePlan {
            table: self.table.clone(),
            rel,
            filter: self.filter.clone(),
            chunk_key,
            blocks: self.blocks,
            blocks_per_chunk: self.blocks_per_chunk,
            streamed_after: self.streamed_after.clone(),
            latest: std::sync::Mutex::new(None),
        }
    }
}

impl TablePlan {
    fn keyed(&self) -> bool {
        !self.chunk_key.is_empty()
    }

    fn key_list(&self) -> String {
        let names: Vec<String> = self.chunk_key.iter().map(|&i| quote_ident(&self.rel.columns[i].name)).collect();
        if names.len() == 1 {
            names[0].clone()
        } else {
            format!("({})", names.join(", "))
        }
    }

    fn key_values(&self, values: &[String]) -> String {
        let lits: Vec<String> = values.iter().map(|v| quote_literal(v)).collect();
        if lits.len() == 1 {
            lits[0].clone()
        } else {
            format!("({})", lits.join(", "))
        }
    }

    fn order_by(&self) -> String {
        self.chunk_key.iter().map(|&i| quote_ident(&self.rel.columns[i].name)).collect::<Vec<_>>().join(", ")
    }

    /// The WHERE clause of the range `(lower, upper]` (by key) or `[lower, upper)` (by block).
    fn range(&self, lower: Option<&[String]>, upper: Option<&[String]>) -> String {
        let mut conds = Vec::new();
        if self.keyed() {
            if let Some(l) = lower {
                conds.push(format!("{} > {}", self.key_list(), self.key_values(l)));
            }
            if let Some(u) = upper {
                conds.push(format!("{} <= {}", self.key_list(), self.key_values(u)));
            }
        } else {
            let block = |v: Option<&[String]>| v.and_then(|v| v.first()).and_then(|b| b.parse::<u64>().ok());
            if let Some(b) = block(lower) {
                conds.push(format!("ctid >= '({b},0)'::tid"));
            }
            if let Some(b) = block(upper) {
                conds.push(format!("ctid < '({b},0)'::tid"));
            }
        }
        if let Some(f) = &self.filter {
            conds.push(format!("({f})"));
        }
        if conds.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", conds.join(" AND "))
        }
    }
}

/// What a chunk's read could see: `pg_current_snapshot()` reduced to 32-bit transaction ids
/// (as pgoutput sends them).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Visibility {
    xmin: u32,
    xmax: u32,
    xip: Vec<u32>,
}

impl Visibility {
    /// Parses `xmin:xmax:xip,...` as `pg_current_snapshot()::text` prints it.
    pub fn parse(s: &str) -> Option<Self> {
        let mut parts = s.trim().splitn(3, ':');
        let num = |p: &str| p.parse::<u64>().ok().map(|x| x as u32);
        let xmin = num(parts.next()?)?;
        let xmax = num(parts.next()?)?;
        let xip = match parts.next() {
            Some("") | None => Vec::new(),
            Some(list) => list.split(',').map(num).collect::<Option<Vec<_>>>()?,
        };
        Some(Visibility { xmin, xmax, xip })
    }

    /// Whether the transaction `xid` had not committed as far as the read could see.
    pub fn invisible(&self, xid: u32) -> bool {
        // Transaction ids wrap around: compare by signed distance, as PostgreSQL does.
        let precedes = |a: u32, b: u32| (a.wrapping_sub(b) as i32) < 0;
        if precedes(xid, self.xmin) {
            return false;
        }
        !precedes(xid, self.xmax) || self.xip.contains(&xid)
    }

    /// Whether a row whose `xmin` is `xid`, read under the snapshot `read`, was written after
    /// this view (so the log has it): its transaction is one this view could not see but the
    /// read could. Ids below 3 (frozen, bootstrap) are permanent. A frozen row keeps its
    /// original 32-bit `xmin`, which after 2^31 transactions compares as "in the future"; it
    /// does so for the read as well, so it is not taken for a new row.
    pub fn wrote_after(&self, xid: u32, read: &Visibility) -> bool {
        xid >= 3 && self.invisible(xid) && !read.invisible(xid)
    }
}

/// A piece's rows and what its read could see.
pub struct PgRows {
    /// The relation the rows were read as: their columns.
    pub rel: Arc<Relation>,
    pub rows: RowBuf,
    pub visibility: Visibility,
}

pub type ChunkRead = Piece<PgRows>;

/// Settings shared by the planner and the workers; the source's [`ChunkReader`].
pub struct ReadSettings {
    pub url: PgUrl,
    pub application: String,
    pub timeout: std::time::Duration,
    pub chunk_rows: u32,
    pub limiter: Option<Arc<Limiter>>,
    pub statement_timeout: Option<std::time::Duration>,
    /// Written into the watermark message so other readers of the WAL can tell whose it is.
    pub connector: String,
    /// How relations read again (after a column change) are named and typed.
    pub ctx: SourceContext,
    /// `source.read_only`: chunks are tied to the log by positions read, never a message
    /// written (see [`read_only_position`]).
    pub read_only: bool,
    /// The streamed publications, whose columns chunks read (see `Catalog::set_publications`).
    pub publications: Vec<String>,
    /// The server can publish generated columns (18+; see `Catalog::set_publications`).
    pub generated_columns: bool,
}

impl ChunkReader for ReadSettings {
    type Plan = TablePlan;
    type Conn = Catalog;
    type Rows = PgRows;

    fn chunk_rows(&self) -> u32 {
        self.chunk_rows
    }

    fn ends_table(&self, plan: &TablePlan, e: &SourceError) -> Option<String> {
        // undefined_table: dropped (or renamed) since it was planned.
        if e.server_code() == Some("42P01") {
            return Some("table no longer exists".into());
        }
        // What a filter itself can cause: bad syntax, an unknown column, function or operator,
        // a type mismatch, bad data, a write, or running past the statement timeout (lock
        // waits end earlier, at the lock timeout, as transient errors).
        let from_filter = e.server_code().is_some_and(|c| {
            ["42601", "42703", "42883", "42804", "42725", "25006", "57014"].contains(&c) || c.starts_with("22")
        });
        filter_failure(plan.filter.as_deref(), e, from_filter)
    }

    fn limiter(&self) -> Option<&Limiter> {
        self.limiter.as_deref()
    }

    async fn connect(&self) -> Result<Catalog, SourceError> {
        let mut catalog = Catalog::connect(&self.url, &self.application, self.timeout).await?;
        catalog.set_publications(&self.publications, self.generated_columns);
        // The watermark's commit must reach the WAL at once, or the stream waits for the WAL
        // writer to flush it. Every query of the session is read-only (the watermark, a logical
        // message, is allowed in a read-only transaction): a signal's `filter` is pasted into
        // these queries.
        catalog
            .client()
            .batch_execute("SET synchronous_commit = on; SET default_transaction_read_only = on")
            .await
            .map_err(|e| sql_err("snapshot: session settings", e))?;
        Ok(catalog)
    }

    async fn boundary(
        &self,
        catalog: &mut Catalog,
        t: &TablePlan,
        lower: Option<&[String]>,
    ) -> Result<Option<Vec<String>>, SourceError> {
        if t.keyed() {
            limit_filtered(catalog, t, self.statement_timeout).await?;
            return boundary(catalog, t, lower, self.chunk_rows).await;
        }
        let from = lower.and_then(|l| l.first()).and_then(|b| b.parse::<u64>().ok()).unwrap_or(0);
        let to = from + t.blocks_per_chunk.max(1);
        Ok((to < t.blocks).then(|| vec![to.to_string()]))
    }

    fn first_lower(&self, t: &TablePlan, start: Option<Vec<String>>) -> Option<Vec<String>> {
        // Block ranges are `[lower, upper)`: the first one starts at block 0.
        if t.keyed() {
            start
        } else {
            Some(start.unwrap_or_else(|| vec!["0".into()]))
        }
    }

    async fn read(
        &self,
        catalog: &mut Catalog,
        t: &TablePlan,
        job: &Job,
        lower: Option<Vec<String>>,
        out: PieceSender<PgRows>,
    ) -> Result<(), SourceError> {
        limit_filtered(catalog, t, self.statement_timeout).await?;
        let piece = read_piece(catalog, self, t, job, lower).await?;
        // A closed channel means the snapshot is being stopped: nothing to report.
        let _ = out.send(piece).await;
        Ok(())
    }
}

/// Bounds the next queries in time when they carry a signal's filter, and only then: an
/// unfiltered read of a large table may take as long as it takes. Lock waits time out first
/// (half the limit, a transient error: retried), so only the filter's own work can reach the
/// statement timeout.
async fn limit_filtered(
    catalog: &Catalog,
    t: &TablePlan,
    timeout: Option<std::time::Duration>,
) -> Result<(), SourceError> {
    let (statement, lock) = match (&t.filter, timeout) {
        (Some(_), Some(limit)) => (limit.as_millis(), (limit / 2).as_millis().max(1)),
        _ => (0, 0),
    };
    catalog
        .client()
        .batch_execute(&format!("SET statement_timeout = {statement}; SET lock_timeout = {lock}"))
        .await
        .map_err(|e| sql_err("snapshot: session settings", e))
}

/// [`sql_err`], saying what to do when the session's limits stopped a query: a snapshot query
/// ran too long (transient: the chunk is retried), or a signal's filter tried to write.
fn read_err(context: &str, e: tokio_postgres::Error) -> SourceError {
    let fix = match e.code().map(|c| c.code()) {
        Some("57014") => "the query ran past its statement timeout: raise source.snapshot_statement_timeout_secs (0: no limit), or narrow the signal's filter",
        Some("25006") => "snapshot reads are read-only: a signal's filter may only read",
        _ => return sql_err(context, e),
    };
    let Some(db) = e.as_db_error() else { return sql_err(context, e) };
    SourceError::from(ServerFailure {
        context: context.to_string(),
        code_label: "SQLSTATE",
        code: db.code().code().to_string(),
        message: db.message().to_string(),
        fix: Some(fix.to_string()),
        transient: db.code().code() == "57014",
    })
}

/// The key `chunk_rows` rows past `lower`, or `None` when fewer are left.
async fn boundary(
    catalog: &Catalog,
    t: &TablePlan,
    lower: Option<&[String]>,
    chunk_rows: u32,
) -> Result<Option<Vec<String>>, SourceError> {
    // Aliased: ORDER BY a bare name would take the text output column over the table's, sort
    // the keys as text (not in the index's order) and scan the whole table for every chunk.
    let cols: Vec<String> = t
        .chunk_key
        .iter()
        .enumerate()
        .map(|(n, &i)| format!("{}::text AS cdcd_key{n}", quote_ident(&t.rel.columns[i].name)))
        .collect();
    let sql = format!(
        "SELECT {} FROM {}{} ORDER BY {} OFFSET {} LIMIT 1",
        cols.join(", "),
        t.table.quoted(),
        t.range(lower, None),
        t.order_by(),
        chunk_rows.max(1) - 1
    );
    let rows = catalog
        .client()
        .query(sql.as_str(), &[])
        .await
        .map_err(|e| read_err(&format!("snapshot: planning chunks of {}", t.table), e))?;
    let Some(row) = rows.first() else { return Ok(None) };
    let mut key = Vec::with_capacity(cols.len());
    for i in 0..cols.len() {
        let v: Option<String> = row.get(i);
        key.push(v.ok_or_else(|| SourceError::Fatal(format!("snapshot of {}: a key column is null", t.table)))?);
    }
    Ok(Some(key))
}

async fn read_piece(
    catalog: &mut Catalog,
    settings: &ReadSettings,
    t: &TablePlan,
    job: &Job,
    lower: Option<Vec<String>>,
) -> Result<ChunkRead, SourceError> {
    let what = format!("snapshot: reading {}", t.table);
    let first_text = |msgs: Vec<tokio_postgres::SimpleQueryMessage>| {
        msgs.iter().find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => r.get(0).map(str::to_string),
            _ => None,
        })
    };
    let bad = |what: &str| SourceError::Transient(format!("snapshot: the server returned no {what}"));
    // Two messages: several statements in one would run in one implicit transaction.
    let lo = catalog
        .client()
        .simple_query(&format!("SELECT ({LOG_POSITION})::text"))
        .await
        .map_err(|e| read_err(&what, e))?;
    let lo: Lsn = first_text(lo).and_then(|s| s.parse().ok()).ok_or_else(|| bad("WAL position"))?;
    // The table is locked before the snapshot is taken: a table-rewriting ALTER cannot then
    // commit between the two (its rewrite would look empty to the older snapshot), and the
    // catalog the snapshot shows is the one the read runs under.
    let opened = catalog
        .client()
        .simple_query(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; LOCK TABLE {} IN ACCESS SHARE MODE; SELECT pg_current_snapshot()::text, ({LOG_POSITION})::text",
            t.table.quoted()
        ))
        .await
        .map_err(|e| read_err(&what, e))?;
    // Where the log was as the snapshot was taken (read in the statement that took it): the
    // read-only watermark starts from there (see [`read_only_position`]).
    let (visibility, at_snapshot) = opened
        .iter()
        .find_map(|m| match m {
            tokio_postgres::SimpleQueryMessage::Row(r) => {
                Some((r.get(0).and_then(Visibility::parse), r.get(1).and_then(|l| l.parse::<Lsn>().ok())))
            }
            _ => None,
        })
        .unwrap_or((None, None));
    let visibility = visibility.ok_or_else(|| bad("snapshot"))?;
    let at_snapshot = at_snapshot.ok_or_else(|| bad("WAL position"))?;
    let t = &as_read(catalog, settings, t).await?;
    let client = catalog.client();
    let read_at_us = now_us();
    let limit = u64::from(settings.chunk_rows.max(1)) * 2;
    let cols = t.rel.columns.iter().map(|c| quote_ident(&c.name)).collect::<Vec<_>>().join(", ");
    let sql = if t.keyed() {
        format!(
            "COPY (SELECT {cols} FROM {}{} ORDER BY {} LIMIT {limit}) TO STDOUT",
            t.table.quoted(),
            t.range(lower.as_deref(), job.upper.as_deref()),
            t.order_by()
        )
    } else {
        // xmin last: which transaction wrote the row (the relation's columns ignore it).
        format!(
            "COPY (SELECT {cols}, xmin FROM {}{}) TO STDOUT",
            t.table.quoted(),
            t.range(lower.as_deref(), job.upper.as_deref())
        )
    };
    let stream = client.copy_out(sql.as_str()).await.map_err(|e| read_err(&what, e))?;
    futures_util::pin_mut!(stream);
    let mut rows = RowBuf::default();
    let mut pending: Vec<u8> = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| read_err(&what, e))?;
        pending.extend_from_slice(&chunk);
        let mut consumed = 0;
        while let Some(nl) = pending[consumed..].iter().position(|&b| b == b'\n') {
            rows.push_line(&pending[consumed..consumed + nl]);
            if let Some(after) = &t.streamed_after {
                if written_by(&rows).is_some_and(|xmin| after.wrote_after(xmin, &visibility)) {
                    rows.pop();
                }
            }
            consumed += nl + 1;
        }
        pending.drain(..consumed);
    }
    client.batch_execute("COMMIT").await.map_err(|e| read_err(&what, e))?;
    let truncated = t.keyed() && rows.len() as u64 >= limit;
    let done_upto = if truncated { Some(last_key(t, &rows)?) } else { job.upper.clone() };
    let emit_at = if settings.read_only {
        read_only_position(catalog, at_snapshot).await?
    } else {
        let payload = format!("{} {} {}", settings.connector, t.table, job.seq);
        let emitted = client
            .query_one("SELECT pg_logical_emit_message(true, 'cdcd_snapshot', $1)::text", &[&payload])
            .await
            .map_err(|e| read_err("snapshot: writing the chunk's watermark", e))?;
        emitted.get::<_, String>(0).parse().map_err(|_| bad("watermark position"))?
    };
    Ok(Piece {
        job: Job { lower, ..job.clone() },
        rows: PgRows { rel: t.rel.clone(), rows, visibility },
        done_upto,
        complete: !truncated,
        lo: lo.0,
        emit_at: emit_at.0,
        read_at_us,
    })
}

/// Where the log is: on a primary the WAL insert position, on a standby the end of the last
/// record replayed (a standby's snapshot shows exactly the transactions replayed).
const LOG_POSITION: &str =
    "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_insert_lsn() END";

/// WAL page and segment headers (`SizeOfXLogShortPHD`, `SizeOfXLogLongPHD`).
const PAGE: u64 = 8192;
const SHORT_HEADER: u64 = 24;
const LONG_HEADER: u64 = 40;

/// The least a read-only chunk waits for the WAL it must be emitted after to be flushed.
const FLUSH_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

/// The read-only watermark of a chunk: a log position at or past the commit record of every
/// transaction its snapshot saw, so the stream emits the chunk after all of them (as a written
/// watermark would be), and invisible ones are told apart by the snapshot's transaction list.
///
/// On a standby it is the replay position, read after the read: a transaction becomes visible
/// there when its commit is replayed. On a primary it is `at_snapshot`, the insert position read
/// in the statement that took the snapshot (so WAL the read itself writes, hint bits on a
/// checksummed cluster, does not count), pulled back out of a page header (no record ends in
/// one, and the stream only reports positions where records end). The stream reaches flushed WAL
/// only, and a quiet primary leaves a partial page unflushed unless a commit is in it, so the
/// chunk waits for the flush, for as long as the WAL writer may take to flush asynchronous
/// commits (3 x `wal_writer_delay`, at least [`FLUSH_WAIT`]); then it takes the flush position,
/// which by then covers every visible commit (synchronous ones were flushed before they became
/// visible). A flush position inside a record is only passed once more WAL is flushed (the
/// server logs running transactions every 15 s on a busy primary).
async fn read_only_position(catalog: &Catalog, at_snapshot: Lsn) -> Result<Lsn, SourceError> {
    let what = "snapshot: reading the chunk's log position";
    let bad = || SourceError::Transient(format!("{what}: the server returned none"));
    let row = catalog
        .client()
        .query_one(
            &format!(
                "SELECT pg_is_in_recovery(), ({LOG_POSITION})::text, \
                 (SELECT setting::int8 FROM pg_settings WHERE name = 'wal_segment_size'), \
                 (SELECT setting::int8 FROM pg_settings WHERE name = 'wal_writer_delay')"
            ),
            &[],
        )
        .await
        .map_err(|e| read_err(what, e))?;
    let (in_recovery, now, segment, writer_delay_ms): (bool, Option<String>, Option<i64>, Option<i64>) =
        (row.get(0), row.get(1), row.get(2), row.get(3));
    let now: Lsn = now.and_then(|t| t.parse().ok()).ok_or_else(bad)?;
    if in_recovery {
        return Ok(now);
    }
    let at = record_end(at_snapshot, segment.map_or(16 << 20, |s| s.max(1) as u64));
    let wait = FLUSH_WAIT.max(std::time::Duration::from_millis(writer_delay_ms.unwrap_or(200).max(0) as u64 * 3 + 500));
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let row = catalog
            .client()
            .query_one("SELECT pg_current_wal_flush_lsn()::text", &[])
            .await
            .map_err(|e| read_err(what, e))?;
        let flushed: Lsn = row.get::<_, Option<String>>(0).and_then(|t| t.parse().ok()).ok_or_else(bad)?;
        if flushed >= at {
            return Ok(at);
        }
        if tokio::time::Instant::now() >= deadline {
            return Ok(flushed);
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
}

/// An insert position as the end of the record before it: out of the header of the page (or,
/// at a segment's start, of the segment) it points past.
fn record_end(at: Lsn, segment: u64) -> Lsn {
    let header = if at.0 % segment == LONG_HEADER { LONG_HEADER } else { SHORT_HEADER };
    if at.0 % PAGE == header {
        Lsn(at.0 - header)
    } else {
        at
    }
}

/// The table as the chunk whose transaction is open reads it. The table was locked before the
/// transaction's snapshot was taken, so the catalog, read in that transaction, shows the
/// columns the read runs under; when their fingerprint differs
/// from the last chunk's (a column added, dropped or retyped while the snapshot runs) the
/// relation is read again. Rows read with the columns from before an ALTER would lack the new
/// column, and a snapshot row emitted after the log's newer events for the same key would
/// take its value away.
async fn as_read(catalog: &mut Catalog, settings: &ReadSettings, t: &TablePlan) -> Result<TablePlan, SourceError> {
    let what = format!("snapshot: reading the columns of {}", t.table);
    // Every stored column, generated ones included: a change among them reads the relation
    // again, as the publications publish it.
    let row = catalog
        .client()
        .query_one(
            "SELECT coalesce(string_agg(attname || ' ' || format_type(atttypid, atttypmod) || ' ' || attnotnull::text, ',' ORDER BY attnum), '') \
             FROM pg_attribute WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped AND attgenerated IN ('', 's')",
            &[&t.rel.id],
        )
        .await
        .map_err(|e| read_err(&what, e))?;
    let fingerprint: String = row.get(0);
    if fingerprint.is_empty() {
        // Dropped: the read itself fails as it always did, and ends the table's snapshot.
        return Ok(t.with(t.rel.clone(), t.chunk_key.clone()));
    }
    if let Some(l) = t.latest.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        if l.fingerprint == fingerprint {
            return Ok(t.with(l.rel.clone(), l.chunk_key.clone()));
        }
    }
    let meta = catalog.table_meta(t.rel.id).await?;
    let fresh = super::relation_of(catalog, &meta, &settings.ctx).await?;
    // Column has no PartialEq (its converters); its full description is what must not change.
    let (rel, chunk_key) = if format!("{:?}", fresh.columns) == format!("{:?}", t.rel.columns) {
        (t.rel.clone(), t.chunk_key.clone())
    } else {
        // The chunk key's columns by name.
        let key: Option<Vec<usize>> =
            t.chunk_key.iter().map(|&i| fresh.columns.iter().position(|c| c.name == t.rel.columns[i].name)).collect();
        let Some(key) = key else {
            return Err(SourceError::Transient(format!(
                "snapshot of {}: a column the chunks are cut by is gone; the table is read again once it has a key",
                t.table
            )));
        };
        tracing::info!(table = %t.table, "the table's columns changed while it is snapshotted: chunks read from now on carry the new columns");
        (Arc::new(fresh), key)
    };
    let latest = Latest { fingerprint, rel: rel.clone(), chunk_key: chunk_key.clone() };
    *t.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(latest);
    Ok(t.with(rel, chunk_key))
}

/// The transaction that wrote the last row read (its trailing `xmin` cell).
fn written_by(rows: &RowBuf) -> Option<u32> {
    let cells = rows.row(rows.len().checked_sub(1)?);
    let text = cell_text(&rows.data, *cells.last()?)?;
    std::str::from_utf8(text).ok()?.parse().ok()
}

/// The key of the last row read, as text.
fn last_key(t: &TablePlan, rows: &RowBuf) -> Result<Vec<String>, SourceError> {
    let cells = rows.row(rows.len() - 1);
    t.chunk_key
        .iter()
        .map(|&i| {
            let text = cells.get(i).and_then(|&c| cell_text(&rows.data, c));
            text.and_then(|b| std::str::from_utf8(b).ok()).map(str::to_string).ok_or_else(|| {
                SourceError::Fatal(format!(
                    "snapshot of {}: a key value is null or not UTF-8; snapshots need a UTF8 database and non-null keys",
                    t.table
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn visibility_follows_postgres_snapshot_rules_across_wraparound() {
        let v = Visibility::parse("100:105:100,103").unwrap();
        assert!(!v.invisible(99), "before xmin: finished");
        assert!(v.invisible(100) && v.invisible(103), "in progress");
        assert!(!v.invisible(101) && !v.invisible(104), "finished between xmin and xmax");
        assert!(v.invisible(105) && v.invisible(200), "at or after xmax: not yet begun");
        // xid8 values past 2^32 reduce to their 32-bit ids, as pgoutput sends them.
        let w = Visibility::parse(&format!("{}:{}:", (1u64 << 32) + 4_294_967_290, (1u64 << 32) + 4_294_967_295 + 3))
            .unwrap();
        assert!(!w.invisible(4_294_967_291));
        assert!(w.invisible(2), "after the wrap, still after xmax");
        assert!(Visibility::parse("1:2").unwrap().xip.is_empty());

        // Streaming began at `began`; the read runs later, at `read`.
        let began = Visibility::parse("1000:1005:1002").unwrap();
        let read = Visibility::parse("1100:1105:").unwrap();
        assert!(began.wrote_after(1002, &read) && began.wrote_after(1050, &read), "written after streaming began");
        assert!(!began.wrote_after(999, &read), "written before");
        assert!(!began.wrote_after(2, &read), "frozen");
        // A frozen row's original xmin, 2^31 and more transactions back, looks like the future
        // to both views: an old row, kept.
        let ancient = 1000u32.wrapping_sub(3_000_000_000);
        assert!(began.invisible(ancient) && !began.wrote_after(ancient, &read));
        assert_eq!(Visibility::parse("x:1:"), None);
    }
}
