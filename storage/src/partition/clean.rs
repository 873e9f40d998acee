//! Compaction of one partition: a cleaning pass and the swap of each
//! rewritten segment (the cleaner thread that calls it is
//! `crate::compaction::Cleaner`).
//!
//! A pass reads the dirty part of the cleanable log (sealed segments, on
//! disk, older than `min_compaction_lag_ms`, undamaged) into an offset map,
//! then rewrites every cleanable segment below the map's end without the
//! records it supersedes and the tombstones past their retention. Offsets
//! never change, and a segment never holds a jump in its offsets: a run of
//! batches left with no record becomes one record-less batch spanning
//! their offsets (what Kafka keeps of a producer's last batch), so readers,
//! recovery and the checks of stored batches see an unbroken chain. Each
//! idempotent producer's newest batch stays (emptied if need be), so its
//! state rebuilds from the log.
//!
//! The swap of a segment is crash-safe without a manifest, because a
//! rewritten segment has the same base offset and the same end as the old
//! one: its indexes are removed, its new log renamed over the old one (one
//! atomic step), the new indexes renamed in. A crash leaves either log,
//! whole, and indexes that match it or none (rebuilt at open); segments
//! are swapped oldest first, so a tombstone never goes while an older
//! value of its key survives below it. The pass records how far its map
//! reached (`cleaner-checkpoint`) only after every swap: a crash before
//! makes the next pass do the work again.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use brook_protocol::batch::{Batch, BatchBuilder, HEADER_LEN, headers};

use super::{Partition, Shared, lock};
use crate::compaction::{
    CleanHistory, Cleaned, MapBuilder, OffsetMap, Tally, Throttle, clean_batch,
};
use crate::config::{MAX_SEGMENT_BYTES, PartitionConfig};
use crate::error::{Error, IoContext, Result};
use crate::file::{SegmentPaths, remove_if_exists, sync_dir, write_atomic_in};
use crate::segment::{Role, Segment};

/// The partition's compaction state on disk (see [`Checkpoint`]).
pub(super) const CHECKPOINT: &str = "cleaner-checkpoint";
/// Where a pass builds a segment before renaming it into place (a
/// directory named `*.tmp` is a leftover the loader removes).
const CLEANING: &str = "cleaning.tmp";
const MAGIC: &str = "brook-cleaner 2";

/// What a partition knows of its compaction, in memory
/// (`Shared::checkpoint`) and in `cleaner-checkpoint`:
/// `brook-cleaner 2 <cleaned_to> <first kept tombstone|none>` and a line
/// of [`CleanHistory`] ranges. Written only after a pass's swaps.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Checkpoint {
    /// Offsets below it are clean (a pass's map covered them).
    pub cleaned_to: u64,
    /// The first offset of a tombstone the last pass kept: the next to go.
    pub first_kept_tombstone: Option<u64>,
    /// When each clean range was first cleaned: tombstone retention's clock.
    pub history: CleanHistory,
    /// Truncations since the open (not written): a pass that began before
    /// one does not record how far it got.
    pub truncations: u64,
}

impl Checkpoint {
    fn encode(&self) -> String {
        let first = self
            .first_kept_tombstone
            .map_or("none".to_string(), |o| o.to_string());
        format!(
            "{MAGIC} {} {first}\n{}\n",
            self.cleaned_to,
            self.history.encode()
        )
    }

    /// Reads the file; a missing or unreadable one (or one of version 1,
    /// which had no history) means nothing is known clean: the next pass
    /// reads the whole log, and what it covers counts as clean from then.
    pub(super) fn read(dir: &std::path::Path) -> Checkpoint {
        let text = std::fs::read_to_string(dir.join(CHECKPOINT)).unwrap_or_default();
        let mut lines = text.lines();
        let head = lines.next().unwrap_or_default();
        let parsed = (|| {
            let rest = head.strip_prefix(MAGIC)?;
            let mut words = rest.split_whitespace();
            let cleaned_to = words.next()?.parse().ok()?;
            let first_kept_tombstone = match words.next()? {
                "none" => None,
                o => Some(o.parse().ok()?),
            };
            let history = CleanHistory::decode(lines.next().unwrap_or_default())?;
            Some(Checkpoint {
                cleaned_to,
                first_kept_tombstone,
                history,
                truncations: 0,
            })
        })();
        parsed.unwrap_or_default()
    }
}

