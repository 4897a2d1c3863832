//! `source.read_only = true`: cdcd writes nothing to the source. It is how cdcd decodes from a
//! physical standby (PostgreSQL 16+), which takes no writes, and how it runs for users who may
//! not write to the primary.
//!
//! What changes:
//! - publications are not created or altered: they must come from the primary (a standby has
//!   the primary's catalog), and a table they lack is named with the statement that adds it;
//! - snapshot chunks are tied to the log by positions read, not by a watermark message written
//!   (see `snapshot::reader`);
//! - on a standby, the slot is created there; PostgreSQL makes it wait for a running-transactions
//!   record from the primary, which the log says while it waits.

use std::collections::BTreeSet;
use std::time::Duration;

use super::catalog::{Catalog, TableRef};
use super::{Names, Selection};
use crate::error::SourceError;

/// The publications to stream, checked to hold every selected table: the main one, and the
/// insert-only one when it exists.
pub async fn publications(catalog: &Catalog, names: &Names, selection: &Selection) -> Result<Vec<String>, SourceError> {
    let mut streamed = Vec::new();
    let mut held = BTreeSet::new();
    for name in [&names.publication, &names.insert_publication] {
        if let Some(tables) = catalog.publication_tables(name).await? {
            held.extend(tables);
            streamed.push(name.clone());
        }
    }
    let missing: Vec<&TableRef> =
        selection.full.iter().chain(&selection.insert_only).filter(|t| !held.contains(t)).collect();
    if streamed.is_empty() || !missing.is_empty() {
        let list = missing.iter().map(|t| t.quoted()).collect::<Vec<_>>().join(", ");
        let statement = if streamed.is_empty() {
            format!("CREATE PUBLICATION {} FOR TABLE {list}", names.publication)
        } else {
            format!("ALTER PUBLICATION {} ADD TABLE {list}", names.publication)
        };
        return Err(SourceError::Fatal(format!(
            "source.read_only: cdcd does not create or change publications, and publication {} {}. Run on the primary: {statement}; (tables without a primary key or replica identity: give them REPLICA IDENTITY FULL first, or publish them from publication {} WITH (publish = 'insert, truncate'))",
            names.publication,
            if streamed.is_empty() { "does not exist".to_string() } else { format!("lacks {list}") },
            names.insert_publication,
        )));
    }
    Ok(streamed)
}

/// Whether publication membership lets a table found while streaming be captured; says once per
/// table what to run on the primary when it does not.
pub async fn may_capture(
    catalog: &Catalog,
    publications: &[String],
    table: &TableRef,
    told: &mut BTreeSet<TableRef>,
) -> Result<bool, SourceError> {
    for name in publications {
        if catalog.publication_tables(name).await?.is_some_and(|ts| ts.contains(table)) {
            return Ok(true);
        }
    }
    if told.insert(table.clone()) {
        tracing::warn!(
            table = %table,
            "a new table matches source.tables but no publication of this connector holds it, and source.read_only forbids adding it; run on the primary: ALTER PUBLICATION {} ADD TABLE {}",
            publications.first().map(String::as_str).unwrap_or_default(),
            table.quoted()
        );
    }
    Ok(false)
}

/// Runs `create` (the slot's creation on a standby), saying while it waits why it waits.
pub async fn creating_on_standby<T>(create: impl std::future::Future<Output = T>) -> T {
    const FIRST: Duration = Duration::from_secs(3);
    const AGAIN: Duration = Duration::from_secs(30);
    tokio::pin!(create);
    let mut next = tokio::time::Instant::now() + FIRST;
    loop {
        tokio::select! {
            done = &mut create => return done,
            _ = tokio::time::sleep_until(next) => {
                tracing::info!("creating the replication slot on a standby: PostgreSQL waits for the primary to log a running-transactions record (a busy primary logs one every 15 s; on an idle one run SELECT pg_log_standby_snapshot() there)");
                next += AGAIN;
            }
        }
    }
}
