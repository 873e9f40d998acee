//! When each part of a compacted log first became clean: the clock a
//! tombstone's `delete_retention_ms` counts on, as Kafka's (KIP-534)
//! counts from the tombstone's first cleaning rather than its timestamp.
//!
//! The first pass that covers a tombstone removes every older record of
//! its key; the tombstone itself must then stay `delete_retention_ms`, so
//! that a reader who saw an older value and reads on to the end in that
//! time sees the deletion. A producer's timestamp cannot be that clock: a
//! tombstone mirrored or replayed with its original (old) timestamp would
//! go in the same pass that removed the values it deletes.

/// Most ranges kept: beyond it the two oldest still in retention merge,
/// taking the later time (their tombstones then stay a little longer).
const MAX_RANGES: usize = 64;

/// Ranges of offsets and when a pass first covered each: `(end, at_ms)`,
/// ends and times increasing; offsets below the first end became clean at
/// its time, and so on. Offsets past the last end are not clean yet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanHistory {
    ranges: Vec<(u64, i64)>,
}

impl CleanHistory {
    /// A history that knows only that offsets below `cleaned_to` were clean
    /// by `at_ms` (a checkpoint without ranges: counting from its reading
    /// keeps tombstones longer, never shorter).
    pub fn clean_by(cleaned_to: u64, at_ms: i64) -> CleanHistory {
        CleanHistory {
            ranges: match cleaned_to {
                0 => Vec::new(),
                end => vec![(end, at_ms)],
            },
        }
    }

    /// When `offset` became clean; `now_ms` if it is not clean yet (the
    /// pass under way cleans it now).
    pub fn since(&self, offset: u64, now_ms: i64) -> i64 {
        self.ranges
            .iter()
            .find(|(end, _)| *end > offset)
            .map_or(now_ms, |(_, at)| *at)
    }

    /// Records that a pass at `now_ms` covered everything below
    /// `covered_end`, and folds ranges whose tombstones may all go under
    /// `retention_ms` into one.
    pub fn record(&mut self, covered_end: u64, now_ms: i64, retention_ms: u64) {
        if self.ranges.last().is_none_or(|(end, _)| covered_end > *end) {
            self.ranges.push((covered_end, now_ms));
        }
        let horizon = now_ms.saturating_sub(i64::try_from(retention_ms).unwrap_or(i64::MAX));
        let expired = self.ranges.iter().filter(|(_, at)| *at <= horizon).count();
        if expired > 1 {
            self.ranges.drain(..expired - 1);
        }
        while self.ranges.len() > MAX_RANGES {
            let first = usize::from(expired > 0);
            let (end, at) = self.ranges[first + 1];
            self.ranges[first] = (end, at);
            self.ranges.remove(first + 1);
        }
    }

    /// Forgets what lies at or past `offset` (a truncation cut it).
    pub fn truncate(&mut self, offset: u64) {
        for r in &mut self.ranges {
            r.0 = r.0.min(offset);
        }
        self.ranges.dedup_by_key(|r| r.0);
        self.ranges.retain(|r| r.0 > 0);
    }

    /// The ranges as text: `end:at_ms` pairs separated by spaces.
    pub fn encode(&self) -> String {
        let pairs: Vec<String> = self
            .ranges
            .iter()
            .map(|(end, at)| format!("{end}:{at}"))
            .collect();
        pairs.join(" ")
    }

    /// Parses [`CleanHistory::encode`]'s text; `None` if it is not that.
    pub fn decode(text: &str) -> Option<CleanHistory> {
        let mut ranges: Vec<(u64, i64)> = Vec::new();
        for pair in text.split_whitespace() {
            let (end, at) = pair.split_once(':')?;
            let (end, at) = (end.parse().ok()?, at.parse().ok()?);
            if ranges.last().is_some_and(|(e, a)| *e >= end || *a > at) {
                return None;
            }
            ranges.push((end, at));
        }
        Some(CleanHistory { ranges })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_offset_is_clean_since_the_first_pass_that_covered_it() {
        let mut h = CleanHistory::default();
        assert_eq!(h.since(0, 5), 5, "nothing clean yet: cleaned now");
        h.record(10, 100, 1000);
        h.record(10, 150, 1000);
        h.record(25, 200, 1000);
        assert_eq!((h.since(0, 300), h.since(9, 300)), (100, 100));
        assert_eq!((h.since(10, 300), h.since(24, 300)), (200, 200));
        assert_eq!(h.since(25, 300), 300);
        assert_eq!(CleanHistory::decode(&h.encode()), Some(h.clone()));
        h.truncate(12);
        assert_eq!((h.since(11, 300), h.since(12, 300)), (200, 300));
        assert_eq!(CleanHistory::decode("5:10 4:20"), None);
        assert_eq!(CleanHistory::decode("5:10 x"), None);
    }

    #[test]
    fn ranges_past_retention_fold_and_the_count_stays_bounded() {
        let mut h = CleanHistory::default();
        for i in 1..=200u64 {
            h.record(i * 10, i as i64 * 100, 5_000);
        }
        assert!(h.ranges.len() <= MAX_RANGES + 1, "{}", h.ranges.len());
        // Within retention of the last pass: never earlier than the truth.
        for offset in [0, 1000, 1500, 1990] {
            let truth = (offset / 10 + 1) as i64 * 100;
            assert!(
                h.since(offset, 0) >= truth,
                "{offset}: {} < {truth}",
                h.since(offset, 0)
            );
        }
        // Past retention: may go, as they would have.
        assert!(h.since(0, 0) + 5_000 <= 20_000);
    }
}
