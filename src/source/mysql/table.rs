//! A captured MySQL / MariaDB table as cdcd renders it: topic, columns with their value kinds,
//! key columns, and the constant part of the `source` block. Built from TABLE_MAP events with
//! `binlog_row_metadata=FULL` (names, signedness, charsets, enum/set values, primary key) so no
//! DDL parsing is needed; built from `information_schema` for the snapshot.

use mysql_async::binlog::events::{OptionalMetadataField, TableMapEvent};
use mysql_async::consts::{ColumnType, GeometryType};

use mysql_async::prelude::*;

use std::sync::Arc;

use super::typed::{map_column, Detail, Mapped};
use super::{my_err, TableName};
use crate::core::connect::{Field, Schema, TableSchema, TypedOptions};
use crate::core::json;
use crate::error::SourceError;
use crate::source::columns::{ColumnRule, ColumnRules};
use crate::source::routes::Routes;
use crate::source::tables::KeyColumns;

/// How a column's values are rendered (see the value table in docs/mysql.md).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    Int {
        unsigned: bool,
        bits: u32,
    },
    Year,
    Float,
    Decimal,
    /// BIT(n): a string of n '0'/'1' characters, like PostgreSQL's bit text.
    Bit {
        bits: u32,
    },
    Date,
    DateTime,
    Timestamp,
    Time,
    Text {
        latin1: bool,
    },
    /// Bytes. `pad_to` is BINARY(n)'s n: the binlog drops the trailing zero bytes the column
    /// pads with, which are part of the value (a snapshot reads them).
    Binary {
        pad_to: Option<u32>,
    },
    Enum(Vec<String>),
    Set(Vec<String>),
    Json,
    Geometry,
    /// A POINT column: rendered as GEOMETRY, typed as Debezium's `Point` (x, y, wkb, srid).
    Point,
    /// MySQL 9's VECTOR: little-endian 4-byte floats, rendered as a JSON array of numbers.
    Vector,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Column {
    pub name: String,
    pub json_key: Vec<u8>,
    pub kind: Kind,
    /// Precision, scale, fractional seconds, nullability: what Debezium's types need.
    pub detail: Detail,
}

impl Column {
    pub fn new(name: String, kind: Kind) -> Self {
        Column::with_detail(name, kind, Detail { nullable: true, ..Default::default() })
    }

    pub fn with_detail(name: String, kind: Kind, detail: Detail) -> Self {
        let mut json_key = Vec::with_capacity(name.len() + 3);
        json::write_str(&mut json_key, &name);
        json_key.push(b':');
        Column { name, json_key, kind, detail }
    }
}

/// A table's columns in Debezium's types: how each value converts, and the record schemas.
#[derive(Debug)]
pub struct TypedTable {
    pub columns: Vec<(Mapped, Schema)>,
    pub schema: TableSchema,
    /// For the `source` block: "mysql" or "mariadb", and the connector's name.
    pub flavor: &'static str,
    pub connector: String,
}

#[derive(Clone, Debug)]
pub struct Table {
    pub db: String,
    pub name: String,
    pub topic: String,
    /// `database.table`, as transaction metadata names it.
    pub collection: String,
    pub columns: Vec<Column>,
    pub key: Vec<usize>,
    /// What tells rows apart to snapshot deduplication: the primary key, else the configured
    /// key columns. Unlike `key`, never replaced by `key_columns` that need not be unique.
    pub identity: Vec<usize>,
    /// `{"version":..,"connector":..,"name":..,"db":..,"table":..`, pre-rendered.
    pub source_prefix: Vec<u8>,
    /// Per column: published as it is, left out, or masked (`[columns]`).
    pub rules: Vec<ColumnRule>,
    /// `[[routes]]`: the key's extra field, `,"name":"<own topic>"` pre-rendered, and its value.
    pub key_route: Option<(Vec<u8>, String)>,
    /// Present when the sink uses a typed encoding.
    pub typed: Option<Arc<TypedTable>>,
}

