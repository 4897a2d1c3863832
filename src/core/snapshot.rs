//! Snapshot progress, as kept in the checkpoint next to the log position, and how snapshot rows
//! are marked in the envelope.
//!
//! A snapshot reads each table in key-ordered chunks while the log streams (see the sources'
//! `snapshot` modules). Every chunk whose rows were delivered moves its table's `done_upto`
//! forward, and the progress rides to the checkpoint through the acknowledgement tracker, in log
//! order with the stream's transactions. `step` grows with every recorded change, so a
//! checkpoint at the same log position but with more snapshot progress is the newer one, and the
//! store's never-backwards rule covers snapshots too.

use serde::{Deserialize, Serialize};

/// Why a table is (or was) snapshotted.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotKind {
    /// Part of the connector's first snapshot.
    Initial,
    /// Started later: a table newly matched by the include list, or asked for on demand.
    Incremental,
}

/// Where one table's snapshot stands.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableProgress {
    /// `schema.table` (PostgreSQL) or `database.table` (MySQL), unquoted.
    pub table: String,
    pub kind: SnapshotKind,
    /// Every row with a key up to and including this one (the text form of each key column,
    /// in key order) has been delivered; `None`: nothing yet.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub done_upto: Option<Vec<String>>,
    /// The table has been read to its end (or was never to be read: `snapshot = "never"`).
    pub done: bool,
    /// Rows delivered so far by this table's snapshot.
    #[serde(default)]
    pub rows: u64,
    /// An SQL condition limiting an on-demand snapshot to some rows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<String>,
    /// The source's view of committed transactions when streaming of this table began, in the
    /// source's own text form. A table without a key cannot drop rows by key, so its snapshot
    /// skips the rows written by transactions this view does not contain: the log has them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streamed_after: Option<String>,
}

impl TableProgress {
    pub fn pending(table: String, kind: SnapshotKind, filter: Option<String>) -> Self {
        TableProgress { table, kind, done_upto: None, done: false, rows: 0, filter, streamed_after: None }
    }

    /// A table that streams without being read (it was known before snapshots were tracked,
    /// or the connector does not snapshot).
    pub fn streamed_only(table: String) -> Self {
        TableProgress {
            table,
            kind: SnapshotKind::Initial,
            done_upto: None,
            done: true,
            rows: 0,
            filter: None,
            streamed_after: None,
        }
    }
}

/// Every captured table's snapshot state. A table missing from `tables` is new to the connector.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotProgress {
    pub step: u64,
    pub tables: Vec<TableProgress>,
}

impl SnapshotProgress {
    pub fn table(&self, name: &str) -> Option<&TableProgress> {
        self.tables.iter().find(|t| t.table == name)
    }

    pub fn table_mut(&mut self, name: &str) -> Option<&mut TableProgress> {
        self.tables.iter_mut().find(|t| t.table == name)
    }

    /// Tables still to be read, in the order they were added.
    pub fn unfinished(&self) -> impl Iterator<Item = &TableProgress> {
        self.tables.iter().filter(|t| !t.done)
    }

    /// Whether a snapshot of the initial kind is still going (a restarted initial snapshot
    /// keeps its `first`/`last` markers).
    pub fn initial_running(&self) -> bool {
        self.tables.iter().any(|t| !t.done && t.kind == SnapshotKind::Initial)
    }
}

/// `source.snapshot` of an event, as Debezium writes it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SnapshotMarker {
    /// A streamed change.
    No,
    /// The first row of the initial snapshot.
    First,
    /// The first row of a table other than the first, in the initial snapshot.
    FirstInTable,
    /// Any other row of the initial snapshot.
    Yes,
    /// The last row of a table other than the last, in the initial snapshot.
    LastInTable,
    /// The last row of the initial snapshot.
    Last,
    /// A row of an incremental (later or on-demand) snapshot.
    Incremental,
}

impl SnapshotMarker {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotMarker::No => "false",
            SnapshotMarker::First => "first",
            SnapshotMarker::FirstInTable => "first_in_data_collection",
            SnapshotMarker::Yes => "true",
            SnapshotMarker::LastInTable => "last_in_data_collection",
            SnapshotMarker::Last => "last",
            SnapshotMarker::Incremental => "incremental",
        }
    }

    pub fn is_snapshot(self) -> bool {
        self != SnapshotMarker::No
    }
}

/// The Connect schema of `source.snapshot`, as Debezium declares it (an enum with a default).
pub fn snapshot_field_schema() -> crate::core::connect::Schema {
    crate::core::connect::Schema::string()
        .optional()
        .logical("io.debezium.data.Enum")
        .param("allowed", "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental")
        .default_str("false")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_round_trips_and_old_checkpoints_read() {
        let mut p = SnapshotProgress::default();
        p.tables.push(TableProgress::pending("public.a".into(), SnapshotKind::Initial, None));
        p.tables.push(TableProgress::streamed_only("public.b".into()));
        p.table_mut("public.a").unwrap().done_upto = Some(vec!["42".into(), "x\ty".into()]);
        let json = serde_json::to_string(&p).unwrap();
        let back: SnapshotProgress = serde_json::from_str(&json).unwrap();
        assert_eq!(back, p);
        assert_eq!(back.unfinished().map(|t| t.table.as_str()).collect::<Vec<_>>(), ["public.a"]);
        assert!(back.initial_running());
        // A minimal entry (fields added later default).
        let t: TableProgress = serde_json::from_str(r#"{"table":"s.t","kind":"incremental","done":false}"#).unwrap();
        assert_eq!((t.rows, t.done_upto, t.filter), (0, None, None));
    }
}
