//! Idle sources do not pin the log. A captured database whose captured tables see no writes,
//! on a server busy elsewhere (another database, an uncaptured table), still lets the slot's
//! `confirmed_flush_lsn` advance, so PostgreSQL can recycle WAL; the lag-in-bytes and
//! retained-WAL metrics show it. Also the optional heartbeat (default and custom query), and the
//! same idle property for MariaDB (lag in bytes returns to ~0 while another database is busy).

mod support;

use std::time::Duration;

use mysql_async::prelude::*;
use support::http::*;
use support::*;

async fn wal_lsn(c: &tokio_postgres::Client) -> u64 {
    let row = c.query_one("SELECT (pg_current_wal_lsn() - '0/0')::int8", &[]).await.unwrap();
    row.get::<_, i64>(0) as u64
}

async fn slot_lsns(c: &tokio_postgres::Client, slot: &str) -> (u64, u64) {
    let row = c
        .query_one(
            "SELECT (confirmed_flush_lsn - '0/0')::int8, (restart_lsn - '0/0')::int8 FROM pg_replication_slots WHERE slot_name = $1",
            &[&slot],
        )
        .await
        .unwrap();
    (row.get::<_, i64>(0) as u64, row.get::<_, i64>(1) as u64)
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_slot_advances_while_captured_tables_idle_on_a_busy_server() {
    let db = TestDb::create("idle_captured").await;
    let other = TestDb::create("idle_busy_elsewhere").await;
    let hb_db = TestDb::create("idle_heartbeat").await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a');
         CREATE TABLE uncaptured (id bigserial PRIMARY KEY, v text);",
    )
    .await
    .unwrap();
    let o = other.client().await;
    o.batch_execute("CREATE TABLE filler (id bigserial PRIMARY KEY, v text)").await.unwrap();
    let h = hb_db.client().await;
    h.batch_execute("CREATE TABLE hb (id int PRIMARY KEY, at timestamptz); INSERT INTO hb VALUES (1, now())")
        .await
        .unwrap();

    // `idle` has no heartbeat: keepalives alone must move its slot. `beat` writes the default
    // heartbeat (a WAL message, no row); `beat_row` a custom one that updates a captured table.
    let rig = Rig::new(&db.url, "idle", r#"["public.t"]"#, "");
    let sink = kafka_sink(&rig.broker.bootstrap);
    write_config(rig.dir.path(), "beat", &hb_db.url, r#"["public.hb"]"#, &sink, "heartbeat_interval_secs = 1");
    write_config(
        rig.dir.path(),
        "beat_row",
        &hb_db.url,
        r#"["public.hb"]"#,
        &sink,
        "heartbeat_interval_secs = 1\nheartbeat_query = \"UPDATE hb SET at = clock_timestamp() WHERE id = 1\"",
    );
    let addr = format!("127.0.0.1:{}", free_port());
    let daemon = Daemon::start_with_env(rig.dir.path(), &[("CDCD_HTTP", addr.as_str())]);
    assert!(
        wait_until(Duration::from_secs(60), || daemon.logs().matches("streaming connector").count() == 3),
        "{}",
        daemon.logs()
    );

    // Busy elsewhere: another database and an uncaptured table of the captured one.
    let w0 = wal_lsn(&c).await;
    for _ in 0..8 {
        o.batch_execute("INSERT INTO filler (v) SELECT repeat('x', 200) FROM generate_series(1, 20000)").await.unwrap();
        c.batch_execute("INSERT INTO uncaptured (v) SELECT repeat('y', 200) FROM generate_series(1, 5000)")
            .await
            .unwrap();
    }
    let w1 = wal_lsn(&c).await;
    let generated = w1 - w0;
    println!("WAL written elsewhere: {:.1} MB", generated as f64 / 1e6);
    assert!(generated > 20_000_000, "the load wrote only {generated} bytes of WAL");

    assert!(
        wait_until(Duration::from_secs(60), || { futures_block(slot_lsns(&c, "cdcd_idle")).0 >= w1 }),
        "confirmed_flush_lsn stayed at {:X} although the server's WAL reached {w1:X}\n{}",
        futures_block(slot_lsns(&c, "cdcd_idle")).0,
        daemon.logs()
    );
    let idle = [("connector", "idle")];
    // restart_lsn follows once the server logs its running transactions (every 15 s while WAL is
    // written); the metric is read every 10 s.
    assert!(
        wait_until(Duration::from_secs(90), || {
            let m = scrape(&addr);
            let lag = value(&m, "cdcd_source_lag_bytes", &idle);
            let retained = value(&m, "cdcd_wal_retained_bytes", &idle);
            matches!((lag, retained), (Some(l), Some(r)) if l < 1e6 && r < generated as f64 / 2.0)
        }),
        "lag or retained WAL stayed high after {generated} bytes written elsewhere: {:#?}\nslot: {:?}",
        scrape(&addr).into_iter().filter(|((n, _), _)| n.contains("bytes")).collect::<Vec<_>>(),
        futures_block(slot_lsns(&c, "cdcd_idle"))
    );
    let (confirmed, restart) = futures_block(slot_lsns(&c, "cdcd_idle"));
    println!("slot cdcd_idle: confirmed {confirmed:X}, restart {restart:X}; load {w0:X}..{w1:X}");
    let m = scrape(&addr);
    assert_eq!(value(&m, "cdcd_events_total", &[("connector", "idle"), ("op", "c")]), None, "no change was captured");

    // Heartbeats: the custom one's row updates flow as events; the default one runs (its
    // session's last statement) without a warning.
    assert!(
        wait_until(Duration::from_secs(20), || {
            value(&scrape(&addr), "cdcd_events_total", &[("connector", "beat_row"), ("op", "u")]).unwrap_or(0.0) >= 3.0
        }),
        "custom heartbeat produced no updates: {}",
        daemon.logs()
    );
    let last: String = h
        .query_one(
            "SELECT coalesce(max(query), '') FROM pg_stat_activity WHERE application_name = 'cdcd-beat-heartbeat'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(last.contains("pg_logical_emit_message"), "default heartbeat session's last query: {last:?}");
    assert!(!daemon.logs().contains("heartbeat query failed"), "{}", daemon.logs());
    drop(daemon);
}

/// Runs a future to completion from inside a blocking predicate (the tests poll synchronously).
fn futures_block<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_lag_in_bytes_returns_to_zero_while_another_database_is_busy() {
    let mut c = mysql_db("idle_captured").await;
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)").await.unwrap();
    c.query_drop("INSERT INTO t VALUES (1, 'a')").await.unwrap();
    let mut o = mysql_db("idle_busy_elsewhere").await;
    o.query_drop("CREATE TABLE filler (id BIGINT AUTO_INCREMENT PRIMARY KEY, v TEXT)").await.unwrap();

    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    write_mysql_config(dir.path(), "idle", r#"["idle_captured.t"]"#, 5501, &kafka_sink(&broker.bootstrap), "");
    let addr = format!("127.0.0.1:{}", free_port());
    let daemon = Daemon::start_with_env(dir.path(), &[("CDCD_HTTP", addr.as_str())]);
    assert!(wait_until(Duration::from_secs(60), || daemon.logs().contains("streaming")), "{}", daemon.logs());

    let end = |o: &mut mysql_async::Conn| {
        futures_block(async {
            let row: mysql_async::Row = o.query_first("SHOW MASTER STATUS").await.unwrap().unwrap();
            (row.get::<String, _>(0).unwrap(), row.get::<u64, _>(1).unwrap())
        })
    };
    let (f0, p0) = end(&mut o);
    for _ in 0..10 {
        o.query_drop("INSERT INTO filler (v) SELECT repeat('x', 200) FROM seq_1_to_5000").await.unwrap();
    }
    let (f1, p1) = end(&mut o);
    if f0 == f1 {
        println!("binlog written elsewhere: {:.1} MB", (p1 - p0) as f64 / 1e6);
        assert!(p1 - p0 > 5_000_000, "the load wrote only {} binlog bytes", p1 - p0);
    }
    // A rotation with no transaction after it: the checkpoint must follow into the new file
    // (the server may also rotate by itself at max_binlog_size after the load).
    o.query_drop("FLUSH BINARY LOGS").await.unwrap();
    let (f1, p1) = end(&mut o);
    let conn = [("connector", "idle")];
    assert!(
        wait_until(Duration::from_secs(40), || {
            value(&scrape(&addr), "cdcd_source_lag_bytes", &conn).is_some_and(|l| l < 65_536.0)
        }),
        "lag in bytes stayed high: {:?}\ncheckpoint {:?}",
        value(&scrape(&addr), "cdcd_source_lag_bytes", &conn),
        checkpoint(dir.path(), "idle")
    );
    let cp = checkpoint(dir.path(), "idle").unwrap();
    assert_eq!(cp["position"]["file"].as_str(), Some(f1.as_str()));
    assert!(cp["position"]["pos"].as_u64().unwrap() >= p1, "checkpoint {cp} is behind the load's end {p1}");
    assert_eq!(value(&scrape(&addr), "cdcd_events_total", &[("connector", "idle"), ("op", "c")]), None);
    drop(daemon);
}
