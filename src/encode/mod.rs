//! Encodings: how an envelope becomes key and value bytes. cdcd's own friendly JSON is written
//! by the connectors' [`WriteJson`](crate::core::envelope::WriteJson) rows; the typed encodings
//! (Debezium's JSON, Avro) walk Connect schemas while the rows write typed values.

pub mod avro;
pub mod cursor;
pub mod dbz_json;
pub mod registry;
pub mod subjects;
