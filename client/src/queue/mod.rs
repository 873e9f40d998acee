//! The queue consumer: one of any number of competing consumers of a queue
//! group (Kafka's share groups, KIP-932). Each message is leased to it;
//! it answers [`QueueMessage::ack`], [`QueueMessage::nack`],
//! [`QueueMessage::nack_after`] or [`QueueMessage::reject`]. Answers are
//! sent in batches by a background task, which also extends the leases of
//! messages still being processed; [`QueueConsumer::run`] processes
//! messages concurrently with a handler and answers by its result.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

use brook_protocol::v1;
use bytes::Bytes;
use tokio::sync::{mpsc, oneshot};

use crate::client::Client;
use crate::consumer::ConsumerRecord;
use crate::consumer::fetcher::retry_quietly;
use crate::error::{Error, Result};
use crate::producer::now_ms;

mod acker;
mod admin;
mod runner;

use acker::{Command, Held, Verdict};
pub use runner::Failure;

/// Settings of a [`QueueConsumer`].
#[derive(Debug, Clone)]
pub struct QueueConsumerConfig {
    /// The topic: a group that does not exist yet is created on it with
    /// the broker's defaults, starting at the end of the topic. `None`: the
    /// group must exist (see [`crate::Admin::create_queue`]).
    pub topic: Option<String>,
    /// This consumer's id; leases belong to it. Default: a new random one.
    pub consumer_id: Option<String>,
    /// Messages per fetch at most. Default 500.
    pub max_records: u32,
    /// How long a fetch waits for a message. Default 5 s.
    pub max_wait: Duration,
    /// Answers sent in one request at most. Default 500.
    pub ack_batch: usize,
    /// How long an answer waits for others to share its request. Default 5 ms.
    pub ack_interval: Duration,
    /// Extend a message's lease when it ends within this long, for as long
    /// as the message is neither answered nor dropped. Default: a third of
    /// the group's lease, set from the first fetch; `Some(Duration::ZERO)`
    /// never extends.
    pub extend_before: Option<Duration>,
}

impl Default for QueueConsumerConfig {
    fn default() -> Self {
        QueueConsumerConfig {
            topic: None,
            consumer_id: None,
            max_records: 500,
            max_wait: Duration::from_secs(5),
            ack_batch: 500,
            ack_interval: Duration::from_millis(5),
            extend_before: None,
        }
    }
}

/// A message leased to this consumer: the record (its fields read through
/// this message: `msg.value`, `msg.offset`, ...) and its delivery. Answer
/// it once; dropping it unanswered hands it back for another delivery at
/// once, not counted as a failure.
#[derive(Debug)]
pub struct QueueMessage {
    /// The record, as a group consumer would receive it.
    pub record: ConsumerRecord,
    /// 1 on the first delivery.
    pub delivery_count: u32,
    /// When the lease ends unless extended (ms since the epoch).
    pub lease_until_ms: i64,
    answers: Option<mpsc::UnboundedSender<Command>>,
}

impl std::ops::Deref for QueueMessage {
    type Target = ConsumerRecord;

    fn deref(&self) -> &ConsumerRecord {
        &self.record
    }
}

impl QueueMessage {
    /// The value of the first header named `key`.
    pub fn header(&self, key: &str) -> Option<&Bytes> {
        self.headers.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    fn answer(mut self, verdict: Verdict) {
        if let Some(tx) = self.answers.take() {
            let _ = tx.send(Command::Settle((self.partition, self.offset), verdict));
        }
    }

    /// Done: never delivered again.
    ///
    /// ```no_run
    /// # async fn demo(mut inventory: brook_client::QueueConsumer) -> brook_client::Result<()> {
    /// let msg = inventory.recv().await?;
    /// // ... reserve the items ...
    /// msg.ack();
    /// # Ok(()) }
    /// ```
    pub fn ack(self) {
        self.answer(Verdict::Ack);
    }

    /// Failed: delivered again after the group's backoff, or dead-lettered
    /// if this was its last delivery.
    pub fn nack(self, reason: impl Into<String>) {
        self.answer(Verdict::Nack {
            reason: reason.into(),
            delay: None,
        });
    }

    /// Failed: delivered again after `delay` (instead of the group's backoff).
    pub fn nack_after(self, delay: Duration, reason: impl Into<String>) {
        self.answer(Verdict::Nack {
            reason: reason.into(),
            delay: Some(delay),
        });
    }

    /// Poison: straight to the group's dead-letter topic.
    ///
    /// ```no_run
    /// # async fn demo(mut inventory: brook_client::QueueConsumer) -> brook_client::Result<()> {
    /// let msg = inventory.recv().await?;
    /// if msg.value.as_deref().map_or(true, |v| !v.starts_with(b"{")) {
    ///     msg.reject("not JSON");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn reject(self, reason: impl Into<String>) {
        self.answer(Verdict::Reject {
            reason: reason.into(),
        });
    }

    /// Not processed: delivered again at once, not counted as a failure.
    pub fn release(self) {
        self.answer(Verdict::Release);
    }
}

