//! End-to-end against the real MariaDB 10.11 and Oracle MySQL 9.7 started by scripts/test.sh
//! (binlog on, ROW, FULL row metadata, GTIDs) and a real Kafka-protocol broker: snapshot, every
//! op, every type, DDL mid-stream, TRUNCATE, a transaction over several tables, and resume by
//! GTID and by file/offset, on both servers. (The kill -9 loop with savepoints is in
//! crash_loops.rs, on both servers.)

mod support;

use std::time::Duration;

use mysql_async::prelude::*;
use serde_json::{json, Value};
use support::*;

fn rig(name: &str, tables: &str, server_id: u32, extra: &str) -> (tempfile::TempDir, Broker, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let cfg = write_mysql_config(dir.path(), name, tables, server_id, &kafka_sink(&broker.bootstrap), extra);
    (dir, broker, cfg)
}

fn by_op<'a>(recs: &'a [Rec], op: &str, id: i64) -> &'a Value {
    recs.iter()
        .filter_map(|r| r.value.as_ref())
        .find(|v| v["op"] == op && (v["after"]["id"] == json!(id) || v["before"]["id"] == json!(id)))
        .unwrap_or_else(|| panic!("no {op} for id {id} in {recs:#?}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_types_ops_ddl_truncate_and_multi_table_transactions() {
    types_ops_ddl_truncate(&mysql_url(), "my_e2e", "my1", 5101, "mariadb").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql97_snapshot_types_ops_ddl_truncate_and_multi_table_transactions() {
    types_ops_ddl_truncate(&mysql97_url(), "my97_e2e", "my97e2e", 5111, "mysql").await;
}

/// Every type, every op, DDL, TRUNCATE and a two-table transaction, on the server at `url`;
/// `connector` is what `source.connector` says there. Zero dates need a lax `sql_mode`
/// (MySQL's default refuses them); users with old data have one.
async fn types_ops_ddl_truncate(url: &str, db: &str, name: &str, server_id: u32, connector: &str) {
    let mut c = mysql_db_at(url, db).await;
    c.query_drop("SET SESSION sql_mode = ''").await.unwrap();
    c.query_drop(
        "CREATE TABLE items (
            id int unsigned PRIMARY KEY, ti tinyint, tu tinyint unsigned, si smallint, mi mediumint unsigned, ms mediumint, bi bigint,
            bu bigint unsigned, d decimal(10,2), f float, db double, bt bit(5), y year, dt date, dtm datetime(6), dt0 datetime,
            ts timestamp(3) NULL, tm time(2), c char(3), vc varchar(20), lat varchar(10) CHARACTER SET latin1, tx text,
            bn binary(2), vb varbinary(4), bl blob, e enum('a','b'), st set('x','y','z'), j json, g geometry NULL)",
    )
    .await
    .unwrap();
    c.query_drop("CREATE TABLE other (id int PRIMARY KEY, v varchar(10))").await.unwrap();
    c.query_drop(
        "INSERT INTO items VALUES (1, -128, 255, -32768, 16777215, -8388608, -9223372036854775808, 18446744073709551615, -12.34,
           1.5, 2.25, b'10101', 2024, '2024-02-29', '2024-02-29 13:14:15.5', '0000-00-00 00:00:00', '2024-01-02 03:04:05.123',
           '-838:59:59.00', 'ab', 'héllo ✓', 'héllo', 'long text', x'ff00', x'01', x'deadbeef', 'b', 'x,z', '{\"k\": [1, null]}',
           ST_GeomFromText('POINT(1 2)'))",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let tables = format!(r#"["{db}.*"]"#);
    let cfg = write_mysql_config_at(dir.path(), name, url, &tables, server_id, &kafka_sink(&broker.bootstrap), "");
    let (items_topic, other_topic) = (format!("{name}.{db}.items"), format!("{name}.{db}.other"));
    let daemon = Daemon::start(&cfg);
    let snap = read_topics(&broker.bootstrap, &[&items_topic], 1, 60);
    assert_eq!(snap.len(), 1, "{}", daemon.logs());
    let r = snap[0].value.as_ref().unwrap();
    assert_eq!(r["op"], "r");
    assert_eq!(snap[0].key, Some(json!({"id": 1})));
    let a = &r["after"];
    let expect = json!({
        "id": 1, "ti": -128, "tu": 255, "si": -32768, "mi": 16777215, "ms": -8388608, "bi": i64::MIN, "bu": u64::MAX, "d": "-12.34",
        "f": 1.5, "db": 2.25, "bt": "10101", "y": 2024, "dt": "2024-02-29", "dtm": "2024-02-29T13:14:15.5",
        "dt0": "0000-00-00T00:00:00", "ts": "2024-01-02T03:04:05.123000Z", "tm": "-838:59:59", "c": "ab",
        "vc": "héllo ✓", "lat": "héllo", "tx": "long text", "bn": "/wA=", "vb": "AQ==", "bl": "3q2+7w==", "e": "b",
        "st": "x,z", "j": "{\"k\": [1, null]}",
        "g": {"wkb": "AQEAAAAAAAAAAADwPwAAAAAAAABA", "srid": 0}
    });
    assert_eq!(a, &expect, "snapshot row");
    assert_eq!(r["source"]["connector"], connector);
    // The table's only row is its last: the snapshot's last unless the empty `other` table
    // finishes after it (tables are read in parallel), as Debezium marks them.
    let marker = r["source"]["snapshot"].as_str().unwrap_or("");
    assert!(["last", "last_in_data_collection"].contains(&marker), "snapshot marker {marker}");
    let gtid = r["source"]["gtid"].as_str().unwrap_or("");
    assert!(if connector == "mariadb" { gtid.starts_with("0-") } else { gtid.contains(':') }, "{gtid}");

    // The same row through the binlog must render identically.
    c.query_drop("INSERT INTO items SELECT 2, ti, tu, si, mi, ms, bi, bu, d, f, db, bt, y, dt, dtm, dt0, ts, tm, c, vc, lat, tx, bn, vb, bl, e, st, j, g FROM items WHERE id = 1").await.unwrap();
    c.query_drop("UPDATE items SET vc = 'changed' WHERE id = 2").await.unwrap();
    c.query_drop("UPDATE items SET id = 3 WHERE id = 2").await.unwrap();
    c.query_drop("DELETE FROM items WHERE id = 3").await.unwrap();
    // One transaction over two tables.
    c.query_drop("BEGIN").await.unwrap();
    c.query_drop("INSERT INTO items (id, vc) VALUES (10, 'in txn')").await.unwrap();
    c.query_drop("INSERT INTO other VALUES (10, 'in txn')").await.unwrap();
    c.query_drop("COMMIT").await.unwrap();
    // DDL mid-stream: add, rename, retype, drop; DDL outside the include list is ignored.
    c.query_drop("ALTER TABLE other ADD COLUMN extra int DEFAULT 7").await.unwrap();
    c.query_drop("INSERT INTO other (id) VALUES (11)").await.unwrap();
    c.query_drop("ALTER TABLE other CHANGE extra renamed bigint").await.unwrap();
    c.query_drop("INSERT INTO other (id, renamed) VALUES (12, 9000000000)").await.unwrap();
    c.query_drop("ALTER TABLE other DROP COLUMN v").await.unwrap();
    c.query_drop("INSERT INTO other (id) VALUES (13)").await.unwrap();
    c.query_drop(format!("DROP DATABASE IF EXISTS {db}_ignored")).await.unwrap();
    c.query_drop(format!("CREATE DATABASE {db}_ignored")).await.unwrap();
    c.query_drop(format!("CREATE TABLE IF NOT EXISTS {db}_ignored.t (id int PRIMARY KEY)")).await.unwrap();
    c.query_drop(format!("INSERT INTO {db}_ignored.t VALUES (1)")).await.unwrap();
    c.query_drop("TRUNCATE other").await.unwrap();

    // items: r, c2, u2, d2+tomb, c3, d3+tomb, c10 = 9 ; other: c10, c11, c12, c13, t = 5
    let recs = read_topics(&broker.bootstrap, &[&items_topic, &other_topic], 14, 60);
    let items: Vec<Rec> = recs.iter().filter(|r| r.topic == items_topic).cloned().collect();
    let other: Vec<Rec> = recs.iter().filter(|r| r.topic == other_topic).cloned().collect();
    assert_eq!((items.len(), other.len()), (9, 5), "{recs:#?}\n{}", daemon.logs());

    let mut streamed = expect.clone();
    streamed["id"] = json!(2);
    assert_eq!(by_op(&items, "c", 2)["after"], streamed, "binlog rendering equals snapshot rendering");
    let u = by_op(&items, "u", 2);
    assert_eq!(u["before"]["vc"], "héllo ✓", "FULL row image gives the before image");
    assert_eq!(u["after"]["vc"], "changed");
    assert_eq!(u["source"]["snapshot"], "false");
    for f in ["server_id", "gtid", "file", "pos", "row", "db", "table", "ts_ms"] {
        assert!(!u["source"][f].is_null(), "source.{f} missing: {}", u["source"]);
    }
    // Primary-key change: delete of id 2 (with tombstone), create of id 3.
    assert_eq!(by_op(&items, "d", 2)["before"]["id"], 2);
    assert_eq!(by_op(&items, "c", 3)["after"]["vc"], "changed");
    let tombstones: Vec<&Rec> = items.iter().filter(|r| r.value.is_none()).collect();
    // Keys 2 and 3 may sit in different partitions: compare as a set.
    let mut tomb_keys: Vec<i64> = tombstones.iter().map(|r| r.key.as_ref().unwrap()["id"].as_i64().unwrap()).collect();
    tomb_keys.sort();
    assert_eq!(tomb_keys, [2, 3]);

    // The two-table transaction: same GTID, same transaction position, consecutive indexes.
    let t_items = by_op(&items, "c", 10);
    let t_other = by_op(&other, "c", 10);
    assert_eq!(t_items["source"]["gtid"], t_other["source"]["gtid"]);
    let (pi, po) = (t_items["source"]["position"].as_str().unwrap(), t_other["source"]["position"].as_str().unwrap());
    assert_eq!(pi[..18], po[..18], "same transaction");
    assert!(pi < po, "commit order within the transaction: {pi} < {po}");

    // DDL: columns follow the table as it changes.
    assert_eq!(by_op(&other, "c", 11)["after"], json!({"id": 11, "v": null, "extra": 7}));
    assert_eq!(by_op(&other, "c", 12)["after"], json!({"id": 12, "v": null, "renamed": 9000000000u64}));
    assert_eq!(by_op(&other, "c", 13)["after"], json!({"id": 13, "renamed": null}));
    let t = other.iter().filter_map(|r| r.value.as_ref()).find(|v| v["op"] == "t").expect("truncate event");
    assert_eq!(
        (t["before"].clone(), t["after"].clone(), t["source"]["table"].clone()),
        (json!(null), json!(null), json!("other"))
    );
    assert_eq!(daemon.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn resumes_by_gtid_and_by_file_offset_without_loss() {
    resumes_both_ways(&mysql_url(), "my_resume", 5103, "0-1-").await;
}

/// The same on Oracle MySQL 9.7, whose GTIDs are `uuid:1-N` sets (issue 21).
#[tokio::test(flavor = "multi_thread")]
async fn mysql97_resumes_by_gtid_and_by_file_offset_without_loss() {
    resumes_both_ways(&mysql97_url(), "my_resume97", 5105, "").await;
}

async fn resumes_both_ways(url: &str, db: &str, server_id: u32, gtid_prefix: &str) {
    let mut c = mysql_db_at(url, db).await;
    c.query_drop("CREATE TABLE t (id int PRIMARY KEY)").await.unwrap();
    for (name, server_id, mode) in [("bygtid", server_id, "gtid"), ("byfile", server_id + 1, "file")] {
        let name = format!("{name}{server_id}");
        let topic = format!("{name}.{db}.t");
        let dir = tempfile::tempdir().unwrap();
        let broker = Broker::start();
        let extra = format!("position = \"{mode}\"\nsnapshot = \"never\"");
        let tables = format!(r#"["{db}.t"]"#);
        let cfg =
            write_mysql_config_at(dir.path(), &name, url, &tables, server_id, &kafka_sink(&broker.bootstrap), &extra);
        let daemon = Daemon::start(&cfg);
        assert!(
            wait_until(Duration::from_secs(30), || daemon.logs().contains("streaming binlog")),
            "{}",
            daemon.logs()
        );
        let base = if mode == "gtid" { 0 } else { 1000 };
        c.query_drop(format!("INSERT INTO t VALUES ({}), ({})", base + 1, base + 2)).await.unwrap();
        assert_eq!(read_topics(&broker.bootstrap, &[&topic], 2, 60).len(), 2);
        assert_eq!(daemon.stop(), Some(0));
        let ck: Value = checkpoint(dir.path(), &name).expect("a checkpoint after a clean stop");
        assert_eq!(ck["position"]["type"], "mysql");
        assert!(ck["position"]["file"].as_str().unwrap().starts_with("binlog."), "{ck}");
        let gtid = ck["position"]["gtid"].as_str().unwrap();
        assert!(gtid.starts_with(gtid_prefix) && !gtid.is_empty(), "{ck}");
        // Changes while stopped, then resume.
        c.query_drop(format!("INSERT INTO t VALUES ({}), ({})", base + 3, base + 4)).await.unwrap();
        let daemon = Daemon::start(&cfg);
        let recs = read_topics(&broker.bootstrap, &[&topic], 4, 60);
        let ids: Vec<i64> = recs.iter().map(|r| r.value.as_ref().unwrap()["after"]["id"].as_i64().unwrap()).collect();
        assert_eq!(
            ids.len(),
            4,
            "{mode}: resumed exactly after the checkpoint, no loss and no replay: {ids:?}\n{}",
            daemon.logs()
        );
        assert!(daemon.logs().contains(&format!("by=\"{mode}\"")), "{}", daemon.logs());
        assert_eq!(daemon.stop(), Some(0));
    }
}

/// Issue 20, item 2: an XA transaction is published at its XA COMMIT (two-phase or ONE PHASE),
/// never when it is rolled back after XA PREPARE, and a kill -9 between PREPARE and COMMIT
/// loses nothing: the checkpoint stays before the PREPARE until the outcome is read.
#[tokio::test(flavor = "multi_thread")]
async fn xa_transactions_are_published_at_commit_never_at_prepare() {
    let mut c = mysql_db("my_xa").await;
    c.query_drop("CREATE TABLE t (id int PRIMARY KEY, v varchar(20))").await.unwrap();
    let (dir, broker, cfg) = rig("myxa", r#"["my_xa.t"]"#, 5191, "snapshot = \"never\"");
    let topic = ["myxa.my_xa.t"];
    let ids = |recs: &[Rec]| -> Vec<i64> {
        let mut v: Vec<i64> = recs.iter().filter_map(|r| r.value.as_ref()?["after"]["id"].as_i64()).collect();
        v.sort_unstable();
        v.dedup();
        v
    };
    let daemon = Daemon::start(&cfg);
    assert!(wait_until(Duration::from_secs(60), || checkpoint(dir.path(), "myxa").is_some()), "{}", daemon.logs());
    for sql in [
        "XA START 'rolled'",
        "INSERT INTO t VALUES (1, 'never existed')",
        "XA END 'rolled'",
        "XA PREPARE 'rolled'",
        "XA ROLLBACK 'rolled'",
        "XA START 'later'",
        "INSERT INTO t VALUES (2, 'prepared')",
        "XA END 'later'",
        "XA PREPARE 'later'",
    ] {
        c.query_drop(sql).await.unwrap();
    }
    let prepared_at: String = c.query_first("SELECT @@gtid_binlog_pos").await.unwrap().unwrap();
    // A prepared XA transaction belongs to no session (MariaDB 10.5+): commit it from another.
    drop(c);
    let mut c = mysql_db_conn("my_xa").await;
    c.query_drop("INSERT INTO t VALUES (3, 'plain')").await.unwrap();
    let recs = read_topics(&broker.bootstrap, &topic, 1, 60);
    assert_eq!(ids(&recs), [3], "only the plain insert may be published yet; log:\n{}", daemon.logs());
    // The checkpoint moved on past the plain insert's position, but not past the PREPARE.
    let plain_at: String = c.query_first("SELECT @@gtid_binlog_pos").await.unwrap().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let cp = checkpoint(dir.path(), "myxa").expect("checkpoint");
    let cp_seq = maria_seq(cp["position"]["gtid"].as_str().unwrap_or(""));
    assert!(
        cp_seq < maria_seq(&prepared_at) && maria_seq(&prepared_at) < maria_seq(&plain_at),
        "checkpoint {cp} must stay before the PREPARE ({prepared_at}); log:\n{}",
        daemon.logs()
    );
    daemon.kill9();
    c.query_drop("XA COMMIT 'later'").await.unwrap();
    for sql in ["XA START 'one'", "INSERT INTO t VALUES (4, 'one phase')", "XA END 'one'", "XA COMMIT 'one' ONE PHASE"]
    {
        c.query_drop(sql).await.unwrap();
    }
    let daemon = Daemon::start(&cfg);
    let recs = read_topics(&broker.bootstrap, &topic, 4, 60);
    assert_eq!(ids(&recs), [2, 3, 4], "records: {recs:#?}\nlog:\n{}", daemon.logs());
    assert!(recs.iter().all(|r| r.value.as_ref().is_some_and(|v| v["op"] == "c")), "only creations: {recs:#?}");
    assert_eq!(daemon.stop(), Some(0));
}
