//! What a queue group looks like: per partition its acked-up-to point, lag,
//! records in flight and waiting; its consumers; its dead-letter depth.

use std::sync::atomic::Ordering;

use brook_storage::{Log, now_ms};

use super::share::SlotState;
use super::{CONSUMER_IDLE, QueueSettings, Queues, lock, not_found};
use crate::error::ApiResult;

/// One partition of a queue group.
#[derive(Debug, Clone, Default)]
pub struct PartitionView {
    /// The partition.
    pub partition: u32,
    /// Every record below it is settled.
    pub acked_up_to: u64,
    /// The partition's high watermark.
    pub log_end_offset: u64,
    /// Records not settled between `acked_up_to` and the log end.
    pub unsettled: u64,
    /// Records leased now.
    pub in_flight: u64,
    /// Records backing off or delayed.
    pub waiting: u64,
    /// Age of the oldest unsettled record read into the window (ms).
    pub oldest_unacked_age_ms: i64,
}

/// A queue group.
#[derive(Debug, Clone)]
pub struct QueueView {
    /// Its name.
    pub group: String,
    /// The topic it reads.
    pub topic: String,
    /// Its settings.
    pub settings: QueueSettings,
    /// When it was created (ms).
    pub created_ms: i64,
    /// Every partition of the topic.
    pub partitions: Vec<PartitionView>,
    /// Consumers seen in the last 5 minutes: id, records leased, ms since their last fetch.
    pub consumers: Vec<(String, u64, i64)>,
    /// Records in the dead-letter topic not yet redriven.
    pub dlq_depth: u64,
    /// Redeliveries since the broker started.
    pub redeliveries: u64,
    /// Records dead-lettered since the broker started.
    pub dead_lettered: u64,
    /// Unsettled records retention removed since the broker started.
    pub lost_to_retention: u64,
}

impl QueueView {
    /// Records between the acked-up-to points and the log ends.
    pub fn lag(&self) -> u64 {
        self.partitions
            .iter()
            .map(|p| p.log_end_offset.saturating_sub(p.acked_up_to))
            .sum()
    }

    /// Records leased now.
    pub fn in_flight(&self) -> u64 {
        self.partitions.iter().map(|p| p.in_flight).sum()
    }

    /// Records backing off or delayed.
    pub fn waiting(&self) -> u64 {
        self.partitions.iter().map(|p| p.waiting).sum()
    }

    /// Age of the oldest unsettled record (ms).
    pub fn oldest_unacked_age_ms(&self) -> i64 {
        self.partitions
            .iter()
            .map(|p| p.oldest_unacked_age_ms)
            .max()
            .unwrap_or(0)
    }
}

impl Queues {
    /// The state of `group` against the log.
    pub fn describe(&self, log: &Log, group: &str) -> ApiResult<QueueView> {
        let now = now_ms();
        let (topic, settings, created_ms) = self.store.with(|m| {
            m.groups
                .get(group)
                .map(|g| (g.topic.clone(), g.settings.clone(), g.created_ms))
                .ok_or_else(|| not_found(group))
        })?;
        let parts = log
            .topic(&topic)
            .map(|t| t.partitions())
            .unwrap_or_default();
        let mut holders: std::collections::HashMap<String, u64> = Default::default();
        let partitions = self.store.with(|m| {
            let g = m.groups.get(group);
            parts
                .iter()
                .map(|(id, p)| {
                    let hw = p.high_watermark();
                    let Some(share) = g.and_then(|g| g.partitions.get(id)) else {
                        return PartitionView {
                            partition: *id,
                            log_end_offset: hw,
                            ..PartitionView::default()
                        };
                    };
                    for s in share.slots.values() {
                        if let SlotState::Acquired { holder, .. } = &s.state {
                            *holders.entry(holder.to_string()).or_default() += 1;
                        }
                    }
                    let oldest = share
                        .slots
                        .values()
                        .find_map(|s| s.record.as_ref().map(|r| r.timestamp));
                    PartitionView {
                        partition: *id,
                        acked_up_to: share.start,
                        log_end_offset: hw,
                        unsettled: share.unsettled(hw),
                        in_flight: share.in_flight() as u64,
                        waiting: share.waiting(now) as u64,
                        oldest_unacked_age_ms: oldest.map_or(0, |t| now.saturating_sub(t).max(0)),
                    }
                })
                .collect()
        });
        let rt = self.runtime(group);
        let mut consumers: Vec<(String, u64, i64)> = lock(&rt.consumers)
            .iter()
            .filter(|(_, at)| at.elapsed() < CONSUMER_IDLE)
            .map(|(id, at)| {
                let held = holders.remove(&**id).unwrap_or(0);
                (id.to_string(), held, at.elapsed().as_millis() as i64)
            })
            .collect();
        // Holders not seen since the broker started (leases from before a restart).
        consumers.extend(holders.into_iter().map(|(id, n)| (id, n, -1)));
        consumers.sort();
        Ok(QueueView {
            group: group.to_string(),
            dlq_depth: self.dlq_depth(log, group, &settings.dlq_topic),
            topic,
            settings,
            created_ms,
            partitions,
            consumers,
            redeliveries: rt.redeliveries.load(Ordering::Relaxed),
            dead_lettered: rt.dead_lettered.load(Ordering::Relaxed),
            lost_to_retention: rt.lost.load(Ordering::Relaxed),
        })
    }

    /// Records in the dead-letter topic still stored and not redriven.
    fn dlq_depth(&self, log: &Log, group: &str, dlq: &str) -> u64 {
        let Ok(t) = log.topic(dlq) else { return 0 };
        let parts = t.partitions();
        self.store.with(|m| {
            let redriven = m.groups.get(group).map(|g| &g.redriven);
            parts
                .iter()
                .map(|(id, p)| {
                    let (start, end) = (p.log_start_offset(), p.high_watermark());
                    let moved = redriven
                        .and_then(|r| r.get(id))
                        .map_or(0, |set| set.count_in(start, end));
                    end.saturating_sub(start) - moved
                })
                .sum()
        })
    }
}
