//! A seeded random workload over two keyed tables and a keyless one for the differential tests,
//! in SQL both PostgreSQL and MySQL / MariaDB accept: multi-row and multi-table transactions,
//! updates, deletes, primary-key changes, savepoints rolled back to, whole rollbacks, TRUNCATE,
//! ADD/DROP COLUMN, and (MySQL family) XA transactions committed or rolled back after PREPARE.
//!
//! The keyless table `k` has an `id` column that is unique by construction but backed by no
//! index, so the source and the connector treat the table as keyless, while the test can still
//! tell its rows apart.
//!
//! It keeps no model of the expected state: the test compares what a consumer builds from Kafka
//! with the source tables themselves. Work that is rolled back writes values starting with
//! `rb-`, so "nothing rolled back appears" is checked on every record without bookkeeping.

use std::collections::BTreeMap;

use serde_json::Value;

use super::{Rec, Rng};

/// `a`, `b` and the keyless `k`, created before the connector starts.
pub fn tables_ddl(flavor: Flavor) -> Vec<&'static str> {
    let mut ddl = vec![
        "CREATE TABLE a (id bigint PRIMARY KEY, v varchar(64), n int)",
        "CREATE TABLE b (id bigint PRIMARY KEY, a_id bigint, note varchar(64))",
        "CREATE TABLE k (id bigint, v varchar(64), n int)",
    ];
    if flavor == Flavor::Postgres {
        // Updates and deletes of a keyless table need the whole old row in the log.
        ddl.push("ALTER TABLE k REPLICA IDENTITY FULL");
    }
    ddl
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Postgres,
    Mysql,
}

pub struct RandomWorkload {
    rng: Rng,
    flavor: Flavor,
    next_id: i64,
    txn: u64,
    /// Columns added to `a` and not dropped yet.
    extra_columns: Vec<String>,
    next_column: u64,
    /// How many of each kind of step ran (for the report).
    pub counts: BTreeMap<&'static str, u64>,
}

impl RandomWorkload {
    pub fn new(seed: u64, flavor: Flavor) -> RandomWorkload {
        RandomWorkload {
            rng: Rng(seed.max(1)),
            flavor,
            next_id: 1,
            txn: 0,
            extra_columns: Vec::new(),
            next_column: 0,
            counts: BTreeMap::new(),
        }
    }

    fn count(&mut self, what: &'static str) {
        *self.counts.entry(what).or_default() += 1;
    }

    fn chance(&mut self, percent: u64) -> bool {
        self.rng.range(0, 100) < percent
    }

    /// An id that probably exists (or did).
    fn some_id(&mut self) -> i64 {
        self.rng.range(1, self.next_id.max(2) as u64) as i64
    }

    /// Rows to seed before the connector starts (read by its snapshot).
    pub fn seed(&mut self, rows: i64) -> Vec<String> {
        let mut out = Vec::new();
        for id in 1..=rows {
            out.push(format!("INSERT INTO a VALUES ({id}, 'seed-{id}', {})", id % 97));
            if id % 3 == 0 {
                out.push(format!("INSERT INTO b VALUES ({id}, {id}, 'seed-b-{id}')"));
            }
            out.push(format!("INSERT INTO k VALUES ({id}, 'seed-k-{id}', {})", id % 89));
        }
        self.next_id = rows + 1;
        out
    }

    /// A change to the keyless table: rows are found by `id`, which no index backs.
    fn keyless_change(&mut self, tag: &str, out: &mut Vec<String>) {
        match self.rng.range(0, 100) {
            0..=39 => {
                let rows = self.rng.range(1, 6) as i64;
                let values: Vec<String> = (0..rows)
                    .map(|i| format!("({}, '{tag}k{}', {})", self.next_id + i, self.txn, self.rng.range(0, 1000)))
                    .collect();
                self.next_id += rows;
                out.push(format!("INSERT INTO k (id, v, n) VALUES {}", values.join(", ")));
                self.count("insert k");
            }
            40..=74 => {
                let (lo, n) = (self.some_id(), self.rng.range(1, 4) as i64);
                out.push(format!(
                    "UPDATE k SET v = '{tag}ku{}', n = n + 1 WHERE id BETWEEN {lo} AND {}",
                    self.txn,
                    lo + n
                ));
                self.count("update k");
            }
            _ => {
                let id = self.some_id();
                out.push(format!("DELETE FROM k WHERE id = {id}"));
                self.count("delete k");
            }
        }
    }

