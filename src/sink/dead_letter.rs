//! Records the broker (or the producer's own size limit) refuses, and what happens to them.
//!
//! By default a refused record stops the connector: the error names the topic, the key, the
//! event's `source.position` and size, and the fix, and the checkpoint stays before it, so no
//! change is skipped. With `sink.dead_letter_topic` set, the record goes there instead (the
//! record itself with `cdcd.*` headers when it fits, else a small JSON stub carrying the error,
//! topic, key, position and `source` block) through a second producer whose delivery report
//! settles the original's acknowledgement: the checkpoint passes the record only once it is in
//! the dead-letter topic. Nothing is ever dropped silently.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};

use crate::core::acks::{AckTracker, TxnId};

/// Whether `code` means this one record can never be accepted, as opposed to a broker or
/// configuration problem that concerns every record.
pub fn refuses_record(code: RDKafkaErrorCode) -> bool {
    matches!(
        code,
        RDKafkaErrorCode::MessageSizeTooLarge
            | RDKafkaErrorCode::MessageBatchTooLarge
            | RDKafkaErrorCode::InvalidRecord
            | RDKafkaErrorCode::InvalidMessageSize
    )
}

/// One line that lets an operator find the record: topic, key, the event's position and table,
/// and its size.
pub fn describe(topic: &str, key: Option<&[u8]>, value: Option<&[u8]>) -> String {
    let mut key_text = key.map(|k| String::from_utf8_lossy(k).into_owned()).unwrap_or_else(|| "null".into());
    if key_text.len() > 200 {
        let cut = (0..=200).rev().find(|&i| key_text.is_char_boundary(i)).unwrap_or(0);
        key_text.truncate(cut);
        key_text.push('…');
    }
    let source = value.and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok()).map(|v| v["source"].clone());
    let field = |name: &str| source.as_ref().and_then(|s| s[name].as_str().map(str::to_string));
    let table = match (field("schema").or(field("db")), field("table")) {
        (Some(s), Some(t)) => format!(" (table {s}.{t})"),
        _ => String::new(),
    };
    format!(
        "topic {topic}, key {key_text}, source position {}{table}, {} bytes",
        field("position").unwrap_or_else(|| "unknown".into()),
        value.map_or(0, <[u8]>::len) + key.map_or(0, <[u8]>::len)
    )
}

/// What to tell the operator when a record is refused and there is no dead-letter topic.
pub fn refusal_fix() -> &'static str {
    "raise the limit that refused it (the topic's max.message.bytes on the broker, and sink.properties \"message.max.bytes\" to match), or set sink.dead_letter_topic to divert such records and go on; until then cdcd stops here and resumes from this record"
}

/// The dead-letter producer's delivery reports settle the original record's acknowledgement.
pub struct DeadLetterContext {
    pub tracker: Arc<AckTracker>,
    pub connector: String,
}

impl ClientContext for DeadLetterContext {}

impl ProducerContext for DeadLetterContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, opaque: usize) {
        let txn = TxnId(opaque as u64);
        match result {
            Ok(_) => self.tracker.delivered(txn),
            Err((err, msg)) => {
                let reason = format!("the dead-letter topic {} refused a record too: {err}", msg.topic());
                tracing::error!(connector = %self.connector, "{reason}");
                self.tracker.failed(txn, reason);
            }
        }
    }
}

pub struct DeadLetters {
    pub topic: String,
    pub producer: ThreadedProducer<DeadLetterContext>,
}

impl DeadLetters {
    /// Sends a refused record (already expected in the tracker under `txn`) to the dead-letter
    /// topic: as it was when it fits, else as a stub. Err means it could not even be queued.
    pub fn divert(
        &self,
        txn: TxnId,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        error: &str,
    ) -> Result<(), String> {
        let what = describe(topic, key, value);
        tracing::warn!(dead_letter_topic = %self.topic, "record refused ({error}); sending it to the dead-letter topic: {what}");
        let headers = OwnedHeaders::new()
            .insert(Header { key: "cdcd.error", value: Some(error) })
            .insert(Header { key: "cdcd.topic", value: Some(topic) });
        let mut whole = BaseRecord::with_opaque_to(&self.topic, txn.0 as usize).headers(headers.clone());
        if let Some(k) = key {
            whole = whole.key(k);
        }
        if let Some(v) = value {
            whole = whole.payload(v);
        }
        match self.send(whole) {
            Ok(()) => return Ok(()),
            Err(KafkaError::MessageProduction(code)) if refuses_record(code) => {}
            Err(e) => return Err(format!("dead-letter topic {}: {e}", self.topic)),
        }
        let stub = stub(topic, key, value, error);
        let mut small =
            BaseRecord::with_opaque_to(&self.topic, txn.0 as usize).headers(headers).payload(stub.as_slice());
        if let Some(k) = key {
            small = small.key(k);
        }
        self.send(small).map_err(|e| format!("dead-letter topic {}: {e}", self.topic))
    }

    /// Queues `rec`, waiting briefly while the dead-letter producer's queue is full.
    fn send(&self, mut rec: BaseRecord<'_, [u8], [u8], usize>) -> Result<(), KafkaError> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.producer.send(rec) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back))
                    if Instant::now() < deadline =>
                {
                    rec = back;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    pub fn flush(&self) {
        let _ = self.producer.flush(Duration::from_secs(0));
    }
}

/// A small record standing in for one too large to divert whole.
fn stub(topic: &str, key: Option<&[u8]>, value: Option<&[u8]>, error: &str) -> Vec<u8> {
    let parsed = value.and_then(|v| serde_json::from_slice::<serde_json::Value>(v).ok());
    let source = parsed.as_ref().map(|v| v["source"].clone()).unwrap_or(serde_json::Value::Null);
    let doc = serde_json::json!({
        "cdcd_dead_letter": {
            "error": error,
            "topic": topic,
            "key": key.and_then(|k| serde_json::from_slice::<serde_json::Value>(k).ok()),
            "op": parsed.as_ref().map(|v| v["op"].clone()),
            "position": source["position"],
            "source": source,
            "value_bytes": value.map_or(0, <[u8]>::len),
        }
    });
    serde_json::to_vec(&doc).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_names_topic_key_position_table_and_size() {
        let value = br#"{"before":null,"after":{"id":7},"source":{"schema":"public","table":"docs","position":"0000000001000000-1-0000000003"},"op":"c"}"#;
        let d = describe("app.public.docs", Some(br#"{"id":7}"#), Some(value));
        assert!(d.contains("topic app.public.docs") && d.contains(r#"key {"id":7}"#), "{d}");
        assert!(d.contains("0000000001000000-1-0000000003") && d.contains("table public.docs"), "{d}");
        assert!(d.contains(&format!("{} bytes", value.len() + 8)), "{d}");
        assert!(describe("t", None, Some(b"not json")).contains("key null, source position unknown"));
        let s: serde_json::Value =
            serde_json::from_slice(&stub("t", Some(br#"{"id":7}"#), Some(value), "too big")).unwrap();
        assert_eq!(s["cdcd_dead_letter"]["position"], "0000000001000000-1-0000000003");
        assert_eq!(s["cdcd_dead_letter"]["key"]["id"], 7);
        assert_eq!(s["cdcd_dead_letter"]["op"], "c");
    }
}