impl Table {
    pub fn new(db: &str, name: &str, columns: Vec<Column>, key: Vec<usize>, ctx: &Context) -> Self {
        let mut p = Vec::new();
        p.extend_from_slice(b"{\"version\":");
        json::write_str(&mut p, env!("CARGO_PKG_VERSION"));
        p.extend_from_slice(b",\"connector\":");
        json::write_str(&mut p, ctx.flavor);
        p.extend_from_slice(b",\"name\":");
        json::write_str(&mut p, &ctx.connector);
        p.extend_from_slice(b",\"db\":");
        json::write_str(&mut p, db);
        p.extend_from_slice(b",\"table\":");
        json::write_str(&mut p, name);
        let collection = format!("{db}.{name}");
        let route = ctx.routes.route(db, name, &format!("{}.{collection}", ctx.topic_prefix));
        let key_route = route.key_suffix().zip(route.key_field.as_ref().map(|(_, own)| own.clone()));
        let topic = route.topic.clone();
        let rules: Vec<ColumnRule> = columns.iter().map(|c| ctx.columns.rule(db, name, &c.name)).collect();
        let key_field = route.key_field.as_ref().map(|(f, _)| f.as_str());
        let typed = ctx.typed.map(|opts| Arc::new(typed_table(&topic, &columns, &rules, &key, key_field, &opts, ctx)));
        let identity = key.clone();
        Table {
            db: db.to_string(),
            name: name.to_string(),
            topic,
            collection,
            columns,
            key,
            identity,
            source_prefix: p,
            rules,
            key_route,
            typed,
        }
    }

    /// The table's own primary key, when `key` may be configured columns instead.
    pub fn with_primary_key(mut self, pk: Vec<usize>) -> Self {
        if !pk.is_empty() {
            self.identity = pk;
        }
        self
    }

    pub fn has_key(&self) -> bool {
        !self.key.is_empty()
    }

    /// Whether the published key holds the key columns' own values (no mask): only then is it
    /// the row's identity in the form snapshot chunks compare (they never mask).
    pub fn key_is_raw(&self) -> bool {
        self.key_route.is_none() && self.key.iter().all(|&i| self.mask(i).is_none())
    }

    /// Column `i`'s rule when `[columns]` masks its values.
    pub fn mask(&self, i: usize) -> Option<&ColumnRule> {
        self.rules.get(i).filter(|r| r.is_masked())
    }
}

#[derive(Clone, Debug)]
pub struct Context {
    pub connector: String,
    pub topic_prefix: String,
    /// "mysql" or "mariadb".
    pub flavor: &'static str,
    /// Key columns the user configured per table, replacing the primary key.
    pub keys: KeyColumns,
    /// Debezium's options when the sink uses a typed encoding.
    pub typed: Option<TypedOptions>,
    /// `[columns]`: columns left out or masked.
    pub columns: Arc<ColumnRules>,
    /// `[[routes]]`: tables published to another topic.
    pub routes: Arc<Routes>,
}

fn typed_table(
    topic: &str,
    columns: &[Column],
    rules: &[ColumnRule],
    key: &[usize],
    key_field: Option<&str>,
    opts: &TypedOptions,
    ctx: &Context,
) -> TypedTable {
    let typed: Vec<(Mapped, Schema)> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (m, mut schema) = map_column(&c.kind, &c.detail, opts);
            // As Debezium: optional unless NOT NULL; key columns never are.
            let optional = c.detail.nullable && !key.contains(&i);
            if rules[i].is_masked() {
                schema = ColumnRule::masked_schema(optional);
            }
            schema.optional = optional;
            (m, schema)
        })
        .collect();
    let field = |i: usize| Field::new(columns[i].name.clone(), typed[i].1.clone());
    let mut key_fields: Vec<Field> = key
        .iter()
        .map(|&i| {
            let mut f = field(i);
            f.schema.optional = false;
            f
        })
        .collect();
    // A keyless table's (and a TRUNCATE's) records have a null key: no key schema field.
    if let Some(name) = key_field.filter(|_| !key.is_empty()) {
        key_fields.push(Field::new(name, Schema::string()));
    }
    let value_fields = (0..columns.len()).filter(|&i| !rules[i].dropped).map(field).collect();
    let schema = TableSchema::new(topic, key_fields, value_fields, source_schema(ctx.flavor));
    TypedTable { columns: typed, schema, flavor: ctx.flavor, connector: ctx.connector.clone() }
}

