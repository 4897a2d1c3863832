//! A transaction workload for the crash tests, in SQL that PostgreSQL and MariaDB both accept:
//! inserts of 1 to 5,000 rows, updates and deletes of earlier rows, nested savepoints with
//! `ROLLBACK TO SAVEPOINT`, and whole-transaction rollbacks. It records which ids ended up
//! committed and which only ever existed in rolled-back work, and checks what a consumer
//! materialized from Kafka against the source table.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{json, Value};

use super::{Rec, Rng};

/// The table every workload writes: `CREATE TABLE sp (id bigint PRIMARY KEY, v varchar(64), n int)`.
pub const TABLE_DDL: &str = "CREATE TABLE sp (id bigint PRIMARY KEY, v varchar(64), n int)";

pub struct Workload {
    rng: Rng,
    next_id: i64,
    txn: u64,
    /// Committed and not deleted.
    live: Vec<i64>,
    /// Every id inserted by a committed transaction (even if deleted later).
    pub committed: BTreeSet<i64>,
    /// Ids inserted only inside rolled-back work: no event may ever mention them.
    pub rolled_back: BTreeSet<i64>,
    pub transactions: u64,
    pub savepoint_rollbacks: u64,
    /// Rows that were in the table before the workload (read by a snapshot).
    seeded: BTreeSet<i64>,
}

impl Workload {
    pub fn new(seed: u64, first_id: i64) -> Workload {
        Workload {
            rng: Rng(seed.max(1)),
            next_id: first_id,
            txn: 0,
            live: Vec::new(),
            committed: BTreeSet::new(),
            rolled_back: BTreeSet::new(),
            transactions: 0,
            savepoint_rollbacks: 0,
            seeded: BTreeSet::new(),
        }
    }

    /// Rows already in the table before the workload starts (e.g. for a snapshot).
    pub fn seed_rows(&mut self, ids: impl IntoIterator<Item = i64>) {
        for id in ids {
            self.seeded.insert(id);
            self.committed.insert(id);
            self.live.push(id);
            self.next_id = self.next_id.max(id + 1);
        }
    }

    /// 75% 1-10 rows, 20% 10-200, 5% 200-5,000.
    fn size(&mut self) -> u64 {
        match self.rng.range(0, 100) {
            0..=74 => self.rng.range(1, 11),
            75..=94 => self.rng.range(10, 201),
            _ => self.rng.range(200, 5001),
        }
    }

    fn insert(&mut self, stmts: &mut Vec<String>, into: &mut Vec<i64>) {
        let k = self.size() as i64;
        let ids: Vec<i64> = (self.next_id..self.next_id + k).collect();
        self.next_id += k;
        let values: Vec<String> = ids.iter().map(|i| format!("({i}, 't{}-{i}', {})", self.txn, i % 1000)).collect();
        stmts.push(format!("INSERT INTO sp (id, v, n) VALUES {}", values.join(",")));
        into.extend(ids);
    }

    fn some_live(&mut self, n: usize) -> Vec<i64> {
        if self.live.is_empty() {
            return Vec::new();
        }
        (0..n).map(|_| self.live[self.rng.range(0, self.live.len() as u64) as usize]).collect()
    }

    fn update(&mut self, stmts: &mut Vec<String>, tag: &str) {
        let ids = self.some_live(3);
        if !ids.is_empty() {
            let list: Vec<String> = ids.iter().map(i64::to_string).collect();
            stmts.push(format!("UPDATE sp SET v = '{tag}{}', n = n + 1 WHERE id IN ({})", self.txn, list.join(",")));
        }
    }

    /// The statements of the next transaction (BEGIN .. COMMIT or ROLLBACK); the bookkeeping
    /// assumes it runs to completion as written.
    pub fn next_transaction(&mut self) -> Vec<String> {
        self.txn += 1;
        self.transactions += 1;
        let mut stmts = vec!["BEGIN".to_string()];
        let mut main = Vec::new();
        let mut deleted = Vec::new();
        self.insert(&mut stmts, &mut main);
        if self.rng.range(0, 100) < 60 {
            let mut in_a = Vec::new();
            stmts.push("SAVEPOINT a".into());
            self.insert(&mut stmts, &mut in_a);
            self.update(&mut stmts, "a");
            if self.rng.range(0, 100) < 50 {
                let mut in_b = Vec::new();
                stmts.push("SAVEPOINT b".into());
                self.insert(&mut stmts, &mut in_b);
                self.update(&mut stmts, "b");
                if let Some(id) = self.some_live(1).first() {
                    stmts.push(format!("DELETE FROM sp WHERE id = {id}"));
                }
                stmts.push("ROLLBACK TO SAVEPOINT b".into());
                self.savepoint_rollbacks += 1;
                self.rolled_back.extend(in_b);
            }
            self.insert(&mut stmts, &mut in_a);
            if self.rng.range(0, 100) < 35 {
                stmts.push("ROLLBACK TO SAVEPOINT a".into());
                self.savepoint_rollbacks += 1;
                self.rolled_back.extend(in_a);
            } else {
                stmts.push("RELEASE SAVEPOINT a".into());
                main.extend(in_a);
            }
        }
        self.update(&mut stmts, "m");
        if self.rng.range(0, 100) < 10 {
            if let Some(&id) = self.some_live(1).first() {
                stmts.push(format!("DELETE FROM sp WHERE id = {id}"));
                deleted.push(id);
            }
        }
        if self.rng.range(0, 100) < 5 {
            stmts.push("ROLLBACK".into());
            self.rolled_back.extend(main);
        } else {
            stmts.push("COMMIT".into());
            self.committed.extend(main.iter().copied());
            self.live.extend(main);
            self.live.retain(|id| !deleted.contains(id));
        }
        stmts
    }
}

