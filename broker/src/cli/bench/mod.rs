//! `brook bench`: load against a running broker, like kafka-producer-perf-test
//! and iggy-bench. Reports msgs/s, MiB/s, latency percentiles (HDR
//! histogram), the broker's peak memory when it can read it, and a baseline
//! measured in the same run: this machine's sequential write bandwidth for
//! the same byte count (like `dd conv=fdatasync`).
//!
//! This file holds the flags and picks the workload; each workload has its
//! own file (`produce`, `consume`, `e2e`), and `report` prints the result.

use std::path::PathBuf;

use brook_client::Client;

use super::connection::Conn;

mod baseline;
mod consume;
mod e2e;
mod kafka;
mod load;
mod memory;
mod produce;
mod progress;
mod queue;
mod report;
mod rules;
mod scenario;

/// `brook bench` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The standard scenarios of docs/benchmarks.md, written with the public client
API only, as an application would (scripts/bench-standard.sh runs them all
beside the same workloads on Redis Streams):
  w1        1,000,000 x 1 KiB, 8,000 sent then flushed, one batch in flight
            brook bench --topic w1 --scenario w1
  w2        read back partition by partition (PartitionReader)
            brook bench --topic w1 --scenario w2
  w2-group  read back as a group member, commit every 1,000
            brook bench --topic w1 --scenario w2-group
            (w2-group-async: commit_async, which does not wait for the broker)
  w3        20,000 sends, each awaited
            brook bench --topic w3 --scenario w3
  (w1-durable and w3-durable: the same with durable acks)
  --protocol kafka runs w1, w1-durable, w2, w3 and w3-durable through the
  Kafka listener instead (scripts/bench-kafka.sh runs both, side by side):
            brook bench --topic w1 --scenario w1 --protocol kafka

Lower-level workloads (they overlap batches and read every partition at once):
  W1  produce throughput: 1,000,000 records of 1 KiB, 10,000 keys, 8 partitions,
      one batch in flight
      brook bench --topic w1 produce --messages 1000000 --size 1024 --keys 10000
  W2  consume throughput: read W1's records back
      brook bench --topic w1 consume --messages 1000000
  W3  produce latency: each record awaited before the next
      brook bench --topic w3 produce --messages 20000 --size 1024 --sync

Examples:
  brook bench produce --messages 100000
  brook bench --json e2e --messages 10000 --size 64")]
pub(crate) struct BenchArgs {
    #[command(flatten)]
    pub(crate) conn: Conn,
    /// Topic to use (created with --partitions if missing).
    #[arg(long, default_value = "bench", global = true)]
    pub(crate) topic: String,
    /// Partitions of the topic when it is created.
    #[arg(long, default_value_t = 8, global = true)]
    pub(crate) partitions: u32,
    /// Print one JSON object instead of the human summary.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    /// The broker's pid, to report its peak memory (found by name if omitted).
    #[arg(long, global = true)]
    pub(crate) broker_pid: Option<u32>,
    /// Run a standard scenario instead of a workload.
    #[arg(long, value_enum)]
    pub(crate) scenario: Option<scenario::Scenario>,
    /// Records for --scenario (default: 1,000,000; 20,000 for w3).
    #[arg(long, requires = "scenario")]
    pub(crate) records: Option<u64>,
    /// The value every record of --scenario carries, read from this file
    /// (default: 1 KiB of 0x42): e.g. a schema-framed event, to measure
    /// validation at the broker (scripts/bench-schemas.sh).
    #[arg(long, requires = "scenario")]
    pub(crate) value_file: Option<PathBuf>,
    /// The protocol --scenario speaks: gRPC (Brook's client) or Kafka's
    /// (through the Kafka listener at --kafka-bootstrap).
    #[arg(long, value_enum, default_value_t = Protocol::Grpc, requires = "scenario")]
    pub(crate) protocol: Protocol,
    /// The Kafka listener for --protocol kafka (HOST:PORT).
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub(crate) kafka_bootstrap: String,
    /// The workload.
    #[command(subcommand)]
    pub(crate) workload: Option<Workload>,
}

/// `--protocol`: which of the broker's listeners a scenario goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Protocol {
    /// Brook's gRPC API, with the Rust client.
    Grpc,
    /// Kafka's protocol, through the Kafka listener.
    Kafka,
}

/// What to measure.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum Workload {
    /// Send records and wait for every ack.
    #[command(after_help = "\
Workloads (docs/benchmarks.md):
  W1  throughput, one batch in flight per producer
      brook bench --topic w1 produce --messages 1000000 --size 1024 --keys 10000
  W3  latency, each record awaited before the next
      brook bench --topic w3 produce --messages 20000 --size 1024 --sync

Examples:
  brook bench produce --messages 100000 --acks durable
  brook bench produce --producers 4 --in-flight 4 --keys 0")]
    Produce(ProduceArgs),
    /// Read records from the start of every partition.
    #[command(after_help = "\
Workload W2 (docs/benchmarks.md): read back what W1 wrote
  brook bench --topic w1 consume --messages 1000000")]
    Consume(ConsumeArgs),
    /// Produce and consume at once; latency is from send to receipt.
    #[command(after_help = "\
Examples:
  brook bench e2e --messages 100000 --size 256
  brook bench --json e2e --messages 10000 --size 64")]
    E2e(ProduceArgs),
    /// Many connections at once: fast producers alone, then beside
    /// --connections busy and --slow slow clients (docs/benchmarks.md).
    #[command(after_help = "\
Example (the issue-11 load test; scripts/load-test.sh runs it on a fresh broker):
  brook bench --topic load load --connections 1000 --slow 50 --seconds 10")]
    Load(load::LoadArgs),
    /// Competing consumers of a queue group: publish, then ack everything
    /// (scripts/bench-queue.sh runs it beside RabbitMQ).
    #[command(after_help = "\
