//! The Kafka sink: an idempotent librdkafka producer (`acks=all`) whose delivery reports feed
//! the [`AckTracker`]. Records with the same key go to the same partition (Java-compatible
//! murmur2 partitioner, so keys land where Kafka Connect would put them), in send order.
//!
//! Messages never time out inside librdkafka (`message.timeout.ms=0`): while the broker is down
//! they wait in the producer queue, the queue fills, `send` waits, the source stops reading, and
//! the replication slot holds its position until the broker is back. Nothing is dropped. A record
//! the broker refuses for good is handled by [`super::dead_letter`].
//!
//! Under exactly-once the producer is transactional: a delivery report then means the record is
//! in the open transaction, and only the commit (made by the checkpoint store, see
//! [`checkpoints`]) makes it visible to `read_committed` consumers.

pub mod checkpoints;
pub mod leadership;
pub mod transactions;
pub mod txn_ends;

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use rdkafka::client::ClientContext;
use rdkafka::config::{ClientConfig, RDKafkaLogLevel};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig, ThreadedProducer};

use super::dead_letter::{describe, refusal_fix, refuses_record, DeadLetterContext, DeadLetters};
use crate::config::{property_string, KafkaSinkConfig};
use crate::core::acks::{AckTracker, TxnId};
use crate::core::envelope::Record;
use crate::core::pause::{PauseClock, PauseReport};
use crate::core::position::Position;
use crate::error::SinkError;
use transactions::{AbortAware, Turns, TxnProducer, CHECKPOINT_OPAQUE};

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

/// The exactly-once producer's `transaction.timeout.ms` unless the user sets one.
const TRANSACTION_TIMEOUT_MS: &str = "300000";

/// How often a repeated broker error (a refused login, an unreachable broker) is logged again.
const REPEAT_LOG_INTERVAL: Duration = Duration::from_secs(60);

pub struct AckContext {
    tracker: Arc<AckTracker>,
    connector: String,
    delivery_errors: AtomicU64,
    dead_letters: Option<Arc<DeadLetters>>,
    /// The broker refused the configured credentials or permissions: nothing will get through
    /// until the configuration changes, so the connector stops.
    definite: Mutex<Option<String>>,
    /// When each kind of repeated error was last logged.
    last_logged: Mutex<Vec<(&'static str, Instant)>>,
    /// Records purged unsent at shutdown (reported in one line).
    purged: AtomicU64,
    /// Each record is sent alone and awaited (see [`KafkaSink::replay_isolated`]): a size
    /// refusal then concerns that one record.
    isolated: AtomicBool,
    /// An exactly-once transaction is being aborted: the records it purges are re-read.
    aborting: AtomicBool,
    /// The producer is transactional: an error that fails the transaction aborts it and the
    /// session re-reads, rather than stopping the connector.
    exactly_once: bool,
}

impl AbortAware for AckContext {
    fn aborting(&self) -> &AtomicBool {
        &self.aborting
    }
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
        } else if code.is_some_and(authorization_failure) {
            reason.push_str(
                "; fix: grant the sink's user WRITE (and DESCRIBE) on the topic, and IDEMPOTENT_WRITE on the cluster",
            );
        }
        self.tracker.failed(txn, reason.clone());
        Err(reason)
    }

    /// Whether an error of this `kind` should be logged now (at most once per interval).
    fn log_now(&self, kind: &'static str) -> bool {
        let mut last = self.last_logged.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        match last.iter_mut().find(|(k, _)| *k == kind) {
            Some((_, at)) if now.duration_since(*at) < REPEAT_LOG_INTERVAL => false,
            Some((_, at)) => {
                *at = now;
                true
            }
            None => {
                last.push((kind, now));
                true
            }
        }
    }

    /// The broker refused the credentials: record it once, for the connector to stop on.
    fn authentication_failed(&self, reason: &str) {
        let mut definite = self.definite.lock().unwrap_or_else(|e| e.into_inner());
        if definite.is_some() {
            return;
        }
        let message = format!(
            "the Kafka broker refused the sink's credentials ({reason}); check sasl.mechanism, sasl.username and sasl.password under [sink.properties] (and that the user exists on the broker). The connector stops: retrying cannot help"
        );
        tracing::error!(connector = %self.connector, "{message}");
        self.tracker.fail(message.clone());
        *definite = Some(message);
    }
}

