//! Avro: a Connect schema as an Avro schema (the layout Confluent's AvroConverter gives
//! Debezium's schemas, plus Avro logical types where Debezium's value already is one), and
//! values as Avro binary in the Confluent wire format (magic byte 0, 4-byte schema id, datum).
//!
//! The datum is written straight from the connector's values while walking the schema; building
//! an `apache_avro::types::Value` tree per row would allocate for every column. `apache-avro`
//! parses every schema cdcd generates before it is registered, and the tests decode cdcd's
//! bytes with it.

use std::collections::HashSet;

use serde_json::{json, Map, Value as Json};

use super::cursor::{Cursor, Slot};
use crate::core::connect::{Schema, Type, ValueWriter};

/// The Avro schema (as JSON) for a Connect schema; `None` with the reason when it cannot be one.
pub fn avro_schema(schema: &Schema) -> Result<Json, String> {
    let mut defined = HashSet::new();
    let avro = convert(schema, &mut defined)?;
    // Checked here, once per table and version, rather than discovered by the registry.
    apache_avro::Schema::parse(&avro).map_err(|e| format!("generated Avro schema is invalid: {e}"))?;
    Ok(avro)
}

/// Avro logical types for Debezium's semantic types whose value is exactly the logical type's.
fn logical_type(name: &str) -> Option<&'static str> {
    Some(match name {
        "io.debezium.time.Date" | "org.apache.kafka.connect.data.Date" => "date",
        "io.debezium.time.Time" | "org.apache.kafka.connect.data.Time" => "time-millis",
        "io.debezium.time.MicroTime" => "time-micros",
        "io.debezium.time.Timestamp" | "org.apache.kafka.connect.data.Timestamp" => "timestamp-millis",
        "io.debezium.time.MicroTimestamp" => "timestamp-micros",
        "io.debezium.data.Uuid" => "uuid",
        _ => return None,
    })
}

