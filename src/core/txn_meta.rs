//! Transaction metadata, as Debezium's `provide.transaction.metadata` writes it: each change of a
//! source transaction carries `transaction: {id, total_order, data_collection_order}`, and BEGIN
//! and END records go to `<topic_prefix>.transaction`, keyed by the transaction's id.
//!
//! One addition: END carries `last_offsets`, per topic partition the offset of the
//! transaction's last record there. cdcd writes END only once every record of its transaction is
//! acknowledged by the broker (see `AckTracker::take_ready_end`), so a consumer that has read END
//! can read the whole transaction up to those offsets, without counting events.

use std::sync::{Arc, LazyLock, OnceLock};

use crate::core::connect::{Field, Schema, ValueWriter};
use crate::core::envelope::{write_typed, Framing};
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

/// How the transaction topic's records are encoded: as the change events are.
#[derive(Debug, Clone)]
pub enum MetaFormat {
    /// JSON: cdcd's JSON and Debezium's without schemas are the same payload; with `schemas`
    /// it is wrapped as JsonConverter does.
    Json { schemas: bool },
    /// Avro in Confluent's wire format. The registry ids of the topic's key and value schemas
    /// are learnt when the first BEGIN is sent (the emitter registers them) and shared with
    /// what sends END, which only ever follows its BEGIN.
    Avro(Arc<OnceLock<AvroIds>>),
}

impl MetaFormat {
    pub fn avro() -> Self {
        MetaFormat::Avro(Arc::new(OnceLock::new()))
    }
}

/// The registry ids of the transaction topic's key and value schemas.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AvroIds {
    pub key: u32,
    pub value: u32,
}

/// The transaction topic's name: Debezium's default `topic.transaction`.
pub fn topic(prefix: &str) -> String {
    format!("{prefix}.transaction")
}

/// The Connect schemas of the transaction topic's records (Debezium's
/// `TransactionMetadataKey` and `TransactionMetadataValue`, the value with cdcd's optional
/// `last_offsets` after Debezium's fields), with JsonConverter's schema JSON rendered once.
pub struct MetaSchemas {
    pub key: Schema,
    pub value: Schema,
    key_json: Vec<u8>,
    value_json: Vec<u8>,
}

/// The transaction topic's schemas, built on first use.
pub fn schemas() -> &'static MetaSchemas {
    static SCHEMAS: LazyLock<MetaSchemas> = LazyLock::new(|| {
        let key = Schema::structure(vec![Field::new("id", Schema::string())])
            .named("io.debezium.connector.common.TransactionMetadataKey")
            .version(1);
        let collection = Schema::structure(vec![
            Field::new("data_collection", Schema::string()),
            Field::new("event_count", Schema::int64()),
        ])
        .named("event.collection")
        .version(1)
        .optional();
        let offset = Schema::structure(vec![
            Field::new("topic", Schema::string()),
            Field::new("partition", Schema::int32()),
            Field::new("offset", Schema::int64()),
        ])
        .named("cdcd.partition.offset")
        .version(1);
        let value = Schema::structure(vec![
            Field::new("status", Schema::string()),
            Field::new("id", Schema::string()),
            Field::new("event_count", Schema::int64().optional()),
            Field::new("data_collections", Schema::array(collection).optional()),
            Field::new("ts_ms", Schema::int64()),
            Field::new("last_offsets", Schema::array(offset).optional()),
        ])
        .named("io.debezium.connector.common.TransactionMetadataValue")
        .version(1);
        let (mut key_json, mut value_json) = (Vec::new(), Vec::new());
        key.write_json(&mut key_json, None);
        value.write_json(&mut value_json, None);
        MetaSchemas { key, value, key_json, value_json }
    });
    &SCHEMAS
}

/// A BEGIN record's key and value.
pub fn write_begin(
    key: &mut Vec<u8>,
    value: &mut Vec<u8>,
    format: &MetaFormat,
    id: &str,
    ts_us: i64,
) -> Result<(), String> {
    write_record(key, value, format, id, |w| write_value(w, "BEGIN", id, ts_us, None, None))
}

