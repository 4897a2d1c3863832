//! systemd's service notification protocol (`Type=notify`), spoken directly: one datagram per
//! message to `$NOTIFY_SOCKET` (a path, or `@name` in the abstract namespace). Outside systemd
//! (no socket) every call is a no-op.
//!
//! [`supervise`] sends `READY=1` once every connector is snapshotting or streaming, `STATUS=`
//! with a one-line summary whenever it changes, and `WATCHDOG=1` at half the `WatchdogSec=`
//! interval, but only while no connector's loop is stuck: a wedged connector stops the pings,
//! so systemd restarts the service. On a stop request the runner sends `STOPPING=1` and extends
//! the stop timeout while it drains.

use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use crate::core::status::Registry;

pub struct Notifier {
    target: Option<(UnixDatagram, SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// From `NOTIFY_SOCKET` and `WATCHDOG_USEC` (honoured only if `WATCHDOG_PID` is unset or ours).
    pub fn from_env() -> Notifier {
        let target = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let path = path.to_string_lossy().into_owned();
            let addr = match path.strip_prefix('@') {
                Some(name) => {
                    use std::os::linux::net::SocketAddrExt;
                    SocketAddr::from_abstract_name(name.as_bytes())
                }
                None => SocketAddr::from_pathname(&path),
            };
            match (UnixDatagram::unbound(), addr) {
                (Ok(sock), Ok(addr)) => Some((sock, addr)),
                (Err(e), _) | (_, Err(e)) => {
                    tracing::warn!(socket = %path, "cannot use NOTIFY_SOCKET: {e}; systemd will not hear from cdcd");
                    None
                }
            }
        });
        let ours = std::env::var("WATCHDOG_PID").map_or(true, |p| p.trim() == std::process::id().to_string());
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|us| *us > 0 && ours)
            .map(Duration::from_micros);
        Notifier { target, watchdog }
    }

    pub fn is_active(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one notification (`KEY=value` lines). Failures are logged, never fatal.
    pub fn send(&self, message: &str) {
        if let Some((sock, addr)) = &self.target {
            if let Err(e) = sock.send_to_addr(message.as_bytes(), addr) {
                tracing::debug!("systemd notification `{message}` not sent: {e}");
            }
        }
    }

    /// Tells systemd the service is ready (after start-up or a reload), with a one-line status.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    /// Tells systemd a reload began (`Type=notify-reload` wants the monotonic time with it);
    /// the runner sends `READY=1` when it is applied.
    pub fn reloading(&self) {
        let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
        // SAFETY: clock_gettime only writes the timespec we pass, which lives for the call.
        let usec = match unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) } {
            0 => ts.tv_sec as u64 * 1_000_000 + ts.tv_nsec as u64 / 1_000,
            _ => 0,
        };
        self.send(&format!("RELOADING=1\nMONOTONIC_USEC={usec}\nSTATUS=reloading the configuration"));
    }

    /// Tells systemd the service is stopping and may take up to `drain` to do so.
    pub fn stopping(&self, drain: Duration) {
        self.send(&format!(
            "STOPPING=1\nSTATUS=draining to the broker and writing checkpoints\nEXTEND_TIMEOUT_USEC={}",
            drain.as_micros()
        ));
    }
}

/// Reports readiness, status and watchdog pings until `stop` turns true.
pub async fn supervise(notifier: Arc<Notifier>, registry: Arc<Registry>, mut stop: watch::Receiver<bool>) {
    if !notifier.is_active() {
        return;
    }
    let ping_every = notifier.watchdog.map(|w| w / 2);
    let stuck_bound = notifier.watchdog.unwrap_or(Duration::from_secs(60));
    let mut tick = tokio::time::interval(ping_every.unwrap_or(Duration::from_secs(1)).min(Duration::from_secs(1)));
    let mut last_ping = tokio::time::Instant::now();
    let (mut ready_sent, mut last_status, mut warned) = (false, String::new(), false);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        if *stop.borrow() {
            return;
        }
        let status = registry.summary();
        if !ready_sent && registry.all_ready() {
            notifier.ready(&status);
            ready_sent = true;
            last_status = status;
        } else if status != last_status {
            notifier.send(&format!("STATUS={status}"));
            last_status = status;
        }
        if let Some(every) = ping_every {
            if last_ping.elapsed() >= every {
                let stuck = registry.stuck(stuck_bound);
                if stuck.is_empty() {
                    notifier.send("WATCHDOG=1");
                    last_ping = tokio::time::Instant::now();
                    warned = false;
                } else if !warned {
                    tracing::error!(connectors = ?stuck, "connector loop stuck for over {} s: withholding the watchdog ping so systemd restarts cdcd", stuck_bound.as_secs());
                    warned = true;
                }
            }
        }
    }
}
