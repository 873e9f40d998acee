//! The consumer: a consumer-group member (or a reader of given partitions)
//! that fetches ahead on every partition it owns and hands records out one
//! at a time, committing what was processed.
//!
//! Processed means: a record counts as processed when the next one is asked
//! for (or on [`Consumer::commit`]). Commits, automatic or manual, and the
//! commit made before a revoked partition is given up, cover processed
//! records only, so a crash replays at most the record in hand: at-least-once.
//!
//! One concept per file, as in the producer; [`Consumer`]'s methods sit
//! beside the concept they belong to:
//! - `membership`: the group session (join, heartbeats, revocations,
//!   assignments, rejoin) and what it assigned;
//! - `fetcher`: one fetch task per owned partition, and handing the records
//!   out in order (positions, seek, pause);
//! - `commit`: writing processed positions to the broker, on a timer or on
//!   request.

mod commit;
pub(crate) mod fetcher;
mod membership;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::client::Client;
use crate::error::{Error, Result};
use commit::{auto_commit_assigned, commit_positions};
pub(crate) use fetcher::retry_quietly;
use fetcher::{Fetched, start_fetchers, stop_all_fetchers};
use membership::{join, membership};

/// Where a partition without a committed offset starts (Kafka's `auto.offset.reset`).
///
/// ```no_run
/// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
/// use brook_client::{ConsumerConfig, StartFrom};
/// // A new group that only notifies about orders placed from now on.
/// let config = ConsumerConfig {
///     start_from: StartFrom::Latest,
///     ..ConsumerConfig::new("notifications", &["orders"])
/// };
/// let mut notifications = client.consumer(config).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StartFrom {
    /// The first stored record.
    #[default]
    Earliest,
    /// Records appended from now on.
    Latest,
}

/// Called with the partitions a rebalance takes away, before they are committed and released.
///
/// ```no_run
/// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
/// use std::sync::Arc;
/// use brook_client::{ConsumerConfig, RevokeCallback};
/// // Runs on the consumer's session task: keep it short and non-blocking.
/// let on_revoke: RevokeCallback = Arc::new(|lost: &[(String, u32)]| {
///     println!("billing hands {lost:?} to other members");
/// });
/// let config = ConsumerConfig {
///     on_revoke: Some(on_revoke),
///     ..ConsumerConfig::new("billing", &["orders"])
/// };
/// let mut billing = client.consumer(config).await?;
/// # Ok(()) }
/// ```
pub type RevokeCallback = Arc<dyn Fn(&[(String, u32)]) + Send + Sync>;

/// Consumer settings.
///
/// ```no_run
/// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
/// use brook_client::ConsumerConfig;
/// let config = ConsumerConfig {
///     client_id: "billing-service".into(), // shown by describe_group
///     auto_commit: None,                   // commit after each invoice instead
///     ..ConsumerConfig::new("billing", &["orders"])
/// };
/// let mut billing = client.consumer(config).await?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct ConsumerConfig {
    /// The consumer group (commits and lag are per group).
    pub group: String,
    /// Topics to consume.
    pub topics: Vec<String>,
    /// Shown by DescribeGroup.
    pub client_id: String,
    /// The broker removes the member after this long without a heartbeat.
    pub session_timeout: Duration,
    /// Commit processed offsets this often; `None` commits only on
    /// [`Consumer::commit`] and before giving a partition up.
    pub auto_commit: Option<Duration>,
    /// Where partitions without a committed offset start.
    pub start_from: StartFrom,
    /// Batch bytes per fetch.
    pub fetch_max_bytes: u32,
    /// Long-poll wait of each fetch.
    pub fetch_max_wait: Duration,
    /// Called on every revocation.
    pub on_revoke: Option<RevokeCallback>,
    /// Ask the broker to have each commit on disk before it answers (one
    /// `fdatasync`, shared with concurrent commits). Off: a commit is
    /// answered once the broker has it in its offsets log, which survives
    /// a broker crash and reaches the disk within the broker's flush
    /// interval (docs/broker.md, "Commits").
    pub durable_commits: bool,
}

impl ConsumerConfig {
    /// Settings for `group` consuming `topics`, defaults otherwise.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// use std::time::Duration;
    /// use brook_client::ConsumerConfig;
    /// let config = ConsumerConfig::new("inventory", &["orders", "returns"]);
    /// assert_eq!(config.auto_commit, Some(Duration::from_secs(5))); // commits every 5 s
    /// let mut inventory = client.consumer(config).await?;
    /// # Ok(()) }
    /// ```
    pub fn new(group: impl Into<String>, topics: &[&str]) -> Self {
        ConsumerConfig {
            group: group.into(),
            topics: topics.iter().map(|t| t.to_string()).collect(),
            client_id: "brook-client".into(),
            session_timeout: Duration::from_secs(10),
            auto_commit: Some(Duration::from_secs(5)),
            start_from: StartFrom::Earliest,
            fetch_max_bytes: 4 << 20,
            fetch_max_wait: Duration::from_millis(500),
            on_revoke: None,
            durable_commits: false,
        }
    }
}

