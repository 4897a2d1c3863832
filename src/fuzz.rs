//! Entry points for fuzzing: each feeds arbitrary bytes through the same decoding and rendering
//! code the live path runs and returns every JSON document it produced. Malformed input may
//! yield errors (skipped here) but must never panic, loop or allocate without bound, and every
//! document returned must be valid JSON. Used by the cargo-fuzz targets in `fuzz/` and by the
//! bounded mutation run in `tests/hostile_bytes.rs`.

use std::collections::HashMap;

use mysql_common::binlog::consts::BinlogVersion;
use mysql_common::binlog::events::EventData;
use mysql_common::binlog::EventStreamReader;
use mysql_common::proto::MyDeserialize;

use crate::core::connect::TableSchema;
use crate::core::envelope::{Change, Encode, Image, Op, RecordBuf};
use crate::core::position::Lsn;
use crate::source::mysql::table::{self as my_table, Kind};
use crate::source::mysql::{guard, mariadb_events, rows, stream as my_stream, values as my_values};
use crate::source::postgres::catalog::TableRef;
use crate::source::postgres::pgoutput::{self, Cell, Message, OldTuple};
use crate::source::postgres::protocol::PG_EPOCH_OFFSET_US;
use crate::source::postgres::relation::{self, ColumnDef, Relation, SourceContext};
use crate::source::postgres::typed::PgType;
use crate::source::postgres::values::{self as pg_values, ValueKind};
use crate::source::tables::KeyColumns;

/// Every JSON document in `docs` parses; the first one that does not, as an error.
pub fn check_json(docs: &[Vec<u8>]) -> Result<(), String> {
    for d in docs {
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(d) {
            return Err(format!("invalid JSON ({e}): {}", String::from_utf8_lossy(d)));
        }
    }
    Ok(())
}

/// Renders one change as the emitter would and keeps its key and value documents.
fn render(
    docs: &mut Vec<Vec<u8>>,
    op: Op,
    key: Option<&impl Image>,
    before: Option<&impl Image>,
    after: Option<&impl Image>,
    source: &impl Image,
    schema: Option<&TableSchema>,
) {
    let change = Change {
        op,
        key: key.map(|k| k as &dyn Image),
        before: before.map(|r| r as &dyn Image),
        after: after.map(|r| r as &dyn Image),
        source,
        collection: "fuzz.t",
        schema,
        ts_us: 0,
    };
    let mut buf = RecordBuf::default();
    buf.set_change(&change, None);
    if key.is_some() {
        docs.push(buf.key.clone());
    }
    docs.push(buf.value.clone());
    // Debezium's JSON from the same change: hostile values may fail to encode (a clear error),
    // but what does encode must be JSON.
    if change.schema.is_some() && buf.encode(&change, Encode::DebeziumJson { schemas: false }, None).is_ok() {
        if key.is_some() {
            docs.push(buf.key.clone());
        }
        docs.push(buf.value);
    }
}

