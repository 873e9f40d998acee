//! `rabbitmq-peer-bench`: Brook's queue workload run against a RabbitMQ
//! quorum queue.
//!
//! It exists so that `brook bench --scenario queue --consumers C` has a peer
//! measured in the same run, on the same machine (`scripts/rabbitmq-peer.sh`
//! runs it next to a fresh `rabbitmq-server`). The workload is done the way a
//! RabbitMQ user after throughput would do it:
//!
//! 1. **Publish**: a new durable quorum queue (`x-queue-type=quorum`) gets
//!    `--records` messages of `--size` bytes from one publisher with publisher
//!    confirms, handed to the client `--publish-batch` at a time, up to
//!    `--publish-window` of them unconfirmed. Timed, reported as
//!    `published_per_s`.
//! 2. **Consume**: `--consumers` consumers, each on a connection of its own
//!    with one channel, a prefetch (`basic.qos`) of `--prefetch`, manual acks,
//!    acknowledging with `basic.ack(multiple=true)` once `--ack-batch`
//!    deliveries are pending or `--ack-linger-ms` after the oldest pending one
//!    arrived, whichever comes first. Timed from the moment every consumer may
//!    start until every record is acked (see [`consume_phase`] for what that
//!    means exactly), reported as `acked_per_s`; the histogram has, for every
//!    record, the time from its delivery reaching the consumer to the ack that
//!    covers it being written to the socket.
//!
//! The queue is deleted afterwards. It prints one JSON line on stdout,
//! progress on stderr, and exits non-zero when a check fails (a nack, a
//! redelivery, a record missing or delivered twice, a queue not empty).

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail, ensure};
use clap::Parser;
use futures_util::StreamExt;
use futures_util::future::try_join_all;
use hdrhistogram::Histogram;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, Queue};
use tokio::sync::{Barrier, Notify, watch};
use tokio::task::JoinSet;

#[derive(Parser)]
#[command(
    version,
    about = "Brook's queue workload against a RabbitMQ quorum queue"
)]
struct Args {
    /// The broker, e.g. amqp://guest:guest@127.0.0.1:5672/%2f.
    #[arg(long)]
    url: String,
    /// Consumers, each on its own connection and channel.
    #[arg(long, default_value_t = 1)]
    consumers: usize,
    /// Records to publish, then consume.
    #[arg(long, default_value_t = 200_000)]
    records: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    size: usize,
    /// Most published records not yet confirmed by the broker.
    #[arg(long, default_value_t = 2_000)]
    publish_window: usize,
    /// Records handed to the client library at once (1: one at a time).
    #[arg(long, default_value_t = 100)]
    publish_batch: usize,
    /// Prefetch (basic.qos) per consumer: most unacked deliveries it holds.
    #[arg(long, default_value_t = 1_000)]
    prefetch: u16,
    /// A consumer acks once this many deliveries are pending...
    #[arg(long, default_value_t = 100)]
    ack_batch: usize,
    /// ... or this long after the oldest pending delivery arrived.
    #[arg(long, default_value_t = 5)]
    ack_linger_ms: u64,
    /// The broker's process (beam.smp), for its peak RSS (VmHWM) in the JSON.
    #[arg(long)]
    server_pid: Option<u32>,
    /// The queue (default: a new name per run); it is deleted at the end.
    #[arg(long)]
    queue: Option<String>,
    /// Gives up on a phase that takes longer than this many seconds.
    #[arg(long, default_value_t = 600)]
    timeout_s: u64,
}

/// The figures of one run, as printed.
struct Report {
    consumers: usize,
    records: u64,
    publish: Duration,
    consume: Duration,
    /// Delivery-to-ack latency of every record, µs.
    latency: Histogram<u64>,
    server_peak_rss_kib: Option<u64>,
}

impl Report {
    /// The JSON line; field names as `brook bench --scenario queue --json`.
    fn json(&self) -> String {
        let rate = |d: Duration| self.records as f64 / d.as_secs_f64();
        let pct = |q: f64| self.latency.value_at_quantile(q);
        let rss = self
            .server_peak_rss_kib
            .map_or("null".to_string(), |k| k.to_string());
        format!(
            "{{\"workload\":\"rabbitmq-queue\",\"consumers\":{},\"records\":{},\"published_per_s\":{:.0},\"acked_per_s\":{:.0},\"seconds\":{:.3},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"server_peak_rss_kib\":{rss}}}",
            self.consumers,
            self.records,
            rate(self.publish),
            rate(self.consume),
            self.consume.as_secs_f64(),
            pct(0.5),
            pct(0.99),
            pct(0.999),
        )
    }
}

