//! MySQL / MariaDB source: row events from the binary log, read as a replica with
//! `mysql_async`'s binlog stream.
//!
//! One session: read the server's settings and refuse unusable ones (binlog off, not ROW, not
//! FULL row image / metadata), resolve the include list, reconcile the checkpoint with the
//! server's binlogs (rules below), snapshot if needed, then stream.
//!
//! Checkpoint vs. server on start:
//! - checkpoint present, same server, its binlog file still on the server: resume there (by
//!   GTID on MariaDB unless `position = "file"`, by file and offset otherwise);
//! - checkpoint present but its binlog file (or GTID) was purged, or the server was replaced:
//!   stop with an error that says changes may be lost and how to re-snapshot;
//! - no checkpoint: snapshot (`snapshot = "initial"`) or start at the current binlog end.

pub mod backlog;
pub mod check;
pub mod gtid_set;
pub mod guard;
pub mod json_diff;
pub mod live;
pub mod mariadb_events;
#[cfg(test)]
mod mysql8_events;
mod row_image;
pub mod rows;
pub mod snapshot;
pub mod statements;
pub mod stream;
pub mod table;
pub mod tls;
pub mod typed;
pub mod values;
pub mod xa;

use futures_util::future::BoxFuture;
use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::config::{ConnectorConfig, MysqlSourceConfig, PositionMode, SnapshotMode};
use crate::core::checkpoint::SourceIdentity;
use crate::core::position::{BinlogPosition, Position};
use crate::core::snapshot::{SnapshotKind, SnapshotProgress, TableProgress};
use crate::error::{ServerFailure, SessionError, SourceError};
use crate::source::chunks::reconcile_progress;
use crate::source::{Session, Source};
use std::sync::Arc;

/// What the server says about itself.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    pub mariadb: bool,
    pub version: String,
    pub server_id: u32,
    pub server_uuid: Option<String>,
    pub log_bin: bool,
    pub binlog_format: String,
    pub row_image: String,
    pub row_metadata: Option<String>,
    pub gtid_on: bool,
}

impl ServerInfo {
    pub fn flavor(&self) -> &'static str {
        if self.mariadb {
            "mariadb"
        } else {
            "mysql"
        }
    }

    pub fn identity(&self) -> SourceIdentity {
        let server = self.server_uuid.clone().unwrap_or_else(|| self.server_id.to_string());
        SourceIdentity::Mysql { flavor: self.flavor().to_string(), server }
    }
}

/// Maps a driver error: access and purged-binlog errors are definite, the rest transient.
pub fn my_err(context: &str, e: mysql_async::Error) -> SourceError {
    if let mysql_async::Error::Server(s) = &e {
        let failure = ServerFailure {
            context: context.to_string(),
            code_label: "MySQL error",
            code: s.code.to_string(),
            message: s.message.clone(),
            fix: None,
            transient: true,
        };
        return match s.code {
            1236 => failure.definite(
                "the binlog position or GTID cdcd needs was purged from the server, so changes may be lost. Re-snapshot: stop cdcd, move the checkpoint directory away, start again; keep binlogs longer (binlog_expire_logs_seconds / expire_logs_days)",
            ),
            1045 | 1044 | 1142 | 1227 | 1370 => failure.definite(
                "the source user needs SELECT, RELOAD, REPLICATION SLAVE and REPLICATION CLIENT (MariaDB: BINLOG MONITOR)",
            ),
            1049 | 1146 => failure.definite("check the database and table names"),
            1792 => failure.definite("snapshot reads are read-only: a signal's filter may only read"),
            // MySQL's max_execution_time, MariaDB's max_statement_time: the chunk is retried.
            3024 | 1969 => ServerFailure {
                fix: Some("the query ran past its statement timeout: raise source.snapshot_statement_timeout_secs (0: no limit), or narrow the signal's filter".into()),
                ..failure
            }
            .into(),
            _ => failure.into(),
        };
    }
    SourceError::Transient(format!("{context}: {e} (is the server running and reachable at source.url?)"))
}

