//! The `brook.v1.Producer` service: raw batches (unary and streamed) and keyed publish.

use std::pin::Pin;
use std::sync::Arc;
use std::time::Instant;

use brook_protocol::batch::{Batch, BatchBuilder};
use brook_protocol::partitioner::partition_for_key;
use brook_protocol::v1::{self, producer_server::Producer};
use brook_storage::{AppendInfo, FlushPolicy, Partition, now_ms};
use futures_util::stream::{FuturesOrdered, Stream, StreamExt};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::auth::Caller;
use crate::auth::acl::{Operation, ResourceType};
use crate::error::{ApiError, ApiResult, Reason};
use crate::metrics::TopicLabels;
use crate::quota::Direction;
use crate::request::{RequestContext, record_message};
use crate::schemas::deadletter;
use crate::state::Broker;
use crate::state::QuotaClient;

/// Batches a produce stream may have in flight (appended, awaiting their ack).
const STREAM_IN_FLIGHT: usize = 64;

/// Implements `brook.v1.Producer`.
pub struct ProducerService {
    broker: Arc<Broker>,
}

impl ProducerService {
    /// A service over the shared broker state.
    pub fn new(broker: Arc<Broker>) -> Self {
        ProducerService { broker }
    }
}

fn wants_durable(acks: i32) -> ApiResult<bool> {
    match v1::Acks::try_from(acks) {
        Ok(v1::Acks::Unspecified | v1::Acks::Written) => Ok(false),
        Ok(v1::Acks::Durable) => Ok(true),
        Err(_) => Err(ApiError::invalid(format!("unknown acks value {acks}"))),
    }
}

/// Appends without waiting for the disk (see [`make_durable`] for the wait)
/// and counts what was stored.
///
/// The append itself stays on the async thread: a buffered append is one
/// `pwritev` into the page cache (microseconds), cheaper than a thread hop.
pub(crate) fn append_now(
    broker: &Broker,
    topic: &str,
    p: &Partition,
    batch: &Batch,
) -> ApiResult<AppendInfo> {
    let info = p.append_nowait(batch).map_err(|e| match e {
        // Closed while the topic is being deleted: say so, not "retry later".
        brook_storage::Error::Closed(_) => match broker.topic(topic) {
            Err(gone) => gone,
            Ok(_) => e.into(),
        },
        e => e.into(),
    })?;
    if info.duplicate {
        return Ok(info);
    }
    let labels = TopicLabels {
        topic: topic.to_string(),
    };
    broker
        .metrics
        .produced_records
        .get_or_create(&labels)
        // Records, not offsets: a batch stored with gaps spans more.
        .inc_by(u64::from(batch.header().record_count));
    broker
        .metrics
        .produced_bytes
        .get_or_create(&labels)
        .inc_by(batch.bytes().len() as u64);
    Ok(info)
}

/// Waits until the batch is on disk when the ack or the topic's policy
/// needs it. No thread waits: the partition's flush threads run one flush
/// for every waiter (group commit), and this future awaits its end.
pub(crate) async fn make_durable(
    p: Partition,
    info: AppendInfo,
    durable: bool,
) -> ApiResult<AppendInfo> {
    if !(durable || p.flush_policy() == FlushPolicy::Always) {
        return Ok(info);
    }
    // A duplicate is durable once everything up to its last record is.
    p.wait_durable(info.last_offset + 1).await?;
    Ok(info)
}

/// What the schema check decided for a request's records.
pub(crate) enum Checked {
    /// Every record may be stored (or the topic is not bound).
    Valid,
    /// These records failed and go to the dead-letter topic `to`; the
    /// others are stored.
    DeadLetter {
        /// The dead-letter topic.
        to: String,
        /// The records that failed, in request order.
        invalid: Vec<crate::schemas::Invalid>,
    },
}

