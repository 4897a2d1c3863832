//! Top-level error type and its mapping to exit codes: 0 ok, 2 bad configuration, 1 anything
//! else that stopped the daemon. Transient trouble (a dropped connection, a broker that is
//! down) is retried inside the connector and never reaches this type.

use crate::config::ConfigError;
use crate::core::checkpoint::CheckpointError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("configuration error: {0}")]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error("connector `{connector}`: {source}")]
    Source { connector: String, source: SourceError },
    #[error("connector `{connector}`: {source}")]
    Sink { connector: String, source: SinkError },
    #[error("{0}")]
    Runtime(String),
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Config(_) => 2,
            _ => 1,
        }
    }
}

/// A problem reading from a source database.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// Worth retrying with backoff: the connection dropped, the server restarted.
    #[error("{0}")]
    Transient(String),
    /// Retrying cannot help; the message says what is wrong and how to fix it.
    #[error("{0}")]
    Fatal(String),
}

impl SourceError {
    pub fn is_transient(&self) -> bool {
        matches!(self, SourceError::Transient(_))
    }
}

/// A problem delivering to a sink that retrying will not fix.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink configuration: {0}")]
    Config(String),
    #[error("delivery failed: {0}")]
    Delivery(String),
    #[error("{0}")]
    Io(String),
}

/// Why one source session ended early.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}
