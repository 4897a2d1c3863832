//! The running part of a chunked snapshot that both sources share: a planner that cuts tables
//! into key ranges as workers need them, reader workers (each with its own connection, behind
//! the rate limit), the chunks read and waiting for the stream to pass their watermark, and the
//! keys the log changed meanwhile.
//!
//! A source supplies a [`ChunkReader`] (how to cut and read ranges of its tables) and, between
//! two transactions of its stream, takes the chunks [`SnapshotEngine::next_ready`] hands it,
//! checks them with [`SnapshotEngine::superseded`] and emits them. Tables may be added at any
//! time (newly matched, or asked for on demand); the tasks start when there is work and stop
//! when every table is done.

use std::future::Future;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};

use tokio::sync::{mpsc, Mutex, OwnedSemaphorePermit, Semaphore};

use super::ledger::{ChunkLedger, ChunkPlace, Job};
use crate::core::recent_keys::{KeyHash, RecentKeys, Seen, Superseded};
use crate::core::snapshot::SnapshotProgress;
use crate::core::status::State;
use crate::emit::Emitter;
use crate::error::SourceError;
use crate::source::TaskGuard;

pub type Limiter = governor::DefaultDirectRateLimiter;

/// Where a reader sends the pieces of one read.
pub type PieceSender<R> = mpsc::Sender<Piece<R>>;

/// Jobs each worker may have planned, being read or read but not yet emitted.
const READ_AHEAD_PER_WORKER: usize = 2;

/// One piece of a job, read: the whole range or, when more rows than a chunk's limit arrived
/// since planning, its first part (the rest follows as the next piece of the same job).
pub struct Piece<R> {
    pub job: Job,
    pub rows: R,
    /// The key (or block) the table is complete up to once this piece is delivered.
    pub done_upto: Option<Vec<String>>,
    /// The job's range is fully read.
    pub complete: bool,
    /// The log position from which the log's changes may be missing from the rows.
    pub lo: u64,
    /// The log position the stream must pass before the rows are emitted.
    pub emit_at: u64,
    pub read_at_us: i64,
}

impl<R> Piece<R> {
    pub fn place(&self) -> ChunkPlace {
        ChunkPlace {
            table: self.job.table,
            seq: self.job.seq,
            done_upto: self.done_upto.clone(),
            complete: self.complete,
            last_range: self.job.upper.is_none(),
        }
    }
}

/// How one source cuts and reads its tables.
pub trait ChunkReader: Send + Sync + 'static {
    /// What the reader needs to know about one table.
    type Plan: Send + Sync + 'static;
    type Conn: Send + 'static;
    /// The rows of a piece, in the source's own form.
    type Rows: Send + 'static;

    fn chunk_rows(&self) -> u32;
    fn limiter(&self) -> Option<&Limiter>;
    /// A connection of its own for the planner or one worker.
    fn connect(&self) -> impl Future<Output = Result<Self::Conn, SourceError>> + Send;
    /// The end of the range that starts after `lower`, or `None` when the rest is one range.
    fn boundary(
        &self,
        conn: &mut Self::Conn,
        plan: &Self::Plan,
        lower: Option<&[String]>,
    ) -> impl Future<Output = Result<Option<Vec<String>>, SourceError>> + Send;
    /// Where a table's first range starts, given where a resumed snapshot left off.
    fn first_lower(&self, _plan: &Self::Plan, start: Option<Vec<String>>) -> Option<Vec<String>> {
        start
    }
    /// Why `e` ends the table's snapshot rather than the session: the table no longer exists
    /// (dropped or renamed while being read), or the signal's filter cannot run. `None`: the
    /// error is the session's.
    fn ends_table(&self, plan: &Self::Plan, e: &SourceError) -> Option<String>;
    /// Reads `job` from `lower` on and sends it to `out` as one or more pieces, in order. The
    /// last piece sent is `complete` unless the range turned out to hold more rows than one
    /// read takes: the worker then reads on from that piece's `done_upto`. A read of a table
    /// that cannot be cut (no unique key) sends one transaction's rows as many pieces, so that
    /// memory stays bounded. A reader stops early, without error, when `out` is closed.
    fn read(
        &self,
        conn: &mut Self::Conn,
        plan: &Self::Plan,
        job: &Job,
        lower: Option<Vec<String>>,
        out: PieceSender<Self::Rows>,
    ) -> impl Future<Output = Result<(), SourceError>> + Send;
}

