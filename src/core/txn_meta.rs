//! Transaction metadata, as Debezium's `provide.transaction.metadata` writes it: each change of a
//! source transaction carries `transaction: {id, total_order, data_collection_order}`, and BEGIN
//! and END records go to `<topic_prefix>.transaction`, keyed by the transaction's id.
//!
//! One addition: END carries `last_offsets`, per topic partition the offset of the
//! transaction's last record there. cdcd writes END only once every record of its transaction is
//! acknowledged by the broker (see `AckTracker::take_ready_end`), so a consumer that has read END
//! can read the whole transaction up to those offsets, without counting events.

use crate::core::json;

/// The open source transaction's metadata, kept by the emitter while it runs.
#[derive(Debug, Default)]
pub struct OpenTxn {
    pub id: String,
    /// When the source committed it, µs since the epoch.
    pub ts_us: i64,
    /// Events emitted so far (tombstones are not events, as in Debezium).
    pub events: u64,
    /// Events per data collection (`schema.table`, `db.table`), in order of first appearance.
    pub collections: Vec<(String, u64)>,
}

/// The `transaction` block of one change event.
#[derive(Debug, Clone, Copy)]
pub struct TxnBlock<'a> {
    pub id: &'a str,
    /// 1-based position of the event in its transaction.
    pub total_order: u64,
    /// 1-based position among the transaction's events of the same data collection.
    pub data_collection_order: u64,
}

impl TxnBlock<'_> {
    /// The block as JSON, as every JSON encoding writes it.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(b"{\"id\":");
        json::write_str(out, self.id);
        out.extend_from_slice(b",\"total_order\":");
        json::write_i64(out, self.total_order as i64);
        out.extend_from_slice(b",\"data_collection_order\":");
        json::write_i64(out, self.data_collection_order as i64);
        out.push(b'}');
    }
}

/// An envelope rendered as JSON without its transaction known (a MySQL XA transaction's change,
/// rendered at `XA PREPARE`), with `block` put in: the envelope's `"transaction":null` is the
/// last one in the value, right before `"op"` (a column named so sits earlier, in a row image).
/// `None` if the value has no such field.
pub fn with_block(value: &[u8], block: TxnBlock<'_>) -> Option<Vec<u8>> {
    const FIELD: &[u8] = b"\"transaction\":null,\"op\":";
    let at = value.windows(FIELD.len()).rposition(|w| w == FIELD)?;
    let null_at = at + b"\"transaction\":".len();
    let mut out = Vec::with_capacity(value.len() + 64);
    out.extend_from_slice(&value[..null_at]);
    block.write_json(&mut out);
    out.extend_from_slice(&value[null_at + 4..]);
    Some(out)
}

/// The partition BEGIN and END go to: one, so they keep the order they were sent in.
pub const PARTITION: i32 = 0;

impl OpenTxn {
    pub fn new(id: String, ts_us: i64) -> Self {
        OpenTxn { id, ts_us, events: 0, collections: Vec::new() }
    }

    /// Counts one more event of `collection` and returns its block.
    pub fn event(&mut self, collection: &str) -> TxnBlock<'_> {
        self.events += 1;
        let order = match self.collections.iter_mut().find(|(c, _)| c == collection) {
            Some((_, n)) => {
                *n += 1;
                *n
            }
            None => {
                self.collections.push((collection.to_string(), 1));
                1
            }
        };
        TxnBlock { id: &self.id, total_order: self.events, data_collection_order: order }
    }

    /// The END this transaction gets once its records are acknowledged.
    pub fn end(self) -> PendingEnd {
        PendingEnd { id: self.id, ts_us: self.ts_us, events: self.events, collections: self.collections }
    }
}

/// A committed transaction's END, waiting for its records' acknowledgements.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingEnd {
    pub id: String,
    pub ts_us: i64,
    pub events: u64,
    pub collections: Vec<(String, u64)>,
}

/// Where one topic partition's last record of a transaction landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastOffset {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

/// Notes that a record of a transaction landed at `offset`, keeping the highest per partition.
pub fn note_offset(offsets: &mut Vec<LastOffset>, topic: &str, partition: i32, offset: i64) {
    match offsets.iter_mut().find(|o| o.partition == partition && o.topic == topic) {
        Some(o) => o.offset = o.offset.max(offset),
        None => offsets.push(LastOffset { topic: topic.to_string(), partition, offset }),
    }
}

