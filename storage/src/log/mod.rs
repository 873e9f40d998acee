//! The set of topics under one data directory.
//!
//! ```text
//! <root>/<topic>/topic.meta          settings and partition count (atomic replace)
//! <root>/<topic>/<partition>/...     one Partition directory each
//! ```
//! Topic creation builds `~creating.<unique>` and renames it into place, and
//! deletion renames to `~deleted.<unique>` before removing, so a crash never
//! leaves a half-made or half-deleted topic visible: leftovers are cleared on
//! open. The staging names do not contain the topic's: a name of the
//! longest allowed length (249) plus a suffix would pass the file system's
//! 255-byte limit. (Topic names cannot contain `~`, so no topic is mistaken
//! for a leftover; `<topic>~creating` and `<topic>~deleted` from earlier
//! versions are cleared too.)

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use crate::config::PartitionConfig;
use crate::error::{Error, IoContext, Result};
use crate::file::{sync_dir, sync_filesystem};
use crate::fs::FileSystem;
use crate::lock::DirLock;
use crate::partition::Partition;

mod open;
mod topic;

use open::{Job, assemble_topic, open_partitions, parallel, partition_jobs};
pub use topic::{
    LogOptions, MAX_TOPIC_NAME, OfflinePartition, OnOpenError, Topic, TopicConfig,
    validate_topic_name,
};
use topic::{Slot, validate_topic_config};
pub(crate) use topic::{read_meta, write_meta};

const META: &str = "topic.meta";
const CREATING: &str = "~creating";
const DELETED: &str = "~deleted";
/// A directory name for a topic being created or deleted, unique in this
/// process and short whatever the topic's name: `~creating.<pid>.<n>`.
fn staging_name(kind: &str) -> String {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!("{kind}.{}.{n}", std::process::id())
}

/// Whether a directory under the root is a creation or deletion left
/// behind by a crash (this version's names or an earlier version's).
fn is_staging(name: &str) -> bool {
    [CREATING, DELETED]
        .iter()
        .any(|k| name.starts_with(k) || name.ends_with(k))
}

/// Most partitions one topic may have.
pub const MAX_PARTITIONS: u32 = 10_000;
/// Every topic under one data directory.
pub struct Log {
    root: PathBuf,
    topics: RwLock<BTreeMap<String, Arc<Topic>>>,
    /// Topics whose metadata could not be read at open, with the reason.
    offline_topics: BTreeMap<String, String>,
    /// Handed to every partition; the topic metadata goes through it too.
    fs: Arc<dyn FileSystem>,
    _lock: DirLock,
}

impl Log {
    /// Locks the data directory (creating it if needed) and opens every
    /// partition of every topic, several at a time, recovering where needed;
    /// a partition that cannot be opened stays offline.
    pub fn open(root: impl Into<PathBuf>) -> Result<Log> {
        let root = root.into();
        Log::open_with(DirLock::exclusive(&root)?, LogOptions::default())
    }

    /// Like [`Log::open`], over a directory already locked (so that a broker
    /// can refuse to start before doing anything else).
    pub fn open_with(lock: DirLock, options: LogOptions) -> Result<Log> {
        let root = lock.dir().to_path_buf();
        let fs = options.fs;
        let mut offline_topics = BTreeMap::new();
        let mut found = Vec::new();
        for entry in fs::read_dir(&root).at(&root)? {
            let path = entry.at(&root)?.path();
            let Some(name) = path
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
            else {
                continue;
            };
            if is_staging(&name) {
                fs::remove_dir_all(&path).at(&path)?;
                continue;
            }
            if !path.is_dir() || validate_topic_name(&name).is_err() {
                continue;
            }
            match (read_meta(&path), options.on_open_error) {
                (Ok(config), _) => found.push((path, name, config)),
                (Err(e), OnOpenError::Fail) => return Err(e),
                (Err(e), OnOpenError::Offline) => {
                    tracing::error!(topic = %name, error = %e, "topic is offline: its metadata cannot be read");
                    offline_topics.insert(name, e.to_string());
                }
            }
        }
        // Every partition of every topic in one pool: recovery runs in parallel.
        let jobs: Vec<Job> = found
            .iter()
            .flat_map(|(path, name, config)| partition_jobs(path, name, config))
            .collect();
        let mut opened = open_partitions(&fs, &jobs).into_iter();
        let mut topics = BTreeMap::new();
        for (path, name, config) in found {
            let mine: Vec<_> = opened.by_ref().take(config.partitions as usize).collect();
            let topic = assemble_topic(&path, &name, config, mine, options.on_open_error)?;
            topics.insert(name, Arc::new(topic));
        }
        sync_dir(&*fs, &root)?;
        Ok(Log {
            root,
            topics: RwLock::new(topics),
            offline_topics,
            fs,
            _lock: lock,
        })
    }