/// Whether librdkafka's error is the broker refusing the login itself. librdkafka reports a
/// connection lost during the SASL exchange (a broker restarting) as an authentication error
/// too, so the broker's own verdict is what counts.
fn authentication_failure(error: &KafkaError, reason: &str) -> bool {
    error.rdkafka_error_code() == Some(RDKafkaErrorCode::SaslAuthenticationFailed)
        || reason.contains("Authentication failed")
        || reason.contains("invalid credentials")
}

/// Whether a delivery report's error is the producer dropping the record unsent (a purge).
fn purged(e: &KafkaError) -> bool {
    matches!(e.rdkafka_error_code(), Some(RDKafkaErrorCode::PurgeQueue | RDKafkaErrorCode::PurgeInflight))
}

/// Whether a delivery error is the broker refusing the user's permissions.
fn authorization_failure(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::TopicAuthorizationFailed
            | RDKafkaErrorCode::ClusterAuthorizationFailed
            | RDKafkaErrorCode::TransactionalIdAuthorizationFailed
    )
}

impl ClientContext for AckContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, msg: &str) {
        let c = &self.connector;
        // librdkafka logs each failed connection attempt too; `error` below reports them once.
        // A takeover meets the previous owner's transaction being aborted
        // (CONCURRENT_TRANSACTIONS), which librdkafka retries: expected, not a warning.
        if security_fix(msg).is_some()
            || msg.contains("Connection refused")
            || (msg.contains("transactional PID") && msg.contains("concurrent operation"))
        {
            return tracing::debug!(connector = %c, facility = fac, "librdkafka: {msg}");
        }
        match level {
            RDKafkaLogLevel::Emerg | RDKafkaLogLevel::Alert | RDKafkaLogLevel::Critical | RDKafkaLogLevel::Error => {
                tracing::error!(connector = %c, facility = fac, "librdkafka: {msg}")
            }
            RDKafkaLogLevel::Warning => tracing::warn!(connector = %c, facility = fac, "librdkafka: {msg}"),
            _ => tracing::debug!(connector = %c, facility = fac, "librdkafka: {msg}"),
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        // A refused login is definite. Broker-down and connection errors are expected during
        // outages and TLS errors may be a certificate being rolled: librdkafka retries those,
        // and each kind is logged at most once a minute.
        if authentication_failure(&error, reason) {
            return self.authentication_failed(reason);
        }
        match security_fix(reason) {
            Some(fix) if self.log_now("security") => {
                tracing::error!(connector = %self.connector, "kafka: {error}: {reason}; {fix} (retrying; events are held, not dropped; repeated at most once a minute)")
            }
            None if self.log_now("broker") => {
                tracing::warn!(connector = %self.connector, "kafka: {error}: {reason} (retrying; events are held, not dropped; repeated at most once a minute)")
            }
            _ => tracing::debug!(connector = %self.connector, "kafka: {error}: {reason}"),
        }
    }
}

