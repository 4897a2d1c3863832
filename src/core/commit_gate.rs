//! Where an exactly-once sink may commit: between source transactions.
//!
//! Under exactly-once the records of source transactions and the checkpoint that covers them
//! commit in one Kafka transaction, so a commit must never split a source transaction: its
//! records would be visible, and the checkpoint before it would make a restart send them again.
//! The emitter tells this gate where the last closed source transaction ended and whether one is
//! open; the checkpointer commits at that boundary. Under sustained load a source transaction may
//! be open whenever the checkpointer looks, so the checkpointer can ask for a commit
//! ([`CommitGate::want`]) and the emitter then waits before the next transaction's first record
//! ([`CommitGate::wait_if_wanted`]) until the commit is under way (the store may finish it in
//! the background, with the next records going to another producer).

use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::core::position::Position;
use crate::core::snapshot::SnapshotProgress;

#[derive(Default)]
struct GateState {
    /// A source transaction has sent records and is not closed yet.
    open: bool,
    /// Where the last closed source transaction (or mark) ended, in this session.
    boundary: Option<Position>,
    /// The newest snapshot progress closed with a transaction or mark, in this session.
    progress: Option<Arc<SnapshotProgress>>,
    /// Records were sent, or the boundary moved, since the last commit.
    dirty: bool,
    /// The checkpointer waits for the emitter to reach a boundary.
    wanted: bool,
    /// Records sent since the gate was made, for telling a busy emitter from an idle one.
    sent: u64,
}

/// What the committer commits at: the boundary and the snapshot progress with it.
pub type CommitPoint = (Position, Option<Arc<SnapshotProgress>>);

#[derive(Default)]
pub struct CommitGate {
    state: Mutex<GateState>,
    /// The emitter stopped at a boundary because a commit was wanted.
    at_boundary: Notify,
    /// A commit ended (or the session did): waiting emitters go on.
    released: Notify,
}

impl CommitGate {
    pub fn new() -> Self {
        Self::default()
    }

    /// A source transaction sends a record.
    pub fn record(&self) {
        let mut s = self.lock();
        s.open = true;
        s.dirty = true;
        s.sent += 1;
    }

    /// Records sent so far (never reset).
    pub fn sent(&self) -> u64 {
        self.lock().sent
    }

    /// A source transaction closed, or a mark passed, at `position`.
    pub fn closed(&self, position: Position, progress: Option<Arc<SnapshotProgress>>) {
        let mut s = self.lock();
        if s.open || s.boundary.as_ref() != Some(&position) || progress.is_some() {
            s.dirty = true;
        }
        s.open = false;
        s.boundary = Some(position);
        if let Some(p) = progress {
            if s.progress.as_ref().is_none_or(|old| p.step > old.step) {
                s.progress = Some(p);
            }
        }
    }

    /// The session ended: what it sent past the last commit is aborted and re-read, so there is
    /// no boundary until the next session closes one.
    pub fn reset(&self) {
        let mut s = self.lock();
        *s = GateState { sent: s.sent, ..GateState::default() };
        drop(s);
        self.released.notify_waiters();
    }

    /// Whether anything waits to be committed.
    pub fn dirty(&self) -> bool {
        self.lock().dirty
    }

    /// Whether a source transaction is open (a commit now would split it).
    pub fn is_open(&self) -> bool {
        self.lock().open
    }

    /// The place to commit at, if something waits and no source transaction is open.
    pub fn ready(&self) -> Option<CommitPoint> {
        let s = self.lock();
        if !s.dirty || s.open {
            return None;
        }
        Some((s.boundary.clone()?, s.progress.clone()))
    }

    /// Asks the emitter to stop before its next source transaction's first record.
    pub fn want(&self) {
        self.lock().wanted = true;
    }

    /// No commit can be made for now (a prepared XA transaction holds the checkpoint back):
    /// a waiting emitter goes on, and is not asked to stop until the next [`CommitGate::want`].
    pub fn hold_back(&self) {
        self.lock().wanted = false;
        self.released.notify_waiters();
    }

    /// The commit at what [`CommitGate::ready`] returned succeeded.
    pub fn committed(&self) {
        let mut s = self.lock();
        s.dirty = false;
        s.wanted = false;
        drop(s);
        self.released.notify_waiters();
    }

    /// For the emitter, before a source transaction's first record: if a commit is wanted, say
    /// so and wait until it is done.
    pub async fn wait_if_wanted(&self) {
        loop {
            let released = self.released.notified();
            tokio::pin!(released);
            // Registered before the check, so a commit that ends in between is not missed.
            released.as_mut().enable();
            if !self.lock().wanted {
                return;
            }
            self.at_boundary.notify_one();
            released.await;
        }
    }

    /// For the checkpointer: resolves when the emitter waits at a boundary.
    pub async fn emitter_waiting(&self) {
        self.at_boundary.notified().await
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, GateState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::position::Lsn;
    use std::time::Duration;

    fn pos(n: u64) -> Position {
        Position::Postgres { lsn: Lsn(n) }
    }

    #[test]
    fn never_offers_a_point_inside_an_open_transaction() {
        let gate = CommitGate::new();
        assert_eq!(gate.ready(), None, "nothing sent, nothing to commit");
        gate.record();
        assert_eq!(gate.ready(), None, "a transaction is open");
        gate.closed(pos(10), None);
        assert_eq!(gate.ready(), Some((pos(10), None)));
        gate.record();
        assert_eq!(gate.ready(), None);
        gate.closed(pos(20), None);
        gate.committed();
        assert_eq!(gate.ready(), None, "committed, nothing new");
        gate.closed(pos(20), None);
        assert_eq!(gate.ready(), None, "a mark at the same place is nothing new");
        gate.closed(pos(30), None);
        assert_eq!(gate.ready(), Some((pos(30), None)), "a mark further on is");
    }

    #[test]
    fn keeps_the_newest_snapshot_progress() {
        let gate = CommitGate::new();
        let p = |step| Arc::new(SnapshotProgress { step, tables: Vec::new() });
        gate.closed(pos(1), Some(p(3)));
        gate.closed(pos(2), Some(p(2)));
        gate.closed(pos(3), None);
        assert_eq!(gate.ready().and_then(|(_, p)| p).map(|p| p.step), Some(3));
        gate.reset();
        assert_eq!(gate.ready(), None, "a new session has no boundary yet");
    }

    #[tokio::test]
    async fn an_emitter_waits_for_a_wanted_commit_and_tells_the_checkpointer() {
        let gate = Arc::new(CommitGate::new());
        gate.wait_if_wanted().await; // nothing wanted: returns at once
        gate.record();
        gate.want();
        let g = gate.clone();
        let emitter = tokio::spawn(async move {
            g.closed(pos(5), None);
            g.wait_if_wanted().await;
        });
        tokio::time::timeout(Duration::from_secs(5), gate.emitter_waiting()).await.expect("emitter reached a boundary");
        assert_eq!(gate.ready(), Some((pos(5), None)));
        assert!(!emitter.is_finished(), "the emitter waits for the commit");
        gate.committed();
        tokio::time::timeout(Duration::from_secs(5), emitter).await.expect("released").unwrap();
    }
}