Example (docs/benchmarks.md, queue groups):
  brook bench --topic q --partitions 4 queue --consumers 4 --messages 200000")]
    Queue(queue::QueueArgs),
    /// Routing rules inside the broker: publish JSON events, then route
    /// them with --rules rules (scripts/bench-rules.sh runs 1, 10, 100).
    #[command(after_help = "\
Example (docs/benchmarks.md, routing rules):
  brook bench --topic rules-10 --partitions 4 rules --rules 10 --messages 500000")]
    Rules(rules::RulesArgs),
}

/// Producer workload flags.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ProduceArgs {
    /// Records to send.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) messages: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub(crate) size: usize,
    /// Distinct keys (aggregates); 0 sends without keys.
    #[arg(long, default_value_t = 10_000)]
    pub(crate) keys: u64,
    /// Concurrent producers (each with its own client connection).
    #[arg(long, default_value_t = 1)]
    pub(crate) producers: u32,
    /// When the broker acknowledges a batch.
    #[arg(long, value_enum, default_value_t = AckLevel::Written)]
    pub(crate) acks: AckLevel,
    /// Batch size in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub(crate) batch: usize,
    /// Linger in ms.
    #[arg(long, default_value_t = 5)]
    pub(crate) linger_ms: u64,
    /// Batches in flight per producer (1: one batch in flight).
    #[arg(long, default_value_t = 1)]
    pub(crate) in_flight: usize,
    /// Await each send before the next (single-record latency, W3).
    #[arg(long)]
    pub(crate) sync: bool,
    /// Where the write-bandwidth baseline writes its file (default: the temp dir).
    #[arg(long)]
    pub(crate) baseline_dir: Option<PathBuf>,
}

/// `--acks`: the client's [`brook_client::Acks`], as words on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum AckLevel {
    /// In the broker's page cache: survives a broker crash, not a power cut.
    Written,
    /// On the broker's disk.
    Durable,
}

impl From<AckLevel> for brook_client::Acks {
    fn from(a: AckLevel) -> Self {
        match a {
            AckLevel::Written => brook_client::Acks::Written,
            AckLevel::Durable => brook_client::Acks::Durable,
        }
    }
}

/// Consumer workload flags.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct ConsumeArgs {
    /// Records to read.
    #[arg(long, default_value_t = 1_000_000)]
    pub(crate) messages: u64,
    /// Bytes per fetch.
    #[arg(long, default_value_t = 4 << 20)]
    pub(crate) fetch_bytes: u32,
}

/// Runs the chosen workload and prints its report.
pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let target = args.conn.target()?;
    let client = target.connect().await?;
    ensure_topic(&client, &args.topic, args.partitions).await?;
    let mut report = match (&args.scenario, &args.workload) {
        (Some(_), Some(_)) => anyhow::bail!(
            "--scenario runs one of the standard scenarios: give it without a workload"
        ),
        (Some(s), None) => {
            let records = args.records.unwrap_or_else(|| s.default_records());
            let value = match &args.value_file {
                Some(path) => bytes::Bytes::from(std::fs::read(path).map_err(|e| {
                    anyhow::anyhow!("reading --value-file {}: {e}", path.display())
                })?),
                None => scenario::default_value(),
            };
            match args.protocol {
                Protocol::Grpc => {
                    scenario::run(&client, &args.topic, *s, records, value, args.json).await?
                }
                Protocol::Kafka => {
                    let addr = &args.kafka_bootstrap;
                    kafka::run(addr, &client, &args.topic, *s, records, value, args.json).await?
                }
            }
        }
        (None, Some(Workload::Load(l))) => return load::load(&args, &target, l).await,
        (None, Some(Workload::Produce(p))) => produce::produce(&args, &target, p).await?,
        (None, Some(Workload::Consume(c))) => {
            consume::consume(&client, &args.topic, c, args.json).await?
        }
        (None, Some(Workload::E2e(p))) => e2e::e2e(&args, &client, p).await?,
        (None, Some(Workload::Queue(q))) => {
            queue::queue(&client, &target, &args.topic, q, args.json).await?
        }
        (None, Some(Workload::Rules(r))) => {
            rules::rules(&client, &args.topic, r, args.json).await?
        }
        (None, None) => anyhow::bail!(
            "say what to run: --scenario w1|w1-durable|w2|w2-group|w2-group-async|w3|w3-durable, or a workload (brook bench --help)"
        ),
    };
    let pid = args.broker_pid.or_else(memory::find_broker);
    report.broker_peak_rss_kib = memory::proc_status_kib(pid, "VmHWM:");
    report.broker_rss_anon_kib = memory::proc_status_kib(pid, "RssAnon:");
    report.print(args.json);
    Ok(())
}

/// Sum of the topic's partition end offsets: what every workload that
/// writes checks its records against.
async fn end_offsets(client: &Client, topic: &str) -> anyhow::Result<u64> {
    let d = client.admin().describe_topic(topic).await?;
    Ok(d.partitions.iter().map(|p| p.log_end_offset).sum())
}

/// The keys of `count` aggregates: `aggregate-000000`, ...
fn aggregate_keys(count: u64) -> Vec<bytes::Bytes> {
    (0..count)
        .map(|k| bytes::Bytes::from(format!("aggregate-{k:06}")))
        .collect()
}

/// Creates the topic unless it exists; an existing topic keeps its partitions.
async fn ensure_topic(client: &Client, topic: &str, partitions: u32) -> anyhow::Result<()> {
    match client.admin().describe_topic(topic).await {
        Ok(_) => Ok(()),
        Err(e) if e.reason() == Some("TOPIC_NOT_FOUND") => {
            client.admin().create_topic(topic, partitions).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}
