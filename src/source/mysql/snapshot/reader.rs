//! MySQL / MariaDB snapshot readers: a planner that cuts each table into primary-key ranges, and
//! workers (each with its own connection) that read them, one short transaction per chunk. A
//! table with no unique key cannot be cut: it is read in one transaction, and its rows go to the
//! stream in pieces of `snapshot_chunk_rows` as they arrive, so memory stays bounded.
//!
//! Each chunk is read in `START TRANSACTION WITH CONSISTENT SNAPSHOT`, and tied to binlog
//! positions:
//! - MariaDB tells the exact binlog position of that very snapshot (`binlog_snapshot_file` /
//!   `binlog_snapshot_position`): every transaction before it is in the rows, none after. The
//!   chunk's window is that one point.
//! - MySQL has no such variable: the binlog position is read before and after opening the
//!   transaction, and the chunk's window is the span between. Transactions in that span may or
//!   may not be in the rows; their keys are dropped from the chunk either way, which is safe
//!   because their binlog events carry the newer state. With GTIDs, the `gtid_executed` read
//!   with the first position also tells which earlier transactions the rows cannot have seen.
//!
//! The stream emits the chunk once it has passed the window's end, dropping every key the binlog
//! changed from the window's start on (`core::recent_keys`). No lock is taken.

use std::collections::HashSet;
use std::num::NonZeroU32;
use std::sync::Arc;

use futures_util::StreamExt;
use mysql_async::prelude::*;
use mysql_async::{Conn, Value};

use crate::config::MysqlSourceConfig;
use crate::core::envelope::now_us;
use crate::core::position::BinlogPosition;
use crate::error::SourceError;
use crate::source::chunks::engine::{Limiter, PieceSender};
use crate::source::chunks::{filter_failure, ChunkReader, Job, Piece};
use crate::source::mysql::gtid_set::MysqlGtidSet;
use crate::source::mysql::table::{table_from_information_schema, Context, Kind, Table};
use crate::source::mysql::values::TextCells;
use crate::source::mysql::xa::Xid;
use crate::source::mysql::{connect, current_position, my_err, quote, ServerInfo, TableName};

/// One table to read.
pub struct TablePlan {
    pub name: TableName,
    pub table: Arc<Table>,
    pub filter: Option<String>,
    /// Indexes of the unique, non-null columns chunks are cut by; empty: read whole.
    pub chunk_key: Vec<usize>,
    /// The columns as the last chunk found them (see [`as_read`]).
    pub latest: std::sync::Mutex<Option<Latest>>,
}

/// A table definition read from the server, and the fingerprint of its columns it was read at.
pub struct Latest {
    fingerprint: String,
    table: Arc<Table>,
    chunk_key: Vec<usize>,
}

impl TablePlan {
    pub fn new(name: TableName, table: Arc<Table>, filter: Option<String>, chunk_key: Vec<usize>) -> Self {
        TablePlan { name, table, filter, chunk_key, latest: std::sync::Mutex::new(None) }
    }

    /// The same table under another definition.
    fn with(&self, table: Arc<Table>, chunk_key: Vec<usize>) -> TablePlan {
        TablePlan::new(self.name.clone(), table, self.filter.clone(), chunk_key)
    }

    fn keyed(&self) -> bool {
        !self.chunk_key.is_empty()
    }

    fn from(&self) -> String {
        format!("{}.{}", quote(&self.name.db), quote(&self.name.name))
    }

    fn order_by(&self) -> String {
        self.chunk_key.iter().map(|&i| quote(&self.table.columns[i].name)).collect::<Vec<_>>().join(", ")
    }

    /// A key value as an SQL literal. Integers go in as numbers (a string would be compared as
    /// a double and lose precision past 2^53); everything else as a string in the column's
    /// collation, which is also the order `ORDER BY` walks.
    fn literal(&self, key_pos: usize, text: &str, no_backslash_escapes: bool) -> Result<String, SourceError> {
        let col = &self.table.columns[self.chunk_key[key_pos]];
        // A masked column's value stays out of the log, as it stays out of every record.
        let masked = self.table.mask(self.chunk_key[key_pos]).is_some();
        let bad = || {
            let value = if masked { "(masked)".to_string() } else { format!("{text:?}") };
            SourceError::Fatal(format!(
                "snapshot of {}: cannot resume at the checkpoint's value {value} of key column {}: it is not a value of the column's type (was the column's type changed while the snapshot ran? Then drop the table from `tables`, restart, and add it back: it is read again from the start)",
                self.name, col.name
            ))
        };
        Ok(match col.kind {
            Kind::Int { unsigned: true, .. } => {
                Value::UInt(text.parse().map_err(|_| bad())?).as_sql(no_backslash_escapes)
            }
            Kind::Int { unsigned: false, .. } => {
                Value::Int(text.parse().map_err(|_| bad())?).as_sql(no_backslash_escapes)
            }
            Kind::Binary { .. } => Value::Bytes(hex_decode(text).ok_or_else(bad)?).as_sql(no_backslash_escapes),
            _ => Value::Bytes(text.as_bytes().to_vec()).as_sql(no_backslash_escapes),
        })
    }

