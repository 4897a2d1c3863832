//! Debezium's JSON, as Kafka Connect's JsonConverter writes it: the payload follows the Connect
//! schema (integers as numbers, bytes as base64, `NaN` / `Infinity` floats as strings), and with
//! `schemas.enable` the record is `{"schema": ..., "payload": ...}`.

use base64::Engine;

use super::cursor::{Cursor, Slot};
use crate::core::connect::{Schema, Type, ValueWriter};
use crate::core::json;

/// Writes one value (a key or an envelope) as JsonConverter's payload JSON.
pub struct JsonWriter<'s, 'o> {
    cursor: Cursor<'s>,
    out: &'o mut Vec<u8>,
}

impl<'s, 'o> JsonWriter<'s, 'o> {
    pub fn new(schema: &'s Schema, out: &'o mut Vec<u8>) -> Self {
        JsonWriter { cursor: Cursor::new(schema), out }
    }

    pub fn finish(self) -> Result<(), String> {
        self.cursor.finish()
    }

    /// Takes the next slot (its type checked by `ok`, `what` naming the value for the error)
    /// and writes its separator and field name.
    fn slot(&mut self, what: &str, ok: impl Fn(&Type) -> bool) -> Option<&'s Schema> {
        let slot = self.cursor.take(what, ok)?;
        self.open(&slot);
        Some(slot.schema())
    }

    fn open(&mut self, slot: &Slot<'_>) {
        if slot.follows_another() {
            self.out.push(b',');
        }
        if let Slot::Field(f, _) = slot {
            json::write_str(self.out, &f.name);
            self.out.push(b':');
        }
    }
}

/// A float as Jackson writes it: a number, or the strings `NaN`, `Infinity`, `-Infinity`.
pub fn write_float(out: &mut Vec<u8>, v: f64, single: bool) {
    if v.is_nan() {
        out.extend_from_slice(b"\"NaN\"");
    } else if v.is_infinite() {
        out.extend_from_slice(if v > 0.0 { b"\"Infinity\"" } else { b"\"-Infinity\"" });
    } else if single {
        // The shortest text that reads back as the same f32, as Float.toString.
        out.extend_from_slice(format!("{:?}", v as f32).as_bytes());
    } else {
        out.extend_from_slice(format!("{v:?}").as_bytes());
    }
}

impl ValueWriter for JsonWriter<'_, '_> {
    fn null(&mut self) {
        if let Some(slot) = self.cursor.take_null() {
            self.open(&slot);
            self.out.extend_from_slice(b"null");
        }
    }

    fn boolean(&mut self, v: bool) {
        if self.slot("a boolean", |t| matches!(t, Type::Boolean)).is_some() {
            self.out.extend_from_slice(if v { b"true" } else { b"false" });
        }
    }

    fn int(&mut self, v: i64) {
        if self.slot("an integer", Type::is_integer).is_some() {
            json::write_i64(self.out, v);
        }
    }

    fn float(&mut self, v: f64) {
        if let Some(s) = self.slot("a float", |t| matches!(t, Type::Float32 | Type::Float64)) {
            write_float(self.out, v, s.ty == Type::Float32);
        }
    }

    fn string(&mut self, v: &str) {
        if self.slot("a string", |t| matches!(t, Type::String)).is_some() {
            json::write_str(self.out, v);
        }
    }

    fn bytes(&mut self, v: &[u8]) {
        if self.slot("bytes", |t| matches!(t, Type::Bytes)).is_some() {
            self.out.push(b'"');
            let start = self.out.len();
            let len = base64::encoded_len(v.len(), true).unwrap_or(0);
            self.out.resize(start + len, 0);
            let n = base64::engine::general_purpose::STANDARD.encode_slice(v, &mut self.out[start..]).unwrap_or(0);
            self.out.truncate(start + n);
            self.out.push(b'"');
        }
    }

    fn begin(&mut self) {
        if let Some(s) = self.slot("a struct or array", |t| matches!(t, Type::Struct(_) | Type::Array(_))) {
            self.out.push(if matches!(s.ty, Type::Struct(_)) { b'{' } else { b'[' });
            self.cursor.push(s);
        }
    }

    fn fail(&mut self, msg: &str) {
        self.cursor.fail::<()>(msg.to_string());
    }

    fn end(&mut self) {
        if let Some((s, _)) = self.cursor.pop() {
            self.out.push(if matches!(s.ty, Type::Struct(_)) { b'}' } else { b']' });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::connect::Field;

    fn schema() -> Schema {
        Schema::structure(vec![
            Field::new("id", Schema::int32()),
            Field::new("f", Schema::float32().optional()),
            Field::new("d", Schema::float64().optional()),
            Field::new("b", Schema::bytes().optional()),
            Field::new("a", Schema::array(Schema::string().optional()).optional()),
        ])
    }

    #[test]
    fn payload_follows_the_schema() {
        let s = schema();
        let mut out = Vec::new();
        let mut w = JsonWriter::new(&s, &mut out);
        w.begin();
        w.int(7);
        w.float(1.5);
        w.float(f64::NEG_INFINITY);
        w.bytes(&[0, 0xff, 0x10]);
        w.begin();
        w.string("x");
        w.null();
        w.end();
        w.end();
        w.finish().unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), r#"{"id":7,"f":1.5,"d":"-Infinity","b":"AP8Q","a":["x",null]}"#);
    }

    #[test]
    fn mismatches_are_errors_not_output() {
        let s = schema();
        let mut out = Vec::new();
        let mut w = JsonWriter::new(&s, &mut out);
        w.begin();
        w.string("not an int");
        assert!(w.finish().unwrap_err().contains("field id"));

        let mut out = Vec::new();
        let mut w = JsonWriter::new(&s, &mut out);
        w.begin();
        w.null();
        assert!(w.finish().unwrap_err().contains("null for required field id"));

        let mut out = Vec::new();
        let mut w = JsonWriter::new(&s, &mut out);
        w.begin();
        w.int(1);
        w.end();
        assert!(w.finish().unwrap_err().contains("1 values for the 5 fields"));
    }

    #[test]
    fn floats_read_back_exactly() {
        for (v, single) in [(0.1, true), (1e-7, false), (-2.25e100, false), (3.4028235e38, true), (5e-324, false)] {
            let mut out = Vec::new();
            write_float(&mut out, v, single);
            let back: f64 = serde_json::from_slice(&out).unwrap();
            if single {
                assert_eq!(back as f32, v as f32);
            } else {
                assert_eq!(back, v);
            }
        }
    }
}
