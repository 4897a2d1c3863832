//! One connector's data path: source -> envelope -> sink, with acknowledgements flowing back
//! through the tracker to the checkpoint and from there to the source (e.g. PostgreSQL's
//! `confirmed_flush_lsn`). Also the session loop: transient source errors restart the session
//! from the last checkpoint after a backoff; definite ones stop the connector.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::config::ConnectorConfig;
use crate::core::acks::AckTracker;
use crate::core::checkpoint::{Checkpoint, CheckpointError, CheckpointStore, FileCheckpointStore, SourceIdentity};
use crate::core::position::Position;
use crate::core::snapshot::SnapshotProgress;
use crate::core::status::{ConnectorStatus, State};
use crate::emit::Emitter;
use crate::error::{Error, SessionError, SinkError};
use crate::metrics::{ConnectorMetrics, Metrics};
use crate::sink::Sink;
use crate::source::{BacklogProbe, Session, Source, TaskGuard};

/// How long a graceful stop waits for the broker to acknowledge what was already sent.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The last checkpoint written and when, for the checkpoint-age metric.
type LastWrite = Arc<Mutex<(Option<Position>, std::time::Instant)>>;

/// Writes confirmed progress to the store and tells the source what is now durable.
struct Checkpointer {
    store: FileCheckpointStore,
    connector: String,
    tracker: Arc<AckTracker>,
    identity: Arc<Mutex<Option<SourceIdentity>>>,
    durable: watch::Sender<Option<Position>>,
    last_write: LastWrite,
    /// The snapshot progress to write with the next position: the loaded checkpoint's until the
    /// tracker confirms newer.
    snapshot: Option<SnapshotProgress>,
}

/// How often delivered snapshot progress is looked for, to checkpoint it without waiting for the
/// checkpoint interval.
const SNAPSHOT_CHECKPOINT_POLL: Duration = Duration::from_millis(10);

impl Checkpointer {
    /// Whether the tracker confirmed snapshot progress newer than the last checkpoint's.
    fn snapshot_behind(&self) -> bool {
        let saved = self.snapshot.as_ref().map_or(0, |s| s.step);
        self.tracker.confirmed_progress().is_some_and(|p| p.step > saved)
    }

    fn save(&mut self) -> Result<(), Error> {
        let Some(position) = self.tracker.confirmed() else { return Ok(()) };
        let Some(source) = self.identity.lock().unwrap_or_else(|e| e.into_inner()).clone() else { return Ok(()) };
        if let Some(p) = self.tracker.confirmed_progress() {
            if self.snapshot.as_ref().is_none_or(|s| p.step > s.step) {
                self.snapshot = Some((*p).clone());
            }
        }
        let cp = Checkpoint {
            version: Checkpoint::VERSION,
            connector: self.connector.clone(),
            position: position.clone(),
            source,
            snapshot: self.snapshot.clone(),
        };
        let wrote = tokio::task::block_in_place(|| self.store.save(&cp))?;
        if let Some(s) = &self.snapshot {
            self.tracker.set_durable_step(s.step);
        }
        if wrote {
            *self.last_write.lock().unwrap_or_else(|e| e.into_inner()) =
                (Some(position.clone()), std::time::Instant::now());
            tracing::debug!(connector = %self.connector, %position, "checkpoint written");
            self.durable.send_replace(Some(position));
        }
        Ok(())
    }
}

/// How often the server is asked for the connector's backlog (lag in bytes, retained WAL).
const BACKLOG_INTERVAL: Duration = Duration::from_secs(10);
const BACKLOG_MAX_BACKOFF: Duration = Duration::from_secs(600);

/// Keeps `status`'s backlog current; a read that fails clears it (no stale figure) and is
/// logged at debug level only, since the session reports a server that is really gone.
async fn watch_backlog(
    mut probe: Box<dyn BacklogProbe>,
    status: Arc<ConnectorStatus>,
    durable: watch::Receiver<Option<Position>>,
) {
    // Failed reads back off (up to BACKLOG_MAX_BACKOFF): the watch outlives a connector that
    // failed, perhaps on its login, and a server may lock an account that keeps failing one.
    let (mut wait, mut failed) = (Duration::ZERO, 0u32);
    loop {
        tokio::time::sleep(wait).await;
        let confirmed = durable.borrow().clone();
        match probe.read(confirmed.as_ref()).await {
            Ok(b) => {
                status.set_backlog(Some(b));
                (wait, failed) = (BACKLOG_INTERVAL, 0);
            }
            Err(e) => {
                tracing::debug!(error = %e, "reading the source's backlog failed");
                status.set_backlog(None);
                // A slot being made, a server restarting: the first few retry at the usual pace.
                failed += 1;
                wait = if failed <= 3 { BACKLOG_INTERVAL } else { (wait * 2).min(BACKLOG_MAX_BACKOFF) };
            }
        }
    }
}

