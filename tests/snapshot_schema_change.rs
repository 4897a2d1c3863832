//! A column added while a table is snapshotted, on PostgreSQL, MariaDB 10.11 and MySQL 9.7. The snapshot is
//! slowed down; early in it the table gains a column and the rows its later chunks will read
//! are updated to give that column a value. A chunk read after the ALTER must carry the new
//! column: its rows are emitted after the stream's update of the same keys, so a row read with
//! the columns from before the ALTER would take the value away again (the last event per key
//! must equal the source row; a column the event lacks counts as null, which is what the rows
//! read before the ALTER hold).

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use mysql_async::prelude::*;
use serde_json::{json, Value};
use support::*;

const ROWS: i64 = 3_000;
const SLOW: &str = "snapshot_chunk_rows = 100\nsnapshot_workers = 1\nsnapshot_max_rows_per_sec = 1000";

#[tokio::test(flavor = "multi_thread")]
async fn postgres_column_added_mid_snapshot_reaches_the_rows_read_after_it() {
    let db = TestDb::create("snap_alter_pg").await;
    let c = db.client().await;
    c.batch_execute(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'seed' FROM generate_series(1, {ROWS}) g"
    ))
    .await
    .unwrap();
    let rig = Rig::new(&db.url, "pgalter", r#"["public.t"]"#, SLOW);
    let daemon = Daemon::start(&rig.cfg);
    assert!(wait_until(Duration::from_secs(30), || daemon.logs().contains("snapshot started")), "{}", daemon.logs());
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.batch_execute(&format!(
        "ALTER TABLE t ADD COLUMN extra int; UPDATE t SET extra = id, v = 'updated' WHERE id > {}; INSERT INTO t VALUES ({}, 'new', -1)",
        ROWS / 2,
        ROWS + 1
    ))
    .await
    .unwrap();
    let rows = c.query("SELECT id::int8, v, extra::int8 FROM t", &[]).await.unwrap();
    let rows: Vec<(i64, String, Option<i64>)> = rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    check(&daemon, &rig.broker.bootstrap, "pgalter.public.t", rows);
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_column_added_mid_snapshot_reaches_the_rows_read_after_it() {
    column_added_mid_snapshot(&mysql_url(), "snap_alter", "snapalter", 5801).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql97_column_added_mid_snapshot_reaches_the_rows_read_after_it() {
    column_added_mid_snapshot(&mysql97_url(), "snap97_alter", "snap97alter", 5802).await;
}

async fn column_added_mid_snapshot(url: &str, db: &str, name: &str, server_id: u32) {
    let mut c = mysql_db_at(url, db).await;
    c.query_drop("CREATE TABLE t (id INT PRIMARY KEY, v TEXT)").await.unwrap();
    insert_seq(&mut c, "t", 1, ROWS, "'seed'").await;
    let broker = Broker::start();
    let dir = tempfile::tempdir().unwrap();
    let tables = format!(r#"["{db}.t"]"#);
    let cfg = write_mysql_config_at(dir.path(), name, url, &tables, server_id, &kafka_sink(&broker.bootstrap), SLOW);
    let daemon = Daemon::start(&cfg);
    assert!(wait_until(Duration::from_secs(30), || daemon.logs().contains("snapshot started")), "{}", daemon.logs());
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.query_drop("ALTER TABLE t ADD COLUMN extra INT").await.unwrap();
    c.query_drop(format!("UPDATE t SET extra = id, v = 'updated' WHERE id > {}", ROWS / 2)).await.unwrap();
    c.query_drop(format!("INSERT INTO t VALUES ({}, 'new', -1)", ROWS + 1)).await.unwrap();
    let rows: Vec<(i64, String, Option<i64>)> = c.query("SELECT id, v, extra FROM t").await.unwrap();
    check(&daemon, &broker.bootstrap, &format!("{name}.{db}.t"), rows);
}

/// Waits for the snapshot to finish, then compares the last event of every key with `rows`.
fn check(daemon: &Daemon, bootstrap: &str, topic: &str, rows: Vec<(i64, String, Option<i64>)>) {
    assert!(wait_until(Duration::from_secs(60), || daemon.logs().contains("snapshot finished")), "{}", daemon.logs());
    let logs = daemon.logs();
    assert!(logs.contains("columns changed while it is snapshotted"), "{logs}");
    let recs = read_topics(bootstrap, &[topic], ROWS as usize + 1, 90);
    let mut last: BTreeMap<i64, Value> = BTreeMap::new();
    for r in &recs {
        if let (Some(id), Some(v)) = (r.key.as_ref().and_then(|k| k["id"].as_i64()), r.value.as_ref()) {
            last.insert(id, v["after"].clone());
        }
    }
    assert_eq!(last.len(), rows.len(), "one last event per row");
    let mut wrong = Vec::new();
    for (id, v, extra) in rows {
        let want = json!({"id": id, "v": v, "extra": extra});
        let got = last.get(&id).cloned().unwrap_or(Value::Null);
        let got = json!({"id": got["id"], "v": got["v"], "extra": got["extra"]});
        if got != want {
            wrong.push((want, got));
        }
    }
    assert!(wrong.is_empty(), "{} rows end wrong, e.g. {:?}\n{logs}", wrong.len(), &wrong[..wrong.len().min(3)]);
}
