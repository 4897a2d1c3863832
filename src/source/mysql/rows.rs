//! One rows event as the changes the envelope needs: each row's before and after images, with
//! partial JSON updates rebuilt into whole documents, and a primary-key change split into a
//! delete of the old key and a create of the new one (as Debezium does). Pure, so the stream and
//! the fuzzers run the same code.

use mysql_async::binlog::events::{RowsEventData, TableMapEvent};
use mysql_async::binlog::row::BinlogRow;

use super::json_diff;
use super::table::Table;
use super::values::key_bytes;
use crate::core::envelope::Op;

/// One change of one row.
pub struct RowChange {
    pub op: Op,
    /// The row's number within its rows event (Debezium's `source.row`).
    pub row_no: u64,
    pub before: Option<BinlogRow>,
    pub after: Option<BinlogRow>,
}

/// Decodes every row of `rows` (whose table map is `tme`, rendered as `table`). An Err names
/// what could not be decoded, without the binlog position, which the caller adds.
pub fn row_changes(table: &Table, tme: &TableMapEvent<'_>, rows: &RowsEventData<'_>) -> Result<Vec<RowChange>, String> {
    let op = match rows {
        RowsEventData::WriteRowsEventV1(_) | RowsEventData::WriteRowsEvent(_) => Op::Create,
        RowsEventData::UpdateRowsEventV1(_)
        | RowsEventData::UpdateRowsEvent(_)
        | RowsEventData::PartialUpdateRowsEvent(_) => Op::Update,
        _ => Op::Delete,
    };
    let images = super::row_image::read_rows(tme, rows)
        .map_err(|e| format!("cannot decode a row of {}.{}: {e}", table.db, table.name))?;
    let mut changes = Vec::with_capacity(images.len());
    for (n, (before, mut after)) in images.into_iter().enumerate() {
        let row_no = n as u64;
        if let (Some(b), Some(a)) = (&before, &mut after) {
            json_diff::resolve(b, a).map_err(|e| format!("{}.{}: {e}", table.db, table.name))?;
        }
        match (before, after) {
            (Some(b), Some(a)) if table.has_key() && key_bytes(table, &b) != key_bytes(table, &a) => {
                changes.push(RowChange { op: Op::Delete, row_no, before: Some(b), after: None });
                changes.push(RowChange { op: Op::Create, row_no, before: None, after: Some(a) });
            }
            (before, after) => changes.push(RowChange { op, row_no, before, after }),
        }
    }
    Ok(changes)
}
