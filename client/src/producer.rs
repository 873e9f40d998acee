//! The producer: records are batched per partition (by `linger` and
//! `batch_bytes`), encoded once into Brook's batch format, and sent over one
//! pipelined `ProduceStream` with several batches in flight; acks come back
//! in order and resolve each record's future with its partition and offset.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use brook_protocol::batch::{Batch, BatchBuilder};
use brook_protocol::partitioner::partition_for_key;
use brook_protocol::v1;
use bytes::Bytes;
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot};
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::client::Client;
use crate::error::{Error, Result};

/// How durable a record must be before its send completes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// In the broker's page cache: survives a broker crash, not a power cut.
    #[default]
    Written,
    /// On the broker's disk.
    Durable,
}

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// How long a partition's first record waits for others to join its batch.
    pub linger: Duration,
    /// A batch is sent as soon as it reaches this size.
    pub batch_bytes: usize,
    /// Records waiting or in flight may use at most this many bytes; `send` waits beyond.
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
        }
    }
}

/// A record to send.
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Partition.
    pub partition: u32,
    /// Offset in the partition.
    pub offset: u64,
}

/// Completes when the record is acknowledged (see [`Producer::send`]).
pub struct Delivery(oneshot::Receiver<Result<RecordMetadata>>);

impl Future for Delivery {
    type Output = Result<RecordMetadata>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.0)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::Closed)))
    }
}

type Tp = (String, u32);

enum Cmd {
    Send {
        tp: Tp,
        record: ProducerRecord,
        permit: OwnedSemaphorePermit,
        reply: oneshot::Sender<Result<RecordMetadata>>,
    },
    Flush(oneshot::Sender<Result<()>>),
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
    tx: mpsc::Sender<Cmd>,
    buffer: Arc<Semaphore>,
    client: Client,
    partitions: Arc<Mutex<HashMap<String, u32>>>,
    round_robin: Arc<AtomicU64>,
    buffer_bytes: usize,
}

impl Client {
    /// A producer on this connection; its sender task runs until every clone is dropped.
    pub fn producer(&self, config: ProducerConfig) -> Producer {
        let (tx, rx) = mpsc::channel(1024);
        let buffer_bytes = config.buffer_bytes.max(1);
        tokio::spawn(Sender::new(self.clone(), config).run(rx));
        Producer {
            tx,
            buffer: Arc::new(Semaphore::new(buffer_bytes)),
            client: self.clone(),
            partitions: Arc::default(),
            round_robin: Arc::default(),
            buffer_bytes,
        }
    }
}

fn record_size(r: &ProducerRecord) -> usize {
    24 + r.key.as_ref().map_or(0, Bytes::len)
        + r.value.as_ref().map_or(0, Bytes::len)
        + r.headers
            .iter()
            .map(|(k, v)| k.len() + v.len() + 4)
            .sum::<usize>()
}

impl Producer {
    /// Queues `value` for `topic` under `key`. Returns once the record is
    /// buffered (waiting if the buffer is full); the returned [`Delivery`]
    /// completes when the broker acknowledged it.
    pub async fn send(
        &self,
        topic: &str,
        key: Option<impl Into<Bytes>>,
        value: impl Into<Bytes>,
    ) -> Result<Delivery> {
        let record = ProducerRecord {
            topic: topic.into(),
            key: key.map(Into::into),
            value: Some(value.into()),
            ..Default::default()
        };
        self.send_record(record).await
    }

    /// Queues a record with all its fields (headers, timestamp, partition).
    pub async fn send_record(&self, record: ProducerRecord) -> Result<Delivery> {
        let count = self.partition_count(&record.topic).await?;
        let partition = match (record.partition, &record.key) {
            (Some(p), _) if p < count => p,
            (Some(p), _) => {
                return Err(Error::Status {
                    code: tonic::Code::NotFound,
                    message: format!(
                        "topic {:?} has no partition {p} (it has {count})",
                        record.topic
                    ),
                });
            }
            (None, Some(key)) => partition_for_key(key, count),
            (None, None) => {
                (self.round_robin.fetch_add(1, Ordering::Relaxed) % u64::from(count)) as u32
            }
        };
        let size = record_size(&record).min(self.buffer_bytes) as u32;
        let permit = Arc::clone(&self.buffer)
            .acquire_many_owned(size)
            .await
            .map_err(|_| Error::Closed)?;
        let (reply, rx) = oneshot::channel();
        let cmd = Cmd::Send {
            tp: (record.topic.clone(), partition),
            record,
            permit,
            reply,
        };
        self.tx.send(cmd).await.map_err(|_| Error::Closed)?;
        Ok(Delivery(rx))
    }

