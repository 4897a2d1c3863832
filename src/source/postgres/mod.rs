//! PostgreSQL source: logical replication with the built-in `pgoutput` plugin.
//!
//! One session: check prerequisites, make sure the publication and the slot exist, reconcile
//! the checkpoint with the slot (rules below), snapshot if needed, then stream.
//!
//! Checkpoint vs. slot (`confirmed_flush_lsn`) on start:
//! - checkpoint present, slot present, `confirmed_flush <= checkpoint`: resume at the checkpoint
//!   (cdcd writes its checkpoint *before* reporting a flush to the server, so this always holds
//!   for a slot only cdcd drives).
//! - checkpoint present, slot missing, invalidated (`wal_status = lost`), ahead of the
//!   checkpoint, or from another database cluster: changes may be gone. Stop with an error that
//!   says how to re-snapshot. Never continue silently.
//! - no checkpoint, slot present: a previous run died before its first checkpoint. With
//!   `snapshot = "initial"` the slot is dropped and recreated and the snapshot restarts; with
//!   `"never"` streaming starts at the slot's position.
//! - no checkpoint, no slot: create it.
//!
//! Snapshots are read in chunks while streaming ([`snapshot`]); the checkpoint keeps each
//! table's progress, so a snapshot resumes where it stopped. Tables the checkpoint does not
//! know (newly matched by `tables`) are snapshotted the same way.

pub mod backlog;
pub mod catalog;
pub mod check;
pub mod conn;
pub mod features;
pub mod live;
pub mod pgoutput;
pub mod protocol;
pub mod read_only;
pub mod relation;
pub mod slot_repair;
pub mod snapshot;
pub mod stream;
pub mod timeline;
pub mod tls;
pub mod typed;
pub mod values;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::future::BoxFuture;

use crate::config::{ConnectorConfig, OnSlotLost, PostgresSourceConfig, SnapshotMode};
use crate::core::checkpoint::SourceIdentity;
use crate::core::position::{Lsn, Position};
use crate::core::snapshot::{SnapshotKind, SnapshotProgress, TableProgress};
use crate::error::{SessionError, SourceError};
use crate::source::chunks::reconcile_progress;
use crate::source::tables::KeyColumns;
use crate::source::{Session, Source};
use catalog::{quote_ident, quote_literal, Catalog, TableRef};
use conn::{ConnParams, ReplicationConn};
use relation::SourceContext;

/// Names derived from the configuration.
pub struct Names {
    pub slot: String,
    /// Publishes everything, for tables with a replica identity.
    pub publication: String,
    /// Publishes inserts and truncates only, for tables without a replica identity.
    pub insert_publication: String,
    pub application: String,
}

pub fn names(cfg: &ConnectorConfig, pg: &PostgresSourceConfig) -> Names {
    let publication = pg.publication.clone().unwrap_or_else(|| cfg.default_object_name());
    // Identifiers are at most 63 bytes; the configured name is ASCII (checked on load).
    let mut insert_publication = publication.clone();
    insert_publication.truncate(63 - "_inserts".len());
    insert_publication.push_str("_inserts");
    Names {
        slot: pg.slot.clone().unwrap_or_else(|| cfg.default_object_name()),
        publication,
        insert_publication,
        application: format!("cdcd-{}", cfg.name),
    }
}

/// The tables a connector captures, split by what PostgreSQL can publish for them.
pub struct Selection {
    /// Tables with a replica identity: every change.
    pub full: Vec<TableRef>,
    /// Tables without one: inserts and truncates only (updates and deletes cannot be published
    /// without breaking the application's own UPDATE and DELETE statements).
    pub insert_only: Vec<TableRef>,
}

impl Selection {
    pub fn captures(&self, t: &TableRef) -> bool {
        self.full.contains(t) || self.insert_only.contains(t)
    }
}

/// What the server's `IDENTIFY_SYSTEM` says.
pub struct SystemId {
    pub system_identifier: String,
    pub database: String,
    pub timeline: u32,
}