/// An Avro name: letters, digits and `_`, not starting with a digit (Debezium's
/// `schema.name.adjustment.mode = avro`).
pub fn avro_name(name: &str) -> String {
    let mut out: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' { c } else { '_' }).collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// `a.b-c.d` -> (`a.b_c`, `d`): namespace and name, each part an Avro name.
fn split_full_name(full: &str) -> (String, String) {
    let parts: Vec<String> = full.split('.').map(avro_name).collect();
    let (name, ns) = parts.split_last().map(|(n, ns)| (n.clone(), ns.join("."))).unwrap_or_default();
    (ns, name)
}

fn convert(schema: &Schema, defined: &mut HashSet<String>) -> Result<Json, String> {
    let mut props = Map::new();
    let base = match &schema.ty {
        Type::Int8 => {
            props.insert("connect.type".into(), json!("int8"));
            "int"
        }
        Type::Int16 => {
            props.insert("connect.type".into(), json!("int16"));
            "int"
        }
        Type::Int32 => "int",
        Type::Int64 => "long",
        Type::Float32 => "float",
        Type::Float64 => "double",
        Type::Boolean => "boolean",
        Type::String => "string",
        Type::Bytes => "bytes",
        Type::Array(items) => {
            let items = optional_of(items, defined)?;
            return Ok(json!({"type": "array", "items": items}));
        }
        Type::Struct(fields) => return record(schema, fields, defined),
    };
    if let Some(v) = schema.version {
        props.insert("connect.version".into(), json!(v));
    }
    if let Some(doc) = &schema.doc {
        props.insert("connect.doc".into(), json!(doc));
    }
    if !schema.parameters.is_empty() {
        let params: Map<String, Json> = schema.parameters.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
        props.insert("connect.parameters".into(), Json::Object(params));
    }
    if let Some(d) = &schema.default {
        props.insert("connect.default".into(), json!(d));
    }
    if let Some(name) = &schema.name {
        props.insert("connect.name".into(), json!(name));
        if name == "org.apache.kafka.connect.data.Decimal" {
            let scale: u32 = schema.parameter("scale").and_then(|s| s.parse().ok()).unwrap_or(0);
            // Connect's default when the column has no declared precision, as AvroData.
            let precision: u32 =
                schema.parameter("connect.decimal.precision").and_then(|s| s.parse().ok()).unwrap_or(64);
            props.insert("scale".into(), json!(scale));
            props.insert("precision".into(), json!(precision.max(scale).max(1)));
            props.insert("logicalType".into(), json!("decimal"));
        } else if let Some(lt) = logical_type(name).filter(|_| schema.avro_logical) {
            props.insert("logicalType".into(), json!(lt));
        }
    }
    if props.is_empty() {
        return Ok(json!(base));
    }
    props.insert("type".into(), json!(base));
    Ok(Json::Object(props))
}

/// A struct as a record; a record already defined in this schema is referred to by name.
fn record(
    schema: &Schema,
    fields: &[crate::core::connect::Field],
    defined: &mut HashSet<String>,
) -> Result<Json, String> {
    let full = schema.name.clone().unwrap_or_else(|| "ConnectDefault".into());
    let (ns, name) = split_full_name(&full);
    let qualified = if ns.is_empty() { name.clone() } else { format!("{ns}.{name}") };
    if !defined.insert(qualified.clone()) {
        return Ok(json!(qualified));
    }
    let mut seen = HashSet::new();
    let mut out_fields = Vec::with_capacity(fields.len());
    for f in fields {
        let fname = avro_name(&f.name);
        if !seen.insert(fname.clone()) {
            return Err(format!("columns of {full} collide as Avro field name {fname}"));
        }
        let mut field = Map::new();
        field.insert("name".into(), json!(fname));
        field.insert("type".into(), optional_of(&f.schema, defined)?);
        if f.schema.optional {
            field.insert("default".into(), f.schema.default.as_ref().map_or(Json::Null, |d| json!(d)));
        }
        out_fields.push(Json::Object(field));
    }
    let mut rec = Map::new();
    rec.insert("type".into(), json!("record"));
    rec.insert("name".into(), json!(name));
    if !ns.is_empty() {
        rec.insert("namespace".into(), json!(ns));
    }
    rec.insert("fields".into(), Json::Array(out_fields));
    if let Some(doc) = &schema.doc {
        rec.insert("doc".into(), json!(doc));
    }
    if let Some(v) = schema.version {
        rec.insert("connect.version".into(), json!(v));
    }
    rec.insert("connect.name".into(), json!(full));
    Ok(Json::Object(rec))
}

/// An optional schema is a union with null: null first, unless its default is not null (Avro
/// requires a union's default to match its first branch).
fn optional_of(schema: &Schema, defined: &mut HashSet<String>) -> Result<Json, String> {
    let inner = convert(schema, defined)?;
    Ok(match (schema.optional, &schema.default) {
        (false, _) => inner,
        (true, None) => json!(["null", inner]),
        (true, Some(_)) => json!([inner, "null"]),
    })
}

/// The union branch of a non-null value and of null in an optional slot.
fn branches(schema: &Schema) -> (u8, u8) {
    if schema.default.is_some() {
        (0, 1)
    } else {
        (1, 0)
    }
}

pub fn write_long(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    while z >= 0x80 {
        out.push((z as u8) | 0x80);
        z >>= 7;
    }
    out.push(z as u8);
}

/// Writes one value as an Avro datum.
pub struct AvroWriter<'s, 'o> {
    cursor: Cursor<'s>,
    out: &'o mut Vec<u8>,
    /// For each open array: where its block count goes.
    arrays: Vec<usize>,
}

impl<'s, 'o> AvroWriter<'s, 'o> {
    pub fn new(schema: &'s Schema, out: &'o mut Vec<u8>) -> Self {
        AvroWriter { cursor: Cursor::new(schema), out, arrays: Vec::new() }
    }

    pub fn finish(self) -> Result<(), String> {
        self.cursor.finish()
    }

    /// Takes the next slot (its type checked by `ok`, `what` naming the value for the error)
    /// and writes the union branch of a non-null value in an optional slot.
    fn slot(&mut self, what: &str, ok: impl Fn(&Type) -> bool) -> Option<&'s Schema> {
        let slot = self.cursor.take(what, ok)?;
        let schema = slot.schema();
        if schema.optional && !matches!(slot, Slot::Root(_)) {
            write_long(self.out, branches(schema).0.into());
        }
        Some(schema)
    }
}

