//! `brook produce`: standard input to a topic, one record per line.

use std::io::BufRead;

use anyhow::{Context, bail};
use brook_client::{Acks, ProducerConfig, ProducerRecord};
use bytes::Bytes;
use serde_json::json;

use super::connection::Conn;
use super::output::Output;

/// `brook produce` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  brook produce orders --key-field aggregate_id < events.jsonl
  brook produce audit --key user-7 --header source=import --durable < lines.txt
  tail -F app.log | brook produce logs --header host=web-1")]
pub(crate) struct ProduceArgs {
    #[command(flatten)]
    pub(crate) conn: Conn,
    #[command(flatten)]
    pub(crate) output: Output,
    /// Topic to write to; one record per line of standard input.
    pub(crate) topic: String,
    /// Key of every record.
    #[arg(long, conflicts_with = "key_field")]
    pub(crate) key: Option<String>,
    /// Read each line as JSON and use this field as the key (e.g. aggregate_id).
    #[arg(long)]
    pub(crate) key_field: Option<String>,
    /// Header KEY=VALUE, repeatable.
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_header)]
    pub(crate) headers: Vec<(String, String)>,
    /// Wait until records are on disk.
    #[arg(long)]
    pub(crate) durable: bool,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("header {s:?} is not KEY=VALUE"))
}

/// Runs `brook produce`: one record per stdin line.
pub(crate) async fn run(args: ProduceArgs) -> anyhow::Result<()> {
    let client = args.conn.client().await?;
    let json = args.output.json;
    let producer = client.producer(ProducerConfig {
        acks: if args.durable {
            Acks::Durable
        } else {
            Acks::Written
        },
        ..Default::default()
    });
    let headers: Vec<(String, Bytes)> = args
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Bytes::from(v.clone())))
        .collect();
    let mut deliveries = Vec::new();
    let started = std::time::Instant::now();
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("reading standard input")?;
        let record = ProducerRecord {
            topic: args.topic.clone(),
            key: key(&args, &line, n + 1)?,
            value: Some(Bytes::from(line)),
            headers: headers.clone(),
            ..Default::default()
        };
        let delivery = producer.send_record(record).await;
        deliveries.push(delivery.map_err(|e| super::unknown_topic_hint(e, &args.topic))?);
        if deliveries.len() % 100_000 == 0 && !json {
            eprintln!("  {} records sent...", deliveries.len());
        }
    }
    producer
        .flush()
        .await
        .map_err(|e| super::unknown_topic_hint(e, &args.topic))?;
    let count = deliveries.len();
    let mut last = None;
    for d in deliveries {
        last = Some(
            d.await
                .map_err(|e| super::unknown_topic_hint(e, &args.topic))?,
        );
    }
    if json {
        println!(
            "{}",
            json!({ "topic": args.topic, "records": count, "last": last.map(|m| json!({"partition": m.partition, "offset": m.offset})) })
        );
    } else {
        eprintln!(
            "produced {count} records to {} in {:.2} s",
            args.topic,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// The key of line number `n`: its JSON field with --key-field, else --key.
fn key(args: &ProduceArgs, line: &str, n: usize) -> anyhow::Result<Option<Bytes>> {
    let Some(field) = &args.key_field else {
        return Ok(args.key.as_ref().map(|k| Bytes::from(k.clone())));
    };
    let v: serde_json::Value =
        serde_json::from_str(line).with_context(|| format!("line {n} is not JSON"))?;
    match v.get(field) {
        Some(serde_json::Value::String(s)) => Ok(Some(Bytes::from(s.clone()))),
        Some(other) => Ok(Some(Bytes::from(other.to_string()))),
        None => bail!("line {n} has no field {field:?}"),
    }
}
