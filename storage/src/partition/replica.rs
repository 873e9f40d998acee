//! What replication builds on, used by nothing in a single broker yet:
//! a high watermark kept apart from the log end, leader epochs, the
//! follower's append (offsets assigned by the leader) and truncation of a
//! diverged tail. The model is Kafka's: a follower asks the leader where its
//! latest epoch ends ([`Partition::end_offset_for_epoch`] there), truncates
//! its own log to that offset ([`Partition::truncate_to`]) and then appends
//! what it fetches ([`Partition::append_replicated`]); the leader moves the
//! high watermark as followers catch up ([`Partition::advance_high_watermark`]).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use brook_protocol::batch::{Batch, headers};

use super::{
    AppendInfo, NO_SNAPSHOT, Partition, RECOVERY_POINT, Shared, Watermark,
    loader::rebuild_producers, lock,
};
use crate::error::{Error, IoContext, Result};
use crate::file::{
    SegmentPaths, remove_if_exists, remove_segment_files, sync_dir, write_offset_file,
};
use crate::producers::SNAPSHOT;
use crate::segment::{Role, Segment};

/// Where a truncation builds the kept part of a segment before renaming it
/// into place (a directory named `*.tmp` is a leftover the loader removes).
const TRUNCATING: &str = "truncating.tmp";

impl Partition {
    /// Hands the high watermark to replication: from now on only
    /// [`Partition::advance_high_watermark`] moves it (a leader with
    /// followers, or a follower told by its leader). It starts at
    /// `high_watermark` (at most the log end): the value the replication
    /// layer checkpointed, since a single node's watermark is its log end.
    pub fn set_replicated(&self, high_watermark: u64) {
        self.shared.set_watermark(Watermark::Replicated);
        let end = self.log_end_offset();
        self.shared
            .high_watermark
            .send_replace(high_watermark.min(end));
    }

    /// Moves the high watermark up to `offset` (at most the log end; never
    /// down). Wakes readers waiting for new records. Returns the new value.
    pub fn advance_high_watermark(&self, offset: u64) -> u64 {
        let end = self.log_end_offset();
        let mut now = 0;
        self.shared.high_watermark.send_if_modified(|hw| {
            let target = offset.min(end).max(*hw);
            now = target;
            std::mem::replace(hw, target) != target
        });
        now
    }

    /// The latest leader epoch and the offset it began at.
    pub fn leader_epoch(&self) -> Option<(u32, u64)> {
        lock(&self.shared.appender).epochs.latest()
    }

    /// Records that this replica leads from now on under `epoch`: the
    /// records appended from the current log end on belong to it. An older
    /// epoch than the latest is [`Error::StaleLeaderEpoch`].
    pub fn begin_leader_epoch(&self, epoch: u32) -> Result<()> {
        let mut app = lock(&self.shared.appender);
        let end = app.active.next_offset();
        app.epochs.assign(epoch, end)
    }

    /// The leader epoch of the batch holding `offset`.
    pub fn epoch_for_offset(&self, offset: u64) -> Option<u32> {
        lock(&self.shared.appender).epochs.epoch_for(offset)
    }

    /// Kafka's `OffsetsForLeaderEpoch`: the largest epoch at or below
    /// `epoch` and where it ends in this log (the next epoch's start, or the
    /// log end for the latest). A follower truncates to it.
    pub fn end_offset_for_epoch(&self, epoch: u32) -> Option<(u32, u64)> {
        let app = lock(&self.shared.appender);
        app.epochs.end_offset_for(epoch, app.active.next_offset())
    }

