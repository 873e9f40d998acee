//! `rdkafka-peer-bench`: Brook's standard scenarios w1 and w2 through
//! librdkafka (the `rdkafka` crate), against Brook's Kafka listener, to set
//! beside `brook bench --scenario` over gRPC in the same run
//! (`scripts/bench-kafka.sh`). Done the way an rdkafka user would:
//!
//! - **w1 / w1-durable** (produce): N records of 1 KiB keyed by 10,000
//!   aggregates, partitioned with Kafka's murmur2 (`partitioner =
//!   murmur2_random`, the function Brook's producer uses). Each round sends
//!   8,000 records and `flush`es (awaits every delivery) before the next,
//!   with `max.in.flight = 1`, `linger.ms = 5` and batches of up to 2 MiB,
//!   as Brook's w1; `acks = 1` (Brook's `written`) or `acks = all`
//!   (`durable`). Latency is per round.
//! - **w2** (consume): every partition assigned from its start, records
//!   polled until N were read, counting value bytes; librdkafka's defaults
//!   (it fetches in background threads, every partition of the broker in
//!   each request, 1 MiB per partition).
//!
//! With `--json` it prints one JSON line with the fields of `brook bench
//! --json` (null for what it does not measure); it exits non-zero when a
//! delivery fails or fewer records than asked are read.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use clap::{Parser, ValueEnum};
use hdrhistogram::Histogram;
use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer, ProducerContext};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// Records sent per w1 round (Brook's `W1_ROUND`).
const W1_ROUND: u64 = 8_000;
/// Keys: aggregates the records belong to.
const AGGREGATES: u64 = 10_000;
/// Value size.
const VALUE_BYTES: usize = 1024;

#[derive(Parser)]
#[command(about = "Brook's w1 and w2 through librdkafka against a Kafka listener")]
struct Args {
    /// The Kafka listener, e.g. 127.0.0.1:9092.
    #[arg(long)]
    bootstrap: String,
    /// The topic (it must exist; w1 writes it, w2 reads it).
    #[arg(long)]
    topic: String,
    #[arg(long, value_enum)]
    scenario: Scenario,
    /// Records to send or read.
    #[arg(long, default_value_t = 1_000_000)]
    records: u64,
    /// One JSON line on stdout.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    W1,
    W1Durable,
    W2,
}

/// Counts deliveries and the first failure.
#[derive(Default)]
struct Deliveries {
    ok: AtomicU64,
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.ok.fetch_add(1, Ordering::Relaxed),
            Err((e, _)) => {
                if self.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                    eprintln!("delivery failed: {e}");
                }
                0
            }
        };
    }
}

/// Settings from the environment over the ones above, for experiments:
/// `RDK_SET="key=value,key=value"` (e.g. `debug=all` with `RUST_LOG=debug`).
trait Overrides {
    fn with_overrides(&mut self) -> &mut Self;
}

