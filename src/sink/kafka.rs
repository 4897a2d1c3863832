//! The Kafka sink: an idempotent librdkafka producer (`acks=all`) whose delivery reports feed
//! the [`AckTracker`]. Records with the same key go to the same partition (Java-compatible
//! murmur2 partitioner, so keys land where Kafka Connect would put them), in send order.
//!
//! Messages never time out inside librdkafka (`message.timeout.ms=0`): while the broker is down
//! they wait in the producer queue, the queue fills, `send` waits, the source stops reading, and
//! the replication slot holds its position until the broker is back. Nothing is dropped. A record
//! the broker refuses for good is handled by [`super::dead_letter`].

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use super::dead_letter::{describe, refusal_fix, refuses_record, DeadLetterContext, DeadLetters};
use crate::config::{property_string, KafkaSinkConfig};
use crate::core::acks::{AckTracker, TxnId};
use crate::core::envelope::Record;
use crate::core::pause::{PauseClock, PauseReport};
use crate::error::SinkError;

/// Producer settings cdcd relies on; a user may not weaken the first two.
const REQUIRED: &[(&str, &str)] = &[("enable.idempotence", "true"), ("acks", "all")];
const DEFAULTS: &[(&str, &str)] = &[
    ("message.timeout.ms", "0"),
    ("partitioner", "murmur2_random"),
    ("linger.ms", "5"),
    ("queue.buffering.max.messages", "100000"),
    // 4 MB keeps a fast source under 32 MB of RSS while the broker catches up; a larger queue
    // bought no throughput on our backlog benchmarks (bench/mysql_backlog.sh).
    ("queue.buffering.max.kbytes", "4096"),
    ("batch.size", "1000000"),
    ("compression.type", "lz4"),
    ("reconnect.backoff.ms", "100"),
    ("reconnect.backoff.max.ms", "5000"),
];

pub struct AckContext {
    tracker: Arc<AckTracker>,
    connector: String,
    delivery_errors: AtomicU64,
    dead_letters: Option<Arc<DeadLetters>>,
}

impl AckContext {
    /// A record of `txn` was refused for good (`error`): divert it, or fail the transaction with
    /// a message that says which record and what to do.
    fn refused(
        &self,
        txn: TxnId,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        error: &KafkaError,
    ) -> Result<(), String> {
        let code = error.rdkafka_error_code();
        if let (Some(dlq), Some(true)) = (&self.dead_letters, code.map(refuses_record)) {
            return dlq
                .divert(txn, topic, key, value, &error.to_string())
                .inspect_err(|reason| self.tracker.failed(txn, reason.clone()));
        }
        self.delivery_errors.fetch_add(1, Ordering::Relaxed);
        let mut reason = format!("the broker refused a record ({error}): {}", describe(topic, key, value));
        if code.is_some_and(refuses_record) {
            reason.push_str("; fix: ");
            reason.push_str(refusal_fix());
        }
        self.tracker.failed(txn, reason.clone());
        Err(reason)
    }
}

impl ClientContext for AckContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        let c = &self.connector;
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(connector = %c, facility = fac, "librdkafka: {msg}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(connector = %c, facility = fac, "librdkafka: {msg}"),
            _ => tracing::debug!(connector = %c, facility = fac, "librdkafka: {msg}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // Broker-down and connection errors are expected during outages; librdkafka retries them.
        // TLS and authentication failures are retried too, but they need the operator.
        match security_fix(reason) {
            Some(fix) => {
                tracing::error!(connector = %self.connector, "kafka: {error}: {reason}; {fix} (retrying; events are held, not dropped)")
            }
            None => {
                tracing::warn!(connector = %self.connector, "kafka: {error}: {reason} (retrying; events are held, not dropped)")
            }
        }
    }
}

impl ProducerContext for AckContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let txn = TxnId(opaque as u64);
        match result {
            Ok(_) => self.tracker.delivered(txn),
            Err((err, msg)) => {
                if let Err(reason) = self.refused(txn, msg.topic(), msg.key(), msg.payload(), err) {
                    tracing::error!(connector = %self.connector, "kafka delivery failed definitively: {reason}");
                }
            }
        }
    }
}

pub struct KafkaSink {
    producer: ThreadedProducer<AckContext>,
    tracker: Arc<AckTracker>,
    limiter: Option<DefaultDirectRateLimiter>,
    connector: String,
}

