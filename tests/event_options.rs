//! The Debezium options that decide which changes become records, end to end against the real
//! PostgreSQL 15 and MariaDB 10.11 of scripts/test.sh: `[events] skipped_operations`,
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
        let out = cfg.with_extension("records");
        let log = cfg.with_extension("log");
        let child = Command::new(env!("CARGO_BIN_EXE_cdcd"))
            .args(["run", "--config"])
            .arg(cfg)
            .env("RUST_LOG", "info")
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
    let mut c = mysql_db("ev_my").await;
    c.query_drop("CREATE TABLE items (id int PRIMARY KEY, v varchar(10))").await.unwrap();
    c.query_drop("INSERT INTO items VALUES (1, 'a'), (2, 'b')").await.unwrap();
    c.query_drop("CREATE TABLE skip_me (id int PRIMARY KEY)").await.unwrap();
    c.query_drop("INSERT INTO skip_me VALUES (1)").await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = write_mysql_config(
        dir.path(),
        "evmy",
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
