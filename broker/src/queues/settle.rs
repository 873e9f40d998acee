//! Settling leased records: acks, nacks (a backoff, or the consumer's
//! delay), rejects and releases from consumers; lease extensions; and the
//! sweep that treats an expired lease as a failed delivery.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use brook_storage::now_ms;

use super::deadletter::Leaving;
use super::share::{Share, SlotState, spans};
use super::store::{DeliverEntry, Entry, Op, Outcome, SettleEntry, span_entries};
use super::{QueueSettings, Queues, not_found, update_error};
use crate::error::{ApiError, ApiResult};
use crate::state::Broker;

/// What a consumer says about a leased record.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum AckOutcome {
    /// Done.
    Ack,
    /// Failed: redeliver after the group's backoff, or after `delay`.
    Nack {
        /// Instead of the group's backoff.
        delay: Option<Duration>,
    },
    /// Poison: to the dead-letter topic now.
    Reject,
    /// Not processed: redeliver at once; the delivery does not count.
    Release,
}

/// One range of a consumer's acknowledgements.
#[derive(Debug, Clone)]
pub struct Acknowledgement {
    /// The partition.
    pub partition: u32,
    /// First offset.
    pub first: u64,
    /// Last offset, inclusive.
    pub last: u64,
    /// What happened.
    pub outcome: AckOutcome,
    /// Why it failed (nack, reject).
    pub reason: String,
}

/// What an acknowledgement did.
#[derive(Debug, Default)]
pub struct Settled {
    /// Records settled.
    pub settled: u64,
    /// Ranges the consumer did not hold.
    pub not_held: OffsetRanges,
    /// Records written to the dead-letter topic.
    pub dead_lettered: u64,
}

/// Ranges `(partition, first, last)`, last inclusive.
pub type OffsetRanges = Vec<(u32, u64, u64)>;

/// Most offsets one acknowledgement range may span.
pub const MAX_ACK_SPAN: u64 = 100_000;

/// Why an expired lease failed the delivery, as dead-letter headers say it.
const LEASE_EXPIRED: &str = "lease expired";

fn settle_entry(group: &str, partition: u32, offsets: &[u64], outcome: Outcome) -> Entry {
    Entry {
        group: group.to_string(),
        op: Some(Op::Settle(SettleEntry {
            partition,
            spans: span_entries(&spans(offsets)),
            outcome: outcome as i32,
            ready_at_ms: 0,
            reason: String::new(),
            failure_ms: 0,
        })),
    }
}

/// A failed delivery: why, when, and the wait the consumer asked for.
struct Failed<'a> {
    reason: &'a str,
    now: i64,
    delay: Option<Duration>,
}

/// Entries that release `offsets` after failed deliveries, each ready
/// after the consumer's delay or its own backoff.
fn release_entries(
    group: &str,
    partition: u32,
    share: &Share,
    offsets: &[u64],
    settings: &QueueSettings,
    failed: &Failed<'_>,
) -> Vec<Entry> {
    let (reason, now) = (failed.reason, failed.now);
    let mut by_ready: BTreeMap<i64, Vec<u64>> = BTreeMap::new();
    for &o in offsets {
        let count = share.slots.get(&o).map_or(1, |s| s.count);
        let wait = failed.delay.unwrap_or_else(|| settings.backoff(count));
        by_ready
            .entry(now + wait.as_millis() as i64)
            .or_default()
            .push(o);
    }
    by_ready
        .into_iter()
        .map(|(ready_at_ms, offsets)| Entry {
            group: group.to_string(),
            op: Some(Op::Settle(SettleEntry {
                partition,
                spans: span_entries(&spans(&offsets)),
                outcome: Outcome::Released as i32,
                ready_at_ms,
                reason: reason.to_string(),
                failure_ms: now,
            })),
        })
        .collect()
}

