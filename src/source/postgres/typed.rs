//! PostgreSQL columns in Debezium's types, for the typed encodings (Debezium JSON, Avro): the
//! Connect schema of each column, decided once per column from its type and modifier, and each
//! value converted from the text output format (see [`super::conn::SESSION_OPTIONS`]) into it.
//! The mapping follows Debezium's PostgreSQL connector; docs/envelope.md (Encodings) lists it.

use base64::Engine;

use super::values::{decode_bytea_hex, write_value, ValueKind};
use crate::core::connect::{decimal, BinaryMode, DecimalMode, Schema, TimeMode, TypedOptions, ValueWriter};
use crate::core::text_forms::{bits_le, parse_date, parse_float, parse_time};

/// A column's type as the catalog describes it: the base type (domains resolved), its
/// modifier, the element type of an array, and the labels of an enum.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgType {
    pub oid: u32,
    pub typmod: i32,
    pub elem: Option<Box<PgType>>,
    /// An enum's labels in sort order, comma-separated (Debezium's `allowed` parameter).
    pub enum_labels: Option<String>,
}

impl PgType {
    pub fn builtin(oid: u32, typmod: i32) -> Self {
        PgType { oid, typmod, elem: None, enum_labels: None }
    }
}

/// How one column's text becomes typed values. Decided once per column.
#[derive(Clone, Debug, PartialEq)]
pub enum Mapped {
    Bool,
    Int,
    Float,
    /// numeric(p,s) and money (precise mode): unscaled bytes at the column's scale.
    Decimal {
        scale: u32,
    },
    /// numeric without a declared scale: `{scale, value}` (precise mode).
    VariableDecimal,
    /// Decimal as its text (string mode).
    DecimalText,
    /// Decimal as a double (double mode).
    DecimalDouble,
    Money(Box<Mapped>),
    Text,
    Bytes(BinaryMode),
    Bit1,
    Bits,
    Point,
    Date,
    Timestamp {
        micros: bool,
    },
    ZonedTimestamp,
    Time {
        micros: bool,
    },
    ZonedTime,
    Interval,
    Array(Box<Mapped>),
}

const UNAVAILABLE: &str = super::relation::UNAVAILABLE_VALUE;

