//! Oracle MySQL 9.7 (scripts/mysql.sh: Debian sid's mysql-server-core in a chroot, GTIDs on,
//! `caching_sha2_password`), the server most MySQL users run, beside the MariaDB tests. The
//! randomized kill -9 workload runs on it too (`tests/differential.rs`). Here, the two failures a
//! new user met first (issue 21): the snapshot of an idle server never finished (the stream,
//! started by GTID, never saw a position past the chunks' watermarks), and the first streamed
//! transaction stopped the connector (the binlog file name lost four bytes to a checksum the
//! dump's first ROTATE does not carry on MySQL).

mod support;

use std::time::Duration;

use mysql_async::prelude::*;
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn idle_server_snapshot_completes_and_the_stream_keeps_the_binlog_name() {
    let url = mysql97_url();
    let mut c = mysql_db_at(&url, "m97_idle").await;
    for sql in [
        "CREATE TABLE small (id INT PRIMARY KEY, v TEXT)",
        "INSERT INTO small VALUES (1, 'a'), (2, 'b')",
        "CREATE TABLE big (id INT PRIMARY KEY, v TEXT)",
        "INSERT INTO big WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 900) SELECT n, 'x' FROM s",
    ] {
        c.query_drop(sql).await.unwrap();
    }
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_mysql_config_at(
        dir.path(),
        "m97idle",
        &url,
        r#"["m97_idle.small", "m97_idle.big"]"#,
        5701,
        &kafka_sink(&broker.bootstrap),
        "",
    );
    let daemon = Daemon::start(&cfg);
    // Nothing is written while the snapshot runs.
    assert!(
        wait_until(Duration::from_secs(30), || daemon.logs().contains("snapshot finished")),
        "the snapshot of an idle server did not finish: {}",
        daemon.logs()
    );
    let snap = read_topics(&broker.bootstrap, &["m97idle.m97_idle.small", "m97idle.m97_idle.big"], 902, 60);
    assert_eq!(snap.iter().filter(|r| r.op() == Some("r")).count(), 902, "{}", daemon.logs());

    c.query_drop("INSERT INTO small VALUES (3, 'streamed')").await.unwrap();
    c.query_drop("UPDATE small SET v = 'changed' WHERE id = 1").await.unwrap();
    let recs = read_topics(&broker.bootstrap, &["m97idle.m97_idle.small"], 4, 60);
    assert!(recs.iter().any(|r| r.op() == Some("c")), "{}", daemon.logs());
    assert!(recs.iter().any(|r| r.op() == Some("u")), "{}", daemon.logs());
    let status: mysql_async::Row = c.query_first("SHOW BINARY LOG STATUS").await.unwrap().unwrap();
    let file: String = status.get(0).unwrap();
    wait_for_checkpoint(dir.path(), "m97idle", &daemon, Duration::from_secs(30), |cp| {
        cp["position"]["file"] == file.as_str()
    });
    assert!(!daemon.logs().contains("ERROR"), "{}", daemon.logs());
    assert_eq!(daemon.stop(), Some(0));
}