/// What a cleaning pass may use.
#[derive(Debug, Clone, Copy)]
pub struct CleanOptions<'a> {
    /// Most bytes the offset map may take (Kafka's
    /// `log.cleaner.dedupe.buffer.size`); a dirty log with more keys is
    /// cleaned over several passes.
    pub map_bytes: usize,
    /// Bounds the bytes read and written per second.
    pub throttle: Option<&'a Throttle>,
    /// Set to end the pass early (the broker stopping): segments swapped
    /// so far stay swapped, the checkpoint does not move.
    pub stop: Option<&'a AtomicBool>,
}

/// What a pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// Segments rewritten and swapped in.
    pub segments_rewritten: u32,
    /// Bytes of log read (map and rewrite).
    pub bytes_read: u64,
    /// Bytes of log written.
    pub bytes_written: u64,
    /// Records removed because a later record of their key exists.
    pub superseded: u64,
    /// Tombstones removed because their retention ran out.
    pub tombstones: u64,
    /// Offsets below it are clean (covered by a map) after the pass.
    pub cleaned_to: u64,
    /// The map filled before the dirty log ended: the next pass goes on.
    pub map_full: bool,
    /// The pass ended early (stop asked, partition closed or deleted).
    pub aborted: bool,
}

/// A partition's compaction state, read without waiting for a pass.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CleaningStatus {
    /// Offsets below it are clean.
    pub cleaned_to: u64,
    /// Bytes of cleanable segments that are clean.
    pub clean_bytes: u64,
    /// Bytes of cleanable segments not cleaned yet.
    pub dirty_bytes: u64,
    /// `dirty_bytes` over all cleanable bytes (0 when there are none).
    pub dirty_ratio: f64,
    /// The first timestamp of the oldest dirty cleanable segment.
    pub oldest_dirty_ms: Option<i64>,
    /// When the oldest tombstone the last pass kept is due to go.
    pub tombstones_due_ms: Option<i64>,
}

impl Partition {
    /// Runs one cleaning pass now if the partition is compacted (see the
    /// module doc); `now_ms` is the clock tombstone retention and
    /// `min_compaction_lag_ms` count against. One pass at a time: a second
    /// caller waits.
    pub fn clean(&self, now_ms: i64, options: &CleanOptions<'_>) -> Result<CleanStats> {
        self.shared.clean(now_ms, options)
    }

    /// The partition's compaction state (no I/O beyond a segment header).
    pub fn cleaning_status(&self, now_ms: i64) -> CleaningStatus {
        self.shared.cleaning_status(now_ms, &self.shared.config())
    }

    /// Whether a pass is due, and how urgently (higher first): a bound of
    /// `max_compaction_lag_ms` passed or a tombstone's retention ran out
    /// (≥ 2), else the dirty ratio once it reaches
    /// `min_cleanable_dirty_ratio`. `None` for a partition that is not
    /// compacted, or has nothing to clean.
    pub fn cleaning_due(&self, now_ms: i64) -> Option<f64> {
        let config = self.shared.config();
        if !config.cleanup_policy.compacts() || self.shared.stopping() {
            return None;
        }
        let st = self.shared.cleaning_status(now_ms, &config);
        if st.tombstones_due_ms.is_some_and(|due| due <= now_ms) {
            return Some(2.0);
        }
        if st.dirty_bytes == 0 {
            return None;
        }
        let lagging = config.max_compaction_lag_ms.is_some_and(|max| {
            st.oldest_dirty_ms
                .is_some_and(|t| t <= now_ms.saturating_sub(max as i64))
        });
        match lagging {
            true => Some(2.0 + st.dirty_ratio),
            false => {
                (st.dirty_ratio >= config.min_cleanable_dirty_ratio.get()).then_some(st.dirty_ratio)
            }
        }
    }
}

