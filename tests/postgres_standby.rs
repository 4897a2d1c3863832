//! Read-only capture (issue 22 item 4): `source.read_only = true` decodes from a physical
//! standby (PostgreSQL 16+) and runs against a primary it may not write to.
//!
//! - From a standby: a seeded random workload (support::random_workload: multi-table
//!   transactions, savepoints, rollbacks, key changes, TRUNCATE, ADD/DROP COLUMN, a keyless
//!   table) commits on the primary while cdcd, pointed at its standby, snapshots and streams and
//!   is SIGKILLed at random moments. The replica built from Kafka must equal the primary's
//!   tables; the slot lives on the standby only, and its creation said what it waited for. The
//!   keyless table is refused first (a standby cannot snapshot it exactly), by name. On 14 and
//!   15 the same configuration stops with an error that names the version needed.
//! - On a primary, as a role that may read the tables but not create or change publications:
//!   the same differential run, and afterwards the WAL holds no message cdcd wrote (read back
//!   through a pgoutput slot of the test's own, with `messages` on).
//!
//! The servers follow `PG_MAJOR` (scripts/test.sh sets it for the version matrix).

mod support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::differential::{judge, postgres_tables, snapshot_done, tighten};
use support::kafka::RealKafka;
use support::own_server::OwnServer;
use support::random_workload::{tables_ddl, Flavor, RandomWorkload};
use support::*;

const SEED_ROWS: i64 = 600;
const KILLS: usize = 6;
const TABLES: &str = r#"["public.a", "public.b", "public.k"]"#;

async fn server_major(c: &tokio_postgres::Client) -> u32 {
    let num: String = c.query_one("SHOW server_version_num", &[]).await.unwrap().get(0);
    num.parse::<u32>().unwrap() / 10_000
}

/// The workload's tables with their seed rows in `db`, and the publication cdcd is to read.
async fn prepare(c: &tokio_postgres::Client, w: &mut RandomWorkload, publication: &str) {
    c.batch_execute(&tables_ddl(Flavor::Postgres).join(";")).await.unwrap();
    c.batch_execute(&w.seed(SEED_ROWS).join(";")).await.unwrap();
    c.batch_execute(&format!("CREATE PUBLICATION {publication} FOR TABLE a, b, k")).await.unwrap();
}

