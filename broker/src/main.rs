//! `brook`: the broker and its command-line tool.

// Input from the network or the disk must never reach an unwrap (see lib.rs).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::process::ExitCode;

use brook_broker::cli;
use brook_broker::config::ServeArgs;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Brook: a Kafka-like event log broker in one binary.
#[derive(Parser)]
#[command(name = "brook", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start the broker.
    ///
    /// Every setting is a flag, an environment variable (BROOK_...) and a key of
    /// the TOML file given with --config. Precedence: flag, then environment,
    /// then the file, then the default. Logs go to stderr (RUST_LOG filters);
    /// the first line on stdout is `brook listening grpc=ADDR metrics=ADDR`.
    Serve(Box<ServeArgs>),
    /// Measure a running broker: produce, consume or end-to-end load.
    Bench(brook_broker::bench::BenchArgs),
    /// Create, list, describe, delete topics; add partitions.
    Topic {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(subcommand)]
        cmd: cli::TopicCmd,
    },
    /// Send standard input to a topic, one record per line.
    Produce {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(flatten)]
        cmd: cli::ProduceCmd,
    },
    /// Print a topic's records (as a group member with --group).
    Consume {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(flatten)]
        cmd: cli::ConsumeCmd,
    },
    /// List, describe, delete consumer groups; reset their offsets.
    Group {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(subcommand)]
        cmd: cli::GroupCmd,
    },
    /// Check or repair a data directory offline (no broker running on it).
    Data {
        #[command(subcommand)]
        cmd: brook_broker::datadir::DataCmd,
    },
    /// Consumer lag per partition: committed, end, lag in records and time.
    Lag {
        #[command(flatten)]
        conn: cli::Conn,
        #[command(flatten)]
        cmd: cli::LagCmd,
    },
}

async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(e) => {
            tracing::error!(error = %e, "cannot listen for SIGTERM; only SIGINT stops the broker");
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
        _ = term.recv() => tracing::info!("SIGTERM received"),
    }
}

fn block_on(f: impl Future<Output = anyhow::Result<()>>) -> anyhow::Result<()> {
    tokio::runtime::Runtime::new()?.block_on(f)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a terminal: logs sent to files and
        // collectors stay plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => args.resolve().and_then(|config| {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(brook_broker::server::run(config, shutdown_signal()))
        }),
        Command::Bench(args) => block_on(brook_broker::bench::run(args)),
        Command::Topic { conn, cmd } => block_on(cli::topic(&conn, cmd)),
        Command::Produce { conn, cmd } => block_on(cli::produce(&conn, cmd)),
        Command::Consume { conn, cmd } => block_on(cli::consume(&conn, cmd)),
        Command::Group { conn, cmd } => block_on(cli::group(&conn, cmd)),
        Command::Lag { conn, cmd } => block_on(cli::lag(&conn, cmd)),
        Command::Data { cmd } => match brook_broker::datadir::run(cmd) {
            // Damage found: the table says what; the exit code tells scripts.
            Ok(false) => return ExitCode::from(1),
            Ok(true) => Ok(()),
            Err(e) => Err(e),
        },
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("brook: {e:#}");
            ExitCode::FAILURE
        }
    }
}
