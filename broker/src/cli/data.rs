//! `brook data verify|repair`: offline checks and repair of a data
//! directory (no broker may run on it; the directory's lock makes sure).

use std::path::PathBuf;

use anyhow::Context;
use brook_storage::verify::{self, Finding};

/// `brook data` subcommands.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum DataCmd {
    /// Check every batch of every segment and every index entry; print a
    /// table of the damage found. Exits 1 if there is any, 0 if none.
    /// Takes the directory's shared lock: refused while a broker runs on it.
    #[command(
        after_help = "Examples:\n  brook data verify ./brook-data\n  brook data verify ./brook-data --json"
    )]
    Verify {
        /// The broker's data directory.
        dir: PathBuf,
        /// Print the findings as JSON lines instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Move the damaged segments and indexes of one partition into its
    /// `quarantine/` folder (nothing is deleted), and say exactly what moved.
    /// The broker then answers DATA_LOSS for a moved segment's offsets,
    /// never reuses them, and rebuilds moved indexes. Takes the directory's
    /// exclusive lock: refused while a broker runs on it.
    #[command(
        after_help = "Examples:\n  brook data repair ./brook-data --partition orders/3 --dry-run\n  brook data repair ./brook-data --partition orders/3"
    )]
    Repair {
        /// The broker's data directory.
        dir: PathBuf,
        /// The partition to repair, as TOPIC/PARTITION.
        #[arg(long, value_name = "TOPIC/PARTITION")]
        partition: String,
        /// Only say what would be moved.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs a `brook data` command; `Ok(false)` means damage was found.
pub(crate) fn run(cmd: DataCmd) -> anyhow::Result<bool> {
    match cmd {
        DataCmd::Verify { dir, json } => {
            let report = verify::verify_dir(&dir)?;
            if json {
                for f in &report.findings {
                    println!("{}", finding_json(f));
                }
            } else {
                print_table(&report.findings);
                println!(
                    "checked {} partitions, {} segments, {} batches ({} bytes): {}",
                    report.partitions,
                    report.segments,
                    report.batches,
                    report.bytes,
                    match report.findings.len() {
                        0 => "no damage".to_string(),
                        n => format!("{n} problems"),
                    }
                );
            }
            Ok(report.findings.is_empty())
        }
        DataCmd::Repair {
            dir,
            partition,
            dry_run,
        } => {
            let (topic, id) = partition
                .rsplit_once('/')
                .and_then(|(t, p)| Some((t, p.parse::<u32>().ok()?)))
                .with_context(|| format!("--partition {partition:?} is not TOPIC/PARTITION"))?;
            let report = verify::repair_partition(&dir, topic, id, dry_run)?;
            let verb = if dry_run { "would move" } else { "moved" };
            if report.moved.is_empty() {
                println!("{topic}/{id}: nothing to move");
            }
            for line in &report.moved {
                println!("{verb} {line}");
            }
            for f in &report.left {
                println!(
                    "left as is: {} (offsets {}): nothing to move",
                    f.detail,
                    offsets(f)
                );
            }
            Ok(true)
        }
    }
}

fn offsets(f: &Finding) -> String {
    f.offsets
        .map_or_else(|| "-".into(), |(a, b)| format!("{a}..{b}"))
}

fn print_table(findings: &[Finding]) {
    if findings.is_empty() {
        return;
    }
    println!(
        "{:<24} {:>9} {:<22} {:<28} {:<22} {:<24} DETAIL",
        "TOPIC", "PARTITION", "PROBLEM", "FILE", "BYTES", "OFFSETS"
    );
    for f in findings {
        println!(
            "{:<24} {:>9} {:<22} {:<28} {:<22} {:<24} {}",
            f.topic,
            f.partition.map_or_else(|| "-".into(), |p| p.to_string()),
            f.problem.name(),
            f.file
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned()),
            f.bytes
                .map_or_else(|| "-".into(), |(a, b)| format!("{a}..{b}")),
            offsets(f),
            f.detail
        );
    }
}

fn finding_json(f: &Finding) -> serde_json::Value {
    serde_json::json!({
        "topic": f.topic,
        "partition": f.partition,
        "file": f.file,
        "problem": f.problem.name(),
        "bytes": f.bytes.map(|(a, b)| [a, b]),
        "offsets": f.offsets.map(|(a, b)| [a, b]),
        "detail": f.detail,
    })
}
