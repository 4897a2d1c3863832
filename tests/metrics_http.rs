//! The HTTP listener (`cdcd run --http`), scraped by an independent Prometheus text parser (PyPI
//! `prometheus-client`): metrics present with the `connector` label, event counters move as
//! rows flow, lag returns to 0 when idle, `/ready` is 200 while streaming and turns 503 when
//! the connector fails (its broker refuses a record), `/health` stays 200, `/status` is JSON.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use serde_json::Value;
use support::*;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// (name, labels) -> value, parsed by prometheus_client.
fn scrape(addr: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/scrape.py");
    let out = Command::new("python3").arg(script).arg(format!("http://{addr}/metrics")).output().unwrap();
    assert!(out.status.success(), "scrape: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let labels = v["labels"]
                .as_object()
                .unwrap()
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
                .collect();
            ((v["name"].as_str().unwrap().to_string(), labels), v["value"].as_f64().unwrap())
        })
        .collect()
}

fn value(m: &BTreeMap<(String, BTreeMap<String, String>), f64>, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    m.iter()
        .find(|((n, l), _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
        .map(|(_, v)| *v)
}

/// (status code, body) of GET `path`.
fn get(addr: &str, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    (code, text.split("\r\n\r\n").nth(1).unwrap_or_default().to_string())
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_move_with_rows_lag_settles_and_ready_flips_on_failure() {
    let db = TestDb::create("metrics_http").await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b');
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
        "cdcd_reconnects_total",
        "cdcd_delivery_errors",
    ] {
        assert!(value(&m, name, &conn).is_some(), "{name} missing: {m:#?}");
    }
    assert_eq!(value(&m, "cdcd_connector_state", &[("connector", "m"), ("state", "streaming")]), Some(1.0));

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
    drop(daemon);
}