/// Debezium's MySQL `source` block schema (`io.debezium.connector.mysql.Source`; MariaDB's
/// connector names it `...mariadb.Source` with the same fields).
pub fn source_schema(flavor: &str) -> Schema {
    let f = Field::new;
    let mut fields = crate::core::connect::common_source_fields();
    fields.extend([
        f("table", Schema::string().optional()),
        f("server_id", Schema::int64()),
        f("gtid", Schema::string().optional()),
        f("file", Schema::string()),
        f("pos", Schema::int64()),
        f("row", Schema::int32()),
        f("thread", Schema::int64().optional()),
        f("query", Schema::string().optional()),
    ]);
    Schema::structure(fields).named(format!("io.debezium.connector.{flavor}.Source")).version(1)
}

impl Context {
    /// The message-key column indexes of `db.name`: configured ones, else its primary key.
    pub fn key_indexes(&self, db: &str, name: &str, columns: &[Column], pk: Vec<usize>) -> Result<Vec<usize>, String> {
        let names: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
        let key = self.keys.resolve(db, name, &names, pk)?;
        let key_names: Vec<&str> = key.iter().map(|&i| names[i]).collect();
        self.columns.check_key(db, name, &key_names)?;
        self.routes.check_key(db, name, &key_names)?;
        Ok(key)
    }
}

const LATIN1: [u16; 8] = [5, 8, 15, 31, 47, 48, 49, 94];
const BINARY_CHARSET: u16 = 63;

fn is_numeric(t: ColumnType) -> bool {
    use ColumnType::*;
    matches!(
        t,
        MYSQL_TYPE_TINY
            | MYSQL_TYPE_SHORT
            | MYSQL_TYPE_INT24
            | MYSQL_TYPE_LONG
            | MYSQL_TYPE_LONGLONG
            | MYSQL_TYPE_FLOAT
            | MYSQL_TYPE_DOUBLE
            | MYSQL_TYPE_DECIMAL
            | MYSQL_TYPE_NEWDECIMAL
            | MYSQL_TYPE_YEAR
    )
}

fn is_character(t: ColumnType) -> bool {
    use ColumnType::*;
    matches!(
        t,
        MYSQL_TYPE_STRING
            | MYSQL_TYPE_VAR_STRING
            | MYSQL_TYPE_VARCHAR
            | MYSQL_TYPE_BLOB
            | MYSQL_TYPE_TINY_BLOB
            | MYSQL_TYPE_MEDIUM_BLOB
            | MYSQL_TYPE_LONG_BLOB
    )
}

/// Why a TABLE_MAP event cannot be rendered.
#[derive(Debug, thiserror::Error)]
pub enum TableMapError {
    #[error("table {0}: the binlog carries no column names (binlog_row_metadata is MINIMAL); set binlog_row_metadata = FULL on the server")]
    NoColumnNames(String),
    #[error("table {table}: column {index} has a type cdcd does not know ({detail}); please report it")]
    UnknownType { table: String, index: usize, detail: String },
    #[error("table {table}: malformed table-map metadata: {detail}")]
    Malformed { table: String, detail: String },
    #[error("{0}")]
    KeyColumns(String),
}