    /// `key > lower` (or `<=` upper) over a composite key, spelled out column by column so the
    /// range optimizer uses the primary key (row-value comparisons are not always range-scanned).
    fn compare(&self, values: &[String], strict: &str, last: &str, nbe: bool) -> Result<String, SourceError> {
        let mut cond = String::new();
        let n = self.chunk_key.len().min(values.len());
        for i in (0..n).rev() {
            let col = quote(&self.table.columns[self.chunk_key[i]].name);
            let lit = self.literal(i, &values[i], nbe)?;
            cond = if i == n - 1 {
                format!("{col} {last} {lit}")
            } else {
                format!("({col} {strict} {lit} OR ({col} = {lit} AND {cond}))")
            };
        }
        Ok(cond)
    }

    /// The WHERE clause of the range `(lower, upper]`.
    fn range(&self, lower: Option<&[String]>, upper: Option<&[String]>, nbe: bool) -> Result<String, SourceError> {
        let mut conds = Vec::new();
        if let Some(l) = lower {
            conds.push(self.compare(l, ">", ">", nbe)?);
        }
        if let Some(u) = upper {
            conds.push(self.compare(u, "<", "<=", nbe)?);
        }
        if let Some(f) = &self.filter {
            conds.push(format!("({f})"));
        }
        Ok(if conds.is_empty() { String::new() } else { format!(" WHERE {}", conds.join(" AND ")) })
    }

    fn columns(&self) -> String {
        self.table.columns.iter().map(|c| quote(&c.name)).collect::<Vec<_>>().join(", ")
    }
}

/// A piece's rows and where the read was consistent (for the rows' `source` block).
pub struct MyRows {
    /// The definition the rows were read with: their columns.
    pub table: Arc<Table>,
    pub rows: Vec<TextCells>,
    pub at: BinlogPosition,
    /// MySQL with GTIDs: the transactions committed before the read's transaction opened, so
    /// in its rows; any other may not be.
    pub committed_before: Option<Arc<MysqlGtidSet>>,
    /// MariaDB: XA transactions prepared around the read's opening (see [`prepared_xa`]); their
    /// `XA COMMIT` may lie before the read's binlog position though the rows lack its changes.
    pub prepared_xa: Option<Arc<HashSet<Xid>>>,
}

pub type ChunkRead = Piece<MyRows>;

/// Settings shared by the planner and the workers; the source's [`ChunkReader`].
pub struct ReadSettings {
    pub my: MysqlSourceConfig,
    /// How tables read again (after a column change) are named and typed.
    pub ctx: Context,
    pub info: ServerInfo,
    pub chunk_rows: u32,
    pub limiter: Option<Arc<Limiter>>,
    pub statement_timeout: Option<std::time::Duration>,
}

impl ChunkReader for ReadSettings {
    type Plan = TablePlan;
    type Conn = Reader;
    type Rows = MyRows;

    fn chunk_rows(&self) -> u32 {
        self.chunk_rows
    }

    fn ends_table(&self, plan: &TablePlan, e: &SourceError) -> Option<String> {
        // ER_NO_SUCH_TABLE: dropped (or renamed) since it was planned.
        if e.server_code() == Some("1146") {
            return Some("table no longer exists".into());
        }
        // What a filter itself can cause: bad syntax (1064), an unknown column or function
        // (1054, 1305, 1630), bad arguments or values (1582, 1583, 1267, 1292, 1241, 1242), a
        // write (1792), or running past the statement timeout (3024 MySQL, 1969 MariaDB; lock
        // waits end earlier, at lock_wait_timeout, as transient errors).
        const FROM_FILTER: [&str; 12] =
            ["1064", "1054", "1305", "1630", "1582", "1583", "1267", "1292", "1241", "1242", "1792", "3024"];
        let from_filter = e.server_code().is_some_and(|c| FROM_FILTER.contains(&c) || c == "1969");
        filter_failure(plan.filter.as_deref(), e, from_filter)
    }