    /// Every partition (or topic) that could not be opened, with the reason.
    pub fn offline(&self) -> Vec<OfflinePartition> {
        let mut out: Vec<OfflinePartition> = self
            .offline_topics
            .iter()
            .map(|(topic, reason)| OfflinePartition {
                topic: topic.clone(),
                partition: None,
                reason: reason.clone(),
            })
            .collect();
        for topic in self.topics() {
            for (id, reason) in topic.offline_partitions() {
                out.push(OfflinePartition {
                    topic: topic.name.clone(),
                    partition: Some(id),
                    reason,
                });
            }
        }
        out
    }

    /// Creates a topic with `config.partitions` empty partitions.
    pub fn create_topic(&self, name: &str, config: TopicConfig) -> Result<Arc<Topic>> {
        validate_topic_name(name)?;
        validate_topic_config(&config)?;
        if let Some(reason) = self.offline_topics.get(name) {
            return Err(Error::Offline {
                partition: name.to_string(),
                reason: reason.clone(),
            });
        }
        let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
        if topics.contains_key(name) {
            return Err(Error::TopicExists(name.to_string()));
        }
        let staging = self.root.join(staging_name(CREATING));
        let _ = fs::remove_dir_all(&staging);
        fs::create_dir_all(&staging).at(&staging)?;
        write_meta(&*self.fs, &staging, &config)?;
        for p in 0..config.partitions {
            let dir = staging.join(p.to_string());
            fs::create_dir_all(&dir).at(&dir)?;
        }
        let dir = self.root.join(name);
        self.fs.rename(&staging, &dir).at(&dir)?;
        sync_dir(&*self.fs, &self.root)?;
        let opened = open_partitions(&self.fs, &partition_jobs(&dir, name, &config));
        let topic = match assemble_topic(&dir, name, config, opened, OnOpenError::Fail) {
            Ok(t) => Arc::new(t),
            Err(e) => {
                // E.g. the disk cannot hold the preallocated segments: leave
                // no half-made topic behind to fail the next start.
                let trash = self.root.join(staging_name(DELETED));
                if self.fs.rename(&dir, &trash).is_ok() {
                    let _ = sync_dir(&*self.fs, &self.root);
                    let _ = fs::remove_dir_all(&trash);
                }
                return Err(e);
            }
        };
        topics.insert(name.to_string(), Arc::clone(&topic));
        Ok(topic)
    }

    /// The topic, or [`Error::UnknownTopic`].
    pub fn topic(&self, name: &str) -> Result<Arc<Topic>> {
        let topics = self.topics.read().unwrap_or_else(|e| e.into_inner());
        topics
            .get(name)
            .cloned()
            .ok_or_else(|| Error::UnknownTopic(name.to_string()))
    }

