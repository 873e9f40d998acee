//! One partition as a queue group sees it (KIP-932's share-partition): the
//! acked-up-to point, the records settled above it, and a window of tracked
//! records — each available, leased to a consumer, or on its way to the
//! dead-letter topic — with its delivery count and failure history.
//!
//! Only what the state log holds is durable: the acked-up-to point, the
//! settled ranges, the records delivered at least once and those redriven
//! back into the group. Which records were read from the log (and their
//! keys, not-before times and bytes) is rebuilt after a restart by reading
//! the window again.
//!
//! A record redriven back into the group (`reopen`) is tracked again where
//! it is, even below the acked-up-to point: the point does not move back
//! (that would deliver again every record between), the record is simply
//! one more tracked record, delivered before the window's.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use brook_protocol::batch::Record;

use super::ranges::RangeSet;

/// A record's key, for key-ordered delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Key {
    /// Not read from the log yet (known only from the state log).
    Unknown,
    /// A null key: ordered with nothing.
    Null,
    /// A hash of the key's bytes.
    Hash(u64),
}

/// Where a tracked record is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SlotState {
    /// Deliverable once `ready_at` (ms since the epoch) has passed.
    Available { ready_at: i64 },
    /// Leased to `holder` until `until`.
    Acquired { holder: Arc<str>, until: i64 },
    /// Being written to the dead-letter topic (not in the state log: a
    /// crash leaves the record as it was before, to be dead-lettered again).
    Leaving,
}

/// A tracked record.
#[derive(Debug, Clone)]
pub struct Slot {
    /// Deliveries so far.
    pub count: u32,
    /// Where it is.
    pub state: SlotState,
    /// Not before this time (ms since the epoch), from its headers; 0: none.
    pub deliver_at: i64,
    /// Its key, for key-ordered delivery.
    pub key: Key,
    /// The record itself, once read from the log (zero-copy views of the
    /// segment's memory map).
    pub record: Option<Record>,
    /// When a delivery of it first and last failed (ms; 0: never).
    pub first_failure_ms: i64,
    /// See `first_failure_ms`.
    pub last_failure_ms: i64,
    /// Why its last delivery failed.
    pub reason: Option<Arc<str>>,
}

impl Slot {
    /// A record known only from the state log.
    pub fn unread() -> Slot {
        Slot {
            count: 0,
            state: SlotState::Available { ready_at: 0 },
            deliver_at: 0,
            key: Key::Unknown,
            record: None,
            first_failure_ms: 0,
            last_failure_ms: 0,
            reason: None,
        }
    }

    /// Whether it may be delivered at `now`, order aside.
    fn ready(&self, now: i64) -> bool {
        matches!(self.state, SlotState::Available { ready_at } if ready_at <= now)
            && self.deliver_at <= now
    }

    /// When it becomes ready, if it is available but not yet.
    fn ready_time(&self) -> Option<i64> {
        match self.state {
            SlotState::Available { ready_at } => Some(ready_at.max(self.deliver_at)),
            _ => None,
        }
    }
}

/// The headers that delay a record's delivery: an absolute time, or a delay
/// after the record's timestamp (both ms, ASCII decimal).
pub const DELIVER_AT_HEADER: &str = "brook-deliver-at";
/// See [`DELIVER_AT_HEADER`].
pub const DELAY_HEADER: &str = "brook-delay-ms";

/// When `record` may first be delivered (0: at once). A header that does
/// not parse is ignored: the record is delivered as if it had none.
pub fn deliver_at(record: &Record) -> i64 {
    let num = |v: &[u8]| std::str::from_utf8(v).ok()?.trim().parse::<i64>().ok();
    let mut at = 0;
    for h in &record.headers {
        if h.key == DELIVER_AT_HEADER {
            if let Some(t) = num(&h.value) {
                at = at.max(t);
            }
        } else if h.key == DELAY_HEADER
            && let Some(d) = num(&h.value)
        {
            at = at.max(record.timestamp.saturating_add(d.max(0)));
        }
    }
    at
}

fn key_of(record: &Record) -> Key {
    use std::hash::{Hash, Hasher};
    match &record.key {
        None => Key::Null,
        Some(k) => {
            let mut h = std::collections::hash_map::DefaultHasher::new();
            k.hash(&mut h);
            Key::Hash(h.finish())
        }
    }
}

