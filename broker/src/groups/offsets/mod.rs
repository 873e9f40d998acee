//! Committed offsets of every group: in memory, and on disk in one
//! append-only log shared by all groups (a [`StateLog`]), as Kafka's
//! `__consumer_offsets`. A commit appends one frame with `pwrite` and is
//! then in the page cache: it survives `kill -9`. When it reaches the disk
//! follows the broker's flush policy (`--flush`, as a topic's appends do),
//! or the commit asks for it ([`OffsetStore::sync`]): concurrent syncs share
//! one `fdatasync` (group commit). The log is rewritten as one entry per
//! group once it has doubled since its last rewrite.
//!
//! Files in `<data>/~groups/`: `offsets.log`; `<group>.offsets` files of
//! the first format (`legacy.rs`) are folded into the log and removed on open.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use brook_storage::FlushPolicy;

mod legacy;

pub use crate::statelog::{LogPosition, LogStats};
use crate::statelog::{Machine, StateLog, UpdateError};

/// The log's first line.
const MAGIC: &[u8] = b"brook-offsets-log 1\n";

/// The log's file name in the groups directory.
const NAME: &str = "offsets.log";

/// One frame's payload.
#[derive(Clone, PartialEq, prost::Message)]
struct Entry {
    /// The group.
    #[prost(string, tag = "1")]
    group: String,
    /// Offsets to store, replacing those of the same partitions.
    #[prost(message, repeated, tag = "2")]
    offsets: Vec<OffsetEntry>,
    /// Forget the group's offsets before storing `offsets`.
    #[prost(bool, tag = "3")]
    delete: bool,
}

/// One partition's committed offset in an [`Entry`].
#[derive(Clone, PartialEq, prost::Message)]
struct OffsetEntry {
    #[prost(string, tag = "1")]
    topic: String,
    #[prost(uint32, tag = "2")]
    partition: u32,
    #[prost(uint64, tag = "3")]
    offset: u64,
    #[prost(string, tag = "4")]
    metadata: String,
    #[prost(int64, tag = "5")]
    timestamp_ms: i64,
}

/// A topic partition.
pub type Tp = (String, u32);

/// One committed offset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Committed {
    /// Next offset to consume.
    pub offset: u64,
    /// Free text from the committer.
    pub metadata: String,
    /// When it was committed.
    pub timestamp_ms: i64,
}

/// Why [`OffsetStore::commit_checked`] stored nothing.
#[derive(Debug)]
pub enum CommitError<E> {
    /// The check refused the commit.
    Rejected(E),
    /// Writing the log failed.
    Io(anyhow::Error),
}

/// Every group's offsets, as the log's state machine.
#[derive(Default)]
struct Offsets {
    groups: HashMap<String, BTreeMap<Tp, Committed>>,
}

impl Machine for Offsets {
    type Entry = Entry;
    const MAGIC: &'static [u8] = MAGIC;
    const WHAT: &'static str = "the offsets log";

    fn apply(&mut self, entry: Entry) {
        if entry.delete {
            self.groups.remove(&entry.group);
        }
        if entry.offsets.is_empty() {
            return;
        }
        let offsets = self.groups.entry(entry.group).or_default();
        for o in entry.offsets {
            offsets.insert(
                (o.topic, o.partition),
                Committed {
                    offset: o.offset,
                    metadata: o.metadata,
                    timestamp_ms: o.timestamp_ms,
                },
            );
        }
    }

    /// One entry per group (more for a group of many partitions; none for
    /// a group without offsets).
    fn snapshot(&self, out: &mut dyn FnMut(Entry)) {
        let mut names: Vec<&String> = self.groups.keys().collect();
        names.sort();
        for name in names {
            let offsets: Vec<(Tp, Committed)> = self.groups[name]
                .iter()
                .map(|(tp, c)| (tp.clone(), c.clone()))
                .collect();
            for chunk in offsets.chunks(SNAPSHOT_ENTRY_OFFSETS) {
                out(entry_of(name, chunk, false));
            }
        }
    }
}

fn entry_of(group: &str, offsets: &[(Tp, Committed)], delete: bool) -> Entry {
    Entry {
        group: group.to_string(),
        offsets: offsets
            .iter()
            .map(|((topic, partition), c)| OffsetEntry {
                topic: topic.clone(),
                partition: *partition,
                offset: c.offset,
                metadata: c.metadata.clone(),
                timestamp_ms: c.timestamp_ms,
            })
            .collect(),
        delete,
    }
}

/// Offsets per entry of a rewritten log: a group with more partitions than
/// this takes several entries (they add up), so no frame nears the reader's
/// size limit.
const SNAPSHOT_ENTRY_OFFSETS: usize = 10_000;