pub async fn identify(repl: &mut ReplicationConn) -> Result<SystemId, SourceError> {
    let rows = repl.simple_query("IDENTIFY_SYSTEM").await?;
    let row = rows.first().ok_or_else(|| SourceError::Transient("IDENTIFY_SYSTEM returned no row".into()))?;
    let col = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
    Ok(SystemId { system_identifier: col(0), database: col(3), timeline: col(1).parse().unwrap_or(0) })
}

/// Checks that must pass before anything is created.
pub async fn preflight(catalog: &Catalog, pg: &PostgresSourceConfig) -> Result<Selection, SourceError> {
    let wal_level = catalog.setting("wal_level").await?;
    if wal_level != "logical" {
        return Err(SourceError::Fatal(format!(
            "wal_level is `{wal_level}`, logical replication needs `logical`: set wal_level = logical in postgresql.conf (or ALTER SYSTEM SET wal_level = logical) and restart PostgreSQL"
        )));
    }
    let tables = catalog.resolve_tables(&pg.tables).await?;
    if tables.is_empty() {
        return Err(SourceError::Fatal(format!(
            "no table matches source.tables {}; create the tables or fix the patterns",
            pg.tables
        )));
    }
    let mut selection = Selection { full: Vec::new(), insert_only: Vec::new() };
    for t in tables {
        let meta = catalog.table_meta_by_name(&t).await?;
        if meta.publishes_updates() {
            selection.full.push(t);
        } else {
            tracing::warn!(table = %t, "no primary key or replica identity: capturing inserts and truncates only (PostgreSQL cannot publish its updates and deletes without breaking them); add a primary key or REPLICA IDENTITY FULL to capture them");
            selection.insert_only.push(t);
        }
    }
    Ok(selection)
}

/// Brings the two publications in line with `selection`; returns the publications to stream.
async fn reconcile_publications(
    catalog: &Catalog,
    names: &Names,
    selection: &Selection,
) -> Result<Vec<String>, SourceError> {
    // Out of the publication that publishes updates first, so the application never sees an
    // UPDATE fail because of us; then into the insert-only one.
    catalog.remove_from_publication(&names.publication, &selection.insert_only).await?;
    // Tables that left `tables` leave the publications too, so their changes stop reaching the
    // slot (the stream skips them in any case).
    catalog.retain_in_publication(&names.publication, &selection.full).await?;
    catalog.ensure_publication(&names.publication, &selection.full, None, true).await?;
    let mut streamed = vec![names.publication.clone()];
    if catalog
        .ensure_publication(&names.insert_publication, &selection.insert_only, Some("insert, truncate"), false)
        .await?
    {
        catalog.retain_in_publication(&names.insert_publication, &selection.insert_only).await?;
        streamed.push(names.insert_publication.clone());
    }
    Ok(streamed)
}

/// A PostgreSQL database read through a logical replication slot.
pub struct PostgresSource {
    cfg: ConnectorConfig,
    pg: PostgresSourceConfig,
    /// The walsender process of this connector's last replication session, so a session that
    /// died without the server noticing can be ended instead of blocking the slot.
    last_walsender: Mutex<Option<i32>>,
}

impl PostgresSource {
    pub fn new(cfg: ConnectorConfig, pg: PostgresSourceConfig) -> Self {
        PostgresSource { cfg, pg, last_walsender: Mutex::new(None) }
    }
}

impl Source for PostgresSource {
    fn run_session<'a>(&'a self, session: Session<'a>) -> BoxFuture<'a, Result<(), SessionError>> {
        Box::pin(run_session(self, session))
    }

    fn backlog_probe(&self) -> Box<dyn crate::source::BacklogProbe> {
        match tls::parse_url(&self.pg.url) {
            Ok(url) => Box::new(backlog::SlotBacklog::new(
                url,
                names(&self.cfg, &self.pg).slot,
                format!("cdcd-{}-metrics", self.cfg.name),
                Duration::from_secs(self.pg.timeout_secs),
            )),
            Err(e) => Box::new(crate::source::NoBacklog(format!("source.url: {e}"))),
        }
    }
}