/// The plans of every table added, by ledger index (shared with the tasks).
type Plans<P> = Arc<RwLock<Vec<Arc<P>>>>;
type Results<R> = Result<Outcome<R>, SourceError>;

/// What a task reports.
enum Outcome<R> {
    Read(Held<R>),
    /// Table `0` (ledger index) cannot be read any further, for the reason `1`: its snapshot
    /// ends.
    Ended(usize, String),
}

/// A piece on its way to the stream, with the permit its job took from the read-ahead window
/// (carried by the job's last piece; retried jobs read without one), and the mark of its job's
/// read (shared by the job's pieces: the window of a later piece opened when the first did).
struct Held<R> {
    piece: Piece<R>,
    _permit: Option<OwnedSemaphorePermit>,
    _reading: Arc<ReadMark>,
}

/// When each chunk read still running (or read and on its way to the engine) began: the keys
/// the log changes meanwhile must be kept for it, however long it takes (a read's `lo` is only
/// known once it returns).
#[derive(Default)]
struct ReadsInFlight {
    next: u64,
    started: std::collections::BTreeMap<u64, std::time::Instant>,
}

type SharedReads = Arc<std::sync::Mutex<ReadsInFlight>>;

/// One read in [`ReadsInFlight`], for as long as the mark lives.
struct ReadMark {
    reads: SharedReads,
    id: u64,
}

impl ReadMark {
    fn start(reads: &SharedReads) -> ReadMark {
        let mut r = reads.lock().unwrap_or_else(|e| e.into_inner());
        let id = r.next;
        r.next += 1;
        r.started.insert(id, std::time::Instant::now());
        ReadMark { reads: reads.clone(), id }
    }
}

impl Drop for ReadMark {
    fn drop(&mut self) {
        self.reads.lock().unwrap_or_else(|e| e.into_inner()).started.remove(&self.id);
    }
}

fn earliest_read(reads: &SharedReads) -> Option<std::time::Instant> {
    reads.lock().unwrap_or_else(|e| e.into_inner()).started.values().min().copied()
}

fn plan_at<P>(plans: &Plans<P>, index: usize) -> Option<Arc<P>> {
    plans.read().unwrap_or_else(|e| e.into_inner()).get(index).cloned()
}

/// Channels into running tasks.
struct Running {
    to_plan: mpsc::UnboundedSender<(usize, Option<Vec<String>>)>,
    retry: mpsc::UnboundedSender<Job>,
    _tasks: Vec<TaskGuard>,
}

pub struct SnapshotEngine<R: ChunkReader> {
    reader: Arc<R>,
    workers: usize,
    ledger: ChunkLedger,
    plans: Plans<R::Plan>,
    running: Option<Running>,
    /// Tables added since the tasks last started, with where each starts.
    queued: Vec<(usize, Option<Vec<String>>)>,
    results: mpsc::Receiver<Results<R::Rows>>,
    results_tx: mpsc::Sender<Results<R::Rows>>,
    /// Pieces read, waiting for the stream to pass their watermark and for the ranges before
    /// them to be emitted.
    ready: Vec<Held<R::Rows>>,
    recent: RecentKeys,
    reads: SharedReads,
    /// Progress changed outside a chunk (a table gone), to checkpoint at the stream's place.
    changed: Option<Arc<SnapshotProgress>>,
}

impl<R: ChunkReader> SnapshotEngine<R> {
    /// An engine with no table yet, for a stream that starts at log position `from`.
    pub fn new(reader: R, workers: usize, progress: SnapshotProgress, from: u64) -> Self {
        let workers = workers.max(1);
        let (results_tx, results) = mpsc::channel(workers);
        SnapshotEngine {
            reader: Arc::new(reader),
            workers,
            ledger: ChunkLedger::new(progress, workers),
            plans: Arc::new(RwLock::new(Vec::new())),
            running: None,
            queued: Vec::new(),
            results,
            results_tx,
            ready: Vec::new(),
            recent: RecentKeys::new(from),
            reads: SharedReads::default(),
            changed: None,
        }
    }

