//! The checkpointer: writes what is confirmed to the checkpoint store and tells the source what
//! is durable (PostgreSQL's flush position follows it). Under exactly-once a save is the Kafka
//! commit, made only at a boundary between source transactions ([`CommitGate`]).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;

use crate::core::acks::AckTracker;
use crate::core::checkpoint::{Checkpoint, CheckpointError, CheckpointStore, SourceIdentity};
use crate::core::commit_gate::CommitGate;
use crate::core::envelope::now_us;
use crate::core::position::Position;
use crate::core::snapshot::SnapshotProgress;
use crate::error::{Error, SessionError, SinkError};
use crate::sink::kafka::txn_ends::EndSender;

use super::pacing::CommitPacing;

/// The last checkpoint written and when, for the checkpoint-age metric.
pub(super) type LastWrite = Arc<Mutex<(Option<Position>, std::time::Instant)>>;

/// Writes confirmed progress to the store and tells the source what is now durable.
pub(super) struct Checkpointer {
    pub(super) store: Box<dyn CheckpointStore>,
    pub(super) connector: String,
    pub(super) tracker: Arc<AckTracker>,
    pub(super) identity: Arc<Mutex<Option<SourceIdentity>>>,
    pub(super) durable: Arc<watch::Sender<Option<Position>>>,
    pub(super) last_write: LastWrite,
    /// The snapshot progress to write with the next position: the loaded checkpoint's until the
    /// tracker confirms newer.
    pub(super) snapshot: Option<SnapshotProgress>,
    /// Exactly-once: a save commits the Kafka transaction, at the boundary this gate names.
    pub(super) gate: Option<Arc<CommitGate>>,
    /// Exactly-once: since when a prepared XA transaction has kept commits back, and when that
    /// was last logged.
    pub(super) held: Option<(std::time::Instant, std::time::Instant)>,
    /// Exactly-once: when the next commit is due.
    pub(super) pacing: CommitPacing,
    /// Transaction metadata: sends ENDs once their transactions are acknowledged.
    pub(super) ends: Option<EndSender>,
}

/// How long commits may wait for a prepared XA transaction before it is logged, and how often.
const HELD_WARNING: Duration = Duration::from_secs(10);
const HELD_WARNING_EVERY: Duration = Duration::from_secs(60);

impl Checkpointer {
    /// Whether the tracker confirmed snapshot progress newer than the last checkpoint's.
    pub(super) fn snapshot_behind(&self) -> bool {
        let saved = self.snapshot.as_ref().map_or(0, |s| s.step);
        self.tracker.confirmed_progress().is_some_and(|p| p.step > saved)
    }

    /// Writes what is confirmed; under exactly-once, commits at the last boundary if the
    /// emitter is between source transactions (see [`Checkpointer::commit_soon`]).
    pub(super) fn save(&mut self) -> Result<(), CheckpointError> {
        match self.gate.clone() {
            Some(gate) if self.held_back(&gate) => Ok(()),
            Some(gate) => match gate.ready() {
                // An END that could not join the transaction keeps the commit back: the
                // checkpoint would pass it.
                Some(_) if !self.ends_before_commit()? => Ok(()),
                Some((position, progress)) => {
                    self.write(position, progress)?;
                    gate.committed();
                    Ok(())
                }
                None => Ok(()),
            },
            None => match self.tracker.confirmed() {
                Some(position) => self.write(position, self.tracker.confirmed_progress()),
                None => Ok(()),
            },
        }
    }

    /// Transaction metadata: sends the ENDs that became ready; how many.
    pub(super) fn send_ends(&mut self) -> Result<usize, SinkError> {
        match self.ends.as_mut() {
            Some(ends) => ends.send_ready(),
            None => Ok(0),
        }
    }

    /// Exactly-once with transaction metadata: the ENDs of every source transaction in the
    /// open Kafka transaction join it before the commit (the checkpoint it carries passes
    /// them). False when that could not be done now: the commit waits.
    fn ends_before_commit(&mut self) -> Result<bool, CheckpointError> {
        let Some(ends) = self.ends.as_mut() else { return Ok(true) };
        tokio::task::block_in_place(|| ends.send_before_commit()).map_err(|e| CheckpointError::Kafka(e.to_string()))
    }

