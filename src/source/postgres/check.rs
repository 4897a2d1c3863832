//! `cdcd check` for PostgreSQL sources: every prerequisite as a finding with its fix.

use super::catalog::{Catalog, TableMeta, TableRef};
use super::conn::{ConnParams, ReplicationConn};
use super::tls::{parse_url, SslMode};
use super::{identify, names};
use crate::config::{ConnectorConfig, PostgresSourceConfig};
use crate::core::checkpoint::{CheckpointError, CheckpointProbe, StoredCheckpoint};
use crate::core::position::Position;

use crate::source::tables::KeyColumns;
use crate::source::Finding;

fn ok(what: impl Into<String>) -> Finding {
    Finding::ok(what)
}
fn fail(what: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding::fail(what, fix)
}

/// `stored` reads the connector's checkpoint from its store; it is read after the slot, so a
/// running connector's checkpoint is never older than the slot position it is compared with.
pub async fn check(cfg: &ConnectorConfig, pg: &PostgresSourceConfig, stored: &CheckpointProbe<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    let url = match parse_url(&pg.url) {
        Ok(u) => u,
        Err(e) => {
            out.push(fail(format!("source.url parses: {e}"), "use postgres://user:password@host:5432/dbname"));
            return out;
        }
    };
    let n = names(cfg, pg);
    let timeout = std::time::Duration::from_secs(pg.timeout_secs);
    let catalog = match Catalog::connect(&url, &n.application, timeout).await {
        Ok(c) => {
            out.push(ok("PostgreSQL is reachable and accepts the credentials"));
            c
        }
        Err(e) => {
            out.push(fail(format!("connect: {e}"), "check host, port, user, password and database in source.url"));
            return out;
        }
    };
    let c = catalog.client();
    let sql_encryption = match c
        .query_one(
            "SELECT ssl, coalesce(version, ''), coalesce(cipher, '') FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
    {
        Ok(r) if r.get::<_, bool>(0) => {
            format!("TLS ({}, {}, {})", r.get::<_, String>(1), r.get::<_, String>(2), url.tls.verification())
        }
        Ok(_) if url.is_unix_socket() => super::conn::LOCAL_SOCKET.to_string(),
        Ok(_) => "not encrypted".to_string(),
        Err(e) => format!("unknown ({e})"),
    };
    out.push(encryption_finding("SQL connection", &sql_encryption, url.tls.mode));
    let features = catalog.features().await.ok();
    if let Some(f) = &features {
        out.push(if f.version.major() >= 10 {
            ok(f.describe())
        } else {
            fail(format!("PostgreSQL {}", f.version), "PostgreSQL 10 or newer is required")
        });
    }
    let in_recovery = catalog.in_recovery().await.unwrap_or(false);
    if in_recovery {
        out.extend(on_standby_findings(c, pg.read_only, features.as_ref()).await);
    }
    match catalog.setting("wal_level").await {
        Ok(l) if l == "logical" => out.push(ok("wal_level = logical")),
        Ok(l) => out.push(fail(
            format!("wal_level = {l}"),
            "set wal_level = logical in postgresql.conf and restart PostgreSQL",
        )),
        Err(e) => out.push(fail(format!("wal_level: {e}"), "grant the user access to pg_settings")),
    }
    match c.query_one("SELECT rolreplication OR rolsuper FROM pg_roles WHERE rolname = current_user", &[]).await {
        Ok(r) if r.get::<_, bool>(0) => out.push(ok("user has the REPLICATION attribute")),
        Ok(_) => out.push(fail("user lacks the REPLICATION attribute", "ALTER ROLE <user> REPLICATION")),
        Err(e) => out.push(fail(format!("reading role: {e}"), "check the user's privileges")),
    }
    let resolved = catalog.resolve_tables(&pg.tables).await;
    match &resolved {
        Ok(tables) if tables.is_empty() => {
            out.push(fail(format!("no table matches {}", pg.tables), "create the tables or fix source.tables"))
        }
        Ok(tables) => {
            out.push(ok(format!("{} table(s) match source.tables{}", tables.len(), pg.tables.exclude_note())));
            let keys = KeyColumns::new(&pg.key_columns);
            for t in tables {
                match catalog.table_meta_by_name(t).await {
                    Ok(m) => out.push(table_finding(t, &m, &keys)),
                    Err(e) => out.push(fail(format!("{t}: {e}"), "grant SELECT on the table")),
                }
                if let Ok(r) = c.query_one("SELECT has_table_privilege($1, 'SELECT')", &[&t.quoted()]).await {
                    if !r.get::<_, bool>(0) {
                        out.push(fail(
                            format!("{t}: no SELECT privilege (needed for the snapshot)"),
                            format!("GRANT SELECT ON {} TO <user>", t.quoted()),
                        ));
                    }
                }
            }
        }
        Err(e) => out.push(fail(e.to_string(), "fix source.tables")),
    }
    let pub_exists = c
        .query_opt("SELECT 1 FROM pg_publication WHERE pubname = $1", &[&n.publication])
        .await
        .ok()
        .flatten()
        .is_some();
    if let Some(f) = features.as_ref().filter(|f| f.generated_columns && pub_exists) {
        let publishes = catalog.publishes_generated(f, std::slice::from_ref(&n.publication)).await;
        out.push(generated_finding(&n.publication, publishes));
    }
    if pg.read_only {
        let tables = resolved.as_deref().unwrap_or_default();
        out.push(read_only_publication_finding(&catalog, &n, tables).await);
    } else if pub_exists {
        out.push(ok(format!("publication {} exists", n.publication)));
    } else {
        match c.query_one("SELECT has_database_privilege(current_database(), 'CREATE')", &[]).await {
            Ok(r) if r.get::<_, bool>(0) => out.push(ok(format!("publication {} will be created", n.publication))),
            _ => out.push(fail(
                format!("publication {} is missing and the user may not create it", n.publication),
                "GRANT CREATE ON DATABASE <db> TO <user>, or create the publication FOR TABLE the configured tables",
            )),
        }
    }
    let slot = catalog.slot(&n.slot).await.ok().flatten();
    match &slot {
        Some(s) if s.wal_status.as_deref() == Some("lost") => out.push(fail(format!("slot {} is invalidated (wal_status = lost)", n.slot), "re-snapshot: move the checkpoint away and drop the slot")),
        Some(s) if s.plugin.as_deref() != Some("pgoutput") => out.push(fail(format!("slot {} uses plugin {:?}", n.slot, s.plugin), "choose another source.slot")),
        Some(s) => {
            out.push(ok(format!("slot {} exists at {}", n.slot, s.confirmed_flush.map(|l| l.to_string()).unwrap_or_default())));
            if features.is_some_and(|f| f.failover_slots) {
                out.push(failover_finding(&n.slot, s.failover, pg.slot_failover));
            }
        }
        None => match c.query_one("SELECT current_setting('max_replication_slots')::int - (SELECT count(*) FROM pg_replication_slots)::int", &[]).await {
            Ok(r) if r.get::<_, i32>(0) > 0 => out.push(ok(format!("slot {} will be created ({} free slot(s))", n.slot, r.get::<_, i32>(0)))),
            Ok(_) => out.push(fail("no free replication slot", "raise max_replication_slots (restart needed) or drop unused slots")),
            Err(e) => out.push(fail(format!("counting slots: {e}"), "check privileges")),
        },
    }
    if features.is_some_and(|f| f.failover_slots) && pg.slot_failover && !in_recovery {
        out.extend(standby_findings(c).await);
    }
    match ConnParams::from_url(&url, timeout) {
        Ok(params) => match ReplicationConn::connect(&params, &n.application).await {
            Ok(mut repl) => match identify(&mut repl).await {
                Ok(sys) => {
                    out.push(ok("replication connection accepted (pg_hba.conf allows it)"));
                    out.push(encryption_finding("replication connection", &repl.encryption(&url.tls), url.tls.mode));
                    check_checkpoint(stored, &sys.system_identifier, slot.as_ref(), &mut out);
                }
                Err(e) => out
                    .push(fail(format!("IDENTIFY_SYSTEM: {e}"), "check max_wal_senders and the REPLICATION attribute")),
            },
            Err(e) => out.push(fail(
                format!("replication connection: {e}"),
                "allow replication connections for this user in pg_hba.conf; check max_wal_senders",
            )),
        },
        Err(e) => out.push(fail(e.to_string(), "fix source.url")),
    }
    out
}

/// Whether the existing slot will survive a failover (PostgreSQL 17+).
fn failover_finding(slot: &str, failover: Option<bool>, wanted: bool) -> Finding {
    match (failover, wanted) {
        (Some(true), true) => ok(format!("slot {slot} is a failover slot: standbys with sync_replication_slots = on keep it")),
        (_, true) => Finding::note(
            format!("slot {slot} is not a failover slot yet"),
            "nothing to do: cdcd makes it one when it next starts (source.slot_failover)",
        ),
        (_, false) => Finding::note(
            format!("slot {slot}: failover slots are off (source.slot_failover = false); a promoted standby will not have it"),
            "set source.slot_failover = true to have standbys keep the slot",
        ),
    }
}

/// Whether a failover would keep the slot: a standby that syncs slots, and the primary holding
/// changes back from cdcd until that standby has them (PostgreSQL 17+).
async fn standby_findings(c: &tokio_postgres::Client) -> Vec<Finding> {
    let mut out = Vec::new();
    let standbys = c
        .query(
            // Physical walsenders only: logical ones (cdcd's own among them) are no standbys.
            "SELECT coalesce(application_name, ''), coalesce(state, '') FROM pg_stat_replication \
             WHERE pid NOT IN (SELECT active_pid FROM pg_replication_slots WHERE slot_type = 'logical' AND active_pid IS NOT NULL)",
            &[],
        )
        .await
        .map(|rows| {
            rows.iter().map(|r| format!("{} ({})", r.get::<_, String>(0), r.get::<_, String>(1))).collect::<Vec<_>>()
        });
    match standbys {
        Ok(s) if s.is_empty() => out.push(Finding::note(
            "no standby streams from this server: after a failover the slot would be gone",
            "run a standby with sync_replication_slots = on, hot_standby_feedback = on and a physical slot, for the failover slot to be kept",
        )),
        Ok(s) => out.push(ok(format!("standbys streaming: {}", s.join(", ")))),
        Err(e) => out.push(Finding::note(format!("pg_stat_replication: {e}"), "grant pg_monitor to see the standbys")),
    }
    let synchronized =
        c.query_one("SELECT current_setting('synchronized_standby_slots')", &[]).await.map(|r| r.get::<_, String>(0));
    match synchronized {
        Ok(s) if s.trim().is_empty() => out.push(Finding::note(
            "synchronized_standby_slots is empty: cdcd may receive a change before any standby has it, and after a failover that change would not exist on the new primary",
            "set synchronized_standby_slots to the standbys' physical slots",
        )),
        Ok(s) => out.push(ok(format!("synchronized_standby_slots = '{s}': cdcd receives only changes those standbys have"))),
        Err(e) => out.push(Finding::note(format!("synchronized_standby_slots: {e}"), "check privileges")),
    }
    out
}

/// Decoding from the standby `source.url` reaches (PostgreSQL 16+, `source.read_only`).
async fn on_standby_findings(
    c: &tokio_postgres::Client,
    read_only: bool,
    features: Option<&super::features::Features>,
) -> Vec<Finding> {
    if !read_only {
        return vec![fail(
            "the server is a standby (in recovery): cdcd would wait for it to be promoted",
            "point source.url at the primary, or set source.read_only = true to decode from this standby (PostgreSQL 16+)",
        )];
    }
    if features.is_some_and(|f| !f.standby_decoding) {
        return vec![fail(
            "the server is a standby, and logical decoding on a standby needs PostgreSQL 16 or later",
            "point source.url at the primary (source.read_only keeps cdcd from writing there)",
        )];
    }
    let mut out = vec![ok(
        "decoding from a physical standby (source.read_only): the publication comes from the primary; the slot is made here, and its creation waits for the primary to log a running-transactions record (SELECT pg_log_standby_snapshot() on an idle primary)",
    )];
    match c.query_one("SELECT current_setting('hot_standby_feedback')", &[]).await.map(|r| r.get::<_, String>(0)) {
        Ok(v) if v == "on" => out.push(ok("hot_standby_feedback = on: the primary keeps the catalog rows the slot decodes with")),
        Ok(v) => out.push(fail(
            format!("hot_standby_feedback = {v}: the primary may vacuum catalog rows the slot still needs, and the server then invalidates the slot"),
            "set hot_standby_feedback = on on the standby, with a physical slot on the primary (primary_slot_name)",
        )),
        Err(e) => out.push(Finding::note(format!("hot_standby_feedback: {e}"), "check privileges")),
    }
    out
}

/// Whether the publication publishes stored generated columns (PostgreSQL 18+).
fn generated_finding(publication: &str, publishes: Result<bool, crate::error::SourceError>) -> Finding {
    match publishes {
        Ok(true) => ok(format!("publication {publication} publishes stored generated columns: they are captured, in snapshots too")),
        Ok(false) => Finding::note(
            format!("publication {publication} does not publish generated columns: they are left out of every event"),
            format!("to capture them: ALTER PUBLICATION {publication} SET (publish_generated_columns = stored) (publications cdcd creates on PostgreSQL 18 do)"),
        ),
        Err(e) => Finding::note(format!("publication {publication}: {e}"), "check privileges"),
    }
}

/// With `source.read_only` the publications must already hold every table.
async fn read_only_publication_finding(catalog: &Catalog, n: &super::Names, tables: &[TableRef]) -> Finding {
    let selection = super::Selection { full: tables.to_vec(), insert_only: Vec::new() };
    match super::read_only::publications(catalog, n, &selection).await {
        Ok(p) => ok(format!("source.read_only: publication(s) {} hold every table; cdcd changes none", p.join(", "))),
        Err(e) => fail(e.to_string(), "create or extend the publication on the primary, as the message says"),
    }
}

/// What will be captured of one table, and why.
fn table_finding(t: &TableRef, m: &TableMeta, keys: &KeyColumns) -> Finding {
    let columns: Vec<&str> = m.columns.iter().map(|c| c.name.as_str()).collect();
    let own: Vec<usize> = m.key.iter().filter_map(|k| columns.iter().position(|c| c == k)).collect();
    let key = match keys.resolve(&t.schema, &t.name, &columns, own) {
        Ok(k) if k.is_empty() => "null Kafka key".to_string(),
        Ok(k) => {
            let names: Vec<&str> = k.iter().map(|&i| columns[i]).collect();
            let whose = if keys.configured(&t.schema, &t.name).is_some() { "configured" } else { "primary" };
            format!("key ({}) from the {whose} key", names.join(", "))
        }
        Err(e) => return fail(format!("{t}: {e}"), "fix source.key_columns"),
    };
    if m.publishes_updates() {
        return ok(format!("{t}: every change captured, {key}"));
    }
    Finding::note(
        format!("{t}: inserts and truncates only, {key}: no primary key or replica identity, so PostgreSQL cannot publish its updates and deletes without making them fail (cdcd puts it in the insert-only publication)"),
        format!("add a primary key, or ALTER TABLE {} REPLICA IDENTITY FULL, to capture updates and deletes too", t.quoted()),
    )
}

/// A running connector's commit can reach the slot a moment before a `read_committed` reader
/// sees its checkpoint (the transaction markers follow the commit): a checkpoint behind the
/// slot is read again this often, this many times, before it counts.
const AHEAD_RECHECK: std::time::Duration = std::time::Duration::from_millis(500);
const AHEAD_RECHECKS: usize = 3;

fn check_checkpoint(
    stored: &CheckpointProbe<'_>,
    system: &str,
    slot: Option<&super::catalog::SlotInfo>,
    out: &mut Vec<Finding>,
) {
    let confirmed = slot.and_then(|s| s.confirmed_flush);
    let mut attempt = 0;
    let found = loop {
        attempt += 1;
        // A Kafka read blocks for up to a few hundred milliseconds.
        let found = match tokio::task::block_in_place(|| stored.read()) {
            Ok(Some(found)) => found,
            Ok(None) => {
                out.push(ok(format!("no {} yet: the first run will create the slot", stored.place)));
                return;
            }
            Err(CheckpointError::Corrupt { path, source }) => {
                out.push(fail(
                    format!("checkpoint {} is corrupt: {source}", path.display()),
                    "move it away to re-snapshot, or restore a backup",
                ));
                return;
            }
            Err(e) => {
                out.push(fail(
                    format!("cannot check the {}: {e}", stored.place),
                    "make it readable (the brokers reachable and READ on the topic for the sink's user, or the file's permissions), then run cdcd check again",
                ));
                return;
            }
        };
        let behind = match (&found.checkpoint.position, confirmed) {
            (Position::Postgres { lsn }, Some(flushed)) => flushed > *lsn,
            _ => false,
        };
        if !behind || attempt >= AHEAD_RECHECKS {
            break found;
        }
        std::thread::sleep(AHEAD_RECHECK);
    };
    let StoredCheckpoint { checkpoint: cp, place, reset } = found;
    let Position::Postgres { lsn } = cp.position else {
        out.push(fail(format!("{place} is not a PostgreSQL checkpoint"), "give each connector its own checkpoint"));
        return;
    };
    let crate::core::checkpoint::SourceIdentity::Postgres { system_identifier, .. } = &cp.source else {
        out.push(fail(format!("{place} is not a PostgreSQL checkpoint"), "give each connector its own checkpoint"));
        return;
    };
    let resnapshot = format!("re-snapshot: {reset} and drop the slot");
    if system_identifier != system {
        out.push(fail(format!("{place} belongs to another database system"), resnapshot));
    } else if slot.is_none() {
        out.push(fail(
            format!("{place} is at {lsn} but the slot is gone: changes may be lost"),
            format!("re-snapshot: {reset}"),
        ));
    } else if confirmed.is_some_and(|f| f > lsn) {
        out.push(fail(format!("slot is ahead of the {place} at {lsn}: it was recreated or advanced"), resnapshot));
    } else {
        out.push(ok(format!("{place} at {lsn} matches the slot")));
    }
}

/// Whether a connection is encrypted: a finding that fails only when TLS was required but is
/// absent (which the connection itself refuses, so this is belt and braces).
fn encryption_finding(connection: &str, encryption: &str, mode: SslMode) -> Finding {
    let what = format!("{connection}: {encryption} (sslmode={})", mode.as_str());
    if encryption == super::conn::LOCAL_SOCKET {
        ok(what)
    } else if encryption == "not encrypted" && mode.requires_tls() {
        fail(what, "the server must offer TLS for this sslmode")
    } else if encryption == "not encrypted" {
        Finding::note(what, "set sslmode=require (or verify-full with sslrootcert) to refuse plaintext")
    } else {
        ok(what)
    }
}