/// Checks records bound for `topic` against the subjects it is bound to
/// (docs/schemas.md, "Validation at the broker"), before anything of the
/// request is stored. `records` are (position in the request, key, value).
/// A topic that refuses invalid records fails the request at the first;
/// one that dead-letters them gets them all back.
/// Full validation parses every payload: it runs with this worker thread
/// handed over to blocking work, so other requests move to other workers.
pub(crate) fn check_schemas(
    broker: &Broker,
    topic: &str,
    records: impl Iterator<Item = (usize, Option<bytes::Bytes>, Option<bytes::Bytes>)>,
) -> ApiResult<Checked> {
    let Some(registry) = broker.schemas.get() else {
        return Ok(Checked::Valid);
    };
    let Some(binding) = registry.bound(topic) else {
        return Ok(Checked::Valid);
    };
    let first_only = binding.dead_letter_topic.is_none();
    let run = || registry.validate_with(&binding, records, first_only);
    let mut invalid = match binding.mode == crate::schemas::Mode::Full {
        true => crate::error::in_place_blocking(run),
        false => run(),
    };
    if invalid.is_empty() {
        return Ok(Checked::Valid);
    }
    match &binding.dead_letter_topic {
        Some(to) if invalid.len() <= crate::schemas::validate::MAX_INVALID => {
            Ok(Checked::DeadLetter {
                to: to.clone(),
                invalid,
            })
        }
        _ => Err(validation_failed(invalid.swap_remove(0))),
    }
}

fn validation_failed(e: crate::schemas::Invalid) -> ApiError {
    let mut err = ApiError::new(Reason::SchemaValidationFailed, e.to_string())
        .with("record_index", e.index.to_string())
        .with("field", e.field)
        .with("subject", e.subject.clone());
    if let Some(id) = e.schema_id {
        err = err.with("schema_id", id.to_string());
    }
    if !e.path.is_empty() {
        err = err.with("path", e.path.clone());
    }
    err
}

/// Checks a producer's batch completely: bounds, CRC, every record. A
/// batch in Brook's first format (from a client of an older build) is
/// encoded again in v2, the format every new batch is stored in.
pub(crate) fn parse_batch(bytes: bytes::Bytes) -> ApiResult<Batch> {
    let batch = Batch::parse(bytes).map_err(brook_storage::Error::from)?;
    batch
        .validate_records()
        .map_err(brook_storage::Error::from)?;
    Ok(batch.upgraded().map_err(brook_storage::Error::from)?)
}

/// The answer to a stored batch: `info`'s offsets, and what `diverted`
/// says went to the dead-letter topic.
fn response(info: AppendInfo, diverted: v1::ProduceResponse) -> v1::ProduceResponse {
    v1::ProduceResponse {
        base_offset: info.base_offset,
        last_offset: info.last_offset,
        log_end_offset: info.log_end_offset,
        duplicate: info.duplicate,
        ..diverted
    }
}

impl ProducerService {
    /// Checks and appends one request; the returned future completes its ack.
    /// A batch from an idempotent producer is checked against the partition's
    /// producer state inside the append; a retry of a stored batch is
    /// answered with its first offsets and not stored again.
    fn start_produce(
        &self,
        caller: &Caller,
        req: v1::ProduceRequest,
    ) -> ApiResult<impl Future<Output = Result<v1::ProduceResponse, Status>> + use<>> {
        self.broker
            .auth
            .authorize(caller, Operation::Write, ResourceType::Topic, &req.topic)?;
        let durable = wants_durable(req.acks)?;
        let p = self.broker.partition(&req.topic, req.partition)?;
        let batch = parse_batch(req.batch)?;
        let producer_id = batch.header().producer_id;
        if producer_id >= 0 {
            self.broker.check_producer_id(producer_id)?;
        }
        let batches = [&batch];
        let records = crate::schemas::validate::records_of(&batches, 0);
        let (batch, diverted) = match check_schemas(&self.broker, &req.topic, records)? {
            Checked::Valid => (batch, None),
            Checked::DeadLetter { to, invalid } => {
                let deadletter::Diverted { mut kept, sent } = deadletter::divert(
                    &self.broker,
                    &req.topic,
                    &p,
                    req.partition,
                    vec![batch],
                    &to,
                    &invalid,
                )?;
                let (batch, positions) = kept.pop().expect("one batch in, one out");
                let reasons = invalid.iter().map(|i| i.to_string()).collect();
                (batch, Some((to, positions, reasons, sent.pending)))
            }
        };
        // After the checks: a refused batch is the RPC span's error.
        let span = crate::otel::spans::produce(&req.topic, req.partition, &[&batch]);
        let info = append_now(&self.broker, &req.topic, &p, &batch)?;
        Ok(async move {
            let mut answer = v1::ProduceResponse::default();
            if let Some((to, positions, reasons, pending)) = diverted {
                for (dp, dinfo) in pending {
                    make_durable(dp, dinfo, durable).await?;
                }
                answer.dead_lettered = positions.into_iter().collect();
                answer.dead_letter_topic = to;
                answer.dead_letter_reasons = reasons;
            }
            let info = make_durable(p, info, durable).await?;
            Ok::<_, Status>(response(info, answer))
        }
        .instrument(span))
    }