/// Builds a [`Table`] from a TABLE_MAP event with FULL row metadata; `previous` is what the last
/// map with this table id gave, reused when nothing changed.
pub fn from_table_map(
    tme: &TableMapEvent<'_>,
    ctx: &Context,
    previous: Option<&Table>,
) -> Result<Table, TableMapError> {
    let db = tme.database_name().into_owned();
    let name = tme.table_name().into_owned();
    let full = format!("{db}.{name}");
    let malformed = |e: std::io::Error| TableMapError::Malformed { table: full.clone(), detail: e.to_string() };
    let n = tme.columns_count() as usize;
    let mut types = Vec::with_capacity(n);
    for i in 0..n {
        match tme.get_column_type(i) {
            Ok(Some(t)) => types.push(t),
            Ok(None) => return Err(TableMapError::UnknownType { table: full, index: i, detail: "missing".into() }),
            Err(e) => return Err(TableMapError::UnknownType { table: full, index: i, detail: e.to_string() }),
        }
    }
    let mut names: Vec<String> = Vec::new();
    let mut unsigned: Vec<bool> = Vec::new();
    let mut charsets: Vec<u16> = Vec::new();
    let mut default_charset: Option<(u16, Vec<(usize, u16)>)> = None;
    let mut enums: Vec<Vec<String>> = Vec::new();
    let mut sets: Vec<Vec<String>> = Vec::new();
    let mut pk: Vec<usize> = Vec::new();
    let mut geometry_types = Vec::new();
    for field in tme.iter_optional_meta() {
        match field.map_err(malformed)? {
            OptionalMetadataField::ColumnName(cn) => {
                for c in cn.iter_names() {
                    names.push(c.map_err(malformed)?.name().into_owned());
                }
            }
            OptionalMetadataField::Signedness(bits) => unsigned = bits.iter().map(|b| *b).collect(),
            OptionalMetadataField::ColumnCharset(cs) => {
                for c in cs.iter_charsets() {
                    charsets.push(c.map_err(malformed)?);
                }
            }
            OptionalMetadataField::DefaultCharset(dc) => {
                let mut non_default = Vec::new();
                for nd in dc.iter_non_default() {
                    let nd = nd.map_err(malformed)?;
                    non_default.push((nd.column_index() as usize, nd.charset()));
                }
                default_charset = Some((dc.default_charset(), non_default));
            }
            OptionalMetadataField::EnumStrValue(ev) => {
                for e in ev.iter_values() {
                    enums.push(e.map_err(malformed)?.values().iter().map(|v| v.value().into_owned()).collect());
                }
            }
            OptionalMetadataField::SetStrValue(sv) => {
                for s in sv.iter_values() {
                    sets.push(s.map_err(malformed)?.values().iter().map(|v| v.value().into_owned()).collect());
                }
            }
            OptionalMetadataField::GeometryType(g) => {
                for t in g.iter_geometry_types() {
                    // A subtype newer than this decoder is still a geometry.
                    geometry_types.push(t.ok());
                }
            }
            OptionalMetadataField::SimplePrimaryKey(k) => {
                for i in k.iter_indexes() {
                    pk.push(i.map_err(malformed)? as usize);
                }
            }
            OptionalMetadataField::PrimaryKeyWithPrefix(k) => {
                for key in k.iter_keys() {
                    pk.push(key.map_err(malformed)?.column_index() as usize);
                }
            }
            _ => {}
        }
    }
    if names.len() != n {
        return Err(TableMapError::NoColumnNames(full));
    }
    // Key indexes come from the wire; every later use indexes the columns with them.
    if let Some(bad) = pk.iter().find(|&&i| i >= n) {
        return Err(TableMapError::Malformed {
            table: full,
            detail: format!("primary-key column index {bad} but the table has {n} columns"),
        });
    }
    let (mut numeric_i, mut char_i, mut enum_i, mut set_i, mut geometry_i) = (0, 0, 0, 0, 0);
    let mut columns = Vec::with_capacity(n);
    for (i, (t, name)) in types.iter().zip(names).enumerate() {
        let mut is_unsigned = false;
        if is_numeric(*t) {
            is_unsigned = unsigned.get(numeric_i).copied().unwrap_or(false);
            numeric_i += 1;
        }
        let mut charset = None;
        // MariaDB lists a charset for every column that has one, GEOMETRY (binary) included;
        // MySQL only for the character types. Counting it wrong shifts every later column's
        // charset (a VARCHAR after a GEOMETRY came out as binary).
        let listed = is_character(*t) || (ctx.flavor == "mariadb" && *t == ColumnType::MYSQL_TYPE_GEOMETRY);
        if listed {
            charset = charsets.get(char_i).copied().or_else(|| {
                default_charset
                    .as_ref()
                    .map(|(d, nd)| nd.iter().find(|(ci, _)| *ci == char_i).map(|(_, c)| *c).unwrap_or(*d))
            });
            char_i += 1;
        }
        let meta = tme.get_column_metadata(i).unwrap_or(&[]);
        let point = *t == ColumnType::MYSQL_TYPE_GEOMETRY && {
            geometry_i += 1;
            geometry_types.get(geometry_i - 1) == Some(&Some(GeometryType::GEOM_POINT))
        };
        let kind = if point {
            Some(Kind::Point)
        } else {
            kind_for(
                *t,
                is_unsigned,
                charset,
                meta,
                &mut || {
                    let v = enums.get(enum_i).cloned().unwrap_or_default();
                    enum_i += 1;
                    v
                },
                &mut || {
                    let v = sets.get(set_i).cloned().unwrap_or_default();
                    set_i += 1;
                    v
                },
            )
        }
        .ok_or_else(|| TableMapError::UnknownType {
            table: full.clone(),
            index: i,
            detail: format!("{t:?}"),
        })?;
        let nullable = tme.null_bitmask().get(i).is_some_and(|b| *b);
        columns.push(Column::with_detail(name, kind, detail_from_table_map(*t, meta, nullable)));
    }
    let key = ctx.key_indexes(&db, &name, &columns, pk.clone()).map_err(TableMapError::KeyColumns)?;
    let identity = if pk.is_empty() { &key } else { &pk };
    // A table map precedes every transaction's rows; an unchanged table keeps what was built
    // for it (the typed schemas above all, whose registry ids are cached by fingerprint).
    if let Some(p) = previous
        .filter(|p| p.db == db && p.name == name && p.columns == columns && p.key == key && &p.identity == identity)
    {
        return Ok(p.clone());
    }
    Ok(Table::new(&db, &name, columns, key, ctx).with_primary_key(pk))
}

