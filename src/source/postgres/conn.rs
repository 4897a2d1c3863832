//! A replication-mode connection (`replication=database`) built on `postgres-protocol`:
//! TLS negotiation (SSLRequest, per `sslmode`), startup, authentication (trust, cleartext, MD5,
//! SCRAM-SHA-256 with channel binding over TLS), simple queries, and the switch to CopyBoth
//! for `START_REPLICATION`. Upstream `tokio-postgres` cannot open such a
//! connection, so this is the one place that speaks the wire protocol by hand.

use bytes::{Buf, Bytes, BytesMut};
use postgres_protocol::authentication::sasl::{ChannelBinding, ScramSha256, SCRAM_SHA_256, SCRAM_SHA_256_PLUS};
use postgres_protocol::message::frontend;
use tokio::io::{AsyncReadExt, AsyncWriteExt, ReadHalf, WriteHalf};
use tokio::net::{TcpStream, UnixStream};

use super::tls::{describe_session, tls_server_end_point, PgStream, PgUrl, SslMode, TlsSettings};
use crate::error::{ServerFailure, SourceError};
use crate::source::tls_errors::verify_fix;

/// The write half of a replication stream (standby status updates go through it).
pub type ReplicationWriter = WriteHalf<PgStream>;

/// Session settings that make the server's text output what our value mapping expects.
pub const SESSION_OPTIONS: &str =
    "-c datestyle=ISO,MDY -c timezone=UTC -c intervalstyle=iso_8601 -c extra_float_digits=3 -c bytea_output=hex \
     -c lc_monetary=C";

/// How [`ReplicationConn::encryption`] describes a Unix-socket connection.
pub const LOCAL_SOCKET: &str = "Unix socket (not encrypted; it does not leave this host)";

/// Where and as whom to connect, taken from the connector's URL.
#[derive(Clone, Debug)]
pub struct ConnParams {
    pub host: String,
    pub port: u16,
    /// The server's Unix socket (`<directory>/.s.PGSQL.<port>`) when the URL's host is a
    /// directory, as libpq reads it; `None` for TCP.
    pub socket: Option<std::path::PathBuf>,
    /// Every server the URL lists (libpq's `host=a,b port=1,2`), tried in order; `host`, `port`
    /// and `socket` are the first.
    pub endpoints: Vec<Endpoint>,
    /// `target_session_attrs = read-write`: skip servers that are read-only (a standby).
    pub read_write: bool,
    pub user: String,
    pub password: Option<Vec<u8>>,
    pub dbname: String,
    pub tls: TlsSettings,
    /// How long the server may stay silent (connect, authenticate, stream) before the
    /// connection counts as dead.
    pub timeout: std::time::Duration,
}

/// One server of the URL's host list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub socket: Option<std::path::PathBuf>,
}

impl ConnParams {
    pub fn from_url(url: &PgUrl, timeout: std::time::Duration) -> Result<Self, SourceError> {
        use tokio_postgres::config::{Host, TargetSessionAttrs};
        let cfg = &url.config;
        let ports = cfg.get_ports();
        // As libpq: one port for every host, or one per host.
        let port_of = |i: usize| ports.get(if ports.len() == 1 { 0 } else { i }).copied().unwrap_or(5432);
        let mut endpoints: Vec<Endpoint> = cfg
            .get_hosts()
            .iter()
            .enumerate()
            .map(|(i, h)| match h {
                Host::Tcp(h) => Endpoint { host: h.clone(), port: port_of(i), socket: None },
                Host::Unix(dir) => Endpoint {
                    host: dir.display().to_string(),
                    port: port_of(i),
                    socket: Some(dir.join(format!(".s.PGSQL.{}", port_of(i)))),
                },
            })
            .collect();
        if endpoints.is_empty() {
            endpoints.push(Endpoint { host: "localhost".into(), port: port_of(0), socket: None });
        }
        let Endpoint { host, port, socket } = endpoints[0].clone();
        let user = cfg.get_user().map(str::to_string).ok_or_else(|| {
            SourceError::Fatal("source.url has no user name (postgres://USER:password@host/db)".into())
        })?;
        Ok(Self {
            host,
            port,
            socket,
            endpoints,
            read_write: cfg.get_target_session_attrs() == TargetSessionAttrs::ReadWrite,
            dbname: cfg.get_dbname().map(str::to_string).unwrap_or_else(|| user.clone()),
            user,
            password: cfg.get_password().map(<[u8]>::to_vec),
            tls: url.tls.clone(),
            timeout,
        })
    }
}

