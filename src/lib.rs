//! cdcd: change-data-capture from PostgreSQL (and later MySQL/MariaDB) into Kafka.
//!
//! The data path is one straight line: a source decodes changes, the shared [`core::envelope`]
//! turns them into Debezium-compatible records, a sink delivers them, and deliveries flow back
//! through the [`core::acks::AckTracker`] to the checkpoint, which only ever moves forward.

pub mod config;
pub mod core;
pub mod error;
pub mod logging;
pub mod pipeline;
pub mod runner;
pub mod sink;
pub mod source;