/// With MINIMAL row metadata: `schema` (from information_schema) names the columns. Its
/// column count must match the event's, or the table changed in a way cdcd cannot map.
pub fn from_table_map_minimal(tme: &TableMapEvent<'_>, schema: &Table) -> Result<Table, TableMapError> {
    let n = tme.columns_count() as usize;
    if schema.columns.len() != n {
        return Err(TableMapError::Malformed {
            table: format!("{}.{}", schema.db, schema.name),
            detail: format!(
                "the row event has {n} columns but information_schema lists {} (the table changed after this event was written); set binlog_row_metadata = FULL, or re-snapshot",
                schema.columns.len()
            ),
        });
    }
    Ok(schema.clone())
}

/// What a TABLE_MAP column's metadata says beyond its kind (the same values information_schema
/// gives, so streamed and snapshot rows get one schema).
fn detail_from_table_map(t: ColumnType, meta: &[u8], nullable: bool) -> Detail {
    use ColumnType::*;
    let mut d = Detail { nullable, ..Default::default() };
    match t {
        MYSQL_TYPE_NEWDECIMAL => {
            d.precision = meta.first().map(|&p| p.into());
            d.scale = meta.get(1).map(|&s| s.into());
        }
        MYSQL_TYPE_DOUBLE => d.double = true,
        MYSQL_TYPE_DATETIME2 | MYSQL_TYPE_TIMESTAMP2 | MYSQL_TYPE_TIME2 => {
            d.fsp = meta.first().copied().unwrap_or(0).into()
        }
        _ => {}
    }
    d
}