/// A server error, with its SQLSTATE so callers can tell transient from definite.
#[derive(Debug, Clone)]
pub struct ServerError {
    pub code: String,
    pub message: String,
    pub detail: Option<String>,
    pub hint: Option<String>,
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (SQLSTATE {})", self.message, self.code)?;
        if let Some(d) = &self.detail {
            write!(f, "; {d}")?;
        }
        if let Some(h) = &self.hint {
            write!(f, "; hint: {h}")?;
        }
        Ok(())
    }
}

impl ServerError {
    fn parse(mut body: &[u8]) -> Self {
        let mut e = ServerError { code: String::new(), message: String::new(), detail: None, hint: None };
        while let Some((&kind, rest)) = body.split_first() {
            if kind == 0 {
                break;
            }
            let end = rest.iter().position(|&b| b == 0).unwrap_or(rest.len());
            let value = String::from_utf8_lossy(&rest[..end]).into_owned();
            match kind {
                b'C' => e.code = value,
                b'M' => e.message = value,
                b'D' => e.detail = Some(value),
                b'H' => e.hint = Some(value),
                _ => {}
            }
            body = rest.get(end + 1..).unwrap_or(&[]);
        }
        e
    }

    /// Maps a server error to our split: definite problems a retry cannot fix vs. the rest.
    pub fn into_source_error(self, context: &str) -> SourceError {
        let mut message = self.message;
        if let Some(d) = &self.detail {
            message.push_str("; ");
            message.push_str(d);
        }
        if let Some(h) = &self.hint {
            message.push_str("; hint: ");
            message.push_str(h);
        }
        SourceError::from(ServerFailure {
            context: context.to_string(),
            code_label: "SQLSTATE",
            transient: !sqlstate_is_definite(&self.code),
            code: self.code,
            message,
            fix: None,
        })
    }
}

/// SQLSTATEs a retry cannot fix: authentication, unknown database, syntax and access errors,
/// unsupported features, bad data, and object-not-in-prerequisite-state (e.g. `wal_level`).
pub fn sqlstate_is_definite(code: &str) -> bool {
    ["28", "3D", "42", "0A", "22"].iter().any(|c| code.starts_with(c)) || code == "55000"
}

pub struct ReplicationConn {
    stream: PgStream,
    rbuf: BytesMut,
    wbuf: BytesMut,
    /// The server process serving this connection (from BackendKeyData).
    backend_pid: Option<i32>,
}

/// One backend message: its tag and body (without the length word).
pub struct BackendMessage {
    pub tag: u8,
    pub body: Bytes,
}

fn io_err(context: &str, e: std::io::Error) -> SourceError {
    SourceError::Transient(format!("{context}: {e}"))
}

/// Keepalive probes and a bound on unacknowledged writes, so a peer that vanishes without a FIN
/// or RST (a dead host, a dropped route) breaks the connection within about `timeout` even
/// while cdcd is only writing status updates.
pub fn bound_dead_peer(stream: &TcpStream, timeout: std::time::Duration) {
    let sock = socket2::SockRef::from(stream);
    let probe = (timeout / 6).max(std::time::Duration::from_secs(1));
    let keepalive = socket2::TcpKeepalive::new().with_time(probe).with_interval(probe).with_retries(3);
    if let Err(e) = sock.set_tcp_keepalive(&keepalive) {
        tracing::warn!("cannot enable TCP keepalive on the replication connection: {e}");
    }
    if let Err(e) = sock.set_tcp_user_timeout(Some(timeout)) {
        tracing::warn!("cannot set TCP_USER_TIMEOUT on the replication connection: {e}");
    }
}

