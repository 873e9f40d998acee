//! Sets of offsets kept as ranges: what a queue group has settled above its
//! acked-up-to point, and which dead-lettered records were redriven.

use std::collections::BTreeMap;

/// A set of offsets as disjoint, non-adjacent ranges.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    /// First offset of each range → one past its last.
    ranges: BTreeMap<u64, u64>,
}

impl RangeSet {
    /// Adds `first..end`.
    pub fn insert(&mut self, first: u64, end: u64) {
        if first >= end {
            return;
        }
        let (mut lo, mut hi) = (first, end);
        // A range that starts before `first` and reaches it merges.
        if let Some((&s, &e)) = self.ranges.range(..=first).next_back()
            && e >= first
        {
            lo = s;
            hi = hi.max(e);
            self.ranges.remove(&s);
        }
        // Ranges that start inside (or right after) the new one merge.
        while let Some((&s, &e)) = self.ranges.range(lo..=hi).next() {
            hi = hi.max(e);
            self.ranges.remove(&s);
        }
        self.ranges.insert(lo, hi);
    }

    /// Whether `offset` is in the set.
    pub fn contains(&self, offset: u64) -> bool {
        self.ranges
            .range(..=offset)
            .next_back()
            .is_some_and(|(_, &e)| offset < e)
    }

    /// Removes every offset below `to`.
    pub fn remove_below(&mut self, to: u64) {
        while let Some((&s, &e)) = self.ranges.iter().next() {
            if s >= to {
                break;
            }
            self.ranges.remove(&s);
            if e > to {
                self.ranges.insert(to, e);
                break;
            }
        }
    }

    /// Removes `first..end`.
    pub fn remove(&mut self, first: u64, end: u64) {
        if first >= end {
            return;
        }
        let cut: Vec<(u64, u64)> = self
            .ranges
            .range(..end)
            .rev()
            .take_while(|(_, e)| **e > first)
            .map(|(&s, &e)| (s, e))
            .collect();
        for (s, e) in cut {
            self.ranges.remove(&s);
            if s < first {
                self.ranges.insert(s, first);
            }
            if e > end {
                self.ranges.insert(end, e);
            }
        }
    }

    /// If the first range starts at `at`, removes it and returns its end.
    pub fn take_run_at(&mut self, at: u64) -> Option<u64> {
        let (&s, &e) = self.ranges.iter().next()?;
        (s == at).then(|| {
            self.ranges.remove(&s);
            e
        })
    }

    /// The ranges as `(first, end)`, in order.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|(&s, &e)| (s, e))
    }

    /// Offsets in the set.
    #[cfg(test)]
    pub fn len(&self) -> u64 {
        self.ranges.iter().map(|(s, e)| e - s).sum()
    }

    /// Offsets of the set in `first..end`.
    pub fn count_in(&self, first: u64, end: u64) -> u64 {
        let mut n = 0;
        let start = self
            .ranges
            .range(..=first)
            .next_back()
            .map_or(first, |(&s, _)| s);
        for (&s, &e) in self.ranges.range(start..end) {
            let (a, b) = (s.max(first), e.min(end));
            n += b.saturating_sub(a);
        }
        n
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use super::*;

    /// Random inserts, removals and cuts against a plain set of offsets.
    #[test]
    fn behaves_as_a_set_of_offsets() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        for _ in 0..200 {
            let (mut set, mut model) = (RangeSet::default(), BTreeSet::new());
            for _ in 0..40 {
                match next(10) {
                    0 => {
                        let to = next(100);
                        set.remove_below(to);
                        model.retain(|&o| o >= to);
                    }
                    1 => {
                        let at = model.iter().next().copied().unwrap_or(0);
                        if let Some(end) = set.take_run_at(at) {
                            assert!((at..end).all(|o| model.remove(&o)));
                            assert!(!model.contains(&end));
                        } else {
                            assert!(!model.contains(&at) || model.is_empty());
                        }
                    }
                    2 => {
                        let first = next(100);
                        let end = first + next(12);
                        set.remove(first, end);
                        model.retain(|&o| !(first..end).contains(&o));
                    }
                    _ => {
                        let first = next(100);
                        let end = first + next(8);
                        set.insert(first, end);
                        model.extend(first..end);
                    }
                }
                assert_eq!(set.len(), model.len() as u64);
                for o in 0..110 {
                    assert_eq!(set.contains(o), model.contains(&o), "offset {o}");
                }
                let (a, b) = (next(110), next(110));
                let (a, b) = (a.min(b), a.max(b));
                assert_eq!(set.count_in(a, b), model.range(a..b).count() as u64);
                // Ranges stay disjoint and never touch.
                let r: Vec<_> = set.iter().collect();
                assert!(r.windows(2).all(|w| w[0].1 < w[1].0), "{r:?}");
            }
        }
    }
}
