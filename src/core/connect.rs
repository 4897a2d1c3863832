//! Kafka Connect's data model, which Debezium's encodings are defined in: a [`Schema`] per key,
//! row, `source` block and envelope, and the [`ValueWriter`] a connector writes typed values
//! through. Connectors build schemas once per table and write each row's values in schema order;
//! the encoders (Debezium JSON, Avro) walk the schema alongside, so one connector-side mapping
//! serves every typed encoding and no per-row value tree is built.

use crate::core::json;

/// A Connect schema type. Integers of every width are written through [`ValueWriter::int`];
/// the type says how an encoder lays them out.
#[derive(Clone, Debug, PartialEq)]
pub enum Type {
    Int8,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    Boolean,
    String,
    Bytes,
    Array(Box<Schema>),
    Struct(Vec<Field>),
}

impl Type {
    pub fn is_integer(&self) -> bool {
        matches!(self, Type::Int8 | Type::Int16 | Type::Int32 | Type::Int64)
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct Field {
    pub name: String,
    pub schema: Schema,
}

/// A Connect schema: a type, optionality, and the logical name, version, doc and parameters
/// that Debezium's semantic types (`io.debezium.time.Date`, `...Decimal`) are made of.
#[derive(Clone, Debug, PartialEq)]
pub struct Schema {
    pub ty: Type,
    pub optional: bool,
    pub name: Option<String>,
    pub version: Option<i32>,
    pub doc: Option<String>,
    pub parameters: Vec<(String, String)>,
    /// A default value, as a string; only string defaults occur (`source.snapshot`).
    pub default: Option<String>,
    /// Whether Avro may also declare the semantic type's Avro logical type. Off where values
    /// leave the logical type's range (MySQL's TIME spans ±838 hours, `time-micros` one day),
    /// which would make Avro readers that honour logical types fail on them.
    pub avro_logical: bool,
}

impl Schema {
    pub fn of(ty: Type) -> Self {
        Schema {
            ty,
            optional: false,
            name: None,
            version: None,
            doc: None,
            parameters: Vec::new(),
            default: None,
            avro_logical: true,
        }
    }
    pub fn int8() -> Self {
        Self::of(Type::Int8)
    }
    pub fn int16() -> Self {
        Self::of(Type::Int16)
    }
    pub fn int32() -> Self {
        Self::of(Type::Int32)
    }
    pub fn int64() -> Self {
        Self::of(Type::Int64)
    }
    pub fn float32() -> Self {
        Self::of(Type::Float32)
    }
    pub fn float64() -> Self {
        Self::of(Type::Float64)
    }
    pub fn boolean() -> Self {
        Self::of(Type::Boolean)
    }
    pub fn string() -> Self {
        Self::of(Type::String)
    }
    pub fn bytes() -> Self {
        Self::of(Type::Bytes)
    }
    pub fn array(items: Schema) -> Self {
        Self::of(Type::Array(Box::new(items)))
    }
    pub fn structure(fields: Vec<Field>) -> Self {
        Self::of(Type::Struct(fields))
    }

    /// See [`Schema::avro_logical`].
    pub fn without_avro_logical_type(mut self) -> Self {
        self.avro_logical = false;
        self
    }
    pub fn optional(mut self) -> Self {
        self.optional = true;
        self
    }
    pub fn named(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
    pub fn version(mut self, v: i32) -> Self {
        self.version = Some(v);
        self
    }
    pub fn doc(mut self, doc: impl Into<String>) -> Self {
        self.doc = Some(doc.into());
        self
    }
    pub fn param(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.parameters.push((key.into(), value.into()));
        self
    }
    pub fn default_str(mut self, v: impl Into<String>) -> Self {
        self.default = Some(v.into());
        self
    }

    /// A Debezium/Connect semantic type: `name`, version 1.
    pub fn logical(self, name: &str) -> Self {
        self.named(name).version(1)
    }

    pub fn fields(&self) -> &[Field] {
        match &self.ty {
            Type::Struct(f) => f,
            _ => &[],
        }
    }

    pub fn parameter(&self, key: &str) -> Option<&str> {
        self.parameters.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
    }

    /// JsonConverter's schema JSON (`{"type":"struct","fields":[...],...}`), with `field` set
    /// when this is a struct field. Key order as JsonConverter writes it.
    pub fn write_json(&self, out: &mut Vec<u8>, field: Option<&str>) {
        out.extend_from_slice(b"{\"type\":\"");
        out.extend_from_slice(self.type_name().as_bytes());
        out.push(b'"');
        match &self.ty {
            Type::Struct(fields) => {
                out.extend_from_slice(b",\"fields\":[");
                for (i, f) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push(b',');
                    }
                    f.schema.write_json(out, Some(&f.name));
                }
                out.push(b']');
            }
            Type::Array(items) => {
                out.extend_from_slice(b",\"items\":");
                items.write_json(out, None);
            }
            _ => {}
        }
        out.extend_from_slice(if self.optional { b",\"optional\":true" } else { b",\"optional\":false" });
        if let Some(name) = &self.name {
            out.extend_from_slice(b",\"name\":");
            json::write_str(out, name);
        }
        if let Some(v) = self.version {
            out.extend_from_slice(b",\"version\":");
            json::write_i64(out, v.into());
        }
        if let Some(doc) = &self.doc {
            out.extend_from_slice(b",\"doc\":");
            json::write_str(out, doc);
        }
        if !self.parameters.is_empty() {
            out.extend_from_slice(b",\"parameters\":{");
            for (i, (k, v)) in self.parameters.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                json::write_str(out, k);
                out.push(b':');
                json::write_str(out, v);
            }
            out.push(b'}');
        }
        if let Some(d) = &self.default {
            out.extend_from_slice(b",\"default\":");
            json::write_str(out, d);
        }
        if let Some(f) = field {
            out.extend_from_slice(b",\"field\":");
            json::write_str(out, f);
        }
        out.push(b'}');
    }

