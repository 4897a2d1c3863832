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

/// Appends an integer.
pub fn write_i64(out: &mut Vec<u8>, v: i64) {
    use std::io::Write;
    let _ = write!(out, "{v}");
}

/// Appends an unsigned integer.
pub fn write_u64(out: &mut Vec<u8>, v: u64) {
    use std::io::Write;
    let _ = write!(out, "{v}");
}

#[cfg(test)]
mod tests {
    use super::*;

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
