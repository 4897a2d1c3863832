//! A PostgreSQL 17 primary fails over to its standby while cdcd streams, a writer commits and
//! pgbench runs (issue 22). The standby runs with `sync_replication_slots = on`, `hot_standby_feedback = on`
//! and a physical slot the primary names in `synchronized_standby_slots`; commits wait for it
//! (`synchronous_standby_names`), so every commit the writer saw acknowledged exists after the
//! failover. The primary is stopped with `-m immediate` and the standby promoted. cdcd reaches
//! the database
//! - through one endpoint that moves to the standby at the promotion (a TCP proxy standing in for
//!   a managed service's DNS name), or
//! - through a libpq multi-host URL with `target_session_attrs=read-write`.
//!
//! Either way: cdcd's slot was synced to the standby before the failover, cdcd keeps running
//! and streams the new primary's commits within 30 s of the promotion, every acknowledged commit
//! reaches Kafka, and the replica built from Kafka equals the new primary's table.
//! These tests make their own PostgreSQL 17 servers, whatever `CDCD_TEST_PG_URL` is.

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use support::own_server::OwnServer;
use support::proxy::Proxy;
use support::*;

const SEED_ROWS: i64 = 200;
/// `t`, which the test's writer changes, and pgbench's tables with a key (its history table has
/// none and is left out).
const TABLES: &str = r#"["public.t", "public.pgbench_accounts", "public.pgbench_branches", "public.pgbench_tellers"]"#;
/// Only `t` (pgbench still runs): for the tests whose snapshot is slowed down or beside the point.
const ONLY_T: &str = r#"["public.t"]"#;

/// pgbench of the server's own PostgreSQL.
fn pgbench(server: &OwnServer) -> std::process::Command {
    let bin = std::fs::read_to_string(server.dir().join(".cdcd-bin")).unwrap();
    let bin = std::path::Path::new(bin.trim());
    let mut c = std::process::Command::new(bin.join("pgbench"));
    c.env("LD_LIBRARY_PATH", bin.parent().unwrap().join("lib"));
    c
}

/// `pgbench_accounts` as a consumer builds it from its topic: aid -> abalance.
fn accounts_replica(recs: &[Rec], topic: &str) -> BTreeMap<i64, i64> {
    let mut rows = BTreeMap::new();
    for r in recs.iter().filter(|r| r.topic == topic) {
        let Some(v) = &r.value else { continue };
        match r.op() {
            Some("c" | "r" | "u") => {
                rows.insert(
                    v["after"]["aid"].as_i64().unwrap_or_default(),
                    v["after"]["abalance"].as_i64().unwrap_or_default(),
                );
            }
            Some("d") => {
                rows.remove(&v["before"]["aid"].as_i64().unwrap_or_default());
            }
            Some("t") => rows.clear(),
            _ => {}
        }
    }
    rows
}

enum Endpoint {
    MovingProxy,
    MultiHost,
}

/// What the writer saw acknowledged, and the first id committed after the promotion.
#[derive(Default)]
struct Acked {
    rows: BTreeMap<i64, String>,
    first_after_promotion: Option<i64>,
}

async fn superuser(server: &OwnServer, db: &str) -> tokio_postgres::Client {
    connect(&format!("postgres://postgres:cdcd@127.0.0.1:{}/{db}", server.port)).await
}

/// Inserts a new row and updates an older one per transaction, through `url`, reconnecting
/// whenever the server goes away, until `stop`.
fn spawn_writer(
    url: String,
    stop: Arc<AtomicBool>,
    promoted: Arc<AtomicBool>,
    acked: Arc<Mutex<Acked>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut rng = Rng::from_env_or_clock();
        let mut next = SEED_ROWS + 1;
        while !stop.load(Ordering::Relaxed) {
            let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await else {
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            };
            tokio::spawn(conn);
            while !stop.load(Ordering::Relaxed) {
                let (id, old) = (next, rng.range(1, next as u64) as i64);
                let (v, u) = (format!("new-{id}"), format!("upd-{id}"));
                let after_promotion = promoted.load(Ordering::Relaxed);
                // Deletes take seed rows only, so an inserted row that is missing was lost.
                let delete = match rng.range(0, 5) {
                    0 => format!("DELETE FROM t WHERE id = {};", rng.range(1, SEED_ROWS as u64 + 1)),
                    _ => String::new(),
                };
                let sql = format!(
                    "BEGIN; INSERT INTO t VALUES ({id}, '{v}'); UPDATE t SET v = '{u}' WHERE id = {old}; {delete} COMMIT;"
                );
                if client.batch_execute(&sql).await.is_err() {
                    // Unknown whether it committed: the comparison with the source decides.
                    next += 1;
                    break;
                }
                {
                    let mut a = acked.lock().unwrap();
                    a.rows.insert(id, v);
                    if after_promotion && a.first_after_promotion.is_none() {
                        a.first_after_promotion = Some(id);
                    }
                }
                next += 1;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        }
    })
}

