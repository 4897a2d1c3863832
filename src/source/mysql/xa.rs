//! XA transactions in the binlog. `XA PREPARE` writes the transaction's row events as a group of
//! their own; whether they happened is only known at the later `XA COMMIT` (a group of its own
//! too, or, for `XA COMMIT ... ONE PHASE` on MySQL, the end of the same group) or `XA ROLLBACK`.
//! A replica applies at PREPARE and undoes at ROLLBACK; a change stream may not publish what may
//! never have existed. So a prepared transaction's changes are encoded and held in memory until
//! its outcome: sent as part of the `XA COMMIT` group, or dropped at `XA ROLLBACK`. While one is
//! held the checkpoint stays before its PREPARE ([`crate::emit::Emitter::hold`]), so a crash
//! before the outcome re-reads it.
//!
//! MariaDB (10.5+) marks the PREPARE group's GTID event (`FL_PREPARED_XA`, with the XID) and
//! the outcome's (`FL_COMPLETED_XA`); MySQL opens the group with `XA START xid`. Both name the
//! XID in the outcome's statement as `X'gtrid',X'bqual',formatID`.

use std::collections::HashMap;

use super::TableName;
use crate::core::acks::HoldId;
use crate::emit::HeldRecord;
use crate::error::SourceError;

/// One held change and its table (for snapshot deduplication when it is sent).
pub struct Held {
    pub record: HeldRecord,
    pub table: TableName,
    /// The row's identity for snapshot deduplication (see `Table::identity`).
    pub identity: Option<Vec<u8>>,
    /// The whole row the change replaced or removed, which snapshot chunks of a table not cut
    /// by a unique key are matched by.
    pub image: Option<Vec<u8>>,
}

/// An XA transaction id, as `gtrid-hex,bqual-hex,formatID`, however the log spelled it.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Xid(String);

impl std::fmt::Display for Xid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl Xid {
    pub fn new(gtrid: &[u8], bqual: &[u8], format: i64) -> Xid {
        let hex = crate::core::text_forms::hex;
        Xid(format!("{},{},{format}", hex(gtrid), hex(bqual)))
    }
}

/// What an `XA ...` statement in the binlog does.
#[derive(Debug, PartialEq, Eq)]
pub enum XaStatement {
    Start(Xid),
    /// `one_phase`: `XA COMMIT ... ONE PHASE`, which ends the group that holds the changes.
    Commit {
        xid: Xid,
        one_phase: bool,
    },
    Rollback(Xid),
}

/// `XA START|BEGIN|COMMIT|ROLLBACK xid [ONE PHASE]`; `None` for anything else (`XA END` too).
pub fn statement(sql: &str) -> Option<XaStatement> {
    let rest = keyword(sql.trim_start(), "XA")?;
    let (verb, rest) = rest.trim_start().split_once(|c: char| c.is_whitespace())?;
    let (xid, rest) = parse_xid(rest.trim_start())?;
    let one_phase = keyword(rest.trim_start(), "ONE")
        .and_then(|r| keyword(r.trim_start(), "PHASE"))
        .is_some_and(|r| r.trim().is_empty());
    match verb.to_ascii_uppercase().as_str() {
        "START" | "BEGIN" => Some(XaStatement::Start(xid)),
        "COMMIT" => Some(XaStatement::Commit { xid, one_phase }),
        "ROLLBACK" => Some(XaStatement::Rollback(xid)),
        _ => None,
    }
}

fn keyword<'a>(s: &'a str, kw: &str) -> Option<&'a str> {
    let head = s.get(..kw.len())?;
    let rest = &s[kw.len()..];
    (head.eq_ignore_ascii_case(kw) && (rest.is_empty() || rest.starts_with(char::is_whitespace))).then_some(rest)
}

/// `gtrid [, bqual [, formatID]]`, each string as `X'hex'` or `'text'`: the id and what follows.
fn parse_xid(s: &str) -> Option<(Xid, &str)> {
    let (gtrid, mut rest) = string_literal(s)?;
    let mut bqual = Vec::new();
    let mut format = 1;
    if let Some(r) = rest.trim_start().strip_prefix(',') {
        let (b, r) = string_literal(r.trim_start())?;
        bqual = b;
        rest = r;
        if let Some(r) = rest.trim_start().strip_prefix(',') {
            let r = r.trim_start();
            let end = r.find(|c: char| !c.is_ascii_digit()).unwrap_or(r.len());
            format = r[..end].parse().ok()?;
            rest = &r[end..];
        }
    }
    Some((Xid::new(&gtrid, &bqual, format), rest))
}