impl ProducerContext for AckContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        if opaque == CHECKPOINT_OPAQUE {
            // The commit that carries it reports its fate.
            if let Err((e, _)) = result {
                tracing::debug!(connector = %self.connector, error = %e, "checkpoint record not delivered");
            }
            return;
        }
        let txn = TxnId(opaque as u64);
        match result {
            Ok(msg) => self.tracker.delivered_at(txn, msg.topic(), msg.partition(), msg.offset()),
            // Under exactly-once every purge is an abort's (or the producer's end), whose
            // records the next session reads again.
            Err((e, _)) if self.aborting.load(Ordering::SeqCst) || (self.exactly_once && purged(e)) => {
                self.tracker.discarded(txn)
            }
            // Purged unsent at shutdown: re-read from the checkpoint next time; one summary line.
            Err((err, _)) if purged(err) => {
                self.purged.fetch_add(1, Ordering::Relaxed);
                self.tracker.failed(txn, "not delivered before the connector stopped".into());
            }
            // The broker refuses a whole batch when it is too large: innocent records with the
            // guilty one, or none guilty (their sum was too large). Only a record refused
            // alone is at fault, so the batch is sent again one record at a time.
            Err((err, msg))
                if err.rdkafka_error_code().is_some_and(refuses_record) && !self.isolated.load(Ordering::Relaxed) =>
            {
                let reason = format!(
                    "the broker refused a batch of records as too large ({err}), among them {}",
                    describe(msg.topic(), msg.key(), msg.payload())
                );
                tracing::debug!(connector = %self.connector, "{reason}");
                self.tracker.refused_for_replay(txn, reason);
            }
            // A transaction that failed (a timeout, the coordinator's abort, a broker error other
            // than a record refused on its own) is aborted and read again.
            Err((err, msg))
                if self.exactly_once
                    && !(err.rdkafka_error_code().is_some_and(refuses_record)
                        && self.isolated.load(Ordering::Relaxed)) =>
            {
                let reason = format!(
                    "a record of the open Kafka transaction failed ({err}): {}",
                    describe(msg.topic(), msg.key(), msg.payload())
                );
                tracing::debug!(connector = %self.connector, "{reason}");
                self.tracker.abort_needed(txn, reason);
            }
            Err((err, msg)) => {
                if let Err(reason) = self.refused(txn, msg.topic(), msg.key(), msg.payload(), err) {
                    if self.log_now("delivery") {
                        tracing::error!(connector = %self.connector, "kafka delivery failed definitively: {reason}");
                    }
                }
            }
        }
    }
}

pub struct KafkaSink {
    /// One producer; under exactly-once several, taking turns (see [`Turns`]).
    producers: Vec<Arc<ThreadedProducer<AckContext>>>,
    /// Which of `producers` takes records now (switched by the checkpoint store's commits).
    active: Arc<AtomicUsize>,
    exactly_once: bool,
    tracker: Arc<AckTracker>,
    limiter: Option<DefaultDirectRateLimiter>,
    connector: String,
    /// While records are sent one at a time after a refused batch: until the checkpoint is
    /// past this place (`None`: until it first moves).
    isolate_until: Option<Option<Position>>,
}

impl KafkaSink {
    /// `transactional_id`: the id of an exactly-once producer.
    pub fn new(
        connector: &str,
        cfg: &KafkaSinkConfig,
        tracker: Arc<AckTracker>,
        transactional_id: Option<String>,
    ) -> Result<Self, SinkError> {
        let client_config = client_config(connector, cfg, transactional_id.as_deref())?;
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
        let context = |dead_letters| AckContext {
            tracker: tracker.clone(),
            connector: connector.to_string(),
            delivery_errors: AtomicU64::new(0),
            dead_letters,
            definite: Mutex::new(None),
            last_logged: Mutex::new(Vec::new()),
            purged: AtomicU64::new(0),
            isolated: AtomicBool::new(false),
            aborting: AtomicBool::new(false),
            exactly_once: transactional_id.is_some(),
        };
        let create = |config: &ClientConfig, dead_letters| {
            config
                .create_with_context::<_, ThreadedProducer<AckContext>>(context(dead_letters))
                .map(Arc::new)
                .map_err(|e| SinkError::Config(format!("cannot create Kafka producer: {e}")))
        };
        let mut producers = vec![create(&client_config, dead_letters)?];
        if let Some(id) = &transactional_id {
            // Exactly-once: producers take turns, one taking records while another commits
            // (see `transactions::Turns`). Exactly-once refuses a dead-letter topic.
            for turn in 1..transactions::TURNS {
                let mut next = client_config.clone();
                next.set("transactional.id", transactions::turn_id(id, turn));
                producers.push(create(&next, None)?);
            }
        }
        let limiter =
            cfg.max_events_per_second.and_then(NonZeroU32::new).map(|n| RateLimiter::direct(Quota::per_second(n)));
        Ok(Self {
            producers,
            active: Arc::new(AtomicUsize::new(0)),
            exactly_once: transactional_id.is_some(),
            tracker,
            limiter,
            connector: connector.to_string(),
            isolate_until: None,
        })
    }

