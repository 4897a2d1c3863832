//! The Kafka checkpoint store (`[checkpoint] store = "kafka"`): the checkpoint lives in a
//! compacted topic on the sink's brokers, keyed by connector name (a JSON string, as Kafka
//! Connect's offset keys are JSON), so a process needs no local
//! state. It is read with `read_committed` and written only inside transactions of the
//! connector's `transactional.id`, so once a newer process has called `init_transactions`, an
//! older one can write nothing more.
//!
//! The store shares the sink's transactional producers (the Kafka store runs exactly-once):
//! [`CheckpointStore::save`] adds the checkpoint to the active producer's open transaction,
//! which holds every record sent since its last save, and commits them together on a thread of
//! its own while the next producer takes the records (see `transactions::Turns`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};

use super::transactions::{classify, Turns, TxnFailure, TxnProducer};
use super::{connection_config, drop_in_background};
use crate::config::{ConnectorConfig, KafkaSinkConfig};
use crate::core::checkpoint::{
    read_file, Checkpoint, CheckpointError, CheckpointProbe, CheckpointStore, StoredCheckpoint,
};

/// Topic settings cdcd creates the checkpoint topic with. Small segments let compaction keep
/// the topic short, so reading it at start stays quick however often checkpoints are written.
const TOPIC_CONFIG: &[(&str, &str)] =
    &[("cleanup.policy", "compact"), ("segment.bytes", "16777216"), ("min.compaction.lag.ms", "0")];

/// How long reading the checkpoint topic at start may take.
const LOAD_TIMEOUT: Duration = Duration::from_secs(60);

pub struct KafkaCheckpointStore {
    /// The sink's producers: a save commits the records the active one took since its last
    /// commit, and hands the records to come to the next one.
    turns: Turns,
    topic: String,
    connector: String,
    /// The record key: the connector's name as a JSON string.
    key: Vec<u8>,
    /// The key of the claim an elected process writes before each session.
    claim_key: Vec<u8>,
    brokers: ClientConfig,
    /// Where a file checkpoint may wait to be imported.
    import_from: std::path::PathBuf,
    /// The newest checkpoint handed to a commit (what the next one must be ahead of).
    last: Option<Checkpoint>,
    /// The newest checkpoint committed.
    committed: Option<Checkpoint>,
    /// The commit under way, on the producer whose turn came before the active one's.
    pending: Option<PendingCommit>,
    /// A commit that finished and was not yet reported by `settled`.
    done: Option<(Checkpoint, bool)>,
    loaded: bool,
}

/// A commit made on its own thread while the next producer takes records.
struct PendingCommit {
    checkpoint: Checkpoint,
    /// Whether its checkpoint record was written (it was ahead of the last one).
    wrote: bool,
    thread: std::thread::JoinHandle<Result<(), CheckpointError>>,
}

impl KafkaCheckpointStore {
    /// The store of a connector whose sink shares `turns`, its transactional producers.
    pub fn new(cfg: &ConnectorConfig, k: &KafkaSinkConfig, turns: Turns) -> Self {
        Self {
            turns,
            topic: cfg.checkpoint_topic(),
            connector: cfg.name.clone(),
            key: serde_json::Value::String(cfg.name.clone()).to_string().into_bytes(),
            claim_key: serde_json::json!({"claim": cfg.name}).to_string().into_bytes(),
            brokers: connection_config(k),
            import_from: cfg.checkpoint_dir().join("checkpoint.json"),
            last: None,
            committed: None,
            pending: None,
            done: None,
            loaded: false,
        }
    }

    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// Makes sure the topic exists and compacts, then takes every turn's transactional id: from here
    /// on no earlier process can commit. Opens the first transactions.
    pub async fn open(&mut self) -> Result<(), CheckpointError> {
        let started = Instant::now();
        let producers = self.turns.producers.clone();
        // Side by side: taking the ids before the topic is checked does no harm, as only an
        // elected process opens the store.
        let take_ids = tokio::task::spawn_blocking(move || {
            for producer in &producers {
                producer.init()?;
                producer.begin()?;
            }
            Ok::<_, KafkaError>(started.elapsed())
        });
        let checked = async {
            ensure_topic(&self.brokers, &self.topic).await?;
            Ok::<_, CheckpointError>(started.elapsed())
        };
        let (taken, checked) = tokio::join!(take_ids, checked);
        let taken = taken
            .map_err(|e| kafka_error(&e.to_string()))?
            .map_err(|e| txn_error("cannot take the connector's transactional id", &e))?;
        let checked = checked?;
        tracing::debug!(
            topic_ms = checked.as_millis() as u64,
            init_ms = taken.as_millis() as u64,
            "checkpoint topic checked, transactional ids taken"
        );
        Ok(())
    }

