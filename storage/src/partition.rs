//! A partition: the ordered segments of one log, its appender, readers,
//! durability (group commit), recovery and retention.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, Weak};
use std::time::Instant;

use brook_protocol::batch::{Batch, DecodeError};
use bytes::Bytes;
use tokio::sync::watch;

use crate::config::{FlushPolicy, PartitionConfig};
use crate::damage::DamagedRange;
use crate::error::{Error, IoContext, Result};
use crate::file::{
    list_segments, read_offset_file, remove_segment_files, sync_dir, write_offset_file,
};
use crate::flusher::{self, Flushable};
use crate::segment::{OpenReport, Role, Segment, segment_capacity};

const CLEAN_SHUTDOWN: &str = ".clean-shutdown";
const LOG_START_OFFSET: &str = "log-start-offset";
const RECOVERY_POINT: &str = "recovery-point";
/// How often, at most, a flush records the offset it made durable as the
/// recovery point (offsets below it are never cut by recovery).
#[cfg(not(test))]
const RECOVERY_POINT_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
#[cfg(test)]
const RECOVERY_POINT_EVERY: std::time::Duration = std::time::Duration::ZERO;

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    /// Offset given to the batch's first record.
    pub base_offset: u64,
    /// Offset of its last record.
    pub last_offset: u64,
    /// The partition's log end offset after the append.
    pub log_end_offset: u64,
}

/// The answer to a read: whole batches, zero-copy from the segment's mapping.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Back-to-back batches, starting with the one that holds the requested
    /// offset (which may begin before it). Empty at the log end.
    pub batches: Bytes,
    /// First offset still stored.
    pub log_start_offset: u64,
    /// Next offset to be assigned.
    pub log_end_offset: u64,
}

/// What opening a partition found, logged and kept for callers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecoveryReport {
    /// Whether the previous run closed the partition cleanly.
    pub clean: bool,
    /// Whether the partition was new (no segment existed).
    pub created: bool,
    /// Segments scanned and re-indexed.
    pub segments_scanned: u32,
    /// Bytes of valid batches scanned.
    pub bytes_scanned: u64,
    /// Non-zero bytes cut from the tail of the last segment (torn writes of
    /// an unclean stop, past the recovery point).
    pub bytes_truncated: u64,
    /// The offset from which the cut bytes would have continued the log
    /// (offsets at or past it that were never acknowledged as durable).
    pub truncated_from_offset: Option<u64>,
    /// Segments whose indexes failed their check (or were missing) and were rebuilt.
    pub indexes_rebuilt: u32,
    /// Damaged ranges found while opening: kept on disk, reads answer DATA_LOSS.
    pub damaged: Vec<DamagedRange>,
}

impl RecoveryReport {
    fn add(&mut self, seg: &OpenReport) {
        self.segments_scanned += u32::from(seg.scanned);
        self.bytes_scanned += seg.bytes_scanned;
        self.bytes_truncated += seg.bytes_truncated;
        self.truncated_from_offset = self.truncated_from_offset.or(seg.truncated_from_offset);
        self.indexes_rebuilt += u32::from(seg.indexes_rebuilt);
        self.damaged.extend(seg.damaged.iter().cloned());
    }
}

/// One partition of a topic: an append-only log of record batches kept in
/// segment files under one directory.
///
/// Cheap to clone (an `Arc`). One appender at a time (appends serialise on
/// an internal lock); any number of concurrent readers, who never wait for
/// the appender and see only complete batches. Durability: see
/// [`FlushPolicy`] and [`Partition::flush_to`].
#[derive(Clone)]
pub struct Partition {
    shared: Arc<Shared>,
}

