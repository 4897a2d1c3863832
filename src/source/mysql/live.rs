//! Tables that change while the binlog streams: a table created in the binlog that matches
//! `tables` is streamed from its creation on, so it needs no snapshot (a snapshot of it still
//! going is dropped); a table renamed to a name that matches is snapshotted incrementally (its
//! rows were written under another name, so its topic has none of them); a row inserted into
//! the signal table asks for a table to be snapshotted again (Debezium's `execute-snapshot`) or
//! stops incremental snapshots (`stop-snapshot`). Both are checkpointed with the transaction that
//! carries them, so a crash does not lose them.

use std::sync::Arc;

use mysql_async::binlog::row::BinlogRow;
use mysql_async::binlog::value::BinlogValue;
use mysql_async::prelude::*;
use mysql_async::{Conn, Value};

use super::snapshot::{Snapshotter, TableSetup};
use super::table::{chunk_key, table_from_information_schema, Context, Table};
use super::{connect, included, my_err, statements, TableName};
use crate::config::MysqlSourceConfig;
use crate::core::snapshot::SnapshotProgress;
use crate::core::status::State;
use crate::emit::Emitter;
use crate::error::SourceError;
use crate::source::chunks::signal;

/// The columns of a signal table, as Debezium has them.
pub const SIGNAL_TABLE_DDL: &str = "(id VARCHAR(64) PRIMARY KEY, type VARCHAR(32) NOT NULL, data VARCHAR(2048))";

pub struct LiveTables {
    my: MysqlSourceConfig,
    ctx: Context,
    signal: Option<TableName>,
    /// Signals in the open group.
    signals: signal::Pending,
    /// Captured tables created in the open group.
    created: Vec<String>,
    conn: Option<Conn>,
}

impl LiveTables {
    pub fn new(my: &MysqlSourceConfig, ctx: Context, signal: Option<TableName>) -> Self {
        LiveTables { my: my.clone(), ctx, signal, signals: signal::Pending::default(), created: Vec::new(), conn: None }
    }

    pub fn is_signal(&self, db: &str, name: &str) -> bool {
        self.signal.as_ref().is_some_and(|s| s.db == db && s.name == name)
    }

    /// Rows inserted into the signal table (`after` images), in `table`'s column order.
    pub fn signal_rows<'r>(&mut self, table: &Table, inserted: impl Iterator<Item = &'r BinlogRow>) {
        let index = |name: &str| table.columns.iter().position(|c| c.name == name);
        let (id, kind, data) = (index("id"), index("type"), index("data"));
        for row in inserted {
            let text = |i: Option<usize>| match i.and_then(|i| row.as_ref(i)) {
                Some(BinlogValue::Value(Value::Bytes(b))) => Some(String::from_utf8_lossy(b).into_owned()),
                _ => None,
            };
            self.signals.row(&text(id).unwrap_or_default(), &text(kind).unwrap_or_default(), text(data).as_deref());
        }
    }

    /// A DDL statement of the binlog: notes a captured table it creates, or one it renames
    /// into the captured set.
    pub fn ddl(&mut self, sql: &str, default_db: &str) {
        if let Some((db, name)) = statements::created_table(sql, default_db) {
            if included(&self.my.tables, &db, &name) && !self.is_signal(&db, &name) {
                self.created.push(TableName { db, name }.to_string());
            }
            return;
        }
        for (from, (db, name)) in statements::renamed_tables(sql, default_db) {
            if included(&self.my.tables, &db, &name) && !self.is_signal(&db, &name) {
                let to = TableName { db, name }.to_string();
                tracing::info!(table = %to, from = %format_args!("{}.{}", from.0, from.1), "table renamed into source.tables: its rows are snapshotted incrementally");
                self.created.retain(|c| *c != to);
                self.signals.snapshots.push((to, None));
            }
        }
    }

    /// Something to do when the open group ends.
    pub fn has_work(&self) -> bool {
        !self.signals.is_empty() || !self.created.is_empty()
    }

    /// At the end of a group: records new tables and starts the snapshots asked for. Returns
    /// the progress to commit with the group.
    pub async fn apply(
        &mut self,
        snapshotter: &mut Snapshotter,
        emitter: &Emitter,
    ) -> Result<Option<Arc<SnapshotProgress>>, SourceError> {
        let mut progress = None;
        // Stops first: a group that stops a table's snapshot and asks for it again restarts it.
        for stop in std::mem::take(&mut self.signals.stops) {
            if let Some(p) = snapshotter.stop(stop.as_deref(), emitter) {
                progress = Some(p);
            }
        }
        for name in std::mem::take(&mut self.created) {
            tracing::info!(table = %name, "new table in the binlog matches source.tables: streamed from its creation, no snapshot needed");
            progress = Some(snapshotter.streamed_from_creation(&name));
        }
        for (name, filter) in std::mem::take(&mut self.signals.snapshots) {
            let Some((db, table)) = name.split_once('.') else {
                tracing::warn!(table = %name, "snapshot signal: name the table as database.table; ignored");
                continue;
            };
            if !included(&self.my.tables, db, table) {
                tracing::warn!(table = %name, "snapshot asked for a table this connector does not capture; ignored");
                continue;
            }
            let t = TableName { db: db.to_string(), name: table.to_string() };
            let conn = match &mut self.conn {
                Some(c) => c,
                None => self.conn.insert(connect(&self.my).await?),
            };
            let setup = table_setup(conn, &t, &self.ctx).await?;
            if setup.table.columns.is_empty() {
                tracing::warn!(table = %name, "snapshot asked for a table that does not exist; ignored");
                continue;
            }
            progress = Some(snapshotter.request(&name, filter));
            snapshotter.add(setup);
        }
        if snapshotter.is_running() {
            snapshotter.launch(emitter);
            emitter.set_state(State::Snapshotting);
        }
        Ok(progress)
    }
}