    /// Exactly-once: whether the open Kafka transaction still holds records no commit took.
    fn uncommitted(&self) -> bool {
        self.gate.as_ref().is_some_and(|g| g.dirty())
    }

    /// At-least-once, at a session's end: sends the ENDs still owed, waiting up to `timeout`
    /// for what they wait on (a transaction whose END is not delivered is read again).
    pub(super) async fn finish_ends(&mut self, sink: &mut crate::sink::Sink, timeout: Duration) {
        if self.ends.is_none() {
            return;
        }
        let deadline = tokio::time::Instant::now() + timeout;
        while self.tracker.ends_owed() && tokio::time::Instant::now() < deadline {
            // A refused END stops the connector at the session's end anyway (tracker failure).
            let sent = self.send_ends().unwrap_or(0);
            if sent == 0 && self.tracker.in_flight() == 0 {
                // What is owed waits on a transaction that failed: the next start re-reads it.
                break;
            }
            sink.drain(&self.tracker, Duration::from_millis(200)).await;
        }
    }

    /// The checkpoint clock ticked (scheduled for `now`): writes what is confirmed; under exactly-once, commits when
    /// the pacing says the next commit is due (see [`CommitPacing`]).
    pub(super) fn tick(&mut self, now: std::time::Instant) -> Result<(), CheckpointError> {
        if let Some(gate) = self.gate.clone() {
            let lag = self
                .tracker
                .oldest_pending_source_ts_us()
                .map(|ts| Duration::from_micros(u64::try_from(now_us().saturating_sub(ts)).unwrap_or(0)));
            self.settle(false)?;
            self.pacing.observe(lag, gate.sent(), self.tracker.in_flight());
            if !self.pacing.due(now) {
                return Ok(());
            }
            self.pacing.committed(now);
        }
        self.commit_soon()
    }

    /// Exactly-once: commits now if the emitter is between source transactions, else asks it
    /// to stop at the next boundary (the commit then follows when it does).
    pub(super) fn commit_soon(&mut self) -> Result<(), CheckpointError> {
        let Some(gate) = self.gate.clone() else { return self.save() };
        if !gate.dirty() {
            return Ok(());
        }
        if gate.is_open() {
            if !self.held_back(&gate) {
                gate.want();
            }
            return Ok(());
        }
        self.save()
    }

    /// Exactly-once: whether a hold (a prepared XA transaction whose outcome is still ahead in
    /// the binlog) keeps commits back. A commit past it would checkpoint beyond the PREPARE, so
    /// a crash would lose its changes; one before it cannot carry the records sent since.
    /// Commits wait for the outcome, and a wait longer than `HELD_WARNING` is logged (at most
    /// once a minute).
    fn held_back(&mut self, gate: &CommitGate) -> bool {
        if self.tracker.holds() == 0 {
            self.held = None;
            return false;
        }
        gate.hold_back();
        let now = std::time::Instant::now();
        let (since, logged) = self.held.get_or_insert((now, now - HELD_WARNING_EVERY));
        if now.duration_since(*since) > HELD_WARNING && now.duration_since(*logged) >= HELD_WARNING_EVERY {
            *logged = now;
            tracing::warn!(
                connector = %self.connector,
                waited_secs = now.duration_since(*since).as_secs(),
                "a prepared XA transaction's outcome (XA COMMIT or XA ROLLBACK) has not come yet; exactly-once commits wait for it, so consumers see nothing new until then. Finish the transaction (XA RECOVER lists it), or the Kafka transaction times out after transaction.timeout.ms and is read again"
            );
        }
        true
    }

