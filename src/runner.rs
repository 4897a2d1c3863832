//! Runs every configured connector as its own task (own slot, checkpoint, failure domain) and
//! turns SIGTERM/SIGINT into a graceful stop: stop reading, drain to the broker, checkpoint.

use tokio::sync::watch;

use crate::config::ConnectorConfig;
use crate::error::Error;
use crate::pipeline::run_connector;

pub async fn run(configs: Vec<ConnectorConfig>) -> Result<(), Error> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("stop requested: finishing in-flight deliveries and writing checkpoints");
        let _ = stop_tx.send(true);
    });
    let mut tasks = tokio::task::JoinSet::new();
    for cfg in configs {
        let stop = stop_rx.clone();
        tasks.spawn(async move {
            let name = cfg.name.clone();
            let source = crate::source::for_config(&cfg);
            (name, run_connector(cfg, source, stop).await)
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
