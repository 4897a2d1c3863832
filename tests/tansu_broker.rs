//! The same data path against a second, independent Kafka-protocol implementation (tansu), so
//! our producer settings are not only proven against librdkafka's own mock broker: snapshot,
//! streamed changes, a kill -9 and restart, nothing lost.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_stream_and_crash_recovery_through_tansu() {
    let db = TestDb::create("tansu_e2e").await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'snap' FROM generate_series(1, 500) g;",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = Tansu::start();
    let cfg = write_config(dir.path(), "tansu", &db.url, r#"["public.t"]"#, &kafka_sink(&broker.bootstrap), "");
    let daemon = Daemon::start(&cfg);
    assert!(wait_until(Duration::from_secs(60), || daemon.logs().contains("streaming")), "{}", daemon.logs());
    c.batch_execute("INSERT INTO t SELECT g, 'live' FROM generate_series(501, 1000) g").await.unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    daemon.kill9();
    c.batch_execute("UPDATE t SET v = 'updated' WHERE id <= 10; INSERT INTO t SELECT g, 'after crash' FROM generate_series(1001, 1500) g;")
        .await
        .unwrap();
    let daemon = Daemon::start(&cfg);

    let recs = read_topics(&broker.bootstrap, &["tansu.public.t"], 1510, 120);
    let mut ids = std::collections::BTreeSet::new();
    for r in &recs {
        let v = r.value.as_ref().expect("no deletes in this test");
        ids.insert(v["after"]["id"].as_i64().unwrap());
        assert_eq!(r.key, Some(json!({"id": v["after"]["id"]})));
    }
    let missing: Vec<i64> = (1..=1500).filter(|i| !ids.contains(i)).collect();
    assert!(missing.is_empty(), "missing ids {missing:?}\n{}", daemon.logs());
    let updates = recs.iter().filter(|r| r.op() == Some("u")).count();
    assert!(updates >= 10, "expected the 10 updates, got {updates}");
    eprintln!("tansu: {} records for 1500 rows + 10 updates ({} duplicates)", recs.len(), recs.len() - 1510);
    assert_eq!(daemon.stop(), Some(0));
}
