//! The bookkeeping of a chunked snapshot: which ranges of each table are emitted, how far each
//! table is done over the contiguous run of emitted ranges, Debezium's first/last markers, the
//! never-backwards progress that rides on each chunk to the checkpoint, the bound on chunks
//! emitted but not yet checkpointed, and progress in the logs.
//!
//! The sources read and emit rows; this module only decides what a chunk means for progress.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::config::SnapshotMode;
use crate::core::snapshot::{SnapshotKind, SnapshotMarker, SnapshotProgress, TableProgress};

/// How often progress is logged.
const REPORT_EVERY: Duration = Duration::from_secs(5);

/// Where a chunk sits in its table, as the reader reports it.
#[derive(Clone, Debug)]
pub struct ChunkPlace {
    /// Index of the table, as [`ChunkLedger::add_table`] returned it.
    pub table: usize,
    /// Position of the range in its table, from 0; ranges are contiguous and ascending.
    pub seq: u64,
    /// The key (or block) the table is complete up to once this chunk is delivered.
    pub done_upto: Option<Vec<String>>,
    /// The range is fully read (otherwise its rest follows with the same `seq`).
    pub complete: bool,
    /// The range is the table's last one.
    pub last_range: bool,
}

/// A range of one table: `(lower, upper]` by key, `[lower, upper)` by block; `None` is open.
#[derive(Clone, Debug)]
pub struct Job {
    pub table: usize,
    /// Position of the range in its table, from 0; ranges are contiguous and ascending.
    pub seq: u64,
    pub lower: Option<Vec<String>>,
    pub upper: Option<Vec<String>>,
    /// Read again after a failed check: pieces of earlier attempts that were not emitted yet
    /// are dropped, so the range is covered once, from where the failed piece started.
    pub attempt: u32,
}

struct TableRun {
    name: String,
    kind: SnapshotKind,
    estimate: u64,
    /// The first range not yet emitted; ranges after it that were emitted wait in `held`.
    next_seq: u64,
    held: BTreeMap<u64, ChunkPlace>,
    /// Replaced by a newer run of the same table (a snapshot asked for again): its chunks that
    /// are still in flight are dropped.
    retired: bool,
}

/// What emitting one chunk does to its table, decided before its rows go out.
pub struct ChunkOutcome {
    table: usize,
    /// `None`: an earlier range of the table is not emitted yet, so `done_upto` cannot move.
    step: Option<(Option<Vec<String>>, bool)>,
}

impl ChunkOutcome {
    /// The chunk completes its table.
    pub fn table_done(&self) -> bool {
        self.step.as_ref().is_some_and(|s| s.1)
    }
}

pub struct ChunkLedger {
    progress: SnapshotProgress,
    runs: Vec<TableRun>,
    /// Steps of chunks emitted but not yet in the checkpoint store. Bounded by the number of
    /// workers: what a crash makes us read (and publish) again is at most one chunk per worker.
    unsaved: VecDeque<u64>,
    max_unsaved: usize,
    /// Ranges read again: the attempt their pieces must come from.
    attempts: HashMap<(usize, u64), u32>,
    started: Instant,
    last_report: Instant,
    rows_this_run: u64,
}

impl ChunkLedger {
    pub fn new(progress: SnapshotProgress, workers: usize) -> Self {
        let now = Instant::now();
        ChunkLedger {
            progress,
            runs: Vec::new(),
            unsaved: VecDeque::new(),
            max_unsaved: workers.max(1),
            attempts: HashMap::new(),
            started: now,
            last_report: now,
            rows_this_run: 0,
        }
    }

    pub fn progress(&self) -> &SnapshotProgress {
        &self.progress
    }

    /// Adds table `name` if its progress says it still needs reading; returns its index. An
    /// earlier run of the same table is retired.
    pub fn add_table(&mut self, name: &str, estimate: u64) -> Option<usize> {
        let p = self.progress.table(name).filter(|p| !p.done)?;
        let kind = p.kind;
        if self.all_done() {
            // A new snapshot after the last one finished: rates and totals start over.
            self.started = Instant::now();
            self.rows_this_run = 0;
        }
        for r in self.runs.iter_mut().filter(|r| r.name == name) {
            r.retired = true;
        }
        self.runs.push(TableRun {
            name: name.to_string(),
            kind,
            estimate,
            next_seq: 0,
            held: BTreeMap::new(),
            retired: false,
        });
        Some(self.runs.len() - 1)
    }