    /// Statements that change rows; `tag` marks values written by work that will roll back.
    fn changes(&mut self, tag: &str, out: &mut Vec<String>) {
        for _ in 0..self.rng.range(1, 6) {
            if self.chance(25) {
                self.keyless_change(tag, out);
                continue;
            }
            match self.rng.range(0, 100) {
                0..=34 => {
                    let rows = self.rng.range(1, 20) as i64;
                    let values: Vec<String> = (0..rows)
                        .map(|i| format!("({}, '{tag}{}', {})", self.next_id + i, self.txn, self.rng.range(0, 1000)))
                        .collect();
                    self.next_id += rows;
                    out.push(format!("INSERT INTO a (id, v, n) VALUES {}", values.join(", ")));
                    self.count("insert a");
                }
                35..=54 => {
                    let (lo, n) = (self.some_id(), self.rng.range(1, 5) as i64);
                    out.push(format!(
                        "UPDATE a SET v = '{tag}u{}', n = n + 1 WHERE id BETWEEN {lo} AND {}",
                        self.txn,
                        lo + n
                    ));
                    self.count("update a");
                }
                55..=64 => {
                    let id = self.some_id();
                    out.push(format!("DELETE FROM a WHERE id = {id}"));
                    self.count("delete a");
                }
                65..=72 => {
                    // A primary-key change: a delete of the old key and a create of the new.
                    let (old, new) = (self.some_id(), self.next_id);
                    self.next_id += 1;
                    out.push(format!("UPDATE a SET id = {new}, v = '{tag}k{}' WHERE id = {old}", self.txn));
                    self.count("key change a");
                }
                73..=87 => {
                    let (id, a_id) = (self.next_id, self.some_id());
                    self.next_id += 1;
                    out.push(format!("INSERT INTO b VALUES ({id}, {a_id}, '{tag}b{}')", self.txn));
                    self.count("insert b");
                }
                88..=94 => {
                    let id = self.some_id();
                    out.push(format!("UPDATE b SET note = '{tag}bu{}' WHERE id = {id}", self.txn));
                    self.count("update b");
                }
                _ => {
                    let id = self.some_id();
                    out.push(format!("DELETE FROM b WHERE id = {id}"));
                    self.count("delete b");
                }
            }
        }
    }

    /// The next unit of work: statements to run in order on one connection.
    pub fn next(&mut self) -> Vec<String> {
        self.txn += 1;
        let txn = self.txn;
        let mut out = Vec::new();
        match self.rng.range(0, 100) {
            // DDL and TRUNCATE stand alone: MariaDB commits implicitly around them.
            0..=1 => {
                let column = format!("x{}", self.next_column);
                self.next_column += 1;
                out.push(format!("ALTER TABLE a ADD COLUMN {column} int"));
                self.extra_columns.push(column);
                self.count("add column");
            }
            2..=3 if !self.extra_columns.is_empty() => {
                let column = self.extra_columns.remove(0);
                out.push(format!("ALTER TABLE a DROP COLUMN {column}"));
                self.count("drop column");
            }
            4 => {
                let table = if self.chance(70) { "b" } else { "k" };
                out.push(format!("TRUNCATE {table}"));
                self.count(if table == "b" { "truncate b" } else { "truncate k" });
            }
            5..=9 if self.flavor == Flavor::Mysql => {
                let commit = self.chance(60);
                let xid = format!("'dx{txn}'");
                out.push(format!("XA START {xid}"));
                self.changes(if commit { "" } else { "rb-" }, &mut out);
                out.push(format!("XA END {xid}"));
                out.push(format!("XA PREPARE {xid}"));
                out.push(format!("XA {} {xid}", if commit { "COMMIT" } else { "ROLLBACK" }));
                self.count(if commit { "xa commit" } else { "xa rollback" });
            }
            10..=17 => {
                out.push(self.begin());
                self.changes("rb-", &mut out);
                out.push("ROLLBACK".into());
                self.count("rollback");
            }
            _ => {
                out.push(self.begin());
                self.changes("", &mut out);
                if self.chance(30) {
                    out.push(format!("SAVEPOINT s{txn}"));
                    self.changes("rb-", &mut out);
                    out.push(format!("ROLLBACK TO SAVEPOINT s{txn}"));
                    self.count("savepoint rollback");
                    if self.chance(50) {
                        self.changes("", &mut out);
                    }
                }
                out.push("COMMIT".into());
                self.count("commit");
            }
        }
        out
    }

    fn begin(&self) -> String {
        match self.flavor {
            Flavor::Postgres => "BEGIN".into(),
            Flavor::Mysql => "START TRANSACTION".into(),
        }
    }
}

/// The rows of one table a consumer builds by applying every record in partition order,
/// reduced to `columns`: create, read and update set the row (an update that moved the key
/// removes the old one), delete removes it, truncate empties the table.
pub fn replica(recs: &[Rec], topic: &str, columns: &[&str]) -> BTreeMap<i64, Vec<Value>> {
    let mut rows = BTreeMap::new();
    for r in recs.iter().filter(|r| r.topic == topic) {
        let Some(v) = &r.value else { continue };
        let before_id = v["before"]["id"].as_i64();
        match r.op() {
            Some("c" | "r" | "u") => {
                let Some(id) = v["after"]["id"].as_i64() else { continue };
                if let Some(old) = before_id.filter(|old| *old != id) {
                    rows.remove(&old);
                }
                rows.insert(id, columns.iter().map(|c| normalize(&v["after"][*c])).collect());
            }
            Some("d") => {
                if let Some(id) = before_id.or_else(|| r.key.as_ref().and_then(|k| k["id"].as_i64())) {
                    rows.remove(&id);
                }
            }
            Some("t") => rows.clear(),
            _ => {}
        }
    }
    rows
}

/// Numbers as numbers, whatever their JSON spelling; everything else as it is.
pub fn normalize(v: &Value) -> Value {
    match v {
        Value::String(s) => s.parse::<i64>().map(Value::from).unwrap_or_else(|_| v.clone()),
        other => other.clone(),
    }
}

/// Records whose row carries a value written by rolled-back work.
pub fn rolled_back_seen(recs: &[Rec]) -> Vec<String> {
    recs.iter()
        .filter_map(|r| r.value.as_ref())
        .filter(|v| {
            ["before", "after"]
                .iter()
                .any(|side| ["v", "note"].iter().any(|c| v[*side][*c].as_str().is_some_and(|s| s.starts_with("rb-"))))
        })
        .map(|v| v.to_string())
        .collect()
}
