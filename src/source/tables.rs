//! Table selection shared by every source: include patterns (`schema.table` with `*`) minus
//! exclude patterns ([`TableSelection`]), and the message-key columns a user names for a table (`key_columns`, Debezium's
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

/// The tables a connector captures: those matching one of `source.tables` and none of
/// `source.tables_exclude` (Debezium's `table.include.list` beside `table.exclude.list`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(from = "Vec<String>")]
pub struct TableSelection {
    pub include: Vec<String>,
    /// Filled from `source.tables_exclude` when the configuration is loaded.
    pub exclude: Vec<String>,
}

impl From<Vec<String>> for TableSelection {
    fn from(include: Vec<String>) -> Self {
        TableSelection { include, exclude: Vec::new() }
    }
}

impl TableSelection {
    pub fn new(include: Vec<String>, exclude: Vec<String>) -> Self {
        TableSelection { include, exclude }
    }

    /// Whether `schema.table` is captured.
    pub fn matches(&self, schema: &str, table: &str) -> bool {
        self.include.iter().any(|p| pattern_matches(p, schema, table)) && !self.excludes(schema, table)
    }

    /// Whether an exclude pattern names `schema.table`.
    pub fn excludes(&self, schema: &str, table: &str) -> bool {
        self.exclude.iter().any(|p| pattern_matches(p, schema, table))
    }

    /// For `cdcd check`: ` (tables_exclude [...] left out)`, or nothing.
    pub fn exclude_note(&self) -> String {
        if self.exclude.is_empty() {
            String::new()
        } else {
            format!(" (tables_exclude {:?} left out)", self.exclude)
        }
    }

    /// Only the include patterns with a `*`: the ones that can match a table created later.
    pub fn wildcards(&self) -> TableSelection {
        let include = self.include.iter().filter(|p| p.contains('*')).cloned().collect();
        TableSelection { include, exclude: self.exclude.clone() }
    }
}

impl std::fmt::Display for TableSelection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.include)?;
        if !self.exclude.is_empty() {
            write!(f, " except {:?}", self.exclude)?;
        }
        Ok(())
    }
}

/// Whether `schema.table` is captured by `selection`.
pub fn included(selection: &TableSelection, schema: &str, table: &str) -> bool {
    selection.matches(schema, table)
}

/// Whether `schema.table` matches the one pattern `pattern`.
pub fn pattern_matches(pattern: &str, schema: &str, table: &str) -> bool {
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
        let public = TableSelection::from(vec!["public.*".to_string()]);
        assert!(included(&public, "public", "t"));
        assert!(!included(&public, "other", "t"));
    }

    #[test]
    fn exclude_patterns_take_tables_out_of_the_include_patterns() {
        let sel = TableSelection::new(vec!["public.*".into(), "audit.log".into()], vec!["public.tmp_*".into()]);
        assert!(sel.matches("public", "orders") && sel.matches("audit", "log"));
        assert!(!sel.matches("public", "tmp_import"), "excluded");
        assert!(!sel.matches("other", "orders"), "never included");
        assert_eq!(sel.wildcards().include, vec!["public.*".to_string()]);
        assert!(!sel.wildcards().matches("public", "tmp_x"), "the exclude list stays with the wildcards");
        assert_eq!(sel.to_string(), r#"["public.*", "audit.log"] except ["public.tmp_*"]"#);
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
