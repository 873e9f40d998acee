//! Redrive: copying dead-lettered records back to their source topic (or
//! another), then marking them redriven in the queue group's state, so
//! that running it again copies nothing twice. Copy first, mark second: a
//! crash between them copies those records again on the next run (at least
//! once, never lost).

use brook_protocol::batch::{Record, batches};
use brook_protocol::partitioner::partition_for_key;

use super::deadletter::headers;
use super::outbox::Outbox;
use super::share::spans;
use super::store::{Entry, Op, RedrivenEntry, span_entries};
use super::{Queues, corrupt, update_error};
use crate::error::{ApiError, ApiResult, on_blocking_thread};
use crate::state::Broker;

/// Which dead-lettered records to redrive, and where.
#[derive(Debug, Clone, Default)]
pub struct RedriveSpec {
    /// Only this partition of the dead-letter topic.
    pub dlq_partition: Option<u32>,
    /// Offsets of the dead-letter topic, inclusive.
    pub from_offset: Option<u64>,
    /// See `from_offset`.
    pub to_offset: Option<u64>,
    /// Only records dead-lettered in this time range (ms), inclusive.
    pub from_time_ms: Option<i64>,
    /// See `from_time_ms`.
    pub to_time_ms: Option<i64>,
    /// Where to: empty for each record's source topic.
    pub target_topic: String,
    /// Count, move nothing.
    pub dry_run: bool,
    /// At most this many (0: all).
    pub limit: u64,
}

/// The header a redriven record carries: `<dlq topic>/<partition>/<offset>`.
pub const REDRIVEN_FROM: &str = "brook-redriven-from";

/// Bytes of the dead-letter topic read at a time.
const READ_BYTES: usize = 1 << 20;

fn header<'a>(r: &'a Record, key: &str) -> Option<&'a str> {
    r.headers
        .iter()
        .find(|h| h.key == key)
        .and_then(|h| std::str::from_utf8(&h.value).ok())
}

impl Queues {
    /// Redrives the records `spec` picks from `group`'s dead-letter topic:
    /// returns how many were copied and how many in the range had been
    /// redriven before.
    pub async fn redrive(
        self: &std::sync::Arc<Self>,
        broker: &Broker,
        group: &str,
        spec: &RedriveSpec,
    ) -> ApiResult<(u64, u64)> {
        let info = self.info(group)?;
        let rt = self.runtime(group);
        let _one_at_a_time = rt.redrive.lock().await;
        let Ok(dlq) = broker.topic(&info.settings.dlq_topic) else {
            return Ok((0, 0));
        };
        if !spec.target_topic.is_empty() {
            broker.topic(&spec.target_topic)?;
        }
        let (mut moved, mut already) = (0u64, 0u64);
        for (id, p) in dlq.partitions() {
            if spec.dlq_partition.is_some_and(|want| want != id) {
                continue;
            }
            let end = spec
                .to_offset
                .map_or(u64::MAX, |t| t.saturating_add(1))
                .min(p.high_watermark());
            let mut at = spec.from_offset.unwrap_or(0).max(p.log_start_offset());
            // Only redrives write this set, one at a time (the lock above):
            // read once per partition, not once per record.
            let redriven = self.store.with(|m| {
                m.groups
                    .get(group)
                    .and_then(|g| g.redriven.get(&id))
                    .cloned()
                    .unwrap_or_default()
            });
            while at < end && (spec.limit == 0 || moved < spec.limit) {
                let reader = p.clone();
                let read = on_blocking_thread(move || reader.read(at, READ_BYTES)).await?;
                let mut picked = Vec::new();
                let mut next = at;
                for batch in batches(read.batches) {
                    let batch = batch.map_err(corrupt)?;
                    next = next.max(batch.last_offset().saturating_add(1));
                    for r in batch.records() {
                        let r = r.map_err(corrupt)?;
                        if r.offset < at || r.offset >= end {
                            continue;
                        }
                        if spec.limit != 0 && moved + picked.len() as u64 >= spec.limit {
                            next = r.offset;
                            break;
                        }
                        let in_time = spec.from_time_ms.is_none_or(|t| r.timestamp >= t)
                            && spec.to_time_ms.is_none_or(|t| r.timestamp <= t);
                        if !in_time {
                            continue;
                        }
                        if redriven.contains(r.offset) {
                            already += 1;
                        } else {
                            picked.push(r);
                        }
                    }
                }
                if next == at {
                    break;
                }
                at = next;
                if picked.is_empty() {
                    continue;
                }
                moved += picked.len() as u64;
                if spec.dry_run {
                    continue;
                }
                self.copy_back(
                    broker,
                    &info.topic,
                    &dlq_name(&info.settings.dlq_topic, id),
                    &spec.target_topic,
                    &picked,
                )
                .await?;
                let offsets: Vec<u64> = picked.iter().map(|r| r.offset).collect();
                let entry = Entry {
                    group: group.to_string(),
                    op: Some(Op::Redriven(RedrivenEntry {
                        dlq_partition: id,
                        spans: span_entries(&spans(&offsets)),
                    })),
                };
                let (_, at_log) = self
                    .store
                    .update(|_| Ok::<_, ApiError>((vec![entry], ())))
                    .map_err(update_error)?;
                // The mark on disk before the answer: a redrive answered is
                // never repeated, even after a power cut.
                self.sync(Some(at_log)).await?;
            }
        }
        if moved > 0 && !spec.dry_run {
            tracing::info!(group, moved, "redrove dead-lettered records");
        }
        Ok((moved, already))
    }

    /// Appends copies of dead-lettered `records` to the group's topic (into
    /// their source partitions), or to `target_topic`.
    async fn copy_back(
        &self,
        broker: &Broker,
        group_topic: &str,
        from: &str,
        target_topic: &str,
        records: &[Record],
    ) -> ApiResult<()> {
        // Back to the group's topic (what the caller was authorized for),
        // whatever the headers say: the dead-letter topic is a topic anyone
        // with WRITE on it can write to.
        let topic = if target_topic.is_empty() {
            group_topic
        } else {
            target_topic
        };
        let n = broker.topic(topic)?.partition_count();
        let mut outbox = Outbox::default();
        for r in records {
            let source_partition = header(r, headers::PARTITION)
                .and_then(|p| p.parse::<u32>().ok())
                .filter(|p| *p < n && target_topic.is_empty());
            let partition = match (source_partition, &r.key) {
                (Some(p), _) => p,
                (None, Some(k)) => partition_for_key(k, n),
                (None, None) => 0,
            };
            let timestamp = header(r, headers::TIMESTAMP)
                .and_then(|t| t.parse().ok())
                .unwrap_or(r.timestamp);
            let origin = format!("{from}/{}", r.offset);
            let mut hs: Vec<(&str, &[u8])> = r
                .headers
                .iter()
                .filter(|h| !h.key.starts_with(headers::PREFIX))
                .map(|h| (h.key.as_str(), h.value.as_ref()))
                .collect();
            hs.push((REDRIVEN_FROM, origin.as_bytes()));
            outbox.push(
                topic,
                partition,
                timestamp,
                r.key.as_deref(),
                r.value.as_deref(),
                &hs,
            );
        }
        outbox.send(broker).await
    }
}

fn dlq_name(topic: &str, partition: u32) -> String {
    format!("{topic}/{partition}")
}
