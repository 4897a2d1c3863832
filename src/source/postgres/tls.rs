//! TLS to PostgreSQL as libpq users configure it: `sslmode` (disable, prefer, require,
//! verify-ca, verify-full), `sslrootcert` (a file, or `system`), `sslcert`, `sslkey` and
//! `sslpassword`, in either connection-string form. tokio-postgres knows only three sslmodes and
//! none of the file options, so [`parse_url`] takes them out and hands it the rest; both the SQL
//! connection and the hand-written replication connection then get their TLS from one
//! [`TlsSettings`], with the same verification rules.

use std::path::PathBuf;
use std::pin::Pin;
use std::task::{Context, Poll};

use openssl::hash::MessageDigest;
use openssl::nid::Nid;
use openssl::pkey::PKey;
use openssl::ssl::{SslConnector, SslFiletype, SslMethod, SslRef, SslVerifyMode};
use percent_encoding::percent_decode_str;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_openssl::SslStream;

/// libpq's `sslmode`. Without one, libpq (and cdcd) use `prefer`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SslMode {
    Disable,
    #[default]
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    fn parse(v: &str) -> Result<Self, String> {
        Ok(match v {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            "allow" => {
                return Err("sslmode=allow is not supported (it tries plaintext first); use prefer or require".into())
            }
            other => {
                return Err(format!(
                    "unknown sslmode `{other}`; use disable, prefer, require, verify-ca or verify-full"
                ))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }

    /// TLS is mandatory: a server that does not offer it is an error, not a plaintext fallback.
    pub fn requires_tls(self) -> bool {
        matches!(self, SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCert {
    File(PathBuf),
    /// The operating system's trust store (`sslrootcert=system`, as in libpq 16).
    System,
}

/// The TLS part of a PostgreSQL connection string.
#[derive(Clone, Default)]
pub struct TlsSettings {
    pub mode: SslMode,
    pub root_cert: Option<RootCert>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    key_password: Option<String>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSettings")
            .field("mode", &self.mode)
            .field("root_cert", &self.root_cert)
            .field("cert", &self.cert)
            .field("key", &self.key)
            .field("key_password", &self.key_password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// A parsed `source.url`: what tokio-postgres understands, and the TLS settings it does not.
#[derive(Clone, Debug)]
pub struct PgUrl {
    pub config: tokio_postgres::Config,
    pub tls: TlsSettings,
}

const TLS_KEYS: [&str; 5] = ["sslmode", "sslrootcert", "sslcert", "sslkey", "sslpassword"];

impl PgUrl {
    /// Whether the host is a directory holding the server's Unix socket.
    pub fn is_unix_socket(&self) -> bool {
        matches!(self.config.get_hosts().first(), Some(tokio_postgres::config::Host::Unix(_)))
    }
}

/// Parses a URL (`postgres://user:pw@host/db?sslmode=verify-full&sslrootcert=/ca.pem`) or a
/// key=value string (`host=db sslmode=require`).
pub fn parse_url(url: &str) -> Result<PgUrl, String> {
    let (rest, tls_pairs) = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        split_uri(url)?
    } else {
        split_key_values(url)?
    };
    let mut tls = TlsSettings::default();
    for (k, v) in tls_pairs {
        match k.as_str() {
            "sslmode" => tls.mode = SslMode::parse(&v)?,
            "sslrootcert" if v == "system" => tls.root_cert = Some(RootCert::System),
            "sslrootcert" => tls.root_cert = Some(RootCert::File(v.into())),
            "sslcert" => tls.cert = Some(v.into()),
            "sslkey" => tls.key = Some(v.into()),
            "sslpassword" => tls.key_password = Some(v),
            _ => {}
        }
    }
    if tls.mode == SslMode::Disable && (tls.root_cert.is_some() || tls.cert.is_some()) {
        return Err("sslmode=disable with sslrootcert or sslcert: the certificates would be ignored; pick one".into());
    }
    if matches!(tls.mode, SslMode::VerifyCa | SslMode::VerifyFull) && tls.root_cert.is_none() {
        return Err(format!(
            "sslmode={} needs sslrootcert=PATH (the CA that signed the server's certificate) or sslrootcert=system",
            tls.mode.as_str()
        ));
    }
    if tls.cert.is_some() != tls.key.is_some() {
        return Err("sslcert and sslkey go together (the client certificate and its private key)".into());
    }
    let config: tokio_postgres::Config = rest.parse().map_err(|e| format!("{e}"))?;
    let mut url = PgUrl { config, tls };
    // A Unix-socket host (a directory) never uses TLS, as with libpq: the server would refuse
    // the SSLRequest and `require` would then fail although nothing leaves the host.
    let unix = url.is_unix_socket();
    url.config.ssl_mode(match url.tls.mode {
        _ if unix => tokio_postgres::config::SslMode::Disable,
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        _ => tokio_postgres::config::SslMode::Require,
    });
    Ok(url)
}

fn split_uri(url: &str) -> Result<(String, Vec<(String, String)>), String> {
    let Some((base, query)) = url.split_once('?') else { return Ok((url.to_string(), Vec::new())) };
    let mut kept = Vec::new();
    let mut tls = Vec::new();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        if TLS_KEYS.contains(&k) {
            let v =
                percent_decode_str(v).decode_utf8().map_err(|_| format!("{k}: not UTF-8 after percent-decoding"))?;
            tls.push((k.to_string(), v.into_owned()));
        } else {
            kept.push(pair);
        }
    }
    let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    Ok((rest, tls))
}

fn split_key_values(s: &str) -> Result<(String, Vec<(String, String)>), String> {
    let mut kept = String::new();
    let mut tls = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.peek().is_none() {
            break;
        }
        let mut key = String::new();
        while let Some(c) = chars.next_if(|c| *c != '=' && !c.is_whitespace()) {
            key.push(c);
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        if chars.next() != Some('=') {
            return Err(format!("expected `=` after `{key}`"));
        }
        while chars.next_if(|c| c.is_whitespace()).is_some() {}
        let mut value = String::new();
        if chars.next_if_eq(&'\'').is_some() {
            loop {
                match chars.next() {
                    Some('\\') => value.extend(chars.next()),
                    Some('\'') => break,
                    Some(c) => value.push(c),
                    None => return Err(format!("unterminated quoted value for `{key}`")),
                }
            }
        } else {
            while let Some(c) = chars.next_if(|c| !c.is_whitespace()) {
                if c == '\\' {
                    value.extend(chars.next());
                } else {
                    value.push(c);
                }
            }
        }
        if TLS_KEYS.contains(&key.as_str()) {
            tls.push((key, value));
        } else {
            let quoted = value.replace('\\', "\\\\").replace('\'', "\\'");
            kept.push_str(&format!("{key}='{quoted}' "));
        }
    }
    Ok((kept, tls))
}

impl TlsSettings {
    /// The OpenSSL client context these settings call for (root store, verification, client
    /// certificate). Errors name the file that could not be used.
    pub fn connector(&self) -> Result<SslConnector, String> {
        let mut b = SslConnector::builder(SslMethod::tls_client()).map_err(|e| format!("OpenSSL: {e}"))?;
        match &self.root_cert {
            Some(RootCert::File(p)) => b
                .set_ca_file(p)
                .map_err(|e| format!("sslrootcert {}: cannot load it as PEM certificates ({e})", p.display()))?,
            // SslConnector::builder already trusts the system store.
            Some(RootCert::System) => {}
            // libpq: without a root certificate, prefer and require encrypt without verifying.
            None => b.set_verify(SslVerifyMode::NONE),
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            b.set_certificate_chain_file(cert)
                .map_err(|e| format!("sslcert {}: cannot load it as a PEM certificate ({e})", cert.display()))?;
            match &self.key_password {
                Some(pw) => {
                    let pem = std::fs::read(key).map_err(|e| format!("sslkey {}: {e}", key.display()))?;
                    let pkey = PKey::private_key_from_pem_passphrase(&pem, pw.as_bytes()).map_err(|_| {
                        format!("sslkey {}: cannot decrypt it with sslpassword (wrong password?)", key.display())
                    })?;
                    b.set_private_key(&pkey).map_err(|e| format!("sslkey {}: {e}", key.display()))?;
                }
                None => b.set_private_key_file(key, SslFiletype::PEM).map_err(|e| {
                    format!(
                        "sslkey {}: cannot load it as an unencrypted PEM key ({e}); set sslpassword if it is encrypted",
                        key.display()
                    )
                })?,
            }
            b.check_private_key().map_err(|_| "sslkey does not belong to sslcert".to_string())?;
        }
        Ok(b.build())
    }

    /// The passphrase of an encrypted client key (`sslpassword`).
    pub fn key_password(&self) -> Option<&str> {
        self.key_password.as_deref()
    }

    /// Whether the server's host name must match its certificate.
    pub fn verify_host(&self) -> bool {
        self.mode == SslMode::VerifyFull
    }

    /// The connector tokio-postgres uses for the SQL connection.
    pub fn make_tls_connect(&self) -> Result<postgres_openssl::MakeTlsConnector, String> {
        let mut m = postgres_openssl::MakeTlsConnector::new(self.connector()?);
        let verify_host = self.verify_host();
        m.set_callback(move |c, _| {
            c.set_verify_hostname(verify_host);
            Ok(())
        });
        Ok(m)
    }

    /// How the server's certificate is checked, for `cdcd check` and the logs.
    pub fn verification(&self) -> &'static str {
        match (&self.root_cert, self.mode) {
            (_, SslMode::VerifyFull) => "certificate and host name verified",
            (Some(_), _) => "certificate verified, host name not checked",
            (None, _) => "certificate not verified",
        }
    }
}

/// A description of the TLS session: protocol, cipher and verification.
pub fn describe_session(ssl: &SslRef, tls: &TlsSettings) -> String {
    let cipher = ssl.current_cipher().map(|c| c.name()).unwrap_or("unknown cipher");
    format!("TLS ({}, {cipher}, {})", ssl.version_str(), tls.verification())
}

/// `tls-server-end-point` channel-binding data (RFC 5929) for SCRAM-SHA-256-PLUS.
pub fn tls_server_end_point(ssl: &SslRef) -> Option<Vec<u8>> {
    let cert = ssl.peer_certificate()?;
    let algorithms = cert.signature_algorithm().object().nid().signature_algorithms()?;
    let md = match algorithms.digest {
        Nid::MD5 | Nid::SHA1 => MessageDigest::sha256(),
        nid => MessageDigest::from_nid(nid)?,
    };
    cert.digest(md).ok().map(|d| d.to_vec())
}

/// The replication connection's byte stream, plaintext or TLS.
pub enum PgStream {
    Plain(TcpStream),
    Tls(Box<SslStream<TcpStream>>),
    /// A Unix-domain socket on this host (never TLS, as with libpq).
    Unix(tokio::net::UnixStream),
}

impl PgStream {
    pub fn ssl(&self) -> Option<&SslRef> {
        match self {
            PgStream::Plain(_) | PgStream::Unix(_) => None,
            PgStream::Tls(s) => Some(s.ssl()),
        }
    }
}

impl AsyncRead for PgStream {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PgStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            PgStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
            PgStream::Unix(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for PgStream {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            PgStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            PgStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
            PgStream::Unix(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PgStream::Plain(s) => Pin::new(s).poll_flush(cx),
            PgStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
            PgStream::Unix(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            PgStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            PgStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
            PgStream::Unix(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_tls_options_are_taken_out_and_the_rest_kept() {
        let u = parse_url(
            "postgres://u:p%40ss@db.example.com:6543/app?sslmode=verify-full&sslrootcert=%2Fetc%2Fca.pem&application_name=x",
        )
        .unwrap();
        assert_eq!(u.tls.mode, SslMode::VerifyFull);
        assert_eq!(u.tls.root_cert, Some(RootCert::File("/etc/ca.pem".into())));
        assert_eq!(u.config.get_password(), Some(&b"p@ss"[..]));
        assert_eq!(u.config.get_ports(), [6543]);
        assert_eq!(u.config.get_application_name(), Some("x"));
        assert_eq!(u.config.get_ssl_mode(), tokio_postgres::config::SslMode::Require);
    }

    #[test]
    fn key_value_form_with_quotes() {
        let u = parse_url(
            r"host=127.0.0.1 port=5432 user=cdcd password='it\'s secret' dbname=app sslmode=require sslcert=/c.pem sslkey = '/k.pem'",
        )
        .unwrap();
        assert_eq!(u.tls.mode, SslMode::Require);
        assert_eq!(u.tls.cert, Some("/c.pem".into()));
        assert_eq!(u.tls.key, Some("/k.pem".into()));
        assert_eq!(u.config.get_password(), Some(&b"it's secret"[..]));
        assert_eq!(u.config.get_dbname(), Some("app"));
    }

    #[test]
    fn default_is_prefer_as_in_libpq() {
        let u = parse_url("postgres://u@h/d").unwrap();
        assert_eq!(u.tls.mode, SslMode::Prefer);
        assert_eq!(u.config.get_ssl_mode(), tokio_postgres::config::SslMode::Prefer);
    }

    #[test]
    fn contradictions_are_errors_that_say_what_to_do() {
        let e = parse_url("postgres://u@h/d?sslmode=verify-full").unwrap_err();
        assert!(e.contains("needs sslrootcert"), "{e}");
        let e = parse_url("postgres://u@h/d?sslmode=bogus").unwrap_err();
        assert!(e.contains("verify-full"), "{e}");
        let e = parse_url("postgres://u@h/d?sslmode=require&sslcert=/c.pem").unwrap_err();
        assert!(e.contains("sslkey"), "{e}");
        let e = parse_url("host=h sslmode='unterminated").unwrap_err();
        assert!(e.contains("unterminated"), "{e}");
    }

    #[test]
    fn the_key_password_never_shows_in_debug_output() {
        let u = parse_url("postgres://u@h/d?sslmode=require&sslcert=/c&sslkey=/k&sslpassword=hunter2").unwrap();
        assert!(!format!("{:?}", u.tls).contains("hunter2"));
    }
}