    fn read(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        read_committed(&self.brokers, &self.topic, &self.connector, &self.key)
    }

    fn active(&self) -> Arc<dyn TxnProducer> {
        self.turns.producers[self.turns.active()].clone()
    }

    /// Commits the active producer's transaction with `record` (key, value) in it, here and
    /// now, after any commit under way.
    fn commit_now(&mut self, record: Option<(&[u8], &[u8])>) -> Result<(), CheckpointError> {
        self.reap(true)?;
        let producer = self.active();
        if let Some((key, value)) = record {
            if let Err(e) = producer.send_checkpoint(&self.topic, key, value) {
                return Err(abort_after(&*producer, "cannot queue the checkpoint record", &e));
            }
        }
        commit(&*producer)
    }

    /// Collects the commit under way if it finished (or, with `wait`, once it does).
    fn reap(&mut self, wait: bool) -> Result<(), CheckpointError> {
        match &self.pending {
            Some(p) if wait || p.thread.is_finished() => {}
            _ => return Ok(()),
        }
        let Some(p) = self.pending.take() else { return Ok(()) };
        let outcome = p.thread.join().unwrap_or_else(|_| Err(kafka_error("the Kafka commit thread panicked")));
        match outcome {
            Ok(()) => {
                if p.wrote {
                    self.committed = Some(p.checkpoint.clone());
                }
                let wrote = p.wrote || self.done.take().is_some_and(|(_, w)| w);
                self.done = Some((p.checkpoint, wrote));
                Ok(())
            }
            Err(e) => {
                // Its records are aborted, and with them what the active producer took since
                // (the session ends and reads both again).
                self.last = self.committed.clone();
                Err(e)
            }
        }
    }
}

/// Commits `producer`'s open transaction (retrying what may be retried) and opens its next;
/// a failed commit is aborted, unless the producer is finished.
fn commit(producer: &dyn TxnProducer) -> Result<(), CheckpointError> {
    let mut attempt = 0;
    loop {
        match producer.commit() {
            Ok(()) => break,
            Err(e) => match classify(&e) {
                TxnFailure::Retry(_) if attempt < 5 => {
                    attempt += 1;
                    std::thread::sleep(Duration::from_millis(100 << attempt));
                }
                _ => return Err(abort_after(producer, "the Kafka transaction did not commit", &e)),
            },
        }
    }
    producer.begin().map_err(|e| txn_error("cannot begin the next transaction", &e))
}

/// After a failed call: aborts what the transaction holds, unless the producer is finished.
fn abort_after(producer: &dyn TxnProducer, what: &str, e: &KafkaError) -> CheckpointError {
    let error = txn_error(what, e);
    if matches!(error, CheckpointError::Kafka(_)) {
        let _ = producer.abort();
        let _ = producer.begin();
    }
    error
}

