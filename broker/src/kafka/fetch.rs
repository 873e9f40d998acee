//! Fetch: stored batches as they are, from each partition asked for, with
//! Kafka's long poll (`max_wait_ms`, `min_bytes`) and byte limits
//! (`max_bytes`, `partition_max_bytes`; the first batch is returned whole
//! even if larger, as KIP-74). There are no fetch sessions (KIP-227): the
//! answer's session id 0 tells the client to send full requests.
//!
//! Batches of Brook's first format (magic 1, written before v2) are encoded
//! again as v2 on the way out: Kafka clients read v2 only.

use std::time::Duration;

use brook_protocol::batch::{MAGIC_V1, batches, headers};
use brook_storage::Partition;
use bytes::{Bytes, BytesMut};
use futures_util::future::select_all;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::fetch_response::*;
use kafka_protocol::messages::*;

use super::connection::Session;
use super::errors;
use crate::auth::acl::{Operation, ResourceType};
use crate::consume::{count_fetched, read_off_worker};
use crate::error::ApiResult;

/// One partition asked for, resolved once for every read of the long poll.
struct Wanted {
    topic: String,
    partition: i32,
    offset: i64,
    max_bytes: usize,
    found: Result<Partition, i16>,
}

pub(super) async fn handle(s: &Session, req: FetchRequest, _version: i16) -> FetchResponse {
    let wait =
        Duration::from_millis(req.max_wait_ms.max(0) as u64).min(s.broker.config.max_fetch_wait);
    let deadline = tokio::time::Instant::now() + wait;
    let mut wanted = Vec::new();
    for t in req.topics {
        let topic = t.topic.0.to_string();
        let allowed =
            s.broker
                .auth
                .authorize(&s.caller, Operation::Read, ResourceType::Topic, &topic);
        for p in t.partitions {
            let found = match &allowed {
                Err(e) => Err(errors::code(e)),
                Ok(()) => u32::try_from(p.partition)
                    .map_err(|_| ResponseError::UnknownTopicOrPartition.code())
                    .and_then(|i| s.broker.partition(&topic, i).map_err(|e| errors::code(&e))),
            };
            wanted.push(Wanted {
                topic: topic.clone(),
                partition: p.partition,
                offset: p.fetch_offset,
                // As gRPC fetches: never more than --max-fetch-bytes a partition.
                max_bytes: (p.partition_max_bytes.max(0) as usize)
                    .min(s.broker.config.max_fetch_bytes as usize),
                found,
            });
        }
    }
    let max_total =
        (req.max_bytes.max(0) as usize).min(s.broker.config.max_fetch_bytes as usize * 16);
    let min_bytes = req.min_bytes.max(0) as usize;
    // Subscribed before the first read, so no append in between goes unseen.
    let mut watchers: Vec<_> = wanted
        .iter()
        .filter_map(|w| w.found.as_ref().ok().map(Partition::watch_high_watermark))
        .collect();
    let mut shutdown = s.broker.shutdown_signal();
    let mut stopping = false;
    loop {
        let (responses, bytes, failed) = read_all(&wanted, max_total).await;
        let done = stopping
            || failed
            || bytes >= min_bytes.max(1)
            || min_bytes == 0
            || watchers.is_empty()
            || tokio::time::Instant::now() >= deadline;
        if done {
            for t in &responses {
                for p in &t.partitions {
                    if let Some(r) = &p.records {
                        count_fetched(&s.broker, t.topic.0.as_str(), r);
                    }
                }
            }
            let resp = FetchResponse::default().with_responses(responses);
            // The same byte-rate quota as gRPC fetches: the answer waits its share.
            let client = crate::state::QuotaClient::new(s.caller.clone(), s.peer.ip());
            let size = || {
                resp.responses
                    .iter()
                    .flat_map(|t| &t.partitions)
                    .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
                    .sum()
            };
            s.broker
                .throttle(&client, crate::quota::Direction::Fetch, size)
                .await;
            return resp;
        }
        let changed = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
        tokio::select! {
            _ = changed => {}
            _ = tokio::time::sleep_until(deadline) => {}
            // Answer with what there is now: the broker is stopping.
            _ = shutdown.wait_for(|s| *s) => stopping = true,
        }
    }
}

/// Reads every partition once: the responses in request order, the bytes
/// they carry, and whether any partition has an error (answered at once).
async fn read_all(
    wanted: &[Wanted],
    max_total: usize,
) -> (Vec<FetchableTopicResponse>, usize, bool) {
    let mut responses: Vec<FetchableTopicResponse> = Vec::new();
    let mut total = 0usize;
    let mut failed = false;
    for w in wanted {
        let mut data = PartitionData::default().with_partition_index(w.partition);
        match &w.found {
            Err(code) => {
                data.error_code = *code;
                data.high_watermark = -1;
                failed = true;
            }
            Ok(p) => {
                data.high_watermark = p.high_watermark() as i64;
                data.last_stable_offset = data.high_watermark;
                data.log_start_offset = p.log_start_offset() as i64;
                // Once the total is spent, the other partitions answer empty.
                let room = if total == 0 {
                    w.max_bytes.max(1)
                } else {
                    w.max_bytes.min(max_total.saturating_sub(total))
                };
                match read_one(p, w.offset, room).await {
                    Ok(records) => {
                        total += records.len();
                        data.records = Some(records);
                    }
                    Err(code) => {
                        data.error_code = code;
                        data.records = Some(Bytes::new());
                        failed = true;
                    }
                }
            }
        }
        match responses.last_mut() {
            Some(t) if t.topic.0.as_str() == w.topic => t.partitions.push(data),
            _ => responses.push(
                FetchableTopicResponse::default()
                    .with_topic(TopicName(w.topic.clone().into()))
                    .with_partitions(vec![data]),
            ),
        }
    }
    (responses, total, failed)
}

/// The batches from `offset`, at most `room` bytes but at least one batch.
async fn read_one(p: &Partition, offset: i64, room: usize) -> Result<Bytes, i16> {
    let out_of_range = ResponseError::OffsetOutOfRange.code();
    let offset = u64::try_from(offset).map_err(|_| out_of_range)?;
    if offset < p.log_start_offset() || offset > p.log_end_offset() {
        return Err(out_of_range);
    }
    if room == 0 {
        return Ok(Bytes::new());
    }
    let read: ApiResult<_> = read_off_worker(p, offset, room).await;
    let read = read.map_err(|e| errors::code(&e))?;
    upgraded(read.batches).map_err(|e| errors::code(&e))
}

/// `buf` with any batch of the first format encoded again as v2.
fn upgraded(buf: Bytes) -> ApiResult<Bytes> {
    if !headers(&buf).any(|h| h.magic == MAGIC_V1) {
        return Ok(buf);
    }
    let mut out = BytesMut::with_capacity(buf.len() + buf.len() / 8);
    for batch in batches(buf) {
        let batch = batch.map_err(brook_storage::Error::from)?;
        let batch = batch.upgraded().map_err(brook_storage::Error::from)?;
        out.extend_from_slice(batch.bytes());
    }
    Ok(out.freeze())
}