/// Connects with TCP keepalive and the TLS `source.url` asks for; the handshake is bounded by
/// `source.timeout_secs`. Under ssl-mode=PREFERRED (the default) a server without TLS gets a
/// plaintext connection and a warning; above it, an error.
pub async fn connect(my: &MysqlSourceConfig) -> Result<Conn, SourceError> {
    let timeout = std::time::Duration::from_secs(my.timeout_secs);
    let url = tls::parse_url(&my.url).map_err(|e| SourceError::Fatal(format!("source.url: {e}")))?;
    let base = mysql_async::OptsBuilder::from_opts(url.opts.clone())
        .tcp_keepalive(Some((timeout / 6).max(std::time::Duration::from_secs(1))));
    let connecting = async {
        match attempt(&base, &url.tls, url.tls.mode != tls::SslMode::Disabled).await {
            Err(SourceError::Transient(m)) if url.tls.mode == tls::SslMode::Preferred && m.contains(NO_TLS) => {
                tracing::warn!("the MySQL server does not offer TLS; the connection is not encrypted (ssl-mode=PREFERRED). Set ssl-mode=REQUIRED to refuse plaintext");
                attempt(&base, &url.tls, false).await
            }
            other => other,
        }
    };
    tokio::time::timeout(timeout, connecting).await.unwrap_or_else(|_| {
        Err(SourceError::Transient(format!(
            "the server did not complete the connection handshake within {} s",
            timeout.as_secs()
        )))
    })
}

/// MariaDB (its versions compare above 8.0.30) has no such variable.
const ER_UNKNOWN_SYSTEM_VARIABLE: u16 = 1193;

const NO_TLS: &str = "the server does not offer TLS";

async fn attempt(base: &mysql_async::OptsBuilder, tls: &tls::MyTls, use_tls: bool) -> Result<Conn, SourceError> {
    let opts =
        tls.apply(base.clone(), use_tls).map_err(|e| SourceError::Fatal(format!("source.url TLS settings: {e}")))?;
    let mut conn = Conn::new(opts).await.map_err(|e| connect_err(e, tls))?;
    conn.query_drop("SET NAMES utf8mb4, time_zone = '+00:00'").await.map_err(|e| my_err("session setup", e))?;
    if conn.server_version() >= (8, 0, 30) {
        // A generated invisible primary key (`my_row_id`) is in every binlog row; with this off
        // (a server may default it so) information_schema hides it, and snapshot rows would
        // lack the column and the key their streamed versions have.
        match conn.query_drop("SET SESSION show_gipk_in_create_table_and_information_schema = ON").await {
            Err(mysql_async::Error::Server(e)) if e.code == ER_UNKNOWN_SYSTEM_VARIABLE => {}
            other => other.map_err(|e| my_err("session setup", e))?,
        }
    }
    Ok(conn)
}

/// A connection error, with TLS failures (no TLS on the server, a rejected certificate) told
/// apart: those are definite, and their messages say what to change.
fn connect_err(e: mysql_async::Error, tls: &tls::MyTls) -> SourceError {
    use mysql_async::{DriverError, Error, IoError};
    match &e {
        Error::Driver(DriverError::NoClientSslFlagFromServer) if tls.mode == tls::SslMode::Preferred => {
            SourceError::Transient(NO_TLS.into())
        }
        Error::Driver(DriverError::NoClientSslFlagFromServer) => SourceError::Fatal(format!(
            "{NO_TLS} but source.url has ssl-mode={}: configure ssl_cert / ssl_key on the server, or lower ssl-mode (not recommended outside a trusted network)",
            tls.mode.as_str()
        )),
        Error::Io(IoError::Tls(t)) => {
            let reason = crate::source::tls_errors::tls_reason(&[t.to_string()]);
            let fix = crate::source::tls_errors::verify_fix(&reason, "ssl-ca", "ssl-mode=VERIFY_CA");
            SourceError::Fatal(format!("TLS with the MySQL server failed: {reason}; {fix}"))
        }
        Error::Server(s) if s.code == 1045 && tls.mode == tls::SslMode::Disabled => SourceError::Fatal(format!(
            "connecting: {} (MySQL error 1045); if the user is created with REQUIRE SSL (or X509), set ssl-mode=REQUIRED or VERIFY_IDENTITY with ssl-ca in source.url",
            s.message
        )),
        _ => my_err("connecting", e),
    }
}

