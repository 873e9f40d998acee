//! The two sparse, memory-mapped indexes of a segment.
//!
//! - `.index` ([`OffsetIndex`]): 8-byte entries `(relative offset: u32, position: u32)`,
//!   one for the first batch after every `index_interval_bytes` of log.
//! - `.timeindex` ([`TimeIndex`]): 12-byte entries `(timestamp: i64, relative offset: u32)`
//!   meaning "every record before this offset has a timestamp ≤ this timestamp".
//!
//! Both are preallocated for the most entries the active segment can need,
//! appended to in place by the segment's single writer, and read by any
//! number of readers, which only look at entries published through an atomic
//! count (release on write, acquire on read). All integers are big-endian.
//!
//! Entries are stored through the mapping; reserving, trimming and syncing
//! the files goes through the segment's [`FileSystem`], passed to each call.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use memmap2::{MmapOptions, MmapRaw};

use crate::error::{IoContext, Result};
use crate::file::{open_rw, preallocate};
use crate::fs::FileSystem;

/// A file of fixed-size entries, mapped into memory.
///
/// Holds no file descriptor: the mapping is all that reads and appends need,
/// and the rare operations on the file itself (growing the reservation,
/// trimming, syncing) open it by path. An idle partition's indexes thus cost
/// no descriptor.
struct IndexFile<const N: usize> {
    path: PathBuf,
    map: Option<MmapRaw>,
    /// Entries the mapping covers (the most this file can ever hold).
    capacity: usize,
    /// Entries the file has disk space reserved for; pushes beyond are dropped.
    reserved: AtomicUsize,
    len: AtomicUsize,
}

impl<const N: usize> IndexFile<N> {
    /// Opens `path`, keeping the entries it holds (`keep`) or emptying it;
    /// maps room for `capacity` entries and reserves disk space for `reserve`.
    /// Entries past the last one written read as zeros (space reserved
    /// ahead, or left by a clean close that did not trim): no written entry
    /// is all zeros, so the entries are those before the first zero one.
    fn open(
        fs: &dyn FileSystem,
        path: &Path,
        capacity: usize,
        reserve: usize,
        keep: bool,
    ) -> Result<Self> {
        let file = open_rw(path, true)?;
        let file_len = file.metadata().at(path)?.len() as usize;
        let whole = if keep { file_len / N } else { 0 };
        if whole * N != file_len {
            fs.set_len(&file, path, (whole * N) as u64).at(path)?;
        }
        let capacity = capacity.max(whole);
        let reserve = reserve.clamp(whole, capacity);
        if reserve > whole {
            preallocate(fs, &file, (whole * N) as u64, (reserve * N) as u64, path)?;
        }
        let map = if capacity == 0 {
            None
        } else {
            // The mapping may reach past the end of the file: only entries
            // below `reserved`, which the file holds, are ever touched.
            Some(
                MmapOptions::new()
                    .len(capacity * N)
                    .map_raw(&file)
                    .at(path)?,
            )
        };
        let index = IndexFile {
            path: path.to_path_buf(),
            map,
            capacity,
            reserved: AtomicUsize::new(reserve),
            len: AtomicUsize::new(whole),
        };
        let written = index.first_zero_entry(whole);
        index.len.store(written, Ordering::Release);
        Ok(index)
    }

