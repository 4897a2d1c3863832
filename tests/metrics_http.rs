//! The HTTP listener (`cdcd run --http`), scraped by an independent Prometheus text parser (PyPI
//! `prometheus-client`): metrics present with the `connector` label, event counters move as
//! rows flow, lag returns to 0 when idle, `/ready` is 200 while streaming and turns 503 when
//! the connector fails (its broker refuses a record) while the failed connector's retained WAL
//! keeps being reported, `/health` stays 200, `/status` is JSON;
//! `cdcd health [--ready]` (the container HEALTHCHECK) exits 0 or 1 accordingly.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;
use support::http::*;
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn metrics_move_with_rows_lag_settles_and_ready_flips_on_failure() {
    let db = TestDb::create("metrics_http").await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b'); ANALYZE t;
         CREATE TABLE big (id int PRIMARY KEY, v text);",
    )
    .await
    .unwrap();
    // Two connectors in one process: `m` is watched; `bad` has a small message.max.bytes, so one
    // large row later is refused and fails it while the process (and `m`) keeps running.
    let rig = Rig::new(&db.url, "m", r#"["public.t"]"#, "");
    let bad_sink = format!("{}[sink.properties]\n\"message.max.bytes\" = 20000\n", kafka_sink(&rig.broker.bootstrap));
    write_config(rig.dir.path(), "bad", &db.url, r#"["public.big"]"#, &bad_sink, "");
    let addr = format!("127.0.0.1:{}", free_port());
    let daemon = Daemon::start_with_env(rig.dir.path(), &[("CDCD_HTTP", addr.as_str())]);
    assert!(
        wait_until(Duration::from_secs(60), || daemon.logs().matches("streaming connector").count() == 2),
        "{}",
        daemon.logs()
    );
    assert!(wait_until(Duration::from_secs(10), || get(&addr, "/ready").0 == 200), "{:?}", get(&addr, "/ready"));
    assert_eq!(get(&addr, "/health").0, 200);
    // `cdcd health`, the container HEALTHCHECK, asks the same listener.
    assert_eq!(cdcd(&["health", "--http", &addr]).0, 0);
    assert_eq!(cdcd(&["health", "--http", &addr, "--ready"]).0, 0);
    let status: Value = serde_json::from_str(&get(&addr, "/status").1).unwrap();
    assert!(status["connectors"].as_array().unwrap().iter().all(|c| c["state"] == "streaming"), "{status}");

    let conn = [("connector", "m")];
    let reads =
        |m: &BTreeMap<_, _>| value(m, "cdcd_events_total", &[("connector", "m"), ("table", "public.t"), ("op", "r")]);
    let m = scrape(&addr);
    assert_eq!(reads(&m), Some(2.0), "snapshot rows counted: {m:#?}");
    for name in [
        "cdcd_sent_bytes_total",
        "cdcd_events_in_flight",
        "cdcd_source_lag_seconds",
        "cdcd_checkpoint_age_seconds",
        "cdcd_snapshot_rows_total",
        "cdcd_reconnects_total",
        "cdcd_delivery_errors",
    ] {
        assert!(value(&m, name, &conn).is_some(), "{name} missing: {m:#?}");
    }
    assert_eq!(value(&m, "cdcd_connector_state", &[("connector", "m"), ("state", "streaming")]), Some(1.0));
    assert_eq!(value(&m, "cdcd_snapshot_rows_estimated", &conn), Some(2.0), "from pg_class.reltuples after ANALYZE");
    // The backlog is read from the server every 10 s.
    assert!(
        wait_until(Duration::from_secs(15), || {
            let m = scrape(&addr);
            value(&m, "cdcd_source_lag_bytes", &conn).is_some() && value(&m, "cdcd_wal_retained_bytes", &conn).is_some()
        }),
        "backlog gauges missing: {:#?}",
        scrape(&addr)
    );
    let status: Value = serde_json::from_str(&get(&addr, "/status").1).unwrap();
    let m_status = status["connectors"].as_array().unwrap().iter().find(|c| c["connector"] == "m").unwrap().clone();
    for field in ["source_lag_bytes", "wal_retained_bytes", "events_in_flight", "source_lag_seconds"] {
        assert!(m_status[field].is_number(), "/status lacks {field}: {m_status}");
    }

    c.batch_execute("INSERT INTO t SELECT g, 'x' FROM generate_series(3, 102) g; UPDATE t SET v = 'y' WHERE id = 1;")
        .await
        .unwrap();
    let creates =
        |m: &BTreeMap<_, _>| value(m, "cdcd_events_total", &[("connector", "m"), ("table", "public.t"), ("op", "c")]);
    assert!(wait_until(Duration::from_secs(30), || creates(&scrape(&addr)) == Some(100.0)), "{:#?}", scrape(&addr));
    let m = scrape(&addr);
    assert_eq!(value(&m, "cdcd_events_total", &[("connector", "m"), ("op", "u")]), Some(1.0));
    assert!(value(&m, "cdcd_sent_bytes_total", &conn).unwrap() > 10_000.0);
    // Idle and caught up: lag and checkpoint age go back to 0.
    assert!(
        wait_until(Duration::from_secs(15), || {
            let m = scrape(&addr);
            value(&m, "cdcd_source_lag_seconds", &conn) == Some(0.0)
                && value(&m, "cdcd_checkpoint_age_seconds", &conn) == Some(0.0)
        }),
        "lag did not settle: {:#?}",
        scrape(&addr)
    );

    // A record the broker refuses stops `bad`: /ready turns 503, /health stays 200.
    c.batch_execute("INSERT INTO big VALUES (1, repeat('z', 50000))").await.unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || get(&addr, "/ready").0 == 503),
        "{:?}\n{}",
        get(&addr, "/ready"),
        daemon.logs()
    );
    let m = scrape(&addr);
    assert_eq!(value(&m, "cdcd_connector_state", &[("connector", "bad"), ("state", "failed")]), Some(1.0), "{m:#?}");
    assert_eq!(value(&m, "cdcd_connector_state", &[("connector", "m"), ("state", "streaming")]), Some(1.0));
    assert_eq!(get(&addr, "/health").0, 200);
    // Issue 20 item 12: the failed connector's slot keeps WAL while it is down, and its gauge
    // keeps saying so (it used to freeze at its last value when the connector stopped).
    let bad = [("connector", "bad")];
    let retained = || value(&scrape(&addr), "cdcd_wal_retained_bytes", &bad).unwrap_or(0.0);
    let at_failure = retained();
    c.batch_execute("INSERT INTO t SELECT g, repeat('w', 1000) FROM generate_series(1000, 5000) g").await.unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || retained() > at_failure + 3_000_000.0),
        "cdcd_wal_retained_bytes of the failed connector stayed at {} (was {at_failure} at the failure)",
        retained()
    );
    let (code, _, err) = cdcd(&["health", "--http", &addr, "--ready"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("503"), "{err}");
    assert_eq!(cdcd(&["health", "--http", &addr]).0, 0);
    drop(daemon);
    let (code, _, err) = cdcd(&["health", "--http", &addr]);
    assert_eq!(code, 1, "no listener any more: {err}");
}
