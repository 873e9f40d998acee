//! The consumer: a consumer-group member (or a reader of given partitions)
//! that fetches ahead on every partition it owns and hands records out one
//! at a time, committing what was processed.
//!
//! Processed means: a record counts as processed when the next one is asked
//! for (or on [`Consumer::commit`]). Commits, automatic or manual, and the
//! commit made before a revoked partition is given up, cover processed
//! records only, so a crash replays at most the record in hand: at-least-once.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brook_protocol::batch::batches;
use brook_protocol::v1::{self, member_event::Event};
use bytes::Bytes;
use futures_util::Stream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::ReceiverStream;

use crate::client::Client;
use crate::error::{Error, Result};

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

/// Fetched batches of one partition, tagged with the epoch they were fetched under.
struct Fetched {
    tp: Tp,
    epoch: u64,
    from: u64,
    batches: Bytes,
    /// Instead of records: the broker answered that the next ones are damaged.
    damaged: Option<Error>,
}

#[derive(Default)]
struct State {
    member_id: String,
    generation: u64,
    /// Bumped whenever a partition is revoked or sought, so batches fetched before are dropped.
    epochs: HashMap<Tp, u64>,
    /// Next offset to commit per partition: everything before it was processed.
    positions: HashMap<Tp, u64>,
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
    current: VecDeque<(ConsumerRecord, u64)>,
    last: Option<(Tp, u64, u64)>,
    checked_revision: u64,
    /// The membership (or assigned auto-commit) task, whose result is the
    /// final commit's, and its stop signal.
    session: Option<(JoinHandle<Result<()>>, oneshot::Sender<()>)>,
    /// A group member (not a consumer of given partitions).
    member: bool,
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
        let (tx, rx) = mpsc::channel(8);
        let shared = Arc::new(Shared {
            client: self.clone(),
            config,
            state: Mutex::default(),
            records: tx,
            revision: Default::default(),
            committing: Default::default(),
        });
        let (events, requests) = join(&shared).await?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(membership(Arc::clone(&shared), events, requests, stop_rx));
        Ok(Consumer {
            shared,
            records: rx,
            current: VecDeque::new(),
            last: None,
            checked_revision: 0,
            session: Some((task, stop_tx)),
            member: true,
        })
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
        let (tx, rx) = mpsc::channel(8);
        let shared = Arc::new(Shared {
            client: self.clone(),
            config,
            state: Mutex::default(),
            records: tx,
            revision: Default::default(),
            committing: Default::default(),
        });
        let tps: Vec<Tp> = partitions.iter().map(|&p| (Arc::from(topic), p)).collect();
        start_fetchers(&shared, &tps, None).await?;
        let session = shared.config.auto_commit.map(|every| {
            let (stop_tx, stop_rx) = oneshot::channel();
            let task = tokio::spawn(auto_commit_assigned(Arc::clone(&shared), every, stop_rx));
            (task, stop_tx)
        });
        Ok(Consumer {
            shared,
            records: rx,
            current: VecDeque::new(),
            last: None,
            checked_revision: 0,
            session,
            member: false,
        })
    }
}

fn lock(shared: &Shared) -> std::sync::MutexGuard<'_, State> {
    shared.state.lock().unwrap_or_else(|e| e.into_inner())
}

type Session = (
    tonic::Streaming<v1::MemberEvent>,
    mpsc::Sender<v1::JoinMessage>,
);

