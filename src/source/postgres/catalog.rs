//! Ordinary SQL against the source database (a `tokio-postgres` connection beside the
//! replication one): table resolution, key columns, type lookups, slot and publication state.

use std::collections::HashMap;

use tokio_postgres::Client;

use super::tls::PgUrl;
use crate::source::tls_errors::{tls_reason, verify_fix};

use super::conn::{sqlstate_is_definite, SESSION_OPTIONS};
use super::features::{Features, ServerVersion};
use super::typed::PgType;
use super::values::{builtin_kind, ValueKind};
use crate::core::position::Lsn;
use crate::error::{ServerFailure, SourceError};
use crate::source::tables::{pattern_matches, TableSelection};

/// A publication: what it publishes and which tables.
pub struct Publication {
    /// insert, update, delete, truncate.
    pub publishes: [bool; 4],
    pub tables: Vec<TableRef>,
    /// Tables published with a row filter (`WHERE`, PostgreSQL 15+).
    pub row_filtered: Vec<TableRef>,
}

impl Publication {
    pub fn publishes_every_change(&self) -> bool {
        self.publishes.iter().all(|&p| p)
    }
}

/// A table selected by the include list.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct TableRef {
    pub schema: String,
    pub name: String,
}

impl TableRef {
    /// `"schema"."name"`, quoted for SQL.
    pub fn quoted(&self) -> String {
        format!("{}.{}", quote_ident(&self.schema), quote_ident(&self.name))
    }
}

impl std::fmt::Display for TableRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.schema, self.name)
    }
}

pub fn quote_ident(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

pub fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ColumnMeta {
    pub name: String,
    pub type_oid: u32,
    pub typmod: i32,
    pub not_null: bool,
}

/// Column list and key of a table as the catalog sees it now.
#[derive(Clone, Debug)]
pub struct TableMeta {
    pub oid: u32,
    pub table: TableRef,
    /// In attnum order, without dropped or generated columns (as pgoutput sends them).
    pub columns: Vec<ColumnMeta>,
    /// Primary-key column names, else replica-identity-index columns, else empty (null key).
    pub key: Vec<String>,
    /// `relreplident`: d, n, f, i.
    pub replica_identity: char,
    pub has_primary_key: bool,
}

impl TableMeta {
    /// Whether PostgreSQL can publish this table's updates and deletes: it has a replica
    /// identity (a primary key under DEFAULT, an index, or FULL). Without one, publishing
    /// updates makes every UPDATE and DELETE on the table fail, so cdcd captures only its
    /// inserts and truncates.
    pub fn publishes_updates(&self) -> bool {
        match self.replica_identity {
            'f' | 'i' => true,
            'd' => self.has_primary_key,
            _ => false,
        }
    }
}

#[derive(Clone, Debug)]
pub struct SlotInfo {
    pub plugin: Option<String>,
    pub database: Option<String>,
    pub confirmed_flush: Option<Lsn>,
    pub wal_status: Option<String>,
    pub active: bool,
    /// The walsender process holding the slot, if it is active.
    pub active_pid: Option<i32>,
    /// Whether standbys synchronize the slot (PostgreSQL 17+; `None` before).
    pub failover: Option<bool>,
    /// Whether this copy was synchronized from the primary (a standby's, 17+).
    pub synced: Option<bool>,
}

pub struct Catalog {
    client: Client,
    /// Types by (oid, modifier), enums excepted.
    types: HashMap<(u32, i32), PgType>,
    /// The streamed publications, where the server lists the columns each publishes for a table
    /// (15+; empty before): a table's columns are then the published ones (column lists, stored
    /// generated columns on 18+), so snapshot rows have the columns streamed rows have.
    published: Vec<String>,
    /// The server publishes stored generated columns where a publication says so (18+); before
    /// 18 `attnames` lists them although pgoutput never sends them.
    generated_publishable: bool,
    /// Publications cdcd creates publish stored generated columns (the server has them, 18+).
    create_generated: bool,
}

pub fn sql_err(context: &str, e: tokio_postgres::Error) -> SourceError {
    if let Some(db) = e.as_db_error() {
        let code = db.code().code();
        return SourceError::from(ServerFailure {
            context: context.to_string(),
            code_label: "SQLSTATE",
            code: code.to_string(),
            message: db.message().to_string(),
            fix: None,
            transient: !sqlstate_is_definite(code),
        });
    }
    SourceError::Transient(format!("{context}: {e}"))
}

/// The TLS reason behind a connection error (certificate rejected, server without TLS), from
/// the error's source chain: tokio-postgres only says "error performing TLS handshake".
fn tls_failure(e: &tokio_postgres::Error) -> Option<String> {
    let text = e.to_string();
    if text.contains("server does not support TLS") {
        return Some("the server does not accept TLS (enable ssl in postgresql.conf, or lower sslmode)".into());
    }
    if !text.contains("TLS") {
        return None;
    }
    let mut messages = vec![text];
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        messages.push(s.to_string());
        source = s.source();
    }
    Some(tls_reason(&messages))
}