/// The column's Connect schema (not yet optional) and how its values are converted.
pub fn map_column(t: &PgType, opts: &TypedOptions) -> (Mapped, Schema) {
    let precision = |typmod: i32| (typmod >= 0).then_some(typmod);
    match t.oid {
        16 => (Mapped::Bool, Schema::boolean()),
        21 => (Mapped::Int, Schema::int16()),
        23 => (Mapped::Int, Schema::int32()),
        20 | 26 | 28 | 29 => (Mapped::Int, Schema::int64()),
        700 => (Mapped::Float, Schema::float32()),
        701 => (Mapped::Float, Schema::float64()),
        1700 => match opts.decimal {
            DecimalMode::String => (Mapped::DecimalText, Schema::string()),
            DecimalMode::Double => (Mapped::DecimalDouble, Schema::float64()),
            DecimalMode::Precise if t.typmod >= 4 => {
                let (p, s) = (((t.typmod - 4) >> 16) & 0xFFFF, (t.typmod - 4) & 0xFFFF);
                let schema = Schema::bytes()
                    .logical("org.apache.kafka.connect.data.Decimal")
                    .param("scale", s.to_string())
                    .param("connect.decimal.precision", p.to_string());
                (Mapped::Decimal { scale: s as u32 }, schema)
            }
            DecimalMode::Precise => (
                Mapped::VariableDecimal,
                Schema::structure(vec![
                    crate::core::connect::Field::new("scale", Schema::int32()),
                    crate::core::connect::Field::new("value", Schema::bytes()),
                ])
                .logical("io.debezium.data.VariableScaleDecimal")
                .doc("Variable scaled decimal"),
            ),
        },
        // money: a decimal with the currency's two fraction digits.
        790 => match opts.decimal {
            DecimalMode::String => (Mapped::Money(Box::new(Mapped::DecimalText)), Schema::string()),
            DecimalMode::Double => (Mapped::Money(Box::new(Mapped::DecimalDouble)), Schema::float64()),
            DecimalMode::Precise => (
                Mapped::Money(Box::new(Mapped::Decimal { scale: 2 })),
                Schema::bytes().logical("org.apache.kafka.connect.data.Decimal").param("scale", "2"),
            ),
        },
        2950 => (Mapped::Text, Schema::string().logical("io.debezium.data.Uuid")),
        142 => (Mapped::Text, Schema::string().logical("io.debezium.data.Xml")),
        114 | 3802 => (Mapped::Text, Schema::string().logical("io.debezium.data.Json")),
        17 => match opts.binary {
            BinaryMode::Bytes => (Mapped::Bytes(BinaryMode::Bytes), Schema::bytes()),
            mode => (Mapped::Bytes(mode), Schema::string()),
        },
        1560 if t.typmod == 1 => (Mapped::Bit1, Schema::boolean()),
        1560 | 1562 => {
            let mut schema = Schema::bytes().logical("io.debezium.data.Bits");
            if let Some(len) = precision(t.typmod) {
                schema = schema.param("length", len.to_string());
            }
            (Mapped::Bits, schema)
        }
        600 => (
            Mapped::Point,
            Schema::structure(vec![
                crate::core::connect::Field::new("x", Schema::float64()),
                crate::core::connect::Field::new("y", Schema::float64()),
                crate::core::connect::Field::new("wkb", Schema::bytes().optional()),
                crate::core::connect::Field::new("srid", Schema::int32().optional()),
            ])
            .logical("io.debezium.data.geometry.Point")
            .doc("Geometry (POINT)"),
        ),
        1082 => match opts.time {
            TimeMode::Connect => (Mapped::Date, Schema::int32().logical("org.apache.kafka.connect.data.Date")),
            _ => (Mapped::Date, Schema::int32().logical("io.debezium.time.Date")),
        },
        1114 => match (opts.time, precision(t.typmod)) {
            (TimeMode::Connect, _) => (
                Mapped::Timestamp { micros: false },
                Schema::int64().logical("org.apache.kafka.connect.data.Timestamp"),
            ),
            (_, Some(p)) if p <= 3 => {
                (Mapped::Timestamp { micros: false }, Schema::int64().logical("io.debezium.time.Timestamp"))
            }
            _ => (Mapped::Timestamp { micros: true }, Schema::int64().logical("io.debezium.time.MicroTimestamp")),
        },
        1184 => (Mapped::ZonedTimestamp, Schema::string().logical("io.debezium.time.ZonedTimestamp")),
        1083 => match (opts.time, precision(t.typmod)) {
            (TimeMode::Connect, _) => {
                (Mapped::Time { micros: false }, Schema::int32().logical("org.apache.kafka.connect.data.Time"))
            }
            (TimeMode::Adaptive, Some(p)) if p <= 3 => {
                (Mapped::Time { micros: false }, Schema::int32().logical("io.debezium.time.Time"))
            }
            _ => (Mapped::Time { micros: true }, Schema::int64().logical("io.debezium.time.MicroTime")),
        },
        1266 => (Mapped::ZonedTime, Schema::string().logical("io.debezium.time.ZonedTime")),
        1186 => (Mapped::Interval, Schema::int64().logical("io.debezium.time.MicroDuration")),
        _ => match (&t.elem, &t.enum_labels) {
            (Some(elem), _) => {
                let (m, s) = map_column(elem, opts);
                (Mapped::Array(Box::new(m)), Schema::array(s.optional()))
            }
            (None, Some(labels)) => {
                (Mapped::Text, Schema::string().logical("io.debezium.data.Enum").param("allowed", labels.clone()))
            }
            // Everything else (inet, ranges, geometric types but point, extension types) as its
            // text, as Debezium does for most of them.
            _ => (Mapped::Text, Schema::string()),
        },
    }
}

/// Writes a TOASTed value the server did not send: Debezium's placeholder where the schema can
/// hold it, else null.
pub fn write_unavailable(m: &Mapped, w: &mut dyn ValueWriter) {
    match m {
        Mapped::Text | Mapped::Bytes(BinaryMode::Base64 | BinaryMode::Base64UrlSafe | BinaryMode::Hex) => {
            w.string(UNAVAILABLE)
        }
        Mapped::Bytes(BinaryMode::Bytes) => w.bytes(UNAVAILABLE.as_bytes()),
        _ => w.null(),
    }
}

