//! The streaming-replication sub-protocol inside CopyBoth: XLogData (`w`) and primary keepalive
//! (`k`) from the server, standby status updates (`r`) from us.

use bytes::{BufMut, Bytes, BytesMut};

use crate::core::position::Lsn;

/// Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01).
pub const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

#[derive(Debug)]
pub enum ReplicationMessage {
    /// A chunk of logical-decoding output; `wal_start` is the LSN of the change it carries.
    XLogData { wal_start: Lsn, data: Bytes },
    /// The server's progress; `wal_end` is how far it has sent. `reply` asks for a status update now.
    Keepalive { wal_end: Lsn, reply: bool },
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("malformed replication message: {0}")]
pub struct ProtocolError(pub String);

pub fn parse(mut b: Bytes) -> Result<ReplicationMessage, ProtocolError> {
    let short = || ProtocolError(format!("{} bytes is too short", b.len()));
    match b.first() {
        Some(b'w') => {
            if b.len() < 25 {
                return Err(short());
            }
            let wal_start = Lsn(u64::from_be_bytes(b[1..9].try_into().map_err(|_| short())?));
            let data = b.split_off(25);
            Ok(ReplicationMessage::XLogData { wal_start, data })
        }
        Some(b'k') => {
            if b.len() < 18 {
                return Err(short());
            }
            let wal_end = Lsn(u64::from_be_bytes(b[1..9].try_into().map_err(|_| short())?));
            Ok(ReplicationMessage::Keepalive { wal_end, reply: b[17] != 0 })
        }
        Some(other) => Err(ProtocolError(format!("unknown message type {:?}", *other as char))),
        None => Err(ProtocolError("empty CopyData".into())),
    }
}

/// A CopyData-framed standby status update: `written`, `flushed` and `applied` positions.
/// PostgreSQL advances the slot's `confirmed_flush_lsn` to `flushed`.
pub fn standby_status(out: &mut BytesMut, written: Lsn, flushed: Lsn, now_unix_us: i64, reply: bool) {
    out.put_u8(b'd');
    out.put_i32(4 + 1 + 8 * 4 + 1);
    out.put_u8(b'r');
    out.put_u64(written.0);
    out.put_u64(flushed.0);
    out.put_u64(flushed.0);
    out.put_i64(now_unix_us - PG_EPOCH_OFFSET_US);
    out.put_u8(reply as u8);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keepalive_and_xlogdata() {
        // Built by hand from the documented layout: a keepalive at 0/1A2B3C8 asking for a reply.
        let k = Bytes::from_static(&[
            b'k', 0, 0, 0, 0, 0x01, 0xA2, 0xB3, 0xC8, 0, 2, 0xB1, 0x6A, 0x5D, 0x3E, 0x1F, 0x20, 1,
        ]);
        match parse(k).unwrap() {
            ReplicationMessage::Keepalive { wal_end, reply } => {
                assert_eq!(wal_end, "0/1A2B3C8".parse().unwrap());
                assert!(reply);
            }
            other => panic!("{other:?}"),
        }
        let mut w = vec![b'w'];
        w.extend_from_slice(&0x10u64.to_be_bytes());
        w.extend_from_slice(&0x20u64.to_be_bytes());
        w.extend_from_slice(&0u64.to_be_bytes());
        w.extend_from_slice(b"Bpayload");
        match parse(Bytes::from(w)).unwrap() {
            ReplicationMessage::XLogData { wal_start, data } => {
                assert_eq!(wal_start, Lsn(0x10));
                assert_eq!(&data[..], b"Bpayload");
            }
            other => panic!("{other:?}"),
        }
        assert!(parse(Bytes::from_static(b"w123")).is_err());
        assert!(parse(Bytes::from_static(b"z")).is_err());
    }

    #[test]
    fn status_update_layout() {
        let mut out = BytesMut::new();
        standby_status(&mut out, Lsn(1), Lsn(2), PG_EPOCH_OFFSET_US, false);
        assert_eq!(out.len(), 1 + 4 + 34);
        assert_eq!(&out[..6], &[b'd', 0, 0, 0, 38, b'r']);
        assert_eq!(&out[14..22], &2u64.to_be_bytes());
        assert_eq!(&out[30..38], &0u64.to_be_bytes(), "time is relative to the PostgreSQL epoch");
    }
}
