//! The same table and rows in PostgreSQL, MariaDB and MySQL 9.7 give identical `after` objects:
//! one value representation for one logical value, whichever database it came from.

mod support;

use std::time::Duration;

use mysql_async::prelude::*;
use serde_json::Value;
use support::*;

const ROWS: &str = "(1, 12345.67, 'plain', 'ünïcödé ✓', '2024-02-29 13:14:15.5', '2024-02-29 13:14:15.123456', '2024-02-29', 1.5, -9007199254740993, '13:14:15.25', NULL),
                    (2, -0.01, '', 'x', '1999-12-31 23:59:59', '2038-01-19 03:14:07', '0001-01-01', -2.25e-10, 0, '00:00:00', 7)";

#[tokio::test(flavor = "multi_thread")]
async fn postgres_mariadb_and_mysql97_rows_render_identically() {
    // PostgreSQL side.
    let db = TestDb::create("cross_pg").await;
    let pg = db.client().await;
    pg.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, amount numeric(10,2), name varchar(20), note text, at timestamp(6),
                         at_utc timestamptz, day date, ratio double precision, big bigint, tod time(6), maybe int)",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let pg_cfg = write_config(
        dir.path(),
        "xpg",
        &db.url,
        r#"["public.t"]"#,
        &kafka_sink(&broker.bootstrap),
        "snapshot = \"never\"",
    );

    // MariaDB side.
    let mut my = mysql_db("cross_my").await;
    my.query_drop(
        "CREATE TABLE t (id int PRIMARY KEY, amount decimal(10,2), name varchar(20), note text, at datetime(6),
                         at_utc timestamp(6) NULL, day date, ratio double, big bigint, tod time(6), maybe int)",
    )
    .await
    .unwrap();
    let my_cfg = write_mysql_config(
        dir.path(),
        "xmy",
        r#"["cross_my.t"]"#,
        5301,
        &kafka_sink(&broker.bootstrap),
        "snapshot = \"never\"",
    );
    // MySQL 9.7 side: the same DDL.
    let mut m97 = mysql_db_at(&mysql97_url(), "cross_my97").await;
    m97.query_drop(
        "CREATE TABLE t (id int PRIMARY KEY, amount decimal(10,2), name varchar(20), note text, at datetime(6),
                         at_utc timestamp(6) NULL, day date, ratio double, big bigint, tod time(6), maybe int)",
    )
    .await
    .unwrap();
    let sink = kafka_sink(&broker.bootstrap);
    let m97_cfg = write_mysql_config_at(
        dir.path(),
        "xmy97",
        &mysql97_url(),
        r#"["cross_my97.t"]"#,
        5302,
        &sink,
        "snapshot = \"never\"",
    );

    let pg_daemon = Daemon::start(&pg_cfg);
    let my_daemon = Daemon::start(&my_cfg);
    let m97_daemon = Daemon::start(&m97_cfg);
    assert!(wait_until(Duration::from_secs(30), || pg_daemon.logs().contains("streaming")), "{}", pg_daemon.logs());
    assert!(
        wait_until(Duration::from_secs(30), || my_daemon.logs().contains("streaming binlog")),
        "{}",
        my_daemon.logs()
    );
    assert!(
        wait_until(Duration::from_secs(30), || m97_daemon.logs().contains("streaming binlog")),
        "{}",
        m97_daemon.logs()
    );
    // timestamptz literals are read in the session zone: UTC on every side.
    pg.batch_execute(&format!("SET TIME ZONE 'UTC'; INSERT INTO t VALUES {ROWS}")).await.unwrap();
    my.query_drop(format!("INSERT INTO t VALUES {ROWS}")).await.unwrap();
    m97.query_drop(format!("SET time_zone = '+00:00'; INSERT INTO t VALUES {ROWS}")).await.unwrap();

    let after = |topic: &str| -> Vec<Value> {
        let mut v: Vec<Value> = read_topics(&broker.bootstrap, &[topic], 2, 60)
            .into_iter()
            .map(|r| r.value.expect("insert")["after"].clone())
            .collect();
        v.sort_by_key(|a| a["id"].as_i64());
        v
    };
    let from_pg = after("xpg.public.t");
    let from_my = after("xmy.cross_my.t");
    assert_eq!(from_pg.len(), 2, "{}", pg_daemon.logs());
    assert_eq!(from_my.len(), 2, "{}", my_daemon.logs());
    assert_eq!(from_pg, from_my, "PostgreSQL and MariaDB must render the same values identically");
    let from_m97 = after("xmy97.cross_my97.t");
    assert_eq!(
        from_pg,
        from_m97,
        "PostgreSQL and MySQL 9.7 must render the same values identically: {}",
        m97_daemon.logs()
    );
    assert_eq!(from_pg[0]["amount"], "12345.67");
    assert_eq!(from_pg[0]["at_utc"], "2024-02-29T13:14:15.123456Z");
    assert_eq!(from_pg[0]["big"], serde_json::json!(-9007199254740993i64));
    assert_eq!(pg_daemon.stop(), Some(0));
    assert_eq!(my_daemon.stop(), Some(0));
    assert_eq!(m97_daemon.stop(), Some(0));
}
