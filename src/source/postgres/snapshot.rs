//! The consistent initial snapshot: every configured table is read with `COPY ... TO STDOUT`
//! inside a REPEATABLE READ transaction that imports the snapshot exported when the slot was
//! created. Streaming then starts at the slot's consistent point, so each change is either in
//! the snapshot or in the stream, never both and never neither.

use std::time::{Duration, Instant};

use futures_util::StreamExt;

use super::catalog::{quote_ident, quote_literal, sql_err, Catalog, TableRef};
use super::pgoutput::Cell;
use super::relation::{Key, Relation, Row, SourceBlock, SourceContext};
use crate::core::envelope::{now_us, Change, Op};
use crate::core::position::{Lsn, Position};
use crate::emit::Emitter;
use crate::error::SessionError;

pub async fn run(
    catalog: &mut Catalog,
    snapshot_name: &str,
    consistent_point: Lsn,
    tables: &[TableRef],
    ctx: &SourceContext,
    emitter: &mut Emitter,
) -> Result<(), SessionError> {
    let started = Instant::now();
    emitter.set_state(crate::core::status::State::Snapshotting);
    let ts_us = now_us();
    catalog
        .client()
        .batch_execute(&format!(
            "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY; SET TRANSACTION SNAPSHOT {}",
            quote_literal(snapshot_name)
        ))
        .await
        .map_err(|e| sql_err("snapshot: importing the exported snapshot", e))?;
    let xmin: Option<i64> = catalog
        .client()
        .query_one("SELECT txid_snapshot_xmin(txid_current_snapshot())", &[])
        .await
        .map_err(|e| sql_err("snapshot: reading snapshot xmin", e))?
        .get(0);
    let names: Vec<String> = tables.iter().map(TableRef::quoted).collect();
    let estimate: i64 = catalog
        .client()
        .query_one(
            "SELECT COALESCE(sum(GREATEST(reltuples, 0)), 0)::int8 FROM pg_class WHERE oid = ANY($1::text[]::regclass[])",
            &[&names],
        )
        .await
        .map_err(|e| sql_err("snapshot: estimating rows", e))?
        .get(0);
    emitter.set_snapshot_estimate(estimate.max(0) as u64);
    tracing::info!(tables = tables.len(), estimated_rows = estimate, "snapshot started");
    emitter.begin(format_args!("snapshot at lsn {consistent_point}"))?;
    let mut index = 0u64;
    let mut last_report = Instant::now();
    for table in tables {
        let meta = catalog.table_meta_by_name(table).await?;
        let mut columns = Vec::with_capacity(meta.columns.len());
        for (name, oid) in &meta.columns {
            columns.push((name.clone(), catalog.kind_for(*oid).await?));
        }
        let rel = Relation::new(meta.oid, table.clone(), columns, &meta.key, ctx)?;
        let col_list = rel.columns.iter().map(|c| quote_ident(&c.name)).collect::<Vec<_>>().join(", ");
        let sql = format!("COPY (SELECT {col_list} FROM {}) TO STDOUT", table.quoted());
        let stream = catalog
            .client()
            .copy_out(sql.as_str())
            .await
            .map_err(|e| sql_err(&format!("snapshot: reading {table}"), e))?;
        futures_util::pin_mut!(stream);
        let mut pending: Vec<u8> = Vec::new();
        let mut scratch = Vec::new();
        let mut cells = Vec::new();
        let table_start = index;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(|e| sql_err(&format!("snapshot: reading {table}"), e))?;
            pending.extend_from_slice(&chunk);
            let mut consumed = 0;
            while let Some(nl) = pending[consumed..].iter().position(|&b| b == b'\n') {
                let line = &pending[consumed..consumed + nl];
                parse_copy_line(line, &mut scratch, &mut cells);
                emit_read(emitter, &rel, &cells, &scratch, ts_us, xmin, consistent_point, index).await?;
                index += 1;
                consumed += nl + 1;
            }
            pending.drain(..consumed);
            if last_report.elapsed() > Duration::from_secs(5) {
                last_report = Instant::now();
                let secs = started.elapsed().as_secs_f64().max(0.001);
                tracing::info!(table = %table, rows = index, estimated_rows = estimate, rows_per_sec = (index as f64 / secs) as u64, "snapshot in progress");
            }
        }
        tracing::info!(table = %table, rows = index - table_start, "snapshot of table done");
    }
    catalog.client().batch_execute("COMMIT").await.map_err(|e| sql_err("snapshot: commit", e))?;
    emitter.commit(Position::Postgres { lsn: consistent_point })?;
    tracing::info!(rows = index, tables = tables.len(), secs = started.elapsed().as_secs(), at = %consistent_point, "snapshot read; streaming from its consistent point");
    Ok(())
}