impl CheckpointStore for KafkaCheckpointStore {
    fn load(&mut self) -> Result<Option<Checkpoint>, CheckpointError> {
        self.reap(true)?;
        // Only this process writes the key once it holds the transactional ids: what it
        // committed last is what the topic holds.
        if self.loaded {
            return Ok(self.committed.clone());
        }
        let mut cp = self.read()?;
        if cp.is_none() {
            if let Some(imported) = read_file(&self.import_from)? {
                tracing::info!(connector = %self.connector, file = %self.import_from.display(), topic = %self.topic, position = %imported.position, "no checkpoint in the topic yet: importing the file store's");
                let body = serde_json::to_vec(&imported).map_err(|e| kafka_error(&e.to_string()))?;
                let key = self.key.clone();
                self.commit_now(Some((&key, &body)))?;
                cp = Some(imported);
            }
        }
        if let Some(found) = &cp {
            if found.connector != self.connector {
                return Err(CheckpointError::WrongConnector {
                    path: format!("topic {}", self.topic).into(),
                    found: found.connector.clone(),
                    expected: self.connector.clone(),
                });
            }
        }
        self.last = cp.clone();
        self.committed = cp.clone();
        self.loaded = true;
        Ok(cp)
    }

    /// Adds the checkpoint to the active producer's transaction, waits until the broker has
    /// every record of it, and hands the records to come to the next producer; the commit
    /// itself runs on its own thread ([`CheckpointStore::settled`] reports it). The other
    /// producer's commit must be done first: its transaction's records come before these.
    fn save(&mut self, cp: &Checkpoint) -> Result<bool, CheckpointError> {
        if !self.loaded {
            self.load()?;
        }
        // The transaction's records are committed even when the position did not move (a
        // snapshot chunk's rows wait in it); the checkpoint record only when it did.
        let ahead = self.last.as_ref().is_none_or(|last| cp.is_ahead_of(last));
        let producer = self.active();
        if ahead {
            let body = serde_json::to_vec(cp).map_err(|e| kafka_error(&e.to_string()))?;
            if let Err(e) = producer.send_checkpoint(&self.topic, &self.key, &body) {
                return Err(abort_after(&*producer, "cannot queue the checkpoint record", &e));
            }
        }
        // Every record acknowledged: the next producer's records land after them.
        let started = Instant::now();
        producer.await_acks();
        let acked = started.elapsed();
        self.reap(true)?;
        tracing::trace!(
            acks_ms = acked.as_secs_f64() * 1e3,
            previous_commit_ms = (started.elapsed() - acked).as_secs_f64() * 1e3,
            "records acknowledged, turn handed over"
        );
        // Started before the turn is handed on: if it cannot start, the transaction is still
        // the active one, which the session's end aborts.
        let thread = std::thread::Builder::new()
            .name("cdcd-commit".into())
            .spawn(move || commit(&*producer))
            .map_err(|e| kafka_error(&format!("cannot start the commit thread: {e}")))?;
        self.turns.hand_on();
        self.pending = Some(PendingCommit { checkpoint: cp.clone(), wrote: ahead, thread });
        if ahead {
            self.last = Some(cp.clone());
        }
        Ok(ahead)
    }

    fn commits_in_background(&self) -> bool {
        true
    }

    fn settled(&mut self, wait: bool) -> Result<Option<(Checkpoint, bool)>, CheckpointError> {
        self.reap(wait)?;
        Ok(self.done.take())
    }

    fn abort(&mut self) -> Result<(), CheckpointError> {
        // A commit under way finishes first (a failed one aborted itself): the active
        // producer's records follow its.
        let reaped = self.reap(true);
        self.active().abort().map_err(|e| txn_error("cannot abort the Kafka transaction", &e))?;
        self.active().begin().map_err(|e| txn_error("cannot begin the next transaction", &e))?;
        reaped
    }

    /// Proves, with a commit the broker must accept, that this process still holds the
    /// connector's transactional id: a process that was replaced while frozen learns it here,
    /// before it touches the source. Called between sessions, when the transaction is empty.
    fn claim(&mut self) -> Result<(), CheckpointError> {
        let claim = serde_json::json!({
            "process": std::process::id(),
            "host": hostname(),
            "at_ms": std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64),
        })
        .to_string();
        let key = self.claim_key.clone();
        self.commit_now(Some((&key, claim.as_bytes())))
    }
}

