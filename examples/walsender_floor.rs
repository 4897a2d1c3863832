//! Benchmark floor (used by bench/postgres_backlog.sh): how fast a walsender hands a backlog to
//! a client that does nothing with it. Streams pgoutput from a slot over cdcd's own replication
//! connection, counts insert messages by their first byte (no decoding, no output), answers the
//! server's keepalives, and stops after ROWS inserts. Prints the seconds taken.
//! Usage: walsender_floor URL SLOT PUBLICATION ROWS
//! With PAUSE_US set, the client sleeps that long each time its buffer runs dry, to show how
//! the reader's pace changes the walsender's (see the benchmarks in docs/testing.md).
//!
//! pg_recvlogical is not this floor: it writes every message to its output file with a
//! system call of its own, which on 2 cores takes CPU from the walsender.
use std::time::{Duration, Instant};

use bytes::BytesMut;
use cdcd::core::envelope::now_us;
use cdcd::core::position::Lsn;
use cdcd::source::postgres::conn::{ConnParams, ReplicationConn};
use cdcd::source::postgres::protocol::{parse, standby_status, ReplicationMessage};
use cdcd::source::postgres::tls::parse_url;
use tokio::io::AsyncWriteExt;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, slot, publication, rows] = args.as_slice() else {
        return Err("usage: walsender_floor URL SLOT PUBLICATION ROWS".into());
    };
    let rows: u64 = rows.parse()?;
    let pause: u64 = std::env::var("PAUSE_US").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let params = ConnParams::from_url(&parse_url(url)?, Duration::from_secs(30))?;
    let conn = ReplicationConn::connect(&params, "walsender_floor").await?;
    let sql = format!(
        "START_REPLICATION SLOT \"{slot}\" LOGICAL 0/0 (\"proto_version\" '1', \"publication_names\" '{publication}')"
    );
    let start = Instant::now();
    let (mut reader, mut writer) = conn.start_replication(&sql).await?;
    let (mut inserts, mut last, mut status) = (0u64, Lsn(0), BytesMut::new());
    while inserts < rows {
        let data = match reader.buffered_copy_data()? {
            Some(d) => d,
            None => {
                if pause > 0 {
                    std::thread::sleep(Duration::from_micros(pause));
                }
                reader.next_copy_data().await?
            }
        };
        match parse(data)? {
            ReplicationMessage::XLogData { wal_start, data } => {
                inserts += u64::from(data.first() == Some(&b'I'));
                last = last.max(wal_start);
            }
            // Without answers the walsender leaves its fast path (and at wal_sender_timeout,
            // drops the connection). The slot is not advanced: it is a twin used only here.
            ReplicationMessage::Keepalive { reply: true, .. } => {
                standby_status(&mut status, last, Lsn(0), now_us(), false);
                writer.write_all(&status).await?;
                status.clear();
            }
            ReplicationMessage::Keepalive { .. } => {}
        }
    }
    println!("{:.3}", start.elapsed().as_secs_f64());
    Ok(())
}
