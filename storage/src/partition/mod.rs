//! A partition: the ordered segments of one log, its appender and readers.
//!
//! The rooms of this module: `loader` (opening after a clean or unclean
//! stop, producer state rebuilt), `flush` (group commit, durable offset,
//! recovery point), `replica` (high watermark, leader epochs, follower
//! appends and truncation: what replication builds on), `retention`,
//! `close`.
//!
//! # Locks
//! Taken in this order, never the other way round, so none can deadlock:
//! 1. `retention`: one retention pass or truncation at a time.
//! 2. `appender`: one append, roll, truncation or close at a time. It holds
//!    the producer state and the leader epochs, so that the sequence check,
//!    the write and the state update are one step.
//! 3. `segments` (read-write): written by roll, retention and truncation;
//!    readers hold it only to look segments up, never while reading bytes.
//! 4. `unsynced`: rolled segments waiting for the background sync.
//! 5. `roll_snapshot`: the producer state of the last roll, held by the
//!    background sync while it writes the snapshot.
//! 6. `flush` with its condvar `flushed`: the group-commit state. Never held
//!    while syncing.
//! 7. `recovery_point`: alone, except that a truncation holds it (inside
//!    `appender`) from lowering it until the new end is published.
//!
//! The file system (`Shared::fs`, a [`FileSystem`]) is called with any of
//! these held; a test double's own lock is taken inside it and released
//! before it returns, so it is always last.
//!
//! Inside a segment, its `writer` mutex is taken by appends (inside
//! `appender`) and by the background sync (alone); uncontended it costs
//! ~20 ns an append, below the noise of every benchmark, so it stays.

mod close;
mod flush;
mod loader;
mod replica;
mod retention;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, Weak};
use std::time::Instant;

use brook_protocol::batch::{Batch, DecodeError, headers};
use bytes::Bytes;
use tokio::sync::watch;

use crate::config::{FlushPolicy, PartitionConfig};
use crate::damage::DamagedRange;
use crate::epochs::LeaderEpochs;
use crate::error::{Error, Result};
use crate::file::{remove_segment_files, sync_dir};
use crate::flusher::{self, Flushable};
use crate::fs::{FileSystem, RealFs};
use crate::producers::{ProducerState, Verdict};
use crate::segment::Segment;

pub use loader::RecoveryReport;

const CLEAN_SHUTDOWN: &str = ".clean-shutdown";
const LOG_START_OFFSET: &str = "log-start-offset";
const RECOVERY_POINT: &str = "recovery-point";
/// `Shared::snapshot_to` when no producer-state snapshot is on disk.
const NO_SNAPSHOT: u64 = u64::MAX;
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
    /// The batch was a retry of one an idempotent producer had stored
    /// already: nothing was written, the offsets are the first ones.
    pub duplicate: bool,
}

/// The answer to a read: whole batches, zero-copy from the segment's mapping.
#[derive(Debug, Clone)]
pub struct ReadResult {
    /// Back-to-back batches, starting with the one that holds the requested
    /// offset (which may begin before it), none at or past the high
    /// watermark. Empty at the high watermark.
    pub batches: Bytes,
    /// First offset still stored.
    pub log_start_offset: u64,
    /// Next offset to be assigned.
    pub log_end_offset: u64,
    /// Offsets below it are committed and visible to readers.
    pub high_watermark: u64,
}

/// One partition of a topic: an append-only log of record batches kept in
/// segment files under one directory.
///
/// Cheap to clone (an `Arc`). One appender at a time (appends serialise on
/// an internal lock); any number of concurrent readers, who never wait for
/// the appender and see only complete batches below the high watermark.
/// Durability: see [`FlushPolicy`], [`Partition::flush_to`] and
/// [`Partition::wait_durable`].
#[derive(Clone)]
pub struct Partition {
    shared: Arc<Shared>,
}

/// What moves the high watermark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
enum Watermark {
    /// Every append (one node, the leader's write is the whole quorum).
    LogEnd = 0,
    /// Every flush: under [`FlushPolicy::Always`] readers see only what is
    /// on disk, so no reader ever sees a record a crash could take back.
    Durable = 1,
    /// Only [`Partition::advance_high_watermark`] (a replicated partition:
    /// the leader moves it as followers catch up).
    Replicated = 2,
}