/// One partition's queue state.
#[derive(Debug, Clone, Default)]
pub struct Share {
    /// Every offset below it is settled (acked or dead-lettered): the
    /// queue's acked-up-to point.
    pub start: u64,
    /// Settled offsets above `start`.
    pub done: RangeSet,
    /// Tracked records: every unsettled one in `start..fetched_end`, those
    /// past it that the state log names (delivered before a restart), and
    /// those below `start` redriven back into the group.
    pub slots: BTreeMap<u64, Slot>,
    /// Records below it were read from the log into `slots` (not durable).
    pub fetched_end: u64,
    /// Every tracked record below it is leased or leaving: where a look for
    /// deliverable records starts (not durable), so that a window full of
    /// records in flight is not walked on every fetch.
    scan_from: u64,
    /// Records were reopened below `fetched_end` and may still lack their
    /// bytes (not durable): a fill looks for them only then.
    pub unread: bool,
}

/// Inclusive spans of offsets, from offsets in ascending order.
pub fn spans(offsets: &[u64]) -> Vec<(u64, u64)> {
    let mut out: Vec<(u64, u64)> = Vec::new();
    for &o in offsets {
        match out.last_mut() {
            Some((_, last)) if *last + 1 == o => *last = o,
            _ => out.push((o, o)),
        }
    }
    out
}

impl Share {
    /// A partition whose records below `start` are not the group's concern.
    pub fn new(start: u64) -> Share {
        Share {
            start,
            fetched_end: start,
            ..Share::default()
        }
    }

    /// The lowest tracked offset: `start`, or a redriven record below it.
    fn floor(&self) -> u64 {
        self.slots
            .keys()
            .next()
            .map_or(self.start, |&o| o.min(self.start))
    }

    /// Records that may still be read into the window. Records known only
    /// from the state log (past `fetched_end`, after a restart) do not count:
    /// they are in the range still to be read.
    pub fn room(&self, window: u32) -> usize {
        let beyond = self.slots.range(self.fetched_end..).count();
        (window as usize).saturating_sub(self.slots.len() - beyond)
    }

    /// Takes records read from the log at `fetched_end`, in offset order
    /// (some may lie below it: a batch starts before the offset asked for).
    pub fn fill(&mut self, records: impl IntoIterator<Item = Record>) {
        for r in records {
            let o = r.offset;
            if o < self.fetched_end {
                continue;
            }
            self.pass_hole(self.fetched_end, o);
            self.fetched_end = o.saturating_add(1);
            if self.done.contains(o) {
                continue;
            }
            let slot = self.slots.entry(o).or_insert_with(Slot::unread);
            slot.key = key_of(&r);
            slot.deliver_at = deliver_at(&r);
            slot.record = Some(r);
        }
    }

    /// Moves `fetched_end` past offsets the log no longer has (compacted
    /// or retained away) up to `to`, when a read found nothing before it.
    pub fn fetched_to(&mut self, to: u64) {
        if to > self.fetched_end {
            self.pass_hole(self.fetched_end, to);
            self.fetched_end = to;
        }
    }

    /// Offsets `first..end` hold no record in the log (a compacted log's
    /// holes; a batch's offsets without records): settled, so that the
    /// acked-up-to point moves past them.
    fn pass_hole(&mut self, first: u64, end: u64) {
        let first = first.max(self.start);
        if first >= end {
            return;
        }
        let gone: Vec<u64> = self.slots.range(first..end).map(|(&o, _)| o).collect();
        for o in gone {
            self.slots.remove(&o);
        }
        self.done.insert(first, end);
        while let Some(end) = self.done.take_run_at(self.start) {
            self.start = end;
        }
    }

