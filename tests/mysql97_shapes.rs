//! What only Oracle MySQL writes (issue 21, item 3), live on MySQL 9.7:
//! - `VECTOR` columns, snapshot and stream, in cdcd's JSON and in Debezium's `FloatVector`;
//! - tagged GTIDs (`gtid_next = 'AUTOMATIC:tag'`): kept in the checkpoint, resumed from exactly;
//! - `CREATE TABLE ... SELECT`, which MySQL 8.0.21+ logs as one transaction (the DDL and its rows
//!   between BEGIN and COMMIT), beside other statements that bring their own framing.
//!
//! Compressed transaction payloads run under kill -9 in the savepoint torture
//! (`tests/crash_loops.rs`) and the differential test; generated invisible primary keys change a
//! global setting and run in `tests/mysql97_server_settings.rs`.

mod support;

use std::time::Duration;

use mysql_async::prelude::*;
use serde_json::{json, Value};
use support::*;

fn last_after(recs: &[Rec], id: i64) -> Value {
    recs.iter()
        .rev()
        .filter_map(|r| r.value.as_ref())
        .find(|v| v["after"]["id"] == id)
        .map(|v| v["after"].clone())
        .unwrap_or(Value::Null)
}

#[tokio::test(flavor = "multi_thread")]
async fn vector_columns_are_float_arrays_in_snapshot_and_stream() {
    let url = mysql97_url();
    let mut c = mysql_db_at(&url, "m97_vec").await;
    c.query_drop("CREATE TABLE v (id INT PRIMARY KEY, e VECTOR(3), big VECTOR(1024), note TEXT)").await.unwrap();
    c.query_drop(
        "INSERT INTO v VALUES (1, STRING_TO_VECTOR('[1.5,2,-3.25]'), NULL, 'snap'), (2, NULL, NULL, 'null vector')",
    )
    .await
    .unwrap();
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let friendly =
        write_mysql_config_at(dir.path(), "m97vec", &url, r#"["m97_vec.v"]"#, 5711, &kafka_sink(&broker.bootstrap), "");
    let typed = write_mysql_config_at(
        dir.path(),
        "m97vecdbz",
        &url,
        r#"["m97_vec.v"]"#,
        5712,
        &(kafka_sink(&broker.bootstrap) + "encoding = \"debezium\"\n"),
        "",
    );
    let (a, b) = (Daemon::start(&friendly), Daemon::start(&typed));
    let big: Vec<String> = (0..1024).map(|i| format!("{}", i as f32 * 0.25 - 100.0)).collect();
    assert!(wait_until(Duration::from_secs(30), || a.logs().contains("snapshot finished")), "{}", a.logs());
    c.query_drop("INSERT INTO v VALUES (3, STRING_TO_VECTOR('[0.1,-0,3.4028235e38]'), NULL, 'streamed')")
        .await
        .unwrap();
    c.query_drop(format!("UPDATE v SET big = STRING_TO_VECTOR('[{}]'), e = NULL WHERE id = 1", big.join(",")))
        .await
        .unwrap();

    let recs = read_topics(&broker.bootstrap, &["m97vec.m97_vec.v"], 4, 60);
    let snap = recs.iter().find(|r| r.op() == Some("r") && r.value.as_ref().unwrap()["after"]["id"] == 1);
    assert_eq!(snap.unwrap().value.as_ref().unwrap()["after"]["e"], json!([1.5, 2, -3.25]), "{}", a.logs());
    assert_eq!(last_after(&recs, 2)["e"], Value::Null);
    // The sign of a negative zero is kept, as the server stores it.
    assert_eq!(last_after(&recs, 3)["e"], json!([0.1, -0.0, 3.4028235e38]), "{}", a.logs());
    let one = last_after(&recs, 1);
    assert_eq!(one["e"], Value::Null);
    let want: Vec<f64> = (0..1024).map(|i| f64::from(i as f32 * 0.25 - 100.0)).collect();
    let got: Vec<f64> = one["big"].as_array().map(|a| a.iter().filter_map(Value::as_f64).collect()).unwrap_or_default();
    assert_eq!(got, want, "a 1024-dimension vector streamed whole");

    // Debezium's encoding: an array of FLOAT32 named io.debezium.data.FloatVector.
    let recs = read_topics(&broker.bootstrap, &["m97vecdbz.m97_vec.v"], 4, 60);
    let v = recs.iter().rev().find_map(|r| r.value.clone()).expect("a typed record");
    let field = |name: &str| {
        v["schema"]["fields"]
            .as_array()
            .and_then(|f| f.iter().find(|f| f["field"] == "after"))
            .and_then(|after| after["fields"].as_array())
            .and_then(|f| f.iter().find(|f| f["field"] == name))
            .cloned()
            .unwrap_or(Value::Null)
    };
    let e = field("e");
    assert_eq!(e["type"], "array", "{e}");
    assert_eq!(e["name"], "io.debezium.data.FloatVector", "{e}");
    assert_eq!(e["items"]["type"], "float", "{e}");
    let three = recs
        .iter()
        .filter_map(|r| r.value.as_ref())
        .find(|v| v["payload"]["after"]["id"] == 3)
        .map(|v| v["payload"]["after"]["e"].clone());
    assert_eq!(three, Some(json!([0.1, -0.0, 3.4028235e38])), "{}", b.logs());
    for d in [&a, &b] {
        assert!(!d.logs().contains("ERROR"), "{}", d.logs());
    }
    assert_eq!(a.stop(), Some(0));
    assert_eq!(b.stop(), Some(0));
}

/// Inserts ids `from..to`, one transaction each, untagged or under one of two tags in turn.
async fn write_tagged(c: &mut mysql_async::Conn, from: i32, to: i32) {
    for id in from..to {
        let gtid = ["AUTOMATIC", "AUTOMATIC:cdcd_tag", "AUTOMATIC:other_7"][id as usize % 3];
        c.query_drop(format!("SET gtid_next = '{gtid}'")).await.unwrap();
        c.query_drop(format!("INSERT INTO t VALUES ({id}, '{gtid}')")).await.unwrap();
    }
    c.query_drop("SET gtid_next = 'AUTOMATIC'").await.unwrap();
}

/// Tagged and untagged transactions, written while cdcd runs and while it is stopped: the
/// checkpoint's GTID set names the tags, and a restart streams exactly what it had not seen,
/// neither re-reading the tagged transactions nor skipping any.
#[tokio::test(flavor = "multi_thread")]
async fn tagged_gtids_are_checkpointed_and_resumed_exactly() {
    let url = mysql97_url();
    let mut c = mysql_db_at(&url, "m97_tags").await;
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)").await.unwrap();
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_mysql_config_at(
        dir.path(),
        "m97tags",
        &url,
        r#"["m97_tags.t"]"#,
        5713,
        &kafka_sink(&broker.bootstrap),
        "snapshot = \"never\"",
    );
    let daemon = Daemon::start(&cfg);
    assert!(wait_until(Duration::from_secs(30), || daemon.logs().contains("streaming binlog")), "{}", daemon.logs());
    write_tagged(&mut c, 0, 30).await;
    let (target, count) = gtid_target(&mut c).await;
    assert!(target.contains(":cdcd_tag:") && target.contains(":other_7:"), "{target}");
    wait_for_checkpoint(dir.path(), "m97tags", &daemon, Duration::from_secs(30), |cp| {
        count(cp["position"]["gtid"].as_str().unwrap_or("")) >= count(&target)
    });
    let gtid = checkpoint(dir.path(), "m97tags").unwrap()["position"]["gtid"].as_str().unwrap_or("").to_string();
    assert!(gtid.contains(":cdcd_tag:") && gtid.contains(":other_7:"), "{gtid}");
    assert_eq!(daemon.stop(), Some(0));

    write_tagged(&mut c, 30, 60).await;
    let daemon = Daemon::start(&cfg);
    let recs = read_topics(&broker.bootstrap, &["m97tags.m97_tags.t"], 60, 60);
    let mut ids: Vec<i64> = recs.iter().filter_map(|r| r.value.as_ref()?["after"]["id"].as_i64()).collect();
    ids.sort();
    assert_eq!(ids, (0..60).collect::<Vec<_>>(), "each tagged and untagged insert exactly once: {}", daemon.logs());
    assert!(!daemon.logs().contains("ERROR"), "{}", daemon.logs());
    assert_eq!(daemon.stop(), Some(0));
}

