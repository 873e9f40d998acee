//! The set of topics under one data directory.
//!
//! ```text
//! <root>/<topic>/topic.meta          settings and partition count (atomic replace)
//! <root>/<topic>/<partition>/...     one Partition directory each
//! ```
//! Topic creation builds `<topic>~creating` and renames it into place, and
//! deletion renames to `<topic>~deleted` before removing, so a crash never
//! leaves a half-made or half-deleted topic visible: leftovers are cleared on open.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::config::{AppendMode, FlushPolicy, PartitionConfig};
use crate::error::{Error, IoContext, Result};
use crate::file::{sync_dir, sync_filesystem, write_atomic_in};
use crate::fs::{FileSystem, RealFs};
use crate::lock::DirLock;
use crate::partition::Partition;

const META: &str = "topic.meta";
const CREATING: &str = "~creating";
const DELETED: &str = "~deleted";
/// Most partitions one topic may have.
pub const MAX_PARTITIONS: u32 = 10_000;

/// A topic's settings: its partition count and the log settings every partition shares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicConfig {
    /// Number of partitions (1..=10 000).
    pub partitions: u32,
    /// Settings of each partition's log.
    pub partition: PartitionConfig,
}

/// What [`Log::open`] does with a partition (or topic) that cannot be opened.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum OnOpenError {
    /// Keep it offline: its requests fail with [`Error::Offline`], every
    /// other partition serves.
    #[default]
    Offline,
    /// Fail the whole open (the broker does not start).
    Fail,
}

/// Options of [`Log::open_with`].
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
enum Slot {
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
    name: String,
    dir: PathBuf,
    config: RwLock<TopicConfig>,
    partitions: RwLock<Vec<Slot>>,
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
    fn slots<T>(&self, pick: impl Fn(&Slot) -> Option<T>) -> Vec<(u32, T)> {
        self.partitions
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .enumerate()
            .filter_map(|(id, slot)| pick(slot).map(|t| (id as u32, t)))
            .collect()
    }

    fn close(&self) -> Result<()> {
        let online: Vec<Partition> = self.partitions().into_iter().map(|(_, p)| p).collect();
        parallel(&online, Partition::close).into_iter().collect()
    }
}

