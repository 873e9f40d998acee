//! One background thread per process that does the storage engine's
//! deferred disk work: periodic flushes for partitions with an interval
//! flush policy, and syncing segments after they roll (which advances the
//! recovery point). One thread, not one per partition, so that thousands of
//! partitions cost a heap entry each rather than a thread each.
//!
//! Beside it, a few flush threads run the flushes that async callers wait
//! for ([`flush_soon`]): one flush per partition at a time, however many
//! producers await it, and no thread parked per waiter.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

/// Work the flusher can do on a partition it holds weakly.
pub(crate) trait Flushable: Send + Sync {
    /// Flush everything appended so far (interval policy); returns when to
    /// flush next, or `None` once the policy is no longer an interval (the
    /// timer ends).
    fn periodic_flush(&self) -> Option<Duration>;
    /// Sync segments that rolled since the last call and advance the recovery point.
    fn sync_sealed(&self);
    /// Flush everything appended so far, for the async waiters that asked.
    fn requested_flush(&self);
}

/// Flush threads: flushes of different partitions run side by side (one
/// slow disk does not hold up the others), a few at a time.
const FLUSH_THREADS: usize = 4;

/// Run `target`'s [`Flushable::requested_flush`] soon on a flush thread.
pub(crate) fn flush_soon(target: Weak<dyn Flushable>) {
    static POOL: OnceLock<Mutex<Sender<Weak<dyn Flushable>>>> = OnceLock::new();
    let pool = POOL.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Weak<dyn Flushable>>();
        let rx = std::sync::Arc::new(Mutex::new(rx));
        for i in 0..FLUSH_THREADS {
            let rx = std::sync::Arc::clone(&rx);
            let spawned = std::thread::Builder::new()
                .name(format!("brook-flush-{i}"))
                .spawn(move || {
                    loop {
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        match job {
                            Ok(target) => {
                                if let Some(t) = target.upgrade() {
                                    t.requested_flush();
                                }
                            }
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "could not start a storage flush thread");
            }
        }
        Mutex::new(tx)
    });
    let tx = pool.lock().unwrap_or_else(|e| e.into_inner());
    let _ = tx.send(target);
}

enum Job {
    Every(Weak<dyn Flushable>, Duration),
    SyncSealed(Weak<dyn Flushable>),
    Barrier(std::sync::mpsc::Sender<()>),
}

fn sender() -> &'static Mutex<Sender<Job>> {
    static FLUSHER: OnceLock<Mutex<Sender<Job>>> = OnceLock::new();
    FLUSHER.get_or_init(|| {
        let (tx, rx) = mpsc::channel();
        if let Err(e) = std::thread::Builder::new()
            .name("brook-flusher".into())
            .spawn(move || run(rx))
        {
            // Without the thread, interval flushes do not happen; explicit
            // flushes and `Always` still work. Say so rather than crash.
            tracing::error!(error = %e, "could not start the storage flusher thread");
        }
        Mutex::new(tx)
    })
}

fn send(job: Job) {
    let tx = sender().lock().unwrap_or_else(|e| e.into_inner());
    let _ = tx.send(job);
}

/// Flush `target` in `period`, then as often as its
/// [`Flushable::periodic_flush`] says, for as long as it lives.
pub(crate) fn every(target: Weak<dyn Flushable>, period: Duration) {
    send(Job::Every(target, period));
}

/// Returns once every job queued before the call has run (jobs run in order
/// on one thread). Lets a caller that dropped a partition without closing it
/// (a simulated crash) know that no background write to its files is left.
pub fn drain() {
    let (tx, rx) = mpsc::channel();
    send(Job::Barrier(tx));
    let _ = rx.recv();
}

/// Sync `target`'s newly sealed segments soon.
pub(crate) fn sync_sealed(target: Weak<dyn Flushable>) {
    send(Job::SyncSealed(target));
}

struct Timer {
    due: Instant,
    id: u64,
}
impl PartialEq for Timer {
    fn eq(&self, o: &Self) -> bool {
        (self.due, self.id) == (o.due, o.id)
    }
}
impl Eq for Timer {}
impl PartialOrd for Timer {
    fn partial_cmp(&self, o: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(o))
    }
}
impl Ord for Timer {
    fn cmp(&self, o: &Self) -> std::cmp::Ordering {
        (self.due, self.id).cmp(&(o.due, o.id))
    }
}

fn run(rx: Receiver<Job>) {
    let mut heap: BinaryHeap<Reverse<Timer>> = BinaryHeap::new();
    let mut targets: std::collections::HashMap<u64, Weak<dyn Flushable>> = Default::default();
    let mut next_id = 0u64;
    loop {
        let wait = heap.peek().map_or(Duration::from_secs(3600), |t| {
            t.0.due.saturating_duration_since(Instant::now())
        });
        match rx.recv_timeout(wait) {
            Ok(Job::Every(target, period)) => {
                next_id += 1;
                heap.push(Reverse(Timer {
                    due: Instant::now() + period,
                    id: next_id,
                }));
                targets.insert(next_id, target);
            }
            Ok(Job::SyncSealed(target)) => {
                if let Some(t) = target.upgrade() {
                    t.sync_sealed();
                }
            }
            Ok(Job::Barrier(done)) => {
                let _ = done.send(());
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
        while heap.peek().is_some_and(|t| t.0.due <= Instant::now()) {
            let Reverse(timer) = heap.pop().expect("peeked");
            let Some(target) = targets.get(&timer.id) else {
                continue;
            };
            match target.upgrade().and_then(|t| t.periodic_flush()) {
                Some(period) => heap.push(Reverse(Timer {
                    due: Instant::now() + period,
                    id: timer.id,
                })),
                None => {
                    targets.remove(&timer.id);
                }
            }
        }
    }
}
