//! The Debezium options that decide which changes become records, end to end against the real
//! PostgreSQL 15, MariaDB 10.11 and Oracle MySQL 9.7 of scripts/test.sh: `[events] skipped_operations`,
//! `tombstones_on_delete`, and `source.tables_exclude` beside the include patterns; and the
//! lines `cdcd check` prints for them. Records are read from the stdout sink, which shows every
//! topic the connector writes, so "nothing else was published" is checked, not assumed.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use mysql_async::prelude::*;
use serde_json::{json, Value};
use support::*;

const STDOUT_SINK: &str = "[sink]\ntype = \"stdout\"\n";

/// `cdcd run` with the stdout sink: records to one file, logs to another.
struct StdoutRun {
    child: Child,
    out: PathBuf,
    log: PathBuf,
}

impl StdoutRun {
    fn start(cfg: &Path) -> StdoutRun {
        StdoutRun::start_with_log_level(cfg, "info")
    }

    fn start_with_log_level(cfg: &Path, level: &str) -> StdoutRun {
        let out = cfg.with_extension("records");
        let log = cfg.with_extension("log");
        let child = Command::new(env!("CARGO_BIN_EXE_cdcd"))
            .args(["run", "--config"])
            .arg(cfg)
            .env("RUST_LOG", level)
            .stdout(std::fs::File::create(&out).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .stdin(Stdio::null())
            .spawn()
            .expect("start cdcd");
        StdoutRun { child, out, log }
    }

    /// Every record so far: `{"topic", "key", "value"}`.
    fn records(&self) -> Vec<Value> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        // The last line may be half written.
        text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()
    }

    fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for(&self, what: &str, f: impl Fn(&[Value]) -> bool) {
        let ok = wait_until(Duration::from_secs(60), || f(&self.records()));
        assert!(ok, "{what} did not arrive; records: {:#?}\nlog:\n{}", self.records(), self.logs());
    }

    /// SIGTERM and wait; the records then are all there are.
    fn stop(mut self) -> Vec<Value> {
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let status = self.child.wait().unwrap();
        assert_eq!(status.code(), Some(0), "log:\n{}", self.logs());
        self.records()
    }
}

impl Drop for StdoutRun {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn append(cfg: &Path, text: &str) {
    let mut all = std::fs::read_to_string(cfg).unwrap();
    all.push_str(text);
    std::fs::write(cfg, all).unwrap();
}

/// (op, id) of each record of `topic`, in order; a tombstone is ("tombstone", key id).
fn ops(recs: &[Value], topic: &str) -> Vec<(String, i64)> {
    recs.iter()
        .filter(|r| r["topic"] == topic)
        .map(|r| match r["value"]["op"].as_str() {
            Some(op) => {
                let row = if r["value"]["after"].is_null() { &r["value"]["before"] } else { &r["value"]["after"] };
                (op.to_string(), row["id"].as_i64().unwrap_or(-1))
            }
            None => ("tombstone".to_string(), r["key"]["id"].as_i64().unwrap_or(-1)),
        })
        .collect()
}

fn topics(recs: &[Value]) -> std::collections::BTreeSet<String> {
    recs.iter().filter_map(|r| r["topic"].as_str().map(String::from)).collect()
}

/// The ids of the snapshot reads (`r`) in the stdout sink's output `out`.
fn snapshot_ids(out: &str) -> std::collections::BTreeSet<i64> {
    out.lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|r| r["value"]["op"] == "r")
        .map(|r| r["value"]["after"]["id"].as_i64().unwrap())
        .collect()
}

