//! The durable state of every queue group, as a state machine over the
//! queue log `<data>/~queues/queues.log` (a [`StateLog`]): each fetch,
//! settlement and lease extension appends one small frame, and the log is
//! rewritten as a snapshot once it doubles — ranges and per-record entries
//! for the window only, never the topic.
//!
//! [`StateLog`]: crate::statelog::StateLog

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use super::ranges::RangeSet;
use super::settings::QueueSettings;
use super::share::{Share, Slot, SlotState};
use crate::statelog::Machine;

/// The log's first line.
pub const MAGIC: &[u8] = b"brook-queues-log 1\n";

/// The log's file name in `<data>/~queues/`.
pub const NAME: &str = "queues.log";

/// One frame: a change to one queue group.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Entry {
    /// The queue group.
    #[prost(string, tag = "1")]
    pub group: String,
    /// The change.
    #[prost(oneof = "Op", tags = "2, 3, 4, 5, 6, 7, 8, 9, 10")]
    pub op: Option<Op>,
}

/// The changes a frame can hold.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Op {
    /// The group is created or its settings change.
    #[prost(message, tag = "2")]
    Config(ConfigEntry),
    /// The group is deleted.
    #[prost(bool, tag = "3")]
    Delete(bool),
    /// Records leased to a consumer: each one's delivery count goes up.
    #[prost(message, tag = "4")]
    Deliver(DeliverEntry),
    /// Records acked, dead-lettered, or released for another delivery.
    #[prost(message, tag = "5")]
    Settle(SettleEntry),
    /// Leases extended.
    #[prost(message, tag = "6")]
    Extend(DeliverEntry),
    /// The acked-up-to point moved (retention removed records, or the
    /// group starts at the end of the log).
    #[prost(message, tag = "7")]
    Skip(SkipEntry),
    /// A partition's whole state (a rewrite).
    #[prost(message, tag = "8")]
    Snapshot(PartitionSnapshot),
    /// Dead-lettered records redriven.
    #[prost(message, tag = "9")]
    Redriven(RedrivenEntry),
    /// Dead-lettered records redriven back into the group: their source
    /// records unsettled again and the dead letters marked, in one frame.
    #[prost(message, tag = "10")]
    Reopen(ReopenEntry),
}

/// Settings of a queue group.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConfigEntry {
    #[prost(string, tag = "1")]
    pub topic: String,
    #[prost(uint64, tag = "2")]
    pub lease_ms: u64,
    #[prost(uint32, tag = "3")]
    pub max_deliveries: u32,
    #[prost(uint64, tag = "4")]
    pub backoff_initial_ms: u64,
    #[prost(uint64, tag = "5")]
    pub backoff_max_ms: u64,
    #[prost(double, tag = "6")]
    pub backoff_multiplier: f64,
    #[prost(bool, tag = "7")]
    pub key_ordered: bool,
    #[prost(string, tag = "8")]
    pub dlq_topic: String,
    #[prost(uint32, tag = "9")]
    pub dlq_partitions: u32,
    #[prost(uint32, tag = "10")]
    pub window: u32,
    #[prost(int64, tag = "11")]
    pub created_ms: i64,
}

/// Inclusive offsets.
#[derive(Clone, Copy, PartialEq, prost::Message)]
pub struct Span {
    #[prost(uint64, tag = "1")]
    pub first: u64,
    #[prost(uint64, tag = "2")]
    pub last: u64,
}

/// Records leased (or leases extended) to `holder` until `lease_until_ms`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeliverEntry {
    #[prost(uint32, tag = "1")]
    pub partition: u32,
    #[prost(string, tag = "2")]
    pub holder: String,
    #[prost(int64, tag = "3")]
    pub lease_until_ms: i64,
    #[prost(message, repeated, tag = "4")]
    pub spans: Vec<Span>,
}

/// How records were settled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum Outcome {
    /// Acked: done.
    Acked = 0,
    /// Failed: available again at `ready_at_ms`.
    Released = 1,
    /// Written to the dead-letter topic: done.
    DeadLettered = 2,
    /// Handed back unprocessed: available at once, the delivery uncounted.
    Returned = 3,
}