struct Shared {
    name: String,
    dir: PathBuf,
    config: PartitionConfig,
    /// Every change to the partition's files goes through it (its segments
    /// hold a clone): the real file system, or a test's faulty one.
    fs: Arc<dyn FileSystem>,
    /// Every segment by base offset; the last one is the active segment.
    /// Written only on roll, retention and truncation, so readers rarely wait.
    segments: RwLock<BTreeMap<u64, Arc<Segment>>>,
    appender: Mutex<Appender>,
    log_start: AtomicU64,
    /// The log end offset, published after each append.
    end: watch::Sender<u64>,
    /// Offsets below it are visible to readers; what long-polls wait on.
    high_watermark: watch::Sender<u64>,
    /// A [`Watermark`].
    watermark: AtomicU8,
    flush: Mutex<flush::FlushState>,
    flushed: Condvar,
    /// The durable offset; also woken (unchanged) when a flush fails, so
    /// async waiters see the poison.
    durable: watch::Sender<u64>,
    /// Rolled segments not yet synced by the flusher, oldest first.
    unsynced: Mutex<Vec<Arc<Segment>>>,
    /// The producer state as of the last roll, written by the background
    /// sync once the sealed segment below it is on disk.
    roll_snapshot: Mutex<Option<(ProducerState, u64)>>,
    /// The offset the producer-state snapshot on disk is valid to
    /// ([`NO_SNAPSHOT`] if there is none).
    snapshot_to: AtomicU64,
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
    producers: ProducerState,
    epochs: LeaderEpochs,
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
    /// last run did not close it cleanly, and rebuilds its producer state
    /// (snapshot plus the log after it). Blocks on the disk: call it from a
    /// blocking thread. `name` (e.g. `orders/3`) is used in logs and errors.
    pub fn open(
        dir: impl Into<PathBuf>,
        name: impl Into<String>,
        config: PartitionConfig,
    ) -> Result<Partition> {
        Partition::open_with(dir, name, config, Arc::new(RealFs))
    }

    /// Like [`Partition::open`], changing the files only through `fs`
    /// (every write, sync, allocation, truncation, rename and deletion):
    /// how tests inject I/O errors, full disks and short writes.
    pub fn open_with(
        dir: impl Into<PathBuf>,
        name: impl Into<String>,
        config: PartitionConfig,
        fs: Arc<dyn FileSystem>,
    ) -> Result<Partition> {
        loader::open(dir.into(), name.into(), config, fs)
    }

    /// Appends a checked batch, assigning it the next offsets, and returns
    /// once it is written (readable, and safe from a process crash) — or,
    /// under [`FlushPolicy::Always`], once it is on disk.
    ///
    /// A batch of an idempotent producer (producer id ≥ 0) is checked
    /// against the producer's state first: a retry of a stored batch returns
    /// its first offsets with `duplicate` set and writes nothing; a sequence
    /// gap, a stale epoch or an unknown producer is an error.
    pub fn append(&self, batch: &Batch) -> Result<AppendInfo> {
        let info = self.shared.append(batch)?;
        if self.shared.config.flush == FlushPolicy::Always {
            self.flush_to(info.last_offset + 1)?;
        }
        Ok(info)
    }

    /// Like [`Partition::append`], but never waits for a flush, whatever the
    /// policy: for async callers that must not block on `fdatasync`. The
    /// caller owes a [`Partition::wait_durable`] before acknowledging, when
    /// the policy is [`FlushPolicy::Always`] or the producer asked for
    /// durability. Never blocks on the disk otherwise: a roll only trims
    /// files, and their sync is left to the background thread.
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

    /// Completes once every offset below `offset` is on disk, without a
    /// thread waiting for it: the first waiter hands one flush to the
    /// storage's flush threads, and every waiter awaits the durable offset
    /// (group commit, as [`Partition::flush_to`]).
    pub async fn wait_durable(&self, offset: u64) -> Result<()> {
        Arc::clone(&self.shared).wait_durable(offset).await
    }

