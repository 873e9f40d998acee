//! `brook`: the broker and its command-line tool. The commands live in
//! `brook_broker::cli`; this file sets up logging and turns an error into
//! one line and an exit code.

// Input from the network or the disk must never reach an unwrap (see lib.rs).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::process::ExitCode;

use brook_broker::cli::Cli;
use clap::Parser;
use tracing_subscriber::EnvFilter;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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
    match Cli::parse().run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("brook: {e:#}");
            ExitCode::FAILURE
        }
    }
}