    fn type_name(&self) -> &'static str {
        match self.ty {
            Type::Int8 => "int8",
            Type::Int16 => "int16",
            Type::Int32 => "int32",
            Type::Int64 => "int64",
            Type::Float32 => "float",
            Type::Float64 => "double",
            Type::Boolean => "boolean",
            Type::String => "string",
            Type::Bytes => "bytes",
            Type::Array(_) => "array",
            Type::Struct(_) => "struct",
        }
    }
}

impl Field {
    pub fn new(name: impl Into<String>, schema: Schema) -> Self {
        Field { name: name.into(), schema }
    }
}

/// Receives one value's parts in schema order. A struct or array is `begin`, its fields or
/// elements, `end`. The writer knows the schema, so it checks each value against the slot it
/// fills; a mismatch is a bug in a connector's mapping and is reported by the encoder, never
/// written as corrupt data.
pub trait ValueWriter {
    fn null(&mut self);
    fn boolean(&mut self, v: bool);
    /// Any integer type (`int8` .. `int64`).
    fn int(&mut self, v: i64);
    /// `float` or `double`.
    fn float(&mut self, v: f64);
    fn string(&mut self, v: &str);
    fn bytes(&mut self, v: &[u8]);
    /// Starts a struct or an array (the schema says which).
    fn begin(&mut self);
    fn end(&mut self);
    /// The value cannot be written (text its type cannot have produced, a type the mapping
    /// does not know): the record fails with `msg` instead of carrying a guess.
    fn fail(&mut self, msg: &str);
}

/// Debezium's `decimal.handling.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecimalMode {
    /// `org.apache.kafka.connect.data.Decimal`: unscaled bytes (Debezium's default).
    #[default]
    Precise,
    String,
    Double,
}

/// Debezium's `time.precision.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TimeMode {
    /// Milliseconds for columns of precision 0-3, microseconds above (Debezium's default).
    #[default]
    Adaptive,
    /// As adaptive, but times always in microseconds.
    AdaptiveTimeMicroseconds,
    /// Kafka Connect's own Date / Time / Timestamp (milliseconds).
    Connect,
}

/// Debezium's `binary.handling.mode`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BinaryMode {
    #[default]
    Bytes,
    Base64,
    Base64UrlSafe,
    Hex,
}

/// The Debezium options that change schemas and values of the typed encodings.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TypedOptions {
    pub decimal: DecimalMode,
    pub time: TimeMode,
    pub binary: BinaryMode,
}

/// Something with a Connect schema that writes its values through a [`ValueWriter`]: a row,
/// a key, a `source` block.
pub trait WriteTyped: Sync {
    fn write_typed(&self, w: &mut dyn ValueWriter);
}

