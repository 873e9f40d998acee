//! `kafka-peer-bench`: Brook's standard scenarios w1 and w2 run through a
//! Kafka client library, rskafka, against Brook's Kafka listener.
//!
//! It exists so that the gRPC figures (`brook bench --scenario w1|w2`) have
//! the same workloads over Kafka's protocol measured in the same run, against
//! the same broker (`scripts/bench-kafka.sh` runs both). The workloads mirror
//! `broker/src/cli/bench/scenario.rs`, done the way an rskafka user would:
//!
//! - **w1** (produce): N records of 1 KiB keyed by 10,000 aggregates
//!   (`aggregate-000000` ...), routed by Kafka's murmur2 partitioner (the
//!   function Brook's producer uses) to the topic's partitions. Each round
//!   takes the next 8,000 records (about 1,000 per partition of 8), sends
//!   each partition's share as one produce request (one batch), all
//!   partitions at once, and awaits them all before the next round: one
//!   batch in flight per partition, as Brook's w1 (`max_in_flight: 1`, a
//!   `flush` per 8,000). Latency is per round, as Brook's. rskafka sends
//!   every produce with **acks=-1**, which Brook answers once the batch is
//!   on disk: this is Brook's `w1-durable`, not `w1` (see [`Acks`]).
//! - **w2** (consume): every partition read from offset 0 to its high
//!   watermark with fetches of up to 4 MiB, partition by partition, counting
//!   records and value bytes, as Brook's w2 (`Client::reader`).
//!
//! Differences an application would also see: rskafka is not an idempotent
//! producer (Brook's client is), takes records as owned `Vec<u8>`s (one copy
//! of every key and value per send), and keeps one connection per
//! partition. The topic is created with `--partitions` when w1 finds it
//! missing. With `--json` it prints one JSON line on stdout with the fields
//! of `brook bench --json` (null for what it does not measure), else a
//! summary; progress on stderr; it exits non-zero when a check (stored or
//! read counts) fails.

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use clap::{Parser, ValueEnum};
use futures_util::future::try_join_all;
use hdrhistogram::Histogram;
use rskafka::BackoffConfig;
use rskafka::chrono::{DateTime, Utc};
use rskafka::client::partition::{Compression, OffsetAt, PartitionClient, UnknownTopicHandling};
use rskafka::client::{Client, ClientBuilder};
use rskafka::record::Record;

/// Records sent per w1 round: about 1,000 per partition of 8 (Brook's `W1_ROUND`).
const W1_ROUND: u64 = 8_000;
/// Keys: aggregates the records belong to.
const AGGREGATES: u64 = 10_000;
/// Value size.
const VALUE_BYTES: usize = 1024;
/// Most bytes one w2 fetch asks for (a batch larger than this still comes whole).
const FETCH_BYTES: i32 = 4 << 20;

#[derive(Parser)]
#[command(
    version,
    about = "Brook's w1 and w2 through rskafka against a Kafka listener"
)]
struct Args {
    /// The Kafka listener, e.g. 127.0.0.1:9092 (the `kafka=` of `brook listening`).
    #[arg(long)]
    bootstrap: String,
    #[arg(long)]
    topic: String,
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Records to write or read.
    #[arg(long, default_value_t = 1_000_000)]
    messages: u64,
    /// Partitions of the topic when w1 creates it.
    #[arg(long, default_value_t = 8)]
    partitions: i32,
    /// Produce acks: only `durable` (acks=-1) is possible with rskafka.
    #[arg(long, value_enum, default_value_t = Acks::Durable)]
    acks: Acks,
    /// Print one JSON object (as `brook bench --json`) instead of a summary.
    #[arg(long)]
    json: bool,
    /// The broker's pid, to report its memory as `brook bench` does.
    #[arg(long)]
    broker_pid: Option<u32>,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    W1,
    W2,
}

/// Brook's ack levels in Kafka terms: written is acks=1, durable acks=-1.
/// rskafka 0.6 has no acks setting: `build_produce_request` always sends
/// acks=-1 (and a 30 s timeout), so only `durable` can be run.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Acks {
    Written,
    Durable,
}

/// The outcome of one workload.
struct Report {
    workload: &'static str,
    messages: u64,
    bytes: u64,
    elapsed: Duration,
    latency: Option<Histogram<u64>>,
    broker_peak_rss_kib: Option<u64>,
    broker_rss_anon_kib: Option<u64>,
}