    /// Records a snapshot of `name` asked for while streaming (on demand, or a table that
    /// started to match): its progress starts over as an incremental snapshot limited by
    /// `filter` (`streamed_after`: see [`TableProgress`]). Returns the progress to checkpoint at
    /// once, so the request survives a crash; [`ChunkLedger::add_table`] then starts the run.
    pub fn request(
        &mut self,
        name: &str,
        filter: Option<String>,
        streamed_after: Option<String>,
    ) -> Arc<SnapshotProgress> {
        let mut entry = TableProgress::pending(name.to_string(), SnapshotKind::Incremental, filter);
        entry.streamed_after = streamed_after;
        self.set(entry)
    }

    /// Records that table `name` needs no snapshot (the log holds it from its creation on); a
    /// run of it still going is retired. Returns the progress to checkpoint.
    pub fn streamed_only(&mut self, name: &str) -> Arc<SnapshotProgress> {
        for r in self.runs.iter_mut().filter(|r| r.name == name) {
            r.retired = true;
        }
        self.set(TableProgress::streamed_only(name.to_string()))
    }

    /// Stops the incremental snapshot of `name`, or every one when `None` (Debezium's
    /// `stop-snapshot`): its run is retired and its progress marked done, so it does not resume
    /// after a restart either. Returns the progress to checkpoint when a snapshot was stopped.
    pub fn stop(&mut self, name: Option<&str>) -> Option<Arc<SnapshotProgress>> {
        let mut stopped = Vec::new();
        for t in &mut self.progress.tables {
            if !t.done && t.kind == SnapshotKind::Incremental && name.is_none_or(|n| n == t.table) {
                t.done = true;
                stopped.push(t.table.clone());
            }
        }
        if stopped.is_empty() {
            tracing::info!(table = name.unwrap_or("(all)"), "stop-snapshot: no incremental snapshot of it is running");
            return None;
        }
        for r in self.runs.iter_mut().filter(|r| stopped.contains(&r.name)) {
            r.retired = true;
        }
        for table in &stopped {
            let rows = self.progress.table(table).map_or(0, |t| t.rows);
            tracing::info!(%table, rows, "incremental snapshot stopped by a signal");
        }
        self.progress.step += 1;
        Some(Arc::new(self.progress.clone()))
    }

    /// Table `index` cannot be read any further (`why`: dropped or renamed while being read, or
    /// its signal's filter fails): its snapshot ends as done, the rows emitted so far stay.
    /// Returns the progress to checkpoint, once.
    pub fn ended(&mut self, index: usize, why: &str) -> Option<Arc<SnapshotProgress>> {
        let run = self.runs.get_mut(index).filter(|r| !r.retired)?;
        run.retired = true;
        let name = run.name.clone();
        let t = self.progress.table_mut(&name).filter(|t| !t.done)?;
        t.done = true;
        tracing::warn!(table = %name, rows = t.rows, "{why}; the table's snapshot ends (the rows emitted so far stay), streaming goes on");
        self.progress.step += 1;
        Some(Arc::new(self.progress.clone()))
    }

    fn set(&mut self, entry: TableProgress) -> Arc<SnapshotProgress> {
        match self.progress.table_mut(&entry.table) {
            Some(t) => *t = entry,
            None => self.progress.tables.push(entry),
        }
        self.progress.step += 1;
        Arc::new(self.progress.clone())
    }

    /// Rows the server estimated the tables being read hold.
    pub fn estimated_rows(&self) -> u64 {
        self.live().filter(|r| self.progress.table(&r.name).is_some_and(|t| !t.done)).map(|r| r.estimate).sum()
    }

    /// Rows the server estimated table `index` holds.
    pub fn estimate(&self, index: usize) -> u64 {
        self.runs.get(index).map_or(0, |r| r.estimate)
    }

    fn live(&self) -> impl Iterator<Item = &TableRun> {
        self.runs.iter().filter(|r| !r.retired)
    }

    pub fn name(&self, table: usize) -> &str {
        &self.runs[table].name
    }

    /// Every table added is done.
    pub fn all_done(&self) -> bool {
        self.live().all(|r| self.progress.table(&r.name).is_none_or(|t| t.done))
    }

    /// Whether another chunk may be emitted now that the store holds snapshot step `durable`.
    pub fn may_emit(&mut self, durable: u64) -> bool {
        while self.unsaved.front().is_some_and(|&s| s <= durable) {
            self.unsaved.pop_front();
        }
        self.unsaved.len() < self.max_unsaved
    }

    /// Every earlier range of `job`'s table is emitted.
    pub fn in_order(&self, job: &Job) -> bool {
        self.runs.get(job.table).is_some_and(|r| r.next_seq == job.seq)
    }

