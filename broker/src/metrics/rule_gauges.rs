//! Routing-rule metrics, read from the rules' state when scraped: records
//! selected and forwarded, deliveries refused, lag, and whether each rule
//! runs.

use std::fmt;

use brook_protocol::v1;
use brook_storage::Log;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};

use super::collector::gauges;
use super::queue_gauges::counters;
use crate::rules::Rules;

/// Labels of per-rule metrics.
#[derive(EncodeLabelSet, Debug, Clone, PartialEq, Eq, Hash)]
struct RuleLabels {
    rule: String,
    source_topic: String,
}

/// Encodes every rule's metrics.
pub(super) fn encode(e: &mut DescriptorEncoder, log: &Log, rules: &Rules) -> fmt::Result {
    let (mut matched, mut forwarded, mut failed) = (vec![], vec![], vec![]);
    let (mut lag, mut running) = (vec![], vec![]);
    for name in rules.names() {
        // Deleted since it was listed.
        let Ok(status) = rules.status(&name) else {
            continue;
        };
        let labels = RuleLabels {
            rule: name,
            source_topic: status.definition.source_topic.clone(),
        };
        matched.push((
            labels.clone(),
            status.partitions.values().map(|p| p.matched).sum(),
        ));
        forwarded.push((
            labels.clone(),
            status.partitions.values().map(|p| p.forwarded).sum(),
        ));
        failed.push((labels.clone(), status.failed));
        running.push((
            labels.clone(),
            i64::from(status.state == v1::RuleState::Running),
        ));
        let behind: u64 = match log.topic(&status.definition.source_topic) {
            Ok(topic) => (topic.partitions().iter())
                .map(|(n, p)| {
                    let at = status.partitions.get(n).map_or(0, |at| at.position);
                    p.high_watermark()
                        .saturating_sub(at.max(p.log_start_offset()))
                })
                .sum(),
            Err(_) => 0,
        };
        lag.push((labels, behind as i64));
    }
    counters(
        e,
        "rule_matched",
        "Source records a routing rule's pattern selected",
        &matched,
    )?;
    counters(
        e,
        "rule_forwarded",
        "Records a routing rule wrote to its targets (one per target)",
        &forwarded,
    )?;
    counters(
        e,
        "rule_failed",
        "Deliveries a routing rule's targets refused since the broker started",
        &failed,
    )?;
    gauges(
        e,
        "rule_lag_records",
        "Source records a routing rule has not looked at yet",
        &lag,
    )?;
    gauges(
        e,
        "rule_running",
        "1 while a routing rule delivers, 0 when paused or failed",
        &running,
    )
}
