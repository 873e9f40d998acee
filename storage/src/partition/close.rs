//! Closing a partition: alone, or as one step of the whole log's close.
//! Either way the producer-state snapshot is written at the log end before
//! the clean-shutdown marker, so the next open replays nothing.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, RwLock};

use super::{CLEAN_SHUTDOWN, Partition, Shared, lock};
use crate::error::Result;
use crate::file::{replace_unsynced, write_offset_file};
use crate::producers::ProducerState;
use crate::segment::Segment;

/// What a close still has to write once appends stopped.
struct Stopped {
    end: u64,
    /// The producer state at `end`, unless the snapshot on disk is valid to `end` already.
    snapshot: Option<ProducerState>,
}

impl Shared {
    pub(super) fn close(&self) -> Result<()> {
        let Some(stopped) = self.stop_appends()? else {
            return Ok(());
        };
        for seg in std::mem::take(&mut *lock(&self.unsynced)) {
            seg.sync_all()?;
            seg.release_file();
        }
        self.flush_to(stopped.end)?;
        self.save_snapshot(stopped.snapshot, stopped.end, true);
        // The final time-index entry must be on disk before the marker.
        sync_last_segment(&self.segments)?;
        // The end offset tells the next open where the synced log ends.
        write_offset_file(&*self.fs, &self.dir, CLEAN_SHUTDOWN, stopped.end)
    }

    /// Writes the close's producer-state snapshot, valid to `end`. A failure
    /// is only a warning: the clean-shutdown marker is still right (the log
    /// is complete), and the next open rebuilds the state from an older
    /// snapshot (or none) plus the log after it. One partition's full disk
    /// must not make thousands of others recover uncleanly.
    fn save_snapshot(&self, state: Option<ProducerState>, end: u64, durable: bool) {
        let Some(state) = state else { return };
        match state.save(&*self.fs, &self.dir, end, durable) {
            Ok(()) => self.snapshot_to.store(end, Ordering::Release),
            Err(e) => {
                tracing::warn!(partition = %self.name, error = %e, "could not write the producer-state snapshot at close; the next open replays the log instead")
            }
        }
    }

    /// Stops appends and ends the active segment (final time-index entry,
    /// no trim, no sync); returns the log end with the producer state to
    /// snapshot, or `None` if already closed.
    ///
    /// A partition whose flush failed gets no end (so no clean-shutdown
    /// marker): what the failed flush should have written may not be on
    /// disk, and the next open must scan.
    fn stop_appends(&self) -> Result<Option<Stopped>> {
        let stopped = self.stop_appends_now();
        // A cleaning pass swaps a segment under `retention` and checks
        // `closed` first: waiting for the lock waits out a swap begun before.
        drop(lock(&self.retention));
        stopped
    }

    fn stop_appends_now(&self) -> Result<Option<Stopped>> {
        let mut app = lock(&self.appender);
        if app.closed {
            return Ok(None);
        }
        app.closed = true;
        app.active.stop();
        // An older roll snapshot must not land after the close's own.
        lock(&self.roll_snapshot).take();
        if let Some(reason) = &lock(&self.flush).poisoned {
            tracing::warn!(partition = %self.name, reason, "closing without a clean-shutdown marker: a flush had failed");
            return Ok(None);
        }
        let end = app.active.next_offset();
        let snapshot = (self.snapshot_to.load(Ordering::Acquire) != end)
            .then(|| std::mem::take(&mut app.producers));
        Ok(Some(Stopped { end, snapshot }))
    }
}

/// The steps of [`crate::Log::close`], which closes thousands of partitions
/// with two file-system syncs instead of several fsyncs each.
impl Partition {
    /// Stops appends, ends the active segment and writes the producer-state
    /// snapshot, without syncing; returns the log end (`None` if the
    /// partition was closed already). The snapshot is durable with the
    /// file-system sync that follows, before any clean-shutdown marker.
    pub(crate) fn close_unsynced(&self) -> Result<Option<u64>> {
        let Some(stopped) = self.shared.stop_appends()? else {
            return Ok(None);
        };
        self.shared
            .save_snapshot(stopped.snapshot, stopped.end, false);
        Ok(Some(stopped.end))
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
        replace_unsynced(
            &*self.shared.fs,
            &self.shared.dir,
            CLEAN_SHUTDOWN,
            format!("{end}\n").as_bytes(),
        )
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
