//! `[[routes]]`: several tables into one topic (Debezium's `ByLogicalTableRouter`), with the
//! table's own topic name in the key so rows of different tables stay apart.

use serde::Deserialize;

/// The key field Debezium's router adds.
pub const DEFAULT_KEY_FIELD: &str = "__dbz__physicalTableIdentifier";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// `schema.table` patterns (`database.table` for MySQL), `*` wildcard.
    pub tables: Vec<String>,
    /// The topic their changes go to (the whole name; `topic_prefix` is not added).
    pub topic: String,
    /// The field the key gains, holding the topic the table would have had; `""`: none (the
    /// tables' keys must then not collide).
    pub key_field: Option<String>,
}

impl RouteConfig {
    pub fn key_field(&self) -> Option<&str> {
        match self.key_field.as_deref() {
            None => Some(DEFAULT_KEY_FIELD),
            Some("") => None,
            Some(f) => Some(f),
        }
    }
}

/// Checks every route; `reserved`: topics cdcd writes for itself (checkpoints, transaction
/// metadata, dead letters), which no route may take. The error names the key.
pub fn validate(routes: &[RouteConfig], reserved: &[String]) -> Result<(), (String, String)> {
    for (n, r) in routes.iter().enumerate() {
        if reserved.contains(&r.topic) {
            return Err((
                format!("routes[{n}].topic"),
                format!("`{}` is a topic cdcd writes for itself; choose another", r.topic),
            ));
        }
        if r.tables.is_empty() || r.tables.iter().any(|t| t.split('.').count() != 2 || t.split('.').any(str::is_empty))
        {
            return Err((
                format!("routes[{n}].tables"),
                "list `schema.table` patterns (`database.table` for MySQL)".into(),
            ));
        }
        let legal = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
        if r.topic.is_empty() || r.topic.len() > 249 || !r.topic.chars().all(legal) {
            return Err((
                format!("routes[{n}].topic"),
                "a Kafka topic name: 1-249 of letters, digits, `.`, `_`, `-`".into(),
            ));
        }
    }
    Ok(())
}