/// A stream of pgoutput messages, each framed by a big-endian u16 length (the seed corpus is
/// the captured messages framed that way). Relations are built from built-in type OIDs; other
/// OIDs pick a kind from the OID, as the catalog would resolve a domain or an array of one.
pub fn pgoutput(input: &[u8]) -> Vec<Vec<u8>> {
    let ctx = SourceContext {
        connector: "fuzz".into(),
        db: "fuzz".into(),
        topic_prefix: "fuzz".into(),
        keys: KeyColumns::default(),
        typed: Some(Default::default()),
        columns: Default::default(),
        routes: Default::default(),
    };
    let mut docs = Vec::new();
    let mut relations: HashMap<u32, Relation> = HashMap::new();
    let (mut old, mut new) = (Vec::new(), Vec::new());
    let (mut commit_lsn, mut ts_us, mut xid, mut index) = (Lsn(0), 0i64, 0u32, 0u64);
    let mut rest = input;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])).min(rest.len() - 2);
        let data = &rest[2..2 + len];
        rest = &rest[2 + len..];
        let Ok(msg) = pgoutput::decode(data, &mut old, &mut new) else { continue };
        let (rel, op, before, after) = match msg {
            Message::Begin { final_lsn, commit_ts_us, xid: x } => {
                (commit_lsn, ts_us, xid, index) = (final_lsn, commit_ts_us.saturating_add(PG_EPOCH_OFFSET_US), x, 0);
                continue;
            }
            Message::Relation(r) => {
                let key: Vec<String> = r.columns.iter().filter(|c| c.flags & 1 != 0).map(|c| c.name.clone()).collect();
                let columns = r
                    .columns
                    .iter()
                    .map(|c| ColumnDef {
                        name: c.name.clone(),
                        kind: kind_for_oid(c.type_oid),
                        pg: PgType::builtin(c.type_oid, c.type_mod),
                        not_null: false,
                    })
                    .collect();
                let table = TableRef { schema: r.namespace, name: r.name };
                if let Ok(rel) = Relation::new(r.id, table, columns, &key, &ctx) {
                    relations.insert(r.id, rel);
                }
                continue;
            }
            Message::Insert { rel } => (rel, Op::Create, None, Some(&new)),
            Message::Update { rel, old: o } => (rel, Op::Update, (o != OldTuple::None).then_some(&old), Some(&new)),
            Message::Delete { rel, .. } => (rel, Op::Delete, Some(&old), None),
            _ => continue,
        };
        let Some(rel) = relations.get(&rel) else { continue };
        let before = before.map(|cells: &Vec<Cell>| relation::Row { rel, cells, data });
        let after = after.map(|cells: &Vec<Cell>| relation::Row { rel, cells, data });
        let key = after
            .as_ref()
            .or(before.as_ref())
            .filter(|_| rel.has_key())
            .map(|r| relation::Key(relation::Row { rel: r.rel, cells: r.cells, data: r.data }));
        let source = relation::SourceBlock {
            rel,
            ts_us,
            snapshot: crate::core::snapshot::SnapshotMarker::No,
            tx_id: Some(u64::from(xid)),
            lsn: commit_lsn,
            commit_lsn,
            index,
            last_commit_lsn: None,
        };
        index += 1;
        render(&mut docs, op, key.as_ref(), before.as_ref(), after.as_ref(), &source, rel.schema.as_ref());
    }
    docs
}

/// Kinds a value can be rendered as, for OIDs the built-in table does not know.
fn kind_for_oid(oid: u32) -> ValueKind {
    use ValueKind::*;
    pg_values::builtin_kind(oid).unwrap_or_else(|| {
        let all = [Bool, Int, Float, Numeric, Text, Bytea, Json, Date, Timestamp, TimestampTz, Time, TimeTz, Interval];
        let base = all[oid as usize % all.len()].clone();
        match (oid / 16) % 3 {
            0 => base,
            1 => Array(Box::new(base)),
            _ => Array(Box::new(Array(Box::new(base)))),
        }
    })
}

