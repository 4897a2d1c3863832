//! What happens to each column of a captured table on its way out, from `[columns]`: published
//! as it is, left out, or masked (a fixed run of `*`, or a salted hash so that joins on the
//! column still work). Shared by every source: a source asks [`ColumnRules::rule`] once per
//! column when it builds a table, and writes each cell through [`ColumnRule`].
//!
//! A masked value is masked everywhere a record carries it: `before`, `after` and the Kafka
//! key, in every encoding. Its schema becomes a string.

use std::sync::Arc;

use openssl::hash::{Hasher, MessageDigest};

use crate::config::columns::{hash_name, ColumnsConfig};
use crate::core::connect::{write_null_or_empty, Schema, ValueWriter};
use crate::core::json;
use crate::source::tables::glob;

/// One column's treatment: left out of `before` / `after` or not, and masked or not. A key
/// column stays in the Kafka key even when left out (as in Debezium), masked if a mask names it.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ColumnRule {
    pub dropped: bool,
    pub mask: Mask,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub enum Mask {
    #[default]
    None,
    /// Every non-null value becomes this string.
    Fixed(Arc<str>),
    /// Every non-null value becomes the lower-case hex digest of salt + its text.
    Hash(Arc<SaltedHash>),
}

#[derive(PartialEq)]
pub struct SaltedHash {
    name: &'static str,
    salt: Vec<u8>,
}

impl std::fmt::Debug for SaltedHash {
    // Never the salt.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SaltedHash({})", self.name)
    }
}

impl SaltedHash {
    /// Debezium's hashing strategy V2: the digest of the salt's bytes followed by the value's
    /// text (UTF-8), in lower-case hex.
    pub fn hex(&self, text: &[u8]) -> String {
        let digest = match self.name {
            "SHA-384" => MessageDigest::sha384(),
            "SHA-512" => MessageDigest::sha512(),
            _ => MessageDigest::sha256(),
        };
        let bytes = Hasher::new(digest)
            .and_then(|mut h| {
                h.update(&self.salt)?;
                h.update(text)?;
                h.finish()
            })
            // The digests are built into every OpenSSL; without one nothing is published in clear.
            .map(|d| d.to_vec())
            .unwrap_or_default();
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }
}

/// `[columns]`, ready to answer per column.
#[derive(Clone, Debug, Default)]
pub struct ColumnRules {
    include: Vec<String>,
    exclude: Vec<String>,
    masks: Vec<(Vec<String>, Mask)>,
}

impl ColumnRules {
    pub fn new(cfg: &ColumnsConfig) -> Self {
        let masks = cfg
            .mask
            .iter()
            .filter_map(|m| {
                let rule = match (m.chars, &m.hash, &m.salt) {
                    (Some(n), _, _) => Mask::Fixed("*".repeat(n as usize).into()),
                    (None, Some(h), Some(salt)) => {
                        Mask::Hash(Arc::new(SaltedHash { name: hash_name(h)?, salt: salt.as_bytes().to_vec() }))
                    }
                    _ => return None,
                };
                Some((m.columns.clone(), rule))
            })
            .collect();
        ColumnRules { include: cfg.include.clone(), exclude: cfg.exclude.clone(), masks }
    }

    /// The rule for column `column` of `schema.table` (`database.table` for MySQL). The first
    /// mask that matches applies, also to a left-out column (which a key may still carry).
    pub fn rule(&self, schema: &str, table: &str, column: &str) -> ColumnRule {
        let hit = |p: &String| matches(p, schema, table, column);
        let dropped = (!self.include.is_empty() && !self.include.iter().any(hit)) || self.exclude.iter().any(hit);
        let mask = self.masks.iter().find(|(ps, _)| ps.iter().any(hit)).map_or(Mask::None, |(_, m)| m.clone());
        ColumnRule { dropped, mask }
    }

    /// Refuses a fixed mask on a key column: every row would get the same Kafka key, and
    /// compaction would keep one row of the table.
    pub fn check_key(&self, schema: &str, table: &str, key: &[&str]) -> Result<(), String> {
        match key.iter().find(|c| matches!(self.rule(schema, table, c).mask, Mask::Fixed(_))) {
            Some(c) => Err(format!(
                "column `{c}` of {schema}.{table} is part of the Kafka key and columns.mask gives it a fixed mask, \
                 which would give every row the same key; mask it with a hash (hash = \"SHA-256\", salt = ...) instead"
            )),
            None => Ok(()),
        }
    }
}

/// Case-insensitive, so a pattern written in another case still masks (MySQL's names are
/// case-insensitive; a mask that silently missed would publish the value in clear).
fn matches(pattern: &str, schema: &str, table: &str, column: &str) -> bool {
    let mut parts = pattern.splitn(3, '.');
    let (Some(s), Some(t), Some(c)) = (parts.next(), parts.next(), parts.next()) else { return false };
    let lower = |x: &str| x.to_lowercase();
    glob(&lower(s), &lower(schema)) && glob(&lower(t), &lower(table)) && glob(&lower(c), &lower(column))
}

