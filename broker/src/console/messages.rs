//! `/api/v1/topics/{topic}/...messages` and `/search`: a partition's
//! records decoded for people, a bounded search by key or header, and a
//! test message. Reads go through the Consumer service's fetch (its ACL
//! check, its quota, its metrics), a test message through Publish.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use base64::Engine;
use brook_protocol::v1;
use brook_protocol::v1::consumer_server::Consumer;
use brook_protocol::v1::producer_server::Producer;
use serde::Deserialize;
use serde_json::{Value, json};

use super::call::{ApiResult, Failure, Params, Who, body, number, ok, param, reply};
use crate::auth::acl::{Operation, ResourceType};
use crate::consume::ConsumerService;
use crate::error::{ApiError, Reason, in_place_blocking};
use crate::state::Broker;
use brook_storage::Partition;

/// Most messages one browse returns.
const MAX_LIMIT: usize = 500;
/// Most records one search reads, over all its partitions.
const MAX_SCAN: u64 = 100_000;
/// The most JSON of messages one answer carries (at least one message): a
/// page of large records stops early, with `next_offset` where to go on.
const MAX_RESPONSE_BYTES: usize = 4 << 20;
/// Bytes asked per fetch while browsing or searching.
const FETCH_BYTES: u32 = 1 << 20;

/// Bytes as text when they are UTF-8, else `{"base64": ...}`.
fn bytes_json(b: Option<&[u8]>) -> Value {
    match b {
        None => Value::Null,
        Some(b) => match std::str::from_utf8(b) {
            Ok(text) => json!(text),
            Err(_) => json!({"base64": base64::engine::general_purpose::STANDARD.encode(b)}),
        },
    }
}

/// A record as the API shows it.
fn message_json(partition: u32, r: &v1::Record) -> Value {
    json!({
        "partition": partition,
        "offset": r.offset,
        "timestamp_ms": r.timestamp_ms,
        "key": bytes_json(r.key.as_deref()),
        "value": bytes_json(r.value.as_deref()),
        "headers": r.headers.iter().map(|h| json!({
            "key": h.key,
            "value": bytes_json(Some(&h.value)),
        })).collect::<Vec<_>>(),
    })
}

/// One fetch: the records at or after `offset`, the offset to ask next,
/// and the partition's log start and end.
async fn fetch(
    broker: &Arc<Broker>,
    who: &Who,
    topic: &str,
    partition: u32,
    offset: u64,
) -> ApiResult<v1::FetchResponse> {
    let service = ConsumerService::new(Arc::clone(broker));
    let resp = service
        .fetch(who.request(v1::FetchRequest {
            topic: topic.to_string(),
            partition,
            offset,
            max_bytes: FETCH_BYTES,
            min_bytes: 0,
            max_wait_ms: 0,
            decoded: true,
        }))
        .await?;
    Ok(resp.into_inner())
}

