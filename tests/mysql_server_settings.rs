//! Server-level failures against the real MariaDB from scripts/test.sh. These change global
//! server state (binlog format, row metadata, purged binlogs), so they run as one sequential
//! test in a binary of their own: cargo runs test binaries one at a time.

mod support;

use std::time::Duration;

use mysql_async::prelude::*;
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn bad_server_settings_and_purged_binlogs_are_clear_errors() {
    let mut c = mysql_db("my_settings").await;
    c.query_drop("CREATE TABLE t (id int PRIMARY KEY)").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        write_mysql_config(dir.path(), "settings", r#"["my_settings.t"]"#, 5201, "[sink]\ntype = \"stdout\"\n", "");

    // binlog_format not ROW.
    c.query_drop("SET GLOBAL binlog_format = 'STATEMENT'").await.unwrap();
    let (code, _, err) = cdcd(&["run", "--config", cfg.to_str().unwrap()]);
    let (check_code, check_out, _) = cdcd(&["check", "--config", cfg.to_str().unwrap()]);
    c.query_drop("SET GLOBAL binlog_format = 'ROW'").await.unwrap();
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("binlog_format is STATEMENT") && err.contains("ROW"), "{err}");
    assert_eq!(check_code, 1);
    assert!(check_out.contains("FAIL  binlog_format is STATEMENT"), "{check_out}");

    // MINIMAL row metadata: check says which mode is in use and why FULL is safer, and the
    // stream maps columns through information_schema, re-read after DDL.
    c.query_drop("CREATE TABLE m (id int PRIMARY KEY, v varchar(5))").await.unwrap();
    c.query_drop("SET GLOBAL binlog_row_metadata = 'MINIMAL'").await.unwrap();
    let (code, out, _) = cdcd(&["check", "--config", cfg.to_str().unwrap()]);
    let broker = Broker::start();
    let mcfg = write_mysql_config(
        dir.path(),
        "minimal",
        r#"["my_settings.m"]"#,
        5202,
        &kafka_sink(&broker.bootstrap),
        "snapshot = \"never\"",
    );
    let daemon = Daemon::start(&mcfg);
    let streaming = wait_until(Duration::from_secs(30), || daemon.logs().contains("streaming binlog"));
    c.query_drop("INSERT INTO m VALUES (1, 'a')").await.unwrap();
    let first = read_topics(&broker.bootstrap, &["minimal.my_settings.m"], 1, 60);
    c.query_drop("ALTER TABLE m ADD COLUMN extra int DEFAULT 7").await.unwrap();
    c.query_drop("INSERT INTO m (id, v) VALUES (2, 'b')").await.unwrap();
    let all = read_topics(&broker.bootstrap, &["minimal.my_settings.m"], 2, 60);
    c.query_drop("SET GLOBAL binlog_row_metadata = 'FULL'").await.unwrap();
    assert_eq!(code, 0, "MINIMAL is supported, with an explanation: {out}");
    assert!(
        out.contains("binlog_row_metadata = MINIMAL")
            && out.contains("information_schema")
            && out.contains("FULL is safer"),
        "{out}"
    );
    assert!(streaming, "{}", daemon.logs());
    assert_eq!(first.len(), 1, "{}", daemon.logs());
    // Keys 1 and 2 may sit in different partitions: order by id.
    let mut all = all;
    all.sort_by_key(|r| r.value.as_ref().unwrap()["after"]["id"].as_i64());
    let afters: Vec<serde_json::Value> = all.iter().map(|r| r.value.as_ref().unwrap()["after"].clone()).collect();
    assert_eq!(
        afters,
        [serde_json::json!({"id": 1, "v": "a"}), serde_json::json!({"id": 2, "v": "b", "extra": 7})],
        "{}",
        daemon.logs()
    );
    assert_eq!(all[1].key, Some(serde_json::json!({"id": 2})));
    assert_eq!(daemon.stop(), Some(0));

    // Healthy: check passes and a run writes a checkpoint.
    let (code, out, _) = cdcd(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    let daemon = Daemon::start(&cfg);
    let ck = checkpoint_path(dir.path(), "settings");
    assert!(wait_until(Duration::from_secs(30), || ck.exists()), "{}", daemon.logs());
    c.query_drop("INSERT INTO t VALUES (1)").await.unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(daemon.stop(), Some(0));

    // Purge the binlog the checkpoint points into: resuming must stop, not skip.
    c.query_drop("INSERT INTO t VALUES (2)").await.unwrap();
    c.query_drop("FLUSH BINARY LOGS").await.unwrap();
    let (current, logs) = purge_to_current(&mut c, "SHOW MASTER STATUS").await;
    assert_eq!(logs, [current.as_str()], "the purge must really remove the older binlogs");
    let (code, _, err) = cdcd(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("was purged") && err.contains("may be lost") && err.contains("fresh snapshot"), "{err}");
    assert!(!err.contains("panicked"));

    when_needed_reads_every_table_again_after_the_binlog_was_purged().await;
}

/// `snapshot = "when_needed"`: the binlog the checkpoint points into is purged while cdcd is
/// down; the next start reads every table again (rows as they are now) and streams on, instead
/// of stopping.
async fn when_needed_reads_every_table_again_after_the_binlog_was_purged() {
    let mut c = mysql_db("my_when_needed").await;
    c.query_drop("CREATE TABLE t (id int PRIMARY KEY, v varchar(10))").await.unwrap();
    c.query_drop("INSERT INTO t VALUES (1, 'a'), (2, 'b')").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_mysql_config(
        dir.path(),
        "whenneeded",
        r#"["my_when_needed.t"]"#,
        5202,
        "[sink]\ntype = \"stdout\"\n",
        "snapshot = \"when_needed\"",
    );
    let daemon = Daemon::start(&cfg);
    let ck = checkpoint_path(dir.path(), "whenneeded");
    assert!(
        wait_until(Duration::from_secs(30), || daemon.logs().contains("snapshot finished") && ck.exists()),
        "{}",
        daemon.logs()
    );
    assert_eq!(daemon.stop(), Some(0));
    c.query_drop("DELETE FROM t WHERE id = 1").await.unwrap();
    c.query_drop("INSERT INTO t VALUES (3, 'c')").await.unwrap();
    c.query_drop("FLUSH BINARY LOGS").await.unwrap();
    let (current, logs) = purge_to_current(&mut c, "SHOW MASTER STATUS").await;
    assert_eq!(logs, [current.as_str()], "the purge must really remove the older binlogs");
    let daemon = Daemon::start(&cfg);
    assert!(
        wait_until(Duration::from_secs(30), || daemon.logs().contains("reading every table again")
            && daemon.logs().contains("snapshot finished")),
        "{}",
        daemon.logs()
    );
    let cp: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&ck).unwrap()).unwrap();
    assert_eq!(daemon.stop(), Some(0), "streaming went on");
    let text = cp.to_string();
    assert!(text.contains(&current), "the checkpoint moved to the current binlog {current}: {text}");
}
