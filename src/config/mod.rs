//! Connector configuration: one TOML file per connector, or a directory of them.
//! Unknown keys and wrong types are errors that name the key; `${VAR}` is expanded in string
//! values (never in keys), and an unset variable is an error naming it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::secrets::{self, ConnUrl, Properties};
use crate::source::tables::TableSelection;

pub mod columns;
mod delivery;
mod events;
pub mod routes;
mod snapshot;
mod unique;

pub use columns::ColumnsConfig;
pub use delivery::{CheckpointConfig, Delivery, StoreName};
pub use events::EventsConfig;

pub use snapshot::SnapshotTuning;
use snapshot::{default_chunk_rows, default_statement_timeout};

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: `{key}`: {message}")]
    Invalid { path: PathBuf, key: String, message: String },
    #[error("{0}")]
    Other(String),
}

impl ConfigError {
    fn invalid(path: &Path, key: &str, message: impl Into<String>) -> Self {
        ConfigError::Invalid { path: path.to_path_buf(), key: key.to_string(), message: message.into() }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectorConfig {
    /// Connector name; default for the slot, the publication and the topic prefix.
    pub name: String,
    pub source: SourceConfig,
    pub sink: SinkConfig,
    #[serde(default)]
    pub checkpoint: CheckpointConfig,
    /// Which changes become records (skipped operations, tombstones).
    #[serde(default)]
    pub events: EventsConfig,
    /// Which columns are published, and which masked.
    #[serde(default)]
    pub columns: ColumnsConfig,
    /// Several tables into one topic.
    #[serde(default)]
    pub routes: Vec<routes::RouteConfig>,
    /// The file this connector came from; set by the loader.
    #[serde(skip)]
    pub file: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum SourceConfig {
    Postgres(PostgresSourceConfig),
    Mysql(MysqlSourceConfig),
}

/// How a MySQL / MariaDB source records and resumes its binlog position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PositionMode {
    /// GTID when the server has GTIDs on (MariaDB always does), file + offset otherwise.
    Auto,
    Gtid,
    /// Binlog file name and offset only.
    File,
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MysqlSourceConfig {
    /// `mysql://user:pass@host:3306`; `${ENV}` expanded.
    pub url: ConnUrl,
    /// Include list of `database.table` patterns; `*` matches any run of characters.
    pub tables: TableSelection,
    /// Tables the include list matches that are not captured (`database.table` patterns).
    #[serde(default)]
    pub tables_exclude: Vec<String>,
    /// Replica id cdcd uses on the binlog connection; unique among the server's replicas.
    pub server_id: u32,
    #[serde(default = "default_snapshot")]
    pub snapshot: SnapshotMode,
    #[serde(default = "default_position_mode")]
    pub position: PositionMode,
    /// Message-key columns per table pattern, for tables without a primary key or to override
    /// it (Debezium's `message.key.columns`), e.g. `"shop.audit_log" = ["event_id"]`.
    #[serde(default)]
    pub key_columns: BTreeMap<String, Vec<String>>,
    /// How long the server may stay silent before the connection counts as dead and the session
    /// restarts from the checkpoint (a replication heartbeat keeps a healthy idle link talking).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Rows per snapshot chunk; each chunk is read in a short transaction of its own.
    #[serde(default = "default_chunk_rows")]
    pub snapshot_chunk_rows: u32,
    /// Snapshot readers, each with its own connection; default: the machine's cores, at most 4.
    pub snapshot_workers: Option<u32>,
    /// Most snapshot rows read per second, over all readers; 0 (default): no limit.
    #[serde(default)]
    pub snapshot_max_rows_per_sec: u32,
    /// Longest a snapshot query that carries a signal's `filter` may run, in seconds, before
    /// the server cancels it and the request ends (lock waits time out at half of it and are
    /// retried). Unfiltered reads are not limited. 0: no limit.
    #[serde(default = "default_statement_timeout")]
    pub snapshot_statement_timeout_secs: u64,
    /// A table (`database.table`) whose inserted rows are signals, as Debezium's
    /// `signal.data.collection`: `id`, `type`, `data` columns; `execute-snapshot` snapshots
    /// tables again while streaming. `cdcd snapshot` writes these rows. Default: none.
    pub signal_table: Option<String>,
    /// Most memory, in MB, that the changes of prepared XA transactions may hold while they wait
    /// for their `XA COMMIT` or `XA ROLLBACK` (they are published only at the commit).
    #[serde(default = "default_xa_max_prepared_mb")]
    pub xa_max_prepared_mb: u32,
}

fn default_xa_max_prepared_mb() -> u32 {
    256
}

impl MysqlSourceConfig {
    pub fn snapshot_tuning(&self) -> SnapshotTuning {
        SnapshotTuning::new(
            self.snapshot_chunk_rows,
            self.snapshot_workers,
            self.snapshot_max_rows_per_sec,
            self.snapshot_statement_timeout_secs,
        )
    }
}

fn default_position_mode() -> PositionMode {
    PositionMode::Auto
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotMode {
    /// Read every configured table once before streaming (when there is no checkpoint yet).
    Initial,
    /// As `initial`, then stop (exit 0) once every table is read and checkpointed, dropping the
    /// PostgreSQL slot; a later start with that checkpoint stops at once.
    #[serde(rename = "initial_only")]
    InitialOnly,
    /// As `initial`, and read every table again when the checkpoint's position is gone from
    /// the server (a lost or invalidated PostgreSQL slot, a purged MySQL binlog) instead of
    /// stopping.
    #[serde(rename = "when_needed")]
    WhenNeeded,
    /// Stream only changes from now on. `"no_data"` is the same (Debezium's name for it; unlike
    /// Debezium's MySQL `never`, this never reads old binlogs from their start).
    #[serde(alias = "no_data")]
    Never,
}

impl SnapshotMode {
    /// Whether a connector without a checkpoint reads the tables' existing rows.
    pub fn reads_existing_rows(self) -> bool {
        self != SnapshotMode::Never
    }

    /// What `cdcd check` says about the mode.
    pub fn describe(self) -> &'static str {
        match self {
            SnapshotMode::Initial => "snapshot = initial: without a checkpoint, existing rows are read while streaming",
            SnapshotMode::InitialOnly => {
                "snapshot = initial_only: existing rows are read, then the connector stops (exit 0; a PostgreSQL slot is dropped)"
            }
            SnapshotMode::WhenNeeded => {
                "snapshot = when_needed: as initial, and every table is read again if the checkpoint's position is gone from the server"
            }
            SnapshotMode::Never => "snapshot = never (no_data): only changes from the start position on",
        }
    }
}

impl ConnectorConfig {
    /// The source's `snapshot` mode.
    pub fn snapshot_mode(&self) -> SnapshotMode {
        match &self.source {
            SourceConfig::Postgres(pg) => pg.snapshot,
            SourceConfig::Mysql(my) => my.snapshot,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSourceConfig {
    /// `postgres://user:pass@host:port/db` or key=value form; `${ENV}` expanded.
    pub url: ConnUrl,
    /// Include list of `schema.table` patterns; `*` matches any run of characters.
    pub tables: TableSelection,
    /// Tables the include list matches that are not captured (`schema.table` patterns).
    #[serde(default)]
    pub tables_exclude: Vec<String>,
    #[serde(default = "default_snapshot")]
    pub snapshot: SnapshotMode,
    /// Replication slot name; default `cdcd_<name>`.
    pub slot: Option<String>,
    /// Publication name; default `cdcd_<name>`.
    pub publication: Option<String>,
    /// Make the slot a failover slot (PostgreSQL 17+), which standbys with
    /// `sync_replication_slots = on` keep in step, so streaming continues on a promoted standby.
    /// Ignored on older servers.
    #[serde(default = "yes")]
    pub slot_failover: bool,
    /// What to do when the slot the checkpoint needs is gone, invalidated, or past the
    /// checkpoint: `"stop"` (default) with the error that says how to re-snapshot, or
    /// `"resnapshot"`: make a new slot, send a TRUNCATE record per table, and snapshot every
    /// table again while streaming, so consumers converge without a person.
    #[serde(default)]
    pub on_slot_lost: OnSlotLost,
    /// Write nothing to the source: no publication or slot changes beyond the slot itself, and
    /// snapshot chunks tied to the log by positions read instead of a watermark written. Needed
    /// to decode from a physical standby (PostgreSQL 16+, the publication made on the primary),
    /// and for sources cdcd may not write to.
    #[serde(default)]
    pub read_only: bool,
    /// How often to send a standby status update even when nothing changed, in seconds.
    #[serde(default = "default_status_interval")]
    pub status_interval_secs: u64,
    /// Message-key columns per table pattern, for tables without a primary key or to override
    /// it (Debezium's `message.key.columns`), e.g. `"public.pgbench_history" = ["tid", "aid"]`.
    #[serde(default)]
    pub key_columns: BTreeMap<String, Vec<String>>,
    /// How long the server may stay silent before the connection counts as dead and the session
    /// restarts from the checkpoint (status updates ask the server for a reply, so a healthy
    /// idle link still talks).
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    /// Seconds between heartbeats written to the source database; 0 (default) writes none.
    /// Status updates already let the slot advance while the captured tables are idle; a
    /// heartbeat is for setups where the captured database must show WAL activity of its own
    /// (e.g. a consumer watching a heartbeat table, or a server that decodes nothing else).
    #[serde(default)]
    pub heartbeat_interval_secs: u64,
    /// The heartbeat statement; default `SELECT pg_logical_emit_message(false, 'cdcd_heartbeat', '')`,
    /// which writes a WAL record and no table row.
    pub heartbeat_query: Option<String>,
    /// Rows per snapshot chunk; each chunk is read in a short transaction of its own.
    #[serde(default = "default_chunk_rows")]
    pub snapshot_chunk_rows: u32,
    /// Snapshot readers, each with its own connection; default: the machine's cores, at most 4.
    pub snapshot_workers: Option<u32>,
    /// Most snapshot rows read per second, over all readers; 0 (default): no limit.
    #[serde(default)]
    pub snapshot_max_rows_per_sec: u32,
    /// Longest a snapshot query that carries a signal's `filter` may run, in seconds, before
    /// the server cancels it and the request ends (lock waits time out at half of it and are
    /// retried). Unfiltered reads are not limited. 0: no limit.
    #[serde(default = "default_statement_timeout")]
    pub snapshot_statement_timeout_secs: u64,
    /// A table (`schema.table`) whose inserted rows are signals, as Debezium's
    /// `signal.data.collection`: `id`, `type`, `data` columns; `execute-snapshot` snapshots
    /// tables again while streaming. `cdcd snapshot` writes these rows. Default: none.
    pub signal_table: Option<String>,
    /// How often to look for new tables that match `tables` while streaming, in seconds; they
    /// join the publication and are snapshotted. 0 turns the lookup off.
    #[serde(default = "default_table_discovery")]
    pub table_discovery_interval_secs: u64,
}

/// `source.on_slot_lost` (PostgreSQL).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnSlotLost {
    #[default]
    Stop,
    Resnapshot,
}

fn yes() -> bool {
    true
}

fn default_table_discovery() -> u64 {
    10
}

impl PostgresSourceConfig {
    pub fn snapshot_tuning(&self) -> SnapshotTuning {
        SnapshotTuning::new(
            self.snapshot_chunk_rows,
            self.snapshot_workers,
            self.snapshot_max_rows_per_sec,
            self.snapshot_statement_timeout_secs,
        )
    }
}

fn default_snapshot() -> SnapshotMode {
    SnapshotMode::Initial
}
fn default_status_interval() -> u64 {
    10
}
fn default_timeout() -> u64 {
    30
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
// One per connector, read once: the size difference costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
pub enum SinkConfig {
    Kafka(KafkaSinkConfig),
    /// JSON lines on standard output: `{"topic", "key", "value"}` per record.
    Stdout(StdoutSinkConfig),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSinkConfig {
    pub brokers: String,
    /// Topic = `<topic_prefix>.<schema>.<table>`; default: the connector name.
    pub topic_prefix: Option<String>,
    /// Passed through to librdkafka (e.g. `"compression.type" = "lz4"`).
    #[serde(default)]
    pub properties: Properties,
    /// Optional cap on events per second sent to the broker (protects a shared cluster).
    pub max_events_per_second: Option<u32>,
    /// Where records the broker refuses for good (too large, invalid) go instead of stopping the
    /// connector; unset (default): such a record stops the connector with an error naming it.
    pub dead_letter_topic: Option<String>,
    /// `json` (default) or `avro` (Confluent wire format with `[sink.schema_registry]`).
    #[serde(default)]
    pub format: FormatName,
    /// `friendly` (cdcd's JSON, the default for `json`) or `debezium` (Debezium's own
    /// representations; the only one `avro` carries).
    pub encoding: Option<EncodingName>,
    /// Options of `encoding = "debezium"`, named as Debezium's.
    #[serde(default)]
    pub debezium: DebeziumConfig,
    /// Where `format = "avro"` registers its schemas.
    pub schema_registry: Option<SchemaRegistryConfig>,
    /// `at-least-once` (the default with the file store) or `exactly-once` (Kafka transactions;
    /// the default, and the only choice, with `[checkpoint] store = "kafka"`).
    pub delivery: Option<Delivery>,
    /// The producer's `transactional.id` under exactly-once; default `cdcd-<name>`.
    pub transactional_id: Option<String>,
    /// Exactly-once: how often the open Kafka transaction is committed, in milliseconds.
    pub commit_interval_ms: Option<u64>,
    /// Debezium's transaction metadata: BEGIN and END records in `<topic_prefix>.transaction`
    /// and a `transaction` block in each change (END once its records are acknowledged).
    #[serde(default)]
    pub transaction_metadata: bool,
}

/// The record format on the wire.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FormatName {
    #[default]
    Json,
    /// Avro binary behind Confluent's 5-byte header (magic 0, schema id), schemas in a registry.
    Avro,
}

/// `[sink.schema_registry]`: a Confluent-compatible Schema Registry.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SchemaRegistryConfig {
    /// `http://host:8081` or `https://host:8081[/prefix]`.
    pub url: String,
    /// Basic auth (Confluent's `basic.auth.user.info`); `${ENV}` references are expanded.
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM file of the CA that signed the registry's certificate (default: the system's CAs).
    pub ca_file: Option<String>,
    /// How subjects are named, as Confluent's serializers' `subject.name.strategy`.
    #[serde(default)]
    pub subject_name_strategy: crate::encode::subjects::SubjectNameStrategy,
    /// Seconds to wait for one registry answer (default 30).
    pub timeout_secs: Option<u64>,
}

/// The envelope's value representation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncodingName {
    /// cdcd's lossless JSON: exact decimals as strings, ISO-8601 times, no schemas.
    #[default]
    Friendly,
    /// Debezium's: Connect types (decimals as bytes, times as epoch numbers), JsonConverter.
    Debezium,
}

/// `[sink.debezium]`: Debezium's converter and connector options that change the encoding.
/// Keys left out take their [`Default`].
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DebeziumConfig {
    /// JsonConverter's `schemas.enable`: each key and value as `{"schema": .., "payload": ..}`.
    /// Default true, as Kafka Connect's JsonConverter.
    pub schemas_enable: bool,
    pub decimal_handling_mode: crate::core::connect::DecimalMode,
    pub time_precision_mode: crate::core::connect::TimeMode,
    pub binary_handling_mode: crate::core::connect::BinaryMode,
}

impl Default for DebeziumConfig {
    fn default() -> Self {
        DebeziumConfig {
            schemas_enable: true,
            decimal_handling_mode: Default::default(),
            time_precision_mode: Default::default(),
            binary_handling_mode: Default::default(),
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StdoutSinkConfig {
    pub topic_prefix: Option<String>,
    #[serde(default)]
    pub encoding: EncodingName,
    #[serde(default)]
    pub debezium: DebeziumConfig,
}

impl ConnectorConfig {
    fn encoding(&self) -> (EncodingName, &DebeziumConfig) {
        match &self.sink {
            SinkConfig::Kafka(k) if k.format == FormatName::Avro => (EncodingName::Debezium, &k.debezium),
            SinkConfig::Kafka(k) => (k.encoding.unwrap_or_default(), &k.debezium),
            SinkConfig::Stdout(s) => (s.encoding, &s.debezium),
        }
    }

    /// The schema registry of `format = "avro"` (`None` for JSON).
    pub fn schema_registry(&self) -> Option<&SchemaRegistryConfig> {
        match &self.sink {
            SinkConfig::Kafka(k) if k.format == FormatName::Avro => k.schema_registry.as_ref(),
            _ => None,
        }
    }

    /// How the emitter encodes records (for Avro, the schema ids are filled in per table).
    pub fn encode(&self) -> crate::core::envelope::Encode {
        use crate::core::envelope::Encode;
        if self.schema_registry().is_some() {
            return Encode::Avro { key_id: None, value_id: 0 };
        }
        match self.encoding() {
            (EncodingName::Friendly, _) => Encode::Friendly,
            (EncodingName::Debezium, d) => Encode::DebeziumJson { schemas: d.schemas_enable },
        }
    }

    /// The Debezium options the sources build typed schemas with; `None` for cdcd's JSON.
    pub fn typed_options(&self) -> Option<crate::core::connect::TypedOptions> {
        match self.encoding() {
            (EncodingName::Friendly, _) => None,
            (EncodingName::Debezium, d) => Some(crate::core::connect::TypedOptions {
                decimal: d.decimal_handling_mode,
                time: d.time_precision_mode,
                binary: d.binary_handling_mode,
            }),
        }
    }

    pub fn topic_prefix(&self) -> &str {
        let p = match &self.sink {
            SinkConfig::Kafka(k) => k.topic_prefix.as_deref(),
            SinkConfig::Stdout(s) => s.topic_prefix.as_deref(),
        };
        p.unwrap_or(&self.name)
    }

    /// Default name for slots and publications: `cdcd_<name>` folded to what PostgreSQL accepts.
    pub fn default_object_name(&self) -> String {
        let folded: String =
            self.name.chars().map(|c| if c.is_ascii_alphanumeric() { c.to_ascii_lowercase() } else { '_' }).collect();
        format!("cdcd_{folded}")
    }
}

/// Loads one `.toml` file, or every `*.toml` in a directory (sorted by file name).
pub fn load(path: &Path) -> Result<Vec<ConnectorConfig>, ConfigError> {
    let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    let files = if meta.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .collect();
        files.sort();
        if files.is_empty() {
            return Err(ConfigError::Other(format!("{}: no *.toml connector files in this directory", path.display())));
        }
        files
    } else {
        vec![path.to_path_buf()]
    };
    let configs = files.iter().map(|f| load_file(f)).collect::<Result<Vec<_>, _>>()?;
    unique::check(&configs)?;
    Ok(configs)
}

pub fn load_file(path: &Path) -> Result<ConnectorConfig, ConfigError> {
    let text =
        std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
    parse(path, &text)
}

/// Parses and validates one connector's TOML text; `path` is only used in messages.
pub fn parse(path: &Path, text: &str) -> Result<ConnectorConfig, ConfigError> {
    let mut cfg: ConnectorConfig =
        toml::from_str(text).map_err(|e| ConfigError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
    cfg.file = path.to_path_buf();
    match &mut cfg.source {
        SourceConfig::Postgres(pg) => pg.tables.exclude = pg.tables_exclude.clone(),
        SourceConfig::Mysql(my) => my.tables.exclude = my.tables_exclude.clone(),
    }
    expand_all(&mut cfg, path)?;
    register_secrets(&cfg);
    validate(&cfg, path)?;
    Ok(cfg)
}

fn expand_all(cfg: &mut ConnectorConfig, path: &Path) -> Result<(), ConfigError> {
    match &mut cfg.source {
        SourceConfig::Postgres(pg) => {
            pg.url = ConnUrl(expand_env(&pg.url).map_err(|m| ConfigError::invalid(path, "source.url", m))?)
        }
        SourceConfig::Mysql(my) => {
            my.url = ConnUrl(expand_env(&my.url).map_err(|m| ConfigError::invalid(path, "source.url", m))?)
        }
    }
    if let SinkConfig::Kafka(k) = &mut cfg.sink {
        k.brokers = expand_env(&k.brokers).map_err(|m| ConfigError::invalid(path, "sink.brokers", m))?;
        if let Some(r) = &mut k.schema_registry {
            r.url = expand_env(&r.url).map_err(|m| ConfigError::invalid(path, "sink.schema_registry.url", m))?;
            for (key, v) in [("username", &mut r.username), ("password", &mut r.password)] {
                if let Some(s) = v {
                    *s = expand_env(s)
                        .map_err(|m| ConfigError::invalid(path, &format!("sink.schema_registry.{key}"), m))?;
                }
            }
        }
        for (key, value) in k.properties.iter_mut() {
            if let toml::Value::String(s) = value {
                *s = expand_env(s).map_err(|m| ConfigError::invalid(path, &format!("sink.properties.{key}"), m))?;
            }
        }
    }
    for (n, m) in cfg.columns.mask.iter_mut().enumerate() {
        if let Some(salt) = &mut m.salt {
            *salt = expand_env(salt).map_err(|e| ConfigError::invalid(path, &format!("columns.mask[{n}].salt"), e))?;
        }
    }
    if let Some(p) = &cfg.checkpoint.path {
        let s = p.to_string_lossy();
        cfg.checkpoint.path =
            Some(expand_env(&s).map_err(|m| ConfigError::invalid(path, "checkpoint.path", m))?.into());
    }
    Ok(())
}

/// Registers the credentials a loaded configuration holds, so no output can show them: source
/// URL passwords (and a PostgreSQL key passphrase) and secret-looking sink properties.
fn register_secrets(cfg: &ConnectorConfig) {
    match &cfg.source {
        SourceConfig::Postgres(pg) => {
            if let Ok(u) = crate::source::postgres::tls::parse_url(&pg.url) {
                if let Some(pw) = u.config.get_password() {
                    secrets::register(&String::from_utf8_lossy(pw));
                }
                if let Some(pw) = u.tls.key_password() {
                    secrets::register(pw);
                }
            }
        }
        SourceConfig::Mysql(my) => {
            if let Ok(u) = crate::source::mysql::tls::parse_url(&my.url) {
                if let Some(pw) = u.opts.pass() {
                    secrets::register(pw);
                }
            }
        }
    }
    for salt in cfg.columns.mask.iter().filter_map(|m| m.salt.as_deref()) {
        secrets::register(salt);
    }
    if let SinkConfig::Kafka(k) = &cfg.sink {
        if let Some(pw) = k.schema_registry.as_ref().and_then(|r| r.password.as_deref()) {
            secrets::register(pw);
        }
        for (key, value) in k.properties.iter() {
            if secrets::is_secret_property(key) {
                secrets::register(&property_string(value).unwrap_or_default());
            }
        }
    }
}

/// Expands `${VAR}`, `${file:PATH}` and `${credential:NAME}` references (see [`secrets`]).
/// `$$` is a literal `$`.
pub fn expand_env(s: &str) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(stripped) = after.strip_prefix('$') {
            out.push('$');
            rest = stripped;
        } else if let Some(body) = after.strip_prefix('{') {
            let end = body.find('}').ok_or_else(|| format!("unterminated `${{` in `{s}`"))?;
            let name = &body[..end];
            out.push_str(&secrets::resolve(name)?);
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

fn validate(cfg: &ConnectorConfig, path: &Path) -> Result<(), ConfigError> {
    if cfg.name.is_empty() || !cfg.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.') {
        return Err(ConfigError::invalid(
            path,
            "name",
            "must be non-empty and use only letters, digits, `_`, `-`, `.`",
        ));
    }
    match &cfg.source {
        SourceConfig::Postgres(pg) => {
            crate::source::postgres::tls::parse_url(&pg.url).map_err(|e| {
                ConfigError::invalid(
                    path,
                    "source.url",
                    format!(
                        "not a usable PostgreSQL connection string ({e}); expected postgres://user:password@host:5432/dbname[?sslmode=verify-full&sslrootcert=/path/ca.pem]"
                    ),
                )
            })?;
            check_table_patterns(path, &pg.tables, "schema.table", "public.*")?;
            check_key_columns(path, &pg.key_columns, "schema.table")?;
            for (key, name) in [("source.slot", &pg.slot), ("source.publication", &pg.publication)] {
                if let Some(n) = name {
                    if n.is_empty()
                        || n.len() > 63
                        || !n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
                    {
                        return Err(ConfigError::invalid(path, key, "use 1-63 lower-case letters, digits and `_`"));
                    }
                }
            }
            if pg.read_only && pg.heartbeat_interval_secs > 0 {
                return Err(ConfigError::invalid(
                    path,
                    "source.heartbeat_interval_secs",
                    "a heartbeat writes to the source, which source.read_only forbids: set it to 0",
                ));
            }
            if pg.status_interval_secs == 0 {
                return Err(ConfigError::invalid(path, "source.status_interval_secs", "must be at least 1"));
            }
            check_timeout(path, pg.timeout_secs)?;
        }
        SourceConfig::Mysql(my) => {
            crate::source::mysql::tls::parse_url(&my.url).map_err(|e| {
                ConfigError::invalid(
                    path,
                    "source.url",
                    format!("not a usable MySQL URL ({e}); expected mysql://user:password@host:3306[?ssl-mode=VERIFY_IDENTITY&ssl-ca=/path/ca.pem]"),
                )
            })?;
            check_table_patterns(path, &my.tables, "database.table", "shop.*")?;
            check_key_columns(path, &my.key_columns, "database.table")?;
            check_timeout(path, my.timeout_secs)?;
            if my.server_id == 0 {
                return Err(ConfigError::invalid(
                    path,
                    "source.server_id",
                    "must be a non-zero replica id, unique among the server's replicas",
                ));
            }
        }
    }
    cfg.events.skipped().map_err(|m| ConfigError::invalid(path, "events.skipped_operations", m))?;
    cfg.columns.validate().map_err(|(key, m)| ConfigError::invalid(path, &key, m))?;
    let mut reserved = vec![cfg.checkpoint_topic(), crate::core::txn_meta::topic(cfg.topic_prefix())];
    if let SinkConfig::Kafka(k) = &cfg.sink {
        reserved.extend(k.dead_letter_topic.clone());
    }
    routes::validate(&cfg.routes, &reserved).map_err(|(key, m)| ConfigError::invalid(path, &key, m))?;
    if let SinkConfig::Kafka(k) = &cfg.sink {
        if k.brokers.trim().is_empty() {
            return Err(ConfigError::invalid(path, "sink.brokers", "list at least one host:port"));
        }
        check_format(path, k)?;
        for (key, value) in &k.properties {
            if property_string(value).is_none() {
                return Err(ConfigError::invalid(
                    path,
                    &format!("sink.properties.{key}"),
                    "must be a string, number or boolean",
                ));
            }
        }
        if k.dead_letter_topic.as_deref().is_some_and(|t| t.trim().is_empty()) {
            return Err(ConfigError::invalid(
                path,
                "sink.dead_letter_topic",
                "must be a topic name (leave it out to stop on refused records)",
            ));
        }
        if k.max_events_per_second == Some(0) {
            return Err(ConfigError::invalid(
                path,
                "sink.max_events_per_second",
                "must be at least 1 (leave it out for no limit)",
            ));
        }
    }
    delivery::validate(cfg, path)
}

/// `format = "avro"` needs a registry and carries Debezium's representations only; a registry
/// given to JSON would be silently unused, so it is refused too.
fn check_format(path: &Path, k: &KafkaSinkConfig) -> Result<(), ConfigError> {
    match (k.format, &k.schema_registry) {
        (FormatName::Avro, None) => Err(ConfigError::invalid(
            path,
            "sink.schema_registry",
            "format = \"avro\" needs a schema registry: add [sink.schema_registry] with url = \"http://host:8081\"",
        )),
        (FormatName::Avro, Some(_)) if k.encoding == Some(EncodingName::Friendly) => Err(ConfigError::invalid(
            path,
            "sink.encoding",
            "format = \"avro\" carries Debezium's representations only; remove `encoding` or set it to \"debezium\"",
        )),
        (FormatName::Avro, Some(r)) => {
            let settings = r.settings();
            crate::encode::registry::RegistryClient::new(&settings, std::time::Duration::from_secs(1))
                .map(|_| ())
                .map_err(|e| ConfigError::invalid(path, "sink.schema_registry", e.to_string()))
        }
        (FormatName::Json, Some(_)) => Err(ConfigError::invalid(
            path,
            "sink.schema_registry",
            "is only used with format = \"avro\"; add that or remove the section",
        )),
        (FormatName::Json, None) => Ok(()),
    }
}

impl SchemaRegistryConfig {
    pub fn settings(&self) -> crate::encode::registry::RegistrySettings {
        crate::encode::registry::RegistrySettings {
            url: self.url.clone(),
            username: self.username.clone(),
            password: self.password.clone(),
            ca_file: self.ca_file.clone(),
        }
    }

    pub fn timeout(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.timeout_secs.unwrap_or(30).max(1))
    }
}

fn check_table_patterns(path: &Path, tables: &TableSelection, shape: &str, example: &str) -> Result<(), ConfigError> {
    if tables.include.is_empty() {
        return Err(ConfigError::invalid(
            path,
            "source.tables",
            format!("list at least one `{shape}` pattern, e.g. [\"{example}\"]"),
        ));
    }
    let lists = [("source.tables", &tables.include), ("source.tables_exclude", &tables.exclude)];
    for (key, t) in lists.iter().flat_map(|(key, list)| list.iter().map(move |t| (*key, t))) {
        let parts: Vec<&str> = t.split('.').collect();
        if parts.len() != 2 || parts.iter().any(|p| p.is_empty()) {
            return Err(ConfigError::invalid(
                path,
                key,
                format!("`{t}` is not `{shape}` (use `*` as a wildcard, e.g. `{example}`)"),
            ));
        }
    }
    Ok(())
}

fn check_timeout(path: &Path, secs: u64) -> Result<(), ConfigError> {
    if !(3..=3600).contains(&secs) {
        return Err(ConfigError::invalid(path, "source.timeout_secs", "must be between 3 and 3600 seconds"));
    }
    Ok(())
}

fn check_key_columns(path: &Path, keys: &BTreeMap<String, Vec<String>>, shape: &str) -> Result<(), ConfigError> {
    for (table, columns) in keys {
        let key = format!("source.key_columns.\"{table}\"");
        check_table_patterns(path, &TableSelection::from(vec![table.clone()]), shape, "public.audit_log")
            .map_err(|_| ConfigError::invalid(path, &key, format!("`{table}` is not a `{shape}` pattern")))?;
        if columns.is_empty() || columns.iter().any(|c| c.is_empty()) {
            return Err(ConfigError::invalid(path, &key, "list one or more column names, e.g. [\"id\"]"));
        }
    }
    Ok(())
}

/// A librdkafka property value as the string librdkafka expects.
pub fn property_string(v: &toml::Value) -> Option<String> {
    match v {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Float(f) => Some(f.to_string()),
        toml::Value::Boolean(b) => Some(b.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
name = "demo"
[source]
type = "postgres"
url = "postgres://u:p@127.0.0.1:5432/app"
tables = ["public.*"]
[sink]
type = "kafka"
brokers = "127.0.0.1:9092"
[sink.properties]
"linger.ms" = 5
[checkpoint]
path = "/tmp/x"
"#;

    fn p(text: &str) -> Result<ConnectorConfig, ConfigError> {
        parse(Path::new("c.toml"), text)
    }

    #[test]
    fn parses_the_documented_shape_with_defaults() {
        let c = p(GOOD).unwrap();
        assert_eq!(c.name, "demo");
        assert_eq!(c.topic_prefix(), "demo");
        assert_eq!(c.default_object_name(), "cdcd_demo");
        let SourceConfig::Postgres(pg) = &c.source else { panic!() };
        assert_eq!(pg.snapshot, SnapshotMode::Initial);
        let SinkConfig::Kafka(k) = &c.sink else { panic!() };
        assert_eq!(property_string(&k.properties["linger.ms"]).unwrap(), "5");
    }

    #[test]
    fn no_data_is_debeziums_name_for_never_and_events_default_to_all() {
        let c = p(&GOOD.replace("[sink]", "snapshot = \"no_data\"\n[sink]")).unwrap();
        let SourceConfig::Postgres(pg) = &c.source else { panic!() };
        assert_eq!(pg.snapshot, SnapshotMode::Never);
        assert_eq!(c.events, EventsConfig::default());
        assert!(c.events.tombstones_on_delete && c.events.skipped().unwrap() == Default::default());
    }

    #[test]
    fn debezium_encoding_and_its_options() {
        let c = p(&GOOD.replace("[sink.properties]", "encoding = \"debezium\"\n[sink.properties]")).unwrap();
        assert_eq!(c.encode(), crate::core::envelope::Encode::DebeziumJson { schemas: true });
        assert_eq!(c.typed_options(), Some(Default::default()));
        let c = p(&format!(
            "{}\n[sink.debezium]\nschemas_enable = false\ndecimal_handling_mode = \"string\"\nbinary_handling_mode = \"base64-url-safe\"",
            GOOD.replace("[sink.properties]\n\"linger.ms\" = 5\n", "encoding = \"debezium\"\n").replace("[checkpoint]\npath = \"/tmp/x\"\n", "")
        ))
        .unwrap();
        assert_eq!(c.encode(), crate::core::envelope::Encode::DebeziumJson { schemas: false });
        let t = c.typed_options().unwrap();
        assert_eq!(
            (t.decimal, t.binary),
            (crate::core::connect::DecimalMode::String, crate::core::connect::BinaryMode::Base64UrlSafe)
        );
        let partial = format!(
            "{}\n[sink.debezium]\ntime_precision_mode = \"connect\"",
            GOOD.replace("[sink.properties]\n\"linger.ms\" = 5\n", "encoding = \"debezium\"\n")
                .replace("[checkpoint]\npath = \"/tmp/x\"\n", "")
        );
        let c = p(&partial).unwrap();
        assert_eq!(
            c.encode(),
            crate::core::envelope::Encode::DebeziumJson { schemas: true },
            "keys left out keep their defaults"
        );
        assert_eq!(c.typed_options().unwrap().time, crate::core::connect::TimeMode::Connect);
        assert_eq!(p(GOOD).unwrap().encode(), crate::core::envelope::Encode::Friendly, "friendly stays the default");
        let err = p(&GOOD.replace("[sink.properties]", "encoding = \"avro-ish\"\n[sink.properties]")).unwrap_err();
        assert!(err.to_string().contains("avro-ish"), "{err}");
    }

    #[test]
    fn avro_needs_a_registry_and_carries_debeziums_values() {
        let avro = |extra: &str| {
            p(&GOOD.replace("[sink.properties]\n\"linger.ms\" = 5\n", &format!("format = \"avro\"\n{extra}")))
        };
        let registry = "[sink.schema_registry]\nurl = \"https://sr:8081\"\nusername = \"u\"\npassword = \"p\"\nsubject_name_strategy = \"record\"\n";
        let c = avro(registry).unwrap();
        assert_eq!(c.encode(), crate::core::envelope::Encode::Avro { key_id: None, value_id: 0 });
        assert_eq!(c.typed_options(), Some(Default::default()), "Avro carries Debezium's representations");
        let r = c.schema_registry().unwrap();
        assert_eq!(r.subject_name_strategy, crate::encode::subjects::SubjectNameStrategy::Record);
        assert_eq!(r.settings().username.as_deref(), Some("u"));

        let err = avro("").unwrap_err().to_string();
        assert!(err.contains("sink.schema_registry") && err.contains("url"), "{err}");
        let err = avro(&format!("encoding = \"friendly\"\n{registry}")).unwrap_err().to_string();
        assert!(err.contains("sink.encoding") && err.contains("debezium"), "{err}");
        let err = avro("[sink.schema_registry]\nurl = \"ftp://sr\"\n").unwrap_err().to_string();
        assert!(err.contains("not a registry URL"), "{err}");
        let err =
            p(&GOOD.replace("[sink.properties]", &format!("{registry}[sink.properties]"))).unwrap_err().to_string();
        assert!(err.contains("only used with format = \"avro\""), "{err}");
        let err = avro("[sink.schema_registry]\nurl = \"http://sr:1\"\nsubject_name_strategy = \"by_topic\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("by_topic"), "{err}");
    }

    #[test]
    fn unknown_key_is_named() {
        let err = p(&GOOD.replace("brokers =", "brokerz =")).unwrap_err().to_string();
        assert!(err.contains("brokerz"), "{err}");
        let err = p(&format!("{GOOD}\nbogus = 1")).unwrap_err().to_string();
        assert!(err.contains("bogus"), "{err}");
    }

    #[test]
    fn wrong_type_is_named() {
        let err = p(&GOOD.replace(r#"tables = ["public.*"]"#, "tables = 3")).unwrap_err().to_string();
        assert!(err.contains("tables") || err.contains("sequence"), "{err}");
        let err = p(&GOOD.replace(r#"type = "postgres""#, r#"type = "oracle""#)).unwrap_err().to_string();
        assert!(err.contains("oracle"), "{err}");
    }

    #[test]
    fn bad_values_name_the_key() {
        let err =
            p(&GOOD.replace("postgres://u:p@127.0.0.1:5432/app", "postgres://u:p@127.0.0.1:notaport/app")).unwrap_err();
        assert!(err.to_string().contains("source.url"), "{err}");
        let err = p(&GOOD.replace(r#"["public.*"]"#, r#"["nodot"]"#)).unwrap_err();
        assert!(err.to_string().contains("source.tables"), "{err}");
    }

    #[test]
    fn mysql_source_shape() {
        let text = r#"
name = "shop"
[source]
type = "mysql"
url = "mysql://u:p@127.0.0.1:3306"
tables = ["shop.*"]
server_id = 4242
[sink]
type = "stdout"
"#;
        let c = p(text).unwrap();
        let SourceConfig::Mysql(my) = &c.source else { panic!() };
        assert_eq!((my.server_id, my.position, my.snapshot), (4242, PositionMode::Auto, SnapshotMode::Initial));
        assert!(p(&text.replace("4242", "0")).unwrap_err().to_string().contains("source.server_id"));
        assert!(p(&text.replace("server_id = 4242", "")).unwrap_err().to_string().contains("server_id"));
        assert!(p(&text.replace("shop.*", "shop")).unwrap_err().to_string().contains("database.table"));
        let dbz = p(&format!("{text}encoding = \"debezium\"\n")).unwrap();
        assert!(dbz.typed_options().is_some(), "Debezium's encoding is available for MySQL/MariaDB too");
        let keyed = format!("{text}\n[source.key_columns]\n\"shop.log\" = [\"a\", \"b\"]\n")
            .replace("[sink]\ntype = \"stdout\"\n", "")
            + "[sink]\ntype = \"stdout\"\n";
        let c = p(&keyed).unwrap();
        let SourceConfig::Mysql(my) = &c.source else { panic!() };
        assert_eq!(my.key_columns["shop.log"], ["a", "b"]);
        let err = p(&keyed.replace("[\"a\", \"b\"]", "[]")).unwrap_err().to_string();
        assert!(err.contains("source.key_columns") && err.contains("shop.log"), "{err}");
    }

    #[test]
    fn env_expansion() {
        std::env::set_var("CDCD_TEST_PW", "s3cret");
        assert_eq!(expand_env("a${CDCD_TEST_PW}b$$c$d").unwrap(), "as3cretb$c$d");
        let err = expand_env("${CDCD_SURELY_UNSET_VAR}").unwrap_err();
        assert!(err.contains("CDCD_SURELY_UNSET_VAR"));
        let c = p(&GOOD.replace("u:p@", "u:${CDCD_TEST_PW}@")).unwrap();
        let SourceConfig::Postgres(pg) = &c.source else { panic!() };
        assert!(pg.url.contains("s3cret"));
    }

    #[test]
    fn directory_loads_every_toml_and_rejects_duplicates() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.toml"), GOOD).unwrap();
        std::fs::write(dir.path().join("b.toml"), GOOD.replace("demo", "other").replace("/tmp/x", "/tmp/y")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "ignored").unwrap();
        assert_eq!(load(dir.path()).unwrap().len(), 2);
        std::fs::write(dir.path().join("c.toml"), GOOD.replace("/tmp/x", "/tmp/z")).unwrap();
        assert!(load(dir.path()).unwrap_err().to_string().contains("unique"));
    }
}
