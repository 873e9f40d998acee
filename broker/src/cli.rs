//! The operator commands of the `brook` binary: topics, produce, consume,
//! groups and lag. Human tables by default, JSON with `--json`; errors exit
//! non-zero with a one-line reason (printed by `main`).

use std::io::{BufRead, Write};
use std::time::Duration;

use anyhow::{Context, bail};
use brook_client::{
    Client, ConsumerConfig, ProducerConfig, ProducerRecord, ResetTo, StartFrom, proto as v1,
};
use bytes::Bytes;
use serde_json::json;

/// Where the broker is, shared by every command.
#[derive(Debug, Clone, clap::Args)]
pub struct Conn {
    /// Broker address.
    #[arg(
        long,
        env = "BROOK_URL",
        default_value = "http://127.0.0.1:9292",
        global = true
    )]
    pub url: String,
    /// PEM CA to trust for an https:// broker (default: the system's roots).
    #[arg(long, env = "BROOK_TLS_CA", global = true)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// JSON output instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Conn {
    async fn client(&self) -> anyhow::Result<Client> {
        let ca = self.tls_ca.as_deref().map(read_ca).transpose()?;
        connect(&self.url, ca.as_deref())
            .await
            .with_context(|| format!("cannot reach the broker at {}", self.url))
    }
}

/// Reads the PEM CA file to trust for an https:// broker.
pub(crate) fn read_ca(path: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading the CA file {}", path.display()))
}

/// Connects to the broker at `url`, trusting `ca` (PEM) if given.
pub(crate) async fn connect(url: &str, ca: Option<&[u8]>) -> brook_client::Result<Client> {
    let mut builder = Client::builder(url);
    if let Some(ca) = ca {
        builder = builder.tls_ca_pem(ca);
    }
    builder.connect().await
}

/// `brook topic ...`
#[derive(Debug, clap::Subcommand)]
pub enum TopicCmd {
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
        /// always, never or interval:MS.
        #[arg(long)]
        flush: Option<String>,
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

/// `brook produce` flags.
#[derive(Debug, clap::Args)]
pub struct ProduceCmd {
    /// Topic to write to; one record per line of standard input.
    pub topic: String,
    /// Key of every record.
    #[arg(long, conflicts_with = "key_field")]
    pub key: Option<String>,
    /// Read each line as JSON and use this field as the key (e.g. aggregate_id).
    #[arg(long)]
    pub key_field: Option<String>,
    /// Header KEY=VALUE, repeatable.
    #[arg(long = "header", value_parser = parse_header)]
    pub headers: Vec<(String, String)>,
    /// Wait until records are on disk.
    #[arg(long)]
    pub durable: bool,
}

/// `brook consume` flags.
#[derive(Debug, clap::Args)]
pub struct ConsumeCmd {
    /// Topic to read.
    pub topic: String,
    /// Consume as a member of this group (commits progress); otherwise read partitions directly.
    #[arg(long)]
    pub group: Option<String>,
    /// Partitions to read without a group (default: all).
    #[arg(long = "partition")]
    pub partitions: Vec<u32>,
    /// Where to start without a committed offset: earliest, latest, offset:N or time:MS.
    #[arg(long, default_value = "earliest")]
    pub from: String,
    /// Stop after this many records.
    #[arg(long)]
    pub max: Option<u64>,
    /// plain (the value) or json (one object per record with its metadata).
    #[arg(long, default_value = "plain")]
    pub format: String,
}

/// `brook group ...`
#[derive(Debug, clap::Subcommand)]
pub enum GroupCmd {
    /// List groups.
    List,
    /// State, members, assignments and committed offsets.
    Describe {
        /// Group name.
        group: String,
    },
    /// Delete a group's committed offsets (it must have no members).
    Delete {
        /// Group name.
        group: String,
    },
    /// Move a group's offsets: replay or skip.
    ResetOffsets {
        /// Group name.
        group: String,
        /// Topic.
        #[arg(long)]
        topic: String,
        /// Partitions (default: all).
        #[arg(long = "partition")]
        partitions: Vec<u32>,
        /// earliest, latest, offset:N, time:MS or shift:N.
        #[arg(long)]
        to: String,
        /// Show the result, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Even while the group has members.
        #[arg(long)]
        force: bool,
    },
}

/// `brook lag` flags.
#[derive(Debug, clap::Args)]
pub struct LagCmd {
    /// Group (default: every group).
    pub group: Option<String>,
    /// Refresh every second until interrupted.
    #[arg(long)]
    pub watch: bool,
}

fn parse_header(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| format!("header {s:?} is not KEY=VALUE"))
}