async fn var(conn: &mut Conn, name: &str) -> Result<Option<String>, SourceError> {
    // Unknown variables (older servers) are an error from the server; treat as absent.
    match conn.query_first::<Option<String>, _>(format!("SELECT @@{name}")).await {
        Ok(v) => Ok(v.flatten()),
        Err(mysql_async::Error::Server(s)) if s.code == 1193 => Ok(None),
        Err(e) => Err(my_err(name, e)),
    }
}

pub async fn server_info(conn: &mut Conn) -> Result<ServerInfo, SourceError> {
    let version = var(conn, "version").await?.unwrap_or_default();
    let mariadb = version.to_ascii_lowercase().contains("mariadb");
    let server_id = var(conn, "server_id").await?.and_then(|s| s.parse().ok()).unwrap_or(0);
    let gtid_on = if mariadb { true } else { var(conn, "gtid_mode").await?.as_deref() == Some("ON") };
    Ok(ServerInfo {
        server_uuid: if mariadb { None } else { var(conn, "server_uuid").await? },
        // Server-wide values: a session may override these, the binlog follows the global ones.
        log_bin: matches!(var(conn, "global.log_bin").await?.as_deref(), Some("1") | Some("ON")),
        binlog_format: var(conn, "global.binlog_format").await?.unwrap_or_default(),
        row_image: var(conn, "global.binlog_row_image").await?.unwrap_or_default(),
        row_metadata: var(conn, "global.binlog_row_metadata").await?,
        mariadb,
        version,
        server_id,
        gtid_on,
    })
}

/// Settings without which rows cannot be captured correctly, with the fix for each.
pub fn problems(info: &ServerInfo) -> Vec<(String, String)> {
    let mut p = Vec::new();
    if !info.log_bin {
        p.push((
            "the binary log is off (log_bin)".into(),
            "start the server with log_bin (log-bin = <basename>) and restart".into(),
        ));
    }
    if !info.binlog_format.eq_ignore_ascii_case("ROW") {
        p.push((
            format!("binlog_format is {}, cdcd needs ROW", info.binlog_format),
            "SET GLOBAL binlog_format = 'ROW' (and in the server configuration)".into(),
        ));
    }
    if !info.row_image.eq_ignore_ascii_case("FULL") {
        p.push((
            format!("binlog_row_image is {}: before images would lack columns", info.row_image),
            "SET GLOBAL binlog_row_image = 'FULL'".into(),
        ));
    }
    p
}

impl ServerInfo {
    pub fn full_metadata(&self) -> bool {
        self.row_metadata.as_deref().is_some_and(|m| m.eq_ignore_ascii_case("FULL"))
    }

    /// Which column-metadata mode cdcd will use, and why FULL is the safer one.
    pub fn metadata_mode(&self) -> String {
        if self.full_metadata() {
            "binlog_row_metadata = FULL: column names, signedness, charsets, enum/set values and the primary key travel with every row event, so schema changes need no DDL parsing".into()
        } else {
            format!(
                "binlog_row_metadata = {}: cdcd reads column names and types from information_schema and re-reads them after DDL. FULL is safer: information_schema shows the schema as it is now, not as it was when a lagging event was written, so a column change made while cdcd is behind can be mis-mapped (SET GLOBAL binlog_row_metadata = 'FULL', MySQL 8.0.1+ / MariaDB 10.5+)",
                self.row_metadata.as_deref().unwrap_or("unsupported by this server")
            )
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TableName {
    pub db: String,
    pub name: String,
}

impl std::fmt::Display for TableName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.db, self.name)
    }
}

