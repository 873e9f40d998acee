//! Reading a segment: whole batches as zero-copy views, every one checked
//! (CRC, length, offset continuity) before it is handed out, and damaged
//! ranges contained: a read of one fails with [`Error::Damaged`] naming its
//! offsets, and reads before and after it go on.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use brook_protocol::batch::{Batch, BatchHeader};
use bytes::Bytes;
use memmap2::MmapRaw;

use super::Segment;
use crate::damage::DamagedRange;
use crate::error::{Error, Result};
use crate::scan::{check_header, resync};

/// Owner of a zero-copy view into a mapping.
struct MapSlice {
    map: Arc<MmapRaw>,
    start: usize,
    len: usize,
}

impl AsRef<[u8]> for MapSlice {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: the range was published (complete and never rewritten) when
        // the view was made, and the Arc keeps the mapping alive.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().add(self.start), self.len) }
    }
}

/// Damaged ranges found at read time, for the broker's metrics.
static FOUND_WHILE_READING: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many damaged ranges reads have found since the process started
/// (ranges found when opening are in each partition's recovery report).
pub fn damage_found_by_reads() -> u64 {
    FOUND_WHILE_READING.load(Ordering::Relaxed)
}

impl Segment {
    /// Whole batches from the one containing `offset`, up to `max_bytes`
    /// (at least one batch, so a consumer always makes progress), as one
    /// zero-copy view. `None` when the segment holds nothing at or after
    /// `offset`. A batch that fails its checks is never part of the view:
    /// the view stops before it, or, if it holds `offset`, the read fails
    /// with [`Error::Damaged`].
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Option<Bytes>> {
        let size = self.size();
        let Some((start, mut h)) = self.walk_to(offset, size)? else {
            return Ok(None);
        };
        let mut end = start;
        loop {
            let len = h.total_len() as u64;
            if let Err(e) = h.check_crc(self.bytes_at(end, len)) {
                if end == start {
                    return Err(self
                        .note_damage(end, h.base_offset, e.to_string())
                        .to_error());
                }
                break;
            }
            end += len;
            let next = h.next_offset();
            if end >= size || self.damage_starting_at(end, next).is_some() {
                break;
            }
            // A bad header ends the view here; the read that starts at it records the damage.
            let Ok(following) = check_header(self.bytes_at(end, size - end), next) else {
                break;
            };
            if end + following.total_len() as u64 - start > max_bytes as u64 {
                break;
            }
            h = following;
        }
        crate::resident::note_read(&self.read_mark, (end - start) as usize);
        Ok(Some(self.view(start, end)))
    }

    /// The position and header of the batch holding `offset` (or the first
    /// after it), walking from the index's entry over checked headers.
    fn walk_to(&self, offset: u64, size: u64) -> Result<Option<(u64, BatchHeader)>> {
        let rel = u32::try_from(offset.saturating_sub(self.base_offset)).unwrap_or(u32::MAX);
        let (mut pos, mut expected) = self.start_for(rel, size);
        loop {
            if let Some(d) = self.damage_starting_at(pos, expected) {
                if offset < d.end_offset {
                    return Err(d.to_error());
                }
                (pos, expected) = (d.end_position, d.end_offset);
                continue;
            }
            if pos >= size {
                return Ok(None);
            }
            match check_header(self.bytes_at(pos, size - pos), expected) {
                Ok(h) if h.last_offset() >= offset => return Ok(Some((pos, h))),
                Ok(h) => (pos, expected) = (pos + h.total_len() as u64, h.next_offset()),
                // Recorded as a range starting at `pos`: the next turn finds it.
                Err(reason) => {
                    self.note_damage(pos, expected, reason);
                }
            }
        }
    }

    /// Where to start looking for `rel` and the offset expected there: the
    /// index's answer, checked against the batch it points at (a damaged
    /// entry falls back to the segment's head; one inside a damaged range to
    /// the range's start).
    fn start_for(&self, rel: u32, size: u64) -> (u64, u64) {
        let (entry_rel, pos) = self.offset_index.lookup(rel);
        let (pos, expected) = (u64::from(pos), self.base_offset + u64::from(entry_rel));
        if self.has_damage.load(Ordering::Acquire) {
            let ranges = self.damage.read().unwrap_or_else(|e| e.into_inner());
            if let Some(d) = ranges
                .iter()
                .find(|d| d.position <= pos && pos < d.end_position)
            {
                return (d.position, d.first_offset);
            }
        }
        if pos == 0
            || (pos < size && check_header(self.bytes_at(pos, size - pos), expected).is_ok())
        {
            return (pos, expected);
        }
        tracing::warn!(segment = %self.paths.log.display(), position = pos, "offset index entry does not match the log; scanning");
        (0, self.base_offset)
    }

