//! Acknowledgement tracking: turns per-event broker deliveries into the highest source position
//! that is safe to checkpoint.
//!
//! Transactions are registered in source order. A position is confirmed only when its
//! transaction and **every earlier one** are committed and fully delivered. A failed delivery
//! pins the confirmed position just before its transaction for good: we never let a checkpoint
//! jump over an event that did not reach the broker.

use crate::core::position::Position;
use crate::core::snapshot::SnapshotProgress;
use crate::core::txn_meta::{note_offset, LastOffset, PendingEnd};
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// Identifies one source transaction (or one snapshot, or one position-only mark) in the tracker.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TxnId(pub u64);

#[derive(Default)]
struct Slot {
    outstanding: u64,
    committed: Option<Position>,
    failed: bool,
    /// When the source committed the transaction (µs since the epoch; 0 for marks), for lag.
    source_ts_us: i64,
    /// Snapshot progress that becomes checkpointable with this slot (a delivered chunk).
    progress: Option<Arc<SnapshotProgress>>,
    /// Transaction metadata: the END not yet sent. The slot is not confirmed before it is sent
    /// and delivered, so a crash cannot checkpoint past a transaction whose END was lost.
    end: Option<PendingEnd>,
    /// Transaction metadata: where the transaction's records landed (collected once asked for).
    offsets: Option<Vec<LastOffset>>,
}

impl Slot {
    /// Every record delivered and the transaction closed: its END may be sent.
    fn end_ready(&self) -> bool {
        self.end.is_some() && self.committed.is_some() && self.outstanding == 0 && !self.failed
    }
}

/// A place the checkpoint must not pass until it is released (see [`AckTracker::hold`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct HoldId(u64);

#[derive(Default)]
struct Inner {
    /// TxnId of `slots[0]`.
    base: u64,
    slots: VecDeque<Slot>,
    confirmed: Option<Position>,
    /// The newest snapshot progress whose chunk, and everything before it, is delivered.
    confirmed_progress: Option<Arc<SnapshotProgress>>,
    /// The snapshot step the checkpoint store holds: chunks up to it are never read again.
    durable_step: u64,
    failure: Option<String>,
    /// A refusal that re-sending differently may mend: the session re-reads from the
    /// checkpoint (see [`AckTracker::refused_for_replay`]).
    replay: Option<String>,
    /// Why an exactly-once transaction must be aborted (see [`AckTracker::abort_needed`]).
    aborted: Option<String>,
    in_flight: u64,
    failed_events: u64,
    /// Places the checkpoint may not pass, in the order they were taken (so the first is the
    /// earliest in the log).
    holds: std::collections::BTreeMap<HoldId, Position>,
    /// Holds that end once the confirmed position reaches the place given (the delivery of
    /// the transaction that settled them), see [`AckTracker::release_after`].
    releasing: Vec<(HoldId, Position)>,
    next_hold: u64,
}

#[derive(Default)]
pub struct AckTracker {
    inner: Mutex<Inner>,
    /// Woken when a transaction's END became ready to send.
    ends: tokio::sync::Notify,
}

impl AckTracker {
    pub fn new() -> Self {
        Self::default()
    }

    /// Opens the next transaction.
    pub fn begin(&self) -> TxnId {
        let mut g = self.lock();
        let id = g.base + g.slots.len() as u64;
        g.slots.push_back(Slot::default());
        TxnId(id)
    }

    /// One more event of `txn` is about to be handed to the sink. Call before sending, so a fast
    /// delivery report can never arrive before its expectation.
    pub fn expect(&self, txn: TxnId) {
        let mut g = self.lock();
        g.in_flight += 1;
        if let Some(slot) = g.slot_mut(txn) {
            slot.outstanding += 1;
        }
    }

    /// The broker acknowledged one event of `txn`.
    pub fn delivered(&self, txn: TxnId) {
        self.delivered_at(txn, "", 0, -1);
    }

