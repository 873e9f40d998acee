//! Committed offsets, durably: one file per group, replaced atomically
//! (write a temporary file, fsync, rename, fsync the directory) before a
//! commit is acknowledged, so an acknowledged commit survives `kill -9` and
//! power loss.
//!
//! File `<data>/~groups/<group>.offsets` (the `~` keeps it out of the topic
//! namespace): a first line `brook-offsets 1`, then one line per partition:
//! `<topic> <partition> <offset> <commit timestamp ms> <metadata as hex>`.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::Context;

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

/// A group's offsets, behind a lock of its own so one group's fsync does not
/// hold another group's commit.
type GroupOffsets = Arc<Mutex<BTreeMap<Tp, Committed>>>;

/// Why [`OffsetStore::commit_checked`] stored nothing.
#[derive(Debug)]
pub enum CommitError<E> {
    /// The check refused the commit.
    Rejected(E),
    /// Writing the file failed.
    Io(anyhow::Error),
}

/// Every group's committed offsets.
pub struct OffsetStore {
    dir: PathBuf,
    groups: Mutex<HashMap<String, GroupOffsets>>,
}

const HEADER: &str = "brook-offsets 1";

fn hex(s: &str) -> String {
    hex::encode(s)
}

fn unhex(s: &str) -> Option<String> {
    String::from_utf8(hex::decode(s).ok()?).ok()
}

fn parse(text: &str, path: &Path) -> anyhow::Result<BTreeMap<Tp, Committed>> {
    let mut lines = text.lines();
    anyhow::ensure!(
        lines.next() == Some(HEADER),
        "{}: not a brook offsets file",
        path.display()
    );
    let mut out = BTreeMap::new();
    for (n, line) in lines.enumerate() {
        let bad = || anyhow::anyhow!("{}: line {} is malformed: {line:?}", path.display(), n + 2);
        let f: Vec<&str> = line.split(' ').collect();
        let [topic, partition, offset, ts, meta] = f[..] else {
            return Err(bad());
        };
        let committed = Committed {
            offset: offset.parse().map_err(|_| bad())?,
            timestamp_ms: ts.parse().map_err(|_| bad())?,
            metadata: unhex(meta).ok_or_else(bad)?,
        };
        out.insert(
            (topic.to_string(), partition.parse().map_err(|_| bad())?),
            committed,
        );
    }
    Ok(out)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl OffsetStore {
    /// Loads every group's file from `dir` (created if missing).
    pub fn open(dir: impl Into<PathBuf>) -> anyhow::Result<OffsetStore> {
        let dir = dir.into();
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let mut groups = HashMap::new();
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let Some(group) = path
                .file_name()
                .and_then(|n| n.to_str())
                .and_then(|n| n.strip_suffix(".offsets"))
            else {
                if path.extension().is_some_and(|e| e == "tmp") {
                    fs::remove_file(&path)?;
                }
                continue;
            };
            let offsets = parse(&fs::read_to_string(&path)?, &path)?;
            groups.insert(group.to_string(), Arc::new(Mutex::new(offsets)));
        }
        Ok(OffsetStore {
            dir,
            groups: Mutex::new(groups),
        })
    }

    fn group(&self, group: &str) -> GroupOffsets {
        Arc::clone(lock(&self.groups).entry(group.to_string()).or_default())
    }

    /// Stores `offsets` for `group` if `check` passes, both under the group's
    /// lock (so a fenced member cannot pass the check and then land its write
    /// after a newer member's); returns once they are on disk.
    pub fn commit_checked<E>(
        &self,
        group: &str,
        offsets: Vec<(Tp, Committed)>,
        check: impl FnOnce() -> Result<(), E>,
    ) -> Result<(), CommitError<E>> {
        loop {
            let g = self.group(group);
            let mut current = lock(&g);
            // A concurrent delete replaced the group's entry: use the new one.
            if !lock(&self.groups)
                .get(group)
                .is_some_and(|now| Arc::ptr_eq(now, &g))
            {
                continue;
            }
            check().map_err(CommitError::Rejected)?;
            let mut next = current.clone();
            next.extend(offsets);
            self.write(group, &next).map_err(CommitError::Io)?;
            *current = next;
            return Ok(());
        }
    }

    /// Stores `offsets` for `group`; returns once they are on disk.
    pub fn commit(&self, group: &str, offsets: Vec<(Tp, Committed)>) -> anyhow::Result<()> {
        self.commit_checked(group, offsets, || Ok::<(), std::convert::Infallible>(()))
            .map_err(|e| match e {
                CommitError::Io(e) => e,
                CommitError::Rejected(never) => match never {},
            })
    }

    fn write(&self, group: &str, offsets: &BTreeMap<Tp, Committed>) -> anyhow::Result<()> {
        let mut text = format!("{HEADER}\n");
        for ((topic, partition), c) in offsets {
            text.push_str(&format!(
                "{topic} {partition} {} {} {}\n",
                c.offset,
                c.timestamp_ms,
                hex(&c.metadata)
            ));
        }
        brook_storage::write_atomic(&self.dir, &format!("{group}.offsets"), text.as_bytes())?;
        Ok(())
    }

    /// A group's committed offsets (empty if it has none).
    pub fn get(&self, group: &str) -> BTreeMap<Tp, Committed> {
        // The map's lock is released before the group's is taken: commits
        // hold a group's lock while they look at the map (lock order: group, then map).
        let g = lock(&self.groups).get(group).cloned();
        g.map(|g| lock(&g).clone()).unwrap_or_default()
    }

    /// Groups with committed offsets.
    pub fn groups(&self) -> Vec<String> {
        let groups: Vec<(String, GroupOffsets)> = lock(&self.groups)
            .iter()
            .map(|(n, g)| (n.clone(), Arc::clone(g)))
            .collect();
        let mut names: Vec<String> = groups
            .into_iter()
            .filter(|(_, g)| !lock(g).is_empty())
            .map(|(n, _)| n)
            .collect();
        names.sort();
        names
    }

    /// Forgets a group's offsets, on disk too. Waits for a commit in progress.
    pub fn delete(&self, group: &str) -> anyhow::Result<()> {
        let g = self.group(group);
        let _writing = lock(&g);
        lock(&self.groups).remove(group);
        match fs::remove_file(self.dir.join(format!("{group}.offsets"))) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e.into()),
            _ => Ok(fs::File::open(&self.dir)?.sync_all()?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_survive_reopen_and_metadata_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let store = OffsetStore::open(dir.path()).unwrap();
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
        let store = OffsetStore::open(dir.path()).unwrap();
        let b = store.get("billing");
        assert_eq!(b[&("orders".to_string(), 0)], c(12, "x"));
        assert_eq!(b[&("orders".to_string(), 1)], c(5, ""));
        assert_eq!(store.groups(), ["billing", "shipping"]);
        store.delete("billing").unwrap();
        drop(store);
        let store = OffsetStore::open(dir.path()).unwrap();
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
        let store = Arc::new(OffsetStore::open(dir.path()).unwrap());
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
        let err = OffsetStore::open(dir.path()).err().unwrap();
        assert!(format!("{err:#}").contains("g.offsets"), "{err:#}");
    }
}