/// Records settled.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SettleEntry {
    #[prost(uint32, tag = "1")]
    pub partition: u32,
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
    #[prost(enumeration = "Outcome", tag = "3")]
    pub outcome: i32,
    /// Released: when the next delivery may happen.
    #[prost(int64, tag = "4")]
    pub ready_at_ms: i64,
    /// Released: why the delivery failed.
    #[prost(string, tag = "5")]
    pub reason: String,
    /// Released: when it failed.
    #[prost(int64, tag = "6")]
    pub failure_ms: i64,
}

/// The acked-up-to point of a partition moves to `to`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SkipEntry {
    #[prost(uint32, tag = "1")]
    pub partition: u32,
    #[prost(uint64, tag = "2")]
    pub to: u64,
}

/// A partition's whole state.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PartitionSnapshot {
    #[prost(uint32, tag = "1")]
    pub partition: u32,
    #[prost(uint64, tag = "2")]
    pub start: u64,
    #[prost(message, repeated, tag = "3")]
    pub done: Vec<Span>,
    #[prost(message, repeated, tag = "4")]
    pub slots: Vec<SlotEntry>,
    /// More records of the partition snapshotted just before (a partition
    /// with a large window takes several entries).
    #[prost(bool, tag = "5")]
    pub more: bool,
}

/// A record delivered at least once.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SlotEntry {
    #[prost(uint64, tag = "1")]
    pub offset: u64,
    #[prost(uint32, tag = "2")]
    pub count: u32,
    /// Leased to (empty: available).
    #[prost(string, tag = "3")]
    pub holder: String,
    #[prost(int64, tag = "4")]
    pub lease_until_ms: i64,
    #[prost(int64, tag = "5")]
    pub ready_at_ms: i64,
    #[prost(int64, tag = "6")]
    pub first_failure_ms: i64,
    #[prost(int64, tag = "7")]
    pub last_failure_ms: i64,
    #[prost(string, tag = "8")]
    pub reason: String,
}

/// Records of a dead-letter partition redriven.
#[derive(Clone, PartialEq, prost::Message)]
pub struct RedrivenEntry {
    #[prost(uint32, tag = "1")]
    pub dlq_partition: u32,
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
}

/// Source records of one partition made unsettled again, and the dead
/// letters they were redriven from.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ReopenEntry {
    /// The source partition.
    #[prost(uint32, tag = "1")]
    pub partition: u32,
    /// Its offsets made unsettled again.
    #[prost(message, repeated, tag = "2")]
    pub spans: Vec<Span>,
    /// The dead-letter partition they were redriven from.
    #[prost(uint32, tag = "3")]
    pub dlq_partition: u32,
    /// The dead letters, marked redriven.
    #[prost(message, repeated, tag = "4")]
    pub dlq_spans: Vec<Span>,
}

/// One queue group.
#[derive(Debug, Clone)]
pub struct QueueGroup {
    /// The topic it reads.
    pub topic: String,
    /// Its settings.
    pub settings: QueueSettings,
    /// When it was created (ms).
    pub created_ms: i64,
    /// Its partitions, created as they are first fetched from.
    pub partitions: BTreeMap<u32, Share>,
    /// Per dead-letter partition, the records redriven.
    pub redriven: BTreeMap<u32, RangeSet>,
}

/// Every queue group: the state log's machine.
#[derive(Default)]
pub struct QueueState {
    /// By name.
    pub groups: BTreeMap<String, QueueGroup>,
}

fn settings_of(c: &ConfigEntry) -> QueueSettings {
    QueueSettings {
        lease: Duration::from_millis(c.lease_ms),
        max_deliveries: c.max_deliveries,
        backoff_initial: Duration::from_millis(c.backoff_initial_ms),
        backoff_max: Duration::from_millis(c.backoff_max_ms),
        backoff_multiplier: c.backoff_multiplier,
        key_ordered: c.key_ordered,
        dlq_topic: c.dlq_topic.clone(),
        dlq_partitions: c.dlq_partitions,
        window: c.window,
    }
}

/// The entry that creates a group reading `topic` with `s`, or changes its settings.
pub fn config_entry(topic: &str, s: &QueueSettings, created_ms: i64) -> ConfigEntry {
    ConfigEntry {
        topic: topic.to_string(),
        lease_ms: s.lease.as_millis() as u64,
        max_deliveries: s.max_deliveries,
        backoff_initial_ms: s.backoff_initial.as_millis() as u64,
        backoff_max_ms: s.backoff_max.as_millis() as u64,
        backoff_multiplier: s.backoff_multiplier,
        key_ordered: s.key_ordered,
        dlq_topic: s.dlq_topic.clone(),
        dlq_partitions: s.dlq_partitions,
        window: s.window,
        created_ms,
    }
}

