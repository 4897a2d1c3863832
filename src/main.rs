//! The `cdcd` command line: `run` and `check`, and the one place errors become exit codes
//! (0 ok, 2 bad configuration, 1 runtime failure).

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use cdcd::config::{self, SinkConfig, SourceConfig};
use cdcd::core::checkpoint::CheckpointProbe;
use cdcd::error::Error;
use cdcd::logging::{self, LogFormat};
use cdcd::source::Level;

/// `println!` for `cdcd check`'s report, with every secret masked.
macro_rules! say {
    ($($t:tt)*) => { println!("{}", cdcd::secrets::redact(&format!($($t)*))) };
}

#[derive(Parser)]
#[command(
    name = "cdcd",
    version,
    about = "Change-data-capture daemon: PostgreSQL logical replication and the MySQL / MariaDB binlog to Kafka, Debezium-compatible envelope",
    long_about = "cdcd streams row changes from PostgreSQL (pgoutput logical replication) and MySQL / MariaDB \
(row-based binlog) to Kafka as Debezium-compatible JSON envelopes, keyed by primary key, at least once. Progress is kept in an \
idempotent checkpoint, so a stop at any instant (kill -9 included) resumes without loss.",
    after_help = "Examples:\n  cdcd check --config connectors/demo-postgres.toml\n  cdcd run --config /etc/cdcd/connectors/\n  cdcd snapshot --config connectors/demo-postgres.toml --table public.orders --filter \"id > 1000\"\n\nExit codes: 0 ok, 1 runtime failure, 2 bad configuration."
)]
struct Cli {
    /// Log format: human-readable text or JSON lines (to stderr).
    #[arg(long, global = true, value_enum, default_value = "text", env = "CDCD_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the connector(s): a .toml file, or a directory where every *.toml is one connector.
    Run {
        /// Connector file (.toml), or a directory of them (one connector per *.toml)
        #[arg(long, short, value_name = "PATH")]
        config: PathBuf,
        /// Serve /health, /ready, /status and /metrics (Prometheus) on this address, e.g. 127.0.0.1:9187
        #[arg(long, value_name = "ADDR", env = "CDCD_HTTP")]
        http: Option<std::net::SocketAddr>,
    },
    /// Ask a running cdcd's HTTP listener whether it is alive (or ready); exit 0 if so, 1 if not.
    /// For container health checks, where no HTTP client is installed.
    Health {
        /// The listener's address (an unspecified IP such as 0.0.0.0 is asked on 127.0.0.1)
        #[arg(long, value_name = "ADDR", env = "CDCD_HTTP")]
        http: Option<std::net::SocketAddr>,
        /// Readiness (/ready: every connector snapshotting or streaming) instead of liveness (/health)
        #[arg(long)]
        ready: bool,
    },
    /// Snapshot one table again while its connector keeps streaming (an incremental snapshot):
    /// writes an execute-snapshot signal into the connector's source.signal_table, which the
    /// running daemon picks up from the log. Its rows arrive with op "r" and
    /// source.snapshot "incremental".
    Snapshot {
        /// Connector file (.toml), or a directory of them (then --connector picks one)
        #[arg(long, short, value_name = "PATH")]
        config: PathBuf,
        /// The connector, when the configuration holds several
        #[arg(long, value_name = "NAME")]
        connector: Option<String>,
        /// The table: schema.table (PostgreSQL) or database.table (MySQL / MariaDB)
        #[arg(long, value_name = "TABLE")]
        table: String,
        /// Only the rows matching this SQL condition, e.g. "id > 1000"
        #[arg(long, value_name = "SQL")]
        filter: Option<String>,
    },
    /// Check configuration and source prerequisites; print each finding with its fix.
    Check {
        /// Connector file (.toml), or a directory of them (one connector per *.toml)
        #[arg(long, short, value_name = "PATH")]
        config: PathBuf,
    },
}

