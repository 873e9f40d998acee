//! A state machine kept in memory and made durable as an append-only log of
//! its changes (`file.rs`), the way Kafka keeps `__consumer_offsets` and
//! `__share_group_state`: a change costs one small `pwrite` into the page
//! cache (it survives `kill -9`), reaches the disk by the broker's flush
//! policy or when a caller asks ([`StateLog::sync`]: concurrent callers share
//! one `fdatasync`), and the file is rewritten as a snapshot of the state
//! once it has doubled since its last rewrite.
//!
//! Used by the committed offsets of consumer groups (`groups/offsets`),
//! the state of queue groups (`queues/store`), the schema registry
//! (`schemas/state`) and the routing rules (`rules/store`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::Context;
use brook_storage::FlushPolicy;

pub(crate) mod file;

use file::LogFile;

/// The state a [`StateLog`] keeps: how its entries change it, and the
/// entries that rebuild it whole.
pub trait Machine: Send {
    /// One change, as stored in a frame.
    type Entry: prost::Message + Default;
    /// The file's first line, naming its format and version.
    const MAGIC: &'static [u8];
    /// What the log holds, for log lines and errors ("the offsets log").
    const WHAT: &'static str;

    /// Applies one entry, at replay and after each append.
    fn apply(&mut self, entry: Self::Entry);

    /// Entries that rebuild the whole state from nothing, for a rewrite.
    /// Each must stay well under 256 MiB encoded.
    fn snapshot(&self, out: &mut dyn FnMut(Self::Entry));
}

/// Why [`StateLog::update`] stored nothing.
#[derive(Debug)]
pub enum UpdateError<E> {
    /// The caller's check refused the change.
    Rejected(E),
    /// Writing the log failed.
    Io(anyhow::Error),
}

/// Where a change landed in the log: pass it to [`StateLog::sync`] to wait
/// until it is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct LogPosition(u64);

/// The log is rewritten once it is larger than this and than twice its
/// last rewrite: rewrites stay rare, and opening reads at most a few MiB.
const REWRITE_MIN_BYTES: u64 = 8 << 20;

/// What a state log has done, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogStats {
    /// `fdatasync`s of the log since the broker started (concurrent durable
    /// changes share one).
    pub syncs: u64,
    /// Times the log was written out whole since the broker started.
    pub rewrites: u64,
    /// The log's size in bytes.
    pub bytes: u64,
}

/// A [`Machine`] and the log that makes it durable.
pub struct StateLog<M: Machine> {
    path: PathBuf,
    flush: FlushPolicy,
    /// [`REWRITE_MIN_BYTES`], smaller in tests.
    pub(crate) rewrite_min_bytes: u64,
    state: Mutex<Inner<M>>,
    /// The position known to be on disk. Held while syncing, so that
    /// concurrent syncs wait for one `fdatasync` and find themselves covered.
    /// Lock order: `synced`, then `state`.
    synced: Mutex<LogPosition>,
    /// When the interval policy last synced.
    last_sync: Mutex<std::time::Instant>,
    syncs: AtomicU64,
    rewrites: AtomicU64,
}

