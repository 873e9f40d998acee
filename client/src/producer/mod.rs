//! The producer: records are batched per partition (by `linger` and
//! `batch_bytes`), encoded once into Brook's batch format, and sent over one
//! pipelined `ProduceStream` with several batches in flight; acks come back
//! in order and resolve each record's future with its partition and offset.

mod accumulator;
mod delivery;
mod sender;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use brook_protocol::batch::Compression;
use brook_protocol::partitioner::partition_for_key;
use bytes::Bytes;

use crate::client::Client;
use crate::correlation::TRACE_HEADERS;
use crate::error::{Error, Result};
use accumulator::{Accumulator, RecordRef};
pub use delivery::Delivery;
use sender::Sender;

/// How durable a record must be before its send completes.
///
/// ```no_run
/// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
/// use brook_client::{Acks, ProducerConfig};
/// // A payment must survive a power cut: its send completes once it is on disk.
/// let payments = client.producer(ProducerConfig { acks: Acks::Durable, ..Default::default() });
/// payments.send("payments", Some("order-42"), "PaymentCaptured").await?.await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// In the broker's page cache: survives a broker crash, not a power cut.
    #[default]
    Written,
    /// On the broker's disk.
    Durable,
}

/// Producer settings.
///
/// ```no_run
/// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
/// use std::time::Duration;
/// use brook_client::ProducerConfig;
/// // A bulk import of past orders: bigger batches, fewer requests.
/// let config = ProducerConfig {
///     linger: Duration::from_millis(20),
///     batch_bytes: 4 << 20,
///     ..Default::default()
/// };
/// let importer = client.producer(config);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// How long a partition's first record waits for others to join its
    /// batch while other batches are in flight. With nothing in flight a
    /// batch goes at once, so one awaited `send` is one round trip; records
    /// sent meanwhile gather behind it and go when it is acknowledged, when
    /// their batch fills, or after `linger`, whichever comes first.
    pub linger: Duration,
    /// A batch is sent as soon as it reaches this size.
    pub batch_bytes: usize,
    /// Records waiting or in flight may use at most this many bytes; `send`
    /// waits beyond. (Besides it, the producer keeps up to 8 buffers of
    /// acknowledged batches, `batch_bytes` each, to build new batches in.)
    pub buffer_bytes: usize,
    /// Batches sent and not yet acknowledged, at most.
    pub max_in_flight: usize,
    /// Durability of every send.
    pub acks: Acks,
    /// Idempotent producer (default): the broker stores each batch once, so
    /// batches in flight when a connection drops are re-sent safely. At most
    /// 5 batches are then in flight.
    pub idempotent: bool,
    /// How long an idempotent producer keeps re-sending before failing a send.
    pub delivery_timeout: Duration,
    /// The codec batches are compressed with (none by default; zstd and
    /// lz4 are the usual choices). The broker stores them compressed, and
    /// every consumer, gRPC or Kafka, decompresses.
    pub compression: Compression,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            linger: Duration::from_millis(5),
            batch_bytes: 1 << 20,
            buffer_bytes: 64 << 20,
            max_in_flight: 5,
            acks: Acks::Written,
            idempotent: true,
            delivery_timeout: Duration::from_secs(60),
            compression: Compression::None,
        }
    }
}

/// A record to send.
///
/// ```no_run
/// # async fn demo(producer: brook_client::Producer) -> brook_client::Result<()> {
/// use brook_client::ProducerRecord;
/// // A tombstone (no value): order-42 is gone; readers of `orders` can forget it.
/// let tombstone = ProducerRecord {
///     topic: "orders".into(),
///     key: Some("order-42".into()),
///     ..Default::default()
/// };
/// producer.send_record(tombstone).await?.await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    /// Topic.
    pub topic: String,
    /// Routes the record (Kafka's murmur2); `None` goes round-robin.
    pub key: Option<Bytes>,
    /// The payload; `None` is a tombstone.
    pub value: Option<Bytes>,
    /// Headers (correlation id, event type, ...).
    pub headers: Vec<(String, Bytes)>,
    /// Milliseconds since the epoch; the client's clock when `None`.
    pub timestamp_ms: Option<i64>,
    /// Sends to this partition instead of routing by key.
    pub partition: Option<u32>,
}

