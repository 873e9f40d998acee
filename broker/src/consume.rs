//! The `brook.v1.Consumer` service: long-poll fetch and push subscribe.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::batch::{batches, headers};
use brook_protocol::v1::{self, consumer_server::Consumer};
use brook_storage::{Partition, ReadResult};
use bytes::Bytes;
use futures_util::stream::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use crate::auth::acl::Operation;
use crate::error::{ApiError, ApiResult, Reason};
use crate::metrics::TopicLabels;
use crate::quota::Direction;
use crate::request::RequestContext;
use crate::state::Broker;
use crate::state::QuotaClient;

const DEFAULT_MAX_BYTES: u32 = 1 << 20;

/// The batch bytes one response may carry: what the client asks (1 MiB if
/// it asks nothing) up to `--max-fetch-bytes`, half of that with decoded
/// records, which about double a response. A batch larger than this still
/// goes out alone: a fetch always makes progress.
fn max_bytes(asked: u32, decoded: bool, cap: u32) -> usize {
    let cap = match decoded {
        true => cap / 2,
        false => cap,
    };
    (if asked == 0 { DEFAULT_MAX_BYTES } else { asked }).min(cap.max(1)) as usize
}
/// Messages a subscription may queue before HTTP/2 flow control holds it back.
const SUBSCRIBE_QUEUE: usize = 4;

/// Implements `brook.v1.Consumer`.
pub struct ConsumerService {
    broker: Arc<Broker>,
}

impl ConsumerService {
    /// A service over the shared broker state.
    pub fn new(broker: Arc<Broker>) -> Self {
        ConsumerService { broker }
    }
}

/// The offset after the last batch in `buf`, or `from` if it is empty.
fn next_offset(buf: &[u8], from: u64) -> u64 {
    headers(buf).last().map_or(from, |h| h.next_offset())
}

/// Records at or after `from`, decoded for clients without the batch codec.
/// A stored record in its protobuf form (no copy of key, value or header values).
pub(crate) fn record_to_proto(r: brook_protocol::batch::Record) -> v1::Record {
    v1::Record {
        offset: r.offset,
        timestamp_ms: r.timestamp,
        key: r.key,
        value: r.value,
        headers: r
            .headers
            .into_iter()
            .map(|h| v1::Header {
                key: h.key,
                value: h.value,
            })
            .collect(),
    }
}

fn decode(buf: &Bytes, from: u64) -> ApiResult<Vec<v1::Record>> {
    let mut out = Vec::new();
    for batch in batches(buf.clone()) {
        let batch = batch.map_err(|e| {
            ApiError::new(
                Reason::CorruptStorage,
                format!("stored batch failed to decode: {e}"),
            )
        })?;
        for r in batch.records() {
            let r = r.map_err(|e| {
                ApiError::new(
                    Reason::CorruptStorage,
                    format!("stored record failed to decode: {e}"),
                )
            })?;
            if r.offset >= from {
                out.push(record_to_proto(r));
            }
        }
    }
    Ok(out)
}

fn count_records(buf: &[u8]) -> u64 {
    headers(buf).map(|h| u64::from(h.record_count)).sum()
}

/// Counts records and bytes served from `topic` (either protocol).
pub(crate) fn count_fetched(broker: &Broker, topic: &str, buf: &[u8]) {
    let labels = TopicLabels {
        topic: topic.to_string(),
    };
    broker
        .metrics
        .fetched_records
        .get_or_create(&labels)
        .inc_by(count_records(buf));
    broker
        .metrics
        .fetched_bytes
        .get_or_create(&labels)
        .inc_by(buf.len() as u64);
}

impl ConsumerService {
    fn count_out(&self, topic: &str, buf: &[u8]) {
        count_fetched(&self.broker, topic, buf);
    }

