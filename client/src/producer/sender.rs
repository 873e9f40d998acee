//! The background task that takes batches from the accumulator and sends
//! them over one pipelined `ProduceStream`; acks come back in order.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::batch::Batch;
use brook_protocol::v1;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use super::accumulator::{Accumulator, Ready};
use super::delivery::Slot;
use super::{Acks, ProducerConfig};
use crate::client::Client;
use crate::error::{Error, Result};

/// A batch sent (or to be re-sent) and not yet acknowledged.
struct InFlight {
    request: v1::ProduceRequest,
    slot: Slot,
}

struct Stream {
    requests: mpsc::Sender<v1::ProduceRequest>,
    acks: Streaming<v1::ProduceResponse>,
}

/// Codes after which an idempotent producer re-sends its in-flight batches:
/// the connection or the broker went away, and the broker's sequence check
/// makes a re-sent batch that was already stored a no-op.
fn retriable(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unavailable
            | tonic::Code::Unknown
            | tonic::Code::Cancelled
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Internal
    )
}

/// Owns the stream and the batches in flight.
pub(crate) struct Sender {
    client: Client,
    config: ProducerConfig,
    acc: Arc<Accumulator>,
    in_flight: VecDeque<InFlight>,
    stream: Option<Stream>,
    /// Producer id and epoch, once the broker gave them (idempotent mode).
    identity: Option<(i64, i16)>,
    /// Next sequence number per partition (idempotent mode).
    sequences: HashMap<(Arc<str>, u32), i32>,
    /// Set while the stream is down: when the first failure happened.
    failing_since: Option<Instant>,
    /// The stream is down and in-flight batches must be re-sent before anything else.
    resend_needed: bool,
    /// The broker no longer knows the producer id: the in-flight batches
    /// go again under a new one (set with `resend_needed`).
    restamp_needed: bool,
    /// New producer ids asked for since the last ack: a bound on the loop.
    reinits: u32,
    backoff: Duration,
}

/// The reasons after which the broker has stored none of the in-flight
/// batches and a new producer id makes them acceptable: the broker forgot
/// the id (expired idle) or never issued it (it lost its id file).
const REINIT_REASONS: &[&str] = &["UNKNOWN_PRODUCER", "INVALID_PRODUCER_ID_MAPPING"];

/// New producer ids asked for in a row before the error goes to the sends.
const MAX_REINITS: u32 = 3;

impl Sender {
    pub(crate) fn new(client: Client, mut config: ProducerConfig, acc: Arc<Accumulator>) -> Self {
        if config.idempotent {
            // The broker remembers a producer's last 5 batches per partition:
            // more in flight and a retry could fall outside what it can dedupe.
            config.max_in_flight = config.max_in_flight.clamp(1, 5);
        }
        config.max_in_flight = config.max_in_flight.max(1);
        Sender {
            client,
            config,
            acc,
            in_flight: VecDeque::new(),
            stream: None,
            identity: None,
            sequences: HashMap::new(),
            failing_since: None,
            resend_needed: false,
            restamp_needed: false,
            reinits: 0,
            backoff: Duration::from_millis(50),
        }
    }

    /// Runs until every handle of the producer is dropped and everything is sent.
    pub(crate) async fn run(mut self) {
        loop {
            if self.resend_needed {
                self.resend().await;
                continue;
            }
            self.ship_ready().await;
            if self.resend_needed {
                continue;
            }
            let (next_deadline, finished) = {
                let state = self.acc.lock();
                (
                    state.next_deadline(self.in_flight.is_empty()),
                    state.closed && state.is_drained() && self.in_flight.is_empty(),
                )
            };
            if finished {
                return;
            }
            let room = self.in_flight.len() < self.config.max_in_flight;
            tokio::select! {
                () = self.acc.wake.notified() => {}
                ack = next_ack(&mut self.stream), if self.stream.is_some() && !self.in_flight.is_empty() => self.on_ack(ack),
                // Only while there is in-flight room: a due batch that cannot
                // be sent yet waits for an ack, not for a spinning timer.
                () = sleep_until(next_deadline), if next_deadline.is_some() && room => {}
            }
        }
    }