    /// The damaged range that starts at `pos` where offset `expected` was due.
    fn damage_starting_at(&self, pos: u64, expected: u64) -> Option<DamagedRange> {
        if !self.has_damage.load(Ordering::Acquire) {
            return None;
        }
        self.damage
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|d| d.position == pos && d.first_offset == expected)
            .cloned()
    }

    /// Records the damage found at `pos` (where offset `expected` was due):
    /// it reaches to the next intact batch of this segment, or to the end of
    /// what is published. Logged and counted once.
    fn note_damage(&self, pos: u64, expected: u64, reason: String) -> DamagedRange {
        // Under the writer lock, size and next offset agree with each other.
        let w = self.writer();
        let (size, next) = (self.size(), self.next_offset());
        drop(w);
        let (end_position, end_offset) =
            match resync(self.bytes_at(0, size), pos + 1, expected, next) {
                Some((at, h)) => (at, h.base_offset),
                None => (size, next),
            };
        let range = DamagedRange {
            path: self.paths.log.clone(),
            position: pos,
            end_position,
            first_offset: expected,
            end_offset: end_offset.max(expected),
            reason,
        };
        let mut ranges = self.damage.write().unwrap_or_else(|e| e.into_inner());
        if let Some(known) = ranges
            .iter()
            .find(|d| d.position == pos && d.first_offset == expected)
        {
            return known.clone();
        }
        tracing::error!(segment = %range.path.display(), position = range.position, end_position = range.end_position,
            first_offset = range.first_offset, end_offset = range.end_offset, reason = %range.reason,
            "damaged range found by a read: kept on disk; reads of these offsets answer DATA_LOSS");
        FOUND_WHILE_READING.fetch_add(1, Ordering::Relaxed);
        ranges.push(range.clone());
        ranges.sort_by_key(|d| d.position);
        self.has_damage.store(true, Ordering::Release);
        range
    }

    /// Marks offsets `first..end` as missing: no segment holds them (a
    /// segment file was lost or cut short). Reads of them fail with DATA_LOSS.
    pub fn mark_missing(&self, first: u64, end: u64) {
        let size = self.size();
        let range = DamagedRange {
            path: self.paths.log.clone(),
            position: size,
            end_position: size,
            first_offset: first,
            end_offset: end,
            reason: "no segment holds these offsets".into(),
        };
        tracing::error!(segment = %range.path.display(), first_offset = first, end_offset = end,
            "offsets missing between two segments; reads of them answer DATA_LOSS");
        let mut ranges = self.damage.write().unwrap_or_else(|e| e.into_inner());
        ranges.push(range);
        self.has_damage.store(true, Ordering::Release);
        self.next_offset.store(end, Ordering::Release);
    }

    /// Timestamp of the segment's first batch, if it has one.
    pub fn first_timestamp(&self) -> Option<i64> {
        let size = self.size();
        if size == 0 {
            return None;
        }
        check_header(self.bytes_at(0, size), self.base_offset)
            .ok()
            .map(|h| h.first_timestamp)
    }

    fn view(&self, start: u64, end: u64) -> Bytes {
        match &self.map {
            None => Bytes::new(),
            Some(map) => Bytes::from_owner(MapSlice {
                map: Arc::clone(map),
                start: start as usize,
                len: (end - start) as usize,
            }),
        }
    }

    fn corrupt(&self, position: u64, reason: String) -> Error {
        Error::Corrupt {
            path: self.paths.log.clone(),
            position,
            reason,
        }
    }

    /// The first offset in this segment whose record timestamp is ≥
    /// `timestamp`. A damaged range met on the way answers its first offset:
    /// its records' timestamps are unknown, and a reader is better told of
    /// the damage than silently moved past it.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<u64>> {
        if self.max_timestamp() < timestamp && !self.has_damage.load(Ordering::Acquire) {
            return Ok(None);
        }
        let size = self.size();
        let from_rel = self.time_index.lookup(timestamp).unwrap_or(0);
        let from = self.base_offset + u64::from(from_rel);
        let (mut pos, mut expected) = self.start_for(from_rel, size);
        loop {
            if let Some(d) = self.damage_starting_at(pos, expected) {
                if d.end_offset > from {
                    return Ok(Some(d.first_offset.max(from)));
                }
                (pos, expected) = (d.end_position, d.end_offset);
                continue;
            }
            if pos >= size {
                return Ok(None);
            }
            let h = match check_header(self.bytes_at(pos, size - pos), expected) {
                Ok(h) => h,
                Err(reason) => {
                    self.note_damage(pos, expected, reason);
                    continue;
                }
            };
            if h.last_offset() >= from && h.max_timestamp >= timestamp {
                let batch = match Batch::parse(self.view(pos, pos + h.total_len() as u64)) {
                    Ok(b) => b,
                    Err(e) => {
                        self.note_damage(pos, expected, e.to_string());
                        continue;
                    }
                };
                for record in batch.records() {
                    let record = record.map_err(|e| self.corrupt(pos, e.to_string()))?;
                    if record.offset >= from && record.timestamp >= timestamp {
                        return Ok(Some(record.offset));
                    }
                }
            }
            (pos, expected) = (pos + h.total_len() as u64, h.next_offset());
        }
    }
}