async fn join(shared: &Arc<Shared>) -> Result<Session> {
    let c = &shared.config;
    let (requests, rx) = mpsc::channel(16);
    let join = v1::JoinGroup {
        group: c.group.clone(),
        topics: c.topics.clone(),
        client_id: c.client_id.clone(),
        session_timeout_ms: c.session_timeout.as_millis() as u32,
        strategy: 0,
    };
    let _ = requests
        .send(v1::JoinMessage {
            message: Some(v1::join_message::Message::Join(join)),
        })
        .await;
    let events = shared
        .client
        .groups()
        .join(ReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok((events, requests))
}

/// Starts fetching `tps` with backoff until it works, or until a newer
/// generation took over (its own Assignment starts what it still owns).
async fn retry_start(shared: Arc<Shared>, tps: Vec<Tp>, generation: u64) {
    // A partition revoked meanwhile bumps its epoch: it is then left alone.
    let epochs: Vec<u64> = {
        let st = lock(&shared);
        tps.iter()
            .map(|tp| st.epochs.get(tp).copied().unwrap_or(0))
            .collect()
    };
    let mut delay = Duration::from_millis(100);
    loop {
        tokio::time::sleep(delay).await;
        if lock(&shared).generation != generation {
            return;
        }
        match start_fetchers(&shared, &tps, Some(&epochs)).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "starting fetchers failed; retrying");
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Auto-commit of a consumer of given partitions (no membership): every
/// `every`, and once more when stopped, whose result `close` returns.
async fn auto_commit_assigned(
    shared: Arc<Shared>,
    every: Duration,
    mut stop: oneshot::Receiver<()>,
) -> Result<()> {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = commit_positions(&shared, None).await {
                    tracing::debug!(error = %e, "auto-commit failed");
                }
            }
            _ = &mut stop => {
                let committed = commit_positions(&shared, None).await;
                stop_all_fetchers(&shared);
                return committed;
            }
        }
    }
}

/// Drives the membership session: heartbeats, revocations, assignments, auto-commit.
async fn membership(
    shared: Arc<Shared>,
    mut events: tonic::Streaming<v1::MemberEvent>,
    mut requests: mpsc::Sender<v1::JoinMessage>,
    mut stop: oneshot::Receiver<()>,
) -> Result<()> {
    let mut heartbeat = tokio::time::interval(shared.config.session_timeout / 3);
    let auto = shared
        .config
        .auto_commit
        .unwrap_or(Duration::from_secs(3600 * 24 * 365));
    let mut auto_commit = tokio::time::interval(auto);
    auto_commit.tick().await;
    loop {
        tokio::select! {
            ev = events.message() => match ev.ok().flatten().and_then(|e| e.event) {
                Some(Event::Joined(j)) => lock(&shared).member_id = j.member_id,
                Some(Event::Revoke(r)) => {
                    let tps: Vec<Tp> = r.partitions.iter().flat_map(|t| t.partitions.iter().map(|p| (Arc::from(t.topic.as_str()), *p))).collect();
                    stop_fetchers(&shared, &tps);
                    if let Some(cb) = &shared.config.on_revoke {
                        let named: Vec<(String, u32)> = tps.iter().map(|(t, p)| (t.to_string(), *p)).collect();
                        cb(&named);
                    }
                    if let Err(e) = commit_positions(&shared, Some(&tps)).await {
                        tracing::warn!(error = %e, "commit before revocation failed");
                    }
                    // Forget them: a later commit must never write offsets for
                    // partitions another member now owns.
                    lock(&shared).positions.retain(|tp, _| !tps.contains(tp));
                    let done = v1::join_message::Message::RevokeDone(v1::RevokeDone { generation: r.generation });
                    let _ = requests.send(v1::JoinMessage { message: Some(done) }).await;
                }
                Some(Event::Assignment(a)) => {
                    lock(&shared).generation = a.generation;
                    let tps: Vec<Tp> = a.partitions.iter().flat_map(|t| t.partitions.iter().map(|p| (Arc::from(t.topic.as_str()), *p))).collect();
                    let new: Vec<Tp> = {
                        let mut st = lock(&shared);
                        // Only what this member owns now may be committed.
                        st.positions.retain(|tp, _| tps.contains(tp));
                        tps.into_iter().filter(|tp| !st.fetchers.contains_key(tp)).collect()
                    };
                    if let Err(e) = start_fetchers(&shared, &new, None).await {
                        // Keep trying in the background, or these partitions
                        // would stay assigned here and never be read.
                        tracing::warn!(error = %e, "starting fetchers failed; retrying");
                        tokio::spawn(retry_start(Arc::clone(&shared), new, a.generation));
                    }
                }
                None => {
                    // The broker restarted, or removed this member (session
                    // timeout): its partitions may be someone else's now.
                    tracing::warn!(group = %shared.config.group, "group session ended; rejoining");
                    stop_all_fetchers(&shared);
                    // Processed but uncommitted records come again (at-least-once).
                    lock(&shared).positions.clear();
                    match rejoin(&shared, &mut stop).await {
                        Some((e, r)) => (events, requests) = (e, r),
                        // Closed while rejoining: nothing is left to commit.
                        None => return Ok(()),
                    }
                }
            },
            _ = heartbeat.tick() => {
                let _ = requests.send(v1::JoinMessage { message: Some(v1::join_message::Message::Heartbeat(v1::Heartbeat {})) }).await;
            }
            _ = auto_commit.tick(), if shared.config.auto_commit.is_some() => {
                if let Err(e) = commit_positions(&shared, None).await {
                    tracing::debug!(error = %e, "auto-commit failed");
                }
            }
            _ = &mut stop => {
                // A rebalance may have moved the generation on with its
                // Assignment still unread: apply pending events and commit again.
                let mut committed = Ok(());
                for _ in 0..20 {
                    committed = commit_positions(&shared, None).await;
                    match &committed {
                        Err(e) if e.code() == Some(tonic::Code::FailedPrecondition) => {}
                        _ => break,
                    }
                    let pending = tokio::time::timeout(Duration::from_millis(100), events.message()).await;
                    match pending.ok().and_then(|r| r.ok()).flatten().and_then(|e| e.event) {
                        Some(Event::Assignment(a)) => lock(&shared).generation = a.generation,
                        Some(Event::Revoke(r)) => {
                            let done = v1::join_message::Message::RevokeDone(v1::RevokeDone { generation: r.generation });
                            let _ = requests.send(v1::JoinMessage { message: Some(done) }).await;
                        }
                        _ => {}
                    }
                }
                stop_all_fetchers(&shared);
                return committed; // dropping the request stream leaves the group
            }
        }
    }
}

