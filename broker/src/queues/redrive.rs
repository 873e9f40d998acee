//! Redrive: copying dead-lettered records back to their source topic (or
//! another), then marking them redriven in the queue group's state, so
//! that running it again copies nothing twice. Copy first, mark second: a
//! crash between them copies those records again on the next run (at least
//! once, never lost).
//!
//! Or back into the group alone (`to_group`): nothing is copied, the
//! source records are unsettled again in the group's state and the dead
//! letters marked, one frame per source partition, so each frame does both
//! or neither.

use std::collections::BTreeMap;

use brook_protocol::batch::{Record, batches};
use brook_protocol::partitioner::partition_for_key;
use brook_storage::Topic;

use super::deadletter::headers;
use super::outbox::Outbox;
use super::share::spans;
use super::store::{Entry, Op, RedrivenEntry, ReopenEntry, span_entries};
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
    /// Back into the group alone: the source records delivered again.
    pub to_group: bool,
}

/// What a redrive did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Redriven {
    /// Records redriven (or, with `dry_run`, that would be).
    pub moved: u64,
    /// Records in the range redriven before.
    pub already: u64,
    /// `to_group`: records whose source record is gone or not the group's.
    pub unavailable: u64,
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
    /// Redrives the records `spec` picks from `group`'s dead-letter topic.
    pub async fn redrive(
        self: &std::sync::Arc<Self>,
        broker: &Broker,
        group: &str,
        spec: &RedriveSpec,
    ) -> ApiResult<Redriven> {
        if spec.to_group && !spec.target_topic.is_empty() {
            return Err(ApiError::invalid(
                "to_group and target_topic exclude each other: a redrive goes back into the group or into a topic",
            )
            .with("target_topic", spec.target_topic.as_str()));
        }
        let info = self.info(group)?;
        let rt = self.runtime(group);
        let _one_at_a_time = rt.redrive.lock().await;
        let Ok(dlq) = broker.topic(&info.settings.dlq_topic) else {
            return Ok(Redriven::default());
        };
        if !spec.target_topic.is_empty() {
            broker.topic(&spec.target_topic)?;
        }
        let (mut moved, mut already, mut unavailable) = (0u64, 0u64, 0u64);
        // Only back into the group needs the group's topic: records can be
        // copied elsewhere after it was deleted.
        let source = match spec.to_group {
            true => Some(broker.topic(&info.topic)?),
            false => None,
        };
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
                'batches: for batch in batches(read.batches) {
                    let batch = batch.map_err(corrupt)?;
                    next = next.max(batch.last_offset().saturating_add(1));
                    for r in batch.records() {
                        let r = r.map_err(corrupt)?;
                        if r.offset < at || r.offset >= end {
                            continue;
                        }
                        if spec.limit != 0 && moved + picked.len() as u64 >= spec.limit {
                            next = r.offset;
                            break 'batches;
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
                if let Some(source) = &source {
                    let (sources, rest) = source_records(&picked, &info.topic, group, source);
                    let (kept, unsettled) = self.reopen(group, id, sources, spec.dry_run).await?;
                    unavailable += rest + unsettled;
                    moved += kept;
                    continue;
                }
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
            tracing::info!(
                group,
                moved,
                to_group = spec.to_group,
                "redrove dead-lettered records"
            );
        }
        Ok(Redriven {
            moved,
            already,
            unavailable,
        })
    }

    /// Unsettles `sources` (per source partition: its offsets and the dead
    /// letters they come from, of dead-letter partition `dlq_partition`) in
    /// the group, durably before the answer; with `dry_run`, only counts.
    /// A source record the group has not settled (it is being
    /// dead-lettered right now, or was redriven before and is unsettled
    /// still) is left out, its dead letter unmarked: returns how many dead
    /// letters went back and how many were left for that.
    async fn reopen(
        self: &std::sync::Arc<Self>,
        group: &str,
        dlq_partition: u32,
        sources: Sources,
        dry_run: bool,
    ) -> ApiResult<(u64, u64)> {
        if sources.is_empty() {
            return Ok((0, 0));
        }
        // Decided where the state is changed, so that nothing settles or
        // unsettles a record between the look and the frame.
        let ((kept, left), at_log) = self
            .store
            .update(|m| {
                let g = m
                    .groups
                    .get_mut(group)
                    .ok_or_else(|| super::not_found(group))?;
                let (mut kept, mut left) = (0u64, 0u64);
                let mut entries = Vec::new();
                for (partition, (offsets, dlq_offsets)) in sources {
                    let share = g.share(partition);
                    let (mut back, mut marked) = (Vec::new(), Vec::new());
                    for (o, d) in offsets.into_iter().zip(dlq_offsets) {
                        if share.is_settled(o) {
                            back.push(o);
                            marked.push(d);
                        } else {
                            left += 1;
                        }
                    }
                    kept += marked.len() as u64;
                    if back.is_empty() || dry_run {
                        continue;
                    }
                    back.sort_unstable();
                    back.dedup();
                    entries.push(Entry {
                        group: group.to_string(),
                        op: Some(Op::Reopen(ReopenEntry {
                            partition,
                            spans: span_entries(&spans(&back)),
                            dlq_partition,
                            dlq_spans: span_entries(&spans(&marked)),
                        })),
                    });
                }
                Ok::<_, ApiError>((entries, (kept, left)))
            })
            .map_err(update_error)?;
        if !dry_run && kept > 0 {
            self.sync(Some(at_log)).await?;
            self.runtime(group).notify.notify_waiters();
        }
        Ok((kept, left))
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

/// Per source partition: source offsets, and the dead letters' offsets.
type Sources = BTreeMap<u32, (Vec<u64>, Vec<u64>)>;

/// The source records of dead letters, per source partition: their
/// offsets and the dead letters' offsets; and how many dead letters name no
/// record the group can be given again (another topic or group, a partition
/// or offset the topic does not have, or no longer has).
fn source_records(
    dead_letters: &[Record],
    topic: &str,
    group: &str,
    source: &Topic,
) -> (Sources, u64) {
    let mut out = Sources::new();
    let mut unavailable = 0;
    for r in dead_letters {
        let partition = header(r, headers::PARTITION).and_then(|p| p.parse::<u32>().ok());
        let offset = header(r, headers::OFFSET).and_then(|o| o.parse::<u64>().ok());
        let ours =
            header(r, headers::TOPIC) == Some(topic) && header(r, headers::GROUP) == Some(group);
        let in_log = match (partition, offset) {
            (Some(p), Some(o)) => source
                .partition(p)
                .is_ok_and(|part| o >= part.log_start_offset() && o < part.high_watermark()),
            _ => false,
        };
        match (partition, offset) {
            (Some(p), Some(o)) if ours && in_log => {
                let e = out.entry(p).or_default();
                e.0.push(o);
                e.1.push(r.offset);
            }
            _ => unavailable += 1,
        }
    }
    (out, unavailable)
}

fn dlq_name(topic: &str, partition: u32) -> String {
    format!("{topic}/{partition}")
}
