//! `brook consume`: print a topic's records, reading partitions directly or
//! as a member of a consumer group.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use anyhow::bail;
use brook_client::{Client, Consumer, ConsumerConfig, ConsumerRecord, ResetTo, StartFrom};
use bytes::Bytes;
use serde_json::json;

use super::connection::Conn;
use super::output::Output;
use super::position::parse_from;
use crate::signals::Signals;

/// `brook consume` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  brook consume orders --from earliest --max 10 --format json
  brook consume orders --partition 0 --from offset:1500
  brook consume orders --from time:1767225600000 --max 100
  brook consume orders -e
  brook consume orders --group billing --timeout 10s

Stops at --max, at the end with -e, after --timeout without a record, or on
Ctrl-C; then prints one line on stderr: records consumed, and what the group
committed. Exit status: 0, or 130 after Ctrl-C, or 1 on an error (damaged
records included: the message says how to skip them).")]
pub(crate) struct ConsumeArgs {
    #[command(flatten)]
    pub(crate) conn: Conn,
    #[command(flatten)]
    pub(crate) output: Output,
    /// Topic to read.
    pub(crate) topic: String,
    /// Consume as a member of this group (commits progress); otherwise read partitions directly.
    #[arg(long)]
    pub(crate) group: Option<String>,
    /// Partitions to read without a group (default: all).
    #[arg(long = "partition")]
    pub(crate) partitions: Vec<u32>,
    /// Where to start without a committed offset: earliest, latest, offset:N or time:MS
    ///
    ///   earliest   the first stored record
    ///   latest     only records appended from now on
    ///   offset:N   offset N of each partition read (without --group)
    ///   time:MS    the first record at or after MS, in ms since the Unix epoch (without --group)
    #[arg(
        long,
        value_name = "POSITION",
        default_value = "earliest",
        value_parser = parse_from,
        verbatim_doc_comment
    )]
    pub(crate) from: ResetTo,
    /// Stop after this many records.
    #[arg(long)]
    pub(crate) max: Option<u64>,
    /// Stop once every partition read has been read to its end (as kcat -e).
    #[arg(short = 'e', long)]
    pub(crate) exit_on_end: bool,
    /// Stop when no record has come for this long (e.g. 5s, 500ms).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) timeout: Option<Duration>,
    /// How each record is printed (`--json` is the same as `--format json`).
    #[arg(long, value_enum, default_value_t = Format::Plain)]
    pub(crate) format: Format,
}

/// `--format`: how `brook consume` prints a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    /// The value only, one line per record.
    Plain,
    /// One JSON object per record with its metadata (topic, partition, offset, timestamp, key, headers).
    Json,
}

/// Why `brook consume` stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    Max,
    End,
    Idle,
    Interrupted,
}

/// Runs `brook consume`; returns false if Ctrl-C (or SIGTERM) stopped it.
pub(crate) async fn run(args: ConsumeArgs) -> anyhow::Result<bool> {
    let mut signals = Signals::listen();
    // A second Ctrl-C does not wait for the commit and the summary.
    let mut second = signals.clone();
    tokio::spawn(async move {
        second.wait_for(2).await;
        std::process::exit(130);
    });
    let connecting = async {
        let client = args.conn.client().await?;
        let consumer = match &args.group {
            Some(group) => client
                .consumer(config(&args, group.clone()))
                .await
                .map_err(|e| super::unknown_topic_hint(e, &args.topic))?,
            None => assigned(&client, &args).await?,
        };
        anyhow::Ok((client, consumer))
    };
    let (client, mut consumer) = tokio::select! {
        c = connecting => c?,
        () = signals.wait_for(1) => {
            eprintln!("interrupted before the first record");
            return Ok(false);
        }
    };
    let mut out = std::io::stdout().lock();
    let mut n = 0u64;
    let mut partitions = BTreeSet::new();
    let idle_after = |t: Duration| tokio::time::Instant::now() + t;
    let mut idle_at = args.timeout.map(idle_after);
    let stop = loop {
        if args.max.is_some_and(|m| n >= m) {
            break Stop::Max;
        }
        if args.exit_on_end && consumer.at_end() {
            break Stop::End;
        }
        let r = tokio::select! {
            r = consumer.recv() => r.map_err(|e| damaged_hint(e, &args))?,
            () = until(idle_at) => break Stop::Idle,
            () = signals.wait_for(1) => break Stop::Interrupted,
            // Look at the end again now and then while nothing arrives.
            () = tokio::time::sleep(Duration::from_millis(50)), if args.exit_on_end => continue,
        };
        n += 1;
        partitions.insert(r.partition);
        idle_at = args.timeout.map(idle_after);
        print_record(&mut out, &r, args.format())?;
    };
    out.flush()?;
    drop(out);
    let committed = match &args.group {
        // A member commits what it printed.
        Some(group) => {
            consumer.close().await?;
            let offsets = client.admin().committed(group, Some(&args.topic)).await?;
            let list: Vec<String> = offsets
                .iter()
                .map(|c| format!("{}={}", c.partition, c.offset))
                .collect();
            format!("group {group} committed {}", list.join(" "))
        }
        // Reading partitions directly leaves nothing behind on the broker:
        // no group, no commits.
        None => {
            drop(consumer);
            "nothing committed (no --group)".to_string()
        }
    };
    let parts: Vec<String> = partitions.iter().map(u32::to_string).collect();
    let why = match stop {
        Stop::Max => "--max reached".to_string(),
        Stop::End => "end reached".to_string(),
        Stop::Idle => format!(
            "nothing for {}",
            humantime::format_duration(args.timeout.unwrap_or_default())
        ),
        Stop::Interrupted => "interrupted".to_string(),
    };
    eprintln!(
        "consumed {n} records from {} (partitions [{}]), {why}; {committed}",
        args.topic,
        parts.join(",")
    );
    Ok(stop != Stop::Interrupted)
}