/// The first format's files in `dir`, by group.
fn legacy_files(dir: &Path) -> anyhow::Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if name.ends_with(".tmp") {
            // A rewrite that a crash interrupted: the old file is intact.
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        } else if let Some(group) = name.strip_suffix(legacy::SUFFIX) {
            out.push((group.to_string(), path));
        }
    }
    Ok(out)
}

/// Every group's committed offsets.
pub struct OffsetStore {
    log: StateLog<Offsets>,
}

impl OffsetStore {
    /// Loads every group's offsets from `dir` (created if missing); the log
    /// is synced as `flush` says ([`OffsetStore::maintain`]).
    pub fn open(dir: impl Into<PathBuf>, flush: FlushPolicy) -> anyhow::Result<OffsetStore> {
        let dir = dir.into();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let legacy = legacy_files(&dir)?;
        // Files of the first format after the log: they are newer than it
        // when a broker of that version ran on the directory meanwhile, and
        // the same as what the log holds when a migration was cut short.
        // Folding them in writes the state out whole, so that the old files
        // go only once their offsets are on disk in the log.
        let log = StateLog::open(dir.join(NAME), flush, Offsets::default(), |m| {
            for (group, path) in &legacy {
                let text = fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                m.groups.insert(group.clone(), legacy::parse(&text, path)?);
            }
            Ok(!legacy.is_empty())
        })?;
        for (_, old) in &legacy {
            fs::remove_file(old).with_context(|| format!("removing {}", old.display()))?;
        }
        if !legacy.is_empty() {
            fs::File::open(&dir)?.sync_all()?;
        }
        Ok(OffsetStore { log })
    }

    /// Stores `offsets` for `group` if `check` passes, both under the
    /// store's lock (so a fenced member cannot pass the check and then land
    /// its write after a newer member's). On return the commit is in the
    /// page cache (it survives a crash of the broker); [`OffsetStore::sync`]
    /// with the position returned waits until it is on disk.
    pub fn commit_checked<E>(
        &self,
        group: &str,
        offsets: Vec<(Tp, Committed)>,
        check: impl FnOnce() -> Result<(), E>,
    ) -> Result<LogPosition, CommitError<E>> {
        self.log
            .update(|_| {
                check()?;
                Ok((vec![entry_of(group, &offsets, false)], ()))
            })
            .map(|((), at)| at)
            .map_err(|e| match e {
                UpdateError::Rejected(e) => CommitError::Rejected(e),
                UpdateError::Io(e) => CommitError::Io(e),
            })
    }

    /// Stores `offsets` for `group`; returns once they are on disk.
    pub fn commit(&self, group: &str, offsets: Vec<(Tp, Committed)>) -> anyhow::Result<()> {
        let at = self.log.append(vec![entry_of(group, &offsets, false)])?;
        self.sync(at)
    }

    /// Whether a commit must be synced before it is acknowledged: when it
    /// asks to be `durable`, or when the flush policy is `always`.
    pub fn needs_sync(&self, durable: bool) -> bool {
        self.log.needs_sync(durable)
    }

    /// Returns once everything up to `at` is on disk. Blocks: call it on a
    /// blocking thread. Concurrent callers share one `fdatasync`.
    pub fn sync(&self, at: LogPosition) -> anyhow::Result<()> {
        self.log.sync(at)
    }

    /// Everything appended so far, to disk (a clean stop).
    pub fn sync_all(&self) -> anyhow::Result<()> {
        self.log.sync_all()
    }

    /// The background work, run every [`OffsetStore::maintenance_period`]
    /// on a blocking thread: sync when the flush interval is due, and
    /// rewrite the log once it has doubled (or to clear a failed sync).
    pub fn maintain(&self) -> anyhow::Result<()> {
        self.log.maintain()
    }

    /// How often [`OffsetStore::maintain`] should run.
    pub fn maintenance_period(&self) -> Duration {
        self.log.maintenance_period()
    }

    /// Syncs, rewrites and size of the log.
    pub fn stats(&self) -> LogStats {
        self.log.stats()
    }

    /// A group's committed offsets (empty if it has none).
    pub fn get(&self, group: &str) -> BTreeMap<Tp, Committed> {
        self.log
            .with(|m| m.groups.get(group).cloned().unwrap_or_default())
    }

    /// Groups with committed offsets.
    pub fn groups(&self) -> Vec<String> {
        let mut names: Vec<String> = self.log.with(|m| {
            m.groups
                .iter()
                .filter(|(_, o)| !o.is_empty())
                .map(|(n, _)| n.clone())
                .collect()
        });
        names.sort();
        names
    }