impl Drop for QueueMessage {
    fn drop(&mut self) {
        if let Some(tx) = self.answers.take() {
            let _ = tx.send(Command::Settle(
                (self.partition, self.offset),
                Verdict::Release,
            ));
        }
    }
}

/// Waits for a [`QueueConsumer`]'s answers to reach the broker (see
/// [`QueueConsumer::flusher`]).
#[derive(Clone, Debug)]
pub struct Flusher {
    answers: mpsc::UnboundedSender<Command>,
}

impl Flusher {
    /// Returns once every answer given before the call has reached the broker.
    pub async fn flush(&self) -> Result<()> {
        let stopped = || Error::Protocol("the queue consumer's acknowledger stopped".into());
        let (tx, rx) = oneshot::channel();
        self.answers
            .send(Command::Flush(tx))
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }
}

/// A fetch's answer, with when it was asked (ms since the epoch).
type FetchAnswer = (
    i64,
    std::result::Result<tonic::Response<v1::FetchQueueResponse>, tonic::Status>,
);

/// One competing consumer of a queue group.
///
/// ```no_run
/// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
/// use brook_client::QueueConsumerConfig;
/// let config = QueueConsumerConfig { topic: Some("orders".into()), ..Default::default() };
/// let mut inventory = client.queue_consumer("inventory", config);
/// loop {
///     let msg = inventory.recv().await?;
///     match msg.value.as_deref() {
///         Some(v) if v.starts_with(b"{") => msg.ack(),
///         _ => msg.reject("malformed order"),
///     }
/// }
/// # }
/// ```
pub struct QueueConsumer {
    client: Client,
    group: String,
    config: QueueConsumerConfig,
    consumer_id: String,
    buffer: VecDeque<QueueMessage>,
    answers: mpsc::UnboundedSender<Command>,
    held: Held,
    lost: Arc<AtomicU64>,
    /// Set once the acker knows the lease.
    extend_set: bool,
    /// The fetch under way, if a `recv` was dropped while it waited.
    pending: Option<tokio::task::JoinHandle<FetchAnswer>>,
    extend_before: Arc<std::sync::Mutex<Option<Duration>>>,
}

/// A consumer id no other process picks: host, process and a random part.
fn new_consumer_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    format!("{}-{}-{:016x}", host.trim(), std::process::id(), h.finish())
}

impl Client {
    /// A consumer of the queue group `group` (see [`QueueConsumer`]).
    pub fn queue_consumer(&self, group: &str, config: QueueConsumerConfig) -> QueueConsumer {
        QueueConsumer::new(self.clone(), group, config)
    }

    pub(crate) fn queues(&self) -> v1::queues_client::QueuesClient<crate::auth::Transport> {
        v1::queues_client::QueuesClient::new(self.channel.clone())
            .max_decoding_message_size(128 << 20)
    }
}

impl QueueConsumer {
    fn new(client: Client, group: &str, config: QueueConsumerConfig) -> QueueConsumer {
        let consumer_id = config.consumer_id.clone().unwrap_or_else(new_consumer_id);
        let (answers, commands) = mpsc::unbounded_channel();
        let held: Held = Default::default();
        let lost = Arc::new(AtomicU64::new(0));
        let extend_before = Arc::new(std::sync::Mutex::new(config.extend_before));
        // Ends once the consumer and every message it handed out are gone,
        // after sending what is pending.
        tokio::spawn(acker::run(
            acker::AckerConfig {
                client: client.clone(),
                group: group.to_string(),
                consumer_id: consumer_id.clone(),
                batch: config.ack_batch.max(1),
                interval: config.ack_interval.max(Duration::from_millis(1)),
                extend_before: Arc::clone(&extend_before),
                held: Arc::clone(&held),
                lost: Arc::clone(&lost),
            },
            commands,
        ));
        QueueConsumer {
            client,
            group: group.to_string(),
            extend_set: config.extend_before.is_some(),
            pending: None,
            config,
            consumer_id,
            buffer: VecDeque::new(),
            answers,
            held,
            lost,
            extend_before,
        }
    }

    /// This consumer's id.
    pub fn consumer_id(&self) -> &str {
        &self.consumer_id
    }