fn kind_for(
    t: ColumnType,
    unsigned: bool,
    charset: Option<u16>,
    meta: &[u8],
    next_enum: &mut dyn FnMut() -> Vec<String>,
    next_set: &mut dyn FnMut() -> Vec<String>,
) -> Option<Kind> {
    use ColumnType::*;
    let text_or_binary = |cs: Option<u16>| match cs {
        Some(BINARY_CHARSET) => Kind::Binary { pad_to: None },
        Some(c) => Kind::Text { latin1: LATIN1.contains(&c) },
        None => Kind::Text { latin1: false },
    };
    Some(match t {
        MYSQL_TYPE_TINY => Kind::Int { unsigned, bits: 8 },
        MYSQL_TYPE_SHORT => Kind::Int { unsigned, bits: 16 },
        MYSQL_TYPE_INT24 => Kind::Int { unsigned, bits: 24 },
        MYSQL_TYPE_LONG => Kind::Int { unsigned, bits: 32 },
        MYSQL_TYPE_LONGLONG => Kind::Int { unsigned, bits: 64 },
        MYSQL_TYPE_YEAR => Kind::Year,
        MYSQL_TYPE_FLOAT | MYSQL_TYPE_DOUBLE => Kind::Float,
        MYSQL_TYPE_DECIMAL | MYSQL_TYPE_NEWDECIMAL => Kind::Decimal,
        MYSQL_TYPE_BIT => {
            // Metadata: bits in the last byte, then whole bytes.
            let bits = meta.first().copied().unwrap_or(0) as u32 + 8 * meta.get(1).copied().unwrap_or(0) as u32;
            Kind::Bit { bits }
        }
        MYSQL_TYPE_DATE | MYSQL_TYPE_NEWDATE => Kind::Date,
        MYSQL_TYPE_DATETIME | MYSQL_TYPE_DATETIME2 => Kind::DateTime,
        MYSQL_TYPE_TIMESTAMP | MYSQL_TYPE_TIMESTAMP2 => Kind::Timestamp,
        MYSQL_TYPE_TIME | MYSQL_TYPE_TIME2 => Kind::Time,
        MYSQL_TYPE_ENUM => Kind::Enum(next_enum()),
        MYSQL_TYPE_SET => Kind::Set(next_set()),
        MYSQL_TYPE_JSON => Kind::Json,
        MYSQL_TYPE_GEOMETRY => Kind::Geometry,
        MYSQL_TYPE_VECTOR => Kind::Vector,
        MYSQL_TYPE_STRING if charset == Some(BINARY_CHARSET) => Kind::Binary { pad_to: Some(string_max_len(meta)) },
        MYSQL_TYPE_STRING | MYSQL_TYPE_VAR_STRING | MYSQL_TYPE_VARCHAR => text_or_binary(charset),
        MYSQL_TYPE_BLOB | MYSQL_TYPE_TINY_BLOB | MYSQL_TYPE_MEDIUM_BLOB | MYSQL_TYPE_LONG_BLOB => {
            text_or_binary(charset)
        }
        _ => return None,
    })
}

/// The declared byte length of a CHAR/BINARY column from its table-map metadata: the real type
/// in the first byte carries the length's two high bits (a CHAR longer than 255 bytes).
fn string_max_len(meta: &[u8]) -> u32 {
    let (byte0, byte1) = (u32::from(meta.first().copied().unwrap_or(0)), u32::from(meta.get(1).copied().unwrap_or(0)));
    if byte0 & 0x30 != 0x30 {
        byte1 | (((byte0 & 0x30) ^ 0x30) << 4)
    } else {
        byte1
    }
}

/// The kind for a column described by `information_schema.columns` (used by the snapshot).
pub fn kind_from_information_schema(data_type: &str, column_type: &str, charset: Option<&str>) -> Kind {
    let unsigned = column_type.contains("unsigned");
    let list = |ct: &str| -> Vec<String> {
        let inner = ct.find('(').and_then(|a| ct.rfind(')').map(|b| &ct[a + 1..b])).unwrap_or("");
        let mut out = Vec::new();
        let mut cur = String::new();
        let mut in_quote = false;
        let mut chars = inner.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\'' if in_quote && chars.peek() == Some(&'\'') => {
                    cur.push('\'');
                    chars.next();
                }
                '\'' => in_quote = !in_quote,
                ',' if !in_quote => out.push(std::mem::take(&mut cur)),
                c if in_quote => cur.push(c),
                _ => {}
            }
        }
        if !inner.is_empty() {
            out.push(cur);
        }
        out
    };
    let text = || match charset {
        None | Some("binary") => Kind::Binary { pad_to: None },
        Some(c) => Kind::Text { latin1: c.starts_with("latin1") },
    };
    match data_type {
        "tinyint" => Kind::Int { unsigned, bits: 8 },
        "smallint" => Kind::Int { unsigned, bits: 16 },
        "mediumint" => Kind::Int { unsigned, bits: 24 },
        "int" | "integer" => Kind::Int { unsigned, bits: 32 },
        "bigint" => Kind::Int { unsigned, bits: 64 },
        "year" => Kind::Year,
        "float" | "double" | "real" => Kind::Float,
        "decimal" | "numeric" => Kind::Decimal,
        "bit" => Kind::Bit { bits: column_type.trim_start_matches("bit(").trim_end_matches(')').parse().unwrap_or(1) },
        "date" => Kind::Date,
        "datetime" => Kind::DateTime,
        "timestamp" => Kind::Timestamp,
        "time" => Kind::Time,
        "enum" => Kind::Enum(list(column_type)),
        "set" => Kind::Set(list(column_type)),
        "json" => Kind::Json,
        "point" => Kind::Point,
        "geometry" | "linestring" | "polygon" | "multipoint" | "multilinestring" | "multipolygon"
        | "geometrycollection" => Kind::Geometry,
        "vector" => Kind::Vector,
        "char" | "varchar" | "tinytext" | "text" | "mediumtext" | "longtext" => text(),
        "binary" => {
            Kind::Binary { pad_to: column_type.trim_start_matches("binary(").trim_end_matches(')').parse().ok() }
        }
        _ => Kind::Binary { pad_to: None },
    }
}