impl ColumnRule {
    pub fn is_masked(&self) -> bool {
        self.mask != Mask::None
    }

    /// The masked text of a value cdcd's JSON renders as `friendly`; `None` for null. A hash
    /// is over the value's text: a string's characters, a number's digits.
    pub fn masked(&self, friendly: &[u8]) -> Option<String> {
        if friendly == b"null" {
            return None;
        }
        match &self.mask {
            Mask::Fixed(mask) => Some(mask.to_string()),
            Mask::Hash(h) => Some(match serde_json::from_slice::<serde_json::Value>(friendly) {
                Ok(serde_json::Value::String(s)) => h.hex(s.as_bytes()),
                _ => h.hex(friendly),
            }),
            // Not masked: nothing calls this for them.
            Mask::None => None,
        }
    }

    /// Writes the masked form of `friendly` as a JSON value.
    pub fn write_json(&self, friendly: &[u8], out: &mut Vec<u8>) {
        match self.masked(friendly) {
            Some(text) => json::write_str(out, &text),
            None => out.extend_from_slice(b"null"),
        }
    }

    /// Writes the masked form of `friendly` as a typed (string) value of `schema` (a null in a
    /// required field, as a delete's before image has for columns outside the replica
    /// identity, is written as its type's empty value, like any other column's).
    pub fn write_typed(&self, friendly: &[u8], schema: &Schema, w: &mut dyn ValueWriter) {
        match self.masked(friendly) {
            Some(text) => w.string(&text),
            None => write_null_or_empty(w, schema),
        }
    }

    /// The schema of a masked column: a string, optional when the column is.
    pub fn masked_schema(optional: bool) -> Schema {
        let s = Schema::string();
        if optional {
            s.optional()
        } else {
            s
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::columns::MaskConfig;

    fn rules() -> ColumnRules {
        ColumnRules::new(&ColumnsConfig {
            exclude: vec!["public.users.password".into(), "*.*.internal_*".into()],
            mask: vec![
                MaskConfig { columns: vec!["public.users.ssn".into()], chars: Some(4), hash: None, salt: None },
                MaskConfig {
                    columns: vec!["public.users.email".into(), "public.users.ssn".into()],
                    chars: None,
                    hash: Some("SHA-256".into()),
                    salt: Some("pepper".into()),
                },
            ],
            ..Default::default()
        })
    }

    #[test]
    fn rules_per_column_and_the_fixed_mask_is_refused_on_a_key() {
        let r = rules();
        let dropped = ColumnRule { dropped: true, mask: Mask::None };
        assert_eq!(r.rule("public", "users", "password"), dropped);
        assert_eq!(r.rule("shop", "orders", "internal_note"), dropped);
        assert_eq!(r.rule("SHOP", "Orders", "INTERNAL_Note"), dropped, "patterns match in any case");
        assert_eq!(r.rule("public", "users", "name"), ColumnRule::default());
        assert_eq!(r.rule("public", "users", "ssn").mask, Mask::Fixed("****".into()), "the first mask wins");
        assert!(matches!(r.rule("public", "users", "Email").mask, Mask::Hash(_)));
        assert!(r.check_key("public", "users", &["email"]).is_ok());
        assert!(r.check_key("public", "users", &["ssn"]).unwrap_err().contains("same key"));
        let only = ColumnRules::new(&ColumnsConfig {
            include: vec!["public.users.name".into()],
            mask: vec![MaskConfig {
                columns: vec!["public.users.email".into()],
                chars: None,
                hash: Some("SHA-256".into()),
                salt: Some("s".into()),
            }],
            ..Default::default()
        });
        assert_eq!(only.rule("public", "users", "name"), ColumnRule::default());
        assert!(only.rule("public", "orders", "x").dropped);
        let email = only.rule("public", "users", "email");
        assert!(email.dropped && email.is_masked(), "left out of the value, still masked in a key");
    }

    #[test]
    fn the_hash_is_debeziums_v2_salt_then_text_in_hex() {
        let r = rules();
        let email = r.rule("public", "users", "email");
        let got = email.masked(br#""ann@example.com""#).unwrap();
        assert_eq!(got.len(), 64);
        let mut sha = openssl::sha::Sha256::new();
        sha.update(b"pepperann@example.com");
        let direct: String = sha.finish().iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(got, direct);
        assert_eq!(email.masked(b"null"), None, "null stays null");
        assert_eq!(email.masked(b"42"), Some(email.masked(br#""42""#).unwrap()), "a number hashes as its digits");
        let mut out = Vec::new();
        r.rule("public", "users", "ssn").write_json(br#""123-45-6789""#, &mut out);
        assert_eq!(out, br#""****""#);
        assert!(!format!("{:?}", email).contains("pepper"), "Debug never shows the salt");
    }
}
