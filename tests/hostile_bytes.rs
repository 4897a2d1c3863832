//! A bounded fuzz run that is part of every test run: real captured bytes (pgoutput messages
//! from PostgreSQL 15, a binlog file from MariaDB 10.11, and values of every kind) are mutated
//! with a fixed seed (bit flips, boundary integers, inserted, deleted, repeated and truncated
//! ranges) and fed to the same entry points the cargo-fuzz targets in `fuzz/` use. Every input
//! must finish without a panic and every document rendered must be valid JSON. The seed is
//! fixed so a failure reproduces; it prints the input in hex. Longer runs: see `fuzz/README.md`.

use std::panic::{catch_unwind, AssertUnwindSafe};

use cdcd::fuzz;

const PGOUTPUT_HEX: &str = include_str!("../src/source/postgres/testdata/pgoutput_v1_pg15.txt");
const BINLOG: &[u8] = include_bytes!("../src/source/mysql/testdata/mariadb_10_11_types.binlog");

/// xorshift64*: small, deterministic, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next() % n as u64) as usize
        }
    }
}

/// One to four random edits of the kinds that break parsers: lengths and counts set to
/// boundary values, bytes flipped, ranges removed, repeated or cut off.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut b = seed.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(b.len());
        match rng.below(8) {
            0 if !b.is_empty() => b[at] ^= 1 << rng.below(8),
            1 if !b.is_empty() => b[at] = [0x00, 0x01, 0x7f, 0x80, 0xfe, 0xff][rng.below(6)],
            2 if b.len() >= 4 => {
                let at = at.min(b.len() - 4);
                let v: u32 = [0, 1, 0x7fff_ffff, 0x8000_0000, 0xffff_ffff, 0xffff, 0x1_0000][rng.below(7)];
                let v = if rng.below(2) == 0 { v.to_le_bytes() } else { v.to_be_bytes() };
                b[at..at + 4].copy_from_slice(&v);
            }
            3 => b.truncate(at),
            4 if !b.is_empty() => {
                let end = (at + 1 + rng.below(16)).min(b.len());
                b.drain(at..end);
            }
            5 => {
                let end = (at + 1 + rng.below(32)).min(b.len());
                let chunk: Vec<u8> = b[at..end].to_vec();
                for _ in 0..1 + rng.below(64) {
                    b.splice(at..at, chunk.iter().copied());
                }
            }
            6 => {
                let junk: Vec<u8> = (0..1 + rng.below(8)).map(|_| rng.next() as u8).collect();
                b.splice(at..at, junk);
            }
            _ => {
                if let Some(x) = b.get_mut(at) {
                    *x = x.wrapping_add(1 + rng.below(3) as u8);
                }
            }
        }
    }
    b
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Runs `target` on `iterations` mutants of the seeds; fails on the first panic or invalid JSON.
fn run(name: &str, target: fn(&[u8]) -> Vec<Vec<u8>>, seeds: &[Vec<u8>], iterations: usize) -> usize {
    let mut rng = Rng(0x5eed_cdcd_0000_0001 ^ name.len() as u64);
    let mut docs = 0;
    // Quiet the expected-to-be-absent panics' output; CDCD_FUZZ_VERBOSE=1 shows where one came from.
    let prev = std::panic::take_hook();
    if std::env::var_os("CDCD_FUZZ_VERBOSE").is_none() {
        std::panic::set_hook(Box::new(|_| {}));
    }
    let mut failure = None;
    for i in 0..iterations {
        let input = mutate(&mut rng, &seeds[i % seeds.len()]);
        // A crash that cannot be caught (abort, OOM kill): CDCD_FUZZ_LAST=path keeps the input.
        if let Some(path) = std::env::var_os("CDCD_FUZZ_LAST") {
            let _ = std::fs::write(path, &input);
        }
        match catch_unwind(AssertUnwindSafe(|| target(&input))) {
            Ok(out) => {
                if let Err(e) = fuzz::check_json(&out) {
                    failure = Some(format!("{name}: {e}\ninput: {}", hex(&input)));
                    break;
                }
                docs += out.len();
            }
            Err(p) => {
                let msg =
                    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string()));
                failure = Some(format!("{name}: panic {msg:?}\ninput: {}", hex(&input)));
                break;
            }
        }
    }
    std::panic::set_hook(prev);
    if let Some(f) = failure {
        panic!("{f}");
    }
    docs
}

fn pgoutput_seeds() -> Vec<Vec<u8>> {
    let msgs: Vec<Vec<u8>> = PGOUTPUT_HEX
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split_once('|'))
        .map(|(_, h)| (0..h.len()).step_by(2).map(|i| u8::from_str_radix(&h[i..i + 2], 16).unwrap()).collect())
        .collect();
    let frame = |m: &Vec<u8>| [(m.len() as u16).to_be_bytes().to_vec(), m.clone()].concat();
    // The whole session as one stream (relations before their rows), and each transaction
    // with the relation it needs in front.
    let whole: Vec<u8> = msgs.iter().flat_map(frame).collect();
    let mut seeds = vec![whole];
    for start in (0..msgs.len()).filter(|&i| msgs[i][0] == b'B') {
        let rel = msgs.iter().take(start + 2).rev().find(|m| m[0] == b'R').cloned();
        let txn = msgs[start..].iter().take_while(|m| m[0] != b'C').chain(msgs[start..].iter().find(|m| m[0] == b'C'));
        seeds.push(rel.iter().chain(txn).flat_map(frame).collect());
    }
    seeds
}