    /// The producer that takes records now.
    fn producer(&self) -> &ThreadedProducer<AckContext> {
        &self.producers[self.active.load(Ordering::SeqCst) % self.producers.len()]
    }

    /// The transactional producers an exactly-once sink shares with its checkpoint store.
    pub fn transactions(&self) -> Option<Turns> {
        self.exactly_once.then(|| Turns {
            producers: self.producers.iter().map(|p| p.clone() as Arc<dyn TxnProducer>).collect(),
            active: self.active.clone(),
        })
    }

    /// Transaction metadata: what sends ENDs to `topic` through this sink's producers.
    pub fn end_sender(&self, format: crate::core::txn_meta::MetaFormat, topic: String) -> txn_ends::EndSender {
        txn_ends::EndSender {
            producers: self.producers.clone(),
            active: self.active.clone(),
            tracker: self.tracker.clone(),
            exactly_once: self.exactly_once,
            format,
            topic,
            key: Vec::new(),
            value: Vec::new(),
        }
    }

    /// After the broker refused a batch as too large: until the checkpoint passes `until`
    /// (the furthest place the failed session committed), each record is sent alone and its
    /// delivery awaited, so a refusal names the one record at fault and its neighbours go
    /// through in order.
    pub fn replay_isolated(&mut self, until: Option<Position>) {
        for p in &self.producers {
            p.context().isolated.store(true, Ordering::Relaxed);
        }
        // Nothing committed yet in the failed session (the refused transaction was still being
        // read): past the checkpoint it re-reads from, which is that transaction's end at best.
        self.isolate_until = Some(until.or_else(|| self.tracker.confirmed()));
    }

    /// Ends isolation once the checkpoint is past where it was asked for.
    fn isolation_over(&mut self) -> bool {
        let Some(until) = &self.isolate_until else { return true };
        let past = match (self.tracker.confirmed(), until) {
            (Some(c), Some(u)) => c.partial_cmp(u) == Some(std::cmp::Ordering::Greater),
            (c, None) => c.is_some(),
            (None, Some(_)) => false,
        };
        if past {
            tracing::info!(connector = %self.connector, "past the refused batch; records are batched again");
            for p in &self.producers {
                p.context().isolated.store(false, Ordering::Relaxed);
            }
            self.isolate_until = None;
        }
        past
    }

