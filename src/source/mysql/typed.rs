//! MySQL / MariaDB columns in Debezium's types, for the typed encodings (Debezium JSON, Avro):
//! each column's Connect schema, decided once per table version from its kind and details
//! (precision, scale, fractional seconds, nullability), and each value converted from the
//! lossless form cdcd's JSON gives it. The mapping follows Debezium's documented MySQL type
//! mapping (default `time.precision.mode = adaptive_time_microseconds`,
//! `bigint.unsigned.handling.mode = long`); docs/envelope.md (Encodings) lists it.

use base64::Engine;

use super::table::Kind;
use crate::core::connect::{decimal, BinaryMode, DecimalMode, Field, Schema, TimeMode, TypedOptions, ValueWriter};
use crate::core::text_forms::{bits_le_sized, hex, parse_date, parse_float, parse_time};

/// What the catalog says about a column beyond its [`Kind`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Detail {
    /// DECIMAL(p, s).
    pub precision: Option<u32>,
    pub scale: Option<u32>,
    /// Fractional-second digits of DATETIME, TIMESTAMP and TIME.
    pub fsp: u32,
    /// DOUBLE (8 bytes) rather than FLOAT.
    pub double: bool,
    pub nullable: bool,
}

/// How one column's value becomes typed values. Decided once per column.
#[derive(Clone, Debug, PartialEq)]
pub enum Mapped {
    Int,
    /// BIGINT UNSIGNED in Debezium's `long` mode: the 64 bits as a signed long.
    UnsignedLong,
    Float,
    Decimal {
        scale: u32,
    },
    DecimalText,
    DecimalDouble,
    Text,
    Bytes(BinaryMode),
    Bit1,
    /// BIT(n): little-endian bytes, sized for n bits.
    Bits {
        bytes: usize,
    },
    Date,
    /// DATETIME as epoch milliseconds or microseconds, as if UTC.
    DateTime {
        micros: bool,
    },
    /// TIMESTAMP as ISO-8601 UTC text with the column's fractional digits.
    ZonedTimestamp {
        fsp: u32,
    },
    /// TIME as microseconds (may be negative or past 24 h).
    Time {
        micros: bool,
    },
    Geometry,
    /// POINT: Debezium's `Point`, the coordinates read from the WKB next to it.
    Point,
    /// VECTOR: Debezium's `io.debezium.data.FloatVector`, an array of FLOAT32.
    FloatVector,
}

