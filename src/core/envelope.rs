//! The one envelope every connector emits (Debezium-compatible field names):
//! value `{"before", "after", "source", "op", "ts_ms"}`, key = JSON object of the primary key.
//! Records are written into reusable buffers; connectors provide rows and the `source` block as
//! [`Image`]s, which write themselves as cdcd's JSON ([`WriteJson`]) and as typed values for
//! Debezium's encodings ([`WriteTyped`]), whose schemas the [`TableSchema`] holds.

use crate::core::connect::{TableSchema, ValueWriter, WriteTyped};
use crate::core::json;
use crate::core::txn_meta::TxnBlock;
use crate::encode::avro::AvroWriter;
use crate::encode::dbz_json::JsonWriter;

/// The kind of change, with Debezium's one-letter codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// `c`: a row was inserted.
    Create,
    /// `u`: a row was updated (primary key unchanged).
    Update,
    /// `d`: a row was deleted; followed by a tombstone.
    Delete,
    /// `r`: a row read by the initial snapshot.
    Read,
    /// `t`: the table was truncated.
    Truncate,
}

impl Op {
    pub fn code(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
        }
    }
}

/// A set of operations (the ones `[events] skipped_operations` leaves out).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct OpSet(u8);

impl OpSet {
    const ALL: [Op; 5] = [Op::Create, Op::Update, Op::Delete, Op::Read, Op::Truncate];

    fn bit(op: Op) -> u8 {
        1 << (op as u8)
    }

    pub fn insert(&mut self, op: Op) {
        self.0 |= Self::bit(op);
    }

    pub fn contains(self, op: Op) -> bool {
        self.0 & Self::bit(op) != 0
    }
}

impl std::fmt::Display for OpSet {
    /// The letters, comma-separated, in Debezium's order (`c,u,d,t`).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let letters: Vec<&str> = Self::ALL.iter().filter(|op| self.contains(**op)).map(|op| op.code()).collect();
        f.write_str(&letters.join(","))
    }
}

/// Something that writes itself as one JSON value.
pub trait WriteJson: Sync {
    fn write_json(&self, out: &mut Vec<u8>);
}

/// A row, key or `source` block: writes itself in every encoding.
pub trait Image: WriteJson + WriteTyped {}
impl<T: WriteJson + WriteTyped> Image for T {}

/// How records are encoded, with what each needs per record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encode {
    /// cdcd's own JSON (the default).
    Friendly,
    /// Debezium's JSON as JsonConverter writes it, with or without `{"schema","payload"}`.
    DebeziumJson { schemas: bool },
    /// Avro in the Confluent wire format, with the registry ids of the key and value schemas.
    Avro { key_id: Option<u32>, value_id: u32 },
}

/// What a sink receives: topic, key bytes (None = null key) and value bytes (None = tombstone).
#[derive(Clone, Copy, Debug)]
pub struct Record<'a> {
    pub topic: &'a str,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    /// A fixed partition (transaction metadata's, so BEGIN and END keep their order); `None`:
    /// by key.
    pub partition: Option<i32>,
}

/// Reusable key and value buffers. One per connector; cleared, never freed, between events.
#[derive(Default)]
pub struct RecordBuf {
    pub key: Vec<u8>,
    pub value: Vec<u8>,
    has_key: bool,
    /// The key as cdcd's JSON when the encoding is another: snapshot deduplication compares
    /// keys as the source rendered them, whatever the wire encoding.
    key_identity: Vec<u8>,
    typed: bool,
}

/// The parts of one change event, borrowed from the connector's decoded row.
pub struct Change<'a> {
    pub op: Op,
    pub key: Option<&'a dyn Image>,
    pub before: Option<&'a dyn Image>,
    pub after: Option<&'a dyn Image>,
    pub source: &'a dyn Image,
    /// The table as transaction metadata names it (`schema.table`, `database.table`).
    pub collection: &'a str,
    /// The table's schemas for the typed encodings (`None`: cdcd's JSON only).
    pub schema: Option<&'a TableSchema>,
    /// When cdcd processed the event, microseconds since the epoch (Debezium's top-level
    /// `ts_ms` / `ts_us` / `ts_ns`).
    pub ts_us: i64,
}

