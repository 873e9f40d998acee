//! Queue groups: queue semantics on a topic, as Kafka's share groups
//! (KIP-932). Each record of the topic goes to one consumer at a time under
//! a lease; the consumer acks, nacks (redelivered after a backoff) or
//! rejects it (to the dead-letter topic); a record whose delivery failed
//! `max_deliveries` times is dead-lettered. The records stay in the topic.
//!
//! - `share.rs`: one partition's state (acked-up-to point, window of tracked records);
//! - `store.rs`: that state made durable in the queues log, `<data>/~queues/queues.log`;
//! - `settings.rs`: a group's settings; `ranges.rs`: offset ranges;
//! - `fetch.rs`: leasing records (reading the log into the window, long polls);
//! - `settle.rs`: acks, nacks, rejects, lease extensions, lease expiry;
//! - `deadletter.rs`: writing to the dead-letter topic; `redrive.rs`: back again;
//!   `outbox.rs`: the records both append, batched, as a producer's are;
//! - `describe.rs`: what a group looks like, for the API and metrics;
//! - `service.rs`: the `brook.v1.Queues` gRPC service.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::time::Instant;

use brook_storage::FlushPolicy;
use tokio::sync::Notify;

use crate::error::{ApiError, ApiResult, Reason};
use crate::statelog::{StateLog, UpdateError, lock};

mod deadletter;
mod describe;
mod fetch;
mod outbox;
mod ranges;
mod redrive;
pub mod service;
mod settings;
mod settle;
mod share;
mod store;

pub use describe::{PartitionView, QueueView};
pub use fetch::Fetched;
pub use settings::QueueSettings;
pub use settle::{AckOutcome, Acknowledgement, SWEEP_PERIOD, Settled};
pub use share::{DELAY_HEADER, DELIVER_AT_HEADER};
use store::{Entry, Op, QueueState};

/// Where a new queue group starts reading its topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueStart {
    /// At the end: records published from now on.
    Latest,
    /// At the start of what the topic still has.
    Earliest,
}

/// What a queue group has that is not durable: waiters, consumers seen,
/// counters since the broker started.
#[derive(Default)]
pub(crate) struct Runtime {
    /// Wakes waiting fetches: records released, leases expired.
    notify: Notify,
    /// Consumers by id, with their last fetch.
    consumers: std::sync::Mutex<HashMap<Arc<str>, Instant>>,
    /// One read of the log into the window at a time.
    fill: tokio::sync::Mutex<()>,
    /// One redrive at a time, so that two cannot copy the same record.
    redrive: tokio::sync::Mutex<()>,
    /// Where the next fetch starts among the partitions, so that
    /// consumers spread over them.
    rotate: AtomicU32,
    redeliveries: AtomicU64,
    dead_lettered: AtomicU64,
    lost: AtomicU64,
}

/// Consumers not seen for this long are no longer listed.
const CONSUMER_IDLE: std::time::Duration = std::time::Duration::from_secs(300);

/// Every queue group: the durable state and the runtime beside it.
pub struct Queues {
    store: StateLog<QueueState>,
    runtime: std::sync::Mutex<HashMap<String, Arc<Runtime>>>,
}

/// A queue group's name, topic and settings.
#[derive(Debug, Clone)]
pub struct QueueInfo {
    /// The topic it reads.
    pub topic: String,
    /// Its settings.
    pub settings: QueueSettings,
}

fn not_found(group: &str) -> ApiError {
    ApiError::new(
        Reason::QueueNotFound,
        format!("no queue group named {group:?}"),
    )
    .with("group", group)
}

/// A failed write of the queues log.
fn io(e: anyhow::Error) -> ApiError {
    ApiError::internal(format!("writing the queues log: {e:#}"))
}

fn update_error(e: UpdateError<ApiError>) -> ApiError {
    match e {
        UpdateError::Rejected(e) => e,
        UpdateError::Io(e) => io(e),
    }
}

