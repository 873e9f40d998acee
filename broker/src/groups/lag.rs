//! Consumer lag: how far each partition's committed offset trails its log end,
//! in records and in time (the age of the oldest unconsumed record).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

use brook_protocol::batch::batches;
use brook_protocol::v1;
use brook_storage::{Log, Partition};

use super::Groups;
use crate::error::{ApiError, ApiResult, Reason};

/// Timestamps of records at given offsets. Stored records never change, so an
/// entry stays true while the record is stored; the cache only saves the read.
#[derive(Default)]
pub struct TimestampCache(Mutex<HashMap<(String, u32, u64), i64>>);

const CACHE_LIMIT: usize = 100_000;

impl TimestampCache {
    /// The timestamp of the record at `offset`, read through the segment's mapping on a miss.
    fn get(&self, topic: &str, id: u32, p: &Partition, offset: u64) -> Option<i64> {
        let key = (topic.to_string(), id, offset);
        if let Some(ts) = self.0.lock().unwrap_or_else(|e| e.into_inner()).get(&key) {
            return Some(*ts);
        }
        // The first record at or after `offset`: on a compacted topic the
        // offset may be a hole, and a batch may begin with one (or be all
        // hole). A dense batch starting there has it in its header.
        let read = p.read(offset, 64 << 10).ok()?;
        let ts = batches(read.batches).find_map(|batch| {
            let batch = batch.ok()?;
            let h = batch.header();
            if h.base_offset == offset && h.record_count == h.last_offset_delta + 1 {
                return Some(h.first_timestamp);
            }
            let r = batch
                .records()
                .filter_map(Result::ok)
                .find(|r| r.offset >= offset)?;
            Some(r.timestamp)
        })?;
        let mut cache = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, ts);
        Some(ts)
    }
}

/// The partitions whose lag a group has: every partition of every topic it
/// committed for or subscribes to (a gRPC member's topics, or a Kafka
/// consumer's subscription), or of `topic` alone when given.
fn partitions_of(
    groups: &Groups,
    log: &Log,
    group: &str,
    topic: &str,
) -> ApiResult<BTreeSet<String>> {
    if !topic.is_empty() {
        log.topic(topic)?;
        return Ok([topic.to_string()].into());
    }
    let mut topics: BTreeSet<String> = groups
        .offsets
        .get(group)
        .keys()
        .map(|(t, _)| t.clone())
        .collect();
    if let Some(info) = groups.coordinator.describe(group) {
        topics.extend(info.topics);
    }
    topics.extend(groups.classic.subscribed_topics(group));
    Ok(topics)
}

/// Lag of `group` (optionally one topic) at wall-clock time `now_ms`.
pub fn consumer_lag(
    groups: &Groups,
    log: &Log,
    group: &str,
    topic: &str,
    now_ms: i64,
) -> ApiResult<v1::ConsumerLag> {
    let committed = groups.offsets.get(group);
    if committed.is_empty() && groups.member_count(group) == 0 {
        return Err(unknown_group(group));
    }
    let mut out = v1::ConsumerLag {
        group: group.to_string(),
        ..Default::default()
    };
    let mut per_topic: BTreeMap<String, v1::TopicLag> = BTreeMap::new();
    for name in partitions_of(groups, log, group, topic)? {
        // A topic deleted since the commit has no lag to report.
        let Ok(t) = log.topic(&name) else { continue };
        for (id, p) in t.partitions() {
            let committed_offset = committed.get(&(name.clone(), id)).map(|c| c.offset);
            // Lag counts to the high watermark: records above it are not
            // readable yet (Kafka's lag is the same).
            let (start, end) = (p.log_start_offset(), p.high_watermark());
            // Records below the log start are gone: they are not lag any more.
            let from = committed_offset.unwrap_or(start).max(start);
            let lag_records = end.saturating_sub(from);
            let lag_ms = match lag_records {
                0 => 0,
                _ => groups
                    .timestamps
                    .get(&name, id, &p, from)
                    .map_or(0, |ts| now_ms.saturating_sub(ts).max(0)),
            };
            let tl = per_topic
                .entry(name.clone())
                .or_insert_with(|| v1::TopicLag {
                    topic: name.clone(),
                    ..Default::default()
                });
            tl.lag_records += lag_records;
            tl.lag_ms = tl.lag_ms.max(lag_ms);
            out.total_lag_records += lag_records;
            out.max_lag_ms = out.max_lag_ms.max(lag_ms);
            out.partitions.push(v1::PartitionLag {
                topic: name.clone(),
                partition: id,
                committed_offset,
                log_start_offset: start,
                log_end_offset: end,
                lag_records,
                lag_ms,
            });
        }
    }
    out.topics = per_topic.into_values().collect();
    Ok(out)
}

/// Lag of every known group at `now_ms`, as the metrics export it. A group
/// that has neither commits nor members any more (deleted since it was
/// listed) is left out rather than reported as an error.
pub fn every_group(groups: &Groups, log: &Log, now_ms: i64) -> Vec<v1::ConsumerLag> {
    groups
        .names()
        .iter()
        .filter_map(|group| consumer_lag(groups, log, group, "", now_ms).ok())
        .collect()
}

/// GROUP_NOT_FOUND: a group without members or committed offsets is unknown.
pub fn unknown_group(group: &str) -> ApiError {
    ApiError::new(
        Reason::GroupNotFound,
        format!("unknown group {group:?}: it has no committed offsets and no members"),
    )
    .with("group", group)
}

/// `lag` with only the topics `visible` allows, its totals recomputed: a
/// group's lag must not tell a caller about topics it may not see.
pub fn only_topics(mut lag: v1::ConsumerLag, visible: &dyn Fn(&str) -> bool) -> v1::ConsumerLag {
    if lag.topics.iter().all(|t| visible(&t.topic)) {
        return lag;
    }
    lag.partitions.retain(|p| visible(&p.topic));
    lag.topics.retain(|t| visible(&t.topic));
    lag.total_lag_records = lag.topics.iter().map(|t| t.lag_records).sum();
    lag.max_lag_ms = lag.topics.iter().map(|t| t.lag_ms).max().unwrap_or(0);
    lag
}
