//! A Confluent-compatible Schema Registry client: registers a subject's schema (the registry
//! answers with the id of an identical schema it already has, so registering is idempotent)
//! and caches the id, so the registry is asked once per subject and schema, never per event.
//! Refusals (an incompatible change, an invalid schema, bad credentials) are definite and carry
//! the registry's reason; an unreachable registry is transient.

use std::collections::HashMap;
use std::time::Duration;

use base64::Engine;
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use openssl::ssl::{SslConnector, SslMethod};

/// Where the registry is and how to reach it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegistrySettings {
    /// `http://host:port` or `https://host:port[/prefix]`.
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM file of the CA that signed the registry's certificate (default: the system's).
    pub ca_file: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// The registry answered and said no: retrying cannot help.
    #[error("the schema registry refused subject {subject} (HTTP {status}): {reason}")]
    Refused { subject: String, status: u16, reason: String },
    /// The registry could not be reached or failed on its side: worth retrying.
    #[error("the schema registry at {url} is unavailable: {reason}")]
    Unavailable { url: String, reason: String },
    #[error("schema registry settings: {0}")]
    Config(String),
}

#[derive(Debug)]
struct Endpoint {
    tls: bool,
    host: String,
    port: u16,
    prefix: String,
}

fn parse_url(url: &str) -> Result<Endpoint, RegistryError> {
    let bad = || RegistryError::Config(format!("not a registry URL: {url:?} (expected http(s)://host:port)"));
    let (tls, rest) = match url.split_once("://") {
        Some(("http", r)) => (false, r),
        Some(("https", r)) => (true, r),
        _ => return Err(bad()),
    };
    let (authority, prefix) = match rest.find('/') {
        Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
        None => (rest, ""),
    };
    if authority.contains('@') {
        return Err(RegistryError::Config("put credentials in username / password, not in the URL".into()));
    }
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) => (h, p.parse().map_err(|_| bad())?),
        None => (authority, if tls { 443 } else { 80 }),
    };
    if host.is_empty() {
        return Err(bad());
    }
    Ok(Endpoint { tls, host: host.trim_matches(['[', ']']).to_string(), port, prefix: prefix.to_string() })
}

pub struct RegistryClient {
    url: String,
    endpoint: Endpoint,
    auth: Option<String>,
    tls: Option<SslConnector>,
    timeout: Duration,
    /// (subject, schema text) -> id.
    ids: HashMap<(String, String), u32>,
}

impl RegistryClient {
    pub fn new(s: &RegistrySettings, timeout: Duration) -> Result<Self, RegistryError> {
        let endpoint = parse_url(&s.url)?;
        let auth = match (&s.username, &s.password) {
            (Some(u), p) => Some(format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(format!("{u}:{}", p.as_deref().unwrap_or("")))
            )),
            (None, Some(_)) => return Err(RegistryError::Config("a password needs a username".into())),
            (None, None) => None,
        };
        let tls = if endpoint.tls {
            let mut b =
                SslConnector::builder(SslMethod::tls_client()).map_err(|e| RegistryError::Config(e.to_string()))?;
            if let Some(ca) = &s.ca_file {
                b.set_ca_file(ca).map_err(|e| RegistryError::Config(format!("ca_file {ca}: {e}")))?;
            }
            Some(b.build())
        } else {
            None
        };
        Ok(RegistryClient { url: s.url.clone(), endpoint, auth, tls, timeout, ids: HashMap::new() })
    }

    /// The id of `schema` (Avro schema JSON) under `subject`, registering it if it is new.
    pub async fn register(&mut self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        let key = (subject.to_string(), schema.to_string());
        if let Some(&id) = self.ids.get(&key) {
            return Ok(id);
        }
        let body = serde_json::json!({ "schema": schema }).to_string();
        let path = format!("{}/subjects/{}/versions", self.endpoint.prefix, percent_encode(subject));
        let (status, text) = tokio::time::timeout(self.timeout, self.post(&path, body))
            .await
            .map_err(|_| self.unavailable(format!("no answer within {:?}", self.timeout)))??;
        if status == 200 {
            let id = serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| v["id"].as_u64())
                .and_then(|id| u32::try_from(id).ok())
                .ok_or_else(|| self.unavailable(format!("unexpected answer {text:?}")))?;
            tracing::info!(subject, id, "schema registered");
            self.ids.insert(key, id);
            return Ok(id);
        }
        let reason = serde_json::from_str::<serde_json::Value>(&text)
            .ok()
            .and_then(|v| v["message"].as_str().map(String::from))
            .unwrap_or(text);
        if status >= 500 || status == 408 || status == 429 {
            return Err(self.unavailable(format!("HTTP {status}: {reason}")));
        }
        Err(RegistryError::Refused { subject: subject.to_string(), status, reason })
    }

    fn unavailable(&self, reason: String) -> RegistryError {
        RegistryError::Unavailable { url: self.url.clone(), reason }
    }

    async fn post(&self, path: &str, body: String) -> Result<(u16, String), RegistryError> {
        let e = &self.endpoint;
        let tcp = tokio::net::TcpStream::connect((e.host.as_str(), e.port))
            .await
            .map_err(|err| self.unavailable(format!("connect: {err}")))?;
        match &self.tls {
            Some(connector) => {
                let ssl = connector
                    .configure()
                    .and_then(|c| c.into_ssl(&e.host))
                    .map_err(|err| RegistryError::Config(err.to_string()))?;
                let mut stream =
                    tokio_openssl::SslStream::new(ssl, tcp).map_err(|err| RegistryError::Config(err.to_string()))?;
                std::pin::Pin::new(&mut stream)
                    .connect()
                    .await
                    .map_err(|err| self.unavailable(format!("TLS handshake: {err}")))?;
                self.exchange(stream, path, body).await
            }
            None => self.exchange(tcp, path, body).await,
        }
    }

    async fn exchange<S>(&self, stream: S, path: &str, body: String) -> Result<(u16, String), RegistryError>
    where
        S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static,
    {
        let io = hyper_util::rt::TokioIo::new(stream);
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake(io).await.map_err(|err| self.unavailable(err.to_string()))?;
        tokio::spawn(async move {
            let _ = conn.await;
        });
        let mut req = hyper::Request::post(path)
            .header(hyper::header::HOST, format!("{}:{}", self.endpoint.host, self.endpoint.port))
            .header(hyper::header::CONTENT_TYPE, "application/vnd.schemaregistry.v1+json")
            .header(hyper::header::ACCEPT, "application/vnd.schemaregistry.v1+json, application/json");
        if let Some(a) = &self.auth {
            req = req.header(hyper::header::AUTHORIZATION, a);
        }
        let req = req.body(Full::new(Bytes::from(body))).map_err(|err| RegistryError::Config(err.to_string()))?;
        let resp = sender.send_request(req).await.map_err(|err| self.unavailable(err.to_string()))?;
        let status = resp.status().as_u16();
        let bytes = resp.into_body().collect().await.map_err(|err| self.unavailable(err.to_string()))?.to_bytes();
        Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
    }
}

