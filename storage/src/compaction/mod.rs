//! Log compaction's core (issue 18, in progress): which records of a run
//! of batches a cleaning pass keeps, as Kafka's log cleaner decides it.
//!
//! A pass first reads the dirty part of the log into an [`OffsetMap`] (the
//! latest offset of every key, in bounded memory), then rewrites batches
//! with [`clean_batch`]: a record is dropped when a later record of its key
//! is in the map, and a tombstone (a null value) that is its key's latest
//! is dropped once it is older than the tombstone horizon. Offsets never
//! change: a rewritten batch keeps its base offset, producer fields, first
//! timestamp and compression, and spans the offsets of the records it lost
//! (`Batch::without`). Not wired into partitions yet: the cleaner thread,
//! the segment swap and its recovery, and the topic settings come next.

mod offset_map;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;

use brook_protocol::batch::{Batch, DecodeError};

pub use offset_map::OffsetMap;

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

/// Reads the keys of `batches` (in log order) into a map of at most
/// `limit_bytes`. Returns the map and the offset it covers up to: the end
/// of the last batch whose every key fitted. A full map ends the covered
/// range at a batch boundary, so a batch is never half in it.
pub fn build_map<'a>(
    batches: impl IntoIterator<Item = &'a Batch>,
    limit_bytes: usize,
) -> Result<(OffsetMap, u64), DecodeError> {
    let mut map = OffsetMap::new(limit_bytes);
    let mut covered = None;
    for batch in batches {
        let h = batch.header();
        if h.transactional_or_control() {
            covered = Some(h.next_offset());
            continue;
        }
        let mut keyed = Vec::with_capacity(h.record_count as usize);
        for record in batch.records() {
            let record = record?;
            if let Some(key) = record.key {
                keyed.push((key, record.offset));
            }
        }
        if !map.has_room_for(keyed.iter().map(|(k, _)| k)) {
            break;
        }
        for (key, offset) in &keyed {
            map.put(key, *offset);
        }
        covered = Some(h.next_offset());
    }
    Ok((map, covered.unwrap_or(0)))
}

/// `batch` as a pass leaves it: a record below `covered_end` goes when
/// `map` holds a later offset for its key; a tombstone that is its key's
/// latest goes when its timestamp is before `tombstones_before_ms`.
/// Records without a key, records at or past `covered_end` and control
/// batches stay.
pub fn clean_batch(
    batch: &Batch,
    map: &OffsetMap,
    covered_end: u64,
    tombstones_before_ms: i64,
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
        let expired_tombstone = r.value.is_none() && r.timestamp < tombstones_before_ms;
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
