//! Prometheus metrics, per connector (label `connector`), through the `prometheus-client` crate.
//!
//! Counters are bumped where things happen (the emitter counts events, bytes and snapshot
//! rows; the pipeline counts reconnects). Gauges that describe a moment (lag, events in flight,
//! checkpoint age, state, delivery errors seen by the tracker) are read from the live objects
//! when `/metrics` is scraped, so they are never stale.
//!
//! `cdcd_source_lag_seconds` is now minus the source commit time of the oldest transaction not
//! yet acknowledged by the broker, and 0 when everything read has been acknowledged: it rises
//! while the broker lags and returns to 0 when the connector is idle and caught up.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::core::acks::AckTracker;
use crate::core::envelope::{now_us, Op};
use crate::core::status::{ConnectorStatus, State};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ConnectorLabel {
    connector: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct EventLabels {
    connector: String,
    table: String,
    op: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabels {
    connector: String,
    state: String,
}

const STATES: [State; 7] = [
    State::Starting,
    State::Standby,
    State::Snapshotting,
    State::Streaming,
    State::Retrying,
    State::Stopped,
    State::Failed,
];

/// What `/metrics` reads from a live connector at scrape time.
struct Probe {
    name: String,
    tracker: Arc<AckTracker>,
    status: Arc<ConnectorStatus>,
    checkpoint_age: Arc<dyn Fn() -> f64 + Send + Sync>,
}

pub struct Metrics {
    registry: Registry,
    events: Family<EventLabels, Counter>,
    sent_bytes: Family<ConnectorLabel, Counter>,
    snapshot_rows: Family<ConnectorLabel, Counter>,
    reconnects: Family<ConnectorLabel, Counter>,
    slots_recreated: Family<ConnectorLabel, Counter>,
    delivery_errors: Family<ConnectorLabel, Gauge>,
    lag: Family<ConnectorLabel, Gauge<f64, AtomicU64>>,
    lag_bytes: Family<ConnectorLabel, Gauge>,
    retained: Family<ConnectorLabel, Gauge>,
    snapshot_estimate: Family<ConnectorLabel, Gauge>,
    in_flight: Family<ConnectorLabel, Gauge>,
    checkpoint_age: Family<ConnectorLabel, Gauge<f64, AtomicU64>>,
    state: Family<StateLabels, Gauge>,
    active: Family<ConnectorLabel, Gauge>,
    probes: Mutex<Vec<Probe>>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("cdcd");
        let m = Metrics {
            events: Family::default(),
            sent_bytes: Family::default(),
            snapshot_rows: Family::default(),
            reconnects: Family::default(),
            slots_recreated: Family::default(),
            delivery_errors: Family::default(),
            lag: Family::default(),
            lag_bytes: Family::default(),
            retained: Family::default(),
            snapshot_estimate: Family::default(),
            in_flight: Family::default(),
            checkpoint_age: Family::default(),
            state: Family::default(),
            active: Family::default(),
            probes: Mutex::new(Vec::new()),
            registry: Registry::default(),
        };
        registry.register("events", "Change events sent to the sink, by table and op", m.events.clone());
        registry.register("sent_bytes", "Bytes of keys and values sent to the sink", m.sent_bytes.clone());
        registry.register("snapshot_rows", "Rows read by snapshots", m.snapshot_rows.clone());
        registry.register("reconnects", "Source sessions restarted after a transient error", m.reconnects.clone());
        registry.register(
            "slots_recreated",
            "Replication slots lost and made anew with on_slot_lost = \"resnapshot\" (each followed by a re-snapshot of every table)",
            m.slots_recreated.clone(),
        );
        registry.register(
            "delivery_errors",
            "Events the broker failed to take for good (the connector stops at the first)",
            m.delivery_errors.clone(),
        );
        registry.register(
            "source_lag_seconds",
            "Now minus the commit time of the oldest transaction not yet acknowledged by the broker (0 when caught up)",
            m.lag.clone(),
        );
        registry.register(
            "source_lag_bytes",
            "Log bytes the server wrote after the connector's confirmed position (PostgreSQL WAL end minus the slot's confirmed_flush_lsn; MySQL binlog end minus the checkpoint), read every 10 s",
            m.lag_bytes.clone(),
        );
        registry.register(
            "wal_retained_bytes",
            "WAL the server keeps for this connector's replication slot (WAL end minus restart_lsn); PostgreSQL only",
            m.retained.clone(),
        );
        registry.register(
            "snapshot_rows_estimated",
            "Rows the current or last snapshot is expected to read (the server's table statistics)",
            m.snapshot_estimate.clone(),
        );
        registry.register(
            "events_in_flight",
            "Events handed to the sink and not yet acknowledged",
            m.in_flight.clone(),
        );
        registry.register(
            "connector_active",
            "1 in the process that runs the connector; 0 in a standby (Kafka checkpoint store) or once stopped",
            m.active.clone(),
        );
        registry.register(
            "checkpoint_age_seconds",
            "Seconds the durable checkpoint has been behind the confirmed position (0 when current)",
            m.checkpoint_age.clone(),
        );
        registry.register("connector_state", "1 for the connector's current state", m.state.clone());
        Arc::new(Metrics { registry, ..m })
    }

    /// The handle one connector's pipeline and emitter count through.
    pub fn connector(self: &Arc<Self>, name: &str, topic_prefix: &str) -> ConnectorMetrics {
        let label = ConnectorLabel { connector: name.to_string() };
        ConnectorMetrics {
            name: name.to_string(),
            topic_prefix: format!("{topic_prefix}."),
            events: self.events.clone(),
            by_topic: HashMap::new(),
            sent_bytes: self.sent_bytes.get_or_create(&label).clone(),
            snapshot_rows: self.snapshot_rows.get_or_create(&label).clone(),
            reconnects: self.reconnects.get_or_create(&label).clone(),
            slots_recreated: self.slots_recreated.get_or_create(&label).clone(),
            metrics: Some(self.clone()),
        }
    }

    /// Makes a connector's live state visible at scrape time.
    pub fn watch(
        &self,
        name: &str,
        tracker: Arc<AckTracker>,
        status: Arc<ConnectorStatus>,
        checkpoint_age: Arc<dyn Fn() -> f64 + Send + Sync>,
    ) {
        let mut probes = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        probes.retain(|p| p.name != name);
        probes.push(Probe { name: name.to_string(), tracker, status, checkpoint_age });
    }

    /// Stops reporting a connector that was removed from the configuration: its gauges go;
    /// its counters stay (they only ever count what happened).
    pub fn forget(&self, name: &str) {
        self.probes.lock().unwrap_or_else(|e| e.into_inner()).retain(|p| p.name != name);
        let label = ConnectorLabel { connector: name.to_string() };
        for gauge in [&self.delivery_errors, &self.in_flight, &self.lag_bytes, &self.retained, &self.snapshot_estimate]
        {
            gauge.remove(&label);
        }
        self.lag.remove(&label);
        self.checkpoint_age.remove(&label);
        self.active.remove(&label);
        for s in STATES {
            self.state.remove(&StateLabels { connector: name.to_string(), state: s.as_str().to_string() });
        }
    }

    /// The tracker's figures for one connector, for `/status`: events in flight, lag in seconds.
    pub fn live(&self, name: &str) -> Option<serde_json::Map<String, serde_json::Value>> {
        let probes = self.probes.lock().unwrap_or_else(|e| e.into_inner());
        let p = probes.iter().find(|p| p.name == name)?;
        let mut m = serde_json::Map::new();
        m.insert("events_in_flight".into(), p.tracker.in_flight().into());
        m.insert("source_lag_seconds".into(), lag_seconds(&p.tracker, now_us()).into());
        m.insert("delivery_errors".into(), p.tracker.failed_events().into());
        Some(m)
    }

    /// The Prometheus text exposition of every metric, gauges read now.
    pub fn render(&self) -> String {
        let now = now_us();
        for p in self.probes.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            let label = ConnectorLabel { connector: p.name.clone() };
            self.lag.get_or_create(&label).set(lag_seconds(&p.tracker, now));
            self.in_flight.get_or_create(&label).set(p.tracker.in_flight() as i64);
            self.delivery_errors.get_or_create(&label).set(p.tracker.failed_events() as i64);
            self.checkpoint_age.get_or_create(&label).set((p.checkpoint_age)());
            // Unknown now: no series rather than a stale figure.
            let backlog = p.status.backlog();
            match backlog {
                Some(b) => {
                    self.lag_bytes.get_or_create(&label).set(clamp(b.behind_bytes));
                }
                None => {
                    self.lag_bytes.remove(&label);
                }
            }
            match backlog.and_then(|b| b.retained_bytes) {
                Some(r) => {
                    self.retained.get_or_create(&label).set(clamp(r));
                }
                None => {
                    self.retained.remove(&label);
                }
            }
            if let Some(rows) = p.status.snapshot_estimate() {
                self.snapshot_estimate.get_or_create(&label).set(clamp(rows));
            }
            let current = p.status.state();
            self.active.get_or_create(&label).set(i64::from(current.role() == "active"));
            for s in STATES {
                let l = StateLabels { connector: p.name.clone(), state: s.as_str().to_string() };
                self.state.get_or_create(&l).set(i64::from(s == current));
            }
        }
        let mut out = String::new();
        if let Err(e) = prometheus_client::encoding::text::encode(&mut out, &self.registry) {
            tracing::warn!("encoding metrics failed: {e}");
        }
        out
    }
}

