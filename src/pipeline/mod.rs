//! One connector's data path: source -> envelope -> sink, with acknowledgements flowing back
//! through the tracker to the checkpoint and from there to the source (e.g. PostgreSQL's
//! `confirmed_flush_lsn`). Also the session loop: transient source errors restart the session
//! from the last checkpoint after a backoff; definite ones stop the connector.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

mod checkpointer;
mod pacing;

use checkpointer::{session_error, store_error, Checkpointer, LastWrite};
use pacing::CommitPacing;

use crate::config::ConnectorConfig;
use crate::config::KafkaSinkConfig;
use crate::core::acks::AckTracker;
use crate::core::checkpoint::{CheckpointError, CheckpointStore, FileCheckpointStore};
use crate::core::commit_gate::CommitGate;
use crate::core::position::Position;
use crate::core::status::{ConnectorStatus, State};
use crate::emit::Emitter;
use crate::error::{Error, SessionError, SinkError};
use crate::metrics::{ConnectorMetrics, Metrics};
use crate::sink::kafka::checkpoints::{ensure_topic, KafkaCheckpointStore};
use crate::sink::kafka::connection_config;
use crate::sink::kafka::leadership::Election;
use crate::sink::Sink;
use crate::source::{BacklogProbe, Session, Source, TaskGuard};

/// How long a graceful stop waits for the broker to acknowledge what was already sent.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// How often delivered snapshot progress is looked for, to checkpoint it without waiting for the
/// checkpoint interval.
const SNAPSHOT_CHECKPOINT_POLL: Duration = Duration::from_millis(10);

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
        ck.save().map_err(|e| store_error(name, e))?;
    }
    if *shutdown.borrow() {
        ck.save().map_err(|e| store_error(name, e))?;
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
    let run =
        Run { cfg: &cfg, source: source.as_ref(), status: &status, metrics: metrics.as_ref(), shutdown: &shutdown };
    let durable = Arc::new(durable_tx);
    let result = match cfg.kafka_store() {
        None => run.sessions(durable, None).await,
        Some(k) => run.elected(k, durable).await,
    };
    status.set(if result.is_ok() { State::Stopped } else { State::Failed });
    ConnectorEnd { backlog: backlog.filter(|_| result.is_err()), result }
}

/// What every session of one connector shares.
struct Run<'a> {
    cfg: &'a ConnectorConfig,
    source: &'a dyn Source,
    status: &'a Arc<ConnectorStatus>,
    metrics: Option<&'a Arc<Metrics>>,
    shutdown: &'a watch::Receiver<bool>,
}

/// How long a process that stepped down while still elected waits before it runs again; it
/// doubles while terms keep failing at once.
const STEP_DOWN_PAUSE: Duration = Duration::from_secs(1);
const STEP_DOWN_MAX_PAUSE: Duration = Duration::from_secs(30);