    /// The piece of `job` belongs to a read that was since started again: drop it.
    pub fn stale(&self, job: &Job) -> bool {
        self.runs.get(job.table).is_none_or(|r| r.retired)
            || self.attempts.get(&(job.table, job.seq)).is_some_and(|&a| job.attempt < a)
    }

    /// The piece of `job` cannot be emitted (its window can no longer be checked): returns the
    /// job that reads its range again, from where the piece started to the range's end.
    pub fn retry(&mut self, job: &Job) -> Job {
        let attempt = job.attempt + 1;
        self.attempts.insert((job.table, job.seq), attempt);
        Job { attempt, ..job.clone() }
    }

    /// Records that the chunk at `place` is about to be emitted.
    pub fn begin(&mut self, place: &ChunkPlace) -> ChunkOutcome {
        let run = &mut self.runs[place.table];
        let table = place.table;
        if place.seq != run.next_seq {
            run.held.insert(place.seq, place.clone());
            return ChunkOutcome { table, step: None };
        }
        let mut cur = place.clone();
        loop {
            if !cur.complete {
                return ChunkOutcome { table, step: Some((cur.done_upto, false)) };
            }
            if cur.last_range {
                return ChunkOutcome { table, step: Some((cur.done_upto, true)) };
            }
            run.next_seq += 1;
            match run.held.remove(&run.next_seq) {
                Some(h) => cur = h,
                None => return ChunkOutcome { table, step: Some((cur.done_upto, false)) },
            }
        }
    }

    /// The marker of a row of the chunk `outcome` describes: `first` / `last` say whether it is
    /// the chunk's first / last row that is emitted.
    pub fn marker(&self, outcome: &ChunkOutcome, first: bool, last: bool) -> SnapshotMarker {
        let run = &self.runs[outcome.table];
        if run.kind == SnapshotKind::Incremental {
            return SnapshotMarker::Incremental;
        }
        let initial = || self.progress.tables.iter().filter(|t| t.kind == SnapshotKind::Initial);
        if last && outcome.table_done() {
            let others_done = initial().all(|t| t.done || t.table == run.name);
            return if others_done { SnapshotMarker::Last } else { SnapshotMarker::LastInTable };
        }
        if first {
            if initial().all(|t| t.rows == 0) {
                return SnapshotMarker::First;
            }
            if self.progress.table(&run.name).is_some_and(|t| t.rows == 0) {
                return SnapshotMarker::FirstInTable;
            }
        }
        SnapshotMarker::Yes
    }

    /// The chunk is emitted with `rows` rows: returns the progress to commit with it.
    pub fn finish(&mut self, outcome: ChunkOutcome, rows: u64) -> Arc<SnapshotProgress> {
        self.rows_this_run += rows;
        self.progress.step += 1;
        let name = self.runs[outcome.table].name.clone();
        let table_done = outcome.table_done();
        if let Some(t) = self.progress.table_mut(&name) {
            t.rows += rows;
            if let Some((done_upto, done)) = outcome.step {
                t.done_upto = done_upto;
                t.done = done;
            }
        }
        if table_done {
            let rows = self.progress.table(&name).map_or(0, |t| t.rows);
            tracing::info!(table = %name, rows, "snapshot of table done");
        }
        self.unsaved.push_back(self.progress.step);
        Arc::new(self.progress.clone())
    }

    /// Logs rows done / estimated / ETA per table every few seconds, or the summary at the end.
    pub fn report(&mut self, last: bool) {
        if !last && self.last_report.elapsed() < REPORT_EVERY {
            return;
        }
        self.last_report = Instant::now();
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.rows_this_run as f64 / secs;
        if last {
            tracing::info!(
                rows = self.rows_this_run,
                secs = secs as u64,
                rows_per_sec = rate as u64,
                "snapshot finished"
            );
            return;
        }
        for r in self.live() {
            let Some(t) = self.progress.table(&r.name).filter(|t| !t.done) else { continue };
            let left = r.estimate.saturating_sub(t.rows);
            let eta = if rate > 0.0 { (left as f64 / rate) as u64 } else { 0 };
            tracing::info!(table = %r.name, rows = t.rows, estimated_rows = r.estimate, rows_per_sec = rate as u64, eta_secs = eta, "snapshot in progress");
        }
    }
}

