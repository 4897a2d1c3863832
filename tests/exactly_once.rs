//! Exactly-once delivery and high availability (`[sink] delivery = "exactly-once"`,
//! `[checkpoint] store = "kafka"`), against the real Apache Kafka 2.3 broker scripts/test.sh
//! starts (the mock cluster neither fences producers nor filters aborted records) and the real
//! PostgreSQL. Two `cdcd run` processes share one configuration; the active one is SIGKILLed
//! again and again (the first kills land inside the initial snapshot), or frozen with SIGSTOP
//! and thawed after a standby took over. A `read_committed` consumer must then see every source
//! change exactly once: no duplicate row version, none missing, the final state equal to the
//! table, and nothing from the frozen process.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use serde_json::Value;
use support::http::free_port;
use support::kafka::RealKafka;
use support::workload::{pg_source_rows, row_json, verify, Workload, TABLE_DDL};
use support::*;

/// SIGKILLs of the active process in the kill loop.
const KILLS: usize = 20;

/// One process of the pair: its HTTP port, log and (while it runs) the daemon.
struct Member {
    port: u16,
    log: PathBuf,
    daemon: Option<Daemon>,
}

/// Two processes of one connector configuration, run in an empty working directory.
struct Pair {
    cfg: PathBuf,
    cwd: PathBuf,
    members: [Member; 2],
}

impl Pair {
    fn new(dir: &Path, cfg: PathBuf) -> Pair {
        let cwd = dir.join("cwd");
        std::fs::create_dir_all(&cwd).unwrap();
        let member = |i: usize| Member { port: free_port(), log: dir.join(format!("member{i}.log")), daemon: None };
        let mut pair = Pair { cfg, cwd, members: [member(0), member(1)] };
        pair.start(0);
        pair.start(1);
        pair
    }

    fn start(&mut self, i: usize) {
        let m = &mut self.members[i];
        let http = format!("127.0.0.1:{}", m.port);
        m.daemon = Some(Daemon::start_in(&self.cfg, &[("CDCD_HTTP", &http)], Some(&self.cwd), &m.log));
    }

    /// The connector's state in member `i`'s `/status` (None while it does not answer).
    fn state(&self, i: usize) -> Option<String> {
        let addr = format!("127.0.0.1:{}", self.members[i].port);
        let (code, body) = cdcd::http::probe(addr.parse().ok()?, "/status").ok()?;
        if code != 200 {
            return None;
        }
        let v: Value = serde_json::from_str(&body).ok()?;
        v["connectors"][0]["state"].as_str().map(str::to_string)
    }

    fn is_active(&self, i: usize) -> bool {
        self.members[i].daemon.is_some() && matches!(self.state(i).as_deref(), Some("snapshotting" | "streaming"))
    }