fn pairs(list: &[(&str, i64)]) -> Vec<(String, i64)> {
    list.iter().map(|(op, id)| (op.to_string(), *id)).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_skipped_operations_no_tombstones_and_an_excluded_table() {
    let db = TestDb::create("ev_pg").await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE items (id int PRIMARY KEY, v text); INSERT INTO items VALUES (1, 'a'), (2, 'b');
         CREATE TABLE audit_log (id int PRIMARY KEY); INSERT INTO audit_log VALUES (1);",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "evpg",
        &db.url,
        r#"["public.*"]"#,
        STDOUT_SINK,
        r#"tables_exclude = ["public.audit_*"]"#,
    );
    append(&cfg, "[events]\nskipped_operations = [\"u\", \"t\"]\ntombstones_on_delete = false\n");

    let (code, out, err) = cdcd(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("events: skipped operations u,t; tombstones none"), "{out}");
    assert!(out.contains("snapshot = initial: without a checkpoint"), "{out}");
    assert!(out.contains(r#"1 table(s) match source.tables (tables_exclude ["public.audit_*"] left out)"#), "{out}");

    let run = StdoutRun::start(&cfg);
    run.wait_for("the snapshot", |r| r.len() >= 2);
    c.batch_execute(
        "INSERT INTO items VALUES (3, 'c');
         UPDATE items SET v = 'A' WHERE id = 1;
         DELETE FROM items WHERE id = 2;
         INSERT INTO audit_log VALUES (2);
         BEGIN; UPDATE items SET v = 'C' WHERE id = 3; INSERT INTO audit_log VALUES (3); COMMIT;
         TRUNCATE items;
         INSERT INTO items VALUES (4, 'd');",
    )
    .await
    .unwrap();
    run.wait_for("the last insert", |r| ops(r, "evpg.public.items").contains(&("c".into(), 4)));
    let recs = run.stop();
    assert_eq!(topics(&recs), ["evpg.public.items".to_string()].into(), "the excluded table was published: {recs:#?}");
    assert_eq!(
        ops(&recs, "evpg.public.items"),
        pairs(&[("r", 1), ("r", 2), ("c", 3), ("d", 2), ("c", 4)]),
        "no update, no truncate, no tombstone: {recs:#?}"
    );
    let published: Vec<String> = c
        .query("SELECT tablename::text FROM pg_publication_tables WHERE pubname = 'cdcd_evpg'", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(published, ["items"], "the excluded table is not in the publication");
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_skipped_deletes_and_an_excluded_table() {
    mysql_skipped_deletes_and_an_excluded_table(&mysql_url()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql97_skipped_deletes_and_an_excluded_table() {
    mysql_skipped_deletes_and_an_excluded_table(&mysql97_url()).await;
}

async fn mysql_skipped_deletes_and_an_excluded_table(url: &str) {
    let mut c = mysql_db_at(url, "ev_my").await;
    c.query_drop("CREATE TABLE items (id int PRIMARY KEY, v varchar(10))").await.unwrap();
    c.query_drop("INSERT INTO items VALUES (1, 'a'), (2, 'b')").await.unwrap();
    c.query_drop("CREATE TABLE skip_me (id int PRIMARY KEY)").await.unwrap();
    c.query_drop("INSERT INTO skip_me VALUES (1)").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_mysql_config_at(
        dir.path(),
        "evmy",
        url,
        r#"["ev_my.*"]"#,
        7311,
        STDOUT_SINK,
        r#"tables_exclude = ["ev_my.skip_*"]"#,
    );
    append(&cfg, "[events]\nskipped_operations = [\"d\"]\n");

    let (code, out, err) = cdcd(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("events: skipped operations d; tombstones after each delete"), "{out}");
    assert!(out.contains(r#"1 table(s) match source.tables (tables_exclude ["ev_my.skip_*"] left out)"#), "{out}");

    let run = StdoutRun::start(&cfg);
    run.wait_for("the snapshot", |r| r.len() >= 2);
    for q in [
        "UPDATE items SET v = 'A' WHERE id = 1",
        "DELETE FROM items WHERE id = 2",
        "INSERT INTO skip_me VALUES (2)",
        "START TRANSACTION",
        "DELETE FROM skip_me WHERE id = 1",
        "INSERT INTO items VALUES (3, 'c')",
        "COMMIT",
    ] {
        c.query_drop(q).await.unwrap();
    }
    run.wait_for("the last insert", |r| ops(r, "evmy.ev_my.items").contains(&("c".into(), 3)));
    let recs = run.stop();
    assert_eq!(topics(&recs), ["evmy.ev_my.items".to_string()].into(), "the excluded table was published: {recs:#?}");
    assert_eq!(
        ops(&recs, "evmy.ev_my.items"),
        pairs(&[("r", 1), ("r", 2), ("u", 1), ("c", 3)]),
        "no delete and so no tombstone: {recs:#?}"
    );
    assert_eq!(recs.iter().find(|r| r["value"]["op"] == "u").unwrap()["value"]["after"], json!({"id": 1, "v": "A"}));
}

#[test]
fn bad_event_and_exclude_settings_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (extra_source, events, key, says) in [
        ("", "skipped_operations = [\"x\"]", "events.skipped_operations", "`x` is not an operation"),
        ("", "skipped_operations = [\"r\"]", "events.skipped_operations", "no_data"),
        ("tables_exclude = [\"nodot\"]", "", "source.tables_exclude", "is not `schema.table`"),
    ] {
        let cfg = write_config(
            dir.path(),
            "evbad",
            "postgres://u@127.0.0.1:1/db",
            r#"["public.*"]"#,
            STDOUT_SINK,
            extra_source,
        );
        append(&cfg, &format!("[events]\n{events}\n"));
        let (code, out, err) = cdcd(&["check", "--config", cfg.to_str().unwrap()]);
        assert_ne!(code, 0, "{out}{err}");
        assert!(err.contains(key) && err.contains(says), "expected `{key}` and {says:?} in:\n{err}");
    }
}

const SALT: &str = "pepper-7f3a91";

/// `[columns]`: passwords and `secret_*` columns left out, SSNs masked as five `*`, e-mail
/// addresses (also the key of `orders`) hashed with a salt.
const COLUMNS_PG: &str = r#"
[columns]
exclude = ["public.users.password", "public.*.secret_*"]
[[columns.mask]]
columns = ["public.users.ssn"]
chars = 5
[[columns.mask]]
columns = ["public.users.email", "public.orders.user_email"]
hash = "SHA-256"
salt = "pepper-7f3a91"
"#;

/// The values no record and no log line may hold.
const SECRETS: [&str; 7] =
    ["ann@example.com", "bob@example.com", "123-45-6789", "987-65-4321", "hunter2", "code-XYZZY", SALT];

fn assert_nowhere(what: &str, text: &str) {
    for s in SECRETS {
        assert!(!text.contains(s), "{what} holds `{s}`:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_excluded_and_masked_columns_reach_no_topic_key_or_log_in_either_encoding() {
    let db = TestDb::create("cols_pg").await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE users (id int PRIMARY KEY, name text, email text, ssn text NOT NULL, password text, note text);
         INSERT INTO users VALUES (1, 'Ann', 'ann@example.com', '123-45-6789', 'hunter2', 'first');
         CREATE TABLE orders (user_email text PRIMARY KEY, qty int, secret_code text);
         INSERT INTO orders VALUES ('ann@example.com', 1, 'code-XYZZY');
         -- Whole before images: updates and deletes carry the masked columns too.
         ALTER TABLE users REPLICA IDENTITY FULL; ALTER TABLE orders REPLICA IDENTITY FULL;",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tables = r#"["public.users", "public.orders"]"#;
    let friendly = write_config(dir.path(), "colsf", &db.url, tables, STDOUT_SINK, "");
    append(&friendly, COLUMNS_PG);
    let debezium =
        write_config(dir.path(), "colsd", &db.url, tables, "[sink]\ntype = \"stdout\"\nencoding = \"debezium\"\n", "");
    append(&debezium, COLUMNS_PG);

    let (code, out, err) = cdcd(&["check", "--config", friendly.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(
        out.contains(r#"columns: ["public.users.password", "public.*.secret_*"] not published; ["public.users.ssn"] masked as 5 `*`; ["public.users.email", "public.orders.user_email"] masked as a salted SHA-256 hash"#),
        "{out}"
    );
    assert_nowhere("cdcd check's output", &out);

    let runs =
        [StdoutRun::start_with_log_level(&friendly, "debug"), StdoutRun::start_with_log_level(&debezium, "debug")];
    for run in &runs {
        run.wait_for("the snapshot", |r| r.len() >= 2);
    }
    c.batch_execute(
        "INSERT INTO users VALUES (2, 'Bob', 'bob@example.com', '987-65-4321', 'hunter2', NULL);
         INSERT INTO orders VALUES ('bob@example.com', 2, 'code-XYZZY');
         UPDATE users SET note = 'changed', email = NULL WHERE id = 1;
         DELETE FROM users WHERE id = 2;
         DELETE FROM orders WHERE user_email = 'bob@example.com';",
    )
    .await
    .unwrap();
    // What the columns must show, computed by PostgreSQL: sha256(salt || text), hex.
    let hash = |email: &'static str| {
        let c = &c;
        async move {
            let row = c
                .query_one("SELECT encode(sha256(convert_to($1 || $2, 'UTF8')), 'hex')", &[&SALT, &email])
                .await
                .unwrap();
            row.get::<_, String>(0)
        }
    };
    let (ann, bob) = (hash("ann@example.com").await, hash("bob@example.com").await);
    let [f, d] = runs;
    let done = |r: &[Value]| r.iter().filter(|r| r["value"].is_null()).count() >= 2;
    f.wait_for("both deletes' tombstones", done);
    d.wait_for("both deletes' tombstones", done);
    let (flog, dlog) = (f.logs(), d.logs());
    let (frecs, drecs) = (f.stop(), d.stop());
    let (ftext, dtext) = (
        std::fs::read_to_string(dir.path().join("colsf.records")).unwrap(),
        std::fs::read_to_string(dir.path().join("colsd.records")).unwrap(),
    );
    assert_nowhere("the friendly records", &ftext);
    assert_nowhere("the Debezium records", &dtext);
    assert_nowhere("the friendly run's debug log", &flog);
    assert_nowhere("the Debezium run's debug log", &dlog);

    for (label, recs, payload) in [("friendly", &frecs, false), ("debezium", &drecs, true)] {
        let value = |r: &Value| if payload { r["value"]["payload"].clone() } else { r["value"].clone() };
        let key = |r: &Value| if payload { r["key"]["payload"].clone() } else { r["key"].clone() };
        let users: Vec<Value> =
            recs.iter().filter(|r| r["topic"].as_str().unwrap().ends_with("public.users")).cloned().collect();
        let rows: Vec<Value> = users
            .iter()
            .map(value)
            .filter(|v| !v.is_null())
            .flat_map(|v| [v["before"].clone(), v["after"].clone()])
            .filter(|r| !r.is_null())
            .collect();
        assert!(rows.len() >= 4, "{label}: {users:#?}");
        for row in &rows {
            let cols: Vec<&str> = row.as_object().unwrap().keys().map(String::as_str).collect();
            assert_eq!(cols, ["email", "id", "name", "note", "ssn"], "{label}: password is left out (sorted): {row}");
            assert_eq!(row["ssn"], "*****", "{label}: {row}");
            let want = match row["id"].as_i64() {
                Some(1) if row["email"].is_null() => json!(null),
                Some(1) => json!(ann),
                _ => json!(bob),
            };
            assert_eq!(row["email"], want, "{label}: the salted hash PostgreSQL computes too: {row}");
        }
        let orders: Vec<&Value> =
            recs.iter().filter(|r| r["topic"].as_str().unwrap().ends_with("public.orders")).collect();
        let keys: std::collections::BTreeSet<String> =
            orders.iter().map(|r| key(r)["user_email"].as_str().unwrap_or_default().to_string()).collect();
        assert_eq!(
            keys,
            [ann.clone(), bob.clone()].into(),
            "{label}: the key is hashed, so it joins users.email: {orders:#?}"
        );
        for r in orders.iter().map(|r| value(r)).filter(|v| !v.is_null()) {
            let row = if r["after"].is_null() { &r["before"] } else { &r["after"] };
            assert!(row.get("secret_code").is_none() && row["qty"].is_i64(), "{label}: {row}");
        }
        if payload {
            let schema = &users.iter().find(|r| !r["value"].is_null()).unwrap()["value"]["schema"];
            let after = schema["fields"].as_array().unwrap().iter().find(|f| f["field"] == "after").unwrap();
            let fields: Vec<(String, String, bool)> = after["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| {
                    (
                        f["field"].as_str().unwrap().into(),
                        f["type"].as_str().unwrap().into(),
                        f["optional"].as_bool().unwrap(),
                    )
                })
                .collect();
            let want: Vec<(String, String, bool)> = [
                ("id", "int32", false),
                ("name", "string", true),
                ("email", "string", true),
                ("ssn", "string", false),
                ("note", "string", true),
            ]
            .iter()
            .map(|(a, b, c)| (a.to_string(), b.to_string(), *c))
            .collect();
            assert_eq!(fields, want, "the value schema leaves the password out");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_excluded_and_masked_columns_reach_no_topic_key_or_log() {
    mysql_excluded_and_masked_columns_reach_no_topic_key_or_log(&mysql_url()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql97_excluded_and_masked_columns_reach_no_topic_key_or_log() {
    mysql_excluded_and_masked_columns_reach_no_topic_key_or_log(&mysql97_url()).await;
}

async fn mysql_excluded_and_masked_columns_reach_no_topic_key_or_log(url: &str) {
    let mut c = mysql_db_at(url, "cols_my").await;
    c.query_drop("CREATE TABLE users (id int PRIMARY KEY, name varchar(20), email varchar(40), ssn varchar(11), password varchar(20))").await.unwrap();
    c.query_drop("INSERT INTO users VALUES (1, 'Ann', 'ann@example.com', '123-45-6789', 'hunter2')").await.unwrap();
    c.query_drop("CREATE TABLE orders (user_email varchar(40) PRIMARY KEY, qty int, secret_code varchar(20))")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_mysql_config_at(dir.path(), "colsmy", url, r#"["cols_my.*"]"#, 7312, STDOUT_SINK, "");
    append(&cfg, &COLUMNS_PG.replace("public.", "cols_my."));
    let run = StdoutRun::start_with_log_level(&cfg, "debug");
    run.wait_for("the snapshot", |r| !r.is_empty());
    for q in [
        "INSERT INTO orders VALUES ('bob@example.com', 2, 'code-XYZZY')",
        "INSERT INTO users VALUES (2, 'Bob', 'bob@example.com', '987-65-4321', 'hunter2')",
        "UPDATE users SET name = 'ann', ssn = NULL WHERE id = 1",
        "DELETE FROM users WHERE id = 2",
    ] {
        c.query_drop(q).await.unwrap();
    }
    run.wait_for("the tombstone", |r| r.iter().any(|r| r["value"].is_null()));
    let log = run.logs();
    let recs = run.stop();
    assert_nowhere("the records", &std::fs::read_to_string(dir.path().join("colsmy.records")).unwrap());
    assert_nowhere("the debug log", &log);
    let sha = |s: &str| {
        let mut h = openssl_free_sha256(format!("{SALT}{s}").as_bytes());
        h.make_ascii_lowercase();
        h
    };
    let rows: Vec<&Value> = recs
        .iter()
        .filter(|r| r["topic"] == "colsmy.cols_my.users" && !r["value"].is_null())
        .flat_map(|r| [&r["value"]["before"], &r["value"]["after"]])
        .filter(|r| !r.is_null())
        .collect();
    assert_eq!(rows.len(), 5, "r, c, u (before and after), d: {recs:#?}");
    for row in rows {
        let cols: Vec<&str> = row.as_object().unwrap().keys().map(String::as_str).collect();
        assert_eq!(cols, ["email", "id", "name", "ssn"], "(sorted) {row}");
        let (email, ssn_set) =
            if row["id"] == 1 { ("ann@example.com", row["name"] == "Ann") } else { ("bob@example.com", true) };
        assert_eq!(row["email"], json!(sha(email)), "{row}");
        assert_eq!(row["ssn"], if ssn_set { json!("*****") } else { json!(null) }, "{row}");
    }
    let order = recs.iter().find(|r| r["topic"] == "colsmy.cols_my.orders").expect("the order");
    assert_eq!(order["key"], json!({"user_email": sha("bob@example.com")}));
    assert_eq!(order["value"]["after"], json!({"user_email": sha("bob@example.com"), "qty": 2}));
}

/// SHA-256 in hex by the `sha256sum` tool: a second implementation beside cdcd's OpenSSL one.
fn openssl_free_sha256(bytes: &[u8]) -> String {
    use std::io::Write;
    let mut child = Command::new("sha256sum").stdin(Stdio::piped()).stdout(Stdio::piped()).spawn().expect("sha256sum");
    child.stdin.take().unwrap().write_all(bytes).unwrap();
    let out = child.wait_with_output().unwrap();
    String::from_utf8(out.stdout).unwrap().split_whitespace().next().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_masked_column_stays_masked_in_a_dead_letter_record() {
    let db = TestDb::create("cols_dlq").await;
    let c = db.client().await;
    c.batch_execute("CREATE TABLE docs (id int PRIMARY KEY, ssn text, body text)").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sink = format!(
        "{}dead_letter_topic = \"colsdlq.dead\"\n[sink.properties]\n\"message.max.bytes\" = 20000\n",
        kafka_sink(&broker.bootstrap)
    );
    let cfg = write_config(dir.path(), "colsdlq", &db.url, r#"["public.docs"]"#, &sink, "");
    append(&cfg, "[[columns.mask]]\ncolumns = [\"public.docs.ssn\"]\nchars = 3\n");
    let daemon = Daemon::start_with_env(&cfg, &[("RUST_LOG", "debug")]);
    assert!(wait_until(Duration::from_secs(30), || daemon.logs().contains("snapshot finished")), "{}", daemon.logs());
    c.batch_execute(
        "INSERT INTO docs VALUES (1, '123-45-6789', repeat('x', 50000));
         INSERT INTO docs VALUES (2, '987-65-4321', 'small');",
    )
    .await
    .unwrap();
    let recs = read_topics(&broker.bootstrap, &["colsdlq.public.docs", "colsdlq.dead"], 2, 60);
    let dead: Vec<&Rec> = recs.iter().filter(|r| r.topic == "colsdlq.dead").collect();
    assert_eq!(dead.len(), 1, "the big row went to the dead-letter topic: {recs:#?}");
    let all = format!("{recs:?}");
    assert_nowhere("the topics, dead letters included", &all);
    let small = recs.iter().find(|r| r.topic == "colsdlq.public.docs").unwrap();
    assert_eq!(small.value.as_ref().unwrap()["after"]["ssn"], "***");
    let logs = daemon.logs();
    assert_eq!(daemon.stop(), Some(0));
    assert_nowhere("the debug log", &logs);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fixed_mask_on_a_key_column_is_refused_naming_the_column() {
    let db = TestDb::create("cols_keymask").await;
    db.client().await.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text)").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(dir.path(), "colskey", &db.url, r#"["public.t"]"#, STDOUT_SINK, "");
    append(&cfg, "[[columns.mask]]\ncolumns = [\"public.t.id\"]\nchars = 3\n");
    let (code, out, err) = cdcd(&["run", "--config", cfg.to_str().unwrap()]);
    assert_ne!(code, 0, "{out}{err}");
    assert!(err.contains("column `id` of public.t is part of the Kafka key") && err.contains("hash"), "{err}");
}

/// A hashed primary key while a snapshot reads the table under a concurrent writer: snapshot
/// deduplication must still match chunk rows with the changes that supersede them (it compares
/// the rows' own key values; the published key is hashed). A replica built from the records
/// equals the table, hashed. Also a masked bytea column whose TOASTed value an update leaves
/// unchanged (the placeholder, written as the string the masked column's schema now is).
#[tokio::test(flavor = "multi_thread")]
async fn a_hashed_key_keeps_snapshot_deduplication_exact_under_concurrent_writes() {
    let db = TestDb::create("cols_dedup").await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE people (email text PRIMARY KEY, n int NOT NULL, blob bytea);
         INSERT INTO people SELECT 'p' || i || '@example.com', 0,
           CASE WHEN i % 100 = 0 THEN (SELECT decode(string_agg(md5(random()::text || g), ''), 'hex') FROM generate_series(1, 200) g) END
           FROM generate_series(1, 3000) i;",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let sink = "[sink]\ntype = \"stdout\"\nencoding = \"debezium\"\n[sink.debezium]\nschemas_enable = false\n";
    let cfg = write_config(
        dir.path(),
        "colsdedup",
        &db.url,
        r#"["public.people"]"#,
        sink,
        "snapshot_chunk_rows = 20\nsnapshot_max_rows_per_sec = 2000",
    );
    append(
        &cfg,
        &format!(
            "[[columns.mask]]\ncolumns = [\"public.people.email\"]\nhash = \"SHA-256\"\nsalt = \"{SALT}\"\n[[columns.mask]]\ncolumns = [\"public.people.blob\"]\nchars = 4\n"
        ),
    );
    let run = StdoutRun::start(&cfg);
    // Writes while the chunks are read: updates, deletes and inserts, each its own transaction.
    let mut rng = Rng::from_env_or_clock();
    let mut next_new = 3001;
    for step in 0..600 {
        let i = rng.range(1, 3001);
        let sql = match step % 5 {
            0 => format!("DELETE FROM people WHERE email = 'p{i}@example.com'"),
            1 => {
                next_new += 1;
                format!("INSERT INTO people VALUES ('p{next_new}@example.com', {step}, NULL)")
            }
            _ => format!("UPDATE people SET n = {step} WHERE email = 'p{i}@example.com'"),
        };
        c.batch_execute(&sql).await.unwrap();
        if step % 50 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    c.batch_execute("UPDATE people SET n = n + 1 WHERE email IN ('p100@example.com', 'p200@example.com'); INSERT INTO people VALUES ('last@example.com', -1, NULL)").await.unwrap();
    let last: String = c
        .query_one("SELECT encode(sha256(convert_to($1 || 'last@example.com', 'UTF8')), 'hex')", &[&SALT])
        .await
        .unwrap()
        .get(0);
    assert!(wait_until(Duration::from_secs(120), || run.logs().contains("snapshot finished")), "{}", run.logs());
    run.wait_for("the last insert", |r| r.iter().any(|r| r["key"]["email"] == last.as_str()));
    let log = run.logs();
    let recs = run.stop();
    assert!(!log.contains("ERROR"), "{log}");
    let mut replica: std::collections::BTreeMap<String, i64> = Default::default();
    for r in &recs {
        let key = r["key"]["email"].as_str().expect("a hashed key").to_string();
        match r["value"]["op"].as_str() {
            Some("r" | "c" | "u") => {
                replica.insert(key, r["value"]["after"]["n"].as_i64().unwrap());
                assert!(
                    ["****", "__debezium_unavailable_value"]
                        .contains(&r["value"]["after"]["blob"].as_str().unwrap_or("****"))
                        || r["value"]["after"]["blob"].is_null(),
                    "{r}"
                );
            }
            Some("d") | None => {
                replica.remove(&key);
            }
            Some(op) => panic!("unexpected op {op}: {r}"),
        }
    }
    let source: std::collections::BTreeMap<String, i64> = c
        .query("SELECT encode(sha256(convert_to($1 || email, 'UTF8')), 'hex'), n::int8 FROM people", &[&SALT])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let differ: Vec<_> = source.iter().filter(|(k, v)| replica.get(*k) != Some(v)).take(5).collect();
    let extra: Vec<_> = replica.keys().filter(|k| !source.contains_key(*k)).take(5).collect();
    assert!(differ.is_empty() && extra.is_empty(), "replica differs: wrong or missing {differ:?}, revived {extra:?}");
    assert_eq!(replica.len(), source.len());
    assert!(
        recs.iter().any(|r| r["value"]["after"]["blob"] == "__debezium_unavailable_value"),
        "an update left a TOASTed masked value unchanged"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_initial_only_reads_every_row_then_stops_and_drops_its_slot() {
    let db = TestDb::create("snap_only_pg").await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT i, 'v' || i FROM generate_series(1, 500) i;",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_config(
        dir.path(),
        "snaponly",
        &db.url,
        r#"["public.t"]"#,
        STDOUT_SINK,
        "snapshot = \"initial_only\"\nsnapshot_chunk_rows = 100",
    );
    let (code, out, err) = cdcd(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let ids = snapshot_ids(&out);
    assert_eq!(ids, (1..=500).collect(), "every row read once the session stops: {err}");
    assert!(err.contains("every table was read and checkpointed; dropped the replication slot"), "{err}");
    let slots = c.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = 'cdcd_snaponly'", &[]).await.unwrap();
    assert!(slots.is_empty(), "the slot would hold WAL forever");

    // Started again: nothing to read, nothing published, and no new slot.
    c.batch_execute("INSERT INTO t VALUES (501, 'later')").await.unwrap();
    let (code, out, err) = cdcd(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.trim().is_empty(), "{out}");
    assert!(err.contains("nothing to do"), "{err}");
    let slots = c.query("SELECT 1 FROM pg_replication_slots WHERE slot_name = 'cdcd_snaponly'", &[]).await.unwrap();
    assert!(slots.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_initial_only_reads_every_row_then_stops() {
    mysql_initial_only_reads_every_row_then_stops(&mysql_url()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql97_initial_only_reads_every_row_then_stops() {
    mysql_initial_only_reads_every_row_then_stops(&mysql97_url()).await;
}

async fn mysql_initial_only_reads_every_row_then_stops(url: &str) {
    let mut c = mysql_db_at(url, "snap_only_my").await;
    c.query_drop("CREATE TABLE t (id int PRIMARY KEY, v varchar(10))").await.unwrap();
    c.query_drop(
        "INSERT INTO t WITH RECURSIVE s(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM s WHERE n < 500) \
         SELECT n, CONCAT('v', n) FROM s",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_mysql_config_at(
        dir.path(),
        "snaponlymy",
        url,
        r#"["snap_only_my.t"]"#,
        7313,
        STDOUT_SINK,
        "snapshot = \"initial_only\"\nsnapshot_chunk_rows = 100",
    );
    let (code, out, err) = cdcd(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    let ids = snapshot_ids(&out);
    assert_eq!(ids, (1..=500).collect(), "{err}");
    assert!(err.contains("every table was read and checkpointed; stopping"), "{err}");
    c.query_drop("INSERT INTO t VALUES (501, 'later')").await.unwrap();
    let (code, out, err) = cdcd(&["run", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "{err}");
    assert!(out.trim().is_empty(), "a second start publishes nothing: {out}");
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_when_needed_reads_every_table_again_after_the_slot_is_lost() {
    let db = TestDb::create("snap_needed_pg").await;
    let c = db.client().await;
    c.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'a'), (2, 'b');")
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg =
        write_config(dir.path(), "snapneeded", &db.url, r#"["public.t"]"#, STDOUT_SINK, "snapshot = \"when_needed\"");
    let run = StdoutRun::start(&cfg);
    run.wait_for("the snapshot", |r| r.len() >= 2);
    run.stop();
    // The slot is lost while cdcd is down; changes made meanwhile were never decoded.
    let admin = connect(&format!("{}/postgres", pg_url())).await;
    admin.execute("SELECT pg_drop_replication_slot('cdcd_snapneeded')", &[]).await.unwrap();
    c.batch_execute("DELETE FROM t WHERE id = 1; INSERT INTO t VALUES (3, 'c');").await.unwrap();
    let run = StdoutRun::start(&cfg);
    run.wait_for("the tables read again", |r| {
        r.iter().any(|r| r["value"]["op"] == "t")
            && r.iter().any(|r| r["value"]["op"] == "r" && r["value"]["after"]["id"] == 3)
    });
    let log = run.logs();
    let recs = run.stop();
    let after_truncate: Vec<i64> = recs
        .iter()
        .skip_while(|r| r["value"]["op"] != "t")
        .filter(|r| r["value"]["op"] == "r")
        .map(|r| r["value"]["after"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(after_truncate, [2, 3], "a TRUNCATE, then the rows as they are now: {recs:#?}\n{log}");
}

const ROUTES: &str = r#"
[[routes]]
tables = ["public.orders_*"]
topic = "shop.orders"
[[routes]]
tables = ["public.audit"]
topic = "shop.audit_all"
key_field = ""
"#;

/// `[[routes]]`: two shards of one logical table into one topic, their keys told apart by the
/// field Debezium's ByLogicalTableRouter adds (in both encodings, the Debezium key schema
/// included); a route without a key field keeps the key as it is.
#[tokio::test(flavor = "multi_thread")]
async fn routes_merge_tables_into_one_topic_with_the_table_in_the_key() {
    let db = TestDb::create("routes_pg").await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE orders_a (id int PRIMARY KEY, qty int); INSERT INTO orders_a VALUES (1, 10);
         CREATE TABLE orders_b (id int PRIMARY KEY, qty int); INSERT INTO orders_b VALUES (1, 20);
         CREATE TABLE audit (id int PRIMARY KEY, what text);",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let tables = r#"["public.*"]"#;
    let friendly = write_config(dir.path(), "rtf", &db.url, tables, STDOUT_SINK, "");
    append(&friendly, ROUTES);
    let debezium =
        write_config(dir.path(), "rtd", &db.url, tables, "[sink]\ntype = \"stdout\"\nencoding = \"debezium\"\n", "");
    append(&debezium, ROUTES);
    let (code, out, err) = cdcd(&["check", "--config", friendly.to_str().unwrap()]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains(r#"route: ["public.orders_*"] -> topic shop.orders, key field __dbz__physicalTableIdentifier naming each table"#), "{out}");
    let runs = [StdoutRun::start(&friendly), StdoutRun::start(&debezium)];
    for run in &runs {
        run.wait_for("the snapshot", |r| r.len() >= 2);
    }
    c.batch_execute("UPDATE orders_b SET qty = 21 WHERE id = 1; INSERT INTO audit VALUES (7, 'x');").await.unwrap();
    for run in &runs {
        run.wait_for("the audit row", |r| r.iter().any(|r| r["topic"] == "shop.audit_all"));
    }
    let [f, d] = runs;
    let (frecs, drecs) = (f.stop(), d.stop());
    for (prefix, recs, payload) in [("rtf", frecs, false), ("rtd", drecs, true)] {
        let key = |r: &Value| if payload { r["key"]["payload"].clone() } else { r["key"].clone() };
        let value = |r: &Value| if payload { r["value"]["payload"].clone() } else { r["value"].clone() };
        assert_eq!(topics(&recs), ["shop.audit_all".to_string(), "shop.orders".to_string()].into(), "{recs:#?}");
        // Snapshot readers run in parallel: the order of the two tables' reads is not fixed.
        let mut orders: Vec<(Value, String, i64)> = recs
            .iter()
            .filter(|r| r["topic"] == "shop.orders")
            .map(|r| (key(r), value(r)["op"].as_str().unwrap().to_string(), value(r)["after"]["qty"].as_i64().unwrap()))
            .collect();
        orders.sort_by_key(|(k, op, _)| (k.to_string(), op.clone()));
        let table = |t: &str| format!("{prefix}.public.{t}");
        assert_eq!(
            orders,
            [
                (json!({"id": 1, "__dbz__physicalTableIdentifier": table("orders_a")}), "r".to_string(), 10),
                (json!({"id": 1, "__dbz__physicalTableIdentifier": table("orders_b")}), "r".to_string(), 20),
                (json!({"id": 1, "__dbz__physicalTableIdentifier": table("orders_b")}), "u".to_string(), 21),
            ],
            "{prefix}"
        );
        let audit = recs.iter().find(|r| r["topic"] == "shop.audit_all").unwrap();
        assert_eq!(key(audit), json!({"id": 7}), "no key field on this route");
        assert_eq!(value(audit)["source"]["table"], "audit");
        if payload {
            let order = recs.iter().find(|r| r["topic"] == "shop.orders").unwrap();
            let fields: Vec<&str> = order["key"]["schema"]["fields"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["field"].as_str().unwrap())
                .collect();
            assert_eq!(fields, ["id", "__dbz__physicalTableIdentifier"]);
            assert_eq!(order["key"]["schema"]["name"], "shop.orders.Key");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn mariadb_routes_merge_tables_into_one_topic_with_the_table_in_the_key() {
    mysql_routes_merge_tables_into_one_topic_with_the_table_in_the_key(&mysql_url()).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn mysql97_routes_merge_tables_into_one_topic_with_the_table_in_the_key() {
    mysql_routes_merge_tables_into_one_topic_with_the_table_in_the_key(&mysql97_url()).await;
}

async fn mysql_routes_merge_tables_into_one_topic_with_the_table_in_the_key(url: &str) {
    let mut c = mysql_db_at(url, "routes_my").await;
    for t in ["orders_a", "orders_b"] {
        c.query_drop(format!("CREATE TABLE {t} (id int PRIMARY KEY, qty int)")).await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_mysql_config_at(dir.path(), "rtmy", url, r#"["routes_my.*"]"#, 7314, STDOUT_SINK, "");
    append(&cfg, "[[routes]]\ntables = [\"routes_my.orders_*\"]\ntopic = \"shop.orders\"\n");
    let run = StdoutRun::start(&cfg);
    assert!(wait_until(Duration::from_secs(60), || run.logs().contains("snapshot finished")), "{}", run.logs());
    c.query_drop("INSERT INTO orders_a VALUES (1, 10)").await.unwrap();
    c.query_drop("INSERT INTO orders_b VALUES (1, 20)").await.unwrap();
    run.wait_for("both inserts", |r| r.len() >= 2);
    let recs = run.stop();
    let keys: Vec<Value> = recs.iter().filter(|r| r["topic"] == "shop.orders").map(|r| r["key"].clone()).collect();
    assert_eq!(
        keys,
        [
            json!({"id": 1, "__dbz__physicalTableIdentifier": "rtmy.routes_my.orders_a"}),
            json!({"id": 1, "__dbz__physicalTableIdentifier": "rtmy.routes_my.orders_b"})
        ],
        "{recs:#?}"
    );
}