/// Subjects are topic names plus `-key`/`-value`: letters, digits, `.`, `_`, `-` pass as-is.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_parsed_or_refused_with_a_reason() {
        let e = parse_url("https://sr.example.com:8443/api/").unwrap();
        assert!(e.tls && e.host == "sr.example.com" && e.port == 8443 && e.prefix == "/api");
        let e = parse_url("http://127.0.0.1:8081").unwrap();
        assert!(!e.tls && e.port == 8081 && e.prefix.is_empty());
        assert_eq!(parse_url("https://sr").unwrap().port, 443);
        assert!(matches!(parse_url("ftp://x"), Err(RegistryError::Config(_))));
        assert!(parse_url("http://u:p@host:1").unwrap_err().to_string().contains("username"));
    }

    /// A registry that answers one request with `status` and `body`, and hands back the request.
    async fn one_shot(status: u16, body: &'static str) -> (String, tokio::task::JoinHandle<String>) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            while !String::from_utf8_lossy(&req).contains("}") {
                let n = s.read(&mut buf).await.unwrap();
                if n == 0 {
                    break;
                }
                req.extend_from_slice(&buf[..n]);
            }
            let resp =
                format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
            s.write_all(resp.as_bytes()).await.unwrap();
            String::from_utf8_lossy(&req).into_owned()
        });
        (url, handle)
    }

    #[tokio::test]
    async fn registers_once_then_answers_from_the_cache() {
        let (url, server) = one_shot(200, r#"{"id":7}"#).await;
        let settings =
            RegistrySettings { url, username: Some("u".into()), password: Some("p".into()), ..Default::default() };
        let mut c = RegistryClient::new(&settings, Duration::from_secs(5)).unwrap();
        assert_eq!(c.register("t-value", r#""string""#).await.unwrap(), 7);
        let req = server.await.unwrap();
        assert!(req.starts_with("POST /subjects/t-value/versions "), "{req}");
        assert!(req.to_ascii_lowercase().contains("authorization: basic dtpw"), "{req}");
        assert!(req.contains(r#"{"schema":"\"string\""}"#), "{req}");
        // The one-shot server is gone: a second call must not need it.
        assert_eq!(c.register("t-value", r#""string""#).await.unwrap(), 7);
    }

    #[tokio::test]
    async fn an_incompatible_schema_is_a_definite_refusal_with_the_registrys_reason() {
        let (url, _server) =
            one_shot(409, r#"{"error_code":409,"message":"Schema being registered is incompatible"}"#).await;
        let mut c =
            RegistryClient::new(&RegistrySettings { url, ..Default::default() }, Duration::from_secs(5)).unwrap();
        let err = c.register("t-value", r#""int""#).await.unwrap_err();
        assert!(matches!(&err, RegistryError::Refused { status: 409, .. }), "{err}");
        assert!(err.to_string().contains("t-value") && err.to_string().contains("incompatible"), "{err}");
    }

    #[tokio::test]
    async fn an_unreachable_registry_is_transient() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        drop(listener);
        let mut c =
            RegistryClient::new(&RegistrySettings { url, ..Default::default() }, Duration::from_secs(5)).unwrap();
        assert!(matches!(c.register("s", "\"int\"").await, Err(RegistryError::Unavailable { .. })));
    }
}
