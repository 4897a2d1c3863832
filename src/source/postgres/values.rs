//! PostgreSQL values (text output format) to JSON, losslessly. The value table in docs/envelope.md is the
//! contract; this is its implementation. The session settings in [`super::conn::SESSION_OPTIONS`]
//! (ISO dates, UTC, ISO-8601 intervals, hex bytea) make the text forms predictable.

use base64::Engine;

use super::typed::PgType;
use crate::core::json;

/// How a column's text is rendered. Chosen once per column when its relation is seen.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ValueKind {
    Bool,
    /// Integer types: the text is already a JSON number.
    Int,
    /// float4/float8: a JSON number, or the strings "NaN", "Infinity", "-Infinity".
    Float,
    /// numeric: a string, so no precision is lost in JSON readers.
    Numeric,
    /// Anything rendered as its text: text, varchar, uuid, enum, money, inet, xml, ...
    Text,
    /// bytea: base64 of the bytes.
    Bytea,
    /// json/jsonb: a string holding the JSON text (Debezium's io.debezium.data.Json).
    Json,
    Date,
    Timestamp,
    TimestampTz,
    Time,
    TimeTz,
    /// interval: ISO-8601 duration string, e.g. "P1Y2M3DT4H5M6S".
    Interval,
    Array(Box<ValueKind>),
}

/// The kind for a built-in type OID; `None` means "ask the catalog" (domains, enums, arrays of
/// user types, extension types).
pub fn builtin_kind(oid: u32) -> Option<ValueKind> {
    use ValueKind::*;
    Some(match oid {
        16 => Bool,
        20 | 21 | 23 | 26 | 28 | 29 => Int,
        700 | 701 => Float,
        1700 => Numeric,
        17 => Bytea,
        114 | 3802 => Json,
        1082 => Date,
        1114 => Timestamp,
        1184 => TimestampTz,
        1083 => Time,
        1266 => TimeTz,
        1186 => Interval,
        18 | 19 | 25 | 142 | 650 | 790 | 829 | 869 | 1042 | 1043 | 1560 | 1562 | 2950 | 3220 | 3614 | 3615 | 774 => {
            Text
        }
        1000 => Array(Box::new(Bool)),
        1005 | 1007 | 1016 | 1028 => Array(Box::new(Int)),
        1021 | 1022 => Array(Box::new(Float)),
        1231 => Array(Box::new(Numeric)),
        1001 => Array(Box::new(Bytea)),
        199 | 3807 => Array(Box::new(Json)),
        1182 => Array(Box::new(Date)),
        1115 => Array(Box::new(Timestamp)),
        1185 => Array(Box::new(TimestampTz)),
        1183 => Array(Box::new(Time)),
        1270 => Array(Box::new(TimeTz)),
        1187 => Array(Box::new(Interval)),
        1002 | 1003 | 1009 | 1014 | 1015 | 2951 | 791 | 1041 | 651 | 1561 | 1563 | 143 => Array(Box::new(Text)),
        _ => return None,
    })
}

/// How to render values of a column's type: built-ins directly, domains as their base type,
/// arrays by element, everything else (enums, extension types) as text.
pub fn kind_of(t: &PgType) -> ValueKind {
    builtin_kind(t.oid).unwrap_or_else(|| match &t.elem {
        Some(elem) => ValueKind::Array(Box::new(kind_of(elem))),
        None => ValueKind::Text,
    })
}

/// Writes `text` (a value's text output) as the JSON for `kind`.
pub fn write_value(out: &mut Vec<u8>, kind: &ValueKind, text: &[u8]) {
    match kind {
        ValueKind::Bool => out.extend_from_slice(if text == b"t" { b"true" } else { b"false" }),
        // "NaN", "Infinity" and "-Infinity" are not JSON numbers: they become strings.
        ValueKind::Int | ValueKind::Float => json::write_number_or_str(out, text),
        ValueKind::Numeric | ValueKind::Text | ValueKind::Json | ValueKind::Time | ValueKind::Interval => {
            json::write_str_bytes(out, text)
        }
        ValueKind::Bytea => write_bytea(out, text),
        ValueKind::Date => write_datetime(out, text, false),
        ValueKind::Timestamp => write_datetime(out, text, false),
        ValueKind::TimestampTz => write_datetime(out, text, true),
        ValueKind::TimeTz => {
            let mut s = String::from_utf8_lossy(text).into_owned();
            normalize_offset(&mut s);
            json::write_str(out, &s);
        }
        ValueKind::Array(elem) => write_array(out, elem, text),
    }
}

