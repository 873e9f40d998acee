//! The standard scenarios (`brook bench --scenario w1|w2|w2-group|w3`),
//! written only with the public client API, as an application would write
//! them, so that the figures are what a user gets; the same workloads run
//! against peers (scripts/bench-standard.sh) for side-by-side ratios:
//!
//! - **w1**: 1,000,000 records of 1 KiB keyed by 10,000 aggregates (the
//!   producer routes them by key) into 8 partitions; the application sends
//!   8,000 records (about 1,000 per partition) and awaits them all
//!   (`flush`) before the next 8,000, with one batch in flight.
//! - **w2**: reads the records back partition by partition from the start
//!   with a [`brook_client::PartitionReader`].
//! - **w2-group**: reads them as a group member, committing every 1,000
//!   and awaiting each commit (`w2-group-async`: `commit_async`, which does
//!   not wait, as Kafka's `commitAsync`).
//! - **w3**: 20,000 records, each `send(..).await?.await?` before the next,
//!   with the producer's default settings.
//!
//! `w1-durable` and `w3-durable` are w1 and w3 with `Acks::Durable`.

use std::time::{Duration, Instant};

use anyhow::Context;
use brook_client::{Acks, Client, ConsumerConfig, ProducerConfig, ReadFrom, StartFrom};
use bytes::Bytes;

use super::progress::{self, Progress};
use super::report::{Report, new_histogram};
use super::{aggregate_keys, end_offsets};

/// A standard scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Scenario {
    /// Produce, one batch in flight, acks written.
    W1,
    /// W1 with durable acks.
    W1Durable,
    /// Read back partition by partition.
    W2,
    /// Read back as a group member, committing every 1,000 records.
    W2Group,
    /// W2Group with `commit_async` (Kafka's commitAsync) instead of `commit`.
    W2GroupAsync,
    /// One record awaited at a time, acks written.
    W3,
    /// W3 with durable acks.
    W3Durable,
}

/// Records an application sends before awaiting them in w1: about 1,000
/// per partition of an 8-partition topic.
pub(super) const W1_ROUND: u64 = 8_000;

/// Records between commits in w2-group.
const COMMIT_EVERY: u64 = 1_000;

/// Keys: aggregates the records belong to.
pub(super) const AGGREGATES: u64 = 10_000;

/// Value size.
const VALUE_BYTES: usize = 1024;

impl Scenario {
    /// Records the scenario handles unless told otherwise.
    pub(crate) fn default_records(self) -> u64 {
        match self {
            Scenario::W3 | Scenario::W3Durable => 20_000,
            _ => 1_000_000,
        }
    }

    fn acks(self) -> Acks {
        match self {
            Scenario::W1Durable | Scenario::W3Durable => Acks::Durable,
            _ => Acks::Written,
        }
    }
}

/// The value every record carries unless `--value-file` gives one: 1 KiB.
pub(super) fn default_value() -> Bytes {
    Bytes::from(vec![0x42u8; VALUE_BYTES])
}

