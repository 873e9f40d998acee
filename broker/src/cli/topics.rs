//! `brook topic …`: create, list, describe and delete topics; add partitions.

use brook_client::proto as v1;
use brook_storage::FlushPolicy;
use serde_json::json;

use super::connection::Conn;
use super::output::{Output, table};

/// `brook topic` flags and its subcommand.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  brook topic create orders --partitions 3 --retention-ms 604800000
  brook topic create audit --flush always
  brook topic describe orders --json
  brook topic add-partitions orders --partitions 6")]
pub(crate) struct TopicArgs {
    #[command(flatten)]
    pub(crate) conn: Conn,
    #[command(flatten)]
    pub(crate) output: Output,
    #[command(subcommand)]
    pub(crate) cmd: TopicCmd,
}

/// `brook topic …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum TopicCmd {
    /// Create a topic.
    Create {
        /// Topic name.
        name: String,
        /// Number of partitions.
        #[arg(long, default_value_t = 1)]
        partitions: u32,
        /// Retention in ms (-1 keeps forever).
        #[arg(long, allow_negative_numbers = true)]
        retention_ms: Option<i64>,
        /// Flush policy: always, never or interval:MS (default: the broker's --flush)
        ///
        ///   always        every append is on disk before it is acknowledged
        ///   never         the OS writes back when it likes
        ///   interval:MS   a flush every MS milliseconds (MS >= 1)
        #[arg(long, value_name = "POLICY", value_parser = parse_flush, verbatim_doc_comment)]
        flush: Option<FlushPolicy>,
    },
    /// List topics.
    List,
    /// Offsets and sizes per partition.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Delete a topic and its data.
    Delete {
        /// Topic name.
        name: String,
    },
    /// Raise the partition count.
    AddPartitions {
        /// Topic name.
        name: String,
        /// New total number of partitions.
        #[arg(long)]
        partitions: u32,
    },
}

/// The broker's own parser, so that the CLI accepts exactly what `serve --flush` does.
fn parse_flush(s: &str) -> Result<FlushPolicy, String> {
    crate::config::parse_flush(s).map_err(|e| e.to_string())
}

/// Runs `brook topic …`.
pub(crate) async fn run(args: TopicArgs) -> anyhow::Result<()> {
    let admin = args.conn.client().await?.admin();
    let json = args.output.json;
    match args.cmd {
        TopicCmd::Create {
            name,
            partitions,
            retention_ms,
            flush,
        } => {
            let mut config = v1::TopicConfig {
                partitions,
                retention_ms,
                ..Default::default()
            };
            if let Some(flush) = flush {
                set_flush(&mut config, flush);
            }
            show(&admin.create_topic_with(&name, config).await?, json);
        }
        TopicCmd::List => list(&admin.list_topics().await?, json),
        TopicCmd::Describe { name } => show(&admin.describe_topic(&name).await?, json),
        TopicCmd::Delete { name } => {
            admin.delete_topic(&name).await?;
            if !json {
                println!("deleted topic {name}");
            }
        }
        TopicCmd::AddPartitions { name, partitions } => {
            show(&admin.add_partitions(&name, partitions).await?, json)
        }
    }
    Ok(())
}

fn set_flush(config: &mut v1::TopicConfig, flush: FlushPolicy) {
    match flush {
        FlushPolicy::Always => config.flush_policy = v1::FlushPolicy::Always as i32,
        FlushPolicy::Never => config.flush_policy = v1::FlushPolicy::Never as i32,
        FlushPolicy::Interval(d) => {
            config.flush_policy = v1::FlushPolicy::Interval as i32;
            config.flush_interval_ms = Some(d.as_millis() as u64);
        }
    }
}

/// One topic, a row per partition.
fn show(t: &v1::TopicDescription, json: bool) {
    if json {
        println!("{}", topic_json(t));
        return;
    }
    let rows: Vec<Vec<String>> = t
        .partitions
        .iter()
        .map(|p| {
            vec![
                t.name.clone(),
                p.partition.to_string(),
                p.log_start_offset.to_string(),
                p.log_end_offset.to_string(),
                p.size_bytes.to_string(),
                p.segment_count.to_string(),
            ]
        })
        .collect();
    table(
        &["TOPIC", "PARTITION", "START", "END", "BYTES", "SEGMENTS"],
        &rows,
    );
}

/// Every topic, a row per topic with its totals.
fn list(topics: &[v1::TopicDescription], json: bool) {
    if json {
        println!(
            "{}",
            serde_json::Value::Array(topics.iter().map(topic_json).collect())
        );
        return;
    }
    let rows: Vec<Vec<String>> = topics
        .iter()
        .map(|t| {
            let records: u64 = t
                .partitions
                .iter()
                .map(|p| p.log_end_offset - p.log_start_offset)
                .sum();
            let bytes: u64 = t.partitions.iter().map(|p| p.size_bytes).sum();
            vec![
                t.name.clone(),
                t.partitions.len().to_string(),
                records.to_string(),
                bytes.to_string(),
            ]
        })
        .collect();
    table(&["TOPIC", "PARTITIONS", "RECORDS", "BYTES"], &rows);
}

fn topic_json(t: &v1::TopicDescription) -> serde_json::Value {
    json!({
        "name": t.name,
        "partitions": t.partitions.iter().map(|p| json!({
            "partition": p.partition, "log_start_offset": p.log_start_offset,
            "log_end_offset": p.log_end_offset, "size_bytes": p.size_bytes, "segments": p.segment_count,
        })).collect::<Vec<_>>(),
    })
}
