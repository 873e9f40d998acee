//! `brook trace ID`: the chain of events that share a correlation id,
//! across topics, in time order, with where each came from when a rule
//! routed it.
//!
//! A bounded scan, not an index: the last `--scan` records of each
//! partition of the topics named (every topic by default) are read, and
//! those whose `correlation-id` header (or `--header`) is the id are
//! printed. The help says so.

use brook_client::{Client, ConsumerRecord, ReadFrom, correlation};
use serde_json::json;

use super::connection::Conn;
use super::output::{Output, table};

/// `brook trace` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The scan is bounded: it reads the last --scan records of each partition of
the topics named (every topic by default) and keeps those whose header is
the id. Records older than that are not found. Exit 1 when none is found.

Examples:
  brook trace c-7f3a
  brook trace c-7f3a --topics events,inventory,billing --since 1h
  brook trace orders/2/41 --json
  brook trace 42 --header order-id --scan 1000000")]
pub(crate) struct TraceArgs {
    #[command(flatten)]
    pub(crate) conn: Conn,
    #[command(flatten)]
    pub(crate) output: Output,
    /// The correlation id.
    pub(crate) id: String,
    /// Topics to look in, comma-separated (default: every topic).
    #[arg(long, value_delimiter = ',')]
    pub(crate) topics: Vec<String>,
    /// Only records at most this old (e.g. 30m, 2h, 7d).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub(crate) since: Option<std::time::Duration>,
    /// Records read from the end of each partition.
    #[arg(long, default_value_t = 100_000)]
    pub(crate) scan: u64,
    /// The header that holds the id.
    #[arg(long, default_value = correlation::CORRELATION_ID)]
    pub(crate) header: String,
}

/// Runs `brook trace`; `false` when no record has the id.
pub(crate) async fn run(args: TraceArgs) -> anyhow::Result<bool> {
    let client = args.conn.client().await?;
    let topics = match args.topics.is_empty() {
        false => args.topics.clone(),
        true => (client.admin().list_topics().await?)
            .into_iter()
            .map(|t| t.name)
            .collect(),
    };
    let oldest = args
        .since
        .map(|d| brook_storage::now_ms() - d.as_millis() as i64);
    let mut found = Vec::new();
    for topic in &topics {
        found.extend(scan_topic(&client, topic, &args, oldest).await?);
    }
    // A routed record keeps its source's timestamp: on a tie, the fewer
    // rules a record passed, the earlier it comes.
    let hops = |r: &ConsumerRecord| r.headers.iter().filter(|(k, _)| k == "brook-rule").count();
    found.sort_by(|a, b| {
        (a.timestamp_ms, hops(a), &a.topic, a.partition, a.offset).cmp(&(
            b.timestamp_ms,
            hops(b),
            &b.topic,
            b.partition,
            b.offset,
        ))
    });
    print(&found, args.output.json);
    Ok(!found.is_empty())
}

/// The records of `topic` with the id, from the last `--scan` of each
/// partition.
async fn scan_topic(
    client: &Client,
    topic: &str,
    args: &TraceArgs,
    oldest: Option<i64>,
) -> anyhow::Result<Vec<ConsumerRecord>> {
    let mut found = Vec::new();
    let d = client.admin().describe_topic(topic).await?;
    for p in &d.partitions {
        let end = p.log_end_offset;
        let start = end.saturating_sub(args.scan).max(p.log_start_offset);
        if start >= end {
            continue;
        }
        let mut reader = client
            .reader(topic, p.partition, ReadFrom::Offset(start))
            .await?;
        while reader.position() < end {
            let r = reader.recv().await?;
            if r.offset >= end {
                break;
            }
            let recent = oldest.is_none_or(|t| r.timestamp_ms >= t);
            if recent && correlation::header(&r.headers, &args.header) == Some(args.id.as_str()) {
                found.push(r);
            }
        }
    }
    Ok(found)
}

fn text(b: &Option<bytes::Bytes>) -> String {
    b.as_ref()
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

/// "via RULE from TOPIC/PARTITION@OFFSET" for a record a rule routed.
fn via(r: &ConsumerRecord) -> String {
    let h = |name| correlation::header(&r.headers, name);
    match (
        h("brook-rule"),
        h("brook-source-topic"),
        h("brook-source-partition"),
        h("brook-source-offset"),
    ) {
        (Some(rule), Some(t), Some(p), Some(o)) => format!("rule {rule} from {t}/{p}@{o}"),
        _ => String::new(),
    }
}

fn print(found: &[ConsumerRecord], json: bool) {
    if json {
        for r in found {
            let headers: serde_json::Map<String, serde_json::Value> = (r.headers.iter())
                .map(|(k, v)| (k.clone(), json!(String::from_utf8_lossy(v))))
                .collect();
            println!(
                "{}",
                json!({"topic": &*r.topic, "partition": r.partition, "offset": r.offset,
                    "timestamp_ms": r.timestamp_ms, "key": text(&r.key), "value": text(&r.value),
                    "headers": headers, "via": via(r)})
            );
        }
        return;
    }
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|r| {
            let value = crate::error::shortened(text(&r.value), 60);
            vec![
                super::rules::time_text(r.timestamp_ms),
                format!("{}/{}@{}", r.topic, r.partition, r.offset),
                text(&r.key),
                via(r),
                value,
            ]
        })
        .collect();
    table(&["TIME", "RECORD", "KEY", "VIA", "VALUE"], &rows);
}
