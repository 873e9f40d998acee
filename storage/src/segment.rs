//! One segment: a `.log` file of back-to-back record batches plus its two
//! indexes, all named by the segment's 20-digit base offset.
//!
//! The active segment is preallocated to its full capacity and mapped once;
//! its single writer (serialised by `writer`) puts batches at `size` and then
//! publishes the new `size` with release ordering. Readers load `size` with
//! acquire ordering and never look past it, so they see only complete
//! batches and never wait for the writer. Published bytes are never changed
//! again, which is what lets a read hand out zero-copy `Bytes` views of the
//! mapping: a view keeps the mapping alive even after the segment is deleted.

use std::fs::{self, File};
use std::path::Path;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use brook_protocol::batch::{Batch, BatchHeader, HEADER_LEN};
use bytes::Bytes;
use memmap2::{MmapOptions, MmapRaw};

use crate::config::{AppendMode, PartitionConfig};
use crate::error::{Error, IoContext, Result};
use crate::file::{SegmentPaths, open_rw, preallocate, write_all_at2};
use crate::index::{OffsetIndex, TimeIndex};

/// What a recovery scan found, for the log line and for tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct ScanStats {
    /// Bytes of valid batches read.
    pub bytes_scanned: u64,
    /// Bytes after the last valid batch that were not zero (torn or corrupt data) and were cut.
    pub bytes_truncated: u64,
}

struct Writer {
    bytes_since_index: u64,
    sealed: bool,
}

pub(crate) struct Segment {
    base_offset: u64,
    paths: SegmentPaths,
    file: File,
    map: Option<Arc<MmapRaw>>,
    capacity: u64,
    /// Bytes of complete batches; readers never read past it.
    size: AtomicU64,
    /// Offset after the last published batch.
    next_offset: AtomicU64,
    /// Largest record timestamp published; `i64::MIN` while empty.
    max_timestamp: AtomicI64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    writer: Mutex<Writer>,
    index_interval: u64,
    append_mode: AppendMode,
}

/// Entries an index may need for `capacity` bytes of log: at most one per
/// interval and one per batch, plus the entry written when sealing.
fn index_capacity(capacity: u64, interval: u32) -> usize {
    (capacity / u64::from(interval).max(HEADER_LEN as u64)) as usize + 2
}

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

impl Segment {
    /// Creates an empty active segment at `base_offset` with room for `capacity` bytes.
    pub fn create(
        dir: &Path,
        base_offset: u64,
        capacity: u64,
        cfg: &PartitionConfig,
    ) -> Result<Segment> {
        let paths = SegmentPaths::new(dir, base_offset);
        let file = open_rw(&paths.log, true)?;
        file.set_len(0).at(&paths.log)?;
        Self::with_file(paths, file, base_offset, capacity, 0, cfg, false)
    }

    /// Opens an existing segment. `active` preallocates it for appends;
    /// `trusted` (after a clean shutdown, or below the recovery point) takes
    /// the file length and indexes as they are, after a check of the tail.
    /// Anything else, or a trusted segment whose check fails, is scanned,
    /// cut at the first invalid byte, and re-indexed.
    pub fn open(
        dir: &Path,
        base_offset: u64,
        cfg: &PartitionConfig,
        active: bool,
        trusted: bool,
    ) -> Result<(Segment, Option<ScanStats>)> {
        let paths = SegmentPaths::new(dir, base_offset);
        let file_len = fs::metadata(&paths.log).at(&paths.log)?.len();
        let capacity = if active {
            file_len.max(crate::partition::segment_capacity(cfg))
        } else {
            file_len
        };
        let indexes_exist = paths.index.exists() && paths.timeindex.exists();
        if trusted && indexes_exist {
            let file = open_rw(&paths.log, false)?;
            let seg = Self::with_file(paths, file, base_offset, capacity, file_len, cfg, true)?;
            if seg.verify_trusted(file_len) {
                // A trusted sealed segment was trimmed and synced when it was sealed.
                seg.writer().sealed = !active;
                return Ok((seg, None));
            }
            tracing::warn!(segment = %seg.paths.log.display(), "segment or index failed its check on open; rebuilding");
            drop(seg);
        }
        let paths = SegmentPaths::new(dir, base_offset);
        let file = open_rw(&paths.log, false)?;
        Self::recover(paths, file, base_offset, capacity, file_len, cfg, active)
    }

