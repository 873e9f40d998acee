//! Dead-lettering records that fail their topic's schema (a topic bound
//! with `on_invalid` `dead-letter`): they are written to the dead-letter
//! topic, key, value and headers kept and headers added that say where they
//! were going and why they failed, and the rest of the request is stored.
//!
//! The dead letters are appended first, the valid records second: a crash
//! or failure between them fails the request, and its retry writes the
//! dead letters again (at least once in the dead-letter topic, never lost).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use brook_protocol::batch::{Batch, BatchBuilder};
use brook_protocol::partitioner::partition_for_key;
use brook_storage::{AppendInfo, Partition, Topic, TopicConfig, now_ms};

use super::Invalid;
use crate::error::{ApiError, ApiResult, Reason};
use crate::metrics::TopicLabels;
use crate::produce::append_now;
use crate::state::Broker;

/// Headers added to a dead-lettered record.
pub mod headers {
    /// The topic it was produced to.
    pub const TOPIC: &str = "brook-invalid-topic";
    /// The partition it was produced to.
    pub const PARTITION: &str = "brook-invalid-partition";
    /// `value` or `key`: which of them failed.
    pub const FIELD: &str = "brook-invalid-field";
    /// The subject it had to follow.
    pub const SUBJECT: &str = "brook-invalid-subject";
    /// The schema id it carried, if it carried one.
    pub const SCHEMA_ID: &str = "brook-invalid-schema-id";
    /// Where in the payload (a JSON pointer), if the failure is about a place.
    pub const PATH: &str = "brook-invalid-path";
    /// What was wrong.
    pub const REASON: &str = "brook-invalid-reason";
    /// When the broker refused it (ms since the Unix epoch).
    pub const TIME: &str = "brook-invalid-time-ms";
}

/// Bytes of a dead-letter batch before another is started: well under any
/// topic's `max_batch_bytes`.
const BATCH_BYTES: usize = 256 << 10;

/// A record that failed, on its way to the dead-letter topic.
pub(crate) struct Leaving<'r> {
    /// Why.
    pub invalid: &'r Invalid,
    /// The partition it was produced to.
    pub partition: u32,
    /// Its timestamp (kept).
    pub timestamp: i64,
    /// Its key (kept).
    pub key: Option<&'r [u8]>,
    /// Its value (kept).
    pub value: Option<&'r [u8]>,
    /// Its headers (kept, the broker's added after them).
    pub headers: Vec<(&'r str, &'r [u8])>,
}

impl<'r> Leaving<'r> {
    /// A record produced to `partition` that failed for `invalid`.
    pub(crate) fn new(
        invalid: &'r Invalid,
        partition: u32,
        timestamp: i64,
        key: Option<&'r [u8]>,
        value: Option<&'r [u8]>,
        headers: impl Iterator<Item = (&'r str, &'r [u8])>,
    ) -> Leaving<'r> {
        Leaving {
            invalid,
            partition,
            timestamp,
            key,
            value,
            headers: headers.collect(),
        }
    }
}

/// Where the dead letters went, in the order given, and the appends whose
/// durability the request's answer waits for.
pub(crate) struct Sent {
    /// (partition, offset) in the dead-letter topic of each record.
    pub positions: Vec<(u32, u64)>,
    /// Each append, for the wait for the disk.
    pub pending: Vec<(Partition, AppendInfo)>,
}

/// Appends `leaving` to `dlq` (created with `source`'s partition count if it
/// does not exist) without waiting for the disk. A record with a key goes
/// to the key's partition there; one without, to the partition number it
/// was produced to.
pub(crate) fn write_now(
    broker: &Broker,
    source: &str,
    dlq: &str,
    leaving: &[Leaving<'_>],
) -> ApiResult<Sent> {
    let topic = dlq_topic(broker, source, dlq)?;
    let count = topic.partition_count();
    let now = now_ms();
    let mut by_partition: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, l) in leaving.iter().enumerate() {
        let p = match l.key {
            Some(key) => partition_for_key(key, count),
            None => l.partition % count,
        };
        by_partition.entry(p).or_default().push(i);
    }
    let mut positions = vec![(0, 0); leaving.len()];
    let mut pending = Vec::new();
    for (pid, indexes) in by_partition {
        let partition = topic.partition(pid)?;
        let mut chunk: Vec<usize> = Vec::new();
        let mut b = BatchBuilder::new();
        for (n, &i) in indexes.iter().enumerate() {
            push(&mut b, source, &leaving[i], now);
            chunk.push(i);
            if b.size_bytes() >= BATCH_BYTES || n + 1 == indexes.len() {
                let built = std::mem::take(&mut b);
                // Checked as a producer's batch: timestamps far apart, say,
                // are refused rather than stored with wrapped deltas.
                let batch = crate::produce::parse_batch(built.build(0))?;
                let info = append_now(broker, dlq, &partition, &batch)?;
                for (j, &i) in chunk.iter().enumerate() {
                    positions[i] = (pid, info.base_offset + j as u64);
                }
                chunk.clear();
                pending.push((partition.clone(), info));
            }
        }
    }
    broker
        .metrics
        .schema_dead_lettered
        .get_or_create(&TopicLabels {
            topic: source.to_string(),
        })
        .inc_by(leaving.len() as u64);
    Ok(Sent { positions, pending })
}