/// Joins again, with backoff, until it works (`None` if the consumer is
/// closed meanwhile).
async fn rejoin(shared: &Arc<Shared>, stop: &mut oneshot::Receiver<()>) -> Option<Session> {
    let mut delay = Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = &mut *stop => return None,
            () = tokio::time::sleep(delay) => {}
        }
        match join(shared).await {
            Ok(session) => return Some(session),
            Err(e) => {
                tracing::warn!(group = %shared.config.group, error = %e, "rejoining the group failed; retrying");
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

fn stop_all_fetchers(shared: &Shared) {
    let all: Vec<Tp> = lock(shared).fetchers.keys().cloned().collect();
    stop_fetchers(shared, &all);
}

fn stop_fetchers(shared: &Shared, tps: &[Tp]) {
    let mut st = lock(shared);
    for tp in tps {
        if let Some(f) = st.fetchers.remove(tp) {
            f.abort();
        }
        *st.epochs.entry(tp.clone()).or_default() += 1;
    }
    shared
        .revision
        .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
}

/// Starts fetching `tps` from their committed offsets (or `start_from`).
/// With `epochs`, only the partitions whose epoch is still the one given
/// (not revoked or sought meanwhile), checked under the same lock that
/// registers the fetcher.
async fn start_fetchers(shared: &Arc<Shared>, tps: &[Tp], epochs: Option<&[u64]>) -> Result<()> {
    if tps.is_empty() {
        return Ok(());
    }
    let committed = shared
        .client
        .admin()
        .committed(&shared.config.group, None)
        .await?;
    for (i, tp) in tps.iter().enumerate() {
        let start = committed
            .iter()
            .find(|c| *c.topic == *tp.0 && c.partition == tp.1)
            .map(|c| c.offset);
        spawn_fetcher(shared, tp.clone(), start, epochs.map(|e| e[i]));
    }
    Ok(())
}

fn spawn_fetcher(shared: &Arc<Shared>, tp: Tp, start: Option<u64>, expect_epoch: Option<u64>) {
    let mut st = lock(shared);
    let epoch = *st.epochs.entry(tp.clone()).or_default();
    if expect_epoch.is_some_and(|e| e != epoch) {
        return;
    }
    if let Some(s) = start {
        st.positions.insert(tp.clone(), s);
    }
    let task = tokio::spawn(fetch_loop(Arc::clone(shared), tp.clone(), epoch, start));
    if let Some(old) = st.fetchers.insert(tp, task) {
        old.abort();
    }
}

/// Fetches one partition ahead of the application, long-polling when caught up.
async fn fetch_loop(shared: Arc<Shared>, tp: Tp, epoch: u64, start: Option<u64>) {
    let mut rpc = shared.client.consumer_rpc();
    let c = &shared.config;
    let mut next = match start {
        Some(o) => o,
        None => match first_offset(&shared, &tp).await {
            Ok(o) => o,
            Err(e) => {
                tracing::warn!(topic = %tp.0, partition = tp.1, error = %e, "cannot find where to start");
                return;
            }
        },
    };
    loop {
        if lock(&shared).paused.contains(&tp) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let req = v1::FetchRequest {
            topic: tp.0.to_string(),
            partition: tp.1,
            offset: next,
            max_bytes: c.fetch_max_bytes,
            min_bytes: 1,
            max_wait_ms: c.fetch_max_wait.as_millis() as u32,
            decoded: false,
        };
        match rpc.fetch(req).await {
            Ok(r) => {
                let r = r.into_inner();
                if r.batches.is_empty() {
                    continue;
                }
                let from = next;
                next = r.next_offset;
                if shared
                    .records
                    .send(Fetched {
                        tp: tp.clone(),
                        epoch,
                        from,
                        batches: r.batches,
                        damaged: None,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(s) if Error::damaged(&s, &tp.0, tp.1).is_some() => {
                // Tell the application (recv returns the error) and ask again
                // now and then, until it seeks past the damage (a new fetcher).
                tracing::warn!(topic = %tp.0, partition = tp.1, message = s.message(), "damaged records on the broker");
                let notice = Fetched {
                    tp: tp.clone(),
                    epoch,
                    from: next,
                    batches: Bytes::new(),
                    damaged: Error::damaged(&s, &tp.0, tp.1),
                };
                if shared.records.send(notice).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(s) if s.code() == tonic::Code::OutOfRange => {
                tracing::warn!(topic = %tp.0, partition = tp.1, message = s.message(), "offset out of range; restarting from start_from");
                match first_offset(&shared, &tp).await {
                    Ok(o) => next = o,
                    Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
            Err(s) => {
                tracing::debug!(topic = %tp.0, partition = tp.1, message = s.message(), "fetch failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn first_offset(shared: &Shared, tp: &Tp) -> Result<u64> {
    let d = shared.client.admin().describe_topic(&tp.0).await?;
    let p = d
        .partitions
        .get(tp.1 as usize)
        .ok_or_else(|| Error::Protocol(format!("no partition {} in {}", tp.1, tp.0)))?;
    Ok(match shared.config.start_from {
        StartFrom::Earliest => p.log_start_offset,
        StartFrom::Latest => p.log_end_offset,
    })
}

/// Commits processed positions (of `only`, or of every partition).
async fn commit_positions(shared: &Shared, only: Option<&[Tp]>) -> Result<()> {
    let _one_at_a_time = shared.committing.lock().await;
    let (member_id, generation, offsets) = {
        let st = lock(shared);
        let offsets: Vec<v1::OffsetCommit> = st
            .positions
            .iter()
            .filter(|(tp, _)| only.is_none_or(|o| o.contains(tp)))
            .map(|((topic, partition), offset)| v1::OffsetCommit {
                topic: topic.to_string(),
                partition: *partition,
                offset: *offset,
                metadata: String::new(),
            })
            .collect();
        (st.member_id.clone(), st.generation, offsets)
    };
    if offsets.is_empty() {
        return Ok(());
    }
    let req = v1::CommitRequest {
        group: shared.config.group.clone(),
        member_id,
        generation,
        offsets,
    };
    shared
        .client
        .retry(|| async { shared.client.groups().commit(req.clone()).await })
        .await?;
    Ok(())
}

impl Consumer {
    /// The next record. Waits for one (a group member whose session ended,
    /// e.g. because the broker restarted, rejoins and goes on); fails on a
    /// batch it cannot decode, and with [`Error::Damaged`](crate::Error::Damaged)
    /// when the broker holds the next records of a partition only as damaged
    /// bytes (seek past them to go on: `Consumer::seek(topic, partition, end_offset)`).
    ///
    /// ```no_run
    /// # async fn demo(mut billing: brook_client::Consumer) -> brook_client::Result<()> {
    /// let order = billing.recv().await?;
    /// println!("orders/{} offset {}: {:?}", order.partition, order.offset, order.value);
    /// // Asking for the next record marks `order` processed: auto-commit may now commit it.
    /// let next = billing.recv().await?;
    /// # Ok(()) }
    /// ```
    pub async fn recv(&mut self) -> Result<ConsumerRecord> {
        self.mark_processed();
        loop {
            let revision = self
                .shared
                .revision
                .load(std::sync::atomic::Ordering::Acquire);
            if revision != self.checked_revision {
                // Something was revoked or sought: drop what was fetched before it.
                let st = lock(&self.shared);
                self.current.retain(|(rec, epoch)| {
                    st.epochs
                        .get(&(Arc::clone(&rec.topic), rec.partition))
                        .copied()
                        .unwrap_or(0)
                        == *epoch
                });
                drop(st);
                self.checked_revision = revision;
            }
            if let Some((rec, epoch)) = self.current.pop_front() {
                self.last = Some(((Arc::clone(&rec.topic), rec.partition), rec.offset, epoch));
                return Ok(rec);
            }
            let fetched = self.records.recv().await.ok_or(Error::Closed)?;
            // Batches fetched under an older epoch are stale as a whole.
            if lock(&self.shared)
                .epochs
                .get(&fetched.tp)
                .copied()
                .unwrap_or(0)
                == fetched.epoch
            {
                self.decode(fetched)?;
            }
        }
    }

    fn decode(&mut self, mut f: Fetched) -> Result<()> {
        if let Some(damaged) = f.damaged.take() {
            return Err(damaged);
        }
        let topic: Arc<str> = Arc::clone(&f.tp.0);
        for batch in batches(f.batches) {
            let batch = batch.map_err(|e| Error::Protocol(e.to_string()))?;
            for r in batch.records() {
                let r = r.map_err(|e| Error::Protocol(e.to_string()))?;
                if r.offset < f.from {
                    continue;
                }
                let rec = ConsumerRecord {
                    topic: Arc::clone(&topic),
                    partition: f.tp.1,
                    offset: r.offset,
                    timestamp_ms: r.timestamp,
                    key: r.key,
                    value: r.value,
                    headers: r.headers.into_iter().map(|h| (h.key, h.value)).collect(),
                };
                self.current.push_back((rec, f.epoch));
            }
        }
        Ok(())
    }

    /// The record handed out last is done: its successor is the position to commit.
    fn mark_processed(&mut self) {
        if let Some((tp, offset, epoch)) = self.last.take() {
            let mut st = lock(&self.shared);
            if st.epochs.get(&tp).copied().unwrap_or(0) == epoch {
                st.positions.insert(tp, offset + 1);
            }
        }
    }

    /// Commits every processed record (including the one in hand) and waits for the broker.
    ///
    /// During a rebalance the group's generation can move on before this
    /// consumer has applied its new assignment; the commit is then retried
    /// for up to two seconds once the new generation is known.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// use brook_client::ConsumerConfig;
    /// let config = ConsumerConfig { auto_commit: None, ..ConsumerConfig::new("billing", &["orders"]) };
    /// let mut billing = client.consumer(config).await?;
    /// while let Ok(order) = billing.recv().await {
    ///     // ... write the invoice for `order` ...
    ///     billing.commit().await?; // after a crash, billing resumes after `order`
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn commit(&mut self) -> Result<()> {
        self.mark_processed();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let generation = lock(&self.shared).generation;
            match commit_positions(&self.shared, None).await {
                Err(e) if e.code() == Some(tonic::Code::FailedPrecondition) && self.member => {
                    while lock(&self.shared).generation == generation {
                        if tokio::time::Instant::now() > deadline {
                            return Err(e);
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                other => return other,
            }
        }
    }

    /// Moves a partition this consumer owns to `offset`; records fetched before are dropped.
    ///
    /// ```no_run
    /// # async fn demo(mut billing: brook_client::Consumer) -> brook_client::Result<()> {
    /// // Re-read orders/2 from offset 1000 (commits now store 1000 for it too).
    /// billing.seek("orders", 2, 1000);
    /// let record = billing.recv().await?; // orders/2 gives 1000 next; other partitions go on
    /// # Ok(()) }
    /// ```
    pub fn seek(&mut self, topic: &str, partition: u32, offset: u64) {
        let tp: Tp = (Arc::from(topic), partition);
        stop_fetchers(&self.shared, std::slice::from_ref(&tp));
        spawn_fetcher(&self.shared, tp, Some(offset), None);
    }

    /// Moves a partition to the first record at or after `timestamp_ms` (or
    /// its end if every record is older), found through the broker's time index.
    ///
    /// ```no_run
    /// # async fn demo(mut billing: brook_client::Consumer) -> brook_client::Result<()> {
    /// # let now_ms: i64 = 0;
    /// // Re-process the last 10 minutes of orders/2.
    /// billing.seek_to_timestamp("orders", 2, now_ms - 600_000).await?;
    /// let record = billing.recv().await?;
    /// # Ok(()) }
    /// ```
    pub async fn seek_to_timestamp(
        &mut self,
        topic: &str,
        partition: u32,
        timestamp_ms: i64,
    ) -> Result<()> {
        // A dry-run reset answers exactly this question without changing anything.
        let admin = self.shared.client.admin();
        let r = admin
            .reset_offsets(
                &self.shared.config.group,
                topic,
                &[partition],
                crate::ResetTo::Timestamp(timestamp_ms),
                true,
                true,
            )
            .await?;
        let offset = r
            .changes
            .first()
            .map(|c| c.after)
            .ok_or_else(|| Error::Protocol("empty reset answer".into()))?;
        self.seek(topic, partition, offset);
        Ok(())
    }

    /// Stops fetching a partition (records already fetched still come out).
    ///
    /// ```no_run
    /// # async fn demo(billing: brook_client::Consumer) -> brook_client::Result<()> {
    /// // The warehouse behind orders/0 is offline: stop fetching its orders for now.
    /// billing.pause("orders", 0);
    /// // ... once it is back:
    /// billing.resume("orders", 0);
    /// # Ok(()) }
    /// ```
    pub fn pause(&self, topic: &str, partition: u32) {
        lock(&self.shared)
            .paused
            .insert((Arc::from(topic), partition));
    }

    /// Resumes a paused partition.
    ///
    /// ```no_run
    /// # async fn demo(mut billing: brook_client::Consumer) -> brook_client::Result<()> {
    /// billing.pause("orders", 0);
    /// let other = billing.recv().await?; // records of the other partitions keep coming
    /// billing.resume("orders", 0); // fetching orders/0 continues where it stopped
    /// # Ok(()) }
    /// ```
    pub fn resume(&self, topic: &str, partition: u32) {
        lock(&self.shared)
            .paused
            .remove(&(Arc::from(topic), partition));
    }

    /// Partitions this consumer fetches now.
    ///
    /// ```no_run
    /// # async fn demo(billing: brook_client::Consumer) -> brook_client::Result<()> {
    /// // Empty until the group assigned partitions; changes with every rebalance.
    /// for (topic, partition) in billing.assignment() {
    ///     println!("this billing member reads {topic}/{partition}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn assignment(&self) -> Vec<(String, u32)> {
        let mut v: Vec<(String, u32)> = lock(&self.shared)
            .fetchers
            .keys()
            .map(|(t, p)| (t.to_string(), *p))
            .collect();
        v.sort();
        v
    }

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
