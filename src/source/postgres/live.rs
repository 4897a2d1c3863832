//! Tables that change while the stream runs: a new table that matches a `tables` wildcard joins
//! the publication and is snapshotted incrementally, and a row inserted into the signal table
//! asks for a table to be snapshotted again (Debezium's `execute-snapshot`). Both take effect
//! between two transactions, with the request checkpointed first, so a crash does not lose it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::catalog::{sql_err, Catalog, TableRef};
use super::relation::SourceContext;
use super::snapshot::{self, Snapshotter};
use super::Names;
use crate::config::{PostgresSourceConfig, SnapshotMode};
use crate::core::snapshot::SnapshotProgress;
use crate::core::status::State;
use crate::emit::Emitter;
use crate::error::{SessionError, SourceError};
use crate::source::chunks::signal;
use crate::source::tables::TableSelection;

/// The columns of a signal table, as Debezium has them.
pub const SIGNAL_TABLE_DDL: &str = "(id varchar(64) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048))";

pub struct LiveTables {
    /// The `tables` patterns with a `*`: only those can match a table created later.
    wildcards: TableSelection,
    mode: SnapshotMode,
    publication: String,
    insert_publication: String,
    /// Whether the insert-only publication is part of this stream.
    streams_inserts: bool,
    captured: BTreeSet<TableRef>,
    signal: Option<TableRef>,
    discovery: Option<Duration>,
    next_discovery: Instant,
    chunk_rows: u32,
    /// Decoding from a standby: tables without a unique key cannot be snapshotted exactly.
    on_standby: bool,
    /// `source.read_only`: publications are not changed; a new table is captured once one holds it.
    read_only: Option<ReadOnly>,
    /// Signals read in the open transaction, acted on at its commit.
    signals: signal::Pending,
}

/// What the stream keeps for tables that may change while it runs.
pub struct LiveSettings<'a> {
    pub patterns: &'a TableSelection,
    pub mode: SnapshotMode,
    pub names: &'a Names,
    pub publications: &'a [String],
    pub captured: &'a [TableRef],
    pub signal: Option<TableRef>,
    pub discovery_secs: u64,
    pub chunk_rows: u32,
    pub read_only: bool,
    pub on_standby: bool,
}

/// What read-only discovery keeps: the publications streamed, and the tables already named
/// as missing from them (each is named once).
struct ReadOnly {
    publications: Vec<String>,
    told: BTreeSet<TableRef>,
}

impl LiveTables {
    pub fn new(s: LiveSettings<'_>) -> Self {
        let discovery = (s.discovery_secs > 0).then(|| Duration::from_secs(s.discovery_secs));
        LiveTables {
            wildcards: s.patterns.wildcards(),
            mode: s.mode,
            publication: s.names.publication.clone(),
            insert_publication: s.names.insert_publication.clone(),
            streams_inserts: s.publications.contains(&s.names.insert_publication),
            captured: s.captured.iter().cloned().collect(),
            signal: s.signal,
            next_discovery: Instant::now() + discovery.unwrap_or_default(),
            discovery,
            chunk_rows: s.chunk_rows,
            on_standby: s.on_standby,
            read_only: s.read_only.then(|| ReadOnly { publications: s.publications.to_vec(), told: BTreeSet::new() }),
            signals: signal::Pending::default(),
        }
    }

    /// Whether the stream publishes the table's changes (or reads it as the signal table).
    pub fn captures(&self, table: &TableRef) -> bool {
        self.captured.contains(table) || self.is_signal(table)
    }

    pub fn is_signal(&self, table: &TableRef) -> bool {
        self.signal.as_ref() == Some(table)
    }

    /// A row inserted into the signal table (its `id`, `type` and `data` columns).
    pub fn signal_row(&mut self, id: &str, kind: &str, data: Option<&str>) {
        self.signals.row(id, kind, data);
    }

    /// When the next look for new tables is due, if cdcd looks.
    pub fn next_discovery(&self) -> Option<Instant> {
        self.discovery.map(|_| self.next_discovery)
    }

    /// Whether there is work for [`LiveTables::apply`] between transactions.
    pub fn due(&self) -> bool {
        !self.signals.is_empty() || self.discovery.is_some() && Instant::now() >= self.next_discovery
    }

    /// Signals wait for their transaction's commit.
    pub fn has_requests(&self) -> bool {
        !self.signals.is_empty()
    }