    pub fn ledger(&self) -> &ChunkLedger {
        &self.ledger
    }

    pub fn ledger_mut(&mut self) -> &mut ChunkLedger {
        &mut self.ledger
    }

    pub fn recent(&mut self) -> &mut RecentKeys {
        &mut self.recent
    }

    /// Some table is still being read.
    pub fn is_running(&self) -> bool {
        !self.ledger.all_done()
    }

    /// Adds table `name` if its progress says it still needs reading; returns its index. It is
    /// read once [`SnapshotEngine::launch`] runs.
    pub fn add(&mut self, name: &str, estimate: u64, plan: R::Plan) -> Option<usize> {
        let start = self.ledger.progress().table(name)?.done_upto.clone();
        let index = self.ledger.add_table(name, estimate)?;
        let mut plans = self.plans.write().unwrap_or_else(|e| e.into_inner());
        debug_assert_eq!(plans.len(), index, "plans and ledger runs stay aligned");
        plans.push(Arc::new(plan));
        drop(plans);
        self.queued.push((index, start));
        Some(index)
    }

    /// Starts reading the tables added since the last call: into the running tasks, or with new
    /// ones (a planner and one reader per worker).
    pub fn launch(&mut self) {
        if self.queued.is_empty() {
            return;
        }
        if self.running.is_none() {
            let (to_plan, plan_rx) = mpsc::unbounded_channel();
            let (retry, retry_rx) = mpsc::unbounded_channel();
            let (planned_tx, planned_rx) = mpsc::channel(self.workers);
            let queues = Arc::new(Mutex::new(JobQueues::new(retry_rx, planned_rx)));
            let window = Arc::new(Semaphore::new(READ_AHEAD_PER_WORKER * self.workers));
            let mut tasks = Vec::with_capacity(self.workers + 1);
            let (reader, plans, tx) = (self.reader.clone(), self.plans.clone(), self.results_tx.clone());
            tasks.push(TaskGuard(tokio::spawn(async move {
                if let Err(e) = plan(reader, plans, plan_rx, planned_tx, window, tx.clone()).await {
                    let _ = tx.send(Err(e)).await;
                }
            })));
            for _ in 0..self.workers {
                let fut = work(
                    self.reader.clone(),
                    self.plans.clone(),
                    queues.clone(),
                    self.results_tx.clone(),
                    self.reads.clone(),
                );
                tasks.push(TaskGuard(tokio::spawn(fut)));
            }
            self.running = Some(Running { to_plan, retry, _tasks: tasks });
        }
        tracing::info!(
            tables = self.queued.len(),
            estimated_rows = self.queued.iter().map(|&(i, _)| self.ledger.estimate(i)).sum::<u64>(),
            workers = self.workers,
            chunk_rows = self.reader.chunk_rows(),
            "snapshot started (chunks read while streaming)"
        );
        if let Some(r) = &self.running {
            for t in self.queued.drain(..) {
                let _ = r.to_plan.send(t);
            }
        }
    }

    /// The next piece the stream may emit now that it is at log position `at` and the store
    /// holds snapshot step `durable`: its watermark is passed, every earlier range of its table
    /// is emitted, and few enough emitted pieces wait for the checkpoint.
    ///
    /// Ranges go out in order so that every emitted piece is covered by the table's `done_upto`
    /// as soon as the store holds it: a piece emitted ahead of a gap would be read again after a
    /// crash even though its checkpoint was saved, and the re-reads would exceed one chunk per
    /// worker.
    pub fn next_ready(&mut self, at: u64, durable: u64) -> Result<Option<Piece<R::Rows>>, SourceError> {
        let mut pulled = false;
        loop {
            // Pieces of one long read can come faster than the stream emits them: keep no more
            // than the read-ahead window of them here (they can all go out, so this cannot
            // hold back a piece that others wait for).
            let ledger = &self.ledger;
            let waiting = self.ready.iter().filter(|h| !h.piece.complete && ledger.in_order(&h.piece.job)).count();
            if waiting >= READ_AHEAD_PER_WORKER * self.workers {
                break;
            }
            match self.results.try_recv() {
                Ok(Ok(Outcome::Read(held))) => {
                    self.ready.push(held);
                    pulled = true;
                }
                Ok(Ok(Outcome::Ended(table, why))) => {
                    if let Some(p) = self.ledger.ended(table, &why) {
                        self.changed = Some(p);
                    }
                }
                Ok(Err(e)) => return Err(e),
                Err(_) => break,
            }
        }
        if pulled {
            self.ready.sort_by_key(|h| h.piece.emit_at);
        }
        let ledger = &self.ledger;
        self.ready.retain(|h| !ledger.stale(&h.piece.job));
        if !self.ledger.may_emit(durable) {
            return Ok(None);
        }
        let ledger = &self.ledger;
        let next = self.ready.iter().position(|h| h.piece.emit_at <= at && ledger.in_order(&h.piece.job));
        Ok(next.map(|i| self.ready.remove(i).piece))
    }