/// The connector's last committed checkpoint in `topic` (the last value of `key`, a tombstone
/// clearing it), read with `read_committed` and nothing else: no transactional id is taken, so
/// `cdcd check` may read it while a process runs.
fn read_committed(
    brokers: &ClientConfig,
    topic: &str,
    connector: &str,
    key: &[u8],
) -> Result<Option<Checkpoint>, CheckpointError> {
    let mut c = brokers.clone();
    c.set("group.id", format!("cdcd-{}-checkpoint-reader", connector))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        // The end of the partition is known only from an empty fetch, which the broker
        // would otherwise hold for 500 ms: a start and a takeover wait for it.
        .set("fetch.wait.max.ms", "10")
        // Reading starts at offset 0 (see below); where compaction removed it, at the
        // first offset left.
        .set("auto.offset.reset", "earliest")
        .set("isolation.level", "read_committed");
    let consumer: BaseConsumer<ReaderContext> = c
        .create_with_context(ReaderContext)
        .map_err(|e| kafka_error(&format!("cannot create the checkpoint reader: {e}")))?;
    let mut tpl = TopicPartitionList::new();
    // Offset 0 rather than `Beginning`: librdkafka looks a logical offset up only after it
    // learns the partition's leader, on a 500 ms retry timer, so every start and takeover
    // would wait half a second (measured: 520 ms against 40 ms).
    tpl.add_partition_offset(topic, 0, Offset::Offset(0))
        .map_err(|e| kafka_error(&format!("cannot read topic {}: {e}", topic)))?;
    consumer.assign(&tpl).map_err(|e| kafka_error(&format!("cannot read topic {}: {e}", topic)))?;
    let found = read_to_end(&consumer, topic, key);
    drop_in_background(consumer);
    found
}

/// Reads the assigned checkpoint partition to its end: the last value of `key`.
fn read_to_end(
    consumer: &BaseConsumer<ReaderContext>,
    topic: &str,
    key: &[u8],
) -> Result<Option<Checkpoint>, CheckpointError> {
    let deadline = Instant::now() + LOAD_TIMEOUT;
    let mut found: Option<Checkpoint> = None;
    loop {
        if Instant::now() > deadline {
            return Err(kafka_error(&format!(
                "reading checkpoint topic {} took longer than {}s; is the broker reachable and the topic readable by the sink's user?",
                topic,
                LOAD_TIMEOUT.as_secs()
            )));
        }
        let Some(message) = consumer.poll(Duration::from_millis(200)) else { continue };
        let message = match message {
            Ok(m) => m,
            Err(KafkaError::PartitionEOF(_)) => return Ok(found),
            Err(e) if is_retriable_read(&e) => continue,
            Err(e) => return Err(kafka_error(&format!("cannot read checkpoint topic {}: {e}", topic))),
        };
        if message.key() != Some(key) {
            continue;
        }
        found = match message.payload() {
            None => None,
            Some(bytes) => Some(serde_json::from_slice(bytes).map_err(|e| {
                kafka_error(&format!(
                    "the checkpoint at offset {} of topic {} is corrupt ({e}); delete the connector's key from the topic to re-snapshot",
                    message.offset(),
                    topic
                ))
            })?),
        };
    }
}

