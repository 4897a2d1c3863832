//! The transactional producer as the Kafka checkpoint store uses it: the sink's own, so records
//! and the checkpoint that covers them commit in one transaction.
//!
//! librdkafka's transaction calls block; they are called through `block_in_place` by the
//! store's caller. Timeouts are unbounded where librdkafka asks for that (commit and abort must
//! finish or fail, never be left half done).

use std::sync::atomic::{AtomicBool, Ordering};
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

    fn commit(&self) -> KafkaResult<()> {
        // rust-rdkafka's commit flushes first, and its flush waits in 100 ms polls of a queue
        // the producer's own thread already serves: every commit would take 100 ms. So send
        // what lingers now and wait for its delivery reports here; the commit's flush then
        // finds nothing left.
        let started = std::time::Instant::now();
        let _ = self.flush(Duration::ZERO);
        while self.in_flight_count() > 0 {
            std::thread::sleep(Duration::from_micros(500));
        }
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
        let _ = self.flush(Duration::from_millis(100));
        aborting.store(false, Ordering::SeqCst);
        result
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