    /// The index of the first all-zero entry below `n` (binary search: the
    /// written entries come first), or `n`.
    fn first_zero_entry(&self, n: usize) -> usize {
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.get(mid) == [0u8; N] {
                hi = mid;
            } else {
                lo = mid + 1;
            }
        }
        lo
    }

    fn len(&self) -> usize {
        self.len.load(Ordering::Acquire)
    }

    fn get(&self, i: usize) -> [u8; N] {
        debug_assert!(i < self.len());
        let mut out = [0u8; N];
        let Some(map) = self.map.as_ref() else {
            return out;
        };
        // SAFETY: entry i < len <= reserved <= capacity lies inside the
        // mapping and the file, and was fully written before len was
        // published (release/acquire).
        unsafe { std::ptr::copy_nonoverlapping(map.as_ptr().add(i * N), out.as_mut_ptr(), N) };
        out
    }

    /// Appends an entry; returns false (and drops it) when no space is
    /// reserved for it, which only makes the sparse index sparser.
    fn push(&self, entry: [u8; N]) -> bool {
        let len = self.len.load(Ordering::Relaxed);
        let reserved = self.reserved.load(Ordering::Relaxed);
        let Some(map) = self.map.as_ref().filter(|_| len < reserved) else {
            return false;
        };
        // SAFETY: slot `len` is inside the mapping and the file's reserved
        // space, and not yet visible to readers; the segment's writer lock
        // makes this the only writer.
        unsafe { std::ptr::copy_nonoverlapping(entry.as_ptr(), map.as_mut_ptr().add(len * N), N) };
        self.len.store(len + 1, Ordering::Release);
        true
    }

    /// Reserves disk space for `entries` entries (at most the capacity).
    fn reserve(&self, fs: &dyn FileSystem, entries: usize) -> Result<()> {
        let entries = entries.min(self.capacity);
        let reserved = self.reserved.load(Ordering::Relaxed);
        if entries <= reserved {
            return Ok(());
        }
        let file = open_rw(&self.path, false)?;
        preallocate(
            fs,
            &file,
            (reserved * N) as u64,
            (entries * N) as u64,
            &self.path,
        )?;
        self.reserved.store(entries, Ordering::Relaxed);
        Ok(())
    }

    /// Cuts the file to its entries (a sealed segment needs no spare room).
    fn trim(&self, fs: &dyn FileSystem) -> Result<()> {
        let len = self.len();
        let file = open_rw(&self.path, false)?;
        fs.set_len(&file, &self.path, (len * N) as u64)
            .at(&self.path)?;
        self.reserved.store(len, Ordering::Relaxed);
        Ok(())
    }

    fn sync(&self, fs: &dyn FileSystem) -> Result<()> {
        // fsync writes back the pages dirtied through the mapping too.
        match File::open(&self.path) {
            Ok(f) => fs.sync_all(&f, &self.path).at(&self.path),
            // Deleted (retention took the segment): nothing left to sync.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e).at(&self.path),
        }
    }
}

/// Sparse map from offset to byte position in the segment's log.
pub(crate) struct OffsetIndex(IndexFile<8>);

impl OffsetIndex {
    /// Opens the index (see [`IndexFile::open`]).
    pub fn open(
        fs: &dyn FileSystem,
        path: &Path,
        capacity: usize,
        reserve: usize,
        keep: bool,
    ) -> Result<Self> {
        IndexFile::open(fs, path, capacity, reserve, keep).map(OffsetIndex)
    }

    /// Reserves disk space for `entries` entries.
    pub fn reserve(&self, fs: &dyn FileSystem, entries: usize) -> Result<()> {
        self.0.reserve(fs, entries)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn entry(&self, i: usize) -> (u32, u32) {
        let e = self.0.get(i);
        (
            u32::from_be_bytes([e[0], e[1], e[2], e[3]]),
            u32::from_be_bytes([e[4], e[5], e[6], e[7]]),
        )
    }

    pub fn push(&self, relative_offset: u32, position: u32) {
        let mut e = [0u8; 8];
        e[0..4].copy_from_slice(&relative_offset.to_be_bytes());
        e[4..8].copy_from_slice(&position.to_be_bytes());
        self.0.push(e);
    }

    /// The last entry `(relative offset, position)` at or before `relative_offset`, or `(0, 0)`.
    pub fn lookup(&self, relative_offset: u32) -> (u32, u32) {
        let n = self.len();
        // partition_point over entries: first entry whose offset is > target.
        let (mut lo, mut hi) = (0, n);
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.entry(mid).0 <= relative_offset {
                lo = mid + 1
            } else {
                hi = mid
            }
        }
        if lo == 0 { (0, 0) } else { self.entry(lo - 1) }
    }

    /// Whether the loaded entries are strictly increasing and inside a log of `log_len` bytes.
    pub fn is_consistent(&self, log_len: u64) -> bool {
        let mut prev: Option<(u32, u32)> = None;
        (0..self.len()).all(|i| {
            let e = self.entry(i);
            let ok = u64::from(e.1) < log_len && prev.is_none_or(|p| e.0 > p.0 && e.1 > p.1);
            prev = Some(e);
            ok
        })
    }

    pub fn trim(&self, fs: &dyn FileSystem) -> Result<()> {
        self.0.trim(fs)
    }

    pub fn sync(&self, fs: &dyn FileSystem) -> Result<()> {
        self.0.sync(fs)
    }
}

/// Sparse map from timestamp to offset, for "first offset at or after time T".
pub(crate) struct TimeIndex(IndexFile<12>);

impl TimeIndex {
    /// Opens the index (see [`IndexFile::open`]).
    pub fn open(
        fs: &dyn FileSystem,
        path: &Path,
        capacity: usize,
        reserve: usize,
        keep: bool,
    ) -> Result<Self> {
        IndexFile::open(fs, path, capacity, reserve, keep).map(TimeIndex)
    }