impl RecordBuf {
    /// Fills the buffers with `change`'s key and envelope in `encode`, with its `transaction`
    /// block if transaction metadata is on. Fails (naming the problem) when a value does not
    /// fit the table's schema; nothing is then sent.
    pub fn encode(&mut self, change: &Change<'_>, encode: Encode, txn: Option<TxnBlock<'_>>) -> Result<(), String> {
        let (schemas, avro_ids) = match encode {
            Encode::Friendly => {
                self.set_change(change, txn);
                return Ok(());
            }
            Encode::DebeziumJson { schemas } => (schemas, None),
            Encode::Avro { key_id, value_id } => (false, Some((key_id, value_id))),
        };
        self.typed = true;
        let schema = change.schema.ok_or("this source has no Debezium schemas for its tables")?;
        self.has_key = change.key.is_some();
        self.key_identity.clear();
        if let Some(k) = change.key {
            k.write_json(&mut self.key_identity);
        }
        self.key.clear();
        self.value.clear();
        let (key_framing, value_framing) = match avro_ids {
            None => (
                Some(Framing::Json(schemas.then(|| schema.key_json()))),
                Framing::Json(schemas.then(|| schema.envelope_json())),
            ),
            Some((key_id, value_id)) => (key_id.map(Framing::Avro), Framing::Avro(value_id)),
        };
        if let (Some(k), Some(ks), Some(framing)) = (change.key, &schema.key, key_framing) {
            write_typed(&mut self.key, ks, framing, |w| k.write_typed(w)).map_err(|e| format!("key: {e}"))?;
        }
        write_typed(&mut self.value, &schema.envelope, value_framing, |w| write_envelope(w, change, txn))
    }

    /// Fills the buffers with `change`'s key and envelope in cdcd's JSON.
    pub fn set_change(&mut self, change: &Change<'_>, txn: Option<TxnBlock<'_>>) {
        self.typed = false;
        self.set_key(change.key);
        let out = &mut self.value;
        out.clear();
        out.extend_from_slice(b"{\"before\":");
        write_opt(out, change.before);
        out.extend_from_slice(b",\"after\":");
        write_opt(out, change.after);
        out.extend_from_slice(b",\"source\":");
        change.source.write_json(out);
        out.extend_from_slice(b",\"op\":\"");
        out.extend_from_slice(change.op.code().as_bytes());
        // Debezium's envelope carries `transaction` (null unless transaction metadata is on).
        out.extend_from_slice(b"\",\"transaction\":");
        match txn {
            Some(t) => t.write_json(out),
            None => out.extend_from_slice(b"null"),
        }
        write_times(out, change.ts_us);
        out.push(b'}');
    }

    /// Sets only the key, in cdcd's JSON.
    pub fn set_key(&mut self, key: Option<&dyn Image>) {
        self.key.clear();
        self.has_key = key.is_some();
        if let Some(k) = key {
            k.write_json(&mut self.key);
        }
    }

    /// The record carrying the current key and envelope.
    pub fn record<'a>(&'a self, topic: &'a str) -> Record<'a> {
        Record { topic, key: self.key_bytes(), value: Some(&self.value), partition: None }
    }

    /// The tombstone for the current key: same key, null value, so log compaction can drop the row.
    pub fn tombstone<'a>(&'a self, topic: &'a str) -> Record<'a> {
        Record { topic, key: self.key_bytes(), value: None, partition: None }
    }

    pub fn key_bytes(&self) -> Option<&[u8]> {
        self.has_key.then_some(self.key.as_slice())
    }

    /// The key as cdcd's JSON, whatever the encoding: what "the same row" means to snapshot
    /// deduplication.
    pub fn key_identity(&self) -> Option<&[u8]> {
        let k = if self.typed { &self.key_identity } else { &self.key };
        self.has_key.then_some(k.as_slice())
    }
}

/// The envelope's typed values, in the order of [`TableSchema`]'s envelope fields.
fn write_envelope(w: &mut dyn ValueWriter, change: &Change<'_>, txn: Option<TxnBlock<'_>>) {
    w.begin();
    for image in [change.before, change.after] {
        match image {
            Some(row) => row.write_typed(w),
            None => w.null(),
        }
    }
    change.source.write_typed(w);
    match txn {
        Some(t) => {
            w.begin();
            w.string(t.id);
            w.int(t.total_order as i64);
            w.int(t.data_collection_order as i64);
            w.end();
        }
        None => w.null(), // Debezium's default: no transaction metadata
    }
    w.string(change.op.code());
    w.int(change.ts_us.div_euclid(1000));
    w.int(change.ts_us);
    w.int(change.ts_us.saturating_mul(1000));
    w.end();
}

/// How a typed key or value is framed in its record.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Framing<'a> {
    /// JsonConverter's payload, wrapped with this schema JSON when schemas are on.
    Json(Option<&'a [u8]>),
    /// Avro in Confluent's wire format, with this registry id.
    Avro(u32),
}

