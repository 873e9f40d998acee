//! Writing records to a queue group's dead-letter topic: key, value and
//! headers kept, headers added that say where the record came from and why
//! it failed. The topic is created on first use.
//!
//! The write comes first, the settlement second: a crash between them
//! leaves the record unsettled, and it is dead-lettered again (at least once
//! in the dead-letter topic, never lost).

use std::collections::BTreeMap;
use std::sync::Arc;

use brook_protocol::batch::Record;
use brook_protocol::partitioner::partition_for_key;
use brook_storage::{Topic, TopicConfig, now_ms};

use super::outbox::Outbox;
use super::share::SlotState;
use super::store::{Entry, Op, Outcome, SettleEntry, span_entries};
use super::{Queues, bump, update_error};
use crate::error::{ApiError, ApiResult, on_blocking_thread};
use crate::state::Broker;

/// Headers added to a dead-lettered record.
pub mod headers {
    /// The topic it was published to.
    pub const TOPIC: &str = "brook-dlq-topic";
    /// Its partition there.
    pub const PARTITION: &str = "brook-dlq-partition";
    /// Its offset there.
    pub const OFFSET: &str = "brook-dlq-offset";
    /// Its timestamp there (ms).
    pub const TIMESTAMP: &str = "brook-dlq-timestamp";
    /// The queue group that gave up on it.
    pub const GROUP: &str = "brook-dlq-group";
    /// Deliveries it had.
    pub const DELIVERY_COUNT: &str = "brook-dlq-delivery-count";
    /// The last nack or reject reason ("lease expired" for an expired lease).
    pub const REASON: &str = "brook-dlq-reason";
    /// When its first and last delivery failed (ms).
    pub const FIRST_FAILURE: &str = "brook-dlq-first-failure-ms";
    /// See [`FIRST_FAILURE`].
    pub const LAST_FAILURE: &str = "brook-dlq-last-failure-ms";
    /// Prefix of them all (a redriven record goes without them).
    pub const PREFIX: &str = "brook-dlq-";
}

/// A record on its way to the dead-letter topic.
#[derive(Debug, Clone)]
pub struct Leaving {
    /// Its partition in the group's topic.
    pub partition: u32,
    /// The record.
    pub record: Record,
    /// Deliveries it had.
    pub count: u32,
    /// The last failure's reason.
    pub reason: Arc<str>,
    /// When its first delivery failed (ms).
    pub first_failure_ms: i64,
    /// When its last delivery failed (ms).
    pub last_failure_ms: i64,
}

/// The dead-letter topic, created with `partitions` partitions and the
/// broker's topic defaults if it does not exist.
pub(super) async fn dlq_topic(
    broker: &Broker,
    name: &str,
    partitions: u32,
) -> ApiResult<Arc<Topic>> {
    let log = Arc::clone(broker.log()?);
    if let Ok(t) = log.topic(name) {
        return Ok(t);
    }
    let config = TopicConfig {
        partitions,
        partition: broker.config.topic_defaults.clone(),
    };
    let owned = name.to_string();
    match on_blocking_thread(move || log.create_topic(&owned, config)).await {
        Ok(t) => {
            tracing::info!(topic = name, partitions, "created dead-letter topic");
            Ok(t)
        }
        // Created meanwhile by another request.
        Err(e) if e.reason() == crate::error::Reason::TopicAlreadyExists => Ok(broker.topic(name)?),
        Err(e) => Err(e),
    }
}

