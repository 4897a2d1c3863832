//! A TCP proxy for fault injection on loopback. It forwards each connection to the server;
//! `freeze()` makes every connection open at that moment go silent: nothing more is forwarded in
//! either direction, and nothing is closed (no FIN, no RST), which is what a dead host or a
//! dropped route looks like from either end. Connections opened later are forwarded normally.
//! `retarget()` sends new connections to another server: an endpoint that moves on failover, as
//! a managed service's DNS name does.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

pub struct Proxy {
    pub port: u16,
    /// Connections with an id below this are frozen.
    frozen_below: Arc<AtomicU64>,
    next_id: Arc<AtomicU64>,
    upstream: Arc<Mutex<String>>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream` (`host:port`).
    pub async fn start(upstream: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let port = listener.local_addr().expect("proxy address").port();
        let frozen_below = Arc::new(AtomicU64::new(0));
        let next_id = Arc::new(AtomicU64::new(0));
        let (frozen, ids) = (frozen_below.clone(), next_id.clone());
        let upstream = Arc::new(Mutex::new(upstream));
        let target = upstream.clone();
        let accept = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let id = ids.fetch_add(1, Ordering::SeqCst);
                let to = target.lock().unwrap_or_else(|e| e.into_inner()).clone();
                let Ok(server) = TcpStream::connect(&to).await else { continue };
                let (cr, cw) = client.into_split();
                let (sr, sw) = server.into_split();
                tokio::spawn(pump(cr, sw, id, frozen.clone()));
                tokio::spawn(pump(sr, cw, id, frozen.clone()));
            }
        });
        Proxy { port, frozen_below, next_id, upstream, accept }
    }

    /// Forwards connections opened from now on to `upstream`; open ones stay where they are.
    pub fn retarget(&self, upstream: String) {
        *self.upstream.lock().unwrap_or_else(|e| e.into_inner()) = upstream;
    }

    /// Silences every connection open now, in both directions, without closing any.
    pub fn freeze(&self) {
        self.frozen_below.store(self.next_id.load(Ordering::SeqCst), Ordering::SeqCst);
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.next_id.load(Ordering::SeqCst)
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    id: u64,
    frozen_below: Arc<AtomicU64>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if id < frozen_below.load(Ordering::SeqCst) {
            // Swallow everything from now on and keep both sockets open: a silent path.
            loop {
                if matches!(from.read(&mut buf).await, Ok(0) | Err(_)) {
                    std::future::pending::<()>().await;
                }
            }
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}