    fn limiter(&self) -> Option<&Limiter> {
        self.limiter.as_deref()
    }

    async fn connect(&self) -> Result<Reader, SourceError> {
        Reader::open(self).await
    }

    async fn boundary(
        &self,
        r: &mut Reader,
        t: &TablePlan,
        lower: Option<&[String]>,
    ) -> Result<Option<Vec<String>>, SourceError> {
        // Without a key a table is one range, read in one transaction.
        if !t.keyed() {
            return Ok(None);
        }
        r.limit_filtered(self, t).await?;
        boundary(r, t, lower, self.chunk_rows).await
    }

    async fn read(
        &self,
        r: &mut Reader,
        t: &TablePlan,
        job: &Job,
        lower: Option<Vec<String>>,
        out: PieceSender<MyRows>,
    ) -> Result<(), SourceError> {
        r.limit_filtered(self, t).await?;
        read_pieces(r, self, t, job, lower, &out).await
    }
}

/// A reader connection and how it quotes.
pub struct Reader {
    conn: Conn,
    no_backslash_escapes: bool,
    /// The session's own lock_wait_timeout, for unfiltered reads.
    lock_wait: u64,
}

impl Reader {
    async fn open(settings: &ReadSettings) -> Result<Reader, SourceError> {
        let mut conn = connect(&settings.my).await?;
        let q = |e| my_err("snapshot: opening a reader", e);
        // Every query of the session is read-only: a signal's `filter` is pasted into them.
        conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").await.map_err(q)?;
        // A read of a table without a key waits, mid-result, for the stream to take its pieces;
        // the server must not give up on writing to it meanwhile.
        conn.query_drop("SET SESSION net_write_timeout = 86400").await.map_err(q)?;
        let lock_wait: Option<u64> = conn.query_first("SELECT @@SESSION.lock_wait_timeout").await.map_err(q)?;
        // Room for the column fingerprint of a wide table (see `as_read`).
        conn.query_drop("SET SESSION group_concat_max_len = 1048576").await.map_err(q)?;
        let mode: Option<String> = conn.query_first("SELECT @@SESSION.sql_mode").await.map_err(q)?;
        let no_backslash_escapes = mode.is_some_and(|m| m.to_ascii_uppercase().contains("NO_BACKSLASH_ESCAPES"));
        Ok(Reader { conn, no_backslash_escapes, lock_wait: lock_wait.unwrap_or(31_536_000) })
    }

    /// Bounds the next queries in time when they carry a signal's filter, and only then: an
    /// unfiltered read of a large table may take as long as it takes. Metadata-lock waits
    /// time out first (half the limit, a transient error: retried), so only the filter's own
    /// work can reach the statement timeout.
    async fn limit_filtered(&mut self, settings: &ReadSettings, t: &TablePlan) -> Result<(), SourceError> {
        let (statement, lock_wait) = match (&t.filter, settings.statement_timeout) {
            (Some(_), Some(limit)) => (limit, (limit.as_secs() / 2).max(1)),
            _ => (std::time::Duration::ZERO, self.lock_wait),
        };
        let limit = if settings.info.mariadb {
            format!("SET SESSION max_statement_time = {}, lock_wait_timeout = {lock_wait}", statement.as_secs_f64())
        } else {
            format!("SET SESSION max_execution_time = {}, lock_wait_timeout = {lock_wait}", statement.as_millis())
        };
        self.conn.query_drop(limit).await.map_err(|e| my_err("snapshot: session settings", e))
    }
}

/// The key `chunk_rows` rows past `lower`, or `None` when fewer are left.
async fn boundary(
    r: &mut Reader,
    t: &TablePlan,
    lower: Option<&[String]>,
    chunk_rows: u32,
) -> Result<Option<Vec<String>>, SourceError> {
    let sql = format!(
        "SELECT {} FROM {}{} ORDER BY {} LIMIT 1 OFFSET {}",
        t.order_by(),
        t.from(),
        t.range(lower, None, r.no_backslash_escapes)?,
        t.order_by(),
        chunk_rows.max(1) - 1
    );
    let row: Option<mysql_async::Row> =
        r.conn.query_first(sql).await.map_err(|e| my_err(&format!("snapshot: planning chunks of {}", t.name), e))?;
    let Some(row) = row else { return Ok(None) };
    let cells = text_cells(row);
    Ok(Some(key_text(t, &cells)?))
}