/// How `cdcd check` reads the Kafka store's checkpoint (see [`read_committed`]).
pub fn probe(cfg: &ConnectorConfig, k: &KafkaSinkConfig) -> CheckpointProbe<'static> {
    let (brokers, topic, connector) = (connection_config(k), cfg.checkpoint_topic(), cfg.name.clone());
    let import_from = cfg.checkpoint_dir().join("checkpoint.json");
    let key = serde_json::Value::String(connector.clone()).to_string().into_bytes();
    CheckpointProbe::new(format!("checkpoint in topic {topic}"), move || {
        // Reading a topic that is not there would wait for it until the load timeout.
        let consumer: BaseConsumer =
            brokers.create().map_err(|e| kafka_error(&format!("cannot create the checkpoint reader: {e}")))?;
        let metadata = consumer
            .fetch_metadata(None, Duration::from_secs(10))
            .map_err(|e| kafka_error(&format!("cannot reach the brokers: {e}")))?;
        drop_in_background(consumer);
        let in_topic = match metadata.topics().iter().any(|t| t.name() == topic) {
            true => read_committed(&brokers, &topic, &connector, &key)?,
            false => None,
        };
        if let Some(checkpoint) = in_topic {
            return Ok(Some(StoredCheckpoint {
                checkpoint,
                place: format!("checkpoint in topic {topic}"),
                reset: format!(
                    "delete key {} from topic {topic} (a record with that key and an empty value)",
                    String::from_utf8_lossy(&key)
                ),
            }));
        }
        // As the store does at start: a topic without one imports the file store's.
        Ok(read_file(&import_from)?.map(|cp| StoredCheckpoint {
            place: format!(
                "checkpoint {} (which the Kafka store imports while topic {topic} has none)",
                import_from.display()
            ),
            ..StoredCheckpoint::in_file(cp, &import_from)
        }))
    })
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname").map(|h| h.trim().to_string()).unwrap_or_default()
}

/// The checkpoint reader's context: the end of the partition is how it knows it is done, not
/// an error worth a log line; real failures come back from `poll`.
struct ReaderContext;

impl rdkafka::client::ClientContext for ReaderContext {
    fn error(&self, error: KafkaError, reason: &str) {
        tracing::debug!("kafka (checkpoint reader): {error}: {reason}");
    }
}

impl rdkafka::consumer::ConsumerContext for ReaderContext {}

fn kafka_error(reason: &str) -> CheckpointError {
    CheckpointError::Kafka(reason.to_string())
}

fn txn_error(what: &str, e: &KafkaError) -> CheckpointError {
    match classify(e) {
        TxnFailure::Fatal(reason) => CheckpointError::Fenced(format!("{what}: {reason}")),
        TxnFailure::Abort(reason) | TxnFailure::Retry(reason) => CheckpointError::Kafka(format!("{what}: {reason}")),
    }
}

fn is_retriable_read(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::UnknownTopicOrPartition
                | RDKafkaErrorCode::LeaderNotAvailable
                | RDKafkaErrorCode::NotLeaderForPartition
                | RDKafkaErrorCode::BrokerTransportFailure
                | RDKafkaErrorCode::AllBrokersDown
        )
    )
}

/// What the checkpoint topic is like on the brokers.
enum TopicState {
    /// Not there yet; the brokers in the cluster.
    Missing { brokers: usize },
    /// Compacted; a note when its segments are long (see [`long_segments`]).
    Compacted(Option<String>),
    /// There, with this `cleanup.policy`.
    NotCompacted(String),
}

async fn inspect(admin: &AdminClient<DefaultClientContext>, topic: &str) -> Result<TopicState, CheckpointError> {
    // All topics' metadata: asking for one by name may make the broker auto-create it (with
    // the delete policy), and Kafka 2.3 describes a missing topic's configs as the defaults.
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .map_err(|e| kafka_error(&format!("cannot reach the brokers: {e}")))?;
    if !metadata.topics().iter().any(|t| t.name() == topic) {
        return Ok(TopicState::Missing { brokers: metadata.brokers().len() });
    }
    let settings = describe(admin, topic).await?;
    let policy = settings.as_ref().and_then(|s| s.policy.clone()).unwrap_or_else(|| "delete".into());
    Ok(if policy.split(',').any(|p| p.trim() == "compact") {
        TopicState::Compacted(settings.and_then(|s| long_segments(topic, &s)))
    } else {
        TopicState::NotCompacted(policy)
    })
}