fn string_literal(s: &str) -> Option<(Vec<u8>, &str)> {
    if let Some(body) = s.strip_prefix("X'").or_else(|| s.strip_prefix("x'")) {
        let end = body.find('\'')?;
        let hex = &body[..end];
        let bytes = (0..hex.len())
            .step_by(2)
            .map(|i| hex.get(i..i + 2).and_then(|h| u8::from_str_radix(h, 16).ok()))
            .collect::<Option<Vec<u8>>>()?;
        return Some((bytes, &body[end + 1..]));
    }
    let body = s.strip_prefix('\'')?;
    let mut out = Vec::new();
    let mut chars = body.char_indices();
    while let Some((i, c)) = chars.next() {
        if c == '\'' {
            if body[i + 1..].starts_with('\'') {
                out.push(b'\'');
                chars.next();
                continue;
            }
            return Some((out, &body[i + 1..]));
        }
        let mut buf = [0; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
    }
    None
}

/// MariaDB GTID event flags (log_event.h).
const FL_GROUP_COMMIT_ID: u8 = 2;
const FL_PREPARED_XA: u8 = 64;

/// The XID of a MariaDB GTID event that opens an `XA PREPARE` group (body without header).
pub fn maria_prepared_xid(body: &[u8]) -> Option<Xid> {
    let flags = *body.get(12)?;
    if flags & FL_PREPARED_XA == 0 {
        return None;
    }
    let at = if flags & FL_GROUP_COMMIT_ID != 0 { 21 } else { 13 };
    let format = u32::from_le_bytes(body.get(at..at + 4)?.try_into().ok()?);
    let (gtrid_len, bqual_len) = (*body.get(at + 4)? as usize, *body.get(at + 5)? as usize);
    let data = body.get(at + 6..at + 6 + gtrid_len + bqual_len)?;
    Some(Xid::new(&data[..gtrid_len], &data[gtrid_len..], i64::from(format)))
}

/// One prepared transaction: its changes, and the hold that keeps the checkpoint before it
/// (none when it changed no captured table: there is nothing to re-read).
struct Prepared {
    records: Vec<Held>,
    bytes: usize,
    hold: Option<HoldId>,
}

/// Prepared transactions awaiting their outcome, within a memory bound.
pub struct PreparedSet {
    open: HashMap<Xid, Prepared>,
    bytes: usize,
    limit: usize,
}

impl PreparedSet {
    pub fn new(limit_bytes: usize) -> Self {
        PreparedSet { open: HashMap::new(), bytes: 0, limit: limit_bytes }
    }

    /// Counts `more` bytes of the group being read against the bound.
    pub fn reserve(&self, group_bytes: usize) -> Result<(), SourceError> {
        if self.bytes + group_bytes > self.limit {
            return Err(SourceError::Fatal(format!(
                "prepared XA transactions hold more than source.xa_max_prepared_mb = {} MB of changes waiting for their XA COMMIT or XA ROLLBACK; raise it (the changes are held in memory until the outcome is in the binlog), or end the prepared transactions (XA RECOVER lists them)",
                self.limit >> 20
            )));
        }
        Ok(())
    }

    /// The PREPARE of `xid` with its changes; `hold` keeps the checkpoint before it.
    pub fn prepare(&mut self, xid: Xid, records: Vec<Held>, hold: Option<HoldId>) -> Option<HoldId> {
        let bytes = records.iter().map(|h| h.record.size()).sum();
        self.bytes += bytes;
        let replaced = self.open.insert(xid, Prepared { records, bytes, hold })?;
        self.bytes -= replaced.bytes;
        replaced.hold
    }

    /// The outcome of `xid`: its changes and its hold, if its PREPARE was read.
    pub fn take(&mut self, xid: &Xid) -> Option<(Vec<Held>, Option<HoldId>)> {
        let p = self.open.remove(xid)?;
        self.bytes -= p.bytes;
        Some((p.records, p.hold))
    }

    pub fn len(&self) -> usize {
        self.open.len()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statements_as_the_binlog_writes_them() {
        // MariaDB 10.11 and MySQL 8+ write the XID in hex.
        let x2 = Xid::new(b"x2", b"", 1);
        assert_eq!(
            statement("XA COMMIT X'7832',X'',1"),
            Some(XaStatement::Commit { xid: x2.clone(), one_phase: false })
        );
        assert_eq!(statement("XA ROLLBACK X'7832',X'',1"), Some(XaStatement::Rollback(x2.clone())));
        assert_eq!(statement("XA START X'7832',X'',1"), Some(XaStatement::Start(x2.clone())));
        assert_eq!(
            statement("XA COMMIT X'7832',X'',1 ONE PHASE"),
            Some(XaStatement::Commit { xid: x2.clone(), one_phase: true })
        );
        // As a user types it.
        assert_eq!(statement("xa commit 'x2'"), Some(XaStatement::Commit { xid: x2, one_phase: false }));
        assert_eq!(
            statement("XA COMMIT 'it''s', 'b', 7"),
            Some(XaStatement::Commit { xid: Xid::new(b"it's", b"b", 7), one_phase: false })
        );
        assert_eq!(statement("XA END X'7832',X'',1"), None);
        assert_eq!(statement("XACOMMIT 'x'"), None);
        assert_eq!(statement("COMMIT"), None);
    }

    #[test]
    fn mariadb_prepared_gtid_carries_the_xid() {
        // GTID 0-1-666 of `XA PREPARE 'x1'`, captured from MariaDB 10.11 (body, CRC stripped).
        let body = [0x9a, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x4c, 0x01, 0, 0, 0, 0x02, 0x00, b'x', b'1', 0x01, 0xff];
        assert_eq!(maria_prepared_xid(&body), Some(Xid::new(b"x1", b"", 1)));
        // The XA COMMIT's GTID (FL_COMPLETED_XA, not prepared).
        let completed = [0x9d, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x8d, 0x01, 0, 0, 0, 0x02, 0x00, b'x', b'2'];
        assert_eq!(maria_prepared_xid(&completed), None);
        assert_eq!(maria_prepared_xid(&body[..18]), None, "truncated: no XID, no panic");
    }
}