#[test]
fn captured_seeds_render_what_was_captured() {
    // Unmutated, the harness reaches the renderers: otherwise the mutation runs prove nothing.
    let pg = fuzz::pgoutput(&pgoutput_seeds()[0]);
    fuzz::check_json(&pg).unwrap();
    let values: Vec<serde_json::Value> = pg.iter().map(|d| serde_json::from_slice(d).unwrap()).collect();
    // Each change twice: cdcd's JSON, then Debezium's (whose source block has `sequence`).
    let friendly: Vec<&serde_json::Value> = values.iter().filter(|v| v["source"].get("sequence").is_none()).collect();
    let debezium: Vec<&serde_json::Value> = values.iter().filter(|v| v["source"].get("sequence").is_some()).collect();
    for docs in [&friendly, &debezium] {
        let ops: String = docs.iter().filter_map(|v| v["op"].as_str()).collect();
        assert_eq!(ops, "ccuudcud", "{values:#?}");
        assert_eq!(docs.iter().find(|v| v["op"] == "c").unwrap()["after"]["name"], "a");
    }

    let my = fuzz::binlog(BINLOG);
    fuzz::check_json(&my).unwrap();
    let values: Vec<serde_json::Value> = my
        .iter()
        .map(|d| serde_json::from_slice(d).unwrap())
        .filter(|v: &serde_json::Value| v.get("op").is_some())
        .collect();
    // Each change twice again: cdcd's JSON (whose source block has `position`), then Debezium's.
    let (friendly, debezium): (Vec<&serde_json::Value>, Vec<&serde_json::Value>) =
        values.iter().partition(|v| v["source"].get("position").is_some());
    let first = &friendly[0]["after"];
    assert_eq!(first["bi"], serde_json::json!(18446744073709551615u64), "{first}");
    assert_eq!(first["tx"], "hello \"world\"");
    assert_eq!(first["st"], "a,d");
    assert_eq!(first["tm"], "-838:59:58.99");
    let first = &debezium[0]["after"];
    assert_eq!(first["bi"], -1, "BIGINT UNSIGNED in Debezium's long mode: {first}");
    assert_eq!(first["tx"], "hello \"world\"");
    assert_eq!(first["st"], "a,d");
    assert_eq!(first["tm"], -3_020_398_990_000i64, "TIME as MicroTime");
    let ops = |docs: &[&serde_json::Value]| docs.iter().filter_map(|v| v["op"].as_str()).collect::<String>();
    assert!(ops(&friendly).len() >= 12 && ops(&friendly).contains('u') && ops(&friendly).contains('d'));
    assert_eq!(ops(&friendly), ops(&debezium));
}

#[test]
fn mutated_pgoutput_never_panics() {
    let docs = run("pgoutput", fuzz::pgoutput, &pgoutput_seeds(), 200_000);
    assert!(docs > 10_000, "mutants should still reach the renderers often ({docs} documents)");
}

#[test]
fn mutated_binlog_never_panics() {
    let docs = run("binlog", fuzz::binlog, &[BINLOG.to_vec()], 30_000);
    assert!(docs > 3_000, "mutants should still reach the renderers often ({docs} documents)");
}

#[test]
fn mutated_values_never_panic() {
    let mut seeds = Vec::new();
    let texts: [&[u8]; 10] = [
        b"123",
        b"-1.5e+300",
        b"{1,{2,NULL},\"a\\\"b\"}",
        b"2024-02-29 13:14:15.5+05:30",
        b"0044-03-15 BC",
        b"\\x00ff10",
        b"{\"k\": [1, 2.5]}",
        b"P1Y2M3DT4H5M6S",
        b"\x01\x00\x00\x00\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\xf0?",
        b"\xff\xfe\x00",
    ];
    for mode in 0..3u8 {
        for kind in 0..18u8 {
            for t in texts {
                seeds.push([&[mode, kind * 7, kind][..], t].concat());
            }
        }
    }
    // Binary JSON written by MySQL 8 for {"a": [1, "x"]}: object, one key, a nested array.
    seeds.push(vec![
        3, 0, 0, 0, 1, 0, 0x1a, 0, 0x0b, 0, 1, 0, 0x02, 0x0c, 0, b'a', 2, 0, 0x0d, 0, 5, 1, 0, 0x0c, 0x0c, 0, 1, b'x',
    ]);
    let docs = run("values", fuzz::values, &seeds, 300_000);
    assert!(docs > 50_000, "{docs}");
}

/// Replays one saved input: `CDCD_FUZZ_REPLAY=binlog:/path cargo test --test hostile_bytes replay`.
#[test]
fn replay() {
    let Some(spec) = std::env::var_os("CDCD_FUZZ_REPLAY") else { return };
    let spec = spec.to_string_lossy().into_owned();
    let (target, path) = spec.split_once(':').expect("target:path");
    let input = std::fs::read(path).expect("the saved input");
    let docs = match target {
        "pgoutput" => fuzz::pgoutput(&input),
        "binlog" => fuzz::binlog(&input),
        _ => fuzz::values(&input),
    };
    fuzz::check_json(&docs).unwrap();
}
