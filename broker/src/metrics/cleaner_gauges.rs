//! Log-compaction metrics: what the cleaner did (counters since the start)
//! and, per compacted partition, how dirty it is and how far the cleaner
//! lags, read when scraped.

use std::fmt;

use brook_storage::Log;
use brook_storage::compaction::Cleaner;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::MetricType;

use super::collector::{counter, gauges, sentence};

/// Labels of per-partition gauges.
#[derive(EncodeLabelSet, Debug, Clone, PartialEq, Eq, Hash)]
struct PartitionLabels {
    topic: String,
    partition: u32,
}

/// Encodes the cleaner's counters and the compacted partitions' gauges.
pub(super) fn encode(e: &mut DescriptorEncoder, log: &Log, cleaner: &Cleaner) -> fmt::Result {
    let s = cleaner.stats();
    counter(
        e,
        "cleaner_passes",
        "Cleaning passes of compacted partitions that finished",
        s.passes,
    )?;
    counter(
        e,
        "cleaner_passes_failed",
        "Cleaning passes that failed (the partition is tried again after --cleaner-backoff-ms)",
        s.failed,
    )?;
    counter(
        e,
        "cleaner_read_bytes",
        "Bytes of log the cleaner read",
        s.bytes_read,
    )?;
    counter(
        e,
        "cleaner_written_bytes",
        "Bytes of log the cleaner wrote (over cleaner_read_bytes: how much a pass keeps)",
        s.bytes_written,
    )?;
    counter(
        e,
        "cleaner_removed_records",
        "Records the cleaner removed because a later record of their key exists",
        s.superseded,
    )?;
    counter(
        e,
        "cleaner_removed_tombstones",
        "Tombstones the cleaner removed after their delete_retention_ms",
        s.tombstones,
    )?;
    counter(
        e,
        "cleaner_segments_rewritten",
        "Segments the cleaner rewrote and swapped in",
        s.segments_rewritten,
    )?;
    e.encode_descriptor(
        "cleaner_busy_seconds",
        &sentence("Seconds the cleaner spent in passes"),
        None,
        MetricType::Counter,
    )?
    .encode_counter::<prometheus_client::encoding::NoLabelSet, _, f64>(&s.busy_seconds, None)?;
    super::collector::gauge(
        e,
        "cleaner_pass_running",
        "1 while the cleaner runs a pass, else 0",
        i64::from(s.running),
    )?;
    let now = brook_storage::now_ms();
    let (mut ratio, mut dirty, mut lag) = (vec![], vec![], vec![]);
    for topic in log.topics() {
        if !topic.config().partition.cleanup_policy.compacts() {
            continue;
        }
        for (id, p) in topic.partitions() {
            let labels = PartitionLabels {
                topic: topic.name().to_string(),
                partition: id,
            };
            let st = p.cleaning_status(now);
            let behind = st
                .oldest_dirty_ms
                .map_or(0.0, |t| (now.saturating_sub(t)).max(0) as f64 / 1000.0);
            ratio.push((labels.clone(), st.dirty_ratio));
            dirty.push((labels.clone(), st.dirty_bytes as i64));
            lag.push((labels, behind));
        }
    }
    gauges(
        e,
        "partition_dirty_ratio",
        "Compacted partitions: the share of the cleanable log (sealed segments past min_compaction_lag_ms) not cleaned yet",
        &ratio,
    )?;
    gauges(
        e,
        "partition_dirty_bytes",
        "Compacted partitions: bytes of cleanable log not cleaned yet",
        &dirty,
    )?;
    gauges(
        e,
        "partition_cleaner_lag_seconds",
        "Compacted partitions: age of the oldest cleanable record not cleaned yet (0 when all is clean); compare with max_compaction_lag_ms",
        &lag,
    )
}
