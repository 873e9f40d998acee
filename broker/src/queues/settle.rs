//! Settling leased records: acks, nacks (a backoff, or the consumer's
//! delay), rejects and releases from consumers; lease extensions; and the
//! sweep that treats an expired lease as a failed delivery.

use std::collections::{BTreeMap, BTreeSet};
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
    /// deliveries, are in the dead-letter topic when this returns (call it
    /// from a task of its own: an answer dropped halfway must not leave them
    /// on their way).
    pub async fn acknowledge(
        &self,
        broker: &Broker,
        group: &str,
        consumer: &str,
        acks: &[Acknowledgement],
    ) -> ApiResult<Settled> {
        let mut total = 0u64;
        for a in acks {
            if a.last < a.first || a.last - a.first >= MAX_ACK_SPAN {
                return Err(ApiError::invalid(format!(
                    "acknowledgement of partition {} offsets {}..={}: last_offset must be at least first_offset, \
                     and a range at most {MAX_ACK_SPAN} offsets",
                    a.partition, a.first, a.last
                )));
            }
            total += a.last - a.first + 1;
        }
        if total > MAX_ACK_SPAN * 10 {
            return Err(ApiError::invalid(format!(
                "the acknowledgements span {total} offsets: at most {} in one request",
                MAX_ACK_SPAN * 10
            )));
        }
        // A record to dead-letter must be read first (after a restart, a
        // lease from before it may name a record not read again yet).
        let failing: BTreeSet<u32> = acks
            .iter()
            .filter(|a| matches!(a.outcome, AckOutcome::Reject | AckOutcome::Nack { .. }))
            .map(|a| a.partition)
            .collect();
        self.read_unread(broker, group, &failing).await?;
        let now = now_ms();
        let mut out = Settled::default();
        let holder = Some(consumer);
        let updated = self.store.update(|m| {
            let g = m.groups.get_mut(group).ok_or_else(|| not_found(group))?;
            let settings = g.settings.clone();
            let mut entries = Vec::new();
            let mut leaving: Vec<Leaving> = Vec::new();
            let mut released = 0;
            for a in acks {
                let Some(share) = g.partitions.get_mut(&a.partition) else {
                    out.not_held.push((a.partition, a.first, a.last));
                    continue;
                };
                let (held, lost) = share.held_by(a.first, a.last, consumer);
                out.not_held
                    .extend(lost.into_iter().map(|(f, l)| (a.partition, f, l)));
                if held.is_empty() {
                    continue;
                }
                out.settled += held.len() as u64;
                let reason: Arc<str> = Arc::from(a.reason.as_str());
                let (to_leave, again, delay) = match a.outcome {
                    AckOutcome::Ack => {
                        entries.push(settle_entry(group, a.partition, &held, Outcome::Acked));
                        continue;
                    }
                    AckOutcome::Release => {
                        entries.push(settle_entry(group, a.partition, &held, Outcome::Returned));
                        continue;
                    }
                    AckOutcome::Reject => (held, Vec::new(), None),
                    AckOutcome::Nack { delay } => {
                        let (last_try, again): (Vec<u64>, Vec<u64>) = held.iter().partition(|o| {
                            share
                                .slots
                                .get(o)
                                .is_some_and(|s| s.count >= settings.max_deliveries)
                        });
                        (last_try, again, delay)
                    }
                };
                // One whose record could not be read goes back instead: it
                // is delivered again and answered again.
                let mut again = again;
                for o in to_leave {
                    match take_leaving(share, a.partition, o, holder, &reason, now) {
                        Some(l) => leaving.push(l),
                        None => again.push(o),
                    }
                }
                again.sort_unstable();
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
            Ok((entries, (leaving, released)))
        });
        let (leaving, released) = match updated {
            Ok(((leaving, released), _)) => (leaving, released),
            Err(e) => {
                // Nothing was written: records marked on their way go back.
                self.undo_leaving(group, now);
                return Err(update_error(e));
            }
        };
        if released > 0 {
            self.runtime(group).notify.notify_waiters();
        }
        if !leaving.is_empty() {
            out.dead_lettered = self.dead_letter(broker, group, leaving).await?;
        }
        Ok(out)
    }

    /// Reads into the window the records of `partitions` that the state log
    /// names but that were not read since the broker started.
    async fn read_unread(
        &self,
        broker: &Broker,
        group: &str,
        partitions: &BTreeSet<u32>,
    ) -> ApiResult<()> {
        let unread: Vec<u32> = self.store.with(|m| {
            let Some(g) = m.groups.get(group) else {
                return Vec::new();
            };
            partitions
                .iter()
                .copied()
                .filter(|p| {
                    g.partitions.get(p).is_some_and(|s| {
                        s.unread || s.slots.range(s.fetched_end..).next().is_some()
                    })
                })
                .collect()
        });
        if unread.is_empty() {
            return Ok(());
        }
        let topic = broker.topic(&self.info(group)?.topic)?;
        let rt = self.runtime(group);
        for id in unread {
            let p = topic.partition(id)?;
            let _one_reader = rt.fill.lock().await;
            self.fill(group, &rt, id, &p).await?;
        }
        Ok(())
    }

    /// Puts records marked on their way to the dead-letter topic back
    /// (available at `now`), after a write of the log failed.
    fn undo_leaving(&self, group: &str, now: i64) {
        self.store.with(|m| {
            if let Some(g) = m.groups.get_mut(group) {
                for share in g.partitions.values_mut() {
                    share.undo_leaving(now);
                }
            }
        });
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
        let mut total = 0u64;
        for &(p, first, last) in ranges {
            if last < first || last - first >= MAX_ACK_SPAN {
                return Err(ApiError::invalid(format!(
                    "range of partition {p} offsets {first}..={last}: last_offset must be at least \
                     first_offset, and a range at most {MAX_ACK_SPAN} offsets"
                )));
            }
            total += last - first + 1;
        }
        if total > MAX_ACK_SPAN * 10 {
            return Err(ApiError::invalid(format!(
                "the ranges span {total} offsets: at most {} in one request",
                MAX_ACK_SPAN * 10
            )));
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
                    let Some(share) = g.partitions.get(&p) else {
                        not_held.push((p, first, last));
                        continue;
                    };
                    let (held, lost) = share.held_by(first, last, consumer);
                    not_held.extend(lost.into_iter().map(|(f, l)| (p, f, l)));
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
        let updated = self.store.update(|m| {
            let g = m.groups.get_mut(group).ok_or_else(|| not_found(group))?;
            let settings = g.settings.clone();
            let mut entries = Vec::new();
            let mut leaving = Vec::new();
            let mut unread = Vec::new();
            let mut released = 0;
            let reason: Arc<str> = Arc::from(LEASE_EXPIRED);
            for (&p, share) in g.partitions.iter_mut() {
                let expired = share.expired(now);
                if expired.is_empty() {
                    continue;
                }
                let (last_try, again): (Vec<u64>, Vec<u64>) = expired.iter().partition(|o| {
                    share
                        .slots
                        .get(o)
                        .is_some_and(|s| s.count >= settings.max_deliveries)
                });
                for o in last_try {
                    match take_leaving(share, p, o, None, &reason, now) {
                        Some(l) => leaving.push(l),
                        // Not read since a restart: dead-lettered once read.
                        None => unread.push(p),
                    }
                }
                released += again.len();
                let failed = Failed {
                    reason: LEASE_EXPIRED,
                    now,
                    delay: None,
                };
                entries.extend(release_entries(group, p, share, &again, &settings, &failed));
            }
            Ok((entries, (leaving, released, unread)))
        });
        let (leaving, released, unread) = match updated {
            Ok((v, _)) => v,
            Err(e) => {
                self.undo_leaving(group, now);
                return Err(update_error(e));
            }
        };
        let rt = self.runtime(group);
        if released > 0 {
            tracing::debug!(group, released, "leases expired");
            rt.notify.notify_waiters();
        }
        if !leaving.is_empty() {
            self.dead_letter(broker, group, leaving).await?;
        }
        self.read_unread(broker, group, &unread.into_iter().collect())
            .await?;
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

/// Marks a record as on its way to the dead-letter topic, if it is still
/// leased (to `holder`, or with no holder given, leased with its lease
/// ended: what the sweep chose) and read; returns what the write needs.
fn take_leaving(
    share: &mut Share,
    partition: u32,
    offset: u64,
    holder: Option<&str>,
    reason: &Arc<str>,
    now: i64,
) -> Option<Leaving> {
    let slot = share.slots.get_mut(&offset)?;
    let still = match (&slot.state, holder) {
        (SlotState::Acquired { holder: h, .. }, Some(want)) => &**h == want,
        (SlotState::Acquired { until, .. }, None) => *until <= now,
        _ => false,
    };
    let record = slot.record.clone().filter(|_| still)?;
    slot.state = SlotState::Leaving;
    if slot.first_failure_ms == 0 {
        slot.first_failure_ms = now;
    }
    slot.last_failure_ms = now;
    slot.reason = Some(Arc::clone(reason));
    Some(Leaving {
        partition,
        record,
        count: slot.count,
        reason: Arc::clone(reason),
        first_failure_ms: slot.first_failure_ms,
        last_failure_ms: now,
    })
}

/// How often expired leases are looked for: the tolerance of a lease's end.
pub const SWEEP_PERIOD: Duration = Duration::from_millis(100);