/// A batch of a rewritten segment.
enum Out {
    /// Kept (as it was, or rebuilt), with the leader epoch it was stored under.
    Batch(Batch, i32),
    /// A run of batches left with no record, as one record-less batch.
    Span(Span),
}

struct Span {
    base: u64,
    end: u64,
    max_timestamp: i64,
    epoch: i32,
    /// Batches merged into it, and whether any of them held records: a
    /// lone span batch carried over as it was is no change.
    merged: u32,
    had_records: bool,
}

impl Shared {
    /// Whether the partition is closing or deleted: no pass starts or swaps.
    pub(super) fn stopping(&self) -> bool {
        self.deleted.load(Ordering::Acquire) || lock(&self.appender).closed
    }

    /// The cleanable segments, oldest first: sealed (never the active
    /// one), synced, below the high watermark (a replicated partition's
    /// uncommitted records may still be truncated away, and must not
    /// supersede committed ones), undamaged, and (with
    /// `min_compaction_lag_ms`) holding no record younger than the lag. A prefix of the log: the first
    /// segment that fails a test ends it, so no tombstone is dropped while
    /// an older value of its key waits in a segment passed over.
    fn cleanable(&self, now_ms: i64, config: &PartitionConfig) -> Vec<Arc<Segment>> {
        let active_base = lock(&self.appender).active.base_offset();
        let high_watermark = *self.high_watermark.borrow();
        let unsynced: HashSet<u64> = lock(&self.unsynced)
            .iter()
            .map(|s| s.base_offset())
            .collect();
        let min_lag = i64::try_from(config.min_compaction_lag_ms).unwrap_or(i64::MAX);
        let newest_allowed = now_ms.saturating_sub(min_lag);
        self.segment_list()
            .into_iter()
            .take_while(|s| {
                s.base_offset() < active_base
                    && s.next_offset() <= high_watermark
                    && !unsynced.contains(&s.base_offset())
                    && s.damaged_ranges().is_empty()
                    && (min_lag == 0 || s.max_timestamp() <= newest_allowed)
            })
            .collect()
    }

    fn cleaning_status(&self, now_ms: i64, config: &PartitionConfig) -> CleaningStatus {
        let log_start = self.log_start.load(Ordering::Acquire);
        let (cleaned_to, tombstones_due_ms) = {
            let cp = lock(&self.checkpoint);
            // Counted with today's delete_retention_ms: a change applies at once.
            let due = cp.first_kept_tombstone.map(|o| {
                cp.history
                    .since(o, now_ms)
                    .saturating_add(retention(config))
            });
            (cp.cleaned_to.max(log_start), due)
        };
        let mut st = CleaningStatus {
            cleaned_to,
            tombstones_due_ms,
            ..CleaningStatus::default()
        };
        for seg in self.cleanable(now_ms, config) {
            if seg.next_offset() <= cleaned_to {
                st.clean_bytes += seg.size();
            } else {
                st.dirty_bytes += seg.size();
                if st.oldest_dirty_ms.is_none() {
                    st.oldest_dirty_ms = seg.first_timestamp();
                }
            }
        }
        let total = st.clean_bytes + st.dirty_bytes;
        if total > 0 {
            st.dirty_ratio = st.dirty_bytes as f64 / total as f64;
        }
        st
    }