    /// The broker acknowledged one record of `txn` at `offset` of `topic`'s `partition`
    /// (noted for the transaction's END when transaction metadata is on).
    pub fn delivered_at(&self, txn: TxnId, topic: &str, partition: i32, offset: i64) {
        let mut g = self.lock();
        g.in_flight = g.in_flight.saturating_sub(1);
        if let Some(slot) = g.slot_mut(txn) {
            slot.outstanding = slot.outstanding.saturating_sub(1);
            if let Some(offsets) = slot.offsets.as_mut().filter(|_| offset >= 0) {
                note_offset(offsets, topic, partition, offset);
            }
            if slot.end_ready() {
                self.ends.notify_one();
            }
        }
        g.advance();
    }

    /// Transaction metadata: `txn` will get an END, so where its records land is noted.
    pub fn collect_offsets(&self, txn: TxnId) {
        if let Some(slot) = self.lock().slot_mut(txn) {
            slot.offsets.get_or_insert_with(Vec::new);
        }
    }

    /// Transaction metadata: `txn`'s END, sent once its records are all delivered (before
    /// [`AckTracker::commit`]).
    pub fn set_end(&self, txn: TxnId, end: PendingEnd) {
        if let Some(slot) = self.lock().slot_mut(txn) {
            slot.end = Some(end);
        }
    }

    /// The next END to send, in transaction order: that of the first transaction still owing
    /// one, if all its records are delivered. Counted in flight as a record of its transaction
    /// from here on (send it, or give it back with [`AckTracker::return_end`]).
    pub fn take_ready_end(&self) -> Option<(TxnId, PendingEnd, Vec<LastOffset>)> {
        let mut g = self.lock();
        let base = g.base;
        let (i, slot) = g.slots.iter_mut().enumerate().find(|(_, s)| s.end.is_some() || s.failed)?;
        if !slot.end_ready() {
            return None;
        }
        let end = slot.end.take()?;
        let offsets = slot.offsets.take().unwrap_or_default();
        slot.outstanding += 1;
        g.in_flight += 1;
        Some((TxnId(base + i as u64), end, offsets))
    }

    /// An END taken with [`AckTracker::take_ready_end`] could not be handed over yet (the
    /// producer's queue is full): it is taken again next time.
    pub fn return_end(&self, txn: TxnId, end: PendingEnd, offsets: Vec<LastOffset>) {
        let mut g = self.lock();
        g.in_flight = g.in_flight.saturating_sub(1);
        if let Some(slot) = g.slot_mut(txn) {
            slot.outstanding = slot.outstanding.saturating_sub(1);
            slot.end = Some(end);
            slot.offsets = Some(offsets);
        }
    }

    /// Whether any transaction still owes its END.
    pub fn ends_owed(&self) -> bool {
        self.lock().slots.iter().any(|s| s.end.is_some())
    }

    /// Resolves when an END may have become ready to send.
    pub async fn end_ready(&self) {
        self.ends.notified().await
    }

    /// One event of `txn` definitely failed. Nothing at or after `txn` will ever be confirmed.
    pub fn failed(&self, txn: TxnId, reason: String) {
        let mut g = self.lock();
        g.in_flight = g.in_flight.saturating_sub(1);
        g.failed_events += 1;
        if let Some(slot) = g.slot_mut(txn) {
            slot.failed = true;
        }
        g.failure.get_or_insert(reason);
    }

    /// One event of `txn` was dropped with an aborted Kafka transaction: the session that sent
    /// it ends and its successor re-reads it, so it neither confirms its transaction nor fails
    /// the connector.
    pub fn discarded(&self, txn: TxnId) {
        let mut g = self.lock();
        g.in_flight = g.in_flight.saturating_sub(1);
        if let Some(slot) = g.slot_mut(txn) {
            slot.failed = true;
        }
    }

    /// Exactly-once: one event of `txn` failed in a way that fails its Kafka transaction and no
    /// more (a timeout, a broker error): the session ends, the transaction is aborted and its
    /// records are read again ([`AckTracker::take_aborted`]).
    pub fn abort_needed(&self, txn: TxnId, reason: String) {
        let mut g = self.lock();
        g.in_flight = g.in_flight.saturating_sub(1);
        if let Some(slot) = g.slot_mut(txn) {
            slot.failed = true;
        }
        g.aborted.get_or_insert(reason);
    }