    /// Stops the incremental snapshot of `table` (every one when `None`), and the tasks when
    /// nothing is left to read; returns the progress to checkpoint when one was running.
    pub fn stop(&mut self, table: Option<&str>, emitter: &Emitter) -> Option<Arc<SnapshotProgress>> {
        let progress = self.ledger.stop(table)?;
        self.settle(emitter);
        Some(progress)
    }

    /// Snapshot progress that changed without a chunk (a table gone while being read): the
    /// source checkpoints it at its current place.
    pub fn take_changed(&mut self) -> Option<Arc<SnapshotProgress>> {
        self.changed.take()
    }

    /// The keys of table `id` (as the source records them) that the log changed since `piece`
    /// was read, `seen` placing each change relative to the read. `None` when the piece was read
    /// too long ago to tell: its range is read again.
    pub fn superseded(
        &mut self,
        id: u32,
        piece: &Piece<R::Rows>,
        seen: impl Fn(u64, u32) -> Seen,
    ) -> Option<Superseded> {
        match self.recent.superseded(id, piece.lo, seen) {
            Ok(s) => Some(s),
            Err(_) => {
                tracing::warn!(table = %self.ledger.name(piece.job.table), "snapshot chunk read too long ago to check against the log (too many changes meanwhile); reading it again");
                let job = self.ledger.retry(&piece.job);
                if let Some(r) = &self.running {
                    let _ = r.retry.send(job);
                }
                None
            }
        }
    }

    /// Whether a chunk row with image `image` is left out for a change that removed such a row
    /// after the read (tables matched by whole row); the change is then used up, for every
    /// chunk of the table.
    pub fn drop_removed(&mut self, superseded: &mut Superseded, image: KeyHash) -> bool {
        let Some(change) = superseded.take_removed(image) else { return false };
        self.recent.consume(change);
        true
    }

    /// After the stream emitted what was ready: forgets keys no waiting piece needs, logs
    /// progress, and stops the tasks once every table is done.
    pub fn settle(&mut self, emitter: &Emitter) {
        self.recent.prune(self.ready.iter().map(|h| h.piece.lo).min(), earliest_read(&self.reads));
        self.ledger.report(false);
        if self.running.is_some() && self.ledger.all_done() {
            self.running = None;
            self.ready.clear();
            self.ledger.report(true);
            emitter.set_state(State::Streaming);
        }
    }
}

/// The queues workers take jobs from: retries first, then the planner's.
struct JobQueues {
    retry: mpsc::UnboundedReceiver<Job>,
    planned: mpsc::Receiver<(Job, OwnedSemaphorePermit)>,
    planned_open: bool,
}

impl JobQueues {
    fn new(retry: mpsc::UnboundedReceiver<Job>, planned: mpsc::Receiver<(Job, OwnedSemaphorePermit)>) -> Self {
        JobQueues { retry, planned, planned_open: true }
    }

    async fn next(&mut self) -> Option<(Job, Option<OwnedSemaphorePermit>)> {
        loop {
            if !self.planned_open {
                return self.retry.recv().await.map(|j| (j, None));
            }
            tokio::select! {
                biased;
                j = self.retry.recv() => return j.map(|j| (j, None)),
                j = self.planned.recv() => match j {
                    Some((j, permit)) => return Some((j, Some(permit))),
                    None => self.planned_open = false,
                },
            }
        }
    }
}

