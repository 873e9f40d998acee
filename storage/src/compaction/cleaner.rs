//! The cleaner: one background thread per process that runs cleaning passes
//! on the compacted partitions, the most urgent first (a passed
//! `max_compaction_lag_ms` or tombstone retention, then the highest dirty
//! ratio), at a bounded I/O rate and with one bounded offset map.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::Throttle;
use crate::partition::{CleanOptions, Partition, now_ms};

/// Settings of the cleaner (Kafka's `log.cleaner.*`).
#[derive(Debug, Clone)]
pub struct CleanerOptions {
    /// Most bytes a pass's offset map takes (`log.cleaner.dedupe.buffer.size`).
    pub map_bytes: usize,
    /// Bytes read plus written per second, at most (0: unlimited).
    pub io_bytes_per_sec: u64,
    /// How long the thread sleeps when no partition is due, and how long a
    /// partition whose pass failed or made no progress is left alone.
    pub backoff: Duration,
}

impl Default for CleanerOptions {
    fn default() -> Self {
        CleanerOptions {
            map_bytes: 128 << 20,
            io_bytes_per_sec: 0,
            backoff: Duration::from_secs(15),
        }
    }
}

/// What the cleaner did since it started (for metrics).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CleanerStats {
    /// Passes that finished.
    pub passes: u64,
    /// Passes that failed (an I/O error, damage found on the way).
    pub failed: u64,
    /// Passes ended early by a stop, a close or a deletion.
    pub aborted: u64,
    /// Bytes of log read.
    pub bytes_read: u64,
    /// Bytes of log written.
    pub bytes_written: u64,
    /// Segments rewritten.
    pub segments_rewritten: u64,
    /// Records removed because a later record of their key exists.
    pub superseded: u64,
    /// Tombstones removed after their retention.
    pub tombstones: u64,
    /// Seconds spent in passes.
    pub busy_seconds: f64,
    /// The last pass's bytes written over bytes read (1 when it read nothing).
    pub last_ratio: f64,
    /// Whether a pass is under way now.
    pub running: bool,
}

struct Shared {
    stop: AtomicBool,
    wake: Condvar,
    woken: Mutex<bool>,
    stats: Mutex<CleanerStats>,
}

/// The running cleaner thread; stopped (and joined) by [`Cleaner::stop`]
/// or when dropped. Stop it before closing the log: a pass in progress
/// ends at its next batch.
pub struct Cleaner {
    shared: Arc<Shared>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Cleaner {
    /// Starts the thread. `partitions` lists the partitions to consider
    /// (every open one; those not compacted are passed over).
    pub fn start(
        partitions: impl Fn() -> Vec<Partition> + Send + 'static,
        options: CleanerOptions,
    ) -> std::io::Result<Cleaner> {
        let shared = Arc::new(Shared {
            stop: AtomicBool::new(false),
            wake: Condvar::new(),
            woken: Mutex::new(false),
            stats: Mutex::new(CleanerStats::default()),
        });
        let inner = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name("brook-cleaner".into())
            .spawn(move || run(&inner, &partitions, &options))?;
        Ok(Cleaner {
            shared,
            thread: Mutex::new(Some(thread)),
        })
    }

    /// Looks for due partitions now instead of at the end of the backoff.
    pub fn wake(&self) {
        *self.shared.woken.lock().unwrap_or_else(|e| e.into_inner()) = true;
        self.shared.wake.notify_all();
    }

    /// What the cleaner did so far.
    pub fn stats(&self) -> CleanerStats {
        self.shared
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Stops the thread and waits for it (a pass in progress ends at its
    /// next batch, its swapped segments kept).
    pub fn stop(&self) {
        self.shared.stop.store(true, Ordering::Release);
        self.wake();
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            let _ = t.join();
        }
    }
}

impl Drop for Cleaner {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(shared: &Shared, partitions: &dyn Fn() -> Vec<Partition>, options: &CleanerOptions) {
    let throttle = Throttle::new(options.io_bytes_per_sec);
    // Partitions left alone until then: their last pass failed or moved nothing.
    let mut resting: HashMap<PathBuf, Instant> = HashMap::new();
    while !shared.stop.load(Ordering::Acquire) {
        let now = now_ms();
        resting.retain(|_, until| *until > Instant::now());
        let pick = partitions()
            .into_iter()
            .filter(|p| !resting.contains_key(p.dir()))
            .filter_map(|p| p.cleaning_due(now).map(|urgency| (urgency, p)))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        let Some((_, partition)) = pick else {
            let mut woken = shared.woken.lock().unwrap_or_else(|e| e.into_inner());
            if !*woken {
                woken = shared
                    .wake
                    .wait_timeout(woken, options.backoff)
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
            *woken = false;
            continue;
        };
        let started = Instant::now();
        let before = partition.cleaning_status(now).cleaned_to;
        shared
            .stats
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .running = true;
        let result = partition.clean(
            now,
            &CleanOptions {
                map_bytes: options.map_bytes,
                throttle: Some(&throttle),
                stop: Some(&shared.stop),
            },
        );
        let mut stats = shared.stats.lock().unwrap_or_else(|e| e.into_inner());
        stats.running = false;
        stats.busy_seconds += started.elapsed().as_secs_f64();
        match result {
            Ok(s) => {
                match s.aborted {
                    true => stats.aborted += 1,
                    false => stats.passes += 1,
                }
                stats.bytes_read += s.bytes_read;
                stats.bytes_written += s.bytes_written;
                stats.segments_rewritten += u64::from(s.segments_rewritten);
                stats.superseded += s.superseded;
                stats.tombstones += s.tombstones;
                stats.last_ratio = match s.bytes_read {
                    0 => 1.0,
                    r => s.bytes_written as f64 / r as f64,
                };
                // Due again at once would spin: a map too small for one
                // batch's keys, or a due tombstone that cannot go yet.
                if s.cleaned_to == before && partition.cleaning_due(now_ms()).is_some() {
                    if s.map_full {
                        tracing::warn!(partition = %partition.dir().display(), map_bytes = options.map_bytes, "the cleaner's offset map cannot hold one batch's keys: raise --cleaner-dedupe-bytes");
                    }
                    resting.insert(
                        partition.dir().to_path_buf(),
                        Instant::now() + options.backoff,
                    );
                }
            }
            Err(e) => {
                if partition.is_deleted() {
                    stats.aborted += 1;
                } else {
                    stats.failed += 1;
                    tracing::warn!(partition = %partition.dir().display(), error = %e, "cleaning pass failed; the partition is tried again after the backoff");
                    resting.insert(
                        partition.dir().to_path_buf(),
                        Instant::now() + options.backoff,
                    );
                }
            }
        }
    }
}