impl Report {
    /// `brook bench --json`'s line: the same fields in the same order and
    /// formats (broker/src/cli/bench/report.rs), null for the baselines,
    /// which this peer does not measure.
    fn json(&self) -> String {
        let secs = self.elapsed.as_secs_f64();
        let msgs = self.messages as f64 / secs;
        let mib = self.bytes as f64 / (1u64 << 20) as f64 / secs;
        let opt = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
        let pct = |q: f64| opt(self.latency.as_ref().map(|h| h.value_at_quantile(q)));
        format!(
            "{{\"workload\":\"{}\",\"messages\":{},\"seconds\":{secs:.3},\"msgs_per_s\":{msgs:.0},\"mib_per_s\":{mib:.1},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"baseline_write_mib_per_s\":null,\"baseline_buffered_mib_per_s\":null,\"broker_peak_rss_kib\":{},\"broker_rss_anon_kib\":{},\"rpc_baseline_p50_us\":null,\"rpc_baseline_p99_us\":null}}",
            self.workload,
            self.messages,
            pct(0.5),
            pct(0.99),
            pct(0.999),
            opt(self.broker_peak_rss_kib),
            opt(self.broker_rss_anon_kib),
        )
    }

    /// The human summary, as `brook bench` without `--json`.
    fn print_summary(&self) {
        let secs = self.elapsed.as_secs_f64();
        println!(
            "{}: {} records in {secs:.2} s = {:.0} msgs/s, {:.1} MiB/s",
            self.workload,
            self.messages,
            self.messages as f64 / secs,
            self.bytes as f64 / (1u64 << 20) as f64 / secs,
        );
        if let Some(h) = &self.latency {
            println!(
                "  latency per round p50 {} µs, p99 {} µs, p999 {} µs, max {} µs",
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max()
            );
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.acks == Acks::Written {
        bail!(
            "rskafka sends every produce with acks=-1 (durable in Brook): --acks written \
             (acks=1) cannot be run; compare with `brook bench --scenario w1-durable`"
        );
    }
    ensure!(args.partitions >= 1, "--partitions must be at least 1");
    let client = ClientBuilder::new(vec![args.bootstrap.clone()])
        // rskafka retries failed requests forever by default: end a broken run.
        .backoff_config(BackoffConfig {
            deadline: Some(Duration::from_secs(60)),
            ..BackoffConfig::default()
        })
        .build()
        .await
        .with_context(|| format!("connecting to {}", args.bootstrap))?;
    let partitions = partition_count(&client, &args).await?;
    let name = match args.scenario {
        Scenario::W1 => "w1",
        Scenario::W2 => "w2",
    };
    eprintln!(
        "kafka {name}: {} records, topic {} ({partitions} partitions)",
        args.messages, args.topic
    );
    let mut report = match args.scenario {
        Scenario::W1 => produce(&client, &args.topic, partitions, args.messages).await?,
        Scenario::W2 => consume(&client, &args.topic, partitions, args.messages).await?,
    };
    eprintln!(
        "kafka {name}: done in {:.3} s",
        report.elapsed.as_secs_f64()
    );
    report.broker_peak_rss_kib = proc_status_kib(args.broker_pid, "VmHWM:");
    report.broker_rss_anon_kib = proc_status_kib(args.broker_pid, "RssAnon:");
    if args.json {
        println!("{}", report.json());
    } else {
        report.print_summary();
    }
    Ok(())
}

/// The topic's partition count; w1 creates the topic when it is missing.
async fn partition_count(client: &Client, args: &Args) -> anyhow::Result<u32> {
    let topics = client.list_topics().await.context("listing topics")?;
    if let Some(t) = topics.iter().find(|t| t.name == args.topic) {
        return Ok(t.partitions.len() as u32);
    }
    ensure!(
        args.scenario == Scenario::W1,
        "no topic {}: run --scenario w1 on it first",
        args.topic
    );
    client
        .controller_client()?
        .create_topic(&args.topic, args.partitions, 1, 5_000)
        .await
        .with_context(|| format!("creating topic {}", args.topic))?;
    Ok(args.partitions as u32)
}

/// A client per partition (each with its own connection to the leader).
async fn partition_clients(
    client: &Client,
    topic: &str,
    partitions: u32,
) -> anyhow::Result<Vec<PartitionClient>> {
    let mut out = Vec::with_capacity(partitions as usize);
    for p in 0..partitions as i32 {
        out.push(
            client
                .partition_client(topic, p, UnknownTopicHandling::Retry)
                .await
                .with_context(|| format!("partition {topic}/{p}"))?,
        );
    }
    Ok(out)
}

/// Sum of the partitions' end offsets (ListOffsets latest).
async fn end_offsets(parts: &[PartitionClient]) -> anyhow::Result<i64> {
    let mut total = 0;
    for p in parts {
        total += p.get_offset(OffsetAt::Latest).await.context("end offset")?;
    }
    Ok(total)
}

/// W1: rounds of 8,000 records, one produce per partition, all in flight
/// at once, all awaited before the next round; the histogram has the rounds.
async fn produce(client: &Client, topic: &str, partitions: u32, n: u64) -> anyhow::Result<Report> {
    let parts = partition_clients(client, topic, partitions).await?;
    let keys: Vec<Vec<u8>> = (0..AGGREGATES)
        .map(|k| format!("aggregate-{k:06}").into_bytes())
        .collect();
    let value = vec![0x42u8; VALUE_BYTES];
    let before = end_offsets(&parts).await?;
    let mut rounds =
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds");
    let started = Instant::now();
    let mut sent = 0;
    while sent < n {
        let round = Instant::now();
        let count = W1_ROUND.min(n - sent);
        let timestamp = now()?;
        let mut batches: Vec<Vec<Record>> = (0..partitions).map(|_| Vec::new()).collect();
        for i in sent..sent + count {
            let key = &keys[(i % AGGREGATES) as usize];
            let p = brook_protocol::partitioner::partition_for_key(key, partitions) as usize;
            batches[p].push(Record {
                key: Some(key.clone()),
                value: Some(value.clone()),
                headers: BTreeMap::new(),
                timestamp,
            });
        }
        // An empty batch sends nothing (rskafka answers it without a request).
        try_join_all(
            parts
                .iter()
                .zip(batches)
                .map(|(part, batch)| part.produce(batch, Compression::NoCompression)),
        )
        .await
        .context("produce")?;
        sent += count;
        rounds.saturating_record(round.elapsed().as_micros().max(1) as u64);
    }
    let elapsed = started.elapsed();
    let stored = end_offsets(&parts).await? - before;
    ensure!(
        stored == n as i64,
        "{stored} records were stored, expected {n}"
    );
    Ok(Report {
        workload: "kafka w1 (rskafka acks=-1: durable; 8,000 per round, a produce per partition)",
        messages: n,
        bytes: n * VALUE_BYTES as u64,
        elapsed,
        latency: Some(rounds),
        broker_peak_rss_kib: None,
        broker_rss_anon_kib: None,
    })
}

/// W2: partition by partition, fetches from offset 0 until the high
/// watermark (or until `n` records are counted).
async fn consume(client: &Client, topic: &str, partitions: u32, n: u64) -> anyhow::Result<Report> {
    let (mut count, mut bytes) = (0u64, 0u64);
    let started = Instant::now();
    for p in 0..partitions as i32 {
        if count >= n {
            break;
        }
        let part = client
            .partition_client(topic, p, UnknownTopicHandling::Error)
            .await
            .with_context(|| format!("partition {topic}/{p}"))?;
        let mut offset = 0i64;
        loop {
            let (records, high_watermark) =
                part.fetch_records(offset, 1..FETCH_BYTES, 500)
                    .await
                    .with_context(|| format!("fetch {topic}/{p} at {offset}"))?;
            let Some(last) = records.last() else {
                ensure!(
                    offset >= high_watermark,
                    "{topic}/{p}: an empty fetch at {offset}, below the high watermark {high_watermark}"
                );
                break;
            };
            offset = last.offset + 1;
            for r in records.iter().take((n - count) as usize) {
                bytes += r.record.value.as_ref().map_or(0, |v| v.len() as u64);
                count += 1;
            }
            if offset >= high_watermark || count >= n {
                break;
            }
        }
    }
    let elapsed = started.elapsed();
    ensure!(
        count >= n,
        "the topic holds {count} records, not {n}: run --scenario w1 on it first"
    );
    Ok(Report {
        workload: "kafka w2 (partition by partition, fetches of 4 MiB)",
        messages: count,
        bytes,
        elapsed,
        latency: None,
        broker_peak_rss_kib: None,
        broker_rss_anon_kib: None,
    })
}

/// The time now for a record's timestamp (rskafka's chrono is built without
/// the `now` feature, so no `Utc::now`).
fn now() -> anyhow::Result<DateTime<Utc>> {
    let ms = SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis();
    DateTime::from_timestamp_millis(ms as i64).context("clock out of range")
}

/// A `kB` field of the broker's /proc status (VmHWM: peak RSS; RssAnon: heap).
fn proc_status_kib(pid: Option<u32>, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_has_brook_bench_fields() {
        let r = Report {
            workload: "kafka w2",
            messages: 3,
            bytes: 3 << 20,
            elapsed: Duration::from_secs(2),
            latency: None,
            broker_peak_rss_kib: Some(7),
            broker_rss_anon_kib: None,
        };
        assert_eq!(
            r.json(),
            "{\"workload\":\"kafka w2\",\"messages\":3,\"seconds\":2.000,\"msgs_per_s\":2,\"mib_per_s\":1.5,\"p50_us\":null,\"p99_us\":null,\"p999_us\":null,\"baseline_write_mib_per_s\":null,\"baseline_buffered_mib_per_s\":null,\"broker_peak_rss_kib\":7,\"broker_rss_anon_kib\":null,\"rpc_baseline_p50_us\":null,\"rpc_baseline_p99_us\":null}"
        );
    }
}