    /// Answers the broker said came too late: the lease had ended (the
    /// message went to another delivery), since this consumer started.
    pub fn late_answers(&self) -> u64 {
        self.lost.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// The next message; waits for one. An unreachable or restarting broker
    /// is retried; a refusal (no such group or topic, not allowed) fails.
    pub async fn recv(&mut self) -> Result<QueueMessage> {
        loop {
            if let Some(m) = self.buffer.pop_front() {
                // A message whose lease ran out while it waited here went
                // (or goes) to another delivery: not handed out twice.
                if m.lease_until_ms <= now_ms() {
                    continue;
                }
                self.hand_out(&m);
                return Ok(m);
            }
            self.fetch().await?;
        }
    }

    /// From now on the lease of `m` is extended while it is unanswered:
    /// only messages handed out, not those waiting in the buffer, so that a
    /// slow consumer does not keep what others could process.
    fn hand_out(&self, m: &QueueMessage) {
        self.held
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert((m.partition, m.offset), m.lease_until_ms);
    }

    /// Leases up to `max_records` messages with one fetch (waiting up to
    /// `max_wait`; empty if none came).
    pub async fn fetch_batch(&mut self) -> Result<Vec<QueueMessage>> {
        if self.buffer.is_empty() {
            self.fetch().await?;
        }
        let batch: Vec<QueueMessage> = self.buffer.drain(..).collect();
        for m in &batch {
            self.hand_out(m);
        }
        Ok(batch)
    }

    /// Starts a fetch in a task of its own, unless one is under way.
    fn start_fetch(&mut self) {
        if self.pending.is_some() {
            return;
        }
        let req = v1::FetchQueueRequest {
            group: self.group.clone(),
            topic: self.config.topic.clone().unwrap_or_default(),
            consumer_id: self.consumer_id.clone(),
            max_records: self.config.max_records,
            max_bytes: 0,
            max_wait_ms: self.config.max_wait.as_millis().min(u128::from(u32::MAX)) as u32,
        };
        let client = self.client.clone();
        self.pending = Some(tokio::spawn(async move {
            let asked = now_ms();
            (asked, client.queues().fetch_queue(req).await)
        }));
    }

    async fn fetch(&mut self) -> Result<()> {
        // The request runs in a task of its own, kept across calls: a
        // `recv` dropped while it waits (a `select!` that took another
        // branch) loses no leased messages, and the next `recv` picks the
        // answer up.
        self.start_fetch();
        let Some(pending) = self.pending.as_mut() else {
            return Ok(());
        };
        let done = pending.await;
        self.pending = None;
        let (asked, answer) =
            done.map_err(|e| Error::Protocol(format!("the queue fetch task failed: {e}")))?;
        let r = match answer {
            Ok(r) => r.into_inner(),
            Err(s) if retry_quietly(s.code()) => {
                tracing::debug!(status = %s.message(), "queue fetch failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                return Ok(());
            }
            Err(s) => return Err(Error::from(s)),
        };
        if !self.extend_set && !r.records.is_empty() {
            // A third of the lease: time for two tries before it ends.
            let lease = (r.lease_until_ms - asked).max(3);
            *self.extend_before.lock().unwrap_or_else(|e| e.into_inner()) =
                Some(Duration::from_millis(lease as u64 / 3));
            self.extend_set = true;
        }
        let topic: Arc<str> = Arc::from(r.topic.as_str());
        for q in r.records {
            let Some(rec) = q.record else { continue };
            self.buffer.push_back(QueueMessage {
                record: ConsumerRecord {
                    topic: Arc::clone(&topic),
                    partition: q.partition,
                    offset: rec.offset,
                    timestamp_ms: rec.timestamp_ms,
                    key: rec.key,
                    value: rec.value,
                    headers: rec.headers.into_iter().map(|h| (h.key, h.value)).collect(),
                },
                delivery_count: q.delivery_count,
                lease_until_ms: r.lease_until_ms,
                answers: Some(self.answers.clone()),
            });
        }
        Ok(())
    }

    /// Returns once every answer given so far has reached the broker.
    pub async fn flush(&self) -> Result<()> {
        self.flusher().flush().await
    }

    /// A handle that flushes this consumer's answers from another task, so
    /// that a consumer can fetch its next messages while the answers to the
    /// last ones are on their way.
    ///
    /// ```no_run
    /// # async fn demo(mut q: brook_client::QueueConsumer) -> brook_client::Result<()> {
    /// let flusher = q.flusher();
    /// for m in q.fetch_batch().await? {
    ///     m.ack();
    /// }
    /// tokio::spawn(async move { flusher.flush().await });
    /// let next = q.fetch_batch().await?; // meanwhile
    /// # Ok(()) }
    /// ```
    pub fn flusher(&self) -> Flusher {
        Flusher {
            answers: self.answers.clone(),
        }
    }

    /// Hands back messages fetched but not yet returned by `recv` (and
    /// those of a fetch under way), sends every answer, and stops.
    pub async fn close(mut self) -> Result<()> {
        if let Some(p) = self.pending.take()
            && let Ok((_, Ok(r))) = p.await
        {
            for q in r.into_inner().records {
                if let Some(rec) = q.record {
                    let _ = self
                        .answers
                        .send(Command::Settle((q.partition, rec.offset), Verdict::Release));
                }
            }
        }
        for m in self.buffer.drain(..) {
            m.release();
        }
        self.flush().await
    }
}

impl Drop for QueueConsumer {
    fn drop(&mut self) {
        // Buffered messages go back through the acker, which sends what is
        // pending once its last sender is gone (the messages still out hold one).
        self.buffer.clear();
        // So do those of a fetch under way, once it answers.
        if let Some(pending) = self.pending.take() {
            let answers = self.answers.clone();
            tokio::spawn(async move {
                if let Ok((_, Ok(r))) = pending.await {
                    for q in r.into_inner().records {
                        if let Some(rec) = q.record {
                            let _ = answers
                                .send(Command::Settle((q.partition, rec.offset), Verdict::Release));
                        }
                    }
                }
            });
        }
    }
}
