use std::time::Duration;

use crate::error::{Error, Result};

/// When appended bytes are forced to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlushPolicy {
    /// Every append returns only once its bytes are on disk. Concurrent
    /// appends share one fdatasync (group commit).
    Always,
    /// A background thread flushes the partition at this period; an append
    /// returns once written to the page cache.
    Interval(Duration),
    /// The OS writes back when it likes; callers may still ask for durability
    /// of a given offset with [`crate::Partition::flush_to`].
    Never,
}

/// How the appender puts bytes into the active segment. Reads always go
/// through the memory map. See `docs/format.md` for the measurements that
/// chose the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendMode {
    /// Positioned writes (`pwritev`) into the file.
    Write,
    /// `memcpy` into the writable mapping of the preallocated segment.
    Mmap,
}

/// What happens to old records (Kafka's `cleanup.policy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CleanupPolicy {
    /// Whole old segments are deleted by `retention_ms` and `retention_bytes`.
    #[default]
    Delete,
    /// The cleaner keeps only the latest record of every key; nothing is
    /// deleted by age or size.
    Compact,
    /// Both: compacted, and whole old segments deleted by retention.
    CompactDelete,
}

impl CleanupPolicy {
    /// Whether the cleaner compacts the partition (records need keys).
    pub fn compacts(self) -> bool {
        matches!(self, CleanupPolicy::Compact | CleanupPolicy::CompactDelete)
    }

    /// Whether retention deletes old segments.
    pub fn deletes(self) -> bool {
        matches!(self, CleanupPolicy::Delete | CleanupPolicy::CompactDelete)
    }

    /// Kafka's name: `delete`, `compact` or `compact,delete`.
    pub fn name(self) -> &'static str {
        match self {
            CleanupPolicy::Delete => "delete",
            CleanupPolicy::Compact => "compact",
            CleanupPolicy::CompactDelete => "compact,delete",
        }
    }

    /// Parses Kafka's names: a comma-separated list of `delete` and
    /// `compact` in either order (spaces around them allowed).
    pub fn from_name(text: &str) -> Option<CleanupPolicy> {
        let (mut compact, mut delete) = (false, false);
        for part in text.split(',') {
            match part.trim() {
                "compact" => compact = true,
                "delete" => delete = true,
                _ => return None,
            }
        }
        match (compact, delete) {
            (true, true) => Some(CleanupPolicy::CompactDelete),
            (true, false) => Some(CleanupPolicy::Compact),
            (false, true) => Some(CleanupPolicy::Delete),
            (false, false) => None,
        }
    }
}

/// A ratio in [0, 1], kept in millionths so that settings compare exactly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ratio(u32);

impl Ratio {
    /// `value` rounded to millionths; `None` outside [0, 1] or not a number.
    pub fn new(value: f64) -> Option<Ratio> {
        (0.0..=1.0)
            .contains(&value)
            .then(|| Ratio((value * 1e6).round() as u32))
    }

    /// The ratio as a float.
    pub fn get(self) -> f64 {
        f64::from(self.0) / 1e6
    }
}

/// Settings of one partition's log (Kafka's topic-level log configs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionConfig {
    /// Roll to a new segment once the active one would exceed this size.
    pub segment_bytes: u64,
    /// Roll to a new segment once the active one is this old (ms).
    pub segment_ms: u64,
    /// Bytes of log between two entries of the sparse offset index.
    pub index_interval_bytes: u32,
    /// Delete sealed segments whose newest record is older than this (ms); `None` keeps forever.
    pub retention_ms: Option<u64>,
    /// Delete the oldest sealed segments while the partition is larger than this; `None` is unlimited.
    pub retention_bytes: Option<u64>,
    /// Largest batch an append accepts.
    pub max_batch_bytes: u32,
    /// When appends reach the disk.
    pub flush: FlushPolicy,
    /// How appends write the active segment.
    pub append_mode: AppendMode,
    /// Deletion by retention, compaction, or both.
    pub cleanup_policy: CleanupPolicy,
    /// A record stays uncompacted at least this long after its timestamp (ms).
    pub min_compaction_lag_ms: u64,
    /// A superseded record stays at most about this long after its
    /// timestamp (ms): its partition is cleaned (and its active segment
    /// rolled at the next append) whatever its dirty ratio. `None`: no bound.
    pub max_compaction_lag_ms: Option<u64>,
    /// A tombstone (a record with a null value) is kept this long after
    /// its timestamp (ms), so that a reader from the start sees the deletion.
    pub delete_retention_ms: u64,
    /// The cleaner takes a partition once this share of its cleanable log
    /// has not been cleaned yet.
    pub min_cleanable_dirty_ratio: Ratio,
}

