//! TLS to MySQL / MariaDB with the MySQL client's names in `source.url`: `ssl-mode`
//! (DISABLED, PREFERRED, REQUIRED, VERIFY_CA, VERIFY_IDENTITY), `ssl-ca`, `ssl-cert`, `ssl-key`
//! (underscores accepted too). mysql_async does not know these parameters, so [`parse_url`]
//! takes them out and turns them into its `SslOpts`; both the SQL and the binlog connection
//! are made from the result. OpenSSL does the TLS (through native-tls), as for PostgreSQL and
//! Kafka.

use std::path::PathBuf;

use mysql_async::{ClientIdentity, Opts, OptsBuilder, SslOpts};
use openssl::pkcs12::Pkcs12;
use openssl::pkey::PKey;
use openssl::x509::X509;
use percent_encoding::percent_decode_str;

/// The MySQL client's `--ssl-mode`. Without one, MySQL clients (and cdcd) use PREFERRED.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum SslMode {
    Disabled,
    #[default]
    Preferred,
    Required,
    VerifyCa,
    VerifyIdentity,
}

impl SslMode {
    fn parse(v: &str) -> Result<Self, String> {
        Ok(match v.to_ascii_uppercase().replace('-', "_").as_str() {
            "DISABLED" => SslMode::Disabled,
            "PREFERRED" => SslMode::Preferred,
            "REQUIRED" => SslMode::Required,
            "VERIFY_CA" => SslMode::VerifyCa,
            "VERIFY_IDENTITY" => SslMode::VerifyIdentity,
            _ => {
                return Err(format!(
                    "unknown ssl-mode `{v}`; use DISABLED, PREFERRED, REQUIRED, VERIFY_CA or VERIFY_IDENTITY"
                ))
            }
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disabled => "DISABLED",
            SslMode::Preferred => "PREFERRED",
            SslMode::Required => "REQUIRED",
            SslMode::VerifyCa => "VERIFY_CA",
            SslMode::VerifyIdentity => "VERIFY_IDENTITY",
        }
    }
}

/// The TLS part of a MySQL URL.
#[derive(Clone, Debug, Default)]
pub struct MyTls {
    pub mode: SslMode,
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
}

/// A parsed `source.url`: mysql_async's options without TLS, and the TLS settings.
#[derive(Clone, Debug)]
pub struct MyUrl {
    pub opts: Opts,
    pub tls: MyTls,
}

pub fn parse_url(url: &str) -> Result<MyUrl, String> {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let mut kept = Vec::new();
    let mut tls = MyTls::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let decoded =
            || percent_decode_str(v).decode_utf8().map(|s| s.into_owned()).map_err(|_| format!("{k}: not UTF-8"));
        match k.replace('_', "-").as_str() {
            "ssl-mode" | "sslmode" => tls.mode = SslMode::parse(&decoded()?)?,
            "ssl-ca" => tls.ca = Some(decoded()?.into()),
            "ssl-cert" => tls.cert = Some(decoded()?.into()),
            "ssl-key" => tls.key = Some(decoded()?.into()),
            "require-ssl" | "verify-ca" | "verify-identity" | "built-in-roots" => {
                return Err(format!("use ssl-mode (DISABLED .. VERIFY_IDENTITY) and ssl-ca instead of `{k}`"))
            }
            _ => kept.push(pair),
        }
    }
    if matches!(tls.mode, SslMode::VerifyCa | SslMode::VerifyIdentity) && tls.ca.is_none() {
        return Err(format!(
            "ssl-mode={} needs ssl-ca=PATH (the CA that signed the server's certificate)",
            tls.mode.as_str()
        ));
    }
    if tls.mode == SslMode::Disabled && (tls.ca.is_some() || tls.cert.is_some()) {
        return Err("ssl-mode=DISABLED with ssl-ca or ssl-cert: the certificates would be ignored; pick one".into());
    }
    if tls.cert.is_some() != tls.key.is_some() {
        return Err("ssl-cert and ssl-key go together (the client certificate and its private key)".into());
    }
    let rest = if kept.is_empty() { base.to_string() } else { format!("{base}?{}", kept.join("&")) };
    let opts = Opts::from_url(&rest).map_err(|e| e.to_string())?;
    Ok(MyUrl { opts, tls })
}

