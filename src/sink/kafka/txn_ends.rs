//! Transaction metadata's END records, sent once every record of their transaction is
//! acknowledged, so END names where those records landed (see [`crate::core::txn_meta`]).
//!
//! The pipeline calls [`EndSender::send_ready`] when the tracker says an END became ready and on
//! its checkpoint tick. ENDs go out in transaction order through the producer that takes
//! records now, as records of their own transaction's tracker slot: a transaction is not
//! checkpointed before its END is delivered, so a crash can repeat an END but never lose one.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, ThreadedProducer};

use super::AckContext;
use crate::core::acks::AckTracker;
use crate::core::txn_meta::{self, MetaFormat};
use crate::error::SinkError;

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
    /// queue (the next call goes on). Returns how many were handed over; an END the producer
    /// refuses fails its transaction (exactly-once: aborted and read again; otherwise the
    /// connector stops, as for any record refused) and is returned as an error.
    pub fn send_ready(&mut self) -> Result<usize, SinkError> {
        let mut sent = 0;
        while let Some((txn, end, mut offsets)) = self.tracker.take_ready_end() {
            // BEGIN's own offset is noted with the records; END names the data's only.
            offsets.retain(|o| o.topic != self.topic);
            if let Err(e) = txn_meta::write_end(&mut self.key, &mut self.value, &self.format, &end, &offsets) {
                let reason = format!("cannot encode the END record of transaction {}: {e}", end.id);
                self.tracker.failed(txn, reason.clone());
                return Err(SinkError::Delivery(reason));
            }
            let record = BaseRecord::with_opaque_to(&self.topic, txn.0 as usize)
                .key(&self.key)
                .payload(&self.value)
                .partition(txn_meta::PARTITION);
            match self.producer().send(record) {
                Ok(()) => sent += 1,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.tracker.return_end(txn, end, offsets);
                    break;
                }
                Err((e, _)) => {
                    let reason = format!(
                        "the producer refused the END record of transaction {} for {} ({e}); check the topic exists with one partition and its max.message.bytes",
                        end.id, self.topic
                    );
                    // Exactly-once re-reads a transaction that failed, unless the END itself is
                    // refused (too large, invalid): reading again would refuse it again.
                    let refused = e.rdkafka_error_code().is_some_and(crate::sink::dead_letter::refuses_record);
                    if self.exactly_once && !refused {
                        self.tracker.abort_needed(txn, reason.clone());
                        return Err(SinkError::Aborted(reason));
                    }
                    self.tracker.failed(txn, reason.clone());
                    return Err(SinkError::Delivery(reason));
                }
            }
        }
        Ok(sent)
    }

    /// Exactly-once, before a commit: waits until the open Kafka transaction's records are
    /// acknowledged (as the commit itself would), then sends the ENDs of its source
    /// transactions, so they commit together. False when an END is still owed (the commit must
    /// wait: committing the checkpoint without it would lose it).
    pub fn send_before_commit(&mut self) -> Result<bool, SinkError> {
        super::transactions::TxnProducer::await_acks(self.producer());
        self.send_ready()?;
        Ok(!self.tracker.ends_owed())
    }
}