/// Checks Kafka's topic naming rules: 1–249 characters of `[A-Za-z0-9._-]`, not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<()> {
    let bad = |reason| {
        Err(Error::InvalidTopicName {
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() || name.len() > 249 {
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
            if name.ends_with(CREATING) || name.ends_with(DELETED) {
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
        let staging = self.root.join(format!("{name}{CREATING}"));
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
                let trash = self.root.join(format!("{name}{DELETED}"));
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

    /// Deletes a topic and its data. Reads already under way finish on the
    /// data they hold; appends fail from now on.
    pub fn delete_topic(&self, name: &str) -> Result<()> {
        let topic = {
            let mut topics = self.topics.write().unwrap_or_else(|e| e.into_inner());
            topics
                .remove(name)
                .ok_or_else(|| Error::UnknownTopic(name.to_string()))?
        };
        if let Err(e) = topic.close() {
            tracing::warn!(topic = name, error = %e, "closing a deleted topic's partitions failed");
        }
        let trash = self.root.join(format!("{name}{DELETED}"));
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

fn validate_topic_config(config: &TopicConfig) -> Result<()> {
    if !(1..=MAX_PARTITIONS).contains(&config.partitions) {
        return Err(Error::InvalidConfig(format!(
            "partitions must be in 1..={MAX_PARTITIONS}, got {}",
            config.partitions
        )));
    }
    config.partition.validate()
}

/// One partition to open: its directory, its name for logs, its settings.
type Job = (PathBuf, String, PartitionConfig);

/// Threads that open or close partitions: the work is mostly waiting for
/// fsyncs and metadata updates, which overlap well beyond the core count.
const IO_THREADS: usize = 16;

/// Runs `f` on every job on a few threads that take the next job as they
/// finish one (so one slow job does not hold up the others); the results
/// come back in the jobs' order.
fn parallel<J: Sync, T: Send>(jobs: &[J], f: impl Fn(&J) -> T + Sync) -> Vec<T> {
    let threads = IO_THREADS.min(jobs.len()).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut done: Vec<(usize, T)> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                s.spawn(|| {
                    let mut done = Vec::new();
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(job) = jobs.get(i) else {
                            return done;
                        };
                        done.push((i, f(job)));
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, t)| t).collect()
}

/// Opens partitions in parallel (see [`parallel`]).
fn open_partitions(fs: &Arc<dyn FileSystem>, jobs: &[Job]) -> Vec<Result<Partition>> {
    parallel(jobs, |(dir, name, cfg)| {
        Partition::open_with(dir, name.clone(), cfg.clone(), Arc::clone(fs))
    })
}

fn partition_jobs(dir: &Path, name: &str, config: &TopicConfig) -> Vec<Job> {
    (0..config.partitions)
        .map(|id| {
            (
                dir.join(id.to_string()),
                format!("{name}/{id}"),
                config.partition.clone(),
            )
        })
        .collect()
}

/// Builds a topic from its opened partitions, dropping partition directories
/// beyond the recorded count (an interrupted `add_partitions`).
fn assemble_topic(
    dir: &Path,
    name: &str,
    config: TopicConfig,
    opened: Vec<Result<Partition>>,
    on_error: OnOpenError,
) -> Result<Topic> {
    let mut partitions = Vec::with_capacity(opened.len());
    for (id, result) in opened.into_iter().enumerate() {
        match (result, on_error) {
            (Ok(p), _) => partitions.push(Slot::Online(p)),
            (Err(e), OnOpenError::Fail) => return Err(e),
            (Err(e), OnOpenError::Offline) => {
                tracing::error!(partition = %format!("{name}/{id}"), error = %e, "partition is offline: it cannot be opened; every other partition serves");
                partitions.push(Slot::Offline(e.to_string().into()));
            }
        }
    }
    if partitions.len() as u32 != config.partitions {
        return Err(Error::InvalidConfig(format!(
            "topic {name:?}: a partition failed to open"
        )));
    }
    for entry in fs::read_dir(dir).at(dir)? {
        let path = entry.at(dir)?.path();
        let extra = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok());
        if extra.is_some_and(|id| id >= config.partitions) {
            fs::remove_dir_all(&path).at(&path)?;
        }
    }
    Ok(Topic {
        name: name.to_string(),
        dir: dir.to_path_buf(),
        config: RwLock::new(config),
        partitions: RwLock::new(partitions),
    })
}

fn opt(v: Option<u64>) -> String {
    v.map_or("none".into(), |v| v.to_string())
}

fn write_meta(fs: &dyn FileSystem, dir: &Path, c: &TopicConfig) -> Result<()> {
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
    let text = format!(
        "version=1\npartitions={}\nsegment_bytes={}\nsegment_ms={}\nindex_interval_bytes={}\nretention_ms={}\nretention_bytes={}\nmax_batch_bytes={}\nflush={flush}\nappend_mode={mode}\n",
        c.partitions,
        p.segment_bytes,
        p.segment_ms,
        p.index_interval_bytes,
        opt(p.retention_ms),
        opt(p.retention_bytes),
        p.max_batch_bytes,
    );
    write_atomic_in(fs, dir, META, text.as_bytes())
}

fn read_meta(dir: &Path) -> Result<TopicConfig> {
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
            "version" if value == "1" => {}
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
            // Keys from a newer version are ignored, so a downgrade still opens.
            _ => {}
        }
    }
    validate_topic_config(&c).map_err(|e| bad(&e.to_string()))?;
    Ok(c)
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_protocol::batch::{Batch, BatchBuilder};

    fn one_record() -> Batch {
        let mut b = BatchBuilder::new();
        b.push(1, Some(b"k"), Some(b"v"), &[]);
        Batch::parse(b.build(0)).unwrap()
    }

    fn config(partitions: u32) -> TopicConfig {
        let partition = PartitionConfig {
            flush: FlushPolicy::Interval(Duration::from_millis(250)),
            retention_bytes: Some(1 << 30),
            ..Default::default()
        };
        TopicConfig {
            partitions,
            partition,
        }
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        for ok in ["orders", "a", "Orders.v1_x-2", &"x".repeat(249)] {
            validate_topic_name(ok).unwrap();
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "ü",
            &"x".repeat(250),
            "x~deleted",
        ] {
            assert!(
                matches!(
                    validate_topic_name(bad),
                    Err(Error::InvalidTopicName { .. })
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn topics_survive_reopen_with_their_settings_and_data() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("orders", config(3)).unwrap();
        log.create_topic("audit", config(1)).unwrap();
        assert!(matches!(
            log.create_topic("orders", config(1)),
            Err(Error::TopicExists(_))
        ));
        assert!(matches!(
            log.create_topic("bad", config(0)),
            Err(Error::InvalidConfig(_))
        ));
        log.topic("orders")
            .unwrap()
            .partition(2)
            .unwrap()
            .append(&one_record())
            .unwrap();
        log.add_partitions("orders", 5).unwrap();
        assert!(matches!(
            log.add_partitions("orders", 4),
            Err(Error::InvalidConfig(_))
        ));
        log.close().unwrap();
        drop(log);

        let log = Log::open(dir.path()).unwrap();
        let names: Vec<String> = log.topics().iter().map(|t| t.name().to_string()).collect();
        assert_eq!(names, ["audit", "orders"]);
        let orders = log.topic("orders").unwrap();
        assert_eq!(orders.config(), config(5));
        assert_eq!(orders.partition(2).unwrap().log_end_offset(), 1);
        assert!(orders.partition(2).unwrap().recovery_report().clean);
        assert!(matches!(
            orders.partition(5),
            Err(Error::UnknownPartition {
                partition: 5,
                count: 5,
                ..
            })
        ));
        assert!(matches!(log.topic("nope"), Err(Error::UnknownTopic(_))));
    }

    #[test]
    fn deleted_topics_and_interrupted_creations_are_gone_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        let t = log.create_topic("gone", config(2)).unwrap();
        let p = t.partition(0).unwrap();
        p.append(&one_record()).unwrap();
        log.delete_topic("gone").unwrap();
        assert!(
            p.append(&one_record()).is_err(),
            "appends to a deleted topic fail"
        );
        assert!(matches!(
            log.delete_topic("gone"),
            Err(Error::UnknownTopic(_))
        ));
        fs::create_dir_all(dir.path().join("half~creating/0")).unwrap();
        drop(log);
        let log = Log::open(dir.path()).unwrap();
        assert!(log.topics().is_empty());
        let left: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(left, [crate::LOCK_FILE], "only the lock file is left");
        // The name can be used again, starting from offset 0.
        let t = log.create_topic("gone", config(1)).unwrap();
        assert_eq!(t.partition(0).unwrap().log_end_offset(), 0);
    }

    #[test]
    fn a_partition_that_cannot_be_opened_is_offline_and_the_rest_serve() {
        let dir = tempfile::tempdir().unwrap();
        let log = Log::open(dir.path()).unwrap();
        log.create_topic("orders", config(3)).unwrap();
        for id in 0..3 {
            log.topic("orders")
                .unwrap()
                .partition(id)
                .unwrap()
                .append(&one_record())
                .unwrap();
        }
        log.close().unwrap();
        drop(log);
        // A directory where partition 1's segment file should be.
        let seg = dir.path().join("orders/1/00000000000000000000.log");
        fs::remove_file(&seg).unwrap();
        fs::create_dir(&seg).unwrap();

        let strict = LogOptions {
            on_open_error: OnOpenError::Fail,
            ..Default::default()
        };
        assert!(Log::open_with(DirLock::exclusive(dir.path()).unwrap(), strict).is_err());

        let log = Log::open(dir.path()).unwrap();
        let topic = log.topic("orders").unwrap();
        assert_eq!(topic.partition_count(), 3);
        match topic.partition(1) {
            Err(Error::Offline { partition, reason }) => {
                assert_eq!(partition, "orders/1");
                assert!(reason.contains("00000000000000000000.log"), "{reason}");
            }
            other => panic!("expected Offline, got {:?}", other.map(|_| ())),
        }
        let online: Vec<u32> = topic.partitions().iter().map(|(id, _)| *id).collect();
        assert_eq!(online, [0, 2]);
        assert_eq!(log.offline().len(), 1);
        let p2 = topic.partition(2).unwrap();
        assert_eq!(p2.read(0, 1 << 20).unwrap().log_end_offset, 1);
        assert_eq!(p2.append(&one_record()).unwrap().base_offset, 1);
        // The data stays where it was for an operator to look at.
        assert!(seg.is_dir());
    }

    #[test]
    fn a_second_log_on_the_same_directory_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let _log = Log::open(dir.path()).unwrap();
        assert!(matches!(Log::open(dir.path()), Err(Error::Locked { .. })));
    }
}