/// Kafka's defaults where Kafka has one.
impl Default for PartitionConfig {
    fn default() -> Self {
        PartitionConfig {
            segment_bytes: 128 << 20,
            segment_ms: 7 * 24 * 3600 * 1000,
            index_interval_bytes: 4096,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            retention_bytes: None,
            max_batch_bytes: 4 << 20,
            flush: FlushPolicy::Interval(Duration::from_secs(1)),
            append_mode: AppendMode::Write,
            cleanup_policy: CleanupPolicy::Delete,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: None,
            delete_retention_ms: 24 * 3600 * 1000,
            min_cleanable_dirty_ratio: Ratio(500_000),
        }
    }
}

/// Positions in a segment and its index are 32-bit.
pub(crate) const MAX_SEGMENT_BYTES: u64 = u32::MAX as u64;
const MIN_SEGMENT_BYTES: u64 = 1024;

impl PartitionConfig {
    /// Bytes an active segment maps: large enough for any accepted batch.
    pub(crate) fn segment_capacity(&self) -> u64 {
        self.segment_bytes.max(u64::from(self.max_batch_bytes))
    }

    /// How old the active segment may grow before the next append rolls
    /// it: `segment_ms`, or less on a compacted partition whose superseded
    /// records must be cleaned within `max_compaction_lag_ms` (the cleaner
    /// never touches the active segment).
    pub(crate) fn roll_after_ms(&self) -> u64 {
        match (self.cleanup_policy.compacts(), self.max_compaction_lag_ms) {
            (true, Some(max)) => self.segment_ms.min(max),
            _ => self.segment_ms,
        }
    }

    /// Checks every value's range, naming the first one that is wrong.
    pub fn validate(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::InvalidConfig(msg));
        if !(MIN_SEGMENT_BYTES..=MAX_SEGMENT_BYTES).contains(&self.segment_bytes) {
            return bad(format!(
                "segment_bytes {} must be in {MIN_SEGMENT_BYTES}..={MAX_SEGMENT_BYTES}",
                self.segment_bytes
            ));
        }
        if self.segment_ms == 0 {
            return bad("segment_ms must be at least 1".into());
        }
        if self.index_interval_bytes == 0 {
            return bad("index_interval_bytes must be at least 1".into());
        }
        let min_batch = brook_protocol::batch::HEADER_LEN as u32;
        if self.max_batch_bytes < min_batch
            || u64::from(self.max_batch_bytes) > MAX_SEGMENT_BYTES / 2
        {
            return bad(format!(
                "max_batch_bytes {} must be in {min_batch}..={}",
                self.max_batch_bytes,
                MAX_SEGMENT_BYTES / 2
            ));
        }
        if let FlushPolicy::Interval(d) = self.flush
            && d.is_zero()
        {
            return bad(
                "flush interval must be at least 1 ms (use Always for every append)".into(),
            );
        }
        if let Some(max) = self.max_compaction_lag_ms
            && max < self.min_compaction_lag_ms
        {
            return bad(format!(
                "max_compaction_lag_ms {max} must be at least min_compaction_lag_ms {}",
                self.min_compaction_lag_ms
            ));
        }
        if self.max_compaction_lag_ms == Some(0) {
            return bad("max_compaction_lag_ms must be at least 1".into());
        }
        Ok(())
    }

    /// Checks that `new` may replace these settings on an open partition:
    /// every value in range, and no change to a setting fixed at creation
    /// (`max_batch_bytes`, `index_interval_bytes`, `append_mode`: the active
    /// segment was sized and indexed by them).
    pub fn check_change(&self, new: &PartitionConfig) -> Result<()> {
        new.validate()?;
        let fixed = |what: &str, from: String, to: String| {
            Err(Error::InvalidConfig(format!(
                "{what} is fixed when the topic is created ({from}); it cannot become {to}"
            )))
        };
        if self.max_batch_bytes != new.max_batch_bytes {
            return fixed(
                "max_batch_bytes",
                self.max_batch_bytes.to_string(),
                new.max_batch_bytes.to_string(),
            );
        }
        if self.index_interval_bytes != new.index_interval_bytes {
            return fixed(
                "index_interval_bytes",
                self.index_interval_bytes.to_string(),
                new.index_interval_bytes.to_string(),
            );
        }
        if self.append_mode != new.append_mode {
            return fixed(
                "append_mode",
                format!("{:?}", self.append_mode),
                format!("{:?}", new.append_mode),
            );
        }
        Ok(())
    }
}
