//! A network path that goes silent (no FIN, no RST) between cdcd and its source: the test
//! harness's proxy stops forwarding mid-stream while a writer keeps committing. The daemon must
//! notice within `source.timeout_secs`, reconnect from its checkpoint, and lose nothing.

mod support;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use support::proxy::Proxy;
use support::*;

const TIMEOUT_SECS: u64 = 6;

/// Waits for the daemon to report the silent connection; returns how long that took.
fn detection_time(daemon: &Daemon, frozen_at: Instant, needle: &str) -> Duration {
    assert!(
        wait_until(Duration::from_secs(TIMEOUT_SECS * 4), || daemon.logs().contains(needle)),
        "the silent connection was not detected within {}s:\n{}",
        TIMEOUT_SECS * 4,
        daemon.logs()
    );
    frozen_at.elapsed()
}

/// Silences the daemon's connections mid-stream; checks it notices within the bound (its log
/// says `silence`) and starts a new session (`session_start` logged again) on new connections.
async fn freeze_and_expect_recovery(proxy: &Proxy, daemon: &Daemon, what: &str, silence: &str, session_start: &str) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = proxy.connections();
    proxy.freeze();
    let took = detection_time(daemon, Instant::now(), silence);
    eprintln!("silent {what} connection detected after {:.1}s (bound {TIMEOUT_SECS}s)", took.as_secs_f64());
    assert!(took <= Duration::from_secs(TIMEOUT_SECS + 4), "detected too late: {took:?}");
    assert!(
        wait_until(Duration::from_secs(60), || daemon.logs().matches(session_start).count() >= 2),
        "no new session:\n{}",
        daemon.logs()
    );
    assert!(proxy.connections() > before, "the new session must open new connections");
}

/// Stops the writer and checks that every row it committed reached `topic`.
async fn expect_every_row(
    stop: &AtomicBool,
    writer: tokio::task::JoinHandle<()>,
    last: &AtomicI64,
    bootstrap: &str,
    topic: &str,
    daemon: &Daemon,
) {
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let n = last.load(Ordering::SeqCst);
    let recs = read_topics(bootstrap, &[topic], n as usize, 90);
    let got: BTreeSet<i64> = recs.iter().filter_map(|r| r.value.as_ref()?["after"]["id"].as_i64()).collect();
    let missing: Vec<i64> = (1..=n).filter(|i| !got.contains(i)).collect();
    assert!(
        missing.is_empty(),
        "lost {} of {n} rows: {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        daemon.logs()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_silent_network_path_is_detected_and_survived() {
    let db = TestDb::create("blackhole_pg").await;
    let c = db.client().await;
    c.batch_execute("CREATE TABLE seq (id bigint PRIMARY KEY)").await.unwrap();
    let server = url::Url::parse(&pg_url()).unwrap();
    let proxy = Proxy::start(format!("127.0.0.1:{}", server.port().unwrap())).await;
    let via_proxy = format!("postgres://cdcd:cdcd@127.0.0.1:{}/blackhole_pg", proxy.port);
    let extra = format!("timeout_secs = {TIMEOUT_SECS}\nstatus_interval_secs = 1\n");
    let rig = Rig::new(&via_proxy, "bhpg", r#"["public.seq"]"#, &extra);
    let daemon = Daemon::start(&rig.cfg);
    assert!(wait_until(Duration::from_secs(30), || daemon.logs().contains("streaming")), "{}", daemon.logs());

    let (stop, last) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicI64::new(0)));
    let writer = {
        let (stop, last, c) = (stop.clone(), last.clone(), db.client().await);
        tokio::spawn(async move {
            let mut id = 0;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                c.execute("INSERT INTO seq VALUES ($1)", &[&id]).await.unwrap();
                last.store(id, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    freeze_and_expect_recovery(
        &proxy,
        &daemon,
        "PostgreSQL",
        "PostgreSQL sent nothing for",
        "INFO streaming connector=",
    )
    .await;
    assert!(
        daemon.logs().contains("previous, silent session"),
        "the stale walsender holding the slot should have been ended:\n{}",
        daemon.logs()
    );
    expect_every_row(&stop, writer, &last, &rig.broker.bootstrap, "bhpg.public.seq", &daemon).await;
    assert_eq!(daemon.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_silent_network_path_is_detected_and_survived() {
    mysql_silent_path(&mysql_url(), "MariaDB", "blackhole_my", "bhmy", 5401).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql97_silent_network_path_is_detected_and_survived() {
    mysql_silent_path(&mysql97_url(), "MySQL 9.7", "blackhole_my97", "bhmy97", 5402).await;
}

async fn mysql_silent_path(url: &str, what: &str, db: &str, name: &str, server_id: u32) {
    let mut c = mysql_db_at(url, db).await;
    c.query_drop("CREATE TABLE seq (id bigint PRIMARY KEY)").await.unwrap();
    let server = url::Url::parse(url).unwrap();
    let proxy = Proxy::start(format!("127.0.0.1:{}", server.port().unwrap())).await;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let cfg = write_mysql_config_at(
        dir.path(),
        name,
        url,
        &format!(r#"["{db}.seq"]"#),
        server_id,
        &kafka_sink(&broker.bootstrap),
        &format!("timeout_secs = {TIMEOUT_SECS}\nsnapshot = \"never\"\n"),
    );
    let text =
        std::fs::read_to_string(&cfg).unwrap().replace(url, &format!("mysql://cdcd:cdcd@127.0.0.1:{}", proxy.port));
    std::fs::write(&cfg, text).unwrap();
    let daemon = Daemon::start(&cfg);
    assert!(wait_until(Duration::from_secs(30), || daemon.logs().contains("streaming binlog")), "{}", daemon.logs());

    let (stop, last) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicI64::new(0)));
    let writer = {
        let (stop, last, url, db) = (stop.clone(), last.clone(), url.to_string(), db.to_string());
        tokio::spawn(async move {
            let mut c = mysql_db_conn_at(&url, &db).await;
            let mut id = 0i64;
            while !stop.load(Ordering::Relaxed) {
                id += 1;
                c.exec_drop("INSERT INTO seq VALUES (?)", (id,)).await.unwrap();
                last.store(id, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
    };
    freeze_and_expect_recovery(&proxy, &daemon, what, "not even a replication heartbeat", "streaming binlog").await;
    expect_every_row(&stop, writer, &last, &broker.bootstrap, &format!("{name}.{db}.seq"), &daemon).await;
    assert_eq!(daemon.stop(), Some(0));
}
