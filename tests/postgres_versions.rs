//! What differs between PostgreSQL majors, against the server scripts/test.sh points
//! `CDCD_TEST_PG_URL` at (15 in the full suite; 14, 16, 17 and 18 in the conformance subset):
//! the pgoutput protocol and options cdcd negotiates, as `cdcd check` reports them, and failover
//! slots (17+): made by default, turned off and on again by `source.slot_failover` on an
//! existing slot, streaming throughout.

mod support;

use serde_json::json;
use support::*;

/// The slot's `failover` flag, or `None` where the server has no such column (before 17).
async fn slot_failover(c: &tokio_postgres::Client, slot: &str) -> Option<bool> {
    c.query_one("SELECT (to_jsonb(s) ->> 'failover')::bool FROM pg_replication_slots s WHERE slot_name = $1", &[&slot])
        .await
        .unwrap()
        .get(0)
}

fn check(cfg: &std::path::Path) -> String {
    let (code, out, err) = cdcd(&["check", "--config", cfg.to_str().unwrap()]);
    assert_eq!(code, 0, "cdcd check failed:\n{out}\n{err}");
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn protocol_and_failover_slots_follow_the_server_version() {
    let db = TestDb::create("pg_versions").await;
    let c = db.client().await;
    c.batch_execute("CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t VALUES (1, 'seed');").await.unwrap();
    let num: i32 = c.query_one("SELECT current_setting('server_version_num')::int", &[]).await.unwrap().get(0);
    let (major, minor) = (num / 10_000, num % 10_000);
    let rig = Rig::new(&db.url, "pgver", r#"["public.t"]"#, "");
    let topic = ["pgver.public.t"];

    let daemon = Daemon::start(&rig.cfg);
    assert_eq!(read_topics(&rig.broker.bootstrap, &topic, 1, 60).len(), 1, "{}", daemon.logs());
    c.batch_execute("INSERT INTO t VALUES (2, 'streamed')").await.unwrap();
    let recs = read_topics(&rig.broker.bootstrap, &topic, 2, 60);
    assert_eq!(recs.iter().filter(|r| r.op() == Some("c")).count(), 1, "{}", daemon.logs());
    let failover = slot_failover(&c, "cdcd_pgver").await;
    assert_eq!(failover, (major >= 17).then_some(true), "PostgreSQL {major}: the slot's failover flag");
    assert_eq!(daemon.stop(), Some(0));

    let report = check(&rig.cfg);
    let protocol = format!("PostgreSQL {major}.{minor}: pgoutput protocol 1");
    assert!(report.contains(&protocol), "`cdcd check` names the protocol for {major}.{minor}:\n{report}");
    if major >= 17 {
        assert!(report.contains("slot cdcd_pgver is a failover slot"), "{report}");
        assert!(report.contains("synchronized_standby_slots"), "{report}");
    } else {
        assert!(report.contains("failover slots unavailable"), "{report}");
        return;
    }

    // Off on the existing slot, then on again: each start aligns the flag and streams on.
    for (setting, want, id) in [("false", false, 3), ("true", true, 4)] {
        let cfg = write_config(
            rig.dir.path(),
            "pgver",
            &db.url,
            r#"["public.t"]"#,
            &kafka_sink(&rig.broker.bootstrap),
            &format!("slot_failover = {setting}"),
        );
        let daemon = Daemon::start(&cfg);
        c.batch_execute(&format!("INSERT INTO t VALUES ({id}, 'after {setting}')")).await.unwrap();
        let recs = read_topics(&rig.broker.bootstrap, &topic, id as usize, 60);
        let row = recs.iter().find(|r| r.key == Some(json!({"id": id})));
        assert!(row.is_some(), "row {id} streamed with slot_failover = {setting}:\n{}", daemon.logs());
        assert_eq!(slot_failover(&c, "cdcd_pgver").await, Some(want));
        assert_eq!(daemon.stop(), Some(0));
        if !want {
            assert!(check(&cfg).contains("failover slots are off"));
        }
    }
}

/// Stored generated columns (issue 22 item 5): PostgreSQL 18 publishes them when the
/// publication says `publish_generated_columns = stored`, which publications cdcd makes do.
/// Snapshot and stream then both carry them; where they are not published (before 18, or a
/// publication of the user's own without the option) neither does, so a row's columns never
/// depend on whether it was read or streamed. Virtual generated columns (18) are never published.
#[tokio::test(flavor = "multi_thread")]
async fn generated_columns_are_captured_where_the_publication_publishes_them() {
    let db = TestDb::create("pg_generated").await;
    let c = db.client().await;
    let major: i32 =
        c.query_one("SELECT current_setting('server_version_num')::int / 10000", &[]).await.unwrap().get(0);
    let virtual_column = if major >= 18 { ", c int GENERATED ALWAYS AS (a * 3) VIRTUAL" } else { "" };
    c.batch_execute(&format!(
        "CREATE TABLE g (id int PRIMARY KEY, a int, b int GENERATED ALWAYS AS (a * 2) STORED{virtual_column});
         INSERT INTO g (id, a) SELECT n, n FROM generate_series(1, 3) n;
         CREATE PUBLICATION own_pub FOR TABLE g;"
    ))
    .await
    .unwrap();
    let rig = Rig::new(&db.url, "pggen", r#"["public.g"]"#, "");
    let own = write_config(
        rig.dir.path(),
        "pggenown",
        &db.url,
        r#"["public.g"]"#,
        &kafka_sink(&rig.broker.bootstrap),
        "publication = \"own_pub\"",
    );
    let (ours, theirs) = (Daemon::start(&rig.cfg), Daemon::start(&own));
    let topics = ["pggen.public.g", "pggenown.public.g"];
    assert_eq!(read_topics(&rig.broker.bootstrap, &topics, 6, 60).len(), 6, "{}\n{}", ours.logs(), theirs.logs());
    c.batch_execute("INSERT INTO g (id, a) VALUES (4, 4); UPDATE g SET a = 10 WHERE id = 1").await.unwrap();
    let recs = read_topics(&rig.broker.bootstrap, &topics, 10, 60);
    assert_eq!(recs.len(), 10, "{}\n{}", ours.logs(), theirs.logs());
    for r in &recs {
        let after = &r.value.as_ref().unwrap()["after"];
        let a = after["a"].as_i64().unwrap();
        let published = major >= 18 && r.topic == topics[0];
        let what = format!("PostgreSQL {major}, {} {:?}: {after}", r.topic, r.op());
        if published {
            assert_eq!(after["b"].as_i64(), Some(a * 2), "{what}");
        } else {
            assert!(after.get("b").is_none(), "{what}");
        }
        assert!(after.get("c").is_none(), "virtual columns are never published: {what}");
    }
    assert_eq!(ours.stop(), Some(0));
    assert_eq!(theirs.stop(), Some(0));
    if major >= 18 {
        assert!(check(&rig.cfg).contains("publishes stored generated columns"));
        assert!(check(&own).contains("publication own_pub does not publish generated columns"));
    }
}