/// Columns and primary key of `t` as `information_schema` has them now.
pub async fn table_from_information_schema(
    conn: &mut mysql_async::Conn,
    t: &TableName,
    ctx: &Context,
) -> Result<Table, SourceError> {
    let q = |e| my_err("reading table metadata", e);
    type Row = (String, String, String, Option<String>, Option<u64>, Option<u64>, Option<u64>, String);
    let cols: Vec<Row> = conn
        .exec(
            "SELECT column_name, data_type, column_type, character_set_name, numeric_precision, numeric_scale, \
             datetime_precision, is_nullable FROM information_schema.columns \
             WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
            (&t.db, &t.name),
        )
        .await
        .map_err(q)?;
    let columns: Vec<Column> = cols
        .into_iter()
        .map(|(name, dt, ct, cs, precision, scale, fsp, nullable)| {
            let dt = dt.to_ascii_lowercase();
            let kind = kind_from_information_schema(&dt, &ct.to_ascii_lowercase(), cs.as_deref());
            let decimal = matches!(kind, Kind::Decimal);
            let detail = Detail {
                precision: precision.filter(|_| decimal).map(|p| p as u32),
                scale: scale.filter(|_| decimal).map(|s| s as u32),
                fsp: fsp.unwrap_or(0) as u32,
                double: matches!(dt.as_str(), "double" | "real" | "double precision"),
                nullable: nullable.eq_ignore_ascii_case("YES"),
            };
            Column::with_detail(name, kind, detail)
        })
        .collect();
    let pk: Vec<String> = conn
        .exec(
            "SELECT column_name FROM information_schema.key_column_usage WHERE table_schema = ? AND table_name = ? \
             AND constraint_name = 'PRIMARY' ORDER BY ordinal_position",
            (&t.db, &t.name),
        )
        .await
        .map_err(q)?;
    let pk: Vec<usize> = pk.iter().filter_map(|k| columns.iter().position(|c| &c.name == k)).collect();
    let key = ctx.key_indexes(&t.db, &t.name, &columns, pk.clone()).map_err(SourceError::Fatal)?;
    Ok(Table::new(&t.db, &t.name, columns, key, ctx).with_primary_key(pk))
}