/// Brings the progress in line with the tables captured now: a table it does not know is new
/// (snapshotted, unless the connector never snapshots); one no longer captured is forgotten (so
/// it is read again if it comes back). Returns whether anything changed.
pub fn reconcile_progress(progress: &mut SnapshotProgress, names: &[String], mode: SnapshotMode) -> bool {
    let before = progress.tables.len();
    progress.tables.retain(|t| names.contains(&t.table));
    let mut changed = progress.tables.len() != before;
    for name in names.iter().cloned() {
        if progress.table(&name).is_none() {
            let entry = match mode {
                SnapshotMode::Initial | SnapshotMode::InitialOnly | SnapshotMode::WhenNeeded => {
                    tracing::info!(table = %name, "table newly captured: snapshotting it while streaming");
                    TableProgress::pending(name, SnapshotKind::Incremental, None)
                }
                SnapshotMode::Never => TableProgress::streamed_only(name),
            };
            progress.tables.push(entry);
            changed = true;
        }
    }
    changed
}

#[cfg(test)]
mod tests {
    use super::*;

    fn place(table: usize, seq: u64, upto: &str, last_range: bool) -> ChunkPlace {
        ChunkPlace { table, seq, done_upto: Some(vec![upto.into()]), complete: true, last_range }
    }

    #[test]
    fn done_upto_moves_only_over_contiguous_ranges_and_markers_follow_debezium() {
        let progress = SnapshotProgress {
            step: 0,
            tables: vec![
                TableProgress::pending("a".into(), SnapshotKind::Initial, None),
                TableProgress::pending("b".into(), SnapshotKind::Initial, None),
            ],
        };
        let mut l = ChunkLedger::new(progress, 2);
        let (a, b) = (l.add_table("a", 10).unwrap(), l.add_table("b", 10).unwrap());
        // Range 1 of `a` arrives before range 0: it is held.
        let o = l.begin(&place(a, 1, "20", false));
        assert_eq!(l.marker(&o, true, false), SnapshotMarker::First);
        let p = l.finish(o, 3);
        assert_eq!(p.table("a").unwrap().done_upto, None, "range 0 is missing");
        assert!(l.may_emit(0), "one chunk unsaved, two workers");
        let o = l.begin(&place(a, 0, "10", false));
        assert_eq!(l.marker(&o, true, false), SnapshotMarker::Yes, "rows of `a` were emitted already");
        let p = l.finish(o, 3);
        assert_eq!(p.table("a").unwrap().done_upto, Some(vec!["20".into()]), "0 and 1 are contiguous");
        assert!(!l.may_emit(0), "two chunks unsaved with two workers");
        assert!(l.may_emit(p.step - 1), "the store holds the first: one unsaved now");
        let o = l.begin(&place(a, 2, "30", true));
        assert_eq!(l.marker(&o, false, true), SnapshotMarker::LastInTable, "`b` is not done");
        l.finish(o, 1);
        let o = l.begin(&place(b, 0, "5", true));
        assert_eq!(l.marker(&o, true, false), SnapshotMarker::FirstInTable);
        assert_eq!(l.marker(&o, false, true), SnapshotMarker::Last);
        let p = l.finish(o, 2);
        assert!(l.all_done() && p.tables.iter().all(|t| t.done));
        assert_eq!(p.step, 4);
    }

    #[test]
    fn stop_ends_incremental_snapshots_only() {
        let progress = SnapshotProgress {
            step: 7,
            tables: vec![
                TableProgress::pending("init".into(), SnapshotKind::Initial, None),
                TableProgress::pending("inc".into(), SnapshotKind::Incremental, None),
            ],
        };
        let mut l = ChunkLedger::new(progress, 2);
        let (_, inc) = (l.add_table("init", 10).unwrap(), l.add_table("inc", 10).unwrap());
        assert!(l.stop(Some("init")).is_none(), "an initial snapshot is not stopped by a signal");
        assert!(l.stop(Some("other")).is_none());
        let p = l.stop(None).expect("the incremental one stops");
        assert_eq!(p.step, 8);
        assert!(p.table("inc").unwrap().done && !p.table("init").unwrap().done);
        assert!(l.stale(&Job { table: inc, seq: 0, lower: None, upper: None, attempt: 0 }), "its reads are dropped");
        assert!(!l.all_done(), "the initial snapshot goes on");
    }

    #[test]
    fn a_table_gone_ends_its_snapshot_once() {
        let progress =
            SnapshotProgress { step: 0, tables: vec![TableProgress::pending("t".into(), SnapshotKind::Initial, None)] };
        let mut l = ChunkLedger::new(progress, 2);
        let t = l.add_table("t", 10).unwrap();
        let p = l.ended(t, "table no longer exists").expect("progress to checkpoint");
        assert!(p.table("t").unwrap().done && p.step == 1);
        assert!(l.ended(t, "table no longer exists").is_none(), "reported by another worker too: once is enough");
        assert!(l.all_done());
    }
}
