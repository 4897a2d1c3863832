//! How often the exactly-once sink commits: at the configured interval while the connector keeps
//! up with its source, less often while it drains a backlog.
//!
//! Every commit stops the stream for a while: the records sent so far must be acknowledged
//! before the next producer takes any (see `sink::kafka::transactions::Turns`), and while
//! draining a backlog that is a full producer queue. At the default interval that stop is a
//! large share of a backlog drain. A change read
//! from a backlog is already as late as the backlog, so there the interval grows with the lag:
//! a tenth of what exceeds [`KEEPING_UP`], never below the configured interval nor above
//! [`MAX_INTERVAL`]. A commit then adds at most a tenth to how late a change already is, and a
//! connector that keeps up commits at the configured interval. Whenever the source has sent
//! nothing for a tick and the broker has acknowledged everything, it has caught up, and the
//! commit is due at once: the end of a backlog is not held back by its long interval. (Nothing
//! sent while records are still unacknowledged is a full producer queue holding the source back:
//! at a 5 ms tick that looked idle a few times a second and cost a third of a backlog drain.)

use std::time::{Duration, Instant};

/// The longest the interval grows to, however far behind the connector is.
pub const MAX_INTERVAL: Duration = Duration::from_secs(1);

/// The share of the lag the interval may reach.
const LAG_SHARE: u32 = 10;

/// A lag this small is keeping up: binlog events carry whole seconds, so a change read at once
/// can seem up to a second old.
pub const KEEPING_UP: Duration = Duration::from_secs(1);

#[derive(Debug)]
pub struct CommitPacing {
    configured: Duration,
    last_commit: Instant,
    /// The largest lag seen since the last commit.
    lag: Duration,
    /// Records sent, at the last tick.
    sent: u64,
    /// Nothing was sent between the last two ticks.
    idle: bool,
    /// A commit was made since the last tick: the source was held while it ran, so the
    /// records it did not send say nothing about whether it caught up.
    committed_since: bool,
}

impl CommitPacing {
    pub fn new(configured: Duration, now: Instant) -> Self {
        Self { configured, last_commit: now, lag: Duration::ZERO, sent: 0, idle: false, committed_since: false }
    }

    /// A tick: the lag now (how long ago the source committed the oldest change not yet
    /// delivered, if any is in flight) and how many records were sent so far.
    pub fn observe(&mut self, lag: Option<Duration>, sent: u64, unacknowledged: u64) {
        if let Some(lag) = lag {
            self.lag = self.lag.max(lag);
        }
        self.idle = sent == self.sent && unacknowledged == 0 && !self.committed_since;
        self.sent = sent;
        self.committed_since = false;
    }

    /// The interval the next commit waits for.
    pub fn interval(&self) -> Duration {
        (self.lag.saturating_sub(KEEPING_UP) / LAG_SHARE).clamp(self.configured, MAX_INTERVAL.max(self.configured))
    }

    /// Whether the next commit is due.
    pub fn due(&self, now: Instant) -> bool {
        self.idle || now.duration_since(self.last_commit) >= self.interval()
    }

    /// A commit was asked for (it follows as soon as the source is between transactions): the
    /// next interval starts now, not when the commit completes, or the ticks that check it
    /// would make every interval nearly two; the lag is measured afresh.
    pub fn committed(&mut self, now: Instant) {
        self.last_commit = now;
        self.lag = Duration::ZERO;
        self.idle = false;
        self.committed_since = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);

    #[test]
    fn a_connector_that_keeps_up_commits_at_the_configured_interval() {
        let t0 = Instant::now();
        let mut p = CommitPacing::new(50 * MS, t0);
        p.observe(Some(30 * MS), 10, 0);
        assert_eq!(p.interval(), 50 * MS);
        p.observe(Some(999 * MS), 20, 0);
        assert_eq!(p.interval(), 50 * MS, "whole-second binlog timestamps: under a second is keeping up");
        assert!(!p.due(t0 + 49 * MS));
        assert!(p.due(t0 + 50 * MS));
    }

    #[test]
    fn the_interval_grows_with_the_lag_up_to_the_maximum() {
        let t0 = Instant::now();
        let mut p = CommitPacing::new(50 * MS, t0);
        p.observe(Some(Duration::from_secs(4)), 1000, 0);
        p.observe(Some(Duration::from_secs(2)), 2000, 0);
        p.observe(None, 3000, 0);
        assert_eq!(p.interval(), 300 * MS, "a tenth of the largest lag seen, beyond a second");
        assert!(!p.due(t0 + 299 * MS));
        assert!(p.due(t0 + 300 * MS));
        p.observe(Some(Duration::from_secs(60)), 4000, 0);
        assert_eq!(p.interval(), MAX_INTERVAL);
    }

    #[test]
    fn a_commit_measures_the_lag_afresh() {
        let t0 = Instant::now();
        let mut p = CommitPacing::new(50 * MS, t0);
        p.observe(Some(Duration::from_secs(5)), 1000, 0);
        p.committed(t0 + 500 * MS);
        assert_eq!(p.interval(), 50 * MS);
        assert!(p.due(t0 + 550 * MS));
    }

    #[test]
    fn a_source_that_sent_nothing_for_a_tick_commits_at_once() {
        let t0 = Instant::now();
        let mut p = CommitPacing::new(50 * MS, t0);
        p.observe(Some(Duration::from_secs(5)), 1000, 0);
        assert!(!p.due(t0 + 100 * MS), "busy and far behind: the long interval");
        p.observe(None, 1000, 0);
        assert!(p.due(t0 + 100 * MS), "caught up: the end of the backlog commits now");
        p.observe(None, 1001, 0);
        assert!(!p.due(t0 + 100 * MS));
    }

    #[test]
    fn a_full_producer_queue_is_not_idleness() {
        let t0 = Instant::now();
        let mut p = CommitPacing::new(5 * MS, t0);
        p.observe(Some(Duration::from_secs(30)), 1000, 0);
        p.observe(Some(Duration::from_secs(30)), 1000, 4000);
        assert!(!p.due(t0 + 100 * MS), "nothing sent, 4,000 records unacknowledged: the queue is full");
        p.observe(None, 1000, 0);
        assert!(p.due(t0 + 100 * MS), "nothing sent and everything acknowledged: caught up");
    }

    #[test]
    fn a_tick_that_a_commit_held_up_is_not_idleness() {
        let t0 = Instant::now();
        let mut p = CommitPacing::new(50 * MS, t0);
        p.observe(Some(Duration::from_secs(5)), 1000, 0);
        p.committed(t0 + 10 * MS);
        p.observe(Some(Duration::from_secs(5)), 1000, 0);
        assert!(!p.due(t0 + 100 * MS), "the source was held by the commit, not idle");
        p.observe(None, 1000, 0);
        assert!(p.due(t0 + 100 * MS));
    }

    #[test]
    fn a_configured_interval_above_the_maximum_is_kept() {
        let p = CommitPacing::new(Duration::from_secs(2), Instant::now());
        assert_eq!(p.interval(), Duration::from_secs(2));
    }
}