impl Queues {
    /// Writes `leaving` to the group's dead-letter topic, then settles them.
    /// On failure they go back (available after their backoff) and the
    /// error is returned. Returns how many were written.
    pub(super) async fn dead_letter(
        &self,
        broker: &Broker,
        group: &str,
        leaving: Vec<Leaving>,
    ) -> ApiResult<u64> {
        let info = self.info(group)?;
        let written = self
            .write_dead_letters(broker, group, &info.topic, &info.settings, &leaving)
            .await;
        let now = now_ms();
        let mut by_partition: BTreeMap<u32, Vec<u64>> = BTreeMap::new();
        for l in &leaving {
            by_partition
                .entry(l.partition)
                .or_default()
                .push(l.record.offset);
        }
        let outcome = if written.is_ok() {
            Outcome::DeadLettered
        } else {
            Outcome::Released
        };
        let ready_at_ms = now + info.settings.backoff(1).as_millis() as i64;
        let settled = self.store.update(|m| {
            // Only records still on their way, one by one: the group may
            // have been deleted and made again, or retention may have
            // passed some of them meanwhile.
            let Some(g) = m.groups.get_mut(group) else {
                return Ok::<_, ApiError>((Vec::new(), ()));
            };
            let mut entries = Vec::new();
            for (partition, offsets) in &mut by_partition {
                let Some(share) = g.partitions.get(partition) else {
                    continue;
                };
                offsets.sort_unstable();
                offsets.retain(|o| {
                    share
                        .slots
                        .get(o)
                        .is_some_and(|x| x.state == SlotState::Leaving)
                });
                if offsets.is_empty() {
                    continue;
                }
                entries.push(Entry {
                    group: group.to_string(),
                    op: Some(Op::Settle(SettleEntry {
                        partition: *partition,
                        spans: span_entries(&super::share::spans(offsets)),
                        outcome: outcome as i32,
                        ready_at_ms,
                        reason: "the dead-letter topic refused the record".into(),
                        failure_ms: now,
                    })),
                });
            }
            Ok((entries, ()))
        });
        if let Err(e) = settled {
            // Not settled in the log: back in memory, to be tried again.
            self.store.with(|m| {
                if let Some(g) = m.groups.get_mut(group) {
                    for p in by_partition.keys() {
                        if let Some(share) = g.partitions.get_mut(p) {
                            share.undo_leaving(ready_at_ms);
                        }
                    }
                }
            });
            return Err(update_error(e));
        }
        let rt = self.runtime(group);
        match written {
            Ok(()) => {
                bump(&rt.dead_lettered, leaving.len() as u64);
                tracing::debug!(group, records = leaving.len(), dlq = %info.settings.dlq_topic, "dead-lettered");
                Ok(leaving.len() as u64)
            }
            Err(e) => {
                tracing::warn!(group, dlq = %info.settings.dlq_topic, error = %e, "writing to the dead-letter topic failed; the records go back");
                rt.notify.notify_waiters();
                Err(e)
            }
        }
    }

    async fn write_dead_letters(
        &self,
        broker: &Broker,
        group: &str,
        topic: &str,
        settings: &super::QueueSettings,
        leaving: &[Leaving],
    ) -> ApiResult<()> {
        let dlq = dlq_topic(broker, &settings.dlq_topic, settings.dlq_partitions).await?;
        let n = dlq.partition_count();
        let now = now_ms();
        let mut outbox = Outbox::default();
        for l in leaving {
            let r = &l.record;
            let target = match &r.key {
                Some(k) => partition_for_key(k, n),
                None => l.partition % n,
            };
            let added: [(&str, String); 9] = [
                (headers::TOPIC, topic.to_string()),
                (headers::PARTITION, l.partition.to_string()),
                (headers::OFFSET, r.offset.to_string()),
                (headers::TIMESTAMP, r.timestamp.to_string()),
                (headers::GROUP, group.to_string()),
                (headers::DELIVERY_COUNT, l.count.to_string()),
                (headers::REASON, l.reason.to_string()),
                (headers::FIRST_FAILURE, l.first_failure_ms.to_string()),
                (headers::LAST_FAILURE, l.last_failure_ms.to_string()),
            ];
            let mut hs: Vec<(&str, &[u8])> = r
                .headers
                .iter()
                .map(|h| (h.key.as_str(), h.value.as_ref()))
                .collect();
            hs.extend(added.iter().map(|(k, v)| (*k, v.as_bytes())));
            outbox.push(
                &settings.dlq_topic,
                target,
                now,
                r.key.as_deref(),
                r.value.as_deref(),
                &hs,
            );
        }
        outbox.send(broker).await?;
        Ok(())
    }
}
