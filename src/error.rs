//! Top-level error type and its mapping to exit codes: 0 ok, 2 bad configuration, 1 anything
//! else that stopped the daemon. Transient trouble (a dropped connection, a broker that is
//! down) is retried inside the connector and never reaches this type.

use crate::config::ConfigError;
use crate::core::checkpoint::CheckpointError;
use crate::core::txn::FramingError;

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
    /// The database server refused something; its error code is kept so callers match on the
    /// code, never on message text.
    #[error("{0}")]
    Server(Box<ServerFailure>),
    /// The source misread its log's transaction structure (or the log is damaged). Stopping is
    /// the only safe move: continuing could checkpoint past undelivered changes.
    #[error("transaction framing: {0}; cdcd stopped rather than risk a checkpoint inside a transaction, please report this with the server version")]
    Framing(Box<FramingError>),
}

impl SourceError {
    pub fn is_transient(&self) -> bool {
        match self {
            SourceError::Transient(_) => true,
            SourceError::Server(s) => s.transient,
            SourceError::Fatal(_) | SourceError::Framing(_) => false,
        }
    }

    /// The server's error code (SQLSTATE for PostgreSQL, error number for MySQL), if the server
    /// reported this error.
    pub fn server_code(&self) -> Option<&str> {
        match self {
            SourceError::Server(s) => Some(&s.code),
            _ => None,
        }
    }
}

/// An error reported by a source database server.
#[derive(Debug, Clone)]
pub struct ServerFailure {
    /// What cdcd was doing.
    pub context: String,
    /// `SQLSTATE` or `MySQL error`.
    pub code_label: &'static str,
    pub code: String,
    /// The server's message, with its detail and hint when it sent them.
    pub message: String,
    /// What the user can do about it.
    pub fix: Option<String>,
    pub transient: bool,
}

impl ServerFailure {
    /// Marks the failure definite and says how to fix it.
    pub fn definite(mut self, fix: impl Into<String>) -> SourceError {
        self.transient = false;
        self.fix = Some(fix.into());
        self.into()
    }
}

impl From<FramingError> for SourceError {
    fn from(e: FramingError) -> Self {
        SourceError::Framing(Box::new(e))
    }
}

impl From<ServerFailure> for SourceError {
    fn from(f: ServerFailure) -> Self {
        SourceError::Server(Box::new(f))
    }
}

impl std::fmt::Display for ServerFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {} ({} {})", self.context, self.message, self.code_label, self.code)?;
        if let Some(fix) = &self.fix {
            write!(f, ": {fix}")?;
        }
        Ok(())
    }
}

/// A problem delivering to a sink that retrying will not fix.
#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("sink configuration: {0}")]
    Config(String),
    #[error("delivery failed: {0}")]
    Delivery(String),
    /// The broker refused a batch as too large; re-sending from the checkpoint one record at
    /// a time tells which record it was.
    #[error("{0}")]
    Replay(String),
    #[error("{0}")]
    Io(String),
    /// An exactly-once transaction did not commit and was aborted: its records are re-read
    /// from the last commit.
    #[error("{0}")]
    Aborted(String),
    /// Another process took over the connector (its transactional id, or the election), or
    /// the transactional producer is finished: this process steps down.
    #[error("{0}")]
    SteppedDown(String),
}

/// Why one source session ended early.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Sink(#[from] SinkError),
}