impl ReplicationConn {
    /// Opens a replication connection; the whole handshake is bounded by `p.timeout`.
    /// Connects to the first server of the URL's list that answers (and, with
    /// `target_session_attrs = read-write`, takes writes), as libpq does.
    pub async fn connect(p: &ConnParams, application_name: &str) -> Result<Self, SourceError> {
        if p.endpoints.len() <= 1 && !p.read_write {
            return Self::connect_one(p, application_name).await;
        }
        let mut failures = Vec::new();
        for e in &p.endpoints {
            let one = ConnParams { host: e.host.clone(), port: e.port, socket: e.socket.clone(), ..p.clone() };
            match Self::connect_one(&one, application_name).await {
                Ok(mut conn) if p.read_write => match conn.simple_query("SHOW transaction_read_only").await {
                    Ok(rows) if rows.first().and_then(|r| r.first().cloned().flatten()).as_deref() == Some("off") => {
                        return Ok(conn)
                    }
                    Ok(_) => failures.push(format!("{}:{} is read-only", e.host, e.port)),
                    Err(err) => failures.push(format!("{}:{}: {err}", e.host, e.port)),
                },
                Ok(conn) => return Ok(conn),
                // A definite error (a bad password, pg_hba.conf, a refused TLS certificate) holds
                // for every server of the list.
                Err(err) if !err.is_transient() => return Err(err),
                Err(err) => failures.push(format!("{}:{}: {err}", e.host, e.port)),
            }
        }
        Err(SourceError::Transient(format!(
            "no server of source.url's list {}: {}",
            if p.read_write { "accepts writes (target_session_attrs = read-write)" } else { "answered" },
            failures.join("; ")
        )))
    }

    async fn connect_one(p: &ConnParams, application_name: &str) -> Result<Self, SourceError> {
        let addr = match &p.socket {
            Some(path) => path.display().to_string(),
            None => format!("{}:{}", p.host, p.port),
        };
        tokio::time::timeout(p.timeout, Self::handshake(p, &addr, application_name)).await.unwrap_or_else(|_| {
            Err(SourceError::Transient(format!(
                "PostgreSQL at {addr} did not complete the connection handshake within {} s",
                p.timeout.as_secs()
            )))
        })
    }

    /// The PostgreSQL process serving this connection.
    pub fn backend_pid(&self) -> Option<i32> {
        self.backend_pid
    }

    /// Whether and how this connection is encrypted.
    pub fn encryption(&self, tls: &TlsSettings) -> String {
        match (&self.stream, self.stream.ssl()) {
            (PgStream::Unix(_), _) => LOCAL_SOCKET.into(),
            (_, Some(ssl)) => describe_session(ssl, tls),
            (_, None) => "not encrypted".into(),
        }
    }

    async fn handshake(p: &ConnParams, addr: &str, application_name: &str) -> Result<Self, SourceError> {
        let cannot = |e: std::io::Error| {
            SourceError::Transient(format!(
                "cannot connect to PostgreSQL at {addr}: {e} (is the server running and listening on that address?)"
            ))
        };
        let stream = match &p.socket {
            // Like libpq, no TLS over a Unix socket: the bytes never leave this host.
            Some(path) => PgStream::Unix(UnixStream::connect(path).await.map_err(cannot)?),
            None => {
                let stream = TcpStream::connect(addr).await.map_err(cannot)?;
                let _ = stream.set_nodelay(true);
                bound_dead_peer(&stream, p.timeout);
                negotiate_tls(stream, p).await?
            }
        };
        let mut conn = Self {
            stream,
            rbuf: BytesMut::with_capacity(1 << 16),
            wbuf: BytesMut::with_capacity(1024),
            backend_pid: None,
        };
        let params = [
            ("user", p.user.as_str()),
            ("database", p.dbname.as_str()),
            ("replication", "database"),
            ("application_name", application_name),
            ("options", SESSION_OPTIONS),
            ("client_encoding", "UTF8"),
        ];
        frontend::startup_message(params.iter().copied(), &mut conn.wbuf).map_err(|e| io_err("startup", e))?;
        conn.flush().await?;
        conn.authenticate(p).await?;
        // Drain ParameterStatus / BackendKeyData up to ReadyForQuery.
        loop {
            let m = conn.read_message().await?;
            match m.tag {
                b'Z' => break,
                b'K' if m.body.len() >= 4 => {
                    conn.backend_pid = Some(i32::from_be_bytes([m.body[0], m.body[1], m.body[2], m.body[3]]))
                }
                b'E' => return Err(ServerError::parse(&m.body).into_source_error("replication connection")),
                _ => {}
            }
        }
        Ok(conn)
    }