/// The column's Connect schema (not yet optional) and how its values are converted.
pub fn map_column(kind: &Kind, d: &Detail, opts: &TypedOptions) -> (Mapped, Schema) {
    let connect_time = opts.time == TimeMode::Connect;
    match kind {
        Kind::Int { unsigned, bits } => match (bits, unsigned) {
            (8, _) | (16, false) => (Mapped::Int, Schema::int16()),
            (16, true) | (24, _) | (32, false) => (Mapped::Int, Schema::int32()),
            (64, true) => (Mapped::UnsignedLong, Schema::int64()),
            _ => (Mapped::Int, Schema::int64()),
        },
        Kind::Year => (Mapped::Int, Schema::int32().logical("io.debezium.time.Year")),
        Kind::Float if d.double => (Mapped::Float, Schema::float64()),
        Kind::Float => (Mapped::Float, Schema::float32()),
        Kind::Decimal => match opts.decimal {
            DecimalMode::String => (Mapped::DecimalText, Schema::string()),
            DecimalMode::Double => (Mapped::DecimalDouble, Schema::float64()),
            DecimalMode::Precise => {
                let scale = d.scale.unwrap_or(0);
                let mut schema =
                    Schema::bytes().logical("org.apache.kafka.connect.data.Decimal").param("scale", scale.to_string());
                if let Some(p) = d.precision {
                    schema = schema.param("connect.decimal.precision", p.to_string());
                }
                (Mapped::Decimal { scale }, schema)
            }
        },
        Kind::Bit { bits: 1 } => (Mapped::Bit1, Schema::boolean()),
        Kind::Bit { bits } => (
            Mapped::Bits { bytes: (*bits as usize).div_ceil(8) },
            Schema::bytes().logical("io.debezium.data.Bits").param("length", bits.to_string()),
        ),
        Kind::Date if connect_time => (Mapped::Date, Schema::int32().logical("org.apache.kafka.connect.data.Date")),
        Kind::Date => (Mapped::Date, Schema::int32().logical("io.debezium.time.Date")),
        Kind::DateTime if connect_time => {
            (Mapped::DateTime { micros: false }, Schema::int64().logical("org.apache.kafka.connect.data.Timestamp"))
        }
        Kind::DateTime if d.fsp <= 3 => {
            (Mapped::DateTime { micros: false }, Schema::int64().logical("io.debezium.time.Timestamp"))
        }
        Kind::DateTime => {
            (Mapped::DateTime { micros: true }, Schema::int64().logical("io.debezium.time.MicroTimestamp"))
        }
        Kind::Timestamp => {
            (Mapped::ZonedTimestamp { fsp: d.fsp }, Schema::string().logical("io.debezium.time.ZonedTimestamp"))
        }
        // MySQL's adaptive modes both give microseconds: TIME spans -838..838 hours.
        // A duration, not a time of day: Avro's time logical types cannot hold it.
        Kind::Time if connect_time => (
            Mapped::Time { micros: false },
            Schema::int32().logical("org.apache.kafka.connect.data.Time").without_avro_logical_type(),
        ),
        Kind::Time => (
            Mapped::Time { micros: true },
            Schema::int64().logical("io.debezium.time.MicroTime").without_avro_logical_type(),
        ),
        Kind::Text { .. } => (Mapped::Text, Schema::string()),
        Kind::Binary { .. } => match opts.binary {
            BinaryMode::Bytes => (Mapped::Bytes(BinaryMode::Bytes), Schema::bytes()),
            mode => (Mapped::Bytes(mode), Schema::string()),
        },
        Kind::Enum(values) => {
            (Mapped::Text, Schema::string().logical("io.debezium.data.Enum").param("allowed", values.join(",")))
        }
        Kind::Set(values) => {
            (Mapped::Text, Schema::string().logical("io.debezium.data.EnumSet").param("allowed", values.join(",")))
        }
        Kind::Json => (Mapped::Text, Schema::string().logical("io.debezium.data.Json")),
        Kind::Geometry => (
            Mapped::Geometry,
            Schema::structure(vec![Field::new("wkb", Schema::bytes()), Field::new("srid", Schema::int32().optional())])
                .logical("io.debezium.data.geometry.Geometry")
                .doc("Geometry"),
        ),
        Kind::Point => (
            Mapped::Point,
            Schema::structure(vec![
                Field::new("x", Schema::float64()),
                Field::new("y", Schema::float64()),
                Field::new("wkb", Schema::bytes().optional()),
                Field::new("srid", Schema::int32().optional()),
            ])
            .logical("io.debezium.data.geometry.Point")
            .doc("Geometry (POINT)"),
        ),
        Kind::Vector => (Mapped::FloatVector, Schema::array(Schema::float32()).logical("io.debezium.data.FloatVector")),
    }
}

