//! What a configuration reload (SIGHUP) changes: given the connectors that run (or are about to)
//! and the freshly loaded directory, which to start, stop, and restart. Connectors are matched
//! by name, since the name owns the checkpoint, the slot and the topics; one whose settings are
//! the same is left alone, even if its file was renamed.

use std::collections::BTreeMap;

use crate::config::ConnectorConfig;

#[derive(Debug, Default)]
pub struct Plan {
    /// New names, or connectors that had ended (failed or stopped): started.
    pub start: Vec<ConnectorConfig>,
    /// Names no longer configured: drained and stopped.
    pub stop: Vec<String>,
    /// Same name, different settings: drained, stopped, then started with the new settings.
    pub restart: Vec<ConnectorConfig>,
    /// Same name and settings: not touched.
    pub unchanged: Vec<String>,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.start.is_empty() && self.stop.is_empty() && self.restart.is_empty()
    }
}

impl std::fmt::Display for Plan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = |v: &[ConnectorConfig]| v.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ");
        write!(
            f,
            "start [{}], stop [{}], restart [{}], unchanged [{}]",
            names(&self.start),
            self.stop.join(", "),
            names(&self.restart),
            self.unchanged.join(", ")
        )
    }
}

/// `running`: the settings each live connector runs with (or will, once its restart comes).
pub fn plan(running: &BTreeMap<String, ConnectorConfig>, loaded: Vec<ConnectorConfig>) -> Plan {
    let mut p = Plan::default();
    for name in running.keys() {
        if !loaded.iter().any(|c| &c.name == name) {
            p.stop.push(name.clone());
        }
    }
    for cfg in loaded {
        match running.get(&cfg.name) {
            None => p.start.push(cfg),
            Some(old) if same_settings(old, &cfg) => p.unchanged.push(cfg.name),
            Some(_) => p.restart.push(cfg),
        }
    }
    p
}

/// Equal apart from the file the settings came from.
fn same_settings(a: &ConnectorConfig, b: &ConnectorConfig) -> bool {
    ConnectorConfig { file: b.file.clone(), ..a.clone() } == *b
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn cfg(file: &str, name: &str, tables: &str) -> ConnectorConfig {
        let text = format!(
            "name = \"{name}\"\n[source]\ntype = \"postgres\"\nurl = \"postgres://u@h/db\"\ntables = {tables}\n[sink]\ntype = \"stdout\"\n"
        );
        crate::config::parse(Path::new(file), &text).unwrap()
    }

    #[test]
    fn matches_by_name_and_compares_settings_not_files() {
        let running: BTreeMap<String, ConnectorConfig> = [
            ("a".to_string(), cfg("a.toml", "a", r#"["public.a"]"#)),
            ("b".to_string(), cfg("b.toml", "b", r#"["public.b"]"#)),
            ("d".to_string(), cfg("d.toml", "d", r#"["public.d"]"#)),
        ]
        .into();
        let loaded = vec![
            cfg("a.toml", "a", r#"["public.a", "public.a2"]"#),
            cfg("c.toml", "c", r#"["public.c"]"#),
            cfg("renamed-d.toml", "d", r#"["public.d"]"#),
        ];
        let p = plan(&running, loaded);
        assert_eq!(p.restart.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["a"]);
        assert_eq!(p.start.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["c"]);
        assert_eq!(p.stop, ["b"]);
        assert_eq!(p.unchanged, ["d"]);
        assert_eq!(p.to_string(), "start [c], stop [b], restart [a], unchanged [d]");
    }

    #[test]
    fn the_same_directory_changes_nothing() {
        let running: BTreeMap<String, ConnectorConfig> =
            [("a".to_string(), cfg("a.toml", "a", r#"["public.a"]"#))].into();
        let p = plan(&running, vec![cfg("a.toml", "a", r#"["public.a"]"#)]);
        assert!(p.is_empty(), "{p}");
    }
}
