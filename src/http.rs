//! The process's one HTTP listener (`cdcd run --http ADDR`, or `CDCD_HTTP`):
//!
//! - `GET /health`: 200 while the process runs (liveness).
//! - `GET /ready`: 200 when every connector is snapshotting or streaming, else 503 (readiness).
//! - `GET /status`: JSON, one object per connector (state, events in flight, lag).
//! - `GET /metrics`: Prometheus text format ([`crate::metrics`]).
//!
//! Plain HTTP/1.1 through hyper, in its own tasks: nothing here can block a connector, and a
//! slow client is cut off after 10 s without sending its headers.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::Bytes;
use hyper::{Method, Request, Response, StatusCode};
use tokio::sync::watch;

use crate::core::status::Registry;
use crate::metrics::Metrics;

pub struct Endpoints {
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
}

/// Binds `addr` (so a taken port fails the start, clearly) and serves until `stop`.
pub async fn serve(addr: SocketAddr, endpoints: Arc<Endpoints>, stop: watch::Receiver<bool>) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    tracing::info!(%addr, "HTTP listener: /health /ready /status /metrics");
    tokio::spawn(accept_loop(listener, endpoints, stop));
    Ok(())
}

async fn accept_loop(listener: tokio::net::TcpListener, endpoints: Arc<Endpoints>, mut stop: watch::Receiver<bool>) {
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!("HTTP accept failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let endpoints = endpoints.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let endpoints = endpoints.clone();
                async move { Ok::<_, Infallible>(respond(&endpoints, &req)) }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(io, service);
            if let Err(e) = conn.await {
                tracing::debug!("HTTP connection ended: {e}");
            }
        });
    }
}

fn respond<B>(endpoints: &Endpoints, req: &Request<B>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match req.uri().path() {
        "/health" => text(StatusCode::OK, "ok\n"),
        "/ready" => {
            let summary = endpoints.registry.summary();
            if endpoints.registry.all_ready() {
                text(StatusCode::OK, &format!("ready: {summary}\n"))
            } else {
                text(StatusCode::SERVICE_UNAVAILABLE, &format!("not ready: {summary}\n"))
            }
        }
        "/status" => {
            let connectors: Vec<serde_json::Value> = endpoints
                .registry
                .connectors()
                .into_iter()
                .map(|(name, status)| {
                    let state = status.state();
                    let backlog = status.backlog();
                    let mut o = serde_json::json!({
                        "connector": name,
                        "state": state.as_str(),
                        "role": state.role(),
                        "ready": state.is_ready(),
                        "source_lag_bytes": backlog.map(|b| b.behind_bytes),
                        "wal_retained_bytes": backlog.and_then(|b| b.retained_bytes),
                        "snapshot_rows_estimated": status.snapshot_estimate(),
                    });
                    if let (Some(live), Some(map)) = (endpoints.metrics.live(&name), o.as_object_mut()) {
                        map.extend(live);
                    }
                    o
                })
                .collect();
            let body = serde_json::json!({"ready": endpoints.registry.all_ready(), "connectors": connectors});
            let mut r = Response::new(Full::new(Bytes::from(format!("{body}\n"))));
            r.headers_mut()
                .insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("application/json"));
            r
        }
        "/metrics" => {
            let mut r = Response::new(Full::new(Bytes::from(endpoints.metrics.render())));
            r.headers_mut().insert(
                hyper::header::CONTENT_TYPE,
                hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            );
            r
        }
        _ => text(StatusCode::NOT_FOUND, "not found; try /health, /ready, /status or /metrics\n"),
    }
}

/// GET `path` from a listener at `addr` (an unspecified IP is asked on loopback): (status, body).
/// Blocking, for the `cdcd health` command.
pub fn probe(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() {
            std::net::Ipv4Addr::LOCALHOST.into()
        } else {
            std::net::Ipv6Addr::LOCALHOST.into()
        });
    }
    let timeout = std::time::Duration::from_secs(3);
    let mut s = std::net::TcpStream::connect_timeout(&addr, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")?;
    let mut text = String::new();
    s.take(64 * 1024).read_to_string(&mut text)?;
    let code = text.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((code, body))
}

fn text(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.to_string())));
    *r.status_mut() = status;
    r
}