    async fn authenticate(&mut self, p: &ConnParams) -> Result<(), SourceError> {
        let need_password = || {
            SourceError::Fatal(format!("PostgreSQL asks for a password for user `{}` but source.url has none", p.user))
        };
        loop {
            let m = self.read_message().await?;
            match m.tag {
                b'R' => {}
                b'E' => {
                    let err = ServerError::parse(&m.body);
                    let ctx = if err.code == "28000" && err.message.contains("no encryption") {
                        "authentication (the server accepts this user only over TLS, `hostssl` in pg_hba.conf: set sslmode=require, or verify-full with sslrootcert, in source.url)"
                    } else if err.code == "28000" && err.message.contains("replication") {
                        "authentication (pg_hba.conf needs a `host replication` line for this user, or use a `host all` rule on PostgreSQL 10+ with database replication)"
                    } else {
                        "authentication"
                    };
                    return Err(err.into_source_error(ctx));
                }
                other => {
                    return Err(SourceError::Transient(format!(
                        "unexpected message {:?} during authentication",
                        other as char
                    )))
                }
            }
            let mut body = m.body;
            if body.len() < 4 {
                return Err(SourceError::Transient("short authentication message".into()));
            }
            match body.get_i32() {
                0 => return Ok(()),
                3 => {
                    let pw = p.password.as_deref().ok_or_else(need_password)?;
                    let mut z = pw.to_vec();
                    z.push(0);
                    frontend::password_message(&z, &mut self.wbuf).map_err(|e| io_err("auth", e))?;
                    self.flush().await?;
                }
                5 => {
                    let pw = p.password.as_deref().ok_or_else(need_password)?;
                    if body.len() < 4 {
                        return Err(SourceError::Transient("short MD5 salt".into()));
                    }
                    let salt = [body[0], body[1], body[2], body[3]];
                    let hashed = postgres_protocol::authentication::md5_hash(p.user.as_bytes(), pw, salt);
                    let mut z = hashed.into_bytes();
                    z.push(0);
                    frontend::password_message(&z, &mut self.wbuf).map_err(|e| io_err("auth", e))?;
                    self.flush().await?;
                }
                10 => {
                    let pw = p.password.as_deref().ok_or_else(need_password)?;
                    let offers = |name: &str| body.split(|&b| b == 0).any(|m| m == name.as_bytes());
                    // Over TLS, bind the SCRAM exchange to the server's certificate when the
                    // server offers it, as libpq does by default (channel_binding=prefer).
                    let binding = self.stream.ssl().and_then(tls_server_end_point);
                    let (mechanism, binding) = match binding {
                        Some(b) if offers(SCRAM_SHA_256_PLUS) => (SCRAM_SHA_256_PLUS, ChannelBinding::tls_server_end_point(b)),
                        Some(_) => (SCRAM_SHA_256, ChannelBinding::unrequested()),
                        None => (SCRAM_SHA_256, ChannelBinding::unsupported()),
                    };
                    if !offers(SCRAM_SHA_256) && !offers(mechanism) {
                        return Err(SourceError::Fatal("server offers no SASL mechanism cdcd supports (SCRAM-SHA-256)".into()));
                    }
                    let mut scram = ScramSha256::new(pw, binding);
                    frontend::sasl_initial_response(mechanism, scram.message(), &mut self.wbuf).map_err(|e| io_err("auth", e))?;
                    self.flush().await?;
                    let cont = self.expect_auth(11).await?;
                    scram.update(&cont).map_err(|e| SourceError::Fatal(format!("SCRAM authentication failed: {e}")))?;
                    frontend::sasl_response(scram.message(), &mut self.wbuf).map_err(|e| io_err("auth", e))?;
                    self.flush().await?;
                    let fin = self.expect_auth(12).await?;
                    scram.finish(&fin).map_err(|e| SourceError::Fatal(format!("SCRAM authentication failed: {e}")))?;
                }
                code => return Err(SourceError::Fatal(format!("unsupported authentication method (code {code}); use scram-sha-256, md5, password or trust in pg_hba.conf"))),
            }
        }
    }