impl Run<'_> {
    /// Kafka store: waits until elected, runs, and when another process takes over (or the
    /// transactional producer is finished) steps down and waits again.
    async fn elected(&self, k: &KafkaSinkConfig, durable: Arc<watch::Sender<Option<Position>>>) -> Result<(), Error> {
        let name = &self.cfg.name;
        // The group elects among the topic's partitions, so the topic comes first. Brokers that
        // cannot be reached yet are waited for, as the sink would wait for them.
        let mut pause = STEP_DOWN_PAUSE;
        loop {
            match ensure_topic(&connection_config(k), &self.cfg.checkpoint_topic()).await {
                Ok(()) => break,
                Err(CheckpointError::Kafka(reason)) => {
                    self.status.set(State::Retrying);
                    tracing::warn!(connector = %name, retry_in_secs = pause.as_secs(), "{reason}");
                    if !backoff_or_stop(&mut pause, STEP_DOWN_MAX_PAUSE, self.shutdown).await {
                        return Ok(());
                    }
                }
                Err(e) => return Err(store_error(name, e)),
            }
        }
        let mut election = Election::join(self.cfg, k)
            .map_err(|e| Error::Sink { connector: name.clone(), source: SinkError::Config(e) })?;
        pause = STEP_DOWN_PAUSE;
        loop {
            if !election.is_active() {
                self.status.set(State::Standby);
                tracing::info!(connector = %name, group = %self.cfg.leader_group(), "standby: waiting to be elected (another process runs the connector, or the group is forming)");
                let mut sd = self.shutdown.clone();
                tokio::select! {
                    _ = election.elected() => {}
                    _ = sd.wait_for(|stop| *stop) => return Ok(()),
                }
            }
            self.status.set(State::Starting);
            let term = tokio::time::Instant::now();
            let reason = match self.sessions(durable.clone(), Some(&mut election)).await {
                Err(Error::Sink { source: SinkError::SteppedDown(reason), .. }) => reason,
                // The brokers cannot be reached or refused a transaction call: a Kafka outage,
                // which a new term retries (a successor would meet the same).
                Err(Error::Checkpoint(CheckpointError::Kafka(reason))) => reason,
                other => return other,
            };
            if term.elapsed() > STEP_DOWN_MAX_PAUSE * 2 {
                pause = STEP_DOWN_PAUSE;
            }
            tracing::warn!(connector = %name, retry_in_secs = pause.as_secs(), still_elected = election.is_active(), "stepped down: {reason}");
            self.status.set(State::Standby);
            if !backoff_or_stop(&mut pause, STEP_DOWN_MAX_PAUSE, self.shutdown).await {
                return Ok(());
            }
        }
    }

    async fn open_store(&self, sink: &Sink) -> Result<Box<dyn CheckpointStore>, Error> {
        let cfg = self.cfg;
        let Some(k) = cfg.kafka_store() else { return Ok(Box::new(FileCheckpointStore::open(&cfg.checkpoint_dir())?)) };
        let Some(producer) = sink.transactions() else {
            return Err(Error::Runtime(format!(
                "connector `{}`: the Kafka store needs the transactional sink; this is a bug in cdcd, please report it",
                cfg.name
            )));
        };
        let mut store = KafkaCheckpointStore::new(cfg, k, producer);
        store.open().await.map_err(|e| store_error(&cfg.name, e))?;
        tracing::info!(connector = %cfg.name, topic = %store.topic(), delivery = ?cfg.delivery(), "holding the connector's transactional id; checkpoints in Kafka");
        Ok(Box::new(store))
    }

    async fn sessions(
        &self,
        durable_tx: Arc<watch::Sender<Option<Position>>>,
        mut election: Option<&mut Election>,
    ) -> Result<(), Error> {
        let Run { cfg, source, status, metrics, shutdown } = *self;
        let name = cfg.name.clone();
        let tracker = Arc::new(AckTracker::new());
        let sink =
            Sink::build(cfg, tracker.clone()).map_err(|source| Error::Sink { connector: name.clone(), source })?;
        let gate = sink.transactions().map(|_| Arc::new(CommitGate::new()));
        let metadata = cfg.transaction_metadata();
        let ends = metadata.as_ref().and_then(|(format, topic)| sink.end_sender(format.clone(), topic.clone()));
        let mut store = self.open_store(&sink).await?;
        let initial = tokio::task::block_in_place(|| store.load()).map_err(|e| store_error(&name, e))?;
        if let Some(cp) = &initial {
            if cp.connector != name {
                return Err(CheckpointError::WrongConnector {
                    path: cfg.checkpoint_dir(),
                    found: cp.connector.clone(),
                    expected: name,
                }
                .into());
            }
            tracing::info!(connector = %name, position = %cp.position, "resuming from checkpoint");
        }
        let identity = Arc::new(Mutex::new(initial.as_ref().map(|c| c.source.clone())));
        durable_tx.send_replace(initial.as_ref().map(|c| c.position.clone()));
        let durable_rx = durable_tx.subscribe();
        let last_write: LastWrite =
            Arc::new(Mutex::new((initial.as_ref().map(|c| c.position.clone()), std::time::Instant::now())));
        let counters = match metrics {
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
            gate: gate.clone(),
            held: None,
            pacing: CommitPacing::new(cfg.commit_interval(), std::time::Instant::now()),
            ends,
        };
        let mut emitter = Emitter::new(sink, tracker.clone(), identity, status.clone(), counters.clone());
        // Validated when the configuration was loaded.
        emitter.set_events(cfg.events.skipped().unwrap_or_default(), cfg.events.tombstones_on_delete);
        if let Some(g) = &gate {
            emitter.set_commit_gate(g.clone());
        }
        // Only with a sink that sends ENDs: a transaction owing one is never checkpointed.
        if let (Some((format, topic)), true) = (metadata, ck.ends.is_some()) {
            emitter.set_transaction_metadata(format, topic);
        }
        match cfg.schema_registry() {
            Some(r) => {
                let client = crate::encode::registry::RegistryClient::new(&r.settings(), r.timeout()).map_err(|e| {
                    Error::Config(crate::config::ConfigError::Other(format!("connector `{name}`: {e}")))
                })?;
                emitter.set_avro(crate::encode::subjects::SchemaIdCache::new(client, r.subject_name_strategy));
            }
            None => emitter.set_encoding(cfg.encode()),
        }
        let unacknowledged = |left: u64| {
            Error::Runtime(format!(
                "connector `{name}`: stopped with {left} events not yet acknowledged by the broker; they will be re-read from the checkpoint on the next start"
            ))
        };
        // Exactly-once commits on its own clock; the checkpoint interval paces the others.
        let save_every = if gate.is_some() { cfg.commit_interval() } else { cfg.checkpoint_interval() };

        let mut backoff = Duration::from_secs(1);
        loop {
            if let Some(e) = &election {
                // A process replaced while frozen, or during its store's opening, must not
                // touch the source again (it would end its successor's walsender or binlog
                // dump): the election says so, and a commit the broker must accept proves it.
                if !e.is_active() {
                    return Err(Error::Sink {
                        connector: name,
                        source: SinkError::SteppedDown("another process was elected to run the connector".into()),
                    });
                }
                tokio::task::block_in_place(|| ck.store.claim()).map_err(|e| store_error(&name, e))?;
            }
            let checkpoint = tokio::task::block_in_place(|| ck.store.load()).map_err(|e| store_error(&name, e))?;
            // What a session that failed handed to a commit that did not finish is read again.
            ck.snapshot = checkpoint.as_ref().and_then(|c| c.snapshot.clone());
            // The store holds that step: a source waiting for its snapshot to be checkpointed
            // (snapshot = "initial_only") need not wait for a new write.
            if let Some(s) = &ck.snapshot {
                tracker.set_durable_step(s.step);
            }
            let started = tokio::time::Instant::now();
            let result = {
                let session = source.run_session(Session {
                    checkpoint,
                    emitter: &mut emitter,
                    durable: durable_rx.clone(),
                    shutdown: shutdown.clone(),
                });
                tokio::pin!(session);
                let deposed = async {
                    match election.as_deref_mut() {
                        Some(e) => e.deposed().await,
                        None => std::future::pending().await,
                    }
                };
                tokio::pin!(deposed);
                let mut tick = tokio::time::interval(save_every);
                // A commit that held the loop must not be followed by a burst of ticks.
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                // A delivered snapshot chunk is checkpointed at once, so a crash re-reads at most
                // the chunks still in flight.
                let mut chunk_tick = tokio::time::interval(SNAPSHOT_CHECKPOINT_POLL);
                chunk_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                let mut waiting = Box::pin(gate_waits(gate.clone()));
                loop {
                    let saved = tokio::select! {
                        r = &mut session => break r,
                        _ = &mut deposed => break Err(SessionError::Sink(SinkError::SteppedDown(
                            "another process was elected to run the connector".into(),
                        ))),
                        _ = waiting.as_mut() => {
                            waiting = Box::pin(gate_waits(gate.clone()));
                            ck.save()
                        }
                        _ = tracker.end_ready(), if ck.ends.is_some() => {
                            if let Err(e) = ck.send_ends() {
                                break Err(SessionError::Sink(e));
                            }
                            Ok(())
                        }
                        _ = chunk_tick.tick() => {
                            if ck.snapshot_behind() { ck.commit_soon() } else { Ok(()) }
                        }
                        at = tick.tick() => {
                            status.alive();
                            if let Some(reason) = tracker.take_aborted() {
                                break Err(SessionError::Sink(SinkError::Aborted(reason)));
                            }
                            if let Some(reason) = tracker.failure() {
                                break Err(SessionError::Sink(SinkError::Delivery(reason)));
                            }
                            if let Some(reason) = tracker.take_replay() {
                                break Err(SessionError::Sink(SinkError::Replay(reason)));
                            }
                            // An END the producer's full queue turned away is tried again.
                            if let Err(e) = ck.send_ends() {
                                break Err(SessionError::Sink(e));
                            }
                            // The scheduled instant, not the time the loop woke: compared
                            // with the last commit's, a late wake-up would otherwise make an
                            // interval look a little short and skip a whole tick.
                            ck.tick(at.into_std())
                        }
                    };
                    if let Err(e) = saved {
                        break Err(session_error(e)?);
                    }
                }
            };
            emitter.end_session();
            if gate.is_some() {
                let clean = result.is_ok();
                if let Err(e) = ck.close_transaction(clean).await {
                    let e = session_error(e)?;
                    if result.is_ok() || matches!(e, SessionError::Sink(SinkError::SteppedDown(_))) {
                        return Err(Error::Sink { connector: name, source: sink_of(e) });
                    }
                    tracing::debug!(connector = %name, error = %e, "closing the Kafka transaction after the session failed");
                }
            } else {
                let mut left = emitter.sink_mut().drain(&tracker, DRAIN_TIMEOUT).await;
                if result.is_ok() && left == 0 {
                    ck.finish_ends(emitter.sink_mut(), DRAIN_TIMEOUT).await;
                    left = tracker.in_flight();
                }
                ck.save().map_err(|e| store_error(&name, e))?;
                if result.is_ok() && left > 0 {
                    return Err(unacknowledged(left));
                }
            }
            match result {
                Ok(()) => {
                    tracing::info!(connector = %name, events = emitter.events(), bytes = emitter.bytes(), position = ?durable_rx.borrow().clone(), "stopped cleanly");
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
                    if !settle_in_flight(&tracker, &mut emitter, &mut ck, shutdown, &name).await? {
                        return match tracker.in_flight() {
                            0 => Ok(()),
                            left => Err(unacknowledged(left)),
                        };
                    }
                    tracker.abandon_open();
                    if !backoff_or_stop(&mut backoff, SESSION_MAX_BACKOFF, shutdown).await {
                        return Ok(());
                    }
                }
                Err(SessionError::Sink(SinkError::Aborted(reason))) => {
                    status.set(State::Retrying);
                    tracing::warn!(connector = %name, "{reason}; the Kafka transaction was aborted, re-reading from the last commit");
                    tracker.abandon_open();
                    if !backoff_or_stop(&mut backoff, SESSION_MAX_BACKOFF, shutdown).await {
                        return Ok(());
                    }
                }
                Err(SessionError::Sink(SinkError::Replay(reason))) => {
                    tracing::warn!(connector = %name, "{reason}; re-reading from the last checkpoint and sending one record at a time until past it, so that only a record too large on its own is refused (if this repeats for small records, the topic's max.message.bytes is below the producer's batch size: lower sink.properties \"batch.size\")");
                    if !settle_in_flight(&tracker, &mut emitter, &mut ck, shutdown, &name).await? {
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
}

/// The longest wait between two sessions after transient errors.
const SESSION_MAX_BACKOFF: Duration = Duration::from_secs(60);

/// Waits `backoff`, then doubles it up to `max`, before the next attempt; false when a stop
/// came first.
async fn backoff_or_stop(backoff: &mut Duration, max: Duration, shutdown: &watch::Receiver<bool>) -> bool {
    let mut sd = shutdown.clone();
    let waited = tokio::select! {
        _ = tokio::time::sleep(*backoff) => true,
        _ = sd.wait_for(|stop| *stop) => false,
    };
    *backoff = (*backoff * 2).min(max);
    waited
}

/// Resolves when the emitter waits at a boundary for a commit (never without exactly-once).
async fn gate_waits(gate: Option<Arc<CommitGate>>) {
    match gate {
        Some(g) => g.emitter_waiting().await,
        None => std::future::pending().await,
    }
}

fn sink_of(e: SessionError) -> SinkError {
    match e {
        SessionError::Sink(s) => s,
        SessionError::Source(s) => SinkError::Delivery(s.to_string()),
    }
}
