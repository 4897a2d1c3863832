//! The keys the log changed recently, on tables being snapshotted: what lets a snapshot chunk
//! drop the rows the log superseded while the chunk was read (the watermark algorithm of
//! Netflix's DBLog, which Debezium's incremental snapshots also use).
//!
//! A chunk read between log positions `lo` and its emission point is stale for every key the
//! log changed at or after `lo`: those rows are dropped and the log's events stand. On
//! PostgreSQL a transaction can also be in the log before `lo` and still be invisible to the
//! chunk's read (its commit record was written, but it had not ended when the read's snapshot
//! was taken); the caller passes a visibility test so such transactions count too.
//!
//! Tables not cut by a unique key (keyless, or `key_columns` no index proves unique) are matched
//! by whole row instead: the source records the old image of every row it updates or deletes,
//! and a chunk drops one row per matching image that the read still saw ([`Superseded::removed`]:
//! a keyless table may hold identical rows). Each such change accounts for one row of the whole
//! table, so the row it drops is marked ([`RecentKeys::consume`]) and no other chunk drops
//! another copy for it. The rows such changes add are left to the reader, which skips rows
//! written after streaming began where the source can tell.
//!
//! Keys are compared as the broker sees them (the rendered message key), hashed to 128 bits.
//! Entries are kept while a chunk may still need them, at least [`RETENTION`], and at most
//! [`CAPACITY`]; a chunk whose window reaches back past an entry dropped for room is re-read.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::time::{Duration, Instant};

/// How long an entry is kept even when no chunk is open, for transactions that become visible
/// late (see the module text).
pub const RETENTION: Duration = Duration::from_secs(10);
/// Most entries kept (about 40 bytes each).
pub const CAPACITY: usize = 250_000;

/// A key as compared: 128 bits of two SipHash passes over the rendered key.
pub type KeyHash = u128;

/// The hash standing for "every key" (a TRUNCATE).
const ALL_KEYS: KeyHash = 0;

pub fn key_hash(key: &[u8]) -> KeyHash {
    let half = |salt: u8| {
        let mut h = std::hash::DefaultHasher::new();
        salt.hash(&mut h);
        key.hash(&mut h);
        h.finish()
    };
    let k = ((half(1) as u128) << 64) | half(2) as u128;
    // Keep 0 for ALL_KEYS; a real key hashing to 0 is merely treated as 1.
    k.max(1)
}

/// Where a change the log recorded stands relative to a chunk's read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Before the chunk's window, and in its rows.
    Before,
    /// In the chunk's window, and already in its rows.
    InRead,
    /// After the read (or not known to be before it): the rows still hold the old state.
    AfterRead,
}

struct Entry {
    /// Numbers entries in recording order (never reused).
    id: u64,
    /// A chunk already left out a row for this change (row-image entries only).
    consumed: bool,
    pos: u64,
    /// The source's transaction (PostgreSQL's xid; a number the MySQL source keeps).
    xid: u32,
    table: u32,
    key: KeyHash,
    at: Instant,
}

/// What a chunk must drop.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Superseded {
    /// The table was truncated after (or invisibly to) the read: drop every row.
    pub all: bool,
    /// Keys changed in the window or after the read (for tables cut by a unique key).
    pub keys: HashSet<KeyHash>,
    /// Row images updated away or deleted after the read, each with the changes (entry ids)
    /// that removed one such row and that no chunk has accounted for yet (for tables matched by
    /// whole row).
    pub removed: HashMap<KeyHash, Vec<u64>>,
}

impl Superseded {
    pub fn contains(&self, key: KeyHash) -> bool {
        self.all || self.keys.contains(&key)
    }

    /// The change that removed a row with image `image` after the read, if one is left: the
    /// row is dropped for it, and the caller marks it consumed ([`RecentKeys::consume`]).
    pub fn take_removed(&mut self, image: KeyHash) -> Option<u64> {
        self.removed.get_mut(&image)?.pop()
    }
}

/// The chunk's window reaches back past entries dropped for room: read it again.
#[derive(Debug, PartialEq, Eq)]
pub struct NotCovered {
    pub from: u64,
    pub horizon: u64,
}

pub struct RecentKeys {
    entries: VecDeque<Entry>,
    /// Every change at or after this position is recorded (the recording start, or just past
    /// the newest entry dropped).
    horizon: u64,
    capacity: usize,
    next_id: u64,
}