    async fn expect_auth(&mut self, want: i32) -> Result<Bytes, SourceError> {
        let m = self.read_message().await?;
        if m.tag == b'E' {
            return Err(ServerError::parse(&m.body).into_source_error("authentication"));
        }
        let mut body = m.body;
        if m.tag != b'R' || body.len() < 4 || body.get_i32() != want {
            return Err(SourceError::Transient("unexpected message during SCRAM exchange".into()));
        }
        Ok(body)
    }

    /// Runs one simple-protocol statement and returns its rows as text.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<Vec<Option<String>>>, SourceError> {
        frontend::query(sql, &mut self.wbuf).map_err(|e| io_err("query", e))?;
        self.flush().await?;
        let mut rows = Vec::new();
        let mut error = None;
        loop {
            let m = self.read_message().await?;
            match m.tag {
                b'D' => rows.push(parse_data_row(&m.body)?),
                b'E' => error = Some(ServerError::parse(&m.body)),
                b'Z' => break,
                _ => {}
            }
        }
        match error {
            Some(e) => Err(e.into_source_error(sql.split_whitespace().take(3).collect::<Vec<_>>().join(" ").as_str())),
            None => Ok(rows),
        }
    }

    /// Sends `START_REPLICATION` and waits for CopyBothResponse. Returns the raw stream halves.
    pub async fn start_replication(mut self, sql: &str) -> Result<(ReplicationReader, ReplicationWriter), SourceError> {
        frontend::query(sql, &mut self.wbuf).map_err(|e| io_err("START_REPLICATION", e))?;
        self.flush().await?;
        loop {
            let m = self.read_message().await?;
            match m.tag {
                b'W' => break,
                b'E' => return Err(ServerError::parse(&m.body).into_source_error("START_REPLICATION")),
                b'N' | b'S' => {}
                other => {
                    return Err(SourceError::Transient(format!(
                        "unexpected message {:?} after START_REPLICATION",
                        other as char
                    )))
                }
            }
        }
        let pace = !matches!(self.stream, PgStream::Unix(_));
        let (read, write) = tokio::io::split(self.stream);
        Ok((ReplicationReader { read, rbuf: self.rbuf, pace, drained_backlog: false }, write))
    }

    async fn flush(&mut self) -> Result<(), SourceError> {
        self.stream.write_all(&self.wbuf).await.map_err(|e| io_err("writing to PostgreSQL", e))?;
        self.wbuf.clear();
        Ok(())
    }

    async fn read_message(&mut self) -> Result<BackendMessage, SourceError> {
        read_message(&mut self.stream, &mut self.rbuf).await
    }
}

