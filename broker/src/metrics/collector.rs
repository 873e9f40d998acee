//! The gauges that describe the log as it is when scraped: per-partition
//! offsets, sizes and damage, offline partitions, open descriptors, and
//! consumer lag.
//!
//! A prometheus-client [`Collector`] reads them from the log during the
//! encode itself. Each scrape builds its own samples, so concurrent scrapes
//! share no state, and a deleted topic or group simply stops appearing.

use std::fmt;
use std::sync::{Arc, OnceLock};

use brook_storage::Log;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeGaugeValue, EncodeLabelSet};
use prometheus_client::metrics::MetricType;

use crate::groups::Groups;
use crate::queues::Queues;

/// Labels of per-partition gauges.
#[derive(EncodeLabelSet, Debug, Clone, PartialEq, Eq, Hash)]
struct PartitionLabels {
    topic: String,
    partition: u32,
}

/// Labels of an offline partition; partition "" stands for a whole topic
/// whose metadata cannot be read.
#[derive(EncodeLabelSet, Debug, Clone, PartialEq, Eq, Hash)]
struct OfflineLabels {
    topic: String,
    partition: String,
}

/// Labels of per-group lag gauges.
#[derive(EncodeLabelSet, Debug, Clone, PartialEq, Eq, Hash)]
struct LagLabels {
    group: String,
    topic: String,
    partition: u32,
}

/// Reads the log's gauges on each scrape. Until the log is recovered it
/// reports only what needs no log (descriptors, damage found by reads, and
/// zero offline partitions), as the broker did before it had a collector.
#[derive(Default)]
pub struct LogCollector {
    ready: OnceLock<(Arc<Log>, Arc<Groups>)>,
    queues: OnceLock<Arc<Queues>>,
    rules: OnceLock<Arc<crate::rules::Rules>>,
    cleaner: OnceLock<Arc<brook_storage::compaction::Cleaner>>,
}

impl fmt::Debug for LogCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogCollector")
            .field("ready", &self.ready.get().is_some())
            .finish()
    }
}

impl LogCollector {
    /// Starts reporting `log` and `groups` (the first call wins).
    pub fn set_ready(&self, log: Arc<Log>, groups: Arc<Groups>) {
        let _ = self.ready.set((log, groups));
    }

    /// Starts reporting queue groups (the first call wins).
    pub fn set_queues(&self, queues: Arc<Queues>) {
        let _ = self.queues.set(queues);
    }

    /// From now on, scrapes report the routing rules too.
    pub fn set_rules(&self, rules: Arc<crate::rules::Rules>) {
        let _ = self.rules.set(rules);
    }

    /// From now on, scrapes report the log cleaner too.
    pub fn set_cleaner(&self, cleaner: Arc<brook_storage::compaction::Cleaner>) {
        let _ = self.cleaner.set(cleaner);
    }

    /// Whether the log has been recovered.
    pub fn is_ready(&self) -> bool {
        self.ready.get().is_some()
    }
}

/// Encodes one gauge family; like a registered family with no entries, an
/// empty one is left out altogether (no HELP or TYPE line).
pub(super) fn gauges<L: EncodeLabelSet, V: EncodeGaugeValue>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(L, V)],
) -> fmt::Result {
    if samples.is_empty() {
        return Ok(());
    }
    let mut family = encoder.encode_descriptor(name, &sentence(help), None, MetricType::Gauge)?;
    for (labels, value) in samples {
        family.encode_family(labels)?.encode_gauge(value)?;
    }
    Ok(())
}

/// Encodes one gauge without labels.
pub(super) fn gauge(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: i64,
) -> fmt::Result {
    encoder
        .encode_descriptor(name, &sentence(help), None, MetricType::Gauge)?
        .encode_gauge(&value)
}

/// Encodes one counter without labels (`_total` is added to `name`).
pub(super) fn counter(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    value: u64,
) -> fmt::Result {
    encoder
        .encode_descriptor(name, &sentence(help), None, MetricType::Counter)?
        .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(&value, None)
}

/// `Registry::register` ends every help text with a period; a collector's
/// descriptors do not get one, so these add it to read the same.
pub(super) fn sentence(help: &str) -> String {
    format!("{help}.")
}

