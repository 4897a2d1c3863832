//! systemd integration without systemd as PID 1: the shipped unit file passes
//! `systemd-analyze verify` with no output and its offline security exposure is low; a real
//! `cdcd run` talks the notification protocol to a datagram socket standing in for systemd:
//! READY=1 once the connector streams, STATUS=, WATCHDOG=1 at half of WATCHDOG_USEC, and
//! RELOADING=1 (with MONOTONIC_USEC) then READY=1 on SIGHUP, STOPPING=1 with EXTEND_TIMEOUT_USEC
//! on SIGTERM.

mod support;

use std::os::unix::net::UnixDatagram;
use std::process::Command;
use std::time::{Duration, Instant};

use support::*;

const UNIT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/systemd/cdcd.service");

/// The unit with ExecStart pointing at the binary under test (verify checks that it exists).
fn unit_under_test(dir: &std::path::Path) -> std::path::PathBuf {
    let text = std::fs::read_to_string(UNIT).unwrap().replace("/usr/local/bin/cdcd", env!("CARGO_BIN_EXE_cdcd"));
    let path = dir.join("cdcd.service");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn the_unit_file_verifies_clean_and_is_hardened() {
    let dir = tempfile::tempdir().unwrap();
    let unit = unit_under_test(dir.path());
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .expect("systemd-analyze (scripts/deps.sh installs systemd)");
    // verify exits 0 even with warnings: any output at all is a finding.
    let said = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && said.trim().is_empty(), "systemd-analyze verify:\n{said}");

    let out = Command::new("systemd-analyze").args(["security", "--offline=true"]).arg(&unit).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().find(|l| l.contains("Overall exposure level")).unwrap_or_else(|| panic!("{text}"));
    let score: f64 = line
        .split(':')
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no score in `{line}`"));
    eprintln!("systemd-analyze security --offline=true: {}", line.trim());
    assert!(score <= 2.0, "exposure {score} (want <= 2.0, \"OK\"):\n{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn notify_socket_gets_ready_watchdog_and_stopping_from_a_real_run() {
    let db = TestDb::create("systemd_notify").await;
    let c = db.client().await;
    c.batch_execute("CREATE TABLE t (id int PRIMARY KEY); INSERT INTO t VALUES (1);").await.unwrap();
    let rig = Rig::new(&db.url, "notify", r#"["public.t"]"#, "");
    let sock_path = rig.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let daemon = Daemon::start_with_env(
        &rig.cfg,
        &[("NOTIFY_SOCKET", sock_path.to_str().unwrap()), ("WATCHDOG_USEC", "2000000")],
    );

    let mut got: Vec<String> = Vec::new();
    let mut buf = [0u8; 4096];
    let mut receive_until = |got: &mut Vec<String>, done: &dyn Fn(&[String]) -> bool, secs: u64| {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while !done(got) && Instant::now() < deadline {
            if let Ok(n) = sock.recv(&mut buf) {
                got.push(String::from_utf8_lossy(&buf[..n]).into_owned());
            }
        }
    };
    let has = |got: &[String], what: &str| got.iter().any(|m| m.lines().any(|l| l == what));
    receive_until(&mut got, &|g| has(g, "READY=1") && g.iter().filter(|m| *m == "WATCHDOG=1").count() >= 2, 60);
    assert!(has(&got, "READY=1"), "no READY=1: {got:?}\n{}", daemon.logs());
    assert!(daemon.logs().contains("streaming"), "READY=1 must follow streaming:\n{}", daemon.logs());
    let ready = got.iter().find(|m| m.contains("READY=1")).unwrap();
    assert!(ready.contains("STATUS=1 connector(s): 1 streaming"), "{ready}");
    assert!(got.iter().filter(|m| *m == "WATCHDOG=1").count() >= 2, "watchdog pings: {got:?}");

    let pid = daemon.pid();
    // `systemctl reload`: RELOADING=1 with the monotonic time, then READY=1 once applied.
    unsafe {
        libc::kill(pid as i32, libc::SIGHUP);
    }
    let before = got.len();
    receive_until(&mut got, &|g| g[before..].iter().any(|m| m.contains("READY=1")), 30);
    let after: Vec<&String> = got[before..].iter().filter(|m| !m.starts_with("WATCHDOG")).collect();
    assert!(after.len() >= 2 && after[0].contains("RELOADING=1") && after[0].contains("MONOTONIC_USEC="), "{after:?}");
    assert!(after[1].contains("READY=1"), "{after:?}");
    assert!(daemon.logs().contains("unchanged [notify]"), "{}", daemon.logs());

    unsafe {
        libc::kill(pid as i32, libc::SIGTERM);
    }
    receive_until(&mut got, &|g| has(g, "STOPPING=1"), 30);
    let stopping = got.iter().find(|m| m.contains("STOPPING=1")).unwrap_or_else(|| panic!("no STOPPING=1: {got:?}"));
    assert!(stopping.contains("EXTEND_TIMEOUT_USEC="), "{stopping}");
    assert_eq!(daemon.stop(), Some(0));
    eprintln!("notifications: {got:?}");
}