/// Spans as entries.
pub fn span_entries(spans: &[(u64, u64)]) -> Vec<Span> {
    spans
        .iter()
        .map(|&(first, last)| Span { first, last })
        .collect()
}

/// Records per snapshot entry at most, so no frame nears the reader's limit.
const SNAPSHOT_SLOTS: usize = 50_000;

impl QueueGroup {
    /// The partition's state, created at offset 0 on first use.
    pub fn share(&mut self, partition: u32) -> &mut Share {
        self.partitions.entry(partition).or_default()
    }
}

/// Whether a span from the log is one this broker could have written:
/// ordered, and none near the end of the offset space (so `last + 1`
/// cannot overflow). Settled and redriven spans are ranges, of any length.
fn sane(s: &Span) -> bool {
    s.first <= s.last && s.last < u64::MAX / 2
}

/// [`sane`], and no longer than a window: a span that is walked offset by
/// offset (leases, releases). A frame with a good CRC but a longer span
/// (another version, a bug) is skipped rather than looped over.
fn walkable(s: &Span) -> bool {
    sane(s) && s.last - s.first < u64::from(super::settings::MAX_WINDOW)
}

impl Machine for QueueState {
    type Entry = Entry;
    const MAGIC: &'static [u8] = MAGIC;
    const WHAT: &'static str = "the queues log";

    fn apply(&mut self, entry: Entry) {
        let Some(mut op) = entry.op else { return };
        match &mut op {
            Op::Deliver(d) | Op::Extend(d) => d.spans.retain(walkable),
            Op::Settle(s)
                if s.outcome == Outcome::Acked as i32
                    || s.outcome == Outcome::DeadLettered as i32 =>
            {
                s.spans.retain(sane)
            }
            Op::Settle(s) => s.spans.retain(walkable),
            Op::Redriven(r) => r.spans.retain(sane),
            Op::Reopen(r) => {
                r.spans.retain(walkable);
                r.dlq_spans.retain(sane);
            }
            Op::Snapshot(p) => {
                p.done.retain(sane);
                p.slots.retain(|e| e.offset < u64::MAX / 2);
            }
            Op::Skip(s) => s.to = s.to.min(u64::MAX / 2),
            Op::Config(_) | Op::Delete(_) => {}
        }
        if let Op::Config(c) = &op {
            let settings = settings_of(c);
            match self.groups.get_mut(&entry.group) {
                Some(g) => g.settings = settings,
                None => {
                    self.groups.insert(
                        entry.group.clone(),
                        QueueGroup {
                            topic: c.topic.clone(),
                            settings,
                            created_ms: c.created_ms,
                            partitions: BTreeMap::new(),
                            redriven: BTreeMap::new(),
                        },
                    );
                }
            }
            return;
        }
        if let Op::Delete(_) = op {
            self.groups.remove(&entry.group);
            return;
        }
        // A change to a group deleted meanwhile (it cannot come after the
        // delete in the log, but a snapshot of nothing is harmless).
        let Some(g) = self.groups.get_mut(&entry.group) else {
            return;
        };
        match op {
            Op::Config(_) | Op::Delete(_) => {}
            Op::Deliver(d) => {
                let holder: Arc<str> = Arc::from(d.holder.as_str());
                let share = g.share(d.partition);
                for s in d.spans {
                    share.deliver(s.first, s.last, &holder, d.lease_until_ms);
                }
            }
            Op::Extend(d) => {
                let share = g.share(d.partition);
                for s in d.spans {
                    share.extend(s.first, s.last, &d.holder, d.lease_until_ms);
                }
            }
            Op::Settle(s) => {
                let share = g.share(s.partition);
                let reason: Arc<str> = Arc::from(s.reason.as_str());
                for span in s.spans {
                    match Outcome::try_from(s.outcome) {
                        Ok(Outcome::Released) => share.release(
                            span.first,
                            span.last,
                            s.ready_at_ms,
                            &reason,
                            s.failure_ms,
                        ),
                        Ok(Outcome::Returned) => share.give_back(span.first, span.last),
                        // An outcome of a newer version settles: it is not delivered again.
                        _ => share.settle(span.first, span.last),
                    }
                }
            }
            Op::Skip(s) => {
                g.share(s.partition).skip_to(s.to);
            }
            Op::Snapshot(p) => {
                let mut fresh = Share::new(p.start);
                let share = if p.more {
                    g.share(p.partition)
                } else {
                    &mut fresh
                };
                for d in p.done {
                    share.done.insert(d.first, d.last + 1);
                }
                for e in p.slots {
                    let mut slot = Slot::unread();
                    slot.count = e.count;
                    slot.state = if e.holder.is_empty() {
                        SlotState::Available {
                            ready_at: e.ready_at_ms,
                        }
                    } else {
                        SlotState::Acquired {
                            holder: Arc::from(e.holder.as_str()),
                            until: e.lease_until_ms,
                        }
                    };
                    slot.first_failure_ms = e.first_failure_ms;
                    slot.last_failure_ms = e.last_failure_ms;
                    slot.reason = (!e.reason.is_empty()).then(|| Arc::from(e.reason.as_str()));
                    // Below the acked-up-to point: redriven back, to be read.
                    share.unread |= e.offset < p.start;
                    share.slots.insert(e.offset, slot);
                }
                if !p.more {
                    g.partitions.insert(p.partition, fresh);
                }
            }
            Op::Redriven(r) => {
                let set = g.redriven.entry(r.dlq_partition).or_default();
                for s in r.spans {
                    set.insert(s.first, s.last + 1);
                }
            }
            Op::Reopen(r) => {
                let share = g.share(r.partition);
                for s in r.spans {
                    share.reopen(s.first, s.last);
                }
                let set = g.redriven.entry(r.dlq_partition).or_default();
                for s in r.dlq_spans {
                    set.insert(s.first, s.last + 1);
                }
            }
        }
    }

