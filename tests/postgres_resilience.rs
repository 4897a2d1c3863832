//! Failure tests against the real PostgreSQL from scripts/test.sh and the mock-cluster broker:
//! a broker outage mid-stream, and clear errors for bad input. (The kill -9 loops are in
//! crash_loops.rs.)

mod support;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use support::*;

/// Commits numbered rows in small transactions until `stop`; returns the highest committed id.
fn spawn_writer(url: String, stop: Arc<AtomicBool>, committed: Arc<AtomicI64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let c = connect(&url).await;
        let mut next = 1i64;
        let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
        while !stop.load(Ordering::Relaxed) {
            let n = rng.range(1, 20) as i64;
            let sql = format!("INSERT INTO seq SELECT g, 'row ' || g FROM generate_series({next}, {}) g", next + n - 1);
            c.batch_execute(&sql).await.expect("writer insert");
            next += n;
            committed.store(next - 1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

/// Reads the topic and returns (occurrences per id, records read).
fn ids_in_topic(bootstrap: &str, topic: &str, expect: usize) -> (BTreeMap<i64, usize>, usize) {
    let recs = read_topics(bootstrap, &[topic], expect, 120);
    let mut seen = BTreeMap::new();
    for r in &recs {
        if let Some(v) = &r.value {
            if let Some(id) = v["after"]["id"].as_i64() {
                *seen.entry(id).or_insert(0) += 1;
            }
        }
    }
    (seen, recs.len())
}

#[tokio::test(flavor = "multi_thread")]
async fn broker_outage_mid_stream_loses_nothing() {
    let db = TestDb::create("outage").await;
    db.client().await.batch_execute("CREATE TABLE seq (id bigint PRIMARY KEY, v text)").await.unwrap();
    let mut rig = Rig::new(&db.url, "outage", r#"["public.seq"]"#, "");
    let mut daemon = Daemon::start(&rig.cfg);
    assert!(wait_until(Duration::from_secs(30), || daemon.logs().contains("streaming")), "{}", daemon.logs());

    let stop = Arc::new(AtomicBool::new(false));
    let committed = Arc::new(AtomicI64::new(0));
    let writer = spawn_writer(db.url.clone(), stop.clone(), committed.clone());
    tokio::time::sleep(Duration::from_secs(2)).await;
    rig.broker.down();
    let during_outage_from = committed.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(8)).await;
    assert!(daemon.is_running(), "the daemon must wait for the broker, not exit:\n{}", daemon.logs());
    rig.broker.up();
    tokio::time::sleep(Duration::from_secs(2)).await;
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();
    let last = committed.load(Ordering::SeqCst);
    assert!(last > during_outage_from + 10, "the writer should have committed rows during the outage");

    let (seen, total) = ids_in_topic(&rig.broker.bootstrap, "outage.public.seq", last as usize);
    let missing: Vec<i64> = (1..=last).filter(|id| !seen.contains_key(id)).collect();
    let duplicates: usize = seen.values().map(|n| n - 1).sum();
    eprintln!("outage test: {last} rows, {total} records read, {duplicates} duplicates, {} missing", missing.len());
    assert!(
        missing.is_empty(),
        "lost rows across a broker outage: {:?}\nlog:\n{}",
        &missing[..missing.len().min(20)],
        daemon.logs()
    );
    assert_eq!(daemon.stop(), Some(0));
}

fn stdout_config(dir: &std::path::Path, name: &str, url: &str, tables: &str) -> std::path::PathBuf {
    write_config(dir, name, url, tables, "[sink]\ntype = \"stdout\"\n", "")
}

#[tokio::test(flavor = "multi_thread")]
async fn wal_level_not_logical_is_a_clear_error() {
    let db = TestDb::create_on(&pg_replica_url(), "replica_only").await;
    db.client().await.batch_execute("CREATE TABLE t (id int PRIMARY KEY)").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = stdout_config(dir.path(), "walreplica", &db.url, r#"["public.t"]"#);
    let (code, _, err) = cdcd(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("wal_level is `replica`") && err.contains("wal_level = logical"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
    let (code, out, _) = cdcd(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1);
    assert!(out.contains("FAIL  wal_level = replica") && out.contains("fix: set wal_level = logical"), "{out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn missing_table_bad_url_and_bad_toml_are_clear_errors() {
    let db = TestDb::create("errors").await;
    db.client()
        .await
        .batch_execute("CREATE TABLE present (id int PRIMARY KEY); CREATE TABLE nokey (v int);")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    let cfg = stdout_config(dir.path(), "missing", &db.url, r#"["public.absent"]"#);
    let (code, _, err) = cdcd(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("table `public.absent`") && err.contains("does not exist"), "{err}");

    // A configured key column the table lacks stops the connector with the column named.
    let cfg = write_config(
        dir.path(),
        "badkey",
        &db.url,
        r#"["public.nokey"]"#,
        "[sink]\ntype = \"stdout\"\n",
        "[source.key_columns]\n\"public.nokey\" = [\"missing\"]\n",
    );
    let (code, _, err) = cdcd(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("column `missing`") && err.contains("public.nokey") && err.contains("key_columns"), "{err}");

    let cfg = stdout_config(dir.path(), "badurl", "postgres://cdcd:cdcd@127.0.0.1:notaport/x", r#"["public.present"]"#);
    let (code, _, err) = cdcd(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("source.url"), "{err}");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "name = \"x\"\n[source\n").unwrap();
    let (code, _, err) = cdcd(&["run", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("bad.toml") && err.contains("configuration error"), "{err}");

    std::fs::write(&bad, std::fs::read_to_string(&cfg).unwrap().replace("tables =", "tabels =")).unwrap();
    let (code, _, err) = cdcd(&["check", "--config", bad.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("tabels"), "unknown key must be named: {err}");

    let (code, _, err) = cdcd(&["run", "--config", "/nonexistent/cdcd.toml"]);
    assert_eq!(code, 2, "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn json_logs_are_one_json_object_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = stdout_config(dir.path(), "jsonlogs", "postgres://cdcd:cdcd@127.0.0.1:notaport/x", r#"["public.t"]"#);
    let (code, _, err) = cdcd(&["--log-format", "json", "run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 2);
    let lines: Vec<serde_json::Value> =
        err.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    let last = lines.last().expect("an error line");
    assert_eq!(last["level"], "ERROR");
    assert!(last["message"].as_str().unwrap().contains("source.url"), "{last}");
}

#[tokio::test(flavor = "multi_thread")]
async fn slot_dropped_behind_our_back_stops_with_resnapshot_advice() {
    let db = TestDb::create("slotgone").await;
    let c = db.client().await;
    c.batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = stdout_config(dir.path(), "slotgone", &db.url, r#"["public.t"]"#);
    let daemon = Daemon::start(&cfg);
    let ck = checkpoint_path(dir.path(), "slotgone");
    assert!(wait_until(Duration::from_secs(30), || ck.exists()), "no checkpoint written:\n{}", daemon.logs());
    assert_eq!(daemon.stop(), Some(0));

    let (code, out, _) = cdcd(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "check should pass on a healthy setup:\n{out}");
    assert!(out.contains(&format!("checkpoint {} at ", ck.display())) && out.contains("matches the slot"), "{out}");

    c.batch_execute("SELECT pg_drop_replication_slot('cdcd_slotgone')").await.unwrap();
    let (code, out, _) = cdcd(&["check", "--config", cfg.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("but the slot is gone: changes may be lost")
            && out.contains(&format!("re-snapshot: move {} away", ck.display())),
        "{out}"
    );
    let (code, _, err) = cdcd(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("no longer exists") && err.contains("may have been lost") && err.contains("fresh snapshot"),
        "{err}"
    );
}
