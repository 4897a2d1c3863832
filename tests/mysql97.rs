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
