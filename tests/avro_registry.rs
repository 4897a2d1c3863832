//! `format = "avro"` through a real Schema Registry (Karapace, on a tansu broker), read back by an
//! independent client: confluent-kafka's AvroDeserializer (fastavro) with the registry's
//! schemas. Every decoded event must equal, field by field, what real Debezium 3.6.3 emitted as
//! JSON for the same rows (the fixtures of `debezium_encoding`); a column added mid-stream must
//! register a new, BACKWARD-compatible schema version; a change the registry refuses must stop
//! the connector with the subject and the registry's reason.

mod support;

use std::time::Duration;

use serde_json::json;
use support::debezium::{all_types_sql, compare, STREAMED};
use support::registry::SchemaRegistry;
use support::*;

fn avro_sink(bootstrap: &str, registry: &SchemaRegistry) -> String {
    format!("{}format = \"avro\"\n[sink.schema_registry]\nurl = \"{}\"\n", kafka_sink(bootstrap), registry.url)
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_avro_decodes_to_debeziums_values_and_evolves_through_the_registry() {
    let broker = Tansu::start();
    let registry = SchemaRegistry::start(&broker.bootstrap);
    let db = TestDb::create("dbzt").await;
    let c = db.client().await;
    c.batch_execute(&all_types_sql()).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sink = avro_sink(&broker.bootstrap, &registry);
    let cfg = write_config(dir.path(), "dbzt", &db.url, r#"["public.all_types", "public.pairs"]"#, &sink, "");
    let mut daemon = Daemon::start(&cfg);
    let topics = ["dbzt.public.all_types", "dbzt.public.pairs"];
    let snap = registry.read_topics(&broker.bootstrap, &topics, 5, 120);
    assert_eq!(snap.len(), 5, "{}", daemon.logs());
    c.batch_execute(STREAMED).await.unwrap();
    let all = registry.read_topics(&broker.bootstrap, &topics, 9, 60);
    assert_eq!(all.len(), 9, "{}", daemon.logs());
    // Every event, snapshot and streamed, decoded from Avro, equals Debezium's JSON for it.
    compare("plain", &all);

    // Subjects by topic, one version each so far; the value schema is Debezium's envelope.
    let (status, versions) = registry.get("/subjects/dbzt.public.pairs-value/versions");
    assert_eq!((status, versions.clone()), (200, json!([1])), "{}", daemon.logs());
    let (_, latest) = registry.get("/subjects/dbzt.public.pairs-value/versions/latest");
    let schema: serde_json::Value = serde_json::from_str(latest["schema"].as_str().unwrap()).unwrap();
    assert_eq!((schema["name"].as_str(), schema["namespace"].as_str()), (Some("Envelope"), Some("dbzt.public.pairs")));
    let (status, _) = registry.get("/subjects/dbzt.public.pairs-key/versions/1");
    assert_eq!(status, 200);
    let first_value_id = all.iter().find(|r| r.topic == "dbzt.public.pairs").unwrap().value_schema_id.unwrap();

    // A column added mid-stream: a new version under the same subject, accepted as BACKWARD
    // compatible because the new field is nullable with a null default.
    c.batch_execute(
        "ALTER TABLE pairs ADD COLUMN note text; INSERT INTO pairs VALUES (4, 'z', 40, 'added'); \
         UPDATE pairs SET v = 41 WHERE a = 4; DELETE FROM pairs WHERE a = 1",
    )
    .await
    .unwrap();
    let pairs = registry.read_topics(&broker.bootstrap, &["dbzt.public.pairs"], 3 + 4, 60);
    let evolved: Vec<&Rec> =
        pairs.iter().filter(|r| r.value_schema_id.is_some_and(|id| id != first_value_id)).collect();
    let ops: Vec<&str> = evolved.iter().filter_map(|r| r.op()).collect();
    assert_eq!(ops, ["c", "u", "d"], "{pairs:?}\n{}", daemon.logs());
    assert_eq!(evolved[0].value.as_ref().unwrap()["after"]["note"], "added");
    assert_eq!(evolved[2].value.as_ref().unwrap()["before"]["note"], serde_json::Value::Null);
    assert!(pairs.last().unwrap().value.is_none(), "the delete is followed by its tombstone");
    let (_, versions) = registry.get("/subjects/dbzt.public.pairs-value/versions");
    assert_eq!(versions, json!([1, 2]));
    let (_, v2) = registry.get("/subjects/dbzt.public.pairs-value/versions/2");
    let v2: serde_json::Value = serde_json::from_str(v2["schema"].as_str().unwrap()).unwrap();
    let note = v2.to_string();
    assert!(note.contains(r#"{"default":null,"name":"note","type":["null","string"]}"#), "{note}");

    // A change the registry refuses (int -> string breaks BACKWARD) stops the connector, naming
    // the subject and the registry's reason; nothing of it was sent.
    c.batch_execute(
        "ALTER TABLE pairs ALTER COLUMN v TYPE text USING v::text; INSERT INTO pairs VALUES (5, 'w', '50')",
    )
    .await
    .unwrap();
    assert!(wait_until(Duration::from_secs(60), || !daemon.is_running()), "cdcd kept running: {}", daemon.logs());
    let logs = daemon.logs();
    assert!(
        logs.contains("refused subject dbzt.public.pairs-value") && logs.to_lowercase().contains("incompatible"),
        "{logs}"
    );
    let after = registry.read_topics(&broker.bootstrap, &["dbzt.public.pairs"], pairs.len(), 10);
    assert_eq!(after.len(), pairs.len(), "the refused change must not reach the topic");
}
