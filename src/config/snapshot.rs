//! How a source's snapshot readers work, from its `snapshot_*` settings.

use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

pub(super) fn default_chunk_rows() -> u32 {
    8192
}

/// Ten minutes: far above any chunk's read, short enough that a runaway query ends.
pub(super) fn default_statement_timeout() -> u64 {
    600
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SnapshotTuning {
    pub chunk_rows: u32,
    pub workers: usize,
    pub max_rows_per_sec: u32,
    /// The server-side limit on each snapshot query; `None`: no limit.
    pub statement_timeout: Option<Duration>,
}

impl SnapshotTuning {
    pub fn new(chunk_rows: u32, workers: Option<u32>, max_rows_per_sec: u32, statement_timeout_secs: u64) -> Self {
        let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
        SnapshotTuning {
            chunk_rows: chunk_rows.max(1),
            workers: workers.map_or(cores.clamp(1, 4), |w| w.max(1) as usize),
            max_rows_per_sec,
            statement_timeout: (statement_timeout_secs > 0).then(|| Duration::from_secs(statement_timeout_secs)),
        }
    }

    /// The shared rate limiter, when a limit is set (its burst holds at least one chunk).
    pub fn limiter(&self) -> Option<Arc<DefaultDirectRateLimiter>> {
        let rate = std::num::NonZeroU32::new(self.max_rows_per_sec)?;
        let burst = std::num::NonZeroU32::new(self.max_rows_per_sec.max(self.chunk_rows))?;
        Some(Arc::new(RateLimiter::direct(Quota::per_second(rate).allow_burst(burst))))
    }
}