    fn snapshot(&self, out: &mut dyn FnMut(Entry)) {
        for (name, g) in &self.groups {
            let entry = |op| Entry {
                group: name.clone(),
                op: Some(op),
            };
            out(entry(Op::Config(config_entry(
                &g.topic,
                &g.settings,
                g.created_ms,
            ))));
            for (&partition, share) in &g.partitions {
                let done: Vec<Span> = share
                    .done
                    .iter()
                    .map(|(first, end)| Span {
                        first,
                        last: end - 1,
                    })
                    .collect();
                // Only records delivered at least once, or redriven back
                // below the acked-up-to point, are durable state; the rest
                // are read from the log again.
                let slots: Vec<SlotEntry> = share
                    .slots
                    .iter()
                    .filter(|(o, s)| s.count > 0 || **o < share.start)
                    .map(|(&offset, s)| slot_entry(offset, s))
                    .collect();
                let mut chunks = slots.chunks(SNAPSHOT_SLOTS);
                out(entry(Op::Snapshot(PartitionSnapshot {
                    partition,
                    start: share.start,
                    done,
                    slots: chunks.next().map(<[_]>::to_vec).unwrap_or_default(),
                    more: false,
                })));
                for chunk in chunks {
                    out(entry(Op::Snapshot(PartitionSnapshot {
                        partition,
                        start: share.start,
                        done: Vec::new(),
                        slots: chunk.to_vec(),
                        more: true,
                    })));
                }
            }
            for (&dlq_partition, set) in &g.redriven {
                out(entry(Op::Redriven(RedrivenEntry {
                    dlq_partition,
                    spans: set
                        .iter()
                        .map(|(first, end)| Span {
                            first,
                            last: end - 1,
                        })
                        .collect(),
                })));
            }
        }
    }
}

impl QueueState {
    /// What the log keeps, one line per item: each group's settings, each
    /// partition's acked-up-to point and settled ranges, each delivered
    /// record's entry, the redriven ranges. Equal lines, equal durable state.
    pub fn durable_lines(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, g) in &self.groups {
            out.push(format!("{name} {} {:?}", g.topic, g.settings));
            for (p, s) in &g.partitions {
                let done: Vec<_> = s.done.iter().collect();
                out.push(format!("{name}/{p} start {} done {done:?}", s.start));
                for (o, slot) in s.slots.iter().filter(|(o, x)| x.count > 0 || **o < s.start) {
                    out.push(format!("{:?}", slot_entry(*o, slot)));
                }
            }
            for (p, r) in &g.redriven {
                out.push(format!(
                    "{name} redriven {p} {:?}",
                    r.iter().collect::<Vec<_>>()
                ));
            }
        }
        out
    }
}