    /// Waits until every record handed over is acknowledged (or refused).
    async fn await_deliveries(&self) -> Result<(), SinkError> {
        while self.tracker.in_flight() > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
            self.health()?;
        }
        Ok(())
    }

    pub async fn send(&mut self, record: Record<'_>, txn: TxnId) -> Result<(), SinkError> {
        if let Some(limiter) = &self.limiter {
            limiter.until_ready().await;
        }
        if !self.isolation_over() {
            self.queue(record, txn).await?;
            // Its own batch: nothing else is queued until it is acknowledged or refused.
            let _ = self.producer().flush(Duration::ZERO);
            return self.await_deliveries().await;
        }
        self.queue(record, txn).await
    }

    async fn queue(&mut self, record: Record<'_>, txn: TxnId) -> Result<(), SinkError> {
        self.tracker.expect(txn);
        let mut unsent = Unsent { tracker: self.tracker.clone(), txn, armed: true };
        let mut rec: BaseRecord<'_, [u8], [u8], usize> = BaseRecord::with_opaque_to(record.topic, txn.0 as usize);
        if let Some(k) = record.key {
            rec = rec.key(k);
        }
        if let Some(v) = record.value {
            rec = rec.payload(v);
        }
        if let Some(p) = record.partition {
            rec = rec.partition(p);
        }
        let mut pause = PauseClock::new();
        loop {
            match self.producer().send(rec) {
                Ok(()) => {
                    // From here its delivery report settles it.
                    unsent.armed = false;
                    return Ok(());
                }
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
                Err((e, _)) if self.exactly_once && !e.rdkafka_error_code().is_some_and(refuses_record) => {
                    // The transaction is no longer open to records (it failed, or the producer
                    // is finished): abort and read again, or step down if fenced. (The guard
                    // un-counts the record.)
                    return Err(self.transaction_error(&e));
                }
                Err((e, _)) => {
                    // Refused before it left: too large for message.max.bytes, or otherwise
                    // unsendable. `refused` settles it.
                    unsent.armed = false;
                    return self
                        .producer()
                        .context()
                        .refused(txn, record.topic, record.key, record.value, &e)
                        .map_err(SinkError::Delivery);
                }
            }
        }
    }

    /// A failure no retry can mend (the broker refused the credentials), once seen.
    pub fn definite_failure(&self) -> Option<String> {
        self.producers.iter().find_map(|p| p.context().definite.lock().unwrap_or_else(|e| e.into_inner()).clone())
    }

    pub fn health(&self) -> Result<(), SinkError> {
        if let Some(reason) = self.definite_failure() {
            return Err(SinkError::Delivery(reason));
        }
        if let Some((code, reason)) = self.producers.iter().find_map(|p| p.client().fatal_error()) {
            let reason = format!("Kafka producer hit a fatal error ({code:?}): {reason}");
            // A transactional producer is finished when fenced (another process took over) or
            // when its coordinator aborted on its own (Kafka < 2.5): leadership decides.
            return Err(if self.exactly_once { SinkError::SteppedDown(reason) } else { SinkError::Delivery(reason) });
        }
        Ok(())
    }

    /// What a record refused by a transaction that can no longer take it means.
    fn transaction_error(&self, e: &KafkaError) -> SinkError {
        let reason = format!("the open Kafka transaction cannot take more records ({e})");
        match self.producers.iter().find_map(|p| p.client().fatal_error()) {
            Some(_) => SinkError::SteppedDown(reason),
            None => SinkError::Aborted(reason),
        }
    }
}

/// A record the tracker counts as in flight before the producer has it: if it never gets there
/// (the wait for room in a full queue ended in an error, or the session was dropped during it),
/// it is un-counted, as a discarded one, so the in-flight count can fall to zero again.
struct Unsent {
    tracker: Arc<AckTracker>,
    txn: TxnId,
    armed: bool,
}

impl Drop for Unsent {
    fn drop(&mut self) {
        if self.armed {
            self.tracker.discarded(self.txn);
        }
    }
}

impl Drop for KafkaSink {
    fn drop(&mut self) {
        // What the drain could not deliver is purged here; its delivery reports count it.
        for p in &self.producers {
            p.purge(PurgeConfig::default().queue().inflight());
            let _ = p.flush(Duration::from_secs(1));
            if let Some(dlq) = &p.context().dead_letters {
                dlq.flush();
            }
        }
        let purged: u64 = self.producers.iter().map(|p| p.context().purged.load(Ordering::Relaxed)).sum();
        if purged > 0 {
            tracing::warn!(connector = %self.connector, records = purged, "records not delivered before the connector stopped were dropped from the producer queue; they are re-read from the checkpoint on the next start, nothing is lost");
        }
    }
}

