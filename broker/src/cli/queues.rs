//! `brook queue …` (queue groups: create, alter, consume, describe, list,
//! delete) and `brook dlq …` (their dead-letter topics: list, show, redrive).

use std::io::Write;
use std::time::Duration;

use brook_client::{Admin, Client, QueueConsumerConfig, ReadFrom, proto as v1};
use serde_json::json;

use super::connection::Conn;
use super::consume::{Format, print_record, record_json, text};
use super::output::{Output, table};
use crate::signals::Signals;

/// `brook queue` flags and its subcommand.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  brook queue create inventory --topic orders --from earliest --max-deliveries 3
  brook queue create billing --topic orders --key-ordered
  brook queue consume orders --group inventory --max 10
  brook queue consume orders --group inventory --reject --reason 'malformed'
  brook queue describe inventory
  brook queue alter inventory --lease-ms 60000")]
pub(crate) struct QueueArgs {
    #[command(flatten)]
    pub(crate) conn: Conn,
    #[command(flatten)]
    pub(crate) output: Output,
    #[command(subcommand)]
    pub(crate) cmd: QueueCmd,
}

/// A queue group's settings as flags (unset: the default, or unchanged).
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct SettingsFlags {
    /// How long a consumer holds a message before it is delivered again (visibility timeout).
    #[arg(long)]
    lease_ms: Option<u64>,
    /// Failed deliveries before a message is dead-lettered.
    #[arg(long)]
    max_deliveries: Option<u32>,
    /// First redelivery backoff.
    #[arg(long)]
    backoff_initial_ms: Option<u64>,
    /// Longest redelivery backoff.
    #[arg(long)]
    backoff_max_ms: Option<u64>,
    /// Backoff growth per failed delivery (1: fixed).
    #[arg(long)]
    backoff_multiplier: Option<f64>,
    /// One message per key in flight at a time, in offset order (true/false).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    key_ordered: Option<bool>,
    /// Dead-letter topic (default <topic>.<group>.dlq).
    #[arg(long)]
    dlq_topic: Option<String>,
    /// Partitions of the dead-letter topic when the broker creates it.
    #[arg(long)]
    dlq_partitions: Option<u32>,
    /// Records per partition the group tracks past its acked-up-to point at most.
    #[arg(long)]
    window: Option<u32>,
}

impl SettingsFlags {
    fn to_proto(&self) -> v1::QueueSettings {
        v1::QueueSettings {
            lease_ms: self.lease_ms,
            max_deliveries: self.max_deliveries,
            backoff_initial_ms: self.backoff_initial_ms,
            backoff_max_ms: self.backoff_max_ms,
            backoff_multiplier: self.backoff_multiplier,
            key_ordered: self.key_ordered,
            dlq_topic: self.dlq_topic.clone(),
            dlq_partitions: self.dlq_partitions,
            window: self.window,
        }
    }
}

/// Where a new queue group starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum From {
    /// Records published from now on.
    Latest,
    /// Every record the topic still has.
    Earliest,
}

/// `brook queue …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum QueueCmd {
    /// Create a queue group on a topic.
    Create {
        /// Group name.
        group: String,
        /// The topic it reads.
        #[arg(long)]
        topic: String,
        /// Where it starts.
        #[arg(long, value_enum, default_value_t = From::Latest)]
        from: From,
        #[command(flatten)]
        settings: SettingsFlags,
    },
    /// Change a queue group's settings.
    Alter {
        /// Group name.
        group: String,
        #[command(flatten)]
        settings: SettingsFlags,
    },
    /// Print messages and ack them (or nack / reject them, for testing).
    Consume {
        /// Topic (a group that does not exist is created on it).
        topic: String,
        /// Queue group.
        #[arg(long)]
        group: String,
        /// Nack every message instead of acking it.
        #[arg(long, conflicts_with = "reject")]
        nack: bool,
        /// Reject every message (to the dead-letter topic).
        #[arg(long)]
        reject: bool,
        /// The reason given with --nack or --reject.
        #[arg(long, default_value = "rejected by brook queue consume")]
        reason: String,
        /// Stop after this many messages.
        #[arg(long)]
        max: Option<u64>,
        /// Stop when no message has come for this long (e.g. 5s).
        #[arg(long, value_parser = humantime::parse_duration)]
        timeout: Option<Duration>,
    },
    /// A queue group's state per partition, its consumers and dead-letter depth.
    Describe {
        /// Group name.
        group: String,
    },
    /// List queue groups.
    List,
    /// Delete a queue group's state (its dead-letter topic stays).
    Delete {
        /// Group name.
        group: String,
    },
}