    fn with_file(
        paths: SegmentPaths,
        file: File,
        base_offset: u64,
        capacity: u64,
        size: u64,
        cfg: &PartitionConfig,
        keep_indexes: bool,
    ) -> Result<Segment> {
        if capacity > size {
            preallocate(&file, capacity, &paths.log)?;
        }
        let map = if capacity == 0 {
            None
        } else {
            let map = Arc::new(
                MmapOptions::new()
                    .len(capacity as usize)
                    .map_raw(&file)
                    .at(&paths.log)?,
            );
            crate::resident::register(&map);
            Some(map)
        };
        let index_cap = if capacity > size {
            index_capacity(capacity, cfg.index_interval_bytes)
        } else {
            0
        };
        let offset_index = OffsetIndex::open(&paths.index, index_cap, keep_indexes)?;
        let time_index = TimeIndex::open(&paths.timeindex, index_cap, keep_indexes)?;
        Ok(Segment {
            base_offset,
            paths,
            file,
            map,
            capacity,
            size: AtomicU64::new(size),
            next_offset: AtomicU64::new(base_offset),
            max_timestamp: AtomicI64::new(i64::MIN),
            offset_index,
            time_index,
            writer: Mutex::new(Writer {
                bytes_since_index: 0,
                sealed: false,
            }),
            index_interval: u64::from(cfg.index_interval_bytes),
            append_mode: cfg.append_mode,
        })
    }

    /// Checks a trusted segment: consistent indexes, and valid batches from
    /// the last index entry to exactly the end of the file. Sets the next
    /// offset and maximum timestamp from what it read.
    fn verify_trusted(&self, file_len: u64) -> bool {
        if !self.offset_index.is_consistent(file_len) {
            return false;
        }
        let (rel, pos) = match self.offset_index.len() {
            0 => (0, 0),
            n => self.offset_index.entry(n - 1),
        };
        if file_len > 0 && self.time_index.len() == 0 {
            return false;
        }
        let mut max_ts = self.time_index.last().map_or(i64::MIN, |(t, _)| t);
        // Replays the writer's indexing rule over the tail: a batch that would
        // have got an entry but has none means the index lost entries.
        let (mut since_index, mut missing_entry) = (0u64, false);
        let end = self.scan(
            u64::from(pos),
            file_len,
            self.base_offset + u64::from(rel),
            |p, h| {
                missing_entry |= p != u64::from(pos) && since_index >= self.index_interval;
                since_index += h.total_len() as u64;
                max_ts = max_ts.max(h.max_timestamp);
            },
        );
        if missing_entry
            || end.valid_len != file_len
            || !self
                .time_index
                .is_consistent(end.next_offset - self.base_offset)
        {
            return false;
        }
        self.next_offset.store(end.next_offset, Ordering::Release);
        self.max_timestamp.store(max_ts, Ordering::Release);
        self.writer().bytes_since_index = file_len - u64::from(pos);
        true
    }

    fn recover(
        paths: SegmentPaths,
        file: File,
        base_offset: u64,
        capacity: u64,
        file_len: u64,
        cfg: &PartitionConfig,
        active: bool,
    ) -> Result<(Segment, Option<ScanStats>)> {
        let seg = Self::with_file(paths, file, base_offset, capacity, 0, cfg, false)?;
        // The scan reads the whole file; `size` stays 0 until it is done.
        let end = seg.scan(0, file_len, base_offset, |_, _| {});
        let garbage_end = seg.last_nonzero(end.valid_len, file_len);
        if end.valid_len < file_len {
            // Cut the tail and, for the active segment, reserve it again: the
            // reserved range reads as zeros, so no stale batch can reappear
            // behind a later append. Synced before anything else is written.
            seg.file.set_len(end.valid_len).at(&seg.paths.log)?;
            if active {
                preallocate(&seg.file, capacity, &seg.paths.log)?;
            }
            seg.file.sync_all().at(&seg.paths.log)?;
        }
        let mut w = seg.writer();
        seg.scan(0, end.valid_len, base_offset, |pos, h| {
            seg.publish(&mut w, pos, h)
        });
        drop(w);
        if !active {
            seg.seal()?;
            seg.sync_all()?;
        }
        let stats = ScanStats {
            bytes_scanned: end.valid_len,
            bytes_truncated: garbage_end - end.valid_len,
        };
        Ok((seg, Some(stats)))
    }

    fn writer(&self) -> MutexGuard<'_, Writer> {
        // A panic while holding this lock cannot leave torn state behind:
        // nothing is published before the bytes are complete.
        self.writer.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The bytes `[pos, pos + len)` of the mapping.
    ///
    /// Callers read only published bytes (below `size`) or, while the segment
    /// is being opened and has no other user, the file's bytes.
    fn bytes_at(&self, pos: u64, len: u64) -> &[u8] {
        match &self.map {
            None => &[],
            // SAFETY: the range lies inside the mapping (callers bound it by
            // size or file length, both ≤ capacity) and is not being written.
            Some(map) => unsafe {
                std::slice::from_raw_parts(map.as_ptr().add(pos as usize), len as usize)
            },
        }
    }