/// A source row as the envelope's `after` renders it.
pub fn row_json(id: i64, v: Option<&str>, n: Option<i32>) -> Value {
    json!({"id": id, "v": v, "n": n})
}

/// The `sp` table of a PostgreSQL database, per id, as [`row_json`] renders rows.
pub async fn pg_source_rows(c: &tokio_postgres::Client) -> BTreeMap<i64, Value> {
    c.query("SELECT id, v, n FROM sp", &[])
        .await
        .unwrap()
        .iter()
        .map(|r| {
            let id: i64 = r.get(0);
            (id, row_json(id, r.get::<_, Option<&str>>(1), r.get(2)))
        })
        .collect()
}

/// What a consumer that applies every record in partition order ends up with, per key.
pub fn materialize(recs: &[Rec]) -> BTreeMap<i64, Value> {
    let mut state = BTreeMap::new();
    for r in recs {
        let Some(v) = &r.value else { continue };
        match r.op() {
            Some("c" | "r" | "u") => {
                if let Some(id) = v["after"]["id"].as_i64() {
                    state.insert(id, v["after"].clone());
                }
            }
            Some("d") => {
                if let Some(id) = v["before"]["id"].as_i64() {
                    state.remove(&id);
                }
            }
            _ => {}
        }
    }
    state
}

/// Outcome of comparing what reached Kafka with the source.
#[derive(Debug)]
pub struct Verdict {
    pub records: usize,
    pub distinct_ids: usize,
    /// Committed rows still in the table with no insert or snapshot event. (A row inserted and
    /// deleted before the snapshot point rightly has no event at all, so deleted rows are
    /// checked through the final state instead: if their insert reached Kafka, so must their
    /// delete.)
    pub missing_committed: Vec<i64>,
    pub rolled_back_seen: Vec<i64>,
    pub state_mismatches: Vec<(i64, Option<Value>, Option<Value>)>,
}

impl Verdict {
    pub fn ok(&self) -> bool {
        self.missing_committed.is_empty() && self.rolled_back_seen.is_empty() && self.state_mismatches.is_empty()
    }
}

/// Checks: every committed row still live has an insert or snapshot event (for a seeded row an
/// update will do: a snapshot drops rows the log changed while they were read, in favour of the
/// log's events, as Debezium's incremental snapshots do), no event mentions a rolled-back id,
/// and the materialized state equals `source` row for row. Only seeded rows may predate the
/// stream's start: a workload must not commit before the connector's first checkpoint.
pub fn verify(recs: &[Rec], w: &Workload, source: &BTreeMap<i64, Value>) -> Verdict {
    let mut created = BTreeSet::new();
    let mut mentioned = BTreeSet::new();
    for r in recs {
        if let Some(k) = r.key.as_ref().and_then(|k| k["id"].as_i64()) {
            mentioned.insert(k);
        }
        if let Some(v) = &r.value {
            for side in ["before", "after"] {
                if let Some(id) = v[side]["id"].as_i64() {
                    mentioned.insert(id);
                }
            }
            if let Some(id) = v["after"]["id"].as_i64() {
                if matches!(r.op(), Some("c" | "r")) || (r.op() == Some("u") && w.seeded.contains(&id)) {
                    created.insert(id);
                }
            }
        }
    }
    let state = materialize(recs);
    let mut state_mismatches = Vec::new();
    for id in state.keys().chain(source.keys()).collect::<BTreeSet<_>>() {
        let (got, want) = (state.get(id), source.get(id));
        if got != want {
            state_mismatches.push((*id, got.cloned(), want.cloned()));
        }
    }
    Verdict {
        records: recs.len(),
        distinct_ids: created.len(),
        missing_committed: w.live.iter().filter(|id| !created.contains(id)).copied().collect(),
        rolled_back_seen: w.rolled_back.intersection(&mentioned).copied().collect(),
        state_mismatches,
    }
}
