//! A topic: its settings (`topic.meta`), its partitions (each open or
//! offline) and the naming rules.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::config::{AppendMode, CleanupPolicy, FlushPolicy, PartitionConfig, Ratio};
use crate::error::{Error, IoContext, Result};
use crate::file::write_atomic_in;
use crate::fs::{FileSystem, RealFs};
use crate::partition::Partition;

use super::open::parallel;
use super::{MAX_PARTITIONS, META};

/// A topic's settings: its partition count and the log settings every partition shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// Number of partitions (1..=10 000).
    pub partitions: u32,
    /// Settings of each partition's log.
    pub partition: PartitionConfig,
}

/// What [`Log::open`](super::Log::open) does with a partition (or topic) that cannot be opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnOpenError {
    /// Keep it offline: its requests fail with [`Error::Offline`], every
    /// other partition serves.
    #[default]
    Offline,
    /// Fail the whole open (the broker does not start).
    Fail,
}

/// Options of [`Log::open_with`](super::Log::open_with).
#[derive(Debug, Clone)]
pub struct LogOptions {
    /// What to do with a partition that cannot be opened.
    pub on_open_error: OnOpenError,
    /// The file system every partition (and the topic metadata) is written
    /// through: [`RealFs`], or a test's faulty one.
    pub fs: Arc<dyn FileSystem>,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            on_open_error: OnOpenError::default(),
            fs: Arc::new(RealFs),
        }
    }
}

/// A partition, or why it could not be opened.
#[derive(Clone)]
pub(super) enum Slot {
    Online(Partition),
    Offline(Arc<str>),
}

/// A partition (or a whole topic, `partition: None`) that could not be opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OfflinePartition {
    /// The topic.
    pub topic: String,
    /// The partition; `None` when the topic's metadata itself could not be read.
    pub partition: Option<u32>,
    /// Why it could not be opened.
    pub reason: String,
}

/// A named, partitioned log.
pub struct Topic {
    pub(super) name: String,
    pub(super) dir: PathBuf,
    pub(super) config: RwLock<TopicConfig>,
    pub(super) partitions: RwLock<Vec<Slot>>,
}

impl Topic {
    /// The topic's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The topic's settings, with the current partition count.
    pub fn config(&self) -> TopicConfig {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Number of partitions.
    pub fn partition_count(&self) -> u32 {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len() as u32
    }

    /// One partition, or [`Error::UnknownPartition`], or [`Error::Offline`].
    pub fn partition(&self, id: u32) -> Result<Partition> {
        let parts = self.partitions.read().unwrap_or_else(|e| e.into_inner());
        match parts.get(id as usize) {
            Some(Slot::Online(p)) => Ok(p.clone()),
            Some(Slot::Offline(reason)) => Err(Error::Offline {
                partition: format!("{}/{id}", self.name),
                reason: reason.to_string(),
            }),
            None => Err(Error::UnknownPartition {
                topic: self.name.clone(),
                partition: id,
                count: parts.len() as u32,
            }),
        }
    }

    /// The partitions that are online, with their numbers, in order.
    pub fn partitions(&self) -> Vec<(u32, Partition)> {
        self.slots(|slot| match slot {
            Slot::Online(p) => Some(p.clone()),
            Slot::Offline(_) => None,
        })
    }

    /// The partitions that could not be opened, with the reason.
    pub fn offline_partitions(&self) -> Vec<(u32, String)> {
        self.slots(|slot| match slot {
            Slot::Offline(reason) => Some(reason.to_string()),
            Slot::Online(_) => None,
        })
    }

    /// `pick` of every partition slot it accepts, with the partition's number.
    pub(super) fn slots<T>(&self, pick: impl Fn(&Slot) -> Option<T>) -> Vec<(u32, T)> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .enumerate()
            .filter_map(|(id, slot)| pick(slot).map(|t| (id as u32, t)))
            .collect()
    }

    pub(super) fn close(&self) -> Result<()> {
        let online: Vec<Partition> = self.partitions().into_iter().map(|(_, p)| p).collect();
        parallel(&online, Partition::close).into_iter().collect()
    }
}

/// Longest topic name, as Kafka's.
pub const MAX_TOPIC_NAME: usize = 249;