    /// Why the open Kafka transaction must be aborted, once.
    pub fn take_aborted(&self) -> Option<String> {
        self.lock().aborted.take()
    }

    /// One event of `txn` was refused in a way re-sending it differently may mend (the broker
    /// refused a whole batch as too large, for one record in it or for their sum). As with
    /// [`AckTracker::failed`] nothing at or after `txn` is confirmed in this session; the
    /// pipeline ends it and re-reads from the checkpoint ([`AckTracker::take_replay`]).
    pub fn refused_for_replay(&self, txn: TxnId, reason: String) {
        let mut g = self.lock();
        g.in_flight = g.in_flight.saturating_sub(1);
        if let Some(slot) = g.slot_mut(txn) {
            slot.failed = true;
        }
        g.replay.get_or_insert(reason);
    }

    /// Why the session must re-read from the checkpoint, once.
    pub fn take_replay(&self) -> Option<String> {
        self.lock().replay.take()
    }

    /// The newest position a transaction of this session committed at.
    pub fn newest_committed(&self) -> Option<Position> {
        self.lock().slots.iter().rev().find_map(|s| s.committed.clone())
    }

    /// The sink can deliver nothing (the broker refused its credentials): a failure with no
    /// transaction of its own, which stops the connector like a failed event.
    pub fn fail(&self, reason: String) {
        self.lock().failure.get_or_insert(reason);
    }

    /// `txn` has no more events; once they are all delivered, `position` may be checkpointed.
    /// `progress`, if any, is the snapshot progress this transaction completes (a chunk).
    pub fn commit(&self, txn: TxnId, position: Position, progress: Option<Arc<SnapshotProgress>>) {
        let mut g = self.lock();
        if let Some(slot) = g.slot_mut(txn) {
            slot.committed = Some(position);
            slot.progress = progress;
            if slot.end_ready() {
                self.ends.notify_one();
            }
        }
        g.advance();
    }

    /// A position with no events behind it (e.g. a keepalive past quiet WAL, a transaction on
    /// tables that are not captured): confirmed as soon as everything registered before it is.
    /// Consecutive marks share one slot, so a flood of them costs no memory while the sink is slow.
    /// `progress` is snapshot progress with no rows behind it (a chunk whose rows were all
    /// superseded by the log, a newly planned table).
    pub fn mark(&self, position: Position, progress: Option<Arc<SnapshotProgress>>) {
        let mut g = self.lock();
        match g.slots.back_mut() {
            // The last slot is closed and has nothing left to deliver: nothing lies between it
            // and this position, so confirming it can simply confirm the later position.
            Some(last) if last.committed.is_some() && last.outstanding == 0 && !last.failed && last.end.is_none() => {
                last.committed = Some(position);
                if progress.is_some() {
                    last.progress = progress;
                }
            }
            _ => g.slots.push_back(Slot { committed: Some(position), progress, ..Slot::default() }),
        }
        g.advance();
    }

    /// Forgets transactions that will never be committed (their session died). Only valid when
    /// nothing is in flight; their changes are re-read from the checkpoint. Holds end with the
    /// session too, but not before they pulled the confirmed position back to the earliest of
    /// them: the next session re-reads from there and takes them again.
    pub fn abandon_open(&self) {
        let mut g = self.lock();
        let n = g.slots.len() as u64;
        g.slots.clear();
        g.base += n;
        g.confirmed = g.held_confirmed();
        g.holds.clear();
        g.releasing.clear();
        // What the abandoned transactions' refusals asked for is being done: the re-read.
        g.replay = None;
        g.aborted = None;
    }

    /// Keeps the checkpoint at `at` (a transaction boundary the source passed) or before, until
    /// [`AckTracker::release`]: for a transaction whose outcome comes later in the log (a
    /// prepared XA transaction), so a crash before the outcome re-reads it.
    pub fn hold(&self, at: Position) -> HoldId {
        let mut g = self.lock();
        let id = HoldId(g.next_hold);
        g.next_hold += 1;
        g.holds.insert(id, at);
        id
    }

