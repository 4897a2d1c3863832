//! Table selection shared by every source: include patterns (`schema.table` with `*`) and the
//! message-key columns a user names for a table (`key_columns`, Debezium's
//! `message.key.columns`), which replace the primary key as the Kafka key.

use std::collections::BTreeMap;

/// `*` matches any run of characters; everything else literally.
pub fn glob(pattern: &str, s: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    if parts.len() == 1 {
        return pattern == s;
    }
    let mut rest = s;
    for (i, part) in parts.iter().enumerate() {
        if i == 0 {
            match rest.strip_prefix(part) {
                Some(r) => rest = r,
                None => return false,
            }
        } else if i == parts.len() - 1 {
            return rest.ends_with(part);
        } else {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
    }
    true
}

/// Whether `schema.table` matches one of the `schema.table` patterns.
pub fn included(patterns: &[String], schema: &str, table: &str) -> bool {
    patterns.iter().any(|p| pattern_matches(p, schema, table))
}

fn pattern_matches(pattern: &str, schema: &str, table: &str) -> bool {
    let (sp, tp) = pattern.split_once('.').unwrap_or(("*", pattern));
    glob(sp, schema) && glob(tp, table)
}

/// Configured key columns, by table pattern; the first matching pattern (in name order) wins.
#[derive(Clone, Debug, Default)]
pub struct KeyColumns(Vec<(String, Vec<String>)>);

impl KeyColumns {
    pub fn new(map: &BTreeMap<String, Vec<String>>) -> Self {
        KeyColumns(map.iter().map(|(p, c)| (p.clone(), c.clone())).collect())
    }

    /// The configured key columns of `schema.table`, if any.
    pub fn configured(&self, schema: &str, table: &str) -> Option<&[String]> {
        self.0.iter().find(|(p, _)| pattern_matches(p, schema, table)).map(|(_, c)| c.as_slice())
    }

    /// Indexes of the key columns of `schema.table` among `columns`: the configured ones, else
    /// `default` (the primary key). A configured column the table lacks is an error naming it.
    pub fn resolve(
        &self,
        schema: &str,
        table: &str,
        columns: &[&str],
        default: Vec<usize>,
    ) -> Result<Vec<usize>, String> {
        let Some(names) = self.configured(schema, table) else { return Ok(default) };
        names
            .iter()
            .map(|n| {
                columns.iter().position(|c| c == n).ok_or_else(|| {
                    format!(
                        "source.key_columns names column `{n}` for {schema}.{table}, which has no such column (it has: {}); fix key_columns",
                        columns.join(", ")
                    )
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_matches_like_the_docs_say() {
        assert!(glob("*", "anything"));
        assert!(glob("orders", "orders"));
        assert!(!glob("orders", "orders2"));
        assert!(glob("ord*", "orders"));
        assert!(glob("*_log", "audit_log"));
        assert!(glob("a*b*c", "aXXbYYc"));
        assert!(!glob("a*b*c", "aXXcYYb"));
        assert!(included(&["public.*".into()], "public", "t"));
        assert!(!included(&["public.*".into()], "other", "t"));
    }

    #[test]
    fn configured_key_columns_replace_the_primary_key_and_must_exist() {
        let keys =
            KeyColumns::new(&BTreeMap::from([("public.*_history".to_string(), vec!["tid".into(), "aid".into()])]));
        let cols = ["tid", "bid", "aid", "delta"];
        assert_eq!(keys.resolve("public", "pgbench_history", &cols, vec![]), Ok(vec![0, 2]));
        assert_eq!(keys.resolve("public", "accounts", &cols, vec![1]), Ok(vec![1]), "unmatched tables keep their key");
        let err = keys.resolve("public", "x_history", &["id"], vec![]).unwrap_err();
        assert!(err.contains("`tid`") && err.contains("x_history") && err.contains("it has: id"), "{err}");
    }
}