fn slot_entry(offset: u64, s: &Slot) -> SlotEntry {
    let (holder, lease_until_ms, ready_at_ms) = match &s.state {
        SlotState::Acquired { holder, until } => (holder.to_string(), *until, 0),
        SlotState::Available { ready_at } => (String::new(), 0, *ready_at),
        // Not durable: the record is as it was before it was chosen for the
        // dead-letter topic, which is what a crash would leave, too.
        SlotState::Leaving => (String::new(), 0, 0),
    };
    SlotEntry {
        offset,
        count: s.count,
        holder,
        lease_until_ms,
        ready_at_ms,
        first_failure_ms: s.first_failure_ms,
        last_failure_ms: s.last_failure_ms,
        reason: s.reason.as_deref().unwrap_or_default().to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::statelog::StateLog;
    use brook_storage::FlushPolicy;

    /// What the log must keep of a partition: the acked-up-to point, the
    /// settled ranges, and each delivered record's count, state and failure.
    fn durable(m: &QueueState) -> Vec<String> {
        m.durable_lines()
    }

    fn entry(group: &str, op: Op) -> Entry {
        Entry {
            group: group.into(),
            op: Some(op),
        }
    }

    fn spans_of(first: u64, len: u64) -> Vec<Span> {
        vec![Span {
            first,
            last: first + len - 1,
        }]
    }

    /// Entries with any values (as a frame with a good CRC but written by
    /// something else could hold) are applied without a panic or a loop
    /// over a huge range.
    #[test]
    fn any_entry_applies_without_a_panic() {
        let mut m = QueueState::default();
        let settings = QueueSettings::defaults("orders", "g");
        m.apply(entry("g", Op::Config(config_entry("orders", &settings, 1))));
        let extremes = [
            0,
            1,
            7,
            u64::MAX / 2 - 1,
            u64::MAX / 2,
            u64::MAX - 1,
            u64::MAX,
        ];
        for &a in &extremes {
            for &b in &extremes {
                let spans = vec![Span { first: a, last: b }];
                let ops = [
                    Op::Deliver(DeliverEntry {
                        partition: 0,
                        holder: "c".into(),
                        lease_until_ms: i64::MAX,
                        spans: spans.clone(),
                    }),
                    Op::Extend(DeliverEntry {
                        partition: 0,
                        holder: "c".into(),
                        lease_until_ms: i64::MIN,
                        spans: spans.clone(),
                    }),
                    Op::Settle(SettleEntry {
                        partition: 0,
                        spans: spans.clone(),
                        outcome: 7,
                        ..Default::default()
                    }),
                    Op::Settle(SettleEntry {
                        partition: 0,
                        spans: spans.clone(),
                        outcome: Outcome::Released as i32,
                        ..Default::default()
                    }),
                    Op::Settle(SettleEntry {
                        partition: 0,
                        spans: spans.clone(),
                        outcome: Outcome::Returned as i32,
                        ..Default::default()
                    }),
                    Op::Redriven(RedrivenEntry {
                        dlq_partition: u32::MAX,
                        spans: spans.clone(),
                    }),
                    Op::Skip(SkipEntry {
                        partition: 1,
                        to: a,
                    }),
                    Op::Snapshot(PartitionSnapshot {
                        partition: 2,
                        start: a,
                        done: spans,
                        slots: vec![SlotEntry {
                            offset: b,
                            count: u32::MAX,
                            ..Default::default()
                        }],
                        more: a % 2 == 0,
                    }),
                ];
                for op in ops {
                    m.apply(entry("g", op));
                }
                m.apply(Entry {
                    group: "nobody".into(),
                    op: None,
                });
            }
        }
        let g = &m.groups["g"];
        assert!(g.partitions.values().all(|s| s.slots.len() < 100));
    }

    /// Settled ranges far longer than a window (a record held back while
    /// millions after it are acked) survive a snapshot and a replay.
    #[test]
    fn a_settled_range_longer_than_a_window_survives_a_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NAME);
        let open = |rewrite: bool| {
            StateLog::open(
                path.clone(),
                FlushPolicy::Never,
                QueueState::default(),
                move |_| Ok(rewrite),
            )
            .unwrap()
        };
        let log = open(false);
        let settings = QueueSettings::defaults("orders", "g");
        log.append(vec![entry(
            "g",
            Op::Config(config_entry("orders", &settings, 1)),
        )])
        .unwrap();
        log.append(vec![entry(
            "g",
            Op::Deliver(DeliverEntry {
                partition: 0,
                holder: "c".into(),
                lease_until_ms: 9,
                spans: spans_of(100, 1),
            }),
        )])
        .unwrap();
        // Acked in many small steps, as consumers do, merging into one range.
        for first in (101..3_000_101).step_by(100_000) {
            log.append(vec![entry(
                "g",
                Op::Settle(SettleEntry {
                    partition: 0,
                    spans: spans_of(first, 100_000),
                    outcome: Outcome::Acked as i32,
                    ..Default::default()
                }),
            )])
            .unwrap();
        }
        log.append(vec![entry(
            "g",
            Op::Redriven(RedrivenEntry {
                dlq_partition: 0,
                spans: spans_of(0, 2_000_000),
            }),
        )])
        .unwrap();
        let before = log.with(|m| durable(m));
        assert!(
            before.iter().any(|l| l.contains("(101, 3000101)")),
            "{before:?}"
        );
        drop(log);
        drop(open(true));
        assert_eq!(open(false).with(|m| durable(m)), before);
    }

    /// Random changes, then the log reopened and the log rewritten: the
    /// state read back is the state written, both ways.
    #[test]
    fn reopening_and_rewriting_keep_the_durable_state() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(NAME);
        let open = || {
            StateLog::open(
                path.clone(),
                FlushPolicy::Never,
                QueueState::default(),
                |_| Ok(false),
            )
            .unwrap()
        };
        let log = open();
        let settings = QueueSettings::defaults("orders", "g");
        log.append(vec![entry(
            "g",
            Op::Config(config_entry("orders", &settings, 1)),
        )])
        .unwrap();
        log.append(vec![entry(
            "gone",
            Op::Config(config_entry("orders", &settings, 1)),
        )])
        .unwrap();
        let mut seed = 0x1234_5678_9abc_def1u64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for step in 0..400 {
            let p = next(3) as u32;
            let first = next(200);
            let len = 1 + next(10);
            let op = match next(7) {
                0 | 1 => Op::Deliver(DeliverEntry {
                    partition: p,
                    holder: format!("c{}", next(3)),
                    lease_until_ms: step,
                    spans: spans_of(first, len),
                }),
                2 => Op::Settle(SettleEntry {
                    partition: p,
                    spans: spans_of(first, len),
                    outcome: Outcome::Acked as i32,
                    ..Default::default()
                }),
                3 => Op::Settle(SettleEntry {
                    partition: p,
                    spans: spans_of(first, len),
                    outcome: Outcome::Released as i32,
                    ready_at_ms: step,
                    reason: format!("r{step}"),
                    failure_ms: step,
                }),
                4 => Op::Skip(SkipEntry {
                    partition: p,
                    to: next(60),
                }),
                5 => Op::Redriven(RedrivenEntry {
                    dlq_partition: p,
                    spans: spans_of(first, len),
                }),
                _ => Op::Reopen(ReopenEntry {
                    partition: p,
                    spans: spans_of(next(200), len),
                    dlq_partition: p,
                    dlq_spans: spans_of(first, len),
                }),
            };
            log.append(vec![entry("g", op)]).unwrap();
        }
        log.append(vec![entry("gone", Op::Delete(true))]).unwrap();
        let replayed_only = log.with(|m| durable(m));
        assert!(replayed_only.len() > 20, "{replayed_only:?}");
        drop(log);
        let log = open();
        assert_eq!(log.with(|m| durable(m)), replayed_only, "replayed");
        drop(log);
        // Opened with a snapshot written whole (what a rewrite writes),
        // then one more change after it: read back the same.
        let log = StateLog::open(
            path.clone(),
            FlushPolicy::Never,
            QueueState::default(),
            |_| Ok(true),
        )
        .unwrap();
        assert_eq!(log.with(|m| durable(m)), replayed_only, "snapshotted");
        log.append(vec![entry(
            "g",
            Op::Deliver(DeliverEntry {
                partition: 9,
                holder: "late".into(),
                lease_until_ms: 7,
                spans: spans_of(3, 4),
            }),
        )])
        .unwrap();
        let before = log.with(|m| durable(m));
        assert_ne!(before, replayed_only);
        drop(log);
        let log = open();
        assert_eq!(log.with(|m| durable(m)), before, "rewritten");
    }
}