    /// A follower's append: the batch keeps the offsets its leader gave it,
    /// and must start exactly at this log's end ([`Error::OffsetMismatch`]
    /// otherwise). `leader_epoch` is the epoch the leader wrote it in: a
    /// newer one than the latest is recorded as starting at this batch.
    /// Producer state is updated, not checked: the leader checked.
    /// Does not wait for a flush.
    pub fn append_replicated(&self, batch: &Batch, leader_epoch: u32) -> Result<AppendInfo> {
        let shared = &self.shared;
        let count = shared.check_batch(batch)?;
        shared.check_not_poisoned()?;
        let mut app = lock(&shared.appender);
        if app.closed {
            return Err(Error::Closed(shared.name.clone()));
        }
        let base = batch.header().base_offset;
        let end = app.active.next_offset();
        if base != end {
            return Err(Error::OffsetMismatch {
                received: base,
                log_end_offset: end,
            });
        }
        app.epochs.assign(leader_epoch, base)?;
        shared.write(&mut app, batch, base, count)
    }

    /// Removes every record at or after `offset` (a follower's diverged
    /// tail), so that the next append gets `offset`. `offset` must be a batch
    /// boundary at or above the high watermark: records below it were
    /// committed, and truncating them would lose acknowledged data
    /// ([`Error::TruncateBelowHighWatermark`]). At or past the log end it
    /// does nothing.
    ///
    /// Crash-safe at every step: the recovery point is lowered first,
    /// whole segments are deleted newest first, and the segment holding
    /// `offset` is rebuilt beside the old one and renamed over it. Readers
    /// holding views of removed bytes keep them (the old files stay mapped).
    pub fn truncate_to(&self, offset: u64) -> Result<()> {
        self.shared.truncate_to(offset)
    }
}

impl Shared {
    fn truncate_to(self: &Arc<Self>, offset: u64) -> Result<()> {
        let _no_retention_meanwhile = lock(&self.retention);
        let mut app = lock(&self.appender);
        if app.closed {
            return Err(Error::Closed(self.name.clone()));
        }
        let end = app.active.next_offset();
        if offset >= end {
            return Ok(());
        }
        let high_watermark = *self.high_watermark.borrow();
        if offset < high_watermark {
            return Err(Error::TruncateBelowHighWatermark {
                offset,
                high_watermark,
            });
        }
        // Recovery must never trust bytes about to be rewritten; held to
        // the end, so that a background sync of a segment this deletes
        // cannot raise the recovery point again meanwhile.
        let mut rp = lock(&self.recovery_point);
        if rp.0 > offset {
            write_offset_file(&*self.fs, &self.dir, RECOVERY_POINT, offset)?;
            rp.0 = offset;
        }
        self.drop_snapshots_past(offset)?;
        let segments = self.segment_list();
        let Some(holder) = segments.iter().rev().find(|s| s.base_offset() <= offset) else {
            return Err(Error::OffsetOutOfRange {
                requested: offset,
                log_start_offset: self.log_start.load(Ordering::Acquire),
                log_end_offset: end,
            });
        };
        let kept = kept_batches(holder, offset)?;
        let base = holder.base_offset();
        let replaced = (|| {
            for seg in segments.iter().rev().filter(|s| s.base_offset() > offset) {
                remove_segment_files(&*self.fs, &self.dir, seg.base_offset())?;
            }
            sync_dir(&*self.fs, &self.dir)?;
            // Built beside and renamed over, even when nothing is kept: the
            // old files stay in place until the new ones are complete.
            self.rebuild_segment(base, &kept, offset)
        })();
        let active = match replaced {
            Ok(active) => active,
            Err(e) => {
                // The files no longer match the segments in memory: stop
                // writes; the next open recovers from what is on disk.
                tracing::error!(partition = %self.name, offset, error = %e, "truncation failed; partition stops accepting writes");
                lock(&self.flush).poisoned.get_or_insert(e.to_string());
                self.durable.send_modify(|_| {});
                return Err(e);
            }
        };
        let active = Arc::new(active);
        {
            let mut map = self.segments.write().unwrap_or_else(|e| e.into_inner());
            map.retain(|b, _| *b < base);
            map.insert(base, Arc::clone(&active));
        }
        lock(&self.unsynced).retain(|s| s.base_offset() < base);
        app.active = active;
        self.end.send_replace(offset);
        self.high_watermark
            .send_modify(|hw| *hw = (*hw).min(offset));
        {
            let mut st = lock(&self.flush);
            st.durable = st.durable.min(offset);
            self.durable.send_modify(|d| *d = (*d).min(offset));
        }
        drop(rp);
        app.epochs.truncate_from(offset)?;
        self.checkpoint_truncated(offset);
        let (producers, snapshot_to, _) = rebuild_producers(self)?;
        app.producers = producers;
        self.snapshot_to
            .store(snapshot_to.unwrap_or(NO_SNAPSHOT), Ordering::Release);
        tracing::info!(partition = %self.name, offset, previous_end = end, "truncated the log");
        Ok(())
    }

