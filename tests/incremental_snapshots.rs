//! Snapshots that start while the stream runs, on the real servers from scripts/test.sh, read
//! back with the independent Python client:
//! - a table created mid-stream that matches a wildcard: on PostgreSQL cdcd finds it, adds it to
//!   the publication and snapshots it, so rows inserted before arrive as `r` and later ones as
//!   `c`; on MariaDB the binlog holds the table from its CREATE on, so every row arrives as `c`
//!   and no snapshot reads it (not even after a restart), while a table renamed into the
//!   captured set is snapshotted (the same on MySQL 9.7);
//! - `cdcd snapshot --table T [--filter]` (a Debezium signal row) re-snapshots one table while
//!   another keeps streaming: the other table's events keep arriving during the snapshot, with
//!   low latency; a Debezium `stop-snapshot` row stops it for good, and a table dropped
//!   mid-snapshot ends its snapshot without stopping the stream (MariaDB and MySQL 9.7).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::*;
use support::*;

fn id_of(r: &Rec) -> Option<i64> {
    r.key.as_ref().and_then(|k| k["id"].as_i64())
}

/// Per key, the ops in topic order.
fn ops_by_key(recs: &[Rec]) -> BTreeMap<i64, Vec<String>> {
    let mut m: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for r in recs {
        if let (Some(id), Some(op)) = (id_of(r), r.op()) {
            m.entry(id).or_default().push(op.to_string());
        }
    }
    m
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_table_created_mid_stream_gets_its_existing_rows_as_r_and_later_ones_as_c() {
    let db = TestDb::create("incr_new_table").await;
    let c = db.client().await;
    c.batch_execute("CREATE SCHEMA live; CREATE TABLE live.first (id int PRIMARY KEY, v text); INSERT INTO live.first VALUES (1, 'a')")
        .await
        .unwrap();
    let rig = Rig::new(&db.url, "incrnew", r#"["live.*"]"#, "table_discovery_interval_secs = 1");
    let daemon = Daemon::start(&rig.cfg);
    assert!(wait_until(Duration::from_secs(60), || daemon.logs().contains("snapshot finished")), "{}", daemon.logs());

    c.batch_execute(
        "CREATE TABLE live.later (id int PRIMARY KEY, v text); INSERT INTO live.later SELECT g, 'before' FROM generate_series(1, 300) g",
    )
    .await
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || daemon.logs().matches("snapshot finished").count() >= 2),
        "the new table was not snapshotted: {}",
        daemon.logs()
    );
    assert!(daemon.logs().contains("new table matches source.tables"), "{}", daemon.logs());
    c.batch_execute("INSERT INTO live.later SELECT g, 'after' FROM generate_series(301, 400) g; UPDATE live.later SET v = 'changed' WHERE id = 5")
        .await
        .unwrap();

    let recs = read_topics(&rig.broker.bootstrap, &["incrnew.live.later"], 401, 60);
    let ops = ops_by_key(&recs);
    for id in 1..=300 {
        let want: &[&str] = if id == 5 { &["r", "u"] } else { &["r"] };
        assert_eq!(ops.get(&id).map(Vec::as_slice).unwrap_or_default(), want, "key {id}: {:?}", ops.get(&id));
    }
    for id in 301..=400 {
        assert_eq!(ops.get(&id).map(Vec::as_slice).unwrap_or_default(), ["c"], "key {id}");
    }
    let snapshot_markers: BTreeSet<&str> = recs
        .iter()
        .filter(|r| r.op() == Some("r"))
        .filter_map(|r| r.value.as_ref()?["source"]["snapshot"].as_str())
        .collect();
    assert_eq!(snapshot_markers, BTreeSet::from(["incremental"]), "a table added later is an incremental snapshot");
    let publication: Vec<String> = c
        .query("SELECT tablename::text FROM pg_publication_tables WHERE pubname = 'cdcd_incrnew' ORDER BY 1", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(publication, ["first", "later"]);
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_table_created_mid_stream_is_streamed_from_its_creation_without_a_snapshot() {
    table_created_mid_stream(&mysql_url(), "incr_my_new", "mynew", 5611).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql97_table_created_mid_stream_is_streamed_from_its_creation_without_a_snapshot() {
    table_created_mid_stream(&mysql97_url(), "incr_my97_new", "my97new", 5621).await;
}

async fn table_created_mid_stream(url: &str, db: &str, name: &str, server_id: u32) {
    let mut c = mysql_db_at(url, db).await;
    c.query_drop("CREATE TABLE first (id INT PRIMARY KEY, v TEXT)").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let tables = format!(r#"["{db}.*"]"#);
    let cfg = write_mysql_config_at(dir.path(), name, url, &tables, server_id, &kafka_sink(&broker.bootstrap), "");
    let (later, moved) = (format!("{name}.{db}.later"), format!("{name}.{db}.moved"));
    let daemon = Daemon::start(&cfg);
    assert!(wait_until(Duration::from_secs(60), || daemon.logs().contains("streaming binlog")), "{}", daemon.logs());

    c.query_drop("CREATE TABLE later (id INT PRIMARY KEY, v TEXT)").await.unwrap();
    insert_seq(&mut c, "later", 1, 300, "'before'").await;
    assert!(
        wait_until(Duration::from_secs(30), || daemon.logs().contains("streamed from its creation")),
        "{}",
        daemon.logs()
    );
    insert_seq(&mut c, "later", 301, 400, "'after'").await;
    let recs = read_topics(&broker.bootstrap, &[&later], 400, 60);
    let ops = ops_by_key(&recs);
    assert_eq!(ops.len(), 400);
    assert!(ops.values().all(|o| o == &["c"]), "every row once, as c: {:?}", ops.iter().find(|(_, o)| *o != &["c"]));

    // A restart must not take the table for a new one (the checkpoint knows it needs no snapshot).
    assert!(wait_until(Duration::from_secs(20), || {
        checkpoint(dir.path(), name).is_some_and(|cp| cp.to_string().contains(&format!("{db}.later")))
    }));
    daemon.stop();
    let daemon = Daemon::start(&cfg);
    assert!(wait_until(Duration::from_secs(60), || daemon.logs().contains("streaming binlog")), "{}", daemon.logs());
    c.query_drop("INSERT INTO later VALUES (401, 'after restart')").await.unwrap();
    let recs = read_topics(&broker.bootstrap, &[&later], 401, 60);
    assert_eq!(recs.iter().filter(|r| r.op() == Some("r")).count(), 0, "{}", daemon.logs());
    assert!(!daemon.logs().contains("snapshot started"), "{}", daemon.logs());

    // A table renamed into the captured set has rows the binlog wrote under another name: they
    // are snapshotted (incrementally), later rows stream as c.
    c.query_drop(format!("CREATE DATABASE IF NOT EXISTS {db}_side")).await.unwrap();
    c.query_drop(format!("DROP TABLE IF EXISTS {db}_side.moved")).await.unwrap();
    c.query_drop(format!("CREATE TABLE {db}_side.moved (id INT PRIMARY KEY, v TEXT)")).await.unwrap();
    insert_seq(&mut c, &format!("{db}_side.moved"), 1, 200, "'outside'").await;
    c.query_drop(format!("RENAME TABLE {db}_side.moved TO {db}.moved")).await.unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || daemon.logs().contains("snapshot finished")),
        "the renamed table was not snapshotted: {}",
        daemon.logs()
    );
    c.query_drop("INSERT INTO moved VALUES (201, 'inside')").await.unwrap();
    let recs = read_topics(&broker.bootstrap, &[&moved], 201, 60);
    let ops = ops_by_key(&recs);
    for id in 1..=200 {
        assert_eq!(ops.get(&id).map(Vec::as_slice).unwrap_or_default(), ["r"], "key {id}");
    }
    assert_eq!(ops.get(&201).map(Vec::as_slice).unwrap_or_default(), ["c"]);
    assert!(
        recs.iter()
            .filter(|r| r.op() == Some("r"))
            .all(|r| r.value.as_ref().is_some_and(|v| v["source"]["snapshot"] == "incremental")),
        "a renamed table's rows are an incremental snapshot"
    );
    drop(daemon);
}

/// Inserts into `<table>` every 5 ms until `stop`.
fn spawn_pg_writer(url: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let c = connect(&url).await;
        let mut i = 0;
        while !stop.load(Ordering::Relaxed) {
            i += 1;
            c.execute("INSERT INTO od.busy (id, v) VALUES ($1, 'x')", &[&i]).await.expect("writer insert");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

/// The streaming table's events while the other table's snapshot rows were being emitted
/// (by cdcd's processing time `ts_ms`): how many, and the worst commit-to-emit latency and gap.
fn streaming_during_snapshot(snap: &[Rec], busy: &[Rec]) -> (usize, i64, i64) {
    let ts = |r: &Rec| r.value.as_ref().and_then(|v| v["ts_ms"].as_i64()).unwrap_or(0);
    let from = snap.iter().map(ts).min().unwrap_or(0);
    let to = snap.iter().map(ts).max().unwrap_or(0);
    let mut during: Vec<(i64, i64)> = busy
        .iter()
        .filter(|r| (from..=to).contains(&ts(r)))
        .map(|r| (ts(r), r.value.as_ref().and_then(|v| v["source"]["ts_ms"].as_i64()).unwrap_or(0)))
        .collect();
    during.sort_unstable();
    let latency = during.iter().map(|(emit, commit)| emit - commit).max().unwrap_or(i64::MAX);
    let mut gap = during.first().map_or(i64::MAX, |f| f.0 - from);
    for w in during.windows(2) {
        gap = gap.max(w[1].0 - w[0].0);
    }
    gap = gap.max(during.last().map_or(i64::MAX, |l| to - l.0));
    println!(
        "snapshot emitted over {} ms; {} streamed events meanwhile, worst commit-to-emit latency {latency} ms, longest gap {gap} ms",
        to - from,
        during.len()
    );
    (during.len(), latency, gap)
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_on_demand_snapshot_leaves_another_table_streaming() {
    let db = TestDb::create("incr_on_demand").await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE SCHEMA od; CREATE TABLE od.busy (id int PRIMARY KEY, v text); \
         CREATE TABLE od.big (id int PRIMARY KEY, v text); \
         INSERT INTO od.big SELECT g, repeat('b', 50) FROM generate_series(1, 200000) g; \
         CREATE TABLE public.cdcd_signal (id varchar(64) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048))",
    )
    .await
    .unwrap();
    let rig = Rig::new(
        &db.url,
        "ondemand",
        r#"["od.*"]"#,
        "snapshot = \"never\"\nsignal_table = \"public.cdcd_signal\"\nsnapshot_chunk_rows = 5000\nsnapshot_workers = 2\nsnapshot_max_rows_per_sec = 50000",
    );
    let cfg = rig.cfg.to_str().unwrap();
    let daemon = Daemon::start(&rig.cfg);
    assert!(wait_until(Duration::from_secs(60), || daemon.logs().contains("streaming")), "{}", daemon.logs());

    // Requests the command refuses, with the reason.
    let (code, _, err) = cdcd(&["snapshot", "--config", cfg, "--table", "public.cdcd_signal"]);
    assert!(code == 1 && err.contains("not captured"), "{code} {err}");
    let (code, _, err) = cdcd(&["snapshot", "--config", cfg, "--table", "big"]);
    assert!(code == 1 && err.contains("schema.table"), "{code} {err}");

    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_pg_writer(db.url.clone(), stop.clone());
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (code, out, err) = cdcd(&["snapshot", "--config", cfg, "--table", "od.big"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(wait_until(Duration::from_secs(90), || daemon.logs().contains("snapshot finished")), "{}", daemon.logs());
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    let big = read_topics(&rig.broker.bootstrap, &["ondemand.od.big"], 200_000, 120);
    let reads: BTreeSet<i64> = big.iter().filter(|r| r.op() == Some("r")).filter_map(id_of).collect();
    assert_eq!(reads.len(), 200_000, "every row of the table, as r");
    assert!(big.iter().all(|r| r.value.as_ref().is_some_and(|v| v["source"]["snapshot"] == "incremental")));
    // Each chunk is emitted at its own watermark: 200,000 keys in chunks of 5,000 are 40
    // watermarks when the ranges follow the key's order (planned in text order they would not).
    let chunks: BTreeSet<i64> = big
        .iter()
        .filter(|r| r.op() == Some("r"))
        .filter_map(|r| r.value.as_ref()?["source"]["lsn"].as_i64())
        .collect();
    assert_eq!(chunks.len(), 40, "chunks of 5,000 rows in key order");
    let busy = read_topics(&rig.broker.bootstrap, &["ondemand.od.busy"], 100, 60);
    let (during, latency, gap) = streaming_during_snapshot(&big, &busy);
    assert!(during >= 100, "only {during} events of the streaming table while the snapshot ran");
    assert!(latency < 1_000, "streaming events waited {latency} ms during the snapshot");
    assert!(gap < 1_000, "the streaming table went {gap} ms without an event during the snapshot");
    let signals: i64 = c.query_one("SELECT count(*) FROM public.cdcd_signal", &[]).await.unwrap().get(0);
    assert_eq!(signals, 1);

    // Asked for again, then stopped by a hand-written Debezium stop-snapshot row: the stop is
    // checkpointed, so a restart does not resume the snapshot.
    let (code, out, err) = cdcd(&["snapshot", "--config", cfg, "--table", "od.big"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        wait_until(Duration::from_secs(30), || daemon.logs().matches("snapshot started").count() >= 2),
        "{}",
        daemon.logs()
    );
    c.batch_execute(
        r#"INSERT INTO public.cdcd_signal VALUES ('stop-1', 'stop-snapshot', '{"data-collections": ["od.big"], "type": "incremental"}')"#,
    )
    .await
    .unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || daemon.logs().contains("incremental snapshot stopped by a signal")),
        "{}",
        daemon.logs()
    );
    let big_progress = |cp: &serde_json::Value| {
        cp["snapshot"]["tables"].as_array().and_then(|t| t.iter().find(|t| t["table"] == "od.big").cloned())
    };
    assert!(
        wait_until(Duration::from_secs(10), || {
            checkpoint(rig.dir.path(), "ondemand").and_then(|cp| big_progress(&cp)).is_some_and(|t| t["done"] == true)
        }),
        "the stop is not in the checkpoint: {:?}",
        checkpoint(rig.dir.path(), "ondemand")
    );
    let rows = checkpoint(rig.dir.path(), "ondemand").and_then(|cp| big_progress(&cp)).and_then(|t| t["rows"].as_u64());
    assert!(rows.is_some_and(|r| r < 200_000), "the stopped snapshot read every row anyway: {rows:?}");
    daemon.stop();
    let daemon = Daemon::start(&rig.cfg);
    assert!(wait_until(Duration::from_secs(60), || daemon.logs().contains("streaming")), "{}", daemon.logs());
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!daemon.logs().contains("snapshot started"), "a stopped snapshot resumed: {}", daemon.logs());

    // A table dropped while it is being snapshotted ends its snapshot; the stream goes on.
    let (code, out, err) = cdcd(&["snapshot", "--config", cfg, "--table", "od.big"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(wait_until(Duration::from_secs(30), || daemon.logs().contains("snapshot started")), "{}", daemon.logs());
    c.batch_execute("DROP TABLE od.big").await.unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || daemon.logs().contains("table no longer exists")),
        "{}",
        daemon.logs()
    );
    c.batch_execute("INSERT INTO od.busy VALUES (1000000, 'after the drop')").await.unwrap();
    let busy = read_topics(&rig.broker.bootstrap, &["ondemand.od.busy"], 1, 60);
    assert!(busy.iter().any(|r| id_of(r) == Some(1_000_000)), "the stream stopped after the drop: {}", daemon.logs());
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_on_demand_snapshot_with_a_filter_leaves_another_table_streaming() {
    on_demand_snapshot_with_a_filter(&mysql_url(), "incr_my_od", "myod", 5612).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql97_on_demand_snapshot_with_a_filter_leaves_another_table_streaming() {
    on_demand_snapshot_with_a_filter(&mysql97_url(), "incr_my97_od", "my97od", 5622).await;
}

async fn on_demand_snapshot_with_a_filter(url: &str, db: &str, name: &str, server_id: u32) {
    let mut c = mysql_db_at(url, db).await;
    c.query_drop("CREATE TABLE busy (id INT PRIMARY KEY, v TEXT)").await.unwrap();
    c.query_drop("CREATE TABLE big (id INT PRIMARY KEY, v TEXT)").await.unwrap();
    insert_seq(&mut c, "big", 1, 200_000, "repeat('b', 50)").await;
    c.query_drop(MY_SIGNAL_TABLE).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let extra = format!("snapshot = \"never\"\nsignal_table = \"{db}.cdcd_signal\"\nsnapshot_chunk_rows = 5000\nsnapshot_workers = 2\nsnapshot_max_rows_per_sec = 50000");
    let tables = format!(r#"["{db}.busy", "{db}.big"]"#);
    let cfg = write_mysql_config_at(dir.path(), name, url, &tables, server_id, &kafka_sink(&broker.bootstrap), &extra);
    let (big_topic, busy_topic, big_table) =
        (format!("{name}.{db}.big"), format!("{name}.{db}.busy"), format!("{db}.big"));
    let daemon = Daemon::start(&cfg);
    assert!(wait_until(Duration::from_secs(60), || daemon.logs().contains("streaming binlog")), "{}", daemon.logs());

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, url, db) = (stop.clone(), url.to_string(), db.to_string());
        tokio::spawn(async move {
            let mut w = mysql_db_conn_at(&url, &db).await;
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                w.exec_drop("INSERT INTO busy VALUES (?, 'x')", (i,)).await.unwrap();
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (code, out, err) =
        cdcd(&["snapshot", "--config", cfg.to_str().unwrap(), "--table", &big_table, "--filter", "id <= 150000"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(wait_until(Duration::from_secs(90), || daemon.logs().contains("snapshot finished")), "{}", daemon.logs());
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    let big = read_topics(&broker.bootstrap, &[&big_topic], 150_000, 120);
    let reads: BTreeSet<i64> = big.iter().filter(|r| r.op() == Some("r")).filter_map(id_of).collect();
    assert_eq!(reads.len(), 150_000, "the filtered rows, as r");
    assert_eq!(reads.last(), Some(&150_000));
    assert!(big.iter().all(|r| r.value.as_ref().is_some_and(|v| v["source"]["snapshot"] == "incremental")));
    let busy = read_topics(&broker.bootstrap, &[&busy_topic], 100, 60);
    let (during, latency, gap) = streaming_during_snapshot(&big, &busy);
    assert!(during >= 100, "only {during} events of the streaming table while the snapshot ran");
    // The binlog's source.ts_ms has whole seconds: allow for the truncation.
    assert!(latency < 2_000, "streaming events waited {latency} ms during the snapshot");
    assert!(gap < 1_000, "the streaming table went {gap} ms without an event during the snapshot");

    // A table dropped while it is being snapshotted ends its snapshot; the stream goes on.
    let (code, out, err) = cdcd(&["snapshot", "--config", cfg.to_str().unwrap(), "--table", &big_table]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        wait_until(Duration::from_secs(30), || daemon.logs().matches("snapshot started").count() >= 2),
        "{}",
        daemon.logs()
    );
    c.query_drop("DROP TABLE big").await.unwrap();
    assert!(
        wait_until(Duration::from_secs(30), || daemon.logs().contains("table no longer exists")),
        "{}",
        daemon.logs()
    );
    c.query_drop("INSERT INTO busy VALUES (1000000, 'after the drop')").await.unwrap();
    let busy = read_topics(&broker.bootstrap, &[&busy_topic], 1, 60);
    assert!(busy.iter().any(|r| id_of(r) == Some(1_000_000)), "the stream stopped after the drop: {}", daemon.logs());
    assert!(wait_until(Duration::from_secs(10), || daemon.logs().matches("snapshot finished").count() >= 2));
    drop(daemon);
}

const PG_SIGNAL_TABLE: &str =
    "CREATE TABLE public.cdcd_signal (id varchar(64) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048))";
const MY_SIGNAL_TABLE: &str =
    "CREATE TABLE cdcd_signal (id VARCHAR(64) PRIMARY KEY, type VARCHAR(32) NOT NULL, data VARCHAR(2048))";

/// Sends `cdcd snapshot --table TABLE --filter FILTER` for the connector in `cfg`.
fn signal_filter(cfg: &std::path::Path, table: &str, filter: &str) {
    let (code, out, err) = cdcd(&["snapshot", "--config", cfg.to_str().unwrap(), "--table", table, "--filter", filter]);
    assert_eq!(code, 0, "{out}{err}");
}

/// Waits for the line that ends a request whose filter cannot be used, naming `cause`.
fn wait_for_refused_filter(daemon: &Daemon, nth: usize, cause: &str) {
    assert!(
        wait_until(Duration::from_secs(30), || daemon.logs().matches("cannot be used").count() >= nth),
        "{}",
        daemon.logs()
    );
    assert!(daemon.logs().contains(cause), "the line names the cause ({cause}): {}", daemon.logs());
}

/// After three refused filters and a streamed insert of id 1000: a good filter (`id <= 10`) still
/// works, the stream went on, and each bad request was one line.
fn check_after_refused_filters(daemon: &Daemon, bootstrap: &str, topic: &str) {
    let recs = read_topics(bootstrap, &[topic], 11, 60);
    let reads: BTreeSet<i64> = recs.iter().filter(|r| r.op() == Some("r")).filter_map(id_of).collect();
    assert_eq!(reads, (1..=10).collect(), "only the last request's rows, as r: {}", daemon.logs());
    assert!(recs.iter().any(|r| r.op() == Some("c") && id_of(r) == Some(1000)), "{}", daemon.logs());
    assert_eq!(daemon.logs().matches("cannot be used").count(), 3, "one line per bad request: {}", daemon.logs());
}

/// Issue 20 item 13: a signal's `filter` is pasted into the snapshot's queries, which run as the
/// source user. They run read-only and, when filtered, under `snapshot_statement_timeout_secs`:
/// a filter that writes, runs too long or does not parse ends that request with one line naming
/// the filter and the fix, writes nothing, and leaves the stream (and later requests) working.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_signal_filter_that_writes_or_runs_too_long_ends_only_its_request() {
    let db = TestDb::create("incr_filter").await;
    let c = db.client().await;
    c.batch_execute(&format!(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'x' FROM generate_series(1, 100) g; \
         CREATE SEQUENCE probe; {PG_SIGNAL_TABLE}"
    ))
    .await
    .unwrap();
    let rig = Rig::new(
        &db.url,
        "filtered",
        r#"["public.t"]"#,
        "snapshot = \"never\"\nsignal_table = \"public.cdcd_signal\"\nsnapshot_statement_timeout_secs = 1",
    );
    let daemon = Daemon::start(&rig.cfg);
    assert!(wait_until(Duration::from_secs(60), || daemon.logs().contains("streaming")), "{}", daemon.logs());

    signal_filter(&rig.cfg, "public.t", "nextval('probe') > 0");
    wait_for_refused_filter(&daemon, 1, "read-only");
    let called: bool = c.query_one("SELECT is_called FROM probe", &[]).await.unwrap().get(0);
    assert!(!called, "the filter wrote (nextval ran): {}", daemon.logs());
    signal_filter(&rig.cfg, "public.t", "pg_sleep(5) IS NOT NULL");
    wait_for_refused_filter(&daemon, 2, "snapshot_statement_timeout_secs");
    signal_filter(&rig.cfg, "public.t", "id >");
    wait_for_refused_filter(&daemon, 3, "syntax");

    c.batch_execute("INSERT INTO t VALUES (1000, 'streamed')").await.unwrap();
    signal_filter(&rig.cfg, "public.t", "id <= 10");
    check_after_refused_filters(&daemon, &rig.broker.bootstrap, "filtered.public.t");
    assert_eq!(daemon.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_signal_filter_that_writes_or_runs_too_long_ends_only_its_request() {
    let mut c = mysql_db("incr_my_filter").await;
    for sql in [
        "CREATE TABLE t (id INT PRIMARY KEY, v TEXT)",
        "INSERT INTO t SELECT seq, 'x' FROM seq_1_to_100",
        "CREATE SEQUENCE probe",
        MY_SIGNAL_TABLE,
    ] {
        c.query_drop(sql).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let extra =
        "snapshot = \"never\"\nsignal_table = \"incr_my_filter.cdcd_signal\"\nsnapshot_statement_timeout_secs = 1";
    let cfg = write_mysql_config(
        dir.path(),
        "myfilter",
        r#"["incr_my_filter.t"]"#,
        5613,
        &kafka_sink(&broker.bootstrap),
        extra,
    );
    let daemon = Daemon::start(&cfg);
    assert!(wait_until(Duration::from_secs(60), || daemon.logs().contains("streaming binlog")), "{}", daemon.logs());

    signal_filter(&cfg, "incr_my_filter.t", "NEXTVAL(incr_my_filter.probe) > 0");
    wait_for_refused_filter(&daemon, 1, "read-only");
    let next: Option<i64> = c.query_first("SELECT NEXTVAL(probe)").await.unwrap();
    assert_eq!(next, Some(1), "the filter wrote (NEXTVAL ran): {}", daemon.logs());
    signal_filter(&cfg, "incr_my_filter.t", "SLEEP(5) = 0");
    wait_for_refused_filter(&daemon, 2, "snapshot_statement_timeout_secs");
    // A syntax error was a transient error on MySQL-family servers: the session restarted on it
    // for ever.
    signal_filter(&cfg, "incr_my_filter.t", "id >");
    wait_for_refused_filter(&daemon, 3, "syntax");

    c.query_drop("INSERT INTO t VALUES (1000, 'streamed')").await.unwrap();
    signal_filter(&cfg, "incr_my_filter.t", "id <= 10");
    check_after_refused_filters(&daemon, &broker.bootstrap, "myfilter.incr_my_filter.t");
    assert_eq!(daemon.stop(), Some(0));
}