fn main() -> ExitCode {
    limit_malloc_arenas();
    let cli = Cli::parse();
    logging::init(cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cdcd: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run { config, http } => run(config, http).await,
            Command::Check { config } => check(config).await,
            Command::Health { http, ready } => health(http, ready),
            Command::Snapshot { config, connector, table, filter } => snapshot(config, connector, table, filter).await,
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, through the logger, so JSON-lines logs stay machine-readable.
            tracing::error!(exit_code = e.exit_code(), "{e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}

async fn run(path: PathBuf, http: Option<std::net::SocketAddr>) -> Result<(), Error> {
    let configs = config::load(&path)?;
    tracing::info!(connectors = configs.len(), config = %path.display(), version = env!("CARGO_PKG_VERSION"), "starting");
    cdcd::runner::run(path, configs, http).await
}

fn health(http: Option<std::net::SocketAddr>, ready: bool) -> Result<(), Error> {
    let Some(addr) = http else {
        return Err(Error::Config(config::ConfigError::Other(
            "cdcd health needs the listener's address: --http ADDR or CDCD_HTTP".into(),
        )));
    };
    let path = if ready { "/ready" } else { "/health" };
    match cdcd::http::probe(addr, path) {
        Ok((200, body)) => {
            print!("{body}");
            Ok(())
        }
        Ok((code, body)) => Err(Error::Runtime(format!("{path} answered {code}: {}", body.trim()))),
        Err(e) => Err(Error::Runtime(format!("no answer from cdcd at {addr}{path}: {e}"))),
    }
}

async fn snapshot(
    path: PathBuf,
    connector: Option<String>,
    table: String,
    filter: Option<String>,
) -> Result<(), Error> {
    let configs = config::load(&path)?;
    let cfg = match &connector {
        Some(name) => configs.iter().find(|c| &c.name == name),
        None if configs.len() == 1 => configs.first(),
        None => {
            let names: Vec<&str> = configs.iter().map(|c| c.name.as_str()).collect();
            return Err(Error::Config(config::ConfigError::Other(format!(
                "{} holds several connectors ({}): pick one with --connector",
                path.display(),
                names.join(", ")
            ))));
        }
    };
    let Some(cfg) = cfg else {
        return Err(Error::Config(config::ConfigError::Other(format!(
            "no connector named {:?} in {}",
            connector.unwrap_or_default(),
            path.display()
        ))));
    };
    let id = cdcd::source::request::request_snapshot(cfg, &table, filter.as_deref())
        .await
        .map_err(|source| Error::Source { connector: cfg.name.clone(), source })?;
    say!("requested a snapshot of {table} from connector `{}` (signal {id}); the running daemon starts it when it reads the signal from the log", cfg.name);
    Ok(())
}

async fn check(path: PathBuf) -> Result<(), Error> {
    let configs = config::load(&path)?;
    say!("configuration: ok ({} connector(s) in {})", configs.len(), path.display());
    let mut failed = 0;
    for cfg in &configs {
        say!("\n[{}] ({})", cfg.name, cfg.file.display());
        let findings = match &cfg.source {
            SourceConfig::Postgres(pg) => {
                let stored = match cfg.kafka_store() {
                    Some(k) => cdcd::sink::kafka::checkpoints::probe(cfg, k),
                    None => CheckpointProbe::file(&cfg.checkpoint_dir()),
                };
                cdcd::source::postgres::check::check(cfg, pg, &stored).await
            }
            SourceConfig::Mysql(my) => cdcd::source::mysql::check::check(my).await,
        };
        for f in findings {
            let (label, fix_label) = match f.level {
                Level::Ok => ("ok  ", "fix"),
                Level::Note => ("note", "to change"),
                Level::Fail => {
                    failed += 1;
                    ("FAIL", "fix")
                }
            };
            say!("  {label}  {}", f.what);
            if let (Some(fix), false) = (f.fix, f.level == Level::Ok) {
                say!("        {fix_label}: {fix}");
            }
        }
        say!("  ok    {}", cfg.snapshot_mode().describe());
        say!("  ok    {}", cfg.events.describe());
        say!("  ok    {}", cfg.columns.describe());
        for r in &cfg.routes {
            let key = r.key_field().map_or("the key as it is (key_field = \"\")".to_string(), |f| {
                format!("key field {f} naming each table")
            });
            say!("  ok    route: {:?} -> topic {}, {key}", r.tables, r.topic);
        }
        match &cfg.sink {
            SinkConfig::Kafka(k) => {
                say!(
                    "  ok    Kafka client: librdkafka {} with {}; {}",
                    rdkafka::util::get_rdkafka_version().1,
                    cdcd::sink::kafka::builtin_features(),
                    cdcd::sink::kafka::security_summary(k)
                );
                match cdcd::sink::kafka::probe(k).await {
                    Ok(n) => say!("  ok    Kafka brokers {} reachable ({n} broker(s) in metadata)", k.brokers),
                    Err(e) => {
                        failed += 1;
                        // A TLS or SASL failure means the broker answered: its fix is in `e`.
                        if cdcd::sink::kafka::security_fix(&e).is_some() {
                            say!("  FAIL  Kafka brokers {}: {e}", k.brokers);
                        } else {
                            say!("  FAIL  Kafka brokers {}: {e}\n        fix: check sink.brokers and that the broker is running", k.brokers);
                        }
                    }
                }
            }
            SinkConfig::Stdout(_) => say!("  ok    sink: stdout"),
        }
        if let Some(k) = cfg.kafka_store() {
            match cdcd::sink::kafka::checkpoints::check_topic(k, &cfg.checkpoint_topic()).await {
                Ok((m, note)) => {
                    say!("  ok    {m}; active process elected in consumer group {}", cfg.leader_group());
                    if let Some(note) = note {
                        say!("  note  {note}");
                    }
                }
                Err(e) => {
                    failed += 1;
                    say!("  FAIL  {e}");
                }
            }
            if cfg.delivery() == config::Delivery::ExactlyOnce {
                say!(
                    "  note  delivery = \"exactly-once\" (transactional.id {}): consumers must read with isolation.level=read_committed to see each change once",
                    cfg.transactional_id()
                );
            }
        }
    }
    if failed > 0 {
        return Err(Error::Runtime(format!("{failed} check(s) failed")));
    }
    say!("\nall checks passed");
    Ok(())
}

/// glibc gives each thread that allocates its own arena (up to eight per core). Buffers here
/// cross threads (snapshot readers -> stream -> librdkafka), so memory freed into one arena sits
/// idle while another grows: the 5M-row snapshot benchmark peaked at 62-72 MB RSS with the
/// default and 42-50 MB with one or two arenas, at the same speed. `MALLOC_ARENA_MAX`, when
/// set, still wins.
fn limit_malloc_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: called first thing in main, before any other thread exists; mallopt only
        // changes a malloc tunable.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}
