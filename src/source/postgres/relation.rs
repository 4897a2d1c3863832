//! A captured table as cdcd renders it: topic, columns with their value kinds, key columns, and
//! the constant part of its `source` block. Built from pgoutput Relation messages while
//! streaming and from the catalog during the snapshot, so both render rows identically.

use std::sync::{Arc, OnceLock};

use super::catalog::TableRef;
use super::pgoutput::{cell_text, Cell};
use super::typed::{map_column, write_typed, write_unavailable, Mapped, PgType};
use super::values::{write_value, ValueKind};
use crate::core::connect::{write_null_or_empty, Field, Schema, TableSchema, TypedOptions, ValueWriter, WriteTyped};
use crate::core::envelope::{write_times, WriteJson};
use crate::core::json;
use crate::core::position::{event_position, Lsn};
use crate::core::snapshot::SnapshotMarker;
use crate::error::SourceError;
use crate::source::columns::{ColumnRule, ColumnRules};
use crate::source::routes::Routes;
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
    /// Set when the sink encodes with Debezium's types: relations then carry their schemas.
    pub typed: Option<TypedOptions>,
    /// `[columns]`: columns left out or masked.
    pub columns: Arc<ColumnRules>,
    /// `[[routes]]`: tables published to another topic.
    pub routes: Arc<Routes>,
}

/// A column as the catalog or pgoutput describes it.
#[derive(Clone, Debug)]
pub struct ColumnDef {
    pub name: String,
    pub kind: ValueKind,
    pub pg: PgType,
    pub not_null: bool,
}

#[derive(Debug)]
pub struct Column {
    pub name: String,
    /// `"name":`, pre-rendered.
    json_key: Vec<u8>,
    pub kind: ValueKind,
    /// How the typed encodings convert it, and its Connect schema.
    mapped: Mapped,
    schema: Schema,
    /// Published as it is, left out, or masked (`[columns]`).
    rule: ColumnRule,
}

#[derive(Debug)]
pub struct Relation {
    pub id: u32,
    pub table: TableRef,
    pub topic: String,
    /// `schema.table`, as transaction metadata names it.
    pub collection: String,
    pub columns: Vec<Column>,
    /// Indexes into `columns` of the message-key columns (primary key, or `key_columns`).
    pub key: Vec<usize>,
    /// What tells rows apart to snapshot deduplication: the table's own key (primary key or
    /// replica-identity index), else the configured key columns. Unlike `key`, never replaced
    /// by `key_columns` that need not be unique.
    pub identity: Vec<usize>,
    source_prefix: Vec<u8>,
    connector: String,
    db: String,
    /// Key and envelope schemas for the typed encodings (when the sink uses one).
    pub schema: Option<TableSchema>,
    /// `[[routes]]`: the key's extra field, `,"name":"<own topic>"` pre-rendered, and its value.
    key_route: Option<(Vec<u8>, String)>,
}

