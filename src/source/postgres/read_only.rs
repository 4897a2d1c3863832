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

/// The publications to stream, checked to publish every change of every selected table: the
/// main one must exist, publish inserts, updates, deletes and truncates, and hold the tables with
/// a replica identity; tables without one may be in it or in the insert-only one; no table may
/// have a row filter (the snapshot would read rows the stream never updates or deletes).
pub async fn publications(catalog: &Catalog, names: &Names, selection: &Selection) -> Result<Vec<String>, SourceError> {
    let main = catalog.publication(&names.publication).await?;
    let inserts = catalog.publication(&names.insert_publication).await?;
    let list = |ts: &[&TableRef]| ts.iter().map(|t| t.quoted()).collect::<Vec<_>>().join(", ");
    let mut problems = Vec::new();
    let Some(main) = main else {
        let all: Vec<&TableRef> = selection.full.iter().chain(&selection.insert_only).collect();
        return Err(refusal(format!(
            "publication {} does not exist. Run on the primary: CREATE PUBLICATION {} FOR TABLE {}",
            names.publication,
            names.publication,
            list(&all)
        )));
    };
    if !main.publishes_every_change() {
        problems.push(format!(
            "publication {} does not publish every kind of change (insert, update, delete, truncate), so some would be lost: ALTER PUBLICATION {} SET (publish = 'insert, update, delete, truncate')",
            names.publication, names.publication
        ));
    }
    let in_inserts = |t: &TableRef| inserts.as_ref().is_some_and(|p| p.tables.contains(t));
    let missing: Vec<&TableRef> = selection
        .full
        .iter()
        .chain(selection.insert_only.iter().filter(|t| !in_inserts(t)))
        .filter(|t| !main.tables.contains(t))
        .collect();
    if !missing.is_empty() {
        problems.push(format!(
            "publication {} lacks {}: ALTER PUBLICATION {} ADD TABLE {}",
            names.publication,
            list(&missing),
            names.publication,
            list(&missing)
        ));
    }
    for (name, p) in [(&names.publication, Some(&main)), (&names.insert_publication, inserts.as_ref())] {
        let Some(p) = p else { continue };
        let filtered: Vec<&TableRef> = p.row_filtered.iter().filter(|t| selection.captures(t)).collect();
        if !filtered.is_empty() {
            problems.push(format!(
                "publication {name} filters the rows of {} (WHERE): the snapshot would read rows whose updates and deletes are never streamed; drop the filter (ALTER PUBLICATION {name} SET TABLE ... without WHERE)",
                list(&filtered)
            ));
        }
    }
    if !problems.is_empty() {
        return Err(refusal(problems.join("; ")));
    }
    let mut streamed = vec![names.publication.clone()];
    if inserts.is_some() {
        streamed.push(names.insert_publication.clone());
    }
    Ok(streamed)
}

fn refusal(what: String) -> SourceError {
    SourceError::Fatal(format!(
        "source.read_only: cdcd does not create or change publications, and {what}. (Tables without a primary key or replica identity may instead be published with publish = 'insert, truncate', their inserts only.)"
    ))
}

/// Whether publication membership lets a table found while streaming be captured; says once per
/// table what to run on the primary when it does not.
pub async fn may_capture(
    catalog: &Catalog,
    publications: &[String],
    table: &TableRef,
    told: &mut BTreeSet<TableRef>,
) -> Result<bool, SourceError> {
    // A table with a replica identity needs the main publication (the first), which publishes
    // every change; one without may be in either.
    let needs_main = catalog.table_meta_by_name(table).await?.publishes_updates();
    let candidates = if needs_main { &publications[..publications.len().min(1)] } else { publications };
    for name in candidates {
        if catalog.publication(name).await?.is_some_and(|p| p.tables.contains(table) && !p.row_filtered.contains(table))
        {
            return Ok(true);
        }
    }
    if told.insert(table.clone()) {
        tracing::warn!(
            table = %table,
            "a new table matches source.tables but no publication of this connector publishes its changes (unfiltered), and source.read_only forbids adding it; run on the primary: ALTER PUBLICATION {} ADD TABLE {}",
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