/// Commits the workload's transactions through `url` until `stop`; returns the workload.
fn spawn_writer(url: String, mut w: RandomWorkload, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<RandomWorkload> {
    tokio::spawn(async move {
        let c = connect(&url).await;
        while !stop.load(Ordering::Relaxed) {
            let unit = w.next();
            c.batch_execute(&unit.join(";")).await.unwrap_or_else(|e| panic!("{unit:?}: {e}"));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        w
    })
}

/// Runs the writer and `KILLS` random SIGKILLs of the connector, then one last run that must
/// catch up with `target` (a log position read after the writer stopped); returns the daemon
/// and the workload.
async fn kill_and_catch_up(
    cfg: &std::path::Path,
    dir: &std::path::Path,
    name: &str,
    writer: tokio::task::JoinHandle<RandomWorkload>,
    stop: &AtomicBool,
    rng: &mut Rng,
    target: impl std::future::Future<Output = String>,
) -> (Daemon, RandomWorkload) {
    kill_loop(cfg, KILLS, 2500, rng).await;
    stop.store(true, Ordering::Relaxed);
    let w = writer.await.unwrap();
    let target = target.await;
    let daemon = Daemon::start(cfg);
    wait_for_checkpoint(dir, name, &daemon, Duration::from_secs(180), |cp| {
        snapshot_done(cp) && pg_lsn(cp["position"]["lsn"].as_str().unwrap_or("0/0")) >= pg_lsn(&target)
    });
    (daemon, w)
}

/// The primary's current log position, once the standby has replayed it.
async fn replayed(primary: &tokio_postgres::Client, standby: &tokio_postgres::Client) -> String {
    let target: String = primary.query_one("SELECT pg_current_wal_insert_lsn()::text", &[]).await.unwrap().get(0);
    for _ in 0..600 {
        let at: String = standby.query_one("SELECT pg_last_wal_replay_lsn()::text", &[]).await.unwrap().get(0);
        if pg_lsn(&at) >= pg_lsn(&target) {
            return target;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the standby did not replay up to {target} within 60 s");
}

async fn slot_count(c: &tokio_postgres::Client, slot: &str) -> i64 {
    c.query_one("SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1", &[&slot]).await.unwrap().get(0)
}

#[tokio::test(flavor = "multi_thread")]
async fn standby_decoding_replicates_a_random_workload_under_kill_9() {
    let primary = OwnServer::start("pg", 25711);
    let standby = primary.standby(25712, "sb1");
    let admin = connect(&format!("postgres://postgres:cdcd@127.0.0.1:{}/postgres", primary.port)).await;
    let major = server_major(&admin).await;
    let mut rng = Rng::from_env_or_clock();
    let seed = rng.next();
    let mut w = RandomWorkload::new(seed, Flavor::Postgres);
    let db = TestDb::create_on(&primary.url(), "sbdiff").await;
    let (kafka, name) = (RealKafka::get(), format!("standby{}", std::process::id()));
    prepare(&db.client().await, &mut w, &format!("cdcd_{name}")).await;
    let standby_url = format!("{}/sbdiff", standby.url());
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &name,
        &standby_url,
        TABLES,
        &kafka_sink(&kafka.bootstrap),
        "read_only = true\nsnapshot_chunk_rows = 50",
    );
    tighten(&cfg);
    let primary_client = db.client().await;
    let standby_client = connect(&format!("{}/postgres", standby.url())).await;
    replayed(&primary_client, &standby_client).await;

    if major < 16 {
        let mut daemon = Daemon::start(&cfg);
        assert!(wait_until(Duration::from_secs(60), || !daemon.is_running()), "{}", daemon.logs());
        assert!(
            daemon.logs().contains("logical decoding on a standby needs PostgreSQL 16 or later"),
            "PostgreSQL {major}: {}",
            daemon.logs()
        );
        let (_, out, _) = cdcd(&["check", "--config", cfg.to_str().unwrap()]);
        assert!(out.contains("needs PostgreSQL 16 or later"), "{out}");
        return;
    }

    // The slot is made on the standby, which waits for the primary to log the running
    // transactions: cdcd must say so. Then the primary is made to log them.
    let mut daemon = Daemon::start(&cfg);
    assert!(
        wait_until(Duration::from_secs(20), || daemon.logs().contains("running-transactions record")),
        "no word on the wait for the primary; log:\n{}",
        daemon.logs()
    );
    let nudge = {
        let admin = connect(&format!("postgres://postgres:cdcd@127.0.0.1:{}/postgres", primary.port)).await;
        tokio::spawn(async move {
            loop {
                let _ = admin.batch_execute("SELECT pg_log_standby_snapshot()").await;
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        })
    };
    // The keyless table cannot be snapshotted exactly on a standby: a clear stop, naming it.
    assert!(wait_until(Duration::from_secs(60), || !daemon.is_running()), "{}", daemon.logs());
    let logs = daemon.logs();
    assert!(logs.contains("table public.k has no primary key") && logs.contains("a standby cannot snapshot"), "{logs}");
    let text = std::fs::read_to_string(&cfg).unwrap().replace(TABLES, r#"["public.a", "public.b"]"#);
    std::fs::write(&cfg, text).unwrap();
    let daemon = Daemon::start(&cfg);
    assert!(
        wait_until(Duration::from_secs(60), || checkpoint(dir.path(), &name).is_some()),
        "no checkpoint; log:\n{}",
        daemon.logs()
    );
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(db.url.clone(), w, stop.clone());
    tokio::time::sleep(Duration::from_millis(rng.range(200, 2000))).await;
    daemon.kill9();

    let target = replayed(&primary_client, &standby_client);
    let (daemon, w) = kill_and_catch_up(&cfg, dir.path(), &name, writer, &stop, &mut rng, target).await;
    nudge.abort();
    let topics = [format!("{name}.public.a"), format!("{name}.public.b")];
    let topics = [topics[0].as_str(), topics[1].as_str()];
    let recs = read_topics_to_end(&kafka.bootstrap, &topics, 300);
    assert!(recs.iter().any(|r| r.op() == Some("r")), "no snapshot rows");
    let [a, b, _] = postgres_tables(&primary_client).await;
    judge(&format!("PostgreSQL {major} standby"), seed, &w, &recs, &topics, &[a, b], &daemon);

    let slot = format!("cdcd_{name}");
    assert_eq!(slot_count(&standby_client, &slot).await, 1, "the slot lives on the standby");
    assert_eq!(slot_count(&admin, &slot).await, 0, "cdcd made no slot on the primary");
    assert_eq!(daemon.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn read_only_on_a_primary_writes_nothing_and_replicates_a_random_workload_under_kill_9() {
    let mut rng = Rng::from_env_or_clock();
    let seed = rng.next();
    let mut w = RandomWorkload::new(seed, Flavor::Postgres);
    let db = TestDb::create("ro_primary").await;
    let c = db.client().await;
    let (kafka, name) = (RealKafka::get(), format!("roprimary{}", std::process::id()));
    let publication = format!("cdcd_{name}");
    prepare(&c, &mut w, &publication).await;
    // A role that may read the tables and replicate, and nothing else: it owns no table, so it
    // cannot create or change a publication.
    let su = connect(&format!("{}/postgres", pg_url().replace("cdcd:cdcd@", "postgres:cdcd@"))).await;
    su.batch_execute(
        "DO $$BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cdcd_reader') THEN \
         CREATE ROLE cdcd_reader LOGIN REPLICATION PASSWORD 'reader'; END IF; END$$",
    )
    .await
    .unwrap();
    c.batch_execute("GRANT SELECT ON a, b, k TO cdcd_reader").await.unwrap();
    // The test's own slot, made before cdcd starts, reads back every logical message written.
    c.batch_execute("SELECT pg_create_logical_replication_slot('ro_probe', 'pgoutput')").await.unwrap();
    let url = db.url.replace("cdcd:cdcd@", "cdcd_reader:reader@");
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        &name,
        &url,
        TABLES,
        &kafka_sink(&kafka.bootstrap),
        "read_only = true\nsnapshot_chunk_rows = 50",
    );
    tighten(&cfg);
    let stop = Arc::new(AtomicBool::new(false));
    let writer = spawn_writer(db.url.clone(), w, stop.clone());
    let target = async { c.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.unwrap().get::<_, String>(0) };
    let (daemon, w) = kill_and_catch_up(&cfg, dir.path(), &name, writer, &stop, &mut rng, target).await;
    let topics = [format!("{name}.public.a"), format!("{name}.public.b"), format!("{name}.public.k")];
    let topics = [topics[0].as_str(), topics[1].as_str(), topics[2].as_str()];
    let recs = read_topics_to_end(&kafka.bootstrap, &topics, 300);
    assert!(recs.iter().any(|r| r.op() == Some("r")), "no snapshot rows");
    let major = server_major(&c).await;
    judge(&format!("PostgreSQL {major} read-only"), seed, &w, &recs, &topics, &postgres_tables(&c).await, &daemon);
    assert_eq!(daemon.stop(), Some(0));

    let messages: i64 = c
        .query_one(
            &format!(
                "SELECT count(*) FROM pg_logical_slot_peek_binary_changes('ro_probe', NULL, NULL, 'proto_version', '1', \
                 'publication_names', '{publication}', 'messages', 'true') WHERE position('cdcd_snapshot'::bytea IN data) > 0"
            ),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    c.batch_execute("SELECT pg_drop_replication_slot('ro_probe')").await.unwrap();
    assert_eq!(messages, 0, "cdcd wrote logical messages to a source it was told not to write to");
    let tables: i64 = c
        .query_one("SELECT count(*) FROM pg_publication_tables WHERE pubname = $1", &[&publication])
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 3, "the publication is as the test made it");
}

/// Without the publication, or with a table missing from it, a read-only connector stops at
/// once with the statement to run on the primary.
#[tokio::test(flavor = "multi_thread")]
async fn read_only_names_the_publication_statement_it_may_not_run() {
    let db = TestDb::create("ro_missing").await;
    let c = db.client().await;
    c.batch_execute("CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE b (id int PRIMARY KEY)").await.unwrap();
    let rig = Rig::new(&db.url, "romissing", r#"["public.a", "public.b"]"#, "read_only = true");
    let mut daemon = Daemon::start(&rig.cfg);
    assert!(wait_until(Duration::from_secs(30), || !daemon.is_running()), "{}", daemon.logs());
    let logs = daemon.logs();
    assert!(logs.contains("CREATE PUBLICATION cdcd_romissing FOR TABLE"), "{logs}");
    let (_, out, _) = cdcd(&["check", "--config", rig.cfg.to_str().unwrap()]);
    assert!(out.contains("CREATE PUBLICATION cdcd_romissing"), "{out}");

    c.batch_execute("CREATE PUBLICATION cdcd_romissing FOR TABLE a").await.unwrap();
    let mut daemon = Daemon::start(&rig.cfg);
    assert!(wait_until(Duration::from_secs(30), || !daemon.is_running()), "{}", daemon.logs());
    let logs = daemon.logs();
    let statement = logs.split("ALTER PUBLICATION cdcd_romissing ADD TABLE").nth(1).unwrap_or_default();
    let statement = statement.split(';').next().unwrap_or_default().replace('\\', "");
    assert!(statement.contains("\"public\".\"b\"") && !statement.contains("\"public\".\"a\""), "{logs}");
    let pubs: i64 = c
        .query_one("SELECT count(*) FROM pg_publication_tables WHERE pubname = 'cdcd_romissing'", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(pubs, 1, "cdcd left the publication alone");

    // A publication that leaves out some kind of change is refused too.
    c.batch_execute("ALTER PUBLICATION cdcd_romissing ADD TABLE b; ALTER PUBLICATION cdcd_romissing SET (publish = 'insert, update')")
        .await
        .unwrap();
    let mut daemon = Daemon::start(&rig.cfg);
    assert!(wait_until(Duration::from_secs(30), || !daemon.is_running()), "{}", daemon.logs());
    assert!(daemon.logs().contains("does not publish every kind of change"), "{}", daemon.logs());
    c.batch_execute("ALTER PUBLICATION cdcd_romissing SET (publish = 'insert, update, delete, truncate')")
        .await
        .unwrap();

    // With the publication complete it runs. On an idle database no commit passes a chunk's
    // read-only watermark: the stream asks the server where it is, so 12 chunks still take
    // seconds, not a status interval (10 s) each.
    c.batch_execute(
        "INSERT INTO a SELECT generate_series(1, 300); \
         INSERT INTO b SELECT generate_series(1, 300)",
    )
    .await
    .unwrap();
    let cfg = std::fs::read_to_string(&rig.cfg)
        .unwrap()
        .replace("read_only = true", "read_only = true\nsnapshot_chunk_rows = 50");
    std::fs::write(&rig.cfg, cfg).unwrap();
    let started = std::time::Instant::now();
    let daemon = Daemon::start(&rig.cfg);
    assert!(wait_until(Duration::from_secs(60), || daemon.logs().contains("snapshot finished")), "{}", daemon.logs());
    let took = started.elapsed();
    let recs = read_topics(&rig.broker.bootstrap, &["romissing.public.a", "romissing.public.b"], 600, 30);
    assert_eq!(recs.iter().filter(|r| r.op() == Some("r")).count(), 600, "{}", daemon.logs());
    assert!(took < Duration::from_secs(20), "an idle read-only snapshot of 12 chunks took {took:?}");
}