/// Where a record was stored.
///
/// ```no_run
/// # async fn demo(producer: brook_client::Producer) -> brook_client::Result<()> {
/// use brook_client::RecordMetadata;
/// let stored: RecordMetadata = producer.send("orders", Some("order-42"), "OrderPlaced").await?.await?;
/// // Every event keyed order-42 lands in this partition, in order.
/// println!("order-42 is at orders/{} offset {}", stored.partition, stored.offset);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Partition.
    pub partition: u32,
    /// Offset in the partition.
    pub offset: u64,
}

/// Sends records to Brook. Cheap to clone; clones share the batches and the stream.
///
/// ```no_run
/// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
/// let producer = client.producer(Default::default());
/// let delivery = producer.send("orders", Some("order-42"), r#"{"type":"OrderPlaced"}"#).await?;
/// let stored = delivery.await?; // acknowledged: partition and offset
/// println!("order-42 is at {}/{}", stored.partition, stored.offset);
/// producer.flush().await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct Producer {
    handle: Arc<Handle>,
}

/// The producer's state; dropping the last handle lets the sender finish.
struct Handle {
    acc: Arc<Accumulator>,
    client: Client,
    round_robin: AtomicU64,
    buffer_bytes: usize,
}

impl Drop for Handle {
    fn drop(&mut self) {
        let mut state = self.acc.lock();
        state.closed = true;
        state.expire_all();
        drop(state);
        self.acc.wake.notify_one();
    }
}

impl Client {
    /// A producer on this connection. Its sender task sends what is buffered
    /// and ends once every clone of the producer is dropped.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// use brook_client::{Acks, ProducerConfig};
    /// let producer = client.producer(ProducerConfig { acks: Acks::Durable, ..Default::default() });
    /// producer.send("orders", Some("order-42"), "OrderPlaced").await?.await?;
    /// # Ok(()) }
    /// ```
    pub fn producer(&self, config: ProducerConfig) -> Producer {
        // Permits are u32: the buffer is capped at 4 GiB.
        let buffer_bytes = config.buffer_bytes.clamp(1, u32::MAX as usize);
        let acc = Arc::new(Accumulator::new(
            config.linger,
            config.batch_bytes,
            buffer_bytes,
            config.compression,
        ));
        tokio::spawn(Sender::new(self.clone(), config, Arc::clone(&acc)).run());
        Producer {
            handle: Arc::new(Handle {
                acc,
                client: self.clone(),
                round_robin: AtomicU64::new(0),
                buffer_bytes,
            }),
        }
    }
}

impl Producer {
    /// Queues `value` for `topic` under `key` (Kafka's murmur2 picks the
    /// partition, as the broker does; no key goes round-robin). Returns once
    /// the record is buffered, waiting while the buffer is full; the returned
    /// [`Delivery`] completes when the broker acknowledged it.
    ///
    /// ```no_run
    /// # async fn demo(producer: brook_client::Producer) -> brook_client::Result<()> {
    /// let d = producer.send("orders", Some("order-42"), "OrderPlaced").await?;
    /// // Buffered; awaiting the Delivery waits for the broker's acknowledgement.
    /// let m = d.await?;
    /// println!("order-42 is at orders/{} offset {}", m.partition, m.offset);
    /// # Ok(()) }
    /// ```
    pub async fn send(
        &self,
        topic: &str,
        key: Option<impl AsRef<[u8]>>,
        value: impl AsRef<[u8]>,
    ) -> Result<Delivery> {
        let key = key.as_ref().map(AsRef::as_ref);
        self.append(topic, None, key, Some(value.as_ref()), &[], None)
            .await
    }