/// Runs `scenario` over `records` records of `topic`.
pub(crate) async fn run(
    client: &Client,
    topic: &str,
    scenario: Scenario,
    records: u64,
    value: Bytes,
    quiet: bool,
) -> anyhow::Result<Report> {
    let keys = aggregate_keys(AGGREGATES);
    let key = |i: u64| keys[(i % AGGREGATES) as usize].clone();
    let bytes = records * value.len() as u64;
    match scenario {
        Scenario::W1 | Scenario::W1Durable => {
            let _progress = Progress::start("sent", records, quiet);
            let producer = client.producer(ProducerConfig {
                acks: scenario.acks(),
                max_in_flight: 1,
                // Room for a round's ~1,000 records of a partition in one batch.
                batch_bytes: 2 << 20,
                ..ProducerConfig::default()
            });
            let before = end_offsets(client, topic).await?;
            let mut rounds = new_histogram();
            let started = Instant::now();
            let mut sent = 0;
            while sent < records {
                let round = Instant::now();
                let n = W1_ROUND.min(records - sent);
                for i in sent..sent + n {
                    producer.send(topic, Some(key(i)), value.clone()).await?;
                }
                producer.flush().await?;
                sent += n;
                progress::set(sent);
                rounds.record(round.elapsed().as_micros().max(1) as u64)?;
            }
            let elapsed = started.elapsed();
            let stored = end_offsets(client, topic).await? - before;
            anyhow::ensure!(
                stored >= records,
                "only {stored} of {records} records were stored"
            );
            Ok(Report::new(
                "w1 (8,000 sent, then flush)",
                records,
                bytes,
                elapsed,
                Some(rounds),
            ))
        }
        Scenario::W2 => {
            let _progress = Progress::start("received", records, quiet);
            let d = client.admin().describe_topic(topic).await?;
            let started = Instant::now();
            let (mut n, mut bytes) = (0u64, 0u64);
            for p in &d.partitions {
                if n >= records {
                    break;
                }
                let mut reader = client
                    .reader(topic, p.partition, ReadFrom::Offset(p.log_start_offset))
                    .await?;
                while reader.position() < p.log_end_offset && n < records {
                    let r = within(reader.recv(), n).await?;
                    bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
                    n += 1;
                    progress::set(n);
                }
            }
            anyhow::ensure!(
                n >= records,
                "the topic holds {n} records, not {records}: run --scenario w1 on it first"
            );
            Ok(Report::new(
                "w2 (partition by partition)",
                n,
                bytes,
                started.elapsed(),
                None,
            ))
        }
        Scenario::W2Group | Scenario::W2GroupAsync => {
            let _progress = Progress::start("received", records, quiet);
            let group = format!("bench-{}-{}", std::process::id(), brook_storage::now_ms());
            let config = ConsumerConfig {
                auto_commit: None,
                start_from: StartFrom::Earliest,
                ..ConsumerConfig::new(group, &[topic])
            };
            let started = Instant::now();
            let mut consumer = client.consumer(config).await?;
            let mut commits = new_histogram();
            let (mut n, mut bytes) = (0u64, 0u64);
            while n < records {
                let r = within(consumer.recv(), n).await?;
                bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
                n += 1;
                if n % COMMIT_EVERY == 0 || n == records {
                    let t = Instant::now();
                    if scenario == Scenario::W2GroupAsync && n < records {
                        consumer.commit_async();
                    } else {
                        consumer.commit().await?;
                    }
                    commits.record(t.elapsed().as_micros().max(1) as u64)?;
                }
                progress::set(n);
            }
            let elapsed = started.elapsed();
            consumer.close().await?;
            Ok(Report::new(
                if scenario == Scenario::W2Group {
                    "w2-group (commit every 1,000)"
                } else {
                    "w2-group-async (commit_async every 1,000)"
                },
                n,
                bytes,
                elapsed,
                Some(commits),
            ))
        }
        Scenario::W3 | Scenario::W3Durable => {
            let _progress = Progress::start("sent", records, quiet);
            let producer = client.producer(ProducerConfig {
                acks: scenario.acks(),
                ..ProducerConfig::default()
            });
            let mut hist = new_histogram();
            let started = Instant::now();
            for i in 0..records {
                let t = Instant::now();
                producer
                    .send(topic, Some(key(i)), value.clone())
                    .await?
                    .await?;
                hist.record(t.elapsed().as_micros().max(1) as u64)?;
                progress::add_one();
            }
            let elapsed = started.elapsed();
            let mut report = Report::new(
                "w3 (each send awaited)",
                records,
                bytes,
                elapsed,
                Some(hist),
            );
            report.rpc_baseline_us = Some(rpc_baseline(client, topic).await?);
            Ok(report)
        }
    }
}

/// Round trips of the cheapest RPC: p50 and p99 of 2,000 `DescribeTopic`s.
async fn rpc_baseline(client: &Client, topic: &str) -> anyhow::Result<(u64, u64)> {
    let admin = client.admin();
    let mut hist = new_histogram();
    for _ in 0..2_000 {
        let t = Instant::now();
        admin.describe_topic(topic).await?;
        hist.record(t.elapsed().as_micros().max(1) as u64)?;
    }
    Ok((hist.value_at_quantile(0.5), hist.value_at_quantile(0.99)))
}

/// Awaits the next record, failing with a reason rather than hanging.
async fn within<T>(
    f: impl std::future::Future<Output = brook_client::Result<T>>,
    n: u64,
) -> anyhow::Result<T> {
    Ok(tokio::time::timeout(Duration::from_secs(30), f)
        .await
        .with_context(|| {
            format!("no record for 30 s after {n}: does the topic hold the records asked for?")
        })??)
}
