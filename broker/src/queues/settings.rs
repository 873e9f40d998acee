//! A queue group's settings: lease, retries and their backoff, ordering,
//! its dead-letter topic and how many records it keeps in flight.

use std::time::Duration;

use crate::error::{ApiError, ApiResult, Reason};

/// A queue group's settings (defaults as SQS and KIP-932 users expect).
#[derive(Debug, Clone, PartialEq)]
pub struct QueueSettings {
    /// How long a consumer holds a delivered record before it is
    /// redelivered (visibility timeout). Default 30 s.
    pub lease: Duration,
    /// Deliveries a record may fail before it is dead-lettered. Default 5.
    pub max_deliveries: u32,
    /// The wait before the first redelivery. Default 1 s.
    pub backoff_initial: Duration,
    /// The longest wait between redeliveries. Default 60 s.
    pub backoff_max: Duration,
    /// Each failed delivery multiplies the wait by this (1 = fixed). Default 2.
    pub backoff_multiplier: f64,
    /// Records of one key are never in flight at once, and go in offset order.
    pub key_ordered: bool,
    /// Where dead-lettered records go. Default `<topic>.<group>.dlq`.
    pub dlq_topic: String,
    /// Partitions of the dead-letter topic when the broker creates it. Default 1.
    pub dlq_partitions: u32,
    /// Records per partition past the acked-up-to point that the group
    /// tracks at most (delivered or not): bounds its memory and state.
    /// Default 10,000.
    pub window: u32,
}

/// Longest lease accepted: 12 hours, as SQS's visibility timeout.
pub const MAX_LEASE: Duration = Duration::from_secs(12 * 3600);

/// Largest window accepted.
pub const MAX_WINDOW: u32 = 1_000_000;

impl QueueSettings {
    /// The defaults, with the dead-letter topic named after `topic` and `group`.
    pub fn defaults(topic: &str, group: &str) -> QueueSettings {
        QueueSettings {
            lease: Duration::from_secs(30),
            max_deliveries: 5,
            backoff_initial: Duration::from_secs(1),
            backoff_max: Duration::from_secs(60),
            backoff_multiplier: 2.0,
            key_ordered: false,
            dlq_topic: default_dlq_topic(topic, group),
            dlq_partitions: 1,
            window: 10_000,
        }
    }

    /// Refuses settings out of range, naming the setting.
    pub fn validate(&self, topic: &str) -> ApiResult<()> {
        let bad = |what: String| Err(ApiError::new(Reason::InvalidConfig, what));
        if self.lease < Duration::from_millis(100) || self.lease > MAX_LEASE {
            return bad(format!(
                "lease_ms {} is outside 100..={}",
                self.lease.as_millis(),
                MAX_LEASE.as_millis()
            ));
        }
        if !(1..=1000).contains(&self.max_deliveries) {
            return bad(format!(
                "max_deliveries {} is outside 1..=1000",
                self.max_deliveries
            ));
        }
        if self.backoff_initial > self.backoff_max {
            return bad(format!(
                "backoff_initial_ms {} is over backoff_max_ms {}",
                self.backoff_initial.as_millis(),
                self.backoff_max.as_millis()
            ));
        }
        if self.backoff_max > MAX_LEASE {
            return bad(format!(
                "backoff_max_ms {} is over {}",
                self.backoff_max.as_millis(),
                MAX_LEASE.as_millis()
            ));
        }
        if !(1.0..=10.0).contains(&self.backoff_multiplier) {
            return bad(format!(
                "backoff_multiplier {} is outside 1..=10",
                self.backoff_multiplier
            ));
        }
        if !(1..=MAX_WINDOW).contains(&self.window) {
            return bad(format!(
                "window {} is outside 1..={MAX_WINDOW}",
                self.window
            ));
        }
        if !(1..=1000).contains(&self.dlq_partitions) {
            return bad(format!(
                "dlq_partitions {} is outside 1..=1000",
                self.dlq_partitions
            ));
        }
        if self.dlq_topic == topic {
            return bad(format!(
                "the dead-letter topic cannot be the queue's own topic {topic:?}"
            ));
        }
        brook_storage::validate_topic_name(&self.dlq_topic).map_err(|e| {
            ApiError::new(
                Reason::InvalidConfig,
                format!("dlq_topic {:?}: {e}", self.dlq_topic),
            )
        })
    }

    /// The wait before redelivering a record whose `count`-th delivery
    /// failed: `initial × multiplier^(count−1)`, at most `backoff_max`.
    pub fn backoff(&self, count: u32) -> Duration {
        let exp = count.saturating_sub(1).min(64) as i32;
        let ms = self.backoff_initial.as_millis() as f64 * self.backoff_multiplier.powi(exp);
        Duration::from_millis(ms.min(self.backoff_max.as_millis() as f64) as u64)
    }
}

/// `<topic>.<group>.dlq`, cut to the longest topic name allowed.
pub fn default_dlq_topic(topic: &str, group: &str) -> String {
    let mut name = format!("{topic}.{group}.dlq");
    if name.len() > brook_storage::MAX_TOPIC_NAME {
        // Cut inside the group part and keep the suffix, so the name still
        // says what it is; both parts are ASCII.
        let keep = brook_storage::MAX_TOPIC_NAME - ".dlq".len();
        name.truncate(keep);
        name.push_str(".dlq");
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_by_the_multiplier_up_to_the_cap() {
        let s = QueueSettings::defaults("orders", "billing");
        let waits: Vec<u128> = (1..=8).map(|c| s.backoff(c).as_millis()).collect();
        assert_eq!(waits, [1000, 2000, 4000, 8000, 16000, 32000, 60000, 60000]);
        let fixed = QueueSettings {
            backoff_multiplier: 1.0,
            ..s
        };
        assert_eq!(fixed.backoff(7), Duration::from_secs(1));
    }

    #[test]
    fn settings_out_of_range_are_refused_by_name() {
        let ok = QueueSettings::defaults("orders", "billing");
        ok.validate("orders").unwrap();
        assert_eq!(ok.dlq_topic, "orders.billing.dlq");
        let cases = [
            (
                QueueSettings {
                    max_deliveries: 0,
                    ..ok.clone()
                },
                "max_deliveries",
            ),
            (
                QueueSettings {
                    lease: Duration::from_millis(5),
                    ..ok.clone()
                },
                "lease_ms",
            ),
            (
                QueueSettings {
                    window: 0,
                    ..ok.clone()
                },
                "window",
            ),
            (
                QueueSettings {
                    dlq_topic: "orders".into(),
                    ..ok.clone()
                },
                "dead-letter",
            ),
            (
                QueueSettings {
                    backoff_multiplier: 0.5,
                    ..ok.clone()
                },
                "backoff_multiplier",
            ),
        ];
        for (s, name) in cases {
            let e = s.validate("orders").unwrap_err();
            assert!(e.message().contains(name), "{}", e.message());
        }
    }

    #[test]
    fn a_long_default_dlq_name_is_cut_but_keeps_its_suffix() {
        let t = "t".repeat(200);
        let name = default_dlq_topic(&t, &"g".repeat(200));
        assert_eq!(name.len(), brook_storage::MAX_TOPIC_NAME);
        assert!(name.ends_with(".dlq"));
        brook_storage::validate_topic_name(&name).unwrap();
    }
}