impl Collector for LogCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> fmt::Result {
        let e = &mut encoder;
        counter(
            e,
            "log_flushes",
            "Flushes of a partition's log to disk (fdatasync of its segments; concurrent durable acks share one): for durable acks, the flush policy and segment rolls",
            brook_storage::partition_flushes(),
        )?;
        gauge(
            e,
            "damaged_ranges_found_by_reads",
            "Damaged ranges that reads found since the start (the rest were found when opening)",
            brook_storage::damage_found_by_reads() as i64,
        )?;
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            gauge(
                e,
                "open_file_descriptors",
                "File descriptors the broker process holds",
                fds.count() as i64,
            )?;
        }
        let Some((log, groups)) = self.ready.get() else {
            return gauge(
                e,
                "partitions_offline",
                "Partitions (or topics) that could not be opened",
                0,
            );
        };
        encode_partitions(e, log)?;
        encode_offline(e, log)?;
        encode_offsets_log(e, groups)?;
        if let Some(queues) = self.queues.get() {
            super::queue_gauges::encode(e, log, queues)?;
        }
        if let Some(rules) = self.rules.get() {
            super::rule_gauges::encode(e, log, rules)?;
        }
        if let Some(cleaner) = self.cleaner.get() {
            super::cleaner_gauges::encode(e, log, cleaner)?;
        }
        encode_lag(e, log, groups)
    }
}

fn encode_partitions(e: &mut DescriptorEncoder, log: &Log) -> fmt::Result {
    let (mut end, mut start, mut size, mut damaged) = (vec![], vec![], vec![], vec![]);
    for topic in log.topics() {
        for (id, p) in topic.partitions() {
            let labels = PartitionLabels {
                topic: topic.name().to_string(),
                partition: id,
            };
            let ranges = p.damaged_ranges().len();
            if ranges > 0 {
                damaged.push((labels.clone(), ranges as i64));
            }
            end.push((labels.clone(), p.log_end_offset() as i64));
            start.push((labels.clone(), p.log_start_offset() as i64));
            size.push((labels, p.size_bytes() as i64));
        }
    }
    gauges(
        e,
        "partition_log_end_offset",
        "Next offset to be assigned",
        &end,
    )?;
    gauges(
        e,
        "partition_log_start_offset",
        "First offset still stored",
        &start,
    )?;
    gauges(e, "partition_size_bytes", "Bytes of log on disk", &size)?;
    gauges(
        e,
        "partition_damaged_ranges",
        "Ranges of offsets whose stored bytes fail their checks; reads of them answer DATA_LOSS",
        &damaged,
    )
}

fn encode_offline(e: &mut DescriptorEncoder, log: &Log) -> fmt::Result {
    let offline: Vec<(OfflineLabels, i64)> = log
        .offline()
        .into_iter()
        .map(|o| {
            let labels = OfflineLabels {
                topic: o.topic,
                partition: o.partition.map_or_else(String::new, |p| p.to_string()),
            };
            (labels, 1)
        })
        .collect();
    gauges(
        e,
        "partition_offline",
        "1 for each partition (or topic) that could not be opened and serves nothing",
        &offline,
    )?;
    gauge(
        e,
        "partitions_offline",
        "Partitions (or topics) that could not be opened",
        offline.len() as i64,
    )
}

fn encode_offsets_log(e: &mut DescriptorEncoder, groups: &Groups) -> fmt::Result {
    let stats = groups.offsets.stats();
    counter(
        e,
        "offsets_log_syncs",
        "fdatasyncs of the group offsets log (durable commits share them)",
        stats.syncs,
    )?;
    counter(
        e,
        "offsets_log_rewrites",
        "Times the group offsets log was written out whole",
        stats.rewrites,
    )?;
    gauge(
        e,
        "offsets_log_bytes",
        "Size of the group offsets log",
        stats.bytes as i64,
    )
}

fn encode_lag(e: &mut DescriptorEncoder, log: &Log, groups: &Groups) -> fmt::Result {
    let (mut records, mut seconds) = (vec![], vec![]);
    let now = brook_storage::now_ms();
    for lag in crate::groups::lag::every_group(groups, log, now) {
        for p in lag.partitions {
            let labels = LagLabels {
                group: lag.group.clone(),
                topic: p.topic,
                partition: p.partition,
            };
            records.push((labels.clone(), p.lag_records as i64));
            seconds.push((labels, p.lag_ms as f64 / 1000.0));
        }
    }
    gauges(
        e,
        "consumer_lag_records",
        "Records a group has not consumed yet",
        &records,
    )?;
    gauges(
        e,
        "consumer_lag_seconds",
        "Age of a group's oldest unconsumed record",
        &seconds,
    )
}
