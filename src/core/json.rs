//! Small, allocation-free JSON writing helpers. Events are serialized straight into reusable
//! byte buffers; building a `serde_json::Value` per row would allocate for every column.

/// Appends `s` as a JSON string literal (quoted and escaped).
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    write_str_bytes(out, s.as_bytes());
}

/// Like [`write_str`] for bytes that are UTF-8 by contract (PostgreSQL text output in a UTF-8
/// database). Invalid sequences are replaced rather than producing invalid JSON.
pub fn write_str_bytes(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    match std::str::from_utf8(s) {
        Ok(valid) => escape_into(out, valid),
        Err(_) => escape_into(out, &String::from_utf8_lossy(s)),
    }
    out.push(b'"');
}

fn escape_into(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x00..=0x1F => {
                out.extend_from_slice(&bytes[start..i]);
                out.extend_from_slice(format!("\\u{:04x}", b).as_bytes());
                start = i + 1;
                continue;
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[start..i]);
        out.extend_from_slice(escape);
        start = i + 1;
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Whether `text` is a JSON number (RFC 8259: `-? int frac? exp?`), so it can be written
/// unquoted. Source text that is not (it never should be, but bytes can be hostile) is written
/// as a string instead of producing invalid JSON.
pub fn is_number(text: &[u8]) -> bool {
    let digits = |s: &[u8]| s.iter().take_while(|b| b.is_ascii_digit()).count();
    let mut s = text.strip_prefix(b"-").unwrap_or(text);
    let int = digits(s);
    if int == 0 || (int > 1 && s[0] == b'0') {
        return false;
    }
    s = &s[int..];
    if let Some(rest) = s.strip_prefix(b".") {
        let frac = digits(rest);
        if frac == 0 {
            return false;
        }
        s = &rest[frac..];
    }
    if let Some(rest) = s.strip_prefix(b"e").or_else(|| s.strip_prefix(b"E")) {
        let rest = rest.strip_prefix(b"+").or_else(|| rest.strip_prefix(b"-")).unwrap_or(rest);
        let exp = digits(rest);
        if exp == 0 {
            return false;
        }
        s = &rest[exp..];
    }
    s.is_empty()
}

/// Appends `text` unquoted when it is a JSON number, else as a string.
pub fn write_number_or_str(out: &mut Vec<u8>, text: &[u8]) {
    if is_number(text) {
        out.extend_from_slice(text)
    } else {
        write_str_bytes(out, text)
    }
}

/// Appends an integer. (Hand-written: `write!` through `fmt` costs several times more, and
/// every event carries about ten integers.)
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    write_u64(out, v.unsigned_abs());
}

/// Appends an unsigned integer.
pub fn write_u64(out: &mut Vec<u8>, v: u64) {
    write_padded(out, v, 1);
}

/// Appends `v` in decimal, zero-padded to at least `width` digits (at most 20).
pub fn write_padded(out: &mut Vec<u8>, mut v: u64, width: usize) {
    // Two digits per division, as itoa does.
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    while v >= 100 {
        let pair = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    }
    if v >= 10 {
        let pair = v as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[pair..pair + 2]);
    } else {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    let start = i.min(buf.len().saturating_sub(width));
    out.extend_from_slice(&buf[start..]);
}

/// Appends `v` in upper-case hexadecimal, zero-padded to 16 digits.
pub fn write_hex16(out: &mut Vec<u8>, v: u64) {
    const DIGITS: &[u8; 16] = b"0123456789ABCDEF";
    for shift in (0..16).rev() {
        out.push(DIGITS[((v >> (shift * 4)) & 0xF) as usize]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_match_std_formatting() {
        let text = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut out = Vec::new();
            f(&mut out);
            String::from_utf8(out).unwrap()
        };
        for v in [0, 1, -1, 9, 10, -10, 1_234_567, i64::MAX, i64::MIN, i64::MIN + 1] {
            assert_eq!(text(&|o| write_i64(o, v)), v.to_string());
        }
        for v in [0, 7, 10, 99, 100, 101, 999, 1000, 12_345, 4_294_967_296, u64::MAX] {
            assert_eq!(text(&|o| write_u64(o, v)), v.to_string());
            assert_eq!(text(&|o| write_padded(o, v, 10)), format!("{v:010}"));
            assert_eq!(text(&|o| write_hex16(o, v)), format!("{v:016X}"));
        }
        assert_eq!(text(&|o| write_padded(o, u64::MAX, 25)), u64::MAX.to_string());
    }

    #[test]
    fn escapes_match_serde_json() {
        for s in ["plain", "q\"uote", "back\\slash", "nl\nx\r\t", "\u{1}ctl", "ünï©ødé ✓", ""] {
            let mut out = Vec::new();
            write_str(&mut out, s);
            let back: String = serde_json::from_slice(&out).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn numbers_are_recognised_like_a_json_parser_does() {
        for t in ["0", "-1", "42", "1.5", "-0.25", "1e10", "1.5e+300", "2E-7", "-9223372036854775808"] {
            assert!(is_number(t.as_bytes()), "{t}");
            assert!(serde_json::from_str::<serde_json::Value>(t).is_ok(), "{t}");
        }
        for t in ["", "-", "--1", "1-", "01", "1.", ".5", "1e", "1e+", "NaN", "inf", "1 ", "0x10", "1.5.5"] {
            assert!(!is_number(t.as_bytes()), "{t}");
            let mut out = Vec::new();
            write_number_or_str(&mut out, t.as_bytes());
            assert_eq!(serde_json::from_slice::<String>(&out).unwrap(), t);
        }
    }

    #[test]
    fn invalid_utf8_still_yields_valid_json() {
        let mut out = Vec::new();
        write_str_bytes(&mut out, b"a\xffb");
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, "a\u{FFFD}b");
    }
}