impl ValueWriter for AvroWriter<'_, '_> {
    fn null(&mut self) {
        if let Some(slot) = self.cursor.take_null() {
            write_long(self.out, branches(slot.schema()).1.into());
        }
    }

    fn boolean(&mut self, v: bool) {
        if self.slot("a boolean", |t| matches!(t, Type::Boolean)).is_some() {
            self.out.push(v as u8);
        }
    }

    fn int(&mut self, v: i64) {
        if let Some(s) = self.slot("an integer", Type::is_integer) {
            let fits = match s.ty {
                Type::Int8 => i8::try_from(v).is_ok(),
                Type::Int16 => i16::try_from(v).is_ok(),
                Type::Int32 => i32::try_from(v).is_ok(),
                _ => true,
            };
            if !fits {
                self.cursor.fail::<()>(format!("{v} does not fit {:?}", s.ty));
                return;
            }
            write_long(self.out, v);
        }
    }

    fn float(&mut self, v: f64) {
        if let Some(s) = self.slot("a float", |t| matches!(t, Type::Float32 | Type::Float64)) {
            if s.ty == Type::Float32 {
                self.out.extend_from_slice(&(v as f32).to_le_bytes());
            } else {
                self.out.extend_from_slice(&v.to_le_bytes());
            }
        }
    }

    fn string(&mut self, v: &str) {
        if self.slot("a string", |t| matches!(t, Type::String)).is_some() {
            write_long(self.out, v.len() as i64);
            self.out.extend_from_slice(v.as_bytes());
        }
    }

    fn bytes(&mut self, v: &[u8]) {
        if self.slot("bytes", |t| matches!(t, Type::Bytes)).is_some() {
            write_long(self.out, v.len() as i64);
            self.out.extend_from_slice(v);
        }
    }

    fn begin(&mut self) {
        if let Some(s) = self.slot("a struct or array", |t| matches!(t, Type::Struct(_) | Type::Array(_))) {
            if matches!(s.ty, Type::Array(_)) {
                self.arrays.push(self.out.len());
            }
            self.cursor.push(s);
        }
    }

    fn fail(&mut self, msg: &str) {
        self.cursor.fail::<()>(msg.to_string());
    }