impl Relation {
    /// `key_names` is the table's own key (primary key or replica-identity index); a key the
    /// user configured for the table replaces it.
    pub fn new(
        id: u32,
        table: TableRef,
        columns: Vec<ColumnDef>,
        key_names: &[String],
        ctx: &SourceContext,
    ) -> Result<Self, SourceError> {
        let opts = ctx.typed.unwrap_or_default();
        let own_key: Vec<usize> = key_names.iter().filter_map(|k| columns.iter().position(|c| &c.name == k)).collect();
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let key = ctx.keys.resolve(&table.schema, &table.name, &names, own_key.clone()).map_err(SourceError::Fatal)?;
        let identity = if own_key.is_empty() { key.clone() } else { own_key };
        let key_names: Vec<&str> = key.iter().map(|&i| names[i]).collect();
        ctx.columns.check_key(&table.schema, &table.name, &key_names).map_err(SourceError::Fatal)?;
        ctx.routes.check_key(&table.schema, &table.name, &key_names).map_err(SourceError::Fatal)?;
        let columns: Vec<Column> = columns
            .into_iter()
            .enumerate()
            .map(|(i, c)| {
                let mut json_key = Vec::with_capacity(c.name.len() + 3);
                json::write_str(&mut json_key, &c.name);
                json_key.push(b':');
                let rule = ctx.columns.rule(&table.schema, &table.name, &c.name);
                // As Debezium: a column is optional unless NOT NULL; key columns never are.
                let optional = !c.not_null && !key.contains(&i);
                let (mapped, mut schema) = map_column(&c.pg, &opts);
                if rule.is_masked() {
                    schema = ColumnRule::masked_schema(optional);
                }
                schema.optional = optional;
                Column { name: c.name, json_key, kind: c.kind, mapped, schema, rule }
            })
            .collect();
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
        let collection = format!("{}.{}", table.schema, table.name);
        let route = ctx.routes.route(&table.schema, &table.name, &format!("{}.{collection}", ctx.topic_prefix));
        let key_route = route.key_suffix().zip(route.key_field.as_ref().map(|(_, own)| own.clone()));
        let topic = route.topic.clone();
        let schema = ctx.typed.map(|_| {
            let field = |c: &Column| Field::new(c.name.clone(), c.schema.clone());
            let mut key_fields: Vec<Field> = key.iter().map(|&i| field(&columns[i])).collect();
            for f in &mut key_fields {
                f.schema.optional = false;
            }
            // A keyless table's records have a null key: no key schema field for them.
            if let Some((name, _)) = route.key_field.as_ref().filter(|_| !key.is_empty()) {
                key_fields.push(Field::new(name.clone(), Schema::string()));
            }
            let value_fields = columns.iter().filter(|c| !c.rule.dropped).map(field).collect();
            TableSchema::new(&topic, key_fields, value_fields, source_schema().clone())
        });
        Ok(Relation {
            id,
            table,
            topic,
            collection,
            columns,
            key,
            identity,
            source_prefix: p,
            connector: ctx.connector.clone(),
            db: ctx.db.clone(),
            schema,
            key_route,
        })
    }

    pub fn has_key(&self) -> bool {
        !self.key.is_empty()
    }

    /// Whether the published key holds the key columns' own values (no mask): only then is it
    /// the row's identity in the form snapshot chunks compare (they never mask).
    pub fn key_is_raw(&self) -> bool {
        self.key_route.is_none() && self.key.iter().all(|&i| !self.columns[i].rule.is_masked())
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
        let mut first = true;
        for (i, col) in self.rel.columns.iter().enumerate() {
            if col.rule.dropped {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            out.extend_from_slice(&col.json_key);
            write_published_cell(out, col, self.cells.get(i).copied().unwrap_or(Cell::Null), self.data);
        }
        out.push(b'}');
    }
}

/// A row written in the columns of `shape`, another definition of the same table, matched by
/// name (a column the row lacks is null): so a row the log sent after a schema change compares
/// equal to the same row read by a snapshot chunk under the definition it started with.
pub struct Reshaped<'a>(pub Row<'a>, pub &'a Relation);

impl WriteJson for Reshaped<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        let Reshaped(row, shape) = self;
        out.push(b'{');
        for (n, col) in shape.columns.iter().enumerate() {
            if n > 0 {
                out.push(b',');
            }
            out.extend_from_slice(&col.json_key);
            match row.rel.columns.iter().position(|c| c.name == col.name) {
                Some(i) => {
                    write_cell(out, &row.rel.columns[i], row.cells.get(i).copied().unwrap_or(Cell::Null), row.data)
                }
                None => out.extend_from_slice(b"null"),
            }
        }
        out.push(b'}');
    }
}

/// The message key: a JSON object of the key columns only.
pub struct Key<'a>(pub Row<'a>);

impl WriteJson for Key<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        write_columns(out, &self.0, &self.0.rel.key, write_published_cell);
        if let Some((suffix, _)) = &self.0.rel.key_route {
            out.pop();
            out.extend_from_slice(suffix);
            out.push(b'}');
        }
    }
}

/// The row's identity (see [`Relation::identity`]) in the message key's JSON form, so that
/// where the two are the same columns their bytes are the same too.
pub struct Identity<'a>(pub Row<'a>);

impl WriteJson for Identity<'_> {
    fn write_json(&self, out: &mut Vec<u8>) {
        // Compared in memory only, never published: the values as they are.
        write_columns(out, &self.0, &self.0.rel.identity, write_cell);
    }
}

fn write_columns(out: &mut Vec<u8>, r: &Row<'_>, columns: &[usize], write: fn(&mut Vec<u8>, &Column, Cell, &[u8])) {
    out.push(b'{');
    for (n, &i) in columns.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        let col = &r.rel.columns[i];
        out.extend_from_slice(&col.json_key);
        write(out, col, r.cells.get(i).copied().unwrap_or(Cell::Null), r.data);
    }
    out.push(b'}');
}

