//! Secrets stay secret: a PostgreSQL password read from a file (`${file:...}`) and a Kafka
//! credential read from a systemd credential (`${credential:...}` with `$CREDENTIALS_DIRECTORY`)
//! drive a real snapshot and stream, and a run that fails; every line of `cdcd check`, of the
//! daemon's debug-level log and of the failed run's error is searched for both values (plain
//! and percent-encoded): none may appear.

mod support;

use std::time::Duration;

use support::*;

const PG_PASSWORD: &str = "Zq9-file-s3cret/4471";
const KAFKA_PASSWORD: &str = "kf-credential-8802";

#[tokio::test(flavor = "multi_thread")]
async fn configured_passwords_never_reach_logs_or_errors() {
    let db = TestDb::create("secrets_e2e").await;
    let admin = connect(&format!("{}/secrets_e2e", pg_url().replace("cdcd:cdcd@", "postgres:cdcd@"))).await;
    admin
        .batch_execute(&format!(
            "DROP ROLE IF EXISTS cdcd_secret; CREATE ROLE cdcd_secret LOGIN REPLICATION PASSWORD '{PG_PASSWORD}';
             GRANT CREATE ON DATABASE secrets_e2e TO cdcd_secret;
             CREATE TABLE t (id int PRIMARY KEY, v text); ALTER TABLE t OWNER TO cdcd_secret;
             INSERT INTO t VALUES (1, 'a');"
        ))
        .await
        .unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path();
    let pw_file = dir.join("pg-password");
    std::fs::write(&pw_file, format!("{PG_PASSWORD}\n")).unwrap();
    let creds = dir.join("credentials");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("kafka"), KAFKA_PASSWORD).unwrap();
    let env = [("CREDENTIALS_DIRECTORY", creds.to_str().unwrap()), ("RUST_LOG", "debug")];

    let broker = Broker::start();
    let host = pg_url().rsplit_once('@').map(|(_, h)| h.to_string()).unwrap();
    let url = format!("postgres://cdcd_secret:${{file:{}}}@{host}/secrets_e2e", pw_file.display());
    // A credential-looking property the plaintext mock broker ignores, so the run still works.
    let sink = format!(
        "{}[sink.properties]\n\"ssl.key.password\" = \"${{credential:kafka}}\"\n",
        kafka_sink(&broker.bootstrap)
    );
    let cfg = write_config(dir, "secrets", &url, r#"["public.t"]"#, &sink, "");

    let mut outputs = Vec::new();
    let (code, out, err) = cdcd_with_env(&["check", "--config", cfg.to_str().unwrap()], &env);
    assert_eq!(code, 0, "{out}{err}");
    outputs.push(("cdcd check", format!("{out}{err}")));

    let daemon = Daemon::start_with_env(&cfg, &env);
    assert_eq!(read_topics(&broker.bootstrap, &["secrets.public.t"], 1, 60).len(), 1, "{}", daemon.logs());
    admin.batch_execute("INSERT INTO t VALUES (2, 'b')").await.unwrap();
    assert_eq!(read_topics(&broker.bootstrap, &["secrets.public.t"], 2, 60).len(), 2, "{}", daemon.logs());
    tokio::time::sleep(Duration::from_millis(500)).await;
    let logs = daemon.logs();
    assert_eq!(daemon.stop(), Some(0));
    assert!(logs.contains("DEBUG"), "the run must log at debug level for this test to mean anything");
    outputs.push(("cdcd run (debug log)", logs));

    // A run that fails: a database that does not exist.
    let bad =
        write_config(dir, "secrets_bad", &url.replace("/secrets_e2e", "/no_such_db"), r#"["public.t"]"#, &sink, "");
    let (code, out, err) = cdcd_with_env(&["run", "--config", bad.to_str().unwrap()], &env);
    assert_ne!(code, 0, "{out}{err}");
    outputs.push(("failed cdcd run", format!("{out}{err}")));

    let encoded = PG_PASSWORD.replace('/', "%2F");
    for (what, text) in &outputs {
        for secret in [PG_PASSWORD, KAFKA_PASSWORD, encoded.as_str()] {
            let hits: Vec<&str> = text.lines().filter(|l| l.contains(secret)).collect();
            assert!(hits.is_empty(), "{what} shows a secret:\n{}", hits.join("\n"));
        }
    }
    eprintln!(
        "searched {} lines of output: no secret found",
        outputs.iter().map(|(_, t)| t.lines().count()).sum::<usize>()
    );
    drop(db);
}
