//! `on_slot_lost = "resnapshot"`: the slot the checkpoint needs is gone (a failover without slot
//! sync, a drop), invalidated, or moved past the checkpoint, so the changes between are lost to
//! cdcd. Instead of stopping, make a new slot and rebuild what consumers hold: first a TRUNCATE
//! record per captured table, because what the gap changed is unknown, deletes included; then
//! every table is snapshotted again while streaming from the new slot. A consumer that applies
//! the records in order converges to the source. Never done silently: the log says why, and
//! `cdcd_slots_recreated_total` counts it.

use std::sync::Arc;

use super::catalog::{Catalog, SlotInfo, TableRef};
use super::conn::ReplicationConn;
use super::relation::{SourceBlock, SourceContext};
use crate::core::envelope::{now_us, Change, Op};
use crate::core::position::{Lsn, Position};
use crate::core::snapshot::{SnapshotMarker, SnapshotProgress};
use crate::emit::Emitter;
use crate::error::{SessionError, SourceError};

/// Why the slot cannot continue from the checkpoint at `lsn`, or `None` if it can.
pub fn problem(slot_name: &str, slot: Option<&SlotInfo>, lsn: Lsn, created_at: Option<Lsn>) -> Option<String> {
    let Some(s) = slot else {
        return Some(format!(
            "replication slot `{slot_name}` no longer exists, but the checkpoint says cdcd had delivered changes up to {lsn}: changes made since then may have been lost with the slot"
        ));
    };
    if s.wal_status.as_deref() == Some("lost") {
        return Some(format!(
            "replication slot `{slot_name}` was invalidated by the server (wal_status = lost, usually max_slot_wal_keep_size): the WAL cdcd still needs is gone"
        ));
    }
    match s.confirmed_flush {
        Some(flush) if flush > lsn => Some(format!(
            "replication slot `{slot_name}` is at {flush}, past cdcd's checkpoint {lsn} (recreated or advanced by someone else{}): the changes between may never be delivered",
            created_at.map(|c| format!("; cdcd created it at {c}")).unwrap_or_default()
        )),
        _ => None,
    }
}

/// One repair: the slot to replace and what the consumers are to be given instead.
pub struct Repair<'a> {
    pub slot_name: &'a str,
    pub existing: Option<&'a SlotInfo>,
    /// Why the slot cannot continue ([`problem`]).
    pub why: &'a str,
    /// Where cdcd's checkpoint stands.
    pub checkpoint: Lsn,
    pub kind: super::SlotKind,
    pub tables: &'a [TableRef],
    /// Every table to snapshot again, numbered past the checkpoint's plan.
    pub plan: &'a SnapshotProgress,
}

impl Repair<'_> {
    /// Replaces the slot (dropping what is left of it), writes the TRUNCATE records, and returns
    /// the new slot's consistent point. The records commit with the new plan, so a checkpoint
    /// that covers them also says every table is to be read again.
    pub async fn run(
        &self,
        repl: &mut ReplicationConn,
        catalog: &mut Catalog,
        ctx: &SourceContext,
        emitter: &mut Emitter,
        resnapshot_by_hand: &str,
    ) -> Result<Lsn, SessionError> {
        let slot_name = self.slot_name;
        tracing::warn!(
            slot = slot_name,
            tables = self.tables.len(),
            "{}. on_slot_lost = \"resnapshot\": making a new slot, sending a TRUNCATE record for every captured table, and snapshotting them all again while streaming",
            self.why
        );
        if self.existing.is_some() {
            super::drop_slot(repl, slot_name).await?;
        }
        let at = super::create_slot(repl, slot_name, self.kind).await?;
        if at <= self.checkpoint {
            // Positions only move forward: the repair could never be checkpointed, and the old
            // checkpoint would skip this server's commits up to it.
            super::drop_slot(repl, slot_name).await?;
            return Err(SourceError::Fatal(format!(
                "{}; and the server's log ends at {at}, behind cdcd's checkpoint {}: the database went back in time (a failover to a standby that had not received everything cdcd delivered, or a restore), so consumers hold changes it no longer has, which a repair cannot undo. {resnapshot_by_hand}",
                self.why, self.checkpoint
            ))
            .into());
        }
        emitter.begin_at(format_args!("slot repair at {at}"), now_us())?;
        for table in self.tables {
            let meta = catalog.table_meta_by_name(table).await?;
            let rel = super::snapshot::relation_of(catalog, &meta, ctx).await?;
            let source = SourceBlock {
                rel: &rel,
                ts_us: now_us(),
                snapshot: SnapshotMarker::No,
                tx_id: None,
                lsn: at,
                commit_lsn: at,
                index: emitter.next_index(),
                last_commit_lsn: None,
            };
            let change = Change {
                op: Op::Truncate,
                key: None,
                before: None,
                after: None,
                source: &source,
                collection: &rel.collection,
                schema: rel.schema.as_ref(),
                ts_us: now_us(),
            };
            emitter.emit_required(&rel.topic, &change).await?;
        }
        emitter.commit_with(Position::Postgres { lsn: at }, Some(Arc::new(self.plan.clone())))?;
        emitter.metrics().slot_recreated();
        Ok(at)
    }
}
