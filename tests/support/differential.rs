//! What the randomized differential tests share: a connector tightened for kills, the wait for
//! the stream's first checkpoint, and the judgement of a consumer's replica against the source.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::Value;

use super::random_workload::{normalize, replica, rolled_back_seen, RandomWorkload};
use super::{Daemon, Rec};

/// A connector file that snapshots in small chunks and checkpoints often, so kills land inside
/// chunks, transactions and checkpoint writes alike.
pub fn tighten(cfg: &Path) {
    let text = std::fs::read_to_string(cfg).unwrap().replace("interval_ms = 200", "interval_ms = 50");
    std::fs::write(cfg, text).unwrap();
}

pub async fn until_stream_starts(first_checkpoint: &Path, stop: &AtomicBool) {
    while !first_checkpoint.exists() && !stop.load(Ordering::Relaxed) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn snapshot_done(cp: &Value) -> bool {
    cp["snapshot"]["tables"].as_array().is_some_and(|t| t.iter().all(|t| t["done"] == true))
}

/// Compares the replica of each table with the source's rows and reports the run: `topics` and
/// `source` are tables `a`, `b` and `k`, in that order (a prefix of them).
pub fn judge(
    what: &str,
    seed: u64,
    w: &RandomWorkload,
    recs: &[Rec],
    topics: &[&str],
    source: &[BTreeMap<i64, Vec<Value>>],
    daemon: &Daemon,
) {
    eprintln!(
        "{what}: workload seed {seed} (from the random seed printed above), {} records, steps {:?}",
        recs.len(),
        w.counts
    );
    let rolled_back = rolled_back_seen(recs);
    assert!(
        rolled_back.is_empty(),
        "{what} (seed {seed}): records carry rolled-back values: {:?}",
        &rolled_back[..rolled_back.len().min(3)]
    );
    for (topic, (source, columns)) in
        topics.iter().zip(source.iter().zip([["id", "v", "n"], ["id", "a_id", "note"], ["id", "v", "n"]]))
    {
        let replica = replica(recs, topic, &columns);
        let differ: Vec<_> = replica
            .keys()
            .chain(source.keys())
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .filter(|id| replica.get(id) != source.get(id))
            .take(5)
            .map(|id| (id, replica.get(id), source.get(id)))
            .collect();
        assert!(
            differ.is_empty(),
            "{what} (seed {seed}): {topic}: the replica differs from the source ({} vs {} rows); first differences (id, replica, source): {differ:?}\nlog:\n{}",
            replica.len(),
            source.len(),
            daemon.logs()
        );
    }
}

pub fn rows(raw: Vec<Vec<Value>>) -> BTreeMap<i64, Vec<Value>> {
    raw.into_iter()
        .map(|r| {
            let r: Vec<Value> = r.iter().map(normalize).collect();
            (r[0].as_i64().unwrap_or_default(), r)
        })
        .collect()
}

/// Tables `a`, `b` and `k` of the random workload as PostgreSQL holds them, in the replica's
/// shape.
pub async fn postgres_tables(c: &tokio_postgres::Client) -> [BTreeMap<i64, Vec<Value>>; 3] {
    let text = |v: Option<String>| v.map_or(Value::Null, Value::from);
    let mut avk = Vec::new();
    for table in ["a", "k"] {
        let t = c.query(&format!("SELECT id, v, n FROM {table}"), &[]).await.unwrap();
        avk.push(rows(
            t.iter()
                .map(|r| {
                    vec![
                        r.get::<_, i64>(0).into(),
                        text(r.get(1)),
                        r.get::<_, Option<i32>>(2).map_or(Value::Null, Value::from),
                    ]
                })
                .collect(),
        ));
    }
    let (k, a) = (avk.pop().unwrap_or_default(), avk.pop().unwrap_or_default());
    let b = c.query("SELECT id, a_id, note FROM b", &[]).await.unwrap();
    let b = rows(
        b.iter()
            .map(|r| {
                vec![
                    r.get::<_, i64>(0).into(),
                    r.get::<_, Option<i64>>(1).map_or(Value::Null, Value::from),
                    text(r.get(2)),
                ]
            })
            .collect(),
    );
    [a, b, k]
}
