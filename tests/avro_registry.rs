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
    // Records of different keys sit in different partitions: find them by op, not by position.
    let evolved: Vec<&Rec> =
        pairs.iter().filter(|r| r.value_schema_id.is_some_and(|id| id != first_value_id)).collect();
    let mut ops: Vec<&str> = evolved.iter().filter_map(|r| r.op()).collect();
    ops.sort();
    assert_eq!(ops, ["c", "d", "u"], "{pairs:?}\n{}", daemon.logs());
    let by_op = |op: &str| evolved.iter().find(|r| r.op() == Some(op)).unwrap().value.as_ref().unwrap();
    assert_eq!(by_op("c")["after"]["note"], "added");
    assert_eq!(by_op("d")["before"]["note"], serde_json::Value::Null);
    let deleted_key = evolved.iter().find(|r| r.op() == Some("d")).unwrap().key.clone();
    assert!(pairs.iter().any(|r| r.value.is_none() && r.key == deleted_key), "the delete is followed by its tombstone");
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

/// MariaDB's row values in Debezium's types, as its documented MySQL type mapping gives them
/// (Debezium's MySQL connector refuses MariaDB here, so there is no captured output to compare
/// with), for a row with every type of the MySQL value table in docs/mysql.md.
fn documented_mariadb_row(id: i64) -> serde_json::Value {
    json!({
        "id": id, "ti": -128, "tu": 255, "si": -32768, "mi": 16777215, "bi": i64::MIN,
        "bu": -1,                               // BIGINT UNSIGNED, bigint.unsigned.handling.mode=long
        "d": "+y4=",                            // Decimal: unscaled -1234, scale 2
        "f": 1.5, "db": 2.25,
        "bt": "FQ==",                           // Bits: 0b10101 little-endian, 1 byte
        "b1": true,                             // BIT(1): boolean
        "y": 2024,                              // io.debezium.time.Year
        "dt": 19782,                            // io.debezium.time.Date: days
        "dtm": 1_709_212_455_500_000i64,        // DATETIME(6): MicroTimestamp
        "dt0": 1_709_212_455_000i64,            // DATETIME: Timestamp (ms)
        "dtz": null,                            // zero DATETIME in a nullable column: null
        "ts": "2024-01-02T03:04:05.123Z",       // TIMESTAMP(3): ZonedTimestamp, 3 fraction digits
        "tm": -3_020_399_000_000i64,            // TIME: MicroTime, negative kept
        "c": "ab", "vc": "héllo ✓", "lat": "héllo", "tx": "long text",
        "bn": "AP8=", "vb": "AQ==", "bl": "3q2+7w==",
        "e": "b", "st": "x,z", "j": "{\"k\": [1, null]}",
        "g": {"wkb": "AQEAAAAAAAAAAADwPwAAAAAAAABA", "srid": null},
        "n": null
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_debezium_json_and_avro_carry_the_documented_types() {
    mysql_family_typed(&mysql_url(), "my_types", "mariadb", 5301).await;
}

/// The same table, rows and expected values on Oracle MySQL 9.7: the two servers must agree.
#[tokio::test(flavor = "multi_thread")]
async fn mysql97_debezium_json_and_avro_carry_the_documented_types() {
    mysql_family_typed(&mysql97_url(), "my97_types", "mysql", 5303).await;
}

/// `connector`: what `source.connector` (and the Avro namespace) names the server.
async fn mysql_family_typed(url: &str, db: &str, connector: &str, server_id: u32) {
    use mysql_async::prelude::*;
    let mut c = mysql_db_at(url, db).await;
    c.query_drop(
        "CREATE TABLE t (
            id int unsigned PRIMARY KEY, ti tinyint NOT NULL, tu tinyint unsigned, si smallint, mi mediumint unsigned,
            bi bigint, bu bigint unsigned, d decimal(10,2), f float, db double, bt bit(5), b1 bit(1), y year,
            dt date NOT NULL, dtm datetime(6), dt0 datetime, dtz datetime NULL, ts timestamp(3) NULL, tm time,
            c char(3), vc varchar(20), lat varchar(10) CHARACTER SET latin1, tx text, bn binary(2), vb varbinary(4),
            bl blob, e enum('a','b'), st set('x','y','z'), j json, g geometry NULL, n int)",
    )
    .await
    .unwrap();
    let row = |id: i64| {
        format!(
            "INSERT INTO t VALUES ({id}, -128, 255, -32768, 16777215, -9223372036854775808, 18446744073709551615,
               -12.34, 1.5, 2.25, b'10101', b'1', 2024, '2024-02-29', '2024-02-29 13:14:15.5', '2024-02-29 13:14:15',
               '0000-00-00 00:00:00', '2024-01-02 03:04:05.123', '-838:59:59', 'ab', 'héllo ✓', 'héllo',
               'long text', x'00ff', x'01', x'deadbeef', 'b', 'x,z', '{{\"k\": [1, null]}}',
               ST_GeomFromText('POINT(1 2)'), NULL)"
        )
    };
    c.query_drop("SET SESSION sql_mode = ''").await.unwrap();
    c.query_drop(row(1)).await.unwrap();

    let broker = Tansu::start();
    let registry = SchemaRegistry::start(&broker.bootstrap);
    let dir = tempfile::tempdir().unwrap();
    let json_sink =
        format!("{}encoding = \"debezium\"\n[sink.debezium]\nschemas_enable = false\n", kafka_sink(&broker.bootstrap));
    let tables = format!(r#"["{db}.t"]"#);
    let json_cfg = write_mysql_config_at(dir.path(), "mj", url, &tables, server_id, &json_sink, "");
    let avro_sink = avro_sink(&broker.bootstrap, &registry);
    let avro_cfg = write_mysql_config_at(dir.path(), "ma", url, &tables, server_id + 1, &avro_sink, "");
    let (json_topic, avro_topic) = (format!("mj.{db}.t"), format!("ma.{db}.t"));
    let json_daemon = Daemon::start(&json_cfg);
    let avro_daemon = Daemon::start(&avro_cfg);
    let logs = || format!("{}\n{}", json_daemon.logs(), avro_daemon.logs());
    assert_eq!(read_topics(&broker.bootstrap, &[&json_topic], 1, 60).len(), 1, "{}", logs());
    assert_eq!(registry.read_topics(&broker.bootstrap, &[&avro_topic], 1, 120).len(), 1, "{}", logs());

    // Streamed: the same row again, an update and a delete.
    c.query_drop(row(2)).await.unwrap();
    c.query_drop("UPDATE t SET vc = 'changed', n = 5 WHERE id = 1").await.unwrap();
    c.query_drop("DELETE FROM t WHERE id = 2").await.unwrap();
    let json_recs = read_topics(&broker.bootstrap, &[&json_topic], 5, 60);
    let avro_recs = registry.read_topics(&broker.bootstrap, &[&avro_topic], 5, 60);
    // Records of different keys sit in different partitions: find them by op and id.
    let find = |recs: &[Rec], op: Option<&str>, id: i64| -> Rec {
        recs.iter()
            .find(|r| r.op() == op && r.key == Some(json!({ "id": id })))
            .cloned()
            .unwrap_or_else(|| panic!("no {op:?} for id {id} in {recs:?}\n{}", logs()))
    };
    let events = [(Some("r"), 1), (Some("c"), 2), (Some("u"), 1), (Some("d"), 2), (None, 2)];
    for recs in [&json_recs, &avro_recs] {
        assert_eq!(recs.len(), events.len(), "{recs:?}");
        for (op, id) in events {
            find(recs, op, id);
        }
    }
    let v = |op: &str, id: i64| find(&json_recs, Some(op), id).value.unwrap();
    assert_eq!(v("r", 1)["after"], documented_mariadb_row(1), "snapshot row");
    assert_eq!(v("c", 2)["after"], documented_mariadb_row(2), "streamed row");
    let mut updated = documented_mariadb_row(1);
    updated["vc"] = json!("changed");
    updated["n"] = json!(5);
    assert_eq!(v("u", 1)["before"], documented_mariadb_row(1));
    assert_eq!(v("u", 1)["after"], updated);
    assert_eq!(v("d", 2)["before"], documented_mariadb_row(2));
    let source = &v("c", 2)["source"];
    assert_eq!((source["connector"].as_str(), source["db"].as_str()), (Some(connector), Some(db)));
    let gtid = source["gtid"].as_str().unwrap_or("");
    assert!(if connector == "mariadb" { gtid.starts_with("0-") } else { gtid.contains(':') }, "{gtid}");
    assert!(source["pos"].as_i64() > Some(0));

    // Avro, decoded by the independent reader, carries exactly the same values.
    for (op, id) in events {
        let (j, a) = (find(&json_recs, op, id), find(&avro_recs, op, id));
        let (jv, av) = (j.value.as_ref(), a.value.as_ref());
        for field in ["before", "after", "op"] {
            assert_eq!(av.map(|x| &x[field]), jv.map(|x| &x[field]), "{field} of {:?}", j.key);
        }
    }
    // Snapshot rows (information_schema) and streamed rows (the binlog's table map) have one
    // schema: a second version would mean the two disagree about a column.
    let ids: std::collections::BTreeSet<u32> = avro_recs.iter().filter_map(|r| r.value_schema_id).collect();
    assert_eq!(ids.len(), 1, "{avro_recs:?}");
    let (_, latest) = registry.get(&format!("/subjects/{avro_topic}-value/versions/latest"));
    let namespace = format!(r#""name":"Source","namespace":"io.debezium.connector.{connector}""#);
    let text = latest["schema"].as_str().unwrap_or_default();
    for expected in [
        r#""connect.name":"io.debezium.time.Date","connect.version":1,"logicalType":"date","type":"int""#,
        r#""connect.name":"io.debezium.time.MicroTimestamp","connect.version":1,"logicalType":"timestamp-micros""#,
        // TIME is a duration in MySQL (±838 h): no Avro time logical type, which holds one day.
        r#"{"connect.name":"io.debezium.time.MicroTime","connect.version":1,"type":"long"}"#,
        r#""connect.name":"io.debezium.data.EnumSet""#,
        &namespace,
    ] {
        assert!(text.contains(expected), "{expected} not in {text}");
    }

    // A column added mid-stream: version 2 of the subject, the new field nullable.
    c.query_drop("ALTER TABLE t ADD COLUMN extra varchar(5)").await.unwrap();
    c.query_drop("UPDATE t SET extra = 'x' WHERE id = 1").await.unwrap();
    let avro_recs = registry.read_topics(&broker.bootstrap, &[&avro_topic], 6, 60);
    let last = avro_recs
        .iter()
        .find(|r| r.value.as_ref().is_some_and(|v| v["after"]["extra"] == "x"))
        .unwrap_or_else(|| panic!("no event with the new column: {avro_recs:?}\n{}", logs()));
    assert!(!ids.contains(&last.value_schema_id.unwrap()), "a new schema id for the new table version");
    assert_eq!(registry.get(&format!("/subjects/{avro_topic}-value/versions")).1, json!([1, 2]));
}

/// A registry that cannot be reached is transient trouble: the connector retries from its
/// checkpoint and delivers everything once the registry is up, without a restart.
#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_registry_is_retried_until_it_answers() {
    let broker = Tansu::start();
    let port = support::http::free_port();
    let db = TestDb::create("avro_retry").await;
    let c = db.client().await;
    c.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a')").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sink = format!(
        "{}format = \"avro\"\n[sink.schema_registry]\nurl = \"http://127.0.0.1:{port}\"\ntimeout_secs = 2\n",
        kafka_sink(&broker.bootstrap)
    );
    let cfg = write_config(dir.path(), "avro_retry", &db.url, r#"["public.t"]"#, &sink, "");
    let mut daemon = Daemon::start(&cfg);
    assert!(
        wait_until(Duration::from_secs(60), || daemon.logs().contains("schema registry at http://127.0.0.1")),
        "no word of the unreachable registry: {}",
        daemon.logs()
    );
    c.batch_execute("INSERT INTO t VALUES (2, 'b')").await.unwrap();
    assert!(daemon.is_running(), "an unreachable registry must not stop cdcd: {}", daemon.logs());

    let registry = SchemaRegistry::start_on(&broker.bootstrap, port);
    let recs = registry.read_topics(&broker.bootstrap, &["avro_retry.public.t"], 2, 120);
    // The snapshot was never checkpointed, so each retry reads it again: row 2 may come both
    // streamed and read (at-least-once). Every row is there, and the retry was logged.
    let mut rows: Vec<String> =
        recs.iter().filter_map(|r| r.value.as_ref()?["after"]["v"].as_str().map(String::from)).collect();
    rows.sort();
    rows.dedup();
    assert_eq!(rows, ["a", "b"], "{recs:?}\n{}", daemon.logs());
    assert!(recs.iter().any(|r| r.op() == Some("c")), "row 2 streamed: {recs:?}");
    assert!(daemon.logs().contains("resuming from the last checkpoint"), "{}", daemon.logs());
    assert!(daemon.is_running());
}
