//! Comparing cdcd's typed events with what real Debezium 3.6.3 emitted for the same rows: the
//! fixtures `tests/debezium/types-*.json` (captured with tests/debezium/capture_types.py from
//! the table in tests/debezium/all_types_postgres.sql, database and connector `dbzt`).

use serde_json::Value;

use super::Rec;

/// The captured rows again as streamed inserts (ids + 10), and one more `pairs` row.
pub const STREAMED: &str = "INSERT INTO all_types SELECT id + 10, c_smallint, c_integer, c_bigint, c_oid, c_real, c_double, c_numeric, c_numeric_free, c_bool, c_text, c_varchar, c_char, c_name, c_uuid, c_enum, c_money, c_inet, c_cidr, c_macaddr, c_xml, c_bit1, c_bit, c_varbit, c_point, c_range, c_bytea, c_json, c_jsonb, c_date, c_timestamp, c_timestamp3, c_timestamptz, c_time, c_time3, c_timetz, c_interval, c_int_array, c_text_array, c_domain FROM all_types_src; INSERT INTO pairs VALUES (3, 'y', 30);";

pub fn fixture(variant: &str) -> Vec<(String, Value, Value)> {
    let path = format!("{}/tests/debezium/types-{variant}.json", env!("CARGO_MANIFEST_DIR"));
    let events: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    events
        .iter()
        .map(|e| {
            let parse = |f: &Value| serde_json::from_str::<Value>(f.as_str().unwrap()).unwrap();
            (e["topic"].as_str().unwrap().to_string(), parse(&e["key"]), parse(&e["value"]))
        })
        .collect()
}

/// The row id of an event, whichever shape (with or without schemas) it has.
pub fn payload(v: &Value) -> &Value {
    v.get("payload").unwrap_or(v)
}

/// The fixture table's DDL and snapshot rows.
pub fn all_types_sql() -> String {
    std::fs::read_to_string(format!("{}/tests/debezium/all_types_postgres.sql", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Where cdcd and Debezium are documented to differ, for `after.<column>` of row `id`.
fn documented_difference(id: i64, column: &str) -> bool {
    (id > 10 && column == "c_name") || ((id == 3 || id == 13) && column == "c_text_array")
}

pub fn compare(variant: &str, ours: &[Rec]) {
    let theirs = fixture(variant);
    assert_eq!(ours.len(), theirs.len());
    let mut compared = 0;
    for (topic, dkey, dval) in &theirs {
        let ours = ours
            .iter()
            .find(|r| &r.topic == topic && r.key.as_ref().map(payload) == Some(payload(dkey)))
            .unwrap_or_else(|| panic!("{variant}: no event for key {dkey} in {topic}"));
        assert_eq!(ours.key.as_ref(), Some(dkey), "{variant}: key (schema and payload) of {dkey}");
        let oval = ours.value.as_ref().unwrap();
        let (dp, op) = (payload(dval), payload(oval));
        assert_eq!(op["op"], dp["op"], "{variant} {dkey}: op");
        let id = dp["after"]["id"].as_i64().or(dp["after"]["a"].as_i64()).unwrap();
        for (col, dv) in dp["after"].as_object().unwrap() {
            if documented_difference(id, col) {
                continue;
            }
            assert_eq!(&op["after"][col], dv, "{variant}: after.{col} of row {id}");
            compared += 1;
        }
        assert_eq!(op["after"].as_object().unwrap().len(), dp["after"].as_object().unwrap().len());
        for f in ["connector", "name", "db", "schema", "table", "xmin", "origin", "origin_lsn"] {
            assert_eq!(op["source"][f], dp["source"][f], "{variant} {dkey}: source.{f}");
        }
        // Which table's rows come first in a parallel snapshot varies (Debezium reads tables in
        // turn), so `first`/`last` are compared as the per-table markers they imply.
        let marker = |v: &Value| match v.as_str() {
            Some("first") => "first_in_data_collection".to_string(),
            Some("last") => "last_in_data_collection".to_string(),
            other => other.unwrap_or_default().to_string(),
        };
        assert_eq!(marker(&op["source"]["snapshot"]), marker(&dp["source"]["snapshot"]), "{variant} {dkey}: snapshot");
        if let Some(dschema) = dval.get("schema") {
            // The schema as a whole, with the one value that cannot match: the row for a
            // row's schema is the same; only the envelope's source block carries cdcd's version.
            assert_eq!(&oval["schema"], dschema, "{variant} {dkey}: value schema");
        }
    }
    assert!(compared > 200, "{variant}: compared {compared} column values");
}
