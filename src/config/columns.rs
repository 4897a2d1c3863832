//! The `[columns]` section: which columns of the captured tables are published, and which are
//! masked (Debezium's `column.include.list` / `column.exclude.list`, `column.mask.with.N.chars`
//! and `column.mask.hash.<algorithm>.with.salt.<salt>`).

use serde::Deserialize;

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnsConfig {
    /// Only these columns are published (`schema.table.column` patterns, `*` wildcard; MySQL:
    /// `database.table.column`). Key columns stay in the Kafka key whatever the lists say.
    #[serde(default)]
    pub include: Vec<String>,
    /// These columns are not published (not together with `include`).
    #[serde(default)]
    pub exclude: Vec<String>,
    /// Columns published masked, in every record, key and encoding.
    #[serde(default)]
    pub mask: Vec<MaskConfig>,
}

#[derive(Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskConfig {
    /// `schema.table.column` patterns.
    pub columns: Vec<String>,
    /// A fixed mask: this many `*`.
    pub chars: Option<u32>,
    /// A salted hash, hex: `"SHA-256"`, `"SHA-384"` or `"SHA-512"`.
    pub hash: Option<String>,
    /// The hash's salt (required with `hash`; `${file:...}` keeps it out of the file). Masked in
    /// every log like a password.
    pub salt: Option<String>,
}

impl std::fmt::Debug for MaskConfig {
    // Never the salt.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MaskConfig")
            .field("columns", &self.columns)
            .field("chars", &self.chars)
            .field("hash", &self.hash)
            .field("salt", &self.salt.as_ref().map(|_| "***"))
            .finish()
    }
}

impl ColumnsConfig {
    /// Checks the lists and masks; the error names the key and says what to write.
    pub fn validate(&self) -> Result<(), (String, String)> {
        if !self.include.is_empty() && !self.exclude.is_empty() {
            return Err((
                "columns.include".into(),
                "set columns.include or columns.exclude, not both (as Debezium)".into(),
            ));
        }
        for (key, list) in [("columns.include", &self.include), ("columns.exclude", &self.exclude)] {
            check_patterns(key, list)?;
        }
        for (n, m) in self.mask.iter().enumerate() {
            let key = format!("columns.mask[{n}]");
            if m.columns.is_empty() {
                return Err((format!("{key}.columns"), "list one or more `schema.table.column` patterns".into()));
            }
            check_patterns(&format!("{key}.columns"), &m.columns)?;
            match (m.chars, &m.hash, &m.salt) {
                (Some(n), None, None) if (1..=255).contains(&n) => {}
                (Some(_), None, None) => return Err((format!("{key}.chars"), "must be 1 to 255".into())),
                (None, Some(h), Some(salt)) => {
                    if hash_name(h).is_none() {
                        return Err((
                            format!("{key}.hash"),
                            format!("`{h}` is not one of \"SHA-256\", \"SHA-384\", \"SHA-512\""),
                        ));
                    }
                    if salt.is_empty() {
                        return Err((format!("{key}.salt"), "must not be empty".into()));
                    }
                }
                (None, Some(_), None) => {
                    return Err((
                        format!("{key}.salt"),
                        "a hash needs a salt (e.g. salt = \"${file:/run/secrets/mask-salt}\")".into(),
                    ))
                }
                _ => {
                    return Err((key, "give either chars = N (a fixed mask) or hash = \"SHA-256\" with a salt".into()))
                }
            }
        }
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.include.is_empty() && self.exclude.is_empty() && self.mask.is_empty()
    }

    /// What `cdcd check` says about these settings (never the salt).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.include.is_empty() {
            parts.push(format!("only {:?} published", self.include));
        }
        if !self.exclude.is_empty() {
            parts.push(format!("{:?} not published", self.exclude));
        }
        for m in &self.mask {
            match (m.chars, &m.hash) {
                (Some(n), _) => parts.push(format!("{:?} masked as {n} `*`", m.columns)),
                (None, Some(h)) => parts.push(format!("{:?} masked as a salted {h} hash", m.columns)),
                _ => {}
            }
        }
        if parts.is_empty() {
            "columns: every column published as it is".into()
        } else {
            format!("columns: {}", parts.join("; "))
        }
    }
}

/// The canonical name of a supported hash, from what a user may write (`sha256`, `SHA-256`).
pub fn hash_name(name: &str) -> Option<&'static str> {
    match name.to_ascii_uppercase().replace('-', "").as_str() {
        "SHA256" => Some("SHA-256"),
        "SHA384" => Some("SHA-384"),
        "SHA512" => Some("SHA-512"),
        _ => None,
    }
}

fn check_patterns(key: &str, list: &[String]) -> Result<(), (String, String)> {
    for p in list {
        let parts: Vec<&str> = p.split('.').collect();
        if parts.len() != 3 || parts.iter().any(|s| s.is_empty()) {
            return Err((
                key.to_string(),
                format!("`{p}` is not `schema.table.column` (`database.table.column` for MySQL; `*` as a wildcard)"),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mask(chars: Option<u32>, hash: Option<&str>, salt: Option<&str>) -> ColumnsConfig {
        ColumnsConfig {
            mask: vec![MaskConfig {
                columns: vec!["public.users.ssn".into()],
                chars,
                hash: hash.map(String::from),
                salt: salt.map(String::from),
            }],
            ..Default::default()
        }
    }

    #[test]
    fn settings_are_checked_and_described_without_the_salt() {
        assert!(mask(Some(6), None, None).validate().is_ok());
        assert!(mask(None, Some("sha256"), Some("pepper")).validate().is_ok());
        assert_eq!(mask(None, Some("SHA-256"), None).validate().unwrap_err().0, "columns.mask[0].salt");
        assert_eq!(mask(None, Some("MD5"), Some("x")).validate().unwrap_err().0, "columns.mask[0].hash");
        assert_eq!(mask(Some(6), Some("SHA-256"), Some("x")).validate().unwrap_err().0, "columns.mask[0]");
        assert_eq!(mask(Some(0), None, None).validate().unwrap_err().0, "columns.mask[0].chars");
        let both = ColumnsConfig { include: vec!["a.b.c".into()], exclude: vec!["a.b.d".into()], ..Default::default() };
        assert_eq!(both.validate().unwrap_err().0, "columns.include");
        let bad = ColumnsConfig { exclude: vec!["users.pw".into()], ..Default::default() };
        assert!(bad.validate().unwrap_err().1.contains("`users.pw` is not `schema.table.column`"));
        let text = mask(None, Some("SHA-256"), Some("pepper")).describe();
        assert_eq!(text, r#"columns: ["public.users.ssn"] masked as a salted SHA-256 hash"#);
        assert!(!text.contains("pepper"));
    }
}
