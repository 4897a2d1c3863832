//! Snapshot requests made while the stream runs, in the form Debezium users know: a row inserted
//! into a signal table in the source database (`id`, `type`, `data`), read from the log like any
//! other change, so the request takes effect at its place in the log. `cdcd snapshot` writes such
//! a row.
//!
//! Supported: `type = 'execute-snapshot'` with `data` as Debezium writes it,
//! `{"data-collections": ["public.t"], "type": "incremental",
//!   "additional-conditions": [{"data-collection": "public.t", "filter": "id > 10"}]}`
//! (also the older single `"additional-condition": "..."` for every table), and
//! `type = 'stop-snapshot'` with `{"data-collections": [...], "type": "incremental"}` (no
//! collections: every incremental snapshot). Other signal types are logged and ignored.

use serde::Deserialize;

/// The signal type that asks for a snapshot.
pub const EXECUTE_SNAPSHOT: &str = "execute-snapshot";
/// The signal type that stops incremental snapshots.
pub const STOP_SNAPSHOT: &str = "stop-snapshot";

/// What one signal row asks for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signal {
    Execute(SnapshotRequest),
    /// Stop the incremental snapshots of these tables; every one when empty.
    Stop(Vec<String>),
}

/// Signals read in the open transaction, acted on at its commit.
#[derive(Default)]
pub struct Pending {
    /// Tables to snapshot, each with its row filter.
    pub snapshots: Vec<(String, Option<String>)>,
    /// Incremental snapshots to stop: a table, or `None` for every one.
    pub stops: Vec<Option<String>>,
}