/// One cell as cdcd's own JSON renders it (lossless for every kind), split just enough to
/// convert: most cells are a number or a string without escapes, read in place.
#[derive(Debug)]
pub enum Friendly<'a> {
    Null,
    Number(&'a str),
    Str(std::borrow::Cow<'a, str>),
    /// An object (GEOMETRY's `{"wkb", "srid"}`).
    Object(serde_json::Map<String, serde_json::Value>),
}

impl<'a> Friendly<'a> {
    /// Splits one rendered JSON value.
    pub fn parse(text: &'a [u8]) -> Result<Friendly<'a>, String> {
        let s = std::str::from_utf8(text).map_err(|e| e.to_string())?;
        match text.first() {
            Some(b'n') if s == "null" => Ok(Friendly::Null),
            Some(b'"') if !s.contains('\\') && s.len() >= 2 && s.ends_with('"') => {
                Ok(Friendly::Str(std::borrow::Cow::Borrowed(&s[1..s.len() - 1])))
            }
            Some(b'"') => serde_json::from_str::<String>(s).map(|v| Friendly::Str(v.into())).map_err(|e| e.to_string()),
            Some(b'{') => match serde_json::from_str(s) {
                Ok(serde_json::Value::Object(o)) => Ok(Friendly::Object(o)),
                Ok(other) => Err(format!("unexpected {other}")),
                Err(e) => Err(e.to_string()),
            },
            Some(_) => Ok(Friendly::Number(s)),
            None => Err("an empty value".into()),
        }
    }
}

/// Writes one non-null value as `m` says. `nullable`: whether a zero date may become null
/// (Debezium writes MySQL's zero dates as null, or as the epoch in a NOT NULL column).
pub fn write_typed(m: &Mapped, v: &Friendly<'_>, nullable: bool, w: &mut dyn ValueWriter, scratch: &mut Vec<u8>) {
    use Friendly as J;
    let bad = |w: &mut dyn ValueWriter| w.fail(&format!("unexpected value {v:?} for {m:?}"));
    let zero_date = |w: &mut dyn ValueWriter| if nullable { w.null() } else { w.int(0) };
    match (m, v) {
        (Mapped::Int, J::Number(n)) => match n.parse::<i64>() {
            Ok(i) => w.int(i),
            Err(_) => bad(w),
        },
        (Mapped::UnsignedLong, J::Number(n)) => match n.parse::<u64>() {
            Ok(u) => w.int(u as i64),
            Err(_) => bad(w),
        },
        (Mapped::Float | Mapped::DecimalDouble, J::Number(s)) => match parse_float(s) {
            Some(f) => w.float(f),
            None => bad(w),
        },
        (Mapped::Float | Mapped::DecimalDouble, J::Str(s)) => match parse_float(s) {
            Some(f) => w.float(f),
            None => bad(w),
        },
        (Mapped::Decimal { scale }, J::Str(s)) => match decimal::unscaled_bytes(s, scratch) {
            Some(sc) if sc == *scale => w.bytes(scratch),
            _ => bad(w),
        },
        (Mapped::DecimalText | Mapped::Text, J::Str(s)) => w.string(s),
        (Mapped::Bytes(mode), J::Str(b64)) => {
            let Ok(bytes) = base64::engine::general_purpose::STANDARD.decode(b64.as_bytes()) else { return bad(w) };
            match mode {
                BinaryMode::Bytes => w.bytes(&bytes),
                BinaryMode::Base64 => w.string(b64),
                BinaryMode::Base64UrlSafe => w.string(&base64::engine::general_purpose::URL_SAFE.encode(&bytes)),
                BinaryMode::Hex => w.string(&hex(&bytes)),
            }
        }
        (Mapped::Bit1, J::Str(s)) => w.boolean(s == "1"),
        (Mapped::Bits { bytes }, J::Str(s)) => {
            // A set bit past the column's width is a value the column cannot hold.
            if !bits_le_sized(s, scratch) || scratch.iter().skip(*bytes).any(|&b| b != 0) {
                return bad(w);
            }
            scratch.resize(*bytes, 0);
            w.bytes(scratch)
        }
        (Mapped::Date, J::Str(s)) => match parse_date(s) {
            Some(days) => w.int(days),
            None => zero_date(w),
        },
        (Mapped::DateTime { micros }, J::Str(s)) => match parse_datetime(s) {
            Some(us) => w.int(if *micros { us } else { us.div_euclid(1000) }),
            None => zero_date(w),
        },
        (Mapped::ZonedTimestamp { fsp }, J::Str(s)) => match zoned_timestamp(s, *fsp) {
            Some(iso) => w.string(&iso),
            None if nullable => w.null(),
            None => w.string("1970-01-01T00:00:00Z"),
        },
        (Mapped::Time { micros }, J::Str(s)) => {
            let (neg, body) = s.strip_prefix('-').map_or((false, s.as_ref()), |b| (true, b));
            match parse_time(body) {
                Some(us) => {
                    let us = if neg { -us } else { us };
                    w.int(if *micros { us } else { us.div_euclid(1000) })
                }
                None => bad(w),
            }
        }
        (Mapped::Geometry | Mapped::Point, J::Object(o)) => {
            let wkb = o.get("wkb").and_then(|b| b.as_str());
            let Some(Ok(wkb)) = wkb.map(|b| base64::engine::general_purpose::STANDARD.decode(b)) else {
                return bad(w);
            };
            let point = match m {
                Mapped::Point => match point_of_wkb(&wkb) {
                    Some(xy) => Some(xy),
                    None => return w.fail("a POINT column holds a value that is not a WKB point"),
                },
                _ => None,
            };
            w.begin();
            if let Some((x, y)) = point {
                w.float(x);
                w.float(y);
            }
            w.bytes(&wkb);
            // SRID 0 is "none": Debezium writes null.
            match o.get("srid").and_then(|s| s.as_i64()).filter(|&s| s != 0) {
                Some(srid) => w.int(srid),
                None => w.null(),
            }
            w.end();
        }
        (Mapped::FloatVector, J::Number(list)) if list.starts_with('[') => {
            let Ok(items) = serde_json::from_str::<Vec<serde_json::Value>>(list) else { return bad(w) };
            w.begin();
            for item in &items {
                match item.as_f64().or_else(|| item.as_str().and_then(parse_float)) {
                    Some(f) => w.float(f),
                    None => {
                        w.fail(&format!("unexpected vector element {item}"));
                        break;
                    }
                }
            }
            w.end();
        }
        _ => bad(w),
    }
}

/// The coordinates of a WKB point (byte order, type 1, x, y), in either byte order.
fn point_of_wkb(wkb: &[u8]) -> Option<(f64, f64)> {
    let little = match wkb.first()? {
        0 => false,
        1 => true,
        _ => return None,
    };
    let word = |at: usize, len: usize| wkb.get(at..at + len);
    let (t, x, y) = (word(1, 4)?, word(5, 8)?, word(13, 8)?);
    let f = |b: &[u8]| {
        let b: [u8; 8] = b.try_into().ok()?;
        Some(if little { f64::from_le_bytes(b) } else { f64::from_be_bytes(b) })
    };
    let t = u32::from_le_bytes(t.try_into().ok()?);
    (t == if little { 1 } else { 1 << 24 } && wkb.len() == 21).then_some(())?;
    Some((f(x)?, f(y)?))
}

/// `2024-02-29T13:14:15.5` -> microseconds since the epoch, as if UTC; `None` for MySQL's
/// zero and partly-zero dates, which have no instant.
fn parse_datetime(s: &str) -> Option<i64> {
    let (date, time) = s.split_once('T')?;
    Some(parse_date(date)? * 86_400_000_000 + parse_time(time)?)
}

/// `2024-01-02T03:04:05.123000Z` -> the same instant with `fsp` fraction digits (Debezium's
/// ZonedTimestamp for a TIMESTAMP(fsp) column); `None` for the zero timestamp.
fn zoned_timestamp(s: &str, fsp: u32) -> Option<String> {
    let body = s.strip_suffix('Z')?;
    parse_datetime(body)?;
    let (whole, frac) = body.split_once('.').unwrap_or((body, ""));
    let mut out = String::with_capacity(32);
    out.push_str(whole);
    if fsp > 0 {
        out.push('.');
        let digits: String = frac.chars().chain(std::iter::repeat('0')).take(fsp as usize).collect();
        out.push_str(&digits);
    }
    out.push('Z');
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::dbz_json::JsonWriter;

    /// The value `friendly` (cdcd's JSON) of a `kind` column, in Debezium's JSON.
    fn typed(kind: Kind, d: Detail, friendly: serde_json::Value) -> String {
        let (m, schema) = map_column(&kind, &d, &TypedOptions::default());
        let schema = if d.nullable { schema.optional() } else { schema };
        let row = Schema::structure(vec![Field::new("v", schema)]);
        let mut out = Vec::new();
        let mut w = JsonWriter::new(&row, &mut out);
        w.begin();
        let text = friendly.to_string();
        write_typed(&m, &Friendly::parse(text.as_bytes()).unwrap(), d.nullable, &mut w, &mut Vec::new());
        w.end();
        w.finish().unwrap();
        let text = String::from_utf8(out).unwrap();
        text.strip_prefix("{\"v\":").and_then(|t| t.strip_suffix('}')).unwrap().to_string()
    }

    #[test]
    fn values_follow_debeziums_documented_mysql_mapping() {
        use serde_json::json;
        let d = Detail::default();
        let int = |unsigned, bits| Kind::Int { unsigned, bits };
        assert_eq!(typed(int(true, 64), d.clone(), json!(u64::MAX)), "-1", "BIGINT UNSIGNED in long mode");
        assert_eq!(typed(int(false, 8), d.clone(), json!(-128)), "-128");
        let dec = Detail { precision: Some(10), scale: Some(2), ..Default::default() };
        assert_eq!(typed(Kind::Decimal, dec, json!("-12.34")), "\"+y4=\"", "unscaled -1234 as two's complement");
        assert_eq!(typed(Kind::Bit { bits: 10 }, d.clone(), json!("1000000001")), "\"AQI=\"", "little-endian, 2 bytes");
        assert_eq!(
            typed(Kind::Bit { bits: 16 }, d.clone(), json!("0000000000000000")),
            "\"AAA=\"",
            "sized, not trimmed"
        );
        assert_eq!(typed(Kind::Bit { bits: 1 }, d.clone(), json!("1")), "true");
        assert_eq!(typed(Kind::Date, d.clone(), json!("2024-02-29")), "19782");
        let nullable = Detail { nullable: true, ..Default::default() };
        assert_eq!(typed(Kind::Date, nullable.clone(), json!("0000-00-00")), "null", "zero date, nullable column");
        assert_eq!(typed(Kind::Date, d.clone(), json!("0000-00-00")), "0", "zero date, NOT NULL column: the epoch");
        let fsp = |fsp| Detail { fsp, ..Default::default() };
        assert_eq!(typed(Kind::DateTime, fsp(0), json!("2018-06-20T06:37:03")), "1529476623000");
        assert_eq!(typed(Kind::DateTime, fsp(6), json!("2018-06-20T06:37:03.5")), "1529476623500000");
        assert_eq!(typed(Kind::Timestamp, fsp(0), json!("2018-06-20T13:37:03.000000Z")), "\"2018-06-20T13:37:03Z\"");
        assert_eq!(
            typed(Kind::Timestamp, fsp(3), json!("2018-06-20T13:37:03.120000Z")),
            "\"2018-06-20T13:37:03.120Z\""
        );
        assert_eq!(typed(Kind::Timestamp, nullable, json!("0000-00-00T00:00:00.000000Z")), "null");
        assert_eq!(typed(Kind::Time, d.clone(), json!("-838:59:59")), "-3020399000000");
        assert_eq!(typed(Kind::Time, d.clone(), json!("01:02:03.01")), "3723010000");
        assert_eq!(typed(Kind::Year, d.clone(), json!(2024)), "2024");
        assert_eq!(typed(Kind::Binary { pad_to: None }, d.clone(), json!("AP8=")), "\"AP8=\"");
        assert_eq!(typed(Kind::Float, d.clone(), json!(1.5)), "1.5");
        assert_eq!(
            typed(Kind::Geometry, d.clone(), json!({"wkb": "AQEAAAAAAAAAAADwPwAAAAAAAABA", "srid": 0})),
            r#"{"wkb":"AQEAAAAAAAAAAADwPwAAAAAAAABA","srid":null}"#
        );
        // POINT(3 4) with SRID 4326: MySQL stores the geographic axis order, x = 4.
        assert_eq!(
            typed(Kind::Point, d.clone(), json!({"wkb": "AQEAAAAAAAAAAAAQQAAAAAAAAAhA", "srid": 4326})),
            r#"{"x":4.0,"y":3.0,"wkb":"AQEAAAAAAAAAAAAQQAAAAAAAAAhA","srid":4326}"#
        );
        assert_eq!(point_of_wkb(&[1, 2, 0, 0, 0]), None, "a LINESTRING is no point");
        let big_endian: Vec<u8> =
            [0u8, 0, 0, 0, 1].into_iter().chain(1.5f64.to_be_bytes()).chain(2f64.to_be_bytes()).collect();
        assert_eq!(point_of_wkb(&big_endian), Some((1.5, 2.0)));
        assert_eq!(typed(Kind::Vector, Detail::default(), json!([1.5, 2, -0.1])), "[1.5,2.0,-0.1]");
        assert_eq!(typed(Kind::Vector, Detail::default(), json!(["NaN", 1])), "[\"NaN\",1.0]");
    }

    #[test]
    fn friendly_cells_are_split_in_place_unless_escaped() {
        use std::borrow::Cow;
        assert!(matches!(Friendly::parse(b"null"), Ok(Friendly::Null)));
        assert!(matches!(Friendly::parse(b"-12"), Ok(Friendly::Number("-12"))));
        assert!(matches!(Friendly::parse(br#""a b""#), Ok(Friendly::Str(Cow::Borrowed("a b")))));
        match Friendly::parse(br#""say \"hi\"\n""#) {
            Ok(Friendly::Str(Cow::Owned(s))) => assert_eq!(s, "say \"hi\"\n"),
            other => panic!("{other:?}"),
        }
        assert!(matches!(Friendly::parse(br#"{"srid":0}"#), Ok(Friendly::Object(_))));
        assert!(Friendly::parse(b"").is_err() && Friendly::parse(br#""unterminated\"#).is_err());
    }

    #[test]
    fn schemas_carry_debeziums_semantic_names() {
        let opts = TypedOptions::default();
        let (_, s) = map_column(&Kind::Enum(vec!["a".into(), "b".into()]), &Detail::default(), &opts);
        assert_eq!((s.name.as_deref(), s.parameter("allowed")), (Some("io.debezium.data.Enum"), Some("a,b")));
        let (_, s) = map_column(&Kind::Int { unsigned: true, bits: 32 }, &Detail::default(), &opts);
        assert_eq!(s.ty, crate::core::connect::Type::Int64, "INT UNSIGNED needs 64 bits");
        let (_, s) = map_column(&Kind::Int { unsigned: true, bits: 16 }, &Detail::default(), &opts);
        assert_eq!(s.ty, crate::core::connect::Type::Int32);
        let (_, s) = map_column(&Kind::Time, &Detail { fsp: 0, ..Default::default() }, &opts);
        assert_eq!(s.name.as_deref(), Some("io.debezium.time.MicroTime"), "adaptive_time_microseconds");
        let (_, s) =
            map_column(&Kind::Decimal, &Detail { precision: Some(10), scale: Some(2), ..Default::default() }, &opts);
        assert_eq!((s.parameter("scale"), s.parameter("connect.decimal.precision")), (Some("2"), Some("10")));
    }
}
