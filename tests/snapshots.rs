//! Snapshots read in chunks while streaming, on the real servers from scripts/test.sh into tansu
//! (an independent Kafka-protocol broker), read back with the independent Python client:
//! - a 1,000,000-row table snapshotted while a load generator updates and deletes random rows,
//!   with the daemon SIGKILLed 10 times during the snapshot: at the end the last event per key
//!   equals the source's row (deleted keys end deleted), the rows read twice stay within one
//!   chunk per worker per kill, and no snapshot transaction on the source ever gets old
//!   (`pg_stat_activity.xact_start` / `information_schema.innodb_trx`). PostgreSQL, MariaDB and
//!   Oracle MySQL 9.7.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::*;
use serde_json::Value;
use support::workload::{pg_source_rows, row_json, TABLE_DDL};
use support::*;

const ROWS: i64 = 1_000_000;
const KILLS: usize = 10;
const WORKERS: u64 = 2;
const CHUNK_ROWS: u64 = 5_000;

/// What the independent consumer materialized.
struct Materialized {
    records: u64,
    reads: u64,
    distinct_reads: u64,
    /// Per key (the `id`), the row after the last event, or `None` when the last event deleted it.
    state: BTreeMap<i64, Option<Value>>,
}

fn materialize_topic(bootstrap: &str, topic: &str, min: u64, timeout_secs: u64) -> Materialized {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/read_topics.py");
    let out = Command::new("python3")
        .arg(script)
        .args(["--materialize", "--idle", "5", "--bootstrap", bootstrap, "--topic", topic, "--min", &min.to_string()])
        .args(["--timeout", &timeout_secs.to_string()])
        .output()
        .expect("run read_topics.py");
    assert!(out.status.success(), "read_topics.py --materialize: {}", String::from_utf8_lossy(&out.stderr));
    let v: Value = serde_json::from_slice(&out.stdout).expect("summary JSON");
    let mut state = BTreeMap::new();
    for (key, after) in v["state"].as_object().expect("state") {
        let key: Value = serde_json::from_str(key).expect("key JSON");
        let id = key["id"].as_i64().expect("id in key");
        state.insert(id, (!after.is_null()).then(|| after.clone()));
    }
    let n = |f: &str| v[f].as_u64().unwrap_or(0);
    Materialized { records: n("records"), reads: n("reads"), distinct_reads: n("distinct_reads"), state }
}