/// How the transaction topic's records are written: cdcd's JSON and Debezium's JSON without
/// schemas are the same payload; with schemas it is wrapped as JsonConverter does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaFormat {
    pub schemas: bool,
}

/// The transaction topic's name: Debezium's default `topic.transaction`.
pub fn topic(prefix: &str) -> String {
    format!("{prefix}.transaction")
}

/// The key of a BEGIN or END record: `{"id": ...}`.
pub fn write_key(out: &mut Vec<u8>, format: MetaFormat, id: &str) {
    wrapped(out, format, KEY_SCHEMA, |out| {
        out.extend_from_slice(b"{\"id\":");
        json::write_str(out, id);
        out.push(b'}');
    });
}

/// `payload` alone, or as JsonConverter with schemas writes it (`schema` ends in `"payload":`).
fn wrapped(out: &mut Vec<u8>, format: MetaFormat, schema: &str, payload: impl FnOnce(&mut Vec<u8>)) {
    out.clear();
    if format.schemas {
        out.extend_from_slice(schema.as_bytes());
    }
    payload(out);
    if format.schemas {
        out.push(b'}');
    }
}

/// A BEGIN record's value.
pub fn write_begin(out: &mut Vec<u8>, format: MetaFormat, id: &str, ts_us: i64) {
    write_value(out, format, "BEGIN", id, ts_us, None, None);
}

/// An END record's value, naming where the transaction's records landed.
pub fn write_end(out: &mut Vec<u8>, format: MetaFormat, end: &PendingEnd, offsets: &[LastOffset]) {
    write_value(out, format, "END", &end.id, end.ts_us, Some(end), Some(offsets));
}

fn write_value(
    out: &mut Vec<u8>,
    format: MetaFormat,
    status: &str,
    id: &str,
    ts_us: i64,
    end: Option<&PendingEnd>,
    offsets: Option<&[LastOffset]>,
) {
    wrapped(out, format, VALUE_SCHEMA, |out| write_payload(out, status, id, ts_us, end, offsets));
}

fn write_payload(
    out: &mut Vec<u8>,
    status: &str,
    id: &str,
    ts_us: i64,
    end: Option<&PendingEnd>,
    offsets: Option<&[LastOffset]>,
) {
    out.extend_from_slice(b"{\"status\":");
    json::write_str(out, status);
    out.extend_from_slice(b",\"id\":");
    json::write_str(out, id);
    out.extend_from_slice(b",\"event_count\":");
    match end {
        Some(e) => json::write_i64(out, e.events as i64),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"data_collections\":");
    match end {
        Some(e) => {
            out.push(b'[');
            for (i, (collection, n)) in e.collections.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"data_collection\":");
                json::write_str(out, collection);
                out.extend_from_slice(b",\"event_count\":");
                json::write_i64(out, *n as i64);
                out.push(b'}');
            }
            out.push(b']');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"ts_ms\":");
    json::write_i64(out, ts_us.div_euclid(1000));
    out.extend_from_slice(b",\"last_offsets\":");
    match offsets {
        Some(offsets) => {
            out.push(b'[');
            for (i, o) in offsets.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend_from_slice(b"{\"topic\":");
                json::write_str(out, &o.topic);
                out.extend_from_slice(b",\"partition\":");
                json::write_i64(out, i64::from(o.partition));
                out.extend_from_slice(b",\"offset\":");
                json::write_i64(out, o.offset);
                out.push(b'}');
            }
            out.push(b']');
        }
        None => out.extend_from_slice(b"null"),
    }
    out.push(b'}');
}

/// JsonConverter's envelope for the key, up to the payload (Debezium's
/// `TransactionMetadataKey`).
const KEY_SCHEMA: &str = r#"{"schema":{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"}],"optional":false,"name":"io.debezium.connector.common.TransactionMetadataKey","version":1},"payload":"#;