impl WriteTyped for Row<'_> {
    fn write_typed(&self, w: &mut dyn ValueWriter) {
        let mut scratch = Vec::new();
        w.begin();
        for (i, col) in self.rel.columns.iter().enumerate().filter(|(_, c)| !c.rule.dropped) {
            write_typed_cell(w, col, self.cells.get(i).copied().unwrap_or(Cell::Null), self.data, &mut scratch);
        }
        w.end();
    }
}

impl WriteTyped for Key<'_> {
    fn write_typed(&self, w: &mut dyn ValueWriter) {
        let r = &self.0;
        let mut scratch = Vec::new();
        w.begin();
        for &i in &r.rel.key {
            write_typed_cell(w, &r.rel.columns[i], r.cells.get(i).copied().unwrap_or(Cell::Null), r.data, &mut scratch);
        }
        if let Some((_, own_topic)) = &r.rel.key_route {
            w.string(own_topic);
        }
        w.end();
    }
}

fn write_typed_cell(w: &mut dyn ValueWriter, col: &Column, cell: Cell, data: &[u8], scratch: &mut Vec<u8>) {
    if col.rule.is_masked() {
        if cell == Cell::Unchanged {
            // The column's type is now a string: the placeholder as one.
            return w.string(UNAVAILABLE_VALUE);
        }
        scratch.clear();
        write_cell(scratch, col, cell, data);
        return col.rule.write_typed(scratch, &col.schema, w);
    }
    match cell {
        Cell::Text(..) => match cell_text(data, cell) {
            Some(text) => write_typed(&col.mapped, text, w, scratch),
            None => write_null_or_empty(w, &col.schema),
        },
        Cell::Unchanged => write_unavailable(&col.mapped, w),
        Cell::Null => write_null_or_empty(w, &col.schema),
    }
}

/// Debezium's PostgreSQL `source` block schema (`io.debezium.connector.postgresql.Source`).
pub fn source_schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let f = Field::new;
        let mut fields = crate::core::connect::common_source_fields();
        fields.extend([
            f("schema", Schema::string()),
            f("table", Schema::string()),
            f("txId", Schema::int64().optional()),
            f("lsn", Schema::int64().optional()),
            f("xmin", Schema::int64().optional()),
            f("origin", Schema::string().optional()),
            f("origin_lsn", Schema::int64().optional()),
        ]);
        Schema::structure(fields).named("io.debezium.connector.postgresql.Source").version(1)
    })
}

/// A cell as records carry it: masked when `[columns]` says so. (An unchanged TOASTed value
/// keeps Debezium's placeholder, which says nothing about the value.)
fn write_published_cell(out: &mut Vec<u8>, col: &Column, cell: Cell, data: &[u8]) {
    if !col.rule.is_masked() || cell == Cell::Unchanged {
        return write_cell(out, col, cell, data);
    }
    let mut text = Vec::new();
    write_cell(&mut text, col, cell, data);
    col.rule.write_json(&text, out);
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
    /// The commit LSN of the transaction streamed before this one in this session (the first
    /// half of Debezium's `sequence`); `None` for snapshot rows and the session's first.
    pub last_commit_lsn: Option<Lsn>,
}

impl WriteTyped for SourceBlock<'_> {
    fn write_typed(&self, w: &mut dyn ValueWriter) {
        let rel = self.rel;
        w.begin();
        w.string(env!("CARGO_PKG_VERSION"));
        w.string("postgresql");
        w.string(&rel.connector);
        w.int(self.ts_us.div_euclid(1000));
        w.string(self.snapshot.as_str());
        w.string(&rel.db);
        let seq = match self.last_commit_lsn {
            Some(l) => format!("[\"{}\",\"{}\"]", l.0, self.lsn.0),
            None => format!("[null,\"{}\"]", self.lsn.0),
        };
        w.string(&seq);
        w.int(self.ts_us);
        w.int(self.ts_us.saturating_mul(1000));
        w.string(&rel.table.schema);
        w.string(&rel.table.name);
        match self.tx_id {
            Some(x) => w.int(x as i64),
            None => w.null(),
        }
        w.int(self.lsn.0 as i64);
        w.null(); // xmin
        w.null(); // origin
        w.null(); // origin_lsn
        w.end();
    }
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