fn lag_seconds(tracker: &AckTracker, now_us: i64) -> f64 {
    tracker.oldest_pending_source_ts_us().map_or(0.0, |ts| ((now_us - ts).max(0) as f64) / 1e6)
}

fn clamp(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// One connector's counters. The default (no registry) counts into nothing, for tests and tools.
#[derive(Clone, Default)]
pub struct ConnectorMetrics {
    name: String,
    topic_prefix: String,
    events: Family<EventLabels, Counter>,
    /// The event counter per topic and op, looked up in the family once: counting an event on
    /// the hot path is then a map lookup and an atomic add, with no label allocation.
    by_topic: HashMap<String, [Option<Counter>; 5]>,
    sent_bytes: Counter,
    snapshot_rows: Counter,
    reconnects: Counter,
    slots_recreated: Counter,
    metrics: Option<Arc<Metrics>>,
}

impl ConnectorMetrics {
    /// One event sent to `topic` (the table label is the topic without the connector's prefix).
    /// Snapshot rows are the `r` events.
    pub fn event(&mut self, topic: &str, op: Op, bytes: usize) {
        if self.metrics.is_none() {
            return;
        }
        if !self.by_topic.contains_key(topic) {
            self.by_topic.insert(topic.to_string(), Default::default());
        }
        let slots = self.by_topic.get_mut(topic).expect("inserted above");
        let counter = slots[op as usize].get_or_insert_with(|| {
            let table = topic.strip_prefix(&self.topic_prefix).unwrap_or(topic);
            let labels =
                EventLabels { connector: self.name.clone(), table: table.to_string(), op: op.code().to_string() };
            self.events.get_or_create(&labels).clone()
        });
        counter.inc();
        self.sent_bytes.inc_by(bytes as u64);
        if op == Op::Read {
            self.snapshot_rows.inc();
        }
    }

    pub fn reconnect(&self) {
        self.reconnects.inc();
    }

    pub fn slot_recreated(&self) {
        self.slots_recreated.inc();
    }
}
