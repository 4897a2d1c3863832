//! Randomized differential tests: a seeded random workload (`support::random_workload`: multi-row
//! and multi-table transactions, savepoints, rollbacks, primary-key changes, TRUNCATE, ADD/DROP
//! COLUMN, a keyless table, XA on the MySQL family) runs against the real server while the daemon is SIGKILLed at random
//! moments, starting during its initial snapshot. Then a consumer's replica, built from every
//! record in partition order, must equal the source tables, and no record may carry a value
//! written by rolled-back work. The seed is printed; `CDCD_TEST_SEED` repeats a run and
//! `CDCD_DIFF_KILLS` (default 10) makes it longer. The records go through the real Apache Kafka
//! broker `scripts/test.sh` starts.

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::*;
use serde_json::Value;
use support::differential::{judge, postgres_tables, rows, snapshot_done, tighten, until_stream_starts};
use support::kafka::RealKafka;
use support::random_workload::{tables_ddl, Flavor, RandomWorkload};
use support::*;

const SEED_ROWS: i64 = 600;

fn kills() -> usize {
    std::env::var("CDCD_DIFF_KILLS").ok().and_then(|k| k.parse().ok()).unwrap_or(10)
}

/// A connector name, and so topic names, of this run alone: the real broker outlives one test
/// binary, and a topic there keeps every record (the mock cluster drops a partition's oldest
/// records past 100,000, which a long `CDCD_DIFF_KILLS` run passes).
fn run_name(base: &str) -> String {
    format!("{base}{}", std::process::id())
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_random_workload_under_kill_9_replicates_exactly() {
    let mut rng = Rng::from_env_or_clock();
    let seed = rng.next();
    let db = TestDb::create("diff_pg").await;
    let c = db.client().await;
    let mut w = RandomWorkload::new(seed, Flavor::Postgres);
    c.batch_execute(&tables_ddl(Flavor::Postgres).join(";")).await.unwrap();
    c.batch_execute(&w.seed(SEED_ROWS).join(";")).await.unwrap();
    let (kafka, name) = (RealKafka::get(), run_name("diffpg"));
    let topics = [format!("{name}.public.a"), format!("{name}.public.b"), format!("{name}.public.k")];
    let topics = [topics[0].as_str(), topics[1].as_str(), topics[2].as_str()];
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &name,
        &db.url,
        r#"["public.a", "public.b", "public.k"]"#,
        &kafka_sink(&kafka.bootstrap),
        "snapshot_chunk_rows = 50",
    );
    tighten(&cfg);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, url, first) = (stop.clone(), db.url.clone(), checkpoint_path(dir.path(), &name));
        tokio::spawn(async move {
            let c = connect(&url).await;
            until_stream_starts(&first, &stop).await;
            while !stop.load(Ordering::Relaxed) {
                let unit = w.next();
                c.batch_execute(&unit.join(";")).await.unwrap_or_else(|e| panic!("{unit:?}: {e}"));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            w
        })
    };
    kill_loop(&cfg, kills(), 1500, &mut rng).await;
    stop.store(true, Ordering::Relaxed);
    let w = writer.await.unwrap();

    let target: String = c.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.unwrap().get(0);
    let daemon = Daemon::start(&cfg);
    wait_for_checkpoint(dir.path(), &name, &daemon, Duration::from_secs(180), |cp| {
        snapshot_done(cp) && pg_lsn(cp["position"]["lsn"].as_str().unwrap_or("0/0")) >= pg_lsn(&target)
    });
    let recs = read_topics_to_end(&kafka.bootstrap, &topics, 300);
    let [a, b, k] = postgres_tables(&c).await;
    judge("PostgreSQL", seed, &w, &recs, &topics, &[a, b, k], &daemon);
    assert_eq!(daemon.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_random_workload_under_kill_9_replicates_exactly() {
    mysql_family("MariaDB", &mysql_url(), "diffmy", 5481, false).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql97_random_workload_under_kill_9_replicates_exactly() {
    mysql_family("MySQL 9.7", &mysql97_url(), "diffmy97", 5482, true).await;
}

/// The workload on a MySQL-family server: XA included; the GTID state of MariaDB
/// (`domain-server-seq`) or of MySQL (`uuid:1-N`) tells when the connector has caught up.
/// `mysql_shapes`: each transaction is written, at random, as a compressed transaction payload
/// (`binlog_transaction_compression`) and under a tagged GTID (`AUTOMATIC:tag`, MySQL 8.3+), so
/// kills land inside both and the checkpoint's GTID set carries tags across restarts.
async fn mysql_family(what: &str, url: &str, base: &str, server_id: u32, mysql_shapes: bool) {
    let mut rng = Rng::from_env_or_clock();
    let seed = rng.next();
    let db = format!("{base}_db");
    let mut c = mysql_db_at(url, &db).await;
    let mut w = RandomWorkload::new(seed, Flavor::Mysql);
    for sql in tables_ddl(Flavor::Mysql).iter().map(|s| s.to_string()).chain(w.seed(SEED_ROWS)) {
        c.query_drop(sql).await.unwrap();
    }
    let (kafka, name) = (RealKafka::get(), run_name(base));
    let topics = [format!("{name}.{db}.a"), format!("{name}.{db}.b"), format!("{name}.{db}.k")];
    let topics = [topics[0].as_str(), topics[1].as_str(), topics[2].as_str()];
    let dir = tempfile::tempdir().unwrap();
    let tables = format!(r#"["{db}.a", "{db}.b", "{db}.k"]"#);
    let cfg = write_mysql_config_at(
        dir.path(),
        &name,
        url,
        &tables,
        server_id,
        &kafka_sink(&kafka.bootstrap),
        "snapshot_chunk_rows = 50",
    );
    tighten(&cfg);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, first, url, db) = (stop.clone(), checkpoint_path(dir.path(), &name), url.to_string(), db.clone());
        tokio::spawn(async move {
            let mut c = mysql_db_conn_at(&url, &db).await;
            let mut shapes = Rng(seed ^ 0x5eed);
            until_stream_starts(&first, &stop).await;
            while !stop.load(Ordering::Relaxed) {
                if mysql_shapes {
                    let compress = ["OFF", "ON"][shapes.range(0, 2) as usize];
                    let gtid = ["AUTOMATIC", "AUTOMATIC:diff_a", "AUTOMATIC:diff_b"][shapes.range(0, 3) as usize];
                    c.query_drop(format!(
                        "SET SESSION binlog_transaction_compression = {compress}, gtid_next = '{gtid}'"
                    ))
                    .await
                    .unwrap();
                }
                for sql in w.next() {
                    c.query_drop(&sql).await.unwrap_or_else(|e| panic!("{sql}: {e}"));
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            w
        })
    };
    kill_loop(&cfg, kills(), 1500, &mut rng).await;
    stop.store(true, Ordering::Relaxed);
    let w = writer.await.unwrap();

    let (target, done) = gtid_target(&mut c).await;
    let daemon = Daemon::start(&cfg);
    wait_for_checkpoint(dir.path(), &name, &daemon, Duration::from_secs(180), |cp| {
        snapshot_done(cp) && done(cp["position"]["gtid"].as_str().unwrap_or("")) >= done(&target)
    });
    if mysql_shapes {
        let cp = checkpoint(dir.path(), &name).unwrap_or_default();
        let gtid = cp["position"]["gtid"].as_str().unwrap_or("");
        assert!(gtid.contains(":diff_a:") && gtid.contains(":diff_b:"), "tags kept in the checkpoint: {gtid}");
    }
    let recs = read_topics_to_end(&kafka.bootstrap, &topics, 300);
    let a: Vec<(i64, Option<String>, Option<i64>)> = c.query("SELECT id, v, n FROM a").await.unwrap();
    let b: Vec<(i64, Option<i64>, Option<String>)> = c.query("SELECT id, a_id, note FROM b").await.unwrap();
    let k: Vec<(i64, Option<String>, Option<i64>)> = c.query("SELECT id, v, n FROM k").await.unwrap();
    let opt = |v: Option<Value>| v.unwrap_or(Value::Null);
    let a = rows(
        a.into_iter().map(|(id, v, n)| vec![id.into(), opt(v.map(Value::from)), opt(n.map(Value::from))]).collect(),
    );
    let b = rows(
        b.into_iter().map(|(id, x, s)| vec![id.into(), opt(x.map(Value::from)), opt(s.map(Value::from))]).collect(),
    );
    let k = rows(
        k.into_iter().map(|(id, v, n)| vec![id.into(), opt(v.map(Value::from)), opt(n.map(Value::from))]).collect(),
    );
    judge(what, seed, &w, &recs, &topics, &[a, b, k], &daemon);
    assert_eq!(daemon.stop(), Some(0));
}