/// bytea's hex output (`\\x00ff`) as bytes, appended to `out`; false (with `out` in an
/// unspecified state) when the text is not hex output.
pub fn decode_bytea_hex(text: &[u8], out: &mut Vec<u8>) -> bool {
    let hex = text.strip_prefix(b"\\x").unwrap_or(text);
    let nib = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    out.reserve(hex.len() / 2);
    for pair in hex.chunks(2) {
        match (pair.first().and_then(|&c| nib(c)), pair.get(1).and_then(|&c| nib(c))) {
            (Some(h), Some(l)) => out.push(h << 4 | l),
            _ => return false,
        }
    }
    true
}

fn write_bytea(out: &mut Vec<u8>, text: &[u8]) {
    let mut bytes = Vec::new();
    if !decode_bytea_hex(text, &mut bytes) {
        // Not hex output: keep the text rather than lose it.
        return json::write_str_bytes(out, text);
    }
    out.push(b'"');
    out.extend_from_slice(base64::engine::general_purpose::STANDARD.encode(&bytes).as_bytes());
    out.push(b'"');
}

/// `2024-01-02 03:04:05.5+00` -> `2024-01-02T03:04:05.5Z`; `0044-03-15 BC` -> `-0043-03-15`
/// (ISO 8601 astronomical years); `infinity` stays a string.
fn write_datetime(out: &mut Vec<u8>, text: &[u8], with_tz: bool) {
    if !write_plain_datetime(out, text, with_tz) {
        write_any_datetime(out, text, with_tz);
    }
}

/// The common case, without allocating: an AD date or time, zoned ones in UTC (the session's
/// time zone). Returns false, writing nothing, for anything else.
fn write_plain_datetime(out: &mut Vec<u8>, text: &[u8], with_tz: bool) -> bool {
    let body = match (with_tz, text.strip_suffix(b"+00")) {
        (false, _) => text,
        (true, Some(b)) => b,
        (true, None) => return false,
    };
    let plain = body.len() >= 10
        && body[..4].iter().all(u8::is_ascii_digit)
        && body[4] == b'-'
        && body.iter().all(|&b| b.is_ascii_digit() || matches!(b, b'-' | b':' | b'.' | b' '));
    let space = body.iter().position(|&b| b == b' ');
    if !plain || (with_tz && space.is_none()) {
        return false;
    }
    out.push(b'"');
    match space {
        Some(i) => {
            out.extend_from_slice(&body[..i]);
            out.push(b'T');
            out.extend_from_slice(&body[i + 1..]);
        }
        None => out.extend_from_slice(body),
    }
    if with_tz {
        let time = space.map_or(body, |i| &body[i + 1..]);
        let frac = match time.iter().position(|&b| b == b'.') {
            Some(dot) => time.len() - dot - 1,
            None => {
                out.push(b'.');
                0
            }
        };
        for _ in frac..6 {
            out.push(b'0');
        }
        out.push(b'Z');
    }
    out.push(b'"');
    true
}

fn write_any_datetime(out: &mut Vec<u8>, text: &[u8], with_tz: bool) {
    let s = String::from_utf8_lossy(text);
    if s == "infinity" || s == "-infinity" {
        return json::write_str(out, &s);
    }
    let (body, bc) = match s.strip_suffix(" BC") {
        Some(b) => (b, true),
        None => (s.as_ref(), false),
    };
    let mut iso = body.replacen(' ', "T", 1);
    if bc {
        let dash = iso.find('-').unwrap_or(iso.len());
        if let Some(year) = iso[..dash].parse::<i64>().ok().and_then(|y| y.checked_sub(1)) {
            iso = format!("-{:04}{}", year, &iso[dash..]);
        }
    }
    if with_tz {
        if iso.ends_with("+00") {
            iso.truncate(iso.len() - 3);
            pad_fraction(&mut iso);
            iso.push('Z');
        } else {
            normalize_offset(&mut iso);
        }
    }
    json::write_str(out, &iso);
}

/// Debezium renders zoned timestamps with exactly six fractional digits (`...05.000000Z`);
/// PostgreSQL drops trailing zeros. Pads in place (the offset was already removed).
fn pad_fraction(iso: &mut String) {
    let Some(t) = iso.find('T') else { return };
    let frac_len = match iso[t..].find('.') {
        Some(dot) => iso.len() - (t + dot + 1),
        None => {
            iso.push('.');
            0
        }
    };
    for _ in frac_len..6 {
        iso.push('0');
    }
}

