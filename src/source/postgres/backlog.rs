//! What the server holds for this connector, read on a connection of its own: WAL written
//! after the slot's `confirmed_flush_lsn` (lag in bytes) and WAL kept from the slot's
//! `restart_lsn` on (retained WAL). Also the optional heartbeat, which writes to the captured
//! database on a timer.

use std::time::Duration;

use futures_util::future::BoxFuture;

use super::catalog::{sql_err, Catalog};
use super::tls::PgUrl;
use crate::core::position::Position;
use crate::error::SourceError;
use crate::source::{Backlog, BacklogProbe};

/// The end of the server's WAL: the insert position on a primary, the replayed one on a standby.
const WAL_END: &str = "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn() ELSE pg_current_wal_lsn() END";

pub const DEFAULT_HEARTBEAT_QUERY: &str = "SELECT pg_logical_emit_message(false, 'cdcd_heartbeat', '')";

pub struct SlotBacklog {
    url: PgUrl,
    slot: String,
    application: String,
    timeout: Duration,
    catalog: Option<Catalog>,
}

impl SlotBacklog {
    pub fn new(url: PgUrl, slot: String, application: String, timeout: Duration) -> Self {
        SlotBacklog { url, slot, application, timeout, catalog: None }
    }

    async fn query(&mut self) -> Result<Backlog, SourceError> {
        if self.catalog.is_none() {
            self.catalog = Some(Catalog::connect(&self.url, &self.application, self.timeout).await?);
        }
        let catalog = self.catalog.as_ref().expect("connected above");
        let sql = format!(
            "SELECT GREATEST({WAL_END} - confirmed_flush_lsn, 0)::int8, GREATEST({WAL_END} - restart_lsn, 0)::int8
             FROM pg_replication_slots WHERE slot_name = $1"
        );
        let row = tokio::time::timeout(self.timeout, catalog.client().query_opt(&sql, &[&self.slot]))
            .await
            .map_err(|_| SourceError::Transient("reading the slot's backlog timed out".into()))?
            .map_err(|e| sql_err("reading the slot's backlog", e))?
            .ok_or_else(|| SourceError::Transient(format!("replication slot `{}` does not exist (yet)", self.slot)))?;
        let behind: Option<i64> = row.get(0);
        let retained: Option<i64> = row.get(1);
        Ok(Backlog {
            behind_bytes: behind.unwrap_or(0).max(0) as u64,
            retained_bytes: retained.map(|r| r.max(0) as u64),
        })
    }
}

impl BacklogProbe for SlotBacklog {
    fn read<'a>(&'a mut self, _confirmed: Option<&'a Position>) -> BoxFuture<'a, Result<Backlog, SourceError>> {
        Box::pin(async move {
            let result = self.query().await;
            if result.is_err() {
                // Reconnect on the next read: the error may have been the connection's.
                self.catalog = None;
            }
            result
        })
    }
}

/// Runs `query` every `interval` until dropped (abort the task). Failures are logged, never
/// fatal: the heartbeat is a help for the slot, and the session notices a dead server itself.
pub async fn heartbeat(url: PgUrl, application: String, query: String, interval: Duration, timeout: Duration) {
    let mut catalog: Option<Catalog> = None;
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tick.tick().await;
        let result = async {
            if catalog.is_none() {
                catalog = Some(Catalog::connect(&url, &application, timeout).await?);
            }
            let c = catalog.as_ref().expect("connected above");
            tokio::time::timeout(timeout, c.client().batch_execute(&query))
                .await
                .map_err(|_| SourceError::Transient("the heartbeat query timed out".into()))?
                .map_err(|e| sql_err("the heartbeat query", e))
        }
        .await;
        match result {
            Ok(()) => {
                if std::mem::take(&mut failing) {
                    tracing::info!("heartbeat query succeeds again");
                }
                tracing::trace!("heartbeat written");
            }
            Err(e) => {
                catalog = None;
                if !std::mem::replace(&mut failing, true) {
                    tracing::warn!(error = %e, "heartbeat query failed (source.heartbeat_query); retrying every interval");
                }
            }
        }
    }
}