/// MySQL's "Table definition has changed, please retry transaction".
const ER_TABLE_DEF_CHANGED: u16 = 1412;

async fn read_pieces(
    r: &mut Reader,
    settings: &ReadSettings,
    t: &TablePlan,
    job: &Job,
    lower: Option<Vec<String>>,
    out: &PieceSender<MyRows>,
) -> Result<(), SourceError> {
    let what = format!("snapshot: reading {}", t.name);
    let q = |e| my_err(&what, e);
    let mut attempt = 0;
    let mut prepared = HashSet::new();
    let (lo, at) = loop {
        let (lo, at) = if settings.info.mariadb {
            prepared = prepared_xa(&mut r.conn).await;
            r.conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY").await.map_err(q)?;
            let at = mariadb_snapshot_position(&mut r.conn).await.map_err(q)?;
            prepared.extend(prepared_xa(&mut r.conn).await);
            (at.clone(), at)
        } else {
            let lo = current_position(&mut r.conn, &settings.info).await?;
            r.conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY").await.map_err(q)?;
            let hi = current_position(&mut r.conn, &settings.info).await?;
            (lo, hi)
        };
        // The first touch takes the table's metadata lock, held until COMMIT. A table altered
        // after the read view opened cannot be read in it (MySQL error 1412, "Table definition
        // has changed"): a new transaction, whose read view sees the ALTER, reads the chunk.
        // The touch reads a row (`LIMIT 0` never reaches InnoDB, which is where 1412 comes from).
        match r.conn.query_drop(format!("SELECT 1 FROM {} LIMIT 1", t.from())).await {
            Ok(()) => break (lo, at),
            Err(mysql_async::Error::Server(e)) if e.code == ER_TABLE_DEF_CHANGED && attempt < 5 => {
                attempt += 1;
                tracing::debug!(table = %t.name, "the table was altered as the chunk's transaction opened; reading it in a new one");
                r.conn.query_drop("ROLLBACK").await.map_err(q)?;
            }
            Err(e) => return Err(q(e)),
        }
    };
    let t = &as_read(r, settings, t).await?;
    // The GTID set read with `lo` (MySQL's status row gives both at once): committed, so seen.
    let committed_before = match (&lo.gtid, settings.info.mariadb) {
        (Some(g), false) => MysqlGtidSet::parse(g).ok().filter(|s| !s.is_empty()).map(Arc::new),
        _ => None,
    };
    let prepared_xa = (!prepared.is_empty()).then(|| Arc::new(prepared));
    let read_at_us = now_us();
    let limit = if t.keyed() { format!(" LIMIT {}", u64::from(settings.chunk_rows.max(1)) * 2) } else { String::new() };
    let order = if t.keyed() { format!(" ORDER BY {}", t.order_by()) } else { String::new() };
    let sql = format!(
        "SELECT {} FROM {}{}{order}{limit}",
        t.columns(),
        t.from(),
        t.range(lower.as_deref(), job.upper.as_deref(), r.no_backslash_escapes)?
    );
    let piece = |rows: Vec<TextCells>, complete: bool, done_upto: Option<Vec<String>>| Piece {
        job: Job { lower: lower.clone(), ..job.clone() },
        rows: MyRows {
            table: t.table.clone(),
            rows,
            at: at.clone(),
            committed_before: committed_before.clone(),
            prepared_xa: prepared_xa.clone(),
        },
        done_upto,
        complete,
        lo: lo.as_u64(),
        emit_at: at.as_u64(),
        read_at_us,
    };
    // Only a table without a key is sent in pieces while it is read.
    let piece_rows = if t.keyed() { usize::MAX } else { settings.chunk_rows.max(1) as usize };
    let mut rows = Vec::new();
    {
        let mut result = r.conn.query_iter(sql).await.map_err(q)?;
        let stream = result.stream::<mysql_async::Row>().await.map_err(q)?;
        if let Some(mut stream) = stream {
            while let Some(row) = stream.next().await {
                rows.push(text_cells(row.map_err(q)?));
                if rows.len() >= piece_rows {
                    if out.send(piece(std::mem::take(&mut rows), false, None)).await.is_err() {
                        return Ok(());
                    }
                    if let (Some(limiter), Some(n)) =
                        (settings.limiter.as_deref(), NonZeroU32::new(settings.chunk_rows))
                    {
                        let _ = limiter.until_n_ready(n).await;
                    }
                }
            }
        }
    }
    r.conn.query_drop("COMMIT").await.map_err(q)?;
    let truncated = t.keyed() && rows.len() as u64 >= u64::from(settings.chunk_rows.max(1)) * 2;
    let done_upto = match rows.last() {
        Some(last) if truncated => Some(key_text(t, last)?),
        _ => job.upper.clone(),
    };
    // A closed channel means the snapshot is being stopped: nothing to report.
    let _ = out.send(piece(rows, !truncated, done_upto)).await;
    Ok(())
}