    /// Sends everything buffered and waits until all of it is acknowledged.
    pub async fn flush(&self) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Cmd::Flush(reply))
            .await
            .map_err(|_| Error::Closed)?;
        rx.await.map_err(|_| Error::Closed)?
    }

    async fn partition_count(&self, topic: &str) -> Result<u32> {
        if let Some(n) = self
            .partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(topic)
        {
            return Ok(*n);
        }
        let n = self
            .client
            .admin()
            .describe_topic(topic)
            .await?
            .partitions
            .len() as u32;
        self.partitions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(topic.to_string(), n);
        Ok(n)
    }
}

/// A batch being filled.
struct Open {
    builder: BatchBuilder,
    waiters: Vec<oneshot::Sender<Result<RecordMetadata>>>,
    permits: Vec<OwnedSemaphorePermit>,
    deadline: Instant,
}

/// A batch sent (or to be re-sent) and not yet acknowledged.
struct InFlight {
    request: v1::ProduceRequest,
    waiters: Vec<oneshot::Sender<Result<RecordMetadata>>>,
    _permits: Vec<OwnedSemaphorePermit>,
}

struct Stream {
    requests: mpsc::Sender<v1::ProduceRequest>,
    acks: Streaming<v1::ProduceResponse>,
}

/// Codes after which an idempotent producer re-sends its in-flight batches:
/// the connection or the broker went away, and the broker's sequence check
/// makes a re-sent batch that was already stored a no-op.
fn retriable(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Internal
    )
}

/// The background task that owns the batches and the stream.
struct Sender {
    client: Client,
    config: ProducerConfig,
    open: HashMap<Tp, Open>,
    /// Batches that reached `batch_bytes`, in the order they filled; they go
    /// out before any open batch, so a partition's batches stay in order.
    full: VecDeque<(Tp, Open)>,
    in_flight: VecDeque<InFlight>,
    stream: Option<Stream>,
    flushes: Vec<oneshot::Sender<Result<()>>>,
    /// Producer id and epoch, once the broker gave them (idempotent mode).
    identity: Option<(i64, i16)>,
    /// Next sequence number per partition (idempotent mode).
    sequences: HashMap<Tp, i32>,
    /// Set while the stream is down: when the first failure happened.
    failing_since: Option<Instant>,
    /// The stream is down and in-flight batches must be re-sent before anything else.
    resend_needed: bool,
    backoff: Duration,
}

impl Sender {
    fn new(client: Client, mut config: ProducerConfig) -> Self {
        if config.idempotent {
            // The broker remembers a producer's last 5 batches per partition:
            // more in flight and a retry could fall outside what it can dedupe.
            config.max_in_flight = config.max_in_flight.clamp(1, 5);
        }
        Sender {
            client,
            config,
            open: HashMap::new(),
            full: VecDeque::new(),
            in_flight: VecDeque::new(),
            stream: None,
            flushes: Vec::new(),
            identity: None,
            sequences: HashMap::new(),
            failing_since: None,
            resend_needed: false,
            backoff: Duration::from_millis(50),
        }
    }

