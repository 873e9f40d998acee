//! `brook`: the broker and its command-line tool.

use std::process::ExitCode;

use brook_broker::config::ServeArgs;
use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

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
    Serve(ServeArgs),
    /// Measure a running broker: produce, consume or end-to-end load.
    Bench(brook_broker::bench::BenchArgs),
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

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => args.resolve().and_then(|config| {
            let runtime = tokio::runtime::Runtime::new()?;
            runtime.block_on(brook_broker::server::run(config, shutdown_signal()))
        }),
        Command::Bench(args) => tokio::runtime::Runtime::new()
            .map_err(anyhow::Error::from)
            .and_then(|rt| rt.block_on(brook_broker::bench::run(args))),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("brook: {e:#}");
            ExitCode::FAILURE
        }
    }
}