/// An END record's key and value, naming where the transaction's records landed.
pub fn write_end(
    key: &mut Vec<u8>,
    value: &mut Vec<u8>,
    format: &MetaFormat,
    end: &PendingEnd,
    offsets: &[LastOffset],
) -> Result<(), String> {
    write_record(key, value, format, &end.id, |w| write_value(w, "END", &end.id, end.ts_us, Some(end), Some(offsets)))
}

/// The key `{"id": ...}` and the value `write` gives, in `format`.
fn write_record(
    key: &mut Vec<u8>,
    value: &mut Vec<u8>,
    format: &MetaFormat,
    id: &str,
    write: impl FnOnce(&mut dyn ValueWriter),
) -> Result<(), String> {
    let s = schemas();
    let (key_framing, value_framing) = match format {
        MetaFormat::Json { schemas } => (
            Framing::Json(schemas.then_some(s.key_json.as_slice())),
            Framing::Json(schemas.then_some(s.value_json.as_slice())),
        ),
        MetaFormat::Avro(ids) => {
            let ids = ids.get().ok_or("the transaction topic's Avro schemas are not registered yet")?;
            (Framing::Avro(ids.key), Framing::Avro(ids.value))
        }
    };
    key.clear();
    value.clear();
    write_typed(key, &s.key, key_framing, |w| {
        w.begin();
        w.string(id);
        w.end();
    })?;
    write_typed(value, &s.value, value_framing, write)
}