/// The table a consumer builds from the topic's records in order (one partition: TRUNCATE
/// records are ordered with the rows).
fn replica(recs: &[Rec], topic: &str) -> BTreeMap<i64, Vec<Value>> {
    support::random_workload::replica(recs, topic, &["id", "v"])
}

/// Two PostgreSQL 17 servers (primary and syncing standby), table `t` with its seed rows in
/// database `fo`, and cdcd streaming it through `endpoint` into a mock-cluster broker, its
/// snapshot read.
struct Setup {
    primary: OwnServer,
    standby: OwnServer,
    proxy: Proxy,
    url: String,
    broker: Broker,
    topic: String,
    cfg: std::path::PathBuf,
    daemon: Daemon,
    _dir: tempfile::TempDir,
}

/// `tables`: what cdcd captures, [`TABLES`] or only `t`.
async fn setup(endpoint: &Endpoint, ports: (u16, u16), name: &str, extra_source: &str, tables: &str) -> Setup {
    let primary = OwnServer::start_with("pg", ports.0, &[("PG_MAJOR", "17")]);
    let standby = primary.standby(ports.1, "sb1");
    let admin = superuser(&primary, "postgres").await;
    // One statement per call: a multi-statement string is one transaction, which ALTER SYSTEM refuses.
    for sql in [
        "ALTER SYSTEM SET synchronized_standby_slots = 'sb1'",
        "ALTER SYSTEM SET synchronous_standby_names = 'sb1'",
        // scripts/pg.sh turns it off for speed; here a commit must wait for the standby.
        "ALTER SYSTEM SET synchronous_commit = on",
        "SELECT pg_reload_conf()",
    ] {
        admin.batch_execute(sql).await.unwrap();
    }
    let db = TestDb::create_on(&primary.url(), "fo").await;
    db.client()
        .await
        .batch_execute(&format!(
            "CREATE TABLE t (id bigint PRIMARY KEY, v text);
             INSERT INTO t SELECT g, 'seed-' || g FROM generate_series(1, {SEED_ROWS}) g;"
        ))
        .await
        .unwrap();

    let init = pgbench(&primary).args(["-i", "-s", "1", "-q", &format!("{}/fo", primary.url())]).output().unwrap();
    assert!(init.status.success(), "pgbench -i: {}", String::from_utf8_lossy(&init.stderr));

    let proxy = Proxy::start(format!("127.0.0.1:{}", primary.port)).await;
    let url = match endpoint {
        Endpoint::MovingProxy => format!("postgres://cdcd:cdcd@127.0.0.1:{}/fo", proxy.port),
        Endpoint::MultiHost => format!(
            "postgres://cdcd:cdcd@127.0.0.1:{},127.0.0.1:{}/fo?target_session_attrs=read-write",
            primary.port, standby.port
        ),
    };
    let dir = tempfile::tempdir().unwrap();
    let topic = format!("{name}.public.t");
    // One partition each: TRUNCATE records (the repair's) are ordered with the rows.
    let others: Vec<String> = ["pgbench_accounts", "pgbench_branches", "pgbench_tellers"]
        .iter()
        .map(|t| format!("{name}.public.{t}"))
        .collect();
    let broker = Broker::with_topics(&[(&topic, 1), (&others[0], 1), (&others[1], 1), (&others[2], 1)]);
    let cfg = write_config(dir.path(), name, &url, tables, &kafka_sink(&broker.bootstrap), extra_source);
    let daemon = Daemon::start(&cfg);
    let snap = read_topics(&broker.bootstrap, &[&topic], SEED_ROWS as usize, 60);
    assert_eq!(snap.len(), SEED_ROWS as usize, "snapshot; log:\n{}", daemon.logs());
    Setup { primary, standby, proxy, url, broker, topic, cfg, daemon, _dir: dir }
}

impl Setup {
    /// Stops the primary at once, promotes the standby, and moves the endpoint to it.
    fn fail_over(&self, endpoint: &Endpoint) {
        self.primary.down("immediate");
        self.standby.promote();
        if let Endpoint::MovingProxy = endpoint {
            self.proxy.retarget(format!("127.0.0.1:{}", self.standby.port));
        }
    }
}