impl Overrides for ClientConfig {
    fn with_overrides(&mut self) -> &mut Self {
        for kv in std::env::var("RDK_SET").unwrap_or_default().split(',') {
            if let Some((k, v)) = kv.split_once('=') {
                self.set(k, v);
            }
        }
        self
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

struct Outcome {
    workload: &'static str,
    records: u64,
    bytes: u64,
    elapsed: Duration,
    rounds: Option<Histogram<u64>>,
}

fn produce(args: &Args) -> anyhow::Result<Outcome> {
    let acks = match args.scenario {
        Scenario::W1Durable => "all",
        _ => "1",
    };
    let producer: BaseProducer<Deliveries> = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .set("acks", acks)
        .set("partitioner", "murmur2_random")
        .set("batch.size", (2 << 20).to_string())
        .set("batch.num.messages", "100000")
        .set("max.in.flight.requests.per.connection", "1")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", (1 << 21).to_string())
        .set("message.max.bytes", (4 << 20).to_string())
        .with_overrides()
        .create_with_context(Deliveries::default())
        .context("creating the producer")?;
    let keys: Vec<String> = (0..AGGREGATES)
        .map(|k| format!("aggregate-{k:06}"))
        .collect();
    let value = vec![0x42u8; VALUE_BYTES];
    let mut rounds = histogram();
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < args.records {
        let round = Instant::now();
        let n = W1_ROUND.min(args.records - sent);
        for i in sent..sent + n {
            let key = &keys[(i % AGGREGATES) as usize];
            let mut record = BaseRecord::to(&args.topic).key(key).payload(&value);
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                        record = r;
                        producer.poll(Duration::from_millis(1));
                    }
                    Err((e, _)) => bail!("send: {e}"),
                }
            }
        }
        // Delivery reports are served by this thread's polls (an rdkafka
        // BaseProducer) until the round is delivered. A poll that may wait
        // 100 ms (or `flush`, or a ThreadedProducer's polling thread)
        // returned only at its timeout here, whatever arrived: every round
        // took 100 ms. Polling every millisecond does not.
        let due = sent + n;
        let deadline = Instant::now() + Duration::from_secs(60);
        while producer.context().ok.load(Ordering::Relaxed)
            + producer.context().failed.load(Ordering::Relaxed)
            < due
        {
            ensure!(Instant::now() < deadline, "round not delivered in 60 s");
            producer.poll(Duration::from_millis(1));
        }
        sent += n;
        rounds.record(round.elapsed().as_micros().max(1) as u64)?;
    }
    let elapsed = started.elapsed();
    let deliveries = producer.context();
    let (ok, failed) = (
        deliveries.ok.load(Ordering::Relaxed),
        deliveries.failed.load(Ordering::Relaxed),
    );
    ensure!(
        failed == 0 && ok == args.records,
        "{ok} delivered, {failed} failed"
    );
    Ok(Outcome {
        workload: match args.scenario {
            Scenario::W1Durable => "rdkafka w1 (acks=all: durable; 8,000 sent, then flush)",
            _ => "rdkafka w1 (acks=1: written; 8,000 sent, then flush)",
        },
        records: args.records,
        bytes: args.records * VALUE_BYTES as u64,
        elapsed,
        rounds: Some(rounds),
    })
}

fn consume(args: &Args) -> anyhow::Result<Outcome> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.bootstrap)
        .set("group.id", format!("rdkafka-bench-{}", std::process::id()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .with_overrides()
        .create()
        .context("creating the consumer")?;
    let metadata = consumer.fetch_metadata(Some(&args.topic), Duration::from_secs(10))?;
    let topic = metadata
        .topics()
        .first()
        .context("no such topic in the metadata")?;
    let mut assignment = TopicPartitionList::new();
    for p in topic.partitions() {
        assignment.add_partition_offset(&args.topic, p.id(), Offset::Beginning)?;
    }
    let started = Instant::now();
    consumer.assign(&assignment)?;
    let (mut n, mut bytes) = (0u64, 0u64);
    let mut last = Instant::now();
    while n < args.records {
        match consumer.poll(Duration::from_millis(100)) {
            Some(Ok(m)) => {
                bytes += m.payload().map_or(0, |p| p.len() as u64);
                n += 1;
                last = Instant::now();
            }
            Some(Err(e)) => bail!("consume: {e}"),
            None if last.elapsed() > Duration::from_secs(30) => {
                bail!(
                    "no record for 30 s after {n}: does the topic hold {} records?",
                    args.records
                )
            }
            None => {}
        }
    }
    Ok(Outcome {
        workload: "rdkafka w2 (every partition assigned from its start)",
        records: n,
        bytes,
        elapsed: started.elapsed(),
        rounds: None,
    })
}

fn main() -> anyhow::Result<()> {
    env_logger::init();
    let args = Args::parse();
    let o = match args.scenario {
        Scenario::W1 | Scenario::W1Durable => produce(&args)?,
        Scenario::W2 => consume(&args)?,
    };
    let secs = o.elapsed.as_secs_f64();
    let msgs = o.records as f64 / secs;
    let mib = o.bytes as f64 / secs / (1 << 20) as f64;
    let q = |q: f64| o.rounds.as_ref().map(|h| h.value_at_quantile(q));
    let num = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
    if args.json {
        println!(
            "{{\"workload\":\"{}\",\"messages\":{},\"seconds\":{:.3},\"msgs_per_s\":{:.0},\"mib_per_s\":{:.1},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{}}}",
            o.workload,
            o.records,
            secs,
            msgs,
            mib,
            num(q(0.5)),
            num(q(0.99)),
            num(q(0.999))
        );
    } else {
        println!(
            "{}: {} records in {secs:.3} s, {msgs:.0} msgs/s, {mib:.1} MiB/s",
            o.workload, o.records
        );
    }
    Ok(())
}
