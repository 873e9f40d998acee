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