/// Writes one non-null value, from its text output, as `m` says. Text the type's output
/// function cannot have produced is reported through the writer, never guessed at.
pub fn write_typed(m: &Mapped, text: &[u8], w: &mut dyn ValueWriter, scratch: &mut Vec<u8>) {
    let Ok(s) = std::str::from_utf8(text) else {
        return w.fail("value is not UTF-8");
    };
    let bad = |w: &mut dyn ValueWriter, what: &str| w.fail(&format!("unexpected {what} text {s:?}"));
    match m {
        Mapped::Bool => w.boolean(s == "t"),
        Mapped::Int => match s.parse::<i64>() {
            Ok(v) => w.int(v),
            Err(_) => bad(w, "integer"),
        },
        Mapped::Float | Mapped::DecimalDouble => match parse_float(s) {
            Some(v) => w.float(v),
            None => bad(w, "number"),
        },
        Mapped::Decimal { scale } => match decimal::unscaled_bytes(s, scratch) {
            Some(sc) if sc == *scale => w.bytes(scratch),
            Some(_) => bad(w, "decimal scale in"),
            // NaN has no Decimal form: null, as Debezium (which logs a warning).
            None if s == "NaN" || s.ends_with("Infinity") => w.null(),
            None => bad(w, "decimal"),
        },
        Mapped::VariableDecimal => match decimal::unscaled_bytes(s, scratch) {
            Some(scale) => {
                w.begin();
                w.int(scale.into());
                w.bytes(scratch);
                w.end();
            }
            None if s == "NaN" || s.ends_with("Infinity") => w.null(),
            None => bad(w, "decimal"),
        },
        // Debezium's string mode spells PostgreSQL's NaN in capitals.
        Mapped::DecimalText => w.string(if s == "NaN" { "NAN" } else { s }),
        Mapped::Money(inner) => {
            // `$1,234.56` / `-$0.01`: the session sets lc_monetary=C, so only the symbol and
            // the grouping commas are dropped.
            let plain: String = s.chars().filter(|c| c.is_ascii_digit() || matches!(c, '-' | '.')).collect();
            write_typed(inner, plain.as_bytes(), w, scratch)
        }
        Mapped::Text => w.string(s),
        Mapped::Bytes(mode) => {
            scratch.clear();
            if !decode_bytea_hex(text, scratch) {
                return bad(w, "bytea");
            }
            match mode {
                BinaryMode::Bytes => w.bytes(scratch),
                BinaryMode::Base64 => w.string(&base64::engine::general_purpose::STANDARD.encode(&scratch[..])),
                BinaryMode::Base64UrlSafe => w.string(&base64::engine::general_purpose::URL_SAFE.encode(&scratch[..])),
                BinaryMode::Hex => w.string(s.strip_prefix("\\x").unwrap_or(s)),
            }
        }
        Mapped::Bit1 => w.boolean(s == "1"),
        Mapped::Bits => match bits_le(s, scratch) {
            true => w.bytes(scratch),
            false => bad(w, "bit string"),
        },
        Mapped::Point => match parse_point(s) {
            Some((x, y)) => {
                scratch.clear();
                scratch.push(1);
                scratch.extend_from_slice(&1u32.to_le_bytes());
                scratch.extend_from_slice(&x.to_le_bytes());
                scratch.extend_from_slice(&y.to_le_bytes());
                w.begin();
                w.float(x);
                w.float(y);
                w.bytes(scratch);
                w.null();
                w.end();
            }
            None => bad(w, "point"),
        },
        Mapped::Date => match parse_date(s) {
            Some(days) => w.int(days),
            None => bad(w, "date"),
        },
        Mapped::Timestamp { micros } => match parse_timestamp(s) {
            Some(us) => w.int(if *micros { us } else { us.div_euclid(1000) }),
            None => bad(w, "timestamp"),
        },
        Mapped::ZonedTimestamp => {
            // The same ISO text the friendly encoding writes (UTC, six fraction digits).
            scratch.clear();
            write_value(scratch, &ValueKind::TimestampTz, text);
            match serde_json::from_slice::<String>(scratch) {
                Ok(iso) => w.string(&iso),
                Err(_) => bad(w, "timestamptz"),
            }
        }
        Mapped::Time { micros } => match parse_time(s) {
            Some(us) => w.int(if *micros { us } else { us.div_euclid(1000) }),
            None => bad(w, "time"),
        },
        Mapped::ZonedTime => match zoned_time_utc(s) {
            Some(t) => w.string(&t),
            None => bad(w, "timetz"),
        },
        Mapped::Interval => match parse_interval(s) {
            Some(us) => w.int(us),
            None => bad(w, "interval"),
        },
        Mapped::Array(elem) => {
            w.begin();
            // Multi-dimensional arrays are flattened: Connect's array type has one dimension.
            if !each_array_element(s, |e| match e {
                None => w.null(),
                Some(item) => write_typed(elem, item.as_bytes(), w, scratch),
            }) {
                w.fail(&format!("unexpected array text {s:?}"));
            }
            w.end();
        }
    }
}

