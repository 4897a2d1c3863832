//! SIGHUP re-reads the configuration directory: a new connector file starts (with its snapshot),
//! a removed one drains and stops, a changed one drains and starts again with its new tables,
//! and an unchanged one is not disturbed (one session from start to end, its rows written
//! throughout the reload each delivered exactly once). A directory that no longer loads is
//! rejected as a whole and everything keeps running.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use support::*;

/// Log lines with `message` for connector `name`.
fn count(logs: &str, message: &str, name: &str) -> usize {
    let field = format!("connector={name}");
    logs.lines()
        .filter(|l| l.contains(message) && l.split_whitespace().any(|w| w == field || w.trim_end_matches(':') == field))
        .count()
}

fn ids(recs: &[Rec], topic: &str) -> Vec<i64> {
    let mut v: Vec<i64> =
        recs.iter().filter(|r| r.topic == topic).filter_map(|r| r.value.as_ref()?["after"]["id"].as_i64()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_starts_new_stops_removed_restarts_changed_and_leaves_the_rest() {
    let db = TestDb::create("reload").await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE a (id int PRIMARY KEY); CREATE TABLE a2 (id int PRIMARY KEY);
         CREATE TABLE b (id int PRIMARY KEY); CREATE TABLE c (id int PRIMARY KEY);
         CREATE TABLE d (id int PRIMARY KEY);
         INSERT INTO a VALUES (1); INSERT INTO a2 VALUES (1); INSERT INTO b VALUES (1);
         INSERT INTO c VALUES (1), (2), (3); INSERT INTO d VALUES (1);",
    )
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start();
    let sink = kafka_sink(&broker.bootstrap);
    write_config(dir.path(), "a", &db.url, r#"["public.a"]"#, &sink, "");
    write_config(dir.path(), "b", &db.url, r#"["public.b"]"#, &sink, "");
    write_config(dir.path(), "d", &db.url, r#"["public.d"]"#, &sink, "");
    let daemon = Daemon::start(dir.path());
    let streaming = |n: &str| count(&daemon.logs(), "streaming", n);
    // Streaming, and each initial snapshot finished: a row inserted while `d`'s snapshot chunk
    // is read can be both read and streamed (at-least-once, as Debezium's incremental snapshots),
    // and this test counts exactly-once delivery for rows written after the snapshot.
    assert!(
        wait_until(Duration::from_secs(60), || {
            ["a", "b", "d"].iter().all(|n| streaming(n) == 1) && daemon.logs().matches("snapshot finished").count() >= 3
        }),
        "{}",
        daemon.logs()
    );

    // `d` is written all through the reload.
    let writer = {
        let c = db.client().await;
        tokio::spawn(async move {
            for id in 2..=120 {
                c.execute("INSERT INTO d VALUES ($1)", &[&id]).await.unwrap();
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;
    write_config(dir.path(), "a", &db.url, r#"["public.a", "public.a2"]"#, &sink, "");
    std::fs::remove_file(dir.path().join("b.toml")).unwrap();
    write_config(dir.path(), "c", &db.url, r#"["public.c"]"#, &sink, "");
    unsafe {
        libc::kill(daemon.pid() as i32, libc::SIGHUP);
    }
    assert!(
        wait_until(Duration::from_secs(60), || {
            let logs = daemon.logs();
            count(&logs, "removed from the configuration", "b") == 1 && streaming("a") == 2 && streaming("c") == 1
        }),
        "reload not applied:\n{}",
        daemon.logs()
    );
    let logs = daemon.logs();
    assert!(logs.contains("start [c], stop [b], restart [a], unchanged [d]"), "{logs}");
    assert_eq!(count(&logs, "stopped cleanly", "a"), 1, "a drained before its restart:\n{logs}");
    assert_eq!(count(&logs, "resuming from checkpoint", "a"), 1, "a resumed, not re-snapshotted:\n{logs}");

    // After the reload: `a` captures a2 too, `b` captures nothing more.
    c.batch_execute("INSERT INTO a2 VALUES (2); INSERT INTO b VALUES (2); INSERT INTO a VALUES (2);").await.unwrap();
    writer.await.unwrap();

    // A directory that does not load is rejected as a whole.
    std::fs::write(dir.path().join("e.toml"), "name = \"e\"\n[source\n").unwrap();
    unsafe {
        libc::kill(daemon.pid() as i32, libc::SIGHUP);
    }
    assert!(wait_until(Duration::from_secs(10), || daemon.logs().contains("reload rejected")), "{}", daemon.logs());
    c.batch_execute("INSERT INTO d VALUES (121)").await.unwrap();

    let topics = ["a.public.a", "a.public.a2", "b.public.b", "c.public.c", "d.public.d"];
    let recs = read_topics(&broker.bootstrap, &topics, 1 + 2 + 1 + 3 + 121 + 1, 60);
    let per_topic: BTreeMap<&str, usize> = recs.iter().fold(BTreeMap::new(), |mut m, r| {
        *m.entry(r.topic.as_str()).or_default() += 1;
        m
    });
    println!("records per topic: {per_topic:?}");
    assert_eq!(ids(&recs, "a.public.a"), [1, 2], "{:?}", recs.iter().find(|r| r.topic == "a.public.a"));
    // a2, newly matched, is snapshotted while it streams: its old row arrives as an incremental
    // snapshot read, the row inserted after the reload as a create (and maybe read again).
    let mut a2 = ids(&recs, "a.public.a2");
    a2.dedup();
    assert_eq!(a2, [1, 2]);
    let a2_op = |id: i64, op: &str| {
        recs.iter().any(|r| {
            r.topic == "a.public.a2" && r.op() == Some(op) && r.value.as_ref().is_some_and(|v| v["after"]["id"] == id)
        })
    };
    assert!(
        a2_op(1, "r") && a2_op(2, "c"),
        "{:?}",
        recs.iter().filter(|r| r.topic == "a.public.a2").collect::<Vec<_>>()
    );
    assert!(recs
        .iter()
        .filter(|r| r.topic == "a.public.a2" && r.op() == Some("r"))
        .all(|r| r.value.as_ref().unwrap()["source"]["snapshot"] == "incremental"));
    assert_eq!(ids(&recs, "b.public.b"), [1], "b stopped at the reload");
    assert_eq!(ids(&recs, "c.public.c"), [1, 2, 3]);
    assert!(recs.iter().filter(|r| r.topic == "c.public.c").all(|r| r.op() == Some("r")));
    assert_eq!(ids(&recs, "d.public.d"), (1..=121).collect::<Vec<_>>(), "d: every row exactly once");

    let logs = daemon.logs();
    assert_eq!(streaming("d"), 1, "d kept its one session:\n{logs}");
    assert_eq!(count(&logs, "stopped cleanly", "d"), 0);
    let by_connector: BTreeMap<&str, usize> = ["a", "b", "c", "d"].iter().map(|n| (*n, streaming(n))).collect();
    println!("streaming sessions per connector: {by_connector:?}");
    assert_eq!(daemon.stop(), Some(0));
}