/// What the snapshot readers need about one table: its columns and key now, and the server's
/// row estimate.
pub async fn table_setup(conn: &mut Conn, t: &TableName, ctx: &Context) -> Result<TableSetup, SourceError> {
    let table = table_from_information_schema(conn, t, ctx).await?;
    let estimate: Option<Option<u64>> = conn
        .exec_first(
            "SELECT TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (&t.db, &t.name),
        )
        .await
        .map_err(|e| my_err("snapshot: reading the table estimate", e))?;
    let chunk_key = chunk_key(conn, t, &table).await?;
    Ok(TableSetup { name: t.clone(), table: Arc::new(table), chunk_key, estimate: estimate.flatten().unwrap_or(0) })
}

/// The configured signal table, which must exist with Debezium's columns.
pub async fn signal_table(conn: &mut Conn, my: &MysqlSourceConfig) -> Result<Option<TableName>, SourceError> {
    let Some(name) = &my.signal_table else { return Ok(None) };
    let t = signal_name(name)?;
    let (db, table) = (t.db.as_str(), t.name.as_str());
    let columns: Vec<String> = conn
        .exec(
            "SELECT COLUMN_NAME FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = ? AND TABLE_NAME = ?",
            (db, table),
        )
        .await
        .map_err(|e| my_err("reading the signal table", e))?;
    if columns.is_empty() {
        return Err(SourceError::Fatal(format!(
            "source.signal_table {name} does not exist; create it: CREATE TABLE {name} {SIGNAL_TABLE_DDL}"
        )));
    }
    for col in ["id", "type", "data"] {
        if !columns.iter().any(|c| c.eq_ignore_ascii_case(col)) {
            return Err(SourceError::Fatal(format!(
                "source.signal_table {name} has no column `{col}`; it needs Debezium's columns {SIGNAL_TABLE_DDL}"
            )));
        }
    }
    Ok(Some(t))
}

/// `database.table` as configured in `signal_table`.
pub fn signal_name(name: &str) -> Result<TableName, SourceError> {
    match name.split_once('.') {
        Some((db, table)) => Ok(TableName { db: db.to_string(), name: table.to_string() }),
        None => Err(SourceError::Fatal(format!("source.signal_table {name:?}: name it as database.table"))),
    }
}