fn parse_point(s: &str) -> Option<(f64, f64)> {
    let (x, y) = s.strip_prefix('(')?.strip_suffix(')')?.split_once(',')?;
    Some((parse_float(x)?, parse_float(y)?))
}

/// `2024-02-29 13:14:15.5` (optionally ` BC`) -> microseconds since the epoch, as if UTC.
fn parse_timestamp(s: &str) -> Option<i64> {
    match s {
        "infinity" => return Some(i64::MAX),
        "-infinity" => return Some(i64::MIN),
        _ => {}
    }
    let (body, bc) = match s.strip_suffix(" BC") {
        Some(b) => (b, " BC"),
        None => (s, ""),
    };
    let (date, time) = body.split_once(' ')?;
    let days = parse_date(&format!("{date}{bc}"))?;
    Some(days * 86_400_000_000 + parse_time(time)?)
}

/// `13:14:15.5+02` -> `11:14:15.5Z`: Debezium's ZonedTime is the time in UTC.
fn zoned_time_utc(s: &str) -> Option<String> {
    let at = s.rfind(['+', '-'])?;
    let (time, offset) = s.split_at(at);
    let sign = if offset.starts_with('-') { -1 } else { 1 };
    let mut o = offset[1..].split(':');
    let oh: i64 = o.next()?.parse().ok()?;
    let om: i64 = o.next().map_or(Some(0), |m| m.parse().ok())?;
    let os: i64 = o.next().map_or(Some(0), |x| x.parse().ok())?;
    let us = parse_time(time)? - sign * ((oh * 60 + om) * 60 + os) * 1_000_000;
    let us = us.rem_euclid(86_400_000_000);
    let (secs, frac) = (us / 1_000_000, us % 1_000_000);
    let mut out = format!("{:02}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60);
    if frac > 0 {
        let digits = format!(".{frac:06}");
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('Z');
    Some(out)
}

/// An ISO-8601 interval (`P1Y2M3DT4H5M6.5S`, `P-1DT-1S`) as Debezium's MicroDuration: months
/// count 30.4375 days (an average month), days 24 hours.
fn parse_interval(s: &str) -> Option<i64> {
    const MONTH_US: i128 = 2_629_800_000_000;
    const DAY_US: i128 = 86_400_000_000;
    let body = s.strip_prefix('P')?;
    let (date, time) = body.split_once('T').unwrap_or((body, ""));
    let mut total: i128 = 0;
    let mut each = |part: &str, units: &[(char, i128)]| -> Option<()> {
        let mut num = String::new();
        for c in part.chars() {
            if c.is_ascii_digit() || c == '-' || c == '.' {
                num.push(c);
                continue;
            }
            let unit = units.iter().find(|(u, _)| *u == c)?.1;
            let (whole, frac) = num.split_once('.').unwrap_or((&num, ""));
            let neg = whole.starts_with('-');
            let whole: i128 = whole.parse().ok()?;
            let mut v = whole * unit;
            if !frac.is_empty() {
                let digits = frac.len().min(6);
                let f: i128 = frac[..digits].parse().ok()?;
                let f = f * unit / 10i128.pow(digits as u32);
                v += if neg { -f } else { f };
            }
            total += v;
            num.clear();
        }
        num.is_empty().then_some(())
    };
    each(date, &[('Y', 12 * MONTH_US), ('M', MONTH_US), ('W', 7 * DAY_US), ('D', DAY_US)])?;
    each(time, &[('H', 3_600_000_000), ('M', 60_000_000), ('S', 1_000_000)])?;
    i64::try_from(total).ok()
}

/// Calls `f` with every element of array text (`{1,NULL,"a b"}`, nested levels flattened) in
/// order; returns false if the text is not an array.
fn each_array_element(s: &str, mut f: impl FnMut(Option<&str>)) -> bool {
    let body = match s.find('=') {
        Some(i) if s.starts_with('[') => &s[i + 1..],
        _ => s,
    };
    let b = body.as_bytes();
    if b.first() != Some(&b'{') || b.last() != Some(&b'}') {
        return false;
    }
    let mut i = 0;
    let mut item = String::new();
    while i < b.len() {
        match b[i] {
            b'{' | b'}' | b',' => i += 1,
            b'"' => {
                item.clear();
                i += 1;
                while i < b.len() && b[i] != b'"' {
                    if b[i] == b'\\' {
                        i += 1;
                    }
                    let start = i;
                    i += 1;
                    while i < b.len() && b[i] & 0xC0 == 0x80 {
                        i += 1;
                    }
                    item.push_str(body.get(start..i).unwrap_or(""));
                }
                i += 1;
                f(Some(&item));
            }
            _ => {
                let start = i;
                while i < b.len() && !matches!(b[i], b',' | b'}') {
                    i += 1;
                }
                let raw = &body[start..i];
                f(if raw == "NULL" { None } else { Some(raw.trim()) });
            }
        }
    }
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::text_forms::days_from_civil;

    #[test]
    fn dates_times_and_intervals_match_debeziums_numbers() {
        // Expected values from Debezium 3.6.3's output (tests/debezium/types-plain.json).
        assert_eq!(parse_date("2024-02-29"), Some(19782));
        assert_eq!(parse_date("1970-01-01"), Some(0));
        assert_eq!(parse_date("0044-03-15 BC"), Some(days_from_civil(-43, 3, 15)));
        assert_eq!(parse_timestamp("2024-02-29 13:14:15.123456"), Some(1_709_212_455_123_456));
        assert_eq!(parse_timestamp("1969-12-31 23:59:59.999999"), Some(-1));
        assert_eq!(parse_timestamp("1900-01-01 00:00:00").map(|u| u / 1000), Some(-2_208_988_800_000));
        assert_eq!(parse_time("13:14:15.25"), Some(47_655_250_000));
        assert_eq!(parse_time("23:59:59.999"), Some(86_399_999_000));
        assert_eq!(parse_time("24:00:00"), Some(86_400_000_000));
        assert_eq!(zoned_time_utc("13:14:15+02").as_deref(), Some("11:14:15Z"));
        assert_eq!(zoned_time_utc("23:59:59.999999-05:30").as_deref(), Some("05:29:59.999999Z"));
        assert_eq!(zoned_time_utc("00:30:00.5+01").as_deref(), Some("23:30:00.5Z"));
        assert_eq!(parse_interval("P1Y2M3DT4H5M6.5S"), Some(37_091_106_500_000));
        assert_eq!(parse_interval("P-1DT-1S"), Some(-86_401_000_000));
        assert_eq!(parse_interval("PT-0.5S"), Some(-500_000));
        assert_eq!(parse_interval("PT0S"), Some(0));
        assert_eq!(parse_interval("P1X"), None);
    }

    #[test]
    fn bits_and_points_match_debeziums_bytes() {
        let mut out = Vec::new();
        assert!(bits_le("1010", &mut out) && out == [0x0A]);
        assert!(bits_le("101", &mut out) && out == [0x05]);
        assert!(bits_le("0000", &mut out) && out.is_empty());
        assert!(bits_le("1000000001", &mut out) && out == [0x01, 0x02]);
        assert!(!bits_le("10x", &mut out));
        assert_eq!(parse_point("(1.5,-2)"), Some((1.5, -2.0)));
    }

    #[test]
    fn array_elements_are_flattened_in_order() {
        let mut seen = Vec::new();
        assert!(each_array_element(r#"{{a,"b c"},{"q\"x",NULL}}"#, |e| seen.push(e.map(String::from))));
        assert_eq!(seen, [Some("a".into()), Some("b c".into()), Some("q\"x".into()), None]);
        seen.clear();
        assert!(each_array_element("{}", |e| seen.push(e.map(String::from))));
        assert!(seen.is_empty());
        assert!(!each_array_element("nope", |_| {}));
    }
}
