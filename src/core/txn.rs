//! The one transaction state machine every source drives: `begin`, events, `commit(position)`.
//!
//! The rule it enforces: a position enters the acknowledgement tracker (and so may become a
//! checkpoint) only at a real transaction boundary, never while a transaction is open, and
//! never behind an earlier boundary. A source that misreads its log (commits early, begins twice,
//! marks a position mid-transaction) gets a [`FramingError`] instead of a checkpoint that would
//! skip the rest of a transaction after a crash.
//!
//! A transaction takes a tracker slot only when its first event is sent, and a transaction
//! without events is recorded as a position-only mark, which the tracker coalesces with the
//! mark before it: transactions on tables that are not captured cost no memory while the sink
//! is slow.

use std::fmt;

use std::sync::Arc;

use crate::core::acks::{AckTracker, TxnId};
use crate::core::position::Position;
use crate::core::snapshot::SnapshotProgress;

/// A source broke the begin / events / commit contract. Never retried: it means the log was
/// read wrongly or is damaged, and continuing could checkpoint past undelivered changes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FramingError {
    #[error("transaction at {new} began while the transaction at {open} was still open (no commit seen)")]
    BeginWhileOpen { open: String, new: String },
    #[error("commit at {at} without an open transaction")]
    CommitWithoutBegin { at: Position },
    #[error("a change arrived outside any transaction")]
    EventOutsideTransaction,
    #[error("position {at} offered as a checkpoint while the transaction at {open} is open")]
    MarkInsideTransaction { at: Position, open: String },
    #[error("position {at} is behind the previous transaction boundary {last}")]
    Backwards { at: Position, last: Position },
}

/// Where a transaction started, for messages (`lsn 0/16B3748`, `binlog.000003:1234`).
pub type TxnLabel = String;

#[derive(Debug)]
enum State {
    Idle,
    Open {
        label: TxnLabel,
        /// Allocated on the first event.
        slot: Option<TxnId>,
        events: u64,
    },
}

/// The framing of one source session's transactions.
#[derive(Debug)]
pub struct TxnFrame {
    state: State,
    last_boundary: Option<Position>,
}

impl Default for TxnFrame {
    fn default() -> Self {
        Self::new()
    }
}

impl TxnFrame {
    pub fn new() -> Self {
        TxnFrame { state: State::Idle, last_boundary: None }
    }

    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    /// Opens a transaction; `label` says where it starts, for error messages.
    pub fn begin(&mut self, label: impl fmt::Display) -> Result<(), FramingError> {
        if let State::Open { label: open, .. } = &self.state {
            return Err(FramingError::BeginWhileOpen { open: open.clone(), new: label.to_string() });
        }
        self.state = State::Open { label: label.to_string(), slot: None, events: 0 };
        Ok(())
    }

    /// One more event of the open transaction: returns its tracker slot and its index within the
    /// transaction (0, 1, ...).
    pub fn event(&mut self, tracker: &AckTracker) -> Result<(TxnId, u64), FramingError> {
        match &mut self.state {
            State::Idle => Err(FramingError::EventOutsideTransaction),
            State::Open { slot, events, .. } => {
                let id = *slot.get_or_insert_with(|| tracker.begin());
                let index = *events;
                *events += 1;
                Ok((id, index))
            }
        }
    }

    /// The tracker slot of the open transaction, once it has an event.
    pub fn slot(&self) -> Option<TxnId> {
        match &self.state {
            State::Open { slot, .. } => *slot,
            State::Idle => None,
        }
    }

    /// The index the next event of the open transaction will get.
    pub fn next_index(&self) -> u64 {
        match &self.state {
            State::Open { events, .. } => *events,
            State::Idle => 0,
        }
    }

    /// Closes the open transaction at its end `position`, which becomes checkpointable once all
    /// its events (and everything before) are delivered.
    /// `progress`: the snapshot progress this transaction completes (a snapshot chunk), if any.
    pub fn commit(
        &mut self,
        tracker: &AckTracker,
        position: Position,
        progress: Option<Arc<SnapshotProgress>>,
    ) -> Result<(), FramingError> {
        let State::Open { slot, .. } = std::mem::replace(&mut self.state, State::Idle) else {
            return Err(FramingError::CommitWithoutBegin { at: position });
        };
        self.advance(&position)?;
        match slot {
            Some(id) => tracker.commit(id, position, progress),
            None => tracker.mark(position, progress),
        }
        Ok(())
    }

