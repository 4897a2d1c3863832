//! Runs every configured connector as its own task (own slot, checkpoint, failure domain),
//! reports their state to systemd ([`crate::notify`]), turns SIGTERM/SIGINT into a graceful
//! stop (stop reading, drain to the broker, checkpoint), and SIGHUP into a reload of the
//! configuration path ([`crate::reload`]): new connectors start, removed ones drain and stop,
//! changed ones drain and start again with their new settings, the others are not touched.
//! The process exits non-zero once every connector has stopped and any of them failed, so a
//! supervisor notices.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;
use tokio::task::{Id, JoinSet};

use crate::config::ConnectorConfig;
use crate::core::status::Registry;
use crate::error::Error;
use crate::http::{serve, Endpoints};
use crate::metrics::Metrics;
use crate::notify::{supervise, Notifier};
use crate::pipeline::{run_connector, ConnectorEnd, DRAIN_TIMEOUT};
use crate::source::TaskGuard;

/// Runs `configs` (loaded from `path`) until stopped; `http` is where to serve health,
/// readiness, status and metrics.
pub async fn run(path: PathBuf, configs: Vec<ConnectorConfig>, http: Option<SocketAddr>) -> Result<(), Error> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let notifier = Arc::new(Notifier::from_env());
    let registry = Registry::new();
    // Metrics are kept only when something can read them.
    let metrics = http.map(|_| Metrics::new());
    if let (Some(addr), Some(metrics)) = (http, &metrics) {
        let endpoints = Arc::new(Endpoints { registry: registry.clone(), metrics: metrics.clone() });
        serve(addr, endpoints, stop_rx.clone()).await.map_err(|e| {
            Error::Config(crate::config::ConfigError::Other(format!(
                "--http {addr}: cannot listen there ({e}); pick a free address, e.g. 127.0.0.1:9187"
            )))
        })?;
    }
    let signals = Signals::new().map_err(|e| Error::Runtime(format!("cannot install signal handlers: {e}")))?;
    tokio::spawn(supervise(notifier.clone(), registry.clone(), stop_rx.clone()));
    let mut connectors = Connectors {
        registry,
        metrics,
        notifier: notifier.clone(),
        tasks: JoinSet::new(),
        names: HashMap::new(),
        live: BTreeMap::new(),
        pending: BTreeMap::new(),
        removing: BTreeSet::new(),
        failures: BTreeMap::new(),
    };
    for cfg in configs {
        connectors.spawn(cfg);
    }
    connectors.supervise(&path, signals, stop_tx).await
}

struct Signals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
    hup: tokio::signal::unix::Signal,
}

impl Signals {
    fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: signal(SignalKind::hangup())?,
        })
    }
}

/// What a connector task returns: its name and how it ended.
type Ended = (String, ConnectorEnd);

/// A connector that ended with an error, and the watch that keeps its backlog gauges current
/// while it stays down.
struct Failed {
    error: Error,
    _backlog: Option<TaskGuard>,
}

/// A running connector task and how to stop it.
struct Live {
    cfg: ConnectorConfig,
    stop: watch::Sender<bool>,
}

struct Connectors {
    registry: Arc<Registry>,
    metrics: Option<Arc<Metrics>>,
    notifier: Arc<Notifier>,
    tasks: JoinSet<Ended>,
    /// Task id -> connector name, to name a task that panicked.
    names: HashMap<Id, String>,
    live: BTreeMap<String, Live>,
    /// Connectors to start once their previous task has drained and stopped (restarts).
    pending: BTreeMap<String, ConnectorConfig>,
    /// Connectors stopping because they were removed from the configuration.
    removing: BTreeSet<String>,
    /// The error each ended connector failed with; cleared when it runs again.
    failures: BTreeMap<String, Failed>,
}

impl Connectors {
    fn spawn(&mut self, cfg: ConnectorConfig) {
        let (stop, stop_rx) = watch::channel(false);
        let status = self.registry.add(&cfg.name);
        let metrics = self.metrics.clone();
        let run_cfg = cfg.clone();
        let handle = self.tasks.spawn(async move {
            let name = run_cfg.name.clone();
            let source = crate::source::for_config(&run_cfg);
            (name, run_connector(run_cfg, source, status, metrics, stop_rx).await)
        });
        self.names.insert(handle.id(), cfg.name.clone());
        self.failures.remove(&cfg.name);
        self.live.insert(cfg.name.clone(), Live { cfg, stop });
    }