/// Asks for TLS (SSLRequest) unless sslmode=disable, and wraps the socket when the server
/// agrees. A server that declines is a plaintext connection under prefer and an error above it.
async fn negotiate_tls(mut stream: TcpStream, p: &ConnParams) -> Result<PgStream, SourceError> {
    if p.tls.mode == SslMode::Disable {
        return Ok(PgStream::Plain(stream));
    }
    let mut buf = BytesMut::new();
    frontend::ssl_request(&mut buf);
    stream.write_all(&buf).await.map_err(|e| io_err("writing to PostgreSQL", e))?;
    let answer = stream.read_u8().await.map_err(|e| io_err("reading the answer to SSLRequest", e))?;
    match answer {
        b'S' => {}
        b'N' if p.tls.mode.requires_tls() => {
            return Err(SourceError::Fatal(format!(
                "PostgreSQL at {}:{} does not accept TLS but source.url has sslmode={}: enable ssl in postgresql.conf, or lower sslmode (not recommended outside a trusted network)",
                p.host,
                p.port,
                p.tls.mode.as_str()
            )))
        }
        b'N' => {
            tracing::warn!(host = %p.host, port = p.port, "PostgreSQL does not offer TLS; the replication connection is not encrypted (sslmode=prefer). Set sslmode=require to refuse plaintext");
            return Ok(PgStream::Plain(stream));
        }
        other => return Err(SourceError::Transient(format!("unexpected answer {other:#x} to SSLRequest"))),
    }
    let setup = |e: String| SourceError::Fatal(format!("source.url TLS settings: {e}"));
    let connector = p.tls.connector().map_err(setup)?;
    let mut config = connector.configure().map_err(|e| setup(e.to_string()))?;
    config.set_verify_hostname(p.tls.verify_host());
    let ssl = config.into_ssl(&p.host).map_err(|e| setup(e.to_string()))?;
    let mut tls = tokio_openssl::SslStream::new(ssl, stream).map_err(|e| setup(e.to_string()))?;
    if let Err(e) = std::pin::Pin::new(&mut tls).connect().await {
        let verify = tls.ssl().verify_result();
        return Err(match e.ssl_error() {
            Some(_) if verify != openssl::x509::X509VerifyResult::OK => SourceError::Fatal(format!(
                "TLS handshake with PostgreSQL at {}:{} failed: certificate verify failed ({}); {}",
                p.host,
                p.port,
                verify.error_string(),
                verify_fix(verify.error_string(), "sslrootcert", "sslmode=verify-ca")
            )),
            _ => SourceError::Transient(format!("TLS handshake with PostgreSQL at {}:{} failed: {e}", p.host, p.port)),
        });
    }
    Ok(PgStream::Tls(Box::new(tls)))
}

fn parse_data_row(body: &[u8]) -> Result<Vec<Option<String>>, SourceError> {
    let bad = || SourceError::Transient("malformed DataRow".into());
    let mut b = body;
    if b.len() < 2 {
        return Err(bad());
    }
    let n = b.get_i16();
    let mut row = Vec::with_capacity(n.max(0) as usize);
    for _ in 0..n {
        if b.len() < 4 {
            return Err(bad());
        }
        let len = b.get_i32();
        if len < 0 {
            row.push(None);
        } else {
            let len = len as usize;
            if b.len() < len {
                return Err(bad());
            }
            row.push(Some(String::from_utf8_lossy(&b[..len]).into_owned()));
            b.advance(len);
        }
    }
    Ok(row)
}

/// The least room offered to each read of the server's stream.
const READ_SIZE: usize = 1 << 16;

/// Reads one framed backend message, buffering as needed.
async fn read_message<R: AsyncReadExt + Unpin>(r: &mut R, buf: &mut BytesMut) -> Result<BackendMessage, SourceError> {
    loop {
        if let Some(m) = buffered_message(buf)? {
            return Ok(m);
        }
        read_more(r, buf).await?;
    }
}

/// One read of whatever the server has sent into `buf`; returns how many bytes came. A closed
/// connection is an error.
async fn read_more<R: AsyncReadExt + Unpin>(r: &mut R, buf: &mut BytesMut) -> Result<usize, SourceError> {
    let n = r.read_buf(buf).await.map_err(|e| io_err("reading from PostgreSQL", e))?;
    if n == 0 {
        return Err(SourceError::Transient("PostgreSQL closed the replication connection".into()));
    }
    Ok(n)
}