impl Catalog {
    /// Connects; a server silent for `timeout` (connect, or unacknowledged writes) breaks it.
    pub async fn connect(
        url: &PgUrl,
        application_name: &str,
        timeout: std::time::Duration,
    ) -> Result<Self, SourceError> {
        let tls =
            url.tls.make_tls_connect().map_err(|e| SourceError::Fatal(format!("source.url TLS settings: {e}")))?;
        let mut cfg = url.config.clone();
        cfg.options(SESSION_OPTIONS)
            .application_name(application_name)
            .connect_timeout(timeout)
            .tcp_user_timeout(timeout)
            .keepalives(true)
            .keepalives_idle((timeout / 6).max(std::time::Duration::from_secs(1)))
            .keepalives_interval((timeout / 6).max(std::time::Duration::from_secs(1)))
            .keepalives_retries(3);
        let (client, conn) = cfg.connect(tls).await.map_err(|e| {
            if let Some(reason) = tls_failure(&e) {
                return SourceError::Fatal(format!(
                    "TLS with PostgreSQL failed: {reason}; {}",
                    verify_fix(&reason, "sslrootcert", "sslmode=verify-ca")
                ));
            }
            let hint = match e.as_db_error().map(|d| d.code().code().to_string()) {
                Some(c) if c == "28000" && e.as_db_error().is_some_and(|d| d.message().contains("no encryption")) => {
                    " (the server accepts this user only over TLS, `hostssl` in pg_hba.conf: set sslmode=require, or verify-full with sslrootcert, in source.url)"
                }
                Some(c) if c == "28P01" || c == "28000" => {
                    " (check the user and password in source.url, and pg_hba.conf)"
                }
                Some(c) if c == "3D000" => " (check the database name in source.url)",
                _ => " (is the server running and reachable at the host and port in source.url?)",
            };
            match e.as_db_error() {
                Some(db) if db.code().code().starts_with("28") || db.code().code() == "3D000" => {
                    SourceError::Fatal(format!("cannot connect to PostgreSQL: {}{hint}", db.message()))
                }
                _ => SourceError::Transient(format!("cannot connect to PostgreSQL: {e}{hint}")),
            }
        })?;
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!("catalog connection ended: {e}");
            }
        });
        Ok(Self {
            client,
            types: HashMap::new(),
            published: Vec::new(),
            generated_publishable: false,
            create_generated: false,
        })
    }

    /// Reads a table's columns as `publications` publish it (see `published`); PostgreSQL 15+,
    /// which lists them (`pg_publication_tables.attnames`).
    pub fn set_publications(&mut self, publications: &[String], generated_publishable: bool) {
        self.published = publications.to_vec();
        self.generated_publishable = generated_publishable;
    }

    /// Whether generated columns can be published at all (see `generated_publishable`).
    pub fn generated_publishable(&self) -> bool {
        self.generated_publishable
    }

    /// The streamed publications, as [`Catalog::set_publications`] took them.
    pub fn publications(&self) -> &[String] {
        &self.published
    }

    /// Publications cdcd creates publish stored generated columns (PostgreSQL 18+).
    pub fn create_publications_with_generated_columns(&mut self, yes: bool) {
        self.create_generated = yes;
    }

    /// Whether any of `publications` publishes stored generated columns (PostgreSQL 18+).
    pub async fn publishes_generated(&self, features: &Features, publications: &[String]) -> Result<bool, SourceError> {
        if !features.generated_columns {
            return Ok(false);
        }
        let row = self
            .client
            .query_one(
                "SELECT coalesce(bool_or(pubgencols = 's'), false) FROM pg_publication WHERE pubname = ANY($1)",
                &[&publications],
            )
            .await
            .map_err(|e| sql_err("reading the publications' generated-column setting", e))?;
        Ok(row.get(0))
    }

    pub fn client(&self) -> &Client {
        &self.client
    }

    pub async fn setting(&self, name: &str) -> Result<String, SourceError> {
        let row = self.client.query_one("SELECT current_setting($1)", &[&name]).await.map_err(|e| sql_err(name, e))?;
        Ok(row.get(0))
    }

    /// Tables matching the include patterns. A pattern without `*` that matches nothing is an
    /// error (a typo should not silently capture nothing).
    pub async fn resolve_tables(&self, patterns: &TableSelection) -> Result<Vec<TableRef>, SourceError> {
        let rows = self
            .client
            .query(
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE c.relkind IN ('r','p') AND NOT c.relispartition \
                 AND n.nspname NOT IN ('pg_catalog','information_schema') AND n.nspname NOT LIKE 'pg_toast%' \
                 ORDER BY 1, 2",
                &[],
            )
            .await
            .map_err(|e| sql_err("listing tables", e))?;
        let all: Vec<TableRef> = rows.iter().map(|r| TableRef { schema: r.get(0), name: r.get(1) }).collect();
        let mut picked = Vec::new();
        for pattern in &patterns.include {
            let matches: Vec<&TableRef> = all.iter().filter(|t| pattern_matches(pattern, &t.schema, &t.name)).collect();
            if matches.is_empty() && !pattern.contains('*') {
                return Err(SourceError::Fatal(format!(
                    "table `{pattern}` from source.tables does not exist (or is not visible to this user); create it or fix the name"
                )));
            }
            picked.extend(matches.into_iter().cloned());
        }
        picked.retain(|t| !patterns.excludes(&t.schema, &t.name));
        picked.sort();
        picked.dedup();
        Ok(picked)
    }

    pub async fn table_meta_by_name(&self, t: &TableRef) -> Result<TableMeta, SourceError> {
        let oid = self.table_oid(t).await?.ok_or_else(|| SourceError::Fatal(format!("table {t} does not exist")))?;
        self.table_meta(oid).await
    }

    /// The table's oid, or `None` if it does not exist.
    pub async fn table_oid(&self, t: &TableRef) -> Result<Option<u32>, SourceError> {
        let row = self
            .client
            .query_opt("SELECT to_regclass($1)::oid", &[&t.quoted()])
            .await
            .map_err(|e| sql_err("looking up table", e))?;
        Ok(row.and_then(|r| r.get(0)))
    }

    pub async fn table_meta(&self, oid: u32) -> Result<TableMeta, SourceError> {
        let head = self
            .client
            .query_opt(
                "SELECT n.nspname, c.relname, c.relreplident::text FROM pg_class c \
                 JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
                &[&oid],
            )
            .await
            .map_err(|e| sql_err("reading table metadata", e))?
            .ok_or_else(|| SourceError::Fatal(format!("relation {oid} no longer exists")))?;
        let table = TableRef { schema: head.get(0), name: head.get(1) };
        let replica_identity = head.get::<_, String>(2).chars().next().unwrap_or('d');
        // The columns the publications publish for the table; a table none of them holds (not
        // streamed, or before 15) has its ordinary columns.
        let sql = if self.published.is_empty() {
            "SELECT attname::text, atttypid, atttypmod, attnotnull FROM pg_attribute WHERE attrelid = $1 \
             AND attnum > 0 AND NOT attisdropped AND attgenerated = '' ORDER BY attnum"
                .to_string()
        } else {
            let names = self.published.iter().map(|p| quote_literal(p)).collect::<Vec<_>>().join(", ");
            let generated = if self.generated_publishable { "true" } else { "attgenerated = ''" };
            format!(
                "WITH pub AS (SELECT pt.attnames FROM pg_publication_tables pt \
                 JOIN pg_namespace pn ON pn.nspname = pt.schemaname \
                 JOIN pg_class pc ON pc.relnamespace = pn.oid AND pc.relname = pt.tablename \
                 WHERE pc.oid = $1 AND pt.pubname IN ({names})) \
                 SELECT attname::text, atttypid, atttypmod, attnotnull FROM pg_attribute WHERE attrelid = $1 \
                 AND attnum > 0 AND NOT attisdropped \
                 AND CASE WHEN EXISTS (SELECT 1 FROM pub) THEN attname = ANY (ARRAY(SELECT unnest(attnames) FROM pub)) \
                 AND {generated} ELSE attgenerated = '' END ORDER BY attnum"
            )
        };
        let cols = self.client.query(sql.as_str(), &[&oid]).await.map_err(|e| sql_err("reading columns", e))?;
        let columns = cols
            .iter()
            .map(|r| ColumnMeta { name: r.get(0), type_oid: r.get(1), typmod: r.get(2), not_null: r.get(3) })
            .collect();
        let keys = self
            .client
            .query(
                "SELECT i.indisprimary, a.attname::text FROM pg_index i \
                 JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                 WHERE i.indrelid = $1 AND (i.indisprimary OR i.indisreplident) \
                 ORDER BY i.indisprimary DESC, k.ord",
                &[&oid],
            )
            .await
            .map_err(|e| sql_err("reading key columns", e))?;
        let has_primary_key = keys.iter().any(|r| r.get::<_, bool>(0));
        let key =
            keys.iter().filter(|r| r.get::<_, bool>(0) == has_primary_key).map(|r| r.get::<_, String>(1)).collect();
        Ok(TableMeta { oid, table, columns, key, replica_identity, has_primary_key })
    }

    /// Key-column sets of the table's valid unique indexes (no expressions, no predicate).
    pub async fn unique_column_sets(&mut self, oid: u32) -> Result<Vec<Vec<String>>, SourceError> {
        let rows = self
            .client
            .query(
                "SELECT array_agg(a.attname::text ORDER BY k.ord) FROM pg_index i \
                 JOIN LATERAL unnest(i.indkey) WITH ORDINALITY AS k(attnum, ord) ON true \
                 JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
                 WHERE i.indrelid = $1 AND i.indisunique AND i.indisvalid AND k.ord <= i.indnkeyatts \
                 AND i.indpred IS NULL AND i.indexprs IS NULL \
                 GROUP BY i.indexrelid",
                &[&oid],
            )
            .await
            .map_err(|e| sql_err("reading unique indexes", e))?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// The type of a column of type `oid` with modifier `typmod`, as both encodings need it
    /// (cdcd's JSON through [`super::values::kind_of`], Debezium's through the typed mapping): domains
    /// resolved to their base type (and its modifier), arrays with their element type, enums
    /// with their labels. Looked up once per type; enums every time, as their labels change.
    pub async fn pg_type(&mut self, oid: u32, typmod: i32) -> Result<PgType, SourceError> {
        if let Some(t) = self.types.get(&(oid, typmod)) {
            return Ok(t.clone());
        }
        let t = self.look_up_type(oid, typmod).await?;
        if t.enum_labels.is_none() {
            self.types.insert((oid, typmod), t.clone());
        }
        Ok(t)
    }

    async fn look_up_type(&mut self, oid: u32, typmod: i32) -> Result<PgType, SourceError> {
        if let Some(kind) = builtin_kind(oid) {
            let elem = match kind {
                ValueKind::Array(_) => self.array_elem(oid, typmod).await?,
                _ => None,
            };
            return Ok(PgType { oid, typmod, elem, enum_labels: None });
        }
        let row = self
            .client
            .query_opt(
                "SELECT typtype::text, typbasetype, typtypmod, typelem, typcategory::text, \
                 (SELECT string_agg(enumlabel, ',' ORDER BY enumsortorder) FROM pg_enum WHERE enumtypid = t.oid) \
                 FROM pg_type t WHERE oid = $1",
                &[&oid],
            )
            .await
            .map_err(|e| sql_err("reading type", e))?;
        let Some(r) = row else { return Ok(PgType::builtin(oid, typmod)) };
        let (typtype, base, base_mod, elem, category): (String, u32, i32, u32, String) =
            (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4));
        Ok(if typtype == "d" && base != 0 {
            Box::pin(self.pg_type(base, if typmod >= 0 { typmod } else { base_mod })).await?
        } else if category == "A" && elem != 0 {
            PgType { oid, typmod, elem: Some(Box::new(Box::pin(self.pg_type(elem, typmod)).await?)), enum_labels: None }
        } else {
            PgType { oid, typmod, elem: None, enum_labels: r.get(5) }
        })
    }

    async fn array_elem(&mut self, oid: u32, typmod: i32) -> Result<Option<Box<PgType>>, SourceError> {
        let row = self
            .client
            .query_opt("SELECT typelem FROM pg_type WHERE oid = $1", &[&oid])
            .await
            .map_err(|e| sql_err("reading type", e))?;
        match row.map(|r| r.get::<_, u32>(0)) {
            Some(elem) if elem != 0 => Ok(Some(Box::new(Box::pin(self.pg_type(elem, typmod)).await?))),
            _ => Ok(None),
        }
    }

    pub async fn slot(&self, name: &str) -> Result<Option<SlotInfo>, SourceError> {
        let row = self
            .client
            .query_opt(
                // `failover` and `synced` came with 17: read through jsonb, so older servers
                // answer null instead of failing on a missing column.
                "SELECT plugin::text, database::text, confirmed_flush_lsn::text, wal_status, active, active_pid, \
                 (to_jsonb(s) ->> 'failover')::bool, (to_jsonb(s) ->> 'synced')::bool \
                 FROM pg_replication_slots s WHERE slot_name = $1",
                &[&name],
            )
            .await
            .map_err(|e| sql_err("reading replication slot", e))?;
        Ok(row.map(|r| SlotInfo {
            plugin: r.get(0),
            database: r.get(1),
            confirmed_flush: r.get::<_, Option<String>>(2).and_then(|s| s.parse().ok()),
            wal_status: r.get(3),
            active: r.get(4),
            active_pid: r.get(5),
            failover: r.get(6),
            synced: r.get(7),
        }))
    }

    /// Whether the server is a standby.
    pub async fn in_recovery(&self) -> Result<bool, SourceError> {
        let row = self
            .client
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .map_err(|e| sql_err("pg_is_in_recovery", e))?;
        Ok(row.get(0))
    }

    /// What the server's version offers (see [`Features`]).
    pub async fn features(&self) -> Result<Features, SourceError> {
        let num = self.setting("server_version_num").await?;
        let num = num.parse().map_err(|_| {
            SourceError::Fatal(format!("the server reports server_version_num = {num:?}, not a number"))
        })?;
        Ok(Features::of(ServerVersion(num)))
    }

    /// Publication `name` as a read-only connector must check it, or `None` if it does not exist.
    pub async fn publication(&self, name: &str) -> Result<Option<Publication>, SourceError> {
        let flags = self
            .client
            .query_opt(
                "SELECT pubinsert, pubupdate, pubdelete, pubtruncate FROM pg_publication WHERE pubname = $1",
                &[&name],
            )
            .await
            .map_err(|e| sql_err("reading publication", e))?;
        let Some(flags) = flags else { return Ok(None) };
        // `rowfilter` exists from PostgreSQL 15 on: read through to_jsonb so older servers answer.
        let rows = self
            .client
            .query(
                "SELECT schemaname::text, tablename::text, (to_jsonb(pt) ->> 'rowfilter') IS NOT NULL \
                 FROM pg_publication_tables pt WHERE pubname = $1",
                &[&name],
            )
            .await
            .map_err(|e| sql_err("reading publication", e))?;
        let table = |r: &tokio_postgres::Row| TableRef { schema: r.get(0), name: r.get(1) };
        Ok(Some(Publication {
            publishes: [flags.get(0), flags.get(1), flags.get(2), flags.get(3)],
            tables: rows.iter().map(table).collect(),
            row_filtered: rows.iter().filter(|r| r.get::<_, bool>(2)).map(table).collect(),
        }))
    }

    /// The tables in publication `name`, or `None` if it does not exist.
    pub async fn publication_tables(&self, name: &str) -> Result<Option<Vec<TableRef>>, SourceError> {
        Ok(self.publication(name).await?.map(|p| p.tables))
    }

    /// Makes publication `name` hold `tables` (creating it, or adding the ones it lacks);
    /// `publish` restricts what it publishes (e.g. `insert, truncate`). A publication that does
    /// not exist and would be empty is only created when `create_empty`. Returns whether it exists.
    pub async fn ensure_publication(
        &self,
        name: &str,
        tables: &[TableRef],
        publish: Option<&str>,
        create_empty: bool,
    ) -> Result<bool, SourceError> {
        let list = |ts: &[&TableRef]| ts.iter().map(|t| t.quoted()).collect::<Vec<_>>().join(", ");
        let hint = " (the source user needs CREATE on the database and ownership of the tables, or create the publication yourself)";
        let Some(have) = self.publication_tables(name).await? else {
            if tables.is_empty() && !create_empty {
                return Ok(false);
            }
            let all: Vec<&TableRef> = tables.iter().collect();
            let mut sql = format!("CREATE PUBLICATION {}", quote_ident(name));
            if !all.is_empty() {
                sql.push_str(&format!(" FOR TABLE {}", list(&all)));
            }
            let mut with = Vec::new();
            if let Some(p) = publish {
                with.push(format!("publish = {}", quote_literal(p)));
            }
            if self.create_generated {
                with.push("publish_generated_columns = stored".to_string());
            }
            if !with.is_empty() {
                sql.push_str(&format!(" WITH ({})", with.join(", ")));
            }
            self.client
                .batch_execute(&sql)
                .await
                .map_err(|e| sql_err(&format!("creating publication {name}{hint}"), e))?;
            tracing::info!(
                publication = name,
                tables = tables.len(),
                publish = publish.unwrap_or("all"),
                "created publication"
            );
            return Ok(true);
        };
        let missing: Vec<&TableRef> = tables.iter().filter(|t| !have.contains(t)).collect();
        if !missing.is_empty() {
            let sql = format!("ALTER PUBLICATION {} ADD TABLE {}", quote_ident(name), list(&missing));
            self.client
                .batch_execute(&sql)
                .await
                .map_err(|e| sql_err(&format!("adding tables to publication {name}{hint}"), e))?;
            tracing::info!(publication = name, added = %list(&missing), "added tables to the publication");
        }
        Ok(true)
    }

    /// Removes those of `tables` that publication `name` holds. Used to move a table that lost
    /// its replica identity out of a publication that publishes updates, where it would make the
    /// application's own UPDATEs fail.
    pub async fn remove_from_publication(&self, name: &str, tables: &[TableRef]) -> Result<(), SourceError> {
        let Some(have) = self.publication_tables(name).await? else { return Ok(()) };
        let present: Vec<&TableRef> = tables.iter().filter(|t| have.contains(t)).collect();
        self.drop_tables(name, &present, "their replica identity changed").await
    }

    /// Makes publication `name` hold no table but `keep`, as Debezium's filtered publications do
    /// (`ALTER PUBLICATION ... SET TABLE`): a table that left `tables` stops reaching the slot. A
    /// publication `FOR ALL TABLES` or for whole schemas cannot drop single tables; the stream
    /// skips what `tables` does not select either way.
    pub async fn retain_in_publication(&self, name: &str, keep: &[TableRef]) -> Result<(), SourceError> {
        let schemas = if self.features().await?.schema_publications {
            " OR EXISTS (SELECT 1 FROM pg_catalog.pg_publication_namespace n WHERE n.pnpubid = p.oid)"
        } else {
            ""
        };
        let sql = format!("SELECT p.puballtables{schemas} FROM pg_catalog.pg_publication p WHERE p.pubname = $1");
        let whole = self
            .client
            .query_opt(&sql, &[&name])
            .await
            .map_err(|e| sql_err("reading publication", e))?
            .map(|r| r.get::<_, bool>(0));
        match whole {
            None => return Ok(()),
            Some(true) => {
                tracing::info!(publication = name, "the publication covers whole schemas or every table: cdcd publishes only the tables source.tables selects and skips the others' changes");
                return Ok(());
            }
            Some(false) => {}
        }
        let Some(have) = self.publication_tables(name).await? else { return Ok(()) };
        let extra: Vec<&TableRef> = have.iter().filter(|t| !keep.contains(t)).collect();
        self.drop_tables(name, &extra, "source.tables no longer selects them").await
    }

    /// `ALTER PUBLICATION name DROP TABLE tables`. Failure is only a warning: cdcd does not own
    /// every publication it reads, and the stream skips unselected tables anyway.
    async fn drop_tables(&self, name: &str, tables: &[&TableRef], why: &str) -> Result<(), SourceError> {
        if tables.is_empty() {
            return Ok(());
        }
        let list = tables.iter().map(|t| t.quoted()).collect::<Vec<_>>().join(", ");
        let sql = format!("ALTER PUBLICATION {} DROP TABLE {list}", quote_ident(name));
        match self.client.batch_execute(&sql).await {
            Ok(()) => tracing::warn!(publication = name, tables = %list, "removed tables from the publication ({why})"),
            Err(e) => {
                tracing::warn!(publication = name, tables = %list, "could not remove tables from the publication ({why}): {e}; their changes still reach the slot and are skipped")
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(quote_literal("it's"), "'it''s'");
    }
}