/// A binlog event stream as MariaDB writes it to a file (with or without the 4-byte magic).
/// Event checksums are recomputed first, so mutations reach the decoders instead of all
/// failing the CRC check. Table maps are read with FULL metadata and every table included.
pub fn binlog(input: &[u8]) -> Vec<Vec<u8>> {
    let mut bytes = input.strip_prefix(b"\xfebin").unwrap_or(input).to_vec();
    fix_checksums(&mut bytes);
    let ctx = my_table::Context {
        connector: "fuzz".into(),
        topic_prefix: "fuzz".into(),
        flavor: "mariadb",
        keys: KeyColumns::default(),
        typed: Some(Default::default()),
        columns: Default::default(),
        routes: Default::default(),
    };
    let mut docs = Vec::new();
    let mut reader = EventStreamReader::new(BinlogVersion::Version4);
    let mut tables: HashMap<u64, my_table::Table> = HashMap::new();
    let mut rest = bytes.as_slice();
    let mut index = 0u64;
    // Every event consumes at least its 19-byte header, so this ends.
    while let Ok(Some(ev)) = fenced(|| reader.read(&mut rest)) {
        let header = ev.header();
        match header.event_type_raw() {
            mariadb_events::GTID => {
                let _ = mariadb_events::parse_gtid(ev.data());
                continue;
            }
            mariadb_events::GTID_LIST => {
                let _ = mariadb_events::parse_gtid_list(ev.data());
                continue;
            }
            _ => {}
        }
        let Ok(Some(data)) = fenced(|| ev.read_data()) else { continue };
        match data {
            EventData::TableMapEvent(tme) => {
                if let Ok(t) = fenced(|| my_table::from_table_map(&tme, &ctx, tables.get(&tme.table_id()))) {
                    tables.insert(tme.table_id(), t);
                }
            }
            EventData::RowsEvent(rows_event) => {
                let (Some(table), Some(tme)) =
                    (tables.get(&rows_event.table_id()), reader.get_tme(rows_event.table_id()))
                else {
                    continue;
                };
                let Ok(changes) = fenced(|| rows::row_changes(table, tme, &rows_event)) else {
                    continue;
                };
                for c in &changes {
                    let before = c.before.as_ref().map(|cells| my_values::Row { table, cells });
                    let after = c.after.as_ref().map(|cells| my_values::Row { table, cells });
                    let key = c
                        .after
                        .as_ref()
                        .or(c.before.as_ref())
                        .filter(|_| table.has_key())
                        .map(|cells| my_values::Key(my_values::Row { table, cells }));
                    let source = my_stream::SourceBlock {
                        table,
                        ts_us: i64::from(header.timestamp()) * 1_000_000,
                        snapshot: crate::core::snapshot::SnapshotMarker::No,
                        server_id: header.server_id(),
                        gtid: None,
                        file: "fuzz",
                        pos: u64::from(header.log_pos()),
                        row: c.row_no,
                        thread: None,
                        txn_start: 0,
                        index,
                    };
                    index += 1;
                    let schema = table.typed.as_ref().map(|t| &t.schema);
                    render(&mut docs, c.op, key.as_ref(), before.as_ref(), after.as_ref(), &source, schema);
                }
            }
            EventData::QueryEvent(q) => {
                let sql = q.query();
                let _ = crate::source::mysql::statements::classify_query(sql.trim());
                let _ = crate::source::mysql::statements::truncated_table(sql.trim(), &q.schema());
            }
            EventData::GtidEvent(g) => {
                let _ = my_stream::mysql_gtid_text(&g);
            }
            EventData::RotateEvent(r) => {
                let _ = my_stream::binlog_file_name(r.name_raw(), true);
            }
            _ => {}
        }
    }
    docs
}

/// Runs one decoding step inside the same fence the live stream uses; a panic the fence caught
/// is re-raised, because the fence hides it from the daemon but the fuzzer must see it.
fn fenced<T>(step: impl FnOnce() -> T) -> T {
    match guard::decode(|| "fuzz input".into(), step) {
        Ok(v) => v,
        Err(caught) => panic!("{caught}"),
    }
}

/// Rewrites each event's trailing CRC32 so it matches the (possibly mutated) event.
fn fix_checksums(bytes: &mut [u8]) {
    let mut at = 0usize;
    while bytes.len() - at >= 19 {
        let size = u32::from_le_bytes([bytes[at + 9], bytes[at + 10], bytes[at + 11], bytes[at + 12]]) as usize;
        if size < 23 || size > bytes.len() - at {
            return;
        }
        let crc = crc32fast::hash(&bytes[at..at + size - 4]);
        bytes[at + size - 4..at + size].copy_from_slice(&crc.to_le_bytes());
        at += size;
    }
}