    /// Reserves disk space for `entries` entries.
    pub fn reserve(&self, fs: &dyn FileSystem, entries: usize) -> Result<()> {
        self.0.reserve(fs, entries)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn entry(&self, i: usize) -> (i64, u32) {
        let e = self.0.get(i);
        (
            i64::from_be_bytes([e[0], e[1], e[2], e[3], e[4], e[5], e[6], e[7]]),
            u32::from_be_bytes([e[8], e[9], e[10], e[11]]),
        )
    }

    pub fn last(&self) -> Option<(i64, u32)> {
        self.len().checked_sub(1).map(|i| self.entry(i))
    }

    /// Records that every record before `relative_offset` has a timestamp ≤
    /// `max_timestamp`; skipped unless it raises the last entry's timestamp.
    pub fn maybe_push(&self, max_timestamp: i64, relative_offset: u32) {
        if self.last().is_some_and(|(t, _)| t >= max_timestamp) {
            return;
        }
        self.push(max_timestamp, relative_offset);
    }

    /// The entry a segment ends with when sealed: its largest timestamp at
    /// its end offset. Always written (unless it is already the last entry),
    /// so that a sealed segment whose time index lost entries at its end is
    /// recognised on open.
    pub fn push_final(&self, max_timestamp: i64, relative_offset: u32) {
        let last = self.last();
        if last == Some((max_timestamp, relative_offset))
            || last.is_some_and(|(t, o)| t > max_timestamp || o > relative_offset)
        {
            return;
        }
        self.push(max_timestamp, relative_offset);
    }

    fn push(&self, max_timestamp: i64, relative_offset: u32) {
        let mut e = [0u8; 12];
        e[0..8].copy_from_slice(&max_timestamp.to_be_bytes());
        e[8..12].copy_from_slice(&relative_offset.to_be_bytes());
        self.0.push(e);
    }

    /// The relative offset before which every record is older than `timestamp`
    /// (the last entry with a smaller timestamp), or `None` to start at the segment's head.
    pub fn lookup(&self, timestamp: i64) -> Option<u32> {
        let (mut lo, mut hi) = (0, self.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            if self.entry(mid).0 < timestamp {
                lo = mid + 1
            } else {
                hi = mid
            }
        }
        lo.checked_sub(1).map(|i| self.entry(i).1)
    }

    /// Whether timestamps and offsets never decrease (only the final entry
    /// may repeat the timestamp before it), up to `next_relative`.
    pub fn is_consistent(&self, next_relative: u64) -> bool {
        let mut prev: Option<(i64, u32)> = None;
        (0..self.len()).all(|i| {
            let e = self.entry(i);
            let ok =
                u64::from(e.1) <= next_relative && prev.is_none_or(|p| e.0 >= p.0 && e.1 >= p.1);
            prev = Some(e);
            ok
        })
    }

    pub fn trim(&self, fs: &dyn FileSystem) -> Result<()> {
        self.0.trim(fs)
    }

    pub fn sync(&self, fs: &dyn FileSystem) -> Result<()> {
        self.0.sync(fs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::RealFs;

    #[test]
    fn offset_lookup_finds_floor_entry() {
        let dir = tempfile::tempdir().unwrap();
        let idx = OffsetIndex::open(&RealFs, &dir.path().join("a.index"), 10, 10, false).unwrap();
        assert_eq!(idx.lookup(5), (0, 0));
        idx.push(10, 100);
        idx.push(20, 200);
        idx.push(30, 300);
        assert_eq!(idx.lookup(9), (0, 0));
        assert_eq!(idx.lookup(10), (10, 100));
        assert_eq!(idx.lookup(29), (20, 200));
        assert_eq!(idx.lookup(1000), (30, 300));
        assert!(idx.is_consistent(301));
        assert!(
            !idx.is_consistent(300),
            "a position past the log is inconsistent"
        );
    }

    #[test]
    fn full_index_drops_entries_instead_of_overflowing() {
        let dir = tempfile::tempdir().unwrap();
        let idx = OffsetIndex::open(&RealFs, &dir.path().join("a.index"), 2, 2, false).unwrap();
        for i in 1..5 {
            idx.push(i, i * 10);
        }
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.lookup(100), (2, 20));
    }

    #[test]
    fn time_lookup_and_reopen_keep_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.timeindex");
        let idx = TimeIndex::open(&RealFs, &path, 10, 10, false).unwrap();
        idx.maybe_push(100, 5);
        idx.maybe_push(100, 6); // not larger: skipped
        idx.maybe_push(200, 9);
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.lookup(100), None);
        assert_eq!(idx.lookup(101), Some(5));
        assert_eq!(idx.lookup(1000), Some(9));
        idx.trim(&RealFs).unwrap();
        drop(idx);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 24);
        let idx = TimeIndex::open(&RealFs, &path, 0, 0, true).unwrap();
        assert_eq!(idx.last(), Some((200, 9)));
        assert!(idx.is_consistent(9));
        assert!(!idx.is_consistent(8));
    }
}