    /// Forgets a group's offsets, on disk too: returns once that is on disk.
    pub fn delete(&self, group: &str) -> anyhow::Result<()> {
        let at = self.log.append(vec![entry_of(group, &[], true)])?;
        self.sync(at)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn commits_survive_reopen_and_metadata_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap();
        let c = |o, m: &str| Committed {
            offset: o,
            metadata: m.into(),
            timestamp_ms: 7,
        };
        store
            .commit(
                "billing",
                vec![
                    (("orders".into(), 0), c(10, "a b\nc")),
                    (("orders".into(), 1), c(5, "")),
                ],
            )
            .unwrap();
        store
            .commit("billing", vec![(("orders".into(), 0), c(12, "x"))])
            .unwrap();
        store
            .commit("shipping", vec![(("orders".into(), 2), c(1, ""))])
            .unwrap();
        drop(store);
        let store = OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap();
        let b = store.get("billing");
        assert_eq!(b[&("orders".to_string(), 0)], c(12, "x"));
        assert_eq!(b[&("orders".to_string(), 1)], c(5, ""));
        assert_eq!(store.groups(), ["billing", "shipping"]);
        store.delete("billing").unwrap();
        drop(store);
        let store = OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap();
        assert_eq!(store.groups(), ["shipping"]);
        assert!(store.get("billing").is_empty());
    }

