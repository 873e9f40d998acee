//! `brook produce`: standard input to a topic, one record per line.

use std::collections::BTreeSet;
use std::io::BufRead;

use anyhow::{Context, bail};
use brook_client::{Acks, Delivery, ProducerConfig, ProducerRecord};
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
  tail -F app.log | brook produce logs --header host=web-1
  printf 'order-42:{\"type\":\"OrderPlaced\"}\\n' | brook produce orders --key-separator : --verbose

Empty lines are skipped. A line that cannot be sent (not JSON with --key-field,
no separator with --key-separator) stops the command: it says which input line
and how many records before it were stored.")]
pub(crate) struct ProduceArgs {
    #[command(flatten)]
    pub(crate) conn: Conn,
    #[command(flatten)]
    pub(crate) output: Output,
    /// Topic to write to; one record per line of standard input.
    pub(crate) topic: String,
    /// Key of every record.
    #[arg(long, conflicts_with_all = ["key_field", "key_separator"])]
    pub(crate) key: Option<String>,
    /// Read each line as JSON and use this field as the key (e.g. aggregate_id).
    #[arg(long, conflicts_with = "key_separator")]
    pub(crate) key_field: Option<String>,
    /// Each line is KEY<SEP>VALUE: the key is what comes before the first
    /// SEP (kcat's -K).
    #[arg(long, value_name = "SEP")]
    pub(crate) key_separator: Option<String>,
    /// Print where each record went (partition and offset), as it is acknowledged.
    #[arg(long, short)]
    pub(crate) verbose: bool,
    /// Header KEY=VALUE, repeatable.
    #[arg(long = "header", value_name = "KEY=VALUE", value_parser = parse_header)]
    pub(crate) headers: Vec<(String, String)>,
    /// Wait until records are on disk.
    #[arg(long)]
    pub(crate) durable: bool,
    /// Compress batches: none, gzip, snappy, lz4 or zstd (stored compressed; every consumer decompresses).
    #[arg(long, default_value = "none", value_parser = parse_compression)]
    pub(crate) compression: brook_client::Compression,
}

fn parse_compression(s: &str) -> Result<brook_client::Compression, String> {
    brook_client::Compression::from_name(s)
        .ok_or_else(|| format!("compression {s:?} is not none, gzip, snappy, lz4 or zstd"))
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("header {s:?} is not KEY=VALUE"))
}

/// What the acknowledgements said, counted in input order.
#[derive(Default)]
struct Stored {
    records: u64,
    bytes: u64,
    partitions: BTreeSet<u32>,
    last: Option<(u32, u64)>,
    /// Records the broker sent to the topic's dead-letter topic instead
    /// (they failed its schema; docs/schemas.md).
    dead_lettered: u64,
}