#[allow(clippy::too_many_arguments)]
async fn emit_read(
    emitter: &mut Emitter,
    rel: &Relation,
    cells: &[Cell],
    data: &[u8],
    ts_us: i64,
    xmin: Option<i64>,
    consistent_point: Lsn,
    index: u64,
) -> Result<(), SessionError> {
    let row = Row { rel, cells, data };
    let key = rel.has_key().then_some(Key(Row { rel, cells, data }));
    let source = SourceBlock {
        rel,
        ts_us,
        snapshot: true,
        tx_id: xmin.map(|x| x as u64),
        lsn: consistent_point,
        commit_lsn: consistent_point,
        index,
    };
    let change = Change {
        op: Op::Read,
        key: key.as_ref().map(|k| k as _),
        before: None,
        after: Some(&row),
        source: &source,
        ts_us: now_us(),
    };
    emitter.emit(&rel.topic, &change).await
}

/// Splits one line of COPY text format into cells over `scratch` (unescaped values).
pub fn parse_copy_line(line: &[u8], scratch: &mut Vec<u8>, cells: &mut Vec<Cell>) {
    scratch.clear();
    cells.clear();
    for field in line.split(|&b| b == b'\t') {
        if field == b"\\N" {
            cells.push(Cell::Null);
            continue;
        }
        let start = scratch.len();
        let mut i = 0;
        while i < field.len() {
            let b = field[i];
            if b != b'\\' || i + 1 >= field.len() {
                scratch.push(b);
                i += 1;
                continue;
            }
            let e = field[i + 1];
            i += 2;
            match e {
                b'b' => scratch.push(8),
                b'f' => scratch.push(12),
                b'n' => scratch.push(b'\n'),
                b'r' => scratch.push(b'\r'),
                b't' => scratch.push(b'\t'),
                b'v' => scratch.push(11),
                b'0'..=b'7' => {
                    let mut v = (e - b'0') as u32;
                    let mut n = 1;
                    while n < 3 && i < field.len() && (b'0'..=b'7').contains(&field[i]) {
                        v = v * 8 + (field[i] - b'0') as u32;
                        i += 1;
                        n += 1;
                    }
                    scratch.push(v as u8);
                }
                b'x' => {
                    let mut v = 0u32;
                    let mut n = 0;
                    while n < 2 && i < field.len() && field[i].is_ascii_hexdigit() {
                        v = v * 16 + (field[i] as char).to_digit(16).unwrap_or(0);
                        i += 1;
                        n += 1;
                    }
                    scratch.push(v as u8);
                }
                other => scratch.push(other),
            }
        }
        cells.push(Cell::Text(start as u32, scratch.len() as u32));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::postgres::pgoutput::cell_text;

    #[test]
    fn copy_text_unescapes_and_marks_nulls() {
        let mut scratch = Vec::new();
        let mut cells = Vec::new();
        parse_copy_line(b"1\t\\N\ta\\tb\\nc\\\\d\t\\101\\x42\t", &mut scratch, &mut cells);
        assert_eq!(cells.len(), 5);
        assert_eq!(cell_text(&scratch, cells[0]), Some(&b"1"[..]));
        assert_eq!(cells[1], Cell::Null);
        assert_eq!(cell_text(&scratch, cells[2]), Some(&b"a\tb\nc\\d"[..]));
        assert_eq!(cell_text(&scratch, cells[3]), Some(&b"AB"[..]));
        assert_eq!(cell_text(&scratch, cells[4]), Some(&b""[..]));
    }
}
