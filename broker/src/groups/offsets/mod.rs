//! Committed offsets of every group: in memory, and on disk in one
//! append-only log (`log.rs`) shared by all groups, as Kafka's
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
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use brook_storage::FlushPolicy;

mod legacy;
mod log;

use log::{Entry, LogFile, OffsetEntry};

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

/// Where a change landed in the log: pass it to [`OffsetStore::sync`] to
/// wait until it is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPosition(u64);

/// The log is rewritten once it is larger than this and than twice its
/// last rewrite: rewrites stay rare, and opening reads at most a few MiB.
const REWRITE_MIN_BYTES: u64 = 8 << 20;

/// Every group's committed offsets.
pub struct OffsetStore {
    dir: PathBuf,
    flush: FlushPolicy,
    /// [`REWRITE_MIN_BYTES`], smaller in tests.
    rewrite_min_bytes: u64,
    state: Mutex<State>,
    /// The position known to be on disk. Held while syncing, so that
    /// concurrent syncs wait for one `fdatasync` and find themselves covered.
    /// Lock order: `synced`, then `state`.
    synced: Mutex<LogPosition>,
    /// When the interval policy last synced.
    last_sync: Mutex<std::time::Instant>,
    /// `fdatasync`s of the log, and rewrites of it, since open.
    syncs: AtomicU64,
    rewrites: AtomicU64,
}

/// What the offsets log has done, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStats {
    /// `fdatasync`s of the log since the broker started (concurrent durable
    /// commits share one).
    pub syncs: u64,
    /// Times the log was written out whole since the broker started.
    pub rewrites: u64,
    /// The log's size in bytes.
    pub bytes: u64,
}