/// The table as the chunk whose transaction is open reads it. The caller's first touch of the
/// table took its metadata lock, held until COMMIT, so no DDL changes it while the chunk reads;
/// the columns' fingerprint is compared with the one the last chunk saw, and on a change (a column
/// added, dropped or retyped while the snapshot runs) the definition is read again. Rows read
/// after an ALTER with the columns from before it would lack the new column, and a snapshot
/// row emitted after the stream's newer events for the same key would take its value away.
/// MySQL 8+ may answer information_schema from the transaction's read view (opened before the
/// lock): an ALTER committed in between is then seen by the next chunk. An added column is
/// harmless there (the rows read are from before it); a dropped or renamed one fails the read,
/// which is retried.
async fn as_read(r: &mut Reader, settings: &ReadSettings, t: &TablePlan) -> Result<TablePlan, SourceError> {
    let what = format!("snapshot: reading the columns of {}", t.name);
    let q = |e| my_err(&what, e);
    let fingerprint: Option<Option<String>> = r
        .conn
        .exec_first(
            "SELECT GROUP_CONCAT(column_name, ' ', column_type, ' ', is_nullable ORDER BY ordinal_position SEPARATOR ',') \
             FROM information_schema.columns WHERE table_schema = ? AND table_name = ?",
            (&t.name.db, &t.name.name),
        )
        .await
        .map_err(q)?;
    let fingerprint = fingerprint.flatten().unwrap_or_default();
    if let Some(l) = t.latest.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        if l.fingerprint == fingerprint {
            return Ok(t.with(l.table.clone(), l.chunk_key.clone()));
        }
    }
    let fresh = table_from_information_schema(&mut r.conn, &t.name, &settings.ctx).await?;
    let (table, chunk_key) = if fresh.columns == t.table.columns {
        (t.table.clone(), t.chunk_key.clone())
    } else {
        // The chunk key's columns by name: a column added before them moves them.
        let key: Option<Vec<usize>> =
            t.chunk_key.iter().map(|&i| fresh.columns.iter().position(|c| c.name == t.table.columns[i].name)).collect();
        let Some(key) = key else {
            return Err(SourceError::Transient(format!(
                "snapshot of {}: a column the chunks are cut by is gone; the table is read again once it has a key",
                t.name
            )));
        };
        tracing::info!(table = %t.name, "the table's columns changed while it is snapshotted: chunks read from now on carry the new columns");
        (Arc::new(fresh), key)
    };
    let latest = Latest { fingerprint, table: table.clone(), chunk_key: chunk_key.clone() };
    *t.latest.lock().unwrap_or_else(|p| p.into_inner()) = Some(latest);
    Ok(t.with(table, chunk_key))
}

/// A row of `XA RECOVER`: formatID, gtrid_length, bqual_length, data (gtrid then bqual).
type RecoveredXid = (i64, usize, usize, Vec<u8>);

/// The XA transactions prepared and not yet committed in the storage engine (`XA RECOVER`).
/// MariaDB writes an `XA COMMIT` to the binlog before InnoDB commits it, outside the ordered
/// commit a consistent snapshot's binlog position comes from: a read opened in between sits past
/// the `XA COMMIT` in the binlog yet does not see its changes. Asked before and after the read
/// opens, this names every such transaction (but one prepared and committed within the few
/// microseconds between the two questions). Without the privilege, or on error: none (debug log).
async fn prepared_xa(conn: &mut Conn) -> HashSet<Xid> {
    let rows: Result<Vec<RecoveredXid>, _> = conn.query("XA RECOVER").await;
    match rows {
        Ok(rows) => rows
            .into_iter()
            .filter_map(|(format, gl, bl, data)| {
                let gtrid = data.get(..gl)?;
                let bqual = data.get(gl..gl + bl)?;
                Some(Xid::new(gtrid, bqual, format))
            })
            .collect(),
        Err(e) => {
            tracing::debug!(
                "XA RECOVER: {e}; XA transactions committing as a snapshot chunk opens are matched by position only"
            );
            HashSet::new()
        }
    }
}