    async fn fetch_inner(&self, req: &v1::FetchRequest) -> ApiResult<v1::FetchResponse> {
        let p = self.broker.partition(&req.topic, req.partition)?;
        let max_bytes = max_bytes(
            req.max_bytes,
            req.decoded,
            self.broker.config.max_fetch_bytes,
        );
        let wait = Duration::from_millis(u64::from(req.max_wait_ms))
            .min(self.broker.config.max_fetch_wait);
        let deadline = tokio::time::Instant::now() + wait;
        // Subscribe before the first read so that no append between the read
        // and the wait goes unnoticed.
        let mut end = p.watch_high_watermark();
        let mut shutdown = self.broker.shutdown_signal();
        let read = loop {
            let r = read_off_worker(&p, req.offset, max_bytes).await?;
            let enough = r.batches.len() >= (req.min_bytes as usize).max(1);
            if enough
                || req.min_bytes == 0 && !r.batches.is_empty()
                || tokio::time::Instant::now() >= deadline
            {
                break r;
            }
            tokio::select! {
                changed = end.changed() => if changed.is_err() { break r },
                _ = tokio::time::sleep_until(deadline) => {}
                _ = shutdown.wait_for(|s| *s) => break r,
            }
        };
        self.count_out(&req.topic, &read.batches);
        let records = if req.decoded {
            decode(&read.batches, req.offset)?
        } else {
            Vec::new()
        };
        Ok(v1::FetchResponse {
            next_offset: next_offset(&read.batches, req.offset),
            log_start_offset: read.log_start_offset,
            log_end_offset: read.high_watermark,
            batches: read.batches,
            records,
        })
    }

    /// Where `start` puts the subscription in `p`.
    fn start_offset(p: &Partition, start: &Option<v1::StartPosition>) -> ApiResult<u64> {
        use v1::start_position::Position;
        match start.as_ref().and_then(|s| s.position.as_ref()) {
            None | Some(Position::Latest(_)) => Ok(p.high_watermark()),
            Some(Position::Earliest(_)) => Ok(p.log_start_offset()),
            Some(Position::Offset(o)) => {
                let (start, end) = (p.log_start_offset(), p.log_end_offset());
                if *o < start || *o > end {
                    return Err(brook_storage::Error::OffsetOutOfRange {
                        requested: *o,
                        log_start_offset: start,
                        log_end_offset: end,
                    }
                    .into());
                }
                Ok(*o)
            }
            Some(Position::TimestampMs(t)) => {
                Ok(p.offset_for_timestamp(*t)?.unwrap_or(p.high_watermark()))
            }
        }
    }
}

type SubscribeStream = Pin<Box<dyn Stream<Item = Result<v1::SubscribeResponse, Status>> + Send>>;

/// What every partition of one subscription shares.
struct Subscription {
    service: ConsumerService,
    topic: String,
    max_bytes: usize,
    decoded: bool,
    /// Whose fetch quota its messages count against.
    client: QuotaClient,
}

/// Follows one partition, sending what it appends until the client leaves
/// or the broker shuts down. `send` waits when the client's queue is full,
/// so a slow consumer holds the reads back instead of growing a buffer.
async fn follow(
    sub: Arc<Subscription>,
    id: u32,
    p: Partition,
    mut next: u64,
    tx: mpsc::Sender<Result<v1::SubscribeResponse, Status>>,
) {
    let Subscription {
        service,
        topic,
        max_bytes,
        decoded,
        client,
    } = &*sub;
    let (max_bytes, decoded) = (*max_bytes, *decoded);
    let mut end = p.watch_high_watermark();
    let mut shutdown = service.broker.shutdown_signal();
    loop {
        let ReadResult {
            batches,
            high_watermark: log_end_offset,
            ..
        } = match read_off_worker(&p, next, max_bytes).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(topic, partition = id, error = %e, "subscription ended");
                let _ = tx.send(Err(e.into())).await;
                return;
            }
        };
        if batches.is_empty() {
            tokio::select! {
                changed = end.changed() => if changed.is_err() { return },
                _ = shutdown.wait_for(|s| *s) => return,
                _ = tx.closed() => return,
            }
            continue;
        }
        let records = if decoded {
            match decode(&batches, next) {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(e.into())).await;
                    return;
                }
            }
        } else {
            Vec::new()
        };
        let from = next;
        next = next_offset(&batches, from);
        service.count_out(topic, &batches);
        let msg = v1::SubscribeResponse {
            partition: id,
            batches,
            records,
            log_end_offset,
            next_offset: next,
        };
        // Checked at every message: a subscription ends when its ACL is
        // removed or its token revoked, not only at the next one.
        let allowed = service.broker.auth.authorize(
            client.caller(),
            Operation::Read,
            crate::auth::acl::ResourceType::Topic,
            topic,
        );
        if let Err(e) = allowed {
            let _ = tx.send(Err(e.into())).await;
            return;
        }
        let bytes = || prost::Message::encoded_len(&msg);
        tokio::select! {
            () = service.broker.throttle(client, Direction::Fetch, bytes) => {}
            _ = shutdown.wait_for(|s| *s) => return,
        }
        tokio::select! {
            sent = tx.send(Ok(msg)) => if sent.is_err() { return },
            _ = shutdown.wait_for(|s| *s) => return,
        }
    }
}

