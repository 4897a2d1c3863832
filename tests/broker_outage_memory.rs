//! A 60-second broker outage under sysbench load: memory stays bounded and nothing is lost.
//!
//! sysbench (`oltp_write_only`, two tables, 400 transactions/s) writes to MariaDB, then (one at a
//! time: they would share 2 cores) to MySQL 9.7; cdcd captures
//! one of the tables, so half the transactions touch a table it does not capture (which used to
//! cost a tracker entry each). The broker goes down for 60 s. Within it the in-flight cap (or
//! the producer queue, whichever fills first) pauses the binlog reader, which the test sees in
//! the daemon's log, and the daemon's peak RSS (VmHWM) must stay under 64 MB. After the broker
//! is back the daemon catches up, and the state a consumer materializes from the topic equals
//! the captured table row for row. The broker is `cdcd-mock-broker` (librdkafka's mock
//! cluster), the one here that can be taken down and brought back in place; it keeps only ~5 MB
//! per partition, so the topic gets 16 partitions and the reader fails loudly if the broker
//! dropped anything (a low watermark above 0) rather than reporting lost rows.
//! `CDCD_OUTAGE_RATE` changes the rate.

mod support;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use serde_json::{json, Value};
use support::workload::materialize;
use support::*;

const RSS_LIMIT_KB: u64 = 64 * 1024;

/// Runs one outage test at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// sysbench against `url`. A MySQL 9.7 `caching_sha2_password` user logs in over plain TCP from
/// the server's cache, filled by the test's own login first.
fn sysbench(url: &str, args: &[&str]) -> Command {
    let url = url::Url::parse(url).unwrap();
    let mut cmd = Command::new("sysbench");
    cmd.arg("oltp_write_only")
        .arg(format!("--mysql-host={}", url.host_str().unwrap()))
        .arg(format!("--mysql-port={}", url.port().unwrap()))
        .arg(format!("--mysql-user={}", url.username()))
        .arg(format!("--mysql-password={}", url.password().unwrap_or("")))
        .args(["--mysql-db=outage", "--tables=2", "--table-size=5000", "--db-ps-mode=disable", "--mysql-ssl=off"])
        .args(args);
    cmd
}

/// VmRSS and VmHWM of `pid`, in kB.
fn memory_kb(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field =
        |name: &str| status.lines().find(|l| l.starts_with(name))?.split_whitespace().nth(1)?.parse::<u64>().ok();
    Some((field("VmRSS:")?, field("VmHWM:")?))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_60_second_broker_outage_under_sysbench_keeps_memory_bounded_and_loses_nothing() {
    outage(&mysql_url(), "MariaDB", 5401).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql97_a_60_second_broker_outage_under_sysbench_keeps_memory_bounded_and_loses_nothing() {
    outage(&mysql97_url(), "MySQL 9.7", 5402).await;
}

async fn outage(url: &str, what: &str, server_id: u32) {
    let _alone = ONE_AT_A_TIME.lock().await;
    drop(mysql_db_at(url, "outage").await);
    let prepare = sysbench(url, &["prepare"]).output().expect("run sysbench (scripts/deps.sh installs it)");
    assert!(prepare.status.success(), "sysbench prepare: {}", String::from_utf8_lossy(&prepare.stderr));

    let dir = tempfile::tempdir().unwrap();
    // 16 partitions: the mock cluster keeps ~5 MB per partition, and this run writes ~50 MB.
    let mut broker = Broker::with_topics(&[("outage.outage.sbtest1", 16)]);
    let sink = kafka_sink(&broker.bootstrap);
    let cfg = write_mysql_config_at(dir.path(), "outage", url, r#"["outage.sbtest1"]"#, server_id, &sink, "");
    let daemon = Daemon::start(&cfg);
    assert!(wait_until(Duration::from_secs(60), || daemon.logs().contains("streaming binlog")), "{}", daemon.logs());
    let pid = daemon.pid();

    let rate = format!("--rate={}", std::env::var("CDCD_OUTAGE_RATE").unwrap_or_else(|_| "400".into()));
    let mut load = sysbench(url, &["--threads=2", &rate, "--time=85", "run"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(8)).await;
    broker.down();
    let outage = Instant::now();
    let mut peak_rss = 0;
    while outage.elapsed() < Duration::from_secs(60) {
        let (rss, _) = memory_kb(pid).expect("the daemon must keep running through the outage");
        peak_rss = peak_rss.max(rss);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    broker.up();
    let status = load.wait().unwrap();
    assert!(status.success(), "sysbench run failed");

    let mut c = mysql_db_conn_at(url, "outage").await;
    let (target, done) = gtid_target(&mut c).await;
    wait_for_checkpoint(dir.path(), "outage", &daemon, Duration::from_secs(180), |cp| {
        done(cp["position"]["gtid"].as_str().unwrap_or("")) >= done(&target)
    });
    let (_, hwm) = memory_kb(pid).unwrap();

    let rows: Vec<(i64, i64, String, String)> = c.query("SELECT id, k, c, pad FROM sbtest1").await.unwrap();
    let source: BTreeMap<i64, Value> =
        rows.into_iter().map(|(id, k, cc, pad)| (id, json!({"id": id, "k": k, "c": cc, "pad": pad}))).collect();
    let recs = read_topics_to_end(&broker.bootstrap, &["outage.outage.sbtest1"], 240);
    let state = materialize(&recs);
    let mismatched: Vec<i64> =
        source.keys().chain(state.keys()).filter(|id| source.get(id) != state.get(id)).copied().collect();
    eprintln!(
        "{what}: 60 s broker outage under sysbench: {} records, {} source rows, {} mismatched; peak RSS during the outage {} kB, VmHWM {} kB (limit {RSS_LIMIT_KB} kB)",
        recs.len(),
        source.len(),
        mismatched.len(),
        peak_rss,
        hwm
    );
    if let Some(id) = mismatched.first() {
        let history: Vec<_> = recs
            .iter()
            .filter(|r| r.key.as_ref().and_then(|k| k["id"].as_i64()) == Some(*id))
            .map(|r| (r.partition, r.op().map(str::to_string), r.value.as_ref().map(|v| v["source"]["pos"].clone())))
            .collect();
        eprintln!("row {id}: source {:?}, materialized {:?}, history {history:?}", source.get(id), state.get(id));
    }
    assert!(mismatched.is_empty(), "lost or wrong rows {:?}", &mismatched[..mismatched.len().min(10)]);
    assert!(recs.len() > source.len(), "the load should have produced changes beyond the snapshot");
    assert!(hwm < RSS_LIMIT_KB, "peak RSS {hwm} kB over the {RSS_LIMIT_KB} kB bound\n{}", daemon.logs());
    // The bound must come from back-pressure, not from a load too light to fill anything.
    let logs = daemon.logs();
    let paused: Vec<&str> =
        logs.lines().filter(|l| l.contains("reading paused") || l.contains("WARN") || l.contains("ERROR")).collect();
    eprintln!("back-pressure: {paused:#?}");
    assert!(
        paused.iter().any(|l| l.contains("reading paused")),
        "the outage never paused the reader; raise the rate\n{logs}"
    );
    assert_eq!(daemon.stop(), Some(0));
}
