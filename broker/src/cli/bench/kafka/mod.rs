//! `brook bench --protocol kafka`: the standard scenarios through the
//! broker's Kafka listener, to set beside the same scenarios over gRPC in
//! the same run (scripts/bench-kafka.sh). The client is as lean as Brook's
//! own: requests and answers are the `kafka-protocol` crate's messages (the
//! listener's codec), record batches are built and read with the same
//! `brook-protocol` code the Rust client uses, and reading overlaps the
//! next fetch with the records of the last, as librdkafka's and Java's
//! consumers do. So the ratio measures the two protocols' cost in the
//! broker, not two clients' (docs/benchmarks.md also has third-party
//! clients' figures).
//!
//! - **w1 / w1-durable**: 8,000 records keyed by 10,000 aggregates, routed
//!   with Kafka's murmur2 partitioner, one batch per partition in one
//!   Produce request (as Java's producer groups a broker's partitions),
//!   awaited before the next 8,000; `acks=1` (the broker's `written`) or
//!   `acks=-1` (`durable`, docs/kafka.md).
//! - **w2**: every partition from its start, all partitions in each Fetch
//!   (as Kafka's consumers fetch what a broker leads), the next Fetch sent
//!   as soon as an answer arrives while the records of that answer are read.
//! - **w3 / w3-durable**: one record per Produce, each awaited.

mod wire;

use std::time::{Duration, Instant};

use anyhow::Context;
use brook_client::Client;
use brook_protocol::batch::{self, BatchBuilder};
use brook_protocol::partitioner::partition_for_key;
use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::progress::{self, Progress};
use super::report::{Report, new_histogram};
use super::scenario::{AGGREGATES, Scenario, W1_ROUND};
use super::{aggregate_keys, end_offsets};

const PRODUCE: i16 = 9;
const FETCH: i16 = 12;
const METADATA: i16 = 12;
const LIST_OFFSETS: i16 = 6;
const API_VERSIONS: i16 = 3;
/// Kafka's consumer defaults: `fetch.max.bytes`, `max.partition.fetch.bytes`.
const FETCH_MAX_BYTES: i32 = 50 << 20;
const PARTITION_MAX_BYTES: i32 = 1 << 20;
/// Answers read ahead of the records being counted.
const READ_AHEAD: usize = 2;

/// Runs `scenario` over `records` records of `topic`, through the Kafka
/// listener at `addr`; `client` (gRPC) checks what was stored.
pub(crate) async fn run(
    addr: &str,
    client: &Client,
    topic: &str,
    scenario: Scenario,
    records: u64,
    value: Bytes,
    quiet: bool,
) -> anyhow::Result<Report> {
    match scenario {
        Scenario::W1 | Scenario::W1Durable => {
            let before = end_offsets(client, topic).await?;
            let report = produce(addr, topic, scenario, records, value, quiet).await?;
            let stored = end_offsets(client, topic).await? - before;
            anyhow::ensure!(
                stored >= records,
                "only {stored} of {records} records were stored"
            );
            Ok(report)
        }
        Scenario::W3 | Scenario::W3Durable => {
            produce(addr, topic, scenario, records, value, quiet).await
        }
        Scenario::W2 => read(addr, topic, records, quiet).await,
        Scenario::W2Group | Scenario::W2GroupAsync => anyhow::bail!(
            "--protocol kafka runs w1, w1-durable, w2, w3 and w3-durable (a Kafka group member needs a Kafka client's assignor: scripts/kafka-clients.sh)"
        ),
    }
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

/// The topic's partition count, from Metadata.
async fn partitions(
    tx: &mut wire::Sender,
    rx: &mut wire::Receiver,
    topic: &str,
) -> anyhow::Result<i32> {
    let request = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(topic_name(topic))),
    ]));
    let pending = tx.send(ApiKey::Metadata, METADATA, &request).await?;
    let answer: MetadataResponse = rx.recv(pending).await?;
    let t = answer
        .topics
        .first()
        .context("Metadata answered no topic")?;
    anyhow::ensure!(
        t.error_code == 0,
        "Metadata for {topic}: error {}",
        t.error_code
    );
    Ok(t.partitions.len() as i32)
}

