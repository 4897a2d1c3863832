//! Server settings and purged logs on Oracle MySQL 9.7 (issue 21), live. These change global
//! server state, so they run as one sequential test in a binary of their own (cargo runs test
//! binaries one at a time):
//! - `binlog_row_image = MINIMAL` / `NOBLOB`: refused by `cdcd check` and at start, naming the
//!   fix (before images would lack columns), never half-decoded;
//! - `binlog_row_value_options = PARTIAL_JSON`: a partial JSON update is captured as the whole
//!   new document;
//! - generated invisible primary keys (`my_row_id`) with information_schema told to hide them,
//!   and invisible columns: in every snapshot and streamed row, and the key;
//! - a checkpoint whose binlog and GTIDs the server purged: resuming stops with a clear error.

mod support;

use std::time::Duration;

use mysql_async::prelude::*;
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn row_images_partial_json_and_purged_gtids_on_mysql97() {
    let url = mysql97_url();
    let mut c = mysql_db_at(&url, "m97_settings").await;
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, doc JSON, note TEXT)").await.unwrap();
    c.query_drop(r#"INSERT INTO t VALUES (1, '{"a": 1, "b": {"c": [1, 2, 3]}, "s": "keep"}', 'n')"#).await.unwrap();
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_mysql_config_at(
        dir.path(),
        "m97set",
        &url,
        r#"["m97_settings.t"]"#,
        5704,
        &kafka_sink(&broker.bootstrap),
        "snapshot = \"never\"",
    );

    // Row images without every column: refused, with the fix.
    for image in ["MINIMAL", "NOBLOB"] {
        c.query_drop(format!("SET GLOBAL binlog_row_image = '{image}'")).await.unwrap();
        let (check_code, check_out, _) = cdcd(&["check", "--config", cfg.to_str().unwrap()]);
        let (run_code, _, run_err) = cdcd(&["run", "--config", cfg.to_str().unwrap()]);
        c.query_drop("SET GLOBAL binlog_row_image = 'FULL'").await.unwrap();
        assert_eq!(check_code, 1, "{image}: {check_out}");
        assert!(
            check_out.contains(&format!("binlog_row_image is {image}")) && check_out.contains("FULL"),
            "{check_out}"
        );
        assert_eq!(run_code, 1, "{image}: {run_err}");
        assert!(run_err.contains(&format!("binlog_row_image is {image}")) && run_err.contains("FULL"), "{run_err}");
        assert!(!run_err.contains("panicked"), "{run_err}");
    }

    // PARTIAL_JSON (the writer's session only): the after image is the whole new document.
    let daemon = Daemon::start(&cfg);
    assert!(wait_until(Duration::from_secs(30), || daemon.logs().contains("streaming binlog")), "{}", daemon.logs());
    let mut w = mysql_db_conn_at(&url, "m97_settings").await;
    w.query_drop("SET SESSION binlog_row_value_options = 'PARTIAL_JSON'").await.unwrap();
    w.query_drop(r#"UPDATE t SET doc = JSON_SET(doc, '$.a', 2, '$.b.c[1]', 20), note = 'partial' WHERE id = 1"#)
        .await
        .unwrap();
    w.query_drop(r#"UPDATE t SET doc = JSON_REMOVE(doc, '$.s') WHERE id = 1"#).await.unwrap();
    let recs = read_topics(&broker.bootstrap, &["m97set.m97_settings.t"], 2, 60);
    let source: String = c.query_first("SELECT CAST(doc AS CHAR) FROM t WHERE id = 1").await.unwrap().unwrap();
    let source: serde_json::Value = serde_json::from_str(&source).unwrap();
    let last = recs.last().and_then(|r| r.value.as_ref()).map(|v| v["after"]["doc"].clone()).unwrap_or_default();
    let last: serde_json::Value = match last {
        serde_json::Value::String(s) => serde_json::from_str(&s).unwrap_or(serde_json::Value::Null),
        other => other,
    };
    assert_eq!(last, source, "partial JSON updates rebuilt into the whole document; log:\n{}", daemon.logs());
    assert_eq!(source["b"]["c"][1], 20);
    assert_eq!(daemon.stop(), Some(0));

    invisible_keys_and_columns(&url, &broker).await;

    // The checkpoint's binlog and GTIDs purged while stopped: resuming stops, never skips.
    c.query_drop("INSERT INTO t VALUES (2, NULL, 'while stopped')").await.unwrap();
    c.query_drop("FLUSH BINARY LOGS").await.unwrap();
    let (current, logs) = purge_to_current(&mut c, "SHOW BINARY LOG STATUS").await;
    assert_eq!(logs, [current.as_str()], "the purge must really remove the older binlogs");
    let (code, _, err) = cdcd(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("purged") && err.contains("may be lost") && err.contains("fresh snapshot"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

/// `sql_generate_invisible_primary_key` gives a keyless table the primary key `my_row_id`,
/// which every binlog row carries. With `show_gipk_in_create_table_and_information_schema` off
/// server-wide, information_schema hides it unless the session asks: the snapshot must still
/// read it, or snapshot rows would lack the key their streamed versions have.
async fn invisible_keys_and_columns(url: &str, broker: &Broker) {
    let mut c = mysql_db_at(url, "m97_gipk").await;
    c.query_drop("SET SESSION sql_generate_invisible_primary_key = ON").await.unwrap();
    c.query_drop("CREATE TABLE g (v TEXT, h INT INVISIBLE)").await.unwrap();
    c.query_drop("INSERT INTO g (v, h) VALUES ('a', 1), ('b', 2)").await.unwrap();
    c.query_drop("SET GLOBAL show_gipk_in_create_table_and_information_schema = OFF").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_mysql_config_at(
        dir.path(),
        "m97gipk",
        url,
        r#"["m97_gipk.g"]"#,
        5705,
        &kafka_sink(&broker.bootstrap),
        "",
    );
    let daemon = Daemon::start(&cfg);
    let finished = wait_until(Duration::from_secs(30), || daemon.logs().contains("snapshot finished"));
    c.query_drop("INSERT INTO g (v, h) VALUES ('c', 3)").await.unwrap();
    c.query_drop("UPDATE g SET v = 'a2', h = 10 WHERE v = 'a'").await.unwrap();
    c.query_drop("DELETE FROM g WHERE v = 'b'").await.unwrap();
    let recs = read_topics(&broker.bootstrap, &["m97gipk.m97_gipk.g"], 6, 60);
    c.query_drop("SET GLOBAL show_gipk_in_create_table_and_information_schema = ON").await.unwrap();
    assert!(finished, "{}", daemon.logs());

    let snap_a = recs.iter().find(|r| r.op() == Some("r") && r.value.as_ref().unwrap()["after"]["v"] == "a");
    let snap_a = snap_a.unwrap_or_else(|| panic!("no snapshot row for 'a': {recs:?}\n{}", daemon.logs()));
    assert_eq!(snap_a.value.as_ref().unwrap()["after"], serde_json::json!({"my_row_id": 1, "v": "a", "h": 1}));
    assert_eq!(snap_a.key, Some(serde_json::json!({"my_row_id": 1})));
    for r in &recs {
        let id = r.key.as_ref().and_then(|k| k["my_row_id"].as_i64());
        assert!(id.is_some(), "every record keyed by my_row_id: {r:?}");
    }
    let update = recs.iter().find(|r| r.op() == Some("u")).expect("the update");
    assert_eq!(update.key, snap_a.key, "the update keyed as its snapshot row");
    assert_eq!(update.value.as_ref().unwrap()["after"], serde_json::json!({"my_row_id": 1, "v": "a2", "h": 10}));
    let mut state = std::collections::BTreeMap::new();
    for r in &recs {
        let id = r.key.as_ref().and_then(|k| k["my_row_id"].as_i64()).unwrap_or(-1);
        match r.value.as_ref().map(|v| v["after"].clone()) {
            Some(serde_json::Value::Null) | None => state.remove(&id),
            Some(after) => state.insert(id, (after["v"].as_str().unwrap_or("").to_string(), after["h"].as_i64())),
        };
    }
    let rows: Vec<(i64, String, Option<i64>)> =
        c.query("SELECT my_row_id, v, h FROM g ORDER BY my_row_id").await.unwrap();
    let source: std::collections::BTreeMap<i64, (String, Option<i64>)> =
        rows.into_iter().map(|(id, v, h)| (id, (v, h))).collect();
    assert_eq!(state, source, "the topic replays to the table: {}", daemon.logs());
    assert!(!daemon.logs().contains("ERROR"), "{}", daemon.logs());
    assert_eq!(daemon.stop(), Some(0));
}