struct State {
    groups: HashMap<String, BTreeMap<Tp, Committed>>,
    log: LogFile,
    /// Frames appended since open: the position of the last one.
    appended: LogPosition,
    /// While a rewrite writes its snapshot: the frames appended since it
    /// was taken, to go after it in the new file.
    rewrite_tail: Option<Vec<u8>>,
    /// Why nothing may be taken as durable any more: a sync failed (Linux
    /// reports a write-back error once, so a later sync of the same file
    /// could succeed without the lost pages), or a rewrite's rename may not
    /// have reached the disk. Cleared by a rewrite that succeeds whole.
    poisoned: Option<String>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn apply(groups: &mut HashMap<String, BTreeMap<Tp, Committed>>, entry: Entry) {
    if entry.delete {
        groups.remove(&entry.group);
    }
    if entry.offsets.is_empty() {
        return;
    }
    let offsets = groups.entry(entry.group).or_default();
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

/// The whole state as a log file of one entry per group (more for a group
/// of many partitions; none for a group without offsets).
fn snapshot(groups: &HashMap<String, BTreeMap<Tp, Committed>>) -> Vec<u8> {
    let mut bytes = log::MAGIC.to_vec();
    let mut names: Vec<&String> = groups.keys().collect();
    names.sort();
    for name in names {
        let offsets: Vec<(Tp, Committed)> = groups[name]
            .iter()
            .map(|(tp, c)| (tp.clone(), c.clone()))
            .collect();
        for chunk in offsets.chunks(SNAPSHOT_ENTRY_OFFSETS) {
            log::encode_frame(&entry_of(name, chunk, false), &mut bytes);
        }
    }
    bytes
}

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

impl OffsetStore {
    /// Loads every group's offsets from `dir` (created if missing); the log
    /// is synced as `flush` says ([`OffsetStore::maintain`]).
    pub fn open(dir: impl Into<PathBuf>, flush: FlushPolicy) -> anyhow::Result<OffsetStore> {
        let dir = dir.into();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut groups = HashMap::new();
        let legacy = legacy_files(&dir)?;
        let path = dir.join(log::NAME);
        let (valid_len, torn) = match fs::read(&path) {
            Ok(bytes) => {
                let replayed = log::replay(&bytes, &path)?;
                if replayed.torn_tail {
                    tracing::warn!(
                        file = %path.display(),
                        kept_bytes = replayed.valid_len,
                        dropped_bytes = bytes.len() as u64 - replayed.valid_len,
                        "the offsets log ends in a write a crash cut short: it ends before it"
                    );
                }
                for entry in replayed.entries {
                    apply(&mut groups, entry);
                }
                (replayed.valid_len, replayed.torn_tail)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, true),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        // Files of the first format after the log: they are newer than it
        // when a broker of that version ran on the directory meanwhile, and
        // the same as what the log holds when a migration was cut short.
        for (group, path) in &legacy {
            let text =
                fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            groups.insert(group.clone(), legacy::parse(&text, path)?);
        }
        // A new log, a torn tail or files to migrate: write the state out
        // whole first, so that the log is clean before anything is appended
        // and the old files go only once their offsets are on disk here.
        let log = if torn || !legacy.is_empty() {
            let contents = snapshot(&groups);
            brook_storage::write_atomic(&dir, log::NAME, &contents)?;
            for (_, old) in &legacy {
                fs::remove_file(old).with_context(|| format!("removing {}", old.display()))?;
            }
            if !legacy.is_empty() {
                fs::File::open(&dir)?.sync_all()?;
            }
            LogFile::open(path, contents.len() as u64)?
        } else {
            LogFile::open(path, valid_len)?
        };
        Ok(OffsetStore {
            dir,
            flush,
            rewrite_min_bytes: REWRITE_MIN_BYTES,
            state: Mutex::new(State {
                groups,
                log,
                appended: LogPosition(0),
                rewrite_tail: None,
                poisoned: None,
            }),
            synced: Mutex::new(LogPosition(0)),
            last_sync: Mutex::new(std::time::Instant::now()),
            syncs: AtomicU64::new(0),
            rewrites: AtomicU64::new(0),
        })
    }

    /// Appends `entry` and applies it; the state's lock is held.
    fn append(st: &mut State, entry: Entry) -> anyhow::Result<LogPosition> {
        let mut frame = Vec::with_capacity(64);
        log::encode_frame(&entry, &mut frame);
        st.log.append(&frame)?;
        if let Some(tail) = &mut st.rewrite_tail {
            tail.extend_from_slice(&frame);
        }
        apply(&mut st.groups, entry);
        st.appended = LogPosition(st.appended.0 + 1);
        Ok(st.appended)
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
        let mut st = lock(&self.state);
        check().map_err(CommitError::Rejected)?;
        Self::append(&mut st, entry_of(group, &offsets, false)).map_err(CommitError::Io)
    }

    /// Stores `offsets` for `group`; returns once they are on disk.
    pub fn commit(&self, group: &str, offsets: Vec<(Tp, Committed)>) -> anyhow::Result<()> {
        let at = self
            .commit_checked(group, offsets, || Ok::<(), std::convert::Infallible>(()))
            .map_err(|e| match e {
                CommitError::Io(e) => e,
                CommitError::Rejected(never) => match never {},
            })?;
        self.sync(at)
    }

    /// Whether a commit must be synced before it is acknowledged: when it
    /// asks to be `durable`, or when the flush policy is `always`.
    pub fn needs_sync(&self, durable: bool) -> bool {
        durable || self.flush == FlushPolicy::Always
    }

    /// Returns once everything up to `at` is on disk. Blocks: call it on a
    /// blocking thread. Concurrent callers share one `fdatasync`.
    pub fn sync(&self, at: LogPosition) -> anyhow::Result<()> {
        let mut synced = lock(&self.synced);
        if *synced >= at {
            return Ok(());
        }
        let (file, upto) = {
            let st = lock(&self.state);
            if let Some(why) = &st.poisoned {
                anyhow::bail!(
                    "the offsets log cannot promise durability until it is rewritten: {why}"
                );
            }
            (st.log.handle(), st.appended)
        };
        self.syncs.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = file.sync_data() {
            let why = format!("syncing {} failed: {e}", self.dir.join(log::NAME).display());
            lock(&self.state).poisoned = Some(why.clone());
            anyhow::bail!(why);
        }
        *synced = upto;
        Ok(())
    }

    /// Everything appended so far, to disk (a clean stop).
    pub fn sync_all(&self) -> anyhow::Result<()> {
        let at = lock(&self.state).appended;
        self.sync(at)
    }

    /// The background work, run every [`OffsetStore::maintenance_period`]
    /// on a blocking thread: sync when the flush interval is due, and
    /// rewrite the log once it has doubled (or to clear a failed sync).
    pub fn maintain(&self) -> anyhow::Result<()> {
        if let FlushPolicy::Interval(every) = self.flush {
            let mut last = lock(&self.last_sync);
            if last.elapsed() >= every {
                *last = std::time::Instant::now();
                drop(last);
                // A failed sync poisons the store: the rewrite below recovers.
                if let Err(e) = self.sync_all() {
                    tracing::error!(error = %format!("{e:#}"), "offsets log sync failed; rewriting it");
                }
            }
        }
        self.rewrite_if_due()
    }

    /// Writes the state out as a new file and swaps it in, when the log has
    /// doubled or is poisoned. The snapshot is written and synced without
    /// the state's lock (commits and reads go on; their frames are kept
    /// aside and appended after it), so the lock is held only for the short
    /// tail, the rename and the directory sync.
    fn rewrite_if_due(&self) -> anyhow::Result<()> {
        let mut synced = lock(&self.synced);
        let (contents, before) = {
            let mut st = lock(&self.state);
            if st.poisoned.is_none() && !st.log.wants_rewrite(self.rewrite_min_bytes) {
                return Ok(());
            }
            st.rewrite_tail = Some(Vec::new());
            (snapshot(&st.groups), st.log.len())
        };
        let tmp = self.dir.join(format!("{}.rewrite.tmp", log::NAME));
        let written = (|| {
            let mut f = fs::File::create(&tmp)?;
            std::io::Write::write_all(&mut f, &contents)?;
            f.sync_all()?;
            Ok::<_, std::io::Error>(f)
        })();
        let mut st = lock(&self.state);
        let tail = st.rewrite_tail.take().unwrap_or_default();
        let mut file = written.with_context(|| format!("writing {}", tmp.display()))?;
        std::io::Write::write_all(&mut file, &tail)
            .and_then(|()| file.sync_data())
            .with_context(|| format!("writing {}", tmp.display()))?;
        let len = (contents.len() + tail.len()) as u64;
        if let Err(e) = st.log.replace_with(&tmp, file, len) {
            // Renamed but perhaps not durably (or not renamed: the old
            // file, still in use, stays whole). Either way the next round retries.
            st.poisoned = Some(format!("{e:#}"));
            return Err(e);
        }
        st.poisoned = None;
        self.rewrites.fetch_add(1, Ordering::Relaxed);
        // The new file holds everything appended, synced.
        *synced = st.appended;
        tracing::debug!(before, after = len, "rewrote the offsets log");
        Ok(())
    }

    /// How often [`OffsetStore::maintain`] should run: every second, or
    /// at the flush interval when it is shorter.
    pub fn maintenance_period(&self) -> Duration {
        match self.flush {
            FlushPolicy::Interval(d) => d.min(Duration::from_secs(1)),
            _ => Duration::from_secs(1),
        }
    }

    /// Syncs, rewrites and size of the log.
    pub fn stats(&self) -> LogStats {
        LogStats {
            syncs: self.syncs.load(Ordering::Relaxed),
            rewrites: self.rewrites.load(Ordering::Relaxed),
            bytes: lock(&self.state).log.len(),
        }
    }

    /// A group's committed offsets (empty if it has none).
    pub fn get(&self, group: &str) -> BTreeMap<Tp, Committed> {
        lock(&self.state)
            .groups
            .get(group)
            .cloned()
            .unwrap_or_default()
    }

    /// Groups with committed offsets.
    pub fn groups(&self) -> Vec<String> {
        let mut names: Vec<String> = lock(&self.state)
            .groups
            .iter()
            .filter(|(_, o)| !o.is_empty())
            .map(|(n, _)| n.clone())
            .collect();
        names.sort();
        names
    }

    /// Forgets a group's offsets, on disk too: returns once that is on disk.
    pub fn delete(&self, group: &str) -> anyhow::Result<()> {
        let at = Self::append(&mut lock(&self.state), entry_of(group, &[], true))?;
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
        assert!(!log::replay(&now, &path).unwrap().torn_tail);
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
        store.rewrite_min_bytes = 4096;
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
        assert_eq!(*lock(&store.synced), lock(&store.state).appended);
    }
}