    /// Up to `max` records deliverable at `now` (and about `max_bytes`), in
    /// offset order. In key-ordered mode a record is deliverable only when
    /// no earlier unsettled record of its key is tracked, and one per key.
    pub fn acquirable(
        &self,
        now: i64,
        max: usize,
        max_bytes: usize,
        key_ordered: bool,
    ) -> Vec<u64> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let floor = self.floor();
        // Key-ordered mode must see the records in flight: they hold their
        // keys. A record redriven back into the group comes before a later
        // record of its key that may be in flight, which must block it too.
        let mut blocked: HashSet<u64> = if key_ordered {
            self.slots
                .values()
                .filter(|s| !matches!(s.state, SlotState::Available { .. }))
                .filter_map(|s| match s.key {
                    Key::Hash(h) => Some(h),
                    _ => None,
                })
                .collect()
        } else {
            HashSet::new()
        };
        let from = if key_ordered {
            floor
        } else {
            self.scan_from.max(floor)
        };
        for (&o, slot) in self.slots.range(from..self.fetched_end.max(from)) {
            if out.len() >= max || (bytes >= max_bytes && !out.is_empty()) {
                break;
            }
            let ready = slot.ready(now);
            if key_ordered && let Key::Hash(h) = slot.key {
                // Inserting reports whether the key was free.
                if !blocked.insert(h) || !ready {
                    continue;
                }
            } else if !ready {
                continue;
            }
            if let Some(r) = &slot.record {
                bytes +=
                    r.value.as_ref().map_or(0, |v| v.len()) + r.key.as_ref().map_or(0, |k| k.len());
                out.push(o);
            }
        }
        out
    }

    /// The earliest time after `now` at which an available record becomes
    /// deliverable, to wake a waiting fetch.
    pub fn next_ready(&self, now: i64) -> Option<i64> {
        self.slots
            .range(..self.fetched_end)
            .filter_map(|(_, s)| s.ready_time())
            .filter(|&t| t > now)
            .min()
    }

    /// Leases `first..=last` to `holder` until `until`: each one's
    /// delivery count goes up by one.
    pub fn deliver(&mut self, first: u64, last: u64, holder: &Arc<str>, until: i64) {
        for o in first..=last {
            // Below the acked-up-to point only a redriven record is tracked.
            if self.done.contains(o) || (o < self.start && !self.slots.contains_key(&o)) {
                continue;
            }
            let slot = self.slots.entry(o).or_insert_with(Slot::unread);
            slot.count = slot.count.saturating_add(1);
            slot.state = SlotState::Acquired {
                holder: Arc::clone(holder),
                until,
            };
        }
        self.advance_scan();
    }

    /// Moves `scan_from` past the leased and leaving records it starts at.
    fn advance_scan(&mut self) {
        let from = self.scan_from.max(self.floor());
        let mut next = from;
        for (&o, slot) in self.slots.range(from..self.fetched_end.max(from)) {
            if matches!(slot.state, SlotState::Available { .. }) {
                next = o;
                break;
            }
            next = o + 1;
        }
        self.scan_from = next;
    }

    /// A record at `offset` may be deliverable again: looks start there at the latest.
    fn rescan_from(&mut self, offset: u64) {
        self.scan_from = self.scan_from.min(offset);
    }

    /// Settles `first..=last` for good (acked or dead-lettered), and moves
    /// the acked-up-to point past every settled offset it reaches.
    pub fn settle(&mut self, first: u64, last: u64) {
        if first < self.start {
            // Redriven records below the point: settled, nothing else moves.
            let below: Vec<u64> = self
                .slots
                .range(first..=last.min(self.start - 1))
                .map(|(&o, _)| o)
                .collect();
            for o in below {
                self.slots.remove(&o);
            }
        }
        let first = first.max(self.start);
        if first > last {
            return;
        }
        let gone: Vec<u64> = self.slots.range(first..=last).map(|(&o, _)| o).collect();
        for o in gone {
            self.slots.remove(&o);
        }
        self.done.insert(first, last.saturating_add(1));
        while let Some(end) = self.done.take_run_at(self.start) {
            self.start = end;
        }
        self.fetched_end = self.fetched_end.max(self.start);
    }

    /// Makes `first..=last` available again at `ready_at`, after a failed
    /// delivery at `failure_ms` for `reason`.
    pub fn release(
        &mut self,
        first: u64,
        last: u64,
        ready_at: i64,
        reason: &Arc<str>,
        failure_ms: i64,
    ) {
        self.rescan_from(first);
        for (_, slot) in self.slots.range_mut(first..=last) {
            slot.state = SlotState::Available { ready_at };
            if slot.first_failure_ms == 0 {
                slot.first_failure_ms = failure_ms;
            }
            slot.last_failure_ms = failure_ms;
            slot.reason = Some(Arc::clone(reason));
        }
    }

    /// Makes `first..=last` available at once, as if the delivery that
    /// leased them had not happened (a consumer handing back what it did
    /// not process).
    pub fn give_back(&mut self, first: u64, last: u64) {
        self.rescan_from(first);
        for (_, slot) in self.slots.range_mut(first..=last) {
            if matches!(slot.state, SlotState::Acquired { .. }) {
                slot.count = slot.count.saturating_sub(1);
                slot.state = SlotState::Available { ready_at: 0 };
            }
        }
    }

    /// Puts every record on its way to the dead-letter topic back,
    /// available at `ready_at` (a write that would have settled them failed).
    pub fn undo_leaving(&mut self, ready_at: i64) {
        let mut lowest = None;
        for (&o, slot) in self.slots.iter_mut() {
            if slot.state == SlotState::Leaving {
                slot.state = SlotState::Available { ready_at };
                lowest.get_or_insert(o);
            }
        }
        if let Some(o) = lowest {
            self.rescan_from(o);
        }
    }

    /// Extends the leases `holder` has in `first..=last` to `until`.
    pub fn extend(&mut self, first: u64, last: u64, holder: &str, until: i64) {
        for (_, slot) in self.slots.range_mut(first..=last) {
            if let SlotState::Acquired {
                holder: h,
                until: u,
            } = &mut slot.state
                && &**h == holder
            {
                *u = until;
            }
        }
    }

    /// Moves the acked-up-to point to `to` (the log no longer has what lies
    /// below it, or a reset): returns the unsettled records it passed.
    pub fn skip_to(&mut self, to: u64) -> u64 {
        if to <= self.start {
            return 0;
        }
        let unsettled = (to - self.start) - self.done.count_in(self.start, to)
            + self.slots.range(..self.start).count() as u64;
        self.slots = self.slots.split_off(&to);
        self.done.remove_below(to);
        self.start = to;
        self.scan_from = self.scan_from.max(to);
        while let Some(end) = self.done.take_run_at(self.start) {
            self.start = end;
        }
        self.fetched_end = self.fetched_end.max(self.start);
        unsettled
    }

    /// Which of `first..=last` `holder` holds now, and which it does not
    /// (the lease expired and the record went back or elsewhere, or it was
    /// settled already).
    pub fn held_by(&self, first: u64, last: u64, holder: &str) -> (Vec<u64>, Vec<(u64, u64)>) {
        let mut held = Vec::new();
        for (&o, slot) in self.slots.range(first..=last) {
            if let SlotState::Acquired { holder: h, .. } = &slot.state
                && &**h == holder
            {
                held.push(o);
            }
        }
        // What is not held: the gaps between held offsets, as spans.
        let mut lost = Vec::new();
        let mut at = first;
        for &o in &held {
            if o > at {
                lost.push((at, o - 1));
            }
            at = o + 1;
        }
        if at <= last {
            lost.push((at, last));
        }
        (held, lost)
    }

    /// Leased records whose lease ended at or before `now`.
    pub fn expired(&self, now: i64) -> Vec<u64> {
        self.slots
            .iter()
            .filter(|(_, s)| matches!(s.state, SlotState::Acquired { until, .. } if until <= now))
            .map(|(&o, _)| o)
            .collect()
    }

    /// Records leased now.
    pub fn in_flight(&self) -> usize {
        self.slots
            .values()
            .filter(|s| matches!(s.state, SlotState::Acquired { .. }))
            .count()
    }

    /// Records delivered before and waiting for their next delivery
    /// (backing off), or not yet due (delayed).
    pub fn waiting(&self, now: i64) -> usize {
        self.slots
            .range(..self.fetched_end)
            .filter(|(_, s)| matches!(s.state, SlotState::Available { .. }) && !s.ready(now))
            .count()
    }

    /// Unsettled records below `end`: those in `start..end` not settled,
    /// and those redriven back below `start`.
    pub fn unsettled(&self, end: u64) -> u64 {
        end.saturating_sub(self.start) - self.done.count_in(self.start, end.max(self.start))
            + self.slots.range(..self.start).count() as u64
    }

    /// Makes `first..=last` unsettled again (a redrive back into the group):
    /// each one is tracked with no deliveries, available at once. Records
    /// not settled are left as they are (the redrive checks first, see
    /// [`Share::is_settled`]; a replay applies what it decided). Their bytes are read from the
    /// log by the next fill ([`Share::unread_below`]), or with the window
    /// for those it has not read yet.
    pub fn reopen(&mut self, first: u64, last: u64) {
        for o in first..=last {
            if self.slots.contains_key(&o) {
                continue;
            }
            if o >= self.start {
                if !self.done.contains(o) {
                    // Not settled: tracked or still to be read, as it is.
                    continue;
                }
                self.done.remove(o, o + 1);
                if o >= self.fetched_end {
                    // The window reads it when it gets there.
                    continue;
                }
            }
            self.slots.insert(o, Slot::unread());
            self.rescan_from(o);
            self.unread = true;
        }
    }

    /// Tracked records the window has passed without their bytes (reopened
    /// ones): up to `max`, to be read from the log one by one.
    pub fn unread_below(&self, max: usize) -> Vec<u64> {
        if !self.unread {
            return Vec::new();
        }
        self.slots
            .range(..self.fetched_end)
            .filter(|(_, s)| s.record.is_none())
            .map(|(&o, _)| o)
            .take(max)
            .collect()
    }

    /// Gives a tracked record its bytes (read from the log).
    pub fn load(&mut self, record: Record) {
        if let Some(slot) = self.slots.get_mut(&record.offset)
            && slot.record.is_none()
        {
            slot.key = key_of(&record);
            slot.deliver_at = deliver_at(&record);
            slot.record = Some(record);
        }
    }

    /// A tracked record without its bytes that the log no longer has
    /// (retention removed it): settled, as offsets without records are.
    /// Returns whether it was such a record.
    pub fn lose(&mut self, offset: u64) -> bool {
        if self.slots.get(&offset).is_none_or(|s| s.record.is_some()) {
            return false;
        }
        self.slots.remove(&offset);
        if offset >= self.start {
            self.pass_hole(offset, offset + 1);
        }
        true
    }

    /// Whether `offset` is settled: a redrive may put it back.
    pub fn is_settled(&self, offset: u64) -> bool {
        if offset < self.start {
            !self.slots.contains_key(&offset)
        } else {
            self.done.contains(offset)
        }
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;

    fn rec(offset: u64, key: Option<&'static str>) -> Record {
        Record {
            offset,
            timestamp: 1_000,
            key: key.map(|k| Bytes::from_static(k.as_bytes())),
            value: Some(Bytes::from_static(b"v")),
            headers: Vec::new(),
        }
    }

    fn holder(s: &str) -> Arc<str> {
        Arc::from(s)
    }

    #[test]
    fn settling_in_any_order_moves_the_acked_up_to_point_past_contiguous_runs() {
        let mut s = Share::new(10);
        s.fill((10..20).map(|o| rec(o, None)));
        assert_eq!(
            s.acquirable(0, 100, usize::MAX, false),
            (10..20).collect::<Vec<_>>()
        );
        s.deliver(10, 19, &holder("a"), 5);
        s.settle(12, 13);
        s.settle(15, 15);
        assert_eq!(s.start, 10);
        s.settle(10, 11);
        assert_eq!(s.start, 14);
        s.settle(14, 14);
        assert_eq!(s.start, 16);
        assert_eq!(s.unsettled(20), 4);
        assert_eq!(s.slots.len(), 4);
    }

    #[test]
    fn key_ordered_mode_holds_a_key_back_while_an_earlier_record_of_it_is_unsettled() {
        let mut s = Share::new(0);
        s.fill([
            rec(0, Some("a")),
            rec(1, Some("a")),
            rec(2, Some("b")),
            rec(3, None),
            rec(4, None),
        ]);
        assert_eq!(s.acquirable(0, 10, usize::MAX, true), [0, 2, 3, 4]);
        assert_eq!(s.acquirable(0, 10, usize::MAX, false), [0, 1, 2, 3, 4]);
        s.deliver(0, 0, &holder("c1"), 100);
        assert_eq!(s.acquirable(0, 10, usize::MAX, true), [2, 3, 4]);
        // Nacked with a backoff: its key still waits.
        s.release(0, 0, 50, &Arc::from("boom"), 1);
        assert_eq!(s.acquirable(10, 10, usize::MAX, true), [2, 3, 4]);
        assert_eq!(s.acquirable(50, 10, usize::MAX, true), [0, 2, 3, 4]);
        s.deliver(0, 0, &holder("c1"), 100);
        s.settle(0, 0);
        assert_eq!(s.acquirable(50, 10, usize::MAX, true), [1, 2, 3, 4]);
        assert_eq!(s.slots[&1].count, 0);
        assert_eq!(s.slots.get(&0).map(|x| x.count), None);
    }

    #[test]
    fn a_delayed_record_waits_without_holding_back_others() {
        let mut s = Share::new(0);
        let mut delayed = rec(1, Some("k"));
        delayed.headers.push(brook_protocol::batch::RecordHeader {
            key: DELAY_HEADER.into(),
            value: Bytes::from_static(b"500"),
        });
        s.fill([rec(0, Some("j")), delayed, rec(2, Some("m"))]);
        assert_eq!(s.slots[&1].deliver_at, 1_500);
        assert_eq!(s.acquirable(1_000, 10, usize::MAX, true), [0, 2]);
        assert_eq!(s.next_ready(1_000), Some(1_500));
        assert_eq!(s.acquirable(1_500, 10, usize::MAX, true), [0, 1, 2]);
        assert_eq!(s.waiting(1_000), 1);
    }

    #[test]
    fn only_the_holder_settles_and_expired_leases_are_found() {
        let mut s = Share::new(0);
        s.fill((0..4).map(|o| rec(o, None)));
        s.deliver(0, 1, &holder("a"), 100);
        s.deliver(2, 3, &holder("b"), 200);
        assert_eq!(s.held_by(0, 3, "a"), (vec![0, 1], vec![(2, 3)]));
        assert_eq!(s.held_by(0, 9, "b"), (vec![2, 3], vec![(0, 1), (4, 9)]));
        assert_eq!(s.expired(150), [0, 1]);
        s.extend(0, 3, "a", 300);
        assert_eq!(s.expired(250), [2, 3]);
        assert_eq!(s.in_flight(), 4);
    }

    #[test]
    fn skipping_counts_the_unsettled_records_passed() {
        let mut s = Share::new(0);
        s.fill((0..10).map(|o| rec(o, None)));
        s.deliver(0, 9, &holder("a"), 5);
        s.settle(2, 3);
        assert_eq!(s.skip_to(6), 4);
        assert_eq!((s.start, s.slots.len()), (6, 4));
        s.settle(7, 9);
        assert_eq!(s.skip_to(7), 1);
        assert_eq!(s.start, 10);
    }

    #[test]
    fn a_record_released_below_the_leased_ones_is_found_again() {
        let mut s = Share::new(0);
        s.fill((0..6).map(|o| rec(o, None)));
        s.deliver(0, 3, &holder("a"), 10);
        assert_eq!(s.acquirable(0, 10, usize::MAX, false), [4, 5]);
        s.deliver(4, 5, &holder("b"), 10);
        assert!(s.acquirable(0, 10, usize::MAX, false).is_empty());
        s.release(2, 2, 0, &Arc::from("x"), 1);
        s.give_back(5, 5);
        assert_eq!(s.acquirable(0, 10, usize::MAX, false), [2, 5]);
        s.settle(0, 1);
        s.fill((6..8).map(|o| rec(o, None)));
        assert_eq!(s.acquirable(0, 10, usize::MAX, false), [2, 5, 6, 7]);
    }

    /// After a restart the window holds only what the state log names
    /// (past `fetched_end`): it must not count as full, or nothing is read.
    #[test]
    fn records_known_only_from_the_state_log_leave_room_to_read_them() {
        let mut s = Share::new(0);
        s.deliver(0, 9, &holder("a"), 10);
        assert_eq!(s.fetched_end, 0);
        assert_eq!(s.room(10), 10);
        s.fill((0..12).map(|o| rec(o, None)));
        assert_eq!(s.room(10), 0);
        assert!(s.slots.values().all(|x| x.record.is_some()));
    }

    #[test]
    fn offsets_without_records_are_passed_as_settled() {
        let mut s = Share::new(0);
        s.fill([rec(0, None), rec(3, None)]);
        s.deliver(0, 0, &holder("a"), 10);
        s.settle(0, 0);
        assert_eq!(s.start, 3, "1 and 2 hold no record");
        s.fetched_to(10);
        s.deliver(3, 3, &holder("a"), 10);
        s.settle(3, 3);
        assert_eq!(s.start, 10);
    }

    /// A redrive back into the group: the records are tracked again where
    /// they are, delivered first, and settling them moves nothing else.
    #[test]
    fn reopened_records_are_delivered_again_without_moving_the_acked_up_to_point() {
        let mut s = Share::new(0);
        s.fill((0..10).map(|o| rec(o, None)));
        s.deliver(0, 9, &holder("a"), 10);
        s.settle(0, 7);
        s.settle(9, 9);
        assert_eq!((s.start, s.unsettled(10)), (8, 1));
        // 3 is below the point, 9 settled above it, 8 still leased.
        s.reopen(3, 3);
        s.reopen(9, 9);
        s.reopen(8, 8);
        assert_eq!(s.start, 8);
        assert_eq!(s.unsettled(10), 3);
        assert_eq!(s.unread_below(10), [3, 9], "their bytes are read again");
        assert!(s.acquirable(0, 10, usize::MAX, false).is_empty());
        s.load(rec(3, None));
        s.load(rec(9, None));
        assert!(s.unread_below(10).is_empty());
        assert_eq!(s.acquirable(0, 10, usize::MAX, false), [3, 9]);
        s.deliver(3, 3, &holder("b"), 10);
        assert_eq!(s.slots[&3].count, 1, "counted from 0 again");
        assert_eq!(s.slots[&8].count, 1, "the leased record is left as it was");
        s.settle(3, 3);
        assert_eq!((s.start, s.unsettled(10)), (8, 2));
        assert!(!s.slots.contains_key(&3));
        s.settle(8, 9);
        assert_eq!((s.start, s.unsettled(10), s.slots.len()), (10, 0, 0));
        // Reopening what is tracked or not yet read changes nothing.
        s.reopen(10, 12);
        assert!(s.slots.is_empty());
    }

    #[test]
    fn a_reopened_record_waits_while_a_later_record_of_its_key_is_in_flight() {
        let mut s = Share::new(0);
        s.fill([rec(0, Some("a")), rec(1, Some("a")), rec(2, Some("b"))]);
        s.deliver(0, 0, &holder("c"), 10);
        s.settle(0, 0);
        s.deliver(1, 1, &holder("c"), 10);
        s.reopen(0, 0);
        s.load(rec(0, Some("a")));
        assert_eq!(s.acquirable(0, 10, usize::MAX, true), [2]);
        s.settle(1, 1);
        assert_eq!(s.acquirable(0, 10, usize::MAX, true), [0, 2]);
    }

    /// The acked-up-to point held back by an unrelated record: the record
    /// reopened above it still waits for its key's later record.
    #[test]
    fn a_record_reopened_above_the_point_waits_for_its_key_too() {
        let mut s = Share::new(0);
        s.fill([rec(0, Some("b")), rec(1, Some("a")), rec(2, Some("a"))]);
        s.deliver(0, 1, &holder("c"), 10);
        s.settle(1, 1);
        s.deliver(2, 2, &holder("c"), 10);
        assert!(s.is_settled(1) && !s.is_settled(0) && !s.is_settled(2));
        s.reopen(1, 1);
        s.load(rec(1, Some("a")));
        assert!(s.acquirable(0, 10, usize::MAX, true).is_empty());
        s.settle(2, 2);
        assert_eq!(s.acquirable(0, 10, usize::MAX, true), [1]);
    }

    #[test]
    fn a_reopened_record_the_log_no_longer_has_is_dropped() {
        let mut s = Share::new(0);
        s.fill((0..4).map(|o| rec(o, None)));
        s.deliver(0, 3, &holder("a"), 10);
        s.settle(0, 1);
        s.settle(3, 3);
        s.reopen(1, 1);
        s.reopen(3, 3);
        assert!(s.lose(1) && s.lose(3));
        assert!(!s.lose(2), "2 has its bytes: not lost");
        assert_eq!((s.start, s.unsettled(4)), (2, 1));
        s.settle(2, 2);
        assert_eq!(s.start, 4, "3 stays settled");
        assert!(s.slots.is_empty());
    }

    #[test]
    fn spans_join_consecutive_offsets() {
        assert_eq!(spans(&[1, 2, 3, 5, 7, 8]), [(1, 3), (5, 5), (7, 8)]);
        assert!(spans(&[]).is_empty());
    }
}