struct Inner<M> {
    machine: M,
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

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// The whole state as the contents of a new log file.
fn snapshot<M: Machine>(machine: &M) -> Vec<u8> {
    let mut bytes = M::MAGIC.to_vec();
    machine.snapshot(&mut |entry| file::encode_frame(&entry, &mut bytes));
    bytes
}

impl<M: Machine> StateLog<M> {
    /// Replays the log at `path` (a new one if missing) into `machine`, then
    /// lets `migrate` add state from elsewhere: when it returns true, or the
    /// log was new or ended in a torn frame, the state is written out whole
    /// (atomically) before anything is appended.
    pub fn open(
        path: PathBuf,
        flush: FlushPolicy,
        mut machine: M,
        migrate: impl FnOnce(&mut M) -> anyhow::Result<bool>,
    ) -> anyhow::Result<StateLog<M>> {
        let dir = path.parent().unwrap_or(Path::new(".")).to_path_buf();
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let (valid_len, torn) = match std::fs::read(&path) {
            Ok(bytes) => {
                let replayed = file::replay::<M::Entry>(&bytes, M::MAGIC, &path)?;
                if replayed.torn_tail {
                    tracing::warn!(
                        file = %path.display(),
                        kept_bytes = replayed.valid_len,
                        dropped_bytes = bytes.len() as u64 - replayed.valid_len,
                        "{} ends in a write a crash cut short: it ends before it", M::WHAT
                    );
                }
                for entry in replayed.entries {
                    machine.apply(entry);
                }
                (replayed.valid_len, replayed.torn_tail)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => (0, true),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        let migrated = migrate(&mut machine)?;
        let log = if torn || migrated {
            let contents = snapshot(&machine);
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("log");
            brook_storage::write_atomic(&dir, name, &contents)?;
            LogFile::open(path.clone(), contents.len() as u64)?
        } else {
            LogFile::open(path.clone(), valid_len)?
        };
        Ok(StateLog {
            path,
            flush,
            rewrite_min_bytes: REWRITE_MIN_BYTES,
            state: Mutex::new(Inner {
                machine,
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

    /// Runs `decide` on the state under the log's lock; the entries it
    /// returns are appended and then applied, and its value returned with
    /// where they landed. The check and the write under one lock mean no
    /// other change lands between them. On return the change is in the page
    /// cache (it survives a crash of the broker); [`StateLog::sync`] with the
    /// position waits until it is on disk. A failed write applies nothing.
    pub fn update<R, E>(
        &self,
        decide: impl FnOnce(&mut M) -> Result<(Vec<M::Entry>, R), E>,
    ) -> Result<(R, LogPosition), UpdateError<E>> {
        let mut st = lock(&self.state);
        let (entries, value) = decide(&mut st.machine).map_err(UpdateError::Rejected)?;
        if entries.is_empty() {
            return Ok((value, st.appended));
        }
        let mut frames = Vec::with_capacity(64 * entries.len());
        for e in &entries {
            file::encode_frame(e, &mut frames);
        }
        st.log.append(&frames).map_err(UpdateError::Io)?;
        if let Some(tail) = &mut st.rewrite_tail {
            tail.extend_from_slice(&frames);
        }
        for e in entries {
            st.machine.apply(e);
        }
        st.appended = LogPosition(st.appended.0 + 1);
        Ok((value, st.appended))
    }

    /// Appends `entries` and applies them.
    pub fn append(&self, entries: Vec<M::Entry>) -> anyhow::Result<LogPosition> {
        self.update(|_| Ok::<_, std::convert::Infallible>((entries, ())))
            .map(|((), at)| at)
            .map_err(|e| match e {
                UpdateError::Io(e) => e,
                UpdateError::Rejected(never) => match never {},
            })
    }

    /// Reads (or changes what is not logged: caches, runtime state) under
    /// the log's lock.
    pub fn with<R>(&self, f: impl FnOnce(&mut M) -> R) -> R {
        f(&mut lock(&self.state).machine)
    }

    /// Whether a change must be synced before it is acknowledged: when it
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
                    "{} cannot promise durability until it is rewritten: {why}",
                    M::WHAT
                );
            }
            (st.log.handle(), st.appended)
        };
        self.syncs.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = file.sync_data() {
            let why = format!("syncing {} failed: {e}", self.path.display());
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

    /// The background work, run every [`StateLog::maintenance_period`] on a
    /// blocking thread: sync when the flush interval is due, and rewrite the
    /// log once it has doubled (or to clear a failed sync).
    pub fn maintain(&self) -> anyhow::Result<()> {
        if let FlushPolicy::Interval(every) = self.flush {
            let mut last = lock(&self.last_sync);
            if last.elapsed() >= every {
                *last = std::time::Instant::now();
                drop(last);
                // A failed sync poisons the log: the rewrite below recovers.
                if let Err(e) = self.sync_all() {
                    tracing::error!(error = %format!("{e:#}"), "{} sync failed; rewriting it", M::WHAT);
                }
            }
        }
        self.rewrite_if_due()
    }

    /// Writes the state out as a new file and swaps it in, when the log has
    /// doubled or is poisoned. The snapshot is written and synced without
    /// the state's lock (changes go on; their frames are kept aside and
    /// appended after it), so the lock is held only for the short tail, the
    /// rename and the directory sync.
    fn rewrite_if_due(&self) -> anyhow::Result<()> {
        self.rewrite_when(false)
    }

    /// Writes the state out as a new file and swaps it in now.
    pub fn rewrite(&self) -> anyhow::Result<()> {
        self.rewrite_when(true)
    }

    fn rewrite_when(&self, now: bool) -> anyhow::Result<()> {
        let mut synced = lock(&self.synced);
        let (contents, before) = {
            let mut st = lock(&self.state);
            if !now && st.poisoned.is_none() && !st.log.wants_rewrite(self.rewrite_min_bytes) {
                return Ok(());
            }
            st.rewrite_tail = Some(Vec::new());
            (snapshot(&st.machine), st.log.len())
        };
        let name = self
            .path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("log");
        let tmp = self.path.with_file_name(format!("{name}.rewrite.tmp"));
        let written = (|| {
            let mut f = std::fs::File::create(&tmp)?;
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
        tracing::debug!(before, after = len, "rewrote {}", M::WHAT);
        Ok(())
    }

    /// How often [`StateLog::maintain`] should run: every second, or at the
    /// flush interval when it is shorter.
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

    /// Whether every change appended is known to be on disk.
    #[cfg(test)]
    pub(crate) fn all_synced(&self) -> bool {
        *lock(&self.synced) == lock(&self.state).appended
    }
}
