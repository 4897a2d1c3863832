//! How far the binary log has run ahead of this connector's checkpoint, read on a connection of
//! its own from `SHOW BINARY LOGS` (file sizes): the bytes after the checkpoint's offset in its
//! file plus every later file. MySQL keeps binlogs by expiry settings, not by reader, so there
//! is no retained-log figure.

use futures_util::future::BoxFuture;
use mysql_async::prelude::*;

use super::{connect, my_err};
use crate::config::MysqlSourceConfig;
use crate::core::position::{file_seq, Position};
use crate::error::SourceError;
use crate::source::{Backlog, BacklogProbe};

pub struct BinlogBacklog {
    my: MysqlSourceConfig,
    conn: Option<mysql_async::Conn>,
}

impl BinlogBacklog {
    pub fn new(my: MysqlSourceConfig) -> Self {
        BinlogBacklog { my, conn: None }
    }

    async fn query(&mut self, confirmed: Option<&Position>) -> Result<Backlog, SourceError> {
        let Some(Position::Mysql(at)) = confirmed else {
            return Err(SourceError::Transient("no binlog checkpoint yet".into()));
        };
        if self.conn.is_none() {
            self.conn = Some(connect(&self.my).await?);
        }
        let conn = self.conn.as_mut().expect("connected above");
        let logs: Vec<(String, u64)> = conn
            .query_map("SHOW BINARY LOGS", |row: mysql_async::Row| {
                (row.get::<String, _>(0).unwrap_or_default(), row.get::<u64, _>(1).unwrap_or(0))
            })
            .await
            .map_err(|e| my_err("listing binary logs", e))?;
        Ok(Backlog { behind_bytes: bytes_after(&logs, &at.file, at.pos), retained_bytes: None })
    }
}

/// Bytes in `logs` (name, size) after offset `pos` of `file`.
fn bytes_after(logs: &[(String, u64)], file: &str, pos: u64) -> u64 {
    let seq = file_seq(file);
    logs.iter()
        .map(|(name, size)| match file_seq(name).cmp(&seq) {
            std::cmp::Ordering::Greater => *size,
            std::cmp::Ordering::Equal => size.saturating_sub(pos),
            std::cmp::Ordering::Less => 0,
        })
        .sum()
}

impl BacklogProbe for BinlogBacklog {
    fn read<'a>(&'a mut self, confirmed: Option<&'a Position>) -> BoxFuture<'a, Result<Backlog, SourceError>> {
        Box::pin(async move {
            let result =
                tokio::time::timeout(std::time::Duration::from_secs(self.my.timeout_secs), self.query(confirmed))
                    .await
                    .unwrap_or_else(|_| Err(SourceError::Transient("reading binlog sizes timed out".into())));
            if result.is_err() {
                self.conn = None;
            }
            result
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_the_rest_of_the_checkpoint_file_and_every_later_one() {
        let logs = [("b.000001".to_string(), 1000), ("b.000002".to_string(), 500), ("b.000003".to_string(), 300)];
        assert_eq!(bytes_after(&logs, "b.000002", 200), 300 + 300);
        assert_eq!(bytes_after(&logs, "b.000003", 300), 0);
        // An offset past what the listing says (the file grew since): never negative.
        assert_eq!(bytes_after(&logs, "b.000003", 400), 0);
    }
}
