//! A record the broker side will never accept: here a row larger than the producer's
//! `message.max.bytes` (librdkafka refuses it itself, the same error a broker returns for a
//! topic's `max.message.bytes`). By default the connector stops with an error naming the record
//! and the fix, and stops again at every restart (never skipping it); with a dead-letter topic
//! the record goes there and the stream goes on.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

const LIMIT: &str = "[sink.properties]\n\"message.max.bytes\" = 20000\n";

async fn docs_db(name: &str) -> TestDb {
    let db = TestDb::create(name).await;
    db.client().await.batch_execute("CREATE TABLE docs (id int PRIMARY KEY, body text)").await.unwrap();
    db
}

async fn write_rows(db: &TestDb) {
    db.client()
        .await
        .batch_execute(
            "INSERT INTO docs VALUES (1, 'small');
             INSERT INTO docs VALUES (2, repeat('x', 50000));
             INSERT INTO docs VALUES (3, 'after the big one');",
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_record_stops_the_connector_with_its_topic_key_and_position() {
    let db = docs_db("refused_stop").await;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sink = format!("{}{LIMIT}", kafka_sink(&broker.bootstrap));
    let cfg = write_config(dir.path(), "rstop", &db.url, r#"["public.docs"]"#, &sink, "");
    let mut daemon = Daemon::start(&cfg);
    assert!(wait_until(Duration::from_secs(30), || daemon.logs().contains("snapshot finished")), "{}", daemon.logs());
    write_rows(&db).await;
    assert!(
        wait_until(Duration::from_secs(30), || !daemon.is_running()),
        "the connector must stop:\n{}",
        daemon.logs()
    );
    let logs = daemon.logs();
    assert_eq!(daemon.stop(), Some(1), "{logs}");
    for needle in [
        "refused a record",
        "topic rstop.public.docs",
        r#"key {"id":2}"#,
        "source position 0",
        "table public.docs",
        "message.max.bytes",
        "dead_letter_topic",
    ] {
        assert!(logs.contains(needle), "the error should mention `{needle}`:\n{logs}");
    }
    // The checkpoint stays before the refused record: every restart stops at it again.
    let (code, _, err) = cdcd(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(r#"key {"id":2}"#), "{err}");
    let recs = read_topics(&broker.bootstrap, &["rstop.public.docs"], 1, 30);
    assert!(recs.iter().any(|r| r.key == Some(json!({"id": 1}))), "{recs:#?}");
    assert!(!recs.iter().any(|r| r.key == Some(json!({"id": 2}))), "{recs:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_record_goes_to_the_dead_letter_topic_and_the_stream_goes_on() {
    let db = docs_db("refused_dlq").await;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sink = format!("{}dead_letter_topic = \"rdlq.dead\"\n{LIMIT}", kafka_sink(&broker.bootstrap));
    let cfg = write_config(dir.path(), "rdlq", &db.url, r#"["public.docs"]"#, &sink, "");
    let daemon = Daemon::start(&cfg);
    assert!(wait_until(Duration::from_secs(30), || daemon.logs().contains("snapshot finished")), "{}", daemon.logs());
    write_rows(&db).await;
    let recs = read_topics(&broker.bootstrap, &["rdlq.public.docs", "rdlq.dead"], 3, 60);
    // Keys land on different partitions, so compare without order.
    let mut main: Vec<_> = recs
        .iter()
        .filter(|r| r.topic == "rdlq.public.docs")
        .map(|r| r.key.clone().unwrap_or_default().to_string())
        .collect();
    main.sort();
    assert_eq!(main, [r#"{"id":1}"#, r#"{"id":3}"#], "the stream goes on past the refused record");
    let dead: Vec<_> = recs.iter().filter(|r| r.topic == "rdlq.dead").collect();
    assert_eq!(dead.len(), 1, "{recs:#?}");
    assert_eq!(dead[0].key, Some(json!({"id": 2})));
    let stub = &dead[0].value.as_ref().expect("a dead-letter record")["cdcd_dead_letter"];
    assert_eq!(stub["topic"], "rdlq.public.docs");
    assert_eq!(stub["op"], "c");
    // One implicit transaction holds all three inserts; the refused row is its second event.
    assert!(stub["position"].as_str().is_some_and(|p| p.ends_with("-0000000001")), "{stub}");
    assert_eq!(stub["source"]["table"], "docs");
    assert!(stub["error"].as_str().is_some_and(|e| e.contains("too large")), "{stub}");
    assert!(stub["value_bytes"].as_u64().is_some_and(|n| n > 50000), "{stub}");
    assert!(daemon.logs().contains("sending it to the dead-letter topic"), "{}", daemon.logs());
    // The checkpoint moved past it: a restart neither stops nor re-sends it.
    assert_eq!(daemon.stop(), Some(0));
    let daemon = Daemon::start(&cfg);
    db.client().await.batch_execute("INSERT INTO docs VALUES (4, 'later')").await.unwrap();
    let recs = read_topics(&broker.bootstrap, &["rdlq.public.docs", "rdlq.dead"], 4, 60);
    assert_eq!(recs.iter().filter(|r| r.topic == "rdlq.dead").count(), 1, "{recs:#?}");
    assert!(recs.iter().any(|r| r.key == Some(json!({"id": 4}))));
    assert_eq!(daemon.stop(), Some(0));
}
