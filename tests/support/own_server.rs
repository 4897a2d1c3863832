//! A dedicated PostgreSQL, MariaDB or MySQL 9.7 instance for one test (restarts, TLS), on its
//! own port and in its own directory, so the shared servers of the other tests are never
//! disturbed. (MySQL keeps its data inside scripts/mysql.sh's chroot, one directory per port.)

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use super::wait_until;

/// One dedicated server instance, stopped when dropped.
pub struct OwnServer {
    kind: &'static str,
    dir: PathBuf,
    pub port: u16,
    env: Vec<(String, String)>,
    _scratch: tempfile::TempDir,
}

impl OwnServer {
    pub fn start(kind: &'static str, port: u16) -> OwnServer {
        OwnServer::start_with(kind, port, &[])
    }

    /// Starts with extra environment for the start script (e.g. `PG_TLS_DIR`, which the script
    /// reads when it creates the instance).
    pub fn start_with(kind: &'static str, port: u16, env: &[(&str, &str)]) -> OwnServer {
        let scratch = tempfile::tempdir().unwrap();
        // PostgreSQL runs as `postgres` when we are root: the directory must be reachable.
        Command::new("chmod").arg("755").arg(scratch.path()).status().unwrap();
        let env = env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let s = OwnServer { kind, dir: scratch.path().join("data"), port, env, _scratch: scratch };
        s.up();
        s
    }

    /// The instance's data directory (its Unix socket lives there too).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn script(&self, args: &[&str]) {
        let script = format!("{}/scripts/{}.sh", env!("CARGO_MANIFEST_DIR"), self.kind);
        let out = Command::new("bash").arg(script).args(args).envs(self.env.iter().cloned()).output().unwrap();
        assert!(out.status.success(), "{} {args:?}: {}", self.kind, String::from_utf8_lossy(&out.stderr));
    }

    pub fn up(&self) {
        let port = self.port.to_string();
        match self.kind {
            "pg" => self.script(&["start", self.dir.to_str().unwrap(), &port, "logical"]),
            _ => self.script(&["start", self.dir.to_str().unwrap(), &port, "7"]),
        }
    }

    /// PostgreSQL: `pg_ctl stop -m <mode>`; MariaDB and MySQL: "fast" is a clean shutdown,
    /// "immediate" SIGKILLs the server.
    pub fn down(&self, mode: &str) {
        let dir = self.dir.to_str().unwrap();
        match (self.kind, mode) {
            ("pg", _) => {
                let st = pg_ctl_stop(dir, mode).unwrap();
                assert!(st.status.success(), "pg_ctl stop: {}", String::from_utf8_lossy(&st.stderr));
            }
            (_, "fast") => self.script(&["stop", dir]),
            _ => {
                let pid_file = if self.kind == "mysql" { "mysqld.pid" } else { "mariadbd.pid" };
                let pid = std::fs::read_to_string(self.dir.join(pid_file)).unwrap();
                Command::new("kill").args(["-9", pid.trim()]).status().unwrap();
                let gone =
                    wait_until(Duration::from_secs(20), || !Path::new(&format!("/proc/{}", pid.trim())).exists());
                assert!(gone, "the server did not die");
                let _ = std::fs::remove_file(self.dir.join("mysql.sock"));
                if self.kind == "mysql" {
                    // scripts/mysql.sh starts the server unless its pid file names a live one.
                    let _ = std::fs::remove_file(self.dir.join(pid_file));
                }
            }
        }
    }

    /// A streaming standby of this PostgreSQL through the physical slot `slot`, syncing
    /// failover slots (17+); `scripts/pg.sh standby`.
    pub fn standby(&self, port: u16, slot: &str) -> OwnServer {
        assert_eq!(self.kind, "pg");
        let scratch = tempfile::tempdir().unwrap();
        Command::new("chmod").arg("755").arg(scratch.path()).status().unwrap();
        let s =
            OwnServer { kind: "pg", dir: scratch.path().join("data"), port, env: self.env.clone(), _scratch: scratch };
        let port = port.to_string();
        s.script(&["standby", s.dir.to_str().unwrap(), &port, self.dir.to_str().unwrap(), slot]);
        s
    }

    /// Promotes a standby to primary and waits until it takes writes.
    pub fn promote(&self) {
        self.script(&["promote", self.dir.to_str().unwrap()]);
    }

    pub fn url(&self) -> String {
        match self.kind {
            "pg" => format!("postgres://cdcd:cdcd@127.0.0.1:{}", self.port),
            _ => format!("mysql://cdcd:cdcd@127.0.0.1:{}", self.port),
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let dir = self.dir.to_str().unwrap_or_default().to_string();
        match self.kind {
            "pg" => {
                let _ = pg_ctl_stop(&dir, "immediate");
            }
            _ => {
                let _ = Command::new("bash")
                    .arg(format!("{}/scripts/{}.sh", env!("CARGO_MANIFEST_DIR"), self.kind))
                    .args(["stop", &dir])
                    .output();
            }
        }
    }
}

/// `pg_ctl stop -m MODE -w` as the `postgres` user (PostgreSQL refuses to run as root).
fn pg_ctl_stop(dir: &str, mode: &str) -> std::io::Result<std::process::Output> {
    // scripts/pg.sh records which PostgreSQL the cluster was made with (PG_MAJOR).
    let bin = std::fs::read_to_string(format!("{dir}/.cdcd-bin"))
        .map(|b| b.trim().to_string())
        .unwrap_or_else(|_| "/usr/lib/postgresql/15/bin".to_string());
    Command::new("runuser")
        .args(["-u", "postgres", "--", &format!("{bin}/pg_ctl"), "-D", dir, "-m", mode, "-w", "stop"])
        .output()
}
