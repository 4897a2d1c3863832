//! Where a connector keeps its checkpoint (`[checkpoint]`) and what its sink promises
//! (`[sink] delivery`): the local file and at-least-once by default; or a compacted Kafka topic,
//! several processes of which one runs, and exactly-once through Kafka transactions (the two
//! go together: the transactional producer is what fences a replaced process).

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::{ConfigError, ConnectorConfig, KafkaSinkConfig, SinkConfig};
use crate::core::txn_meta::{self, MetaFormat};

/// `[checkpoint]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointConfig {
    /// `file` (default) or `kafka`.
    #[serde(default)]
    pub store: StoreName,
    /// File store: the directory for this connector's checkpoint; default
    /// `$STATE_DIRECTORY/<name>` or `/var/lib/cdcd/<name>`. Kafka store: a file checkpoint found
    /// there is imported when the topic holds none yet.
    pub path: Option<PathBuf>,
    /// How often confirmed progress is written (and reported to the source), in milliseconds.
    pub interval_ms: Option<u64>,
    /// Kafka store: the compacted topic; default `<topic_prefix>.checkpoints`.
    pub topic: Option<String>,
    /// Kafka store: the consumer group whose owner of the topic's partition 0 is the active
    /// process; default `cdcd-<name>`.
    pub group: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreName {
    #[default]
    File,
    /// A compacted topic on the sink's brokers; any number of processes, one active.
    Kafka,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Delivery {
    /// A crash re-sends what was delivered after the last checkpoint.
    #[default]
    AtLeastOnce,
    /// Records and the checkpoint that covers them commit in one Kafka transaction: a
    /// `read_committed` consumer sees each change once.
    ExactlyOnce,
}

/// Exactly-once commits this often by default while the connector keeps up: a record waits at
/// most this long (plus the commit itself) before a `read_committed` consumer can see it. A
/// backlog stretches it (see `pipeline::pacing`), so a short one costs no drain throughput. An
/// idle connector does not commit. Commits run beside the source (producers take turns, see
/// `sink::kafka::transactions::Turns`), so a short interval does not slow it. Measured at 1,000
/// commits/s on Kafka 2.3: p50 about 7.5 ms with 5, 10 ms with 10.
const DEFAULT_COMMIT_INTERVAL: Duration = Duration::from_millis(5);

impl ConnectorConfig {
    pub fn checkpoint_dir(&self) -> PathBuf {
        match &self.checkpoint.path {
            Some(p) => p.clone(),
            None => {
                let base =
                    std::env::var_os("STATE_DIRECTORY").map(PathBuf::from).unwrap_or_else(|| "/var/lib/cdcd".into());
                base.join(&self.name)
            }
        }
    }

    pub fn checkpoint_interval(&self) -> Duration {
        Duration::from_millis(self.checkpoint.interval_ms.unwrap_or(1000))
    }

    /// The Kafka sink's settings when the checkpoint lives in Kafka (validated to be so).
    pub fn kafka_store(&self) -> Option<&KafkaSinkConfig> {
        match (&self.sink, self.checkpoint.store) {
            (SinkConfig::Kafka(k), StoreName::Kafka) => Some(k),
            _ => None,
        }
    }

    pub fn checkpoint_topic(&self) -> String {
        self.checkpoint.topic.clone().unwrap_or_else(|| format!("{}.checkpoints", self.topic_prefix()))
    }

    pub fn leader_group(&self) -> String {
        self.checkpoint.group.clone().unwrap_or_else(|| format!("cdcd-{}", self.name))
    }

    /// What the sink promises: as set, else exactly-once with the Kafka store (whose fencing
    /// needs the transactional producer) and at-least-once with the file store.
    pub fn delivery(&self) -> Delivery {
        match (&self.sink, self.checkpoint.store) {
            (SinkConfig::Kafka(k), store) => k.delivery.unwrap_or(match store {
                StoreName::Kafka => Delivery::ExactlyOnce,
                StoreName::File => Delivery::AtLeastOnce,
            }),
            (SinkConfig::Stdout(_), _) => Delivery::AtLeastOnce,
        }
    }

    /// The transactional id every process of this connector shares: the broker lets only the
    /// newest producer with it write, which is what fences a replaced process.
    pub fn transactional_id(&self) -> String {
        match &self.sink {
            SinkConfig::Kafka(k) => k.transactional_id.clone(),
            SinkConfig::Stdout(_) => None,
        }
        .unwrap_or_else(|| format!("cdcd-{}", self.name))
    }

    /// Transaction metadata's record format and topic, when it is on. Called once per run: with
    /// Avro, the format carries the registry ids the emitter learns for the END sender, so both
    /// must get clones of the same one.
    pub fn transaction_metadata(&self) -> Option<(MetaFormat, String)> {
        match &self.sink {
            SinkConfig::Kafka(k) if k.transaction_metadata => {
                let format = match self.encode() {
                    crate::core::envelope::Encode::DebeziumJson { schemas: true } => MetaFormat::Json { schemas: true },
                    crate::core::envelope::Encode::Avro { .. } => MetaFormat::avro(),
                    _ => MetaFormat::Json { schemas: false },
                };
                Some((format, txn_meta::topic(self.topic_prefix())))
            }
            _ => None,
        }
    }

    /// How often the exactly-once sink commits its transaction.
    pub fn commit_interval(&self) -> Duration {
        match &self.sink {
            SinkConfig::Kafka(k) => k.commit_interval_ms.map(Duration::from_millis),
            SinkConfig::Stdout(_) => None,
        }
        .unwrap_or(DEFAULT_COMMIT_INTERVAL)
    }
}

pub(super) fn validate(cfg: &ConnectorConfig, path: &Path) -> Result<(), ConfigError> {
    let invalid = |key: &str, message: &str| ConfigError::invalid(path, key, message);
    if cfg.checkpoint.interval_ms == Some(0) {
        return Err(invalid("checkpoint.interval_ms", "must be at least 1"));
    }
    let kafka = match &cfg.sink {
        SinkConfig::Kafka(k) => Some(k),
        SinkConfig::Stdout(_) => None,
    };
    if cfg.checkpoint.store == StoreName::Kafka && kafka.is_none() {
        return Err(invalid(
            "checkpoint.store",
            "\"kafka\" keeps the checkpoint on the sink's brokers, so it needs [sink] type = \"kafka\"",
        ));
    }
    if cfg.checkpoint.store == StoreName::File && (cfg.checkpoint.topic.is_some() || cfg.checkpoint.group.is_some()) {
        return Err(invalid(
            "checkpoint.topic",
            "`topic` and `group` belong to store = \"kafka\"; add that, or remove them",
        ));
    }
    for (key, value) in [("checkpoint.topic", &cfg.checkpoint.topic), ("checkpoint.group", &cfg.checkpoint.group)] {
        if value.as_deref().is_some_and(|v| v.trim().is_empty()) {
            return Err(invalid(key, "must not be empty (leave it out for the default)"));
        }
    }
    let Some(k) = kafka else { return Ok(()) };
    if k.transaction_metadata && k.dead_letter_topic.is_some() {
        return Err(invalid(
            "sink.transaction_metadata",
            "is not supported with dead_letter_topic (a diverted record, or a diverted END, would break END's promise that the whole transaction is readable at the offsets it names); remove one of them",
        ));
    }
    if k.commit_interval_ms == Some(0) {
        return Err(invalid("sink.commit_interval_ms", "must be at least 1"));
    }
    if cfg.checkpoint.store == StoreName::Kafka && k.delivery == Some(Delivery::AtLeastOnce) {
        return Err(invalid(
            "sink.delivery",
            "the Kafka store runs exactly-once: a replaced process is kept from writing by the transactional producer, which an at-least-once sink does not use (its queued records could still arrive after the new process's). Remove `delivery`, or use the file store",
        ));
    }
    let delivery = cfg.delivery();
    if delivery == Delivery::AtLeastOnce && (k.transactional_id.is_some() || k.commit_interval_ms.is_some()) {
        return Err(invalid(
            "sink.delivery",
            "`transactional_id` and `commit_interval_ms` belong to delivery = \"exactly-once\"; add that, or remove them",
        ));
    }
    if delivery == Delivery::ExactlyOnce {
        if cfg.checkpoint.store != StoreName::Kafka {
            return Err(invalid(
                "sink.delivery",
                "\"exactly-once\" commits the checkpoint in the same Kafka transaction as the records, so it needs [checkpoint] store = \"kafka\"",
            ));
        }
        if k.dead_letter_topic.is_some() {
            return Err(invalid(
                "sink.dead_letter_topic",
                "is not supported with delivery = \"exactly-once\" yet (a diverted record would not be part of the transaction); remove it: a refused record then stops the connector with its name",
            ));
        }
        if k.transactional_id.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(invalid("sink.transactional_id", "must not be empty (leave it out for cdcd-<name>)"));
        }
        for key in ["transactional.id", "isolation.level"] {
            if k.properties.contains_key(key) {
                return Err(invalid(
                    &format!("sink.properties.{key}"),
                    "is set by cdcd under exactly-once (use sink.transactional_id for the id)",
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    const BASE: &str = r#"
name = "demo"
[source]
type = "postgres"
url = "postgres://u:p@127.0.0.1:5432/app"
tables = ["public.*"]
[sink]
type = "kafka"
brokers = "127.0.0.1:9092"
"#;

    fn p(extra_sink: &str, checkpoint: &str) -> Result<ConnectorConfig, ConfigError> {
        let text = format!("{BASE}{extra_sink}\n[checkpoint]\n{checkpoint}\n");
        parse(Path::new("c.toml"), &text)
    }

    #[test]
    fn defaults_are_the_file_store_and_at_least_once() {
        let c = p("", "").unwrap();
        assert_eq!(c.checkpoint.store, StoreName::File);
        assert_eq!(c.delivery(), Delivery::AtLeastOnce);
        assert!(c.kafka_store().is_none());
        let c = p("", "store = \"kafka\"").unwrap();
        assert_eq!(c.delivery(), Delivery::ExactlyOnce, "the Kafka store's default");
    }

    #[test]
    fn exactly_once_with_the_kafka_store_and_its_defaults() {
        let c = p("delivery = \"exactly-once\"", "store = \"kafka\"").unwrap();
        assert_eq!(c.delivery(), Delivery::ExactlyOnce);
        assert_eq!(c.checkpoint_topic(), "demo.checkpoints");
        assert_eq!(c.leader_group(), "cdcd-demo");
        assert_eq!(c.transactional_id(), "cdcd-demo");
        assert_eq!(c.commit_interval(), DEFAULT_COMMIT_INTERVAL);
        let c = p(
            "delivery = \"exactly-once\"\ntransactional_id = \"tx\"\ncommit_interval_ms = 7",
            "store = \"kafka\"\ntopic = \"cp\"\ngroup = \"g\"",
        )
        .unwrap();
        assert_eq!((c.checkpoint_topic().as_str(), c.leader_group().as_str()), ("cp", "g"));
        assert_eq!((c.transactional_id().as_str(), c.commit_interval()), ("tx", Duration::from_millis(7)));
    }

    #[test]
    fn combinations_that_cannot_hold_their_promise_are_refused_by_name() {
        let cases = [
            ("delivery = \"exactly-once\"", "", "store = \"kafka\""),
            ("delivery = \"exactly-once\"\ndead_letter_topic = \"dlq\"", "store = \"kafka\"", "dead_letter_topic"),
            ("transactional_id = \"x\"", "", "exactly-once"),
            ("delivery = \"at-least-once\"", "store = \"kafka\"", "runs exactly-once"),
            ("", "topic = \"cp\"", "store = \"kafka\""),
            ("delivery = \"exactly-once\"\ncommit_interval_ms = 0", "store = \"kafka\"", "at least 1"),
            ("delivery = \"at-most-once\"", "", "unknown variant"),
        ];
        for (sink, checkpoint, expect) in cases {
            let err = p(sink, checkpoint).unwrap_err().to_string();
            assert!(err.contains(expect), "{sink} / {checkpoint}: {err}");
        }
        let stdout = BASE.replace("type = \"kafka\"\nbrokers = \"127.0.0.1:9092\"", "type = \"stdout\"");
        let err = parse(Path::new("c.toml"), &format!("{stdout}\n[checkpoint]\nstore = \"kafka\"\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("needs [sink] type = \"kafka\""), "{err}");
    }
}