    /// Sends every batch that is full or has lingered long enough, while
    /// in-flight room remains and the stream is up.
    async fn ship_ready(&mut self) {
        let now = Instant::now();
        while self.in_flight.len() < self.config.max_in_flight && !self.resend_needed {
            // Linger only while something is in flight: a record sent to an
            // idle producer goes at once, and records that come while its
            // batch is out join the next one (as modern Kafka clients do).
            let idle = self.in_flight.is_empty();
            let Some(ready) = self.acc.lock().take_next(now, idle) else {
                return;
            };
            self.ship(ready).await;
        }
    }

    async fn ship(&mut self, ready: Ready) {
        let acks = match self.config.acks {
            Acks::Written => v1::Acks::Written,
            Acks::Durable => v1::Acks::Durable,
        } as i32;
        let Ready {
            topic,
            partition,
            batch,
        } = ready;
        let mut builder = batch.builder;
        if self.config.idempotent {
            let (pid, epoch) = match self.identity().await {
                Ok(id) => id,
                Err(e) => {
                    let batch = super::accumulator::Open { builder, ..batch };
                    let retry = e.code().is_some_and(retriable)
                        && batch.created.elapsed() < self.config.delivery_timeout;
                    let mut state = self.acc.lock();
                    if retry {
                        // No producer id yet (broker unreachable): keep the
                        // batch first in line and retry like a dropped stream.
                        state.requeue(Ready {
                            topic,
                            partition,
                            batch,
                        });
                        drop(state);
                    } else {
                        state.in_flight.pop_back();
                        drop(state);
                        batch.slot.complete(Err(e.clone()));
                    }
                    self.stream_failed(e);
                    return;
                }
            };
            let seq = self
                .sequences
                .entry((Arc::clone(&topic), partition))
                .or_insert(0);
            let base = *seq;
            *seq = seq.wrapping_add(builder.record_count() as i32) & i32::MAX;
            builder = builder.producer(pid, epoch, base);
        }
        let bytes = builder.build(0);
        debug_assert!(Batch::parse(bytes.clone()).is_ok());
        let request = v1::ProduceRequest {
            topic: topic.to_string(),
            partition,
            batch: bytes,
            acks,
        };
        self.in_flight.push_back(InFlight {
            request: request.clone(),
            slot: batch.slot,
        });
        if let Err(e) = self.send(request).await {
            self.stream_failed(e);
        }
    }

    async fn identity(&mut self) -> Result<(i64, i16)> {
        if let Some(id) = self.identity {
            return Ok(id);
        }
        let r = self
            .client
            .producer_rpc()
            .init_producer(v1::InitProducerRequest {})
            .await?
            .into_inner();
        let id = (r.producer_id, r.producer_epoch as i16);
        self.identity = Some(id);
        Ok(id)
    }

    async fn send(&mut self, request: v1::ProduceRequest) -> Result<()> {
        if self.stream.is_none() {
            let (requests, rx) = mpsc::channel(self.config.max_in_flight);
            let acks = self
                .client
                .producer_rpc()
                .produce_stream(ReceiverStream::new(rx))
                .await?
                .into_inner();
            self.stream = Some(Stream { requests, acks });
        }
        let stream = self.stream.as_mut().expect("just set");
        stream
            .requests
            .send(request)
            .await
            .map_err(|_| Error::status(tonic::Code::Unavailable, "the produce stream closed"))
    }

    /// The stream broke: an idempotent producer re-sends later, within
    /// `delivery_timeout`; any other fails what is in flight now.
    fn stream_failed(&mut self, e: Error) {
        self.stream = None;
        let retry = self.config.idempotent && e.code().is_some_and(retriable);
        let since = *self.failing_since.get_or_insert_with(Instant::now);
        if retry && since.elapsed() < self.config.delivery_timeout {
            tracing::debug!(error = %e, "produce stream failed; will re-send");
            self.resend_needed = true;
            return;
        }
        self.fail_all(e);
    }