fn parse_reset(s: &str) -> anyhow::Result<ResetTo> {
    Ok(match s {
        "earliest" => ResetTo::Earliest,
        "latest" => ResetTo::Latest,
        _ => match s.split_once(':') {
            Some(("offset", n)) => ResetTo::Offset(n.parse().context("offset:N needs a number")?),
            Some(("time", n)) => ResetTo::Timestamp(n.parse().context("time:MS needs a number")?),
            Some(("shift", n)) => ResetTo::ShiftBy(n.parse().context("shift:N needs a number")?),
            _ => bail!("{s:?} is not earliest, latest, offset:N, time:MS or shift:N"),
        },
    })
}

fn table(header: &[&str], rows: &[Vec<String>]) {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.len());
        }
    }
    let line = |cells: Vec<String>| {
        let parts: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<w$}", w = widths[i]))
            .collect();
        println!("{}", parts.join("  ").trim_end());
    };
    line(header.iter().map(|h| h.to_string()).collect());
    for r in rows {
        line(r.clone());
    }
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

/// Runs `brook topic ...`.
pub async fn topic(conn: &Conn, cmd: TopicCmd) -> anyhow::Result<()> {
    let admin = conn.client().await?.admin();
    let show = |t: &v1::TopicDescription| {
        if conn.json {
            println!("{}", topic_json(t));
        } else {
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
    };
    match cmd {
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
            if let Some(f) = flush {
                match crate::config::parse_flush(&f)? {
                    brook_storage::FlushPolicy::Always => {
                        config.flush_policy = v1::FlushPolicy::Always as i32
                    }
                    brook_storage::FlushPolicy::Never => {
                        config.flush_policy = v1::FlushPolicy::Never as i32
                    }
                    brook_storage::FlushPolicy::Interval(d) => {
                        config.flush_policy = v1::FlushPolicy::Interval as i32;
                        config.flush_interval_ms = Some(d.as_millis() as u64);
                    }
                }
            }
            show(&admin.create_topic_with(&name, config).await?);
        }
        TopicCmd::List => {
            let topics = admin.list_topics().await?;
            if conn.json {
                println!(
                    "{}",
                    serde_json::Value::Array(topics.iter().map(topic_json).collect())
                );
            } else {
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
        }
        TopicCmd::Describe { name } => show(&admin.describe_topic(&name).await?),
        TopicCmd::Delete { name } => {
            admin.delete_topic(&name).await?;
            if !conn.json {
                println!("deleted topic {name}");
            }
        }
        TopicCmd::AddPartitions { name, partitions } => {
            show(&admin.add_partitions(&name, partitions).await?)
        }
    }
    Ok(())
}

/// Runs `brook produce`: one record per stdin line.
pub async fn produce(conn: &Conn, cmd: ProduceCmd) -> anyhow::Result<()> {
    let client = conn.client().await?;
    let acks = if cmd.durable {
        brook_client::Acks::Durable
    } else {
        brook_client::Acks::Written
    };
    let producer = client.producer(ProducerConfig {
        acks,
        ..Default::default()
    });
    let headers: Vec<(String, Bytes)> = cmd
        .headers
        .iter()
        .map(|(k, v)| (k.clone(), Bytes::from(v.clone())))
        .collect();
    let mut deliveries = Vec::new();
    let started = std::time::Instant::now();
    for (n, line) in std::io::stdin().lock().lines().enumerate() {
        let line = line.context("reading standard input")?;
        let key = match &cmd.key_field {
            Some(field) => {
                let v: serde_json::Value = serde_json::from_str(&line)
                    .with_context(|| format!("line {} is not JSON", n + 1))?;
                match v.get(field) {
                    Some(serde_json::Value::String(s)) => Some(Bytes::from(s.clone())),
                    Some(other) => Some(Bytes::from(other.to_string())),
                    None => bail!("line {} has no field {field:?}", n + 1),
                }
            }
            None => cmd.key.as_ref().map(|k| Bytes::from(k.clone())),
        };
        let record = ProducerRecord {
            topic: cmd.topic.clone(),
            key,
            value: Some(Bytes::from(line)),
            headers: headers.clone(),
            ..Default::default()
        };
        deliveries.push(producer.send_record(record).await?);
        if deliveries.len() % 100_000 == 0 && !conn.json {
            eprintln!("  {} records sent...", deliveries.len());
        }
    }
    producer.flush().await?;
    let count = deliveries.len();
    let mut last = None;
    for d in deliveries {
        last = Some(d.await?);
    }
    if conn.json {
        println!(
            "{}",
            json!({ "topic": cmd.topic, "records": count, "last": last.map(|m| json!({"partition": m.partition, "offset": m.offset})) })
        );
    } else {
        eprintln!(
            "produced {count} records to {} in {:.2} s",
            cmd.topic,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Runs `brook consume`.
pub async fn consume(conn: &Conn, cmd: ConsumeCmd) -> anyhow::Result<()> {
    let client = conn.client().await?;
    let (start_from, seek) = match cmd.from.as_str() {
        "earliest" => (StartFrom::Earliest, None),
        "latest" => (StartFrom::Latest, None),
        s => match s.split_once(':') {
            Some(("offset", n)) => (
                StartFrom::Earliest,
                Some(ResetTo::Offset(
                    n.parse().context("offset:N needs a number")?,
                )),
            ),
            Some(("time", n)) => (
                StartFrom::Earliest,
                Some(ResetTo::Timestamp(
                    n.parse().context("time:MS needs a number")?,
                )),
            ),
            _ => bail!("--from {s:?} is not earliest, latest, offset:N or time:MS"),
        },
    };
    if cmd.format != "plain" && cmd.format != "json" {
        bail!("--format must be plain or json, not {:?}", cmd.format);
    }
    let group = cmd
        .group
        .clone()
        .unwrap_or_else(|| format!("brook-cli-{}", std::process::id()));
    let config = ConsumerConfig {
        start_from,
        auto_commit: cmd.group.as_ref().map(|_| Duration::from_secs(1)),
        client_id: "brook-cli".into(),
        ..ConsumerConfig::new(group, &[&cmd.topic])
    };
    let mut consumer = match &cmd.group {
        Some(_) => client.consumer(config).await?,
        None => {
            let parts = if cmd.partitions.is_empty() {
                (0..client
                    .admin()
                    .describe_topic(&cmd.topic)
                    .await?
                    .partitions
                    .len() as u32)
                    .collect()
            } else {
                cmd.partitions.clone()
            };
            let mut c = client.consumer_assigned(config, &cmd.topic, &parts).await?;
            for p in &parts {
                match seek {
                    Some(ResetTo::Offset(o)) => c.seek(&cmd.topic, *p, o),
                    Some(ResetTo::Timestamp(t)) => c.seek_to_timestamp(&cmd.topic, *p, t).await?,
                    _ => {}
                }
            }
            c
        }
    };
    let mut out = std::io::stdout().lock();
    let mut n = 0u64;
    while cmd.max.is_none_or(|m| n < m) {
        let r = consumer.recv().await?;
        n += 1;
        let text = |b: &Option<Bytes>| b.as_ref().map(|v| String::from_utf8_lossy(v).into_owned());
        if cmd.format == "json" {
            let headers: serde_json::Map<String, serde_json::Value> = r
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), json!(String::from_utf8_lossy(v))))
                .collect();
            let line = json!({"topic": &*r.topic, "partition": r.partition, "offset": r.offset, "timestamp_ms": r.timestamp_ms, "key": text(&r.key), "value": text(&r.value), "headers": headers});
            writeln!(out, "{line}")?;
        } else {
            writeln!(out, "{}", text(&r.value).unwrap_or_default())?;
        }
    }
    out.flush()?;
    consumer.close().await?;
    Ok(())
}

/// Runs `brook group ...`.
pub async fn group(conn: &Conn, cmd: GroupCmd) -> anyhow::Result<()> {
    let admin = conn.client().await?.admin();
    match cmd {
        GroupCmd::List => {
            let groups = admin.list_groups().await?;
            if conn.json {
                let v: Vec<_> = groups.iter().map(|g| json!({"group": g.group, "state": state(g.state), "members": g.members})).collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                let rows: Vec<Vec<String>> = groups
                    .iter()
                    .map(|g| {
                        vec![
                            g.group.clone(),
                            state(g.state).into(),
                            g.members.to_string(),
                        ]
                    })
                    .collect();
                table(&["GROUP", "STATE", "MEMBERS"], &rows);
            }
        }
        GroupCmd::Describe { group } => {
            let d = admin.describe_group(&group).await?;
            let members: Vec<_> = d
                .members
                .iter()
                .map(|m| json!({"member_id": m.member_id, "client_id": m.client_id, "host": m.host,
                    "assignment": m.assignment.iter().map(|t| json!({"topic": t.topic, "partitions": t.partitions})).collect::<Vec<_>>()}))
                .collect();
            let offsets: Vec<_> = d.offsets.iter().map(|o| json!({"topic": o.topic, "partition": o.partition, "offset": o.offset, "metadata": o.metadata})).collect();
            if conn.json {
                println!(
                    "{}",
                    json!({"group": d.group, "state": state(d.state), "generation": d.generation, "members": members, "offsets": offsets})
                );
            } else {
                println!(
                    "group {} is {} at generation {}",
                    d.group,
                    state(d.state),
                    d.generation
                );
                let rows: Vec<Vec<String>> = d
                    .members
                    .iter()
                    .map(|m| {
                        let parts: Vec<String> = m
                            .assignment
                            .iter()
                            .map(|t| format!("{}:{:?}", t.topic, t.partitions))
                            .collect();
                        vec![
                            m.member_id.clone(),
                            m.client_id.clone(),
                            m.host.clone(),
                            parts.join(" "),
                        ]
                    })
                    .collect();
                table(&["MEMBER", "CLIENT", "HOST", "ASSIGNMENT"], &rows);
                let rows: Vec<Vec<String>> = d
                    .offsets
                    .iter()
                    .map(|o| {
                        vec![
                            o.topic.clone(),
                            o.partition.to_string(),
                            o.offset.to_string(),
                        ]
                    })
                    .collect();
                table(&["TOPIC", "PARTITION", "COMMITTED"], &rows);
            }
        }
        GroupCmd::Delete { group } => {
            admin.delete_group(&group).await?;
            if !conn.json {
                println!("deleted group {group}");
            }
        }
        GroupCmd::ResetOffsets {
            group,
            topic,
            partitions,
            to,
            dry_run,
            force,
        } => {
            let r = admin
                .reset_offsets(
                    &group,
                    &topic,
                    &partitions,
                    parse_reset(&to)?,
                    dry_run,
                    force,
                )
                .await?;
            if conn.json {
                let v: Vec<_> = r.changes.iter().map(|c| json!({"topic": c.topic, "partition": c.partition, "before": c.before, "after": c.after})).collect();
                println!("{}", json!({"applied": r.applied, "changes": v}));
            } else {
                let rows: Vec<Vec<String>> = r
                    .changes
                    .iter()
                    .map(|c| {
                        vec![
                            c.topic.clone(),
                            c.partition.to_string(),
                            c.before.map_or("-".into(), |b| b.to_string()),
                            c.after.to_string(),
                        ]
                    })
                    .collect();
                table(&["TOPIC", "PARTITION", "BEFORE", "AFTER"], &rows);
                println!(
                    "{}",
                    if r.applied {
                        "applied"
                    } else {
                        "dry run: nothing changed"
                    }
                );
            }
        }
    }
    Ok(())
}

fn state(s: i32) -> &'static str {
    match v1::GroupState::try_from(s) {
        Ok(v1::GroupState::Empty) => "empty",
        Ok(v1::GroupState::Rebalancing) => "rebalancing",
        Ok(v1::GroupState::Stable) => "stable",
        _ => "unknown",
    }
}

