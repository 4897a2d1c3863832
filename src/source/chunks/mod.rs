//! Chunked snapshots, shared by both sources (the watermark algorithm of Netflix's DBLog, as in
//! Debezium's incremental snapshots): the [`ledger`] that turns emitted chunks into checkpointed
//! progress, the [`engine`] that runs the planner and the reader workers and hands read chunks
//! to the stream, and the [`signal`]s that ask for a snapshot while the stream runs.
//!
//! A source supplies a [`engine::ChunkReader`] (how to cut and read ranges of its tables) and
//! emits the chunks the engine hands it, in log order, between two transactions.

pub mod engine;
pub mod ledger;
pub mod signal;

pub use engine::{ChunkReader, Piece, SnapshotEngine};
pub use ledger::{reconcile_progress, Job};

use crate::error::SourceError;

/// Why `e` ends the snapshot of a table read with a signal's `filter`, when the source says
/// the error comes `from_filter` (bad syntax, an unknown column, a write, running past the
/// statement timeout): it would come back on every retry, so the request ends, not the session.
/// Other errors keep their own course (transient: retried; definite: the connector stops).
pub fn filter_failure(filter: Option<&str>, e: &SourceError, from_filter: bool) -> Option<String> {
    let filter = filter?;
    from_filter.then(|| {
        format!("the signal's filter `{filter}` cannot be used: {e}; send the signal again with a filter that works")
    })
}
