//! Open batches, filled by the callers of `send` under one short lock (like
//! Kafka's RecordAccumulator) and drained by the sender task.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use brook_protocol::batch::{BatchBuilder, Compression};
use bytes::{Bytes, BytesMut};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;

use super::delivery::{Delivery, Outcome, Slot};

/// A record as `send` received it, borrowed.
pub(crate) struct RecordRef<'a> {
    pub timestamp_ms: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [(&'a str, &'a [u8])],
}

impl RecordRef<'_> {
    /// The most bytes the record can take in a batch: its data plus the
    /// largest varints of every length and delta.
    pub(crate) fn max_encoded_len(&self) -> usize {
        let len = |b: Option<&[u8]>| b.map_or(0, <[u8]>::len);
        36 + len(self.key)
            + len(self.value)
            + self
                .headers
                .iter()
                .map(|(k, v)| 10 + k.len() + v.len())
                .sum::<usize>()
    }
}

/// A batch being filled.
pub(crate) struct Open {
    pub builder: BatchBuilder,
    pub slot: Slot,
    pub deadline: Instant,
    /// When its first record was sent: `delivery_timeout` counts from here.
    pub created: Instant,
}

/// A batch taken by the sender.
pub(crate) struct Ready {
    pub topic: Arc<str>,
    pub partition: u32,
    pub batch: Open,
}

/// One topic's partition count and open batches.
pub(crate) struct TopicSlots {
    name: Arc<str>,
    pub partitions: u32,
    open: Vec<Option<Open>>,
}

pub(crate) struct State {
    pub topics: HashMap<Arc<str>, TopicSlots>,
    /// Batches that reached `batch_bytes`, in the order they filled; they go
    /// out before any open batch, so a partition's batches stay in order.
    full: VecDeque<Ready>,
    /// Batches sent and not yet acknowledged (for `flush`).
    pub in_flight: VecDeque<Arc<Outcome>>,
    /// Every handle of the producer is gone: ship everything, then stop.
    pub closed: bool,
    /// The sender task ended: nothing more can be sent.
    pub sender_gone: bool,
    /// Buffers of acknowledged batches, for the next batches to write into.
    spare: Vec<BytesMut>,
}

/// Buffers kept for reuse: enough for the batches of a few partitions.
const SPARE_BUFFERS: usize = 8;

/// Shared by the producer's handles and its sender task.
pub(crate) struct Accumulator {
    state: Mutex<State>,
    /// Wakes the sender: a batch was opened (its linger timer starts), filled, flushed or closed.
    pub wake: Notify,
    /// Bytes of records waiting or in flight; `send` waits when none are left.
    pub buffer: Arc<Semaphore>,
    linger: Duration,
    batch_bytes: usize,
    compression: Compression,
}

