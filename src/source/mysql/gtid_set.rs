//! MySQL GTID sets: `uuid:1-100:200,uuid2:1-5`, with MySQL 8.4 tags (`uuid:1-5:tag:1-3`).
//! cdcd keeps the set of everything delivered, so a restart can ask the server (possibly a
//! different one after failover) for exactly the transactions it has not seen.

use std::collections::BTreeMap;

/// GTIDs as inclusive intervals per (server UUID, tag); the empty tag is the untagged GTIDs.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct MysqlGtidSet(BTreeMap<(String, String), Vec<(u64, u64)>>);

impl MysqlGtidSet {
    pub fn parse(s: &str) -> Result<Self, String> {
        let mut set = Self::default();
        for group in s.split(',').map(str::trim).filter(|g| !g.is_empty()) {
            let bad = || format!("`{group}` is not a MySQL GTID set entry (uuid:interval[:interval...])");
            let mut parts = group.split(':');
            let uuid = parts.next().ok_or_else(bad)?.trim().to_ascii_lowercase();
            if uuid.len() != 36 || !uuid.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                return Err(bad());
            }
            let mut tag = String::new();
            let mut any = false;
            for part in parts {
                let part = part.trim();
                match part.split_once('-') {
                    Some((a, b)) => {
                        let (a, b) = (a.parse().map_err(|_| bad())?, b.parse().map_err(|_| bad())?);
                        set.add_range(&uuid, &tag, a, b);
                        any = true;
                    }
                    None if !part.is_empty() && part.bytes().all(|c| c.is_ascii_digit()) => {
                        let n = part.parse().map_err(|_| bad())?;
                        set.add_range(&uuid, &tag, n, n);
                        any = true;
                    }
                    None if !part.is_empty() => tag = part.to_ascii_lowercase(),
                    None => return Err(bad()),
                }
            }
            if !any {
                return Err(bad());
            }
        }
        Ok(set)
    }

    /// Adds one transaction.
    pub fn add(&mut self, uuid: &str, tag: &str, gno: u64) {
        self.add_range(uuid, tag, gno, gno);
    }

    fn add_range(&mut self, uuid: &str, tag: &str, from: u64, to: u64) {
        let ranges = self.0.entry((uuid.to_ascii_lowercase(), tag.to_string())).or_default();
        ranges.push((from.min(to), from.max(to)));
        ranges.sort_unstable();
        let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
        for &(a, b) in ranges.iter() {
            match merged.last_mut() {
                Some(last) if a <= last.1.saturating_add(1) => last.1 = last.1.max(b),
                _ => merged.push((a, b)),
            }
        }
        *ranges = merged;
    }

    /// Whether the set holds one transaction (`uuid:gno` or `uuid:tag:gno`).
    pub fn contains(&self, gtid: &str) -> bool {
        let Some((uuid, tag, gno)) = split_gtid(gtid) else { return false };
        self.0
            .get(&(uuid.to_ascii_lowercase(), tag.to_ascii_lowercase()))
            .is_some_and(|ranges| ranges.iter().any(|&(a, b)| a <= gno && gno <= b))
    }

    /// The set without one transaction (`uuid:gno` or `uuid:tag:gno`, as
    /// [`super::stream::mysql_gtid_text`] writes it): where the log stood before it.
    pub fn without(&self, gtid: &str) -> MysqlGtidSet {
        let mut out = self.clone();
        let Some((uuid, tag, gno)) = split_gtid(gtid) else { return out };
        let key = (uuid.to_ascii_lowercase(), tag.to_ascii_lowercase());
        if let Some(ranges) = out.0.get_mut(&key) {
            *ranges = ranges
                .iter()
                .flat_map(|&(a, b)| {
                    let mut kept = Vec::with_capacity(2);
                    if gno < a || gno > b {
                        kept.push((a, b));
                    } else {
                        if gno > a {
                            kept.push((a, gno - 1));
                        }
                        if gno < b {
                            kept.push((gno + 1, b));
                        }
                    }
                    kept
                })
                .collect();
            if ranges.is_empty() {
                out.0.remove(&key);
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// One `uuid[:tag]:intervals` string per (server, tag): what a GTID dump request takes.
    pub fn sid_strings(&self) -> Vec<String> {
        self.0
            .iter()
            .map(|((uuid, tag), ranges)| {
                let mut s = uuid.clone();
                if !tag.is_empty() {
                    s.push(':');
                    s.push_str(tag);
                }
                push_ranges(&mut s, ranges);
                s
            })
            .collect()
    }
}

fn push_ranges(s: &mut String, ranges: &[(u64, u64)]) {
    for (a, b) in ranges {
        if a == b {
            s.push_str(&format!(":{a}"));
        } else {
            s.push_str(&format!(":{a}-{b}"));
        }
    }
}

/// `uuid:gno` or `uuid:tag:gno` as (uuid, tag, gno).
fn split_gtid(gtid: &str) -> Option<(&str, &str, u64)> {
    let parts: Vec<&str> = gtid.split(':').collect();
    let (uuid, tag, gno) = match parts.as_slice() {
        [uuid, gno] => (*uuid, "", *gno),
        [uuid, tag, gno] => (*uuid, *tag, *gno),
        _ => return None,
    };
    Some((uuid, tag, gno.parse().ok()?))
}

/// MySQL's own text form: one entry per server, untagged intervals first, then each tag.
impl std::fmt::Display for MysqlGtidSet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut out: Vec<String> = Vec::new();
        let mut current: Option<&str> = None;
        for ((uuid, tag), ranges) in &self.0 {
            if current != Some(uuid.as_str()) {
                out.push(uuid.clone());
                current = Some(uuid);
            }
            let s = out.last_mut().expect("pushed above");
            if !tag.is_empty() {
                s.push(':');
                s.push_str(tag);
            }
            push_ranges(s, ranges);
        }
        f.write_str(&out.join(","))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "439192bd-f37c-11e4-bbeb-0242ac11035a";
    const B: &str = "b5cd1624-5f30-11e4-b4e9-1051721bd241";

    #[test]
    fn membership_of_plain_and_tagged_gtids() {
        let set = MysqlGtidSet::parse(&format!("{A}:1-5:9,{A}:night:3")).unwrap();
        assert!(set.contains(&format!("{A}:5")) && set.contains(&format!("{A}:9")));
        assert!(!set.contains(&format!("{A}:6")) && !set.contains(&format!("{A}:10")));
        assert!(set.contains(&format!("{A}:NIGHT:3")) && !set.contains(&format!("{A}:night:4")));
        assert!(!set.contains("not-a-gtid"));
    }

    #[test]
    fn without_one_transaction() {
        let u = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
        let set = MysqlGtidSet::parse(&format!("{u}:1-10:20,{u}:tag:1-3")).unwrap();
        assert_eq!(set.without(&format!("{u}:5")).to_string(), format!("{u}:1-4:6-10:20:tag:1-3"));
        assert_eq!(set.without(&format!("{u}:20")).to_string(), format!("{u}:1-10:tag:1-3"));
        assert_eq!(set.without(&format!("{u}:tag:3")).to_string(), format!("{u}:1-10:20:tag:1-2"));
        assert_eq!(set.without(&format!("{u}:99")), set);
        let one = MysqlGtidSet::parse(&format!("{u}:1")).unwrap();
        assert!(one.without(&format!("{u}:1")).is_empty());
    }

    #[test]
    fn parses_and_prints_like_mysql() {
        // As `SELECT @@gtid_executed` prints it, newline after the comma included.
        let text = format!("{A}:1-100:200,\n{B}:1-5");
        let set = MysqlGtidSet::parse(&text).unwrap();
        assert_eq!(set.to_string(), format!("{A}:1-100:200,{B}:1-5"));
        assert_eq!(MysqlGtidSet::parse(&set.to_string()).unwrap(), set);
        assert!(MysqlGtidSet::parse("").unwrap().is_empty());
        for bad in ["nope:1", A, &format!("{A}:1-x"), &format!("{A}:")] {
            assert!(MysqlGtidSet::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn tagged_gtids_8_4() {
        let set = MysqlGtidSet::parse(&format!("{A}:1-5:orders:1-3:7")).unwrap();
        assert_eq!(set.to_string(), format!("{A}:1-5:orders:1-3:7"));
        assert_eq!(set.sid_strings(), [format!("{A}:1-5"), format!("{A}:orders:1-3:7")]);
        for s in set.sid_strings() {
            s.parse::<mysql_common::packets::Sid<'static>>().expect("the driver accepts each entry");
        }
    }

    #[test]
    fn adding_transactions_merges_intervals() {
        let mut set = MysqlGtidSet::parse(&format!("{A}:1-3")).unwrap();
        set.add(A, "", 4);
        set.add(A, "", 6);
        assert_eq!(set.to_string(), format!("{A}:1-4:6"));
        set.add(A, "", 5);
        set.add(&B.to_uppercase(), "", 1);
        set.add(A, "t", 1);
        assert_eq!(set.to_string(), format!("{A}:1-6:t:1,{B}:1"));
    }
}