impl Queues {
    /// Loads every queue group's state from `dir` (created if missing).
    pub fn open(dir: &Path, flush: FlushPolicy) -> anyhow::Result<Queues> {
        let store = StateLog::open(dir.join(store::NAME), flush, QueueState::default(), |_| {
            Ok(false)
        })?;
        Ok(Queues {
            store,
            runtime: std::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The runtime of `group` (created on first use).
    pub(crate) fn runtime(&self, group: &str) -> Arc<Runtime> {
        Arc::clone(lock(&self.runtime).entry(group.to_string()).or_default())
    }

    /// A group's topic and settings.
    pub fn info(&self, group: &str) -> ApiResult<QueueInfo> {
        self.store.with(|m| {
            m.groups
                .get(group)
                .map(|g| QueueInfo {
                    topic: g.topic.clone(),
                    settings: g.settings.clone(),
                })
                .ok_or_else(|| not_found(group))
        })
    }

    /// Names of every queue group.
    pub fn names(&self) -> Vec<String> {
        self.store.with(|m| m.groups.keys().cloned().collect())
    }

    /// Creates `group` on `topic`, starting at `start_offsets` (per
    /// partition; empty: at offset 0). Creating it again with the same topic
    /// and settings is not an error (a retry); with others it is.
    pub fn create(
        &self,
        group: &str,
        topic: &str,
        settings: QueueSettings,
        start_offsets: &[(u32, u64)],
    ) -> ApiResult<QueueInfo> {
        settings.validate(topic)?;
        let now = brook_storage::now_ms();
        self.store
            .update(|m| {
                if let Some(g) = m.groups.get(group) {
                    if g.topic == topic && g.settings == settings {
                        return Ok((Vec::new(), ()));
                    }
                    return Err(ApiError::new(
                        Reason::QueueAlreadyExists,
                        format!(
                            "queue group {group:?} exists already, on topic {:?} with other settings",
                            g.topic
                        ),
                    )
                    .with("group", group));
                }
                let mut entries = vec![Entry {
                    group: group.to_string(),
                    op: Some(Op::Config(store::config_entry(topic, &settings, now))),
                }];
                entries.extend(start_offsets.iter().filter(|(_, o)| *o > 0).map(|&(p, to)| {
                    Entry {
                        group: group.to_string(),
                        op: Some(Op::Skip(store::SkipEntry { partition: p, to })),
                    }
                }));
                Ok((entries, ()))
            })
            .map_err(update_error)?;
        tracing::info!(group, topic, "created queue group");
        Ok(QueueInfo {
            topic: topic.to_string(),
            settings,
        })
    }

    /// Changes a group's settings with `change`.
    pub fn alter(
        &self,
        group: &str,
        change: impl FnOnce(&mut QueueSettings),
    ) -> ApiResult<QueueInfo> {
        let (info, _) = self
            .store
            .update(|m| {
                let g = m.groups.get(group).ok_or_else(|| not_found(group))?;
                let mut settings = g.settings.clone();
                change(&mut settings);
                settings.validate(&g.topic)?;
                let entry = Entry {
                    group: group.to_string(),
                    op: Some(Op::Config(store::config_entry(
                        &g.topic,
                        &settings,
                        g.created_ms,
                    ))),
                };
                let info = QueueInfo {
                    topic: g.topic.clone(),
                    settings,
                };
                Ok((vec![entry], info))
            })
            .map_err(update_error)?;
        self.runtime(group).notify.notify_waiters();
        Ok(info)
    }

    /// Deletes a group's state; returns once that is on disk.
    pub fn delete(&self, group: &str) -> ApiResult<()> {
        let (_, at) = self
            .store
            .update(|m| {
                m.groups.get(group).ok_or_else(|| not_found(group))?;
                Ok((
                    vec![Entry {
                        group: group.to_string(),
                        op: Some(Op::Delete(true)),
                    }],
                    (),
                ))
            })
            .map_err(update_error)?;
        if let Some(rt) = lock(&self.runtime).remove(group) {
            rt.notify.notify_waiters();
        }
        self.store.sync(at).map_err(io)
    }

    /// Notes that `consumer` fetched from `group` now.
    fn seen(&self, rt: &Runtime, consumer: &Arc<str>) {
        let mut c = lock(&rt.consumers);
        c.insert(Arc::clone(consumer), Instant::now());
        if c.len() > 64 {
            c.retain(|_, at| at.elapsed() < CONSUMER_IDLE);
        }
    }

    /// Returns once the queues log is on disk up to `at`, or everything
    /// appended with `None` (synced on a blocking thread; concurrent callers
    /// share one `fdatasync`).
    pub(crate) async fn sync(
        self: &Arc<Queues>,
        at: Option<crate::statelog::LogPosition>,
    ) -> ApiResult<()> {
        let queues = Arc::clone(self);
        tokio::task::spawn_blocking(move || match at {
            Some(at) => queues.store.sync(at),
            None => queues.store.sync_all(),
        })
        .await
        .map_err(|e| ApiError::internal(format!("sync task failed: {e}")))?
        .map_err(|e| ApiError::internal(format!("syncing the queues log: {e:#}")))
    }

    /// Whether settlements must be on disk before they are answered (the
    /// broker's flush policy is `always`).
    pub(crate) fn settlements_need_sync(&self) -> bool {
        self.store.needs_sync(false)
    }

    /// The background work of the queues log (sync, rewrite).
    pub fn maintain(&self) -> anyhow::Result<()> {
        self.store.maintain()
    }

    /// How often [`Queues::maintain`] should run.
    pub fn maintenance_period(&self) -> std::time::Duration {
        self.store.maintenance_period()
    }

    /// Everything appended, to disk (a clean stop).
    pub fn sync_all(&self) -> anyhow::Result<()> {
        self.store.sync_all()
    }

    /// The durable state, one line per item (see the fuzz target `queues_log`).
    #[doc(hidden)]
    pub fn durable_lines(&self) -> Vec<String> {
        self.store.with(|m| m.durable_lines())
    }

    /// Writes the log out whole now (see the fuzz target `queues_log`).
    #[doc(hidden)]
    pub fn rewrite_now(&self) -> anyhow::Result<()> {
        self.store.rewrite()
    }

    /// Syncs, rewrites and size of the queues log.
    pub fn log_stats(&self) -> crate::statelog::LogStats {
        self.store.stats()
    }
}

/// A stored batch that does not decode.
fn corrupt(e: impl std::fmt::Display) -> ApiError {
    ApiError::new(
        Reason::CorruptStorage,
        format!("a stored batch failed to decode: {e}"),
    )
}

/// Counts in a runtime counter.
fn bump(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}
