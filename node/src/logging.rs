//! Logging through `tracing`: human-readable text or one JSON object per line (for log
//! shippers), on stderr. `RUST_LOG` wins over `node.log_filter`.

use clap::ValueEnum;

/// `--log-format`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber.
pub(crate) fn init(filter: &str, format: LogFormat) -> eyre::Result<()> {
    let filter = match tracing_subscriber::EnvFilter::try_from_default_env() {
        Ok(filter) => filter,
        Err(_) => tracing_subscriber::EnvFilter::try_new(filter)
            .map_err(|err| eyre::eyre!("node.log_filter: {filter:?} is not a filter: {err}"))?,
    };
    use std::io::IsTerminal;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        // Colours only for a terminal: log files (the devnet's) stay plain text.
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|err| eyre::eyre!("installing the log subscriber: {err}"))
}
