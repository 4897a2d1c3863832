//! Server settings and purged logs on Oracle MySQL 9.7 (issue 21), live. These change global
//! server state, so they run as one sequential test in a binary of their own (cargo runs test
//! binaries one at a time):
//! - `binlog_row_image = MINIMAL` / `NOBLOB`: refused by `cdcd check` and at start, naming the
//!   fix (before images would lack columns), never half-decoded;
//! - `binlog_row_value_options = PARTIAL_JSON`: a partial JSON update is captured as the whole
//!   new document;
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