/// Cuts each table sent on `tables` into jobs, in order, as workers take them. Each job takes a
/// permit from `window`, given back once its last piece reaches the stream: a fast worker can
/// then run only so far ahead of a slow one, whose range the stream must emit first.
async fn plan<R: ChunkReader>(
    reader: Arc<R>,
    plans: Plans<R::Plan>,
    mut tables: mpsc::UnboundedReceiver<(usize, Option<Vec<String>>)>,
    jobs: mpsc::Sender<(Job, OwnedSemaphorePermit)>,
    window: Arc<Semaphore>,
    gone: mpsc::Sender<Results<R::Rows>>,
) -> Result<(), SourceError> {
    let mut conn = None;
    while let Some((index, start)) = tables.recv().await {
        let Some(plan) = plan_at(&plans, index) else { continue };
        let conn = match &mut conn {
            Some(c) => c,
            None => conn.insert(reader.connect().await?),
        };
        let mut lower = reader.first_lower(&plan, start);
        let mut seq = 0;
        loop {
            let upper = match reader.boundary(conn, &plan, lower.as_deref()).await {
                Ok(u) => u,
                Err(e) => match reader.ends_table(&plan, &e) {
                    Some(why) => {
                        let _ = gone.send(Ok(Outcome::Ended(index, why))).await;
                        break;
                    }
                    None => return Err(e),
                },
            };
            let last = upper.is_none();
            let job = Job { table: index, seq, attempt: 0, lower: lower.clone(), upper: upper.clone() };
            let Ok(permit) = window.clone().acquire_owned().await else { return Ok(()) };
            if jobs.send((job, permit)).await.is_err() {
                return Ok(());
            }
            if last {
                break;
            }
            lower = upper;
            seq += 1;
        }
    }
    Ok(())
}

/// How forwarding one read's pieces to the engine ended.
enum Forwarded {
    EngineGone,
    /// Whether the last piece was complete, and where it left off.
    Last(Option<(bool, Option<Vec<String>>)>),
}

