//! `brook`: the broker and its command-line tool. The commands live in
//! `brook_broker::cli`; this file sets up logging and turns an error into
//! one line and an exit code.

// Input from the network or the disk must never reach an unwrap (see lib.rs).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

use std::process::ExitCode;

use brook_broker::cli::Cli;
use clap::Parser;

#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// As cat and grep: `brook topic list | head -1` ends by SIGPIPE, quietly,
/// when head stops reading. Rust ignores SIGPIPE, so a write to the closed
/// pipe fails and `println!` panics on it; the hook turns exactly that panic
/// into the signal's default action. (Restoring SIGPIPE for the whole
/// process would be wrong: socket writes through `writev` would raise it
/// when a broker closes a connection.)
fn end_quietly_on_a_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let text = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if text.contains("Broken pipe") || text.contains("BrokenPipe") {
            // SAFETY: resetting a signal to its default and raising it are
            // async-signal-safe; the process ends here.
            unsafe {
                libc::signal(libc::SIGPIPE, libc::SIG_DFL);
                libc::raise(libc::SIGPIPE);
            }
        }
        default(info)
    }));
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let _logging = match brook_broker::logging::init(cli.log_format(), cli.tracing().as_ref()) {
        Ok(logging) => logging,
        Err(e) => {
            eprintln!("brook: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    if !cli.is_server() {
        end_quietly_on_a_closed_stdout();
    }
    match cli.run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("brook: {e:#}");
            ExitCode::FAILURE
        }
    }
}
