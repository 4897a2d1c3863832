//! `cdcd snapshot`: asks a running connector to snapshot one table again, by inserting an
//! `execute-snapshot` row into the connector's signal table in the source database. The daemon
//! reads it from the log like any change, so the request needs no connection to the daemon and
//! takes effect at its place in the log.

use std::time::Duration;

use mysql_async::prelude::*;

use crate::config::{ConnectorConfig, SourceConfig};
use crate::error::SourceError;
use crate::source::chunks::signal::{execute_snapshot_data, EXECUTE_SNAPSHOT};
use crate::source::tables::included;

/// Writes the signal; returns its id.
pub async fn request_snapshot(cfg: &ConnectorConfig, table: &str, filter: Option<&str>) -> Result<String, SourceError> {
    let (patterns, signal) = match &cfg.source {
        SourceConfig::Postgres(pg) => (&pg.tables, &pg.signal_table),
        SourceConfig::Mysql(my) => (&my.tables, &my.signal_table),
    };
    let Some(signal) = signal else {
        return Err(SourceError::Fatal(format!(
            "connector `{}` has no source.signal_table; set one (a table with Debezium's id, type, data columns) and restart cdcd",
            cfg.name
        )));
    };
    let Some((schema, name)) = table.split_once('.') else {
        return Err(SourceError::Fatal(format!(
            "--table {table:?}: name it as schema.table (database.table for MySQL)"
        )));
    };
    if !included(patterns, schema, name) {
        return Err(SourceError::Fatal(format!(
            "table {table} is not captured by connector `{}` (source.tables {patterns})",
            cfg.name
        )));
    }
    let id = format!("cdcd-snapshot-{}-{}", crate::core::envelope::now_us(), std::process::id());
    let data = execute_snapshot_data(table, filter);
    match &cfg.source {
        SourceConfig::Postgres(pg) => {
            let url = crate::source::postgres::tls::parse_url(&pg.url)
                .map_err(|e| SourceError::Fatal(format!("source.url: {e}")))?;
            let timeout = Duration::from_secs(pg.timeout_secs);
            let catalog =
                crate::source::postgres::catalog::Catalog::connect(&url, "cdcd-snapshot-request", timeout).await?;
            let target = crate::source::postgres::live::signal_ref(signal);
            let sql = format!("INSERT INTO {} (id, type, data) VALUES ($1, $2, $3)", target.quoted());
            catalog.client().execute(sql.as_str(), &[&id, &EXECUTE_SNAPSHOT, &data]).await.map_err(|e| {
                crate::source::postgres::catalog::sql_err(&format!("writing the signal into {signal}"), e)
            })?;
        }
        SourceConfig::Mysql(my) => {
            let t = crate::source::mysql::live::signal_name(signal)?;
            let mut conn = crate::source::mysql::connect(my).await?;
            let target = format!("{}.{}", crate::source::mysql::quote(&t.db), crate::source::mysql::quote(&t.name));
            conn.exec_drop(
                format!("INSERT INTO {target} (id, type, data) VALUES (?, ?, ?)"),
                (&id, EXECUTE_SNAPSHOT, &data),
            )
            .await
            .map_err(|e| crate::source::mysql::my_err(&format!("writing the signal into {signal}"), e))?;
        }
    }
    Ok(id)
}