    pub fn release(&self, id: HoldId) {
        self.lock().holds.remove(&id);
    }

    /// Releases `id` once everything up to `at` is delivered: the transaction at `at` carries
    /// what the hold protected (an XA COMMIT publishing its prepared changes), and until it is
    /// delivered a crash must still re-read from the hold.
    pub fn release_after(&self, id: HoldId, at: Position) {
        let mut g = self.lock();
        g.releasing.push((id, at));
        g.settle_releases();
    }

    /// Places held (for status).
    pub fn holds(&self) -> usize {
        self.lock().holds.len()
    }

    /// The highest position whose every preceding event is delivered, and that no hold keeps
    /// the checkpoint behind.
    pub fn confirmed(&self) -> Option<Position> {
        self.lock().held_confirmed()
    }

    /// The newest snapshot progress that is delivered along with everything before it.
    pub fn confirmed_progress(&self) -> Option<Arc<SnapshotProgress>> {
        self.lock().confirmed_progress.clone()
    }

    /// The checkpoint store now holds snapshot progress up to `step`.
    pub fn set_durable_step(&self, step: u64) {
        let mut g = self.lock();
        g.durable_step = g.durable_step.max(step);
    }

    /// The newest snapshot step the checkpoint store holds (0 before any).
    pub fn durable_step(&self) -> u64 {
        self.lock().durable_step
    }

    /// The first definite delivery failure, if any.
    pub fn failure(&self) -> Option<String> {
        self.lock().failure.clone()
    }

    /// Events handed to the sink and not yet acknowledged or failed.
    pub fn in_flight(&self) -> u64 {
        self.lock().in_flight
    }

    /// Records when the source committed `txn`, for the lag metric.
    pub fn set_source_ts(&self, txn: TxnId, source_ts_us: i64) {
        if let Some(slot) = self.lock().slot_mut(txn) {
            slot.source_ts_us = source_ts_us;
        }
    }

    /// The source commit time of the oldest transaction not yet confirmed, if any.
    pub fn oldest_pending_source_ts_us(&self) -> Option<i64> {
        self.lock().slots.iter().map(|s| s.source_ts_us).find(|ts| *ts > 0)
    }

    /// Events whose delivery failed for good, since start.
    pub fn failed_events(&self) -> u64 {
        self.lock().failed_events
    }

