//! Timing and reporting of a pause caused by back-pressure (the producer queue or the
//! in-flight cap is full, so the source stops reading). Short waits are normal while a backlog
//! drains and are not worth a log line; a pause that lasts a second is announced once, then
//! repeated every 30 seconds so a long broker outage stays visible in the logs.

use std::time::Duration;

const ANNOUNCE_AFTER: Duration = Duration::from_secs(1);
const REPEAT_EVERY: Duration = Duration::from_secs(30);

/// What a pause has become worth saying after a step.
#[derive(Debug, PartialEq, Eq)]
pub enum PauseReport {
    /// The pause just passed one second.
    Started,
    /// Another 30 seconds went by.
    Continuing,
}

#[derive(Default)]
pub struct PauseClock {
    waited: Duration,
    announced: bool,
    last_report: Duration,
}

impl PauseClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// How long to sleep before checking again: fine-grained at first, so a short stall costs
    /// little latency, then coarser.
    pub fn step(&self) -> Duration {
        Duration::from_millis(if self.waited < ANNOUNCE_AFTER { 2 } else { 50 })
    }

    /// Sleeps one step and says whether the pause should now be reported.
    pub async fn wait(&mut self) -> Option<PauseReport> {
        let step = self.step();
        tokio::time::sleep(step).await;
        self.advance(step)
    }

    /// Total time paused so far.
    pub fn waited(&self) -> Duration {
        self.waited
    }

    fn advance(&mut self, step: Duration) -> Option<PauseReport> {
        self.waited += step;
        if !self.announced {
            if self.waited >= ANNOUNCE_AFTER {
                self.announced = true;
                self.last_report = self.waited;
                return Some(PauseReport::Started);
            }
            return None;
        }
        if self.waited - self.last_report >= REPEAT_EVERY {
            self.last_report = self.waited;
            return Some(PauseReport::Continuing);
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn announces_after_a_second_then_every_thirty_seconds() {
        let mut clock = PauseClock::new();
        let mut reports = Vec::new();
        while clock.waited() < Duration::from_secs(95) {
            let step = clock.step();
            if let Some(r) = clock.advance(step) {
                reports.push((clock.waited().as_secs(), r));
            }
        }
        assert_eq!(
            reports,
            [
                (1, PauseReport::Started),
                (31, PauseReport::Continuing),
                (61, PauseReport::Continuing),
                (91, PauseReport::Continuing)
            ]
        );
    }

    #[test]
    fn a_short_wait_is_not_reported() {
        let mut clock = PauseClock::new();
        for _ in 0..400 {
            let step = clock.step();
            assert_eq!(clock.advance(step), None);
        }
    }
}