/// Reads `partition` from `from` up to offset `to`, calling `keep` on each
/// record until it returns false; returns the offset to read next. When
/// retention removes records under the reader, it goes on from the new log
/// start rather than failing halfway through a page.
async fn scan(
    broker: &Arc<Broker>,
    who: &Who,
    (topic, partition, log): (&str, u32, &Partition),
    (from, to): (u64, u64),
    mut keep: impl FnMut(&v1::Record) -> bool,
) -> ApiResult<u64> {
    let mut next = from.max(log.log_start_offset());
    while next < to {
        let r = match fetch(broker, who, topic, partition, next).await {
            Ok(r) => r,
            Err(e) if e.reason() == Reason::OffsetOutOfRange.as_str() => {
                let start = log.log_start_offset();
                match start > next {
                    true => {
                        next = start;
                        continue;
                    }
                    false => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        for rec in &r.records {
            if rec.offset >= to {
                return Ok(rec.offset);
            }
            if !keep(rec) {
                return Ok(rec.offset + 1);
            }
        }
        // Nothing more (the end, or records the fetch skips over).
        if r.next_offset <= next {
            break;
        }
        next = r.next_offset;
    }
    Ok(next.min(to))
}

/// A message's size in the answer: its JSON (base64 and escapes make it
/// larger than the record).
fn json_bytes(message: &Value) -> usize {
    serde_json::to_vec(message).map_or(0, |v| v.len())
}

/// `GET /api/v1/topics/{topic}/partitions/{partition}/messages`.
pub async fn browse(
    State(broker): State<Arc<Broker>>,
    who: Who,
    Path((topic, partition)): Path<(String, String)>,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let partition: u32 = number(&partition, "partition")?;
    let limit = param::<usize>(&params, "limit")?
        .unwrap_or(50)
        .clamp(1, MAX_LIMIT);
    broker
        .auth
        .authorize(&who.0, Operation::Read, ResourceType::Topic, &topic)?;
    let p = broker.topic(&topic)?.partition(partition)?;
    let (start, end) = (p.log_start_offset(), p.high_watermark());
    let from = match (
        param::<u64>(&params, "offset")?,
        param::<i64>(&params, "timestamp_ms")?,
    ) {
        (Some(_), Some(_)) => {
            return Err(Failure::invalid("give offset or timestamp_ms, not both"));
        }
        // Below the log start (retention moved it): from the log start.
        (Some(offset), None) => offset.max(start),
        (None, Some(t)) => in_place_blocking(|| p.offset_for_timestamp(t))?.unwrap_or(end),
        (None, None) => end.saturating_sub(limit as u64).max(start),
    };
    let (mut messages, mut bytes) = (Vec::new(), 0usize);
    let next = scan(&broker, &who, (&topic, partition, &p), (from, end), |r| {
        let m = message_json(partition, r);
        bytes += json_bytes(&m);
        messages.push(m);
        messages.len() < limit && bytes < MAX_RESPONSE_BYTES
    })
    .await?;
    ok(json!({
        "partition": partition,
        "log_start_offset": p.log_start_offset(),
        "log_end_offset": p.high_watermark(),
        "next_offset": next,
        "messages": messages,
    }))
}

/// What a search looks for.
enum Wanted {
    Key(Vec<u8>),
    Header {
        name: String,
        value: Option<Vec<u8>>,
    },
}

impl Wanted {
    fn matches(&self, r: &v1::Record) -> bool {
        match self {
            Wanted::Key(k) => r.key.as_deref() == Some(k.as_slice()),
            Wanted::Header { name, value } => r.headers.iter().any(|h| {
                h.key == *name
                    && value
                        .as_ref()
                        .is_none_or(|v| h.value.as_ref() == v.as_slice())
            }),
        }
    }
}

/// `GET /api/v1/topics/{topic}/search`: at most `scan_limit` records per
/// partition, by default the last ones.
pub async fn search(
    State(broker): State<Arc<Broker>>,
    who: Who,
    Path(topic): Path<String>,
    Query(params): Query<Params>,
) -> ApiResult<Response> {
    let wanted = match (params.get("key"), params.get("header")) {
        (Some(k), None) => Wanted::Key(k.as_bytes().to_vec()),
        (None, Some(h)) if !h.is_empty() => Wanted::Header {
            name: h.clone(),
            // Empty or absent: any value.
            value: params
                .get("header_value")
                .filter(|v| !v.is_empty())
                .map(|v| v.as_bytes().to_vec()),
        },
        _ => {
            return Err(Failure::invalid(
                "search by key (key=K) or by header (header=H, optionally header_value=V)",
            ));
        }
    };
    let scan_limit = param::<u64>(&params, "scan_limit")?
        .unwrap_or(10_000)
        .clamp(1, MAX_SCAN);
    let limit = param::<usize>(&params, "limit")?
        .unwrap_or(100)
        .clamp(1, 1000);
    let from_offset = param::<u64>(&params, "from_offset")?;
    broker
        .auth
        .authorize(&who.0, Operation::Read, ResourceType::Topic, &topic)?;
    let t = broker.topic(&topic)?;
    let ids: Vec<u32> = match param::<u32>(&params, "partition")? {
        Some(id) => vec![id],
        None => (0..t.partition_count()).collect(),
    };
    let (mut matches, mut ranges, mut scanned, mut bytes) = (Vec::new(), Vec::new(), 0u64, 0usize);
    for id in ids {
        let p = t.partition(id)?;
        let (start, end) = (p.log_start_offset(), p.high_watermark());
        // One request reads at most MAX_SCAN records, whatever the partitions.
        let n = scan_limit.min(MAX_SCAN - scanned);
        let from = from_offset
            .unwrap_or_else(|| end.saturating_sub(n))
            .max(start);
        let to = from.saturating_add(n).min(end);
        let mut read = 0u64;
        let reached = scan(&broker, &who, (&topic, id, &p), (from, to), |r| {
            read += 1;
            if wanted.matches(r) {
                let m = message_json(id, r);
                bytes += json_bytes(&m);
                matches.push(m);
            }
            matches.len() < limit && bytes < MAX_RESPONSE_BYTES
        })
        .await?;
        scanned += read;
        ranges.push(json!({"partition": id, "from_offset": from, "to_offset": reached.max(from)}));
        if matches.len() >= limit || bytes >= MAX_RESPONSE_BYTES || scanned >= MAX_SCAN {
            break;
        }
    }
    ok(json!({
        "scanned": scanned,
        "matches": matches,
        "partitions": ranges,
    }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct HeaderBody {
    key: String,
    value: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ProduceBody {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    headers: Vec<HeaderBody>,
}

/// `POST /api/v1/topics/{topic}/messages`: one record, routed by its key.
pub async fn produce(
    State(broker): State<Arc<Broker>>,
    who: Who,
    Path(topic): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let b: ProduceBody = body(&bytes)?;
    let record = v1::PublishRecord {
        key: b.key.map(Bytes::from),
        value: b.value.map(Bytes::from),
        headers: b
            .headers
            .into_iter()
            .map(|h| v1::Header {
                key: h.key,
                value: Bytes::from(h.value),
            })
            .collect(),
        timestamp_ms: None,
    };
    let service = crate::produce::ProducerService::new(Arc::clone(&broker));
    let resp = service
        .publish(who.request(v1::PublishRequest {
            topic,
            records: vec![record],
            acks: v1::Acks::Durable as i32,
        }))
        .await?
        .into_inner();
    let Some(at) = resp.positions.first() else {
        return Err(ApiError::internal("the publish answered no position").into());
    };
    Ok(reply(
        StatusCode::CREATED,
        &json!({
            "partition": at.partition,
            "offset": at.offset,
            "dead_letter_topic": at.dead_letter_topic,
            "dead_letter_reason": at.dead_letter_reason,
        }),
    ))
}
