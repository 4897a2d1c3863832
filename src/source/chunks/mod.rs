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