impl Accumulator {
    pub(crate) fn new(
        linger: Duration,
        batch_bytes: usize,
        buffer_bytes: usize,
        compression: Compression,
    ) -> Accumulator {
        Accumulator {
            compression,
            state: Mutex::new(State {
                topics: HashMap::new(),
                full: VecDeque::new(),
                in_flight: VecDeque::new(),
                closed: false,
                sender_gone: false,
                spare: Vec::new(),
            }),
            wake: Notify::new(),
            buffer: Arc::new(Semaphore::new(buffer_bytes)),
            linger,
            batch_bytes,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Appends a record to its partition's open batch (opening one if
    /// needed). `bytes` of the buffer, already acquired, are held until the
    /// batch completes. Wakes the sender when it has something new to do.
    pub(crate) fn append(
        &self,
        state: &mut State,
        topic: &str,
        partition: u32,
        record: &RecordRef<'_>,
        bytes: u32,
    ) -> Delivery {
        let State {
            topics,
            full,
            spare,
            ..
        } = state;
        let Some(slots) = topics.get_mut(topic) else {
            unreachable!("callers look the topic up first")
        };
        let index = partition as usize;
        if slots.open.len() <= index {
            slots.open.resize_with(index + 1, || None);
        }
        // A batch never grows past batch_bytes (the broker's max_batch_bytes
        // is usually set to match) unless its one record alone is bigger:
        // a record that would not fit closes the open batch first.
        let encoded = record.max_encoded_len();
        let closes_open = slots.open[index].as_ref().is_some_and(|o| {
            !o.builder.is_empty() && o.builder.size_bytes() + encoded > self.batch_bytes
        });
        if closes_open {
            slots.close(partition, full);
        }
        let opened = slots.open[index].is_none();
        let batch = slots.open[index].get_or_insert_with(|| {
            // Sized for a full batch up front: growing a 1 MiB buffer by
            // doubling cost a realloc and copy per step.
            let capacity =
                (self.batch_bytes + record.value.map_or(0, <[u8]>::len) + 256).min(8 << 20);
            let buf = match spare.pop() {
                Some(b) if b.capacity() >= capacity => b,
                _ => BytesMut::with_capacity(capacity),
            };
            let now = Instant::now();
            Open {
                builder: BatchBuilder::with_buffer(buf).compression(self.compression),
                slot: Slot::new(Arc::clone(&self.buffer)),
                deadline: now + self.linger,
                created: now,
            }
        });
        let delivery = batch.slot.delivery(batch.builder.record_count());
        batch.builder.push(
            record.timestamp_ms,
            record.key,
            record.value,
            record.headers,
        );
        batch.slot.reserve(bytes);
        // Full: no record of this size fits any more.
        let filled = batch.builder.size_bytes() + encoded > self.batch_bytes;
        if filled {
            slots.close(partition, full);
        }
        if opened || filled || closes_open {
            self.wake.notify_one();
        }
        delivery
    }
}

impl TopicSlots {
    /// Moves the partition's open batch to the line of full ones.
    fn close(&mut self, partition: u32, full: &mut VecDeque<Ready>) {
        if let Some(batch) = self.open[partition as usize].take() {
            full.push_back(Ready {
                topic: Arc::clone(&self.name),
                partition,
                batch,
            });
        }
    }
}

impl State {
    pub(crate) fn add_topic(&mut self, topic: &str, partitions: u32) {
        let name: Arc<str> = Arc::from(topic);
        self.topics
            .entry(Arc::clone(&name))
            .or_insert_with(|| TopicSlots {
                name,
                partitions,
                open: Vec::new(),
            });
    }

    /// The next batch to send: the oldest full one, else the open batch
    /// whose linger ended first (if it has, or at once when the sender is
    /// `idle`: nothing in flight to wait behind). From here on it counts as in
    /// flight (for `flush`), under the same lock, so it is never unseen.
    pub(crate) fn take_next(&mut self, now: Instant, idle: bool) -> Option<Ready> {
        let next = self.next_due(now, idle)?;
        self.in_flight
            .push_back(Arc::clone(next.batch.slot.outcome()));
        Some(next)
    }

    fn next_due(&mut self, now: Instant, idle: bool) -> Option<Ready> {
        if let Some(r) = self.full.pop_front() {
            return Some(r);
        }
        let (topic, partition) = self
            .topics
            .iter()
            .flat_map(|(t, s)| {
                s.open.iter().enumerate().filter_map(move |(p, o)| {
                    o.as_ref()
                        .filter(|o| idle || o.deadline <= now)
                        .map(|o| (o.deadline, t, p))
                })
            })
            .min_by_key(|(deadline, _, _)| *deadline)
            .map(|(_, t, p)| (Arc::clone(t), p))?;
        let batch = self.topics.get_mut(&topic)?.open[partition].take()?;
        Some(Ready {
            topic,
            partition: partition as u32,
            batch,
        })
    }

    /// Keeps an acknowledged batch's buffer for a later batch, if nothing
    /// else holds it and fewer than [`SPARE_BUFFERS`] are kept.
    pub(crate) fn recycle(&mut self, batch: Bytes) {
        if self.spare.len() < SPARE_BUFFERS
            && let Ok(buf) = batch.try_into_mut()
        {
            self.spare.push(buf);
        }
    }

    /// Puts the batch [`State::take_next`] gave last back at the head of the
    /// line: it could not be sent yet.
    pub(crate) fn requeue(&mut self, ready: Ready) {
        self.in_flight.pop_back();
        self.full.push_front(ready);
    }

    /// Takes every batch not yet sent (the sender is gone: dropping them
    /// fails their records with `Error::Closed`).
    pub(crate) fn take_all(&mut self) -> Vec<Open> {
        let mut out: Vec<Open> = self.full.drain(..).map(|r| r.batch).collect();
        for s in self.topics.values_mut() {
            out.extend(s.open.iter_mut().filter_map(Option::take));
        }
        out
    }

    /// When the next open batch is due: its linger's end, or now when the
    /// sender is `idle`.
    pub(crate) fn next_deadline(&self, idle: bool) -> Option<Instant> {
        if !self.full.is_empty() {
            return Some(Instant::now());
        }
        let next = self
            .topics
            .values()
            .flat_map(|s| s.open.iter().flatten())
            .map(|o| o.deadline)
            .min()?;
        Some(if idle { Instant::now().min(next) } else { next })
    }

    /// Makes every open batch due now (flush, close).
    pub(crate) fn expire_all(&mut self) {
        let now = Instant::now();
        for o in self
            .topics
            .values_mut()
            .flat_map(|s| s.open.iter_mut().flatten())
        {
            o.deadline = now;
        }
    }

    /// The outcomes of every batch not yet acknowledged.
    pub(crate) fn unfinished(&self) -> Vec<Arc<Outcome>> {
        let open = self
            .topics
            .values()
            .flat_map(|s| s.open.iter().flatten())
            .map(|o| o.slot.outcome());
        let full = self.full.iter().map(|r| r.batch.slot.outcome());
        open.chain(full)
            .cloned()
            .chain(self.in_flight.iter().cloned())
            .collect()
    }

    /// No batch open or full.
    pub(crate) fn is_drained(&self) -> bool {
        self.full.is_empty()
            && self
                .topics
                .values()
                .all(|s| s.open.iter().all(Option::is_none))
    }
}
