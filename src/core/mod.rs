//! Types shared by every connector: positions, the envelope, acknowledgements, checkpoints.
//! Connectors depend on this module; it depends on no connector.

pub mod acks;
pub mod checkpoint;
pub mod commit_gate;
pub mod connect;
pub mod envelope;
pub mod json;
pub mod pause;
pub mod position;
pub mod recent_keys;
pub mod snapshot;
pub mod status;
pub mod text_forms;
pub mod txn;
pub mod txn_meta;