pub fn quote(ident: &str) -> String {
    format!("`{}`", ident.replace('`', "``"))
}

pub use crate::source::tables::included;
use crate::source::tables::{pattern_matches, TableSelection};

pub async fn resolve_tables(conn: &mut Conn, patterns: &TableSelection) -> Result<Vec<TableName>, SourceError> {
    let rows: Vec<(String, String)> = conn
        .query(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' \
             AND table_schema NOT IN ('mysql', 'information_schema', 'performance_schema', 'sys') ORDER BY 1, 2",
        )
        .await
        .map_err(|e| my_err("listing tables", e))?;
    for p in patterns.include.iter().filter(|p| !p.contains('*')) {
        if !rows.iter().any(|(d, t)| pattern_matches(p, d, t)) {
            return Err(SourceError::Fatal(format!(
                "table `{p}` from source.tables does not exist (or is not visible to this user); create it or fix the name"
            )));
        }
    }
    Ok(rows.into_iter().filter(|(d, t)| included(patterns, d, t)).map(|(db, name)| TableName { db, name }).collect())
}

/// The server's current binlog end (file, offset, GTID state).
pub async fn current_position(conn: &mut Conn, info: &ServerInfo) -> Result<BinlogPosition, SourceError> {
    // MySQL 8.4 renamed SHOW MASTER STATUS.
    let row: Option<mysql_async::Row> = match conn.query_first("SHOW MASTER STATUS").await {
        Ok(r) => r,
        Err(_) => conn.query_first("SHOW BINARY LOG STATUS").await.map_err(|e| my_err("reading binlog status", e))?,
    };
    let row = row.ok_or_else(|| SourceError::Fatal("the server reports no binary log; enable log_bin".into()))?;
    let file: String = row.get(0).unwrap_or_default();
    let pos: u64 = row.get(1).unwrap_or(4);
    // The GTID state must be the one at file:pos exactly: read apart, a commit in between would
    // be in the GTID set but after the position, and resuming by GTID would skip it.
    let gtid: Option<String> = if info.mariadb {
        conn.exec_first("SELECT BINLOG_GTID_POS(?, ?)", (&file, pos))
            .await
            .map_err(|e| my_err("reading the GTID position of the binlog position", e))?
            .flatten()
    } else {
        // Executed_Gtid_Set, from the same status row.
        row.get::<Option<String>, _>(4).flatten().map(|g| g.replace('\n', ""))
    };
    Ok(BinlogPosition { file, pos, gtid: gtid.filter(|g| !g.is_empty()) })
}

/// A MySQL or MariaDB server read as a replica of its binary log.
pub struct MysqlSource {
    cfg: ConnectorConfig,
    my: MysqlSourceConfig,
}

impl MysqlSource {
    pub fn new(cfg: ConnectorConfig, my: MysqlSourceConfig) -> Self {
        MysqlSource { cfg, my }
    }
}

impl Source for MysqlSource {
    fn run_session<'a>(&'a self, session: Session<'a>) -> BoxFuture<'a, Result<(), SessionError>> {
        Box::pin(run_session(&self.cfg, &self.my, session))
    }

    fn backlog_probe(&self) -> Box<dyn crate::source::BacklogProbe> {
        Box::new(backlog::BinlogBacklog::new(self.my.clone()))
    }
}