    /// Forgets producer-state snapshots valid past `offset`: they describe
    /// records about to go.
    fn drop_snapshots_past(&self, offset: u64) -> Result<()> {
        let mut pending = lock(&self.roll_snapshot);
        pending.take_if(|(_, to)| *to > offset);
        let on_disk = self.snapshot_to.load(Ordering::Acquire);
        if on_disk != NO_SNAPSHOT && on_disk > offset {
            remove_if_exists(&*self.fs, &self.dir.join(SNAPSHOT))?;
            sync_dir(&*self.fs, &self.dir)?;
            self.snapshot_to.store(NO_SNAPSHOT, Ordering::Release);
        }
        Ok(())
    }

    /// Builds a segment at `base` holding `kept` beside the old one and
    /// renames its files over the old one's, then opens it for appends.
    fn rebuild_segment(&self, base: u64, kept: &[Batch], end: u64) -> Result<Segment> {
        let tmp = self.dir.join(TRUNCATING);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).at(&tmp)?;
        }
        std::fs::create_dir(&tmp).at(&tmp)?;
        {
            let config = self.config();
            let seg = Segment::create(&self.fs, &tmp, base, config.segment_capacity(), &config)?;
            for batch in kept {
                seg.append(batch, batch.header().base_offset, None)?;
            }
            seg.seal()?;
            seg.sync_all()?;
        }
        let from = SegmentPaths::new(&tmp, base);
        let to = SegmentPaths::new(&self.dir, base);
        // Indexes first: a crash before the log's rename leaves the old log
        // with indexes that fail their check, and those are rebuilt.
        for (a, b) in [
            (&from.index, &to.index),
            (&from.timeindex, &to.timeindex),
            (&from.log, &to.log),
        ] {
            self.fs.rename(a, b).at(b)?;
        }
        sync_dir(&*self.fs, &self.dir)?;
        std::fs::remove_dir_all(&tmp).at(&tmp)?;
        let (seg, _) = Segment::open(
            &self.fs,
            &self.dir,
            base,
            &self.config(),
            Role::Active {
                recovery_point: end,
            },
            true,
        )?;
        Ok(seg)
    }
}

/// The batches of `seg` below `offset`, which must start a batch.
fn kept_batches(seg: &Segment, offset: u64) -> Result<Vec<Batch>> {
    let mut kept = Vec::new();
    let mut next = seg.base_offset();
    while next < offset {
        let Some(bytes) = seg.read(next, 1 << 20)? else {
            break;
        };
        let mut at = 0;
        for h in headers(&bytes) {
            if h.base_offset >= offset {
                break;
            }
            let len = h.batch_length as usize + brook_protocol::batch::LOG_OVERHEAD;
            kept.push(Batch::parse(bytes.slice(at..at + len))?);
            at += len;
            next = h.next_offset();
        }
        if at == 0 {
            break;
        }
    }
    if next != offset {
        return Err(Error::NotABatchBoundary {
            offset,
            batch_end: next,
        });
    }
    Ok(kept)
}