    /// Until every connector has ended: signals, reloads, and connectors ending.
    async fn supervise(
        &mut self,
        path: &Path,
        mut signals: Signals,
        stop_all: watch::Sender<bool>,
    ) -> Result<(), Error> {
        let mut stopping = false;
        while !self.tasks.is_empty() || !self.pending.is_empty() {
            tokio::select! {
                _ = signals.term.recv(), if !stopping => stopping = self.stop_all(&stop_all),
                _ = signals.int.recv(), if !stopping => stopping = self.stop_all(&stop_all),
                _ = signals.hup.recv(), if !stopping => self.reload(path),
                Some(joined) = self.tasks.join_next_with_id() => self.ended(joined, stopping),
            }
        }
        let _ = stop_all.send(true);
        match std::mem::take(&mut self.failures).into_values().next() {
            Some(f) => Err(f.error),
            None => Ok(()),
        }
    }

    fn stop_all(&mut self, stop_all: &watch::Sender<bool>) -> bool {
        tracing::info!("stop requested: finishing in-flight deliveries and writing checkpoints");
        // A drain may take the whole drain timeout; ask systemd for that much and a margin.
        self.notifier.stopping(DRAIN_TIMEOUT + Duration::from_secs(15));
        self.pending.clear();
        for live in self.live.values() {
            let _ = live.stop.send(true);
        }
        let _ = stop_all.send(true);
        true
    }

    fn ended(&mut self, joined: Result<(Id, Ended), tokio::task::JoinError>, stopping: bool) {
        let (name, end) = match joined {
            Ok((id, (name, end))) => {
                self.names.remove(&id);
                (name, end)
            }
            Err(e) => {
                let name = self.names.remove(&e.id()).unwrap_or_default();
                (
                    name,
                    ConnectorEnd { result: Err(Error::Runtime(format!("connector task failed: {e}"))), backlog: None },
                )
            }
        };
        self.live.remove(&name);
        if let Err(e) = end.result {
            // One connector failing does not stop the others.
            tracing::error!(connector = %name, "connector stopped: {e}");
            self.failures.insert(name.clone(), Failed { error: e, _backlog: end.backlog });
        }
        if let Some(cfg) = self.pending.remove(&name) {
            if !stopping {
                tracing::info!(connector = %name, "starting with its new settings");
                self.spawn(cfg);
                return;
            }
        }
        if self.removing.remove(&name) {
            self.forget(&name);
            tracing::info!(connector = %name, "removed from the configuration: stopped");
        }
    }

    /// Drops a connector from status and metrics; its checkpoint, slot and topics stay.
    fn forget(&mut self, name: &str) {
        self.registry.remove(name);
        self.failures.remove(name);
        if let Some(m) = &self.metrics {
            m.forget(name);
        }
    }

    fn reload(&mut self, path: &Path) {
        self.notifier.reloading();
        tracing::info!(config = %path.display(), "SIGHUP: reloading the configuration");
        let loaded = match crate::config::load(path) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("reload rejected, every connector keeps running as it was: {e}");
                self.notifier.ready(&format!("reload rejected: {e}"));
                return;
            }
        };
        let loaded_names: BTreeSet<String> = loaded.iter().map(|c| c.name.clone()).collect();
        // What runs now, or will once a restart comes round; connectors on their way out do not count.
        let mut running: BTreeMap<String, ConnectorConfig> = self
            .live
            .iter()
            .filter(|(n, _)| !self.removing.contains(*n))
            .map(|(n, l)| (n.clone(), l.cfg.clone()))
            .collect();
        running.extend(self.pending.iter().map(|(n, c)| (n.clone(), c.clone())));
        let plan = crate::reload::plan(&running, loaded);
        tracing::info!(%plan, "configuration reloaded");
        for name in plan.stop {
            self.pending.remove(&name);
            if let Some(live) = self.live.get(&name) {
                let _ = live.stop.send(true);
                self.removing.insert(name);
            }
        }
        for cfg in plan.restart {
            if let Some(live) = self.live.get(&cfg.name) {
                let _ = live.stop.send(true);
            }
            self.pending.insert(cfg.name.clone(), cfg);
        }
        for cfg in plan.start {
            if self.live.contains_key(&cfg.name) {
                // Removed by an earlier reload and still draining: start again once it stopped.
                self.removing.remove(&cfg.name);
                self.pending.insert(cfg.name.clone(), cfg);
            } else {
                self.spawn(cfg);
            }
        }
        // Connectors that had ended and are no longer configured.
        let ended: Vec<String> = self.failures.keys().filter(|n| !loaded_names.contains(*n)).cloned().collect();
        for name in ended {
            self.forget(&name);
        }
        self.notifier.ready(&self.registry.summary());
    }
}