#[tonic::async_trait]
impl Consumer for ConsumerService {
    async fn fetch(
        &self,
        req: Request<v1::FetchRequest>,
    ) -> Result<Response<v1::FetchResponse>, Status> {
        let ctx = RequestContext::of(&req);
        ctx.resource(&req.get_ref().topic)
            .partition(req.get_ref().partition);
        self.broker
            .authorize_topic(&req, Operation::Read, &req.get_ref().topic)?;
        let fetched = self.fetch_inner(req.get_ref()).await?;
        let bytes = || prost::Message::encoded_len(&fetched);
        self.broker
            .throttle(&QuotaClient::of(&req), Direction::Fetch, bytes)
            .await;
        Ok(Response::new(fetched))
    }

    type SubscribeStream = SubscribeStream;

    async fn subscribe(
        &self,
        req: Request<v1::SubscribeRequest>,
    ) -> Result<Response<SubscribeStream>, Status> {
        RequestContext::of(&req).resource(&req.get_ref().topic);
        self.broker
            .authorize_topic(&req, Operation::Read, &req.get_ref().topic)?;
        let client = QuotaClient::of(&req);
        let req = req.into_inner();
        let starts = (|| {
            let topic = self.broker.topic(&req.topic)?;
            let ids: Vec<u32> = if req.partitions.is_empty() {
                (0..topic.partition_count()).collect()
            } else {
                req.partitions.clone()
            };
            let mut starts = Vec::new();
            let mut listed = std::collections::HashSet::new();
            for &id in &ids {
                if !listed.insert(id) {
                    return Err(ApiError::invalid(format!("partition {id} is listed twice")));
                }
                let p = topic.partition(id)?;
                let from = Self::start_offset(&p, &req.start)?;
                starts.push((id, p, from));
            }
            Ok::<_, ApiError>(starts)
        })()?;
        let (tx, rx) = mpsc::channel(SUBSCRIBE_QUEUE);
        let max_bytes = max_bytes(
            req.max_bytes,
            req.decoded,
            self.broker.config.max_fetch_bytes,
        );
        let sub = Arc::new(Subscription {
            service: ConsumerService {
                broker: Arc::clone(&self.broker),
            },
            topic: req.topic,
            max_bytes,
            decoded: req.decoded,
            client,
        });
        for (id, p, from) in starts {
            tokio::spawn(follow(Arc::clone(&sub), id, p, from, tx.clone()));
        }
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

/// Reads on a blocking-pool thread, not on an async worker: a read checks
/// every batch's CRC, so it touches every byte it returns, and a range that
/// is not in the page cache page-faults for as long as the disk takes,
/// stalling every request queued on that worker. The hop costs a few
/// microseconds against a read's hundreds (docs/benchmarks.md, "Reads off
/// the async workers"). At or past the high watermark there is nothing to
/// touch: that answer stays on the worker.
pub(crate) async fn read_off_worker(
    p: &Partition,
    offset: u64,
    max_bytes: usize,
) -> ApiResult<ReadResult> {
    if offset >= p.high_watermark() {
        return Ok(p.read(offset, max_bytes)?);
    }
    let p = p.clone();
    crate::error::on_blocking_thread(move || p.read(offset, max_bytes)).await
}
