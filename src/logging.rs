//! Structured logs via `tracing`: human-readable by default, JSON lines with `--log-format json`
//! (or `CDCD_LOG_FORMAT=json`). Level from `RUST_LOG` (default `info`). Logs go to stderr so the
//! stdout sink's JSON lines stay clean, through a writer that masks every registered secret
//! ([`crate::secrets`]).

use tracing_subscriber::EnvFilter;

use crate::secrets::RedactingStderr;

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,librdkafka=warn"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(RedactingStderr::new).with_ansi(ansi);
    match format {
        LogFormat::Text => builder.with_target(false).init(),
        LogFormat::Json => builder.json().flatten_event(true).with_current_span(false).init(),
    }
}