/// The schemas of one table's records in the typed encodings, built once per table version
/// (a new column makes a new one), with JsonConverter's schema JSON rendered once.
#[derive(Debug)]
pub struct TableSchema {
    /// `<topic>.Key`; `None` for a table without key (null Kafka key).
    pub key: Option<Schema>,
    /// `<topic>.Envelope`.
    pub envelope: Schema,
    key_json: Vec<u8>,
    envelope_json: Vec<u8>,
    fingerprint: u64,
}

impl TableSchema {
    /// `name` is `<topic_prefix>.<schema>.<table>`, as Debezium names a table's schemas;
    /// `value` are the row's fields in column order, `source` the connector's source block.
    pub fn new(name: &str, key: Vec<Field>, value: Vec<Field>, source: Schema) -> Self {
        let key = (!key.is_empty()).then(|| Schema::structure(key).named(format!("{name}.Key")));
        let row = Schema::structure(value).named(format!("{name}.Value")).optional();
        let transaction = Schema::structure(vec![
            Field::new("id", Schema::string()),
            Field::new("total_order", Schema::int64()),
            Field::new("data_collection_order", Schema::int64()),
        ])
        .named("event.block")
        .version(1)
        .optional();
        let envelope = Schema::structure(vec![
            Field::new("before", row.clone()),
            Field::new("after", row),
            Field::new("source", source),
            Field::new("transaction", transaction),
            Field::new("op", Schema::string()),
            Field::new("ts_ms", Schema::int64().optional()),
            Field::new("ts_us", Schema::int64().optional()),
            Field::new("ts_ns", Schema::int64().optional()),
        ])
        .named(format!("{name}.Envelope"))
        .version(2);
        let mut key_json = Vec::new();
        if let Some(k) = &key {
            k.write_json(&mut key_json, None);
        }
        let mut envelope_json = Vec::new();
        envelope.write_json(&mut envelope_json, None);
        let fingerprint = {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            (&key_json, &envelope_json).hash(&mut h);
            h.finish()
        };
        TableSchema { key, envelope, key_json, envelope_json, fingerprint }
    }

    /// Identifies this version of the table's schemas (equal schemas, equal fingerprints), so
    /// registry ids can be cached per version.
    pub fn fingerprint(&self) -> u64 {
        self.fingerprint
    }

    /// JsonConverter's schema JSON of the key (empty without key).
    pub fn key_json(&self) -> &[u8] {
        &self.key_json
    }

    pub fn envelope_json(&self) -> &[u8] {
        &self.envelope_json
    }
}

/// Null, or for a field that cannot be null (a NOT NULL column missing from an old image that
/// holds only the key) the type's empty value, as Debezium's converters fall back to.
pub fn write_null_or_empty(w: &mut dyn ValueWriter, schema: &Schema) {
    if schema.optional {
        return w.null();
    }
    match &schema.ty {
        Type::Int8 | Type::Int16 | Type::Int32 | Type::Int64 => w.int(0),
        Type::Float32 | Type::Float64 => w.float(0.0),
        Type::Boolean => w.boolean(false),
        Type::String => w.string(""),
        Type::Bytes => w.bytes(if schema.name.as_deref() == Some(DECIMAL) { &[0] } else { &[] }),
        Type::Array(_) => {
            w.begin();
            w.end();
        }
        Type::Struct(fields) => {
            w.begin();
            for f in fields {
                write_null_or_empty(w, &f.schema);
            }
            w.end();
        }
    }
}

const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";

/// The fields every Debezium connector's `source` block starts with (its `AbstractSourceInfo`);
/// each connector appends its own.
pub fn common_source_fields() -> Vec<Field> {
    let f = Field::new;
    vec![
        f("version", Schema::string()),
        f("connector", Schema::string()),
        f("name", Schema::string()),
        f("ts_ms", Schema::int64()),
        f("snapshot", crate::core::snapshot::snapshot_field_schema()),
        f("db", Schema::string()),
        f("sequence", Schema::string().optional()),
        f("ts_us", Schema::int64().optional()),
        f("ts_ns", Schema::int64().optional()),
    ]
}