    async fn publish_records(&self, req: v1::PublishRequest) -> ApiResult<v1::PublishResponse> {
        let durable = wants_durable(req.acks)?;
        if req.records.is_empty() {
            return Err(ApiError::invalid("publish request has no records"));
        }
        let topic = self.broker.topic(&req.topic)?;
        let records = req
            .records
            .iter()
            .enumerate()
            .map(|(i, r)| (i, r.key.clone(), r.value.clone()));
        let checked = check_schemas(&self.broker, &req.topic, records)?;
        let count = topic.partition_count();
        let max_batch = topic.config().partition.max_batch_bytes as usize;
        // Route every record, keeping request order within each partition.
        let mut routed: Vec<Vec<usize>> = vec![Vec::new(); count as usize];
        let mut partition_of = Vec::with_capacity(req.records.len());
        for (i, r) in req.records.iter().enumerate() {
            let p = match &r.key {
                Some(key) => partition_for_key(key, count),
                None => self.broker.next_round_robin(count),
            };
            routed[p as usize].push(i);
            partition_of.push(p);
        }
        let now = now_ms();
        let mut positions = vec![v1::RecordPosition::default(); req.records.len()];
        let mut pending = Vec::new();
        if let Checked::DeadLetter { to, invalid } = &checked {
            let leaving: Vec<deadletter::Leaving<'_>> = invalid
                .iter()
                .map(|inv| {
                    let r = &req.records[inv.index];
                    let headers = r.headers.iter().map(|h| (h.key.as_str(), h.value.as_ref()));
                    deadletter::Leaving::new(
                        inv,
                        partition_of[inv.index],
                        r.timestamp_ms.unwrap_or(now),
                        r.key.as_deref(),
                        r.value.as_deref(),
                        headers,
                    )
                })
                .collect();
            let sent = deadletter::write_now(&self.broker, &req.topic, to, &leaving)?;
            for (inv, (partition, offset)) in invalid.iter().zip(sent.positions) {
                positions[inv.index] = v1::RecordPosition {
                    partition,
                    offset,
                    dead_letter_topic: to.clone(),
                    dead_letter_reason: inv.to_string(),
                };
            }
            let gone: std::collections::HashSet<usize> = invalid.iter().map(|i| i.index).collect();
            for indexes in &mut routed {
                indexes.retain(|i| !gone.contains(i));
            }
            pending.extend(sent.pending);
        }
        for (pid, indexes) in routed.iter().enumerate().filter(|(_, ix)| !ix.is_empty()) {
            let partition = topic.partition(pid as u32)?;
            for chunk in chunk_by_size(&req.records, indexes, max_batch) {
                let mut b = BatchBuilder::new();
                for &i in &chunk {
                    let r = &req.records[i];
                    let headers: Vec<(&str, &[u8])> = r
                        .headers
                        .iter()
                        .map(|h| (h.key.as_str(), h.value.as_ref()))
                        .collect();
                    b.push(
                        r.timestamp_ms.unwrap_or(now),
                        r.key.as_deref(),
                        r.value.as_deref(),
                        &headers,
                    );
                }
                // Checked like a producer's batch: e.g. timestamps whose deltas overflow are refused.
                let batch = parse_batch(b.build(0))?;
                let info = append_now(&self.broker, &req.topic, &partition, &batch)?;
                for (j, &i) in chunk.iter().enumerate() {
                    positions[i] = v1::RecordPosition {
                        partition: pid as u32,
                        offset: info.base_offset + j as u64,
                        ..Default::default()
                    };
                }
                pending.push((partition.clone(), info));
            }
        }
        for (p, info) in pending {
            make_durable(p, info, durable).await?;
        }
        Ok(v1::PublishResponse { positions })
    }
}

