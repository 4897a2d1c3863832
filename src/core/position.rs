//! Source positions. Each is a newtype with a total order, so "only moves forward" can be
//! enforced by comparing, never by convention.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::core::json;

/// A PostgreSQL write-ahead-log location (`pg_lsn`), printed the way PostgreSQL prints it: `16/B374D848`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(pub u64);

impl Lsn {
    pub const ZERO: Lsn = Lsn(0);
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("`{0}` is not an LSN (expected two hex numbers like 16/B374D848)")]
pub struct LsnParseError(String);

impl FromStr for Lsn {
    type Err = LsnParseError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || LsnParseError(s.to_string());
        let (hi, lo) = s.split_once('/').ok_or_else(err)?;
        let hi = u32::from_str_radix(hi, 16).map_err(|_| err())?;
        let lo = u32::from_str_radix(lo, 16).map_err(|_| err())?;
        Ok(Lsn(((hi as u64) << 32) | lo as u64))
    }
}

impl Serialize for Lsn {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Lsn {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A place in a MySQL / MariaDB binary log: file and byte offset, plus the server's GTID state
/// after everything before that point (when GTIDs are on). Ordered by (file sequence, offset);
/// GTID sets alone are only partially ordered, the file coordinates of one server are total.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BinlogPosition {
    pub file: String,
    pub pos: u64,
    /// `0-1-42,1-2-7` (MariaDB) or `uuid:1-100,uuid2:1-5` (MySQL); absent without GTIDs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gtid: Option<String>,
}

impl BinlogPosition {
    /// The numeric suffix of `binlog.000042`: binlog files are numbered in order.
    pub fn file_seq(&self) -> u64 {
        file_seq(&self.file)
    }

    /// One 64-bit, totally ordered number: file sequence in the high half, offset in the low
    /// half (binlog offsets are 32-bit). Used in the dedupe position.
    pub fn as_u64(&self) -> u64 {
        binlog_u64(&self.file, self.pos)
    }
}

/// [`BinlogPosition::as_u64`] without building a position.
pub fn binlog_u64(file: &str, pos: u64) -> u64 {
    (file_seq(file) << 32) | (pos & 0xFFFF_FFFF)
}

pub fn file_seq(file: &str) -> u64 {
    file.rsplit('.').next().and_then(|s| s.parse().ok()).unwrap_or(0)
}

impl PartialOrd for BinlogPosition {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some((self.file_seq(), self.pos).cmp(&(other.file_seq(), other.pos)))
    }
}

/// Where a source may resume: the point up to which every change has been delivered.
/// One variant per source kind; comparing positions of different kinds is meaningless and
/// yields `None`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Position {
    Postgres { lsn: Lsn },
    Mysql(BinlogPosition),
}

impl PartialOrd for Position {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        match (self, other) {
            (Position::Postgres { lsn: a }, Position::Postgres { lsn: b }) => Some(a.cmp(b)),
            (Position::Mysql(a), Position::Mysql(b)) => a.partial_cmp(b),
            _ => None,
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Position::Postgres { lsn } => write!(f, "lsn {lsn}"),
            Position::Mysql(b) => match &b.gtid {
                Some(g) => write!(f, "{}:{} (gtid {g})", b.file, b.pos),
                None => write!(f, "{}:{}", b.file, b.pos),
            },
        }
    }
}

/// The per-event dedupe position documented in docs/envelope.md: a fixed-width string that sorts
/// (as a plain string) in source order. `<16 hex digits of the transaction's commit LSN>-<phase>-<10-digit index>`;
/// phase 0 is the initial snapshot (LSN = the slot's consistent point), phase 1 streamed changes.
/// MySQL sources pass [`BinlogPosition::as_u64`] of the transaction's start as the "LSN".
pub fn event_position(out: &mut Vec<u8>, lsn: Lsn, snapshot: bool, index: u64) {
    json::write_hex16(out, lsn.0);
    out.extend_from_slice(if snapshot { b"-0-" } else { b"-1-" });
    json::write_padded(out, index, 10);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lsn_round_trips_postgres_text_form() {
        let lsn: Lsn = "16/B374D848".parse().unwrap();
        assert_eq!(lsn.0, 0x16_B374_D848);
        assert_eq!(lsn.to_string(), "16/B374D848");
        assert_eq!("0/0".parse::<Lsn>().unwrap(), Lsn::ZERO);
    }

    #[test]
    fn lsn_rejects_garbage() {
        for bad in ["", "16", "x/1", "1/", "1/2/3", "100000000/0"] {
            assert!(bad.parse::<Lsn>().is_err(), "{bad} should not parse");
        }
    }

    #[test]
    fn binlog_positions_order_by_file_then_offset() {
        let p = |f: &str, pos| BinlogPosition { file: f.into(), pos, gtid: None };
        assert!(p("binlog.000002", 4) > p("binlog.000001", 99_999));
        assert!(p("binlog.000002", 5) > p("binlog.000002", 4));
        assert!(p("binlog.000010", 4).as_u64() > p("binlog.000009", 0xFFFF_FFFF).as_u64());
        let json = serde_json::to_string(&Position::Mysql(BinlogPosition {
            gtid: Some("0-1-5".into()),
            ..p("binlog.000003", 77)
        }))
        .unwrap();
        assert_eq!(json, r#"{"type":"mysql","file":"binlog.000003","pos":77,"gtid":"0-1-5"}"#);
        let back: Position = serde_json::from_str(&json).unwrap();
        assert_eq!(back.to_string(), "binlog.000003:77 (gtid 0-1-5)");
    }

    #[test]
    fn event_positions_sort_as_strings_in_source_order() {
        let mut v = Vec::new();
        let mut pos = |lsn, snap, idx| {
            v.clear();
            event_position(&mut v, Lsn(lsn), snap, idx);
            String::from_utf8(v.clone()).unwrap()
        };
        let snap_last = pos(0x100, true, 99_999);
        let first_stream = pos(0x100, false, 0);
        let later = pos(0x1000, false, 0);
        let big = pos(0xFFFF_0000_0000, false, 3);
        assert!(snap_last < first_stream);
        assert!(first_stream < later);
        assert!(later < big);
        assert_eq!(first_stream.len(), big.len());
        assert_eq!(pos(0x16_B374_D848, false, 42), "00000016B374D848-1-0000000042");
        assert_eq!(pos(1, true, 12_345_678_901), "0000000000000001-0-12345678901");
    }
}