fn not_compacted(topic: &str, policy: &str) -> String {
    format!(
        "checkpoint topic {topic} has cleanup.policy={policy}: its checkpoints would be deleted with age. Make it compacted (kafka-configs.sh --alter --entity-type topics --entity-name {topic} --add-config cleanup.policy=compact), or name another with [checkpoint] topic"
    )
}

fn admin(brokers: &ClientConfig) -> Result<AdminClient<DefaultClientContext>, CheckpointError> {
    brokers.create().map_err(|e| kafka_error(&format!("cannot create a Kafka admin client: {e}")))
}

/// Creates the checkpoint topic when missing (one partition: it is also what the election's
/// group assigns), and refuses one that does not compact.
pub async fn ensure_topic(brokers: &ClientConfig, topic: &str) -> Result<(), CheckpointError> {
    let admin = admin(brokers)?;
    let result = ensure_with(&admin, topic).await;
    drop_in_background(admin);
    result
}

async fn ensure_with(admin: &AdminClient<DefaultClientContext>, topic: &str) -> Result<(), CheckpointError> {
    let brokers_up = match inspect(admin, topic).await? {
        TopicState::Compacted(note) => {
            if let Some(note) = note {
                tracing::warn!(topic, "{note}");
            }
            return Ok(());
        }
        TopicState::NotCompacted(policy) => return Err(CheckpointError::Refused(not_compacted(topic, &policy))),
        TopicState::Missing { brokers } => brokers,
    };
    let replicas = brokers_up.clamp(1, 3) as i32;
    let mut new = NewTopic::new(topic, 1, TopicReplication::Fixed(replicas));
    for (k, v) in TOPIC_CONFIG {
        new = new.set(k, v);
    }
    let results = admin.create_topics([&new], &admin_options()).await.map_err(|e| kafka_error(&e.to_string()))?;
    for r in results {
        match r {
            Ok(_) => tracing::info!(topic, replicas, "created the checkpoint topic (compacted, one partition)"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(kafka_error(&format!(
                    "cannot create checkpoint topic {topic} ({code}); create it with cleanup.policy=compact and one partition, or grant the sink's user CREATE"
                )))
            }
        }
    }
    Ok(())
}

/// For `cdcd check`: what the Kafka store will find (Ok) or what stops it, with the fix (Err).
/// The Ok side carries a note, when there is something to improve.
pub async fn check_topic(k: &KafkaSinkConfig, topic: &str) -> Result<(String, Option<String>), String> {
    let admin = admin(&connection_config(k)).map_err(|e| e.to_string())?;
    match inspect(&admin, topic).await.map_err(|e| e.to_string())? {
        TopicState::Compacted(note) => Ok((format!("checkpoint topic {topic} exists and is compacted"), note)),
        TopicState::Missing { .. } => Ok((
            format!("checkpoint topic {topic} does not exist yet; cdcd creates it compacted with one partition"),
            None,
        )),
        TopicState::NotCompacted(policy) => Err(not_compacted(topic, &policy)),
    }
}

fn admin_options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(30)))
}

/// The topic's `cleanup.policy`, or `None` when it does not exist.
/// The checkpoint topic's settings that matter to the store.
struct TopicSettings {
    policy: Option<String>,
    segment_bytes: Option<u64>,
    segment_ms: Option<u64>,
}

/// Segments longer than this are worth a note: compaction never touches the open segment, so a
/// start reads all of it.
const LONG_SEGMENT_BYTES: u64 = 64 << 20;
const LONG_SEGMENT_MS: u64 = 3_600_000;