impl KafkaSink {
    pub fn new(connector: &str, cfg: &KafkaSinkConfig, tracker: Arc<AckTracker>) -> Result<Self, SinkError> {
        let client_config = client_config(connector, cfg)?;
        let dead_letters = match &cfg.dead_letter_topic {
            Some(topic) => {
                let mut dlq_config = client_config.clone();
                dlq_config.set("client.id", format!("cdcd-{connector}-dead-letters"));
                let producer = dlq_config
                    .create_with_context(DeadLetterContext {
                        tracker: tracker.clone(),
                        connector: connector.to_string(),
                    })
                    .map_err(|e| SinkError::Config(format!("cannot create the dead-letter producer: {e}")))?;
                Some(Arc::new(DeadLetters { topic: topic.clone(), producer }))
            }
            None => None,
        };
        let context = AckContext {
            tracker: tracker.clone(),
            connector: connector.to_string(),
            delivery_errors: AtomicU64::new(0),
            dead_letters,
        };
        let producer: ThreadedProducer<AckContext> = client_config
            .create_with_context(context)
            .map_err(|e| SinkError::Config(format!("cannot create Kafka producer: {e}")))?;
        let limiter =
            cfg.max_events_per_second.and_then(NonZeroU32::new).map(|n| RateLimiter::direct(Quota::per_second(n)));
        Ok(Self { producer, tracker, limiter, connector: connector.to_string() })
    }

    pub async fn send(&mut self, record: Record<'_>, txn: TxnId) -> Result<(), SinkError> {
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
        self.tracker.expect(txn);
        let mut rec: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(record.topic, txn.0 as usize);
        if let Some(k) = record.key {
            rec = rec.key(k);
        }
        if let Some(v) = record.value {
            rec = rec.payload(v);
        }
        let mut pause = PauseClock::new();
        loop {
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    rec = back;
                    // The local queue is full: the broker is slow or down. Wait; this is the
                    // back-pressure that stops the source from reading further.
                    match pause.wait().await {
                        Some(PauseReport::Started) => tracing::info!(
                            connector = %self.connector,
                            in_flight = self.tracker.in_flight(),
                            "producer queue full (queue.buffering.max.kbytes / .messages); reading paused until the broker takes records"
                        ),
                        Some(PauseReport::Continuing) => tracing::warn!(
                            connector = %self.connector,
                            waited_secs = pause.waited().as_secs(),
                            in_flight = self.tracker.in_flight(),
                            "producer queue still full; waiting for the broker"
                        ),
                        None => {}
                    }
                    self.health()?;
                }
                Err((e, _)) => {
                    // Refused before it left: too large for message.max.bytes, or otherwise unsendable.
                    return self
                        .producer
                        .context()
                        .refused(txn, record.topic, record.key, record.value, &e)
                        .map_err(SinkError::Delivery);
                }
            }
        }
    }

    pub fn health(&self) -> Result<(), SinkError> {
        if let Some((code, reason)) = self.producer.client().fatal_error() {
            return Err(SinkError::Delivery(format!("Kafka producer hit a fatal error ({code:?}): {reason}")));
        }
        Ok(())
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        let _ = self.producer.flush(Duration::from_secs(0));
        if let Some(dlq) = &self.producer.context().dead_letters {
            dlq.flush();
        }
    }
}

fn client_config(connector: &str, cfg: &KafkaSinkConfig) -> Result<ClientConfig, SinkError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers);
    c.set("client.id", format!("cdcd-{connector}"));
    for (k, v) in DEFAULTS.iter().chain(REQUIRED) {
        c.set(*k, *v);
    }
    for (key, value) in &cfg.properties {
        let value = property_string(value).unwrap_or_default();
        if let Some((_, required)) = REQUIRED.iter().find(|(k, _)| k == key) {
            let ok = value.eq_ignore_ascii_case(required) || (key == "acks" && value == "-1");
            if !ok {
                return Err(SinkError::Config(format!(
                    "sink.properties.{key} = {value:?} would allow lost or reordered events; cdcd requires {key}={required} (remove the setting)"
                )));
            }
        }
        if matches!(key.as_str(), "message.timeout.ms" | "delivery.timeout.ms") && value != "0" {
            tracing::warn!(connector, "sink.properties.{key} = {value}: deliveries that time out stop the connector (no data is lost; it resumes from the last checkpoint on restart)");
        }
        c.set(key, value);
    }
    Ok(c)
}

/// The fix for a TLS or SASL failure librdkafka reports, if `reason` is one.
pub fn security_fix(reason: &str) -> Option<&'static str> {
    if reason.contains("certificate verify failed") {
        Some("the broker's certificate was rejected: sink.properties.\"ssl.ca.location\" must be the CA that signed it, and the broker's advertised host must be one of its names (ssl.endpoint.identification.algorithm)")
    } else if reason.contains("SSL handshake failed") || reason.contains("Disconnected while requesting ApiVersion") {
        Some("is the broker's listener TLS? set sink.properties.\"security.protocol\" to match it (SSL or SASL_SSL, or PLAINTEXT)")
    } else if reason.contains("SASL authentication error") || reason.contains("Authentication failed") {
        Some("check sasl.mechanism, sasl.username and sasl.password under [sink.properties]")
    } else {
        None
    }
}

