//! The container image, run by `scripts/container_test.sh` after it builds the image from the
//! Dockerfile (hence `#[ignore]` here: the plain suite has no image). cdcd runs in the container
//! as the image's user, against the test PostgreSQL and a broker on the host, with its
//! checkpoints in a named volume; it is stopped with SIGTERM (`podman stop`) while rows are
//! being written, removed, and a new container started on the same volume; the topic must hold
//! every row: none lost, the new container resumed from the volume's checkpoint instead of
//! snapshotting again. The image's HEALTHCHECK
//! (`cdcd health`) must pass while it runs.

mod support;

use std::collections::BTreeSet;
use std::process::Command;
use std::time::Duration;

use support::*;

fn image() -> String {
    std::env::var("CDCD_CONTAINER_IMAGE").unwrap_or_else(|_| "localhost/cdcd:test".into())
}

/// `podman ARGS` with the repository's containers.conf; (success, stdout + stderr).
fn podman(args: &[&str]) -> (bool, String) {
    let conf = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/container/containers.conf");
    let out = Command::new("podman").args(args).env("CONTAINERS_CONF", conf).output().expect("run podman");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

fn logs(name: &str) -> String {
    podman(&["logs", name]).1
}

/// Removes the container and its volume however the test ends.
struct Cleanup(&'static str, &'static str);

impl Drop for Cleanup {
    fn drop(&mut self) {
        podman(&["rm", "-f", "-t", "0", self.0]);
        podman(&["volume", "rm", "-f", self.1]);
    }
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "needs the image scripts/container_test.sh builds; that script runs this test"]
async fn container_stops_on_sigterm_and_resumes_from_its_state_volume() {
    const NAME: &str = "cdcd-container-test";
    const VOLUME: &str = "cdcd-container-test-state";
    let _cleanup = Cleanup(NAME, VOLUME);
    podman(&["rm", "-f", "-t", "0", NAME]);
    podman(&["volume", "rm", "-f", VOLUME]);

    let db = TestDb::create("container").await;
    let c = db.client().await;
    c.batch_execute(
        "CREATE TABLE t (id int PRIMARY KEY, v text); INSERT INTO t SELECT g, 'snap' FROM generate_series(1, 500) g;",
    )
    .await
    .unwrap();
    let broker = Broker::start();
    // The image's default checkpoint path ($STATE_DIRECTORY/<name>, in the volume).
    let conf = tempfile::tempdir().unwrap();
    std::fs::write(
        conf.path().join("box.toml"),
        format!(
            "name = \"box\"\n[source]\ntype = \"postgres\"\nurl = \"{}\"\ntables = [\"public.t\"]\n{}[checkpoint]\ninterval_ms = 200\n",
            db.url,
            kafka_sink(&broker.bootstrap)
        ),
    )
    .unwrap();
    let mount = format!("{}:/etc/cdcd/connectors:ro", conf.path().display());
    let volume = format!("{VOLUME}:/var/lib/cdcd");
    let run = || {
        let (ok, out) = podman(&[
            "run",
            "-d",
            "--name",
            NAME,
            "--network",
            "host",
            "--stop-timeout",
            "60",
            "-e",
            "CDCD_HTTP=127.0.0.1:19187",
            "-e",
            "CDCD_LOG_FORMAT=text",
            "-v",
            &volume,
            "-v",
            &mount,
            &image(),
        ]);
        assert!(ok, "podman run: {out}");
    };
    run();
    assert!(wait_until(Duration::from_secs(90), || logs(NAME).contains("streaming")), "{}", logs(NAME));
    let (ok, out) = podman(&["healthcheck", "run", NAME]);
    assert!(ok, "HEALTHCHECK failed: {out}\n{}", logs(NAME));
    let (ok, out) = podman(&["exec", NAME, "/usr/local/bin/cdcd", "health", "--ready"]);
    assert!(ok && out.contains("ready"), "{out}");
    // PID 1 handles SIGHUP: a reload of an unchanged directory touches nothing.
    let (ok, out) = podman(&["exec", NAME, "sh", "-c", "kill -HUP 1"]);
    assert!(ok, "{out}");
    assert!(wait_until(Duration::from_secs(10), || logs(NAME).contains("unchanged [box]")), "{}", logs(NAME));
    let (_, user) = podman(&["exec", NAME, "id", "-un"]);
    assert_eq!(user.trim(), "cdcd", "runs as the image's unprivileged user");

    // Rows keep coming while the container is stopped and started again.
    let writer = {
        let c = db.client().await;
        tokio::spawn(async move {
            for id in 501..=2500 {
                c.execute("INSERT INTO t VALUES ($1, 'live')", &[&id]).await.unwrap();
                if id % 20 == 0 {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    let stopped = std::time::Instant::now();
    let (ok, out) = podman(&["stop", "-t", "60", NAME]);
    assert!(ok, "podman stop: {out}");
    let took = stopped.elapsed();
    let (_, code) = podman(&["inspect", NAME, "--format", "{{.State.ExitCode}}"]);
    let first_run = logs(NAME);
    assert_eq!(code.trim(), "0", "exit code after SIGTERM; log:\n{first_run}");
    assert!(first_run.contains("stopped cleanly"), "drained on SIGTERM:\n{first_run}");
    println!("SIGTERM to exit: {:.1} s", took.as_secs_f64());

    // A new container on the same volume, as a redeploy would do: the old one's own file
    // system goes with it, so only the volume can carry the checkpoint over.
    let (ok, out) = podman(&["rm", NAME]);
    assert!(ok, "podman rm: {out}");
    run();
    writer.await.unwrap();
    assert!(
        wait_until(Duration::from_secs(90), || logs(NAME).contains("resuming from checkpoint")),
        "the restart did not find its checkpoint in the volume:\n{}",
        logs(NAME)
    );
    let recs = read_topics(&broker.bootstrap, &["box.public.t"], 2500, 120);
    let ids: BTreeSet<i64> = recs.iter().filter_map(|r| r.value.as_ref()?["after"]["id"].as_i64()).collect();
    let missing: Vec<i64> = (1..=2500).filter(|i| !ids.contains(i)).collect();
    let snapshots = recs.iter().filter(|r| r.op() == Some("r")).count();
    println!("records {}, distinct rows {}, snapshot records {snapshots}", recs.len(), ids.len());
    assert!(
        missing.is_empty(),
        "{} rows lost, first {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(10)],
        logs(NAME)
    );
    assert_eq!(snapshots, 500, "one snapshot only: the second run resumed from the volume");
    let (ok, out) = podman(&["stop", "-t", "60", NAME]);
    assert!(ok, "{out}");
}
