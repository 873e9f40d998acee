//! The leader's append: the batch checks, the producer-state check, the
//! write at the log end, and the roll to a new segment when the active one
//! is full or old.

use std::sync::{Arc, Weak};

use brook_protocol::batch::{Batch, DecodeError, NO_PARTITION_LEADER_EPOCH};

use super::{AppendInfo, Appender, Shared, Watermark, lock, now_ms};
use crate::error::{Error, Result};
use crate::file::{remove_segment_files, sync_dir};
use crate::flusher::{self, Flushable};
use crate::producers::Verdict;
use crate::segment::Segment;

impl Shared {
    pub(super) fn check_batch(&self, batch: &Batch) -> Result<u64> {
        let size = batch.bytes().len();
        let max = self.settings().max_batch_bytes;
        if size > max as usize {
            return Err(Error::BatchTooLarge { size, max });
        }
        let h = batch.header();
        // A batch spans `last_offset_delta + 1` offsets; it holds as many
        // records, or fewer when the broker left some out (gaps, see
        // `BatchBuilder::skip_offsets`). Producers' batches were checked
        // for density before this.
        if u64::from(h.record_count) > u64::from(h.last_offset_delta) + 1 {
            return Err(DecodeError::Inconsistent {
                field: "record_count",
                header: i64::from(h.record_count),
                actual: i64::from(h.last_offset_delta) + 1,
            }
            .into());
        }
        Ok(u64::from(h.last_offset_delta) + 1)
    }

    /// See [`super::Partition::check_producer`].
    pub(super) fn check_producer(&self, batch: &Batch) -> Result<Option<AppendInfo>> {
        let app = lock(&self.appender);
        Ok(match app.producers.check(batch.header())? {
            Verdict::Duplicate(stored) => Some(AppendInfo {
                base_offset: stored.base_offset,
                last_offset: stored.last_offset,
                log_end_offset: app.active.next_offset(),
                duplicate: true,
            }),
            Verdict::Append => None,
        })
    }

    /// Refuses a batch with a keyless record on a compacted partition.
    /// Only the leader checks: a follower copies what its leader took.
    fn check_keys(&self, batch: &Batch) -> Result<()> {
        let policy = self.settings().cleanup_policy;
        if !policy.compacts() || batch.header().transactional_or_control() {
            return Ok(());
        }
        for (index, record) in batch.records().enumerate() {
            if record?.key.is_none() {
                return Err(Error::KeyRequired {
                    partition: self.name.clone(),
                    policy: policy.name(),
                    index,
                });
            }
        }
        Ok(())
    }

    /// The leader's append: producer check, then the next offsets.
    pub(super) fn append(self: &Arc<Self>, batch: &Batch) -> Result<AppendInfo> {
        let count = self.check_batch(batch)?;
        self.check_keys(batch)?;
        if self.deleted.load(std::sync::atomic::Ordering::Acquire) {
            return Err(Error::Deleted(self.name.clone()));
        }
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
    pub(super) fn write(
        self: &Arc<Self>,
        app: &mut Appender,
        batch: &Batch,
        base: u64,
        count: u64,
    ) -> Result<AppendInfo> {
        let size = batch.bytes().len() as u64;
        let now = now_ms();
        let (segment_ms, segment_bytes) = {
            let c = self.settings();
            (c.roll_after_ms(), c.segment_bytes)
        };
        let too_old = now.saturating_sub(app.rolled_at_ms) >= segment_ms as i64;
        let offsets_overflow = base + count - app.active.base_offset() > u64::from(u32::MAX);
        let full = app.active.size() + size > segment_bytes || !app.active.has_room(size);
        if !app.active.is_empty() && (full || too_old || offsets_overflow) {
            self.roll(app, base, now)?;
        }
        // Every stored batch carries the epoch it was written in (-1 before
        // the first), never what the producer put there.
        let epoch = app
            .epochs
            .latest()
            .map_or(NO_PARTITION_LEADER_EPOCH, |(e, _)| {
                i32::try_from(e).unwrap_or(NO_PARTITION_LEADER_EPOCH)
            });
        app.active.append(batch, base, Some(epoch))?;
        app.producers.record(batch.header(), base, now);
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
    pub(super) fn roll(self: &Arc<Self>, app: &mut Appender, base: u64, now: i64) -> Result<()> {
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
        let config = self.config();
        let capacity = config.segment_capacity();
        let created = Segment::create(&self.fs, &self.dir, base, capacity, &config)
            // The new file must survive a power cut before a durable ack can point into it.
            .and_then(|seg| sync_dir(&*self.fs, &self.dir).map(|()| seg));
        if created.is_err()
            && let Err(e) = remove_segment_files(&*self.fs, &self.dir, base)
        {
            tracing::error!(partition = %self.name, base, error = %e, "could not remove the files of a segment whose creation failed");
        }
        created
    }
}
