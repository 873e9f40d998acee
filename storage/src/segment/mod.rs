//! One segment: a `.log` file of back-to-back record batches plus its two
//! indexes, all named by the segment's 20-digit base offset.
//!
//! The active segment is mapped once for its whole capacity, but disk space
//! is reserved (`posix_fallocate`) in growing steps as it fills, so an idle
//! partition reserves about [`ALLOC_MIN`] rather than a whole segment. Its
//! single writer (serialised by `writer`) puts batches at `size` and then
//! publishes the new `size` with release ordering. Readers load `size` with
//! acquire ordering and never look past it, so they see only complete
//! batches and never wait for the writer. Published bytes are never changed
//! again, which is what lets a read hand out zero-copy `Bytes` views of the
//! mapping: a view keeps the mapping alive even after the segment is deleted.
//!
//! Every change to the files goes through the partition's [`FileSystem`]
//! (`fs`), which the segment holds; stores into the mapping do not.
//!
//! File descriptors: the log file is open only while the segment is active
//! or waits for its post-roll sync; a sealed, synced segment and every index
//! are used through their mappings alone.
//!
//! Submodules: `open` (opening, checking and recovering a segment's files),
//! `read` (reads, damage containment, time lookups).

mod open;
mod read;

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use brook_protocol::batch::{
    Batch, BatchHeader, LOG_OVERHEAD, MAGIC_V2, MIN_BATCH_LENGTH, set_base_offset,
    set_partition_leader_epoch,
};
use memmap2::{MmapOptions, MmapRaw};

use crate::config::{AppendMode, PartitionConfig};
use crate::damage::DamagedRange;
use crate::error::{Error, IoContext, Result};
use crate::file::{SegmentPaths, open_rw, preallocate, remove_if_exists, write_all_at};
use crate::fs::FileSystem;
use crate::index::{OffsetIndex, TimeIndex};

pub(crate) use open::{OpenReport, Role};
pub use read::damage_found_by_reads;

/// Bytes at the start of a batch that hold every field the broker stamps
/// when it stores one: base offset (0..8), length, leader epoch (12..16) and
/// the magic byte (16) that says whether there is an epoch. Every batch is
/// longer.
const STAMPED: usize = 17;

/// Disk space an active segment reserves at first, and the smallest step it
/// grows by.
pub(crate) const ALLOC_MIN: u64 = 1 << 20;
/// The largest step: a busy segment reserves at most this much ahead.
const ALLOC_MAX_STEP: u64 = 64 << 20;

struct Writer {
    /// The log file, while the segment is active or waits for its sync
    /// after sealing; `None` once nothing will write or sync it again.
    file: Option<Arc<File>>,
    bytes_since_index: u64,
    sealed: bool,
    /// Bytes of the file with disk space reserved (≥ `size`).
    allocated: u64,
}

pub(crate) struct Segment {
    base_offset: u64,
    paths: SegmentPaths,
    map: Option<Arc<MmapRaw>>,
    /// Marks the mapping read, for the next trim of read pages (`resident`).
    read_mark: crate::resident::ReadMark,
    /// Bytes the mapping covers: the most the segment can hold.
    capacity: u64,
    /// Bytes of complete batches (and of kept damaged bytes); readers never read past it.
    size: AtomicU64,
    /// Offset after the last published batch.
    next_offset: AtomicU64,
    /// Largest record timestamp published; `i64::MIN` while empty.
    max_timestamp: AtomicI64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    writer: Mutex<Writer>,
    /// Damaged ranges found so far, by position; `has_damage` spares the
    /// read path the lock while there are none.
    damage: RwLock<Vec<DamagedRange>>,
    has_damage: AtomicBool,
    index_interval: u64,
    append_mode: AppendMode,
    /// Where every write, sync, allocation and truncation of the files goes.
    fs: Arc<dyn FileSystem>,
}

/// Entries an index may need for `bytes` of log: at most one per interval
/// and one per batch, plus the entry written when sealing.
fn index_capacity(bytes: u64, interval: u64) -> usize {
    // The smallest batch of any format read (a v1 log holds smaller ones than v2).
    let min_batch = LOG_OVERHEAD as u64 + u64::from(MIN_BATCH_LENGTH);
    (bytes / interval.max(min_batch)) as usize + 2
}

impl Segment {
    /// Creates an empty active segment at `base_offset` with room for `capacity` bytes.
    pub fn create(
        fs: &Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: u64,
        capacity: u64,
        cfg: &PartitionConfig,
    ) -> Result<Segment> {
        let paths = SegmentPaths::new(dir, base_offset);
        let file = open_rw(&paths.log, true)?;
        fs.set_len(&file, &paths.log, 0).at(&paths.log)?;
        let fs = Arc::clone(fs);
        let seg = Self::with_file(fs, paths, file, base_offset, capacity, 0, cfg, false, true)?;
        seg.reserve_ahead(ALLOC_MIN)?;
        Ok(seg)
    }

