//! Source connectors, one folder each, behind the [`Source`] trait. A source depends on `core`
//! and writes into an [`Emitter`]; it knows nothing of the pipeline that drives it.

pub mod chunks;
pub mod columns;
mod fixed_schemas;
pub mod mysql;
pub mod postgres;
pub mod request;
pub mod routes;
pub mod tables;
pub mod tls_errors;

use futures_util::future::BoxFuture;
use tokio::sync::watch;

use crate::config::{ConnectorConfig, SourceConfig};
use crate::core::checkpoint::Checkpoint;
use crate::core::position::Position;
use crate::emit::Emitter;
use crate::error::{SessionError, SourceError};

/// What one source session gets from the pipeline.
pub struct Session<'a> {
    /// Where to resume: everything up to it was delivered. `None` on the very first run.
    pub checkpoint: Option<Checkpoint>,
    /// Where changes go, framed into transactions.
    pub emitter: &'a mut Emitter,
    /// The position most recently made durable by the checkpoint (for sources that report
    /// progress to the server, like PostgreSQL's flush LSN).
    pub durable: watch::Receiver<Option<Position>>,
    /// Becomes true when the daemon is asked to stop.
    pub shutdown: watch::Receiver<bool>,
}

/// A database whose log cdcd reads.
pub trait Source: Send + Sync {
    /// One session: connect, reconcile the checkpoint with the server, snapshot if needed, then
    /// stream until shutdown (Ok) or an error. Transient errors make the pipeline start a new
    /// session from the last checkpoint; definite ones stop the connector.
    fn run_session<'a>(&'a self, session: Session<'a>) -> BoxFuture<'a, Result<(), SessionError>>;

    /// Something that asks the server how far its log is ahead of this connector, for metrics.
    /// It keeps its own connection, apart from the session's.
    fn backlog_probe(&self) -> Box<dyn BacklogProbe>;
}

pub use crate::core::status::Backlog;

/// Reads a [`Backlog`] from the server.
pub trait BacklogProbe: Send {
    /// `confirmed` is the connector's durable checkpoint, for sources whose server does not
    /// track the reader's position.
    fn read<'a>(&'a mut self, confirmed: Option<&'a Position>) -> BoxFuture<'a, Result<Backlog, SourceError>>;
}

/// A probe for a source whose settings cannot be read (the session reports why).
pub struct NoBacklog(pub String);

impl BacklogProbe for NoBacklog {
    fn read<'a>(&'a mut self, _confirmed: Option<&'a Position>) -> BoxFuture<'a, Result<Backlog, SourceError>> {
        Box::pin(async move { Err(SourceError::Fatal(self.0.clone())) })
    }
}

/// A spawned task that ends when this handle is dropped, so helpers die with their session.
pub struct TaskGuard(pub tokio::task::JoinHandle<()>);

impl Drop for TaskGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The source a connector's configuration describes.
pub fn for_config(cfg: &ConnectorConfig) -> Box<dyn Source> {
    match &cfg.source {
        SourceConfig::Postgres(pg) => Box::new(postgres::PostgresSource::new(cfg.clone(), pg.clone())),
        SourceConfig::Mysql(my) => Box::new(mysql::MysqlSource::new(cfg.clone(), my.clone())),
    }
}

/// How `cdcd check` rates one finding.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Ok,
    /// Works, with a limit the user should know about (e.g. a table captured inserts-only).
    Note,
    Fail,
}

/// One checked prerequisite, as `cdcd check` prints it.
pub struct Finding {
    pub level: Level,
    pub what: String,
    /// What to do about a failure, or how to lift a noted limit.
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(what: impl Into<String>) -> Finding {
        Finding { level: Level::Ok, what: what.into(), fix: None }
    }

    pub fn note(what: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { level: Level::Note, what: what.into(), fix: Some(fix.into()) }
    }

    pub fn fail(what: impl Into<String>, fix: impl Into<String>) -> Finding {
        Finding { level: Level::Fail, what: what.into(), fix: Some(fix.into()) }
    }
}
