//! Group commit: one flush leader syncs for every waiter, blocking callers
//! on the condvar and async callers on the durable-offset watch; and what
//! follows a sync: the durable offset, the high watermark where flushes move
//! it, the recovery point and the snapshot of a rolled segment.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use super::{FlushPolicy, RECOVERY_POINT, RECOVERY_POINT_EVERY, Shared, Watermark, lock};
use crate::error::{Error, Result};
use crate::file::write_offset_file;
use crate::flusher::{self, Flushable};
use crate::segment::Segment;

/// Flushes of partitions since the process started: one per group commit,
/// however many segments and waiters it covers.
static PARTITION_FLUSHES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// How many times a partition's log was flushed to disk (fdatasync of its
/// segments) since the process started: for durable acks, the flush policy
/// and segment rolls. Kafka's `LogFlushRateAndTimeMs` counts the same.
pub fn partition_flushes() -> u64 {
    PARTITION_FLUSHES.load(Ordering::Relaxed)
}

/// The group-commit state, behind `Shared::flush`.
pub(super) struct FlushState {
    /// Every offset below it is on disk.
    pub durable: u64,
    /// A leader is syncing now.
    pub flushing: bool,
    /// An async waiter handed a flush to the flush threads, not started yet:
    /// the others wait for it instead of queueing more.
    pub requested: bool,
    /// Why the partition stopped accepting writes, after a failed sync.
    pub poisoned: Option<String>,
}

impl FlushState {
    pub fn new(durable: u64) -> FlushState {
        FlushState {
            durable,
            flushing: false,
            requested: false,
            poisoned: None,
        }
    }
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
            self.shared.durable.send_modify(|_| {});
        }
    }
}

impl Shared {
    fn poisoned(&self, reason: &str) -> Error {
        Error::Poisoned {
            partition: self.name.clone(),
            reason: reason.to_string(),
        }
    }

