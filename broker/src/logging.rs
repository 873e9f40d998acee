//! The process's log: what the broker and the CLI write on stderr, as text
//! for people (colours only on a terminal: files and `docker logs` get
//! plain text) or as one JSON object a line for log collectors (`brook
//! serve --log-format json`), each with its level, target, message,
//! fields and the span it was written in.

use tracing_subscriber::EnvFilter;

/// `--log-format`: how log lines are written.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object a line: `timestamp`, `level`, `target`, `fields`
    /// (with `message`) and `span`.
    Json,
}

/// Installs the process's log writer; `RUST_LOG` filters it (default `info`).
pub fn init(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder
            // Colour codes only for a terminal.
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
        LogFormat::Json => builder
            .json()
            .with_current_span(true)
            .with_span_list(false)
            .init(),
    }
}