struct Shared {
    name: String,
    dir: PathBuf,
    config: PartitionConfig,
    /// Every segment by base offset; the last one is the active segment.
    /// Written only on roll and retention, so readers rarely wait.
    segments: RwLock<BTreeMap<u64, Arc<Segment>>>,
    appender: Mutex<Appender>,
    log_start: AtomicU64,
    /// The log end offset, published after each append; also what long-polls wait on.
    end: watch::Sender<u64>,
    flush: Mutex<FlushState>,
    flushed: Condvar,
    durable: watch::Sender<u64>,
    /// Rolled segments not yet synced by the flusher, oldest first.
    unsynced: Mutex<Vec<Arc<Segment>>>,
    retention: Mutex<()>,
    recovery: RecoveryReport,
    /// The recovery point last written, and when.
    recovery_point: Mutex<(u64, Instant)>,
}

struct Appender {
    active: Arc<Segment>,
    /// Wall-clock ms when the active segment was started, for `segment_ms`.
    rolled_at_ms: i64,
    closed: bool,
}

struct FlushState {
    durable: u64,
    flushing: bool,
    poisoned: Option<String>,
}

/// Clears a flush leader's `flushing` flag if its sync unwinds, poisoning
/// the partition and waking the waiters.
struct FlushingGuard<'a> {
    shared: &'a Shared,
    armed: bool,
}