/// The binlog position of the open consistent snapshot (MariaDB), with its GTID position.
async fn mariadb_snapshot_position(conn: &mut Conn) -> Result<BinlogPosition, mysql_async::Error> {
    let status: Vec<(String, String)> = conn.query("SHOW STATUS LIKE 'binlog_snapshot_%'").await?;
    let get = |k: &str| status.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
    let file = get("binlog_snapshot_file").unwrap_or_default();
    let pos: u64 = get("binlog_snapshot_position").and_then(|p| p.parse().ok()).unwrap_or(4);
    let gtid: Option<String> = conn.exec_first("SELECT BINLOG_GTID_POS(?, ?)", (&file, pos)).await?.flatten();
    Ok(BinlogPosition { file, pos, gtid: gtid.filter(|g| !g.is_empty()) })
}

/// A row of the text protocol as raw cells.
pub fn text_cells(row: mysql_async::Row) -> TextCells {
    TextCells(
        row.unwrap_raw()
            .into_iter()
            .map(|v| match v {
                Some(Value::Bytes(b)) => Some(b),
                Some(Value::NULL) | None => None,
                Some(other) => Some(other.as_sql(true).into_bytes()),
            })
            .collect(),
    )
}

/// The key of a row as text for the checkpoint (binary keys in hex).
fn key_text(t: &TablePlan, cells: &TextCells) -> Result<Vec<String>, SourceError> {
    t.chunk_key
        .iter()
        .map(|&i| {
            let bytes = cells.0.get(i).and_then(Option::as_deref).ok_or_else(|| {
                SourceError::Fatal(format!("snapshot of {}: a key column is null; keys must not be null", t.name))
            })?;
            if matches!(t.table.columns[i].kind, Kind::Binary { .. }) {
                return Ok(crate::core::text_forms::hex(bytes));
            }
            String::from_utf8(bytes.to_vec())
                .map_err(|_| SourceError::Fatal(format!("snapshot of {}: a key value is not UTF-8 text", t.name)))
        })
        .collect()
}

fn hex_decode(s: &str) -> Option<Vec<u8>> {
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::mysql::table::Column;

    fn plan(key_kinds: &[Kind]) -> TablePlan {
        let ctx = Context {
            connector: "c".into(),
            topic_prefix: "c".into(),
            flavor: "mariadb",
            keys: crate::source::tables::KeyColumns::new(&Default::default()),
            typed: None,
            columns: Default::default(),
            routes: Default::default(),
        };
        let columns: Vec<Column> =
            key_kinds.iter().enumerate().map(|(i, k)| Column::new(format!("k{i}"), k.clone())).collect();
        let key: Vec<usize> = (0..columns.len()).collect();
        let table = Arc::new(Table::new("d", "t", columns, key.clone(), &ctx));
        TablePlan::new(TableName { db: "d".into(), name: "t".into() }, table, None, key)
    }

    #[test]
    fn composite_ranges_are_spelled_out_per_column() {
        let t = plan(&[Kind::Int { unsigned: false, bits: 32 }, Kind::Text { latin1: false }]);
        let lower = vec!["5".to_string(), "it's".to_string()];
        let upper = vec!["9".to_string(), "z".to_string()];
        assert_eq!(
            t.range(Some(&lower), Some(&upper), false).unwrap(),
            " WHERE (`k0` > 5 OR (`k0` = 5 AND `k1` > 'it\\'s')) AND (`k0` < 9 OR (`k0` = 9 AND `k1` <= 'z'))"
        );
        assert!(t.range(Some(&["x".into(), "y".into()]), None, false).is_err(), "not an integer");
    }

    #[test]
    fn binary_keys_round_trip_through_hex() {
        let t = plan(&[Kind::Binary { pad_to: None }]);
        let cells = TextCells(vec![Some(vec![0, 0xff, b'\''])]);
        let k = key_text(&t, &cells).unwrap();
        assert_eq!(k, vec!["00ff27".to_string()]);
        assert_eq!(hex_decode(&k[0]), Some(vec![0, 0xff, b'\'']));
        // Not UTF-8: the literal is a hex string, compared byte for byte with the binary column.
        // Not UTF-8: a hex literal, compared byte for byte with the binary column.
        assert_eq!(t.range(Some(&k), None, false).unwrap(), " WHERE `k0` > 0x00FF27");
    }
}