    async fn run(mut self, mut cmds: mpsc::Receiver<Cmd>) {
        let mut accepting = true;
        loop {
            if self.resend_needed {
                self.resend().await;
                continue;
            }
            let next_deadline = self.open.values().map(|o| o.deadline).min();
            let room = self.in_flight.len() < self.config.max_in_flight;
            tokio::select! {
                cmd = cmds.recv(), if accepting => match cmd {
                    Some(Cmd::Send { tp, record, permit, reply }) => self.add(tp, record, permit, reply),
                    Some(Cmd::Flush(reply)) => {
                        self.flushes.push(reply);
                        for o in self.open.values_mut() {
                            o.deadline = Instant::now();
                        }
                    }
                    None => {
                        accepting = false;
                        for o in self.open.values_mut() {
                            o.deadline = Instant::now();
                        }
                    }
                },
                ack = next_ack(&mut self.stream), if self.stream.is_some() && !self.in_flight.is_empty() => self.on_ack(ack),
                // Only while there is in-flight room: a due batch that cannot
                // be sent yet waits for an ack, not for a spinning timer.
                _ = sleep_until(next_deadline), if next_deadline.is_some() && room => {}
            }
            self.ship_ready().await;
            if self.open.is_empty() && self.full.is_empty() && self.in_flight.is_empty() {
                for f in self.flushes.drain(..) {
                    let _ = f.send(Ok(()));
                }
                if !accepting {
                    return;
                }
            }
        }
    }