/// A record as a consumer sees it. Key and value are zero-copy views of the fetched batch.
///
/// ```no_run
/// # async fn demo(mut billing: brook_client::Consumer) -> brook_client::Result<()> {
/// let order = billing.recv().await?;
/// let key = String::from_utf8_lossy(order.key.as_deref().unwrap_or_default());
/// let event_type = order.headers.iter().find(|(name, _)| name == "type").map(|(_, v)| v);
/// println!("{}/{} offset {}: {key} {event_type:?}", order.topic, order.partition, order.offset);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic (shared by every record of a fetch: no allocation per record).
    pub topic: Arc<str>,
    /// Partition.
    pub partition: u32,
    /// Offset in the partition.
    pub offset: u64,
    /// Milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// Key, if any.
    pub key: Option<Bytes>,
    /// Value, if any.
    pub value: Option<Bytes>,
    /// Headers.
    pub headers: Vec<(String, Bytes)>,
}

/// A topic partition; the topic is shared so that tracking a record's
/// partition never allocates.
type Tp = (Arc<str>, u32);

#[derive(Default)]
struct State {
    member_id: String,
    generation: u64,
    /// Bumped whenever a partition is revoked or sought, so batches fetched before are dropped.
    epochs: HashMap<Tp, u64>,
    /// Next offset to commit per partition: everything before it was processed.
    positions: HashMap<Tp, u64>,
    /// Next offset `recv` hands out per partition (Kafka's `position`):
    /// where its fetcher starts, then one past each record handed out.
    next: HashMap<Tp, u64>,
    /// Per partition, the log end its fetcher last found it caught up at (a
    /// fetch there had nothing); cleared when a fetch brings records.
    caught_up_at: HashMap<Tp, u64>,
    fetchers: HashMap<Tp, JoinHandle<()>>,
    paused: BTreeSet<Tp>,
}

struct Shared {
    client: Client,
    config: ConsumerConfig,
    state: Mutex<State>,
    records: mpsc::Sender<Fetched>,
    /// Bumped whenever an epoch changes, so `recv` re-checks its queued
    /// records only then instead of taking the lock for every record.
    revision: std::sync::atomic::AtomicU64,
    /// Held from reading the positions until the broker answered: two
    /// commits in flight at once (auto-commit and `commit()`) could land in
    /// the other order and move the committed offset backwards.
    committing: tokio::sync::Mutex<()>,
    /// A background commit ([`Consumer::commit_async`]) is waiting to run:
    /// it will commit the positions of when it runs, so another is not needed.
    commit_queued: std::sync::atomic::AtomicBool,
}

/// A consumer-group member. Records come out of [`Consumer::recv`] (or the
/// [`Consumer::into_stream`] stream) in offset order per partition.
///
/// ```no_run
/// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
/// use brook_client::ConsumerConfig;
/// let mut billing = client.consumer(ConsumerConfig::new("billing", &["orders"])).await?;
/// while let Ok(order) = billing.recv().await {
///     println!("{}/{}: {:?}", order.partition, order.offset, order.value);
/// }
/// # Ok(()) }
/// ```
pub struct Consumer {
    shared: Arc<Shared>,
    records: mpsc::Receiver<Fetched>,
    /// Records fetched, not handed out yet: each with its partition's
    /// epoch and the position after it (its offset + 1, or the end of its
    /// batch for a batch's last record: a batch stored with gaps ends
    /// past its last record).
    current: VecDeque<(ConsumerRecord, u64, u64)>,
    /// The record handed out last: its partition, the position after it
    /// and the epoch.
    last: Option<(Tp, u64, u64)>,
    checked_revision: u64,
    /// The membership (or assigned auto-commit) task, whose result is the
    /// final commit's, and its stop signal.
    session: Option<Background>,
    /// A group member (not a consumer of given partitions).
    member: bool,
    /// The last background commit started ([`Consumer::commit_async`]):
    /// they run in the order started, so `close` waits for this one.
    background_commit: Option<JoinHandle<()>>,
}

impl Client {
    /// Joins `config.group` and starts consuming what the group assigns.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// use brook_client::ConsumerConfig;
    /// let mut billing = client.consumer(ConsumerConfig::new("billing", &["orders"])).await?;
    /// // Waits until the group assigned partitions and one of them has a record.
    /// let order = billing.recv().await?;
    /// # Ok(()) }
    /// ```
    pub async fn consumer(&self, config: ConsumerConfig) -> Result<Consumer> {
        let (shared, rx) = Shared::new(self.clone(), config);
        let (events, requests) = join(&shared).await?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(membership(Arc::clone(&shared), events, requests, stop_rx));
        Ok(Consumer::new(shared, rx, Some((task, stop_tx)), true))
    }

