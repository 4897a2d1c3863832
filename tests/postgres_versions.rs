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
