//! The `[events]` section: which changes become records, whatever the source (Debezium's
//! `skipped.operations` and `tombstones.on.delete`).

use serde::Deserialize;

use crate::core::envelope::{Op, OpSet};

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsConfig {
    /// Operations not published, by Debezium's letters: `"c"` inserts, `"u"` updates, `"d"`
    /// deletes, `"t"` truncates (`"none"` or empty: publish all). Snapshot reads (`"r"`) are
    /// always published.
    #[serde(default)]
    pub skipped_operations: Vec<String>,
    /// Whether a delete is followed by a tombstone (same key, null value) so log compaction can
    /// drop the row. Default true, as Debezium.
    #[serde(default = "yes")]
    pub tombstones_on_delete: bool,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig { skipped_operations: Vec::new(), tombstones_on_delete: true }
    }
}

fn yes() -> bool {
    true
}

impl EventsConfig {
    /// The skipped operations, or a message naming the letter that is not one.
    pub fn skipped(&self) -> Result<OpSet, String> {
        let mut set = OpSet::default();
        for letter in &self.skipped_operations {
            let op = match letter.trim() {
                "none" if self.skipped_operations.len() == 1 => continue,
                "c" => Op::Create,
                "u" => Op::Update,
                "d" => Op::Delete,
                "t" => Op::Truncate,
                "r" => return Err("snapshot reads (`r`) cannot be skipped; use source.snapshot = \"no_data\" to take no snapshot".into()),
                other => {
                    return Err(format!(
                        "`{other}` is not an operation: use \"c\" (insert), \"u\" (update), \"d\" (delete), \"t\" (truncate), or [\"none\"]"
                    ))
                }
            };
            set.insert(op);
        }
        Ok(set)
    }

    /// What `cdcd check` says about these settings.
    pub fn describe(&self) -> String {
        let skipped = self.skipped().map(|s| s.to_string()).unwrap_or_default();
        let skipped = if skipped.is_empty() { "none".to_string() } else { skipped };
        let tombstones = if self.tombstones_on_delete { "after each delete" } else { "none" };
        format!("events: skipped operations {skipped}; tombstones {tombstones}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(letters: &[&str]) -> EventsConfig {
        EventsConfig { skipped_operations: letters.iter().map(|s| s.to_string()).collect(), ..Default::default() }
    }

    #[test]
    fn skipped_operations_take_debeziums_letters() {
        let set = events(&["u", "t"]).skipped().unwrap();
        assert!(set.contains(Op::Update) && set.contains(Op::Truncate));
        assert!(!set.contains(Op::Create) && !set.contains(Op::Delete) && !set.contains(Op::Read));
        assert_eq!(events(&["none"]).skipped().unwrap(), OpSet::default());
        assert!(events(&["r"]).skipped().unwrap_err().contains("no_data"));
        assert!(events(&["x"]).skipped().unwrap_err().contains("`x` is not an operation"));
        assert!(events(&["none", "c"]).skipped().is_err(), "none with others is a contradiction");
        assert_eq!(events(&["d", "c"]).describe(), "events: skipped operations c,d; tombstones after each delete");
    }
}