/// A BEGIN (`end` and `offsets` none) or END value's fields, in the value schema's order.
fn write_value(
    w: &mut dyn ValueWriter,
    status: &str,
    id: &str,
    ts_us: i64,
    end: Option<&PendingEnd>,
    offsets: Option<&[LastOffset]>,
) {
    w.begin();
    w.string(status);
    w.string(id);
    match end {
        Some(e) => {
            w.int(e.events as i64);
            w.begin();
            for (collection, n) in &e.collections {
                w.begin();
                w.string(collection);
                w.int(*n as i64);
                w.end();
            }
            w.end();
        }
        None => {
            w.null();
            w.null();
        }
    }
    w.int(ts_us.div_euclid(1000));
    match offsets {
        Some(offsets) => {
            w.begin();
            for o in offsets {
                w.begin();
                w.string(&o.topic);
                w.int(i64::from(o.partition));
                w.int(o.offset);
                w.end();
            }
            w.end();
        }
        None => w.null(),
    }
    w.end();
}

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

    /// The record decoded to JSON: parsed, or read as Avro with the schema's Avro form (the
    /// Confluent header checked), as an Avro reader with the registry's schemas would.
    fn decode(bytes: &[u8], format: &MetaFormat, schema: &Schema, id: u32) -> serde_json::Value {
        match format {
            MetaFormat::Json { schemas: false } => parse(bytes),
            MetaFormat::Json { schemas: true } => parse(bytes)["payload"].clone(),
            MetaFormat::Avro(_) => {
                assert_eq!(bytes[0], 0, "magic byte");
                assert_eq!(u32::from_be_bytes(bytes[1..5].try_into().unwrap()), id);
                let avro = apache_avro::Schema::parse(&crate::encode::avro::avro_schema(schema).unwrap()).unwrap();
                let v = apache_avro::from_avro_datum(&avro, &mut &bytes[5..], None).unwrap();
                serde_json::Value::try_from(v).unwrap()
            }
        }
    }

    #[test]
    fn begin_and_end_records_read_back_in_every_encoding() {
        let end = PendingEnd { id: "x\"1".into(), ts_us: 1_234_567, events: 3, collections: vec![("s.t".into(), 3)] };
        let offsets = vec![LastOffset { topic: "p.s.t".into(), partition: 2, offset: 41 }];
        let avro = MetaFormat::avro();
        let (mut k, mut v) = (Vec::new(), Vec::new());
        let err = write_begin(&mut k, &mut v, &avro, &end.id, end.ts_us).unwrap_err();
        assert!(err.contains("not registered"), "{err}");
        if let MetaFormat::Avro(ids) = &avro {
            ids.set(AvroIds { key: 7, value: 8 }).unwrap();
        }
        let s = schemas();
        for format in [MetaFormat::Json { schemas: false }, MetaFormat::Json { schemas: true }, avro] {
            write_begin(&mut k, &mut v, &format, &end.id, end.ts_us).unwrap();
            let (bk, b) = (decode(&k, &format, &s.key, 7), decode(&v, &format, &s.value, 8));
            write_end(&mut k, &mut v, &format, &end, &offsets).unwrap();
            let (ek, e) = (decode(&k, &format, &s.key, 7), decode(&v, &format, &s.value, 8));
            let f = format!("{format:?}");
            assert_eq!((&bk["id"], &ek["id"]), (&serde_json::json!("x\"1"), &serde_json::json!("x\"1")), "{f}");
            assert_eq!(
                b,
                serde_json::json!({"status": "BEGIN", "id": "x\"1", "event_count": null, "data_collections": null,
                    "ts_ms": 1234, "last_offsets": null}),
                "{f}"
            );
            assert_eq!(
                e,
                serde_json::json!({"status": "END", "id": "x\"1", "event_count": 3,
                    "data_collections": [{"data_collection": "s.t", "event_count": 3}], "ts_ms": 1234,
                    "last_offsets": [{"topic": "p.s.t", "partition": 2, "offset": 41}]}),
                "{f}"
            );
        }
    }

    /// What real Debezium 3.6.3 writes (tests/debezium/txn-postgres-3.6.3-schemas.json): the
    /// JSON schemas, and so the Avro schemas made from the same Connect schemas, are Debezium's.
    #[test]
    fn schemas_are_debeziums_with_last_offsets_added() {
        let debezium_key = r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"id"}],"optional":false,"name":"io.debezium.connector.common.TransactionMetadataKey","version":1}"#;
        let debezium_value = r#"{"type":"struct","fields":[{"type":"string","optional":false,"field":"status"},{"type":"string","optional":false,"field":"id"},{"type":"int64","optional":true,"field":"event_count"},{"type":"array","items":{"type":"struct","fields":[{"type":"string","optional":false,"field":"data_collection"},{"type":"int64","optional":false,"field":"event_count"}],"optional":true,"name":"event.collection","version":1},"optional":true,"field":"data_collections"},{"type":"int64","optional":false,"field":"ts_ms"}],"optional":false,"name":"io.debezium.connector.common.TransactionMetadataValue","version":1}"#;
        let s = schemas();
        assert_eq!(parse(&s.key_json), parse(debezium_key.as_bytes()));
        let mut ours = parse(&s.value_json);
        let last = ours["fields"].as_array_mut().unwrap().pop().unwrap();
        assert_eq!(last["field"], "last_offsets");
        assert_eq!(ours, parse(debezium_value.as_bytes()));
        // Debezium's schema as Confluent's AvroConverter (AvroData) writes it: records named after
        // the Connect names, optional fields a union with null first and default null.
        let mut avro = crate::encode::avro::avro_schema(&s.value).unwrap();
        let last = avro["fields"].as_array_mut().unwrap().pop().unwrap();
        assert_eq!(last["name"], "last_offsets");
        assert_eq!(
            avro,
            serde_json::json!({
                "type": "record", "name": "TransactionMetadataValue", "namespace": "io.debezium.connector.common",
                "fields": [
                    {"name": "status", "type": "string"},
                    {"name": "id", "type": "string"},
                    {"name": "event_count", "type": ["null", "long"], "default": null},
                    {"name": "data_collections", "type": ["null", {"type": "array", "items": ["null", {
                        "type": "record", "name": "collection", "namespace": "event",
                        "fields": [{"name": "data_collection", "type": "string"}, {"name": "event_count", "type": "long"}],
                        "connect.version": 1, "connect.name": "event.collection"}]}], "default": null},
                    {"name": "ts_ms", "type": "long"}
                ],
                "connect.version": 1, "connect.name": "io.debezium.connector.common.TransactionMetadataValue"
            })
        );
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
