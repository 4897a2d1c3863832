//! What each connector is doing, shared by whoever reports it: the pipeline and the sources set
//! it (starting, snapshotting, streaming, retrying, stopped, failed); systemd readiness and the
//! watchdog read it. The pipeline's loop also marks each turn (`alive`), so a connector whose
//! task is stuck can be told from one that is merely waiting for a broker.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    Starting,
    /// Another process runs the connector (Kafka checkpoint store); this one waits to take over.
    Standby,
    Snapshotting,
    Streaming,
    /// The source session ended with a transient error; waiting to reconnect.
    Retrying,
    Stopped,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Starting => "starting",
            State::Standby => "standby",
            State::Snapshotting => "snapshotting",
            State::Streaming => "streaming",
            State::Retrying => "retrying",
            State::Stopped => "stopped",
            State::Failed => "failed",
        }
    }

    /// Which process runs the connector, for `/status` and the `active` gauge: `standby` while
    /// another process runs it (Kafka checkpoint store), `stopped` once it ended.
    pub fn role(self) -> &'static str {
        match self {
            State::Standby => "standby",
            State::Stopped | State::Failed => "stopped",
            _ => "active",
        }
    }

    /// Doing its job: what readiness means. A standby is doing its job (waiting to take
    /// over); were it not ready, a rolling update would wait on it for ever.
    pub fn is_ready(self) -> bool {
        matches!(self, State::Snapshotting | State::Streaming | State::Standby)
    }
}

struct Inner {
    state: State,
    since: Instant,
    alive: Instant,
    snapshot_estimate: Option<u64>,
    backlog: Option<Backlog>,
}

/// How far the server's log has run ahead of what a connector confirmed, as the server says.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Log bytes the server wrote after the confirmed position (PostgreSQL: current WAL minus
    /// the slot's `confirmed_flush_lsn`; MySQL: binlog end minus the checkpoint's file offset).
    pub behind_bytes: u64,
    /// Log bytes the server keeps because of this connector (PostgreSQL: WAL from the slot's
    /// `restart_lsn` on). `None` where the reader does not hold the log (MySQL binlogs are
    /// kept by expiry settings, not by readers).
    pub retained_bytes: Option<u64>,
}

/// One connector's status.
pub struct ConnectorStatus {
    inner: Mutex<Inner>,
}

impl ConnectorStatus {
    fn new() -> Self {
        let now = Instant::now();
        ConnectorStatus {
            inner: Mutex::new(Inner {
                state: State::Starting,
                since: now,
                alive: now,
                snapshot_estimate: None,
                backlog: None,
            }),
        }
    }

    pub fn set(&self, state: State) {
        let mut g = self.lock();
        if g.state != state {
            g.state = state;
            g.since = Instant::now();
        }
        g.alive = Instant::now();
    }

    pub fn state(&self) -> State {
        self.lock().state
    }

    /// The pipeline loop came round: the connector's task is not stuck.
    pub fn alive(&self) {
        self.lock().alive = Instant::now();
    }

    /// The server's estimate of the rows the running snapshot will read.
    pub fn set_snapshot_estimate(&self, rows: u64) {
        self.lock().snapshot_estimate = Some(rows);
    }

    pub fn snapshot_estimate(&self) -> Option<u64> {
        self.lock().snapshot_estimate
    }

    /// The latest backlog read from the server; `None` when it could not be read.
    pub fn set_backlog(&self, backlog: Option<Backlog>) {
        self.lock().backlog = backlog;
    }

    pub fn backlog(&self) -> Option<Backlog> {
        self.lock().backlog
    }

    /// Time since the pipeline loop last came round.
    pub fn silent_for(&self) -> Duration {
        self.lock().alive.elapsed()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Every connector of the process, by name.
#[derive(Default)]
pub struct Registry {
    connectors: Mutex<BTreeMap<String, Arc<ConnectorStatus>>>,
}

impl Registry {
    pub fn new() -> Arc<Self> {
        Arc::new(Registry::default())
    }

    pub fn add(&self, name: &str) -> Arc<ConnectorStatus> {
        let status = Arc::new(ConnectorStatus::new());
        self.connectors.lock().unwrap_or_else(|e| e.into_inner()).insert(name.to_string(), status.clone());
        status
    }

    pub fn remove(&self, name: &str) {
        self.connectors.lock().unwrap_or_else(|e| e.into_inner()).remove(name);
    }

    pub fn connectors(&self) -> Vec<(String, Arc<ConnectorStatus>)> {
        self.connectors.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(n, s)| (n.clone(), s.clone())).collect()
    }

    pub fn states(&self) -> Vec<(String, State)> {
        self.connectors.lock().unwrap_or_else(|e| e.into_inner()).iter().map(|(n, s)| (n.clone(), s.state())).collect()
    }

    /// Every connector snapshotting or streaming.
    pub fn all_ready(&self) -> bool {
        let states = self.states();
        !states.is_empty() && states.iter().all(|(_, s)| s.is_ready())
    }

    /// The connectors whose loop has not come round within `bound`, except those that ended.
    pub fn stuck(&self, bound: Duration) -> Vec<String> {
        self.connectors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .filter(|(_, s)| !matches!(s.state(), State::Stopped | State::Failed) && s.silent_for() > bound)
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// One line for systemd's STATUS=: "2 connectors: 1 streaming, 1 snapshotting".
    pub fn summary(&self) -> String {
        let states = self.states();
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, s) in &states {
            *counts.entry(s.as_str()).or_default() += 1;
        }
        let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
        format!("{} connector(s): {}", states.len(), parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_connector_snapshots_or_streams() {
        let r = Registry::new();
        let a = r.add("a");
        let b = r.add("b");
        assert!(!r.all_ready());
        a.set(State::Streaming);
        b.set(State::Snapshotting);
        assert!(r.all_ready());
        assert_eq!(r.summary(), "2 connector(s): 1 snapshotting, 1 streaming");
        b.set(State::Retrying);
        assert!(!r.all_ready());
    }

    #[test]
    fn a_connector_whose_loop_stops_turning_is_stuck_unless_it_ended() {
        let r = Registry::new();
        let a = r.add("a");
        let b = r.add("b");
        b.set(State::Failed);
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(r.stuck(Duration::from_millis(10)), ["a"]);
        a.alive();
        assert!(r.stuck(Duration::from_millis(10)).is_empty());
    }
}