/// The same for the value (Debezium's `TransactionMetadataValue`, with cdcd's optional
/// `last_offsets` after Debezium's fields).
const VALUE_SCHEMA: &str = concat!(
    r#"{"schema":{"type":"struct","fields":["#,
    r#"{"type":"string","optional":false,"field":"status"},"#,
    r#"{"type":"string","optional":false,"field":"id"},"#,
    r#"{"type":"int64","optional":true,"field":"event_count"},"#,
    r#"{"type":"array","items":{"type":"struct","fields":[{"type":"string","optional":false,"field":"data_collection"},{"type":"int64","optional":false,"field":"event_count"}],"optional":true,"name":"event.collection","version":1},"optional":true,"field":"data_collections"},"#,
    r#"{"type":"int64","optional":false,"field":"ts_ms"},"#,
    r#"{"type":"array","items":{"type":"struct","fields":[{"type":"string","optional":false,"field":"topic"},{"type":"int32","optional":false,"field":"partition"},{"type":"int64","optional":false,"field":"offset"}],"optional":false,"name":"cdcd.partition.offset","version":1},"optional":true,"field":"last_offsets"}"#,
    r#"],"optional":false,"name":"io.debezium.connector.common.TransactionMetadataValue","version":1},"payload":"#
);

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(b: &[u8]) -> serde_json::Value {
        serde_json::from_slice(b).unwrap()
    }

    #[test]
    fn orders_count_per_transaction_and_per_collection_from_one() {
        let mut t = OpenTxn::new("7:100".into(), 5_000);
        let orders: Vec<(u64, u64)> = ["a", "b", "a", "a", "c", "b"]
            .iter()
            .map(|c| {
                let b = t.event(c);
                (b.total_order, b.data_collection_order)
            })
            .collect();
        assert_eq!(orders, [(1, 1), (2, 1), (3, 2), (4, 3), (5, 1), (6, 2)]);
        let end = t.end();
        assert_eq!(end.events, 6);
        assert_eq!(end.collections, [("a".to_string(), 3), ("b".to_string(), 2), ("c".to_string(), 1)]);
    }

    #[test]
    fn begin_and_end_records_parse_with_and_without_schemas() {
        let end = PendingEnd { id: "x\"1".into(), ts_us: 1_234_567, events: 3, collections: vec![("s.t".into(), 3)] };
        let offsets = vec![LastOffset { topic: "p.s.t".into(), partition: 2, offset: 41 }];
        for schemas in [false, true] {
            let f = MetaFormat { schemas };
            let (mut k, mut b, mut e) = (Vec::new(), Vec::new(), Vec::new());
            write_key(&mut k, f, &end.id);
            write_begin(&mut b, f, &end.id, end.ts_us);
            write_end(&mut e, f, &end, &offsets);
            let (k, b, e) = (parse(&k), parse(&b), parse(&e));
            let payload = |v: &serde_json::Value| if schemas { v["payload"].clone() } else { v.clone() };
            assert_eq!(payload(&k)["id"], "x\"1");
            let (b, e) = (payload(&b), payload(&e));
            assert_eq!(
                (b["status"].as_str(), b["event_count"].is_null(), b["ts_ms"].as_i64()),
                (Some("BEGIN"), true, Some(1234))
            );
            assert_eq!((e["status"].as_str(), e["event_count"].as_i64()), (Some("END"), Some(3)));
            assert_eq!(e["data_collections"][0]["data_collection"], "s.t");
            assert_eq!(e["last_offsets"][0]["offset"], 41);
            assert_eq!(e["last_offsets"][0]["partition"], 2);
        }
    }

    #[test]
    fn a_held_envelope_gets_its_block_in_the_envelope_not_in_a_row() {
        let value = br#"{"before":null,"after":{"transaction":null,"op":"x"},"source":{},"transaction":null,"op":"c","ts_ms":1}"#;
        let block = TxnBlock { id: "g:1", total_order: 2, data_collection_order: 1 };
        let out = with_block(value, block).expect("has the field");
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["transaction"]["id"], "g:1");
        assert_eq!(v["transaction"]["total_order"], 2);
        assert!(v["after"]["transaction"].is_null(), "the row's column is left alone");
        assert!(with_block(b"{}", block).is_none());
    }

    #[test]
    fn the_highest_offset_per_partition_is_kept() {
        let mut o = Vec::new();
        for (t, p, off) in [("a", 0, 5), ("a", 1, 3), ("a", 0, 9), ("b", 0, 1), ("a", 0, 7)] {
            note_offset(&mut o, t, p, off);
        }
        let got: Vec<_> = o.iter().map(|x| (x.topic.as_str(), x.partition, x.offset)).collect();
        assert_eq!(got, [("a", 0, 9), ("a", 1, 3), ("b", 0, 1)]);
    }
}
