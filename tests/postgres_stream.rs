//! End-to-end against the real PostgreSQL 15 started by scripts/test.sh and a real
//! Kafka-protocol broker (librdkafka's mock cluster in its own process, reached over TCP):
//! snapshot, every op, before/after under both replica identities, keys, tombstones, topics,
//! a column added mid-stream, TRUNCATE, and the slot's confirmed position.

mod support;

use std::time::Duration;

use serde_json::json;
use support::*;

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_then_every_change_kind_arrives_in_the_envelope() {
    let db = TestDb::create("e2e_envelope").await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE items (id int PRIMARY KEY, name text, price numeric(10,2));
         INSERT INTO items VALUES (1, 'one', 1.50), (2, 'two', NULL);
         CREATE TABLE audit (id int PRIMARY KEY, v text);
         ALTER TABLE audit REPLICA IDENTITY FULL;
         INSERT INTO audit VALUES (1, 'a'), (2, 'b');
         CREATE TABLE other_schema_ignored (id int PRIMARY KEY);",
    )
    .await
    .unwrap();
    let rig = Rig::new(&db.url, "envelope", r#"["public.items", "public.aud*"]"#, "");
    let daemon = Daemon::start(&rig.cfg);

    // The snapshot must be read before these changes; wait for its rows first.
    let snap = read_topics(&rig.broker.bootstrap, &["envelope.public.items", "envelope.public.audit"], 4, 60);
    assert_eq!(snap.len(), 4, "snapshot rows; log:\n{}", daemon.logs());
    c.batch_execute(
        "INSERT INTO items VALUES (3, 'three', 3);
         UPDATE items SET name = 'ONE' WHERE id = 1;
         DELETE FROM items WHERE id = 2;
         UPDATE audit SET v = 'A' WHERE id = 1;
         DELETE FROM audit WHERE id = 2;
         ALTER TABLE items ADD COLUMN extra int DEFAULT 7;
         INSERT INTO items (id, name) VALUES (4, 'four');
         TRUNCATE items;",
    )
    .await
    .unwrap();
    // items: r r c u d tomb c t = 8; audit: r r u d tomb = 5.
    let recs = read_topics(&rig.broker.bootstrap, &["envelope.public.items", "envelope.public.audit"], 13, 60);
    let items: Vec<&Rec> = recs.iter().filter(|r| r.topic == "envelope.public.items").collect();
    let audit: Vec<&Rec> = recs.iter().filter(|r| r.topic == "envelope.public.audit").collect();
    assert_eq!(items.len(), 8, "items records: {items:#?}\nlog:\n{}", daemon.logs());
    assert_eq!(audit.len(), 5, "audit records: {audit:#?}");
    assert!(recs.iter().all(|r| r.topic != "envelope.public.other_schema_ignored"));

    // Kafka orders per partition only; find records by (op, key) and check order per partition.
    let find = |recs: &[&Rec], op: &str, key: serde_json::Value| -> Rec {
        let key = if key.is_null() { None } else { Some(key) };
        recs.iter()
            .find(|r| r.op() == Some(op) && r.key == key)
            .map(|r| (*r).clone())
            .unwrap_or_else(|| panic!("no {op} record with key {key:?} in {recs:#?}"))
    };
    let count = |recs: &[&Rec], op: Option<&str>| recs.iter().filter(|r| r.op() == op).count();
    assert_eq!(
        [
            count(&items, Some("r")),
            count(&items, Some("c")),
            count(&items, Some("u")),
            count(&items, Some("d")),
            count(&items, None),
            count(&items, Some("t"))
        ],
        [2, 2, 1, 1, 1, 1]
    );

    // Snapshot rows.
    let r1 = find(&items, "r", json!({"id": 1})).value.unwrap();
    assert_eq!(r1["before"], json!(null));
    assert_eq!(r1["after"], json!({"id": 1, "name": "one", "price": "1.50"}));
    // Debezium's markers: one first and one last overall, and each table's other end marked.
    let mut markers: Vec<String> = recs
        .iter()
        .filter(|r| r.op() == Some("r"))
        .map(|r| r.value.as_ref().unwrap()["source"]["snapshot"].as_str().unwrap().to_string())
        .collect();
    markers.sort();
    assert_eq!(markers, ["first", "first_in_data_collection", "last", "last_in_data_collection"]);
    assert_eq!(r1["source"]["connector"], "postgresql");
    assert_eq!(r1["source"]["name"], "envelope");
    assert_eq!(r1["source"]["db"], "e2e_envelope");
    assert_eq!(r1["source"]["schema"], "public");
    assert_eq!(r1["source"]["table"], "items");
    assert_eq!(find(&items, "r", json!({"id": 2})).value.unwrap()["after"]["price"], json!(null));

    // Insert.
    let c3 = find(&items, "c", json!({"id": 3})).value.unwrap();
    assert_eq!(c3["after"], json!({"id": 3, "name": "three", "price": "3.00"}));
    assert_eq!(c3["source"]["snapshot"], "false");
    assert!(c3["source"]["txId"].as_u64().is_some() && c3["source"]["lsn"].as_u64().is_some());
    assert!(c3["source"]["ts_ms"].as_i64().unwrap() > 1_600_000_000_000);
    assert!(c3["ts_ms"].as_i64().unwrap() >= c3["source"]["ts_ms"].as_i64().unwrap() - 60_000);

    // Update under REPLICA IDENTITY DEFAULT: no before image (as in Debezium).
    let u1 = find(&items, "u", json!({"id": 1})).value.unwrap();
    assert_eq!(u1["before"], json!(null));
    assert_eq!(u1["after"]["name"], "ONE");

    // Delete under DEFAULT: before carries the key only, then a tombstone with the same key
    // immediately after it in the same partition.
    let d2 = find(&items, "d", json!({"id": 2}));
    let dv = d2.value.clone().unwrap();
    assert_eq!(dv["before"], json!({"id": 2, "name": null, "price": null}));
    assert_eq!(dv["after"], json!(null));
    let same_partition: Vec<&&Rec> = items.iter().filter(|r| r.partition == d2.partition).collect();
    let at = same_partition.iter().position(|r| r.op() == Some("d")).unwrap();
    assert_eq!(same_partition[at + 1].key, Some(json!({"id": 2})));
    assert!(same_partition[at + 1].value.is_none(), "tombstone has a null value and follows its delete");

    // Column added mid-stream.
    assert_eq!(
        find(&items, "c", json!({"id": 4})).value.unwrap()["after"],
        json!({"id": 4, "name": "four", "price": null, "extra": 7})
    );

    // TRUNCATE: op t, no key, no row images.
    let t = find(&items, "t", json!(null)).value.unwrap();
    assert_eq!((t["before"].clone(), t["after"].clone()), (json!(null), json!(null)));
    assert_eq!(t["source"]["table"], "items");

    // REPLICA IDENTITY FULL: full before images.
    let au = find(&audit, "u", json!({"id": 1})).value.unwrap();
    assert_eq!(au["before"], json!({"id": 1, "v": "a"}));
    assert_eq!(au["after"], json!({"id": 1, "v": "A"}));
    let ad = find(&audit, "d", json!({"id": 2})).value.unwrap();
    assert_eq!(ad["before"], json!({"id": 2, "v": "b"}));
    assert_eq!(count(&audit, None), 1);

    // Per partition, dedupe positions strictly increase (that is the consumer's contract), and
    // per key the history is in commit order.
    for topic in [&items, &audit] {
        for p in 0..8 {
            let pos: Vec<&str> = topic
                .iter()
                .filter(|r| r.partition == p)
                .filter_map(|r| r.value.as_ref())
                .map(|v| v["source"]["position"].as_str().unwrap())
                .collect();
            assert!(pos.windows(2).all(|w| w[0] < w[1]), "positions not increasing in partition {p}: {pos:?}");
        }
    }
    let id1_ops: Vec<&str> = items.iter().filter(|r| r.key == Some(json!({"id": 1}))).filter_map(|r| r.op()).collect();
    assert_eq!(id1_ops, ["r", "u"]);
    let id2_ops: Vec<Option<&str>> = items.iter().filter(|r| r.key == Some(json!({"id": 2}))).map(|r| r.op()).collect();
    assert_eq!(id2_ops, [Some("r"), Some("d"), None]);

    // Delivered progress reaches the server: the slot's confirmed_flush_lsn passes the last change.
    let last_lsn = t["source"]["lsn"].as_u64().unwrap();
    let admin = connect(&format!("{}/postgres", pg_url())).await;
    let mut confirmed = 0u64;
    for _ in 0..100 {
        let row = admin
            .query_one("SELECT (confirmed_flush_lsn - '0/0')::bigint FROM pg_replication_slots WHERE slot_name = 'cdcd_envelope'", &[])
            .await
            .unwrap();
        confirmed = row.get::<_, i64>(0) as u64;
        if confirmed > last_lsn {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(confirmed > last_lsn, "slot confirmed {confirmed} <= last change {last_lsn}");
    assert_eq!(daemon.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn primary_key_change_is_delete_then_create_and_types_are_lossless() {
    let db = TestDb::create("e2e_types").await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TYPE mood AS ENUM ('sad', 'happy');
         CREATE DOMAIN posint AS int CHECK (VALUE > 0);
         CREATE TABLE t (id bigint PRIMARY KEY, n numeric, f float8, b bool, ts timestamp, tz timestamptz, d date,
                         tm time, iv interval, j jsonb, by bytea, arr int[], tarr text[], u uuid, m mood, p posint, big text);
         ALTER TABLE t ALTER COLUMN big SET STORAGE EXTERNAL;",
    )
    .await
    .unwrap();
    let rig = Rig::new(&db.url, "types", r#"["public.*"]"#, "snapshot = \"never\"");
    let daemon = Daemon::start(&rig.cfg);
    assert!(wait_until(Duration::from_secs(30), || daemon.logs().contains("streaming")), "{}", daemon.logs());
    c.batch_execute(
        "INSERT INTO t VALUES (1, 12345678901234567890.000000001, 'NaN', true, '2024-02-29 13:14:15.123456',
           '2024-02-29 13:14:15+02', '2024-02-29', '01:02:03.5', '1 year 2 mons 3 days 04:05:06', '{\"k\": [1, null]}',
           '\\x00ff', '{1,NULL,3}', '{\"a b\",c}', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', 'happy', 5, repeat('x', 100000));
         UPDATE t SET id = 2 WHERE id = 1;",
    )
    .await
    .unwrap();
    let recs = read_topics(&rig.broker.bootstrap, &["types.public.t"], 4, 60);
    let ops: Vec<Option<&str>> = recs.iter().map(|r| r.op()).collect();
    assert_eq!(ops.len(), 4, "{}", daemon.logs());
    // Keys 1 and 2 may land in different partitions; order holds per key.
    let mut recs = recs;
    recs.sort_by_key(|r| r.key.as_ref().and_then(|k| k["id"].as_i64()));
    let ops: Vec<Option<&str>> = recs.iter().map(|r| r.op()).collect();
    assert_eq!(ops, [Some("c"), Some("d"), None, Some("c")]);
    let after = recs[0].value.as_ref().unwrap()["after"].clone();
    assert_eq!(after["id"], json!(1));
    assert_eq!(after["n"], json!("12345678901234567890.000000001"));
    assert_eq!(after["f"], json!("NaN"));
    assert_eq!(after["b"], json!(true));
    assert_eq!(after["ts"], json!("2024-02-29T13:14:15.123456"));
    assert_eq!(after["tz"], json!("2024-02-29T11:14:15.000000Z"));
    assert_eq!(after["d"], json!("2024-02-29"));
    assert_eq!(after["tm"], json!("01:02:03.5"));
    assert_eq!(after["iv"], json!("P1Y2M3DT4H5M6S"));
    assert_eq!(after["j"], json!("{\"k\": [1, null]}"));
    assert_eq!(after["by"], json!("AP8="));
    assert_eq!(after["arr"], json!([1, null, 3]));
    assert_eq!(after["tarr"], json!(["a b", "c"]));
    assert_eq!(after["u"], json!("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"));
    assert_eq!(after["m"], json!("happy"));
    assert_eq!(after["p"], json!(5), "domain over int renders as its base type");
    assert_eq!(after["big"].as_str().map(str::len), Some(100_000));
    assert!(after["big"].as_str().unwrap().bytes().all(|b| b == b'x'));
    // The key change: delete of the old key (with tombstone), then create of the new key.
    assert_eq!(recs[1].key, Some(json!({"id": 1})));
    assert_eq!(recs[2].key, Some(json!({"id": 1})));
    assert_eq!(recs[3].key, Some(json!({"id": 2})));
    // The unchanged 100 kB TOASTed value is not in the WAL for the new row: Debezium's placeholder.
    let big_after_update = recs[3].value.as_ref().unwrap()["after"]["big"].as_str().unwrap().to_string();
    assert!(
        big_after_update == "__debezium_unavailable_value",
        "expected the placeholder, got {} bytes",
        big_after_update.len()
    );
    assert_eq!(daemon.stop(), Some(0));
}

/// Issue 20, item 3: a table removed from `tables` stops streaming after a restart, and leaves
/// cdcd's publication.
#[tokio::test(flavor = "multi_thread")]
async fn a_table_removed_from_tables_stops_streaming_and_leaves_the_publication() {
    let db = TestDb::create("e2e_unselect").await;
    let c = db.client().await;
    c.batch_execute("CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE secret (id int PRIMARY KEY, pw text);")
        .await
        .unwrap();
    // No snapshot: rows written while a snapshot runs may arrive twice (`r` and `c`), which is
    // at-least-once but would blur the counts below.
    let rig = Rig::new(&db.url, "unselect", r#"["public.a", "public.secret"]"#, "snapshot = \"never\"");
    let topics = ["unselect.public.a", "unselect.public.secret"];
    let daemon = Daemon::start(&rig.cfg);
    assert!(wait_until(Duration::from_secs(60), || daemon.logs().contains("streaming")), "{}", daemon.logs());
    c.batch_execute("INSERT INTO a VALUES (1); INSERT INTO secret VALUES (1, 'one');").await.unwrap();
    assert_eq!(read_topics(&rig.broker.bootstrap, &topics, 2, 60).len(), 2, "log:\n{}", daemon.logs());
    assert_eq!(daemon.stop(), Some(0));

    let text =
        std::fs::read_to_string(&rig.cfg).unwrap().replace(r#"["public.a", "public.secret"]"#, r#"["public.a"]"#);
    std::fs::write(&rig.cfg, text).unwrap();
    let daemon = Daemon::start(&rig.cfg);
    c.batch_execute("INSERT INTO secret VALUES (2, 'two'); INSERT INTO a VALUES (2);").await.unwrap();
    let recs = read_topics(&rig.broker.bootstrap, &topics, 3, 60);
    let ids = |topic: &str| -> Vec<i64> {
        recs.iter().filter(|r| r.topic == topic).filter_map(|r| r.value.as_ref()?["after"]["id"].as_i64()).collect()
    };
    assert_eq!(ids("unselect.public.a"), [1, 2], "log:\n{}", daemon.logs());
    assert_eq!(
        ids("unselect.public.secret"),
        [1],
        "a table no longer in `tables` was published; log:\n{}",
        daemon.logs()
    );
    let published: Vec<String> = c
        .query("SELECT tablename::text FROM pg_publication_tables WHERE pubname = 'cdcd_unselect'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(published, ["a"]);
    assert_eq!(daemon.stop(), Some(0));
}

/// Issue 20, item 3: a publication of the user's that is wider than `tables` (`FOR ALL TABLES`)
/// sends every table to the slot; only the selected ones are published.
#[tokio::test(flavor = "multi_thread")]
async fn a_publication_for_all_tables_publishes_only_the_selected_tables() {
    let db = TestDb::create("e2e_alltables").await;
    let c = db.client().await;
    c.batch_execute("CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY);").await.unwrap();
    // FOR ALL TABLES takes a superuser (scripts/pg.sh: postgres, same password).
    let admin = connect(&db.url.replacen("://cdcd:", "://postgres:", 1)).await;
    admin.batch_execute("CREATE PUBLICATION everything FOR ALL TABLES").await.unwrap();
    let rig = Rig::new(&db.url, "alltables", r#"["public.a"]"#, "publication = \"everything\"\nsnapshot = \"never\"");
    let daemon = Daemon::start(&rig.cfg);
    assert!(wait_until(Duration::from_secs(60), || daemon.logs().contains("streaming")), "{}", daemon.logs());
    c.batch_execute("INSERT INTO b VALUES (1); TRUNCATE b; INSERT INTO a VALUES (1); INSERT INTO b VALUES (2);")
        .await
        .unwrap();
    c.batch_execute("INSERT INTO a VALUES (2);").await.unwrap();
    let recs = read_topics(&rig.broker.bootstrap, &["alltables.public.a", "alltables.public.b"], 2, 60);
    assert_eq!(recs.len(), 2, "records: {recs:#?}\nlog:\n{}", daemon.logs());
    assert!(recs.iter().all(|r| r.topic == "alltables.public.a"), "{recs:#?}");
    assert_eq!(daemon.stop(), Some(0));
}
