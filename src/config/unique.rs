//! What two connectors of one configuration may not share: a name, a checkpoint directory (or a
//! Kafka transactional id, with the Kafka store), a
//! PostgreSQL replication slot (cluster-wide) or publication (per database), or a MySQL replica
//! `server_id` (per server). Two connectors that would share one fight over it at run time (a slot
//! is held by one walsender, a server_id by one binlog dump), so the whole configuration is
//! refused at load, naming both files and the way out.
//!
//! Servers are told apart by host and port as written (`localhost`, `127.0.0.1` and `::1` count as
//! one host); two names for one server are not detected.

use std::collections::BTreeMap;

use super::{ConfigError, ConnectorConfig, SourceConfig};

/// Refuses `configs` if any two connectors would share one of the things above.
pub fn check(configs: &[ConnectorConfig]) -> Result<(), ConfigError> {
    let mut claimed: BTreeMap<Claim, &ConnectorConfig> = BTreeMap::new();
    for c in configs {
        for claim in claims(c) {
            if let Some(other) = claimed.get(&claim) {
                return Err(ConfigError::Other(clash(other, c, &claim)));
            }
            claimed.insert(claim, c);
        }
    }
    Ok(())
}

/// One thing a connector needs for itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Claim {
    Name(String),
    CheckpointDir(std::path::PathBuf),
    /// (server, slot)
    Slot(String, String),
    /// (server/database, publication)
    Publication(String, String),
    /// (server, server_id)
    ServerId(String, u32),
    /// (brokers, transactional.id): the broker lets only the newest producer with an id write.
    TransactionalId(String, String),
    /// (brokers, topic): a connector's open transaction on a shared checkpoint topic would hold
    /// back what another reads at start.
    CheckpointTopic(String, String),
}

fn claims(c: &ConnectorConfig) -> Vec<Claim> {
    let mut out = vec![Claim::Name(c.name.clone())];
    match c.kafka_store() {
        Some(k) => {
            // Every id of the producers that take turns: `tx` in one and `tx.2` in another
            // would fence each other as surely as `tx` in both.
            let id = c.transactional_id();
            for turn in 0..crate::sink::kafka::transactions::TURNS {
                let turn_id = crate::sink::kafka::transactions::turn_id(&id, turn);
                out.push(Claim::TransactionalId(k.brokers.clone(), turn_id));
            }
            out.push(Claim::CheckpointTopic(k.brokers.clone(), c.checkpoint_topic()));
        }
        None => out.push(Claim::CheckpointDir(c.checkpoint_dir())),
    }
    match &c.source {
        SourceConfig::Postgres(pg) => {
            let (server, db) = postgres_server(&pg.url);
            let names = crate::source::postgres::names(c, pg);
            out.push(Claim::Slot(server.clone(), names.slot));
            let database = format!("{server}/{db}");
            out.push(Claim::Publication(database.clone(), names.publication.clone()));
            if names.insert_publication != names.publication {
                out.push(Claim::Publication(database, names.insert_publication));
            }
        }
        SourceConfig::Mysql(my) => out.push(Claim::ServerId(mysql_server(&my.url), my.server_id)),
    }
    out
}

fn clash(first: &ConnectorConfig, second: &ConnectorConfig, claim: &Claim) -> String {
    let who = format!(
        "connectors `{}` ({}) and `{}` ({})",
        first.name,
        first.file.display(),
        second.name,
        second.file.display()
    );
    match claim {
        Claim::Name(n) => format!("connector name `{n}` is used by both {} and {}; names must be unique", first.file.display(), second.file.display()),
        Claim::CheckpointDir(d) => format!("{who} share checkpoint directory {}; give each connector its own checkpoint.path", d.display()),
        Claim::Slot(server, slot) => format!(
            "{who} would share replication slot `{slot}` on {server} (a slot is one stream; the default slot name is `cdcd_` and the name with every character other than a-z and 0-9 folded to `_`); set source.slot (and source.publication) in one of them, or rename it"
        ),
        Claim::Publication(db, publication) => format!(
            "{who} would share publication `{publication}` in {db} (each connector makes its publication hold its own tables); set source.publication in one of them, or rename it"
        ),
        Claim::ServerId(server, id) => format!(
            "{who} would use the same server_id {id} on {server} (the server ends one binlog connection when another replica connects with its id); give each its own source.server_id"
        ),
        Claim::CheckpointTopic(brokers, topic) => format!(
            "{who} would share the checkpoint topic {topic} on {brokers} (one connector's open transaction there would hold back the other's checkpoint when it starts); set [checkpoint] topic in one of them"
        ),
        Claim::TransactionalId(brokers, id) => format!(
            "{who} would share the Kafka transactional id `{id}` on {brokers} (each would fence the other's producer); set sink.transactional_id in one of them"
        ),
    }
}

