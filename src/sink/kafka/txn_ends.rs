//! Transaction metadata's END records, sent once every record of their transaction is
//! acknowledged, so END names where those records landed (see [`crate::core::txn_meta`]).
//!
//! The pipeline calls [`EndSender::send_ready`] when the tracker says an END became ready and on
//! its checkpoint tick. ENDs go out in transaction order through the producer that takes
//! records now, as records of their own transaction's tracker slot: a transaction is not
//! checkpointed before its END is delivered, so a crash can repeat an END but never lose one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, Producer, ThreadedProducer};

use super::AckContext;
use crate::core::acks::AckTracker;
use crate::core::txn_meta::{self, MetaFormat};
use crate::error::SinkError;

/// How long a commit waits for the acknowledgements its ENDs need.
const ACK_WAIT: Duration = Duration::from_secs(60);

pub struct EndSender {
    pub(super) producers: Vec<Arc<ThreadedProducer<AckContext>>>,
    pub(super) active: Arc<AtomicUsize>,
    pub(super) tracker: Arc<AckTracker>,
    pub(super) exactly_once: bool,
    pub(super) format: MetaFormat,
    pub(super) topic: String,
    pub(super) key: Vec<u8>,
    pub(super) value: Vec<u8>,
}

impl EndSender {
    fn producer(&self) -> &ThreadedProducer<AckContext> {
        &self.producers[self.active.load(Ordering::SeqCst) % self.producers.len()]
    }

    /// Hands every END that is ready to the producer, in transaction order; stops at a full
    /// queue (the next call goes on). Returns how many were handed over.
    pub fn send_ready(&mut self) -> usize {
        let mut sent = 0;
        while let Some((txn, end, offsets)) = self.tracker.take_ready_end() {
            txn_meta::write_key(&mut self.key, self.format, &end.id);
            txn_meta::write_end(&mut self.value, self.format, &end, &offsets);
            let record = BaseRecord::with_opaque_to(&self.topic, txn.0 as usize).key(&self.key).payload(&self.value);
            match self.producer().send(record) {
                Ok(()) => sent += 1,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.tracker.return_end(txn, end, offsets);
                    break;
                }
                Err((e, _)) => {
                    let reason = format!("cannot send the END record of transaction {} to {}: {e}", end.id, self.topic);
                    // Its transaction is read again (exactly-once: aborted; otherwise the
                    // connector stops on the failure, as for any record refused).
                    if self.exactly_once {
                        self.tracker.abort_needed(txn, reason);
                    } else {
                        self.tracker.failed(txn, reason);
                    }
                    break;
                }
            }
        }
        sent
    }

    /// Exactly-once, before a commit: waits until the open Kafka transaction's records are
    /// acknowledged, then sends the ENDs of its source transactions, so they commit together.
    /// False when an END could not be sent (the commit must wait: committing the checkpoint
    /// without it would lose it).
    pub fn send_before_commit(&mut self) -> Result<bool, SinkError> {
        let producer = self.producer();
        let _ = producer.flush(Duration::ZERO);
        let deadline = std::time::Instant::now() + ACK_WAIT;
        while producer.in_flight_count() > 0 {
            if std::time::Instant::now() > deadline {
                return Err(SinkError::Aborted(format!(
                    "the broker did not acknowledge the open transaction's records within {} s",
                    ACK_WAIT.as_secs()
                )));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        self.send_ready();
        Ok(!self.tracker.ends_owed())
    }
}