    /// Adds newly matching tables (when due) and starts the snapshots asked for. Returns the
    /// progress to checkpoint with the place the stream is at: the caller commits it with the
    /// signals' transaction, or marks it between transactions.
    pub async fn apply(
        &mut self,
        catalog: &mut Catalog,
        snapshotter: Option<&mut Snapshotter>,
        emitter: &Emitter,
        ctx: &SourceContext,
    ) -> Result<Option<Arc<SnapshotProgress>>, SessionError> {
        let mut snapshotter = snapshotter;
        // Stops first: a transaction that stops a table's snapshot and asks for it again
        // restarts it.
        let mut progress = None;
        for stop in std::mem::take(&mut self.signals.stops) {
            if let Some(p) = snapshotter.as_deref_mut().and_then(|s| s.stop(stop.as_deref(), emitter)) {
                progress = Some(p);
            }
        }
        // (table, row filter, asked for by a signal)
        let mut wanted: Vec<(TableRef, Option<String>, bool)> = Vec::new();
        if let Some(every) = self.discovery.filter(|_| Instant::now() >= self.next_discovery) {
            self.next_discovery = Instant::now() + every;
            wanted.extend(self.discover(catalog).await?.into_iter().map(|t| (t, None, false)));
        }
        for (name, filter) in std::mem::take(&mut self.signals.snapshots) {
            match self.captured.iter().find(|t| t.to_string() == name) {
                Some(t) => wanted.push((t.clone(), filter, true)),
                None => {
                    tracing::warn!(table = %name, "snapshot asked for a table this connector does not capture; ignored")
                }
            }
        }
        if wanted.is_empty() {
            return Ok(progress);
        }
        let Some(snapshotter) = snapshotter else {
            tracing::warn!(
                "snapshots while streaming need PostgreSQL 14 or later; the tables stream without their existing rows"
            );
            return Ok(None);
        };
        for (table, filter, asked) in wanted {
            let name = table.to_string();
            if !asked && self.mode == SnapshotMode::Never {
                progress = Some(snapshotter.streamed_only(&name));
                continue;
            }
            let setup = snapshot::table_setup(catalog, &table, ctx, self.chunk_rows).await?;
            if let Err(e) = snapshot::exact_on_standby(&setup, self.on_standby) {
                // Streaming goes on; the table's existing rows are not read (said once per request).
                tracing::error!(table = %name, "snapshot not taken: {e}");
                continue;
            }
            // Not cut by a unique key, rows cannot be dropped by key: skip the rows of
            // transactions this view cannot see, the log has them.
            let streamed_after = if setup.chunk_key.is_empty() { Some(current_snapshot(catalog).await?) } else { None };
            progress = Some(snapshotter.request(&name, filter, streamed_after));
            snapshotter.add(setup);
        }
        if snapshotter.is_running() {
            snapshotter.launch(emitter);
            emitter.set_state(State::Snapshotting);
        }
        Ok(progress)
    }

    /// Tables created since the last look that match a wildcard: added to the publication.
    async fn discover(&mut self, catalog: &mut Catalog) -> Result<Vec<TableRef>, SessionError> {
        if self.wildcards.include.is_empty() {
            return Ok(Vec::new());
        }
        let new: Vec<TableRef> = catalog
            .resolve_tables(&self.wildcards)
            .await?
            .into_iter()
            .filter(|t| !self.captured.contains(t) && self.signal.as_ref() != Some(t))
            .collect();
        let mut added = Vec::new();
        for t in new {
            if let Some(ro) = self.read_only.as_mut() {
                if !super::read_only::may_capture(catalog, &ro.publications, &t, &mut ro.told).await? {
                    continue;
                }
            } else if catalog.table_meta_by_name(&t).await?.publishes_updates() {
                catalog.ensure_publication(&self.publication, std::slice::from_ref(&t), None, true).await?;
            } else {
                catalog
                    .ensure_publication(
                        &self.insert_publication,
                        std::slice::from_ref(&t),
                        Some("insert, truncate"),
                        true,
                    )
                    .await?;
                if !self.streams_inserts {
                    // A running stream cannot add a publication: the next session reads it, and
                    // snapshots the table then (the checkpoint does not know it yet).
                    return Err(SourceError::Transient(format!(
                        "new table {t} has no replica identity; restarting the stream to read publication {}",
                        self.insert_publication
                    ))
                    .into());
                }
            }
            tracing::info!(table = %t, "new table matches source.tables: captured from now on, its existing rows snapshotted while streaming");
            self.captured.insert(t.clone());
            added.push(t);
        }
        Ok(added)
    }
}

/// `schema.table` (or `table`, in `public`) as configured in `signal_table`.
pub fn signal_ref(name: &str) -> TableRef {
    let (schema, table) = name.split_once('.').unwrap_or(("public", name));
    TableRef { schema: schema.to_string(), name: table.to_string() }
}

/// The configured signal table, which must exist with Debezium's columns.
pub async fn signal_table(catalog: &Catalog, pg: &PostgresSourceConfig) -> Result<Option<TableRef>, SourceError> {
    let Some(name) = &pg.signal_table else { return Ok(None) };
    let t = signal_ref(name);
    let Some(oid) = catalog.table_oid(&t).await? else {
        return Err(SourceError::Fatal(format!(
            "source.signal_table {name} does not exist; create it: CREATE TABLE {} {SIGNAL_TABLE_DDL}",
            t.quoted()
        )));
    };
    let meta = catalog.table_meta(oid).await?;
    for col in ["id", "type", "data"] {
        if !meta.columns.iter().any(|c| c.name == *col) {
            return Err(SourceError::Fatal(format!(
                "source.signal_table {name} has no column `{col}`; it needs Debezium's columns {SIGNAL_TABLE_DDL}"
            )));
        }
    }
    Ok(Some(t))
}

async fn current_snapshot(catalog: &Catalog) -> Result<String, SourceError> {
    let row = catalog
        .client()
        .query_one("SELECT pg_current_snapshot()::text", &[])
        .await
        .map_err(|e| sql_err("snapshot: reading the current snapshot", e))?;
    Ok(row.get(0))
}