/// Runs one connector until shutdown (Ok) or a definite error, keeping `status` current.
/// After a session ended early: waits until every record it sent is acknowledged (or refused),
/// so the tracker holds only the next session's transactions. False when shutdown came first.
async fn settle_in_flight(
    tracker: &AckTracker,
    emitter: &mut Emitter,
    ck: &mut Checkpointer,
    shutdown: &watch::Receiver<bool>,
    name: &str,
) -> Result<bool, Error> {
    while tracker.in_flight() > 0 && !*shutdown.borrow() {
        emitter.sink_mut().drain(tracker, Duration::from_secs(5)).await;
        emitter.health().map_err(|source| Error::Sink { connector: name.to_string(), source })?;
        ck.save()?;
    }
    if *shutdown.borrow() {
        ck.save()?;
        return Ok(false);
    }
    Ok(true)
}

/// How a connector ended.
pub struct ConnectorEnd {
    pub result: Result<(), Error>,
    /// After a failure, the task still reading the source's backlog: a failed connector's slot
    /// keeps WAL, and its gauges must keep saying how much for as long as it stays down (the
    /// runner drops this when the connector restarts or leaves the configuration).
    pub backlog: Option<TaskGuard>,
}

pub async fn run_connector(
    cfg: ConnectorConfig,
    source: Box<dyn Source>,
    status: Arc<ConnectorStatus>,
    metrics: Option<Arc<Metrics>>,
    shutdown: watch::Receiver<bool>,
) -> ConnectorEnd {
    let (durable_tx, durable_rx) = watch::channel(None);
    // Asking the server how far ahead its log is costs a query, so only when metrics are served.
    let backlog = metrics
        .as_ref()
        .map(|_| TaskGuard(tokio::spawn(watch_backlog(source.backlog_probe(), status.clone(), durable_rx))));
    let result = run_sessions(cfg, source, status.clone(), metrics, shutdown, durable_tx).await;
    status.set(if result.is_ok() { State::Stopped } else { State::Failed });
    ConnectorEnd { backlog: backlog.filter(|_| result.is_err()), result }
}