/// Random single-row updates and deletes on `sp`, as fast as `pause` allows, until `stop`.
fn spawn_pg_load(url: String, stop: Arc<AtomicBool>, statements: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let c = connect(&url).await;
        let mut rng = Rng::from_env_or_clock();
        while !stop.load(Ordering::Relaxed) {
            let id = rng.range(1, ROWS as u64 + 1);
            let sql = if rng.range(0, 4) == 0 {
                format!("DELETE FROM sp WHERE id = {id}")
            } else {
                format!("UPDATE sp SET v = 'upd-{}', n = {} WHERE id = {id}", rng.next() % 100_000, rng.range(0, 1000))
            };
            c.batch_execute(&sql).await.expect("load statement");
            statements.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

/// The oldest open transaction of cdcd's own connections, sampled until `stop`.
fn spawn_xact_watch(url: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<f64> {
    tokio::spawn(async move {
        let c = connect(&url).await;
        let mut oldest: f64 = 0.0;
        while !stop.load(Ordering::Relaxed) {
            let row = c
                .query_one(
                    "SELECT COALESCE(max(EXTRACT(epoch FROM now() - xact_start)), 0)::float8 FROM pg_stat_activity
                     WHERE application_name LIKE 'cdcd-%' AND xact_start IS NOT NULL",
                    &[],
                )
                .await
                .expect("pg_stat_activity");
            oldest = oldest.max(row.get(0));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        oldest
    })
}

fn snapshot_done(cp: &Value) -> bool {
    cp["snapshot"]["tables"].as_array().is_some_and(|t| !t.is_empty() && t.iter().all(|t| t["done"] == true))
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_million_row_snapshot_under_load_and_kill_9() {
    let db = TestDb::create("snap_pg_million").await;
    let c = db.client().await;
    c.batch_execute(&format!(
        "{TABLE_DDL}; INSERT INTO sp SELECT g, 'seed-' || g, g % 1000 FROM generate_series(1, {ROWS}) g; ANALYZE sp"
    ))
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = Tansu::start();
    let cfg =
        write_config(dir.path(), "million", &db.url, r#"["public.sp"]"#, &kafka_sink(&broker.bootstrap), &tuning());
    let stop = Arc::new(AtomicBool::new(false));
    let statements = Arc::new(AtomicU64::new(0));
    let load = spawn_pg_load(db.url.clone(), stop.clone(), statements.clone());
    let watch = spawn_xact_watch(db.url.clone(), stop.clone());
    let run = KillRun {
        dir: dir.path(),
        name: "million",
        cfg: &cfg,
        bootstrap: &broker.bootstrap,
        topic: "million.public.sp",
    };
    let daemon = run.kill_then_finish().await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let oldest_xact = watch.await.unwrap();
    let target: String = c.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.unwrap().get(0);
    wait_for_checkpoint(dir.path(), "million", &daemon, Duration::from_secs(120), |cp| {
        pg_lsn(cp["position"]["lsn"].as_str().unwrap_or("0/0")) >= pg_lsn(&target)
    });
    let source = pg_source_rows(&c).await;
    run.verify("PostgreSQL", daemon, &source, statements.load(Ordering::Relaxed), oldest_xact);
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_million_row_snapshot_under_load_and_kill_9() {
    let seed = format!("INSERT INTO sp SELECT seq, CONCAT('seed-', seq), seq % 1000 FROM seq_1_to_{ROWS}");
    // innodb_trx needs PROCESS, which cdcd's own MariaDB user does not have (scripts/mariadb.sh).
    let watch_url = mysql_url().replacen("//cdcd:", "//cdcd_watch:", 1);
    let done = |gtid: &str| maria_seq(gtid);
    let target = "SELECT @@gtid_binlog_pos";
    mysql_family_million("MariaDB", &mysql_url(), &watch_url, "snap_my_million", 5301, &seed, target, done).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql97_million_row_snapshot_under_load_and_kill_9() {
    let seed = format!(
        "SET SESSION cte_max_recursion_depth = {ROWS};
         INSERT INTO sp WITH RECURSIVE s (n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < {ROWS})
           SELECT n, CONCAT('seed-', n), n % 1000 FROM s"
    );
    let (url, target) = (mysql97_url(), "SELECT @@gtid_executed");
    mysql_family_million("MySQL 9.7", &url, &url, "snap_my97_million", 5302, &seed, target, mysql_gtid_count).await;
}

/// The MySQL-family run: `seed` fills `sp` in database `db`; the run ends once the checkpoint's
/// GTID state, measured by `done`, reaches what `target_query` says the server has written.
#[allow(clippy::too_many_arguments)]
async fn mysql_family_million(
    what: &str,
    url: &str,
    watch_url: &str,
    db: &'static str,
    server_id: u32,
    seed: &str,
    target_query: &str,
    done: impl Fn(&str) -> u64,
) {
    let mut c = mysql_db_at(url, db).await;
    c.query_drop(TABLE_DDL).await.unwrap();
    c.query_drop(format!("{seed}; ANALYZE TABLE sp")).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = Tansu::start();
    let name = db.replace('_', "");
    let (tables, topic) = (format!(r#"["{db}.sp"]"#), format!("{name}.{db}.sp"));
    let cfg =
        write_mysql_config_at(dir.path(), &name, url, &tables, server_id, &kafka_sink(&broker.bootstrap), &tuning());
    let stop = Arc::new(AtomicBool::new(false));
    let statements = Arc::new(AtomicU64::new(0));
    let load = spawn_my_load(url.to_string(), db, stop.clone(), statements.clone());
    let watch = spawn_innodb_trx_watch(watch_url.to_string(), stop.clone());
    let run = KillRun { dir: dir.path(), name: &name, cfg: &cfg, bootstrap: &broker.bootstrap, topic: &topic };
    let daemon = run.kill_then_finish().await;
    stop.store(true, Ordering::Relaxed);
    load.await.unwrap();
    let oldest_xact = watch.await.unwrap();
    let target: String = c.query_first(target_query).await.unwrap().unwrap();
    wait_for_checkpoint(dir.path(), &name, &daemon, Duration::from_secs(120), |cp| {
        done(cp["position"]["gtid"].as_str().unwrap_or("")) >= done(&target)
    });
    let rows: Vec<(i64, Option<String>, Option<i32>)> = c.query("SELECT id, v, n FROM sp").await.unwrap();
    let source: BTreeMap<i64, Value> = rows.iter().map(|(id, v, n)| (*id, row_json(*id, v.as_deref(), *n))).collect();
    run.verify(what, daemon, &source, statements.load(Ordering::Relaxed), oldest_xact);
}

/// Snapshot settings for both tests. A rate limit stretches the snapshot so that every kill
/// lands inside it.
fn tuning() -> String {
    format!("snapshot_workers = {WORKERS}\nsnapshot_chunk_rows = {CHUNK_ROWS}\nsnapshot_max_rows_per_sec = 25000\n")
}

/// The kill loop and the checks, the same for both sources.
struct KillRun<'a> {
    dir: &'a std::path::Path,
    name: &'a str,
    cfg: &'a std::path::Path,
    bootstrap: &'a str,
    topic: &'a str,
}

impl KillRun<'_> {
    /// SIGKILLs the daemon `KILLS` times inside the snapshot, then starts it once more and
    /// waits for the snapshot to finish (the load still running).
    async fn kill_then_finish(&self) -> Daemon {
        let mut rng = Rng::from_env_or_clock();
        let mut kills_in_snapshot = 0;
        for _ in 0..KILLS {
            let daemon = Daemon::start(self.cfg);
            tokio::time::sleep(Duration::from_millis(rng.range(1500, 3500))).await;
            if !checkpoint(self.dir, self.name).is_some_and(|cp| snapshot_done(&cp)) {
                kills_in_snapshot += 1;
            }
            daemon.kill9();
        }
        assert_eq!(kills_in_snapshot, KILLS, "every kill should land inside the snapshot");
        let daemon = Daemon::start(self.cfg);
        wait_for_checkpoint(self.dir, self.name, &daemon, Duration::from_secs(240), snapshot_done);
        daemon
    }

    fn verify(&self, what: &str, daemon: Daemon, source: &BTreeMap<i64, Value>, statements: u64, oldest_xact: f64) {
        let seen = materialize_topic(self.bootstrap, self.topic, ROWS as u64 / 2, 600);
        let reread = seen.reads - seen.distinct_reads;
        let bound = KILLS as u64 * WORKERS * CHUNK_ROWS;
        eprintln!(
            "{what} 1M-row snapshot under load: {statements} load statements, {KILLS} kills inside the snapshot; \
             {} records, {} snapshot rows ({} distinct, {reread} read twice, bound {bound}); {} rows in the source; oldest cdcd transaction {oldest_xact:.2} s",
            seen.records,
            seen.reads,
            seen.distinct_reads,
            source.len()
        );
        let mut mismatches = Vec::new();
        for (id, row) in source {
            if seen.state.get(id).and_then(Option::as_ref) != Some(row) {
                mismatches.push((*id, Some(row.clone()), seen.state.get(id).cloned().flatten()));
            }
        }
        for (id, after) in &seen.state {
            if after.is_some() && !source.contains_key(id) {
                mismatches.push((*id, None, after.clone()));
            }
        }
        assert!(
            mismatches.is_empty(),
            "{what}: {} keys differ from the source (id, source, consumer): {:?}\nlog:\n{}",
            mismatches.len(),
            &mismatches[..mismatches.len().min(5)],
            daemon.logs()
        );
        assert!(
            reread <= bound,
            "{what}: {reread} rows were read twice, more than one chunk per worker per kill ({bound})"
        );
        assert!(oldest_xact < 5.0, "{what}: a cdcd transaction stayed open {oldest_xact:.1} s during the snapshot");
        assert_eq!(daemon.stop(), Some(0));
    }
}

/// Random single-row updates and deletes on `sp` of the server at `url`, until `stop`.
fn spawn_my_load(
    url: String,
    db: &'static str,
    stop: Arc<AtomicBool>,
    statements: Arc<AtomicU64>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap()).await.unwrap();
        c.query_drop(format!("USE {db}")).await.unwrap();
        let mut rng = Rng::from_env_or_clock();
        while !stop.load(Ordering::Relaxed) {
            let id = rng.range(1, ROWS as u64 + 1);
            let sql = if rng.range(0, 4) == 0 {
                format!("DELETE FROM sp WHERE id = {id}")
            } else {
                format!("UPDATE sp SET v = 'upd-{}', n = {} WHERE id = {id}", rng.next() % 100_000, rng.range(0, 1000))
            };
            c.query_drop(sql).await.expect("load statement");
            statements.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    })
}

/// The oldest open InnoDB transaction on the server, sampled until `stop` (the load's own
/// statements autocommit in microseconds, so what gets old can only be a reader's). `url`'s user
/// needs PROCESS.
fn spawn_innodb_trx_watch(url: String, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<f64> {
    tokio::spawn(async move {
        let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(&url).unwrap()).await.unwrap();
        let mut oldest: f64 = 0.0;
        while !stop.load(Ordering::Relaxed) {
            let age: Option<f64> = c
                .query_first(
                    "SELECT CAST(COALESCE(MAX(TIMESTAMPDIFF(SECOND, trx_started, NOW())), 0) AS DOUBLE) FROM information_schema.innodb_trx",
                )
                .await
                .expect("innodb_trx");
            oldest = oldest.max(age.unwrap_or(0.0));
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        oldest
    })
}