async fn run_session(cfg: &ConnectorConfig, my: &MysqlSourceConfig, session: Session<'_>) -> Result<(), SessionError> {
    let Session { checkpoint, emitter, shutdown, .. } = session;
    let mut conn = connect(my).await?;
    let info = server_info(&mut conn).await?;
    if let Some((what, fix)) = problems(&info).into_iter().next() {
        return Err(SourceError::Fatal(format!("{what}; fix: {fix}")).into());
    }
    if !info.full_metadata() {
        tracing::warn!(connector = %cfg.name, "{}", info.metadata_mode());
    }
    let mut tables = resolve_tables(&mut conn, &my.tables).await?;
    let signal = live::signal_table(&mut conn, my).await?;
    // The signal table's rows are requests, never published, even when `tables` matches it.
    tables.retain(|t| Some(t) != signal.as_ref());
    if tables.is_empty() {
        return Err(SourceError::Fatal(format!("no table matches source.tables {}", my.tables)).into());
    }
    let ctx = table::Context {
        connector: cfg.name.clone(),
        topic_prefix: cfg.topic_prefix().to_string(),
        flavor: info.flavor(),
        keys: crate::source::tables::KeyColumns::new(&my.key_columns),
        typed: cfg.typed_options(),
        columns: std::sync::Arc::new(crate::source::columns::ColumnRules::new(&cfg.columns)),
        routes: std::sync::Arc::new(crate::source::routes::Routes::new(&cfg.routes)),
    };
    let identity = info.identity();
    let use_gtid = match my.position {
        PositionMode::File => false,
        PositionMode::Gtid if !info.gtid_on => {
            return Err(SourceError::Fatal(
                "source.position = \"gtid\" but the server has GTIDs off (gtid_mode)".into(),
            )
            .into())
        }
        _ => info.gtid_on,
    };

    let table_names: Vec<String> = tables.iter().map(TableName::to_string).collect();
    let all_tables = |f: fn(String) -> TableProgress| SnapshotProgress {
        step: 0,
        tables: table_names.iter().cloned().map(f).collect(),
    };
    let initial = |name: String| TableProgress::pending(name, SnapshotKind::Initial, None);
    let (start, mut progress, fresh) = match checkpoint {
        Some(cp) => 'resume: {
            let Position::Mysql(pos) = cp.position else {
                return Err(SourceError::Fatal(
                    "the checkpoint is not a MySQL checkpoint; give each connector its own checkpoint.path".into(),
                )
                .into());
            };
            let resnapshot = format!(
                "To start over with a fresh snapshot, stop cdcd, move the checkpoint directory {} away, and start again.",
                cfg.checkpoint_dir().display()
            );
            if cp.source != identity {
                return Err(SourceError::Fatal(format!(
                    "the checkpoint was written for another server ({:?}), this is {:?}: it was replaced, and changes may be missing. {resnapshot}",
                    cp.source, identity
                ))
                .into());
            }
            let logs: Vec<mysql_async::Row> =
                conn.query("SHOW BINARY LOGS").await.map_err(|e| my_err("listing binary logs", e))?;
            let files: Vec<String> = logs.iter().filter_map(|r| r.get::<String, _>(0)).collect();
            let now = if !files.contains(&pos.file) && my.snapshot == SnapshotMode::WhenNeeded {
                Some(current_position(&mut conn, &info).await?)
            } else {
                None
            };
            // Positions only move forward: a binlog that restarted behind the checkpoint (RESET
            // MASTER) is no place to resume, even with a new snapshot.
            if let Some(at) = now.filter(|at| Position::Mysql(at.clone()) > Position::Mysql(pos.clone())) {
                tracing::warn!(
                    purged = %pos.file,
                    oldest = files.first().map(String::as_str).unwrap_or("none"),
                    from = %Position::Mysql(at.clone()),
                    "the binlog file the checkpoint needs was purged from the server; snapshot = \"when_needed\": reading every table again while streaming from the current position (rows deleted meanwhile stay with consumers, as in Debezium)"
                );
                emitter.set_identity(identity);
                // Numbered past the checkpoint's plan: only a later step replaces it.
                let mut plan = all_tables(|name| TableProgress::pending(name, SnapshotKind::Incremental, None));
                plan.step = cp.snapshot.as_ref().map_or(0, |s| s.step) + 1;
                break 'resume (at, plan, true);
            }
            if !files.contains(&pos.file) {
                return Err(SourceError::Fatal(format!(
                    "binlog file {} that cdcd needs to resume from offset {} was purged from the server (oldest is {}): changes since then may be lost. {resnapshot} Keep binlogs longer than cdcd can be down (binlog_expire_logs_seconds / expire_logs_days).",
                    pos.file,
                    pos.pos,
                    files.first().map(String::as_str).unwrap_or("none")
                ))
                .into());
            }
            emitter.set_identity(identity);
            tracing::info!(connector = %cfg.name, position = %Position::Mysql(pos.clone()), by = if use_gtid { "gtid" } else { "file" }, "resuming binlog");
            // A checkpoint from before snapshots were tracked: every table it knew was read.
            (pos, cp.snapshot.unwrap_or_else(|| all_tables(TableProgress::streamed_only)), false)
        }
        None => {
            let at = current_position(&mut conn, &info).await?;
            emitter.set_identity(identity);
            let f = if my.snapshot.reads_existing_rows() { initial } else { TableProgress::streamed_only };
            (at, all_tables(f), true)
        }
    };
    if reconcile_progress(&mut progress, &table_names, my.snapshot) || fresh {
        progress.step += 1;
        emitter.mark_progress(Position::Mysql(start.clone()), Arc::new(progress.clone()))?;
    }
    let tuning = my.snapshot_tuning();
    let settings = snapshot::reader::ReadSettings {
        my: my.clone(),
        ctx: ctx.clone(),
        info: info.clone(),
        chunk_rows: tuning.chunk_rows,
        limiter: tuning.limiter(),
        statement_timeout: tuning.statement_timeout,
    };
    let mut snapshotter = snapshot::Snapshotter::new(settings, tuning.workers, progress.clone(), start.as_u64());
    if progress.unfinished().next().is_some() {
        for setup in snapshot_setups(&mut conn, &progress, &tables, &ctx).await? {
            snapshotter.add(setup);
        }
        snapshotter.launch(emitter);
    }
    let live = live::LiveTables::new(my, ctx.clone(), signal);
    drop(conn);
    stream::run(my, &info, ctx, start, use_gtid, emitter, shutdown, snapshotter, live).await
}