/// Reads jobs until the queues close, sending each piece to the engine.
async fn work<R: ChunkReader>(
    reader: Arc<R>,
    plans: Plans<R::Plan>,
    queues: Arc<Mutex<JobQueues>>,
    results: mpsc::Sender<Results<R::Rows>>,
    reads: SharedReads,
) {
    let outcome = async {
        let mut conn = reader.connect().await?;
        loop {
            let Some((job, mut permit)) = queues.lock().await.next().await else { return Ok(()) };
            let plan = plan_at(&plans, job.table)
                .ok_or_else(|| SourceError::Fatal("snapshot: job for an unknown table".into()))?;
            let mut lower = job.lower.clone();
            let reading = Arc::new(ReadMark::start(&reads));
            loop {
                if let (Some(limiter), Some(n)) = (reader.limiter(), NonZeroU32::new(reader.chunk_rows())) {
                    // The burst is at least one chunk, so this cannot be refused.
                    let _ = limiter.until_n_ready(n).await;
                }
                let (tx, mut rx) = mpsc::channel(1);
                let read = reader.read(&mut conn, &plan, &job, lower.clone(), tx);
                let forward = async {
                    let mut last = None;
                    while let Some(piece) = rx.recv().await {
                        let (complete, done) = (piece.complete, piece.done_upto.clone());
                        let permit = if complete { permit.take() } else { None };
                        let held = Held { piece, _permit: permit, _reading: reading.clone() };
                        if results.send(Ok(Outcome::Read(held))).await.is_err() {
                            return Forwarded::EngineGone;
                        }
                        last = Some((complete, done));
                    }
                    Forwarded::Last(last)
                };
                let (read, forwarded) = tokio::join!(read, forward);
                if let Err(e) = read {
                    let Some(why) = reader.ends_table(&plan, &e) else { return Err(e) };
                    // The failed read may have left a transaction open: start afresh.
                    conn = reader.connect().await?;
                    if results.send(Ok(Outcome::Ended(job.table, why))).await.is_err() {
                        return Ok(());
                    }
                    break;
                }
                match forwarded {
                    Forwarded::EngineGone => return Ok(()),
                    Forwarded::Last(Some((true, _))) => break,
                    Forwarded::Last(Some((false, done))) => lower = done,
                    Forwarded::Last(None) => {
                        return Err(SourceError::Fatal(format!(
                            "snapshot: the read of range {} of table {} returned nothing (a bug: please report it)",
                            job.seq, job.table
                        )))
                    }
                }
            }
        }
    }
    .await;
    if let Err(e) = outcome {
        let _ = results.send(Err(e)).await;
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::core::snapshot::{SnapshotKind, TableProgress};

    /// A table of `rows` integer keys, read in ranges of 10 rows; the first range reads slowly,
    /// so the second is read first. No server is involved: this checks the engine's ordering.
    struct Numbers {
        rows: u64,
    }

    impl ChunkReader for Numbers {
        type Plan = ();
        type Conn = ();
        type Rows = Vec<u64>;

        fn chunk_rows(&self) -> u32 {
            10
        }
        fn limiter(&self) -> Option<&Limiter> {
            None
        }
        async fn connect(&self) -> Result<(), SourceError> {
            Ok(())
        }
        fn ends_table(&self, _: &(), _: &SourceError) -> Option<String> {
            None
        }
        async fn boundary(
            &self,
            _: &mut (),
            _: &(),
            lower: Option<&[String]>,
        ) -> Result<Option<Vec<String>>, SourceError> {
            let lower: u64 = lower.map_or(0, |l| l[0].parse().unwrap_or(0));
            Ok((lower + 10 < self.rows).then(|| vec![(lower + 10).to_string()]))
        }
        async fn read(
            &self,
            _: &mut (),
            _: &(),
            job: &Job,
            lower: Option<Vec<String>>,
            out: PieceSender<Vec<u64>>,
        ) -> Result<(), SourceError> {
            if job.seq == 0 {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let from: u64 = lower.as_ref().map_or(0, |l| l[0].parse().unwrap_or(0));
            let to: u64 = job.upper.as_ref().map_or(self.rows, |u| u[0].parse().unwrap_or(0));
            // The last range comes as pieces of 3 rows, as a read of an uncuttable table does.
            let rows: Vec<u64> = (from + 1..=to).collect();
            let parts: Vec<&[u64]> = if job.upper.is_none() { rows.chunks(3).collect() } else { vec![&rows] };
            for (i, part) in parts.iter().enumerate() {
                let piece = Piece {
                    job: job.clone(),
                    rows: part.to_vec(),
                    done_upto: job.upper.clone(),
                    complete: i + 1 == parts.len(),
                    lo: 0,
                    emit_at: 0,
                    read_at_us: 0,
                };
                if out.send(piece).await.is_err() {
                    return Ok(());
                }
            }
            Ok(())
        }
    }

    #[tokio::test]
    async fn ranges_go_out_in_order_even_when_read_out_of_order() {
        let progress = SnapshotProgress {
            tables: vec![TableProgress::pending("t".into(), SnapshotKind::Initial, None)],
            ..SnapshotProgress::default()
        };
        let mut engine = SnapshotEngine::new(Numbers { rows: 50 }, 2, progress, 0);
        assert_eq!(engine.add("t", 50, ()), Some(0));
        engine.launch();
        let mut seen = Vec::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while engine.is_running() && tokio::time::Instant::now() < deadline {
            // Every emitted piece is saved at once: only the order is under test here.
            let durable = engine.ledger().progress().step;
            while let Some(piece) = engine.next_ready(1, durable).unwrap() {
                seen.push(piece.job.seq);
                let outcome = engine.ledger_mut().begin(&piece.place());
                engine.ledger_mut().finish(outcome, piece.rows.len() as u64);
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(seen, vec![0, 1, 2, 3, 4, 4, 4, 4], "ranges emitted in key order, the last in pieces");
        let t = engine.ledger().progress().table("t").cloned();
        assert!(t.as_ref().is_some_and(|t| t.done && t.rows == 50), "{t:?}");
    }
}
