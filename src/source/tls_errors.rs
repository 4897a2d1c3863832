//! Wording shared by the sources for TLS failures: OpenSSL's error text cut down to its reason,
//! and the fix, in each source's own parameter names.

/// What to change after the server's certificate was rejected for `reason` (OpenSSL's verify
/// result text, e.g. "hostname mismatch" or "self-signed certificate in certificate chain").
/// `ca_param` and `ca_only_mode` are the source's own names (`sslrootcert`, `sslmode=verify-ca`).
pub fn verify_fix(reason: &str, ca_param: &str, ca_only_mode: &str) -> String {
    if reason.contains("mismatch") {
        format!("the host in source.url is not one of the names in the server's certificate: connect by a name it carries, or use {ca_only_mode} to check the CA only")
    } else {
        format!("{ca_param} must be the CA that signed the server's certificate (or the chain up to it)")
    }
}

/// A TLS failure in one line: OpenSSL's error stacks repeat themselves and carry source file
/// names; keep the verify reason ("certificate verify failed (IP address mismatch)") or the
/// last distinct message.
pub fn tls_reason(messages: &[String]) -> String {
    if let Some(m) = messages.iter().find(|m| m.contains("certificate verify failed")) {
        // OpenSSL's verify reason trails the error stack: ":: reason" through tokio-postgres,
        // " (reason)" through native-tls.
        let detail = match m.strip_suffix(')').and_then(|m| m.rsplit_once(" (")) {
            Some((_, reason)) => Some(reason),
            None => m.rsplit(":: ").next().filter(|d| !d.contains("certificate verify failed")),
        };
        return match detail {
            Some(d) => format!("certificate verify failed ({})", d.trim()),
            None => "certificate verify failed".into(),
        };
    }
    messages.last().cloned().unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_failures_read_as_one_line_with_the_fix() {
        // The chain tokio-postgres gave for a host-name mismatch (PostgreSQL 15, OpenSSL 3.0).
        let chain = [
            "error performing TLS handshake".to_string(),
            "error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed:../ssl/statem/statem_clnt.c:1889:: IP address mismatch".to_string(),
            "error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed:../ssl/statem/statem_clnt.c:1889:".to_string(),
        ];
        let reason = tls_reason(&chain);
        assert_eq!(reason, "certificate verify failed (IP address mismatch)");
        assert!(verify_fix(&reason, "sslrootcert", "sslmode=verify-ca").contains("verify-ca"));
        // native-tls (the MySQL driver) puts the reason in parentheses.
        let native = "error:0A000086:SSL routines:tls_post_process_server_certificate:certificate verify failed:../ssl/statem/statem_clnt.c:1889: (IP address mismatch)";
        assert_eq!(tls_reason(&[native.to_string()]), "certificate verify failed (IP address mismatch)");
        let fix = verify_fix("certificate verify failed (self-signed certificate in certificate chain)", "ssl-ca", "x");
        assert!(fix.starts_with("ssl-ca must be the CA"), "{fix}");
    }
}