/// Checks Kafka's topic naming rules: 1–249 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidTopicName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > MAX_TOPIC_NAME {
        return bad("must be 1 to 249 characters long");
    }
    if name == "." || name == ".." {
        return bad("'.' and '..' are not allowed");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return bad("may contain only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

pub(super) fn validate_topic_config(config: &TopicConfig) -> Result<()> {
    if !(1..=MAX_PARTITIONS).contains(&config.partitions) {
        return Err(Error::InvalidConfig(format!(
            "partitions must be in 1..={MAX_PARTITIONS}, got {}",
            config.partitions
        )));
    }
    config.partition.validate()
}

pub(super) fn opt(v: Option<u64>) -> String {
    v.map_or("none".into(), |v| v.to_string())
}

pub(crate) fn write_meta(fs: &dyn FileSystem, dir: &Path, c: &TopicConfig) -> Result<()> {
    let p = &c.partition;
    let flush = match p.flush {
        FlushPolicy::Always => "always".to_string(),
        FlushPolicy::Never => "never".to_string(),
        FlushPolicy::Interval(d) => format!("interval:{}", d.as_millis()),
    };
    let mode = match p.append_mode {
        AppendMode::Write => "write",
        AppendMode::Mmap => "mmap",
    };
    // A compacted topic is version 2: an older broker refuses it (the topic
    // offline) instead of ignoring the keys below and deleting by retention.
    let version = match p.cleanup_policy.compacts() {
        true => 2,
        false => 1,
    };
    let mut text = format!(
        "version={version}\npartitions={}\nsegment_bytes={}\nsegment_ms={}\nindex_interval_bytes={}\nretention_ms={}\nretention_bytes={}\nmax_batch_bytes={}\nflush={flush}\nappend_mode={mode}\n",
        c.partitions,
        p.segment_bytes,
        p.segment_ms,
        p.index_interval_bytes,
        opt(p.retention_ms),
        opt(p.retention_bytes),
        p.max_batch_bytes,
    );
    let defaults = PartitionConfig::default();
    let compaction_set = p.cleanup_policy != defaults.cleanup_policy
        || p.min_compaction_lag_ms != defaults.min_compaction_lag_ms
        || p.max_compaction_lag_ms != defaults.max_compaction_lag_ms
        || p.delete_retention_ms != defaults.delete_retention_ms
        || p.min_cleanable_dirty_ratio != defaults.min_cleanable_dirty_ratio;
    if compaction_set {
        text.push_str(&format!(
            "cleanup_policy={}\nmin_compaction_lag_ms={}\nmax_compaction_lag_ms={}\ndelete_retention_ms={}\nmin_cleanable_dirty_ratio={}\n",
            p.cleanup_policy.name(),
            p.min_compaction_lag_ms,
            opt(p.max_compaction_lag_ms),
            p.delete_retention_ms,
            p.min_cleanable_dirty_ratio.get(),
        ));
    }
    write_atomic_in(fs, dir, META, text.as_bytes())
}

pub(crate) fn read_meta(dir: &Path) -> Result<TopicConfig> {
    let path = dir.join(META);
    let text = fs::read_to_string(&path).at(&path)?;
    let bad = |what: &str| Error::InvalidConfig(format!("{}: {what}", path.display()));
    let mut c = TopicConfig {
        partitions: 0,
        partition: PartitionConfig::default(),
    };
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let (key, value) = line
            .split_once('=')
            .ok_or_else(|| bad(&format!("line {line:?} is not key=value")))?;
        let num = || {
            value
                .parse::<u64>()
                .map_err(|_| bad(&format!("{key} is not a number: {value:?}")))
        };
        let opt_num = || {
            if value == "none" {
                Ok(None)
            } else {
                num().map(Some)
            }
        };
        let p = &mut c.partition;
        match key {
            "version" if value == "1" || value == "2" => {}
            "version" => return Err(bad(&format!("unknown metadata version {value}"))),
            "partitions" => {
                c.partitions = u32::try_from(num()?).map_err(|_| bad("partitions too large"))?
            }
            "segment_bytes" => p.segment_bytes = num()?,
            "segment_ms" => p.segment_ms = num()?,
            "index_interval_bytes" => {
                p.index_interval_bytes =
                    u32::try_from(num()?).map_err(|_| bad("index_interval_bytes too large"))?
            }
            "retention_ms" => p.retention_ms = opt_num()?,
            "retention_bytes" => p.retention_bytes = opt_num()?,
            "max_batch_bytes" => {
                p.max_batch_bytes =
                    u32::try_from(num()?).map_err(|_| bad("max_batch_bytes too large"))?
            }
            "flush" => {
                p.flush = match value {
                    "always" => FlushPolicy::Always,
                    "never" => FlushPolicy::Never,
                    v => match v.strip_prefix("interval:").and_then(|ms| ms.parse().ok()) {
                        Some(ms) => FlushPolicy::Interval(Duration::from_millis(ms)),
                        None => return Err(bad(&format!("unknown flush policy {v:?}"))),
                    },
                }
            }
            "append_mode" => {
                p.append_mode = match value {
                    "write" => AppendMode::Write,
                    "mmap" => AppendMode::Mmap,
                    v => return Err(bad(&format!("unknown append mode {v:?}"))),
                }
            }
            "cleanup_policy" => {
                p.cleanup_policy = CleanupPolicy::from_name(value)
                    .ok_or_else(|| bad(&format!("unknown cleanup_policy {value:?}")))?
            }
            "min_compaction_lag_ms" => p.min_compaction_lag_ms = num()?,
            "max_compaction_lag_ms" => p.max_compaction_lag_ms = opt_num()?,
            "delete_retention_ms" => p.delete_retention_ms = num()?,
            "min_cleanable_dirty_ratio" => {
                p.min_cleanable_dirty_ratio = value
                    .parse::<f64>()
                    .ok()
                    .and_then(Ratio::new)
                    .ok_or_else(|| {
                        bad(&format!(
                            "min_cleanable_dirty_ratio {value:?} is not in [0, 1]"
                        ))
                    })?
            }
            // Keys from a newer version are ignored, so a downgrade still opens.
            _ => {}
        }
    }
    validate_topic_config(&c).map_err(|e| bad(&e.to_string()))?;
    Ok(c)
}
