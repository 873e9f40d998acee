//! `brook topic …`: create, list, describe, alter and delete topics; add
//! partitions.

use brook_client::proto as v1;
use brook_storage::FlushPolicy;
use serde_json::json;

use super::connection::Conn;
use super::output::{Output, table};
use super::settings::{KEYS, Setting, pairs, parse_cleanup, parse_setting, set_flush};

/// `brook topic` flags and its subcommand.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  brook topic create orders --partitions 3 --retention-ms 604800000
  brook topic create audit --flush always
  brook topic create customers --cleanup compact
  brook topic describe orders --json
  brook topic alter orders --set retention_ms=2592000000 --set flush=always
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
        /// What happens to old records: delete, compact or compact,delete
        ///
        ///   delete           whole old segments go by retention (the default)
        ///   compact          each key's latest record is kept forever; records need keys
        ///   compact,delete   compacted, and old segments go by retention too
        #[arg(long, value_name = "POLICY", value_parser = parse_cleanup, verbatim_doc_comment)]
        cleanup: Option<v1::CleanupPolicy>,
    },
    /// List topics.
    List,
    /// Settings, and offsets and sizes per partition.
    Describe {
        /// Topic name.
        name: String,
    },
    /// Change settings on the running broker (from the next append, roll or flush).
    #[command(after_help = settings_help())]
    Alter {
        /// Topic name.
        name: String,
        /// A setting to change, as KEY=VALUE (repeat for several; keys below).
        #[arg(long = "set", value_name = "KEY=VALUE", value_parser = parse_setting, required = true)]
        set: Vec<Setting>,
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
            cleanup,
        } => {
            let mut config = v1::TopicConfig {
                partitions,
                retention_ms,
                cleanup_policy: cleanup.map_or(0, |c| c as i32),
                ..Default::default()
            };
            if let Some(flush) = flush {
                set_flush(&mut config, flush);
            }
            show(&admin.create_topic_with(&name, config).await?, json);
        }
        TopicCmd::List => list(&admin.list_topics().await?, json),
        TopicCmd::Describe { name } => show(&admin.describe_topic(&name).await?, json),
        TopicCmd::Alter { name, set } => {
            let mut changes = v1::TopicConfig::default();
            for s in &set {
                super::settings::apply(&mut changes, s).map_err(anyhow::Error::msg)?;
            }
            let altered = admin
                .alter_topic(&name, changes)
                .await
                .map_err(|e| super::unknown_topic_hint(e, &name))?;
            show(&altered, json);
        }
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

/// The keys `--set` takes, for `brook topic alter --help`.
fn settings_help() -> String {
    let mut text = String::from("Settings:\n");
    for (key, what) in KEYS {
        text.push_str(&format!("  {key:<26} {what}\n"));
    }
    text.push_str(
        "\nExamples:\n  brook topic alter orders --set retention_ms=-1\n  brook topic alter audit --set flush=always --set segment_bytes=67108864",
    );
    text
}

/// One topic: its settings, then a row per partition.
fn show(t: &v1::TopicDescription, json: bool) {
    if json {
        println!("{}", topic_json(t));
        return;
    }
    if let Some(config) = &t.config {
        let rows: Vec<Vec<String>> = pairs(config)
            .into_iter()
            .map(|(k, v)| vec![k.to_string(), v])
            .collect();
        table(&["SETTING", "VALUE"], &rows);
        println!();
    }
    let compacted = t.config.as_ref().is_some_and(|c| {
        matches!(
            c.cleanup_policy(),
            v1::CleanupPolicy::Compact | v1::CleanupPolicy::CompactDelete
        )
    });
    let rows: Vec<Vec<String>> = t
        .partitions
        .iter()
        .map(|p| {
            let mut row = vec![
                t.name.clone(),
                p.partition.to_string(),
                p.log_start_offset.to_string(),
                p.log_end_offset.to_string(),
                p.size_bytes.to_string(),
                p.segment_count.to_string(),
            ];
            if compacted {
                row.push(format!("{:.2}", p.dirty_ratio));
                row.push(p.cleaned_to.to_string());
            }
            row
        })
        .collect();
    let mut header = vec!["TOPIC", "PARTITION", "START", "END", "BYTES", "SEGMENTS"];
    if compacted {
        header.extend(["DIRTY", "CLEANED_TO"]);
    }
    table(&header, &rows);
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
    let settings: serde_json::Map<String, serde_json::Value> = t
        .config
        .iter()
        .flat_map(pairs)
        .map(|(k, v)| {
            // Numbers as numbers for scripts; `flush` stays a word.
            let value = match (v.parse::<i64>(), v.parse::<f64>()) {
                (Ok(n), _) => json!(n),
                (_, Ok(x)) => json!(x),
                _ => json!(v),
            };
            (k.to_string(), value)
        })
        .collect();
    json!({
        "name": t.name,
        "settings": settings,
        "partitions": t.partitions.iter().map(|p| json!({
            "partition": p.partition, "log_start_offset": p.log_start_offset,
            "log_end_offset": p.log_end_offset, "size_bytes": p.size_bytes, "segments": p.segment_count,
            "dirty_ratio": p.dirty_ratio, "dirty_bytes": p.dirty_bytes, "cleaned_to": p.cleaned_to,
        })).collect::<Vec<_>>(),
    })
}