    fn end(&mut self) {
        if let Some((s, count)) = self.cursor.pop() {
            if matches!(s.ty, Type::Array(_)) {
                let Some(at) = self.arrays.pop() else { return };
                // One block holding every element, then the empty block that ends the array.
                if count > 0 {
                    let mut head = Vec::with_capacity(4);
                    write_long(&mut head, count as i64);
                    self.out.splice(at..at, head);
                }
                self.out.push(0);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::connect::Field;
    use apache_avro::types::Value as Av;

    fn schema() -> Schema {
        let vsd = || {
            Schema::structure(vec![Field::new("scale", Schema::int32()), Field::new("value", Schema::bytes())])
                .optional()
                .logical("io.debezium.data.VariableScaleDecimal")
                .doc("Variable scaled decimal")
        };
        Schema::structure(vec![
            Field::new("id", Schema::int16()),
            Field::new("big", Schema::int64().optional()),
            Field::new("f", Schema::float32().optional()),
            Field::new("d", Schema::float64()),
            Field::new("s", Schema::string().optional().logical("io.debezium.data.Uuid")),
            Field::new(
                "n",
                Schema::bytes()
                    .optional()
                    .logical("org.apache.kafka.connect.data.Decimal")
                    .param("scale", "2")
                    .param("connect.decimal.precision", "10"),
            ),
            Field::new("v1", vsd()),
            Field::new("v2", vsd()),
            Field::new("a", Schema::array(Schema::int32().optional()).optional()),
            Field::new("e", Schema::array(Schema::string()).optional()),
            Field::new("snap", Schema::string().optional().default_str("false")),
            Field::new("t", Schema::int64().optional().logical("io.debezium.time.MicroTimestamp")),
        ])
        .named("p.s.t-1.Value")
    }

    fn write_row(w: &mut dyn ValueWriter) {
        w.begin();
        w.int(-3);
        w.null();
        w.float(1.5);
        w.float(-2.25e100);
        w.string("a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
        w.bytes(&[0x04, 0xD2]);
        w.begin();
        w.int(20);
        w.bytes(&[0x11, 0x07]);
        w.end();
        w.null();
        w.begin();
        w.int(1);
        w.null();
        w.int(300);
        w.end();
        w.begin();
        w.end();
        w.string("last");
        w.int(1_709_212_455_123_456);
        w.end();
    }

    #[test]
    fn datum_decodes_with_apache_avro_to_the_written_values() {
        let s = schema();
        let avro = avro_schema(&s).unwrap();
        let parsed = apache_avro::Schema::parse(&avro).unwrap();
        let mut out = Vec::new();
        let mut w = AvroWriter::new(&s, &mut out);
        write_row(&mut w);
        w.finish().unwrap();
        let v = apache_avro::from_avro_datum(&parsed, &mut out.as_slice(), None).unwrap();
        let Av::Record(fields) = v else { panic!("{v:?}") };
        let get = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone()).unwrap();
        assert_eq!(get("id"), Av::Int(-3));
        assert_eq!(get("big"), Av::Union(0, Box::new(Av::Null)));
        assert_eq!(get("f"), Av::Union(1, Box::new(Av::Float(1.5))));
        assert_eq!(get("d"), Av::Double(-2.25e100));
        assert!(matches!(get("s"), Av::Union(1, u) if matches!(*u, Av::Uuid(_))));
        assert!(matches!(get("n"), Av::Union(1, d) if matches!(*d, Av::Decimal(_))));
        let Av::Union(1, v1) = get("v1") else { panic!() };
        assert_eq!(*v1, Av::Record(vec![("scale".into(), Av::Int(20)), ("value".into(), Av::Bytes(vec![0x11, 0x07]))]));
        assert_eq!(get("v2"), Av::Union(0, Box::new(Av::Null)));
        let a = Av::Array(vec![
            Av::Union(1, Box::new(Av::Int(1))),
            Av::Union(0, Box::new(Av::Null)),
            Av::Union(1, Box::new(Av::Int(300))),
        ]);
        assert_eq!(get("a"), Av::Union(1, Box::new(a)));
        assert_eq!(get("e"), Av::Union(1, Box::new(Av::Array(vec![]))));
        assert_eq!(get("snap"), Av::Union(0, Box::new(Av::String("last".into()))));
        assert_eq!(get("t"), Av::Union(1, Box::new(Av::TimestampMicros(1_709_212_455_123_456))));
    }

    #[test]
    fn schema_layout_is_avro_converters() {
        let avro = avro_schema(&schema()).unwrap();
        assert_eq!(avro["name"], "Value");
        assert_eq!(avro["namespace"], "p.s.t_1", "invalid characters are replaced");
        assert_eq!(avro["connect.name"], "p.s.t-1.Value");
        let f = |n: &str| avro["fields"].as_array().unwrap().iter().find(|f| f["name"] == n).unwrap().clone();
        assert_eq!(f("id")["type"], json!({"type": "int", "connect.type": "int16"}));
        assert_eq!(f("big")["type"], json!(["null", "long"]));
        assert_eq!(f("big")["default"], Json::Null);
        assert_eq!(f("n")["type"][1]["logicalType"], "decimal");
        assert_eq!(f("n")["type"][1]["precision"], 10);
        assert_eq!(f("n")["type"][1]["scale"], 2);
        assert_eq!(f("v2")["type"], json!(["null", "io.debezium.data.VariableScaleDecimal"]), "defined once");
        assert_eq!(f("snap")["type"][1], "null", "a non-null default comes first");
        assert_eq!(f("snap")["default"], "false");
        assert_eq!(f("t")["type"][1]["logicalType"], "timestamp-micros");
    }

    #[test]
    fn mismatched_values_are_reported() {
        let s = schema();
        let mut out = Vec::new();
        let mut w = AvroWriter::new(&s, &mut out);
        w.begin();
        w.int(70_000);
        assert!(w.finish().unwrap_err().contains("does not fit"));
    }

    #[test]
    fn zigzag_varints() {
        for (v, bytes) in [(0i64, &[0u8][..]), (-1, &[1]), (1, &[2]), (-64, &[0x7F]), (64, &[0x80, 0x01])] {
            let mut out = Vec::new();
            write_long(&mut out, v);
            assert_eq!(out, bytes, "{v}");
        }
    }
}