/// Takes one complete message off the front of `buf`, if there is one; otherwise reserves room
/// for the rest of it and at least [`READ_SIZE`] more, so the next read takes whatever the
/// server has sent (a backlog read a few hundred bytes at a time costs a system call per row).
fn buffered_message(buf: &mut BytesMut) -> Result<Option<BackendMessage>, SourceError> {
    if buf.len() < 5 {
        buf.reserve(READ_SIZE);
        return Ok(None);
    }
    let len = i32::from_be_bytes([buf[1], buf[2], buf[3], buf[4]]);
    if len < 4 {
        return Err(SourceError::Transient(format!("malformed message length {len} from PostgreSQL")));
    }
    let total = 1 + len as usize;
    if buf.len() < total {
        buf.reserve(total - buf.len() + READ_SIZE);
        return Ok(None);
    }
    let mut frame = buf.split_to(total);
    let tag = frame[0];
    frame.advance(5);
    Ok(Some(BackendMessage { tag, body: frame.freeze() }))
}

/// A read at least this large that still left room in the buffer emptied a backlog the server
/// had queued: the reader is behind, not following a live stream.
const BACKLOG_READ: usize = READ_SIZE / 2;

/// How long a paced reader lets a backlog gather before reading again.
const BACKLOG_PACE: std::time::Duration = std::time::Duration::from_millis(1);

/// The read half of a replication stream in CopyBoth mode.
pub struct ReplicationReader {
    read: ReadHalf<PgStream>,
    rbuf: BytesMut,
    /// Whether reads that empty a backlog pause before the next one (TCP, not a Unix socket).
    ///
    /// A walsender sends every change with its own system call. A reader that wakes for each
    /// one makes each of those calls pay for a wakeup and a TCP segment of its own: over
    /// loopback on 2 cores, a client that only counts messages takes a backlog at 189k rows/s
    /// that way, and at 467k rows/s when it pauses 1 ms each time it has emptied the socket
    /// (`examples/walsender_floor.rs`). A Unix socket holds only a few hundred changes in
    /// flight, so a pause there stalls the walsender instead (1 ms halves it).
    pace: bool,
    drained_backlog: bool,
}

impl ReplicationReader {
    /// The next CopyData payload. Errors and the end of the stream are reported as errors.
    /// Cancel-safe: a partly read message stays in the buffer.
    pub async fn next_copy_data(&mut self) -> Result<Bytes, SourceError> {
        loop {
            if let Some(data) = self.buffered_copy_data()? {
                return Ok(data);
            }
            // Only while behind: a live stream's reads are far smaller, and keep their latency.
            if std::mem::take(&mut self.drained_backlog) && self.pace {
                tokio::time::sleep(BACKLOG_PACE).await;
            }
            let room = self.rbuf.capacity() - self.rbuf.len();
            let n = read_more(&mut self.read, &mut self.rbuf).await?;
            self.drained_backlog = n >= BACKLOG_READ && n < room;
        }
    }

    /// The next CopyData payload if it has already arrived, without waiting: a backlog arrives
    /// in reads of many messages, and taking them straight from the buffer spares each one a
    /// trip through the streaming loop's `select!` (timers, shutdown, status writer).
    pub fn buffered_copy_data(&mut self) -> Result<Option<Bytes>, SourceError> {
        while let Some(m) = buffered_message(&mut self.rbuf)? {
            if let Some(data) = copy_data(m)? {
                return Ok(Some(data));
            }
        }
        Ok(None)
    }
}

/// The payload of a CopyData message; `None` for messages to skip (notices, parameter changes).
fn copy_data(m: BackendMessage) -> Result<Option<Bytes>, SourceError> {
    match m.tag {
        b'd' => Ok(Some(m.body)),
        b'E' => Err(ServerError::parse(&m.body).into_source_error("replication stream")),
        b'c' => Err(SourceError::Transient("PostgreSQL ended the replication stream (CopyDone)".into())),
        _ => Ok(None),
    }
}
