//! Text forms shared by the connectors' typed mappings (Debezium JSON, Avro): dates, times,
//! floats and bit strings as the databases print them, turned into Connect's numbers and bytes,
//! and bytes as hex text.

pub fn parse_float(s: &str) -> Option<f64> {
    match s {
        "NaN" => Some(f64::NAN),
        "Infinity" => Some(f64::INFINITY),
        "-Infinity" => Some(f64::NEG_INFINITY),
        _ => s.parse().ok(),
    }
}

/// A bit string (`1010`, most significant bit first) as Java's `BitSet.toByteArray` of its
/// value: little-endian bytes, trailing zero bytes dropped (Debezium's PostgreSQL `Bits`).
pub fn bits_le(s: &str, out: &mut Vec<u8>) -> bool {
    if !bits_le_sized(s, out) {
        return false;
    }
    while out.last() == Some(&0) {
        out.pop();
    }
    true
}

/// A bit string as little-endian bytes, one byte per started 8 bits, none dropped (Debezium's
/// MySQL `Bits`). False if `s` holds anything but `0` and `1`.
pub fn bits_le_sized(s: &str, out: &mut Vec<u8>) -> bool {
    out.clear();
    let b = s.as_bytes();
    out.resize(b.len().div_ceil(8), 0);
    for (i, &c) in b.iter().rev().enumerate() {
        match c {
            b'1' => out[i / 8] |= 1 << (i % 8),
            b'0' => {}
            _ => return false,
        }
    }
    true
}

/// Bytes as lowercase hex text.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Days from 1970-01-01 to the proleptic Gregorian date `y-m-d` (astronomical years).
pub fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// `2024-02-29`, `0044-03-15 BC` -> days since the epoch. `infinity` has no day number: it is
/// clamped to the type's extreme, as the JDBC driver Debezium reads through does.
pub fn parse_date(s: &str) -> Option<i64> {
    match s {
        "infinity" => return Some(i32::MAX.into()),
        "-infinity" => return Some(i32::MIN.into()),
        _ => {}
    }
    let (body, bc) = match s.strip_suffix(" BC") {
        Some(b) => (b, true),
        None => (s, false),
    };
    let mut parts = body.splitn(3, '-');
    let y: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let d: i64 = parts.next()?.parse().ok()?;
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    Some(days_from_civil(if bc { 1 - y } else { y }, m, d))
}

/// `13:14:15.25` -> microseconds since midnight (`24:00:00` is PostgreSQL's end of day).
pub fn parse_time(s: &str) -> Option<i64> {
    let mut parts = s.splitn(3, ':');
    let h: i64 = parts.next()?.parse().ok()?;
    let m: i64 = parts.next()?.parse().ok()?;
    let sec = parts.next()?;
    let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
    let whole: i64 = whole.parse().ok()?;
    if frac.len() > 6 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_us: i64 = if frac.is_empty() { 0 } else { frac.parse::<i64>().ok()? * 10i64.pow(6 - frac.len() as u32) };
    Some(((h * 60 + m) * 60 + whole) * 1_000_000 + frac_us)
}