/// Writes the value of `schema` that `write` gives into `out` (cleared first by the caller),
/// framed as `framing` says: the one place a typed key or value becomes record bytes.
pub(crate) fn write_typed(
    out: &mut Vec<u8>,
    schema: &crate::core::connect::Schema,
    framing: Framing<'_>,
    write: impl FnOnce(&mut dyn ValueWriter),
) -> Result<(), String> {
    match framing {
        Framing::Json(schema_json) => json_record(out, schema_json, |out| {
            let mut w = JsonWriter::new(schema, out);
            write(&mut w);
            w.finish()
        }),
        Framing::Avro(id) => {
            confluent_header(out, id);
            let mut w = AvroWriter::new(schema, out);
            write(&mut w);
            w.finish()
        }
    }
}

/// A JsonConverter record: the payload, wrapped as `{"schema":..,"payload":..}` when schemas
/// are on.
fn json_record(
    out: &mut Vec<u8>,
    schema: Option<&[u8]>,
    payload: impl FnOnce(&mut Vec<u8>) -> Result<(), String>,
) -> Result<(), String> {
    if let Some(s) = schema {
        out.extend_from_slice(b"{\"schema\":");
        out.extend_from_slice(s);
        out.extend_from_slice(b",\"payload\":");
    }
    payload(out)?;
    if schema.is_some() {
        out.push(b'}');
    }
    Ok(())
}

/// Confluent's wire format: magic byte 0, then the schema id, big-endian.
fn confluent_header(out: &mut Vec<u8>, id: u32) {
    out.push(0);
    out.extend_from_slice(&id.to_be_bytes());
}

fn write_opt(out: &mut Vec<u8>, v: Option<&dyn Image>) {
    match v {
        Some(v) => v.write_json(out),
        None => out.extend_from_slice(b"null"),
    }
}

/// Microseconds since the Unix epoch, now.
pub fn now_us() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as i64).unwrap_or(0)
}

/// Writes `,"ts_ms":..,"ts_us":..,"ts_ns":..` for a time in microseconds since the epoch.
pub fn write_times(out: &mut Vec<u8>, ts_us: i64) {
    out.extend_from_slice(b",\"ts_ms\":");
    json::write_i64(out, ts_us.div_euclid(1000));
    out.extend_from_slice(b",\"ts_us\":");
    json::write_i64(out, ts_us);
    out.extend_from_slice(b",\"ts_ns\":");
    json::write_i64(out, ts_us.saturating_mul(1000));
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Raw(&'static str);
    impl WriteJson for Raw {
        fn write_json(&self, out: &mut Vec<u8>) {
            out.extend_from_slice(self.0.as_bytes());
        }
    }
    impl WriteTyped for Raw {
        fn write_typed(&self, w: &mut dyn ValueWriter) {
            w.fail("raw JSON has no schema");
        }
    }

    #[test]
    fn envelope_has_debezium_fields_and_is_valid_json() {
        let mut buf = RecordBuf::default();
        let key = Raw(r#"{"id":1}"#);
        let before = Raw(r#"{"id":1,"v":"a"}"#);
        let after = Raw(r#"{"id":1,"v":"b"}"#);
        let source = Raw(r#"{"connector":"postgresql"}"#);
        buf.set_change(
            &Change {
                op: Op::Update,
                key: Some(&key),
                before: Some(&before),
                after: Some(&after),
                source: &source,
                collection: "s.t",
                schema: None,
                ts_us: 42_001,
            },
            None,
        );
        let rec = buf.record("t");
        let v: serde_json::Value = serde_json::from_slice(rec.value.unwrap()).unwrap();
        assert_eq!(v["op"], "u");
        assert_eq!(v["before"]["v"], "a");
        assert_eq!(v["after"]["v"], "b");
        assert_eq!(v["source"]["connector"], "postgresql");
        assert_eq!(
            (v["ts_ms"].as_i64(), v["ts_us"].as_i64(), v["ts_ns"].as_i64()),
            (Some(42), Some(42_001), Some(42_001_000))
        );
        assert!(v["transaction"].is_null());
        assert_eq!(rec.key.unwrap(), br#"{"id":1}"#);
        let tomb = buf.tombstone("t");
        assert!(tomb.value.is_none());
        assert_eq!(tomb.key.unwrap(), br#"{"id":1}"#);
    }

    #[test]
    fn missing_key_is_a_null_key_not_an_empty_one() {
        let mut buf = RecordBuf::default();
        let src = Raw("{}");
        buf.set_change(
            &Change {
                op: Op::Truncate,
                key: None,
                before: None,
                after: None,
                source: &src,
                collection: "s.t",
                schema: None,
                ts_us: 1,
            },
            None,
        );
        assert!(buf.record("t").key.is_none());
        let v: serde_json::Value = serde_json::from_slice(buf.record("t").value.unwrap()).unwrap();
        assert!(v["before"].is_null() && v["after"].is_null());
    }
}
