//! The once-a-second progress line of a bench run, on stderr so that
//! stdout keeps only the result.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Records sent or received so far. A global counter rather than a shared
/// handle: the producers' hot loops bump it without any plumbing, and one
/// run has one workload at a time.
pub(super) static DONE: AtomicU64 = AtomicU64::new(0);

/// Counts one more record done.
pub(super) fn add_one() {
    DONE.fetch_add(1, Ordering::Relaxed);
}

/// Sets the count of records done.
pub(super) fn set(n: u64) {
    DONE.store(n, Ordering::Relaxed);
}

/// Prints `label: done/total` on stderr every second until dropped (nothing with --json).
pub(super) struct Progress(Option<tokio::task::JoinHandle<()>>);

impl Progress {
    /// Resets the count and starts printing, unless `quiet`.
    pub(super) fn start(label: &'static str, total: u64, quiet: bool) -> Progress {
        set(0);
        if quiet {
            return Progress(None);
        }
        Progress(Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let n = DONE.load(Ordering::Relaxed);
                eprintln!(
                    "  {label}: {n}/{total} ({:.0}%)",
                    n as f64 * 100.0 / total.max(1) as f64
                );
            }
        })))
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(t) = self.0.take() {
            t.abort();
        }
    }
}
