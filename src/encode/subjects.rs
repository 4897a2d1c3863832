//! Which registry ids a table's Avro records carry: each table version's key and envelope
//! schemas are converted to Avro and registered under the subjects the naming strategy gives,
//! once; later records of that version find their ids in a cache without a registry call.
//! A new table version (a column added) registers a new schema version under the same subjects.

use std::collections::HashMap;

use serde::Deserialize;

use super::avro::avro_schema;
use super::registry::{RegistryClient, RegistryError};
use crate::core::connect::{Schema, TableSchema};

/// How subjects are named, as Confluent serializers' `subject.name.strategy`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubjectNameStrategy {
    /// `TopicNameStrategy`: `<topic>-key`, `<topic>-value` (Confluent's default).
    #[default]
    Topic,
    /// `RecordNameStrategy`: the record's full name (`<prefix>.<schema>.<table>.Envelope`).
    Record,
    /// `TopicRecordNameStrategy`: `<topic>-<record full name>`.
    TopicRecord,
}

/// The registry ids of one table version's schemas on one topic.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SchemaIds {
    /// `None` for a table without key (its records have a null Kafka key).
    pub key: Option<u32>,
    pub value: u32,
}

/// Registers schemas on first use and remembers their ids.
pub struct SchemaIdCache {
    registry: RegistryClient,
    strategy: SubjectNameStrategy,
    /// topic -> table version fingerprint -> ids. Looked up by `&str` so a hit allocates nothing.
    ids: HashMap<String, HashMap<u64, SchemaIds>>,
    /// The last answer: consecutive events mostly belong to one table, and comparing a topic
    /// is cheaper than hashing it.
    last: Option<(String, u64, SchemaIds)>,
}

impl SchemaIdCache {
    pub fn new(registry: RegistryClient, strategy: SubjectNameStrategy) -> Self {
        SchemaIdCache { registry, strategy, ids: HashMap::new(), last: None }
    }

    /// The ids of `schema`'s key and envelope on `topic`, registering them when first seen.
    pub async fn ids(&mut self, topic: &str, schema: &TableSchema) -> Result<SchemaIds, RegistryError> {
        if let Some((t, f, ids)) = &self.last {
            if *f == schema.fingerprint() && t == topic {
                return Ok(*ids);
            }
        }
        if let Some(&ids) = self.ids.get(topic).and_then(|m| m.get(&schema.fingerprint())) {
            self.remember(topic, schema, ids);
            return Ok(ids);
        }
        let key = match &schema.key {
            Some(k) => Some(self.register(topic, "key", k).await?),
            None => None,
        };
        let value = self.register(topic, "value", &schema.envelope).await?;
        let ids = SchemaIds { key, value };
        self.ids.entry(topic.to_string()).or_default().insert(schema.fingerprint(), ids);
        self.remember(topic, schema, ids);
        Ok(ids)
    }

    /// The ids of a fixed key and value schema on `topic` (the transaction topic's), registered
    /// each time it is called: the caller keeps them.
    pub async fn ids_of(&mut self, topic: &str, key: &Schema, value: &Schema) -> Result<SchemaIds, RegistryError> {
        let key = self.register(topic, "key", key).await?;
        let value = self.register(topic, "value", value).await?;
        Ok(SchemaIds { key: Some(key), value })
    }

    fn remember(&mut self, topic: &str, schema: &TableSchema, ids: SchemaIds) {
        match &mut self.last {
            Some((t, f, i)) => {
                t.clear();
                t.push_str(topic);
                (*f, *i) = (schema.fingerprint(), ids);
            }
            None => self.last = Some((topic.to_string(), schema.fingerprint(), ids)),
        }
    }

    async fn register(&mut self, topic: &str, part: &str, schema: &Schema) -> Result<u32, RegistryError> {
        let avro = avro_schema(schema).map_err(|e| RegistryError::Config(format!("{topic}-{part}: {e}")))?;
        let full_name = match (avro["namespace"].as_str(), avro["name"].as_str()) {
            (Some(ns), Some(n)) if !ns.is_empty() => format!("{ns}.{n}"),
            (_, Some(n)) => n.to_string(),
            _ => return Err(RegistryError::Config(format!("{topic}-{part}: the Avro schema is not a named record"))),
        };
        let subject = subject_name(self.strategy, topic, part, &full_name);
        self.registry.register(&subject, &avro.to_string()).await
    }
}

/// The subject of a key (`part` = `key`) or value schema under `strategy`.
pub fn subject_name(strategy: SubjectNameStrategy, topic: &str, part: &str, record_full_name: &str) -> String {
    match strategy {
        SubjectNameStrategy::Topic => format!("{topic}-{part}"),
        SubjectNameStrategy::Record => record_full_name.to_string(),
        SubjectNameStrategy::TopicRecord => format!("{topic}-{record_full_name}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_confluents_strategies() {
        let rec = "shop.public.orders.Envelope";
        assert_eq!(
            subject_name(SubjectNameStrategy::Topic, "shop.public.orders", "value", rec),
            "shop.public.orders-value"
        );
        assert_eq!(
            subject_name(SubjectNameStrategy::Topic, "shop.public.orders", "key", rec),
            "shop.public.orders-key"
        );
        assert_eq!(subject_name(SubjectNameStrategy::Record, "t", "value", rec), rec);
        assert_eq!(subject_name(SubjectNameStrategy::TopicRecord, "t", "value", rec), "t-shop.public.orders.Envelope");
    }
}
