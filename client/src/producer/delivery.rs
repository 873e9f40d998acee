//! Completion of a batch, shared by every record in it: one allocation per
//! batch instead of a channel per record.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

use tokio::sync::Semaphore;

use super::RecordMetadata;
use crate::error::{Error, Result};

/// Where a batch was stored: its partition and base offset, and the
/// records the broker sent to a dead-letter topic instead.
pub(crate) type Stored = (u32, u64, Option<Arc<DeadLettered>>);

/// The records of a batch that failed their topic's schema and went to its
/// dead-letter topic (from the broker's answer).
#[derive(Debug)]
pub(crate) struct DeadLettered {
    /// Where they went.
    pub topic: String,
    /// Their positions in the batch, ascending, and why each failed.
    pub records: Vec<(u32, String)>,
}

impl DeadLettered {
    /// From a produce answer; none when nothing went.
    pub(crate) fn of(r: &brook_protocol::v1::ProduceResponse) -> Option<Arc<DeadLettered>> {
        if r.dead_lettered.is_empty() {
            return None;
        }
        let mut records: Vec<(u32, String)> = r
            .dead_lettered
            .iter()
            .enumerate()
            .map(|(i, &at)| {
                (
                    at,
                    r.dead_letter_reasons.get(i).cloned().unwrap_or_default(),
                )
            })
            .collect();
        records.sort_unstable_by_key(|(at, _)| *at);
        Some(Arc::new(DeadLettered {
            topic: r.dead_letter_topic.clone(),
            records,
        }))
    }
}

enum State {
    Pending(Vec<Waker>),
    Done(Result<Stored>),
}

/// The result of one batch, awaited by its records' [`Delivery`]s and by flushes.
pub(crate) struct Outcome(Mutex<State>);

impl Outcome {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the result once (later calls are ignored) and wakes every waiter.
    fn complete(&self, result: Result<Stored>) {
        let wakers = {
            let mut state = self.lock();
            match &mut *state {
                State::Pending(wakers) => {
                    let wakers = std::mem::take(wakers);
                    *state = State::Done(result);
                    wakers
                }
                State::Done(_) => return,
            }
        };
        for w in wakers {
            w.wake();
        }
    }

    fn poll_done(&self, cx: &mut Context<'_>) -> Poll<Result<Stored>> {
        let mut state = self.lock();
        match &mut *state {
            State::Done(r) => Poll::Ready(r.clone()),
            State::Pending(wakers) => {
                if !wakers.iter().any(|w| w.will_wake(cx.waker())) {
                    wakers.push(cx.waker().clone());
                }
                Poll::Pending
            }
        }
    }

    /// Waits for the batch's result.
    pub(crate) async fn wait(&self) -> Result<()> {
        std::future::poll_fn(|cx| self.poll_done(cx))
            .await
            .map(|_| ())
    }
}

/// A batch's claim on the result and on the producer's buffer: dropping it
/// without a result (the sender task ended) fails the batch's records with
/// [`Error::Closed`], and always gives the batch's bytes back to the buffer.
pub(crate) struct Slot {
    outcome: Arc<Outcome>,
    bytes: u32,
    buffer: Arc<Semaphore>,
}

impl Slot {
    pub(crate) fn new(buffer: Arc<Semaphore>) -> Slot {
        Slot {
            outcome: Arc::new(Outcome(Mutex::new(State::Pending(Vec::new())))),
            bytes: 0,
            buffer,
        }
    }

    /// Holds `bytes` more of the buffer until the batch completes.
    pub(crate) fn reserve(&mut self, bytes: u32) {
        self.bytes += bytes;
    }

    pub(crate) fn outcome(&self) -> &Arc<Outcome> {
        &self.outcome
    }

    /// The future of the record at `index` in the batch.
    pub(crate) fn delivery(&self, index: u32) -> Delivery {
        Delivery {
            outcome: Arc::clone(&self.outcome),
            index,
        }
    }

    /// Completes the batch with its partition and base offset, or an error.
    pub(crate) fn complete(self, result: Result<Stored>) {
        self.outcome.complete(result);
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.outcome.complete(Err(Error::Closed));
        self.buffer.add_permits(self.bytes as usize);
    }
}

/// Completes when the record is acknowledged (see [`super::Producer::send`]),
/// with where it was stored, or with why it was not.
///
/// Dropping a `Delivery` does not cancel the send.
///
/// ```no_run
/// # async fn demo(producer: brook_client::Producer) -> brook_client::Result<()> {
/// // Queue several events first, then wait: they travel in one batch.
/// let mut deliveries = Vec::new();
/// for id in ["order-41", "order-42", "order-43"] {
///     deliveries.push(producer.send("orders", Some(id), "OrderPlaced").await?);
/// }
/// for delivery in deliveries {
///     let stored = delivery.await?; // Err: why this record was not stored
///     println!("stored at {}/{}", stored.partition, stored.offset);
/// }
/// # Ok(()) }
/// ```
pub struct Delivery {
    outcome: Arc<Outcome>,
    index: u32,
}

impl Future for Delivery {
    type Output = Result<RecordMetadata>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let index = self.index;
        self.outcome.poll_done(cx).map(|r| {
            let (partition, base, dead) = r?;
            if let Some(dead) = dead
                && let Ok(at) = dead.records.binary_search_by_key(&index, |(at, _)| *at)
            {
                return Err(Error::DeadLettered {
                    dead_letter_topic: dead.topic.clone(),
                    reason: dead.records[at].1.clone(),
                });
            }
            Ok(RecordMetadata {
                partition,
                offset: base + u64::from(index),
            })
        })
    }
}

impl std::fmt::Debug for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Delivery")
            .field("index", &self.index)
            .finish()
    }
}
