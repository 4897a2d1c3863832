//! One connector's data path: source -> envelope -> sink, with acknowledgements flowing back
//! through the tracker to the checkpoint and from there to the source (e.g. PostgreSQL's
//! `confirmed_flush_lsn`). Also the session loop: transient source errors restart the session
//! from the last checkpoint after a backoff; definite ones stop the connector.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::config::{ConnectorConfig, SourceConfig};
use crate::core::acks::{AckTracker, TxnId};
use crate::core::checkpoint::{Checkpoint, CheckpointStore, FileCheckpointStore, SourceIdentity};
use crate::core::envelope::{Change, Op, RecordBuf};
use crate::core::position::Position;
use crate::error::{Error, SessionError, SinkError};
use crate::sink::Sink;

/// How long a graceful stop waits for the broker to acknowledge what was already sent.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The source's handle on the rest of the pipeline.
pub struct Emitter {
    sink: Sink,
    tracker: Arc<AckTracker>,
    buf: RecordBuf,
    identity: Arc<Mutex<Option<SourceIdentity>>>,
    events: u64,
}

impl Emitter {
    /// Records which source the positions belong to; required before anything is checkpointed.
    pub fn set_identity(&self, id: SourceIdentity) {
        *self.identity.lock().unwrap_or_else(|e| e.into_inner()) = Some(id);
    }

    pub fn begin(&self) -> TxnId {
        self.tracker.begin()
    }

    /// Sends one change (and, for a delete, its tombstone) to `topic`.
    pub async fn emit(&mut self, txn: TxnId, topic: &str, change: &Change<'_>) -> Result<(), SinkError> {
        self.buf.set_change(change);
        self.sink.send(self.buf.record(topic), txn).await?;
        if change.op == Op::Delete && change.key.is_some() {
            self.sink.send(self.buf.tombstone(topic), txn).await?;
        }
        self.events += 1;
        Ok(())
    }

    /// The transaction is complete; `position` becomes checkpointable once all its events are delivered.
    pub fn commit(&mut self, txn: TxnId, position: Position) -> Result<(), SinkError> {
        self.sink.end_txn()?;
        self.tracker.commit(txn, position);
        self.health()
    }

    /// A position with no events of its own (keepalive, freshly created slot).
    pub fn mark(&mut self, position: Position) {
        self.tracker.mark(position);
    }

    /// Fails once any delivery has failed definitively or the sink is broken.
    pub fn health(&self) -> Result<(), SinkError> {
        if let Some(reason) = self.tracker.failure() {
            return Err(SinkError::Delivery(reason));
        }
        self.sink.health()
    }

    pub fn events(&self) -> u64 {
        self.events
    }
}

/// Writes confirmed progress to the store and tells the source what is now durable.
struct Checkpointer {
    store: FileCheckpointStore,
    connector: String,
    tracker: Arc<AckTracker>,
    identity: Arc<Mutex<Option<SourceIdentity>>>,
    durable: watch::Sender<Option<Position>>,
}

impl Checkpointer {
    fn save(&mut self) -> Result<(), Error> {
        let Some(position) = self.tracker.confirmed() else { return Ok(()) };
        let Some(source) = self.identity.lock().unwrap_or_else(|e| e.into_inner()).clone() else { return Ok(()) };
        let cp = Checkpoint {
            version: Checkpoint::VERSION,
            connector: self.connector.clone(),
            position: position.clone(),
            source,
        };
        let wrote = tokio::task::block_in_place(|| self.store.save(&cp))?;
        if wrote {
            tracing::debug!(connector = %self.connector, %position, "checkpoint written");
            self.durable.send_replace(Some(position));
        }
        Ok(())
    }
}

/// Runs one connector until shutdown (Ok) or a definite error.
pub async fn run_connector(cfg: ConnectorConfig, shutdown: watch::Receiver<bool>) -> Result<(), Error> {
    let name = cfg.name.clone();
    let mut store = FileCheckpointStore::open(&cfg.checkpoint_dir())?;
    let initial = store.load()?;
    if let Some(cp) = &initial {
        if cp.connector != name {
            return Err(crate::core::checkpoint::CheckpointError::WrongConnector {
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
    let (durable_tx, durable_rx) = watch::channel(initial.as_ref().map(|c| c.position.clone()));
    let mut ck = Checkpointer {
        store,
        connector: name.clone(),
        tracker: tracker.clone(),
        identity: identity.clone(),
        durable: durable_tx,
    };
    let mut emitter = Emitter { sink, tracker: tracker.clone(), buf: RecordBuf::default(), identity, events: 0 };

    let mut backoff = Duration::from_secs(1);
    loop {
        let checkpoint = ck.store.load()?;
        let started = tokio::time::Instant::now();
        let result = {
            let session = run_source_session(&cfg, checkpoint, &mut emitter, durable_rx.clone(), shutdown.clone());
            tokio::pin!(session);
            let mut tick = tokio::time::interval(cfg.checkpoint_interval());
            loop {
                tokio::select! {
                    r = &mut session => break r,
                    _ = tick.tick() => {
                        ck.save()?;
                        if let Some(reason) = tracker.failure() {
                            break Err(SessionError::Sink(SinkError::Delivery(reason)));
                        }
                    }
                }
            }
        };
        let left = emitter.sink.drain(&tracker, DRAIN_TIMEOUT).await;
        ck.save()?;
        match result {
            Ok(()) => {
                if left > 0 {
                    return Err(Error::Runtime(format!(
                        "connector `{name}`: stopped with {left} events not yet acknowledged by the broker; they will be re-read from the checkpoint on the next start"
                    )));
                }
                tracing::info!(connector = %name, events = emitter.events(), position = ?tracker.confirmed(), "stopped cleanly");
                return Ok(());
            }
            Err(SessionError::Source(e)) if e.is_transient() => {
                if started.elapsed() > Duration::from_secs(60) {
                    backoff = Duration::from_secs(1);
                }
                tracing::warn!(connector = %name, error = %e, retry_in_secs = backoff.as_secs(), "source session ended; resuming from the last checkpoint");
                if left > 0 {
                    // Unacknowledged events will be re-read; wait for the broker before going on
                    // so the tracker holds only this session's transactions.
                    while tracker.in_flight() > 0 && !*shutdown.borrow() {
                        emitter.sink.drain(&tracker, Duration::from_secs(5)).await;
                        emitter.health().map_err(|source| Error::Sink { connector: name.clone(), source })?;
                    }
                }
                tracker.abandon_open();
                let mut sd = shutdown.clone();
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = sd.changed() => return Ok(()),
                }
                backoff = (backoff * 2).min(Duration::from_secs(60));
            }
            Err(SessionError::Source(source)) => return Err(Error::Source { connector: name, source }),
            Err(SessionError::Sink(source)) => return Err(Error::Sink { connector: name, source }),
        }
    }
}

async fn run_source_session(
    cfg: &ConnectorConfig,
    checkpoint: Option<Checkpoint>,
    emitter: &mut Emitter,
    durable: watch::Receiver<Option<Position>>,
    shutdown: watch::Receiver<bool>,
) -> Result<(), SessionError> {
    match &cfg.source {
        SourceConfig::Postgres(pg) => {
            crate::source::postgres::run_session(cfg, pg, checkpoint, emitter, durable, shutdown).await
        }
        SourceConfig::Mysql(my) => crate::source::mysql::run_session(cfg, my, checkpoint, emitter, shutdown).await,
    }
}