    pub(super) fn flush_to(&self, offset: u64) -> Result<()> {
        let offset = offset.min(*self.end.borrow());
        let mut st = lock(&self.flush);
        loop {
            if let Some(reason) = &st.poisoned {
                return Err(self.poisoned(reason));
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
            // A truncation during the sync lowered the end below it.
            let upto = upto.min(*self.end.borrow());
            let mut advanced = None;
            match result {
                Ok(()) if upto > st.durable => {
                    st.durable = upto;
                    advanced = Some(upto);
                }
                Ok(()) => {}
                Err(e) => {
                    tracing::error!(partition = %self.name, error = %e, "flush failed; partition stops accepting writes");
                    st.poisoned = Some(e.to_string());
                }
            }
            self.flushed.notify_all();
            // Always notifies, even unchanged: an async waiter whose offset
            // this flush did not cover must look again and start the next.
            self.durable
                .send_modify(|d| *d = (*d).max(upto.min(st.durable)));
            if let Some(durable) = advanced {
                drop(st);
                if self.watermark() == Watermark::Durable {
                    self.high_watermark
                        .send_modify(|hw| *hw = (*hw).max(durable));
                }
                self.advance_recovery_point(durable, false);
                st = lock(&self.flush);
            }
        }
    }

    /// [`super::Partition::wait_durable`]: no thread waits. The first waiter
    /// that finds no flush running or requested hands one to the flush
    /// threads; every waiter then awaits the durable offset, which each
    /// flush's end notifies (and a failed flush too, unchanged).
    pub(super) async fn wait_durable(self: Arc<Self>, offset: u64) -> Result<()> {
        let offset = offset.min(*self.end.borrow());
        let mut durable = self.durable.subscribe();
        loop {
            let request = {
                let mut st = lock(&self.flush);
                if let Some(reason) = &st.poisoned {
                    return Err(self.poisoned(reason));
                }
                if st.durable >= offset {
                    return Ok(());
                }
                let request = !st.flushing && !st.requested;
                st.requested |= request;
                request
            };
            if request {
                flusher::flush_soon(Arc::downgrade(&self) as Weak<dyn Flushable>);
            }
            if durable.changed().await.is_err() {
                return Err(Error::Closed(self.name.clone()));
            }
        }
    }

    /// Syncs every segment that may hold bytes at or after offset `from`.
    ///
    /// (The flush leader's [`FlushingGuard`] covers a panic in here.)
    fn sync_from(&self, from: u64) -> Result<()> {
        PARTITION_FLUSHES.fetch_add(1, Ordering::Relaxed);
        let segs: Vec<Arc<Segment>> = {
            let map = self.segments.read().unwrap_or_else(|e| e.into_inner());
            let first = map.range(..=from).next_back().map_or(0, |(b, _)| *b);
            map.range(first..).map(|(_, s)| Arc::clone(s)).collect()
        };
        segs.iter().try_for_each(|s| s.sync())
    }

    /// Records `offset` as the recovery point if it is higher than the last
    /// one: everything below it is on disk, so recovery never cuts it.
    /// After a roll's sync always; after a flush at most every
    /// [`RECOVERY_POINT_EVERY`] (Kafka checkpoints its recovery points every
    /// 60 s too). Written durably (temporary file, fsync, rename, directory
    /// fsync): a rename that reached the disk before its contents would
    /// leave an empty file, read as "no recovery point".
    pub(super) fn advance_recovery_point(&self, offset: u64, roll: bool) {
        let mut rp = lock(&self.recovery_point);
        // Past the end: a sync that began before a truncation.
        if offset <= rp.0
            || offset > *self.end.borrow()
            || (!roll && rp.1.elapsed() < RECOVERY_POINT_EVERY)
        {
            return;
        }
        match write_offset_file(&*self.fs, &self.dir, RECOVERY_POINT, offset) {
            Ok(()) => *rp = (offset, Instant::now()),
            Err(e) => {
                tracing::warn!(partition = %self.name, error = %e, "could not record the recovery point; recovery will scan more")
            }
        }
    }

    /// Writes the producer-state snapshot taken at the last roll, once the
    /// log below it is on disk (`synced_to`): a snapshot ahead of the log
    /// would call a retry of a batch the crash lost a duplicate. Holds
    /// `roll_snapshot` while writing, so a truncation cannot slip between.
    fn write_roll_snapshot(&self, synced_to: u64) {
        let mut pending = lock(&self.roll_snapshot);
        let Some((state, valid_to)) = pending.take_if(|(_, to)| *to <= synced_to) else {
            return;
        };
        match state.save(&*self.fs, &self.dir, valid_to, true) {
            Ok(()) => self.snapshot_to.store(valid_to, Ordering::Release),
            Err(e) => {
                tracing::warn!(partition = %self.name, error = %e, "could not write the producer-state snapshot; a crash now replays more of the log")
            }
        }
    }
}

impl Flushable for Shared {
    fn periodic_flush(&self) -> Option<Duration> {
        let period = {
            let mut armed = lock(&self.interval_timer);
            match self.settings().flush {
                FlushPolicy::Interval(period) => period,
                // The policy changed: this timer ends, and `set_config`
                // starts a new one if it changes back.
                _ => {
                    *armed = false;
                    return None;
                }
            }
        };
        let end = *self.end.borrow();
        if let Err(e) = self.flush_to(end) {
            tracing::error!(partition = %self.name, error = %e, "periodic flush failed");
        }
        Some(period)
    }

    fn requested_flush(&self) {
        // Cleared before flushing: a waiter whose offset this flush misses
        // must be free to request the next one.
        lock(&self.flush).requested = false;
        let end = *self.end.borrow();
        // A failure poisons the partition and wakes the waiters, who report it.
        let _ = self.flush_to(end);
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
            self.write_roll_snapshot(recovery_point);
        }
        if let Err(e) = result {
            tracing::error!(partition = %self.name, error = %e, "syncing rolled segments failed");
            lock(&self.flush).poisoned.get_or_insert(e.to_string());
            self.durable.send_modify(|_| {});
        }
    }
}