    /// The member that runs the connector, once exactly one does.
    fn active(&self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            match (self.is_active(0), self.is_active(1)) {
                (true, false) => return 0,
                (false, true) => return 1,
                _ if Instant::now() > deadline => panic!(
                    "no single active process within {timeout:?}: states {:?} / {:?}\n{}",
                    self.state(0),
                    self.state(1),
                    self.logs()
                ),
                _ => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    fn logs(&self) -> String {
        self.members
            .iter()
            .enumerate()
            .map(|(i, m)| format!("--- member {i} ---\n{}", std::fs::read_to_string(&m.log).unwrap_or_default()))
            .collect()
    }

    fn stop_all(&mut self) {
        for m in &mut self.members {
            if let Some(d) = m.daemon.take() {
                assert_eq!(d.stop(), Some(0), "a member did not stop cleanly");
            }
        }
    }
}

/// A connector file: exactly-once, checkpoints in Kafka, and a `checkpoint.path` that must
/// never be created (nothing is kept locally). `source` is the `[source]` table's body.
fn eos_config(dir: &Path, name: &str, source: &str, bootstrap: &str, extra_sink: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "name = \"{name}\"\n[source]\n{source}\n\
         [sink]\ntype = \"kafka\"\nbrokers = \"{bootstrap}\"\ndelivery = \"exactly-once\"\n{extra_sink}\n\
         [checkpoint]\nstore = \"kafka\"\npath = \"{}\"\n",
        dir.join("no-local-state").display()
    );
    std::fs::write(&path, text).unwrap();
    path
}

fn pg_source(url: &str, extra: &str) -> String {
    format!("type = \"postgres\"\nurl = \"{url}\"\ntables = [\"public.sp\"]\n{extra}")
}

/// The database a kill loop writes to and compares with.
enum Db {
    Postgres(TestDb),
    /// A MariaDB or MySQL server's URL and database.
    Mysql {
        url: String,
        db: String,
    },
}

impl Db {
    async fn seeded(&self, rows: i64) {
        let seed: Vec<String> = (1..=rows).map(|i| format!("({i}, 'seed-{i}', {})", i % 1000)).collect();
        match self {
            Db::Postgres(db) => {
                let c = db.client().await;
                c.batch_execute(TABLE_DDL).await.unwrap();
                for chunk in seed.chunks(5000) {
                    c.batch_execute(&format!("INSERT INTO sp VALUES {}", chunk.join(", "))).await.unwrap();
                }
            }
            Db::Mysql { url, db } => {
                let mut c = mysql_db_at(url, db).await;
                c.query_drop(TABLE_DDL).await.unwrap();
                for chunk in seed.chunks(5000) {
                    c.query_drop(format!("INSERT INTO sp VALUES {}", chunk.join(", "))).await.unwrap();
                }
            }
        }
    }

    fn source(&self, server_id: u32, extra: &str) -> String {
        match self {
            Db::Postgres(db) => pg_source(&db.url, extra),
            Db::Mysql { url, db } => {
                format!("type = \"mysql\"\nurl = \"{url}\"\ntables = [\"{db}.sp\"]\nserver_id = {server_id}\n{extra}")
            }
        }
    }

    fn topic(&self, name: &str) -> String {
        match self {
            Db::Postgres(_) => format!("{name}.public.sp"),
            Db::Mysql { db, .. } => format!("{name}.{db}.sp"),
        }
    }

    /// Runs `w` from `start` until `stop`, a transaction at a time.
    fn writer(
        &self,
        mut w: Workload,
        start: Arc<AtomicBool>,
        stop: Arc<AtomicBool>,
    ) -> tokio::task::JoinHandle<Workload> {
        let target = match self {
            Db::Postgres(db) => (db.url.clone(), None),
            Db::Mysql { url, db } => (url.clone(), Some(db.clone())),
        };
        tokio::spawn(async move {
            while !start.load(Ordering::Relaxed) && !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            match target {
                (url, None) => {
                    let c = connect(&url).await;
                    while !stop.load(Ordering::Relaxed) {
                        c.batch_execute(&w.next_transaction().join(";")).await.expect("workload transaction");
                        tokio::time::sleep(Duration::from_millis(WRITER_PAUSE_MS)).await;
                    }
                }
                (url, Some(db)) => {
                    let mut c = mysql_db_conn_at(&url, &db).await;
                    while !stop.load(Ordering::Relaxed) {
                        for stmt in w.next_transaction() {
                            c.query_drop(stmt).await.expect("workload statement");
                        }
                        tokio::time::sleep(Duration::from_millis(WRITER_PAUSE_MS)).await;
                    }
                }
            }
            w
        })
    }

    async fn rows(&self) -> BTreeMap<i64, Value> {
        match self {
            Db::Postgres(db) => pg_source_rows(&db.client().await).await,
            Db::Mysql { url, db } => {
                let mut c = mysql_db_conn_at(url, db).await;
                let rows: Vec<(i64, Option<String>, Option<i32>)> = c.query("SELECT id, v, n FROM sp").await.unwrap();
                rows.iter().map(|(id, v, n)| (*id, row_json(*id, v.as_deref(), *n))).collect()
            }
        }
    }

