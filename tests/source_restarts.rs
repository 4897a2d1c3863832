//! The source server restarts under the daemon while a load generator writes: PostgreSQL
//! stopped fast and immediately (a crash: its slot falls back to the last checkpoint), MariaDB
//! and MySQL 9.7 shut down cleanly and killed with SIGKILL. Each test runs its own server instance on its own
//! port, so the shared servers of the other tests are never disturbed. The daemon must ride
//! every restart (reconnect with backoff, never exit), and afterwards every row the writer saw
//! committed has its create event in Kafka (tansu, read back by the independent Python client)
//! and the state a consumer materializes equals the source table row for row.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use mysql_async::prelude::*;
use serde_json::Value;
use support::own_server::OwnServer;
use support::workload::{materialize, pg_source_rows, row_json, TABLE_DDL};
use support::*;

/// What the writer saw: ids whose transaction's COMMIT returned OK. A transaction cut by a
/// restart may or may not have committed; the source table settles those.
#[derive(Default)]
struct Written {
    committed_ids: BTreeSet<i64>,
    transactions: u64,
    failed_transactions: u64,
}

impl Written {
    /// Records one transaction's outcome: `committed` when its COMMIT returned OK.
    fn record(&mut self, ids: Vec<i64>, committed: bool) {
        self.transactions += 1;
        if committed {
            self.committed_ids.extend(ids);
        } else {
            self.failed_transactions += 1;
        }
    }
}

/// One transaction: inserts a few new rows, updates one earlier row and sometimes deletes one.
fn transaction(next_id: &mut i64, rng: &mut Rng) -> (Vec<i64>, Vec<String>) {
    let k = rng.range(1, 20) as i64;
    let ids: Vec<i64> = (*next_id..*next_id + k).collect();
    *next_id += k;
    let values: Vec<String> = ids.iter().map(|id| format!("({id}, 'v{id}', {})", id % 97)).collect();
    let mut stmts = vec![format!("INSERT INTO sp VALUES {}", values.join(","))];
    if *next_id > 50 {
        let old = rng.range(1, *next_id as u64 - 1);
        stmts.push(format!("UPDATE sp SET n = n + 1, v = 'u{old}' WHERE id = {old}"));
        if rng.range(0, 4) == 0 {
            stmts.push(format!("DELETE FROM sp WHERE id = {}", rng.range(1, *next_id as u64 - 1)));
        }
    }
    (ids, stmts)
}

fn verify(what: &str, recs: &[Rec], written: &Written, source: &BTreeMap<i64, Value>, daemon: &Daemon) {
    let created: BTreeSet<i64> = recs
        .iter()
        .filter(|r| matches!(r.op(), Some("c" | "r")))
        .filter_map(|r| r.value.as_ref()?["after"]["id"].as_i64())
        .collect();
    let lost: Vec<i64> = written.committed_ids.difference(&created).copied().collect();
    let state = materialize(recs);
    let mismatched: Vec<i64> = source
        .keys()
        .chain(state.keys())
        .filter(|id| source.get(id) != state.get(id))
        .copied()
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    eprintln!(
        "{what}: {} transactions ({} cut by restarts), {} rows seen committed, {} records; {} lost, {} state mismatches",
        written.transactions,
        written.failed_transactions,
        written.committed_ids.len(),
        recs.len(),
        lost.len(),
        mismatched.len()
    );
    assert!(
        lost.is_empty() && mismatched.is_empty(),
        "{what}: lost {:?}, mismatched {:?}\nlog:\n{}",
        &lost[..lost.len().min(10)],
        &mismatched[..mismatched.len().min(10)],
        daemon.logs()
    );
    assert!(written.transactions > 50, "the load generator should have been busy");
}