    /// Maps `file` (of `file_len` bytes) and opens the indexes. An active
    /// segment keeps the file open and maps `capacity` bytes; a sealed one
    /// maps what the file holds and keeps no descriptor.
    #[allow(clippy::too_many_arguments)]
    fn with_file(
        fs: Arc<dyn FileSystem>,
        paths: SegmentPaths,
        file: File,
        base_offset: u64,
        capacity: u64,
        file_len: u64,
        cfg: &PartitionConfig,
        keep_indexes: bool,
        active: bool,
    ) -> Result<Segment> {
        let capacity = if active {
            capacity.max(file_len)
        } else {
            file_len
        };
        let mut read_mark = crate::resident::ReadMark::default();
        let map = if capacity == 0 {
            None
        } else {
            // Past the end of the file the mapping is never touched: reads
            // stop at `size` and appends reserve space before writing.
            let map = Arc::new(
                MmapOptions::new()
                    .len(capacity as usize)
                    .map_raw(&file)
                    .at(&paths.log)?,
            );
            read_mark = crate::resident::register(&map);
            Some(map)
        };
        let interval = u64::from(cfg.index_interval_bytes);
        // A sealed segment's indexes are mapped as they are, unless they are
        // being rebuilt: then they need room for every batch of the file.
        let (index_cap, index_reserve) = match (active, keep_indexes) {
            (true, _) => (
                index_capacity(capacity, interval),
                index_capacity(file_len, interval),
            ),
            (false, true) => (0, 0),
            (false, false) => {
                let n = index_capacity(file_len, interval);
                (n, n)
            }
        };
        let (cap, reserve, keep) = (index_cap, index_reserve, keep_indexes);
        let offset_index = OffsetIndex::open(&*fs, &paths.index, cap, reserve, keep)?;
        let time_index = TimeIndex::open(&*fs, &paths.timeindex, cap, reserve, keep)?;
        Ok(Segment {
            base_offset,
            paths,
            map,
            read_mark,
            capacity,
            size: AtomicU64::new(0),
            next_offset: AtomicU64::new(base_offset),
            max_timestamp: AtomicI64::new(i64::MIN),
            offset_index,
            time_index,
            writer: Mutex::new(Writer {
                file: active.then(|| Arc::new(file)),
                bytes_since_index: 0,
                sealed: !active,
                allocated: file_len,
            }),
            damage: RwLock::new(Vec::new()),
            has_damage: AtomicBool::new(false),
            index_interval: interval,
            append_mode: cfg.append_mode,
            fs,
        })
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
            // SAFETY: the range lies inside the mapping and the file (callers
            // bound it by size or file length, both ≤ capacity) and is not
            // being written.
            Some(map) => unsafe {
                std::slice::from_raw_parts(map.as_ptr().add(pos as usize), len as usize)
            },
        }
    }

    /// Indexes the batch written at `pos` and makes it visible to readers.
    ///
    /// The batch is published before its index entries: a reader never finds
    /// an entry that points past what it may read.
    fn publish(&self, w: &mut Writer, pos: u64, h: &BatchHeader) {
        let rel = (h.base_offset - self.base_offset) as u32;
        let max_before = self
            .max_timestamp
            .fetch_max(h.max_timestamp, Ordering::AcqRel);
        self.next_offset.store(h.next_offset(), Ordering::Release);
        self.size
            .store(pos + h.total_len() as u64, Ordering::Release);
        if w.bytes_since_index >= self.index_interval {
            self.offset_index.push(rel, pos as u32);
            if max_before != i64::MIN {
                self.time_index.maybe_push(max_before, rel);
            }
            w.bytes_since_index = 0;
        }
        w.bytes_since_index += h.total_len() as u64;
    }

    /// Reserves disk space so that `more` bytes past `size` can be written:
    /// in steps that double up to [`ALLOC_MAX_STEP`], never past the capacity.
    fn reserve(&self, w: &mut Writer, more: u64) -> Result<()> {
        let needed = (self.size() + more).min(self.capacity);
        if needed <= w.allocated {
            return Ok(());
        }
        let Some(file) = w.file.clone() else {
            return Err(Error::Closed(self.paths.log.display().to_string()));
        };
        let step = w.allocated.clamp(ALLOC_MIN, ALLOC_MAX_STEP);
        let target = needed.max(w.allocated + step).min(self.capacity);
        preallocate(&*self.fs, &file, w.allocated, target, &self.paths.log)?;
        let entries = index_capacity(target, self.index_interval);
        self.offset_index.reserve(&*self.fs, entries)?;
        self.time_index.reserve(&*self.fs, entries)?;
        w.allocated = target;
        Ok(())
    }

    /// Reserves `more` bytes ahead of the end for the next appends. On a
    /// full disk the segment still opens: the append that needs the space
    /// fails with [`Error::DiskFull`] instead.
    fn reserve_ahead(&self, more: u64) -> Result<()> {
        match self.reserve(&mut self.writer(), more) {
            Err(Error::DiskFull { path }) => {
                tracing::warn!(segment = %path.display(), "disk full: no space reserved ahead of the log end");
                Ok(())
            }
            other => other,
        }
    }

    /// Whether `len` more bytes fit in the segment.
    pub fn has_room(&self, len: u64) -> bool {
        self.size() + len <= self.capacity
    }

    /// Appends `batch` with its base offset replaced by `base_offset` and,
    /// if `leader_epoch` is given, its partition leader epoch by that (a
    /// magic-1 batch has none; a copied batch keeps the one it has).
    ///
    /// The caller (the partition's appender) has checked room and the batch.
    pub fn append(&self, batch: &Batch, base_offset: u64, leader_epoch: Option<i32>) -> Result<()> {
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
        self.reserve(&mut w, bytes.len() as u64)?;
        // The fields the broker stamps (outside the CRC) are all in the first
        // STAMPED bytes: write those from a copy, the rest from the batch.
        let mut stamped = [0u8; STAMPED];
        stamped.copy_from_slice(&bytes[..STAMPED]);
        set_base_offset(&mut stamped, base_offset);
        if let Some(epoch) = leader_epoch {
            set_partition_leader_epoch(&mut stamped, epoch);
        }
        match (self.append_mode, &self.map, &w.file) {
            (AppendMode::Mmap, Some(map), _) => {
                // SAFETY: [pos, pos + len) is inside the mapping and the
                // reserved part of the file, and above `size`, so no reader
                // looks at it; we hold the writer lock.
                unsafe {
                    let dst = map.as_mut_ptr().add(pos as usize);
                    std::ptr::copy_nonoverlapping(stamped.as_ptr(), dst, STAMPED);
                    std::ptr::copy_nonoverlapping(
                        bytes[STAMPED..].as_ptr(),
                        dst.add(STAMPED),
                        bytes.len() - STAMPED,
                    );
                }
            }
            (_, _, Some(file)) => write_all_at(
                &*self.fs,
                file,
                &self.paths.log,
                &stamped,
                &bytes[STAMPED..],
                pos,
            )
            .at(&self.paths.log)?,
            (_, _, None) => return Err(Error::Closed(self.paths.log.display().to_string())),
        }
        let mut h = *batch.header();
        h.base_offset = base_offset;
        if let Some(epoch) = leader_epoch.filter(|_| h.magic == MAGIC_V2) {
            h.partition_leader_epoch = epoch;
        }
        self.publish(&mut w, pos, &h);
        Ok(())
    }

    /// Forces the published bytes to disk.
    pub fn sync(&self) -> Result<()> {
        if self.append_mode == AppendMode::Mmap {
            // Published bytes only: the appender may be writing past them.
            let published = self.bytes_at(0, self.size());
            self.fs
                .sync_mapped(&self.paths.log, published)
                .at(&self.paths.log)?;
        }
        // No file: the segment was sealed and synced, nothing is left to write.
        let file = self.writer().file.clone();
        match file {
            Some(f) => self.fs.sync_data(&f, &self.paths.log).at(&self.paths.log),
            None => Ok(()),
        }
    }

    /// Forces the log and both indexes to disk (a sealed segment's final state).
    pub fn sync_all(&self) -> Result<()> {
        self.sync()?;
        self.offset_index.sync(&*self.fs)?;
        self.time_index.sync(&*self.fs)
    }

    /// Closes the log file of a sealed segment once its final sync is done:
    /// from here on it is read through its mapping alone.
    pub fn release_file(&self) {
        let mut w = self.writer();
        if w.sealed {
            w.file = None;
        }
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
                .push_final(max_ts, (self.next_offset() - self.base_offset) as u32);
        }
        if let Some(file) = &w.file {
            let log = &self.paths.log;
            self.fs.set_len(file, log, self.size()).at(log)?;
        }
        w.allocated = self.size();
        self.offset_index.trim(&*self.fs)?;
        self.time_index.trim(&*self.fs)?;
        w.sealed = true;
        Ok(())
    }

    /// Ends appends at a clean close: records the final time-index entry but
    /// trims nothing, so that the next open finds its reserved space still
    /// there (the bytes and entries after the data read as zeros). Cheaper
    /// than [`Segment::seal`] by a truncation of three files, which matters
    /// when thousands of partitions close at once.
    pub fn stop(&self) {
        let mut w = self.writer();
        if w.sealed {
            return;
        }
        let max_ts = self.max_timestamp();
        if max_ts != i64::MIN {
            self.time_index
                .push_final(max_ts, (self.next_offset() - self.base_offset) as u32);
        }
        w.sealed = true;
    }

    /// Removes the segment's files. Views handed out earlier stay readable.
    pub fn delete(&self) -> Result<()> {
        [&self.paths.log, &self.paths.index, &self.paths.timeindex]
            .into_iter()
            .try_for_each(|path| remove_if_exists(&*self.fs, path))
    }

    /// Damaged ranges found in this segment so far.
    pub fn damaged_ranges(&self) -> Vec<DamagedRange> {
        if !self.has_damage.load(Ordering::Acquire) {
            return Vec::new();
        }
        self.damage
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
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

    /// The log file's path.
    pub fn path(&self) -> &Path {
        &self.paths.log
    }
}