/// Decimal helpers shared by the connectors' mappings.
pub mod decimal {
    /// Splits decimal text (`-12.340`, `5`, `1e3` is not accepted) into the unscaled integer's
    /// big-endian two's-complement bytes (as Java's `BigInteger.toByteArray`, which Connect's
    /// `Decimal` uses) and the scale. `None` for anything that is not a plain decimal
    /// (`NaN`, `Infinity`).
    pub fn unscaled_bytes(text: &str, out: &mut Vec<u8>) -> Option<u32> {
        let (neg, body) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let (int, frac) = match body.split_once('.') {
            Some((i, f)) => (i, f),
            None => (body, ""),
        };
        if (int.is_empty() && frac.is_empty())
            || !int.bytes().all(|b| b.is_ascii_digit())
            || !frac.bytes().all(|b| b.is_ascii_digit())
        {
            return None;
        }
        // Magnitude as little-endian base-2^32 limbs: decimal text of any length.
        let mut limbs: Vec<u32> = Vec::with_capacity((int.len() + frac.len()) / 9 + 1);
        for d in int.bytes().chain(frac.bytes()) {
            let mut carry = u64::from(d - b'0');
            for limb in limbs.iter_mut() {
                let v = u64::from(*limb) * 10 + carry;
                *limb = v as u32;
                carry = v >> 32;
            }
            if carry > 0 {
                limbs.push(carry as u32);
            }
        }
        let mut mag: Vec<u8> = limbs.iter().rev().flat_map(|l| l.to_be_bytes()).collect();
        let first = mag.iter().position(|&b| b != 0).unwrap_or(mag.len());
        mag.drain(..first);
        out.clear();
        if mag.is_empty() {
            out.push(0);
        } else if !neg {
            if mag[0] & 0x80 != 0 {
                out.push(0);
            }
            out.extend_from_slice(&mag);
        } else {
            // Two's complement of the magnitude, then the shortest form.
            let mut twos: Vec<u8> = mag.iter().map(|b| !b).collect();
            for b in twos.iter_mut().rev() {
                let (v, overflow) = b.overflowing_add(1);
                *b = v;
                if !overflow {
                    break;
                }
            }
            if twos[0] & 0x80 == 0 {
                out.push(0xFF);
            }
            out.extend_from_slice(&twos);
            while out.len() > 1 && out[0] == 0xFF && out[1] & 0x80 != 0 {
                out.remove(0);
            }
        }
        Some(frac.len() as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_json_is_what_json_converter_writes() {
        let s = Schema::structure(vec![
            Field::new("id", Schema::int32()),
            Field::new(
                "n",
                Schema::bytes()
                    .optional()
                    .logical("org.apache.kafka.connect.data.Decimal")
                    .param("scale", "2")
                    .param("connect.decimal.precision", "10"),
            ),
            Field::new("a", Schema::array(Schema::int32().optional()).optional()),
        ])
        .named("p.s.t.Value");
        let mut out = Vec::new();
        s.write_json(&mut out, Some("after"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"{"type":"struct","fields":[{"type":"int32","optional":false,"field":"id"},{"type":"bytes","optional":true,"name":"org.apache.kafka.connect.data.Decimal","version":1,"parameters":{"scale":"2","connect.decimal.precision":"10"},"field":"n"},{"type":"array","items":{"type":"int32","optional":true},"optional":true,"field":"a"}],"optional":false,"name":"p.s.t.Value","field":"after"}"#
        );
    }

    #[test]
    fn unscaled_decimal_bytes_match_java_big_integer() {
        // Expected bytes from BigInteger.toByteArray (and Debezium's captured output).
        let cases: &[(&str, &[u8], u32)] = &[
            ("12345678.91", &[0x49, 0x96, 0x02, 0xD3], 2),
            ("12.34", &[0x04, 0xD2], 2),
            ("-0.50", &[0xCE], 2),
            ("-0.01", &[0xFF], 2),
            ("0", &[0x00], 0),
            ("0.00", &[0x00], 2),
            ("128", &[0x00, 0x80], 0),
            ("-128", &[0x80], 0),
            ("-129", &[0xFF, 0x7F], 0),
            ("255", &[0x00, 0xFF], 0),
            ("-256", &[0xFF, 0x00], 0),
            ("3.14159265358979323846", &[0x11, 0x07, 0xD5, 0xEB, 0x5B, 0x5B, 0xA4, 0xD7, 0xC6], 20),
        ];
        for (text, bytes, scale) in cases {
            let mut out = Vec::new();
            assert_eq!(decimal::unscaled_bytes(text, &mut out), Some(*scale), "{text}");
            assert_eq!(&out, bytes, "{text}");
        }
        for bad in ["NaN", "", "-", "1e5", "1.2.3", "Infinity"] {
            assert_eq!(decimal::unscaled_bytes(bad, &mut Vec::new()), None, "{bad}");
        }
    }
}
