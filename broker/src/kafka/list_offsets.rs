//! ListOffsets: a partition's earliest (-2) or latest (-1) offset, or the
//! first offset whose record's timestamp is at or after a time.

use brook_storage::Partition;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::list_offsets_response::*;
use kafka_protocol::messages::*;

use super::connection::Session;
use super::errors;
use crate::auth::acl::{Operation, ResourceType};

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;

pub(super) fn handle(s: &Session, req: ListOffsetsRequest, version: i16) -> ListOffsetsResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let allowed =
                s.broker
                    .auth
                    .authorize(&s.caller, Operation::Describe, ResourceType::Topic, &name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let mut r = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index);
                    let found = allowed.clone().and_then(|()| {
                        let i = u32::try_from(p.partition_index).map_err(|_| {
                            crate::error::ApiError::new(
                                crate::error::Reason::PartitionNotFound,
                                "negative partition",
                            )
                        })?;
                        s.broker.partition(&name, i)
                    });
                    match found
                        .map_err(|e| errors::code(&e))
                        .and_then(|part| lookup(&part, p.timestamp))
                    {
                        Ok((offset, timestamp)) => {
                            r.offset = offset;
                            r.timestamp = timestamp;
                            if version >= 4 {
                                r.leader_epoch = 0;
                            }
                        }
                        Err(code) => r.error_code = code,
                    }
                    r
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}

/// The offset (and its record's timestamp, or -1) for `timestamp`.
fn lookup(p: &Partition, timestamp: i64) -> Result<(i64, i64), i16> {
    match timestamp {
        LATEST => Ok((p.high_watermark() as i64, -1)),
        EARLIEST => Ok((p.log_start_offset() as i64, -1)),
        t if t >= 0 => match p.offset_for_timestamp(t) {
            // No record that late: Kafka answers -1 for both.
            Ok(None) => Ok((-1, -1)),
            Ok(Some(offset)) => Ok((offset as i64, record_timestamp(p, offset).unwrap_or(t))),
            Err(e) => Err(errors::code(&e.into())),
        },
        _ => Err(ResponseError::UnsupportedVersion.code()),
    }
}

/// The timestamp of the record at `offset`.
fn record_timestamp(p: &Partition, offset: u64) -> Option<i64> {
    let read = p.read(offset, 1).ok()?;
    brook_protocol::batch::batches(read.batches)
        .flatten()
        .flat_map(|b| b.records().flatten().collect::<Vec<_>>())
        .find(|r| r.offset == offset)
        .map(|r| r.timestamp)
}