/// Issue 20 item 11: binary-log group commit writes a transaction to the binlog before the
/// engine commits it. With `sync_binlog = 0` and a commit delay, updates sit in the binlog,
/// already streamed, but invisible to a chunk read opened meanwhile; the chunk must not then
/// emit the old row after the streamed update. Writers keep several such commits in flight
/// while the snapshot reads; at the end every row's last event must be the source's row. The
/// connector also starts with such commits in flight: they arrive from before its start offset.
#[tokio::test(flavor = "multi_thread")]
async fn a_commit_in_the_binlog_but_not_yet_visible_does_not_lose_to_a_chunk() {
    const ROWS: i64 = 400;
    let url = mysql97_url();
    let mut c = mysql_db_at(&url, "m97_group_commit").await;
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v INT NOT NULL)").await.unwrap();
    let values: Vec<String> = (1..=ROWS).map(|i| format!("({i}, 0)")).collect();
    c.query_drop(format!("INSERT INTO t VALUES {}", values.join(", "))).await.unwrap();
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_mysql_config_at(
        dir.path(),
        "m97gc",
        &url,
        r#"["m97_group_commit.t"]"#,
        5702,
        &kafka_sink(&broker.bootstrap),
        "snapshot_chunk_rows = 10\nsnapshot_max_rows_per_sec = 100",
    );
    c.query_drop("SET GLOBAL binlog_group_commit_sync_delay = 150000").await.unwrap();
    let mut writers = Vec::new();
    for w in 0..8i64 {
        let url = url.clone();
        writers.push(tokio::spawn(async move {
            let mut c = mysql_db_conn_at(&url, "m97_group_commit").await;
            for i in 0..20i64 {
                // Spread over the table, each row updated about once.
                let id = (w * 53 + i * 131) % ROWS + 1;
                c.exec_drop("UPDATE t SET v = v + 1 WHERE id = ?", (id,)).await.unwrap();
            }
        }));
    }
    // Started with commits in flight: the start position's offset counts some that its GTID
    // set does not hold yet.
    tokio::time::sleep(Duration::from_millis(400)).await;
    let daemon = Daemon::start(&cfg);
    for w in writers {
        w.await.unwrap();
    }
    c.query_drop("SET GLOBAL binlog_group_commit_sync_delay = 0").await.unwrap();
    let target: String = c.query_first("SELECT @@gtid_executed").await.unwrap().unwrap();
    wait_for_checkpoint(dir.path(), "m97gc", &daemon, Duration::from_secs(120), |cp| {
        cp["snapshot"]["tables"][0]["done"] == true
            && mysql_gtid_count(cp["position"]["gtid"].as_str().unwrap_or("")) >= mysql_gtid_count(&target)
    });
    let recs = read_topics_to_end(&broker.bootstrap, &["m97gc.m97_group_commit.t"], 60);
    // One partition per key: per row, the last event is where a consumer ends up.
    let mut last = std::collections::BTreeMap::new();
    for r in &recs {
        if let Some(after) = r.value.as_ref().map(|v| v["after"].clone()).filter(|a| !a.is_null()) {
            last.insert(after["id"].as_i64().unwrap(), after["v"].as_i64().unwrap());
        }
    }
    let source: std::collections::BTreeMap<i64, i64> =
        c.query::<(i64, i64), _>("SELECT id, v FROM t").await.unwrap().into_iter().collect();
    let differ: Vec<_> = source.iter().filter(|(id, v)| last.get(id) != Some(v)).take(5).collect();
    assert!(
        differ.is_empty(),
        "rows whose last event is stale (id, source value): {differ:?}; log:\n{}",
        daemon.logs()
    );
    assert_eq!(daemon.stop(), Some(0));
}

/// Issue 21: `caching_sha2_password` (MySQL 8.4+'s only password plugin here) without TLS. With
/// the server's cache of verified passwords empty (`FLUSH PRIVILEGES`), a login over plain TCP
/// needs the full exchange, the password encrypted with the server's RSA public key; `cdcd
/// check` and the stream both log in that way, and a row streams.
#[tokio::test(flavor = "multi_thread")]
async fn caching_sha2_password_without_tls_logs_in_by_rsa_key_exchange() {
    let url = mysql97_url();
    let mut c = mysql_db_at(&url, "m97_rsa").await;
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY)").await.unwrap();
    let plain = format!("{url}?ssl-mode=DISABLED");
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_mysql_config_at(
        dir.path(),
        "m97rsa",
        &plain,
        r#"["m97_rsa.t"]"#,
        5703,
        &kafka_sink(&broker.bootstrap),
        "snapshot = \"never\"",
    );
    c.query_drop("FLUSH PRIVILEGES").await.unwrap();
    let (code, out, err) = cdcd(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "cdcd check over plain TCP with an empty password cache:\n{out}\n{err}");
    c.query_drop("FLUSH PRIVILEGES").await.unwrap();
    let daemon = Daemon::start(&cfg);
    assert!(wait_until(Duration::from_secs(30), || daemon.logs().contains("streaming binlog")), "{}", daemon.logs());
    c.query_drop("INSERT INTO t VALUES (1)").await.unwrap();
    let recs = read_topics(&broker.bootstrap, &["m97rsa.m97_rsa.t"], 1, 60);
    assert_eq!(recs.len(), 1, "{}", daemon.logs());
    assert_eq!(daemon.stop(), Some(0));
}
