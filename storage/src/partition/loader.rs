//! Opening a partition after a clean or an unclean stop (as Kafka's
//! `LogLoader`): which segments to trust, scan or seal, and the producer
//! state rebuilt from its snapshot plus the log after it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, AtomicU64};
use std::sync::{Arc, Condvar, Mutex, RwLock, Weak};
use std::time::Instant;

use brook_protocol::batch::headers;
use tokio::sync::watch;

use super::flush::FlushState;
use super::{
    Appender, CLEAN_SHUTDOWN, LOG_START_OFFSET, NO_SNAPSHOT, Partition, RECOVERY_POINT, Shared,
    Watermark, lock, now_ms,
};
use crate::config::{FlushPolicy, PartitionConfig};
use crate::damage::DamagedRange;
use crate::epochs::LeaderEpochs;
use crate::error::{Error, IoContext, Result};
use crate::file::{
    list_segments, read_offset_file, remove_if_exists, remove_segment_files, sync_dir,
};
use crate::flusher::{self, Flushable};
use crate::fs::FileSystem;
use crate::producers::ProducerState;
use crate::segment::{OpenReport, Role, Segment};

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
    /// Offsets of log replayed to rebuild the producer state (0 when the
    /// snapshot was valid to the log end).
    pub producer_offsets_replayed: u64,
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

/// [`Partition::open`].
pub(super) fn open(
    dir: PathBuf,
    name: String,
    config: PartitionConfig,
    fs: Arc<dyn FileSystem>,
) -> Result<Partition> {
    config.validate()?;
    std::fs::create_dir_all(&dir).at(&dir)?;
    let started = Instant::now();
    let clean = read_clean_marker(&dir);
    let (segments, log_start, mut report) = load_segments(&fs, &dir, &config, clean)?;
    let clean = clean.is_some();
    if clean {
        // Must be durable before the first append, or a crash would make
        // the next start trust a segment that has grown since. The
        // marker holds the end offset synced at the clean close: it
        // becomes the recovery point, in one rename.
        let marker = dir.join(CLEAN_SHUTDOWN);
        match read_offset_file(&marker) {
            Some(end) if end >= read_offset_file(&dir.join(RECOVERY_POINT)).unwrap_or(0) => {
                fs.rename(&marker, &dir.join(RECOVERY_POINT)).at(&dir)?
            }
            _ => fs.remove_file(&marker).at(&dir)?,
        }
        sync_dir(&*fs, &dir)?;
    }
    let Some(active) = segments.values().next_back().cloned() else {
        return Err(Error::Offline {
            partition: name,
            reason: "no segment after loading".into(),
        });
    };
    // Whatever survived is on disk from here on.
    active.sync()?;
    let end = active.next_offset();
    let rolled_at_ms = match active.is_empty() {
        true => now_ms(),
        false => active.first_timestamp().unwrap_or_else(now_ms),
    };
    let epochs = LeaderEpochs::open(&fs, &dir)?;
    let watermark = match config.flush {
        FlushPolicy::Always => Watermark::Durable,
        _ => Watermark::LogEnd,
    };
    let recovery_point = read_offset_file(&dir.join(RECOVERY_POINT)).unwrap_or(0);
    let mut checkpoint = super::clean::Checkpoint::read(&dir);
    // A truncation may have cut the log below it since.
    checkpoint.cleaned_to = checkpoint.cleaned_to.min(end);
    let mut shared = Shared {
        name,
        dir,
        fs,
        segments: RwLock::new(segments),
        appender: Mutex::new(Appender {
            active,
            rolled_at_ms,
            closed: false,
            producers: ProducerState::default(),
            epochs,
        }),
        log_start: AtomicU64::new(log_start),
        end: watch::Sender::new(end),
        high_watermark: watch::Sender::new(end),
        watermark: AtomicU8::new(watermark as u8),
        flush: Mutex::new(FlushState::new(end)),
        flushed: Condvar::new(),
        durable: watch::Sender::new(end),
        unsynced: Mutex::new(Vec::new()),
        roll_snapshot: Mutex::new(None),
        snapshot_to: AtomicU64::new(NO_SNAPSHOT),
        retention: Mutex::new(()),
        cleaning: Mutex::new(()),
        checkpoint: Mutex::new(checkpoint),
        recovery: RecoveryReport::default(),
        recovery_point: Mutex::new((recovery_point, Instant::now())),
        deleted: Default::default(),
        interval_timer: Mutex::new(matches!(config.flush, FlushPolicy::Interval(_))),
        config: RwLock::new(config),
    };
    // Nobody else holds the partition yet: the replay reads it unhurried.
    let (producers, snapshot_to, replayed) = rebuild_producers(&shared)?;
    report.producer_offsets_replayed = replayed;
    lock(&shared.appender).producers = producers;
    *shared.snapshot_to.get_mut() = snapshot_to.unwrap_or(NO_SNAPSHOT);
    log_report(&shared.name, &report, clean, started);
    shared.recovery = report;
    let shared = Arc::new(shared);
    if let FlushPolicy::Interval(period) = shared.settings().flush {
        let weak: Weak<dyn Flushable> = Arc::downgrade(&shared) as Weak<dyn Flushable>;
        flusher::every(weak, period);
    }
    Ok(Partition { shared })
}