/// What a published record weighs against a produce quota.
fn record_size(r: &v1::PublishRecord) -> usize {
    r.key.as_ref().map_or(0, |k| k.len())
        + r.value.as_ref().map_or(0, |v| v.len())
        + r.headers
            .iter()
            .map(|h| h.key.len() + h.value.len())
            .sum::<usize>()
}

/// Splits one partition's records into runs whose batches stay under `max_batch` bytes.
fn chunk_by_size(
    records: &[v1::PublishRecord],
    indexes: &[usize],
    max_batch: usize,
) -> Vec<Vec<usize>> {
    let mut chunks = vec![Vec::new()];
    let mut size = brook_protocol::batch::HEADER_LEN;
    for &i in indexes {
        let r = &records[i];
        let est = 32
            + r.key.as_ref().map_or(0, |k| k.len())
            + r.value.as_ref().map_or(0, |v| v.len())
            + r.headers
                .iter()
                .map(|h| h.key.len() + h.value.len() + 10)
                .sum::<usize>();
        let current = chunks.last_mut().expect("never empty");
        if !current.is_empty() && size + est > max_batch {
            chunks.push(Vec::new());
            size = brook_protocol::batch::HEADER_LEN;
        }
        size += est;
        chunks.last_mut().expect("never empty").push(i);
    }
    chunks
}

/// An ack of a streamed batch: when it started, its topic and partition, its result.
type PendingAck = Pin<
    Box<dyn Future<Output = (Instant, String, u32, Result<v1::ProduceResponse, Status>)> + Send>,
>;

