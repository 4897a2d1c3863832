//! cdcd: change-data-capture from PostgreSQL and MySQL/MariaDB into Kafka.
//!
//! The data path is one straight line: a [`source::Source`] frames its log into transactions and
//! writes them into the [`emit::Emitter`], which renders the shared [`core::envelope`] and hands
//! records to a [`sink`]; deliveries flow back through the [`core::acks::AckTracker`] to the
//! checkpoint, which only ever moves forward. [`pipeline`] wires one connector together.

pub mod config;
pub mod core;
pub mod emit;
pub mod encode;
pub mod error;
#[doc(hidden)]
pub mod fuzz;
pub mod http;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod pipeline;
pub mod reload;
pub mod runner;
pub mod secrets;
pub mod sink;
pub mod source;