    /// Transactions (and marks) registered and not yet confirmed: what the tracker holds in memory.
    pub fn pending_slots(&self) -> usize {
        self.lock().slots.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding this lock cannot leave the counters half-updated in a way that
        // would over-confirm, so recovering the guard is safe.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Inner {
    /// `confirmed`, or the earliest hold where that is before it.
    fn held_confirmed(&self) -> Option<Position> {
        match (self.holds.values().next(), &self.confirmed) {
            (Some(h), Some(c)) if c.partial_cmp(h) != Some(std::cmp::Ordering::Less) => Some(h.clone()),
            (_, c) => c.clone(),
        }
    }

    fn settle_releases(&mut self) {
        let Some(confirmed) = self.confirmed.clone() else { return };
        let holds = &mut self.holds;
        self.releasing.retain(|(id, at)| {
            let reached = confirmed.partial_cmp(at).is_some_and(|o| o != std::cmp::Ordering::Less);
            if reached {
                holds.remove(id);
            }
            !reached
        });
    }

    fn slot_mut(&mut self, txn: TxnId) -> Option<&mut Slot> {
        let idx = txn.0.checked_sub(self.base)?;
        self.slots.get_mut(idx as usize)
    }

    fn advance(&mut self) {
        while let Some(front) = self.slots.front() {
            match &front.committed {
                Some(pos) if front.outstanding == 0 && !front.failed && front.end.is_none() => {
                    // Positions only move forward, even if a source reports an older mark.
                    if self.confirmed.as_ref().is_none_or(|c| pos.partial_cmp(c) == Some(std::cmp::Ordering::Greater)) {
                        self.confirmed = Some(pos.clone());
                    }
                    let Some(mut slot) = self.slots.pop_front() else { break };
                    if let Some(p) = slot.progress.take() {
                        if self.confirmed_progress.as_ref().is_none_or(|c| p.step > c.step) {
                            self.confirmed_progress = Some(p);
                        }
                    }
                    self.base += 1;
                }
                _ => break,
            }
        }
        if !self.releasing.is_empty() {
            self.settle_releases();
        }
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
    fn a_hold_released_after_a_place_lasts_until_that_place_is_delivered() {
        let t = AckTracker::new();
        let prepare = t.begin();
        t.commit(prepare, pos(10), None);
        let hold = t.hold(pos(5));
        let commit = t.begin();
        t.expect(commit);
        t.commit(commit, pos(30), None);
        t.release_after(hold, pos(30));
        assert_eq!(t.confirmed(), Some(pos(5)), "the XA COMMIT's records are not delivered yet");
        assert_eq!(t.holds(), 1);
        t.delivered(commit);
        assert_eq!(t.confirmed(), Some(pos(30)));
        assert_eq!(t.holds(), 0);
    }

    #[test]
    fn a_hold_keeps_the_confirmed_position_until_released_or_the_session_ends() {
        let t = AckTracker::new();
        t.mark(pos(10), None);
        let h = t.hold(pos(10));
        let a = t.begin();
        t.expect(a);
        t.commit(a, pos(20), None);
        t.delivered(a);
        t.mark(pos(30), None);
        assert_eq!(t.confirmed(), Some(pos(10)), "a held place caps the checkpoint");
        assert_eq!(t.pending_slots(), 0, "delivered transactions behind a hold cost no memory");
        t.release(h);
        assert_eq!(t.confirmed(), Some(pos(30)));
        // A session that ends with a hold leaves the confirmed position at the hold.
        let _h = t.hold(pos(30));
        t.mark(pos(40), None);
        t.abandon_open();
        assert_eq!(t.confirmed(), Some(pos(30)));
        assert_eq!(t.holds(), 0);
        t.mark(pos(50), None);
        assert_eq!(t.confirmed(), Some(pos(50)));
    }

    #[test]
    fn confirms_only_contiguous_delivered_transactions() {
        let t = AckTracker::new();
        let a = t.begin();
        t.expect(a);
        t.expect(a);
        let b = t.begin();
        t.expect(b);
        t.commit(a, pos(10), None);
        t.commit(b, pos(20), None);
        // b delivered first: cannot be confirmed while a is outstanding.
        t.delivered(b);
        assert_eq!(t.confirmed(), None);
        t.delivered(a);
        assert_eq!(t.confirmed(), None);
        t.delivered(a);
        assert_eq!(t.confirmed(), Some(pos(20)));
        assert_eq!(t.in_flight(), 0);
    }

    #[test]
    fn open_transaction_blocks_confirmation() {
        let t = AckTracker::new();
        let a = t.begin();
        t.expect(a);
        t.delivered(a);
        // Not committed yet (e.g. shutdown mid-transaction): nothing confirmed.
        assert_eq!(t.confirmed(), None);
        t.mark(pos(99), None);
        assert_eq!(t.confirmed(), None);
        t.commit(a, pos(50), None);
        assert_eq!(t.confirmed(), Some(pos(99)));
    }

    #[test]
    fn failure_stops_confirmation_at_the_first_failed_transaction() {
        let t = AckTracker::new();
        let a = t.begin();
        t.expect(a);
        t.commit(a, pos(10), None);
        let b = t.begin();
        t.expect(b);
        t.expect(b);
        t.commit(b, pos(20), None);
        let c = t.begin();
        t.expect(c);
        t.commit(c, pos(30), None);
        t.delivered(a);
        t.failed(b, "message too large".into());
        t.delivered(b);
        t.delivered(c);
        // Unlike a finalizer that skips failed batches, c must not be confirmed past b.
        assert_eq!(t.confirmed(), Some(pos(10)));
        assert_eq!(t.failure().as_deref(), Some("message too large"));
    }

    #[test]
    fn empty_transactions_confirm_immediately_in_order() {
        let t = AckTracker::new();
        t.mark(pos(5), None);
        assert_eq!(t.confirmed(), Some(pos(5)));
        let a = t.begin();
        t.commit(a, pos(6), None);
        assert_eq!(t.confirmed(), Some(pos(6)));
    }

    #[test]
    fn snapshot_progress_is_confirmed_in_order_even_at_the_same_position() {
        let progress = |step| Some(Arc::new(SnapshotProgress { step, tables: Vec::new() }));
        let t = AckTracker::new();
        t.mark(pos(5), progress(1));
        assert_eq!(t.confirmed_progress().map(|p| p.step), Some(1));
        let chunk = t.begin();
        t.expect(chunk);
        t.commit(chunk, pos(5), progress(2));
        let later = t.begin();
        t.expect(later);
        t.commit(later, pos(9), None);
        t.delivered(later);
        assert_eq!(t.confirmed_progress().map(|p| p.step), Some(1), "the chunk is not delivered yet");
        t.delivered(chunk);
        assert_eq!(t.confirmed(), Some(pos(9)));
        assert_eq!(t.confirmed_progress().map(|p| p.step), Some(2));
        // An empty chunk (every row superseded) still records its progress.
        t.mark(pos(9), progress(3));
        assert_eq!(t.confirmed_progress().map(|p| p.step), Some(3));
    }

    fn end(id: &str) -> PendingEnd {
        PendingEnd { id: id.into(), ts_us: 0, events: 1, collections: vec![("s.t".into(), 1)] }
    }

    /// One record of a new transaction, delivered at `offset`, with an END owed.
    fn txn_with_end(t: &AckTracker, id: &str, at: u64, offset: i64) -> TxnId {
        let txn = t.begin();
        t.collect_offsets(txn);
        t.expect(txn);
        t.delivered_at(txn, "p.s.t", 0, offset);
        t.set_end(txn, end(id));
        t.commit(txn, pos(at), None);
        txn
    }

    #[test]
    fn an_end_waits_for_its_records_and_the_checkpoint_waits_for_the_end() {
        let t = AckTracker::new();
        let txn = t.begin();
        t.collect_offsets(txn);
        t.expect(txn);
        t.set_end(txn, end("a"));
        t.commit(txn, pos(10), None);
        assert!(t.take_ready_end().is_none(), "its record is not acknowledged yet");
        t.delivered_at(txn, "p.s.t", 2, 41);
        assert_eq!(t.confirmed(), None, "delivered, but its END is not");
        let (id, e, offsets) = t.take_ready_end().expect("ready");
        assert_eq!((id, e.id.as_str()), (txn, "a"));
        assert_eq!(offsets, vec![LastOffset { topic: "p.s.t".into(), partition: 2, offset: 41 }]);
        assert_eq!((t.in_flight(), t.confirmed()), (1, None), "the END is in flight");
        t.delivered(txn);
        assert_eq!(t.confirmed(), Some(pos(10)));
    }

    #[test]
    fn ends_go_out_in_transaction_order_and_a_returned_one_comes_back_first() {
        let t = AckTracker::new();
        let first = t.begin();
        t.expect(first);
        t.set_end(first, end("1"));
        t.commit(first, pos(10), None);
        let second = txn_with_end(&t, "2", 20, 7);
        assert!(t.take_ready_end().is_none(), "the second END may not overtake the first");
        t.delivered(first);
        let (id, e, o) = t.take_ready_end().expect("first");
        assert_eq!(id, first);
        t.return_end(id, e, o);
        assert_eq!(t.in_flight(), 0);
        assert_eq!(t.take_ready_end().map(|(id, ..)| id), Some(first), "given back, taken again first");
        assert_eq!(t.take_ready_end().map(|(id, ..)| id), Some(second));
        assert!(t.take_ready_end().is_none());
        assert!(!t.ends_owed());
    }

    #[test]
    fn a_mark_does_not_merge_into_a_transaction_that_owes_its_end() {
        let t = AckTracker::new();
        let txn = txn_with_end(&t, "a", 10, 0);
        t.mark(pos(30), None);
        assert_eq!(t.confirmed(), None);
        let _ = t.take_ready_end().expect("ready");
        t.delivered(txn);
        assert_eq!(t.confirmed(), Some(pos(30)));
    }
}