    fn clean(&self, now_ms: i64, opts: &CleanOptions<'_>) -> Result<CleanStats> {
        let _one_pass = lock(&self.cleaning);
        let config = self.config();
        let log_start = self.log_start.load(Ordering::Acquire);
        let at_start = lock(&self.checkpoint).clone();
        let from = at_start.cleaned_to.max(log_start);
        let mut stats = CleanStats {
            cleaned_to: from,
            ..CleanStats::default()
        };
        if !config.cleanup_policy.compacts() {
            return Ok(stats);
        }
        // Per batch: atomics only. Per segment, and before a swap, a close
        // counts too (it takes the appender lock for a moment).
        let quit = || {
            opts.stop.is_some_and(|s| s.load(Ordering::Acquire))
                || self.deleted.load(Ordering::Acquire)
        };
        let stop = || quit() || self.stopping();
        if stop() {
            stats.aborted = true;
            return Ok(stats);
        }
        // Taken before the segments: a producer's batch newer than this
        // list only makes an older batch stay that could have gone.
        let producers_last = lock(&self.appender).producers.last_offsets();
        let segments = self.cleanable(now_ms, &config);
        let spend = |bytes: u64| {
            if let Some(t) = opts.throttle {
                t.spend_unless(bytes, &quit);
            }
        };

        let mut builder = MapBuilder::new(opts.map_bytes);
        'map: for seg in segments.iter().filter(|s| s.next_offset() > from) {
            for batch in segment_batches(seg, from)? {
                if quit() {
                    stats.aborted = true;
                    return Ok(stats);
                }
                spend(batch.bytes().len() as u64);
                stats.bytes_read += batch.bytes().len() as u64;
                if !builder.add(&batch)? {
                    break 'map;
                }
            }
        }
        stats.map_full = builder.is_full();
        let covered_end = builder.covered_end().unwrap_or(from).max(from);
        let map = builder.finish();
        // A tombstone goes once delete_retention_ms has passed since the
        // pass that first covered it (KIP-534's clock, not its timestamp).
        let keep_for = retention(&config);
        let expired = |offset: u64, _timestamp: i64| {
            at_start
                .history
                .since(offset, now_ms)
                .saturating_add(keep_for)
                <= now_ms
        };
        let mut tally = Tally::default();
        for seg in segments.iter().filter(|s| s.base_offset() < covered_end) {
            if stop() {
                stats.aborted = true;
                return Ok(stats);
            }
            let batches = segment_batches(seg, seg.base_offset())?;
            let read: u64 = batches.iter().map(|b| b.bytes().len() as u64).sum();
            spend(read);
            stats.bytes_read += read;
            let plan = plan_segment(
                &batches,
                &map,
                covered_end,
                &expired,
                &producers_last,
                &mut tally,
            )?;
            let Some(out) = plan else { continue };
            match self.swap(seg, &out, &config, &stop)? {
                Some(written) => {
                    spend(written);
                    stats.bytes_written += written;
                    stats.segments_rewritten += 1;
                }
                None => {
                    stats.aborted = true;
                    return Ok(stats);
                }
            }
        }
        stats.superseded = tally.superseded;
        stats.tombstones = tally.tombstones;
        {
            // Under `retention`, which truncations and deletions take: a
            // pass that one overtook must not record how far it got.
            let _no_truncation_meanwhile = lock(&self.retention);
            let mut next = lock(&self.checkpoint).clone();
            if stop() || next.truncations != at_start.truncations {
                stats.aborted = true;
                return Ok(stats);
            }
            next.cleaned_to = covered_end;
            next.first_kept_tombstone = tally.first_kept_tombstone;
            next.history
                .record(covered_end, now_ms, config.delete_retention_ms);
            write_checkpoint(self, &next)?;
            *lock(&self.checkpoint) = next;
        }
        stats.cleaned_to = covered_end;
        if stats.segments_rewritten > 0 || stats.map_full {
            tracing::info!(
                partition = %self.name,
                segments = stats.segments_rewritten,
                bytes_read = stats.bytes_read,
                bytes_written = stats.bytes_written,
                superseded = stats.superseded,
                tombstones = stats.tombstones,
                cleaned_to = covered_end,
                map_full = stats.map_full,
                "cleaned the log"
            );
        }
        Ok(stats)
    }

    /// Builds `out` as a segment beside `old` and swaps it in (see the
    /// module doc). Returns the bytes written, or `None` when the swap was
    /// called off: the partition is stopping or `old` is no longer in the
    /// log (retention took it meanwhile).
    fn swap(
        &self,
        old: &Arc<Segment>,
        out: &[Out],
        config: &PartitionConfig,
        stop: &dyn Fn() -> bool,
    ) -> Result<Option<u64>> {
        let tmp = self.dir.join(CLEANING);
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).at(&tmp)?;
        }
        if stop() {
            return Ok(None);
        }
        std::fs::create_dir(&tmp).at(&tmp)?;
        let base = old.base_offset();
        let next_base = old.next_offset();
        let built = (|| {
            let planned: u64 = out
                .iter()
                .map(|o| match o {
                    Out::Batch(b, _) => b.bytes().len() as u64,
                    Out::Span(_) => HEADER_LEN as u64,
                })
                .sum();
            let capacity = planned.clamp(HEADER_LEN as u64, MAX_SEGMENT_BYTES);
            let seg = Segment::create(&self.fs, &tmp, base, capacity, config)?;
            for o in out {
                match o {
                    Out::Batch(b, epoch) => seg.append(b, b.header().base_offset, Some(*epoch))?,
                    Out::Span(s) => {
                        let b = span_batch(s)?;
                        seg.append(&b, s.base, Some(s.epoch))?
                    }
                }
            }
            seg.seal()?;
            seg.sync_all()?;
            if seg.next_offset() != next_base {
                // Never swap in a segment that does not end where the old one did.
                return Err(Error::Corrupt {
                    path: tmp.clone(),
                    position: seg.size(),
                    reason: format!(
                        "the cleaned segment at {base} ends at offset {} instead of {next_base}",
                        seg.next_offset()
                    ),
                });
            }
            Ok(seg.size())
        })();
        let written = match built {
            Ok(n) => n,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
        };
        let _no_retention_meanwhile = lock(&self.retention);
        let current = self
            .segments
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&base)
            .cloned();
        if stop() || !current.is_some_and(|c| Arc::ptr_eq(&c, old)) {
            let _ = std::fs::remove_dir_all(&tmp);
            return Ok(None);
        }
        let from = SegmentPaths::new(&tmp, base);
        let to = SegmentPaths::new(&self.dir, base);
        // The old indexes go first: a crash may then leave either log
        // without indexes (rebuilt at the next open), never a log with the
        // other one's indexes.
        remove_if_exists(&*self.fs, &to.index)?;
        remove_if_exists(&*self.fs, &to.timeindex)?;
        sync_dir(&*self.fs, &self.dir)?;
        self.fs.rename(&from.log, &to.log).at(&to.log)?;
        self.fs.rename(&from.index, &to.index).at(&to.index)?;
        self.fs
            .rename(&from.timeindex, &to.timeindex)
            .at(&to.timeindex)?;
        sync_dir(&*self.fs, &self.dir)?;
        let _ = std::fs::remove_dir_all(&tmp);
        let (new, _) = Segment::open(
            &self.fs,
            &self.dir,
            base,
            config,
            Role::Sealed { next_base },
            true,
        )?;
        self.segments
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(base, Arc::new(new));
        Ok(Some(written))
    }
}