/// Sleeps until `at`, or forever without one.
async fn until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// A key or value as text (`None` for a null one).
pub(crate) fn text(b: &Option<Bytes>) -> Option<String> {
    b.as_ref().map(|v| String::from_utf8_lossy(v).into_owned())
}

/// A record as the JSON object `--format json` prints.
pub(crate) fn record_json(r: &ConsumerRecord) -> serde_json::Value {
    let headers: serde_json::Map<String, serde_json::Value> = r
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), json!(String::from_utf8_lossy(v))))
        .collect();
    json!({"topic": &*r.topic, "partition": r.partition, "offset": r.offset, "timestamp_ms": r.timestamp_ms, "key": text(&r.key), "value": text(&r.value), "headers": headers})
}

/// Prints one record as `--format` says.
pub(crate) fn print_record(
    out: &mut impl Write,
    r: &ConsumerRecord,
    format: Format,
) -> anyhow::Result<()> {
    match format {
        Format::Json => writeln!(out, "{}", record_json(r))?,
        Format::Plain => writeln!(out, "{}", text(&r.value).unwrap_or_default())?,
    }
    Ok(())
}

/// Damaged records stop `brook consume` (it exits non-zero): the error says
/// how to go past them.
fn damaged_hint(e: brook_client::Error, args: &ConsumeArgs) -> anyhow::Error {
    let skip = match &e {
        brook_client::Error::Damaged {
            topic,
            partition,
            end_offset,
            ..
        } => match &args.group {
            Some(group) => format!(
                "brook group reset-offsets {group} --topic {topic} --partition {partition} --to offset:{end_offset}"
            ),
            None => {
                format!("brook consume {topic} --partition {partition} --from offset:{end_offset}")
            }
        },
        _ => return e.into(),
    };
    anyhow::Error::new(e).context(format!("to read on past the damaged records: {skip}"))
}

impl ConsumeArgs {
    /// `--json`, shared by every command, means what `--format json` does.
    fn format(&self) -> Format {
        match self.output.json {
            true => Format::Json,
            false => self.format,
        }
    }
}

fn config(args: &ConsumeArgs, group: String) -> ConsumerConfig {
    ConsumerConfig {
        // A seek (offset:N, time:MS) starts from the earliest record and moves from there.
        start_from: match args.from {
            ResetTo::Latest => StartFrom::Latest,
            _ => StartFrom::Earliest,
        },
        // Only a named group keeps its progress; reading directly commits nothing.
        auto_commit: args.group.as_ref().map(|_| Duration::from_secs(1)),
        client_id: "brook-cli".into(),
        ..ConsumerConfig::new(group, &[&args.topic])
    }
}

/// A consumer of the chosen partitions (all by default), without a group,
/// moved to `--from`'s offset or time. `offset:N` means offset N of each
/// partition read, and must lie inside every one of them.
async fn assigned(client: &Client, args: &ConsumeArgs) -> anyhow::Result<Consumer> {
    let described = client
        .admin()
        .describe_topic(&args.topic)
        .await
        .map_err(|e| super::unknown_topic_hint(e, &args.topic))?;
    let parts: Vec<u32> = match args.partitions.is_empty() {
        true => described.partitions.iter().map(|p| p.partition).collect(),
        false => args.partitions.clone(),
    };
    for id in &parts {
        let Some(p) = described.partitions.iter().find(|p| p.partition == *id) else {
            bail!(
                "topic {:?} has no partition {id} (it has {})",
                args.topic,
                described.partitions.len()
            );
        };
        if let ResetTo::Offset(o) = args.from
            && !(p.log_start_offset..=p.log_end_offset).contains(&o)
        {
            bail!(
                "--from offset:{o} is outside {}/{id}, which holds offsets {}..{} (--partition picks partitions)",
                args.topic,
                p.log_start_offset,
                p.log_end_offset
            );
        }
    }
    // Never committed (see `config`): the name only labels the fetches.
    let group = format!("brook-cli-{}", std::process::id());
    let mut c = client
        .consumer_assigned(config(args, group), &args.topic, &parts)
        .await?;
    for p in &parts {
        match args.from {
            ResetTo::Offset(o) => c.seek(&args.topic, *p, o),
            ResetTo::Timestamp(t) => c.seek_to_timestamp(&args.topic, *p, t).await?,
            _ => {}
        }
    }
    Ok(c)
}
