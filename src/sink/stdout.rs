//! The stdout sink: one JSON line per record, `{"topic", "key", "value"}`, for demos and
//! debugging. A record counts as delivered once its transaction's lines are flushed.

use std::io::Write;
use std::sync::Arc;

use crate::core::acks::{AckTracker, TxnId};
use crate::core::envelope::Record;
use crate::core::json;
use crate::error::SinkError;

pub struct StdoutSink {
    out: std::io::BufWriter<std::io::Stdout>,
    tracker: Arc<AckTracker>,
    pending: Vec<TxnId>,
    line: Vec<u8>,
}

impl StdoutSink {
    pub fn new(tracker: Arc<AckTracker>) -> Self {
        Self {
            out: std::io::BufWriter::with_capacity(1 << 16, std::io::stdout()),
            tracker,
            pending: Vec::new(),
            line: Vec::new(),
        }
    }

    pub fn send(&mut self, record: Record<'_>, txn: TxnId) -> Result<(), SinkError> {
        self.tracker.expect(txn);
        self.pending.push(txn);
        let l = &mut self.line;
        l.clear();
        l.extend_from_slice(b"{\"topic\":");
        json::write_str(l, record.topic);
        l.extend_from_slice(b",\"key\":");
        l.extend_from_slice(record.key.unwrap_or(b"null"));
        l.extend_from_slice(b",\"value\":");
        l.extend_from_slice(record.value.unwrap_or(b"null"));
        l.extend_from_slice(b"}\n");
        self.out.write_all(l).map_err(|e| SinkError::Io(format!("writing to stdout: {e}")))?;
        if self.pending.len() >= 4096 {
            self.flush()?;
        }
        Ok(())
    }

    pub fn flush(&mut self) -> Result<(), SinkError> {
        self.out.flush().map_err(|e| SinkError::Io(format!("writing to stdout: {e}")))?;
        for txn in self.pending.drain(..) {
            self.tracker.delivered(txn);
        }
        Ok(())
    }
}