/// `+05` -> `+05:00`, `+0530`-style text from PostgreSQL (`+05:30`) is already fine.
fn normalize_offset(s: &mut String) {
    let b = s.as_bytes();
    if b.len() >= 3 {
        let sign = b[b.len() - 3];
        if (sign == b'+' || sign == b'-') && b[b.len() - 2].is_ascii_digit() && b[b.len() - 1].is_ascii_digit() {
            s.push_str(":00");
        }
    }
}

/// Array text (`{1,2,NULL}`, `{{a,"b c"},{d,e}}`) to nested JSON arrays.
fn write_array(out: &mut Vec<u8>, elem: &ValueKind, text: &[u8]) {
    // Arrays with explicit bounds look like `[0:1]={1,2}`; the bounds are dropped.
    let body = match text.iter().position(|&b| b == b'=') {
        Some(i) if text.first() == Some(&b'[') => &text[i + 1..],
        _ => text,
    };
    let mut p = ArrayParser { s: body, pos: 0, item: Vec::new() };
    let checkpoint = out.len();
    if p.parse_level(out, elem, 1).is_err() || p.pos != body.len() {
        out.truncate(checkpoint);
        json::write_str_bytes(out, text);
    }
}

/// PostgreSQL's MAXDIM.
const MAX_ARRAY_DIMENSIONS: usize = 6;

struct ArrayParser<'a> {
    s: &'a [u8],
    pos: usize,
    item: Vec<u8>,
}