impl Queues {
    /// Settles `acks` of `consumer`'s leases; records it no longer holds
    /// are reported, not settled. Rejected records, and nacked ones out of
    /// deliveries, are in the dead-letter topic when this returns.
    pub async fn acknowledge(
        &self,
        broker: &Broker,
        group: &str,
        consumer: &str,
        acks: &[Acknowledgement],
    ) -> ApiResult<Settled> {
        for a in acks {
            if a.last < a.first || a.last - a.first >= MAX_ACK_SPAN {
                return Err(ApiError::invalid(format!(
                    "acknowledgement of partition {} offsets {}..={}: last_offset must be at least first_offset, \
                     and a range at most {MAX_ACK_SPAN} offsets",
                    a.partition, a.first, a.last
                )));
            }
        }
        let now = now_ms();
        let mut out = Settled::default();
        // Records to dead-letter: chosen under the lock, marked after the
        // other settlements are written.
        let ((to_leave, released), _) = self
            .store
            .update(|m| {
                let g = m.groups.get_mut(group).ok_or_else(|| not_found(group))?;
                let settings = g.settings.clone();
                let mut entries = Vec::new();
                let mut to_leave: Vec<(u32, u64, Arc<str>)> = Vec::new();
                let mut released = 0;
                for a in acks {
                    let share = g.share(a.partition);
                    let (held, lost) = share.held_by(a.first, a.last, consumer);
                    out.not_held
                        .extend(spans(&lost).into_iter().map(|(f, l)| (a.partition, f, l)));
                    if held.is_empty() {
                        continue;
                    }
                    out.settled += held.len() as u64;
                    let reason: Arc<str> = Arc::from(a.reason.as_str());
                    match a.outcome {
                        AckOutcome::Ack => {
                            entries.push(settle_entry(group, a.partition, &held, Outcome::Acked))
                        }
                        AckOutcome::Release => {
                            entries.push(settle_entry(group, a.partition, &held, Outcome::Returned))
                        }
                        AckOutcome::Reject => to_leave
                            .extend(held.iter().map(|&o| (a.partition, o, Arc::clone(&reason)))),
                        AckOutcome::Nack { delay } => {
                            let (last_try, again): (Vec<u64>, Vec<u64>) =
                                held.iter().partition(|o| {
                                    share
                                        .slots
                                        .get(o)
                                        .is_some_and(|s| s.count >= settings.max_deliveries)
                                });
                            to_leave.extend(
                                last_try
                                    .iter()
                                    .map(|&o| (a.partition, o, Arc::clone(&reason))),
                            );
                            released += again.len();
                            let failed = Failed {
                                reason: &a.reason,
                                now,
                                delay,
                            };
                            entries.extend(release_entries(
                                group,
                                a.partition,
                                share,
                                &again,
                                &settings,
                                &failed,
                            ));
                        }
                    }
                }
                Ok((entries, (to_leave, released)))
            })
            .map_err(update_error)?;
        let rt = self.runtime(group);
        if released > 0 {
            rt.notify.notify_waiters();
        }
        let leaving = self.mark_leaving(group, &to_leave, Some(consumer), now);
        if !leaving.is_empty() {
            out.dead_lettered = self.dead_letter(broker, group, leaving).await?;
        }
        Ok(out)
    }

    /// Marks records as on their way to the dead-letter topic, if they are
    /// still leased to `holder` (or, without one, leased at all or
    /// available): a lease may have expired since they were chosen.
    pub(super) fn mark_leaving(
        &self,
        group: &str,
        chosen: &[(u32, u64, Arc<str>)],
        holder: Option<&str>,
        now: i64,
    ) -> Vec<Leaving> {
        if chosen.is_empty() {
            return Vec::new();
        }
        self.store.with(|m| {
            let Some(g) = m.groups.get_mut(group) else {
                return Vec::new();
            };
            let mut out = Vec::new();
            for (partition, offset, reason) in chosen {
                let Some(slot) = g.share(*partition).slots.get_mut(offset) else {
                    continue;
                };
                let still = match (&slot.state, holder) {
                    (SlotState::Acquired { holder: h, .. }, Some(want)) => &**h == want,
                    (SlotState::Leaving, _) | (_, Some(_)) => false,
                    (_, None) => true,
                };
                let Some(record) = slot.record.clone().filter(|_| still) else {
                    continue;
                };
                slot.state = SlotState::Leaving;
                if slot.first_failure_ms == 0 {
                    slot.first_failure_ms = now;
                }
                slot.last_failure_ms = now;
                slot.reason = Some(Arc::clone(reason));
                out.push(Leaving {
                    partition: *partition,
                    record,
                    count: slot.count,
                    reason: Arc::clone(reason),
                    first_failure_ms: slot.first_failure_ms,
                    last_failure_ms: now,
                });
            }
            out
        })
    }