fn client_config(
    connector: &str,
    cfg: &KafkaSinkConfig,
    transactional_id: Option<&str>,
) -> Result<ClientConfig, SinkError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers);
    c.set("client.id", format!("cdcd-{connector}"));
    for (k, v) in DEFAULTS.iter().chain(REQUIRED) {
        c.set(*k, *v);
    }
    if let Some(id) = transactional_id {
        // A transaction's records must not outlive it: librdkafka bounds them by
        // transaction.timeout.ms, and a commit that cannot complete is retried from the
        // checkpoint by a new producer.
        c.remove("message.timeout.ms");
        c.set("transactional.id", id);
        // Longer than librdkafka's 60 s: a source transaction is never split across Kafka
        // transactions, so one that takes long to read must fit in one. Within Kafka's default
        // transaction.max.timeout.ms (15 min); a successor aborts a dead process's
        // transaction at once, so this only bounds how long a lone dead process holds back
        // read_committed consumers.
        c.set("transaction.timeout.ms", TRANSACTION_TIMEOUT_MS);
        // Every commit waits for the records still lingering: a shorter linger is a faster
        // commit (measured on Kafka 2.3: about 6 ms with 5 ms, 3 ms with 1 ms).
        c.set("linger.ms", "1");
        // init_transactions needs a connection to a broker learned from metadata, and
        // librdkafka opens one only when asked, after its 500 ms coordinator timer: every start
        // and takeover waited half a second for it (measured: 506 ms, 3 ms with this).
        c.set("enable.sparse.connections", "false");
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
        if matches!(key.as_str(), "message.timeout.ms" | "delivery.timeout.ms")
            && value != "0"
            && transactional_id.is_none()
        {
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

/// The brokers and the sink's security settings, for clients other than the sink's producer
/// (the probe, the checkpoint store's reader and admin client, the election): producer tuning
/// does not apply to them.
pub fn connection_config(cfg: &KafkaSinkConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &cfg.brokers);
    for (key, value) in &cfg.properties {
        if key.starts_with("security.") || key.starts_with("sasl.") || key.starts_with("ssl.") {
            c.set(key, property_string(value).unwrap_or_default());
        }
    }
    c
}

/// Drops a Kafka client on a thread of its own, off the path of a start or takeover:
/// rust-rdkafka's admin client joins its polling thread, which polls every 100 ms, and a
/// consumer closes its connections.
pub(crate) fn drop_in_background<T: Send + 'static>(client: T) {
    // Where no thread can be started, the closure, and the client with it, is dropped here.
    let _ = std::thread::Builder::new().name("cdcd-kafka-drop".into()).spawn(move || drop(client));
}

/// Asks the brokers for cluster metadata: proves they are reachable, with the configured TLS and
/// SASL. Returns the broker count.
pub async fn probe(cfg: &KafkaSinkConfig) -> Result<usize, String> {
    let mut c = connection_config(cfg);
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

    #[tokio::test]
    async fn a_record_never_handed_over_is_not_left_in_flight() {
        // No broker at 127.0.0.1:1 and room for one message: the second waits for room.
        let tracker = Arc::new(AckTracker::new());
        let mut sink = KafkaSink::new("c", &cfg(&[("queue.buffering.max.messages", "1")]), tracker.clone(), None)
            .expect("producer");
        let record = Record { topic: "t", key: Some(b"k"), value: Some(b"v"), partition: None };
        sink.send(Record { ..record }, TxnId(1)).await.expect("queued");
        let waited = tokio::time::timeout(Duration::from_millis(300), sink.send(record, TxnId(1))).await;
        assert!(waited.is_err(), "the queue is full: the second record waits");
        assert_eq!(tracker.in_flight(), 1, "the record dropped while it waited is not counted");
        drop(sink);
    }

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
            delivery: Default::default(),
            transactional_id: None,
            commit_interval_ms: None,
            transaction_metadata: false,
        }
    }

    #[test]
    fn weakening_delivery_guarantees_is_refused() {
        for (k, v) in [("acks", "1"), ("enable.idempotence", "false")] {
            let err = client_config("c", &cfg(&[(k, v)]), None).unwrap_err().to_string();
            assert!(err.contains(k) && err.contains("requires"), "{err}");
        }
        assert!(client_config("c", &cfg(&[("acks", "-1"), ("linger.ms", "50")]), None).is_ok());
    }

    #[test]
    fn defaults_are_safe_and_overridable() {
        let c = client_config("c", &cfg(&[("compression.type", "zstd")]), None).unwrap();
        assert_eq!(c.get("enable.idempotence"), Some("true"));
        assert_eq!(c.get("message.timeout.ms"), Some("0"));
        assert_eq!(c.get("compression.type"), Some("zstd"));
    }
}
