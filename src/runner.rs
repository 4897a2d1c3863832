//! Runs every configured connector as its own task (own slot, checkpoint, failure domain),
//! reports their state to systemd ([`crate::notify`]), and turns SIGTERM/SIGINT into a graceful
//! stop: stop reading, drain to the broker, checkpoint. The process exits non-zero once every
//! connector has stopped and any of them failed, so a supervisor notices.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::config::ConnectorConfig;
use crate::core::status::Registry;
use crate::error::Error;
use crate::http::{serve, Endpoints};
use crate::metrics::Metrics;
use crate::notify::{supervise, Notifier};
use crate::pipeline::{run_connector, DRAIN_TIMEOUT};

/// Runs `configs` until stopped; `http` is where to serve health, readiness, status and metrics.
pub async fn run(configs: Vec<ConnectorConfig>, http: Option<SocketAddr>) -> Result<(), Error> {
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
    {
        let notifier = notifier.clone();
        tokio::spawn(async move {
            wait_for_signal().await;
            tracing::info!("stop requested: finishing in-flight deliveries and writing checkpoints");
            // A drain may take the whole drain timeout; ask systemd for that much and a margin.
            notifier.stopping(DRAIN_TIMEOUT + Duration::from_secs(15));
            let _ = stop_tx.send(true);
        });
    }
    tokio::spawn(supervise(notifier.clone(), registry.clone(), stop_rx.clone()));
    let mut tasks = tokio::task::JoinSet::new();
    for cfg in configs {
        let stop = stop_rx.clone();
        let status = registry.add(&cfg.name);
        let metrics = metrics.clone();
        tasks.spawn(async move {
            let name = cfg.name.clone();
            let source = crate::source::for_config(&cfg);
            (name, run_connector(cfg, source, status, metrics, stop).await)
        });
    }
    let mut first_error = None;
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((_, Ok(()))) => {}
            Ok((name, Err(e))) => {
                // One connector failing does not stop the others.
                tracing::error!(connector = %name, "connector stopped: {e}");
                first_error.get_or_insert(e);
            }
            Err(e) => {
                first_error.get_or_insert(Error::Runtime(format!("connector task failed: {e}")));
            }
        }
    }
    first_error.map_or(Ok(()), Err)
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (signal(SignalKind::terminate()), signal(SignalKind::interrupt())) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
