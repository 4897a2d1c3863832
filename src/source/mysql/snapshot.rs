//! The consistent initial snapshot, tied to the exact binlog position it corresponds to.
//!
//! MariaDB: `START TRANSACTION WITH CONSISTENT SNAPSHOT`, then the status variables
//! `binlog_snapshot_file` / `binlog_snapshot_position` give the binlog position of that very
//! snapshot, and `BINLOG_GTID_POS()` its GTID position: no lock at all.
//! MySQL: `FLUSH TABLES WITH READ LOCK` only for the instant needed to read the binlog position
//! and open the snapshot transaction, then `UNLOCK TABLES` before any row is read.

use futures_util::StreamExt;
use mysql_async::prelude::*;

use super::table::{kind_from_information_schema, Column, Context, Table};
use super::values::{Key, Row, TextCells};
use super::{connect, current_position, my_err, quote, ServerInfo, TableName};
use crate::config::MysqlSourceConfig;
use crate::core::envelope::{now_us, Change, Op};
use crate::core::position::{BinlogPosition, Position};
use crate::emit::Emitter;
use crate::error::{SessionError, SourceError};

pub async fn run(
    my: &MysqlSourceConfig,
    info: &ServerInfo,
    tables: &[TableName],
    ctx: &Context,
    emitter: &mut Emitter,
) -> Result<BinlogPosition, SessionError> {
    let started = std::time::Instant::now();
    emitter.set_state(crate::core::status::State::Snapshotting);
    let mut conn = connect(my).await?;
    let q = |e| my_err("snapshot", e);
    conn.query_drop("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ").await.map_err(q)?;
    let at = if info.mariadb {
        conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY").await.map_err(q)?;
        let status: Vec<(String, String)> = conn.query("SHOW STATUS LIKE 'binlog_snapshot_%'").await.map_err(q)?;
        let get = |k: &str| status.iter().find(|(n, _)| n.eq_ignore_ascii_case(k)).map(|(_, v)| v.clone());
        let file = get("binlog_snapshot_file").unwrap_or_default();
        let pos: u64 = get("binlog_snapshot_position").and_then(|p| p.parse().ok()).unwrap_or(4);
        let gtid: Option<String> =
            conn.exec_first("SELECT BINLOG_GTID_POS(?, ?)", (&file, pos)).await.map_err(q)?.flatten();
        BinlogPosition { file, pos, gtid: gtid.filter(|g| !g.is_empty()) }
    } else {
        conn.query_drop("FLUSH TABLES WITH READ LOCK").await.map_err(q)?;
        let at = current_position(&mut conn, info).await;
        let opened = conn.query_drop("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY").await;
        conn.query_drop("UNLOCK TABLES").await.map_err(q)?;
        opened.map_err(q)?;
        at?
    };
    tracing::info!(position = %Position::Mysql(at.clone()), tables = tables.len(), "snapshot transaction open");

    let mut estimate = 0u64;
    for t in tables {
        let rows: Option<Option<u64>> = conn
            .exec_first(
                "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
                (&t.db, &t.name),
            )
            .await
            .map_err(q)?;
        estimate += rows.flatten().unwrap_or(0);
    }
    emitter.set_snapshot_estimate(estimate);
    tracing::info!(estimated_rows = estimate, "snapshot started");

    let ts_us = now_us();
    emitter.begin(format_args!("snapshot at {}", Position::Mysql(at.clone())))?;
    let mut index = 0u64;
    let mut last_report = std::time::Instant::now();
    for t in tables {
        let table = table_from_information_schema(&mut conn, t, ctx).await?;
        let cols = table.columns.iter().map(|c| quote(&c.name)).collect::<Vec<_>>().join(", ");
        let sql = format!("SELECT {cols} FROM {}.{}", quote(&t.db), quote(&t.name));
        let mut result = conn.query_iter(sql).await.map_err(q)?;
        let mut stream = result
            .stream::<mysql_async::Row>()
            .await
            .map_err(q)?
            .ok_or_else(|| SourceError::Transient("no result set".into()))?;
        let table_start = index;
        while let Some(row) = stream.next().await {
            let row = row.map_err(q)?;
            let cells = TextCells(
                row.unwrap_raw()
                    .into_iter()
                    .map(|v| match v {
                        Some(mysql_async::Value::Bytes(b)) => Some(b),
                        Some(mysql_async::Value::NULL) | None => None,
                        Some(other) => Some(other.as_sql(true).into_bytes()),
                    })
                    .collect(),
            );
            let after = Row { table: &table, cells: &cells };
            let key = table.has_key().then_some(Key(Row { table: &table, cells: &cells }));
            let source = super::stream::SourceBlock {
                table: &table,
                ts_us,
                snapshot: true,
                server_id: info.server_id,
                gtid: at.gtid.as_deref(),
                file: &at.file,
                pos: at.pos,
                row: 0,
                txn_start: at.as_u64(),
                index,
            };
            let change = Change {
                op: Op::Read,
                key: key.as_ref().map(|k| k as _),
                before: None,
                after: Some(&after),
                source: &source,
                ts_us: now_us(),
            };
            emitter.emit(&table.topic, &change).await?;
            index += 1;
            if last_report.elapsed().as_secs() >= 5 {
                last_report = std::time::Instant::now();
                tracing::info!(table = %t, rows = index, estimated_rows = estimate, "snapshot in progress");
            }
        }
        drop(stream);
        drop(result);
        tracing::info!(table = %t, rows = index - table_start, "snapshot of table done");
    }
    conn.query_drop("COMMIT").await.map_err(q)?;
    emitter.commit(Position::Mysql(at.clone()))?;
    tracing::info!(
        rows = index,
        secs = started.elapsed().as_secs(),
        "snapshot read; streaming from its binlog position"
    );
    Ok(at)
}

/// Columns and primary key of `t` as `information_schema` has them now (inside the snapshot
/// transaction, so consistent with the rows read).
pub async fn table_from_information_schema(
    conn: &mut mysql_async::Conn,
    t: &TableName,
    ctx: &Context,
) -> Result<Table, SourceError> {
    let q = |e| my_err("reading table metadata", e);
    let cols: Vec<(String, String, String, Option<String>, String)> = conn
        .exec(
            "SELECT column_name, data_type, column_type, character_set_name, column_key FROM information_schema.columns \
             WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            (&t.db, &t.name),
        )
        .await
        .map_err(q)?;
    let columns: Vec<Column> = cols
        .iter()
        .map(|(name, dt, ct, cs, _)| {
            Column::new(
                name.clone(),
                kind_from_information_schema(&dt.to_ascii_lowercase(), &ct.to_ascii_lowercase(), cs.as_deref()),
            )
        })
        .collect();
    let pk: Vec<String> = conn
        .exec(
            "SELECT column_name FROM information_schema.key_column_usage WHERE table_schema = ? AND table_name = ? \
             AND constraint_name = 'PRIMARY' ORDER BY ordinal_position",
            (&t.db, &t.name),
        )
        .await
        .map_err(q)?;
    let pk = pk.iter().filter_map(|k| columns.iter().position(|c| &c.name == k)).collect();
    let key = ctx.key_indexes(&t.db, &t.name, &columns, pk).map_err(SourceError::Fatal)?;
    Ok(Table::new(&t.db, &t.name, columns, key, ctx))
}