fn push(b: &mut BatchBuilder, source: &str, l: &Leaving<'_>, now: i64) {
    let inv = l.invalid;
    let partition = l.partition.to_string();
    let schema_id = inv.schema_id.map(|id| id.to_string());
    let time = now.to_string();
    let mut headers = l.headers.clone();
    headers.extend([
        (headers::TOPIC, source.as_bytes()),
        (headers::PARTITION, partition.as_bytes()),
        (headers::FIELD, inv.field.as_bytes()),
        (headers::SUBJECT, inv.subject.as_bytes()),
    ]);
    if let Some(id) = &schema_id {
        headers.push((headers::SCHEMA_ID, id.as_bytes()));
    }
    if !inv.path.is_empty() {
        headers.push((headers::PATH, inv.path.as_bytes()));
    }
    headers.extend([
        (headers::REASON, inv.reason.as_bytes()),
        (headers::TIME, time.as_bytes()),
    ]);
    b.push(l.timestamp, l.key, l.value, &headers);
}

/// The dead-letter topic, created with `source`'s partition count and
/// settings if it does not exist. Creating it touches the
/// disk: the worker thread is handed over to blocking work meanwhile.
fn dlq_topic(broker: &Broker, source: &str, dlq: &str) -> ApiResult<Arc<Topic>> {
    if let Ok(t) = broker.topic(dlq) {
        return Ok(t);
    }
    // The source's settings: a record that fit its batches fits here.
    let from = broker.topic(source)?;
    let config = TopicConfig {
        partitions: from.partition_count(),
        partition: from.config().partition.clone(),
    };
    let log = Arc::clone(broker.log()?);
    let created = crate::error::in_place_blocking(|| log.create_topic(dlq, config));
    match created {
        Ok(t) => {
            tracing::info!(
                topic = dlq,
                source,
                "created the dead-letter topic of invalid records"
            );
            Ok(t)
        }
        Err(e) => {
            let e = ApiError::from(e);
            // Created meanwhile by another request.
            match e.reason() == Reason::TopicAlreadyExists {
                true => broker.topic(dlq),
                false => Err(e),
            }
        }
    }
}

/// A partition's batches after [`divert`].
pub(crate) struct Diverted {
    /// The batches to store, each with the positions of its invalid
    /// records (left out of it, unless it is a retry of a stored batch:
    /// the append answers that as a duplicate, and its dead letters were
    /// written the first time).
    pub kept: Vec<(Batch, BTreeSet<u32>)>,
    /// The dead letters written.
    pub sent: Sent,
}

/// Dead-letters the invalid records among `batches` (bound for partition
/// `p`, numbered `partition`, as checked: `invalid` indexes count records
/// across them from 0) and returns the batches to store instead, each
/// without its invalid records (gaps kept: see `Batch::without`), with the
/// positions left out of each. A batch its producer's state refuses fails
/// the whole before anything is written; one that is a retry of a stored
/// batch writes no dead letters again.
pub(crate) fn divert(
    broker: &Broker,
    topic: &str,
    p: &Partition,
    partition: u32,
    batches: Vec<Batch>,
    dlq: &str,
    invalid: &[Invalid],
) -> ApiResult<Diverted> {
    let mut records = Vec::with_capacity(invalid.len());
    let mut leaving_invalid = Vec::with_capacity(invalid.len());
    let mut first = 0usize;
    let mut out_positions = Vec::with_capacity(batches.len());
    let mut duplicates = Vec::with_capacity(batches.len());
    for batch in &batches {
        let count = batch.header().record_count as usize;
        let mine: Vec<&Invalid> = invalid
            .iter()
            .filter(|i| (first..first + count).contains(&i.index))
            .collect();
        let positions: BTreeSet<u32> = mine.iter().map(|i| (i.index - first) as u32).collect();
        let duplicate = match positions.is_empty() {
            true => false,
            false => p.check_producer(batch)?.is_some(),
        };
        if !duplicate {
            for (i, r) in batch.records().enumerate() {
                if positions.contains(&(i as u32)) {
                    records.push(r.map_err(brook_storage::Error::from)?);
                }
            }
            leaving_invalid.extend(mine);
        }
        first += count;
        out_positions.push(positions);
        duplicates.push(duplicate);
    }
    if records.len() != leaving_invalid.len() {
        return Err(ApiError::internal(format!(
            "{} invalid records named, {} found in the batches",
            leaving_invalid.len(),
            records.len()
        )));
    }
    // Both in request order, as the records were gathered.
    let leaving: Vec<Leaving<'_>> = leaving_invalid
        .iter()
        .zip(&records)
        .map(|(inv, r)| {
            let headers = r.headers.iter().map(|h| (h.key.as_str(), h.value.as_ref()));
            Leaving::new(
                inv,
                partition,
                r.timestamp,
                r.key.as_deref(),
                r.value.as_deref(),
                headers,
            )
        })
        .collect();
    let sent = match leaving.is_empty() {
        true => Sent {
            positions: Vec::new(),
            pending: Vec::new(),
        },
        false => write_now(broker, topic, dlq, &leaving)?,
    };
    let mut kept = Vec::with_capacity(batches.len());
    for ((batch, positions), duplicate) in batches.into_iter().zip(out_positions).zip(duplicates) {
        let batch = match positions.is_empty() || duplicate {
            true => batch,
            false => batch
                .without(&positions)
                .map_err(brook_storage::Error::from)?,
        };
        kept.push((batch, positions));
    }
    Ok(Diverted { kept, sent })
}
