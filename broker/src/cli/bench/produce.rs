//! The produce workload (W1, W3): send records from one or more producers,
//! sample the send-to-ack latency, then check that every record was stored.

use std::time::{Duration, Instant};

use brook_client::{Delivery, ProducerConfig};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use tokio::sync::mpsc;

use super::baseline::write_baseline;
use super::progress::{self, Progress};
use super::report::{Report, new_histogram};
use super::{BenchArgs, ProduceArgs, aggregate_keys, end_offsets};
use crate::cli::connection::Target;

/// One record in this many has its ack latency measured (W1/W2-style runs).
const LATENCY_SAMPLE: u64 = 16;

/// The client settings the producer flags ask for; shared with e2e.
pub(super) fn producer_config(p: &ProduceArgs) -> ProducerConfig {
    ProducerConfig {
        linger: if p.sync {
            Duration::ZERO
        } else {
            Duration::from_millis(p.linger_ms)
        },
        batch_bytes: p.batch,
        max_in_flight: p.in_flight.max(1),
        acks: p.acks.into(),
        ..ProducerConfig::default()
    }
}

/// Runs the produce workload and measures the write baseline after it.
pub(super) async fn produce(
    args: &BenchArgs,
    target: &Target,
    p: &ProduceArgs,
) -> anyhow::Result<Report> {
    let progress = Progress::start("sent", p.messages, args.json);
    let before = end_offsets(&target.connect().await?, &args.topic).await?;
    let started = Instant::now();
    let producers = u64::from(p.producers.max(1));
    let per = p.messages / producers;
    let mut tasks = Vec::new();
    for i in 0..producers {
        // The last producer also sends the remainder of the division.
        let count = if i + 1 == producers {
            p.messages - per * i
        } else {
            per
        };
        tasks.push(tokio::spawn(produce_share(
            target.clone(),
            args.topic.clone(),
            p.clone(),
            per * i,
            count,
        )));
    }
    let mut hist = new_histogram();
    for t in tasks {
        hist.add(t.await??)?;
    }
    let elapsed = started.elapsed();
    drop(progress);
    let stored = end_offsets(&target.connect().await?, &args.topic).await?;
    anyhow::ensure!(
        stored >= before + p.messages,
        "only {} of {} records were stored (the sampled acks did not show the failure)",
        stored.saturating_sub(before),
        p.messages
    );
    let bytes = p.messages * p.size as u64;
    let (buffered, baseline) = write_baseline(p.baseline_dir.clone(), bytes).await?;
    let workload = if p.sync {
        "produce (each send awaited)"
    } else {
        "produce"
    };
    let mut report = Report::new(workload, p.messages, bytes, elapsed, Some(hist));
    report.baseline_mib_s = Some(baseline);
    report.buffered_baseline_mib_s = Some(buffered);
    Ok(report)
}

/// Sends this producer's share; returns the send-to-ack latency histogram.
async fn produce_share(
    target: Target,
    topic: String,
    p: ProduceArgs,
    first: u64,
    count: u64,
) -> anyhow::Result<Histogram<u64>> {
    let client = target.connect().await?;
    let producer = client.producer(producer_config(&p));
    let value = Bytes::from(vec![0x42u8; p.size]);
    let keys = aggregate_keys(p.keys);
    let key = |i: u64| keys.get((i % p.keys.max(1)) as usize).cloned();
    let mut hist = new_histogram();
    if p.sync {
        for i in first..first + count {
            let t = Instant::now();
            producer.send(&topic, key(i), value.clone()).await?.await?;
            progress::add_one();
            hist.record(t.elapsed().as_micros().max(1) as u64)?;
        }
        return Ok(hist);
    }
    // Acks are collected concurrently so that each latency is measured when it completes.
    let (tx, rx) = mpsc::channel::<(Instant, Delivery)>(64 << 10);
    let collector = tokio::spawn(collect_acks(rx));
    for i in first..first + count {
        let t = Instant::now();
        let d = producer.send(&topic, key(i), value.clone()).await?;
        progress::add_one();
        // Latency is sampled (every LATENCY_SAMPLE-th record, like
        // kafka-producer-perf-test's sampling) so that measuring costs little
        // next to sending; that every record was stored is checked after.
        if i % LATENCY_SAMPLE != 0 {
            continue;
        }
        if tx.send((t, d)).await.is_err() {
            // The collector stopped on a failed ack: report that failure.
            collector.await??;
            anyhow::bail!("ack collector stopped");
        }
    }
    drop(tx);
    producer.flush().await?;
    collector.await?
}

/// Awaits the sampled deliveries as they complete; stops at the first failed ack.
async fn collect_acks(
    mut rx: mpsc::Receiver<(Instant, Delivery)>,
) -> anyhow::Result<Histogram<u64>> {
    let mut pending = FuturesUnordered::new();
    let mut hist = new_histogram();
    let mut open = true;
    loop {
        tokio::select! {
            item = rx.recv(), if open => match item {
                Some((t, d)) => pending.push(async move { (t, d.await) }),
                None => open = false,
            },
            Some((t, r)) = pending.next(), if !pending.is_empty() => {
                r?;
                hist.record(t.elapsed().as_micros().max(1) as u64)?;
            }
            else => return Ok(hist),
        }
    }
}