/// A note when the topic's open segment may grow large: every start and takeover reads it whole
/// (a busy connector commits a checkpoint record every `commit_interval_ms`).
fn long_segments(topic: &str, s: &TopicSettings) -> Option<String> {
    let bytes = s.segment_bytes?;
    if bytes <= LONG_SEGMENT_BYTES || s.segment_ms.is_some_and(|ms| ms <= LONG_SEGMENT_MS) {
        return None;
    }
    Some(format!(
        "checkpoint topic {topic} rolls segments at segment.bytes={bytes}: compaction never shortens the open segment, so every start and takeover reads up to that much; lower it (kafka-configs.sh --alter --entity-type topics --entity-name {topic} --add-config segment.bytes=16777216)"
    ))
}

/// The topic's settings, or `None` when it does not exist.
async fn describe(
    admin: &AdminClient<DefaultClientContext>,
    topic: &str,
) -> Result<Option<TopicSettings>, CheckpointError> {
    let results = admin
        .describe_configs([&ResourceSpecifier::Topic(topic)], &admin_options())
        .await
        .map_err(|e| kafka_error(&format!("cannot describe checkpoint topic {topic}: {e}")))?;
    match results.into_iter().next() {
        Some(Ok(resource)) => {
            let value = |name: &str| resource.get(name).and_then(|e| e.value.clone());
            Ok(Some(TopicSettings {
                policy: Some(value("cleanup.policy").unwrap_or_else(|| "delete".into())),
                segment_bytes: value("segment.bytes").and_then(|v| v.parse().ok()),
                segment_ms: value("segment.ms").and_then(|v| v.parse().ok()),
            }))
        }
        Some(Err(RDKafkaErrorCode::UnknownTopicOrPartition)) => Ok(None),
        Some(Err(code)) => Err(kafka_error(&format!("cannot describe checkpoint topic {topic}: {code}"))),
        None => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::checkpoint::SourceIdentity;
    use crate::core::position::{Lsn, Position};
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::Mutex;

    /// A producer that writes what is asked of it to a shared log; its commits take 50 ms.
    struct Logged {
        turn: usize,
        log: Log,
        fail_commit: AtomicBool,
    }

    impl Logged {
        fn note(&self, what: &str) {
            self.log.lock().unwrap().push(format!("{what}{}", self.turn));
        }
    }

    impl TxnProducer for Logged {
        fn init(&self) -> rdkafka::error::KafkaResult<()> {
            self.note("init");
            Ok(())
        }
        fn begin(&self) -> rdkafka::error::KafkaResult<()> {
            self.note("begin");
            Ok(())
        }
        fn send_checkpoint(&self, _: &str, _: &[u8], _: &[u8]) -> rdkafka::error::KafkaResult<()> {
            self.note("checkpoint");
            Ok(())
        }
        fn await_acks(&self) {
            self.note("acks")
        }
        fn commit(&self) -> rdkafka::error::KafkaResult<()> {
            std::thread::sleep(Duration::from_millis(50));
            if self.fail_commit.load(Ordering::SeqCst) {
                self.note("failed");
                return Err(KafkaError::Flush(RDKafkaErrorCode::OperationTimedOut));
            }
            self.note("commit");
            Ok(())
        }
        fn abort(&self) -> rdkafka::error::KafkaResult<()> {
            self.note("abort");
            Ok(())
        }
    }

    type Log = Arc<Mutex<Vec<String>>>;

    fn store(turns: usize) -> (KafkaCheckpointStore, Vec<Arc<Logged>>, Log) {
        let text = "name = \"c\"\n[source]\ntype = \"postgres\"\nurl = \"postgres://u@h/db\"\ntables = [\"public.t\"]\n[sink]\ntype = \"kafka\"\nbrokers = \"k:9092\"\n[checkpoint]\nstore = \"kafka\"\n";
        let cfg = crate::config::parse(std::path::Path::new("c.toml"), text).expect("config");
        let log = Arc::new(Mutex::new(Vec::new()));
        let producers: Vec<Arc<Logged>> = (0..turns)
            .map(|turn| Arc::new(Logged { turn, log: log.clone(), fail_commit: AtomicBool::new(false) }))
            .collect();
        let turns = Turns {
            producers: producers.iter().map(|p| p.clone() as Arc<dyn TxnProducer>).collect(),
            active: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        };
        let mut store = KafkaCheckpointStore::new(&cfg, cfg.kafka_store().expect("kafka store"), turns);
        store.loaded = true;
        (store, producers, log)
    }

    fn at(lsn: u64) -> Checkpoint {
        Checkpoint {
            version: Checkpoint::VERSION,
            connector: "c".into(),
            position: Position::Postgres { lsn: Lsn(lsn) },
            source: SourceIdentity::Mysql { flavor: "mariadb".into(), server: "1".into() },
            snapshot: None,
        }
    }

    #[test]
    fn producers_take_turns_and_commit_in_order_beside_the_next_one() {
        let (mut store, _, log) = store(3);
        let started = Instant::now();
        assert!(store.save(&at(10)).unwrap());
        assert!(started.elapsed() < Duration::from_millis(40), "the commit runs in the background");
        assert_eq!(store.turns.active(), 1, "the next producer takes the records");
        assert!(store.save(&at(20)).unwrap());
        assert!(store.save(&at(30)).unwrap());
        assert!(!store.save(&at(30)).unwrap(), "not ahead: the records commit, no checkpoint record");
        assert_eq!(store.turns.active(), 1, "three turns, then the first again");
        assert_eq!(store.settled(true).unwrap(), Some((at(30), true)), "the last two commits, merged");
        let log = log.lock().unwrap().clone();
        assert_eq!(
            log,
            [
                "checkpoint0",
                "acks0", // turn 0 handed on once acknowledged
                "checkpoint1",
                "acks1",
                "commit0",
                "begin0", // turn 1 waits for turn 0's commit
                "checkpoint2",
                "acks2",
                "commit1",
                "begin1",
                "acks0",
                "commit2",
                "begin2",
                "commit0",
                "begin0",
            ],
            "each producer's records acknowledged before the next one takes any; commits in turn order"
        );
        assert_eq!(store.load().unwrap(), Some(at(30)));
    }

    #[test]
    fn a_failed_background_commit_is_reported_and_its_checkpoint_forgotten() {
        let (mut store, producers, log) = store(2);
        assert!(store.save(&at(10)).unwrap());
        assert_eq!(store.settled(true).unwrap(), Some((at(10), true)));
        producers[1].fail_commit.store(true, Ordering::SeqCst);
        assert!(store.save(&at(20)).unwrap());
        let err = store.settled(true).expect_err("the commit failed");
        assert!(matches!(err, CheckpointError::Kafka(_)), "{err}");
        assert!(log.lock().unwrap().ends_with(&["failed1".to_string(), "abort1".into(), "begin1".into()]));
        assert_eq!(store.load().unwrap(), Some(at(10)), "what failed is read again");
        producers[1].fail_commit.store(false, Ordering::SeqCst);
        assert!(store.save(&at(20)).unwrap(), "the lost checkpoint is ahead again");
    }

    fn settings(bytes: Option<u64>, ms: Option<u64>) -> TopicSettings {
        TopicSettings { policy: Some("compact".into()), segment_bytes: bytes, segment_ms: ms }
    }

    #[test]
    fn long_open_segments_get_a_note_with_the_fix() {
        let note = long_segments("c.checkpoints", &settings(Some(1 << 30), Some(604_800_000))).expect("a note");
        assert!(note.contains("segment.bytes=1073741824"), "{note}");
        assert!(note.contains("--entity-name c.checkpoints --add-config segment.bytes=16777216"), "{note}");
        assert_eq!(long_segments("t", &settings(Some(16 << 20), Some(604_800_000))), None, "cdcd's own");
        assert_eq!(long_segments("t", &settings(Some(1 << 30), Some(600_000))), None, "rolled every 10 minutes");
        assert_eq!(long_segments("t", &settings(None, None)), None);
    }
}
