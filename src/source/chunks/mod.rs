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

use crate::error::SourceError;

/// Why `e` ends the snapshot of a table read with a signal's `filter`: an error the server
/// gives for the query itself (bad syntax, an unknown column, a write, running past the
/// statement timeout) would come back on every retry, so the request ends, not the session.
pub fn filter_failure(filter: Option<&str>, e: &SourceError, timed_out: bool) -> Option<String> {
    let filter = filter?;
    let from_query = e.server_code().is_some() && (timed_out || !e.is_transient());
    from_query.then(|| {
        format!("the signal's filter `{filter}` cannot be used: {e}; send the signal again with a filter that works")
    })
}
pub use ledger::{reconcile_progress, Job};