impl MyTls {
    /// mysql_async's TLS options for these settings; `None` for a plaintext connection.
    pub fn ssl_opts(&self) -> Result<Option<SslOpts>, String> {
        if self.mode == SslMode::Disabled {
            return Ok(None);
        }
        let mut ssl = SslOpts::default();
        if let Some(ca) = &self.ca {
            std::fs::metadata(ca).map_err(|e| format!("ssl-ca {}: {e}", ca.display()))?;
            ssl = ssl.with_root_certs(vec![ca.clone().into()]).with_disable_built_in_roots(true);
        }
        ssl = match self.mode {
            // The MySQL client encrypts without checking the certificate unless asked to, and
            // (like it) cdcd checks the CA when ssl-ca is given.
            // Nothing is verified then, so the system's CA store is not loaded either: parsing it
            // for each connection cost about 5 MB of peak memory.
            SslMode::Preferred | SslMode::Required if self.ca.is_none() => {
                ssl.with_danger_accept_invalid_certs(true).with_disable_built_in_roots(true)
            }
            SslMode::Preferred | SslMode::Required | SslMode::VerifyCa => ssl.with_danger_skip_domain_validation(true),
            _ => ssl,
        };
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            ssl = ssl.with_client_identity(Some(client_identity(cert, key)?));
        }
        Ok(Some(ssl))
    }

    /// How the server's certificate is checked, for `cdcd check` and the logs.
    pub fn verification(&self) -> &'static str {
        match (self.mode, &self.ca) {
            (SslMode::VerifyIdentity, _) => "certificate and host name verified",
            (_, Some(_)) => "certificate verified, host name not checked",
            _ => "certificate not verified",
        }
    }

    /// Applies the settings to connection options; `tls` false gives plaintext (the PREFERRED
    /// fallback).
    pub fn apply(&self, opts: OptsBuilder, tls: bool) -> Result<OptsBuilder, String> {
        if !tls {
            return Ok(opts.ssl_opts(None));
        }
        // The driver would otherwise switch a loopback TCP connection to the Unix socket.
        Ok(opts.ssl_opts(self.ssl_opts()?).prefer_socket(false))
    }
}

/// native-tls takes a client identity as PKCS#12 only; build one in memory from the PEM files
/// MySQL users have.
fn client_identity(cert: &PathBuf, key: &PathBuf) -> Result<ClientIdentity, String> {
    let cert_pem = std::fs::read(cert).map_err(|e| format!("ssl-cert {}: {e}", cert.display()))?;
    let key_pem = std::fs::read(key).map_err(|e| format!("ssl-key {}: {e}", key.display()))?;
    let mut chain = X509::stack_from_pem(&cert_pem)
        .map_err(|e| format!("ssl-cert {}: not a PEM certificate ({e})", cert.display()))?
        .into_iter();
    let leaf = chain.next().ok_or_else(|| format!("ssl-cert {}: no certificate in it", cert.display()))?;
    let pkey = PKey::private_key_from_pem(&key_pem)
        .map_err(|e| format!("ssl-key {}: not an unencrypted PEM private key ({e})", key.display()))?;
    let mut builder = Pkcs12::builder();
    builder.name("cdcd").pkey(&pkey).cert(&leaf);
    let rest: Vec<X509> = chain.collect();
    if !rest.is_empty() {
        let mut stack = openssl::stack::Stack::new().map_err(|e| e.to_string())?;
        for c in rest {
            stack.push(c).map_err(|e| e.to_string())?;
        }
        builder.ca(stack);
    }
    let der = builder
        .build2("")
        .and_then(|p| p.to_der())
        .map_err(|e| format!("ssl-cert / ssl-key: cannot pair them ({e}); is the key the certificate's?"))?;
    Ok(ClientIdentity::new(der.into()).with_password(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tls_parameters_are_taken_out_of_the_url() {
        let u =
            parse_url("mysql://u:p@db:3306/shop?ssl-mode=VERIFY_IDENTITY&ssl_ca=%2Fetc%2Fca.pem&stmt_cache_size=10")
                .unwrap();
        assert_eq!(u.tls.mode, SslMode::VerifyIdentity);
        assert_eq!(u.tls.ca, Some("/etc/ca.pem".into()));
        assert_eq!(u.opts.stmt_cache_size(), 10);
        assert_eq!(u.opts.db_name(), Some("shop"));
    }

    #[test]
    fn default_is_preferred_and_contradictions_are_errors() {
        assert_eq!(parse_url("mysql://u@h").unwrap().tls.mode, SslMode::Preferred);
        assert!(parse_url("mysql://u@h?ssl-mode=verify_ca").unwrap_err().contains("needs ssl-ca"));
        assert!(parse_url("mysql://u@h?ssl-mode=sometimes").unwrap_err().contains("VERIFY_IDENTITY"));
        assert!(parse_url("mysql://u@h?ssl-mode=REQUIRED&ssl-key=/k").unwrap_err().contains("go together"));
        assert!(parse_url("mysql://u@h?require_ssl=true").unwrap_err().contains("ssl-mode"));
    }
}
