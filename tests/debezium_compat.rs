//! Envelope compatibility with real Debezium 3.6.3. `tests/debezium/postgres-3.6.3.json` is
//! what Debezium's PostgreSQL connector emitted (captured with tests/debezium/capture_postgres.py)
//! for the table and statements below; cdcd must produce the same keys, the same envelope and
//! `source` fields, and the same values, except where docs/envelope.md documents a difference:
//! - `numeric` is an exact decimal string (Debezium's default is base64 of the unscaled bytes);
//! - `source.sequence`, `source.origin`, `source.origin_lsn`: cdcd has `position` / `commit_lsn`;

mod support;

use std::collections::BTreeSet;

use serde_json::Value;
use support::*;

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object().map(|o| o.keys().cloned().collect()).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread")]
async fn same_keys_fields_and_values_as_debezium() {
    let fixture: Vec<Value> = serde_json::from_str(include_str!("debezium/postgres-3.6.3.json")).unwrap();
    let dbz: Vec<(Option<Value>, Option<Value>)> = fixture
        .iter()
        .map(|e| {
            let parse = |f: &Value| f.as_str().map(|s| serde_json::from_str::<Value>(s).unwrap());
            (parse(&e["key"]), parse(&e["value"]))
        })
        .collect();

    let db = TestDb::create("dbz").await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2), at timestamptz, j jsonb, b bytea);
         INSERT INTO items VALUES (1, 'one', 1.50, '2024-01-02 03:04:05+00', '{\"x\":1}', '\\x0102');",
    )
    .await
    .unwrap();
    let rig = Rig::new(&db.url, "dbz", r#"["public.items"]"#, "");
    let daemon = Daemon::start(&rig.cfg);
    assert_eq!(read_topics(&rig.broker.bootstrap, &["dbz.public.items"], 1, 60).len(), 1, "{}", daemon.logs());
    c.batch_execute(
        "INSERT INTO items VALUES (2,'two',NULL,NULL,NULL,NULL); UPDATE items SET name='ONE' WHERE id=1; DELETE FROM items WHERE id=2;",
    )
    .await
    .unwrap();
    let mut ours = read_topics(&rig.broker.bootstrap, &["dbz.public.items"], dbz.len(), 60);
    ours.sort_by_key(|r| {
        r.value
            .as_ref()
            .and_then(|v| v["source"]["position"].as_str().map(str::to_string))
            .unwrap_or_else(|| "~".into())
    });
    // Tombstone last after sorting by position; Debezium's fixture is in stream order too.
    assert_eq!(ours.len(), dbz.len(), "{ours:#?}");

    let documented_source_extras: BTreeSet<String> = ["sequence", "origin", "origin_lsn"].map(String::from).into();
    for (i, ((dkey, dval), ours)) in dbz.iter().zip(&ours).enumerate() {
        assert_eq!(&ours.key, dkey, "event {i}: key");
        let (Some(dval), Some(oval)) = (dval, &ours.value) else {
            assert!(dval.is_none() && ours.value.is_none(), "event {i}: tombstone on one side only");
            continue;
        };
        assert_eq!(oval["op"], dval["op"], "event {i}: op");
        let missing: Vec<String> = keys(dval).difference(&keys(oval)).cloned().collect();
        assert!(missing.is_empty(), "event {i}: envelope fields Debezium has and cdcd lacks: {missing:?}");
        let missing: Vec<String> = keys(&dval["source"])
            .difference(&keys(&oval["source"]))
            .filter(|k| !documented_source_extras.contains(*k))
            .cloned()
            .collect();
        assert!(missing.is_empty(), "event {i}: source fields Debezium has and cdcd lacks: {missing:?}");
        for f in ["connector", "db", "schema", "table", "xmin"] {
            assert_eq!(oval["source"][f], dval["source"][f], "event {i}: source.{f}");
        }
        // Debezium's markers (first, true, last, ...): one table read in key order marks alike.
        assert_eq!(oval["source"]["snapshot"], dval["source"]["snapshot"], "event {i}: source.snapshot");
        for image in ["before", "after"] {
            let (d, o) = (&dval[image], &oval[image]);
            assert_eq!(keys(d), keys(o), "event {i}: {image} columns");
            for col in keys(d) {
                if col == "price" && !d[&col].is_null() {
                    assert!(o[&col].is_string(), "numeric is an exact decimal string (documented difference)");
                    continue;
                }
                assert_eq!(o[&col], d[&col], "event {i}: {image}.{col}");
            }
        }
    }
    // Every envelope matches the published JSON Schema's field lists.
    let schema: Value = serde_json::from_str(include_str!("../schemas/envelope.schema.json")).unwrap();
    for r in ours.iter().filter_map(|r| r.value.as_ref()) {
        assert_eq!(keys(r), keys(&schema["properties"]), "envelope fields vs schemas/envelope.schema.json");
        let src = &schema["properties"]["source"];
        let required: BTreeSet<String> =
            src["required"].as_array().unwrap().iter().map(|v| v.as_str().unwrap().to_string()).collect();
        assert!(
            required.is_subset(&keys(&r["source"])),
            "source lacks a required field: {:?}",
            required.difference(&keys(&r["source"]))
        );
        assert!(
            keys(&r["source"]).is_subset(&keys(&src["properties"])),
            "source has a field the schema does not describe"
        );
        let pattern_ok = r["source"]["position"].as_str().is_some_and(|p| p.len() == 29 && p.as_bytes()[16] == b'-');
        assert!(pattern_ok, "position format: {}", r["source"]["position"]);
    }
    assert_eq!(daemon.stop(), Some(0));
}