    /// Waits until the connector committed a checkpoint at or past the source's current end.
    async fn wait_caught_up(&self, bootstrap: &str, name: &str, pair: &Pair) {
        let deadline = Instant::now() + Duration::from_secs(180);
        let reached: Box<dyn Fn(&Value) -> bool> = match self {
            Db::Postgres(db) => {
                let c = db.client().await;
                let target: String = c.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.unwrap().get(0);
                Box::new(move |cp| cp["position"]["lsn"].as_str().map(pg_lsn).unwrap_or(0) >= pg_lsn(&target))
            }
            Db::Mysql { url, db } => {
                let mut c = mysql_db_conn_at(url, db).await;
                let (target, done) = gtid_target(&mut c).await;
                Box::new(move |cp| done(cp["position"]["gtid"].as_str().unwrap_or("")) >= done(&target))
            }
        };
        loop {
            if committed_checkpoint(bootstrap, name).is_some_and(|cp| reached(&cp)) {
                return;
            }
            assert!(Instant::now() < deadline, "never caught up\n{}", pair.logs());
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }
}

/// Between the writer's transactions (each 1 to 5,000 rows).
const WRITER_PAUSE_MS: u64 = 150;

/// The last checkpoint `name` committed to its topic, read as a consumer would.
fn committed_checkpoint(bootstrap: &str, name: &str) -> Option<Value> {
    let topic = format!("{name}.checkpoints");
    // While the connector commits every few milliseconds the reader may never see the
    // partition's end; what it read within a few seconds holds the last checkpoint committed
    // before it started.
    let recs = run_reader(bootstrap, &[&topic], &["--min", "1", "--idle", "1"], 6);
    recs.iter().rev().find(|r| r.key.as_ref().and_then(Value::as_str) == Some(name)).and_then(|r| r.value.clone())
}

/// Counts records that repeat a row version: a streamed change is identified by its source
/// position, a snapshot row by its key (each is read once), a tombstone by the delete before it.
fn duplicates(recs: &[Rec]) -> Vec<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut last_delete: BTreeMap<String, String> = BTreeMap::new();
    for r in recs {
        let key = r.key.as_ref().map(|k| k.to_string()).unwrap_or_default();
        let id = match &r.value {
            Some(_) if r.op() == Some("r") => format!("read {key}"),
            Some(v) => {
                let src = &v["source"];
                // PostgreSQL names each change's place in the log; the binlog, its event and row.
                let position = match src["position"].as_str() {
                    Some(p) => p.to_string(),
                    None => format!("{}:{}:{} {}", src["file"], src["pos"], src["row"], v["after"]),
                };
                if r.op() == Some("d") {
                    last_delete.insert(key.clone(), position.clone());
                }
                format!("{} {key} at {position}", r.op().unwrap_or("?"))
            }
            None => format!("tombstone {key} after {}", last_delete.get(&key).cloned().unwrap_or_default()),
        };
        *seen.entry(id).or_default() += 1;
    }
    seen.into_iter().filter(|(_, n)| *n > 1).map(|(id, n)| format!("{id} x{n}")).collect()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_two_processes_kill_9_of_the_active_one_exactly_once() {
    kill_loop_exactly_once("postgres", Db::Postgres(TestDb::create("eos_kill").await), 0).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_two_processes_kill_9_of_the_active_one_exactly_once() {
    let db = Db::Mysql { url: mysql_url(), db: "eos_kill".into() };
    kill_loop_exactly_once("mariadb", db, 5301).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql97_two_processes_kill_9_of_the_active_one_exactly_once() {
    let db = Db::Mysql { url: mysql97_url(), db: "eos_kill".into() };
    kill_loop_exactly_once("mysql 9.7", db, 5311).await;
}

/// Two processes of one configuration; the active one is SIGKILLed `KILLS` times (the first
/// ones inside the initial snapshot) and restarted, while a writer of mixed transactions runs.
async fn kill_loop_exactly_once(what: &str, db: Db, server_id: u32) {
    let kafka = RealKafka::get();
    let name = format!("eos_kill_{}_{server_id}", std::process::id());
    const SEEDED: i64 = 150_000;
    db.seeded(SEEDED).await;
    let mut rng = Rng::from_env_or_clock();
    let mut w = Workload::new(rng.next(), 1);
    w.seed_rows(1..=SEEDED);
    let dir = tempfile::tempdir().unwrap();
    // Small chunks make the snapshot long enough for kills to land in it.
    let source = db.source(server_id, "snapshot_chunk_rows = 500");
    let cfg = eos_config(dir.path(), &name, &source, &kafka.bootstrap, "");
    let mut pair = Pair::new(dir.path(), cfg);

    // The writer starts once the stream's start is fixed (the first commit): before it, a
    // takeover starts over (PostgreSQL recreates its slot) and only seeded rows may predate
    // the stream.
    let (start, stop) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let writer = db.writer(w, start.clone(), stop.clone());
    // Reading the checkpoint topic takes seconds, so it is watched beside the kill loop: in
    // the loop it would push the first kills past the end of the snapshot.
    let first_commit = {
        let (bootstrap, name, start) = (kafka.bootstrap.clone(), name.clone(), start.clone());
        std::thread::spawn(move || {
            while !start.load(Ordering::Relaxed) {
                if committed_checkpoint(&bootstrap, &name).is_some() {
                    start.store(true, Ordering::Relaxed);
                }
            }
        })
    };
    let mut takeovers = Vec::new();
    let mut in_snapshot = 0;
    for kill in 0..KILLS {
        let active = pair.active(Duration::from_secs(60));
        // The first kills come quickly, inside the initial snapshot.
        let wait = if kill < 3 { rng.range(50, 600) } else { rng.range(500, 3000) };
        tokio::time::sleep(Duration::from_millis(wait)).await;
        if !pair.logs().contains("snapshot finished") {
            in_snapshot += 1;
        }
        pair.members[active].daemon.take().unwrap().kill9();
        let killed = Instant::now();
        let other = 1 - active;
        while !pair.is_active(other) {
            assert!(killed.elapsed() < Duration::from_secs(60), "no takeover within 60 s\n{}", pair.logs());
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        takeovers.push(killed.elapsed().as_secs_f64());
        pair.start(active);
    }
    start.store(true, Ordering::Relaxed);
    first_commit.join().unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    let w = writer.await.unwrap();
    db.wait_caught_up(&kafka.bootstrap, &name, &pair).await;

    let recs = run_reader(&kafka.bootstrap, &[&db.topic(&name)], &["--to-eof"], 180);
    let verdict = verify(&recs, &w, &db.rows().await);
    let dups = duplicates(&recs);
    let mut sorted = takeovers.clone();
    sorted.sort_by(f64::total_cmp);
    eprintln!(
        "{what} exactly-once kill loop: {KILLS} kills ({in_snapshot} inside the snapshot), {} transactions, {} records; \
         {} duplicates, {} missing, {} rolled back seen, {} state mismatches; takeover p50 {:.1} s, max {:.1} s",
        w.transactions,
        recs.len(),
        dups.len(),
        verdict.missing_committed.len(),
        verdict.rolled_back_seen.len(),
        verdict.state_mismatches.len(),
        percentile(&sorted, 0.5),
        percentile(&sorted, 1.0),
    );
    assert!(dups.is_empty(), "{what}: duplicates seen by a read_committed consumer: {:?}", &dups[..dups.len().min(10)]);
    assert!(
        verdict.ok(),
        "{what}: missing {:?}, rolled back seen {:?}, mismatches {:?}\n{}",
        &verdict.missing_committed[..verdict.missing_committed.len().min(10)],
        &verdict.rolled_back_seen[..verdict.rolled_back_seen.len().min(10)],
        &verdict.state_mismatches[..verdict.state_mismatches.len().min(5)],
        pair.logs()
    );
    assert!(recs.iter().any(|r| r.op() == Some("r")), "{what}: the snapshot emitted no row");
    assert!(in_snapshot >= 1, "{what}: no kill landed inside the initial snapshot");
    assert!(percentile(&sorted, 1.0) < 15.0, "{what}: a takeover took longer than 15 s: {takeovers:?}");
    assert!(w.transactions > 50, "{what}: the writer ran only {} transactions", w.transactions);
    pair.stop_all();
    assert!(!dir.path().join("no-local-state").exists(), "the Kafka store wrote local state");
    assert_eq!(std::fs::read_dir(&pair.cwd).unwrap().count(), 0, "something was written to the working directory");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_active_process_is_replaced_and_publishes_nothing_after_it_thaws() {
    let kafka = RealKafka::get();
    let name = format!("eos_zombie_{}", std::process::id());
    let db = TestDb::create("eos_zombie").await;
    db.client().await.batch_execute(TABLE_DDL).await.unwrap();
    let mut rng = Rng::from_env_or_clock();
    let w = Workload::new(rng.next(), 1);
    let dir = tempfile::tempdir().unwrap();
    // A long commit interval: when frozen, its open transaction surely holds delivered records.
    let cfg = eos_config(dir.path(), &name, &pg_source(&db.url, ""), &kafka.bootstrap, "commit_interval_ms = 4000");
    let mut pair = Pair::new(dir.path(), cfg);
    let active = pair.active(Duration::from_secs(60));
    let (start, stop) = (Arc::new(AtomicBool::new(true)), Arc::new(AtomicBool::new(false)));
    let db = Db::Postgres(db);
    let writer = db.writer(w, start, stop.clone());
    tokio::time::sleep(Duration::from_millis(rng.range(1000, 3000))).await;

    // Frozen mid-stream: it holds an open transaction with records in it, and its walsender.
    pair.members[active].daemon.as_ref().unwrap().signal(libc::SIGSTOP);
    let frozen = Instant::now();
    let other = 1 - active;
    while !pair.is_active(other) {
        assert!(frozen.elapsed() < Duration::from_secs(60), "no takeover from a frozen process\n{}", pair.logs());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let takeover = frozen.elapsed();
    tokio::time::sleep(Duration::from_secs(3)).await;
    pair.members[active].daemon.as_ref().unwrap().signal(libc::SIGCONT);
    // The thawed process finds out, while the writer goes on and the new one streams.
    tokio::time::sleep(Duration::from_secs(8)).await;
    stop.store(true, Ordering::Relaxed);
    let w = writer.await.unwrap();
    db.wait_caught_up(&kafka.bootstrap, &name, &pair).await;

    let topic = db.topic(&name);
    let recs = run_reader(&kafka.bootstrap, &[&topic], &["--to-eof"], 120);
    let all = run_reader(&kafka.bootstrap, &[&topic], &["--to-eof", "--set", "isolation.level=read_uncommitted"], 120);
    let verdict = verify(&recs, &w, &db.rows().await);
    let dups = duplicates(&recs);
    let thawed_log = std::fs::read_to_string(&pair.members[active].log).unwrap();
    eprintln!(
        "zombie: takeover after SIGSTOP in {:.1} s; {} committed records, {} in the log counting aborted ones; {} duplicates",
        takeover.as_secs_f64(),
        recs.len(),
        all.len(),
        dups.len()
    );
    assert!(dups.is_empty(), "duplicates: {:?}\n{}", &dups[..dups.len().min(10)], pair.logs());
    assert!(verdict.ok(), "{verdict:?}\n{}", pair.logs());
    assert!(takeover < Duration::from_secs(15), "takeover took {takeover:?}");
    assert!(all.len() > recs.len(), "the frozen process's open transaction should have left aborted records");
    assert!(
        thawed_log.contains("stepped down") || thawed_log.contains("no longer the active process"),
        "the thawed process did not step down:\n{thawed_log}"
    );
    assert_eq!(pair.state(active).as_deref(), Some("standby"), "{}", pair.logs());
    assert!(pair.is_active(other), "the new active process must keep running\n{}", pair.logs());
    // Who is active, as /status and the metrics say it.
    for (i, role, gauge) in [(active, "standby", 0.0), (other, "active", 1.0)] {
        let addr = format!("127.0.0.1:{}", pair.members[i].port);
        let status: Value = serde_json::from_str(&support::http::get(&addr, "/status").1).unwrap();
        assert_eq!(status["connectors"][0]["role"], role, "{status}");
        assert_eq!(support::http::get(&addr, "/ready").0, 200, "a standby is ready too");
        let metrics = support::http::scrape(&addr);
        assert_eq!(
            support::http::value(&metrics, "cdcd_connector_active", &[("connector", &name)]),
            Some(gauge),
            "member {i}"
        );
    }
    pair.stop_all();
}

/// Switching a connector from the file store to the Kafka store keeps its position: the file's
/// checkpoint is imported (no second snapshot, no repeated change), and streaming goes on.
#[tokio::test(flavor = "multi_thread")]
async fn switching_from_the_file_store_to_the_kafka_store_keeps_the_position() {
    let kafka = RealKafka::get();
    let name = format!("eos_switch_{}", std::process::id());
    let db = TestDb::create("eos_switch").await;
    let c = db.client().await;
    c.batch_execute(&format!("{TABLE_DDL}; INSERT INTO sp SELECT g, 'seed', 0 FROM generate_series(1, 100) g"))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let write = |extra_sink: &str, checkpoint: &str| {
        let text = format!(
            "name = \"{name}\"\n[source]\n{}\n[sink]\ntype = \"kafka\"\nbrokers = \"{}\"\n{extra_sink}\n[checkpoint]\npath = \"{}\"\ninterval_ms = 100\n{checkpoint}\n",
            pg_source(&db.url, ""),
            kafka.bootstrap,
            state.display()
        );
        let path = dir.path().join(format!("{name}.toml"));
        std::fs::write(&path, text).unwrap();
        path
    };
    let topic = format!("{name}.public.sp");
    let cfg = write("", "");
    let daemon = Daemon::start(&cfg);
    let recs = read_topics(&kafka.bootstrap, &[&topic], 100, 60);
    assert_eq!(recs.len(), 100, "the snapshot: {}", daemon.logs());
    c.batch_execute("INSERT INTO sp VALUES (101, 'file store', 1)").await.unwrap();
    assert!(wait_until(Duration::from_secs(30), || std::fs::read_to_string(state.join("checkpoint.json"))
        .is_ok_and(|t| t.contains("\"done\": true"))));
    read_topics(&kafka.bootstrap, &[&topic], 101, 60);
    std::thread::sleep(Duration::from_secs(1)); // a checkpoint past row 101
    assert_eq!(daemon.stop(), Some(0));
    let file_checkpoint: Value =
        serde_json::from_str(&std::fs::read_to_string(state.join("checkpoint.json")).unwrap()).unwrap();

    // The same connector, now exactly-once with its checkpoint in Kafka.
    let cfg = write("delivery = \"exactly-once\"", "store = \"kafka\"");
    let (code, out, _) = cdcd(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("checkpoint topic {name}.checkpoints does not exist yet")), "{out}");
    // Until the topic holds one, the slot is compared with the file the store will import.
    assert!(
        out.contains(&format!("(which the Kafka store imports while topic {name}.checkpoints has none) at "))
            && out.contains("matches the slot"),
        "{out}"
    );
    let daemon = Daemon::start(&cfg);
    c.batch_execute("INSERT INTO sp VALUES (102, 'kafka store', 2)").await.unwrap();
    let recs = run_reader(&kafka.bootstrap, &[&topic], &["--min", "102", "--idle", "3"], 60);
    let logs = daemon.logs();
    assert!(logs.contains("importing the file store's"), "{logs}");
    let ids: Vec<i64> = recs.iter().filter_map(|r| r.value.as_ref()?["after"]["id"].as_i64()).collect();
    assert_eq!(ids.len(), 102, "no row twice, none missing: {ids:?}\n{logs}");
    assert_eq!(ids.iter().filter(|id| **id == 101).count(), 1);
    assert_eq!(ids.last(), Some(&102));
    let imported = committed_checkpoint(&kafka.bootstrap, &name).expect("a checkpoint in the topic");
    assert!(
        pg_lsn(imported["position"]["lsn"].as_str().unwrap())
            >= pg_lsn(file_checkpoint["position"]["lsn"].as_str().unwrap()),
        "the Kafka store's position {imported} is behind the file's {file_checkpoint}"
    );
    assert_eq!(daemon.stop(), Some(0));
    let (code, out, _) = cdcd(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains(&format!("checkpoint topic {name}.checkpoints exists and is compacted")), "{out}");
    // The slot is compared with the topic's checkpoint, not with the file left behind.
    assert!(out.contains(&format!("checkpoint in topic {name}.checkpoints at ")), "{out}");
    assert!(out.contains("matches the slot"), "{out}");
}

/// A compacted checkpoint topic with the broker's default 1 GB segments works, but every start
/// would read its whole open segment: `cdcd check` says so, with the fix.
#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_topic_with_long_segments_gets_a_note_with_the_fix() {
    let kafka = RealKafka::get();
    let name = format!("eos_long_segments_{}", std::process::id());
    let db = TestDb::create("eos_long_segments").await;
    db.client().await.batch_execute(TABLE_DDL).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("{name}.checkpoints");
    kafka.create_topic(&topic, &[("cleanup.policy", "compact")]);
    let cfg = eos_config(dir.path(), &name, &pg_source(&db.url, ""), &kafka.bootstrap, "");
    let (code, out, _) = cdcd(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "a note, not a failure: {out}");
    assert!(out.contains(&format!("checkpoint topic {topic} exists and is compacted")), "{out}");
    assert!(
        out.contains(&format!("note  checkpoint topic {topic} rolls segments at segment.bytes=1073741824"))
            && out.contains(&format!("--entity-name {topic} --add-config segment.bytes=16777216")),
        "{out}"
    );
}

/// A checkpoint topic that deletes with age would lose the checkpoint: `cdcd check` and `cdcd
/// run` both refuse it and name the fix.
#[tokio::test(flavor = "multi_thread")]
async fn a_checkpoint_topic_that_does_not_compact_is_refused_with_the_fix() {
    let kafka = RealKafka::get();
    let name = format!("eos_delete_policy_{}", std::process::id());
    let db = TestDb::create("eos_delete_policy").await;
    db.client().await.batch_execute(TABLE_DDL).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("{name}.checkpoints");
    kafka.create_topic(&topic, &[("cleanup.policy", "delete")]);
    let cfg = eos_config(dir.path(), &name, &pg_source(&db.url, ""), &kafka.bootstrap, "");
    let fix = format!(
        "kafka-configs.sh --alter --entity-type topics --entity-name {topic} --add-config cleanup.policy=compact"
    );
    let (code, out, _) = cdcd(&["check", "--config", cfg.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains(&format!("checkpoint topic {topic} has cleanup.policy=delete")) && out.contains(&fix),
        "{out}"
    );
    let mut daemon = Daemon::start_in(&cfg, &[], Some(dir.path()), &dir.path().join("run.log"));
    assert!(wait_until(Duration::from_secs(60), || !daemon.is_running()), "still running: {}", daemon.logs());
    let logs = daemon.logs();
    assert!(logs.contains(&fix), "{logs}");
    assert!(
        logs.lines().filter(|l| l.contains("cleanup.policy=delete")).count() <= 2,
        "one error, not a flood: {logs}"
    );
    assert_ne!(daemon.stop(), Some(0), "a refused checkpoint topic must not exit 0");
}