/// `brook dlq` flags and its subcommand.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  brook dlq list
  brook dlq show inventory --max 5
  brook dlq redrive inventory --dry-run
  brook dlq redrive inventory --to-group
  brook dlq redrive inventory --from-offset 100 --to-offset 199")]
pub(crate) struct DlqArgs {
    #[command(flatten)]
    pub(crate) conn: Conn,
    #[command(flatten)]
    pub(crate) output: Output,
    #[command(subcommand)]
    pub(crate) cmd: DlqCmd,
}

/// `brook dlq …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum DlqCmd {
    /// Queue groups with their dead-letter topic and depth.
    List,
    /// Print a queue group's dead-lettered records with why they failed.
    Show {
        /// Queue group.
        group: String,
        /// At most this many records.
        #[arg(long, default_value_t = 100)]
        max: u64,
    },
    /// Copy dead-lettered records back to the source topic (or --to-topic), or
    /// give them back to the group alone (--to-group); never twice.
    Redrive {
        /// Queue group.
        group: String,
        /// Only this partition of the dead-letter topic.
        #[arg(long)]
        partition: Option<u32>,
        /// First offset of the dead-letter topic to redrive.
        #[arg(long)]
        from_offset: Option<u64>,
        /// Last offset (inclusive).
        #[arg(long)]
        to_offset: Option<u64>,
        /// Only records dead-lettered at or after this time (ms since the epoch).
        #[arg(long)]
        from_time: Option<i64>,
        /// Only records dead-lettered at or before this time (ms since the epoch).
        #[arg(long)]
        to_time: Option<i64>,
        /// Copy to this topic instead of the source topic.
        #[arg(long, conflicts_with = "to_group")]
        to_topic: Option<String>,
        /// Back into this queue group alone: its source records are delivered
        /// to the group again (delivery count from 0), nothing is copied, other
        /// groups of the topic see nothing.
        #[arg(long)]
        to_group: bool,
        /// At most this many.
        #[arg(long, default_value_t = 0)]
        limit: u64,
        /// Count what would move, move nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// Runs `brook queue …`.
pub(crate) async fn run(args: QueueArgs) -> anyhow::Result<()> {
    let client = args.conn.client().await?;
    let admin = client.admin();
    let json = args.output.json;
    match args.cmd {
        QueueCmd::Create {
            group,
            topic,
            from,
            settings,
        } => {
            let d = admin
                .create_queue(&group, &topic, settings.to_proto(), from == From::Earliest)
                .await
                .map_err(|e| super::unknown_topic_hint(e, &topic))?;
            print_description(&d, json);
        }
        QueueCmd::Alter { group, settings } => {
            let d = admin.alter_queue(&group, settings.to_proto()).await?;
            print_description(&d, json);
        }
        QueueCmd::Consume {
            topic,
            group,
            nack,
            reject,
            reason,
            max,
            timeout,
        } => {
            consume(
                &client,
                &topic,
                &group,
                (nack, reject, reason),
                max,
                timeout,
                json,
            )
            .await?
        }
        QueueCmd::Describe { group } => {
            print_description(&admin.describe_queue(&group).await?, json)
        }
        QueueCmd::List => list(&admin, json).await?,
        QueueCmd::Delete { group } => {
            admin.delete_queue(&group).await?;
            if !json {
                println!("deleted queue group {group}");
            }
        }
    }
    Ok(())
}

async fn consume(
    client: &Client,
    topic: &str,
    group: &str,
    (nack, reject, reason): (bool, bool, String),
    max: Option<u64>,
    timeout: Option<Duration>,
    json: bool,
) -> anyhow::Result<()> {
    let config = QueueConsumerConfig {
        topic: Some(topic.to_string()),
        max_records: max.map_or(500, |m| m.clamp(1, 500) as u32),
        ..Default::default()
    };
    let mut consumer = client.queue_consumer(group, config);
    let mut signals = Signals::listen();
    let mut out = std::io::stdout().lock();
    let mut n = 0u64;
    while max.is_none_or(|m| n < m) {
        let deadline = async {
            match timeout {
                Some(t) => tokio::time::sleep(t).await,
                None => std::future::pending().await,
            }
        };
        let msg = tokio::select! {
            m = consumer.recv() => m?,
            () = deadline => break,
            () = signals.wait_for(1) => break,
        };
        if json {
            let mut line = record_json(&msg.record);
            line["delivery_count"] = json!(msg.delivery_count);
            writeln!(out, "{line}")?;
        } else {
            print_record(&mut out, &msg.record, Format::Plain)?;
        }
        if reject {
            msg.reject(reason.clone());
        } else if nack {
            msg.nack(reason.clone());
        } else {
            msg.ack();
        }
        n += 1;
    }
    consumer.close().await?;
    eprintln!("{n} message(s) from queue group {group}");
    Ok(())
}

fn print_description(d: &v1::QueueDescription, json: bool) {
    let s = d.settings.clone().unwrap_or_default();
    if json {
        let partitions: Vec<_> = d
            .partitions
            .iter()
            .map(|p| json!({"partition": p.partition, "acked_up_to": p.acked_up_to, "log_end_offset": p.log_end_offset,
                "lag": p.lag, "unsettled": p.unsettled, "in_flight": p.in_flight, "waiting": p.waiting,
                "oldest_unacked_age_ms": p.oldest_unacked_age_ms}))
            .collect();
        let consumers: Vec<_> = d
            .consumers
            .iter()
            .map(|c| json!({"consumer_id": c.consumer_id, "in_flight": c.in_flight, "idle_ms": c.idle_ms}))
            .collect();
        println!(
            "{}",
            json!({"group": d.group, "topic": d.topic, "lag": d.lag, "in_flight": d.in_flight, "waiting": d.waiting,
                "oldest_unacked_age_ms": d.oldest_unacked_age_ms, "dlq_topic": s.dlq_topic(), "dlq_depth": d.dlq_depth,
                "redeliveries": d.redeliveries, "dead_lettered": d.dead_lettered, "lost_to_retention": d.lost_to_retention,
                "settings": {"lease_ms": s.lease_ms(), "max_deliveries": s.max_deliveries(),
                    "backoff_initial_ms": s.backoff_initial_ms(), "backoff_max_ms": s.backoff_max_ms(),
                    "backoff_multiplier": s.backoff_multiplier(), "key_ordered": s.key_ordered(),
                    "dlq_partitions": s.dlq_partitions(), "window": s.window()},
                "partitions": partitions, "consumers": consumers})
        );
        return;
    }
    println!(
        "queue group {} on {}: lag {}, in flight {}, waiting {}, oldest unacked {} ms",
        d.group, d.topic, d.lag, d.in_flight, d.waiting, d.oldest_unacked_age_ms
    );
    println!(
        "dead letters: {} in {} ({} since the broker started); redeliveries {}; lost to retention {}",
        d.dlq_depth,
        s.dlq_topic(),
        d.dead_lettered,
        d.redeliveries,
        d.lost_to_retention
    );
    println!(
        "settings: lease_ms={} max_deliveries={} backoff={}ms..{}ms x{} key_ordered={} window={}",
        s.lease_ms(),
        s.max_deliveries(),
        s.backoff_initial_ms(),
        s.backoff_max_ms(),
        s.backoff_multiplier(),
        s.key_ordered(),
        s.window()
    );
    let rows: Vec<Vec<String>> = d
        .partitions
        .iter()
        .map(|p| {
            vec![
                p.partition.to_string(),
                p.acked_up_to.to_string(),
                p.log_end_offset.to_string(),
                p.lag.to_string(),
                p.in_flight.to_string(),
                p.waiting.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "PARTITION",
            "ACKED-UP-TO",
            "END",
            "LAG",
            "IN-FLIGHT",
            "WAITING",
        ],
        &rows,
    );
    if !d.consumers.is_empty() {
        let rows: Vec<Vec<String>> = d
            .consumers
            .iter()
            .map(|c| {
                vec![
                    c.consumer_id.clone(),
                    c.in_flight.to_string(),
                    c.idle_ms.to_string(),
                ]
            })
            .collect();
        table(&["CONSUMER", "IN-FLIGHT", "IDLE-MS"], &rows);
    }
}

async fn list(admin: &Admin, json: bool) -> anyhow::Result<()> {
    let queues = admin.list_queues().await?;
    if json {
        let v: Vec<_> = queues
            .iter()
            .map(|q| json!({"group": q.group, "topic": q.topic, "lag": q.lag, "in_flight": q.in_flight,
                "dlq_topic": q.settings.clone().unwrap_or_default().dlq_topic(), "dlq_depth": q.dlq_depth}))
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = queues
        .iter()
        .map(|q| {
            vec![
                q.group.clone(),
                q.topic.clone(),
                q.lag.to_string(),
                q.in_flight.to_string(),
                q.settings
                    .clone()
                    .unwrap_or_default()
                    .dlq_topic()
                    .to_string(),
                q.dlq_depth.to_string(),
            ]
        })
        .collect();
    table(
        &["GROUP", "TOPIC", "LAG", "IN-FLIGHT", "DLQ", "DLQ-DEPTH"],
        &rows,
    );
    Ok(())
}

/// Runs `brook dlq …`.
pub(crate) async fn run_dlq(args: DlqArgs) -> anyhow::Result<()> {
    let client = args.conn.client().await?;
    let admin = client.admin();
    let json = args.output.json;
    match args.cmd {
        DlqCmd::List => list(&admin, json).await?,
        DlqCmd::Show { group, max } => show(&client, &group, max, json).await?,
        DlqCmd::Redrive {
            group,
            partition,
            from_offset,
            to_offset,
            from_time,
            to_time,
            to_topic,
            to_group,
            limit,
            dry_run,
        } => {
            let r = admin
                .redrive(v1::RedriveRequest {
                    group: group.clone(),
                    dlq_partition: partition,
                    from_offset,
                    to_offset,
                    from_time_ms: from_time,
                    to_time_ms: to_time,
                    target_topic: to_topic.unwrap_or_default(),
                    dry_run,
                    limit,
                    to_group,
                })
                .await?;
            if json {
                println!(
                    "{}",
                    json!({"redriven": r.redriven, "already_redriven": r.already_redriven, "unavailable": r.unavailable, "dry_run": dry_run})
                );
            } else {
                let verb = if dry_run { "would redrive" } else { "redrove" };
                let to = if to_group { " back into the group" } else { "" };
                println!(
                    "{verb} {} records of {group}'s dead-letter topic{to} ({} in the range were redriven before)",
                    r.redriven, r.already_redriven
                );
                if r.unavailable > 0 {
                    println!(
                        "{} records could not go back into the group: their source records are no longer in the topic, or the group has them unsettled; run it again later, or redrive them without --to-group to copy them",
                        r.unavailable
                    );
                }
            }
        }
    }
    Ok(())
}

/// Prints dead-lettered records, partition by partition, oldest first.
async fn show(client: &Client, group: &str, max: u64, json: bool) -> anyhow::Result<()> {
    let q = client.admin().describe_queue(group).await?;
    let dlq = q.settings.unwrap_or_default().dlq_topic().to_string();
    let topic = match client.admin().describe_topic(&dlq).await {
        Ok(t) => t,
        Err(e) if e.code() == Some(brook_client::Code::NotFound) => {
            if !json {
                println!("no dead letters: {dlq} does not exist yet");
            }
            return Ok(());
        }
        Err(e) => return Err(e.into()),
    };
    let mut n = 0;
    let mut out = std::io::stdout().lock();
    for p in &topic.partitions {
        let end = p.log_end_offset;
        let mut reader = client.reader(&dlq, p.partition, ReadFrom::Earliest).await?;
        while n < max && reader.position() < end {
            let r = reader.recv().await?;
            if r.offset >= end {
                break;
            }
            if json {
                // The dead-letter topic is named once, by the command.
                let mut line = record_json(&r);
                if let Some(o) = line.as_object_mut() {
                    o.remove("topic");
                }
                writeln!(out, "{line}")?;
            } else {
                let get = |k: &str| {
                    r.headers
                        .iter()
                        .find(|(key, _)| key == k)
                        .map_or("-".into(), |(_, v)| String::from_utf8_lossy(v).into_owned())
                };
                writeln!(
                    out,
                    "{dlq}/{} offset {}: from {}/{} offset {} after {} deliveries: {}\n  key={} value={}",
                    p.partition,
                    r.offset,
                    get("brook-dlq-topic"),
                    get("brook-dlq-partition"),
                    get("brook-dlq-offset"),
                    get("brook-dlq-delivery-count"),
                    get("brook-dlq-reason"),
                    text(&r.key).unwrap_or_else(|| "null".into()),
                    text(&r.value).unwrap_or_else(|| "null".into()),
                )?;
            }
            n += 1;
        }
    }
    Ok(())
}