    /// A position between transactions with nothing to deliver (keepalive past quiet WAL, a
    /// freshly created slot): checkpointable once everything before it is delivered.
    pub fn mark(
        &mut self,
        tracker: &AckTracker,
        position: Position,
        progress: Option<Arc<SnapshotProgress>>,
    ) -> Result<(), FramingError> {
        if let State::Open { label, .. } = &self.state {
            return Err(FramingError::MarkInsideTransaction { at: position, open: label.clone() });
        }
        self.advance(&position)?;
        tracker.mark(position, progress);
        Ok(())
    }

    /// Whether `position` lies strictly after the last boundary (or none was set yet).
    pub fn is_ahead(&self, position: &Position) -> bool {
        self.last_boundary.as_ref().is_none_or(|last| position.partial_cmp(last) == Some(std::cmp::Ordering::Greater))
    }

    /// A session ended (possibly inside a transaction): forget the open transaction and the last
    /// boundary, since the next session restarts from the checkpoint, behind it. The open
    /// transaction's events are re-read; its tracker slot is dropped by
    /// [`AckTracker::abandon_open`].
    pub fn reset(&mut self) {
        self.state = State::Idle;
        self.last_boundary = None;
    }

    fn advance(&mut self, position: &Position) -> Result<(), FramingError> {
        if let Some(last) = &self.last_boundary {
            if position.partial_cmp(last).is_none_or(|o| o == std::cmp::Ordering::Less) {
                return Err(FramingError::Backwards { at: position.clone(), last: last.clone() });
            }
        }
        self.last_boundary = Some(position.clone());
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::position::Lsn;

    fn pos(n: u64) -> Position {
        Position::Postgres { lsn: Lsn(n) }
    }

    #[test]
    fn events_commit_and_confirm_in_order() {
        let t = AckTracker::new();
        let mut f = TxnFrame::new();
        f.begin("a").unwrap();
        let (a, i0) = f.event(&t).unwrap();
        t.expect(a);
        let (a2, i1) = f.event(&t).unwrap();
        t.expect(a2);
        assert_eq!((a, i0, i1), (a2, 0, 1), "one slot per transaction, consecutive indexes");
        f.commit(&t, pos(10), None).unwrap();
        assert_eq!(t.confirmed(), None);
        t.delivered(a);
        t.delivered(a);
        assert_eq!(t.confirmed(), Some(pos(10)));
    }

    #[test]
    fn structural_violations_are_errors_not_checkpoints() {
        let t = AckTracker::new();
        let mut f = TxnFrame::new();
        assert_eq!(f.event(&t), Err(FramingError::EventOutsideTransaction));
        assert!(matches!(f.commit(&t, pos(1), None), Err(FramingError::CommitWithoutBegin { .. })));
        f.begin("gtid 0-1-5").unwrap();
        let (id, _) = f.event(&t).unwrap();
        t.expect(id);
        t.delivered(id);
        // A second GTID while the first transaction is open: refused, nothing confirmed.
        let err = f.begin("gtid 0-1-6").unwrap_err();
        assert!(err.to_string().contains("0-1-5") && err.to_string().contains("0-1-6"), "{err}");
        assert!(matches!(f.mark(&t, pos(50), None), Err(FramingError::MarkInsideTransaction { .. })));
        assert_eq!(t.confirmed(), None, "no position may be confirmed from inside a transaction");
        f.commit(&t, pos(60), None).unwrap();
        assert_eq!(t.confirmed(), Some(pos(60)));
        f.begin("b").unwrap();
        assert!(matches!(f.commit(&t, pos(59), None), Err(FramingError::Backwards { .. })));
    }

    #[test]
    fn empty_transactions_take_no_slot_and_coalesce() {
        let t = AckTracker::new();
        let mut f = TxnFrame::new();
        f.begin("busy").unwrap();
        let (id, _) = f.event(&t).unwrap();
        t.expect(id);
        f.commit(&t, pos(1), None).unwrap();
        // A flood of transactions on tables that are not captured, while the first is in flight.
        for n in 2..10_000 {
            f.begin(n).unwrap();
            f.commit(&t, pos(n), None).unwrap();
        }
        assert!(t.pending_slots() <= 2, "empty transactions must not pile up: {}", t.pending_slots());
        assert_eq!(t.confirmed(), None);
        t.delivered(id);
        assert_eq!(t.confirmed(), Some(pos(9_999)));
    }

    #[test]
    fn reset_returns_to_idle_and_forgets_the_last_boundary() {
        let t = AckTracker::new();
        let mut f = TxnFrame::new();
        f.mark(&t, pos(5), None).unwrap();
        f.begin("x").unwrap();
        f.reset();
        assert!(!f.is_open());
        // The next session restarts from the checkpoint, behind the last boundary: accepted by
        // the frame, while the tracker still never moves its confirmed position back.
        f.mark(&t, pos(3), None).unwrap();
        assert_eq!(t.confirmed(), Some(pos(5)));
    }
}
