//! A partition: the ordered segments of one log, its appender and readers.
//!
//! The rooms of this module: `append` (the leader's append and roll),
//! `read`, `loader` (opening after a clean or unclean
//! stop, producer state rebuilt), `flush` (group commit, durable offset,
//! recovery point), `replica` (high watermark, leader epochs, follower
//! appends and truncation: what replication builds on), `retention`,
//! `clean` (compaction: a cleaning pass and its segment swaps), `close`,
//! `settings` (changing the settings of an open partition).
//!
//! # Locks
//! Taken in this order, never the other way round, so none can deadlock:
//! 0. `cleaning`: one cleaning pass at a time, held for the whole pass
//!    (nothing else waits on it).
//! 1. `retention`: one retention pass, truncation or segment swap of a
//!    cleaning pass at a time.
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
//! 8. `interval_timer`: the flusher thread and `set_config` decide under it
//!    whether a periodic flush timer runs (the flusher reads `config` inside).
//! 9. `config` (read-write): read inside any of the above for a moment;
//!    written by `set_config` inside `appender`, holding nothing else.
//! 10. `checkpoint`: the compaction state, read or replaced inside any of
//!     the above for a moment, nothing taken inside it.
//!
//! The file system (`Shared::fs`, a [`FileSystem`]) is called with any of
//! these held; a test double's own lock is taken inside it and released
//! before it returns, so it is always last.
//!
//! Inside a segment, its `writer` mutex is taken by appends (inside
//! `appender`) but also, without `appender`, by the background sync, the
//! release of a synced segment's file and the close: it guards the file
//! descriptor those share, so it stays. Uncontended it is two atomic
//! operations per append.

mod append;
mod clean;
pub use clean::{CleanOptions, CleanStats, CleaningStatus};
mod close;
mod flush;
pub use flush::partition_flushes;
mod loader;
mod read;
mod replica;
mod retention;
mod settings;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::Instant;

use brook_protocol::batch::Batch;
use bytes::Bytes;
use tokio::sync::watch;

use crate::config::{FlushPolicy, PartitionConfig};
use crate::damage::DamagedRange;
use crate::epochs::LeaderEpochs;
use crate::error::{Error, Result};
use crate::fs::{FileSystem, RealFs};
use crate::producers::ProducerState;
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
    /// Set once its topic is deleted: reads fail with [`Error::Deleted`].
    deleted: std::sync::atomic::AtomicBool,
    /// Changed only by [`Partition::set_config`]; read per append, roll
    /// and retention pass, so a change applies from the next one.
    config: RwLock<PartitionConfig>,
    /// Whether the flusher holds a periodic timer for this partition. The
    /// timer and `set_config` decide under this lock, so a policy change
    /// never leaves two timers or none.
    interval_timer: Mutex<bool>,
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
    /// Held through a cleaning pass.
    cleaning: Mutex<()>,
    /// How far compaction got, and when (a leaf lock, held for a moment).
    checkpoint: Mutex<clean::Checkpoint>,
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
        if self.flush_policy() == FlushPolicy::Always {
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

    /// What an append of `batch` would say about its producer, without
    /// appending: `Some` for a retry of a stored batch (where it is,
    /// `duplicate` set), `None` for a batch to append, or the refusal
    /// (a sequence gap, a stale epoch, an unknown producer). The append
    /// checks again: this is for work that must come before it (writing a
    /// batch's invalid records elsewhere) and must not be done for a
    /// duplicate or a refused batch.
    pub fn check_producer(&self, batch: &Batch) -> Result<Option<AppendInfo>> {
        self.shared.check_producer(batch)
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

    /// An idempotent producer's epoch and the sequence its next batch must
    /// start at here, or `None` if the partition keeps no state for it
    /// (never seen, or expired). A writer that numbers its batches
    /// deterministically learns from it, after a crash, how much of its
    /// unconfirmed work was stored.
    pub fn producer_next_sequence(&self, producer_id: i64) -> Option<(i16, i32)> {
        lock(&self.shared.appender)
            .producers
            .next_sequence(producer_id)
    }

    /// Idempotent producers the partition keeps state for.
    pub fn producer_count(&self) -> usize {
        lock(&self.shared.appender).producers.len()
    }

    /// Deletes whole sealed segments that fall outside `retention_ms` (their
    /// newest record is older than `now_ms - retention_ms`) or `retention_bytes`,
    /// oldest first, and advances and persists the log start offset. Returns
    /// the number of segments deleted. The active segment is never deleted,
    /// nor anything of a partition whose cleanup policy does not delete.
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

    /// The partition's settings now.
    pub fn config(&self) -> PartitionConfig {
        self.shared.config()
    }

    /// The flush policy now (what a produce asks for each request).
    pub fn flush_policy(&self) -> FlushPolicy {
        self.shared.settings().flush
    }

    /// Forgets the idempotent producers whose newest batch is more than
    /// `max_idle_ms` older than `now_ms` (Kafka's
    /// `producer.id.expiration.ms`); the next snapshot leaves them out.
    /// Returns how many were forgotten.
    pub fn expire_producers(&self, now_ms: i64, max_idle_ms: u64) -> usize {
        lock(&self.shared.appender)
            .producers
            .expire(now_ms, max_idle_ms)
    }

    /// Marks the partition deleted (its topic was): reads fail with
    /// [`Error::Deleted`] from now on, and whoever waits on the high
    /// watermark (long polls, subscriptions) is woken to find that out, so
    /// that they end and drop their handles: the files are released once
    /// the last handle goes.
    pub fn mark_deleted(&self) {
        self.shared.deleted.store(true, Ordering::Release);
        self.shared.high_watermark.send_modify(|_| {});
    }

    /// Whether the partition's topic was deleted.
    pub fn is_deleted(&self) -> bool {
        self.shared.deleted.load(Ordering::Acquire)
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
    /// The settings now, read in place: an append reads a field or two
    /// and should not copy them all.
    fn settings(&self) -> std::sync::RwLockReadGuard<'_, PartitionConfig> {
        self.config.read().unwrap_or_else(|e| e.into_inner())
    }

    fn config(&self) -> PartitionConfig {
        self.settings().clone()
    }

    fn segment_list(&self) -> Vec<Arc<Segment>> {
        self.segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    fn set_watermark(&self, w: Watermark) {
        self.watermark.store(w as u8, Ordering::Release);
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
}

#[cfg(test)]
mod clean_tests;
#[cfg(test)]
mod replica_tests;
#[cfg(test)]
mod settings_tests;
#[cfg(test)]
mod tests;