/// Latencies in µs from 1 µs to a minute, 3 significant digits (as Brook's).
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// The value of record `i`: a byte pattern shifted by the record number, so
/// that consecutive records differ (251 distinct values, cycled).
fn payload(i: u64, size: usize) -> Vec<u8> {
    (0..size as u64).map(|j| ((i + j) % 251) as u8).collect()
}

/// A per-run queue name, so that runs never share (or recover) a queue.
fn queue_name() -> anyhow::Result<String> {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("clock before 1970")?
        .as_nanos();
    Ok(format!("brook-bench-{}-{nanos}", std::process::id()))
}

/// The peak resident set of process `pid` in KiB (VmHWM), if it can be read.
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
}

/// How long closing a connection or channel may take: a close is not part of
/// any figure, and a run must end even when one never completes.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);

/// Closes `conn` (connection.close, awaiting close-ok), giving up after
/// [`CLOSE_TIMEOUT`]; a failed close is reported, not fatal.
async fn close(conn: &Connection, what: &str) {
    match tokio::time::timeout(CLOSE_TIMEOUT, conn.close(200, "done".into())).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => eprintln!("rabbitmq queue: closing the {what} connection: {e}"),
        Err(_) => eprintln!("rabbitmq queue: closing the {what} connection timed out"),
    }
}

/// Opens a connection named `name` (the name shows in the broker's log and
/// its connection list, which tells the runs' connections apart).
async fn connect(url: &str, name: &str) -> anyhow::Result<Connection> {
    let props = ConnectionProperties::default().with_connection_name(name.into());
    Connection::connect(url, props)
        .await
        .with_context(|| format!("connecting to {url}"))
}