/// `host:port` of a PostgreSQL URL (every host, for a multi-host one) and its database.
fn postgres_server(url: &str) -> (String, String) {
    let Ok(parsed) = crate::source::postgres::tls::parse_url(url) else { return (url.to_string(), String::new()) };
    let config = &parsed.config;
    let ports = config.get_ports();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let host = match h {
                tokio_postgres::config::Host::Tcp(name) => same_host(name),
                tokio_postgres::config::Host::Unix(dir) => dir.display().to_string(),
            };
            let port = ports.get(i).or(ports.first()).copied().unwrap_or(5432);
            format!("{host}:{port}")
        })
        .collect();
    let user = config.get_user().unwrap_or_default();
    let db = config.get_dbname().unwrap_or(user).to_string();
    (hosts.join(","), db)
}

/// `host:port` of a MySQL URL.
fn mysql_server(url: &str) -> String {
    match mysql_async::Opts::from_url(url) {
        Ok(o) => match o.socket() {
            Some(socket) => socket.to_string(),
            None => format!("{}:{}", same_host(o.ip_or_hostname()), o.tcp_port()),
        },
        Err(_) => url.to_string(),
    }
}

fn same_host(name: &str) -> String {
    match name {
        "localhost" | "127.0.0.1" | "::1" | "[::1]" => "localhost".to_string(),
        other => other.to_ascii_lowercase(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::{load, parse};
    use super::*;
    use std::path::Path;

    fn postgres(name: &str, url: &str, extra: &str) -> String {
        format!(
            "name = \"{name}\"\n[source]\ntype = \"postgres\"\nurl = \"{url}\"\ntables = [\"public.*\"]\n{extra}\n[sink]\ntype = \"stdout\"\n[checkpoint]\npath = \"/tmp/cdcd-unique-{name}\"\n"
        )
    }

    fn mysql(name: &str, url: &str, server_id: u32) -> String {
        format!(
            "name = \"{name}\"\n[source]\ntype = \"mysql\"\nurl = \"{url}\"\ntables = [\"shop.*\"]\nserver_id = {server_id}\n[sink]\ntype = \"stdout\"\n[checkpoint]\npath = \"/tmp/cdcd-unique-{name}\"\n"
        )
    }

    fn check_texts(texts: &[String]) -> Result<(), String> {
        let configs: Vec<ConnectorConfig> =
            texts.iter().enumerate().map(|(i, t)| parse(Path::new(&format!("{i}.toml")), t).unwrap()).collect();
        check(&configs).map_err(|e| e.to_string())
    }

    #[test]
    fn names_that_fold_to_one_slot_are_refused_naming_both() {
        let url = "postgres://u:p@127.0.0.1:5432/shop";
        let err = check_texts(&[postgres("orders-eu", url, ""), postgres("orders_eu", url, "")]).unwrap_err();
        assert!(err.contains("`orders-eu`") && err.contains("`orders_eu`"), "{err}");
        assert!(err.contains("replication slot `cdcd_orders_eu`") && err.contains("source.slot"), "{err}");
        // localhost is 127.0.0.1; a slot is one per cluster, whatever the database.
        let err = check_texts(&[
            postgres("orders-eu", url, ""),
            postgres("orders_eu", "postgres://u:p@localhost:5432/other", ""),
        ])
        .unwrap_err();
        assert!(err.contains("replication slot"), "{err}");
        // Different servers, or a slot and publication of its own: fine.
        check_texts(&[postgres("orders-eu", url, ""), postgres("orders_eu", "postgres://u:p@10.0.0.9:5432/shop", "")])
            .unwrap();
        check_texts(&[
            postgres("orders-eu", url, ""),
            postgres("orders_eu", url, "slot = \"eu2\"\npublication = \"eu2\""),
        ])
        .unwrap();
    }

    #[test]
    fn a_shared_publication_in_one_database_is_refused() {
        let url = "postgres://u:p@127.0.0.1:5432/shop";
        let err = check_texts(&[
            postgres("a", url, "publication = \"shared\""),
            postgres("b", url, "publication = \"shared\""),
        ])
        .unwrap_err();
        assert!(err.contains("publication `shared`") && err.contains("/shop"), "{err}");
        // Publications belong to a database: the same name in another database is another one.
        check_texts(&[
            postgres("a", url, "publication = \"shared\""),
            postgres("b", "postgres://u:p@127.0.0.1:5432/other", "publication = \"shared\""),
        ])
        .unwrap();
    }

    #[test]
    fn one_server_id_twice_on_a_server_is_refused() {
        let err =
            check_texts(&[mysql("a", "mysql://u:p@127.0.0.1:3306", 7), mysql("b", "mysql://u:p@localhost:3306", 7)])
                .unwrap_err();
        assert!(err.contains("server_id 7") && err.contains("`a`") && err.contains("`b`"), "{err}");
        check_texts(&[mysql("a", "mysql://u:p@127.0.0.1:3306", 7), mysql("b", "mysql://u:p@127.0.0.1:3307", 7)])
            .unwrap();
        check_texts(&[mysql("a", "mysql://u:p@127.0.0.1:3306", 7), mysql("b", "mysql://u:p@127.0.0.1:3306", 8)])
            .unwrap();
    }

    #[test]
    fn kafka_store_connectors_may_not_share_a_checkpoint_topic_or_transactional_id() {
        let kafka = |name: &str, extra_sink: &str, checkpoint: &str| {
            format!(
                "name = \"{name}\"\n[source]\ntype = \"mysql\"\nurl = \"mysql://u:p@127.0.0.1:3306\"\ntables = [\"{name}.*\"]\nserver_id = {}\n[sink]\ntype = \"kafka\"\nbrokers = \"k:9092\"\ntopic_prefix = \"shop\"\n{extra_sink}\n[checkpoint]\nstore = \"kafka\"\n{checkpoint}\n",
                name.len()
            )
        };
        let err = check_texts(&[kafka("a", "", ""), kafka("bb", "", "")]).unwrap_err();
        assert!(err.contains("checkpoint topic shop.checkpoints") && err.contains("[checkpoint] topic"), "{err}");
        let err = check_texts(&[
            kafka("a", "transactional_id = \"tx\"", "topic = \"a\""),
            kafka("bb", "transactional_id = \"tx\"", "topic = \"b\""),
        ])
        .unwrap_err();
        assert!(err.contains("transactional id `tx`"), "{err}");
        let err = check_texts(&[
            kafka("a", "transactional_id = \"tx\"", "topic = \"a\""),
            kafka("bb", "transactional_id = \"tx.2\"", "topic = \"b\""),
        ])
        .unwrap_err();
        assert!(err.contains("transactional id `tx.2`"), "the second producer of `tx` is `tx.2`: {err}");
        check_texts(&[kafka("a", "", "topic = \"a\""), kafka("bb", "", "topic = \"b\"")]).unwrap();
    }

    #[test]
    fn a_directory_with_a_clash_does_not_load() {
        let dir = tempfile::tempdir().unwrap();
        let url = "postgres://u:p@127.0.0.1:5432/shop";
        std::fs::write(dir.path().join("a.toml"), postgres("orders-eu", url, "")).unwrap();
        std::fs::write(dir.path().join("b.toml"), postgres("orders_eu", url, "")).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("a.toml") && err.contains("b.toml"), "{err}");
    }
}