impl Pending {
    /// A row inserted into the signal table (its `id`, `type` and `data` columns).
    pub fn row(&mut self, id: &str, kind: &str, data: Option<&str>) {
        match parse(kind, data) {
            Ok(Some(Signal::Execute(req))) => {
                tracing::info!(signal = id, tables = ?req.tables, "snapshot signal");
                self.snapshots.extend(req.tables);
            }
            Ok(Some(Signal::Stop(tables))) => {
                tracing::info!(signal = id, tables = ?tables, "stop-snapshot signal");
                if tables.is_empty() {
                    self.stops.push(None);
                }
                self.stops.extend(tables.into_iter().map(Some));
            }
            Ok(None) => tracing::warn!(signal = id, kind, "signal type not supported by cdcd; ignored"),
            Err(e) => tracing::warn!(signal = id, "signal ignored: {e}"),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.snapshots.is_empty() && self.stops.is_empty()
    }
}

/// Tables to snapshot again, each with an optional row filter (an SQL condition).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SnapshotRequest {
    pub tables: Vec<(String, Option<String>)>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct ExecuteSnapshot {
    data_collections: Vec<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
    #[serde(default)]
    additional_conditions: Vec<Condition>,
    #[serde(default)]
    additional_condition: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct StopSnapshot {
    #[serde(default)]
    data_collections: Vec<String>,
    #[serde(default, rename = "type")]
    kind: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Condition {
    data_collection: String,
    filter: String,
}

/// Reads one signal row. `Ok(None)`: a signal of another type (not for snapshots).
pub fn parse(kind: &str, data: Option<&str>) -> Result<Option<Signal>, String> {
    if kind.eq_ignore_ascii_case(STOP_SNAPSHOT) {
        let s: StopSnapshot = match data.filter(|d| !d.trim().is_empty()) {
            Some(d) => serde_json::from_str(d).map_err(|e| format!("its data is not valid: {e}"))?,
            None => StopSnapshot { data_collections: Vec::new(), kind: None },
        };
        only_incremental(s.kind.as_deref())?;
        return Ok(Some(Signal::Stop(s.data_collections.iter().map(|t| unquote(t)).collect())));
    }
    if !kind.eq_ignore_ascii_case(EXECUTE_SNAPSHOT) {
        return Ok(None);
    }
    let data = data.ok_or("an execute-snapshot signal needs data naming its data-collections")?;
    let s: ExecuteSnapshot = serde_json::from_str(data).map_err(|e| format!("its data is not valid: {e}"))?;
    only_incremental(s.kind.as_deref())?;
    if s.data_collections.is_empty() {
        return Err("data-collections is empty".into());
    }
    let tables = s
        .data_collections
        .iter()
        .map(|t| {
            let name = unquote(t);
            let filter = s
                .additional_conditions
                .iter()
                .find(|c| unquote(&c.data_collection) == name)
                .map(|c| c.filter.clone())
                .or_else(|| s.additional_condition.clone())
                .filter(|f| !f.trim().is_empty());
            (name, filter)
        })
        .collect();
    Ok(Some(Signal::Execute(SnapshotRequest { tables })))
}

fn only_incremental(kind: Option<&str>) -> Result<(), String> {
    match kind.filter(|k| !k.eq_ignore_ascii_case("incremental")) {
        Some(k) => Err(format!("snapshot type {k:?} is not supported; cdcd runs incremental snapshots")),
        None => Ok(()),
    }
}

/// The `data` of an execute-snapshot signal for one table.
pub fn execute_snapshot_data(table: &str, filter: Option<&str>) -> String {
    let mut v = serde_json::json!({ "data-collections": [table], "type": "incremental" });
    if let Some(f) = filter {
        v["additional-conditions"] = serde_json::json!([{ "data-collection": table, "filter": f }]);
    }
    v.to_string()
}

/// `"public"."t"` or `public.t` as `public.t`.
fn unquote(name: &str) -> String {
    name.split('.').map(|p| p.trim().trim_matches('"').trim_matches('`')).collect::<Vec<_>>().join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_debezium_signals_and_refuses_what_it_cannot_do() {
        // As in Debezium's documentation for incremental snapshots.
        let data = r#"{"data-collections": ["schema1.table1", "schema1.table2"], "type": "incremental",
            "additional-conditions": [{"data-collection": "schema1.table1", "filter": "color='blue'"}]}"#;
        let Some(Signal::Execute(r)) = parse("execute-snapshot", Some(data)).unwrap() else { panic!("not execute") };
        assert_eq!(
            r.tables,
            [("schema1.table1".to_string(), Some("color='blue'".to_string())), ("schema1.table2".to_string(), None)]
        );
        let old = r#"{"data-collections": ["\"public\".\"t\""], "additional-condition": "id > 5"}"#;
        assert_eq!(
            parse("execute-snapshot", Some(old)).unwrap(),
            Some(Signal::Execute(SnapshotRequest { tables: vec![("public.t".into(), Some("id > 5".into()))] }))
        );
        assert_eq!(parse("log", Some("{}")).unwrap(), None);
        assert!(parse("execute-snapshot", Some(r#"{"data-collections": ["a.b"], "type": "blocking"}"#)).is_err());
        assert!(parse("execute-snapshot", Some("not json")).is_err());
        assert!(parse("execute-snapshot", None).is_err());
        let made = execute_snapshot_data("public.t", Some("id > 5"));
        assert_eq!(
            parse(EXECUTE_SNAPSHOT, Some(&made)).unwrap(),
            Some(Signal::Execute(SnapshotRequest { tables: vec![("public.t".into(), Some("id > 5".into()))] }))
        );
        // stop-snapshot as Debezium documents it; without collections it stops every one.
        let stop = r#"{"data-collections": ["schema1.table1", "\"s\".\"t\""], "type": "INCREMENTAL"}"#;
        assert_eq!(
            parse("stop-snapshot", Some(stop)).unwrap(),
            Some(Signal::Stop(vec!["schema1.table1".into(), "s.t".into()]))
        );
        assert_eq!(parse("stop-snapshot", Some(r#"{"type": "incremental"}"#)).unwrap(), Some(Signal::Stop(vec![])));
        assert_eq!(parse("stop-snapshot", None).unwrap(), Some(Signal::Stop(vec![])));
        assert!(parse("stop-snapshot", Some(r#"{"type": "blocking"}"#)).is_err());
        let mut pending = Pending::default();
        pending.row("1", "stop-snapshot", None);
        pending.row("2", "execute-snapshot", Some(&made));
        pending.row("3", "log", Some("{}"));
        assert_eq!(pending.stops, [None]);
        assert_eq!(pending.snapshots, [("public.t".to_string(), Some("id > 5".to_string()))]);
    }
}
