//! The end-to-end workload: produce and consume at once; each value carries
//! its send time, so the latency is from send to receipt.

use std::time::{Duration, Instant};

use anyhow::Context;
use brook_client::{Client, ConsumerConfig, StartFrom};

use super::produce::producer_config;
use super::report::{Report, new_histogram};
use super::{BenchArgs, ProduceArgs};

/// Sends `p.messages` records and times each one until a consumer receives it.
pub(super) async fn e2e(
    args: &BenchArgs,
    client: &Client,
    p: &ProduceArgs,
) -> anyhow::Result<Report> {
    let partitions: Vec<u32> = (0..client
        .admin()
        .describe_topic(&args.topic)
        .await?
        .partitions
        .len() as u32)
        .collect();
    let config = ConsumerConfig {
        auto_commit: None,
        start_from: StartFrom::Latest,
        ..ConsumerConfig::new("brook-bench-e2e", &[&args.topic])
    };
    let mut consumer = client
        .consumer_assigned(config, &args.topic, &partitions)
        .await?;
    // Let the fetchers settle on the log end before sending.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base = Instant::now();
    let producer = client.producer(producer_config(p));
    let (size, messages, keys, topic) =
        (p.size.max(8), p.messages, p.keys.max(1), args.topic.clone());
    let sender = tokio::spawn(async move {
        for i in 0..messages {
            let mut v = vec![0u8; size];
            v[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_be_bytes());
            producer
                .send(&topic, Some(format!("aggregate-{:06}", i % keys)), v)
                .await?;
        }
        producer.flush().await?;
        Ok::<_, anyhow::Error>(())
    });
    let started = Instant::now();
    let mut hist = new_histogram();
    for n in 0..messages {
        let r = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .with_context(|| format!("stalled after {n} records"))??;
        let v = r.value.unwrap_or_default();
        let sent = u64::from_be_bytes(v.get(..8).and_then(|b| b.try_into().ok()).unwrap_or([0; 8]));
        let now = base.elapsed().as_nanos() as u64;
        hist.record((now.saturating_sub(sent) / 1000).max(1))?;
    }
    sender.await??;
    Ok(Report::new(
        "e2e",
        messages,
        messages * size as u64,
        started.elapsed(),
        Some(hist),
    ))
}