/// `CREATE TABLE ... SELECT` is one transaction in MySQL 8.0.21+: GTID, BEGIN, the DDL ending in
/// `START TRANSACTION`, the rows, COMMIT. The new table's rows are its creation; the statements
/// around it (plain DDL, account management, REPLACE, INSERT ... ON DUPLICATE KEY UPDATE,
/// a multi-table DELETE, a trigger's rows) stream in order, and the checkpoint passes them all.
#[tokio::test(flavor = "multi_thread")]
async fn create_table_select_and_self_framed_statements_stream_in_order() {
    let url = mysql97_url();
    let mut c = mysql_db_at(&url, "m97_ctas").await;
    c.query_drop("CREATE TABLE src (id INT PRIMARY KEY, v TEXT)").await.unwrap();
    c.query_drop("INSERT INTO src VALUES (1, 'a'), (2, 'b'), (3, 'c')").await.unwrap();
    c.query_drop("CREATE TABLE audit (id INT AUTO_INCREMENT PRIMARY KEY, what TEXT)").await.unwrap();
    c.query_drop("CREATE TRIGGER src_del AFTER DELETE ON src FOR EACH ROW INSERT INTO audit (what) VALUES (CONCAT('deleted ', OLD.id))")
        .await
        .unwrap();
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_mysql_config_at(
        dir.path(),
        "m97ctas",
        &url,
        r#"["m97_ctas.*"]"#,
        5714,
        &kafka_sink(&broker.bootstrap),
        "",
    );
    let daemon = Daemon::start(&cfg);
    assert!(wait_until(Duration::from_secs(30), || daemon.logs().contains("snapshot finished")), "{}", daemon.logs());
    for sql in [
        "CREATE TABLE copy (PRIMARY KEY (id)) SELECT id, UPPER(v) AS v FROM src",
        "CREATE USER IF NOT EXISTS 'm97_ctas_u'@'%' IDENTIFIED BY 'x'",
        "ALTER USER 'm97_ctas_u'@'%' IDENTIFIED BY 'y'",
        "DROP USER 'm97_ctas_u'@'%'",
        "ANALYZE TABLE src",
        "REPLACE INTO src VALUES (2, 'replaced'), (4, 'new')",
        "INSERT INTO src VALUES (3, 'x') ON DUPLICATE KEY UPDATE v = 'upserted'",
        "DELETE src, copy FROM src JOIN copy ON src.id = copy.id WHERE src.id = 1",
        "CREATE TABLE empty_copy SELECT * FROM src WHERE 1 = 0",
        "INSERT INTO copy VALUES (10, 'after')",
    ] {
        c.query_drop(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
    }
    let topics = ["m97ctas.m97_ctas.src", "m97ctas.m97_ctas.copy", "m97ctas.m97_ctas.audit"];
    let (target, count) = gtid_target(&mut c).await;
    wait_for_checkpoint(dir.path(), "m97ctas", &daemon, Duration::from_secs(30), |cp| {
        count(cp["position"]["gtid"].as_str().unwrap_or("")) >= count(&target)
    });
    let recs = read_topics(&broker.bootstrap, &topics, 14, 60);
    let copy: Vec<&Rec> = recs.iter().filter(|r| r.topic == topics[1] && r.value.is_some()).collect();
    let mut created: Vec<(i64, String)> = copy
        .iter()
        .filter(|r| r.op() == Some("c"))
        .filter_map(|r| {
            let a = &r.value.as_ref()?["after"];
            Some((a["id"].as_i64()?, a["v"].as_str()?.to_string()))
        })
        .collect();
    created.sort();
    assert_eq!(
        created,
        [(1, "A".into()), (2, "B".into()), (3, "C".into()), (10, "after".into())],
        "CREATE TABLE ... SELECT rows as creations, then later inserts: {}",
        daemon.logs()
    );
    // The three rows came in one source transaction.
    let ctas: std::collections::BTreeSet<String> = copy
        .iter()
        .filter_map(|r| r.value.as_ref())
        .filter(|v| v["op"] == "c" && v["after"]["id"].as_i64().is_some_and(|id| id <= 3))
        .map(|v| v["source"]["gtid"].as_str().unwrap_or("none").to_string())
        .collect();
    assert_eq!(ctas.len(), 1, "{ctas:?}");
    assert!(copy.iter().any(|r| r.op() == Some("d") && r.value.as_ref().unwrap()["before"]["id"] == 1));

    let rows: Vec<(i64, String)> = c.query("SELECT id, v FROM src ORDER BY id").await.unwrap();
    let mut state = std::collections::BTreeMap::new();
    for r in recs.iter().filter(|r| r.topic == topics[0]) {
        match r.value.as_ref() {
            Some(v) if v["op"] == "d" => state.remove(&v["before"]["id"].as_i64().unwrap()),
            Some(v) => state.insert(v["after"]["id"].as_i64().unwrap(), v["after"]["v"].as_str().unwrap().to_string()),
            None => None,
        };
    }
    assert_eq!(state.into_iter().collect::<Vec<_>>(), rows, "src replayed from its topic: {}", daemon.logs());
    // Triggers fire on the multi-table DELETE and on REPLACE (a delete, then an insert): their
    // rows are in the binlog as rows of the statement's transaction.
    let audit: Vec<(i64, String)> = c.query("SELECT id, what FROM audit ORDER BY id").await.unwrap();
    let mut created: Vec<(i64, String)> = recs
        .iter()
        .filter(|r| r.topic == topics[2] && r.op() == Some("c"))
        .filter_map(|r| {
            let a = &r.value.as_ref()?["after"];
            Some((a["id"].as_i64()?, a["what"].as_str()?.to_string()))
        })
        .collect();
    created.sort();
    assert_eq!(created, audit, "the triggers' rows");
    assert!(audit.iter().any(|(_, w)| w == "deleted 1"), "{audit:?}");
    assert!(!daemon.logs().contains("ERROR"), "{}", daemon.logs());
    assert_eq!(daemon.stop(), Some(0));
}