/// Four restarts (clean, crash, clean, crash) three seconds apart while the writer runs; then
/// stops the writer and returns what it saw.
async fn restart_under_load(
    server: &OwnServer,
    stop: Arc<AtomicBool>,
    writer: tokio::task::JoinHandle<Written>,
) -> Written {
    for mode in ["fast", "immediate", "fast", "immediate"] {
        tokio::time::sleep(Duration::from_secs(3)).await;
        server.down(mode);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        server.up();
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let written = writer.await.unwrap();
    assert!(written.failed_transactions > 0, "the restarts should have cut some transactions");
    written
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_restarts_fast_and_immediate_under_load() {
    let server = OwnServer::start("pg", 54341);
    let db = TestDb::create_on(&server.url(), "restarts").await;
    db.client().await.batch_execute(TABLE_DDL).await.unwrap();
    // scripts/pg.sh trades durability for speed (synchronous_commit = off), so an immediate
    // stop would lose transactions the writer saw committed, on the server itself. This
    // instance commits durably: what the writer saw committed exists after a crash.
    let admin = connect(&format!("postgres://postgres:cdcd@127.0.0.1:{}/postgres", server.port)).await;
    admin.batch_execute("ALTER SYSTEM SET synchronous_commit = on").await.unwrap();
    admin.batch_execute("SELECT pg_reload_conf()").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = Tansu::start();
    let cfg = write_config(dir.path(), "pgrestart", &db.url, r#"["public.sp"]"#, &kafka_sink(&broker.bootstrap), "");
    let daemon = Daemon::start(&cfg);
    assert!(wait_until(Duration::from_secs(30), || daemon.logs().contains("snapshot finished")), "{}", daemon.logs());

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, url) = (stop.clone(), db.url.clone());
        tokio::spawn(async move {
            let mut w = Written::default();
            let (mut rng, mut next_id) = (Rng(7), 1i64);
            let mut client = None;
            while !stop.load(Ordering::Relaxed) {
                let c = match &client {
                    Some(c) => c,
                    None => match tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
                        Ok((c, conn)) => {
                            tokio::spawn(conn);
                            client.insert(c)
                        }
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    },
                };
                let (ids, stmts) = transaction(&mut next_id, &mut rng);
                let committed = c.batch_execute(&format!("BEGIN; {}; COMMIT", stmts.join("; "))).await.is_ok();
                w.record(ids, committed);
                if !committed {
                    client = None;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            w
        })
    };
    let written = restart_under_load(&server, stop, writer).await;

    let c = db.client().await;
    let target: String = c.query_one("SELECT pg_current_wal_lsn()::text", &[]).await.unwrap().get(0);
    wait_for_checkpoint(dir.path(), "pgrestart", &daemon, Duration::from_secs(120), |cp| {
        pg_lsn(cp["position"]["lsn"].as_str().unwrap_or("0/0")) >= pg_lsn(&target)
    });
    let source = pg_source_rows(&c).await;
    let recs = read_topics(&broker.bootstrap, &["pgrestart.public.sp"], written.committed_ids.len(), 120);
    let logs = daemon.logs();
    assert!(logs.matches("source session ended").count() >= 4, "one session end per restart:\n{logs}");
    verify("postgres fast + immediate restarts", &recs, &written, &source, &daemon);
    assert_eq!(daemon.stop(), Some(0));
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_restarts_clean_and_killed_under_load() {
    restarts_clean_and_killed(OwnServer::start("mariadb", 33081), "mariadb", 5301).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql97_restarts_clean_and_killed_under_load() {
    restarts_clean_and_killed(OwnServer::start("mysql", 23381), "mysql 9.7", 5302).await;
}

async fn restarts_clean_and_killed(server: OwnServer, what: &str, server_id: u32) {
    let url = server.url();
    let admin_opts = mysql_async::Opts::from_url(&url).unwrap();
    let mut admin = mysql_async::Conn::new(admin_opts.clone()).await.unwrap();
    admin.query_drop("DROP DATABASE IF EXISTS restarts").await.unwrap();
    admin.query_drop("CREATE DATABASE restarts").await.unwrap();
    admin.query_drop(format!("USE restarts; {TABLE_DDL}")).await.unwrap();
    drop(admin);

    let dir = tempfile::tempdir().unwrap();
    let broker = Tansu::start();
    let cfg = dir.path().join("myrestart.toml");
    std::fs::write(
        &cfg,
        format!(
            "name = \"myrestart\"\n[source]\ntype = \"mysql\"\nurl = \"{url}\"\ntables = [\"restarts.sp\"]\nserver_id = {server_id}\n{}\n[checkpoint]\npath = \"{}\"\ninterval_ms = 200\n",
            kafka_sink(&broker.bootstrap),
            dir.path().join("myrestart-state").display()
        ),
    )
    .unwrap();
    let daemon = Daemon::start(&cfg);
    assert!(wait_until(Duration::from_secs(30), || daemon.logs().contains("streaming binlog")), "{}", daemon.logs());

    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, opts) = (stop.clone(), admin_opts.clone());
        tokio::spawn(async move {
            let mut w = Written::default();
            let (mut rng, mut next_id) = (Rng(11), 1i64);
            let mut conn: Option<mysql_async::Conn> = None;
            while !stop.load(Ordering::Relaxed) {
                if conn.is_none() {
                    let opts = mysql_async::OptsBuilder::from_opts(opts.clone()).db_name(Some("restarts"));
                    match mysql_async::Conn::new(opts).await {
                        Ok(c) => conn = Some(c),
                        Err(_) => {
                            tokio::time::sleep(Duration::from_millis(200)).await;
                            continue;
                        }
                    }
                }
                let Some(c) = conn.as_mut() else { continue };
                let (ids, stmts) = transaction(&mut next_id, &mut rng);
                let committed = c.query_drop(format!("BEGIN; {}; COMMIT", stmts.join("; "))).await.is_ok();
                w.record(ids, committed);
                if !committed {
                    conn = None;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            w
        })
    };
    let written = restart_under_load(&server, stop, writer).await;

    let mut c = mysql_async::Conn::new(admin_opts).await.unwrap();
    let (target, done) = gtid_target(&mut c).await;
    wait_for_checkpoint(dir.path(), "myrestart", &daemon, Duration::from_secs(120), |cp| {
        done(cp["position"]["gtid"].as_str().unwrap_or("")) >= done(&target)
    });
    let rows: Vec<(i64, Option<String>, Option<i32>)> = c.query("SELECT id, v, n FROM restarts.sp").await.unwrap();
    let source: BTreeMap<i64, Value> = rows.iter().map(|(id, v, n)| (*id, row_json(*id, v.as_deref(), *n))).collect();
    let recs = read_topics(&broker.bootstrap, &["myrestart.restarts.sp"], written.committed_ids.len(), 120);
    let logs = daemon.logs();
    assert!(logs.matches("source session ended").count() >= 4, "one session end per restart:\n{logs}");
    verify(&format!("{what} clean + SIGKILL restarts"), &recs, &written, &source, &daemon);
    assert_eq!(daemon.stop(), Some(0));
}
