//! A captured table as cdcd renders it: topic, columns with their value kinds, key columns, and
//! the constant part of its `source` block. Built from pgoutput Relation messages while
//! streaming and from the catalog during the snapshot, so both render rows identically.

use super::catalog::TableRef;
use super::pgoutput::{cell_text, Cell};
use super::values::{write_value, ValueKind};
use crate::core::envelope::{write_times, WriteJson};
use crate::core::json;
use crate::core::position::{event_position, Lsn};
use crate::core::snapshot::SnapshotMarker;
use crate::error::SourceError;
use crate::source::tables::KeyColumns;

/// What Debezium writes for an unchanged TOASTed column the server did not send.
pub const UNAVAILABLE_VALUE: &str = "__debezium_unavailable_value";

/// Names the connector and database; shared by every relation of one connector.
#[derive(Clone, Debug)]
pub struct SourceContext {
    pub connector: String,
    pub db: String,
    pub topic_prefix: String,
    /// Key columns the user configured per table, replacing the primary key.
    pub keys: KeyColumns,
}

#[derive(Debug)]
pub struct Column {
    pub name: String,
    /// `"name":`, pre-rendered.
    json_key: Vec<u8>,
    pub kind: ValueKind,
}

#[derive(Debug)]
pub struct Relation {
    pub id: u32,
    pub table: TableRef,
    pub topic: String,
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the message-key columns (primary key).
    pub key: Vec<usize>,
    source_prefix: Vec<u8>,
}

impl Relation {
    /// `key_names` is the table's own key (primary key or replica-identity index); a key the
    /// user configured for the table replaces it.
    pub fn new(
        id: u32,
        table: TableRef,
        columns: Vec<(String, ValueKind)>,
        key_names: &[String],
        ctx: &SourceContext,
    ) -> Result<Self, SourceError> {
        let columns: Vec<Column> = columns
            .into_iter()
            .map(|(name, kind)| {
                let mut json_key = Vec::with_capacity(name.len() + 3);
                json::write_str(&mut json_key, &name);
                json_key.push(b':');
                Column { name, json_key, kind }
            })
            .collect();
        let own_key = key_names.iter().filter_map(|k| columns.iter().position(|c| &c.name == k)).collect();
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let key = ctx.keys.resolve(&table.schema, &table.name, &names, own_key).map_err(SourceError::Fatal)?;
        let mut p = Vec::new();
        p.extend_from_slice(b"{\"version\":");
        json::write_str(&mut p, env!("CARGO_PKG_VERSION"));
        p.extend_from_slice(b",\"connector\":\"postgresql\",\"name\":");
        json::write_str(&mut p, &ctx.connector);
        p.extend_from_slice(b",\"db\":");
        json::write_str(&mut p, &ctx.db);
        p.extend_from_slice(b",\"schema\":");
        json::write_str(&mut p, &table.schema);
        p.extend_from_slice(b",\"table\":");
        json::write_str(&mut p, &table.name);
        let topic = format!("{}.{}.{}", ctx.topic_prefix, table.schema, table.name);
        Ok(Relation { id, table, topic, columns, key, source_prefix: p })
    }

    pub fn has_key(&self) -> bool {
        !self.key.is_empty()
    }
}

/// A whole row as a JSON object. Cells past the end of the tuple render as null.
pub struct Row<'a> {
    pub rel: &'a Relation,
    pub cells: &'a [Cell],
    pub data: &'a [u8],
}

impl WriteJson for Row<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        for (i, col) in self.rel.columns.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&col.json_key);
            write_cell(out, col, self.cells.get(i).copied().unwrap_or(Cell::Null), self.data);
        }
        out.push(b'}');
    }
}

/// The message key: a JSON object of the key columns only.
pub struct Key<'a>(pub Row<'a>);

impl WriteJson for Key<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        let r = &self.0;
        out.push(b'{');
        for (n, &i) in r.rel.key.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            let col = &r.rel.columns[i];
            out.extend_from_slice(&col.json_key);
            write_cell(out, col, r.cells.get(i).copied().unwrap_or(Cell::Null), r.data);
        }
        out.push(b'}');
    }
}

fn write_cell(out: &mut Vec<u8>, col: &Column, cell: Cell, data: &[u8]) {
    match cell {
        Cell::Null => out.extend_from_slice(b"null"),
        Cell::Unchanged => json::write_str(out, UNAVAILABLE_VALUE),
        Cell::Text(..) => match cell_text(data, cell) {
            Some(text) => write_value(out, &col.kind, text),
            None => out.extend_from_slice(b"null"),
        },
    }
}

/// The `source` block of one event.
pub struct SourceBlock<'a> {
    pub rel: &'a Relation,
    /// Commit time (snapshot: snapshot start), microseconds since the epoch.
    pub ts_us: i64,
    pub snapshot: SnapshotMarker,
    pub tx_id: Option<u64>,
    /// The change's own LSN (snapshot: the chunk's watermark, where the stream emitted it).
    pub lsn: Lsn,
    /// The transaction's commit LSN (snapshot: the chunk's watermark), for the dedupe position.
    pub commit_lsn: Lsn,
    /// The event's index within its transaction (snapshot: within its chunk).
    pub index: u64,
}

impl WriteJson for SourceBlock<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.rel.source_prefix);
        write_times(out, self.ts_us);
        out.extend_from_slice(b",\"snapshot\":\"");
        out.extend_from_slice(self.snapshot.as_str().as_bytes());
        out.push(b'"');
        out.extend_from_slice(b",\"txId\":");
        match self.tx_id {
            Some(x) => json::write_u64(out, x),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"lsn\":");
        json::write_u64(out, self.lsn.0);
        out.extend_from_slice(b",\"commit_lsn\":");
        json::write_u64(out, self.commit_lsn.0);
        out.extend_from_slice(b",\"xmin\":null,\"position\":\"");
        event_position(out, self.commit_lsn, self.snapshot.is_snapshot(), self.index);
        out.extend_from_slice(b"\"}");
    }
}