/// w1 and w3 (and their durable forms).
async fn produce(
    addr: &str,
    topic: &str,
    scenario: Scenario,
    records: u64,
    value: Bytes,
    quiet: bool,
) -> anyhow::Result<Report> {
    let (mut tx, mut rx) = wire::connect(addr).await?;
    let count = partitions(&mut tx, &mut rx, topic).await?;
    let keys = aggregate_keys(AGGREGATES);
    let acks = match scenario {
        Scenario::W1Durable | Scenario::W3Durable => -1,
        _ => 1,
    };
    let round = match scenario {
        Scenario::W1 | Scenario::W1Durable => W1_ROUND,
        _ => 1,
    };
    let _progress = Progress::start("sent", records, quiet);
    let mut hist = new_histogram();
    let started = Instant::now();
    let mut sent = 0u64;
    while sent < records {
        let t = Instant::now();
        let n = round.min(records - sent);
        let mut builders: Vec<Option<BatchBuilder>> = (0..count).map(|_| None).collect();
        let now = brook_storage::now_ms() as i64;
        for i in sent..sent + n {
            let key = &keys[(i % AGGREGATES) as usize];
            let p = partition_for_key(key, count as u32) as usize;
            builders[p]
                .get_or_insert_with(|| {
                    BatchBuilder::with_capacity((2 << 20).min(n as usize * 1100))
                })
                .push(now, Some(key), Some(&value), &[]);
        }
        let partition_data = builders
            .into_iter()
            .enumerate()
            .filter_map(|(p, b)| Some((p, b?)))
            .map(|(p, b)| {
                produce_request::PartitionProduceData::default()
                    .with_index(p as i32)
                    .with_records(Some(b.build(0)))
            })
            .collect();
        let request = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![
                produce_request::TopicProduceData::default()
                    .with_name(topic_name(topic))
                    .with_partition_data(partition_data),
            ]);
        let pending = tx.send(ApiKey::Produce, PRODUCE, &request).await?;
        let answer: ProduceResponse = rx.recv(pending).await?;
        for p in answer.responses.iter().flat_map(|t| &t.partition_responses) {
            anyhow::ensure!(
                p.error_code == 0,
                "Produce to partition {}: error {}",
                p.index,
                p.error_code
            );
        }
        sent += n;
        progress::set(sent);
        hist.record(t.elapsed().as_micros().max(1) as u64)?;
    }
    let elapsed = started.elapsed();
    let bytes = records * value.len() as u64;
    if round > 1 {
        return Ok(Report::new(
            "w1 over Kafka (8,000 sent per Produce, awaited)",
            records,
            bytes,
            elapsed,
            Some(hist),
        ));
    }
    let mut report = Report::new(
        "w3 over Kafka (each Produce awaited)",
        records,
        bytes,
        elapsed,
        Some(hist),
    );
    report.rpc_baseline_us = Some(round_trips(&mut tx, &mut rx).await?);
    Ok(report)
}

/// p50 and p99 of 2,000 ApiVersions round trips: the floor under one
/// awaited Produce, as w3's DescribeTopic baseline is over gRPC.
async fn round_trips(tx: &mut wire::Sender, rx: &mut wire::Receiver) -> anyhow::Result<(u64, u64)> {
    let mut hist = new_histogram();
    let request = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("brook-bench"))
        .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
    for _ in 0..2_000 {
        let t = Instant::now();
        let pending = tx.send(ApiKey::ApiVersions, API_VERSIONS, &request).await?;
        let _: ApiVersionsResponse = rx.recv(pending).await?;
        hist.record(t.elapsed().as_micros().max(1) as u64)?;
    }
    Ok((hist.value_at_quantile(0.5), hist.value_at_quantile(0.99)))
}

/// Where each partition's reading stands.
#[derive(Clone, Copy)]
struct Position {
    next: i64,
    /// The high watermark of the last answer (unknown before the first).
    end: Option<i64>,
}

impl Position {
    fn done(&self) -> bool {
        self.end.is_some_and(|end| self.next >= end)
    }
}