/// A previous session of this connector whose connection went silent (no FIN, no RST) may still
/// hold the slot on the server until `wal_sender_timeout`. End that server process rather than
/// wait: the one this process started, or, when `elected` (the Kafka store elected this process
/// and it holds the connector's transactional id), whichever holds the slot: a process that
/// was replaced (frozen, partitioned) can no longer write to Kafka, and must not hold the slot.
async fn release_stale_walsender(
    catalog: &Catalog,
    slot: &str,
    previous: Option<i32>,
    elected: bool,
    timeout: Duration,
) -> Result<(), SourceError> {
    let pid = match catalog.slot(slot).await? {
        Some(s) if s.active && elected => match s.active_pid {
            Some(pid) => pid,
            None => return Ok(()),
        },
        Some(s) if s.active && previous.is_some() && s.active_pid == previous => s.active_pid.unwrap_or_default(),
        _ => return Ok(()),
    };
    if previous == Some(pid) {
        tracing::warn!(
            pid,
            slot,
            "the slot is still held by this connector's previous, silent session; ending that server process"
        );
    } else {
        tracing::warn!(
            pid,
            slot,
            "the slot is held by a replaced process's session (it no longer holds the connector's transactional id); ending that server process"
        );
    }
    catalog
        .client()
        .query_one("SELECT pg_terminate_backend($1)", &[&pid])
        .await
        .map_err(|e| catalog::sql_err("ending the previous walsender", e))?;
    let deadline = tokio::time::Instant::now() + timeout;
    while catalog.slot(slot).await?.is_some_and(|s| s.active) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

async fn run_session(src: &PostgresSource, session: Session<'_>) -> Result<(), SessionError> {
    let (cfg, pg) = (&src.cfg, &src.pg);
    let Session { checkpoint, emitter, durable, shutdown } = session;
    let timeout = Duration::from_secs(pg.timeout_secs);
    let url = tls::parse_url(&pg.url).map_err(|e| SourceError::Fatal(format!("source.url: {e}")))?;
    let params = ConnParams::from_url(&url, timeout)?;
    let names = names(cfg, pg);
    let mut catalog = Catalog::connect(&url, &names.application, timeout).await?;
    let features = catalog.features().await?;
    let standby = catalog.in_recovery().await?;
    if standby && !pg.read_only {
        // A failover in progress, or an endpoint that has not moved yet: the primary comes back.
        return Err(SourceError::Transient(
            "the server is a standby (in recovery) and cdcd needs the primary: waiting for a promotion or for the endpoint to move. If this lasts, point source.url at the primary, or list every server with target_session_attrs=read-write; to decode from this standby (PostgreSQL 16+), set source.read_only = true".into(),
        )
        .into());
    }
    if standby && !features.standby_decoding {
        return Err(SourceError::Fatal(format!(
            "the server is a standby running PostgreSQL {}, and logical decoding on a standby needs PostgreSQL 16 or later: point source.url at the primary (source.read_only still keeps cdcd from writing there)",
            features.version
        ))
        .into());
    }
    let mut selection = preflight(&catalog, pg).await?;
    let signal = live::signal_table(&catalog, pg).await?;
    if let Some(s) = &signal {
        // Its rows reach the stream but are never published, even when `tables` matches it.
        selection.full.retain(|t| t != s);
        selection.insert_only.retain(|t| t != s);
    }
    let tables: Vec<TableRef> = selection.full.iter().chain(&selection.insert_only).cloned().collect();
    if let Some(s) = &signal {
        selection.full.push(s.clone());
    }
    let publications = if pg.read_only {
        read_only::publications(&catalog, &names, &selection).await?
    } else {
        catalog.create_publications_with_generated_columns(features.generated_columns);
        reconcile_publications(&catalog, &names, &selection).await?
    };
    if features.schema_publications {
        catalog.set_publications(&publications, features.generated_columns);
    }

    let mut repl = ReplicationConn::connect(&params, &names.application).await?;
    let system = identify(&mut repl).await?;
    // A slot made on a standby cannot be a failover slot (it is not the primary's to sync).
    let slot_kind = SlotKind { failover: features.failover_slots && pg.slot_failover && !standby, on_standby: standby };
    // Before anything touches the slot (a repair drops it, ALTER changes it): a silent session
    // of ours still holding it would make those wait.
    let previous = *src.last_walsender.lock().unwrap_or_else(|e| e.into_inner());
    release_stale_walsender(&catalog, &names.slot, previous, cfg.kafka_store().is_some(), timeout).await?;
    let slot = catalog.slot(&names.slot).await?;
    let ctx = SourceContext {
        connector: cfg.name.clone(),
        db: system.database.clone(),
        topic_prefix: cfg.topic_prefix().to_string(),
        keys: KeyColumns::new(&pg.key_columns),
        typed: cfg.typed_options(),
        columns: std::sync::Arc::new(crate::source::columns::ColumnRules::new(&cfg.columns)),
        routes: std::sync::Arc::new(crate::source::routes::Routes::new(&cfg.routes)),
    };
    let identity = |created: Option<Lsn>| SourceIdentity::Postgres {
        system_identifier: system.system_identifier.clone(),
        database: system.database.clone(),
        slot: names.slot.clone(),
        slot_created_at: created,
        timeline: (!standby).then_some(system.timeline),
    };

    let all_tables = |f: fn(String) -> TableProgress| SnapshotProgress {
        step: 0,
        tables: tables.iter().map(|t| f(t.to_string())).collect(),
    };
    let initial = |name: String| TableProgress::pending(name, SnapshotKind::Initial, None);
    // Only for this system's checkpoint of this slot: anything else takes the checks below.
    let ours = |cp: &crate::core::checkpoint::Checkpoint| {
        matches!(&cp.source, SourceIdentity::Postgres { system_identifier, slot, .. }
            if system_identifier == &system.system_identifier && slot == &names.slot)
    };
    if pg.snapshot == SnapshotMode::InitialOnly
        && checkpoint
            .as_ref()
            .is_some_and(|cp| ours(cp) && cp.snapshot.as_ref().is_none_or(|s| s.unfinished().next().is_none()))
    {
        // A stop between the last checkpoint and dropping the slot left it behind.
        if slot.is_some() {
            drop_slot(&mut repl, &names.slot).await?;
            tracing::info!(slot = %names.slot, "dropped the replication slot the initial-only snapshot left");
        }
        tracing::info!(
            "snapshot = \"initial_only\": the checkpoint says every table was read; nothing to do, stopping"
        );
        return Ok(());
    }
    let (start, mut progress): (Lsn, SnapshotProgress) = match (&checkpoint, &slot) {
        (Some(cp), _) => {
            let Position::Postgres { lsn } = cp.position else {
                return Err(SourceError::Fatal(format!(
                    "the checkpoint in {} is for a MySQL source, not PostgreSQL; give each connector its own checkpoint.path",
                    cfg.checkpoint_dir().display()
                ))
                .into());
            };
            let SourceIdentity::Postgres {
                system_identifier,
                slot: cp_slot,
                slot_created_at,
                timeline: delivered_on,
                ..
            } = &cp.source
            else {
                return Err(SourceError::Fatal("the checkpoint is not a PostgreSQL checkpoint".into()).into());
            };
            let by_hand = format!(
                "To start over with a fresh snapshot, stop cdcd, move the checkpoint directory {} away, drop the slot if it exists (SELECT pg_drop_replication_slot('{}')), and start again",
                cfg.checkpoint_dir().display(),
                names.slot
            );
            let resnapshot =
                format!("{by_hand}; or set on_slot_lost = \"resnapshot\" for cdcd to do that itself, while streaming.");
            if system_identifier != &system.system_identifier {
                return Err(SourceError::Fatal(format!(
                    "the checkpoint was written for database system {system_identifier}, but the server is system {}: it was replaced or restored, and changes may be missing. {resnapshot}",
                    system.system_identifier
                ))
                .into());
            }
            if cp_slot != &names.slot {
                return Err(SourceError::Fatal(format!(
                    "the checkpoint belongs to slot `{cp_slot}` but the configuration names slot `{}`. Restore source.slot = \"{cp_slot}\", or re-snapshot. {resnapshot}",
                    names.slot
                ))
                .into());
            }
            if let Some(delivered_on) = delivered_on.filter(|_| !standby) {
                if let Some(why) = timeline::divergence(&mut repl, delivered_on, system.timeline, lsn).await? {
                    // No repair: a new slot starts behind what consumers hold, and positions only move forward.
                    return Err(SourceError::Fatal(format!("{why}. {by_hand}.")).into());
                }
            }
            if let Some(why) = slot_repair::problem(&names.slot, slot.as_ref(), lsn, *slot_created_at) {
                if pg.on_slot_lost != OnSlotLost::Resnapshot && pg.snapshot != SnapshotMode::WhenNeeded {
                    return Err(SourceError::Fatal(format!("{why}. {resnapshot}")).into());
                }
                if let Some(s) = &slot {
                    check_slot_owner(s, &names.slot, &system.database)?;
                }
                // Numbered past the checkpoint's plan: only a later step replaces it.
                let mut plan = all_tables(|name| TableProgress::pending(name, SnapshotKind::Incremental, None));
                plan.step = cp.snapshot.as_ref().map_or(0, |s| s.step) + 1;
                let repair = slot_repair::Repair {
                    slot_name: &names.slot,
                    existing: slot.as_ref(),
                    why: &why,
                    checkpoint: lsn,
                    kind: slot_kind,
                    tables: &tables,
                    plan: &plan,
                };
                let at = repair.run(&mut repl, &mut catalog, &ctx, emitter, &resnapshot).await?;
                emitter.set_identity(identity(Some(at)));
                (at, plan)
            } else {
                let Some(s) = slot else {
                    return Err(SourceError::Transient("the replication slot vanished while it was read".into()).into());
                };
                check_slot_owner(&s, &names.slot, &system.database)?;
                if features.failover_slots && !standby {
                    align_failover(&mut repl, &names.slot, &s, slot_kind.failover).await?;
                }
                emitter.set_identity(identity(*slot_created_at));
                // A checkpoint from before snapshots were tracked: every table it knew was read.
                (lsn, cp.snapshot.clone().unwrap_or_else(|| all_tables(TableProgress::streamed_only)))
            }
        }
        (None, Some(s)) if pg.snapshot.reads_existing_rows() => {
            check_slot_owner(s, &names.slot, &system.database)?;
            tracing::warn!(slot = %names.slot, "slot exists but there is no checkpoint: an earlier start did not get to its first checkpoint; dropping the slot and starting again");
            drop_slot(&mut repl, &names.slot).await?;
            let at = create_slot(&mut repl, &names.slot, slot_kind).await?;
            emitter.set_identity(identity(Some(at)));
            (at, all_tables(initial))
        }
        (None, Some(s)) => {
            check_slot_owner(s, &names.slot, &system.database)?;
            let at = s.confirmed_flush.unwrap_or_default();
            emitter.set_identity(identity(None));
            tracing::info!(slot = %names.slot, %at, "no checkpoint; streaming from the existing slot's position (snapshot = \"never\")");
            (at, all_tables(TableProgress::streamed_only))
        }
        (None, None) => {
            let at = create_slot(&mut repl, &names.slot, slot_kind).await?;
            emitter.set_identity(identity(Some(at)));
            let f = if pg.snapshot.reads_existing_rows() { initial } else { TableProgress::streamed_only };
            (at, all_tables(f))
        }
    };
    let table_names: Vec<String> = tables.iter().map(TableRef::to_string).collect();
    let mut changed = reconcile_progress(&mut progress, &table_names, pg.snapshot);
    if progress.tables.iter().any(|t| !t.done && t.streamed_after.is_none()) {
        // Taken after the slot exists: a transaction between the two is both streamed and read
        // (a duplicate), never neither.
        let now: String = catalog
            .client()
            .query_one("SELECT pg_current_snapshot()::text", &[])
            .await
            .map_err(|e| catalog::sql_err("snapshot: reading the current snapshot", e))?
            .get(0);
        for t in progress.tables.iter_mut().filter(|t| !t.done && t.streamed_after.is_none()) {
            t.streamed_after = Some(now.clone());
        }
        changed = true;
    }
    if checkpoint.is_none() || changed {
        progress.step += 1;
        emitter.mark_progress(Position::Postgres { lsn: start }, Arc::new(progress.clone()))?;
    }
    // Logical messages carry the snapshot chunks' watermarks (PostgreSQL 14 and later).
    let can_snapshot = features.messages;
    if !can_snapshot && progress.unfinished().next().is_some() {
        return Err(SourceError::Fatal(
            "snapshots need PostgreSQL 14 or later (logical decoding messages mark where each chunk was read); upgrade the server, or set snapshot = \"never\"".into(),
        )
        .into());
    }
    let tuning = pg.snapshot_tuning();
    let mut snapshotter = can_snapshot.then(|| {
        let settings = snapshot::reader::ReadSettings {
            url: url.clone(),
            application: format!("{}-snapshot", names.application),
            timeout,
            chunk_rows: tuning.chunk_rows,
            limiter: tuning.limiter(),
            statement_timeout: tuning.statement_timeout,
            connector: cfg.name.clone(),
            ctx: ctx.clone(),
            read_only: pg.read_only,
            publications: catalog.publications().to_vec(),
            generated_columns: catalog.generated_publishable(),
        };
        snapshot::Snapshotter::new(settings, tuning.workers, progress.clone(), start)
    });
    if let Some(s) = &mut snapshotter {
        for t in progress.unfinished() {
            let Some((schema, name)) = t.table.split_once('.') else { continue };
            let table = TableRef { schema: schema.to_string(), name: name.to_string() };
            let setup = snapshot::table_setup(&mut catalog, &table, &ctx, tuning.chunk_rows).await?;
            snapshot::exact_on_standby(&setup, standby)?;
            s.add(setup);
        }
        s.launch(emitter);
    }
    let snapshotting = snapshotter.as_ref().is_some_and(snapshot::Snapshotter::is_running);
    let sql = format!(
        "START_REPLICATION SLOT {} LOGICAL {start} ({}, \"publication_names\" {})",
        quote_ident(&names.slot),
        features.pgoutput_options(),
        quote_literal(&publications.join(","))
    );
    let walsender = repl.backend_pid();
    let (reader, writer) = repl.start_replication(&sql).await?;
    *src.last_walsender.lock().unwrap_or_else(|e| e.into_inner()) = walsender;
    tracing::info!(connector = %cfg.name, slot = %names.slot, publications = %publications.join(","), %start, tables = tables.len(), "streaming");
    emitter.set_state(if snapshotting {
        crate::core::status::State::Snapshotting
    } else {
        crate::core::status::State::Streaming
    });
    let _heartbeat = (pg.heartbeat_interval_secs > 0).then(|| {
        let query = pg.heartbeat_query.clone().unwrap_or_else(|| backlog::DEFAULT_HEARTBEAT_QUERY.to_string());
        let interval = Duration::from_secs(pg.heartbeat_interval_secs);
        let application = format!("{}-heartbeat", names.application);
        crate::source::TaskGuard(tokio::spawn(backlog::heartbeat(url.clone(), application, query, interval, timeout)))
    });
    let live = live::LiveTables::new(live::LiveSettings {
        patterns: &pg.tables,
        mode: pg.snapshot,
        names: &names,
        publications: &publications,
        captured: &tables,
        signal,
        discovery_secs: pg.table_discovery_interval_secs,
        chunk_rows: tuning.chunk_rows,
        read_only: pg.read_only,
        on_standby: standby,
    });
    let streamer = stream::Streamer::new(&mut catalog, ctx, emitter, start)
        .with_snapshot(snapshotter)
        .with_live_tables(live)
        .with_read_only_watermarks(pg.read_only)
        .with_initial_only(pg.snapshot == SnapshotMode::InitialOnly);
    let status_interval = Duration::from_secs(pg.status_interval_secs).min(timeout / 3);
    let end = streamer.run(reader, writer, start, durable, status_interval, timeout, shutdown).await?;
    if end == stream::StreamEnd::SnapshotTaken {
        // Nothing streams from the slot again: kept, it would hold WAL on the server forever.
        let mut repl = ReplicationConn::connect(&params, &names.application).await?;
        drop_slot(&mut repl, &names.slot).await?;
        tracing::info!(slot = %names.slot, "snapshot = \"initial_only\": every table was read and checkpointed; dropped the replication slot; stopping");
    }
    Ok(())
}

fn check_slot_owner(s: &catalog::SlotInfo, name: &str, db: &str) -> Result<(), SourceError> {
    if s.plugin.as_deref() != Some("pgoutput") || s.database.as_deref() != Some(db) {
        return Err(SourceError::Fatal(format!(
            "replication slot `{name}` exists but is not a pgoutput slot of database `{db}` (plugin {:?}, database {:?}); choose another source.slot",
            s.plugin, s.database
        )));
    }
    Ok(())
}

/// How the slot is made.
#[derive(Clone, Copy, Debug)]
pub struct SlotKind {
    /// A failover slot (PostgreSQL 17+: standbys with `sync_replication_slots` keep a copy, so
    /// a promoted standby still has it).
    pub failover: bool,
    /// Made on a physical standby (PostgreSQL 16+), which waits for the primary to log the
    /// running transactions before the slot is ready.
    pub on_standby: bool,
}

/// Creates the slot; returns its consistent point. No snapshot is exported: snapshots are
/// read in chunks while streaming.
async fn create_slot(repl: &mut ReplicationConn, slot: &str, kind: SlotKind) -> Result<Lsn, SourceError> {
    let options = if kind.failover { "(SNAPSHOT 'nothing', FAILOVER true)" } else { "NOEXPORT_SNAPSHOT" };
    let sql = format!("CREATE_REPLICATION_SLOT {} LOGICAL pgoutput {options}", quote_ident(slot));
    let created = if kind.on_standby {
        read_only::creating_on_standby(repl.simple_query(&sql)).await
    } else {
        repl.simple_query(&sql).await
    };
    let rows = created.map_err(|e| match e {
        // configuration_limit_exceeded: every slot is taken.
        SourceError::Server(s) if s.code == "53400" => {
            (*s).definite("raise max_replication_slots in postgresql.conf (restart needed) or drop unused slots")
        }
        SourceError::Server(s) if s.code == "42501" => {
            (*s).definite("the source user needs the REPLICATION attribute (ALTER ROLE ... REPLICATION)")
        }
        other => other,
    })?;
    let row = rows.first().ok_or_else(|| SourceError::Transient("CREATE_REPLICATION_SLOT returned no row".into()))?;
    let at: Lsn = row
        .get(1)
        .cloned()
        .flatten()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| SourceError::Transient("CREATE_REPLICATION_SLOT returned no consistent point".into()))?;
    tracing::info!(slot, consistent_point = %at, failover = kind.failover, on_standby = kind.on_standby, "created replication slot");
    Ok(at)
}

/// Drops the slot, waiting for a walsender still using it (a previous session's) to let go.
async fn drop_slot(repl: &mut ReplicationConn, slot: &str) -> Result<(), SourceError> {
    repl.simple_query(&format!("DROP_REPLICATION_SLOT {} WAIT", quote_ident(slot))).await?;
    Ok(())
}

/// Makes an existing slot's `failover` flag what the configuration says (PostgreSQL 17+): a
/// slot made before the upgrade, or by an older cdcd, becomes a failover slot on its next start.
async fn align_failover(
    repl: &mut ReplicationConn,
    slot: &str,
    info: &catalog::SlotInfo,
    failover: bool,
) -> Result<(), SourceError> {
    if info.failover == Some(failover) {
        return Ok(());
    }
    repl.simple_query(&format!("ALTER_REPLICATION_SLOT {} (FAILOVER {failover})", quote_ident(slot))).await?;
    tracing::info!(slot, failover, "changed the replication slot's failover setting (source.slot_failover)");
    Ok(())
}