    /// Reads the given partitions of `topic` without joining the group's
    /// membership (Kafka's `assign()`): starts at the group's committed
    /// offsets (or `config.start_from`), and commits as a standalone consumer
    /// (every `config.auto_commit`, on `commit()` and on `close()`); such
    /// commits are refused (FAILED_PRECONDITION) while the group has members.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// use brook_client::ConsumerConfig;
    /// // Re-read partition 3 only, under a group of its own (a standalone commit
    /// // fails with FAILED_PRECONDITION while the group has members).
    /// let config = ConsumerConfig::new("billing-audit", &["orders"]);
    /// let mut audit = client.consumer_assigned(config, "orders", &[3]).await?;
    /// let order = audit.recv().await?;
    /// audit.close().await?; // commits: the next run starts after `order`
    /// # Ok(()) }
    /// ```
    pub async fn consumer_assigned(
        &self,
        config: ConsumerConfig,
        topic: &str,
        partitions: &[u32],
    ) -> Result<Consumer> {
        let (shared, rx) = Shared::new(self.clone(), config);
        let tps: Vec<Tp> = partitions.iter().map(|&p| (Arc::from(topic), p)).collect();
        start_fetchers(&shared, &tps, None).await?;
        let session = shared.config.auto_commit.map(|every| {
            let (stop_tx, stop_rx) = oneshot::channel();
            let task = tokio::spawn(auto_commit_assigned(Arc::clone(&shared), every, stop_rx));
            (task, stop_tx)
        });
        Ok(Consumer::new(shared, rx, session, false))
    }
}

/// A consumer's background task (membership or auto-commit) and its stop signal.
type Background = (JoinHandle<Result<()>>, oneshot::Sender<()>);

impl Shared {
    /// The state both kinds of consumer share, and the receiving end of
    /// the fetchers' channel.
    fn new(client: Client, config: ConsumerConfig) -> (Arc<Shared>, mpsc::Receiver<Fetched>) {
        let (tx, rx) = mpsc::channel(8);
        let shared = Arc::new(Shared {
            client,
            config,
            state: Mutex::default(),
            records: tx,
            revision: Default::default(),
            committing: Default::default(),
            commit_queued: Default::default(),
        });
        (shared, rx)
    }
}

impl Consumer {
    /// A consumer over `shared`: a group member (`member`) with its
    /// membership task, or a reader of assigned partitions with its
    /// auto-commit task, if any.
    fn new(
        shared: Arc<Shared>,
        records: mpsc::Receiver<Fetched>,
        session: Option<Background>,
        member: bool,
    ) -> Consumer {
        Consumer {
            shared,
            records,
            current: VecDeque::new(),
            last: None,
            checked_revision: 0,
            session,
            member,
            background_commit: None,
        }
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

impl Consumer {
    /// Commits what was processed and leaves the group; fails with the final
    /// commit's error if that commit was refused.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// use brook_client::ConsumerConfig;
    /// let mut billing = client.consumer(ConsumerConfig::new("billing", &["orders"])).await?;
    /// let order = billing.recv().await?;
    /// // Commits up to and including `order`; the group rebalances its partitions to the others.
    /// billing.close().await?;
    /// # Ok(()) }
    /// ```
    pub async fn close(mut self) -> Result<()> {
        self.mark_processed();
        // Before leaving: a background commit after the leave would be refused.
        if let Some(last) = self.background_commit.take() {
            let _ = last.await;
        }
        match self.session.take() {
            Some((task, stop)) => {
                let _ = stop.send(());
                task.await.map_err(|_| Error::Closed)?
            }
            None => {
                let r = commit_positions(&self.shared, None).await;
                stop_all_fetchers(&self.shared);
                r
            }
        }
    }

    /// The records as a `Stream`.
    ///
    /// ```no_run
    /// # async fn demo(billing: brook_client::Consumer) -> brook_client::Result<()> {
    /// use futures_util::StreamExt;
    /// let orders = billing.into_stream();
    /// let mut orders = std::pin::pin!(orders); // the stream is not `Unpin`
    /// while let Some(order) = orders.next().await {
    ///     let order = order?; // an Err item: why the consumer could not go on
    ///     println!("{}/{}", order.partition, order.offset);
    /// }
    /// # Ok(()) }
    /// ```
    pub fn into_stream(self) -> impl Stream<Item = Result<ConsumerRecord>> {
        futures_util::stream::unfold(self, |mut c| async move {
            match c.recv().await {
                Err(Error::Closed) => None,
                r => Some((r, c)),
            }
        })
    }
}

impl Drop for Consumer {
    fn drop(&mut self) {
        stop_all_fetchers(&self.shared);
        if let Some((task, _)) = self.session.take() {
            task.abort();
        }
    }
}
