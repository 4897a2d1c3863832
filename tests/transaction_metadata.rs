//! Transaction metadata (`[sink] transaction_metadata = true`) against the real Apache Kafka 2.3
//! broker and PostgreSQL: a bank whose 40 accounts always add up to the same total, and
//! transfers of 2-3 updates (some with an insert into a second table), from a seeded random
//! workload. The reference consumer (examples/txn_consumer.py) reads the END records and applies
//! each source transaction atomically at its END. It must find, for every transaction:
//! every record at the offsets END names (readable at the moment END is read, at-least-once;
//! see docs/transactions.md for exactly-once's commit markers); records adding up
//! to END's `event_count` and `data_collections`; `total_order` running 1..n; the total intact
//! after every applied transaction; and at the end a replica equal to the tables. The
//! at-least-once run is SIGKILLed and restarted along the way: records and ENDs may repeat,
//! and must never disagree.

mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::kafka::RealKafka;
use support::*;

const ACCOUNTS: i64 = 40;
const BALANCE: i64 = 1000;
const TRANSFERS: usize = 420;

/// Where the bank lives.
enum Bank {
    Postgres(TestDb),
    /// A MariaDB or MySQL 9.7 server's URL, the database, and cdcd's replica id there.
    Mysql {
        url: String,
        db: String,
        server_id: u32,
    },
}

/// A connection to the bank.
enum Conn {
    Postgres(tokio_postgres::Client),
    Mysql(mysql_async::Conn),
}

impl Bank {
    async fn create(&self) -> Conn {
        let transfers_id = match self {
            Bank::Postgres(_) => "serial PRIMARY KEY",
            Bank::Mysql { .. } => "int AUTO_INCREMENT PRIMARY KEY",
        };
        let ddl = [
            "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL)".to_string(),
            format!("CREATE TABLE transfers (id {transfers_id}, src int NOT NULL, dst int NOT NULL, amount bigint NOT NULL)"),
        ];
        let mut c = match self {
            Bank::Postgres(db) => Conn::Postgres(db.client().await),
            Bank::Mysql { url, db, .. } => Conn::Mysql(mysql_db_at(url, db).await),
        };
        for stmt in ddl {
            c.run(&stmt).await;
        }
        c
    }

    /// The `[source]` table's body: both tables, no snapshot (the accounts arrive in one
    /// streamed transaction, so the total holds from the first END on).
    fn source(&self) -> String {
        match self {
            Bank::Postgres(db) => format!(
                "type = \"postgres\"\nurl = \"{}\"\ntables = [\"public.accounts\", \"public.transfers\"]\nsnapshot = \"never\"\n",
                db.url
            ),
            Bank::Mysql { url, db, server_id } => format!(
                "type = \"mysql\"\nurl = \"{url}\"\ntables = [\"{db}.accounts\", \"{db}.transfers\"]\nserver_id = {server_id}\nsnapshot = \"never\"\n"
            ),
        }
    }

    /// A table's topic under `prefix`.
    fn topic(&self, prefix: &str, table: &str) -> String {
        match self {
            Bank::Postgres(_) => format!("{prefix}.public.{table}"),
            Bank::Mysql { db, .. } => format!("{prefix}.{db}.{table}"),
        }
    }
}