    /// Regression: `get` took the map's lock then a group's, commits the
    /// other way round, and a broker deadlocked under concurrent commits and
    /// offset reads (seen as a hung e2e test).
    #[test]
    fn concurrent_commits_and_reads_never_deadlock() {
        use std::sync::atomic::{AtomicBool, Ordering};
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap());
        let committing = Arc::new(AtomicBool::new(true));
        let (done, finished) = std::sync::mpsc::channel();
        let c = Committed {
            offset: 1,
            metadata: String::new(),
            timestamp_ms: 0,
        };
        for reader in [false, true] {
            let (store, committing, done) = (store.clone(), committing.clone(), done.clone());
            std::thread::spawn(move || {
                // Readers spin for as long as commits run, so that every
                // commit races a reader holding the map's lock.
                while committing.load(Ordering::Relaxed) {
                    if reader {
                        assert!(store.get("g").len() <= 2);
                    } else {
                        assert!(store.groups().len() <= 1);
                    }
                }
                done.send(()).unwrap();
            });
        }
        // Two committers: while one writes, the other waits for the group's
        // lock, and a reader waiting with the map's lock held must not block it.
        let writers: Vec<_> = (0..2)
            .map(|w| {
                let (store, done, c) = (store.clone(), done.clone(), c.clone());
                std::thread::spawn(move || {
                    for i in 0..100 {
                        store
                            .commit("g", vec![(("t".into(), (i + w) % 2), c.clone())])
                            .unwrap();
                    }
                    done.send(()).unwrap();
                })
            })
            .collect();
        let result = finished
            .recv_timeout(std::time::Duration::from_secs(60))
            .and_then(|()| finished.recv_timeout(std::time::Duration::from_secs(60)));
        committing.store(false, Ordering::Relaxed);
        result.expect("commits and reads deadlocked");
        for w in writers {
            w.join().unwrap();
        }
    }

    #[test]
    fn a_damaged_file_is_an_error_that_names_it() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("g.offsets"),
            "brook-offsets 1\norders zero 1 2 \n",
        )
        .unwrap();
        let err = OffsetStore::open(dir.path(), FlushPolicy::Never)
            .err()
            .unwrap();
        assert!(format!("{err:#}").contains("g.offsets"), "{err:#}");
    }

    fn c(offset: u64) -> Committed {
        Committed {
            offset,
            metadata: format!("m{offset}"),
            timestamp_ms: 9,
        }
    }

    fn tp(p: u32) -> Tp {
        ("orders".to_string(), p)
    }

    #[test]
    fn files_of_the_first_format_are_migrated_into_the_log_and_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("billing.offsets"),
            "brook-offsets 1\norders 0 12 7 78\n",
        )
        .unwrap();
        let store = OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap();
        assert_eq!(store.get("billing")[&tp(0)].offset, 12);
        assert!(!dir.path().join("billing.offsets").exists());
        store.commit("billing", vec![(tp(1), c(3))]).unwrap();
        drop(store);
        let store = OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap();
        let b = store.get("billing");
        assert_eq!((b[&tp(0)].offset, b[&tp(0)].metadata.as_str()), (12, "x"));
        assert_eq!(b[&tp(1)], c(3));
    }

    /// Upgrade, downgrade (the old version writes `<group>.offsets`
    /// again), upgrade: the newer file wins over the older log.
    #[test]
    fn a_file_of_the_first_format_newer_than_the_log_wins() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap();
        store.commit("billing", vec![(tp(0), c(5))]).unwrap();
        drop(store);
        std::fs::write(
            dir.path().join("billing.offsets"),
            "brook-offsets 1\norders 0 9 7 \n",
        )
        .unwrap();
        let store = OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap();
        assert_eq!(store.get("billing")[&tp(0)].offset, 9);
        drop(store);
        let store = OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap();
        assert_eq!(store.get("billing")[&tp(0)].offset, 9, "migrated for good");
    }

    #[test]
    fn a_torn_last_frame_is_dropped_and_commits_go_on_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap();
        store.commit("g", vec![(tp(0), c(1))]).unwrap();
        store.commit("g", vec![(tp(0), c(2))]).unwrap();
        drop(store);
        let path = dir.path().join("offsets.log");
        let mut bytes = std::fs::read(&path).unwrap();
        let whole = bytes.len();
        // Half of a third frame, as a crash in its write leaves it.
        bytes.extend_from_slice(&[40, 0, 0, 0, 1, 2, 3, 4, 5]);
        std::fs::write(&path, &bytes).unwrap();
        let store = OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap();
        assert_eq!(store.get("g")[&tp(0)], c(2));
        // The log was written out again without the torn frame.
        let now = std::fs::read(&path).unwrap();
        assert!(now.len() <= whole, "{} > {whole}", now.len());
        assert!(
            !crate::statelog::file::replay::<Entry>(&now, MAGIC, &path)
                .unwrap()
                .torn_tail
        );
        store.commit("g", vec![(tp(1), c(5))]).unwrap();
        drop(store);
        let store = OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap();
        assert_eq!(store.get("g")[&tp(0)], c(2));
        assert_eq!(store.get("g")[&tp(1)], c(5));
    }

    #[test]
    fn commits_not_yet_synced_are_read_back_after_the_process_goes() {
        // Without sync the frames are in the page cache, which outlives the
        // process: what a `kill -9` leaves (tests/tests/durability.rs kills a real broker).
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap();
        for i in 0..100 {
            store
                .commit_checked("g", vec![(tp(i % 4), c(u64::from(i)))], || Ok::<(), ()>(()))
                .unwrap();
        }
        std::mem::forget(store);
        let store = OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap();
        let g = store.get("g");
        assert_eq!(
            (0..4).map(|p| g[&tp(p)].offset).collect::<Vec<_>>(),
            [96, 97, 98, 99]
        );
    }

    #[test]
    fn a_refused_check_stores_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap();
        let r = store.commit_checked("g", vec![(tp(0), c(1))], || Err("fenced"));
        assert!(matches!(r, Err(CommitError::Rejected("fenced"))));
        assert!(store.get("g").is_empty());
        assert!(store.groups().is_empty());
    }

    #[test]
    fn the_log_is_rewritten_once_it_doubles_and_keeps_every_group() {
        let dir = tempfile::tempdir().unwrap();
        let mut store = OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap();
        store.log.rewrite_min_bytes = 4096;
        store.commit("gone", vec![(tp(0), c(1))]).unwrap();
        store.delete("gone").unwrap();
        for i in 0..1000u64 {
            let group = format!("g{}", i % 3);
            store
                .commit(&group, vec![(tp((i % 5) as u32), c(i))])
                .unwrap();
        }
        let path = dir.path().join("offsets.log");
        let before = std::fs::metadata(&path).unwrap().len();
        store.maintain().unwrap();
        let after = std::fs::metadata(&path).unwrap().len();
        assert!(after * 10 < before, "{before} -> {after} bytes");
        let expected: Vec<_> = ["g0", "g1", "g2"].iter().map(|g| store.get(g)).collect();
        store.commit("g0", vec![(tp(9), c(7))]).unwrap();
        drop(store);
        let store = OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap();
        assert_eq!(store.groups(), ["g0", "g1", "g2"]);
        let mut g0 = expected[0].clone();
        g0.insert(tp(9), c(7));
        assert_eq!(store.get("g0"), g0);
        assert_eq!(store.get("g1"), expected[1]);
        assert_eq!(store.get("g2"), expected[2]);
        assert_eq!(store.get("g0").len(), 6);
    }

    #[test]
    fn concurrent_syncs_share_fdatasyncs() {
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(OffsetStore::open(dir.path(), FlushPolicy::Never).unwrap());
        let threads: Vec<_> = (0..4u32)
            .map(|t| {
                let store = store.clone();
                std::thread::spawn(move || {
                    for i in 0..50u64 {
                        store.commit("g", vec![(tp(t), c(i))]).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let g = store.get("g");
        assert!((0..4).all(|t| g[&tp(t)].offset == 49));
        // Every commit returned after a sync that covered it.
        assert!(store.log.all_synced());
    }
}