/// The optional features this build of librdkafka has (`ssl`, `sasl_scram`, `sasl_oauthbearer`, ...).
pub fn builtin_features() -> String {
    ClientConfig::new()
        .create_native_config()
        .and_then(|c| c.get("builtin.features"))
        .unwrap_or_else(|e| format!("unknown ({e})"))
}

/// How the sink's connections are secured, for `cdcd check`.
pub fn security_summary(cfg: &KafkaSinkConfig) -> String {
    let get = |k: &str| cfg.properties.get(k).and_then(property_string).unwrap_or_default();
    let protocol = get("security.protocol");
    let protocol = if protocol.is_empty() { "PLAINTEXT".to_string() } else { protocol.to_ascii_uppercase() };
    let encrypted = protocol.ends_with("SSL");
    let auth = if protocol.starts_with("SASL") {
        let mechanism = get("sasl.mechanism");
        let mechanism = if mechanism.is_empty() { get("sasl.mechanisms") } else { mechanism };
        format!(", SASL {}", if mechanism.is_empty() { "GSSAPI".to_string() } else { mechanism })
    } else {
        String::new()
    };
    format!("security.protocol={protocol} ({}{auth})", if encrypted { "TLS" } else { "not encrypted" })
}

/// Remembers the last error librdkafka reported while probing (a failed TLS handshake only
/// shows up there; the metadata request itself just times out).
#[derive(Default)]
struct ProbeContext {
    last_error: std::sync::Mutex<Option<String>>,
}

impl ClientContext for ProbeContext {
    // Connection failures (a TLS handshake, SASL) arrive as log lines from librdkafka's own
    // threads; error events would need a poll that fetching metadata does not do.
    fn log(&self, level: RDKafkaLogLevel, _: &str, msg: &str) {
        if (level as i32) <= RDKafkaLogLevel::Error as i32 {
            *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg.to_string());
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(format!("{error}: {reason}"));
    }
}

impl rdkafka::consumer::ConsumerContext for ProbeContext {}

/// Asks the brokers for cluster metadata: proves they are reachable, with the configured TLS and
/// SASL. Returns the broker count.
pub async fn probe(cfg: &KafkaSinkConfig) -> Result<usize, String> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers);
    for (key, value) in &cfg.properties {
        // Security settings matter for reaching the broker; producer tuning does not.
        if key.starts_with("security.") || key.starts_with("sasl.") || key.starts_with("ssl.") {
            c.set(key, property_string(value).unwrap_or_default());
        }
    }
    c.set_log_level(RDKafkaLogLevel::Warning);
    let consumer: rdkafka::consumer::BaseConsumer<ProbeContext> =
        c.create_with_context(ProbeContext::default()).map_err(|e| e.to_string())?;
    let result = tokio::task::spawn_blocking(move || {
        use rdkafka::consumer::Consumer;
        let metadata = consumer.fetch_metadata(None, Duration::from_secs(5));
        if metadata.is_err() {
            // Error events wait in the client's queue until it is polled.
            for _ in 0..5 {
                let _ = consumer.poll(Duration::from_millis(100));
            }
        }
        let last = consumer.context().last_error.lock().unwrap_or_else(|e| e.into_inner()).clone();
        metadata.map(|m| m.brokers().len()).map_err(|e| match last {
            Some(reason) => format!("{e} ({reason})"),
            None => e.to_string(),
        })
    })
    .await
    .map_err(|e| e.to_string())?;
    result.map_err(|e| match security_fix(&e) {
        Some(fix) => format!("{e}; {fix}"),
        None => e,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(props: &[(&str, &str)]) -> KafkaSinkConfig {
        KafkaSinkConfig {
            brokers: "127.0.0.1:1".into(),
            topic_prefix: None,
            properties: props.iter().map(|(k, v)| (k.to_string(), toml::Value::String(v.to_string()))).collect(),
            max_events_per_second: None,
            dead_letter_topic: None,
            format: Default::default(),
            encoding: None,
            debezium: Default::default(),
            schema_registry: None,
        }
    }

    #[test]
    fn weakening_delivery_guarantees_is_refused() {
        for (k, v) in [("acks", "1"), ("enable.idempotence", "false")] {
            let err = client_config("c", &cfg(&[(k, v)])).unwrap_err().to_string();
            assert!(err.contains(k) && err.contains("requires"), "{err}");
        }
        assert!(client_config("c", &cfg(&[("acks", "-1"), ("linger.ms", "50")])).is_ok());
    }

    #[test]
    fn defaults_are_safe_and_overridable() {
        let c = client_config("c", &cfg(&[("compression.type", "zstd")])).unwrap();
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("message.timeout.ms"), Some("0"));
        assert_eq!(c.get("compression.type"), Some("zstd"));
    }
}
