//! `brook consume`: print a topic's records, reading partitions directly or
//! as a member of a consumer group.

use std::io::Write;
use std::time::Duration;

use anyhow::bail;
use brook_client::{Client, Consumer, ConsumerConfig, ResetTo, StartFrom};
use bytes::Bytes;
use serde_json::json;

use super::connection::Conn;
use super::output::Output;
use super::position::parse_from;

/// `brook consume` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  brook consume orders --from earliest --max 10 --format json
  brook consume orders --partition 0 --from offset:1500
  brook consume orders --from time:1767225600000 --max 100
  brook consume orders --group billing")]
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

/// Runs `brook consume`.
pub(crate) async fn run(args: ConsumeArgs) -> anyhow::Result<()> {
    let client = args.conn.client().await?;
    let mut consumer = match &args.group {
        Some(group) => client
            .consumer(config(&args, group.clone()))
            .await
            .map_err(|e| super::unknown_topic_hint(e, &args.topic))?,
        None => assigned(&client, &args).await?,
    };
    let mut out = std::io::stdout().lock();
    let mut n = 0u64;
    while args.max.is_none_or(|m| n < m) {
        let r = consumer.recv().await?;
        n += 1;
        let text = |b: &Option<Bytes>| b.as_ref().map(|v| String::from_utf8_lossy(v).into_owned());
        // `--json`, shared by every command, means what `--format json` does.
        let format = match args.output.json {
            true => Format::Json,
            false => args.format,
        };
        match format {
            Format::Json => {
                let headers: serde_json::Map<String, serde_json::Value> = r
                    .headers
                    .iter()
                    .map(|(k, v)| (k.clone(), json!(String::from_utf8_lossy(v))))
                    .collect();
                let line = json!({"topic": &*r.topic, "partition": r.partition, "offset": r.offset, "timestamp_ms": r.timestamp_ms, "key": text(&r.key), "value": text(&r.value), "headers": headers});
                writeln!(out, "{line}")?;
            }
            Format::Plain => writeln!(out, "{}", text(&r.value).unwrap_or_default())?,
        }
    }
    out.flush()?;
    match args.group {
        // A member commits what it printed.
        Some(_) => consumer.close().await?,
        // Reading partitions directly leaves nothing behind on the broker:
        // no group, no commits.
        None => drop(consumer),
    }
    Ok(())
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