/// The first offset of every partition (ListOffsets, earliest).
async fn starts(
    tx: &mut wire::Sender,
    rx: &mut wire::Receiver,
    topic: &str,
    count: i32,
) -> anyhow::Result<Vec<Position>> {
    let request = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(
                    (0..count)
                        .map(|p| {
                            list_offsets_request::ListOffsetsPartition::default()
                                .with_partition_index(p)
                                .with_timestamp(-2)
                        })
                        .collect(),
                ),
        ]);
    let pending = tx.send(ApiKey::ListOffsets, LIST_OFFSETS, &request).await?;
    let answer: ListOffsetsResponse = rx.recv(pending).await?;
    let mut out = vec![Position { next: 0, end: None }; count as usize];
    for p in answer.topics.iter().flat_map(|t| &t.partitions) {
        anyhow::ensure!(p.error_code == 0, "ListOffsets: error {}", p.error_code);
        if let Some(slot) = out.get_mut(p.partition_index as usize) {
            slot.next = p.offset;
        }
    }
    Ok(out)
}

fn fetch_request(topic: &str, positions: &[Position]) -> FetchRequest {
    let partitions = positions
        .iter()
        .enumerate()
        .filter(|(_, p)| !p.done())
        .map(|(i, p)| {
            fetch_request::FetchPartition::default()
                .with_partition(i as i32)
                .with_fetch_offset(p.next)
                .with_partition_max_bytes(PARTITION_MAX_BYTES)
        })
        .collect();
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(FETCH_MAX_BYTES)
        .with_session_epoch(-1)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(partitions),
        ])
}

/// Fetches until every partition is read to its end or the reader stops
/// listening, handing each answer's record bytes to `out`.
async fn fetch_all(
    addr: String,
    topic: String,
    out: tokio::sync::mpsc::Sender<Vec<Bytes>>,
) -> anyhow::Result<()> {
    let (mut tx, mut rx) = wire::connect(&addr).await?;
    let count = partitions(&mut tx, &mut rx, &topic).await?;
    let mut positions = starts(&mut tx, &mut rx, &topic, count).await?;
    while !positions.iter().all(Position::done) {
        let pending = tx
            .send(ApiKey::Fetch, FETCH, &fetch_request(&topic, &positions))
            .await?;
        let answer: FetchResponse = rx.recv(pending).await?;
        anyhow::ensure!(answer.error_code == 0, "Fetch: error {}", answer.error_code);
        let mut chunks = Vec::new();
        for p in answer.responses.into_iter().flat_map(|t| t.partitions) {
            anyhow::ensure!(
                p.error_code == 0,
                "Fetch of partition {}: error {}",
                p.partition_index,
                p.error_code
            );
            let position = positions
                .get_mut(p.partition_index as usize)
                .context("an answer for a partition not asked for")?;
            position.end = Some(p.high_watermark);
            let Some(records) = p.records.filter(|r| !r.is_empty()) else {
                continue;
            };
            if let Some(last) = batch::headers(&records).last() {
                position.next = last.next_offset() as i64;
            }
            chunks.push(records);
        }
        if out.send(chunks).await.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

/// w2: reads `records` records, counting their value bytes.
async fn read(addr: &str, topic: &str, records: u64, quiet: bool) -> anyhow::Result<Report> {
    let _progress = Progress::start("received", records, quiet);
    let started = Instant::now();
    let (out, mut answers) = tokio::sync::mpsc::channel(READ_AHEAD);
    let fetcher = tokio::spawn(fetch_all(addr.to_string(), topic.to_string(), out));
    let (mut n, mut bytes) = (0u64, 0u64);
    'read: while n < records {
        let chunks = match tokio::time::timeout(Duration::from_secs(30), answers.recv()).await {
            Ok(Some(chunks)) => chunks,
            Ok(None) => break,
            Err(_) => anyhow::bail!("no answer for 30 s after {n} records"),
        };
        for chunk in chunks {
            for b in batch::batches(chunk) {
                // A batch cut at the answer's size limit ends the chunk.
                let Ok(b) = b else { break };
                for r in b.records() {
                    let r = r?;
                    bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
                    n += 1;
                    if n >= records {
                        break 'read;
                    }
                }
            }
        }
        progress::set(n);
    }
    let elapsed = started.elapsed();
    drop(answers);
    fetcher.await??;
    anyhow::ensure!(
        n >= records,
        "the topic holds {n} records, not {records}: run --scenario w1 on it first"
    );
    Ok(Report::new(
        "w2 over Kafka (every partition per Fetch)",
        n,
        bytes,
        elapsed,
        None,
    ))
}