    /// Walks valid batches in `[from, end)`, starting at `expected` offset, and
    /// stops at the first one that is cut off, fails its CRC or breaks offset
    /// continuity.
    fn scan(
        &self,
        from: u64,
        end: u64,
        expected: u64,
        mut visit: impl FnMut(u64, &BatchHeader),
    ) -> ScanEnd {
        let (mut pos, mut next) = (from, expected);
        while pos < end {
            let buf = self.bytes_at(pos, end - pos);
            let Ok(h) = BatchHeader::parse(buf, u32::try_from(buf.len()).unwrap_or(u32::MAX))
            else {
                break;
            };
            if h.check_crc(buf).is_err()
                || h.base_offset != next
                || h.record_count == 0
                || h.last_offset_delta != h.record_count - 1
            {
                break;
            }
            visit(pos, &h);
            pos += h.total_len() as u64;
            next = h.next_offset();
        }
        ScanEnd {
            valid_len: pos,
            next_offset: next,
        }
    }

    fn last_nonzero(&self, from: u64, end: u64) -> u64 {
        let tail = self.bytes_at(from, end - from);
        tail.iter()
            .rposition(|&b| b != 0)
            .map_or(from, |i| from + i as u64 + 1)
    }

    /// Indexes the batch written at `pos` and makes it visible to readers.
    fn publish(&self, w: &mut Writer, pos: u64, h: &BatchHeader) {
        let rel = (h.base_offset - self.base_offset) as u32;
        if w.bytes_since_index >= self.index_interval {
            self.offset_index.push(rel, pos as u32);
            let max_before = self.max_timestamp.load(Ordering::Relaxed);
            if max_before != i64::MIN {
                self.time_index.maybe_push(max_before, rel);
            }
            w.bytes_since_index = 0;
        }
        w.bytes_since_index += h.total_len() as u64;
        self.max_timestamp
            .fetch_max(h.max_timestamp, Ordering::AcqRel);
        self.next_offset.store(h.next_offset(), Ordering::Release);
        self.size
            .store(pos + h.total_len() as u64, Ordering::Release);
    }

    /// Whether `len` more bytes fit in the reserved space.
    pub fn has_room(&self, len: u64) -> bool {
        self.size() + len <= self.capacity
    }

    /// Appends `batch` with its base offset replaced by `base_offset`.
    ///
    /// The caller (the partition's appender) has checked room and the batch.
    pub fn append(&self, batch: &Batch, base_offset: u64) -> Result<()> {
        let mut w = self.writer();
        if w.sealed {
            return Err(Error::Closed(self.paths.log.display().to_string()));
        }
        let pos = self.size.load(Ordering::Relaxed);
        let bytes = batch.bytes();
        if pos + bytes.len() as u64 > self.capacity {
            // The partition rolls before this can happen; never write past the mapping.
            return Err(Error::Io {
                path: self.paths.log.clone(),
                source: std::io::Error::other(format!(
                    "batch of {} bytes does not fit at {pos} of {}",
                    bytes.len(),
                    self.capacity
                )),
            });
        }
        let stamped = base_offset.to_be_bytes();
        match (self.append_mode, &self.map) {
            (AppendMode::Mmap, Some(map)) => {
                // SAFETY: [pos, pos + len) is inside the preallocated mapping and
                // above `size`, so no reader looks at it; we hold the writer lock.
                unsafe {
                    let dst = map.as_mut_ptr().add(pos as usize);
                    std::ptr::copy_nonoverlapping(stamped.as_ptr(), dst, 8);
                    std::ptr::copy_nonoverlapping(bytes[8..].as_ptr(), dst.add(8), bytes.len() - 8);
                }
            }
            _ => write_all_at2(&self.file, &stamped, &bytes[8..], pos).at(&self.paths.log)?,
        }
        let mut h = *batch.header();
        h.base_offset = base_offset;
        self.publish(&mut w, pos, &h);
        Ok(())
    }

    /// Forces the published bytes to disk.
    pub fn sync(&self) -> Result<()> {
        match (self.append_mode, &self.map) {
            (AppendMode::Mmap, Some(map)) => {
                map.flush_range(0, self.size() as usize).at(&self.paths.log)
            }
            _ => self.file.sync_data().at(&self.paths.log),
        }
    }

    /// Forces the log and both indexes to disk (a sealed segment's final state).
    pub fn sync_all(&self) -> Result<()> {
        self.sync()?;
        self.offset_index.sync()?;
        self.time_index.sync()
    }