/// The columns snapshot chunks of `table` are cut by: its identity when that is unique and
/// never null (a primary key, or `key_columns` a unique index proves unique); else none, and
/// the table is read whole, since resuming at `key > last` would skip rows sharing the last key.
pub async fn chunk_key(conn: &mut mysql_async::Conn, t: &TableName, table: &Table) -> Result<Vec<usize>, SourceError> {
    if table.identity.is_empty() {
        return Ok(Vec::new());
    }
    let q = |e| my_err("reading unique indexes", e);
    let names: Vec<&str> = table.identity.iter().map(|&i| table.columns[i].name.as_str()).collect();
    let not_null = table.identity.iter().all(|&i| !table.columns[i].detail.nullable);
    // Every column of every unique index (a primary key is one too). A prefix (`sub_part`)
    // makes an index unique over the prefix only, which proves nothing about the column.
    let unique: Vec<(String, Option<String>, Option<u64>)> = conn
        .exec(
            "SELECT index_name, column_name, sub_part FROM information_schema.statistics \
             WHERE table_schema = ? AND table_name = ? AND non_unique = 0",
            (&t.db, &t.name),
        )
        .await
        .map_err(q)?;
    let mut indexes: std::collections::BTreeMap<&str, bool> = Default::default();
    for (index, column, sub_part) in &unique {
        let covered = sub_part.is_none() && column.as_deref().is_some_and(|c| names.contains(&c));
        *indexes.entry(index.as_str()).or_insert(true) &= covered;
    }
    let proven = indexes.values().any(|&covered| covered);
    if not_null && proven {
        return Ok(table.identity.clone());
    }
    tracing::info!(
        table = %t,
        key_columns = %names.join(", "),
        "snapshot: key_columns are not proven unique (no unique index over non-null columns among them), so the table is read in one consistent read; they remain the Kafka message key"
    );
    Ok(Vec::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn information_schema_types() {
        assert_eq!(
            kind_from_information_schema("int", "int(10) unsigned", None),
            Kind::Int { unsigned: true, bits: 32 }
        );
        assert_eq!(
            kind_from_information_schema("enum", "enum('a','it''s','c,d')", Some("utf8mb4")),
            Kind::Enum(vec!["a".into(), "it's".into(), "c,d".into()])
        );
        assert_eq!(kind_from_information_schema("varchar", "varchar(10)", Some("latin1")), Kind::Text { latin1: true });
        assert_eq!(kind_from_information_schema("varbinary", "varbinary(10)", None), Kind::Binary { pad_to: None });
        assert_eq!(kind_from_information_schema("binary", "binary(16)", None), Kind::Binary { pad_to: Some(16) });
        // BINARY(2), and a 400-byte CHAR whose length's high bits ride in the type byte.
        assert_eq!(string_max_len(&[0xfe, 2]), 2);
        assert_eq!(string_max_len(&[0xfe ^ 0x10, 144]), 400);
        assert_eq!(kind_from_information_schema("bit", "bit(5)", None), Kind::Bit { bits: 5 });
        assert_eq!(kind_from_information_schema("longtext", "longtext", Some("utf8mb4")), Kind::Text { latin1: false });
    }

    fn routed(key_field: Option<&str>) -> Context {
        let route = crate::config::routes::RouteConfig {
            tables: vec!["shop.orders_*".into()],
            topic: "shop.orders".into(),
            key_field: key_field.map(String::from),
        };
        Context {
            connector: "c".into(),
            topic_prefix: "p".into(),
            flavor: "mysql",
            keys: KeyColumns::default(),
            typed: Some(Default::default()),
            columns: Default::default(),
            routes: Arc::new(Routes::new(&[route])),
        }
    }

    #[test]
    fn a_routed_key_gains_the_table_field_and_a_keyless_table_no_key_schema() {
        let ctx = routed(None);
        let columns = vec![Column::new("id".into(), Kind::Int { unsigned: false, bits: 32 })];
        let keyed = Table::new("shop", "orders_1", columns.clone(), vec![0], &ctx);
        assert_eq!(keyed.topic, "shop.orders");
        let key = keyed.typed.as_ref().unwrap().schema.key.clone().unwrap();
        let names: Vec<&str> = key.fields().iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["id", "__dbz__physicalTableIdentifier"]);
        assert_eq!(key.name.as_deref(), Some("shop.orders.Key"));
        let keyless = Table::new("shop", "orders_2", columns.clone(), vec![], &ctx);
        assert!(keyless.typed.as_ref().unwrap().schema.key.is_none(), "null keys have no key schema");
        let clash = routed(Some("id")).key_indexes("shop", "orders_1", &columns, vec![0]).unwrap_err();
        assert!(clash.contains("key_field `id` is also a key column"), "{clash}");
    }
}
