//! Transaction metadata (`[sink] transaction_metadata = true`) against the real Apache Kafka 2.3
//! broker and PostgreSQL: a bank whose 40 accounts always add up to the same total, and
//! transfers of 2-3 updates (some with an insert into a second table), from a seeded random
//! workload. The reference consumer (examples/txn_consumer.py) reads the END records and applies
//! each source transaction atomically at its END. It must find, for every transaction:
//! every record readable at the moment END is read, at the offsets END names; records adding up
//! to END's `event_count` and `data_collections`; `total_order` running 1..n; the total intact
//! after every applied transaction; and at the end a replica equal to the tables. The
//! at-least-once run is SIGKILLed and restarted along the way: records and ENDs may repeat,
//! and must never disagree.

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::{json, Value};
use support::kafka::RealKafka;
use support::*;

const ACCOUNTS: i64 = 40;
const BALANCE: i64 = 1000;
const TRANSFERS: usize = 420;

/// The connector file: both tables, no snapshot (the accounts arrive in one streamed
/// transaction, so the total holds from the first END on), transaction metadata on.
fn config(
    dir: &Path,
    name: &str,
    url: &str,
    bootstrap: &str,
    sink_extra: &str,
    exactly_once: bool,
) -> std::path::PathBuf {
    let checkpoint = if exactly_once {
        format!("[checkpoint]\nstore = \"kafka\"\npath = \"{}\"\n", dir.join("unused").display())
    } else {
        format!("[checkpoint]\npath = \"{}\"\ninterval_ms = 100\n", dir.join("state").display())
    };
    let delivery = if exactly_once { "delivery = \"exactly-once\"\n" } else { "" };
    let text = format!(
        "name = \"{name}\"\n[source]\ntype = \"postgres\"\nurl = \"{url}\"\n\
         tables = [\"public.accounts\", \"public.transfers\"]\nsnapshot = \"never\"\n\
         [sink]\ntype = \"kafka\"\nbrokers = \"{bootstrap}\"\ntransaction_metadata = true\n{delivery}{sink_extra}\n{checkpoint}"
    );
    let path = dir.join(format!("{name}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// One transfer: `amount` from one account to one or two others, perhaps with a ledger row.
fn transfer(rng: &mut Rng) -> String {
    let pick = |rng: &mut Rng| rng.range(1, ACCOUNTS as u64 + 1);
    let (from, to) = (pick(rng), pick(rng));
    let amount = rng.range(1, 50);
    let mut sql = format!(
        "BEGIN; UPDATE accounts SET balance = balance - {amount} WHERE id = {from}; \
         UPDATE accounts SET balance = balance + {amount} WHERE id = {to};"
    );
    if rng.range(0, 3) == 0 {
        // A third update: half of the amount moves on to another account.
        let (third, half) = (pick(rng), amount / 2);
        sql.push_str(&format!(
            " UPDATE accounts SET balance = balance - {half} WHERE id = {to}; \
             UPDATE accounts SET balance = balance + {half} WHERE id = {third};"
        ));
    }
    if rng.range(0, 3) == 0 {
        sql.push_str(&format!(" INSERT INTO transfers (src, dst, amount) VALUES ({from}, {to}, {amount});"));
    }
    if rng.range(0, 10) == 0 {
        sql.push_str(" DELETE FROM transfers WHERE id = (SELECT min(id) FROM transfers);");
    }
    sql.push_str(" COMMIT;");
    sql
}

/// The source tables as the consumer's replica keys them: topic -> key JSON -> row.
async fn source_state(c: &tokio_postgres::Client, name: &str) -> BTreeMap<String, BTreeMap<String, Value>> {
    let mut state = BTreeMap::new();
    let accounts = c.query("SELECT id, balance FROM accounts", &[]).await.unwrap();
    let rows = accounts
        .iter()
        .map(|r| {
            let id: i32 = r.get(0);
            (json!({"id": id}).to_string(), json!({"id": id, "balance": r.get::<_, i64>(1)}))
        })
        .collect();
    state.insert(format!("{name}.public.accounts"), rows);
    let transfers = c.query("SELECT id, src, dst, amount FROM transfers", &[]).await.unwrap();
    let rows: BTreeMap<String, Value> = transfers
        .iter()
        .map(|r| {
            let id: i32 = r.get(0);
            let row =
                json!({"id": id, "src": r.get::<_, i32>(1), "dst": r.get::<_, i32>(2), "amount": r.get::<_, i64>(3)});
            (json!({"id": id}).to_string(), row)
        })
        .collect();
    if !rows.is_empty() {
        state.insert(format!("{name}.public.transfers"), rows);
    }
    state
}

/// Runs the bank; `kills` SIGKILLs of cdcd land while the transfers run.
async fn bank(base: &str, sink_extra: &str, exactly_once: bool, kills: usize) {
    let mut rng = Rng::from_env_or_clock();
    let name = format!("{base}{}", rng.next() % 1_000_000);
    let kafka = RealKafka::get();
    kafka.create_topic_with(&format!("{name}.public.accounts"), 3, &[]);
    kafka.create_topic_with(&format!("{name}.public.transfers"), 2, &[]);
    kafka.create_topic_with(&format!("{name}.transaction"), 1, &[]);
    let db = TestDb::create(&name).await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint NOT NULL);
         CREATE TABLE transfers (id serial PRIMARY KEY, src int NOT NULL, dst int NOT NULL, amount bigint NOT NULL);",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), &name, &db.url, &kafka.bootstrap, sink_extra, exactly_once);
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
        &format!("{name}.public.accounts:balance={}", ACCOUNTS * BALANCE),
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
    c.batch_execute(&format!("INSERT INTO accounts SELECT g, {BALANCE} FROM generate_series(1, {ACCOUNTS}) g"))
        .await
        .unwrap();
    let kill_at: Vec<usize> = (0..kills).map(|_| rng.range(20, TRANSFERS as u64 - 20) as usize).collect();
    for i in 0..TRANSFERS {
        c.batch_execute(&transfer(&mut rng)).await.unwrap();
        if kill_at.contains(&i) {
            daemon.kill9();
            daemon = Daemon::start(&cfg);
            let streaming = wait_until(Duration::from_secs(60), || daemon.logs().contains("streaming"));
            assert!(streaming, "cdcd did not resume; log:\n{}", daemon.logs());
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let expected = source_state(&c, &name).await;
    let out = tokio::task::block_in_place(|| consumer.wait_with_output()).expect("wait for examples/txn_consumer.py");
    assert!(out.status.success(), "consumer failed: {}", String::from_utf8_lossy(&out.stderr));

    let summary: Value = serde_json::from_slice(&out.stdout).expect("consumer summary");
    let log = daemon.logs();
    let show = |key: &str| format!("{key}: {}\ncdcd log:\n{log}", summary[key]);
    assert_eq!(summary["applied"], TRANSFERS + 1, "{}", show("applied"));
    for key in ["not_readable_at_end", "mismatches", "order_errors", "sum_errors"] {
        assert_eq!(summary[key], json!([]), "{}", show(key));
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
}

#[tokio::test(flavor = "multi_thread")]
async fn bank_transfers_apply_atomically_at_end_friendly_at_least_once_with_kills() {
    bank("txbank_alo", "", false, 3).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn bank_transfers_apply_atomically_at_end_debezium_schemas_exactly_once() {
    bank("txbank_eos", "encoding = \"debezium\"\n[sink.debezium]\nschemas_enable = true\n", true, 0).await;
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

/// The transactions in END order, each with its changes in `total_order`, grouped by the xid
/// of `transaction.id` (Debezium's PostgreSQL ids differ between BEGIN, changes and END; the
/// xid does not). Transactions with no change (Debezium writes those) are left out.
fn transactions(records: &[(String, Option<Value>)], txn_topic: &str) -> Vec<(String, Seen)> {
    let xid = |id: &str| id.split(':').next().unwrap_or_default().to_string();
    let mut events: BTreeMap<String, Vec<(String, String, i64, i64)>> = BTreeMap::new();
    for (topic, value) in records.iter().filter(|(t, _)| t != txn_topic) {
        let Some(v) = value.as_ref().map(unwrap_payload) else { continue };
        let Some(block) = v.get("transaction").filter(|b| !b.is_null()) else {
            assert_eq!(v["op"], "r", "{topic}: a streamed change without its transaction block: {v}");
            continue;
        };
        let s = &v["source"];
        events.entry(xid(block["id"].as_str().unwrap())).or_default().push((
            format!("{}.{}", s["schema"].as_str().unwrap(), s["table"].as_str().unwrap()),
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
        let mut evs = events.remove(&xid(&id)).unwrap_or_default();
        evs.sort_by_key(|e| e.2);
        out.push((id, Seen { event_count: v["event_count"].as_i64().unwrap(), collections, events: evs }));
    }
    out
}

/// The same workload as tests/debezium/capture_txn_metadata.py gave real Debezium 3.6.3
/// (`provide.transaction.metadata`, JSON with schemas): the same transactions with the same
/// counts, tables and orders; the same key and value schemas (cdcd's value schema adds
/// `last_offsets`); snapshot reads without a block; one id in BEGIN, changes and END, made of
/// the xid the changes' `source.txId` carries; `ts_ms` the commit time, as Debezium's.
#[tokio::test(flavor = "multi_thread")]
async fn postgres_transaction_metadata_equals_debeziums_for_the_same_workload() {
    let fixture: Vec<Value> =
        serde_json::from_str(include_str!("debezium/txn-postgres-3.6.3-schemas.json")).expect("fixture");
    let dbz: Vec<(String, Option<Value>)> = fixture
        .iter()
        .map(|r| {
            let value = r["value"].as_str().map(|v| serde_json::from_str(v).unwrap());
            (r["topic"].as_str().unwrap().replace("dbz.", "txdbz."), value)
        })
        .collect();
    let db = TestDb::create("txdbz").await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE accounts (id int PRIMARY KEY, balance bigint);
         CREATE TABLE transfers (id int PRIMARY KEY, amount bigint);
         CREATE TABLE other (id int PRIMARY KEY);
         INSERT INTO accounts VALUES (1,100),(2,200),(3,300),(4,400);",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    // One partition for the transaction topic, as docs/transactions.md asks: ENDs in commit order.
    let broker = Broker::with_topics(&[("txdbz.transaction", 1)]);
    let sink = format!(
        "{}transaction_metadata = true\nencoding = \"debezium\"\n[sink.debezium]\nschemas_enable = true\n",
        kafka_sink(&broker.bootstrap)
    );
    let cfg = write_config(dir.path(), "txdbz", &db.url, "[\"public.accounts\", \"public.transfers\"]", &sink, "");
    let daemon = Daemon::start(&cfg);
    let topics = ["txdbz.transaction", "txdbz.public.accounts", "txdbz.public.transfers"];
    assert_eq!(read_topics(&broker.bootstrap, &topics[1..2], 4, 30).len(), 4, "snapshot; log:\n{}", daemon.logs());
    let workload = include_str!("debezium/txn_workload.sql");
    for sql in workload.lines().filter(|l| !l.is_empty() && !l.starts_with("--")) {
        c.batch_execute(sql).await.unwrap();
    }
    // Snapshot 4 + changes 8 + a tombstone + BEGIN and END of 5 transactions.
    let recs = read_topics(&broker.bootstrap, &topics, 23, 60);
    let ours: Vec<(String, Option<Value>)> = recs.iter().map(|r| (r.topic.clone(), r.value.clone())).collect();
    daemon.stop();

    let (want, got) = (transactions(&dbz, "txdbz.transaction"), transactions(&ours, "txdbz.transaction"));
    let strip = |t: Vec<(String, Seen)>| t.into_iter().map(|(_, s)| s).collect::<Vec<_>>();
    assert_eq!(got.len(), 5, "five transactions changed captured tables: {got:?}");
    for (id, _) in &got {
        let (xid, lsn) = id.split_once(':').expect("xid:lsn");
        assert!(xid.parse::<u32>().is_ok() && lsn.parse::<u64>().is_ok(), "id {id}");
    }
    assert_eq!(strip(got), strip(want), "cdcd's transactions differ from Debezium's");

    // One id per transaction, in BEGIN, the changes and END, with the xid of source.txId, and
    // END's ts_ms the changes' source.ts_ms.
    let mut ids: BTreeMap<String, Vec<&str>> = BTreeMap::new();
    let mut times: BTreeMap<String, std::collections::BTreeSet<i64>> = BTreeMap::new();
    for r in &recs {
        let (Some(key), Some(v)) = (r.key.as_ref().map(unwrap_payload), r.value.as_ref().map(unwrap_payload)) else {
            continue;
        };
        if r.topic == topics[0] {
            assert_eq!(key["id"], v["id"]);
            ids.entry(v["id"].as_str().unwrap().to_string()).or_default().push(if v["status"] == "END" {
                "END"
            } else {
                "BEGIN"
            });
            times.entry(v["id"].as_str().unwrap().to_string()).or_default().insert(v["ts_ms"].as_i64().unwrap());
        } else if let Some(id) = v["transaction"]["id"].as_str() {
            assert_eq!(id.split(':').next().unwrap(), v["source"]["txId"].to_string(), "{v}");
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

    // Schemas: the key's is Debezium's; the value's is Debezium's plus `last_offsets`; the
    // envelope's `transaction` field is Debezium's.
    let schema_of = |records: &[Value], topic: &str, field: &str| -> Value {
        let r = records.iter().find(|r| r["topic"] == topic).expect(topic);
        serde_json::from_str::<Value>(r[field].as_str().unwrap()).unwrap()["schema"].clone()
    };
    let ours_raw: Vec<Value> = recs
        .iter()
        .map(|r| json!({"topic": r.topic.replace("txdbz.", "dbz."), "key": r.key.as_ref().map(|k| k.to_string()), "value": r.value.as_ref().map(|v| v.to_string())}))
        .collect();
    assert_eq!(schema_of(&ours_raw, "dbz.transaction", "key"), schema_of(&fixture, "dbz.transaction", "key"));
    let mut value_schema = schema_of(&ours_raw, "dbz.transaction", "value");
    let fields = value_schema["fields"].as_array_mut().unwrap();
    assert_eq!(fields.pop().map(|f| f["field"].clone()), Some(json!("last_offsets")));
    assert_eq!(value_schema, schema_of(&fixture, "dbz.transaction", "value"));
    let block = |records: &[Value]| {
        schema_of(records, "dbz.public.transfers", "value")["fields"]
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["field"] == "transaction")
            .cloned()
    };
    assert_eq!(block(&ours_raw), block(&fixture));
}
