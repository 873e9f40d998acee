//! `brook bench queue`: competing consumers of a queue group, the workload
//! scripts/bench-queue.sh runs beside RabbitMQ (docs/benchmarks.md).
//!
//! A new queue group starts at the end of the topic; `--messages` records
//! of `--size` bytes keyed by 10,000 aggregates are published, then
//! `--consumers` consumers (one connection each) fetch up to 500 at a time,
//! ack every one, and flush the acks: one Acknowledge request per fetch,
//! sent while the next fetch runs, at most one in flight per consumer.
//! Throughput is acked records per second from the consumers' start until
//! the last ack is answered; latency is per record, from its fetch's answer
//! to its ack's answer (the broker has stored the settlement).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use brook_client::{Client, ProducerConfig, QueueConsumerConfig, proto as v1};
use bytes::Bytes;

use super::super::connection::Target;
use super::progress::{self, Progress};
use super::report::{Report, new_histogram};
use super::{aggregate_keys, end_offsets};

/// `brook bench queue` flags.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct QueueArgs {
    /// Records to publish and consume.
    #[arg(long, default_value_t = 200_000)]
    pub(crate) messages: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub(crate) size: usize,
    /// Competing consumers, each with its own connection.
    #[arg(long, default_value_t = 4)]
    pub(crate) consumers: u32,
    /// Records per fetch.
    #[arg(long, default_value_t = 500)]
    pub(crate) max_records: u32,
    /// Deliver one record per key at a time (key-ordered mode).
    #[arg(long)]
    pub(crate) key_ordered: bool,
}

/// Aggregates the records belong to.
const AGGREGATES: u64 = 10_000;

/// Runs the workload.
pub(crate) async fn queue(
    client: &Client,
    target: &Target,
    topic: &str,
    args: &QueueArgs,
    quiet: bool,
) -> anyhow::Result<Report> {
    let group = format!(
        "bench-queue-{}-{}",
        std::process::id(),
        brook_storage::now_ms()
    );
    let settings = v1::QueueSettings {
        key_ordered: Some(args.key_ordered),
        window: Some(20_000),
        ..Default::default()
    };
    client
        .admin()
        .create_queue(&group, topic, settings, false)
        .await?;
    let before = end_offsets(client, topic).await?;
    let keys = aggregate_keys(AGGREGATES);
    let value = Bytes::from(vec![0x42u8; args.size]);
    let producer = client.producer(ProducerConfig {
        batch_bytes: 1 << 20,
        ..ProducerConfig::default()
    });
    let published = Instant::now();
    for i in 0..args.messages {
        producer
            .send(
                topic,
                Some(keys[(i % AGGREGATES) as usize].clone()),
                value.clone(),
            )
            .await?;
    }
    producer.flush().await?;
    let publish_secs = published.elapsed().as_secs_f64();
    anyhow::ensure!(
        end_offsets(client, topic).await? - before >= args.messages,
        "not every record was stored"
    );
    if !quiet {
        eprintln!(
            "published {} records in {publish_secs:.2} s ({:.0}/s); consuming with {} consumers",
            args.messages,
            args.messages as f64 / publish_secs,
            args.consumers
        );
    }
    let _progress = Progress::start("acked", args.messages, quiet);
    let acked = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..args.consumers {
        // A connection per consumer, as separate processes would have.
        let c = target.connect().await?;
        let (acked, group, total) = (Arc::clone(&acked), group.clone(), args.messages);
        let config = QueueConsumerConfig {
            max_records: args.max_records,
            max_wait: Duration::from_millis(100),
            ack_batch: args.max_records as usize,
            ..Default::default()
        };
        tasks.push(tokio::spawn(async move {
            let mut consumer = c.queue_consumer(&group, config);
            let latency = Arc::new(std::sync::Mutex::new(new_histogram()));
            // The acks of one batch travel while the next is fetched (one
            // batch of acks in flight, as an application that overlaps
            // them would do); a task per batch awaits them and records
            // their latency.
            let mut in_flight: Option<tokio::task::JoinHandle<anyhow::Result<()>>> = None;
            while acked.load(Ordering::Relaxed) < total {
                let batch = consumer.fetch_batch().await?;
                if batch.is_empty() {
                    continue;
                }
                let fetched = Instant::now();
                let n = batch.len() as u64;
                for m in batch {
                    m.ack();
                }
                let (flusher, latency, acked) =
                    (consumer.flusher(), Arc::clone(&latency), Arc::clone(&acked));
                let flushing = tokio::spawn(async move {
                    flusher.flush().await?;
                    let us = fetched.elapsed().as_micros().max(1) as u64;
                    latency
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .record_n(us, n)?;
                    progress::set(acked.fetch_add(n, Ordering::Relaxed) + n);
                    anyhow::Ok(())
                });
                if let Some(previous) = in_flight.replace(flushing) {
                    previous.await??;
                }
            }
            if let Some(last) = in_flight {
                last.await??;
            }
            consumer.close().await?;
            let h = latency.lock().unwrap_or_else(|e| e.into_inner()).clone();
            anyhow::Ok(h)
        }));
    }
    let mut latency = new_histogram();
    for t in tasks {
        latency.add(t.await??)?;
    }
    let elapsed = started.elapsed();
    let d = client.admin().describe_queue(&group).await?;
    anyhow::ensure!(
        d.lag == 0 && d.in_flight == 0,
        "the queue is not settled: lag {}, in flight {}",
        d.lag,
        d.in_flight
    );
    client.admin().delete_queue(&group).await?;
    Ok(Report::new(
        "queue (acked records, fetch-to-ack µs)",
        acked.load(Ordering::Relaxed),
        acked.load(Ordering::Relaxed) * args.size as u64,
        elapsed,
        Some(latency),
    ))
}