/// What a pass writes for a segment of `batches`, or `None` if it would
/// write the same batches back.
fn plan_segment(
    batches: &[Batch],
    map: &OffsetMap,
    covered_end: u64,
    tombstone_expired: &dyn Fn(u64, i64) -> bool,
    producers_last: &HashSet<u64>,
    tally: &mut Tally,
) -> Result<Option<Vec<Out>>> {
    let mut out = Vec::with_capacity(batches.len());
    let mut changed = false;
    let mut span: Option<Span> = None;
    for b in batches {
        let h = b.header();
        let cleaned = match h.record_count {
            // A span or an emptied batch of an earlier pass.
            0 if h.next_offset() <= covered_end => Cleaned::Emptied(b.clone()),
            0 => Cleaned::Unchanged,
            _ => clean_batch(b, map, covered_end, tombstone_expired, tally)?,
        };
        let producers_newest = h.producer_id >= 0 && producers_last.contains(&h.last_offset());
        let kept = match cleaned {
            Cleaned::Unchanged => Some(b.clone()),
            // Compressed again at Brook's level, fewer records may take
            // more bytes than the producer's: then the batch stays whole.
            Cleaned::Rebuilt(r) if r.bytes().len() >= b.bytes().len() => Some(b.clone()),
            Cleaned::Rebuilt(r) => {
                changed = true;
                Some(r)
            }
            Cleaned::Emptied(e) if producers_newest => {
                changed |= h.record_count > 0;
                Some(e)
            }
            Cleaned::Emptied(_) => None,
        };
        // A span never covers two leader epochs: a follower truncating to
        // an epoch's start must find a batch boundary there.
        if let Some(s) = span.take_if(|s| kept.is_some() || s.epoch != h.partition_leader_epoch) {
            changed |= s.merged > 1 || s.had_records;
            out.push(Out::Span(s));
        }
        match kept {
            Some(k) => out.push(Out::Batch(k, h.partition_leader_epoch)),
            None => {
                let s = span.get_or_insert(Span {
                    base: h.base_offset,
                    end: h.base_offset,
                    max_timestamp: i64::MIN,
                    epoch: h.partition_leader_epoch,
                    merged: 0,
                    had_records: false,
                });
                s.end = h.next_offset();
                s.max_timestamp = s.max_timestamp.max(h.max_timestamp);
                s.merged += 1;
                s.had_records |= h.record_count > 0;
            }
        }
    }
    if let Some(s) = span.take() {
        changed |= s.merged > 1 || s.had_records;
        out.push(Out::Span(s));
    }
    Ok(changed.then_some(out))
}

