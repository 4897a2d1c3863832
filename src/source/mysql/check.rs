//! `cdcd check` for MySQL / MariaDB sources: every prerequisite as a finding with its fix.

use mysql_async::prelude::*;

use super::{connect, problems, resolve_tables, server_info};
use crate::config::MysqlSourceConfig;
use crate::source::tables::KeyColumns;
use crate::source::Finding;

pub async fn check(my: &MysqlSourceConfig) -> Vec<Finding> {
    let mut out = Vec::new();
    let mut conn = match connect(my).await {
        Ok(c) => {
            out.push(Finding::ok("server is reachable and accepts the credentials"));
            c
        }
        Err(e) => {
            out.push(Finding::fail(format!("connect: {e}"), "check host, port, user and password in source.url"));
            return out;
        }
    };
    let info = match server_info(&mut conn).await {
        Ok(i) => i,
        Err(e) => {
            out.push(Finding::fail(
                format!("reading server settings: {e}"),
                "grant the user access to system variables",
            ));
            return out;
        }
    };
    out.push(Finding::ok(format!("{} {} (server_id {})", info.flavor(), info.version, info.server_id)));
    out.push(encryption_finding(&mut conn, my).await);
    let bad = problems(&info);
    for (what, fix) in &bad {
        out.push(Finding::fail(what.clone(), fix.clone()));
    }
    if !bad.iter().any(|(w, _)| w.contains("log_bin")) {
        out.push(Finding::ok(format!(
            "binary log on, binlog_format = {}, binlog_row_image = {}",
            info.binlog_format, info.row_image
        )));
    }
    out.push(Finding::ok(info.metadata_mode()));
    out.push(Finding::ok(if info.mariadb {
        "GTIDs: MariaDB domain-server-sequence; cdcd resumes by GTID (source.position = \"file\" to use file and offset)".to_string()
    } else if info.gtid_on {
        "GTIDs on: cdcd records the GTID set it has delivered and resumes by GTID set (source.position = \"file\" to use file and offset)".to_string()
    } else {
        "GTIDs off: cdcd resumes by binlog file and offset".to_string()
    }));
    match conn.query::<String, _>("SHOW GRANTS").await {
        Ok(grants) => {
            let all = grants.join(" ").to_ascii_uppercase();
            let has = |p: &str| all.contains("ALL PRIVILEGES") || all.contains(p);
            for p in ["REPLICATION SLAVE", "SELECT"] {
                if has(p) {
                    out.push(Finding::ok(format!("privilege {p}")));
                } else {
                    out.push(Finding::fail(format!("missing privilege {p}"), format!("GRANT {p} ON *.* TO <user>")));
                }
            }
            if has("REPLICATION CLIENT") || has("BINLOG MONITOR") {
                out.push(Finding::ok("privilege REPLICATION CLIENT / BINLOG MONITOR"));
            } else {
                out.push(Finding::fail(
                    "missing REPLICATION CLIENT (MariaDB: BINLOG MONITOR)",
                    "GRANT REPLICATION CLIENT ON *.* TO <user>",
                ));
            }
        }
        Err(e) => out.push(Finding::fail(format!("SHOW GRANTS: {e}"), "check the user's privileges")),
    }
    if my.server_id == info.server_id {
        out.push(Finding::fail(
            format!("source.server_id {} equals the server's own server_id", my.server_id),
            "choose a server_id no server or replica in the topology uses",
        ));
    } else {
        let replicas: Vec<mysql_async::Row> = conn.query("SHOW SLAVE HOSTS").await.unwrap_or_default();
        let clash = replicas.iter().any(|r| r.get::<u32, _>(0) == Some(my.server_id));
        if clash {
            out.push(Finding::fail(
                format!("another replica is connected with server_id {}", my.server_id),
                "choose a server_id unique among the server's replicas (two replicas with one id disconnect each other)",
            ));
        } else {
            out.push(Finding::ok(format!("server_id {} is not used by a connected replica", my.server_id)));
        }
    }
    match resolve_tables(&mut conn, &my.tables).await {
        Ok(t) if t.is_empty() => {
            out.push(Finding::fail(format!("no table matches {}", my.tables), "create the tables or fix source.tables"))
        }
        Ok(t) => {
            out.push(Finding::ok(format!("{} table(s) match source.tables{}", t.len(), my.tables.exclude_note())));
            let with_pk: Vec<(String, String)> = conn
                .query("SELECT DISTINCT table_schema, table_name FROM information_schema.key_column_usage WHERE constraint_name = 'PRIMARY'")
                .await
                .unwrap_or_default();
            let keys = KeyColumns::new(&my.key_columns);
            for table in t.iter().filter(|t| !with_pk.iter().any(|(d, n)| d == &t.db && n == &t.name)) {
                match keys.configured(&table.db, &table.name) {
                    Some(cols) => out.push(Finding::ok(format!(
                        "{table}: no primary key; every change captured, key ({}) from key_columns",
                        cols.join(", ")
                    ))),
                    None => out.push(Finding::note(
                        format!("{table}: no primary key; every change captured (full row images) with a null Kafka key, so its events spread over partitions without per-row order"),
                        format!("add a primary key, or name key columns: [source.key_columns] \"{table}\" = [\"col\"]"),
                    )),
                }
            }
        }
        Err(e) => out.push(Finding::fail(e.to_string(), "fix source.tables")),
    }
    out
}

/// Whether the connection is encrypted, from the server's own session status.
async fn encryption_finding(conn: &mut mysql_async::Conn, my: &MysqlSourceConfig) -> Finding {
    let tls = match super::tls::parse_url(&my.url) {
        Ok(u) => u.tls,
        Err(e) => return Finding::fail(format!("source.url: {e}"), "fix source.url"),
    };
    let status: Vec<(String, String)> = conn
        .query("SHOW SESSION STATUS WHERE Variable_name IN ('Ssl_version', 'Ssl_cipher')")
        .await
        .unwrap_or_default();
    let get = |name: &str| status.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()).unwrap_or_default();
    let (version, cipher) = (get("Ssl_version"), get("Ssl_cipher"));
    let mode = tls.mode.as_str();
    if version.is_empty() {
        Finding::note(
            format!("connection: not encrypted (ssl-mode={mode})"),
            "set ssl-mode=REQUIRED (or VERIFY_IDENTITY with ssl-ca) in source.url to refuse plaintext",
        )
    } else {
        Finding::ok(format!("connection: TLS ({version}, {cipher}, {}) (ssl-mode={mode})", tls.verification()))
    }
}