    /// Queues a record with all its fields (headers, timestamp, partition).
    ///
    /// ```no_run
    /// # async fn demo(producer: brook_client::Producer) -> brook_client::Result<()> {
    /// use brook_client::ProducerRecord;
    /// let record = ProducerRecord {
    ///     topic: "orders".into(),
    ///     key: Some("order-42".into()),
    ///     value: Some(r#"{"type":"OrderPlaced"}"#.into()),
    ///     headers: vec![("correlation-id".into(), "c-7".into())],
    ///     ..Default::default()
    /// };
    /// producer.send_record(record).await?.await?;
    /// # Ok(()) }
    /// ```
    pub async fn send_record(&self, record: ProducerRecord) -> Result<Delivery> {
        let headers: Vec<(&str, &[u8])> = record
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_ref()))
            .collect();
        self.append(
            &record.topic,
            record.partition,
            record.key.as_deref(),
            record.value.as_deref(),
            &headers,
            record.timestamp_ms,
        )
        .await
    }

    async fn append(
        &self,
        topic: &str,
        partition: Option<u32>,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, &[u8])],
        timestamp_ms: Option<i64>,
    ) -> Result<Delivery> {
        let h = &*self.handle;
        // Inside a traced span the record names a publish span of its own
        // (trace_context.rs) instead of the trace headers it was given.
        let traced = crate::trace_context::publish_headers(topic);
        let with_trace: Vec<(&str, &[u8])>;
        let headers = match &traced {
            None => headers,
            Some(trace) => {
                with_trace = (headers.iter().copied())
                    .filter(|(k, _)| !TRACE_HEADERS.contains(k))
                    .chain(trace.iter().map(|(k, v)| (*k, v.as_bytes())))
                    .collect();
                &with_trace
            }
        };
        let record = RecordRef {
            timestamp_ms: timestamp_ms.unwrap_or_else(now_ms),
            key,
            value,
            headers,
        };
        // A record holds its largest encoded size of the buffer (capped, so
        // that one record bigger than the buffer can still go).
        let size = record.max_encoded_len().min(h.buffer_bytes) as u32;
        let permit = h
            .acc
            .buffer
            .acquire_many(size)
            .await
            .map_err(|_| Error::Closed)?;
        loop {
            {
                let mut state = h.acc.lock();
                if state.sender_gone {
                    return Err(Error::Closed);
                }
                if let Some(slots) = state.topics.get(topic) {
                    let count = slots.partitions.max(1);
                    let partition = match (partition, key) {
                        (Some(p), _) if p < count => p,
                        (Some(p), _) => {
                            return Err(Error::status(
                                tonic::Code::NotFound,
                                format!("topic {topic:?} has no partition {p} (it has {count})"),
                            ));
                        }
                        (None, Some(key)) => partition_for_key(key, count),
                        (None, None) => {
                            (h.round_robin.fetch_add(1, Ordering::Relaxed) % u64::from(count))
                                as u32
                        }
                    };
                    // The batch holds these bytes from now until it completes.
                    permit.forget();
                    return Ok(h.acc.append(&mut state, topic, partition, &record, size));
                }
            }
            let count = h
                .client
                .admin()
                .describe_topic(topic)
                .await?
                .partitions
                .len() as u32;
            h.acc.lock().add_topic(topic, count);
        }
    }

    /// Sends everything buffered now and waits until all of it is
    /// acknowledged; fails with the first error among those records.
    /// Records sent while it waits are not waited for.
    ///
    /// ```no_run
    /// # async fn demo(producer: brook_client::Producer) -> brook_client::Result<()> {
    /// for i in 0..100 {
    ///     producer.send("orders", Some(format!("order-{i}")), "OrderPlaced").await?;
    /// }
    /// producer.flush().await?; // all 100 are stored
    /// # Ok(()) }
    /// ```
    pub async fn flush(&self) -> Result<()> {
        let acc = &self.handle.acc;
        let unfinished = {
            let mut state = acc.lock();
            state.expire_all();
            state.unfinished()
        };
        acc.wake.notify_one();
        let mut first_error = None;
        for outcome in unfinished {
            if let Err(e) = outcome.wait().await {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