    fn add(
        &mut self,
        tp: Tp,
        r: ProducerRecord,
        permit: OwnedSemaphorePermit,
        reply: oneshot::Sender<Result<RecordMetadata>>,
    ) {
        let linger = self.config.linger;
        // Sized for a full batch up front: growing a 1 MiB buffer by doubling
        // cost a realloc and copy per step (a tenth of the client's CPU in W1).
        let capacity =
            (self.config.batch_bytes + (r.value.as_ref().map_or(0, Bytes::len) + 256)).min(8 << 20);
        let open = self.open.entry(tp.clone()).or_insert_with(|| Open {
            builder: BatchBuilder::with_capacity(capacity),
            waiters: Vec::new(),
            permits: Vec::new(),
            deadline: Instant::now() + linger,
        });
        let headers: Vec<(&str, &[u8])> = r
            .headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_ref()))
            .collect();
        let ts = r.timestamp_ms.unwrap_or_else(now_ms);
        open.builder
            .push(ts, r.key.as_deref(), r.value.as_deref(), &headers);
        open.waiters.push(reply);
        open.permits.push(permit);
        if open.builder.size_bytes() >= self.config.batch_bytes {
            // Full: it will not grow while it waits for in-flight room.
            let full = self.open.remove(&tp).expect("just filled");
            self.full.push_back((tp, full));
        }
    }

    /// Sends every batch that is full or has lingered long enough, while
    /// in-flight room remains and the stream is up.
    async fn ship_ready(&mut self) {
        while self.in_flight.len() < self.config.max_in_flight && !self.resend_needed {
            let Some((tp, open)) = self.full.pop_front() else {
                break;
            };
            self.ship(tp, open).await;
        }
        if !self.full.is_empty() || self.resend_needed {
            return;
        }
        let now = Instant::now();
        let mut ready: Vec<Tp> = self
            .open
            .iter()
            .filter(|(_, o)| o.deadline <= now)
            .map(|(tp, _)| tp.clone())
            .collect();
        ready.sort();
        for tp in ready {
            if self.in_flight.len() >= self.config.max_in_flight || self.resend_needed {
                return;
            }
            let Some(open) = self.open.remove(&tp) else {
                continue;
            };
            self.ship(tp, open).await;
        }
    }

    async fn ship(&mut self, tp: Tp, open: Open) {
        let acks = match self.config.acks {
            Acks::Written => v1::Acks::Written,
            Acks::Durable => v1::Acks::Durable,
        } as i32;
        let mut builder = open.builder;
        if self.config.idempotent {
            let (pid, epoch) = match self.identity().await {
                Ok(id) => id,
                Err(e) => {
                    // No producer id yet (broker unreachable): keep the batch
                    // first in line and retry like a dropped stream.
                    self.full.push_front((tp, Open { builder, ..open }));
                    self.stream_failed(e);
                    return;
                }
            };
            let seq = self.sequences.entry(tp.clone()).or_insert(0);
            let base = *seq;
            *seq = seq.wrapping_add(builder.record_count() as i32) & i32::MAX;
            builder = builder.producer(pid, epoch, base);
        }
        let batch = builder.build(0);
        debug_assert!(Batch::parse(batch.clone()).is_ok());
        let request = v1::ProduceRequest {
            topic: tp.0,
            partition: tp.1,
            batch,
            acks,
        };
        self.in_flight.push_back(InFlight {
            request: request.clone(),
            waiters: open.waiters,
            _permits: open.permits,
        });
        if let Err(e) = self.send(request).await {
            self.stream_failed(e);
        }
    }

    async fn identity(&mut self) -> Result<(i64, i16)> {
        if let Some(id) = self.identity {
            return Ok(id);
        }
        let r = self
            .client
            .producer_rpc()
            .init_producer(v1::InitProducerRequest {})
            .await?
            .into_inner();
        let id = (r.producer_id, r.producer_epoch as i16);
        self.identity = Some(id);
        Ok(id)
    }

    async fn send(&mut self, request: v1::ProduceRequest) -> Result<()> {
        if self.stream.is_none() {
            let (requests, rx) = mpsc::channel(self.config.max_in_flight.max(1));
            let acks = self
                .client
                .producer_rpc()
                .produce_stream(ReceiverStream::new(rx))
                .await?
                .into_inner();
            self.stream = Some(Stream { requests, acks });
        }
        let stream = self.stream.as_mut().expect("just set");
        stream
            .requests
            .send(request)
            .await
            .map_err(|_| Error::Status {
                code: tonic::Code::Unavailable,
                message: "the produce stream closed".into(),
            })
    }

    /// The stream broke: an idempotent producer re-sends later, within
    /// `delivery_timeout`; any other fails what is in flight now.
    fn stream_failed(&mut self, e: Error) {
        self.stream = None;
        let retry = self.config.idempotent && e.code().is_some_and(retriable);
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if retry && since.elapsed() < self.config.delivery_timeout {
            tracing::debug!(error = %e, "produce stream failed; will re-send");
            self.resend_needed = true;
            return;
        }
        self.fail_all(e);
    }

    /// Waits, reconnects and re-sends every in-flight batch in order.
    async fn resend(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(1));
        if let Err(e) = self.identity().await {
            self.stream_failed(e);
            return;
        }
        let requests: Vec<v1::ProduceRequest> =
            self.in_flight.iter().map(|f| f.request.clone()).collect();
        for r in requests {
            if let Err(e) = self.send(r).await {
                self.stream_failed(e);
                return;
            }
        }
        self.resend_needed = false;
    }

    fn fail_all(&mut self, err: Error) {
        self.failing_since = None;
        self.resend_needed = false;
        self.stream = None;
        // Sequences of failed batches are burnt: a new producer id starts afresh.
        self.identity = None;
        self.sequences.clear();
        let behind = Error::Status {
            code: tonic::Code::Aborted,
            message: format!("not stored: an earlier batch on the same stream failed ({err})"),
        };
        for (i, f) in self.in_flight.drain(..).enumerate() {
            for w in f.waiters {
                let _ = w.send(Err(if i == 0 { err.clone() } else { behind.clone() }));
            }
        }
    }

    fn on_ack(&mut self, ack: Option<Result<v1::ProduceResponse, tonic::Status>>) {
        match ack {
            Some(Ok(r)) => {
                self.failing_since = None;
                self.backoff = Duration::from_millis(50);
                let Some(front) = self.in_flight.pop_front() else {
                    return;
                };
                for (i, w) in front.waiters.into_iter().enumerate() {
                    let _ = w.send(Ok(RecordMetadata {
                        partition: front.request.partition,
                        offset: r.base_offset + i as u64,
                    }));
                }
            }
            // The broker appends nothing after a failed batch on a stream, so
            // the batches behind this one were never stored.
            Some(Err(s)) => self.stream_failed(Error::from(s)),
            None => self.stream_failed(Error::Status {
                code: tonic::Code::Unavailable,
                message: "the produce stream ended".into(),
            }),
        }
    }
}

async fn next_ack(
    stream: &mut Option<Stream>,
) -> Option<Result<v1::ProduceResponse, tonic::Status>> {
    match stream {
        Some(s) => s.acks.message().await.transpose(),
        None => None,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