impl ArrayParser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.pos).copied()
    }

    fn parse_level(&mut self, out: &mut Vec<u8>, elem: &ValueKind, depth: usize) -> Result<(), ()> {
        // PostgreSQL arrays have at most MAXDIM (6) dimensions; deeper text is not an array
        // PostgreSQL wrote, and recursing on it unbounded would overflow the stack.
        if self.peek() != Some(b'{') || depth > MAX_ARRAY_DIMENSIONS {
            return Err(());
        }
        self.pos += 1;
        out.push(b'[');
        if self.peek() == Some(b'}') {
            self.pos += 1;
            out.push(b']');
            return Ok(());
        }
        loop {
            match self.peek() {
                Some(b'{') => self.parse_level(out, elem, depth + 1)?,
                Some(b'"') => {
                    self.quoted()?;
                    let item = std::mem::take(&mut self.item);
                    write_value(out, elem, &item);
                    self.item = item;
                }
                Some(_) => {
                    let start = self.pos;
                    while let Some(c) = self.peek() {
                        if c == b',' || c == b'}' {
                            break;
                        }
                        self.pos += 1;
                    }
                    let raw = &self.s[start..self.pos];
                    if raw == b"NULL" {
                        out.extend_from_slice(b"null");
                    } else {
                        write_value(out, elem, raw);
                    }
                }
                None => return Err(()),
            }
            match self.peek() {
                Some(b',') => {
                    self.pos += 1;
                    out.push(b',');
                }
                Some(b'}') => {
                    self.pos += 1;
                    out.push(b']');
                    return Ok(());
                }
                _ => return Err(()),
            }
        }
    }

    fn quoted(&mut self) -> Result<(), ()> {
        self.item.clear();
        self.pos += 1;
        loop {
            match self.peek() {
                Some(b'\\') => {
                    self.item.push(*self.s.get(self.pos + 1).ok_or(())?);
                    self.pos += 2;
                }
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(());
                }
                Some(c) => {
                    self.item.push(c);
                    self.pos += 1;
                }
                None => return Err(()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    fn render(kind: &ValueKind, text: &str) -> Value {
        let mut out = Vec::new();
        write_value(&mut out, kind, text.as_bytes());
        serde_json::from_slice(&out).unwrap_or_else(|e| panic!("{}: {e}", String::from_utf8_lossy(&out)))
    }

    #[test]
    fn scalars() {
        use ValueKind::*;
        assert_eq!(render(&Bool, "t"), json!(true));
        assert_eq!(render(&Int, "-9223372036854775808").to_string(), "-9223372036854775808");
        assert_eq!(render(&Float, "1.5e+300"), json!(1.5e300));
        assert_eq!(render(&Float, "NaN"), json!("NaN"));
        assert_eq!(render(&Float, "-Infinity"), json!("-Infinity"));
        assert_eq!(render(&Numeric, "12345678901234567890.123456789"), json!("12345678901234567890.123456789"));
        assert_eq!(render(&Bytea, "\\x00ff10"), json!("AP8Q"));
        assert_eq!(render(&Json, r#"{"a": [1, 2]}"#), json!(r#"{"a": [1, 2]}"#));
        assert_eq!(render(&Text, "tab\there \"q\""), json!("tab\there \"q\""));
    }

    #[test]
    fn dates_and_times_are_iso_8601() {
        use ValueKind::*;
        assert_eq!(render(&Timestamp, "2024-02-29 13:14:15.123456"), json!("2024-02-29T13:14:15.123456"));
        assert_eq!(render(&TimestampTz, "2024-02-29 13:14:15+00"), json!("2024-02-29T13:14:15.000000Z"));
        assert_eq!(render(&TimestampTz, "2024-02-29 13:14:15.5+00"), json!("2024-02-29T13:14:15.500000Z"));
        assert_eq!(render(&TimestampTz, "2024-02-29 13:14:15.123456+00"), json!("2024-02-29T13:14:15.123456Z"));
        assert_eq!(render(&TimestampTz, "infinity"), json!("infinity"));
        assert_eq!(render(&Date, "2024-02-29"), json!("2024-02-29"));
        assert_eq!(render(&Date, "0044-03-15 BC"), json!("-0043-03-15"));
        assert_eq!(render(&TimeTz, "13:14:15+02"), json!("13:14:15+02:00"));
        assert_eq!(render(&TimeTz, "13:14:15-03:30"), json!("13:14:15-03:30"));
        assert_eq!(render(&Interval, "P1Y2M3DT4H5M6S"), json!("P1Y2M3DT4H5M6S"));
    }

    #[test]
    fn the_plain_datetime_shortcut_writes_what_the_general_path_writes() {
        let cases = [
            ("2024-02-29", false),
            ("2024-02-29 13:14:15", false),
            ("2024-02-29 13:14:15.123456", false),
            ("2024-02-29 13:14:15+00", true),
            ("2024-02-29 13:14:15.5+00", true),
            ("1999-12-31 23:59:59.999999+00", true),
        ];
        for (text, tz) in cases {
            let (mut fast, mut general) = (Vec::new(), Vec::new());
            assert!(write_plain_datetime(&mut fast, text.as_bytes(), tz), "{text}");
            write_any_datetime(&mut general, text.as_bytes(), tz);
            assert_eq!(String::from_utf8(fast).unwrap(), String::from_utf8(general).unwrap(), "{text}");
        }
        for (text, tz) in
            [("0044-03-15 BC", false), ("infinity", true), ("2024-02-29 13:14:15+02", true), ("12024-01-01", false)]
        {
            let mut out = Vec::new();
            assert!(!write_plain_datetime(&mut out, text.as_bytes(), tz) && out.is_empty(), "{text}");
        }
    }

    #[test]
    fn arrays_nest_and_convert_elements() {
        use ValueKind::*;
        assert_eq!(render(&Array(Box::new(Int)), "{1,2,NULL}"), json!([1, 2, null]));
        assert_eq!(render(&Array(Box::new(Int)), "{{1,2},{3,4}}"), json!([[1, 2], [3, 4]]));
        assert_eq!(
            render(&Array(Box::new(Text)), r#"{a,"b c","q\"x",NULL,"NULL"}"#),
            json!(["a", "b c", "q\"x", null, "NULL"])
        );
        assert_eq!(render(&Array(Box::new(Numeric)), "{1.10,NaN}"), json!(["1.10", "NaN"]));
        assert_eq!(render(&Array(Box::new(Int)), "{}"), json!([]));
        assert_eq!(render(&Array(Box::new(Int)), "[0:1]={7,8}"), json!([7, 8]));
        // Malformed text is kept as a string rather than lost.
        assert_eq!(render(&Array(Box::new(Int)), "{1,2"), json!("{1,2"));
        assert_eq!(render(&Array(Box::new(Int)), "{{{{{{1}}}}}}"), json!([[[[[[1]]]]]]));
        let deep = format!("{}1{}", "{".repeat(100_000), "}".repeat(100_000));
        assert_eq!(render(&Array(Box::new(Int)), &deep), json!(deep), "no stack overflow, kept as text");
        // Text that is not a JSON number never reaches the output unquoted.
        assert_eq!(render(&Int, "--"), json!("--"));
        assert_eq!(render(&Float, "1e"), json!("1e"));
        assert_eq!(render(&Date, "-9223372036854775808-01-01 BC"), json!("-9223372036854775808-01-01"));
    }
}