    /// Waits, reconnects and re-sends every in-flight batch in order.
    async fn resend(&mut self) {
        tokio::time::sleep(self.backoff).await;
        self.backoff = (self.backoff * 2).min(Duration::from_secs(1));
        let (pid, epoch) = match self.identity().await {
            Ok(id) => id,
            Err(e) => {
                self.stream_failed(e);
                return;
            }
        };
        if self.restamp_needed {
            self.restamp(pid, epoch);
        }
        let requests: Vec<v1::ProduceRequest> =
            self.in_flight.iter().map(|f| f.request.clone()).collect();
        for r in requests {
            if let Err(e) = self.send(r).await {
                self.stream_failed(e);
                return;
            }
        }
        self.resend_needed = false;
    }

    /// Gives every in-flight batch the new producer id and, per partition,
    /// sequences from 0 in order; batches shipped later go on from there.
    fn restamp(&mut self, pid: i64, epoch: i16) {
        self.sequences.clear();
        for f in &mut self.in_flight {
            let Ok(batch) = Batch::parse(f.request.batch.clone()) else {
                continue;
            };
            let seq = self
                .sequences
                .entry((Arc::from(f.request.topic.as_str()), f.request.partition))
                .or_insert(0);
            let base = *seq;
            *seq = seq.wrapping_add(batch.header().record_count as i32) & i32::MAX;
            f.request.batch = batch.restamped(pid, epoch, base).into_bytes();
        }
        self.restamp_needed = false;
    }

    fn fail_all(&mut self, err: Error) {
        self.failing_since = None;
        self.resend_needed = false;
        self.stream = None;
        // Sequences of failed batches are burnt: a new producer id starts afresh.
        self.identity = None;
        self.sequences.clear();
        let behind = Error::status(
            tonic::Code::Aborted,
            format!("not stored: an earlier batch on the same stream failed ({err})"),
        );
        // Completed before they leave the flush list, so that a flush never
        // misses their errors.
        for (i, f) in self.in_flight.drain(..).enumerate() {
            f.slot
                .complete(Err(if i == 0 { err.clone() } else { behind.clone() }));
        }
        self.acc.lock().in_flight.clear();
    }

    fn on_ack(&mut self, ack: Option<Result<v1::ProduceResponse, tonic::Status>>) {
        match ack {
            Some(Ok(r)) => {
                self.failing_since = None;
                self.reinits = 0;
                self.backoff = Duration::from_millis(50);
                let Some(front) = self.in_flight.pop_front() else {
                    return;
                };
                {
                    let mut state = self.acc.lock();
                    state.in_flight.pop_front();
                    state.recycle(front.request.batch);
                }
                let dead = super::delivery::DeadLettered::of(&r);
                front
                    .slot
                    .complete(Ok((front.request.partition, r.base_offset, dead)));
            }
            // The broker appends nothing after a failed batch on a stream, so
            // the batches behind this one were never stored.
            Some(Err(s)) => {
                let e = Error::from(s);
                let forgotten = e.reason().is_some_and(|r| REINIT_REASONS.contains(&r));
                if self.config.idempotent && forgotten && self.reinits < MAX_REINITS {
                    // As Kafka's producer does on UNKNOWN_PRODUCER_ID: a new
                    // id, and the unstored batches again under it.
                    tracing::info!(error = %e, "the broker no longer knows this producer id; re-sending under a new one");
                    self.reinits += 1;
                    self.stream = None;
                    self.identity = None;
                    self.restamp_needed = true;
                    self.resend_needed = true;
                    return;
                }
                self.stream_failed(e)
            }
            None => self.stream_failed(Error::status(
                tonic::Code::Unavailable,
                "the produce stream ended",
            )),
        }
    }
}

impl Drop for Sender {
    /// However the task ends (drained, panicked, or its runtime shut down),
    /// records still buffered fail with `Error::Closed` and new sends are refused.
    fn drop(&mut self) {
        let unsent = {
            let mut state = self.acc.lock();
            state.sender_gone = true;
            state.take_all()
        };
        drop(unsent);
    }
}

async fn next_ack(
    stream: &mut Option<Stream>,
) -> Option<Result<v1::ProduceResponse, tonic::Status>> {
    match stream {
        Some(s) => s.acks.message().await.transpose(),
        None => None,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
