//! Whether the log cdcd resumes in is the log it delivered from. A promoted standby starts a new
//! timeline at the end of the WAL it had received (the switchpoint). When cdcd had read past
//! that point on the old primary (no `synchronized_standby_slots` holding it back), the new
//! primary's log differs from the delivered one from the switchpoint on: consumers hold changes
//! that no longer exist, and resuming at the checkpoint would skip the new primary's own
//! transactions between the switchpoint and the checkpoint. Both are silent, so cdcd stops.
//!
//! The checkpoint records the timeline of the primary its positions were read on; a standby
//! being decoded (`source.read_only`) records none, since its own promotion moves it to a new
//! timeline mid-session.

use super::conn::ReplicationConn;
use crate::core::position::Lsn;
use crate::error::SourceError;

/// Why resuming at `checkpoint`, read on timeline `delivered_on`, would not continue the log the
/// server (on timeline `server`) holds; `None` when it does.
pub async fn divergence(
    repl: &mut ReplicationConn,
    delivered_on: u32,
    server: u32,
    checkpoint: Lsn,
) -> Result<Option<String>, SourceError> {
    if server == delivered_on {
        return Ok(None);
    }
    if server < delivered_on {
        return Ok(Some(format!(
            "the server is on timeline {server}, older than timeline {delivered_on} cdcd delivered from: it is not the promoted standby but an older copy (a restore, or the old primary back), so its log lacks changes consumers hold"
        )));
    }
    let rows = repl.simple_query(&format!("TIMELINE_HISTORY {server}")).await?;
    let content = rows.first().and_then(|r| r.get(1).cloned().flatten()).unwrap_or_default();
    let Some(switch) = switchpoint(&content, delivered_on) else {
        return Ok(Some(format!(
            "timeline {delivered_on}, which cdcd delivered from, is not in the history of the server's timeline {server}: the server's log is another history than the delivered one"
        )));
    };
    if checkpoint <= switch {
        return Ok(None);
    }
    Ok(Some(format!(
        "the server was promoted onto timeline {server}, which left timeline {delivered_on} at {switch}, but cdcd had delivered changes up to {checkpoint} from the old primary: the changes between were never on the new primary (consumers hold them), and its own changes before {checkpoint} would be skipped. Keep a failover from losing what cdcd read: set synchronized_standby_slots on the primary to the standbys' physical slots (PostgreSQL 17+)"
    )))
}

/// Where `timeline` ended according to a timeline history file (lines `parent switchpoint
/// reason`), or `None` if the history does not pass through it.
fn switchpoint(history: &str, timeline: u32) -> Option<Lsn> {
    history.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        let tli: u32 = fields.next()?.parse().ok()?;
        (tli == timeline).then(|| fields.next()?.parse().ok()).flatten()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_switchpoint_of_each_ancestor_is_read_from_the_history() {
        let history = "1\t0/3000000\tno recovery target specified\n\n2\t0/5000A28\tbefore 2000-01-01 00:00:00+00\n";
        assert_eq!(switchpoint(history, 1), Some(Lsn(0x300_0000)));
        assert_eq!(switchpoint(history, 2), Some(Lsn(0x500_0A28)));
        assert_eq!(switchpoint(history, 3), None);
        assert_eq!(switchpoint("", 1), None);
        assert_eq!(switchpoint("# comment\nx y", 1), None);
    }
}