    /// Ends appends: records the final time-index entry and cuts the log and
    /// the indexes to their real length. Used on roll and on close; does not
    /// sync (see [`Segment::sync_all`]), so a roll never waits for the disk.
    pub fn seal(&self) -> Result<()> {
        let mut w = self.writer();
        if w.sealed {
            return Ok(());
        }
        let max_ts = self.max_timestamp();
        if max_ts != i64::MIN {
            self.time_index
                .maybe_push(max_ts, (self.next_offset() - self.base_offset) as u32);
        }
        self.file.set_len(self.size()).at(&self.paths.log)?;
        self.offset_index.trim()?;
        self.time_index.trim()?;
        w.sealed = true;
        Ok(())
    }

    /// Whole batches from the one containing `offset`, up to `max_bytes`
    /// (at least one batch, so a consumer always makes progress), as one
    /// zero-copy view. `None` when the segment holds nothing at or after `offset`.
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<Option<Bytes>> {
        let size = self.size();
        let rel = u32::try_from(offset.saturating_sub(self.base_offset)).unwrap_or(u32::MAX);
        let mut pos = self.indexed_position(rel, size)?;
        let start = loop {
            if pos >= size {
                return Ok(None);
            }
            let h = self.header_at(pos, size)?;
            if h.last_offset() >= offset {
                break pos;
            }
            pos += h.total_len() as u64;
        };
        let mut end = start;
        while end < size {
            let len = self.header_at(end, size)?.total_len() as u64;
            if end > start && end + len - start > max_bytes as u64 {
                break;
            }
            end += len;
        }
        crate::resident::note_read((end - start) as usize);
        Ok(Some(self.view(start, end)))
    }

    /// Where to start looking for `rel`: the index's answer, checked against
    /// the batch it points at (a damaged entry falls back to the segment's head).
    fn indexed_position(&self, rel: u32, size: u64) -> Result<u64> {
        let (entry_rel, pos) = self.offset_index.lookup(rel);
        let pos = u64::from(pos);
        if pos == 0
            || (pos < size
                && self.header_at(pos, size)?.base_offset
                    == self.base_offset + u64::from(entry_rel))
        {
            return Ok(pos);
        }
        tracing::warn!(segment = %self.paths.log.display(), position = pos, "offset index entry does not match the log; scanning");
        Ok(0)
    }

    /// Timestamp of the segment's first batch, if it has one.
    pub fn first_timestamp(&self) -> Option<i64> {
        let size = self.size();
        (size > 0)
            .then(|| self.header_at(0, size).ok().map(|h| h.first_timestamp))
            .flatten()
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

    /// The header of the published batch at `pos`, checked so that a damaged
    /// file yields an error, not a panic.
    fn corrupt(&self, position: u64, reason: String) -> Error {
        Error::Corrupt {
            path: self.paths.log.clone(),
            position,
            reason,
        }
    }

    fn header_at(&self, pos: u64, size: u64) -> Result<BatchHeader> {
        let buf = self.bytes_at(pos, size - pos);
        BatchHeader::parse(buf, u32::try_from(buf.len()).unwrap_or(u32::MAX))
            .map_err(|e| self.corrupt(pos, e.to_string()))
    }

    /// The first offset in this segment whose record timestamp is ≥ `timestamp`.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<u64>> {
        if self.max_timestamp() < timestamp {
            return Ok(None);
        }
        let size = self.size();
        let from_rel = self.time_index.lookup(timestamp).unwrap_or(0);
        let from = self.base_offset + u64::from(from_rel);
        let mut pos = self.indexed_position(from_rel, size)?;
        while pos < size {
            let h = self.header_at(pos, size)?;
            if h.last_offset() >= from && h.max_timestamp >= timestamp {
                let batch = Batch::parse(self.view(pos, pos + h.total_len() as u64))
                    .map_err(|e| self.corrupt(pos, e.to_string()))?;
                for record in batch.records() {
                    let record = record.map_err(|e| self.corrupt(pos, e.to_string()))?;
                    if record.offset >= from && record.timestamp >= timestamp {
                        return Ok(Some(record.offset));
                    }
                }
            }
            pos += h.total_len() as u64;
        }
        Ok(None)
    }

    /// Removes the segment's files. Views handed out earlier stay readable.
    pub fn delete(&self) -> Result<()> {
        for path in [&self.paths.log, &self.paths.index, &self.paths.timeindex] {
            match fs::remove_file(path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e).at(path),
                _ => {}
            }
        }
        Ok(())
    }

    pub fn base_offset(&self) -> u64 {
        self.base_offset
    }

    pub fn next_offset(&self) -> u64 {
        self.next_offset.load(Ordering::Acquire)
    }

    pub fn size(&self) -> u64 {
        self.size.load(Ordering::Acquire)
    }

    pub fn max_timestamp(&self) -> i64 {
        self.max_timestamp.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.size() == 0
    }
}

struct ScanEnd {
    valid_len: u64,
    next_offset: u64,
}