impl RecentKeys {
    /// Recording starts at log position `from`.
    pub fn new(from: u64) -> Self {
        Self::with_capacity(from, CAPACITY)
    }

    pub fn with_capacity(from: u64, capacity: usize) -> Self {
        RecentKeys { entries: VecDeque::new(), horizon: from, capacity, next_id: 0 }
    }

    /// The log changed `key` of `table` in the transaction `xid` committed at `pos`.
    pub fn record(&mut self, table: u32, pos: u64, xid: u32, key: KeyHash) {
        if self.entries.len() >= self.capacity {
            if let Some(e) = self.entries.pop_front() {
                self.horizon = self.horizon.max(e.pos + 1);
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push_back(Entry { id, consumed: false, pos, xid, table, key, at: Instant::now() });
    }

    /// A chunk left out a row for the change `id` (see [`Superseded::take_removed`]).
    pub fn consume(&mut self, id: u64) {
        if let Ok(i) = self.entries.binary_search_by_key(&id, |e| e.id) {
            if let Some(e) = self.entries.get_mut(i) {
                e.consumed = true;
            }
        }
    }

    /// The log truncated `table`.
    pub fn record_truncate(&mut self, table: u32, pos: u64, xid: u32) {
        self.record(table, pos, xid, ALL_KEYS);
    }

    /// What a chunk of `table` whose window starts at log position `lo` must drop; `seen` places
    /// each change (its position and transaction) relative to the chunk's read.
    pub fn superseded(&self, table: u32, lo: u64, seen: impl Fn(u64, u32) -> Seen) -> Result<Superseded, NotCovered> {
        if lo < self.horizon {
            return Err(NotCovered { from: lo, horizon: self.horizon });
        }
        let mut out = Superseded::default();
        for e in self.entries.iter().filter(|e| e.table == table) {
            let place = seen(e.pos, e.xid);
            if place == Seen::Before {
                continue;
            }
            if e.key == ALL_KEYS {
                out.all = true;
                continue;
            }
            out.keys.insert(e.key);
            if place == Seen::AfterRead && !e.consumed {
                out.removed.entry(e.key).or_default().push(e.id);
            }
        }
        Ok(out)
    }

    /// Drops entries no chunk needs: older than [`RETENTION`], before `keep_from` (the lowest
    /// `lo` of the chunks read and waiting; `None` when none is), and recorded more than
    /// [`RETENTION`] before `reading_since` (when the oldest read still running began: its `lo`
    /// is not known yet, but every change at or after it is recorded after the read began).
    pub fn prune(&mut self, keep_from: Option<u64>, reading_since: Option<Instant>) {
        self.prune_at(Instant::now(), keep_from, reading_since);
    }

    fn prune_at(&mut self, now: Instant, keep_from: Option<u64>, reading_since: Option<Instant>) {
        while let Some(e) = self.entries.front() {
            let old = now.duration_since(e.at) > RETENTION;
            let before_reads = reading_since.is_none_or(|s| s.duration_since(e.at) > RETENTION);
            if old && before_reads && keep_from.is_none_or(|k| e.pos < k) {
                // A chunk still being read whose window reaches back this far must be read
                // again rather than checked against fewer changes than there were.
                self.horizon = self.horizon.max(e.pos + 1);
                self.entries.pop_front();
            } else {
                break;
            }
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// PostgreSQL's rule: invisible to the read is after it; else in the window from `lo` on.
    fn pg_like(lo: u64, pos: u64, invisible: bool) -> Seen {
        if invisible {
            Seen::AfterRead
        } else if pos >= lo {
            Seen::InRead
        } else {
            Seen::Before
        }
    }

    /// Issue 20 item 8: a keyless table's rows are matched by image, and only the changes the
    /// read did not see remove a row from the chunk, once per change.
    #[test]
    fn images_removed_after_the_read_are_counted() {
        let mut r = RecentKeys::new(0);
        let (x, y) = (key_hash(b"[1,\"x\"]"), key_hash(b"[2,\"y\"]"));
        r.record(3, 50, 20, x); // after lo, but seen by the read: the row is already gone
        r.record(3, 60, 21, y); // after the read
        r.record(3, 70, 22, y); // after the read, an identical row
        r.record(3, 10, 23, x); // before lo, yet invisible to the read
        let mut s = r.superseded(3, 40, |pos, xid| pg_like(40, pos, xid >= 21)).unwrap();
        assert_eq!(s.removed.get(&y).map(Vec::len), Some(2));
        assert_eq!(s.removed.get(&x).map(Vec::len), Some(1), "the one seen by the read does not count");
        assert!(s.keys.contains(&x) && s.keys.contains(&y));
        // One chunk drops a y for one of the two deletes: the next chunk has one left to drop.
        let used = s.take_removed(y).unwrap();
        r.consume(used);
        let s = r.superseded(3, 40, |pos, xid| pg_like(40, pos, xid >= 21)).unwrap();
        assert_eq!(s.removed.get(&y).map(Vec::len), Some(1), "a change accounts for one row of the table");
    }

    #[test]
    fn keys_changed_in_the_window_or_invisibly_before_it_are_superseded() {
        let mut r = RecentKeys::new(100);
        let (a, b, c, d) = (key_hash(b"{\"id\":1}"), key_hash(b"{\"id\":2}"), key_hash(b"{\"id\":3}"), key_hash(b"x"));
        r.record(7, 150, 10, a); // before the window, visible to the read
        r.record(7, 160, 11, b); // before the window, its commit not yet visible to the read
        r.record(7, 200, 12, c); // in the window
        r.record(8, 210, 13, d); // another table
        let s = r.superseded(7, 180, |pos, xid| pg_like(180, pos, xid == 11)).unwrap();
        assert!(!s.contains(a) && s.contains(b) && s.contains(c) && !s.contains(d));
        assert!(!s.all);
        r.record_truncate(7, 220, 14);
        assert!(r.superseded(7, 180, |pos, _| pg_like(180, pos, false)).unwrap().all);
        assert!(!r.superseded(8, 180, |pos, _| pg_like(180, pos, false)).unwrap().all);
    }

    #[test]
    fn a_window_older_than_what_was_kept_is_refused() {
        let mut r = RecentKeys::with_capacity(100, 2);
        assert_eq!(r.superseded(7, 99, |pos, _| pg_like(99, pos, false)), Err(NotCovered { from: 99, horizon: 100 }));
        r.record(7, 110, 1, key_hash(b"a"));
        r.record(7, 120, 2, key_hash(b"b"));
        r.record(7, 130, 3, key_hash(b"c"));
        assert_eq!(r.len(), 2);
        assert!(
            r.superseded(7, 110, |pos, _| pg_like(110, pos, false)).is_err(),
            "the entry at 110 was dropped for room"
        );
        assert_eq!(r.superseded(7, 111, |pos, _| pg_like(111, pos, false)).unwrap().keys.len(), 2);
    }

    #[test]
    fn prune_keeps_what_open_chunks_and_the_retention_need() {
        let mut r = RecentKeys::new(0);
        r.record(1, 10, 1, key_hash(b"a"));
        r.prune(None, None);
        assert_eq!(r.len(), 1, "younger than the retention");
        assert_ne!(key_hash(b"a"), key_hash(b"b"));
        assert_ne!(key_hash(b""), ALL_KEYS);
    }

    /// Issue 20 item 14: a chunk read that runs past the retention under writes must still be
    /// checkable when it returns, or it is read again, and again, for as long as writes go on.
    #[test]
    fn a_read_still_running_keeps_what_it_will_be_checked_against() {
        let t0 = Instant::now();
        let later = |secs: u64| t0 + Duration::from_secs(secs);
        let mut r = RecentKeys::new(0);
        r.record(1, 10, 1, key_hash(b"a")); // before the read began
        let read_began = Instant::now();
        r.record(1, 20, 2, key_hash(b"b")); // during the read (its lo is 15, say)

        // 30 s later the read is still running: only what is older than the read by more than
        // the retention may go, so the read's window stays covered.
        r.prune_at(later(30), None, Some(read_began));
        assert_eq!(r.len(), 2, "entries from the retention before the read on are kept");
        assert_eq!(r.superseded(1, 15, |pos, _| pg_like(15, pos, false)).map(|s| s.keys.len()), Ok(1));

        // The read returned and waits for its watermark: its lo keeps its window.
        r.prune_at(later(30 + RETENTION.as_secs() * 2), Some(15), None);
        assert_eq!(r.len(), 1);
        assert_eq!(r.superseded(1, 15, |pos, _| pg_like(15, pos, false)).map(|s| s.keys.len()), Ok(1));

        // With nothing open, everything old goes, and an old window is no longer covered.
        r.prune_at(later(30 + RETENTION.as_secs() * 2), None, None);
        assert!(r.is_empty());
        assert!(r.superseded(1, 15, |pos, _| pg_like(15, pos, false)).is_err());
    }
}