    fn write(&mut self, position: Position, progress: Option<Arc<SnapshotProgress>>) -> Result<(), CheckpointError> {
        let Some(source) = self.identity.lock().unwrap_or_else(|e| e.into_inner()).clone() else { return Ok(()) };
        let snapshot = match progress {
            Some(p) if self.snapshot.as_ref().is_none_or(|s| p.step > s.step) => Some((*p).clone()),
            _ => self.snapshot.clone(),
        };
        let cp = Checkpoint {
            version: Checkpoint::VERSION,
            connector: self.connector.clone(),
            position: position.clone(),
            source,
            snapshot,
        };
        let started = std::time::Instant::now();
        let wrote = tokio::task::block_in_place(|| self.store.save(&cp))?;
        tracing::trace!(connector = %self.connector, took_ms = started.elapsed().as_secs_f64() * 1000.0, "checkpoint saved");
        // The next checkpoint carries this one's snapshot progress at least, even before this
        // one is durable; a failed commit ends the session, which starts over from the store.
        self.snapshot = cp.snapshot.clone();
        if !self.store.commits_in_background() {
            self.stored(cp, wrote);
        }
        Ok(())
    }

    /// A store that commits in the background: takes note of the commit that finished, if any
    /// (waiting for one under way if `wait`).
    pub(super) fn settle(&mut self, wait: bool) -> Result<(), CheckpointError> {
        if !self.store.commits_in_background() {
            return Ok(());
        }
        if let Some((cp, wrote)) = tokio::task::block_in_place(|| self.store.settled(wait))? {
            self.stored(cp, wrote);
        }
        Ok(())
    }

    /// `cp` is durable (`wrote`: its record was written): the source and the metrics learn it.
    fn stored(&mut self, cp: Checkpoint, wrote: bool) {
        // Only once stored: progress from a commit that failed is read again, not remembered.
        if let Some(s) = &cp.snapshot {
            self.tracker.set_durable_step(s.step);
        }
        if wrote {
            *self.last_write.lock().unwrap_or_else(|e| e.into_inner()) =
                (Some(cp.position.clone()), std::time::Instant::now());
            tracing::debug!(connector = %self.connector, position = %cp.position, "checkpoint written");
            self.durable.send_replace(Some(cp.position));
        }
    }

    /// Exactly-once, after a session: commits what a clean stop at a boundary sent, or aborts
    /// what else was sent since the last commit (the next session re-reads it).
    pub(super) async fn close_transaction(&mut self, clean: bool) -> Result<(), CheckpointError> {
        let Some(gate) = self.gate.clone() else { return Ok(()) };
        let outcome = if clean && !gate.is_open() {
            // A save that failed (the commit before it did) leaves its records in the open
            // transaction: aborted now rather than holding back read_committed consumers until
            // the next start or the transaction timeout.
            match self.save() {
                // Nothing committed what was sent (an END could not join): aborted, and read
                // again by the next start, rather than left to hold consumers back.
                Ok(()) if self.uncommitted() => tokio::task::block_in_place(|| self.store.abort()),
                Ok(()) => Ok(()),
                Err(e) => {
                    let _ = tokio::task::block_in_place(|| self.store.abort());
                    Err(e)
                }
            }
        } else {
            tokio::task::block_in_place(|| self.store.abort())
        };
        // The last commit, made in the background, is durable only once it finished.
        let outcome = outcome.and(self.settle(true));
        // Records the abort purged report back through the producer's thread.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while self.tracker.in_flight() > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        gate.reset();
        outcome
    }
}

/// A store failure inside a session: Kafka's transaction failures end the session (aborted:
/// re-read; fenced: step down), anything else stops the connector.
pub(super) fn session_error(e: CheckpointError) -> Result<SessionError, CheckpointError> {
    match e {
        CheckpointError::Kafka(reason) => Ok(SessionError::Sink(SinkError::Aborted(reason))),
        CheckpointError::Fenced(reason) => Ok(SessionError::Sink(SinkError::SteppedDown(reason))),
        other => Err(other),
    }
}

/// A store failure outside a session; a fenced producer means stepping down.
pub(super) fn store_error(name: &str, e: CheckpointError) -> Error {
    match e {
        CheckpointError::Fenced(reason) => {
            Error::Sink { connector: name.to_string(), source: SinkError::SteppedDown(reason) }
        }
        other => other.into(),
    }
}