fn human_ms(ms: i64) -> String {
    match ms {
        0 => "0".into(),
        ms if ms < 1000 => format!("{ms}ms"),
        ms if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        ms if ms < 3_600_000 => format!("{:.1}m", ms as f64 / 60_000.0),
        ms => format!("{:.1}h", ms as f64 / 3_600_000.0),
    }
}

/// Runs `brook lag`.
pub async fn lag(conn: &Conn, cmd: LagCmd) -> anyhow::Result<()> {
    let admin = conn.client().await?.admin();
    loop {
        let groups = match &cmd.group {
            Some(g) => vec![g.clone()],
            None => admin
                .list_groups()
                .await?
                .into_iter()
                .map(|g| g.group)
                .collect(),
        };
        let mut all = Vec::new();
        for g in &groups {
            all.push(admin.consumer_lag(g, None).await?);
        }
        if conn.json {
            let v: Vec<_> = all
                .iter()
                .map(|l| json!({"group": l.group, "total_lag_records": l.total_lag_records, "max_lag_ms": l.max_lag_ms,
                    "partitions": l.partitions.iter().map(|p| json!({"topic": p.topic, "partition": p.partition,
                        "committed": p.committed_offset, "log_end_offset": p.log_end_offset, "lag": p.lag_records, "lag_ms": p.lag_ms})).collect::<Vec<_>>()}))
                .collect();
            println!("{}", serde_json::Value::Array(v));
        } else {
            let mut rows = Vec::new();
            for l in &all {
                for p in &l.partitions {
                    rows.push(vec![
                        l.group.clone(),
                        p.topic.clone(),
                        p.partition.to_string(),
                        p.committed_offset.map_or("-".into(), |c| c.to_string()),
                        p.log_end_offset.to_string(),
                        p.lag_records.to_string(),
                        human_ms(p.lag_ms),
                    ]);
                }
            }
            table(
                &[
                    "GROUP",
                    "TOPIC",
                    "PARTITION",
                    "COMMITTED",
                    "END",
                    "LAG",
                    "TIME LAG",
                ],
                &rows,
            );
        }
        if !cmd.watch {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!();
    }
}