async fn run_sessions(
    cfg: ConnectorConfig,
    source: Box<dyn Source>,
    status: Arc<ConnectorStatus>,
    metrics: Option<Arc<Metrics>>,
    shutdown: watch::Receiver<bool>,
    durable_tx: watch::Sender<Option<Position>>,
) -> Result<(), Error> {
    let name = cfg.name.clone();
    let mut store = FileCheckpointStore::open(&cfg.checkpoint_dir())?;
    let initial = store.load()?;
    if let Some(cp) = &initial {
        if cp.connector != name {
            return Err(CheckpointError::WrongConnector {
                path: store.file().to_path_buf(),
                found: cp.connector.clone(),
                expected: name,
            }
            .into());
        }
        tracing::info!(connector = %name, position = %cp.position, "resuming from checkpoint");
    }
    let tracker = Arc::new(AckTracker::new());
    let sink = Sink::build(&cfg, tracker.clone()).map_err(|source| Error::Sink { connector: name.clone(), source })?;
    let identity = Arc::new(Mutex::new(initial.as_ref().map(|c| c.source.clone())));
    durable_tx.send_replace(initial.as_ref().map(|c| c.position.clone()));
    let durable_rx = durable_tx.subscribe();
    let last_write: LastWrite =
        Arc::new(Mutex::new((initial.as_ref().map(|c| c.position.clone()), std::time::Instant::now())));
    let counters = match &metrics {
        Some(m) => {
            let (t, lw) = (tracker.clone(), last_write.clone());
            let age = move || {
                let (saved, at) = lw.lock().unwrap_or_else(|e| e.into_inner()).clone();
                if t.confirmed() == saved {
                    0.0
                } else {
                    at.elapsed().as_secs_f64()
                }
            };
            m.watch(&name, tracker.clone(), status.clone(), Arc::new(age));
            m.connector(&name, cfg.topic_prefix())
        }
        None => ConnectorMetrics::default(),
    };
    let mut ck = Checkpointer {
        store,
        connector: name.clone(),
        tracker: tracker.clone(),
        identity: identity.clone(),
        durable: durable_tx,
        last_write,
        snapshot: initial.as_ref().and_then(|c| c.snapshot.clone()),
    };
    let mut emitter = Emitter::new(sink, tracker.clone(), identity, status.clone(), counters.clone());
    match cfg.schema_registry() {
        Some(r) => {
            let client = crate::encode::registry::RegistryClient::new(&r.settings(), r.timeout())
                .map_err(|e| Error::Config(crate::config::ConfigError::Other(format!("connector `{name}`: {e}"))))?;
            emitter.set_avro(crate::encode::subjects::SchemaIdCache::new(client, r.subject_name_strategy));
        }
        None => emitter.set_encoding(cfg.encode()),
    }
    let unacknowledged = |left: u64| {
        Error::Runtime(format!(
            "connector `{name}`: stopped with {left} events not yet acknowledged by the broker; they will be re-read from the checkpoint on the next start"
        ))
    };

    let mut backoff = Duration::from_secs(1);
    loop {
        let checkpoint = ck.store.load()?;
        let started = tokio::time::Instant::now();
        let result = {
            let session = source.run_session(Session {
                checkpoint,
                emitter: &mut emitter,
                durable: durable_rx.clone(),
                shutdown: shutdown.clone(),
            });
            tokio::pin!(session);
            let mut tick = tokio::time::interval(cfg.checkpoint_interval());
            // A delivered snapshot chunk is checkpointed at once, so a crash re-reads at most
            // the chunks still in flight.
            let mut chunk_tick = tokio::time::interval(SNAPSHOT_CHECKPOINT_POLL);
            chunk_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    r = &mut session => break r,
                    _ = chunk_tick.tick() => {
                        if ck.snapshot_behind() {
                            ck.save()?;
                        }
                    }
                    _ = tick.tick() => {
                        status.alive();
                        ck.save()?;
                        if let Some(reason) = tracker.failure() {
                            break Err(SessionError::Sink(SinkError::Delivery(reason)));
                        }
                        if let Some(reason) = tracker.take_replay() {
                            break Err(SessionError::Sink(SinkError::Replay(reason)));
                        }
                    }
                }
            }
        };
        emitter.end_session();
        let left = emitter.sink_mut().drain(&tracker, DRAIN_TIMEOUT).await;
        ck.save()?;
        match result {
            Ok(()) => {
                if left > 0 {
                    return Err(unacknowledged(left));
                }
                tracing::info!(connector = %name, events = emitter.events(), bytes = emitter.bytes(), position = ?tracker.confirmed(), "stopped cleanly");
                return Ok(());
            }
            Err(SessionError::Source(e)) if e.is_transient() => {
                // A session that ran a while was healthy: the next failure is a new incident
                // (a server restart), not more of the same outage, so retry soon.
                if started.elapsed() > Duration::from_secs(10) {
                    backoff = Duration::from_secs(1);
                }
                status.set(State::Retrying);
                counters.reconnect();
                tracing::warn!(connector = %name, error = %e, retry_in_secs = backoff.as_secs(), "source session ended; resuming from the last checkpoint");
                if !settle_in_flight(&tracker, &mut emitter, &mut ck, &shutdown, &name).await? {
                    return match tracker.in_flight() {
                        0 => Ok(()),
                        left => Err(unacknowledged(left)),
                    };
                }
                tracker.abandon_open();
                let mut sd = shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = sd.changed() => return Ok(()),
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
            Err(SessionError::Sink(SinkError::Replay(reason))) => {
                tracing::warn!(connector = %name, "{reason}; re-reading from the last checkpoint and sending one record at a time until past it, so that only a record too large on its own is refused (if this repeats for small records, the topic's max.message.bytes is below the producer's batch size: lower sink.properties \"batch.size\")");
                if !settle_in_flight(&tracker, &mut emitter, &mut ck, &shutdown, &name).await? {
                    return match tracker.in_flight() {
                        0 => Ok(()),
                        left => Err(unacknowledged(left)),
                    };
                }
                let until = tracker.newest_committed();
                tracker.abandon_open();
                emitter.sink_mut().replay_isolated(until);
            }
            Err(SessionError::Source(source)) => return Err(Error::Source { connector: name, source }),
            Err(SessionError::Sink(source)) => return Err(Error::Sink { connector: name, source }),
        }
    }
}
