//! Log compaction: which records of a run of batches a cleaning pass
//! keeps, as Kafka's log cleaner decides it, and the background thread
//! that runs passes.
//!
//! A pass first reads the dirty part of the log into an [`OffsetMap`] (the
//! latest offset of every key, in bounded memory: [`MapBuilder`]), then
//! rewrites batches with [`clean_batch`]: a record is dropped when a later
//! record of its key is in the map, and a tombstone (a null value) that is
//! its key's latest is dropped once its retention ran out.
//! Offsets never change: a rewritten batch keeps its base offset, producer
//! fields, first timestamp and compression, and spans the offsets of the
//! records it lost (`Batch::without`). The pass over one partition and its
//! segment swap are `Partition::clean` (partition/clean.rs); the thread
//! that picks partitions is [`Cleaner`].
//!
//! Rooms: `offset_map`, `throttle` (the I/O rate bound), `cleaner` (the
//! thread and its counters).

mod cleaner;
mod history;
mod offset_map;
#[cfg(test)]
mod tests;
mod throttle;

use std::collections::BTreeSet;

use brook_protocol::batch::{Batch, Compression, DecodeError};
use bytes::Bytes;

pub use cleaner::{Cleaner, CleanerOptions, CleanerStats};
pub use history::CleanHistory;
pub use offset_map::OffsetMap;
pub use throttle::Throttle;

/// What a pass does to one batch.
#[derive(Debug, Clone)]
pub enum Cleaned {
    /// Every record stays: the batch is kept as it is.
    Unchanged,
    /// Some records go: the batch rebuilt without them.
    Rebuilt(Batch),
    /// Every record goes: the batch rebuilt with none, still spanning its
    /// offsets. The caller keeps it only where a producer's state needs it
    /// (its last batch), as Kafka does.
    Emptied(Batch),
}

/// Reads the keys of batches, in log order, into a map of bounded size.
#[derive(Debug)]
pub struct MapBuilder {
    map: OffsetMap,
    covered: Option<u64>,
    full: bool,
}

impl MapBuilder {
    /// An empty map that holds at most `limit_bytes` of keys and entries.
    pub fn new(limit_bytes: usize) -> MapBuilder {
        MapBuilder {
            map: OffsetMap::new(limit_bytes),
            covered: None,
            full: false,
        }
    }

    /// Adds the keys of `batch` (the next one in the log), all or none:
    /// false, and nothing added, when they do not all fit (the map is full
    /// from then on). The first batch is always taken, even past the
    /// limit, so that every pass makes progress. Keys of a compressed batch are copied, so that the
    /// map does not keep its whole decompressed body alive; others are
    /// zero-copy slices of the segment.
    pub fn add(&mut self, batch: &Batch) -> Result<bool, DecodeError> {
        if self.full {
            return Ok(false);
        }
        let h = batch.header();
        if h.transactional_or_control() {
            self.covered = Some(h.next_offset());
            return Ok(true);
        }
        let copy = h.compression() != Compression::None;
        let mut keyed = Vec::with_capacity((h.record_count as usize).min(4096));
        for record in batch.records() {
            let record = record?;
            if let Some(key) = record.key {
                let key = match copy {
                    true => Bytes::copy_from_slice(&key),
                    false => key,
                };
                keyed.push((key, record.offset));
            }
        }
        let first = self.covered.is_none();
        if !first && !self.map.has_room_for(keyed.iter().map(|(k, _)| k)) {
            self.full = true;
            return Ok(false);
        }
        for (key, offset) in &keyed {
            self.map.put_anyway(key, *offset);
        }
        self.covered = Some(h.next_offset());
        Ok(true)
    }

    /// Whether a batch did not fit.
    pub fn is_full(&self) -> bool {
        self.full
    }

    /// The offset after the last batch added, if any was.
    pub fn covered_end(&self) -> Option<u64> {
        self.covered
    }

    /// The map built.
    pub fn finish(self) -> OffsetMap {
        self.map
    }
}

/// Reads the keys of `batches` (in log order) into a map of at most
/// `limit_bytes`. Returns the map and the offset it covers up to: the end
/// of the last batch whose every key fitted. A full map ends the covered
/// range at a batch boundary, so a batch is never half in it.
pub fn build_map<'a>(
    batches: impl IntoIterator<Item = &'a Batch>,
    limit_bytes: usize,
) -> Result<(OffsetMap, u64), DecodeError> {
    let mut b = MapBuilder::new(limit_bytes);
    for batch in batches {
        if !b.add(batch)? {
            break;
        }
    }
    let covered = b.covered_end().unwrap_or(0);
    Ok((b.finish(), covered))
}

/// What [`clean_batch`] removed and kept, summed over a pass.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tally {
    /// Records removed because a later record of their key exists.
    pub superseded: u64,
    /// Tombstones removed because their retention ran out.
    pub tombstones: u64,
    /// The first offset of a tombstone kept (its key's latest, still
    /// within its retention): the next to go.
    pub first_kept_tombstone: Option<u64>,
}

/// `batch` as a pass leaves it: a record below `covered_end` goes when
/// `map` holds a later offset for its key; a tombstone that is its key's
/// latest goes when `tombstone_expired(offset, timestamp)` says so.
/// Records without a key, records at or past `covered_end` and control
/// batches stay.
pub fn clean_batch(
    batch: &Batch,
    map: &OffsetMap,
    covered_end: u64,
    tombstone_expired: &dyn Fn(u64, i64) -> bool,
    tally: &mut Tally,
) -> Result<Cleaned, DecodeError> {
    if batch.header().transactional_or_control() {
        return Ok(Cleaned::Unchanged);
    }
    let mut drop = BTreeSet::new();
    let base = batch.header().base_offset;
    for record in batch.records() {
        let r = record?;
        let Some(key) = &r.key else {
            continue;
        };
        if r.offset >= covered_end {
            continue;
        }
        let superseded = map.latest(key).is_some_and(|latest| latest > r.offset);
        let tombstone = r.value.is_none();
        let expired_tombstone =
            tombstone && !superseded && tombstone_expired(r.offset, r.timestamp);
        if superseded {
            tally.superseded += 1;
        } else if expired_tombstone {
            tally.tombstones += 1;
        } else if tombstone {
            let first = tally.first_kept_tombstone.get_or_insert(r.offset);
            *first = (*first).min(r.offset);
        }
        if superseded || expired_tombstone {
            drop.insert((r.offset - base) as u32);
        }
    }
    if drop.is_empty() {
        return Ok(Cleaned::Unchanged);
    }
    let rebuilt = batch.without(&drop)?;
    Ok(match drop.len() as u32 == batch.header().record_count {
        true => Cleaned::Emptied(rebuilt),
        false => Cleaned::Rebuilt(rebuilt),
    })
}
