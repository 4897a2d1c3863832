//! The transactional producer as the Kafka checkpoint store uses it: the sink's own, so records
//! and the checkpoint that covers them commit in one transaction.
//!
//! librdkafka's transaction calls block; they are called through `block_in_place` by the
//! store's caller, or on the store's commit thread. Timeouts are unbounded where librdkafka asks
//! for that (commit and abort must finish or fail, never be left half done).
//!
//! An exactly-once sink has two such producers taking turns ([`Turns`]): while one commits, the
//! other takes the next records. A producer cannot take records while it commits, and one that
//! starts its next transaction as soon as its commit returns meets a coordinator still writing
//! the commit markers: Kafka answers `CONCURRENT_TRANSACTIONS` and librdkafka retries after a
//! fixed 20 ms. Taking turns keeps the source reading during a commit and gives each
//! coordinator a whole turn to finish.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer, ProducerContext, ThreadedProducer};
use rdkafka::util::Timeout;

/// The delivery opaque of checkpoint records: no source transaction waits for them.
pub const CHECKPOINT_OPAQUE: usize = usize::MAX;

/// How long `init_transactions` may take: it waits for the previous owner's open transaction
/// to be aborted, which the broker does promptly.
const INIT_TIMEOUT: Duration = Duration::from_secs(60);

/// A producer context that knows an abort is under way: records it purges are the abort's
/// doing, not failures.
pub trait AbortAware {
    fn aborting(&self) -> &AtomicBool;
}

/// The transaction calls the checkpoint store needs, whatever the producer's context.
pub trait TxnProducer: Send + Sync {
    /// Fences every earlier producer with the same `transactional.id` and aborts its open
    /// transaction.
    fn init(&self) -> KafkaResult<()>;
    fn begin(&self) -> KafkaResult<()>;
    /// Queues one checkpoint record in the open transaction.
    fn send_checkpoint(&self, topic: &str, key: &[u8], value: &[u8]) -> KafkaResult<()>;
    /// Sends what lingers and waits until the broker acknowledged every record sent.
    fn await_acks(&self);
    /// Flushes and commits the open transaction.
    fn commit(&self) -> KafkaResult<()>;
    /// Drops everything sent in the open transaction.
    fn abort(&self) -> KafkaResult<()>;
}

impl<C> TxnProducer for ThreadedProducer<C>
where
    C: ProducerContext<DeliveryOpaque = usize> + AbortAware + 'static,
{
    fn init(&self) -> KafkaResult<()> {
        self.init_transactions(INIT_TIMEOUT)
    }

    fn begin(&self) -> KafkaResult<()> {
        self.begin_transaction()
    }

    fn send_checkpoint(&self, topic: &str, key: &[u8], value: &[u8]) -> KafkaResult<()> {
        let mut record = BaseRecord::with_opaque_to(topic, CHECKPOINT_OPAQUE).key(key).payload(value);
        // The queue is shared with the records; a full queue empties as the broker takes them.
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            match self.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if std::time::Instant::now() < deadline =>
                {
                    record = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    fn await_acks(&self) {
        // rust-rdkafka's own flush waits in 100 ms polls of a queue the producer's thread
        // already serves: send what lingers now and watch the count fall instead.
        let _ = Producer::flush(self, Duration::ZERO);
        while self.in_flight_count() > 0 {
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    fn commit(&self) -> KafkaResult<()> {
        // rust-rdkafka's commit flushes first, as slowly: flushed here, its flush finds
        // nothing left.
        let started = std::time::Instant::now();
        self.await_acks();
        let flushed = started.elapsed();
        let result = self.commit_transaction(Timeout::Never);
        tracing::trace!(
            flush_ms = flushed.as_secs_f64() * 1e3,
            commit_ms = (started.elapsed() - flushed).as_secs_f64() * 1e3,
            "kafka transaction committed"
        );
        result
    }

    fn abort(&self) -> KafkaResult<()> {
        let aborting = self.context().aborting();
        aborting.store(true, Ordering::SeqCst);
        let result = self.abort_transaction(Timeout::Never);
        // Purged records report back through the polling thread; give it their reports first.
        let _ = Producer::flush(self, Duration::from_millis(100));
        aborting.store(false, Ordering::SeqCst);
        result
    }
}

/// The exactly-once sink's transactional producers and which of them takes records now. The
/// sink sends to the active one; the checkpoint store hands the turn on at a commit (see
/// `checkpoints.rs`), after the active one's records are all acknowledged, so the next
/// transaction's records follow them in every partition.
#[derive(Clone)]
pub struct Turns {
    pub producers: Vec<Arc<dyn TxnProducer>>,
    pub active: Arc<AtomicUsize>,
}

/// How many producers take turns. With two, a producer's next transaction starts one commit
/// interval after its commit returned, and the coordinator, still writing that commit's
/// markers, sometimes refused it (measured: a bump of commits 20-26 ms late, 0.75% of them, at
/// a 5 ms interval); with three it has two intervals.
pub const TURNS: usize = 3;

impl Turns {
    /// The index of the producer that takes records now.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::SeqCst)
    }

    /// The next producer takes the records from here on.
    pub fn hand_on(&self) {
        let next = (self.active() + 1) % self.producers.len();
        self.active.store(next, Ordering::SeqCst);
    }
}

/// The `transactional.id` of producer `turn` (from 0): the first one's is the configured id, so
/// a process of an earlier version, which has only that one, is fenced by a newer one's start.
pub fn turn_id(id: &str, turn: usize) -> String {
    match turn {
        0 => id.to_string(),
        n => format!("{id}.{}", n + 1),
    }
}

/// What a failed transaction call means for the process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TxnFailure {
    /// Another process took over (`transactional.id` fenced), or the producer hit another fatal
    /// error: this producer is finished; leadership decides what runs next.
    Fatal(String),
    /// The transaction must be aborted; its records are re-read from the last commit.
    Abort(String),
    /// The call may be tried again.
    Retry(String),
}

/// Sorts a transaction call's error.
pub fn classify(e: &KafkaError) -> TxnFailure {
    let text = e.to_string();
    match e {
        KafkaError::Transaction(t) if t.is_fatal() => TxnFailure::Fatal(text),
        KafkaError::Transaction(t) if t.txn_requires_abort() => TxnFailure::Abort(text),
        KafkaError::Transaction(t) if t.is_retriable() => TxnFailure::Retry(text),
        _ if matches!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::Fenced)) => TxnFailure::Fatal(text),
        // A flush that timed out, a refused record: the transaction cannot be committed as is.
        _ => TxnFailure::Abort(text),
    }
}