/// The value renderers on their own. The first byte picks the renderer, the next ones the
/// column kind (and, for binlog values, the value's variant); the rest is the value.
pub fn values(input: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let [mode, a, b, rest @ ..] = input else { return Vec::new() };
    match mode % 4 {
        0 => pg_values::write_value(&mut out, &kind_for_oid(u32::from_le_bytes([*a, *b, 0, 0])), rest),
        1 => my_values::write_text(&mut out, &mysql_kind(*a, *b), rest),
        2 => my_values::write_value(&mut out, &mysql_kind(*a, *b), &mysql_value(*a, rest)),
        _ => match mysql_common::binlog::jsonb::Value::deserialize((), &mut mysql_common::io::ParseBuf(rest)) {
            Ok(j) => my_values::write_jsonb(&mut out, &j),
            Err(_) => return Vec::new(),
        },
    }
    vec![out]
}

fn mysql_kind(a: u8, b: u8) -> Kind {
    let names = || vec!["red".to_string(), "gr\"een".to_string(), "blue".to_string()];
    match a % 18 {
        0 => Kind::Int { unsigned: b & 1 == 1, bits: [8, 16, 24, 32, 64][usize::from(b >> 1) % 5] },
        1 => Kind::Year,
        2 => Kind::Float,
        3 => Kind::Decimal,
        4 => Kind::Bit { bits: u32::from(b) * 9 },
        5 => Kind::Date,
        6 => Kind::DateTime,
        7 => Kind::Timestamp,
        8 => Kind::Time,
        9 => Kind::Text { latin1: b & 1 == 1 },
        10 => Kind::Binary { pad_to: (b & 1 == 1).then_some(4) },
        11 => Kind::Enum(names()),
        12 => Kind::Set(names()),
        13 => Kind::Json,
        14 => Kind::Geometry,
        15 => Kind::Set((0..usize::from(b)).map(|i| i.to_string()).collect()),
        16 => Kind::Enum(Vec::new()),
        17 => Kind::Vector,
        _ => Kind::Text { latin1: false },
    }
}

fn mysql_value(a: u8, rest: &[u8]) -> mysql_common::Value {
    use mysql_common::Value as V;
    let mut n = [0u8; 8];
    let k = rest.len().min(8);
    n[..k].copy_from_slice(&rest[..k]);
    let word = u64::from_le_bytes(n);
    let byte = |i: usize| rest.get(i).copied().unwrap_or(0);
    match (a / 18) % 7 {
        0 => V::Int(word as i64),
        1 => V::UInt(word),
        2 => V::Float(f32::from_bits(word as u32)),
        3 => V::Double(f64::from_bits(word)),
        4 => V::Date(u16::from_le_bytes([byte(0), byte(1)]), byte(2), byte(3), byte(4), byte(5), byte(6), word as u32),
        5 => V::Time(
            byte(0) & 1 == 1,
            u32::from_le_bytes([byte(1), byte(2), byte(3), byte(4)]),
            byte(5),
            byte(6),
            byte(7),
            word as u32,
        ),
        _ => V::Bytes(rest.to_vec()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checksums_are_rewritten_per_event() {
        // Two minimal events of 23 bytes; the second's size field says 23 as well.
        let mut bytes = vec![0u8; 46];
        bytes[9] = 23;
        bytes[23 + 9] = 23;
        fix_checksums(&mut bytes);
        assert_eq!(&bytes[19..23], &crc32fast::hash(&bytes[..19]).to_le_bytes());
        assert_eq!(&bytes[42..46], &crc32fast::hash(&bytes[23..42]).to_le_bytes());
    }

    #[test]
    fn renderers_give_json_for_odd_values() {
        for input in [&b"\x00\x17\x00--"[..], b"\x02\x08\x00\xff\xff\xff\xff\xff\xff\xff\xff", b"\x01\x02\x00inf"] {
            let docs = values(input);
            assert_eq!(docs.len(), 1);
            check_json(&docs).unwrap();
        }
    }
}