/// Declares the durable quorum queue (or, with `passive`, only looks it up:
/// the reply carries its ready-message and consumer counts).
async fn declare(ch: &Channel, queue: &str, passive: bool) -> anyhow::Result<Queue> {
    let mut args = FieldTable::default();
    args.insert(
        "x-queue-type".into(),
        AMQPValue::LongString("quorum".into()),
    );
    let options = QueueDeclareOptions {
        passive,
        ..QueueDeclareOptions::durable()
    };
    ch.queue_declare(queue.into(), options, args)
        .await
        .with_context(|| format!("declaring queue {queue} (passive: {passive})"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    ensure!(args.consumers >= 1, "--consumers must be at least 1");
    ensure!(args.records >= 1, "--records must be at least 1");
    ensure!(
        args.publish_window >= 1,
        "--publish-window must be at least 1"
    );
    ensure!(
        args.publish_batch >= 1,
        "--publish-batch must be at least 1"
    );
    ensure!(args.prefetch >= 1, "--prefetch must be at least 1");
    ensure!(args.ack_batch >= 1, "--ack-batch must be at least 1");
    let queue = match &args.queue {
        Some(q) => q.clone(),
        None => queue_name()?,
    };
    let admin = connect(&args.url, "brook-bench-admin").await?;
    let admin_ch = admin.create_channel().await.context("admin channel")?;
    declare(&admin_ch, &queue, false).await?;
    eprintln!(
        "rabbitmq queue: {} records of {} B into quorum queue {queue}, then {} consumers",
        args.records, args.size, args.consumers
    );
    // Whatever happens, the queue goes: a quorum queue left behind keeps its
    // Raft log on disk (the script removes the node's directory anyway).
    let outcome = run(&args, &queue, &admin_ch).await;
    let deleted = admin_ch
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .with_context(|| format!("deleting queue {queue}"));
    close(&admin, "admin").await;
    let report = outcome?;
    deleted?;
    println!("{}", report.json());
    Ok(())
}

/// Both phases on the declared `queue`; the figures.
async fn run(args: &Args, queue: &str, admin_ch: &Channel) -> anyhow::Result<Report> {
    let timeout = Duration::from_secs(args.timeout_s);
    let publish = tokio::time::timeout(timeout, publish_phase(args, queue))
        .await
        .context("publish phase timed out")??;
    let ready = declare(admin_ch, queue, true).await?.message_count();
    ensure!(
        u64::from(ready) == args.records,
        "the queue holds {ready} messages after publishing {}",
        args.records
    );
    eprintln!(
        "rabbitmq queue: published in {:.3} s",
        publish.as_secs_f64()
    );
    let (consume, latency) = consume_phase(args, queue, admin_ch, timeout).await?;
    eprintln!(
        "rabbitmq queue: {} consumers acked everything in {:.3} s",
        args.consumers,
        consume.as_secs_f64()
    );
    Ok(Report {
        consumers: args.consumers,
        records: args.records,
        publish,
        consume,
        latency,
        server_peak_rss_kib: args.server_pid.and_then(peak_rss_kib),
    })
}

/// Publishes the records from one channel in confirm mode and returns how
/// long it took until the broker confirmed the last one. A quorum queue
/// confirms a message once it is in the Raft log on a majority of its
/// members, fsynced (one member here).
async fn publish_phase(args: &Args, queue: &str) -> anyhow::Result<Duration> {
    let conn = connect(&args.url, "brook-bench-publisher").await?;
    let ch = conn.create_channel().await.context("publisher channel")?;
    ch.confirm_select(ConfirmSelectOptions::default())
        .await
        .context("confirm.select")?;
    // Built before the clock starts: the cost measured is the broker's.
    let payloads: Vec<Vec<u8>> = (0..args.records.min(251))
        .map(|i| payload(i, args.size))
        .collect();
    // delivery_mode 2 (persistent) is what a user who wants the message kept
    // sets; a quorum queue keeps every message on disk regardless.
    let props = BasicProperties::default().with_delivery_mode(2);
    let routing_key: ShortString = queue.into();
    // A sliding window: the oldest confirm is awaited only once the window is
    // full, so the broker always has work while confirms (which it sends with
    // multiple=true, covering many) come back.
    let batch = args.publish_batch.min(args.publish_window);
    let window = args.publish_window;
    let mut unconfirmed = VecDeque::with_capacity(window);
    let started = Instant::now();
    let mut next = 0;
    while next < args.records {
        let n = (args.records - next).min(batch as u64);
        while unconfirmed.len() + n as usize > window {
            let oldest = unconfirmed.pop_front().expect("a full window");
            check_confirm(oldest.await)?;
        }
        // lapin's basic_publish resolves once its frames are written, and
        // its I/O loop is another thread: awaited one by one, every record
        // costs a socket write and several thread wake-ups (measured: 2.5x the
        // client CPU, taken from the broker on this 2-core machine). Polled
        // together, a batch's frames go out in a few writes.
        let sends = (next..next + n).map(|i| {
            ch.basic_publish(
                "".into(),
                routing_key.clone(),
                BasicPublishOptions::default(),
                &payloads[(i % payloads.len() as u64) as usize],
                props.clone(),
            )
        });
        let confirms = try_join_all(sends)
            .await
            .with_context(|| format!("publishing records {next}..{}", next + n))?;
        unconfirmed.extend(confirms);
        next += n;
    }
    for confirm in unconfirmed {
        check_confirm(confirm.await)?;
    }
    let elapsed = started.elapsed();
    close(&conn, "publisher").await;
    Ok(elapsed)
}

/// Fails unless the broker confirmed (acked) the message.
fn check_confirm(confirmation: lapin::Result<Confirmation>) -> anyhow::Result<()> {
    match confirmation.context("awaiting a publisher confirm")? {
        Confirmation::Ack(None) => Ok(()),
        Confirmation::Ack(Some(returned)) => bail!("message returned: {returned:?}"),
        Confirmation::Nack(_) => bail!("the broker nacked a message"),
        Confirmation::NotRequested => bail!("publisher confirms not enabled"),
    }
}

/// What every consumer task shares.
struct Shared {
    /// Records covered by an ack some consumer has written to its socket.
    acked: AtomicU64,
    /// Told when `acked` reaches the record count.
    all_acked: Notify,
    records: u64,
}

/// What one consumer saw.
struct ConsumerStats {
    delivered: u64,
    redelivered: u64,
    bytes: u64,
    latency: Histogram<u64>,
}

/// Runs the consumers until every record is acked; returns that time and the
/// merged delivery-to-ack histogram.
///
/// "Acked" means: every record is covered by a `basic.ack` that a consumer
/// has written to its socket (the consumers' counters add up to the record
/// count), and after that a passive `queue.declare` reports no ready message.
/// AMQP 0-9-1 has no reply to a consumer's ack, so whether the broker has
/// applied (and written to the queue's Raft log) the last acks when the clock
/// stops is not known: the time is the client's view, as Brook's is its
/// commit's. After the clock stops, the consumers' connections are closed
/// and the queue must still be empty once it has no consumer left: a record
/// the broker still counted unacked would have gone back to ready then.
async fn consume_phase(
    args: &Args,
    queue: &str,
    admin_ch: &Channel,
    timeout: Duration,
) -> anyhow::Result<(Duration, Histogram<u64>)> {
    let shared = Arc::new(Shared {
        acked: AtomicU64::new(0),
        all_acked: Notify::new(),
        records: args.records,
    });
    // Every consumer connects and sets its prefetch first; they all start
    // consuming when the barrier (which the clock waits on too) opens.
    let start = Arc::new(Barrier::new(args.consumers + 1));
    let (done_tx, done_rx) = watch::channel(false);
    let mut conns = Vec::with_capacity(args.consumers);
    let mut tasks = JoinSet::new();
    for c in 0..args.consumers {
        // A connection per consumer, as RabbitMQ's own PerfTest does by
        // default: each connection has its own socket and its own reader and
        // writer processes in the broker (and its own I/O loop in lapin), so
        // consumers do not queue behind each other's frames on one socket.
        let conn = connect(&args.url, &format!("brook-bench-consumer-{c}")).await?;
        let ch = conn
            .create_channel()
            .await
            .with_context(|| format!("consumer {c} channel"))?;
        ch.basic_qos(args.prefetch, BasicQosOptions::default())
            .await
            .with_context(|| format!("consumer {c} basic.qos"))?;
        conns.push(conn);
        let consumer = Consumer {
            ch,
            queue: queue.to_string(),
            tag: format!("brook-bench-{c}"),
            size: args.size,
            ack_batch: args.ack_batch,
            linger: Duration::from_millis(args.ack_linger_ms),
        };
        let (start, shared, done) = (start.clone(), shared.clone(), done_rx.clone());
        tasks.spawn(async move { consumer.run(start, shared, done).await });
    }
    start.wait().await;
    let started = Instant::now();
    tokio::select! {
        _ = shared.all_acked.notified() => {}
        _ = tokio::time::sleep(timeout) => bail!("consume phase timed out"),
        // A consumer that fails ends the run rather than leaving it waiting.
        Some(res) = tasks.join_next() => {
            res.context("consumer task panicked")??;
            bail!("a consumer stopped before every record was acked");
        }
    }
    loop {
        let ready = declare(admin_ch, queue, true).await?.message_count();
        if ready == 0 {
            break;
        }
        // Only a redelivery puts a message back to ready here; the checks
        // below name it. Poll briefly rather than stop the clock early.
        tokio::time::sleep(Duration::from_millis(1)).await;
        ensure!(
            started.elapsed() < timeout,
            "queue still holds {ready} ready messages"
        );
    }
    let elapsed = started.elapsed();
    let _ = done_tx.send(true);
    let mut latency = new_histogram();
    let (mut delivered, mut redelivered, mut bytes) = (0u64, 0u64, 0u64);
    while let Some(res) = tasks.join_next().await {
        let stats = res.context("consumer task panicked")??;
        delivered += stats.delivered;
        redelivered += stats.redelivered;
        bytes += stats.bytes;
        latency.add(&stats.latency).context("merging histograms")?;
    }
    ensure!(
        delivered == args.records && redelivered == 0,
        "consumers got {delivered} deliveries ({redelivered} redelivered) of {} records",
        args.records
    );
    ensure!(
        bytes == args.records * args.size as u64,
        "consumers got {bytes} bytes of values, expected {}",
        args.records * args.size as u64
    );
    ensure!(
        latency.len() == args.records,
        "{} latencies recorded for {} records",
        latency.len(),
        args.records
    );
    for conn in &conns {
        close(conn, "consumer").await;
    }
    check_drained(admin_ch, queue).await?;
    Ok((elapsed, latency))
}

/// Waits (up to 10 s) until the queue has no consumer, then requires it to
/// hold no message: a quorum queue returns a gone consumer's unacked
/// messages in the same step that removes the consumer.
async fn check_drained(admin_ch: &Channel, queue: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let q = declare(admin_ch, queue, true).await?;
        if q.consumer_count() == 0 {
            ensure!(
                q.message_count() == 0,
                "the queue holds {} messages once its consumers are gone",
                q.message_count()
            );
            return Ok(());
        }
        ensure!(
            Instant::now() < deadline,
            "the queue still has {} consumers 10 s after they closed",
            q.consumer_count()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One consumer: its channel and how it acks.
struct Consumer {
    ch: Channel,
    queue: String,
    tag: String,
    size: usize,
    ack_batch: usize,
    linger: Duration,
}

impl Consumer {
    /// Consumes until told `done`, acking in batches; what it saw.
    async fn run(
        self,
        start: Arc<Barrier>,
        shared: Arc<Shared>,
        mut done: watch::Receiver<bool>,
    ) -> anyhow::Result<ConsumerStats> {
        start.wait().await;
        let mut deliveries = self
            .ch
            .basic_consume(
                self.queue.as_str().into(),
                self.tag.as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("{} basic.consume", self.tag))?;
        let mut stats = ConsumerStats {
            delivered: 0,
            redelivered: 0,
            bytes: 0,
            latency: new_histogram(),
        };
        // When each pending (delivered, not yet acked) delivery arrived, and
        // the newest one's tag: one ack with multiple=true covers them all.
        let mut pending: Vec<Instant> = Vec::with_capacity(self.ack_batch);
        let mut last_tag = 0;
        // One timer, re-armed when a delivery makes `pending` non-empty,
        // rather than a new one per delivery.
        let linger = tokio::time::sleep(Duration::ZERO);
        tokio::pin!(linger);
        loop {
            tokio::select! {
                biased;
                _ = done.changed() => break,
                () = &mut linger, if !pending.is_empty() => {
                    self.ack(last_tag, &mut pending, &mut stats, &shared).await?;
                }
                delivery = deliveries.next() => {
                    let d = delivery
                        .with_context(|| format!("{}: the broker ended the consumer", self.tag))?
                        .with_context(|| format!("{} delivery", self.tag))?;
                    let now = Instant::now();
                    if pending.is_empty() {
                        linger.as_mut().reset((now + self.linger).into());
                    }
                    pending.push(now);
                    last_tag = d.delivery_tag;
                    stats.delivered += 1;
                    stats.redelivered += u64::from(d.redelivered);
                    stats.bytes += d.data.len() as u64;
                    ensure!(
                        d.data.len() == self.size,
                        "{}: a {}-byte value, expected {}",
                        self.tag,
                        d.data.len(),
                        self.size
                    );
                    if pending.len() >= self.ack_batch {
                        self.ack(last_tag, &mut pending, &mut stats, &shared).await?;
                    }
                }
            }
        }
        ensure!(
            pending.is_empty(),
            "{}: {} deliveries left unacked",
            self.tag,
            pending.len()
        );
        // Closed here, awaited, while the consumer is still registered:
        // dropping a lapin channel or consumer closes or cancels it in the
        // background, which raced with closing the connection (seen once: the
        // connection close never completed).
        match tokio::time::timeout(CLOSE_TIMEOUT, self.ch.close(200, "consumed".into())).await {
            Ok(res) => res.with_context(|| format!("{} channel.close", self.tag))?,
            Err(_) => bail!("{}: channel.close timed out", self.tag),
        }
        drop(deliveries);
        Ok(stats)
    }

    /// Acks everything up to `tag` with one `basic.ack(multiple=true)`, and
    /// records each covered delivery's wait once the ack is on the socket.
    async fn ack(
        &self,
        tag: u64,
        pending: &mut Vec<Instant>,
        stats: &mut ConsumerStats,
        shared: &Shared,
    ) -> anyhow::Result<()> {
        self.ch
            .basic_ack(tag, BasicAckOptions { multiple: true })
            .await
            .with_context(|| format!("{} basic.ack up to {tag}", self.tag))?;
        let sent = Instant::now();
        for arrived in pending.iter() {
            // Saturates at the top bound rather than failing the run.
            let us = sent.duration_since(*arrived).as_micros().max(1) as u64;
            stats.latency.saturating_record(us);
        }
        let n = pending.len() as u64;
        pending.clear();
        if shared.acked.fetch_add(n, Ordering::AcqRel) + n >= shared.records {
            // notify_one keeps a permit if the main task is not waiting yet.
            shared.all_acked.notify_one();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_line_fields_and_formats() {
        let mut latency = new_histogram();
        latency.record(100).unwrap();
        let r = Report {
            consumers: 4,
            records: 1000,
            publish: Duration::from_millis(500),
            consume: Duration::from_secs(2),
            latency,
            server_peak_rss_kib: Some(123),
        };
        assert_eq!(
            r.json(),
            "{\"workload\":\"rabbitmq-queue\",\"consumers\":4,\"records\":1000,\"published_per_s\":2000,\"acked_per_s\":500,\"seconds\":2.000,\"p50_us\":100,\"p99_us\":100,\"p999_us\":100,\"server_peak_rss_kib\":123}"
        );
    }

    #[test]
    fn payloads_differ_per_record() {
        assert_eq!(payload(0, 1024).len(), 1024);
        assert_ne!(payload(0, 16), payload(1, 16));
        assert_eq!(payload(0, 4), vec![0, 1, 2, 3]);
    }

    #[test]
    fn reads_own_peak_rss() {
        assert!(peak_rss_kib(std::process::id()).is_some_and(|k| k > 0));
        assert_eq!(peak_rss_kib(u32::MAX), None);
    }
}