fn log_report(name: &str, report: &RecoveryReport, clean: bool, started: Instant) {
    if !clean && !report.created {
        tracing::info!(
            partition = %name,
            segments_scanned = report.segments_scanned,
            bytes_scanned = report.bytes_scanned,
            bytes_truncated = report.bytes_truncated,
            truncated_from_offset = ?report.truncated_from_offset,
            damaged_ranges = report.damaged.len(),
            indexes_rebuilt = report.indexes_rebuilt,
            producer_offsets_replayed = report.producer_offsets_replayed,
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
}

/// The producer state at the log end: the snapshot (if it is not ahead of
/// the log) plus the batch headers after it, passing over damaged ranges
/// (their producers' sequences are lost with them; a retry of such a batch
/// is then appended again, not deduplicated). Returns the state, the offset
/// the snapshot on disk is valid to, and the offsets replayed.
pub(super) fn rebuild_producers(shared: &Shared) -> Result<(ProducerState, Option<u64>, u64)> {
    let end = *shared.end.borrow();
    let start = shared.log_start.load(std::sync::atomic::Ordering::Acquire);
    let (mut state, snapshot_to) = match ProducerState::load(&shared.dir) {
        Some((state, to)) if to <= end => (state, Some(to)),
        Some((_, to)) => {
            tracing::warn!(partition = %shared.name, snapshot_to = to, log_end = end, "producer-state snapshot is ahead of the log; rebuilding from the whole log");
            (ProducerState::default(), None)
        }
        None => (ProducerState::default(), None),
    };
    let from = snapshot_to.unwrap_or(start).max(start);
    let mut next = from;
    // Replayed producers count as seen at this open (their expiry starts now).
    let replayed_at = now_ms();
    while next < end {
        let read = match shared.read(next, 8 << 20, false) {
            Ok(read) => read,
            Err(Error::Damaged { end_offset, .. }) if end_offset > next => {
                next = end_offset;
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut last = None;
        for h in headers(&read.batches) {
            if h.next_offset() > next {
                state.record(&h, h.base_offset, replayed_at);
            }
            last = Some(h.next_offset());
        }
        match last {
            Some(n) if n > next => next = n,
            _ => break,
        }
    }
    Ok((state, snapshot_to, end - from))
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
fn load_segments(
    fs: &Arc<dyn FileSystem>,
    dir: &Path,
    cfg: &PartitionConfig,
    clean: Option<Option<u64>>,
) -> Result<Loaded> {
    let persisted_rp = read_offset_file(&dir.join(RECOVERY_POINT)).unwrap_or(0);
    // After a clean close everything up to the recorded end was synced.
    let (trust_below, recovery_point) = match clean {
        Some(Some(end)) => (u64::MAX, end.max(persisted_rp)),
        Some(None) => (u64::MAX, persisted_rp),
        None => (persisted_rp, persisted_rp),
    };
    let mut log_start = read_offset_file(&dir.join(LOG_START_OFFSET)).unwrap_or(0);
    remove_leftovers(&**fs, dir)?;
    let mut bases = list_segments(dir)?;
    // Segments wholly below the log start: retention was cut short by a
    // crash. Retention only ever moves the log start to the base of a later
    // segment, so a value that is not one (a damaged file) deletes nothing.
    if log_start > 0 && !bases.is_empty() && !bases.contains(&log_start) {
        tracing::error!(dir = %dir.display(), log_start, "log-start-offset is not a segment's base offset; ignoring it, deleting nothing");
        log_start = 0;
    }
    while bases.len() >= 2 && bases[1] <= log_start {
        remove_segment_files(&**fs, dir, bases[0])?;
        bases.remove(0);
    }
    let mut report = RecoveryReport {
        clean: clean.is_some(),
        ..Default::default()
    };
    let mut segments = BTreeMap::new();
    if bases.is_empty() {
        report.created = true;
        let seg = Segment::create(fs, dir, log_start, cfg.segment_capacity(), cfg)?;
        sync_dir(&**fs, dir)?;
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
        let (seg, stats) = Segment::open(fs, dir, base, cfg, role, trusted)?;
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
            let new = Segment::create(fs, dir, next, cfg.segment_capacity(), cfg)?;
            sync_dir(&**fs, dir)?;
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
fn remove_leftovers(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    for entry in std::fs::read_dir(dir).at(dir)? {
        let path = entry.at(dir)?.path();
        if path.extension().is_some_and(|e| e == "tmp") {
            // A rename may have taken it meanwhile: gone is what we wanted.
            // (A directory is a truncation's unfinished segment.)
            match path.is_dir() {
                true => match std::fs::remove_dir_all(&path) {
                    Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                        return Err(e).at(&path);
                    }
                    _ => {}
                },
                false => remove_if_exists(fs, &path)?,
            }
        }
    }
    Ok(())
}