/// A record-less batch spanning `s` (no producer: nothing replays it).
/// Its timestamp is the newest of the batches it stands for, so the
/// segment's newest timestamp (what time-based retention reads) stays.
fn span_batch(s: &Span) -> Result<Batch> {
    let mut b = BatchBuilder::with_capacity(64).first_timestamp(s.max_timestamp);
    let n = u32::try_from(s.end - s.base).map_err(|_| Error::Corrupt {
        path: Default::default(),
        position: 0,
        reason: format!("a span of {} offsets does not fit a batch", s.end - s.base),
    })?;
    b.skip_offsets(n);
    Ok(Batch::parse(b.build(s.base))?)
}

/// The batches of `seg` that end after `from`, zero-copy.
fn segment_batches(seg: &Segment, from: u64) -> Result<Vec<Batch>> {
    let mut out = Vec::new();
    let end = seg.next_offset();
    let mut next = from.max(seg.base_offset());
    while next < end {
        let Some(bytes) = seg.read(next, 4 << 20)? else {
            break;
        };
        let mut at = 0;
        for h in headers(&bytes) {
            let len = h.total_len();
            if at + len > bytes.len() {
                break;
            }
            let batch = Batch::parse(bytes.slice(at..at + len))?;
            if h.next_offset() > from {
                out.push(batch);
            }
            at += len;
            next = h.next_offset();
        }
        if at == 0 {
            break;
        }
    }
    Ok(out)
}

fn write_checkpoint(shared: &Shared, cp: &Checkpoint) -> Result<()> {
    write_atomic_in(&*shared.fs, &shared.dir, CHECKPOINT, cp.encode().as_bytes())
}

/// `delete_retention_ms` as a signed count of milliseconds.
fn retention(config: &PartitionConfig) -> i64 {
    i64::try_from(config.delete_retention_ms).unwrap_or(i64::MAX)
}

impl Shared {
    /// After a truncation to `offset`: what is appended from there on is
    /// dirty (after a restart too), and a pass under way does not record
    /// how far it got. Called under `retention`.
    pub(super) fn checkpoint_truncated(&self, offset: u64) {
        let mut cp = lock(&self.checkpoint);
        cp.truncations += 1;
        if cp.cleaned_to <= offset {
            return;
        }
        cp.cleaned_to = offset;
        cp.history.truncate(offset);
        cp.first_kept_tombstone = cp.first_kept_tombstone.filter(|o| *o < offset);
        if let Err(e) = write_checkpoint(self, &cp) {
            // Only compaction falls behind: records between the two
            // offsets are never read into a map, so what they supersede stays.
            tracing::warn!(partition = %self.name, error = %e, "could not lower the cleaner checkpoint after a truncation");
        }
    }
}
