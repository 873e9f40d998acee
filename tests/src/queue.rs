//! Helpers of the queue-group tests (`tests/queues.rs`,
//! `tests/queue_details.rs`): a broker with a topic, the `Queues` service,
//! fetch and acknowledge in one call each, every record of a topic.

use brook_client::{Client, ReadFrom};
use brook_protocol::v1;
use tonic::transport::Channel;

use crate::{Broker, DEADLINE};

/// A client of `b`.
pub async fn client(b: &Broker) -> Client {
    Client::connect(format!("http://{}", b.grpc)).await.unwrap()
}

/// A broker on a fresh data directory (keep it alive with the broker), a
/// client of it, and `topic` with `partitions`.
pub async fn broker_with_topic(
    topic: &str,
    partitions: u32,
) -> (tempfile::TempDir, Broker, Client) {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    let c = client(&b).await;
    c.admin().create_topic(topic, partitions).await.unwrap();
    (dir, b, c)
}

/// The `brook.v1.Queues` service on `ch`.
pub fn queues(ch: Channel) -> v1::queues_client::QueuesClient<Channel> {
    v1::queues_client::QueuesClient::new(ch)
}

/// A queue group on `topic` from its first record, with `settings`.
pub async fn create_queue(c: &Client, group: &str, topic: &str, settings: v1::QueueSettings) {
    c.admin()
        .create_queue(group, topic, settings, true)
        .await
        .unwrap();
}

/// Leases up to `max` records of `group` to `consumer`, waiting up to `wait_ms`.
pub async fn fetch(
    q: &mut v1::queues_client::QueuesClient<Channel>,
    group: &str,
    consumer: &str,
    max: u32,
    wait_ms: u32,
) -> v1::FetchQueueResponse {
    q.fetch_queue(v1::FetchQueueRequest {
        group: group.into(),
        consumer_id: consumer.into(),
        max_records: max,
        max_wait_ms: wait_ms,
        ..Default::default()
    })
    .await
    .unwrap()
    .into_inner()
}

/// One acknowledgement of one record.
pub fn ack(
    partition: u32,
    offset: u64,
    outcome: v1::AckOutcome,
    reason: &str,
) -> v1::Acknowledgement {
    v1::Acknowledgement {
        partition,
        first_offset: offset,
        last_offset: offset,
        outcome: outcome as i32,
        reason: reason.into(),
        delay_ms: None,
    }
}

/// Acknowledges `acks` as `consumer` of `group`.
pub async fn settle(
    q: &mut v1::queues_client::QueuesClient<Channel>,
    group: &str,
    consumer: &str,
    acks: Vec<v1::Acknowledgement>,
) -> v1::AcknowledgeResponse {
    q.acknowledge(v1::AcknowledgeRequest {
        group: group.into(),
        consumer_id: consumer.into(),
        acks,
    })
    .await
    .unwrap()
    .into_inner()
}

/// Every record of `topic` (all partitions), read directly.
pub async fn read_all(c: &Client, topic: &str) -> Vec<brook_client::ConsumerRecord> {
    let d = c.admin().describe_topic(topic).await.unwrap();
    let mut out = Vec::new();
    for p in d.partitions {
        let mut r = c
            .reader(topic, p.partition, ReadFrom::Offset(p.log_start_offset))
            .await
            .unwrap();
        while r.position() < p.log_end_offset {
            out.push(r.recv().await.unwrap());
        }
    }
    out
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// `group`'s description.
pub async fn describe(c: &Client, group: &str) -> v1::QueueDescription {
    c.admin()
        .describe_queue(group)
        .await
        .expect("describing the queue group")
}

/// Fetches as `consumer` of `group` until `n` records are leased to it
/// (never more), polling with a deadline.
pub async fn fetch_n(
    q: &mut v1::queues_client::QueuesClient<Channel>,
    group: &str,
    consumer: &str,
    n: usize,
) -> Vec<v1::QueueRecord> {
    let deadline = std::time::Instant::now() + DEADLINE;
    let mut out = Vec::new();
    while out.len() < n {
        assert!(
            std::time::Instant::now() < deadline,
            "{} of {n} records of {group} leased",
            out.len()
        );
        let want = (n - out.len()) as u32;
        out.extend(fetch(q, group, consumer, want, 500).await.records);
    }
    out
}
