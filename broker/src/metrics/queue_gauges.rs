//! Queue-group metrics, read from the queue groups' state when scraped:
//! lag, records in flight and waiting, the oldest unacked record's age,
//! dead-letter depth, and counters of redeliveries, dead letters and
//! records retention removed before they were settled.

use std::fmt;

use brook_storage::Log;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::MetricType;

use super::collector::{gauges, sentence};
use crate::queues::Queues;

/// Labels of per-group queue metrics.
#[derive(EncodeLabelSet, Debug, Clone, PartialEq, Eq, Hash)]
struct QueueLabels {
    group: String,
    topic: String,
}

/// Encodes one labelled counter family (`_total` is added to `name`).
pub(super) fn counters<L: EncodeLabelSet>(
    e: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: &[(L, u64)],
) -> fmt::Result {
    if samples.is_empty() {
        return Ok(());
    }
    let mut family = e.encode_descriptor(name, &sentence(help), None, MetricType::Counter)?;
    for (labels, value) in samples {
        family
            .encode_family(labels)?
            .encode_counter::<prometheus_client::encoding::NoLabelSet, _, u64>(value, None)?;
    }
    Ok(())
}

/// Encodes every queue group's metrics and the queues log's.
pub(super) fn encode(e: &mut DescriptorEncoder, log: &Log, queues: &Queues) -> fmt::Result {
    let (mut lag, mut in_flight, mut waiting, mut age, mut depth) =
        (vec![], vec![], vec![], vec![], vec![]);
    let (mut redelivered, mut dead, mut lost) = (vec![], vec![], vec![]);
    for name in queues.names() {
        // Deleted since it was listed.
        let Ok(v) = queues.describe(log, &name) else {
            continue;
        };
        let labels = QueueLabels {
            group: v.group.clone(),
            topic: v.topic.clone(),
        };
        lag.push((labels.clone(), v.lag() as i64));
        in_flight.push((labels.clone(), v.in_flight() as i64));
        waiting.push((labels.clone(), v.waiting() as i64));
        age.push((labels.clone(), v.oldest_unacked_age_ms() as f64 / 1000.0));
        let dlq = QueueLabels {
            group: v.group.clone(),
            topic: v.settings.dlq_topic.clone(),
        };
        depth.push((dlq, v.dlq_depth as i64));
        redelivered.push((labels.clone(), v.redeliveries));
        dead.push((labels.clone(), v.dead_lettered));
        lost.push((labels, v.lost_to_retention));
    }
    gauges(
        e,
        "queue_lag_records",
        "Records between a queue group's acked-up-to points and the log ends",
        &lag,
    )?;
    gauges(
        e,
        "queue_in_flight",
        "Records a queue group has leased to consumers",
        &in_flight,
    )?;
    gauges(
        e,
        "queue_waiting",
        "Records of a queue group backing off after a failed delivery, or delayed",
        &waiting,
    )?;
    gauges(
        e,
        "queue_oldest_unacked_age_seconds",
        "Age of a queue group's oldest unsettled record",
        &age,
    )?;
    gauges(
        e,
        "queue_dlq_depth",
        "Records in a queue group's dead-letter topic (label topic) not yet redriven",
        &depth,
    )?;
    counters(
        e,
        "queue_redeliveries",
        "Records delivered again after a failed delivery",
        &redelivered,
    )?;
    counters(
        e,
        "queue_dead_lettered",
        "Records written to a dead-letter topic",
        &dead,
    )?;
    counters(
        e,
        "queue_lost_to_retention",
        "Records retention removed before the queue group settled them",
        &lost,
    )?;
    let stats = queues.log_stats();
    super::collector::gauge(
        e,
        "queues_log_bytes",
        "Size of the queue groups' state log",
        stats.bytes as i64,
    )?;
    super::collector::counter(
        e,
        "queues_log_syncs",
        "fdatasyncs of the queue groups' state log",
        stats.syncs,
    )
}