/// Awaits the deliveries in input order, printing each with `--verbose`,
/// until the sender is dropped; stops at the first failed one.
async fn acknowledgements(
    mut rx: tokio::sync::mpsc::Receiver<(usize, u64, Delivery)>,
    verbose: bool,
    json: bool,
) -> (Stored, Option<(usize, anyhow::Error)>) {
    let mut stored = Stored::default();
    while let Some((line, bytes, delivery)) = rx.recv().await {
        match delivery.await {
            Ok(m) => {
                stored.records += 1;
                stored.bytes += bytes;
                stored.partitions.insert(m.partition);
                stored.last = Some((m.partition, m.offset));
                match (verbose, json) {
                    (true, true) => println!(
                        "{}",
                        json!({"line": line, "partition": m.partition, "offset": m.offset})
                    ),
                    (true, false) => {
                        println!("line {line}: partition {} offset {}", m.partition, m.offset)
                    }
                    _ => {}
                }
            }
            // The rest of the batch was stored: go on, and say so at the end.
            Err(brook_client::Error::DeadLettered {
                dead_letter_topic,
                reason,
            }) => {
                stored.dead_lettered += 1;
                match json {
                    true => println!(
                        "{}",
                        json!({"line": line, "dead_letter_topic": dead_letter_topic, "reason": reason})
                    ),
                    false => {
                        eprintln!("line {line}: not stored: {reason} (sent to {dead_letter_topic})")
                    }
                }
            }
            Err(e) => return (stored, Some((line, e.into()))),
        }
    }
    (stored, None)
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
        compression: args.compression,
        ..Default::default()
    });
    let headers: Vec<(String, Bytes)> = args
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Bytes::from(v.clone())))
        .collect();
    let (tx, rx) = tokio::sync::mpsc::channel(64 * 1024);
    let acks = tokio::spawn(acknowledgements(rx, args.verbose, json));
    let started = std::time::Instant::now();
    let (mut sent, mut empty) = (0u64, 0u64);
    let mut failed: Option<(usize, anyhow::Error)> = None;
    for (i, line) in std::io::stdin().lock().lines().enumerate() {
        let n = i + 1;
        let line = line.context("reading standard input")?;
        if line.is_empty() {
            empty += 1;
            continue;
        }
        let (key, value) = match split(&args, line, n) {
            Ok(kv) => kv,
            Err(e) => {
                failed = Some((n, e));
                break;
            }
        };
        let bytes = (key.as_ref().map_or(0, |k| k.len()) + value.len()) as u64;
        let record = ProducerRecord {
            topic: args.topic.clone(),
            key,
            value: Some(value),
            headers: headers.clone(),
            ..Default::default()
        };
        match producer.send_record(record).await {
            Ok(delivery) => {
                if tx.send((n, bytes, delivery)).await.is_err() {
                    break; // the acknowledgements stopped at a failure
                }
                sent += 1;
            }
            Err(e) => {
                failed = Some((n, super::unknown_topic_hint(e, &args.topic)));
                break;
            }
        }
        if sent % 100_000 == 0 && !json && !args.verbose {
            eprintln!("  {sent} records sent...");
        }
    }
    let flushed = producer.flush().await;
    drop(tx);
    let (stored, ack_failure) = acks.await.context("the acknowledgement task failed")?;
    // The first failure in input order is the one to report.
    let failed = match (ack_failure, failed) {
        (Some((line, e)), _) => Some((line, super::unknown_topic_hint_any(e, &args.topic))),
        (None, f) => f,
    };
    let partitions: Vec<u32> = stored.partitions.iter().copied().collect();
    if json {
        println!(
            "{}",
            json!({
                "topic": args.topic,
                "records": stored.records,
                "bytes": stored.bytes,
                "partitions": partitions,
                "empty_lines_skipped": empty,
                "last": stored.last.map(|(p, o)| json!({"partition": p, "offset": o})),
            })
        );
    } else {
        eprintln!(
            "produced {} records ({} bytes) to {} partitions {partitions:?} in {:.2} s{}",
            stored.records,
            stored.bytes,
            args.topic,
            started.elapsed().as_secs_f64(),
            match empty {
                0 => String::new(),
                n => format!("; {n} empty lines skipped"),
            }
        );
    }
    if stored.dead_lettered > 0 && failed.is_none() {
        flushed.map_err(|e| super::unknown_topic_hint(e, &args.topic))?;
        anyhow::bail!(
            "{} records failed the topic's schema and went to its dead-letter topic instead (the lines above); the others were stored",
            stored.dead_lettered
        );
    }
    if let Some((line, e)) = failed {
        return Err(e.context(format!(
            "stopped at input line {line}; the {} records before it were stored",
            stored.records
        )));
    }
    flushed.map_err(|e| super::unknown_topic_hint(e, &args.topic))?;
    Ok(())
}

/// The key and value of input line `n`: the line itself with the key from
/// --key; or from its JSON field with --key-field; or split at --key-separator.
fn split(args: &ProduceArgs, line: String, n: usize) -> anyhow::Result<(Option<Bytes>, Bytes)> {
    if let Some(sep) = &args.key_separator {
        let Some((k, v)) = line.split_once(sep.as_str()) else {
            bail!("input line {n} has no key separator {sep:?}");
        };
        return Ok((Some(Bytes::from(k.to_string())), Bytes::from(v.to_string())));
    }
    let Some(field) = &args.key_field else {
        let key = args.key.as_ref().map(|k| Bytes::from(k.clone()));
        return Ok((key, Bytes::from(line)));
    };
    let v: serde_json::Value = serde_json::from_str(&line).map_err(|e| {
        // serde_json says "at line 1 column C": within the one line, only the column counts.
        let reason = e.to_string();
        let reason = reason
            .split(" at line ")
            .next()
            .unwrap_or(&reason)
            .to_string();
        anyhow::anyhow!(
            "input line {n} is not JSON: {reason} at column {}",
            e.column()
        )
    })?;
    let key = match v.get(field) {
        Some(serde_json::Value::String(s)) => Bytes::from(s.clone()),
        Some(other) => Bytes::from(other.to_string()),
        None => bail!("input line {n} has no field {field:?}"),
    };
    Ok((Some(key), Bytes::from(line)))
}