type ProduceStream = Pin<Box<dyn Stream<Item = Result<v1::ProduceResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Producer for ProducerService {
    async fn produce(
        &self,
        req: Request<v1::ProduceRequest>,
    ) -> Result<Response<v1::ProduceResponse>, Status> {
        let ctx = RequestContext::of(&req);
        let caller = Caller::of(&req);
        let client = QuotaClient::of(&req);
        let req = req.into_inner();
        ctx.resource(&req.topic).partition(req.partition);
        // Refused before it is charged against the quota (start_produce
        // checks again, as for every batch of a stream).
        self.broker
            .auth
            .authorize(&caller, Operation::Write, ResourceType::Topic, &req.topic)?;
        self.broker
            .throttle(&client, Direction::Produce, || req.batch.len())
            .await;
        let ack = self.start_produce(&caller, req)?;
        Ok(Response::new(ack.await?))
    }

    type ProduceStreamStream = ProduceStream;

    async fn produce_stream(
        &self,
        req: Request<Streaming<v1::ProduceRequest>>,
    ) -> Result<Response<ProduceStream>, Status> {
        let client = QuotaClient::of(&req);
        let caller = Caller::of(&req);
        let mut inbound = req.into_inner();
        let (tx, rx) = mpsc::channel(STREAM_IN_FLIGHT);
        let service = ProducerService {
            broker: Arc::clone(&self.broker),
        };
        tokio::spawn(async move {
            // Appends happen in stream order as requests arrive; acks complete
            // in that same order (FuturesOrdered), so a durable ack never lets
            // a later batch overtake it.
            let mut acks: FuturesOrdered<PendingAck> = FuturesOrdered::new();
            let mut shutdown = service.broker.shutdown_signal();
            let (drop_after, mut appended) = (service.broker.config.debug_drop_stream_after, 0u64);
            let mut reading = true;
            loop {
                tokio::select! {
                    Some((started, topic, partition, ack)) = acks.next(), if !acks.is_empty() => {
                        let failed = ack.is_err();
                        record_message(&service.broker.metrics.requests, "ProduceStream", &topic, partition, started, &ack);
                        if tx.send(ack).await.is_err() || failed {
                            return;
                        }
                    }
                    msg = inbound.message(), if reading && acks.len() < STREAM_IN_FLIGHT => match msg {
                        Ok(Some(req)) => {
                            // Over its quota the stream waits here: it reads no
                            // further batch until the client's rate allows it.
                            service.broker.throttle(&client, Direction::Produce, || req.batch.len()).await;
                            let started = Instant::now();
                            let (topic, partition) = (req.topic.clone(), req.partition);
                            appended += 1;
                            if drop_after.is_some_and(|n| appended > n) {
                                // Fail point: the batch is stored, its ack is lost.
                                let _ = service.start_produce(&caller, req);
                                let _ = tx.send(Err(ApiError::new(crate::error::Reason::BrokerStopping, "debug fail point: stream dropped after an append").into())).await;
                                return;
                            }
                            let ack: Pin<Box<dyn Future<Output = _> + Send>> = match service.start_produce(&caller, req) {
                                Ok(ack) => Box::pin(ack),
                                Err(e) => {
                                    // Nothing after a failed batch is appended.
                                    reading = false;
                                    Box::pin(std::future::ready(Err(e.into())))
                                }
                            };
                            acks.push_back(Box::pin(async move { (started, topic, partition, ack.await) }));
                        }
                        Ok(None) => reading = false,
                        Err(status) => {
                            let _ = tx.send(Err(crate::tonic_status::correct(status))).await;
                            return;
                        }
                    },
                    _ = async { let _ = shutdown.wait_for(|s| *s).await; }, if acks.is_empty() => return,
                    else => return,
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }

    async fn init_producer(
        &self,
        req: Request<v1::InitProducerRequest>,
    ) -> Result<Response<v1::InitProducerResponse>, Status> {
        // Kafka's rule: whoever may write some topic may be an idempotent producer.
        self.broker.auth.authorize_some(
            &Caller::of(&req),
            Operation::Write,
            ResourceType::Topic,
        )?;
        let r = self
            .broker
            .allocate_producer_id()
            .map(|producer_id| v1::InitProducerResponse {
                producer_id,
                producer_epoch: 0,
            });
        Ok(Response::new(r?))
    }

    async fn publish(
        &self,
        req: Request<v1::PublishRequest>,
    ) -> Result<Response<v1::PublishResponse>, Status> {
        RequestContext::of(&req).resource(&req.get_ref().topic);
        self.broker
            .authorize_topic(&req, Operation::Write, &req.get_ref().topic)?;
        let bytes = || req.get_ref().records.iter().map(record_size).sum();
        self.broker
            .throttle(&QuotaClient::of(&req), Direction::Produce, bytes)
            .await;
        let r = self.publish_records(req.into_inner()).await;
        Ok(Response::new(r?))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use brook_protocol::batch::{Batch, BatchBuilder};
    use brook_storage::{Log, TopicConfig};

    use super::*;
    use crate::config::ServeArgs;
    use crate::groups::Groups;

    #[test]
    fn an_append_racing_a_topic_deletion_is_not_found_not_unavailable() {
        let dir = tempfile::tempdir().unwrap();
        let config = ServeArgs {
            data_dir: Some(dir.path().into()),
            ..Default::default()
        }
        .resolve()
        .unwrap();
        let auth = crate::auth::Auth::open(config.auth.clone(), config.data_dir.clone()).unwrap();
        let broker = Broker::new(config, Arc::new(auth));
        let log = Arc::new(Log::open(dir.path()).unwrap());
        let groups = Arc::new(
            Groups::open(
                dir.path().join("~groups"),
                brook_storage::FlushPolicy::Never,
            )
            .unwrap(),
        );
        broker.set_ready(Arc::clone(&log), groups);
        let topic = TopicConfig {
            partitions: 1,
            partition: Default::default(),
        };
        log.create_topic("orders", topic).unwrap();
        // A produce looked the partition up, then the topic was deleted.
        let p = broker.partition("orders", 0).unwrap();
        log.delete_topic("orders").unwrap();
        let mut b = BatchBuilder::new();
        b.push(1, None, Some(b"OrderPlaced"), &[]);
        let batch = Batch::parse(b.build(0)).unwrap();
        let err = append_now(&broker, "orders", &p, &batch).unwrap_err();
        assert_eq!(err.code(), tonic::Code::NotFound, "{}", err.message());
    }
}
