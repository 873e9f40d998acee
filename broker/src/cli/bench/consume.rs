//! The consume workload (W2): read records from the start of every
//! partition, without a group, as fast as the broker serves them.

use std::time::{Duration, Instant};

use anyhow::Context;
use brook_client::{Client, ConsumerConfig, StartFrom};

use super::ConsumeArgs;
use super::progress::{self, Progress};
use super::report::Report;

/// Reads `c.messages` records of `topic`; `quiet` hides the progress line.
pub(super) async fn consume(
    client: &Client,
    topic: &str,
    c: &ConsumeArgs,
    quiet: bool,
) -> anyhow::Result<Report> {
    let _progress = Progress::start("received", c.messages, quiet);
    let partitions: Vec<u32> =
        (0..client.admin().describe_topic(topic).await?.partitions.len() as u32).collect();
    let config = ConsumerConfig {
        auto_commit: None,
        start_from: StartFrom::Earliest,
        fetch_max_bytes: c.fetch_bytes,
        ..ConsumerConfig::new("brook-bench", &[topic])
    };
    let started = Instant::now();
    let mut consumer = client.consumer_assigned(config, topic, &partitions).await?;
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < c.messages {
        let r = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .with_context(|| {
                format!("no record for 30 s after {n}: does the topic hold --messages records?")
            })??;
        bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
        n += 1;
        progress::set(n);
    }
    Ok(Report::new("consume", n, bytes, started.elapsed(), None))
}