    /// Extends `consumer`'s leases in `ranges` by `lease` (the group's if
    /// `None`): returns the new end and the ranges it did not hold.
    pub fn extend(
        &self,
        group: &str,
        consumer: &str,
        ranges: &[(u32, u64, u64)],
        lease: Option<Duration>,
    ) -> ApiResult<(i64, OffsetRanges)> {
        for &(p, first, last) in ranges {
            if last < first || last - first >= MAX_ACK_SPAN {
                return Err(ApiError::invalid(format!(
                    "range of partition {p} offsets {first}..={last}: last_offset must be at least \
                     first_offset, and a range at most {MAX_ACK_SPAN} offsets"
                )));
            }
        }
        let now = now_ms();
        let ((until, not_held), _) = self
            .store
            .update(|m| {
                let g = m.groups.get_mut(group).ok_or_else(|| not_found(group))?;
                let lease = lease
                    .unwrap_or(g.settings.lease)
                    .min(super::settings::MAX_LEASE);
                let until = now + lease.as_millis() as i64;
                let mut entries = Vec::new();
                let mut not_held = Vec::new();
                for &(p, first, last) in ranges {
                    let (held, lost) = g.share(p).held_by(first, last, consumer);
                    not_held.extend(spans(&lost).into_iter().map(|(f, l)| (p, f, l)));
                    if !held.is_empty() {
                        entries.push(Entry {
                            group: group.to_string(),
                            op: Some(Op::Extend(DeliverEntry {
                                partition: p,
                                holder: consumer.to_string(),
                                lease_until_ms: until,
                                spans: span_entries(&spans(&held)),
                            })),
                        });
                    }
                }
                Ok((entries, (until, not_held)))
            })
            .map_err(update_error)?;
        Ok((until, not_held))
    }

    /// Expired leases are failed deliveries: each record goes back after its
    /// backoff, or to the dead-letter topic if it was its last delivery.
    /// Run by the broker every [`SWEEP_PERIOD`].
    pub async fn sweep(&self, broker: &Broker) {
        for group in self.names() {
            if let Err(e) = self.sweep_group(broker, &group).await {
                tracing::warn!(group, error = %e, "queue group sweep failed; retrying");
            }
        }
    }

    async fn sweep_group(&self, broker: &Broker, group: &str) -> ApiResult<()> {
        let now = now_ms();
        let ((to_leave, released), _) = self
            .store
            .update(|m| {
                let g = m.groups.get_mut(group).ok_or_else(|| not_found(group))?;
                let settings = g.settings.clone();
                let mut entries = Vec::new();
                let mut to_leave = Vec::new();
                let mut released = 0;
                let reason: Arc<str> = Arc::from(LEASE_EXPIRED);
                for (&p, share) in &g.partitions {
                    let expired = share.expired(now);
                    if expired.is_empty() {
                        continue;
                    }
                    let (last_try, again): (Vec<u64>, Vec<u64>) = expired
                        .iter()
                        .partition(|o| share.slots[o].count >= settings.max_deliveries);
                    // One whose record is not read yet (after a restart)
                    // stays expired until a fetch reads it.
                    to_leave.extend(
                        last_try
                            .iter()
                            .filter(|o| share.slots[o].record.is_some())
                            .map(|&o| (p, o, Arc::clone(&reason))),
                    );
                    released += again.len();
                    let failed = Failed {
                        reason: LEASE_EXPIRED,
                        now,
                        delay: None,
                    };
                    entries.extend(release_entries(group, p, share, &again, &settings, &failed));
                }
                Ok((entries, (to_leave, released)))
            })
            .map_err(update_error)?;
        let rt = self.runtime(group);
        if released > 0 {
            tracing::debug!(group, released, "leases expired");
            rt.notify.notify_waiters();
        }
        let leaving = self.mark_leaving(group, &to_leave, None, now);
        if !leaving.is_empty() {
            self.dead_letter(broker, group, leaving).await?;
        }
        // Partitions no fetch looks at still lose what retention removes.
        if let Ok(t) = broker.topic(&self.info(group)?.topic) {
            for (id, p) in t.partitions() {
                let tracked = self.store.with(|m| {
                    m.groups
                        .get(group)
                        .is_some_and(|g| g.partitions.contains_key(&id))
                });
                if tracked {
                    self.skip_removed(group, &rt, id, &p)?;
                }
            }
        }
        Ok(())
    }
}

/// How often expired leases are looked for: the tolerance of a lease's end.
pub const SWEEP_PERIOD: Duration = Duration::from_millis(100);