impl Conn {
    async fn run(&mut self, sql: &str) {
        use mysql_async::prelude::Queryable;
        match self {
            Conn::Postgres(c) => c.batch_execute(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")),
            Conn::Mysql(c) => c.query_drop(sql).await.unwrap_or_else(|e| panic!("{sql}: {e}")),
        }
    }

    /// The tables' rows: (accounts id -> balance, transfers id -> (src, dst, amount)).
    async fn rows(&mut self) -> (Vec<(i32, i64)>, Vec<(i32, i32, i32, i64)>) {
        use mysql_async::prelude::Queryable;
        let (accounts, transfers) = ("SELECT id, balance FROM accounts", "SELECT id, src, dst, amount FROM transfers");
        match self {
            Conn::Postgres(c) => (
                c.query(accounts, &[]).await.unwrap().iter().map(|r| (r.get(0), r.get(1))).collect(),
                c.query(transfers, &[])
                    .await
                    .unwrap()
                    .iter()
                    .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
                    .collect(),
            ),
            Conn::Mysql(c) => (c.query(accounts).await.unwrap(), c.query(transfers).await.unwrap()),
        }
    }

    /// One transfer: an amount from one account to one or two others, sometimes with a row
    /// inserted into (or the oldest deleted from) the second table.
    async fn transfer(&mut self, rng: &mut Rng) {
        let pick = |rng: &mut Rng| rng.range(1, ACCOUNTS as u64 + 1);
        let (from, to) = (pick(rng), pick(rng));
        let amount = rng.range(1, 50);
        let mut stmts = vec![
            format!("UPDATE accounts SET balance = balance - {amount} WHERE id = {from}"),
            format!("UPDATE accounts SET balance = balance + {amount} WHERE id = {to}"),
        ];
        if rng.range(0, 3) == 0 {
            // A third update: half of the amount moves on to another account.
            let (third, half) = (pick(rng), amount / 2);
            stmts.push(format!("UPDATE accounts SET balance = balance - {half} WHERE id = {to}"));
            stmts.push(format!("UPDATE accounts SET balance = balance + {half} WHERE id = {third}"));
        }
        if rng.range(0, 3) == 0 {
            stmts.push(format!("INSERT INTO transfers (src, dst, amount) VALUES ({from}, {to}, {amount})"));
        }
        if rng.range(0, 10) == 0 {
            stmts.push(match self {
                Conn::Postgres(_) => "DELETE FROM transfers WHERE id = (SELECT min(id) FROM transfers)".into(),
                Conn::Mysql(_) => "DELETE FROM transfers ORDER BY id LIMIT 1".into(),
            });
        }
        self.run("BEGIN").await;
        for stmt in &stmts {
            self.run(stmt).await;
        }
        self.run("COMMIT").await;
    }
}

/// The connector file; exactly-once keeps its checkpoint in Kafka.
fn config(dir: &Path, name: &str, bank: &Bank, bootstrap: &str, sink_extra: &str, exactly_once: bool) -> PathBuf {
    let checkpoint = if exactly_once {
        format!("[checkpoint]\nstore = \"kafka\"\npath = \"{}\"\n", dir.join("unused").display())
    } else {
        format!("[checkpoint]\npath = \"{}\"\ninterval_ms = 100\n", dir.join("state").display())
    };
    let delivery = if exactly_once { "delivery = \"exactly-once\"\n" } else { "" };
    let text = format!(
        "name = \"{name}\"\n[source]\n{}\
         [sink]\ntype = \"kafka\"\nbrokers = \"{bootstrap}\"\ntransaction_metadata = true\n{delivery}{sink_extra}\n{checkpoint}",
        bank.source()
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// The tables as the consumer's replica keys them: topic -> key JSON -> row.
async fn source_state(c: &mut Conn, bank: &Bank, name: &str) -> BTreeMap<String, BTreeMap<String, Value>> {
    let (accounts, transfers) = c.rows().await;
    let key = |id: i32| json!({ "id": id }).to_string();
    let mut state = BTreeMap::new();
    state.insert(
        bank.topic(name, "accounts"),
        accounts.iter().map(|(id, b)| (key(*id), json!({"id": id, "balance": b}))).collect(),
    );
    if !transfers.is_empty() {
        let rows = transfers
            .iter()
            .map(|(id, s, d, a)| (key(*id), json!({"id": id, "src": s, "dst": d, "amount": a})))
            .collect();
        state.insert(bank.topic(name, "transfers"), rows);
    }
    state
}

/// Runs the bank; `kills` SIGKILLs of cdcd land while the transfers run.
async fn bank(base: &str, bank: impl FnOnce(&str) -> Bank, sink_extra: &str, exactly_once: bool, kills: usize) {
    let mut rng = Rng::from_env_or_clock();
    let name = format!("{base}{}", rng.next() % 1_000_000);
    let bank = bank(&name);
    let kafka = RealKafka::get();
    kafka.create_topic_with(&bank.topic(&name, "accounts"), 3, &[]);
    kafka.create_topic_with(&bank.topic(&name, "transfers"), 2, &[]);
    kafka.create_topic_with(&format!("{name}.transaction"), 1, &[]);
    let mut c = bank.create().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &name, &bank, &kafka.bootstrap, sink_extra, exactly_once);
    let mut daemon = Daemon::start(&cfg);
    assert!(
        wait_until(Duration::from_secs(30), || daemon.logs().contains("streaming")),
        "cdcd did not start streaming; log:\n{}",
        daemon.logs()
    );
    let mut cmd = Command::new("python3");
    cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/txn_consumer.py")).args([
        "--bootstrap",
        &kafka.bootstrap,
        "--prefix",
        &name,
        "--ends",
        &(TRANSFERS + 1).to_string(),
        "--idle",
        "60",
        "--check-sum",
        &format!("{}:balance={}", bank.topic(&name, "accounts"), ACCOUNTS * BALANCE),
    ]);
    if exactly_once {
        cmd.arg("--read-committed");
    }
    // Running while the transfers are written: each END is read as soon as it is readable.
    let consumer = cmd
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run examples/txn_consumer.py");
    let accounts: Vec<String> = (1..=ACCOUNTS).map(|i| format!("({i}, {BALANCE})")).collect();
    c.run(&format!("INSERT INTO accounts VALUES {}", accounts.join(", "))).await;
    let kill_at: Vec<usize> = (0..kills).map(|_| rng.range(20, TRANSFERS as u64 - 20) as usize).collect();
    for i in 0..TRANSFERS {
        c.transfer(&mut rng).await;
        if kill_at.contains(&i) {
            daemon.kill9();
            daemon = Daemon::start(&cfg);
            let streaming = wait_until(Duration::from_secs(60), || daemon.logs().contains("streaming"));
            assert!(streaming, "cdcd did not resume; log:\n{}", daemon.logs());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let expected = source_state(&mut c, &bank, &name).await;
    let out = tokio::task::block_in_place(|| consumer.wait_with_output()).expect("wait for examples/txn_consumer.py");
    assert!(out.status.success(), "consumer failed: {}", String::from_utf8_lossy(&out.stderr));

    let summary: Value = serde_json::from_slice(&out.stdout).expect("consumer summary");
    let log = daemon.logs();
    let show = |key: &str| format!("{key}: {}\ncdcd log:\n{log}", summary[key]);
    assert_eq!(summary["applied"], TRANSFERS + 1, "{}", show("applied"));
    for key in ["mismatches", "order_errors", "sum_errors"] {
        assert_eq!(summary[key], json!([]), "{}", show(key));
    }
    // At-least-once: every record END names is below the high watermark when END is read.
    // Exactly-once: Kafka writes a commit's markers partition by partition after the commit
    // returns, so a read_committed reader can meet END a moment before the records' markers;
    // they must then be readable (the consumer waits for them, and the checks above passed).
    let early = summary["not_readable_at_end"].as_array().map_or(0, Vec::len);
    if exactly_once {
        eprintln!("{name}: {early} partitions not yet readable at END (commit markers still being written)");
    } else {
        assert_eq!(early, 0, "{}", show("not_readable_at_end"));
    }
    assert_eq!(summary["sums_checked"], TRANSFERS + 1);
    let state: BTreeMap<String, BTreeMap<String, Value>> = serde_json::from_value(summary["state"].clone()).unwrap();
    assert_eq!(state, expected, "the replica differs from the tables");
    if exactly_once {
        assert_eq!(summary["repeated_ends"], 0, "exactly-once repeated an END");
    }
    eprintln!(
        "{name}: {} transactions, {} events applied, {} ENDs repeated",
        summary["applied"], summary["events"], summary["repeated_ends"]
    );
    daemon.stop();
    if let Bank::Postgres(_) = bank {
        // The shared server's slots are few: this connector's goes with the test.
        let admin = connect(&format!("{}/postgres", pg_url())).await;
        let slot = format!("cdcd_{name}");
        let drop = "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = $1";
        admin.execute(drop, &[&slot]).await.expect("drop the test's slot");
    }
}

async fn postgres(name: &str) -> Bank {
    Bank::Postgres(TestDb::create(name).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn bank_transfers_apply_atomically_at_end_friendly_at_least_once_with_kills() {
    let db = postgres("txbank_alo").await;
    bank("txbank_alo", |_| db, "", false, 3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bank_transfers_apply_atomically_at_end_debezium_schemas_exactly_once() {
    let db = postgres("txbank_eos").await;
    let debezium = "encoding = \"debezium\"\n[sink.debezium]\nschemas_enable = true\n";
    bank("txbank_eos", |_| db, debezium, true, 0).await;
}

/// MariaDB 10.11 (GTID `domain-server-seq` ids), at-least-once with kills.
#[tokio::test(flavor = "multi_thread")]
async fn mariadb_bank_transfers_apply_atomically_at_end_with_kills() {
    let mysql = |name: &str| Bank::Mysql { url: mysql_url(), db: name.to_string(), server_id: 7301 };
    bank("txbank_maria", mysql, "", false, 2).await;
}

/// MySQL 9.7 (GTID `uuid:n` ids), exactly-once, Debezium's JSON without schemas.
#[tokio::test(flavor = "multi_thread")]
async fn mysql97_bank_transfers_apply_atomically_at_end_exactly_once() {
    let mysql = |name: &str| Bank::Mysql { url: mysql97_url(), db: name.to_string(), server_id: 7302 };
    let debezium = "encoding = \"debezium\"\n[sink.debezium]\nschemas_enable = false\n";
    bank("txbank_my97", mysql, debezium, true, 0).await;
}

/// One source transaction as a reader sees it: END's counts, and per change its table, op and
/// orders (ids differ between runs; they are checked on their own).
#[derive(Debug, PartialEq)]
struct Seen {
    event_count: i64,
    collections: BTreeMap<String, i64>,
    events: Vec<(String, String, i64, i64)>,
}

fn unwrap_payload(v: &Value) -> Value {
    v.get("payload").cloned().unwrap_or_else(|| v.clone())
}

/// The transactions in END order, each with its changes in `total_order`, grouped by
/// `group(transaction.id)` (Debezium's PostgreSQL ids differ between BEGIN, changes and END;
/// their xid does not). A change's table is `schema.table` (PostgreSQL) or `database.table`
/// (MySQL), as END's `data_collections` names it. Transactions with no change (Debezium writes
/// those) are left out.
fn transactions(
    records: &[(String, Option<Value>)],
    txn_topic: &str,
    group: fn(&str) -> String,
) -> Vec<(String, Seen)> {
    let mut events: BTreeMap<String, Vec<(String, String, i64, i64)>> = BTreeMap::new();
    for (topic, value) in records.iter().filter(|(t, _)| t != txn_topic) {
        let Some(v) = value.as_ref().map(unwrap_payload) else { continue };
        let Some(block) = v.get("transaction").filter(|b| !b.is_null()) else {
            assert_eq!(v["op"], "r", "{topic}: a streamed change without its transaction block: {v}");
            continue;
        };
        let s = &v["source"];
        let schema = s.get("schema").unwrap_or(&s["db"]).as_str().unwrap();
        events.entry(group(block["id"].as_str().unwrap())).or_default().push((
            format!("{schema}.{}", s["table"].as_str().unwrap()),
            v["op"].as_str().unwrap().to_string(),
            block["total_order"].as_i64().unwrap(),
            block["data_collection_order"].as_i64().unwrap(),
        ));
    }
    let mut out = Vec::new();
    for (_, value) in records.iter().filter(|(t, _)| t == txn_topic) {
        let Some(v) = value.as_ref().map(unwrap_payload) else { continue };
        if v["status"] != "END" || v["event_count"].as_i64() == Some(0) {
            continue;
        }
        let collections = v["data_collections"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| (c["data_collection"].as_str().unwrap().to_string(), c["event_count"].as_i64().unwrap()))
            .collect();
        let id = v["id"].as_str().unwrap().to_string();
        let mut evs = events.remove(&group(&id)).unwrap_or_default();
        evs.sort_by_key(|e| e.2);
        out.push((id, Seen { event_count: v["event_count"].as_i64().unwrap(), collections, events: evs }));
    }
    out
}

/// A source of the comparison with Debezium: where tests/debezium/txn_workload.sql runs, and how
/// its transaction ids are told apart and checked.
enum Compared {
    Postgres(TestDb),
    /// Oracle MySQL 9.7 (GTIDs on, as the capture's server) and the database.
    Mysql97(String),
}

impl Compared {
    async fn connect(&self) -> Conn {
        match self {
            Compared::Postgres(db) => Conn::Postgres(db.client().await),
            Compared::Mysql97(db) => Conn::Mysql(mysql_db_at(&mysql97_url(), db).await),
        }
    }

    fn config(&self, dir: &Path, name: &str, sink: &str) -> PathBuf {
        match self {
            Compared::Postgres(db) => {
                write_config(dir, name, &db.url, "[\"public.accounts\", \"public.transfers\"]", sink, "")
            }
            Compared::Mysql97(db) => write_mysql_config_at(
                dir,
                name,
                &mysql97_url(),
                &format!("[\"{db}.accounts\", \"{db}.transfers\"]"),
                7311,
                sink,
                "",
            ),
        }
    }

    /// `<prefix>.<schema or database>.`, and the same in the capture (prefix and database `dbz`).
    fn topic_stem(&self, prefix: &str) -> (String, &'static str) {
        match self {
            Compared::Postgres(_) => (format!("{prefix}.public."), "dbz.public."),
            Compared::Mysql97(db) => (format!("{prefix}.{db}."), "dbz.dbz."),
        }
    }

    /// A record of the capture as this run names things: its topic under `prefix`, and on MySQL
    /// the database in the value (`source.db`, `data_collection`) ours.
    fn renamed_capture(&self, prefix: &str, record: &Value) -> (String, Option<Value>) {
        let (stem, dbz_stem) = self.topic_stem(prefix);
        let topic = record["topic"].as_str().unwrap();
        let topic = match topic.strip_prefix(dbz_stem) {
            Some(table) => format!("{stem}{table}"),
            None => format!("{prefix}.{}", topic.strip_prefix("dbz.").expect("a capture topic")),
        };
        let value = record["value"].as_str().map(|v| match self {
            Compared::Postgres(_) => v.to_string(),
            Compared::Mysql97(db) => v
                .replace("\"data_collection\":\"dbz.", &format!("\"data_collection\":\"{db}."))
                .replace("\"db\":\"dbz\"", &format!("\"db\":\"{db}\"")),
        });
        (topic, value.map(|v| serde_json::from_str(&v).unwrap()))
    }

    /// What a transaction's id is grouped by: its xid on PostgreSQL, the whole GTID on MySQL.
    fn group(&self) -> fn(&str) -> String {
        match self {
            Compared::Postgres(_) => |id| id.split(':').next().unwrap_or_default().to_string(),
            Compared::Mysql97(_) => |id| id.to_string(),
        }
    }

    /// A change's id is the transaction's as the source names it: PostgreSQL's `xid:lsn` with
    /// the `source.txId` xid; MySQL's `source.gtid`.
    fn check_id(&self, id: &str, source: &Value) {
        match self {
            Compared::Postgres(_) => {
                let (xid, lsn) = id.split_once(':').expect("xid:lsn");
                assert!(xid.parse::<u32>().is_ok() && lsn.parse::<u64>().is_ok(), "id {id}");
                assert_eq!(xid, source["txId"].to_string(), "{source}");
            }
            Compared::Mysql97(_) => assert_eq!(Some(id), source["gtid"].as_str(), "{source}"),
        }
    }
}

/// Where the comparison's records go and how they are read back.
enum Wire {
    /// Debezium's JSON with schemas, on the mock cluster.
    Json(Broker),
    /// Avro through Karapace, on tansu, read by confluent-kafka's AvroDeserializer.
    Avro(Tansu, support::registry::SchemaRegistry),
}

impl Wire {
    fn json(prefix: &str) -> Wire {
        // One partition for the transaction topic, as docs/transactions.md asks.
        Wire::Json(Broker::with_topics(&[(&format!("{prefix}.transaction"), 1)]))
    }

    fn avro() -> Wire {
        let broker = Tansu::start();
        let registry = support::registry::SchemaRegistry::start(&broker.bootstrap);
        Wire::Avro(broker, registry)
    }

    fn sink(&self) -> String {
        match self {
            Wire::Json(b) => format!(
                "{}transaction_metadata = true\nencoding = \"debezium\"\n[sink.debezium]\nschemas_enable = true\n",
                kafka_sink(&b.bootstrap)
            ),
            Wire::Avro(b, r) => format!(
                "{}transaction_metadata = true\nformat = \"avro\"\n[sink.schema_registry]\nurl = \"{}\"\n",
                kafka_sink(&b.bootstrap),
                r.url
            ),
        }
    }

    fn read(&self, topics: &[&str], min: usize) -> Vec<Rec> {
        match self {
            Wire::Json(b) => read_topics(&b.bootstrap, topics, min, 60),
            Wire::Avro(b, r) => r.read_topics(&b.bootstrap, topics, min, 90),
        }
    }
}

/// Runs tests/debezium/txn_workload.sql, the workload tests/debezium/capture_txn_metadata.py
/// gave real Debezium 3.6.3 (`provide.transaction.metadata`), through cdcd, and checks it
/// against the capture `fixture`: the same transactions with the same counts, tables and
/// orders; snapshot reads without a block; one id in BEGIN, changes and END, named as the source
/// names the transaction; `ts_ms` the commit time, as Debezium's. Returns cdcd's records.
async fn compare_with_debezium(source: Compared, wire: &Wire, name: &str, fixture: &[Value]) -> Vec<Rec> {
    let mut c = source.connect().await;
    for ddl in [
        "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint)",
        "CREATE TABLE transfers (id int PRIMARY KEY, amount bigint)",
        "CREATE TABLE other (id int PRIMARY KEY)",
        "INSERT INTO accounts VALUES (1,100),(2,200),(3,300),(4,400)",
    ] {
        c.run(ddl).await;
    }
    let (stem, _) = source.topic_stem(name);
    let dbz: Vec<(String, Option<Value>)> = fixture.iter().map(|r| source.renamed_capture(name, r)).collect();
    let dir = tempfile::tempdir().unwrap();
    let daemon = Daemon::start(&source.config(dir.path(), name, &wire.sink()));
    let (txn_topic, accounts, transfers) =
        (format!("{name}.transaction"), format!("{stem}accounts"), format!("{stem}transfers"));
    let topics = [txn_topic.as_str(), accounts.as_str(), transfers.as_str()];
    assert_eq!(wire.read(&topics[1..2], 4).len(), 4, "snapshot; log:\n{}", daemon.logs());
    let workload = include_str!("debezium/txn_workload.sql");
    for sql in workload.lines().filter(|l| !l.is_empty() && !l.starts_with("--")) {
        c.run(sql).await;
    }
    // Snapshot 4 + changes 8 + a tombstone + BEGIN and END of 5 transactions.
    let recs = wire.read(&topics, 23);
    let logs = daemon.logs();
    daemon.stop();
    let ours: Vec<(String, Option<Value>)> = recs.iter().map(|r| (r.topic.clone(), r.value.clone())).collect();

    let group = source.group();
    let (want, got) = (transactions(&dbz, &txn_topic, group), transactions(&ours, &txn_topic, group));
    let strip = |t: Vec<(String, Seen)>| t.into_iter().map(|(_, s)| s).collect::<Vec<_>>();
    assert_eq!(got.len(), 5, "five transactions changed captured tables: {got:?}\nlog:\n{logs}");
    assert_eq!(strip(got), strip(want), "cdcd's transactions differ from Debezium's");

    // One id per transaction, in BEGIN, the changes and END, and END's ts_ms the changes'
    // source.ts_ms.
    let mut ids: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut times: BTreeMap<String, std::collections::BTreeSet<i64>> = BTreeMap::new();
    for r in &recs {
        let (Some(key), Some(v)) = (r.key.as_ref().map(unwrap_payload), r.value.as_ref().map(unwrap_payload)) else {
            continue;
        };
        if r.topic == txn_topic {
            assert_eq!(key["id"], v["id"]);
            ids.entry(v["id"].as_str().unwrap().to_string()).or_default().push(if v["status"] == "END" {
                "END"
            } else {
                "BEGIN"
            });
            times.entry(v["id"].as_str().unwrap().to_string()).or_default().insert(v["ts_ms"].as_i64().unwrap());
        } else if let Some(id) = v["transaction"]["id"].as_str() {
            source.check_id(id, &v["source"]);
            ids.entry(id.to_string()).or_default().push("change");
            times.entry(id.to_string()).or_default().insert(v["source"]["ts_ms"].as_i64().unwrap());
        } else {
            assert_eq!(v["op"], "r", "only snapshot reads go without a block: {v}");
        }
    }
    assert!(times.values().all(|t| t.len() == 1), "BEGIN, END and source.ts_ms differ: {times:?}");
    assert_eq!(ids.len(), 5, "{ids:?}");
    for (id, seen) in &mut ids {
        seen.sort();
        seen.dedup();
        assert_eq!(seen, &["BEGIN", "END", "change"], "{id} is not one id in BEGIN, changes and END");
    }
    recs
}

fn fixture(text: &str) -> Vec<Value> {
    serde_json::from_str(text).expect("fixture")
}

/// With schemas, the key's schema is Debezium's; the value's is Debezium's plus `last_offsets`;
/// the envelope's `transaction` field is Debezium's.
fn schemas_equal_debeziums(recs: &[Rec], fixture: &[Value], name: &str, stem: &str, dbz_stem: &str) {
    let schema_of = |records: &[Value], topic: &str, field: &str| -> Value {
        let r = records.iter().find(|r| r["topic"] == topic).expect(topic);
        serde_json::from_str::<Value>(r[field].as_str().unwrap()).unwrap()["schema"].clone()
    };
    let ours: Vec<Value> = recs
        .iter()
        .map(|r| {
            let topic = match (r.topic.strip_prefix(stem), r.topic.strip_prefix(&format!("{name}."))) {
                (Some(table), _) => format!("{dbz_stem}{table}"),
                (None, Some(rest)) => format!("dbz.{rest}"),
                (None, None) => panic!("a topic of another connector: {}", r.topic),
            };
            json!({"topic": topic, "key": r.key.as_ref().map(|k| k.to_string()), "value": r.value.as_ref().map(|v| v.to_string())})
        })
        .collect();
    assert_eq!(schema_of(&ours, "dbz.transaction", "key"), schema_of(fixture, "dbz.transaction", "key"));
    let mut value_schema = schema_of(&ours, "dbz.transaction", "value");
    let fields = value_schema["fields"].as_array_mut().unwrap();
    assert_eq!(fields.pop().map(|f| f["field"].clone()), Some(json!("last_offsets")));
    assert_eq!(value_schema, schema_of(fixture, "dbz.transaction", "value"));
    let transfers = format!("{dbz_stem}transfers");
    let block = |records: &[Value]| {
        schema_of(records, &transfers, "value")["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == "transaction")
            .cloned()
    };
    assert_eq!(block(&ours), block(fixture));
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_transaction_metadata_equals_debeziums_for_the_same_workload() {
    let fixture = fixture(include_str!("debezium/txn-postgres-3.6.3-schemas.json"));
    let db = TestDb::create("txdbz").await;
    let recs = compare_with_debezium(Compared::Postgres(db), &Wire::json("txdbz"), "txdbz", &fixture).await;
    schemas_equal_debeziums(&recs, &fixture, "txdbz", "txdbz.public.", "dbz.public.");
}

/// The same against Oracle MySQL 9.7 with GTIDs on, as real Debezium's MySQL connector captured
/// it (it refuses MariaDB): ids are the GTIDs.
#[tokio::test(flavor = "multi_thread")]
async fn mysql97_transaction_metadata_equals_debeziums_for_the_same_workload() {
    let fixture = fixture(include_str!("debezium/txn-mysql97-3.6.3-schemas.json"));
    let db = "txdbz97";
    let recs = compare_with_debezium(Compared::Mysql97(db.into()), &Wire::json(db), db, &fixture).await;
    schemas_equal_debeziums(&recs, &fixture, db, "txdbz97.txdbz97.", "dbz.dbz.");
}

/// Avro (Karapace, read by an independent Avro reader with the registry's schemas): the same
/// transactions, BEGIN and END decoded with the values Debezium's JSON has, registered under
/// `<prefix>.transaction-key` / `-value` as Debezium's `TransactionMetadataKey` / `Value`.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_avro_transaction_metadata_equals_debeziums() {
    let fixture = fixture(include_str!("debezium/txn-postgres-3.6.3.json"));
    let db = TestDb::create("txavro").await;
    let wire = Wire::avro();
    let recs = compare_with_debezium(Compared::Postgres(db), &wire, "txavro", &fixture).await;
    let Wire::Avro(_, registry) = &wire else { unreachable!() };
    for (part, record) in [("key", "TransactionMetadataKey"), ("value", "TransactionMetadataValue")] {
        let (status, latest) = registry.get(&format!("/subjects/txavro.transaction-{part}/versions/latest"));
        assert_eq!(status, 200, "{latest}");
        let schema: Value = serde_json::from_str(latest["schema"].as_str().unwrap()).unwrap();
        assert_eq!(
            (schema["namespace"].as_str(), schema["name"].as_str()),
            (Some("io.debezium.connector.common"), Some(record))
        );
        let ids: std::collections::BTreeSet<_> = recs
            .iter()
            .filter(|r| r.topic == "txavro.transaction")
            .map(|r| if part == "key" { r.key_schema_id } else { r.value_schema_id })
            .collect();
        assert_eq!(ids.into_iter().collect::<Vec<_>>(), [latest["id"].as_u64().map(|i| i as u32)], "{part}");
    }
}