    /// Every topic, by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        self.topics
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .cloned()
            .collect()
    }

    /// Every online partition of every topic.
    pub fn partitions(&self) -> Vec<Partition> {
        self.topics()
            .iter()
            .flat_map(|t| t.partitions().into_iter().map(|(_, p)| p))
            .collect()
    }

    /// Deletes a topic and its data. Reads already under way finish on the
    /// data they hold; appends fail from now on.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let topic = {
            let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
            topics
                .remove(name)
                .ok_or_else(|| Error::UnknownTopic(name.to_string()))?
        };
        // Readers learn of it at once and let go of the files.
        for (_, p) in topic.partitions() {
            p.mark_deleted();
        }
        if let Err(e) = topic.close() {
            tracing::warn!(topic = name, error = %e, "closing a deleted topic's partitions failed");
        }
        let trash = self.root.join(staging_name(DELETED));
        self.fs.rename(&topic.dir, &trash).at(&topic.dir)?;
        sync_dir(&*self.fs, &self.root)?;
        fs::remove_dir_all(&trash).at(&trash)
    }

    /// Raises the topic's partition count to `total`. Existing keys may map
    /// to other partitions afterwards, as in Kafka.
    pub fn add_partitions(&self, name: &str, total: u32) -> Result<()> {
        let topic = self.topic(name)?;
        let mut parts = topic.partitions.write().unwrap_or_else(|e| e.into_inner());
        let current = parts.len() as u32;
        if total <= current || total > MAX_PARTITIONS {
            return Err(Error::InvalidConfig(format!(
                "topic {name:?} has {current} partitions: the new count must be in {}..={MAX_PARTITIONS}, got {total}",
                current + 1
            )));
        }
        let mut config = topic.config();
        let mut added = Vec::new();
        for id in current..total {
            added.push(Slot::Online(Partition::open_with(
                topic.dir.join(id.to_string()),
                format!("{name}/{id}"),
                config.partition.clone(),
                Arc::clone(&self.fs),
            )?));
        }
        config.partitions = total;
        // The count becomes real only when the metadata says so.
        write_meta(&*self.fs, &topic.dir, &config)?;
        parts.extend(added);
        *topic.config.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    /// Changes a topic's settings (see [`PartitionConfig::check_change`] for
    /// what may change): written to its metadata first, durably, then
    /// applied to every online partition; an offline one takes them when it
    /// is next opened. Returns the settings now in force.
    pub fn alter_topic(&self, name: &str, partition: PartitionConfig) -> Result<TopicConfig> {
        let topic = self.topic(name)?;
        // Held throughout: a partition added meanwhile would get the old settings.
        let parts = topic.partitions.write().unwrap_or_else(|e| e.into_inner());
        let mut config = topic.config();
        config.partition.check_change(&partition)?;
        config.partition = partition;
        write_meta(&*self.fs, &topic.dir, &config)?;
        for slot in parts.iter() {
            if let Slot::Online(p) = slot {
                p.set_config(config.partition.clone())?;
            }
        }
        *topic.config.write().unwrap_or_else(|e| e.into_inner()) = config.clone();
        Ok(config)
    }

    /// [`Partition::expire_producers`] on every partition; returns how many
    /// producers were forgotten.
    pub fn expire_producers(&self, now_ms: i64, max_idle_ms: u64) -> usize {
        self.topics()
            .iter()
            .flat_map(|t| t.partitions())
            .map(|(_, p)| p.expire_producers(now_ms, max_idle_ms))
            .sum()
    }

    /// Applies every topic's retention settings; returns the segments deleted.
    pub fn enforce_retention(&self, now_ms: i64) -> Result<usize> {
        let mut deleted = 0;
        for topic in self.topics() {
            for (_, p) in topic.partitions() {
                deleted += p.enforce_retention(now_ms)?;
            }
        }
        Ok(deleted)
    }

    /// Closes every partition cleanly (see [`Partition::close`]): stops
    /// and seals them all, syncs the file system once (`syncfs`), writes
    /// every clean-shutdown marker, and syncs once more. A marker becomes
    /// durable only after what it vouches for; thousands of partitions
    /// close in two syncs rather than several fsyncs each.
    pub fn close(&self) -> Result<()> {
        let (all, elsewhere): (Vec<Partition>, Vec<Partition>) = self
            .topics()
            .iter()
            .flat_map(|t| t.partitions().into_iter().map(|(_, p)| p))
            .partition(|p| same_file_system(&self.root, p.dir()));
        // A partition on another mounted file system is not covered by
        // syncing the root's: it closes with its own fsyncs.
        parallel(&elsewhere, Partition::close)
            .into_iter()
            .collect::<Result<()>>()?;
        let ends = parallel(&all, Partition::close_unsynced)
            .into_iter()
            .collect::<Result<Vec<_>>>()?;
        sync_filesystem(&*self.fs, &self.root)?;
        let closing: Vec<(&Partition, u64)> = all
            .iter()
            .zip(ends)
            .filter_map(|(p, end)| end.map(|e| (p, e)))
            .collect();
        parallel(&closing, |(p, end)| p.finish_close_after_syncfs(*end))
            .into_iter()
            .collect::<Result<()>>()?;
        sync_filesystem(&*self.fs, &self.root)
    }

    /// The data directory.
    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// Whether `a` and `b` lie on the same file system (unknown counts as not).
fn same_file_system(a: &Path, b: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (fs::metadata(a), fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev(),
        _ => false,
    }
}

#[cfg(test)]
mod tests;
