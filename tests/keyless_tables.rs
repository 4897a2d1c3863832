//! Tables without a primary key, on both sources: captured with a null Kafka key (or the key
//! columns the user names), never stopping the connector. On PostgreSQL such a table goes into
//! an insert-only publication, so the application's own UPDATE and DELETE on it keep working;
//! on MariaDB full row images give its updates and deletes too.

mod support;

use std::process::Command;
use std::time::Duration;

use mysql_async::prelude::*;
use serde_json::{json, Value};
use support::*;

fn topic_recs<'a>(recs: &'a [Rec], topic: &str) -> Vec<&'a Rec> {
    recs.iter().filter(|r| r.topic == topic).collect()
}

/// Column `col` of every snapshot read (`r`) of `topic`, sorted.
fn snapshot_reads(recs: &[Rec], topic: &str, col: &str) -> Vec<i64> {
    let mut v: Vec<i64> = topic_recs(recs, topic)
        .iter()
        .filter(|r| r.op() == Some("r"))
        .filter_map(|r| r.value.as_ref()?["after"][col].as_i64())
        .collect();
    v.sort_unstable();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_wildcard_over_a_pgbench_schema_captures_the_keyless_history_table() {
    let db = TestDb::create("keyless_pg").await;
    let url = url::Url::parse(&db.url).unwrap();
    let pgbench = |args: &[&str]| {
        let out = Command::new("/usr/lib/postgresql/15/bin/pgbench")
            .args(["-h", url.host_str().unwrap(), "-p", &url.port().unwrap().to_string(), "-U", "cdcd"])
            .args(args)
            .arg(&db.name)
            .env("PGPASSWORD", "cdcd")
            .output()
            .expect("run pgbench (postgresql-15 ships it)");
        assert!(out.status.success(), "pgbench {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    pgbench(&["-i", "-s", "1", "-q"]);
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE events_k (code text, v int); INSERT INTO events_k VALUES ('pre', 0);
         CREATE TABLE audit (what text); INSERT INTO audit VALUES ('pre-existing');",
    )
    .await
    .unwrap();
    let rig = Rig::new(&db.url, "kl", r#"["public.*"]"#, "[source.key_columns]\n\"public.events_k\" = [\"code\"]\n");

    let (code, out, _) = cdcd(&["check", "--config", rig.cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "a keyless table is a note, not a failure:\n{out}");
    assert!(out.contains("note  public.pgbench_history: inserts and truncates only, null Kafka key"), "{out}");
    assert!(out.contains("REPLICA IDENTITY FULL, to capture updates and deletes too"), "{out}");
    assert!(out.contains("public.pgbench_accounts: every change captured, key (aid) from the primary key"), "{out}");
    assert!(out.contains("public.events_k: inserts and truncates only, key (code) from the configured key"), "{out}");

    let daemon = Daemon::start(&rig.cfg);
    assert!(wait_until(Duration::from_secs(60), || daemon.logs().contains("streaming")), "{}", daemon.logs());
    pgbench(&["-t", "40", "-c", "1", "-n"]);
    // The application's own UPDATE and DELETE on the keyless table must keep working.
    c.batch_execute("UPDATE pgbench_history SET delta = 0 WHERE tid = 1; DELETE FROM pgbench_history WHERE tid = 2")
        .await
        .expect("UPDATE/DELETE on a keyless captured table must not fail");
    c.batch_execute("INSERT INTO events_k VALUES ('live', 1); INSERT INTO audit VALUES ('live')").await.unwrap();

    let topics = ["kl.public.pgbench_history", "kl.public.pgbench_tellers", "kl.public.events_k", "kl.public.audit"];
    let recs = read_topics(&rig.broker.bootstrap, &topics, 40 + 10 + 40 + 2 + 2, 90);
    let history = topic_recs(&recs, "kl.public.pgbench_history");
    assert_eq!(history.len(), 40, "one insert per pgbench transaction, updates/deletes not published: {history:#?}");
    assert!(history.iter().all(|r| r.key.is_none() && r.op() == Some("c")), "{history:#?}");
    let tellers = topic_recs(&recs, "kl.public.pgbench_tellers");
    assert_eq!(tellers.iter().filter(|r| r.op() == Some("r")).count(), 10);
    assert_eq!(tellers.iter().filter(|r| r.op() == Some("u")).count(), 40);
    let events = topic_recs(&recs, "kl.public.events_k");
    // Read while streaming, a row inserted meanwhile can come as `c` and again as `r` (same
    // state, same key); what matters here is that every record carries the configured key.
    let keys: std::collections::BTreeSet<String> = events.iter().map(|r| format!("{:?}", r.key)).collect();
    let want: std::collections::BTreeSet<String> =
        [Some(json!({"code": "pre"})), Some(json!({"code": "live"}))].iter().map(|k| format!("{k:?}")).collect();
    assert_eq!(keys, want, "configured key columns");
    let mut audit: Vec<_> =
        topic_recs(&recs, "kl.public.audit").iter().map(|r| (r.op().unwrap_or("?"), r.key.is_none())).collect();
    audit.sort();
    assert_eq!(audit, [("c", true), ("r", true)], "null keys, in any partition order");

    let pubs = c
        .query("SELECT pubname::text, tablename::text FROM pg_publication_tables WHERE pubname LIKE 'cdcd_kl%' ORDER BY 1, 2", &[])
        .await
        .unwrap();
    let in_pub = |p: &str, t: &str| pubs.iter().any(|r| r.get::<_, String>(0) == p && r.get::<_, String>(1) == t);
    assert!(in_pub("cdcd_kl_inserts", "pgbench_history") && !in_pub("cdcd_kl", "pgbench_history"));
    assert!(in_pub("cdcd_kl", "pgbench_accounts") && !in_pub("cdcd_kl_inserts", "pgbench_accounts"));
    assert_eq!(daemon.stop(), Some(0));

    // A table that gains a primary key moves to the publication that publishes everything.
    c.batch_execute("ALTER TABLE audit ADD COLUMN id serial PRIMARY KEY").await.unwrap();
    let daemon = Daemon::start(&rig.cfg);
    assert!(wait_until(Duration::from_secs(30), || daemon.logs().contains("streaming")), "{}", daemon.logs());
    c.batch_execute("UPDATE audit SET what = 'now updatable' WHERE what = 'live'").await.unwrap();
    let recs = read_topics(&rig.broker.bootstrap, &["kl.public.audit"], 3, 60);
    let u =
        recs.iter().find(|r| r.op() == Some("u")).unwrap_or_else(|| panic!("no update: {recs:#?}\n{}", daemon.logs()));
    assert_eq!(u.value.as_ref().unwrap()["after"]["what"], "now updatable");
    assert!(u.key.as_ref().is_some_and(|k| k["id"].is_number()));
    assert_eq!(daemon.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_keyless_tables_get_null_keys_or_configured_ones() {
    let mut c = mysql_db("keyless_my").await;
    c.query_drop("CREATE TABLE log (a int, b varchar(10))").await.unwrap();
    c.query_drop("CREATE TABLE logk (code varchar(10), v int)").await.unwrap();
    c.query_drop("INSERT INTO log VALUES (1, 'pre'); INSERT INTO logk VALUES ('pre', 0)").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let cfg = write_mysql_config(
        dir.path(),
        "klm",
        r#"["keyless_my.*"]"#,
        5301,
        &kafka_sink(&broker.bootstrap),
        "[source.key_columns]\n\"keyless_my.logk\" = [\"code\"]\n",
    );
    let (code, out, _) = cdcd(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("note  keyless_my.log: no primary key; every change captured"), "{out}");
    assert!(
        out.contains("keyless_my.logk: no primary key; every change captured, key (code) from key_columns"),
        "{out}"
    );

    let daemon = Daemon::start(&cfg);
    assert!(wait_until(Duration::from_secs(30), || daemon.logs().contains("streaming binlog")), "{}", daemon.logs());
    c.query_drop(
        "INSERT INTO log VALUES (2, 'live'); UPDATE log SET b = 'upd' WHERE a = 2; DELETE FROM log WHERE a = 1",
    )
    .await
    .unwrap();
    c.query_drop("INSERT INTO logk VALUES ('live', 1); UPDATE logk SET v = 2 WHERE code = 'live'").await.unwrap();
    let recs = read_topics(&broker.bootstrap, &["klm.keyless_my.log", "klm.keyless_my.logk"], 7, 60);
    // Null keys spread over partitions, so there is no order to check across them.
    let mut log: Vec<(&str, bool)> = topic_recs(&recs, "klm.keyless_my.log")
        .iter()
        .map(|r| (r.op().unwrap_or("tombstone"), r.key.is_none()))
        .collect();
    log.sort();
    assert_eq!(log, [("c", true), ("d", true), ("r", true), ("u", true)], "no tombstone without a key: {recs:#?}");
    let u = recs.iter().find(|r| r.topic == "klm.keyless_my.log" && r.op() == Some("u")).unwrap();
    assert_eq!(u.value.as_ref().unwrap()["before"], json!({"a": 2, "b": "live"}), "full row image as before");
    let logk: Vec<_> = topic_recs(&recs, "klm.keyless_my.logk").iter().map(|r| r.key.clone()).collect();
    assert_eq!(logk, [Some(json!({"code": "pre"})), Some(json!({"code": "live"})), Some(json!({"code": "live"}))]);
    assert_eq!(daemon.stop(), Some(0));
}

/// Issue 20, item 1: `key_columns` that are not unique are only the Kafka key. A keyless table
/// keyed by a column shared by 30 rows each, a keyed table re-keyed the same way while a writer
/// updates it, and a keyless table whose key columns a unique index proves unique, all
/// snapshotted in chunks of 10: every row arrives, and per row the last event is the source's.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_non_unique_key_columns_lose_no_snapshot_row() {
    let db = TestDb::create("nonunique_pg").await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE k (g int NOT NULL, v int NOT NULL);
         INSERT INTO k SELECT i % 2, i FROM generate_series(1, 60) i;
         CREATE TABLE p (id int PRIMARY KEY, g int NOT NULL, v int NOT NULL);
         INSERT INTO p SELECT i, i % 2, 0 FROM generate_series(1, 60) i;
         CREATE TABLE u (code int NOT NULL UNIQUE, v int);
         INSERT INTO u SELECT i, i FROM generate_series(1, 60) i;
         ALTER TABLE k REPLICA IDENTITY FULL; ALTER TABLE u REPLICA IDENTITY FULL;",
    )
    .await
    .unwrap();
    let rig = Rig::new(
        &db.url,
        "nonuq",
        r#"["public.k", "public.p", "public.u"]"#,
        "snapshot_chunk_rows = 10\nsnapshot_workers = 2\n[source.key_columns]\n\"public.k\" = [\"g\"]\n\"public.p\" = [\"g\"]\n\"public.u\" = [\"code\"]\n",
    );
    let daemon = Daemon::start(&rig.cfg);
    // Updates of p while its chunks are read: the stale snapshot copy must never come last.
    for round in 1..=40 {
        c.execute("UPDATE p SET v = $1 WHERE id % 7 = $2", &[&round, &(round % 7)]).await.unwrap();
    }
    let target: String = c.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.unwrap().get(0);
    wait_for_checkpoint(rig.dir.path(), "nonuq", &daemon, Duration::from_secs(90), |cp| {
        cp["snapshot"]["tables"].as_array().is_some_and(|t| t.iter().all(|t| t["done"] == true))
            && pg_lsn(cp["position"]["lsn"].as_str().unwrap_or("0/0")) >= pg_lsn(&target)
    });
    let recs = read_topics_to_end(&rig.broker.bootstrap, &["nonuq.public.k", "nonuq.public.p", "nonuq.public.u"], 60);
    let reads = |topic: &str, col: &str| snapshot_reads(&recs, topic, col);
    assert_eq!(reads("nonuq.public.k", "v"), (1..=60).collect::<Vec<_>>(), "log:\n{}", daemon.logs());
    assert_eq!(reads("nonuq.public.u", "code"), (1..=60).collect::<Vec<_>>());
    assert!(daemon.logs().contains("key_columns are not proven unique"), "{}", daemon.logs());
    // p: per row (one partition per key g, so in order), the last event is the source's row.
    let mut last = std::collections::BTreeMap::new();
    for r in topic_recs(&recs, "nonuq.public.p") {
        if let Some(after) = r.value.as_ref().map(|v| v["after"].clone()).filter(|a| !a.is_null()) {
            last.insert(after["id"].as_i64().unwrap(), after["v"].as_i64().unwrap());
        }
    }
    let source: std::collections::BTreeMap<i64, i64> =
        c.query("SELECT id::int8, v::int8 FROM p", &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect();
    assert_eq!(last, source, "log:\n{}", daemon.logs());
    assert_eq!(daemon.stop(), Some(0));
}

/// Issue 20, item 1 on MariaDB: the same three tables.
#[tokio::test(flavor = "multi_thread")]
async fn mariadb_non_unique_key_columns_lose_no_snapshot_row() {
    let mut c = mysql_db("nonunique_my").await;
    c.query_drop(
        "CREATE TABLE k (g int NOT NULL, v int NOT NULL);
         CREATE TABLE p (id int PRIMARY KEY, g int NOT NULL, v int NOT NULL);
         CREATE TABLE u (code int NOT NULL UNIQUE, v int);",
    )
    .await
    .unwrap();
    for i in 1..=60 {
        c.exec_drop("INSERT INTO k VALUES (?, ?)", (i % 2, i)).await.unwrap();
        c.exec_drop("INSERT INTO p VALUES (?, ?, 0)", (i, i % 2)).await.unwrap();
        c.exec_drop("INSERT INTO u VALUES (?, ?)", (i, i)).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let cfg = write_mysql_config(
        dir.path(),
        "nonuqm",
        r#"["nonunique_my.k", "nonunique_my.p", "nonunique_my.u"]"#,
        5391,
        &kafka_sink(&broker.bootstrap),
        "snapshot_chunk_rows = 10\nsnapshot_workers = 2\n[source.key_columns]\n\"nonunique_my.k\" = [\"g\"]\n\"nonunique_my.p\" = [\"g\"]\n\"nonunique_my.u\" = [\"code\"]\n",
    );
    let daemon = Daemon::start(&cfg);
    for round in 1..=40 {
        c.exec_drop("UPDATE p SET v = ? WHERE id % 7 = ?", (round, round % 7)).await.unwrap();
    }
    let target: String = c.query_first("SELECT @@gtid_binlog_pos").await.unwrap().unwrap();
    wait_for_checkpoint(dir.path(), "nonuqm", &daemon, Duration::from_secs(90), |cp| {
        cp["snapshot"]["tables"].as_array().is_some_and(|t| t.iter().all(|t| t["done"] == true))
            && maria_seq(cp["position"]["gtid"].as_str().unwrap_or("")) >= maria_seq(&target)
    });
    let topics = ["nonuqm.nonunique_my.k", "nonuqm.nonunique_my.p", "nonuqm.nonunique_my.u"];
    let recs = read_topics_to_end(&broker.bootstrap, &topics, 60);
    let reads = |topic: &str, col: &str| snapshot_reads(&recs, topic, col);
    assert_eq!(reads(topics[0], "v"), (1..=60).collect::<Vec<_>>(), "log:\n{}", daemon.logs());
    assert_eq!(reads(topics[2], "code"), (1..=60).collect::<Vec<_>>());
    assert!(daemon.logs().contains("key_columns are not proven unique"), "{}", daemon.logs());
    let mut last = std::collections::BTreeMap::new();
    for r in topic_recs(&recs, topics[1]) {
        if let Some(after) = r.value.as_ref().map(|v| v["after"].clone()).filter(|a| !a.is_null()) {
            last.insert(after["id"].as_i64().unwrap(), after["v"].as_i64().unwrap());
        }
    }
    let source: std::collections::BTreeMap<i64, i64> =
        c.query::<(i64, i64), _>("SELECT id, v FROM p").await.unwrap().into_iter().collect();
    assert_eq!(last, source, "log:\n{}", daemon.logs());
    assert_eq!(daemon.stop(), Some(0));
}

/// Rows of a keyless table `(id, v)` as a consumer keeps them by `id` (unique by construction,
/// backed by no index), from every record of the one-partition `topic` in order.
fn keyless_replica(recs: &[Rec], topic: &str) -> std::collections::BTreeMap<i64, Value> {
    support::random_workload::replica(recs, topic, &["v"]).into_iter().map(|(id, mut v)| (id, v.remove(0))).collect()
}

/// The snapshot progress of the table, as the checkpoint has it, while `until` is false.
async fn rows_seen_in_checkpoints(dir: &std::path::Path, name: &str, until: impl Fn() -> bool) -> Vec<u64> {
    let path = checkpoint_path(dir, name);
    let mut seen = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while !until() && std::time::Instant::now() < deadline {
        let rows = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<Value>(&t).ok())
            .and_then(|cp| cp["snapshot"]["tables"][0]["rows"].as_u64());
        if let Some(r) = rows.filter(|r| seen.last() != Some(r)) {
            seen.push(r);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen
}

const KEYLESS_ROWS: i64 = 3000;

/// Issue 20 items 8 and 9 on MariaDB and MySQL 9.7: a table without a key is read in one
/// transaction and goes out in pieces of `snapshot_chunk_rows` (throttled here so the read
/// lasts seconds), while the application deletes and updates its rows. No row deleted or
/// updated meanwhile may come back as a snapshot read after its delete or update; the read's
/// progress reaches the checkpoint piece by piece (so memory holds pieces, not the table).
async fn keyless_rows_changed_during_the_read_stay_changed(url: &str, db: &str, server_id: u32) {
    let mut c = mysql_db_at(url, db).await;
    // Columns of the types whose text (snapshot) and binlog (stream) forms could differ: rows
    // are matched by whole image.
    c.query_drop(
        "CREATE TABLE big (id int NOT NULL, v varchar(32), f float, d double, n decimal(12,4), \
         t datetime(3), j json, b varbinary(8))",
    )
    .await
    .unwrap();
    let values: Vec<String> = (1..=KEYLESS_ROWS)
        .map(|i| {
            format!(
                "({i}, 'seed-{i}', {i}.3141592, {i}.1415926535, {i}.25, '2026-01-02 03:04:05.{:03}', '{{\"k\": {i}, \"s\": [1.5, \"x\"]}}', x'00ff{:02x}')",
                i % 1000,
                i % 256
            )
        })
        .collect();
    c.query_drop(format!("INSERT INTO big VALUES {}", values.join(", "))).await.unwrap();
    let name = format!("kl{server_id}");
    let topic = format!("{name}.{db}.big");
    let broker = Broker::with_topics(&[(&topic, 1)]);
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_mysql_config_at(
        dir.path(),
        &name,
        url,
        &format!(r#"["{db}.big"]"#),
        server_id,
        &kafka_sink(&broker.bootstrap),
        "snapshot_chunk_rows = 100\nsnapshot_max_rows_per_sec = 600",
    );
    let daemon = Daemon::start(&cfg);
    assert!(wait_until(Duration::from_secs(30), || daemon.logs().contains("snapshot started")), "{}", daemon.logs());
    let log = daemon.log.clone();
    let writes = {
        let (url, db) = (url.to_string(), db.to_string());
        tokio::spawn(async move {
            let mut c = mysql_db_conn_at(&url, &db).await;
            // While the read runs: deletes and updates all over the table, so also of rows
            // the read has not sent yet.
            let finished = || std::fs::read_to_string(&log).unwrap_or_default().contains("snapshot finished");
            let mut i = 0i64;
            while i < 1500 && !finished() {
                let id = (i * 37) % KEYLESS_ROWS + 1;
                if i % 3 == 0 {
                    c.exec_drop("UPDATE big SET v = ? WHERE id = ?", (format!("upd-{i}"), id)).await.unwrap();
                } else {
                    c.exec_drop("DELETE FROM big WHERE id = ?", (id,)).await.unwrap();
                }
                i += 1;
            }
            i
        })
    };
    let checkpoints = rows_seen_in_checkpoints(dir.path(), &name, || daemon.logs().contains("snapshot finished")).await;
    let changes = writes.await.unwrap();
    eprintln!("{db}: {changes} changes while the table was read; progress seen: {checkpoints:?}");
    let (target, done) = gtid_target(&mut c).await;
    wait_for_checkpoint(dir.path(), &name, &daemon, Duration::from_secs(90), |cp| {
        cp["snapshot"]["tables"][0]["done"] == true
            && done(cp["position"]["gtid"].as_str().unwrap_or("")) >= done(&target)
    });
    let recs = read_topics_to_end(&broker.bootstrap, &[&topic], 60);
    let source: std::collections::BTreeMap<i64, Value> = c
        .query::<(i64, String), _>("SELECT id, v FROM big")
        .await
        .unwrap()
        .into_iter()
        .map(|(id, v)| (id, Value::from(v)))
        .collect();
    let replica = keyless_replica(&recs, &topic);
    let differ: Vec<_> =
        source.keys().chain(replica.keys()).filter(|id| source.get(id) != replica.get(id)).take(5).collect();
    assert!(
        differ.is_empty(),
        "{db}: rows differ from the source (first ids: {differ:?}; replica {} rows, source {}); log:\n{}",
        replica.len(),
        source.len(),
        daemon.logs()
    );
    let partial = checkpoints.iter().filter(|&&r| r > 0 && r < KEYLESS_ROWS as u64).count();
    assert!(partial >= 3, "{db}: the read's progress did not reach the checkpoint piece by piece: {checkpoints:?}");
    assert_eq!(daemon.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_keyless_rows_changed_during_the_read_stay_changed() {
    keyless_rows_changed_during_the_read_stay_changed(&mysql_url(), "keyless_win_my", 5393).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql97_keyless_rows_changed_during_the_read_stay_changed() {
    keyless_rows_changed_during_the_read_stay_changed(&mysql97_url(), "keyless_win_m97", 5394).await;
}

/// Issue 20 item 8 on PostgreSQL: the keyless table is cut by `ctid` into chunks read one after
/// another (throttled), while its rows are deleted and updated, and a column is added midway.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_keyless_rows_changed_during_the_snapshot_stay_changed() {
    let db = TestDb::create("keyless_win_pg").await;
    let c = db.client().await;
    c.batch_execute(&format!(
        "CREATE TABLE big (id int NOT NULL, v varchar(32), f real, d double precision, n numeric(12,4),
                           t timestamptz, j jsonb, b bytea, a int[]);
         ALTER TABLE big REPLICA IDENTITY FULL;
         INSERT INTO big SELECT i, 'seed-' || i, i + 0.3141592, i + 0.1415926535, i + 0.25,
                                '2026-01-02 03:04:05+00'::timestamptz + i * interval '1.001 second',
                                jsonb_build_object('k', i, 's', jsonb_build_array(1.5, 'x')),
                                decode(lpad(to_hex(i), 8, '0'), 'hex'), ARRAY[i, NULL, 3]
         FROM generate_series(1, {KEYLESS_ROWS}) i;"
    ))
    .await
    .unwrap();
    let topic = "klpg.public.big";
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::with_topics(&[(topic, 1)]);
    let cfg = write_config(
        dir.path(),
        "klpg",
        &db.url,
        r#"["public.big"]"#,
        &kafka_sink(&broker.bootstrap),
        "snapshot_chunk_rows = 1000\nsnapshot_max_rows_per_sec = 2000\nsnapshot_workers = 1",
    );
    let daemon = Daemon::start(&cfg);
    assert!(wait_until(Duration::from_secs(30), || daemon.logs().contains("snapshot started")), "{}", daemon.logs());
    // Changes all the time the chunks are read, so also between a chunk's read and its
    // watermark.
    let mut i = 0i64;
    while i < 1500 && !daemon.logs().contains("snapshot finished") {
        if i == 300 {
            // The log's rows gain a column the chunks read from here on do not have.
            c.batch_execute("ALTER TABLE big ADD COLUMN extra int DEFAULT 7").await.unwrap();
        }
        let id = ((i * 37) % KEYLESS_ROWS + 1) as i32;
        if i % 3 == 0 {
            c.execute("UPDATE big SET v = $1 WHERE id = $2", &[&format!("upd-{i}"), &id]).await.unwrap();
        } else {
            c.execute("DELETE FROM big WHERE id = $1", &[&id]).await.unwrap();
        }
        i += 1;
    }
    eprintln!("{i} changes while the table was read");
    let target: String = c.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.unwrap().get(0);
    wait_for_checkpoint(dir.path(), "klpg", &daemon, Duration::from_secs(90), |cp| {
        cp["snapshot"]["tables"][0]["done"] == true
            && pg_lsn(cp["position"]["lsn"].as_str().unwrap_or("0/0")) >= pg_lsn(&target)
    });
    let recs = read_topics_to_end(&broker.bootstrap, &[topic], 60);
    let source: std::collections::BTreeMap<i64, Value> = c
        .query("SELECT id::int8, v FROM big", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get::<_, i64>(0), Value::from(r.get::<_, String>(1))))
        .collect();
    let replica = keyless_replica(&recs, topic);
    let differ: Vec<_> =
        source.keys().chain(replica.keys()).filter(|id| source.get(id) != replica.get(id)).take(5).collect();
    assert!(differ.is_empty(), "rows differ from the source (first ids: {differ:?}); log:\n{}", daemon.logs());
    assert_eq!(daemon.stop(), Some(0));
}