impl Drop for FlushingGuard<'_> {
    fn drop(&mut self) {
        if self.armed {
            let mut st = lock(&self.shared.flush);
            st.flushing = false;
            st.poisoned = Some("a flush panicked".into());
            self.shared.flushed.notify_all();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // State behind these locks is only changed after the fallible work is done,
    // so a panic elsewhere leaves nothing half-written: keep going.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Partition {
    /// Opens (or creates) the partition stored in `dir`, recovering it if the
    /// last run did not close it cleanly. `name` (e.g. `orders/3`) is used in
    /// logs and errors.
    pub fn open(
        dir: impl Into<PathBuf>,
        name: impl Into<String>,
        config: PartitionConfig,
    ) -> Result<Partition> {
        config.validate()?;
        let dir = dir.into();
        let name = name.into();
        fs::create_dir_all(&dir).at(&dir)?;
        let started = Instant::now();
        let clean = read_clean_marker(&dir);
        let (segments, log_start, report) = load_segments(&dir, &config, clean)?;
        let clean = clean.is_some();
        if clean {
            // Must be durable before the first append, or a crash would make
            // the next start trust a segment that has grown since. The
            // marker holds the end offset synced at the clean close: it
            // becomes the recovery point, in one rename.
            let marker = dir.join(CLEAN_SHUTDOWN);
            match read_offset_file(&marker) {
                Some(end) if end >= read_offset_file(&dir.join(RECOVERY_POINT)).unwrap_or(0) => {
                    fs::rename(&marker, dir.join(RECOVERY_POINT)).at(&dir)?
                }
                _ => fs::remove_file(&marker).at(&dir)?,
            }
            sync_dir(&dir)?;
        }
        let active = Arc::clone(
            segments
                .values()
                .next_back()
                .expect("load_segments leaves one segment"),
        );
        // Whatever survived is on disk from here on.
        active.sync()?;
        let end = active.next_offset();
        let rolled_at_ms = match active.is_empty() {
            true => now_ms(),
            false => active.first_timestamp().unwrap_or_else(now_ms),
        };
        if !clean && !report.created {
            tracing::info!(
                partition = %name,
                segments_scanned = report.segments_scanned,
                bytes_scanned = report.bytes_scanned,
                bytes_truncated = report.bytes_truncated,
                truncated_from_offset = ?report.truncated_from_offset,
                damaged_ranges = report.damaged.len(),
                indexes_rebuilt = report.indexes_rebuilt,
                elapsed_ms = started.elapsed().as_secs_f64() * 1000.0,
                "recovered partition after an unclean shutdown"
            );
        } else if !report.damaged.is_empty() || report.indexes_rebuilt > 0 {
            tracing::warn!(
                partition = %name,
                damaged_ranges = report.damaged.len(),
                indexes_rebuilt = report.indexes_rebuilt,
                "opened partition with repairs or damage (see the lines above)"
            );
        }
        let dir_for_rp = dir.join(RECOVERY_POINT);
        let shared = Arc::new(Shared {
            name,
            dir,
            segments: RwLock::new(segments),
            appender: Mutex::new(Appender {
                active,
                rolled_at_ms,
                closed: false,
            }),
            log_start: AtomicU64::new(log_start),
            end: watch::Sender::new(end),
            flush: Mutex::new(FlushState {
                durable: end,
                flushing: false,
                poisoned: None,
            }),
            flushed: Condvar::new(),
            durable: watch::Sender::new(end),
            unsynced: Mutex::new(Vec::new()),
            retention: Mutex::new(()),
            recovery: report,
            recovery_point: Mutex::new((
                read_offset_file(&dir_for_rp).unwrap_or(0),
                Instant::now(),
            )),
            config,
        });
        if let FlushPolicy::Interval(period) = shared.config.flush {
            let weak: Weak<dyn Flushable> = Arc::downgrade(&shared) as Weak<dyn Flushable>;
            flusher::every(weak, period);
        }
        Ok(Partition { shared })
    }

    /// Appends a checked batch, assigning it the next offsets, and returns
    /// once it is written (readable, and safe from a process crash) — or,
    /// under [`FlushPolicy::Always`], once it is on disk.
    pub fn append(&self, batch: &Batch) -> Result<AppendInfo> {
        let info = self.shared.append(batch)?;
        if self.shared.config.flush == FlushPolicy::Always {
            self.flush_to(info.log_end_offset)?;
        }
        Ok(info)
    }

    /// Like [`Partition::append`], but never waits for a flush, whatever the
    /// policy: for async callers that must not block on `fdatasync`. The
    /// caller owes a [`Partition::flush_to`] (e.g. on a blocking thread)
    /// before acknowledging, when the policy is [`FlushPolicy::Always`] or the
    /// producer asked for durability. Never blocks on the disk otherwise: a
    /// roll only trims files, and their sync is left to the background thread.
    pub fn append_nowait(&self, batch: &Batch) -> Result<AppendInfo> {
        self.shared.append(batch)
    }

    /// Blocks until every offset below `offset` is on disk, flushing if
    /// needed. Concurrent callers share one flush (group commit): whoever
    /// finds no flush running starts one that covers everything written so
    /// far, and the others wait for it.
    pub fn flush_to(&self, offset: u64) -> Result<()> {
        self.shared.flush_to(offset)
    }

    /// Reads whole batches starting at the one that holds `offset`, up to
    /// `max_bytes` (always at least one batch). Reading at the log end returns
    /// no batches; outside `log_start..=log_end` is [`Error::OffsetOutOfRange`].
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<ReadResult> {
        self.shared.read(offset, max_bytes)
    }

    /// Whether both handles are the same open partition (not merely the
    /// same name: a topic deleted and created again has new partitions).
    pub fn same_as(&self, other: &Partition) -> bool {
        Arc::ptr_eq(&self.shared, &other.shared)
    }

    /// First offset still stored.
    pub fn log_start_offset(&self) -> u64 {
        self.shared.log_start.load(Ordering::Acquire)
    }

    /// The offset the next record will get.
    pub fn log_end_offset(&self) -> u64 {
        *self.shared.end.borrow()
    }

    /// Everything below this offset is on disk.
    pub fn durable_offset(&self) -> u64 {
        *self.shared.durable.borrow()
    }

    /// A receiver that sees every new log end offset: long-poll and push
    /// subscribers wait on it (`wait_for(|end| *end > offset)`).
    pub fn watch_log_end(&self) -> watch::Receiver<u64> {
        self.shared.end.subscribe()
    }

    /// A receiver of the durable offset, for waiting on durability without a thread.
    pub fn watch_durable(&self) -> watch::Receiver<u64> {
        self.shared.durable.subscribe()
    }

    /// The first offset whose record timestamp is ≥ `timestamp` (ms), found
    /// through the time indexes; `None` if every record is older.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<u64>> {
        let log_start = self.log_start_offset();
        for seg in self.shared.segment_list() {
            if let Some(offset) = seg.offset_for_timestamp(timestamp)? {
                return Ok(Some(offset.max(log_start)));
            }
        }
        Ok(None)
    }

    /// Bytes of log on disk (indexes not counted).
    pub fn size_bytes(&self) -> u64 {
        self.shared.segment_list().iter().map(|s| s.size()).sum()
    }

    /// Number of segments, the active one included.
    pub fn segment_count(&self) -> usize {
        self.shared
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    /// Deletes whole sealed segments that fall outside `retention_ms` (their
    /// newest record is older than `now_ms - retention_ms`) or `retention_bytes`,
    /// oldest first, and advances and persists the log start offset. Returns
    /// the number of segments deleted. The active segment is never deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize> {
        self.shared.enforce_retention(now_ms)
    }

    /// Starts a new segment now if the active one holds anything (Kafka's
    /// forced roll); returns whether it rolled.
    pub fn roll(&self) -> Result<bool> {
        let mut app = lock(&self.shared.appender);
        if app.closed {
            return Err(Error::Closed(self.shared.name.clone()));
        }
        if app.active.is_empty() {
            return Ok(false);
        }
        let base = app.active.next_offset();
        self.shared.roll(&mut app, base, now_ms())?;
        Ok(true)
    }

    /// What opening this partition found.
    pub fn recovery_report(&self) -> RecoveryReport {
        self.shared.recovery.clone()
    }

    /// Every damaged range known in the partition: found when it was opened
    /// or by a read since. Reads of these offsets fail with [`Error::Damaged`].
    pub fn damaged_ranges(&self) -> Vec<DamagedRange> {
        self.shared
            .segment_list()
            .iter()
            .flat_map(|s| s.damaged_ranges())
            .collect()
    }

    /// The partition's settings.
    pub fn config(&self) -> &PartitionConfig {
        &self.shared.config
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    /// Stops appends, writes the active segment's final time-index entry
    /// (its reserved space stays for the next open), syncs everything and writes
    /// the clean-shutdown marker so the next open skips recovery. Reads keep
    /// working; appends fail with [`Error::Closed`].
    pub fn close(&self) -> Result<()> {
        self.shared.close()
    }
}

impl Shared {
    fn segment_list(&self) -> Vec<Arc<Segment>> {
        self.segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn check_batch(&self, batch: &Batch) -> Result<u64> {
        let size = batch.bytes().len();
        if size > self.config.max_batch_bytes as usize {
            return Err(Error::BatchTooLarge {
                size,
                max: self.config.max_batch_bytes,
            });
        }
        let h = batch.header();
        if h.record_count == 0 {
            return Err(DecodeError::Empty.into());
        }
        // Recovery relies on this to find the next batch's offset.
        if h.last_offset_delta != h.record_count - 1 {
            return Err(DecodeError::Inconsistent {
                field: "last_offset_delta",
                header: i64::from(h.last_offset_delta),
                actual: i64::from(h.record_count) - 1,
            }
            .into());
        }
        Ok(u64::from(h.record_count))
    }

    fn append(self: &Arc<Self>, batch: &Batch) -> Result<AppendInfo> {
        let count = self.check_batch(batch)?;
        if let Some(reason) = &lock(&self.flush).poisoned {
            return Err(Error::Poisoned {
                partition: self.name.clone(),
                reason: reason.clone(),
            });
        }
        let mut app = lock(&self.appender);
        if app.closed {
            return Err(Error::Closed(self.name.clone()));
        }
        let base = app.active.next_offset();
        let size = batch.bytes().len() as u64;
        let now = now_ms();
        let too_old = now.saturating_sub(app.rolled_at_ms) >= self.config.segment_ms as i64;
        let offsets_overflow = base + count - app.active.base_offset() > u64::from(u32::MAX);
        let full =
            app.active.size() + size > self.config.segment_bytes || !app.active.has_room(size);
        if !app.active.is_empty() && (full || too_old || offsets_overflow) {
            self.roll(&mut app, base, now)?;
        }
        app.active.append(batch, base)?;
        let end = base + count;
        self.end.send_replace(end);
        Ok(AppendInfo {
            base_offset: base,
            last_offset: end - 1,
            log_end_offset: end,
        })
    }

    /// Starts a new active segment at `base`. The new one is created before
    /// the old one is sealed, so a failure leaves the old one active. (On a
    /// full disk the new segment is still created, with no space reserved:
    /// the append that needs the space fails with `DiskFull`.)
    fn roll(self: &Arc<Self>, app: &mut Appender, base: u64, now: i64) -> Result<()> {
        let new = Arc::new(Segment::create(
            &self.dir,
            base,
            segment_capacity(&self.config),
            &self.config,
        )?);
        // The new file must survive a power cut before a durable ack can point into it.
        sync_dir(&self.dir)?;
        if let Err(e) = app.active.seal() {
            let _ = new.delete();
            return Err(e);
        }
        self.segments
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(base, Arc::clone(&new));
        let old = std::mem::replace(&mut app.active, new);
        app.rolled_at_ms = now;
        lock(&self.unsynced).push(old);
        let weak: Weak<dyn Flushable> = Arc::downgrade(self) as Weak<dyn Flushable>;
        flusher::sync_sealed(weak);
        Ok(())
    }

    fn flush_to(&self, offset: u64) -> Result<()> {
        let offset = offset.min(*self.end.borrow());
        let mut st = lock(&self.flush);
        loop {
            if let Some(reason) = &st.poisoned {
                return Err(Error::Poisoned {
                    partition: self.name.clone(),
                    reason: reason.clone(),
                });
            }
            if st.durable >= offset {
                return Ok(());
            }
            if st.flushing {
                st = self.flushed.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st.flushing = true;
            let from = st.durable;
            drop(st);
            let upto = *self.end.borrow();
            let result = {
                // If the sync panics, the flag must still drop and the
                // waiters wake (to find the partition poisoned), or every
                // later flush would wait forever.
                let mut unwinding = FlushingGuard {
                    shared: self,
                    armed: true,
                };
                let result = self.sync_from(from);
                unwinding.armed = false;
                result
            };
            st = lock(&self.flush);
            st.flushing = false;
            let mut advanced = None;
            match result {
                Ok(()) if upto > st.durable => {
                    st.durable = upto;
                    self.durable.send_replace(upto);
                    advanced = Some(upto);
                }
                Ok(()) => {}
                Err(e) => {
                    tracing::error!(partition = %self.name, error = %e, "flush failed; partition stops accepting writes");
                    st.poisoned = Some(e.to_string());
                }
            }
            self.flushed.notify_all();
            if let Some(durable) = advanced {
                drop(st);
                self.advance_recovery_point(durable, false);
                st = lock(&self.flush);
            }
        }
    }

    /// Syncs every segment that may hold bytes at or after offset `from`.
    ///
    /// (The flush leader's [`FlushingGuard`] covers a panic in here.)
    fn sync_from(&self, from: u64) -> Result<()> {
        let segs: Vec<Arc<Segment>> = {
            let map = self.segments.read().unwrap_or_else(|e| e.into_inner());
            let first = map.range(..=from).next_back().map_or(0, |(b, _)| *b);
            map.range(first..).map(|(_, s)| Arc::clone(s)).collect()
        };
        segs.iter().try_for_each(|s| s.sync())
    }

    fn read(&self, offset: u64, max_bytes: usize) -> Result<ReadResult> {
        let log_end = *self.end.borrow();
        let log_start = self.log_start.load(Ordering::Acquire);
        let out_of_range = || Error::OffsetOutOfRange {
            requested: offset,
            log_start_offset: log_start,
            log_end_offset: log_end,
        };
        if offset < log_start || offset > log_end {
            return Err(out_of_range());
        }
        let mut result = ReadResult {
            batches: Bytes::new(),
            log_start_offset: log_start,
            log_end_offset: log_end,
        };
        if offset == log_end {
            return Ok(result);
        }
        let segs: Vec<Arc<Segment>> = {
            let map = self.segments.read().unwrap_or_else(|e| e.into_inner());
            // None: retention removed the segment since the range check.
            let Some((&first, _)) = map.range(..=offset).next_back() else {
                let log_start = self.log_start.load(Ordering::Acquire);
                return Err(Error::OffsetOutOfRange {
                    requested: offset,
                    log_start_offset: log_start,
                    log_end_offset: log_end,
                });
            };
            map.range(first..)
                .take(2)
                .map(|(_, s)| Arc::clone(s))
                .collect()
        };
        for seg in segs {
            if let Some(batches) = seg.read(offset, max_bytes)? {
                result.batches = batches;
                return Ok(result);
            }
        }
        // Retention removed the segment between the range check and the lookup.
        let log_start = self.log_start.load(Ordering::Acquire);
        Err(Error::OffsetOutOfRange {
            requested: offset,
            log_start_offset: log_start,
            log_end_offset: log_end,
        })
    }

    fn enforce_retention(&self, now_ms: i64) -> Result<usize> {
        let _one_at_a_time = lock(&self.retention);
        let victims: Vec<Arc<Segment>> = {
            let map = self.segments.read().unwrap_or_else(|e| e.into_inner());
            let mut total: u64 = map.values().map(|s| s.size()).sum();
            let sealed = map.values().take(map.len().saturating_sub(1));
            let mut out = Vec::new();
            for seg in sealed {
                let too_old = self.config.retention_ms.is_some_and(|ms| {
                    seg.max_timestamp()
                        < now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX))
                });
                let too_big = self
                    .config
                    .retention_bytes
                    .is_some_and(|max| total - seg.size() >= max);
                if !(too_old || too_big) {
                    break;
                }
                total -= seg.size();
                out.push(Arc::clone(seg));
            }
            out
        };
        let Some(last) = victims.last() else {
            return Ok(0);
        };
        let new_start = last.next_offset();
        // Persist first: a crash after this point deletes the rest on open.
        write_offset_file(&self.dir, LOG_START_OFFSET, new_start)?;
        self.log_start.fetch_max(new_start, Ordering::AcqRel);
        {
            let mut map = self.segments.write().unwrap_or_else(|e| e.into_inner());
            for seg in &victims {
                map.remove(&seg.base_offset());
            }
        }
        for seg in &victims {
            seg.delete()?;
        }
        sync_dir(&self.dir)?;
        tracing::info!(partition = %self.name, segments = victims.len(), log_start_offset = new_start, "retention deleted segments");
        Ok(victims.len())
    }

    fn close(&self) -> Result<()> {
        let Some(end) = self.stop_appends()? else {
            return Ok(());
        };
        for seg in std::mem::take(&mut *lock(&self.unsynced)) {
            seg.sync_all()?;
            seg.release_file();
        }
        self.flush_to(end)?;
        // The final time-index entry must be on disk before the marker.
        sync_last_segment(&self.segments)?;
        // The end offset tells the next open where the synced log ends.
        write_offset_file(&self.dir, CLEAN_SHUTDOWN, end)
    }

    /// Records `offset` as the recovery point if it is higher than the last
    /// one: everything below it is on disk, so recovery never cuts it.
    /// After a roll's sync always; after a flush at most every
    /// [`RECOVERY_POINT_EVERY`] (Kafka checkpoints its recovery points every
    /// 60 s too). Written durably (temporary file, fsync, rename, directory
    /// fsync): a rename that reached the disk before its contents would
    /// leave an empty file, read as "no recovery point".
    fn advance_recovery_point(&self, offset: u64, roll: bool) {
        let mut rp = lock(&self.recovery_point);
        if offset <= rp.0 || (!roll && rp.1.elapsed() < RECOVERY_POINT_EVERY) {
            return;
        }
        match write_offset_file(&self.dir, RECOVERY_POINT, offset) {
            Ok(()) => *rp = (offset, Instant::now()),
            Err(e) => {
                tracing::warn!(partition = %self.name, error = %e, "could not record the recovery point; recovery will scan more")
            }
        }
    }

    /// Stops appends and ends the active segment (final time-index entry,
    /// no trim, no sync); returns the log end, or `None` if already closed.
    ///
    /// A partition whose flush failed gets no end (so no clean-shutdown
    /// marker): what the failed flush should have written may not be on
    /// disk, and the next open must scan.
    fn stop_appends(&self) -> Result<Option<u64>> {
        let mut app = lock(&self.appender);
        if app.closed {
            return Ok(None);
        }
        app.closed = true;
        app.active.stop();
        if let Some(reason) = &lock(&self.flush).poisoned {
            tracing::warn!(partition = %self.name, reason, "closing without a clean-shutdown marker: a flush had failed");
            return Ok(None);
        }
        Ok(Some(app.active.next_offset()))
    }
}

/// The steps of [`crate::Log::close`], which closes thousands of partitions
/// with two file-system syncs instead of several fsyncs each.
impl Partition {
    /// Stops appends and ends the active segment without syncing; returns
    /// the log end (`None` if the partition was closed already).
    pub(crate) fn close_unsynced(&self) -> Result<Option<u64>> {
        self.shared.stop_appends()
    }

    /// After a file-system sync that covered everything written: drops the
    /// file descriptors and writes the clean-shutdown marker (durable only
    /// with the next file-system sync).
    pub(crate) fn finish_close_after_syncfs(&self, end: u64) -> Result<()> {
        // `syncfs` reports only write-back errors since its own descriptor
        // was opened: one that hit this partition's pages earlier shows on
        // the file's own fdatasync (cheap now, nothing is dirty). No marker then.
        let unsynced = std::mem::take(&mut *lock(&self.shared.unsynced));
        for seg in unsynced.iter().chain(self.shared.segment_list().last()) {
            seg.sync()?;
        }
        for seg in self.shared.segment_list() {
            seg.release_file();
        }
        crate::file::replace_unsynced(
            &self.shared.dir,
            CLEAN_SHUTDOWN,
            format!("{end}\n").as_bytes(),
        )
    }
}

impl Flushable for Shared {
    fn periodic_flush(&self) {
        let end = *self.end.borrow();
        if let Err(e) = self.flush_to(end) {
            tracing::error!(partition = %self.name, error = %e, "periodic flush failed");
        }
    }

    fn sync_sealed(&self) {
        let pending = std::mem::take(&mut *lock(&self.unsynced));
        let Some(last) = pending.last() else { return };
        let recovery_point = last.next_offset();
        // The log data only: a sealed segment's indexes are rebuilt from it
        // if a crash leaves them behind (two more fsyncs per roll cost W1).
        let result = pending.iter().try_for_each(|s| s.sync());
        if result.is_ok() {
            self.advance_recovery_point(recovery_point, true);
            // Synced and sealed: read through the mapping alone from now on.
            pending.iter().for_each(|s| s.release_file());
        }
        if let Err(e) = result {
            tracing::error!(partition = %self.name, error = %e, "syncing rolled segments failed");
            lock(&self.flush).poisoned.get_or_insert(e.to_string());
        }
    }
}

/// Syncs the last segment's log and indexes (after a close sealed it).
fn sync_last_segment(segments: &RwLock<BTreeMap<u64, Arc<Segment>>>) -> Result<()> {
    let last = segments
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .values()
        .next_back()
        .cloned();
    last.map_or(Ok(()), |s| {
        s.sync_all()?;
        s.release_file();
        Ok(())
    })
}

type Loaded = (BTreeMap<u64, Arc<Segment>>, u64, RecoveryReport);

/// The clean-shutdown marker's end offset: `Some` after a clean close
/// (`Some(None)` for a marker from before it recorded the end).
fn read_clean_marker(dir: &Path) -> Option<Option<u64>> {
    let path = dir.join(CLEAN_SHUTDOWN);
    path.exists().then(|| read_offset_file(&path))
}

/// Opens every segment of `dir` under the recovery rules (docs/format.md,
/// "Recovery"): segments are trusted after a clean close or below the
/// recovery point, and scanned otherwise; no sealed segment is ever cut or
/// deleted; only the last segment's unsynced tail may be cut. Offsets that
/// no segment holds are marked missing, never reused.
fn load_segments(dir: &Path, cfg: &PartitionConfig, clean: Option<Option<u64>>) -> Result<Loaded> {
    let persisted_rp = read_offset_file(&dir.join(RECOVERY_POINT)).unwrap_or(0);
    // After a clean close everything up to the recorded end was synced.
    let (trust_below, recovery_point) = match clean {
        Some(Some(end)) => (u64::MAX, end.max(persisted_rp)),
        Some(None) => (u64::MAX, persisted_rp),
        None => (persisted_rp, persisted_rp),
    };
    let mut log_start = read_offset_file(&dir.join(LOG_START_OFFSET)).unwrap_or(0);
    remove_leftovers(dir)?;
    let mut bases = list_segments(dir)?;
    // Segments wholly below the log start: retention was cut short by a
    // crash. Retention only ever moves the log start to the base of a later
    // segment, so a value that is not one (a damaged file) deletes nothing.
    if log_start > 0 && !bases.is_empty() && !bases.contains(&log_start) {
        tracing::error!(dir = %dir.display(), log_start, "log-start-offset is not a segment's base offset; ignoring it, deleting nothing");
        log_start = 0;
    }
    while bases.len() >= 2 && bases[1] <= log_start {
        remove_segment_files(dir, bases[0])?;
        bases.remove(0);
    }
    let mut report = RecoveryReport {
        clean: clean.is_some(),
        ..Default::default()
    };
    let mut segments = BTreeMap::new();
    if bases.is_empty() {
        report.created = true;
        let seg = Segment::create(dir, log_start, segment_capacity(cfg), cfg)?;
        sync_dir(dir)?;
        segments.insert(log_start, Arc::new(seg));
        return Ok((segments, log_start, report));
    }
    for (i, &base) in bases.iter().enumerate() {
        let role = match bases.get(i + 1) {
            Some(&next_base) => Role::Sealed { next_base },
            None => Role::Active { recovery_point },
        };
        // After an unclean stop the last segment is always scanned: its
        // check covers only what follows its last index entry, and index
        // pages may have reached the disk ahead of the log pages.
        let trusted = base < trust_below && (clean.is_some() || bases.get(i + 1).is_some());
        let (seg, stats) = Segment::open(dir, base, cfg, role, trusted)?;
        report.add(&stats);
        if let Role::Sealed { next_base } = role {
            let end = seg.next_offset();
            if end > next_base {
                return Err(Error::Corrupt {
                    path: seg.path().to_path_buf(),
                    position: seg.size(),
                    reason: format!(
                        "segments overlap: this one holds offsets up to {} but the next starts at {next_base}",
                        end - 1
                    ),
                });
            }
            if end < next_base {
                seg.mark_missing(end, next_base);
                report
                    .damaged
                    .extend(seg.damaged_ranges().into_iter().last());
            }
        }
        if let Some(next) = stats.roll_to {
            // Damage kept below the recovery point at the end of the last
            // segment: seal it there and go on in a new one.
            seg.seal()?;
            seg.sync_all()?;
            seg.release_file();
            let new = Segment::create(dir, next, segment_capacity(cfg), cfg)?;
            sync_dir(dir)?;
            segments.insert(base, Arc::new(seg));
            segments.insert(next, Arc::new(new));
            continue;
        }
        segments.insert(base, Arc::new(seg));
    }
    let first = *segments.keys().next().unwrap_or(&0);
    let end = segments.values().next_back().map_or(0, |s| s.next_offset());
    log_start = log_start.clamp(first, end);
    Ok((segments, log_start, report))
}

/// Deletes temporary files a crash left behind.
fn remove_leftovers(dir: &Path) -> Result<()> {
    for entry in fs::read_dir(dir).at(dir)? {
        let path = entry.at(dir)?.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            // A rename may have taken it meanwhile: gone is what we wanted.
            match fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e).at(&path),
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "partition_tests.rs"]
mod tests;