/// The failover under load, and its checks. `extra_source` configures the connector; with
/// `slot_synced` the standby must hold a synced slot before the failover, without it it must
/// not (and cdcd repairs with `on_slot_lost = "resnapshot"`).
async fn failover(
    endpoint: Endpoint,
    ports: (u16, u16),
    name: &str,
    extra_source: &str,
    tables: &str,
    slot_synced: bool,
) {
    let mut s = setup(&endpoint, ports, name, extra_source, tables).await;
    let created = |cp: &Value| cp["source"]["slot_created_at"].clone();
    assert!(wait_until(Duration::from_secs(30), || checkpoint(s._dir.path(), name).is_some()), "no checkpoint");
    let first_slot = checkpoint(s._dir.path(), name).map(|cp| created(&cp)).unwrap_or_default();
    let stop = Arc::new(AtomicBool::new(false));
    let promoted = Arc::new(AtomicBool::new(false));
    let acked = Arc::new(Mutex::new(Acked::default()));
    let writer = spawn_writer(s.url.clone(), stop.clone(), promoted.clone(), acked.clone());
    // pgbench through the same endpoint (100 transactions/s: two cores serve the five failover
    // tests at once); its clients abort when the primary goes.
    let mut load = pgbench(&s.primary)
        .args(["-n", "-c", "2", "-R", "100", "-T", "120", &s.url])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();

    // The standby must hold a synced copy of cdcd's slot before the primary goes.
    let sc = superuser(&s.standby, "postgres").await;
    let slot = format!("cdcd_{name}");
    if slot_synced {
        // PostgreSQL's slot sync worker doubles its nap up to 30 s while there is nothing to
        // sync, and a new slot takes two of its rounds (created temporary, then persisted once
        // the primary's slot has moved past the standby's horizon): up to about a minute, longer on a busy machine.
        assert!(
            synced_within(&sc, &slot, 120).await,
            "slot {slot} was not synced to the standby; standby slots: {:?}; standby log:\n{}\ncdcd log:\n{}",
            standby_slots(&sc).await,
            std::fs::read_to_string(s.standby.dir().join("server.log")).unwrap_or_default(),
            s.daemon.logs()
        );
    } else {
        assert!(!synced_within(&sc, &slot, 3).await, "slot {slot} was synced though it is no failover slot");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;

    s.fail_over(&endpoint);
    let promotion = Instant::now();
    let promotion_ms = now_ms();
    promoted.store(true, Ordering::Relaxed);

    // Streaming resumes on the new primary: a row committed after the promotion arrives. When
    // cdcd sent it is its `ts_ms` (cdcd's clock, this machine's).
    let deadline = promotion + Duration::from_secs(60);
    let (first_id, resumed) = loop {
        let first = acked.lock().unwrap().first_after_promotion;
        if let Some(id) = first {
            let all = read_all(&s.broker.bootstrap, &s.topic);
            let sent = all.iter().find(|r| r.key == Some(json!({ "id": id }))).and_then(|r| r.value.clone());
            if let Some(v) = sent {
                let at = v["ts_ms"].as_u64().unwrap_or(u64::MAX);
                break (id, Duration::from_millis(at.saturating_sub(promotion_ms)));
            }
        }
        assert!(Instant::now() < deadline, "no row committed after the promotion arrived; log:\n{}", s.daemon.logs());
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut earlier_log = String::new();
    if !slot_synced {
        // A kill -9 inside the re-snapshot the repair started, once the repair is checkpointed
        // (the checkpoint names the new slot): the checkpoint must say the tables are to be read
        // again, and the restart must carry the re-snapshot on.
        let repaired = wait_until(Duration::from_secs(30), || {
            checkpoint(s._dir.path(), name).is_some_and(|cp| created(&cp) != first_slot)
        });
        assert!(repaired, "no checkpoint of the repair; log:\n{}", s.daemon.logs());
        let pending = checkpoint(s._dir.path(), name).is_some_and(|cp| {
            cp["snapshot"]["tables"].as_array().is_some_and(|t| t.iter().any(|t| t["done"] == false))
        });
        assert!(pending, "the checkpoint after the repair does not ask for the re-snapshot; log:\n{}", s.daemon.logs());
        unsafe {
            libc::kill(s.daemon.pid() as i32, libc::SIGKILL);
        }
        assert!(wait_until(Duration::from_secs(10), || !s.daemon.is_running()), "cdcd survived SIGKILL");
        earlier_log = s.daemon.logs();
        s.daemon = Daemon::start(&s.cfg);
    }
    let _ = load.kill();
    let _ = load.wait();
    // pgbench again, on the new primary through the endpoint.
    let after = pgbench(&s.standby).args(["-n", "-c", "2", "-R", "100", "-T", "5", &s.url]).output().unwrap();
    assert!(after.status.success(), "pgbench after the failover: {}", String::from_utf8_lossy(&after.stderr));
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    let nc = superuser(&s.standby, "fo").await;
    let rows = nc.query("SELECT id, v FROM t", &[]).await.unwrap();
    let source: BTreeMap<i64, Vec<Value>> = rows
        .iter()
        .map(|r| (r.get::<_, i64>(0), vec![json!(r.get::<_, i64>(0)), json!(r.get::<_, String>(1))]))
        .collect();
    let acked = std::mem::take(&mut *acked.lock().unwrap());
    let lost: Vec<i64> = acked.rows.keys().filter(|id| !source.contains_key(id)).copied().collect();
    assert!(lost.is_empty(), "acknowledged commits missing on the new primary: {lost:?}");

    // The replica from Kafka converges to the new primary.
    let converged =
        wait_until(Duration::from_secs(90), || replica(&read_all(&s.broker.bootstrap, &s.topic), &s.topic) == source);
    let mine = replica(&read_all(&s.broker.bootstrap, &s.topic), &s.topic);
    let differ: Vec<_> = source
        .keys()
        .chain(mine.keys())
        .filter(|id| mine.get(id) != source.get(id))
        .take(5)
        .map(|id| (*id, source.get(id).cloned(), mine.get(id).cloned()))
        .collect();
    assert!(
        converged,
        "replica differs from the new primary (id, source, replica): {differ:?}\nlog:\n{}",
        s.daemon.logs()
    );
    if tables == TABLES {
        let accounts: BTreeMap<i64, i64> = nc
            .query("SELECT aid::int8, abalance::int8 FROM pgbench_accounts", &[])
            .await
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let accounts_topic = format!("{name}.public.pgbench_accounts");
        let converged = wait_until(Duration::from_secs(60), || {
            accounts_replica(&read_all(&s.broker.bootstrap, &accounts_topic), &accounts_topic) == accounts
        });
        let mine = accounts_replica(&read_all(&s.broker.bootstrap, &accounts_topic), &accounts_topic);
        let differ = accounts.iter().filter(|(aid, bal)| mine.get(aid) != Some(bal)).count();
        assert!(converged, "pgbench_accounts: {differ} of {} rows differ from the new primary", accounts.len());
    }
    eprintln!(
        "failover ({name}): {} commits acknowledged, {} rows on the new primary, first post-promotion row {first_id} streamed {:.1} s after the promotion",
        acked.rows.len(),
        source.len(),
        resumed.as_secs_f64()
    );
    assert!(resumed < Duration::from_secs(30), "streaming resumed {resumed:?} after the promotion");
    let log = earlier_log + &s.daemon.logs();
    let repaired = log.contains("on_slot_lost = \"resnapshot\": making a new slot");
    assert_eq!(repaired, !slot_synced, "a slot repair happened exactly when the slot was not synced; log:\n{log}");
    assert_eq!(s.daemon.stop(), Some(0), "cdcd kept running through the failover");
}

/// Whether the standby holds a persistent synced copy of `slot` within `secs`.
async fn synced_within(standby: &tokio_postgres::Client, slot: &str, secs: u64) -> bool {
    let started = Instant::now();
    for _ in 0..secs * 10 {
        let row = standby
            .query_opt("SELECT synced FROM pg_replication_slots WHERE slot_name = $1 AND NOT temporary", &[&slot])
            .await
            .unwrap();
        if row.is_some_and(|r| r.get::<_, bool>(0)) {
            eprintln!("slot {slot} synced to the standby after {:.1} s", started.elapsed().as_secs_f64());
            return true;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    false
}

/// The standby's slots, for a failure message.
async fn standby_slots(standby: &tokio_postgres::Client) -> Vec<String> {
    let sql = "SELECT format('%s synced=%s temporary=%s restart_lsn=%s', slot_name, synced, temporary, restart_lsn) \
               FROM pg_replication_slots";
    match standby.query(sql, &[]).await {
        Ok(rows) => rows.iter().map(|r| r.get::<_, String>(0)).collect(),
        Err(e) => vec![format!("(could not list: {e})")],
    }
}

/// Without failover slots (`slot_failover = false`) nothing keeps the slot on the standby:
/// after the failover cdcd stops with the clear error, never a fresh slot made silently.
#[tokio::test(flavor = "multi_thread")]
async fn pg17_without_slot_sync_a_failover_stops_the_connector_clearly() {
    let endpoint = Endpoint::MovingProxy;
    let mut s = setup(&endpoint, (25631, 25632), "fonosync", "slot_failover = false", ONLY_T).await;
    let sc = superuser(&s.standby, "postgres").await;
    assert!(!synced_within(&sc, "cdcd_fonosync", 3).await, "a slot that is not a failover slot was synced");
    s.fail_over(&endpoint);
    let stopped = wait_until(Duration::from_secs(60), || !s.daemon.is_running());
    let log = s.daemon.logs();
    assert!(stopped, "cdcd kept running without its slot; log:\n{log}");
    assert!(log.contains("no longer exists") && log.contains("may have been lost"), "{log}");
    let slots: i64 = superuser(&s.standby, "postgres")
        .await
        .query_one("SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'cdcd_fonosync'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(slots, 0, "cdcd made a fresh slot on the new primary");
}

/// Without `synchronized_standby_slots`, cdcd can deliver changes the standby never received:
/// the standby is down while cdcd streams more, then the primary dies and the standby is
/// promoted. Its timeline leaves the old one before cdcd's checkpoint, so resuming there would
/// skip the new primary's own changes and keep ones it never had: cdcd stops and says why.
#[tokio::test(flavor = "multi_thread")]
async fn pg17_a_promoted_standby_that_missed_delivered_changes_stops_the_connector_clearly() {
    let endpoint = Endpoint::MovingProxy;
    let mut s = setup(&endpoint, (25651, 25652), "fodiverge", "", ONLY_T).await;
    let admin = superuser(&s.primary, "postgres").await;
    for sql in [
        "ALTER SYSTEM RESET synchronized_standby_slots",
        "ALTER SYSTEM RESET synchronous_standby_names",
        "SELECT pg_reload_conf()",
    ] {
        admin.batch_execute(sql).await.unwrap();
    }
    let sc = superuser(&s.standby, "postgres").await;
    assert!(synced_within(&sc, "cdcd_fodiverge", 120).await, "the slot was not synced; log:\n{}", s.daemon.logs());
    drop(sc);
    s.standby.down("fast");
    let c = superuser(&s.primary, "fo").await;
    c.batch_execute("INSERT INTO t SELECT g, 'unseen-' || g FROM generate_series(100001, 100050) g").await.unwrap();
    let end: String = c.query_one("SELECT pg_current_wal_insert_lsn()::text", &[]).await.unwrap().get(0);
    assert!(
        wait_until(Duration::from_secs(30), || checkpoint(s._dir.path(), "fodiverge").is_some_and(|cp| pg_lsn(
            cp["position"]["lsn"].as_str().unwrap_or("0/0")
        ) >= pg_lsn(
            &end
        ))),
        "cdcd did not deliver the rows the standby missed; log:\n{}",
        s.daemon.logs()
    );
    s.primary.down("immediate");
    s.standby.up();
    s.standby.promote();
    s.proxy.retarget(format!("127.0.0.1:{}", s.standby.port));
    let stopped = wait_until(Duration::from_secs(60), || !s.daemon.is_running());
    let log = s.daemon.logs();
    assert!(stopped, "cdcd resumed on a log that differs from the one it delivered; log:\n{log}");
    assert!(log.contains("was promoted onto timeline 2, which left timeline 1 at"), "{log}");
    assert!(log.contains("synchronized_standby_slots"), "{log}");
}

/// Every record on `topic` so far (the mock cluster's watermarks are exact).
fn read_all(bootstrap: &str, topic: &str) -> Vec<Rec> {
    read_topics_to_end(bootstrap, &[topic], 30)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[tokio::test(flavor = "multi_thread")]
async fn pg17_failover_through_an_endpoint_that_moves() {
    failover(Endpoint::MovingProxy, (25611, 25612), "fomove", "", TABLES, true).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn pg17_failover_through_a_multi_host_url() {
    failover(Endpoint::MultiHost, (25621, 25622), "fomulti", "", TABLES, true).await;
}

/// Without slot sync but with `on_slot_lost = "resnapshot"`: after the failover cdcd makes a new
/// slot, sends TRUNCATE and snapshots again, and the replica converges to the new primary,
/// deletes made in the gap included.
#[tokio::test(flavor = "multi_thread")]
async fn pg17_without_slot_sync_resnapshot_repairs_and_the_replica_converges() {
    // Slow snapshots, so the kill -9 after the repair lands inside the re-snapshot.
    let extra = "slot_failover = false\non_slot_lost = \"resnapshot\"\nsnapshot_max_rows_per_sec = 100\nsnapshot_chunk_rows = 50";
    failover(Endpoint::MovingProxy, (25641, 25642), "forepair", extra, ONLY_T, false).await;
}
