//! Sinks: where records go. Each sink reports every record's fate to the [`AckTracker`]; the
//! pipeline never assumes delivery.

pub mod dead_letter;
pub mod kafka;
pub mod stdout;

use std::sync::Arc;
use std::time::Duration;

use crate::config::{ConnectorConfig, SinkConfig};
use crate::core::acks::{AckTracker, TxnId};
use crate::core::envelope::Record;
use crate::error::SinkError;

pub enum Sink {
    Kafka(kafka::KafkaSink),
    Stdout(stdout::StdoutSink),
}

impl Sink {
    pub fn build(cfg: &ConnectorConfig, tracker: Arc<AckTracker>) -> Result<Self, SinkError> {
        Ok(match &cfg.sink {
            SinkConfig::Kafka(k) => {
                let transactional =
                    (cfg.delivery() == crate::config::Delivery::ExactlyOnce).then(|| cfg.transactional_id());
                Sink::Kafka(kafka::KafkaSink::new(&cfg.name, k, tracker, transactional)?)
            }
            SinkConfig::Stdout(_) => Sink::Stdout(stdout::StdoutSink::new(tracker)),
        })
    }

    /// Hands one record of `txn` to the sink. Waits (without bound) while the sink is full,
    /// which is how back-pressure reaches the source.
    pub async fn send(&mut self, record: Record<'_>, txn: TxnId) -> Result<(), SinkError> {
        match self {
            Sink::Kafka(k) => k.send(record, txn).await,
            Sink::Stdout(s) => s.send(record, txn),
        }
    }

    /// The transactional producers an exactly-once sink shares with the Kafka checkpoint store.
    pub fn transactions(&self) -> Option<kafka::transactions::Turns> {
        match self {
            Sink::Kafka(k) => k.transactions(),
            Sink::Stdout(_) => None,
        }
    }

    /// Transaction metadata: what sends END records (the Kafka sink only: END names offsets).
    pub fn end_sender(
        &self,
        format: crate::core::txn_meta::MetaFormat,
        topic: String,
    ) -> Option<kafka::txn_ends::EndSender> {
        match self {
            Sink::Kafka(k) => Some(k.end_sender(format, topic)),
            Sink::Stdout(_) => None,
        }
    }

    /// Called once a transaction's last record was sent, before it is committed in the tracker.
    pub fn end_txn(&mut self) -> Result<(), SinkError> {
        match self {
            Sink::Kafka(_) => Ok(()),
            Sink::Stdout(s) => s.flush(),
        }
    }

    /// After a batch the broker refused: send one record at a time until the checkpoint is
    /// past `until` (see `KafkaSink::replay_isolated`).
    pub fn replay_isolated(&mut self, until: Option<crate::core::position::Position>) {
        if let Sink::Kafka(k) = self {
            k.replay_isolated(until);
        }
    }

    /// A definite, unrecoverable sink failure noticed outside a delivery report, if any.
    pub fn health(&self) -> Result<(), SinkError> {
        match self {
            Sink::Kafka(k) => k.health(),
            Sink::Stdout(_) => Ok(()),
        }
    }

    /// Waits until every record handed over so far is acknowledged, or `timeout` passes.
    /// Returns the number still in flight.
    pub async fn drain(&mut self, tracker: &AckTracker, timeout: Duration) -> u64 {
        if let Sink::Stdout(s) = self {
            let _ = s.flush();
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = tracker.in_flight();
            let hopeless = matches!(self, Sink::Kafka(k) if k.definite_failure().is_some());
            if left == 0 || hopeless || tokio::time::Instant::now() >= deadline {
                return left;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}