    /// Reads whole batches starting at the one that holds `offset`, up to
    /// `max_bytes` (always at least one batch), none at or past the high
    /// watermark. Reading at or past the high watermark returns no batches;
    /// outside `log_start..=log_end` is [`Error::OffsetOutOfRange`].
    pub fn read(&self, offset: u64, max_bytes: usize) -> Result<ReadResult> {
        self.shared.read(offset, max_bytes, true)
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

    /// Offsets below it are visible to readers (and count for lag).
    pub fn high_watermark(&self) -> u64 {
        *self.shared.high_watermark.borrow()
    }

    /// Everything below this offset is on disk.
    pub fn durable_offset(&self) -> u64 {
        *self.shared.durable.borrow()
    }

    /// A receiver that sees every new high watermark: long-poll and push
    /// subscribers wait on it (`wait_for(|hw| *hw > offset)`).
    pub fn watch_high_watermark(&self) -> watch::Receiver<u64> {
        self.shared.high_watermark.subscribe()
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

    /// Idempotent producers the partition keeps state for.
    pub fn producer_count(&self) -> usize {
        lock(&self.shared.appender).producers.len()
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
    /// (its reserved space stays for the next open) and the producer-state
    /// snapshot, syncs everything and writes the clean-shutdown marker so the
    /// next open skips recovery. Reads keep working; appends fail with
    /// [`Error::Closed`].
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

    fn watermark(&self) -> Watermark {
        match self.watermark.load(Ordering::Acquire) {
            0 => Watermark::LogEnd,
            1 => Watermark::Durable,
            _ => Watermark::Replicated,
        }
    }

    fn check_not_poisoned(&self) -> Result<()> {
        match &lock(&self.flush).poisoned {
            Some(reason) => Err(Error::Poisoned {
                partition: self.name.clone(),
                reason: reason.clone(),
            }),
            None => Ok(()),
        }
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

    /// The leader's append: producer check, then the next offsets.
    fn append(self: &Arc<Self>, batch: &Batch) -> Result<AppendInfo> {
        let count = self.check_batch(batch)?;
        self.check_not_poisoned()?;
        let mut app = lock(&self.appender);
        if app.closed {
            return Err(Error::Closed(self.name.clone()));
        }
        if let Verdict::Duplicate(stored) = app.producers.check(batch.header())? {
            return Ok(AppendInfo {
                base_offset: stored.base_offset,
                last_offset: stored.last_offset,
                log_end_offset: app.active.next_offset(),
                duplicate: true,
            });
        }
        let base = app.active.next_offset();
        self.write(&mut app, batch, base, count)
    }

    /// Writes `batch` at `base` (the log end), rolling first if the active
    /// segment is full or old, records it in the producer state and
    /// publishes the new end (and high watermark, where appends move it).
    fn write(
        self: &Arc<Self>,
        app: &mut Appender,
        batch: &Batch,
        base: u64,
        count: u64,
    ) -> Result<AppendInfo> {
        let size = batch.bytes().len() as u64;
        let now = now_ms();
        let too_old = now.saturating_sub(app.rolled_at_ms) >= self.config.segment_ms as i64;
        let offsets_overflow = base + count - app.active.base_offset() > u64::from(u32::MAX);
        let full =
            app.active.size() + size > self.config.segment_bytes || !app.active.has_room(size);
        if !app.active.is_empty() && (full || too_old || offsets_overflow) {
            self.roll(app, base, now)?;
        }
        app.active.append(batch, base)?;
        app.producers.record(batch.header(), base);
        let end = base + count;
        self.end.send_replace(end);
        if self.watermark() == Watermark::LogEnd {
            self.high_watermark.send_replace(end);
        }
        Ok(AppendInfo {
            base_offset: base,
            last_offset: end - 1,
            log_end_offset: end,
            duplicate: false,
        })
    }

    /// Starts a new active segment at `base`. The new one is created before
    /// the old one is sealed, so a failure leaves the old one active. (On a
    /// full disk the roll fails with `DiskFull` if the new segment's indexes
    /// cannot reserve their first entries; if only its log cannot, it is
    /// created with no space reserved and the append that needs the space
    /// fails with `DiskFull`.)
    fn roll(self: &Arc<Self>, app: &mut Appender, base: u64, now: i64) -> Result<()> {
        let new = Arc::new(self.create_segment(base)?);
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
        *lock(&self.roll_snapshot) = Some((app.producers.clone(), base));
        let weak: Weak<dyn Flushable> = Arc::downgrade(self) as Weak<dyn Flushable>;
        flusher::sync_sealed(weak);
        Ok(())
    }

    /// Creates the segment a roll goes on in, its name durable in the
    /// directory. A failure leaves none of its files behind: an empty
    /// segment at `base` would claim offsets that the old active segment
    /// may still give out (a smaller batch still fits there), and the next
    /// open would find the two overlapping.
    fn create_segment(&self, base: u64) -> Result<Segment> {
        let capacity = self.config.segment_capacity();
        let created = Segment::create(&self.fs, &self.dir, base, capacity, &self.config)
            // The new file must survive a power cut before a durable ack can point into it.
            .and_then(|seg| sync_dir(&*self.fs, &self.dir).map(|()| seg));
        if created.is_err()
            && let Err(e) = remove_segment_files(&*self.fs, &self.dir, base)
        {
            tracing::error!(partition = %self.name, base, error = %e, "could not remove the files of a segment whose creation failed");
        }
        created
    }

    /// Reads from `offset` (see [`Partition::read`]); `visible_only` stops
    /// at the high watermark, else at the log end (replaying the log).
    fn read(&self, offset: u64, max_bytes: usize, visible_only: bool) -> Result<ReadResult> {
        // The watermark first: it never passes the end read after it.
        let high_watermark = *self.high_watermark.borrow();
        let log_end = *self.end.borrow();
        let bound = match visible_only {
            true => high_watermark.min(log_end),
            false => log_end,
        };
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
            high_watermark,
        };
        if offset >= bound {
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
                result.batches = match bound < log_end {
                    true => batches_below(batches, bound),
                    false => batches,
                };
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
}

/// The leading batches of `batches` whose base offset is below `bound`.
fn batches_below(batches: Bytes, bound: u64) -> Bytes {
    let mut len = 0;
    for h in headers(&batches) {
        if h.base_offset >= bound {
            break;
        }
        len += h.batch_length as usize + brook_protocol::batch::LOG_OVERHEAD;
    }
    batches.slice(..len.min(batches.len()))
}

#[cfg(test)]
mod replica_tests;
#[cfg(test)]
mod tests;
