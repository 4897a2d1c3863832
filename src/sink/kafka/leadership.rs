//! Which of several processes runs a connector (`[checkpoint] store = "kafka"`): every process
//! joins one consumer group on the checkpoint topic, and the member the group assigns the
//! topic's partition 0 is the active one, as Kafka Connect's workers share out tasks. Kafka's
//! group coordinator notices a dead member after `session.timeout.ms` and hands the partition
//! to another.
//!
//! Membership is only the election. What makes a replaced process harmless is the
//! transactional id the new one takes after it is elected (see `checkpoints.rs`): the broker
//! refuses the old producer's writes from then on, even if the old process was merely frozen
//! and does not yet know it lost.
//!
//! `cooperative-sticky` keeps the partition where it is when a standby joins or restarts, so
//! only the active process's death moves it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use tokio::sync::watch;

use super::connection_config;
use crate::config::{ConnectorConfig, KafkaSinkConfig};

/// How long the coordinator waits for a silent member before it reassigns its partition: Kafka
/// 2.3's lowest allowed (`group.min.session.timeout.ms`), which keeps takeover well under 15 s.
const SESSION_TIMEOUT_MS: &str = "6000";
const HEARTBEAT_INTERVAL_MS: &str = "1000";

struct ElectionContext {
    topic: String,
    connector: String,
    active: watch::Sender<bool>,
}

impl ElectionContext {
    fn update(&self, consumer: &BaseConsumer<Self>) {
        let holds = consumer
            .assignment()
            .map(|tpl| tpl.elements().iter().any(|e| e.topic() == self.topic && e.partition() == 0))
            .unwrap_or(false);
        self.set(holds);
    }

    fn set(&self, active: bool) {
        let was = self.active.send_replace(active);
        if was != active {
            tracing::info!(connector = %self.connector, group_topic = %self.topic, active, "{}", if active { "elected: this process runs the connector" } else { "no longer the active process" });
        }
    }
}

impl ClientContext for ElectionContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::warn!(connector = %self.connector, facility = fac, "librdkafka (election): {msg}")
            }
            _ => tracing::debug!(connector = %self.connector, facility = fac, "librdkafka (election): {msg}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!(connector = %self.connector, "kafka (election): {error}: {reason}");
    }
}

impl ConsumerContext for ElectionContext {
    fn pre_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        // Step down before the partition is handed over, not after.
        if let Rebalance::Revoke(tpl) = rebalance {
            if tpl.elements().iter().any(|e| e.topic() == self.topic && e.partition() == 0) {
                self.set(false);
            }
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, _: &Rebalance<'_>) {
        self.update(consumer);
    }
}

/// This process's membership in the connector's election group.
pub struct Election {
    active: watch::Receiver<bool>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Election {
    /// Joins the group; [`Election::active`] says when this process is elected.
    pub fn join(cfg: &ConnectorConfig, k: &KafkaSinkConfig) -> Result<Self, String> {
        let topic = cfg.checkpoint_topic();
        let mut c = connection_config(k);
        c.set("group.id", cfg.leader_group())
            .set("client.id", format!("cdcd-{}-election", cfg.name))
            .set("partition.assignment.strategy", "cooperative-sticky")
            .set("session.timeout.ms", SESSION_TIMEOUT_MS)
            .set("heartbeat.interval.ms", HEARTBEAT_INTERVAL_MS)
            .set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("auto.offset.reset", "latest")
            // Members fetch nothing useful: keep what they buffer small.
            .set("queued.max.messages.kbytes", "64");
        let (tx, rx) = watch::channel(false);
        let context = ElectionContext { topic: topic.clone(), connector: cfg.name.clone(), active: tx };
        let consumer: BaseConsumer<ElectionContext> =
            c.create_with_context(context).map_err(|e| format!("cannot create the election consumer: {e}"))?;
        consumer.subscribe(&[&topic]).map_err(|e| format!("cannot join the election group: {e}"))?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name(format!("cdcd-election-{}", cfg.name))
            .spawn(move || {
                while !stopping.load(Ordering::Relaxed) {
                    // Serves rebalances; the few checkpoint records fetched are ignored.
                    let _ = consumer.poll(Duration::from_millis(100));
                }
                consumer.context().set(false);
                // Dropping the consumer leaves the group, so a standby takes over at once.
                consumer.unsubscribe();
            })
            .map_err(|e| format!("cannot start the election thread: {e}"))?;
        Ok(Self { active: rx, stop, thread: Some(thread) })
    }

    pub fn is_active(&self) -> bool {
        *self.active.borrow()
    }

    /// Resolves once this process is elected.
    pub async fn elected(&mut self) {
        let _ = self.active.wait_for(|a| *a).await;
    }

    /// Resolves once this process is no longer elected.
    pub async fn deposed(&mut self) {
        let _ = self.active.wait_for(|a| !*a).await;
    }
}

impl Drop for Election {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