/// What the snapshot readers need about each unfinished table: its columns and key now, and
/// the server's row estimate (one query for all tables).
async fn snapshot_setups(
    conn: &mut Conn,
    progress: &SnapshotProgress,
    tables: &[TableName],
    ctx: &table::Context,
) -> Result<Vec<snapshot::TableSetup>, SourceError> {
    let q = |e| my_err("snapshot: reading table estimates", e);
    let mut schemas: Vec<&str> = tables.iter().map(|t| t.db.as_str()).collect();
    schemas.sort_unstable();
    schemas.dedup();
    let mut estimates: Vec<(String, String, Option<u64>)> = Vec::new();
    for db in schemas {
        let rows: Vec<(String, String, Option<u64>)> = conn
            .exec(
                "SELECT TABLE_SCHEMA, TABLE_NAME, TABLE_ROWS FROM information_schema.TABLES WHERE TABLE_SCHEMA = ?",
                (db,),
            )
            .await
            .map_err(q)?;
        estimates.extend(rows);
    }
    let mut setups = Vec::new();
    for p in progress.unfinished() {
        let Some(t) = tables.iter().find(|t| t.to_string() == p.table) else { continue };
        let table = table::table_from_information_schema(conn, t, ctx).await?;
        let estimate = estimates.iter().find(|(d, n, _)| d == &t.db && n == &t.name).and_then(|e| e.2).unwrap_or(0);
        let chunk_key = table::chunk_key(conn, t, &table).await?;
        setups.push(snapshot::TableSetup { name: t.clone(), table: Arc::new(table), chunk_key, estimate });
    }
    Ok(setups)
}
