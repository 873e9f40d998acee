//! Produce: each partition's batch is checked (CRC-32C, every record,
//! the idempotent producer's sequence) and appended as it arrived; the
//! answer waits for the disk when `acks=-1` asks for it (or the topic
//! flushes every write), as the gRPC `ACKS_DURABLE` does.

use brook_protocol::batch::peek_batch_len;
use brook_storage::AppendInfo;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::produce_response::*;
use kafka_protocol::messages::*;

use super::connection::Session;
use super::errors;
use crate::auth::acl::{Operation, ResourceType};
use crate::error::{ApiError, ApiResult};
use crate::produce::{Checked, append_now, check_schemas, make_durable, parse_batch};
use crate::schemas::deadletter;

/// What a produce request gets.
pub(super) enum Answer {
    /// The response.
    Reply(ProduceResponse),
    /// Nothing: `acks=0`, all stored.
    Silent,
    /// `acks=0` and a partition failed: as Kafka, the connection is closed,
    /// so that the client refreshes its metadata and learns of it.
    Close(String),
}

/// Answers a produce request.
pub(super) async fn handle(s: &Session, req: ProduceRequest, version: i16) -> Answer {
    let silent = req.acks == 0;
    let durable = req.acks == -1;
    // The same byte-rate quota as gRPC produces: the request waits its share.
    let bytes = || {
        req.topic_data
            .iter()
            .flat_map(|t| &t.partition_data)
            .map(|p| p.records.as_ref().map_or(0, |r| r.len()))
            .sum()
    };
    let client = crate::state::QuotaClient::new(s.caller.clone(), s.peer.ip());
    s.broker
        .throttle(&client, crate::quota::Direction::Produce, bytes)
        .await;
    let refuse_all = if req.transactional_id.as_ref().is_some_and(|t| !t.is_empty()) {
        // Transactions are not supported (docs/kafka.md).
        Some(ResponseError::TransactionalIdAuthorizationFailed.code())
    } else if !matches!(req.acks, -1..=1) {
        Some(ResponseError::InvalidRequiredAcks.code())
    } else {
        None
    };
    let mut pending = Vec::new();
    for topic in req.topic_data {
        let name = topic.name.0.to_string();
        for part in topic.partition_data {
            let index = part.index;
            let started = match refuse_all {
                Some(code) => Err((code, None)),
                None => start(s, &name, index, part.records).map_err(|e| {
                    let (code, message) = errors::with_message(&e);
                    (code, message)
                }),
            };
            pending.push((name.clone(), index, started));
        }
    }
    let mut responses: Vec<TopicProduceResponse> = Vec::new();
    for (name, index, started) in pending {
        let result = match started {
            Ok((p, info, dead_letters)) => {
                let mut stored = Ok(());
                for (dp, dinfo) in dead_letters {
                    stored = stored.and(make_durable(dp, dinfo, durable).await.map(|_| ()));
                }
                match stored {
                    Ok(()) => make_durable(p, info, durable).await,
                    Err(e) => Err(e),
                }
                .map_err(|e| errors::with_message(&e))
            }
            Err(e) => Err(e),
        };
        let mut r = PartitionProduceResponse::default()
            .with_index(index)
            .with_log_append_time_ms(-1);
        match result {
            Ok(info) => {
                r.base_offset = info.base_offset as i64;
                if version >= 5 {
                    r.log_start_offset = s
                        .broker
                        .partition(&name, index as u32)
                        .map_or(-1, |p| p.log_start_offset() as i64);
                }
            }
            Err((code, message)) => {
                r.error_code = code;
                r.base_offset = -1;
                if version >= 8 {
                    r.error_message = message;
                }
            }
        }
        match responses.last_mut() {
            Some(t) if t.name.0.as_str() == name => t.partition_responses.push(r),
            _ => responses.push(
                TopicProduceResponse::default()
                    .with_name(TopicName(name.into()))
                    .with_partition_responses(vec![r]),
            ),
        }
    }
    if silent {
        let failed = responses
            .iter()
            .flat_map(|t| t.partition_responses.iter().map(move |p| (t, p)))
            .find(|(_, p)| p.error_code != 0);
        return match failed {
            None => Answer::Silent,
            Some((t, p)) => Answer::Close(format!(
                "acks=0 produce to {}/{} failed with error {}",
                t.name.0.as_str(),
                p.index,
                p.error_code
            )),
        };
    }
    Answer::Reply(ProduceResponse::default().with_responses(responses))
}

/// A partition's append and the dead letters written for it, for the wait
/// for the disk.
type Started = (
    brook_storage::Partition,
    AppendInfo,
    Vec<(brook_storage::Partition, AppendInfo)>,
);

/// Checks and appends one partition's records (invalid ones to the topic's
/// dead-letter topic, if it has one); what was stored, for the wait for
/// the disk.
fn start(
    s: &Session,
    topic: &str,
    index: i32,
    records: Option<bytes::Bytes>,
) -> ApiResult<Started> {
    s.broker
        .auth
        .authorize(&s.caller, Operation::Write, ResourceType::Topic, topic)?;
    let partition = u32::try_from(index)
        .map_err(|_| ApiError::invalid(format!("partition {index} is negative")))?;
    let p = s.broker.partition(topic, partition)?;
    let mut records = records.unwrap_or_default();
    if records.is_empty() {
        return Err(ApiError::invalid("the partition's records are empty"));
    }
    // Kafka clients send one batch per partition; more are taken in order,
    // every one checked before any is stored, so a bad one stores nothing.
    let mut checked = Vec::new();
    while !records.is_empty() {
        let len = peek_batch_len(&records, u32::MAX).map_err(brook_storage::Error::from)?;
        if len > records.len() {
            return Err(brook_storage::Error::from(
                brook_protocol::batch::DecodeError::Truncated {
                    needed: len,
                    available: records.len(),
                },
            )
            .into());
        }
        let batch = parse_batch(records.split_to(len))?;
        let producer_id = batch.header().producer_id;
        if producer_id >= 0 {
            s.broker.check_producer_id(producer_id)?;
        }
        checked.push(batch);
    }
    let batches: Vec<&brook_protocol::batch::Batch> = checked.iter().collect();
    // Kafka clients put no trace context in the protocol; an instrumented
    // one puts it in the records' headers.
    let _span = crate::otel::spans::produce(topic, partition, &batches).entered();
    let records = crate::schemas::validate::records_of(&batches, 0);
    let mut dead_letters = Vec::new();
    if let Checked::DeadLetter { to, invalid } = check_schemas(&s.broker, topic, records)? {
        // A Kafka client cannot be told which records went: the answer is
        // the batch's offsets, the dead-lettered ones gaps among them.
        let diverted = deadletter::divert(&s.broker, topic, &p, partition, checked, &to, &invalid)?;
        checked = diverted.kept.into_iter().map(|(b, _)| b).collect();
        dead_letters = diverted.sent.pending;
    }
    let mut first: Option<u64> = None;
    let mut last = None;
    for batch in &checked {
        let info = append_now(&s.broker, topic, &p, batch)?;
        first.get_or_insert(info.base_offset);
        last = Some(info);
    }
    let (Some(first), Some(last)) = (first, last) else {
        return Err(ApiError::invalid("the partition's records hold no batch"));
    };
    // The answer names the first offset; durability waits for the last.
    Ok((
        p,
        AppendInfo {
            base_offset: first,
            ..last
        },
        dead_letters,
    ))
}
