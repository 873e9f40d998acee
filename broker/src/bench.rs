//! `brook bench`: load against a running broker, like kafka-producer-perf-test
//! and iggy-bench. Reports msgs/s, MiB/s, latency percentiles (HDR
//! histogram), the broker's peak memory when it can read it, and a baseline
//! measured in the same run: this machine's sequential write bandwidth for
//! the same byte count (like `dd conv=fdatasync`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;
use brook_client::{Acks, Client, ConsumerConfig, ProducerConfig, StartFrom};
use bytes::Bytes;
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use hdrhistogram::Histogram;
use tokio::sync::mpsc;

/// `brook bench` flags.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Broker address.
    #[arg(
        long,
        env = "BROOK_URL",
        default_value = "http://127.0.0.1:9292",
        global = true
    )]
    pub url: String,
    /// PEM CA to trust for an https:// broker (default: the system's roots).
    #[arg(long, env = "BROOK_TLS_CA", global = true)]
    pub tls_ca: Option<PathBuf>,
    /// Topic to use (created with --partitions if missing).
    #[arg(long, default_value = "bench", global = true)]
    pub topic: String,
    /// Partitions of the topic when it is created.
    #[arg(long, default_value_t = 8, global = true)]
    pub partitions: u32,
    /// Print one JSON object instead of the human summary.
    #[arg(long, global = true)]
    pub json: bool,
    /// The broker's pid, to report its peak memory (found by name if omitted).
    #[arg(long, global = true)]
    pub broker_pid: Option<u32>,
    /// The workload.
    #[command(subcommand)]
    pub workload: Workload,
}

/// What to measure.
#[derive(Debug, clap::Subcommand)]
pub enum Workload {
    /// Send records and wait for every ack.
    ///
    /// W1: brook bench produce --messages 1000000 --size 1024 --keys 10000 --partitions 8
    /// W3: brook bench produce --messages 20000 --size 1024 --sync
    Produce(ProduceArgs),
    /// Read records from the start of every partition.
    ///
    /// W2: brook bench consume --messages 1000000
    Consume(ConsumeArgs),
    /// Produce and consume at once; latency is from send to receipt.
    E2e(ProduceArgs),
}

/// Producer workload flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ProduceArgs {
    /// Records to send.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Value size in bytes.
    #[arg(long, default_value_t = 1024)]
    pub size: usize,
    /// Distinct keys (aggregates); 0 sends without keys.
    #[arg(long, default_value_t = 10_000)]
    pub keys: u64,
    /// Concurrent producers (each with its own client connection).
    #[arg(long, default_value_t = 1)]
    pub producers: u32,
    /// written or durable.
    #[arg(long, default_value = "written")]
    pub acks: String,
    /// Batch size in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub batch: usize,
    /// Linger in ms.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Batches in flight per producer (1: one batch in flight).
    #[arg(long, default_value_t = 1)]
    pub in_flight: usize,
    /// Await each send before the next (single-record latency, W3).
    #[arg(long)]
    pub sync: bool,
    /// Where the write-bandwidth baseline writes its file (default: the temp dir).
    #[arg(long)]
    pub baseline_dir: Option<PathBuf>,
}

/// Consumer workload flags.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsumeArgs {
    /// Records to read.
    #[arg(long, default_value_t = 1_000_000)]
    pub messages: u64,
    /// Bytes per fetch.
    #[arg(long, default_value_t = 4 << 20)]
    pub fetch_bytes: u32,
}

struct Report {
    workload: &'static str,
    messages: u64,
    bytes: u64,
    elapsed: Duration,
    latency: Option<Histogram<u64>>,
    baseline_mib_s: Option<f64>,
    /// The same writes without the sync: the page cache's bandwidth here.
    buffered_baseline_mib_s: Option<f64>,
    broker_peak_rss_kib: Option<u64>,
    /// Anonymous (heap) memory now: RSS less the mapped file pages, which are page cache.
    broker_rss_anon_kib: Option<u64>,
}

impl Report {
    fn print(&self, json: bool) {
        let secs = self.elapsed.as_secs_f64();
        let (msgs, mib) = (
            self.messages as f64 / secs,
            self.bytes as f64 / (1 << 20) as f64 / secs,
        );
        let pct = |q: f64| self.latency.as_ref().map(|h| h.value_at_quantile(q));
        if json {
            let opt = |v: Option<u64>| v.map_or("null".to_string(), |v| v.to_string());
            let optf = |v: Option<f64>| v.map_or("null".to_string(), |v| format!("{v:.1}"));
            println!(
                "{{\"workload\":\"{}\",\"messages\":{},\"seconds\":{secs:.3},\"msgs_per_s\":{msgs:.0},\"mib_per_s\":{mib:.1},\"p50_us\":{},\"p99_us\":{},\"p999_us\":{},\"baseline_write_mib_per_s\":{},\"baseline_buffered_mib_per_s\":{},\"broker_peak_rss_kib\":{},\"broker_rss_anon_kib\":{}}}",
                self.workload,
                self.messages,
                opt(pct(0.5)),
                opt(pct(0.99)),
                opt(pct(0.999)),
                optf(self.baseline_mib_s),
                optf(self.buffered_baseline_mib_s),
                opt(self.broker_peak_rss_kib),
                opt(self.broker_rss_anon_kib),
            );
            return;
        }
        println!(
            "{}: {} records in {secs:.2} s = {msgs:.0} msgs/s, {mib:.1} MiB/s",
            self.workload, self.messages
        );
        if let Some(h) = &self.latency {
            println!(
                "  latency p50 {} µs, p99 {} µs, p999 {} µs, max {} µs",
                h.value_at_quantile(0.5),
                h.value_at_quantile(0.99),
                h.value_at_quantile(0.999),
                h.max()
            );
        }
        if let Some(b) = self.baseline_mib_s {
            println!(
                "  baseline: sequential write + fdatasync of the same bytes {b:.1} MiB/s; this run = {:.2}x of it",
                mib / b
            );
        }
        if let Some(b) = self.buffered_baseline_mib_s {
            println!(
                "  baseline: the same writes without the sync (page cache) {b:.1} MiB/s; this run = {:.2}x of it",
                mib / b
            );
        }
        if let Some(kib) = self.broker_peak_rss_kib {
            let anon = self.broker_rss_anon_kib.map_or(String::new(), |a| {
                format!(
                    " (of which heap now {:.1} MiB; the rest is mapped page cache)",
                    a as f64 / 1024.0
                )
            });
            println!("  broker peak RSS {:.1} MiB{anon}", kib as f64 / 1024.0);
        }
    }
}

/// Where the broker is and how to reach it; every connection of a run is made from it.
#[derive(Clone)]
struct Target {
    url: String,
    tls_ca: Option<std::sync::Arc<Vec<u8>>>,
}

impl Target {
    fn new(args: &BenchArgs) -> anyhow::Result<Target> {
        let tls_ca = args
            .tls_ca
            .as_deref()
            .map(crate::cli::read_ca)
            .transpose()?;
        Ok(Target {
            url: args.url.clone(),
            tls_ca: tls_ca.map(std::sync::Arc::new),
        })
    }

    async fn connect(&self) -> anyhow::Result<Client> {
        crate::cli::connect(&self.url, self.tls_ca.as_deref().map(Vec::as_slice))
            .await
            .with_context(|| format!("connecting to {}", self.url))
    }
}

/// Runs the chosen workload.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let target = Target::new(&args)?;
    let client = target.connect().await?;
    ensure_topic(&client, &args.topic, args.partitions).await?;
    let mut report = match &args.workload {
        Workload::Produce(p) => produce(&args, &target, p).await?,
        Workload::Consume(c) => consume(&client, &args.topic, c, args.json).await?,
        Workload::E2e(p) => e2e(&args, &client, p).await?,
    };
    let pid = args.broker_pid.or_else(find_broker);
    report.broker_peak_rss_kib = proc_status_kib(pid, "VmHWM:");
    report.broker_rss_anon_kib = proc_status_kib(pid, "RssAnon:");
    report.print(args.json);
    Ok(())
}

async fn ensure_topic(client: &Client, topic: &str, partitions: u32) -> anyhow::Result<()> {
    match client.admin().describe_topic(topic).await {
        Ok(_) => Ok(()),
        Err(e) if e.code() == Some(tonic::Code::NotFound) => {
            client.admin().create_topic(topic, partitions).await?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

fn producer_config(p: &ProduceArgs) -> anyhow::Result<ProducerConfig> {
    let acks = match p.acks.as_str() {
        "written" => Acks::Written,
        "durable" => Acks::Durable,
        other => anyhow::bail!("--acks must be written or durable, not {other:?}"),
    };
    Ok(ProducerConfig {
        linger: if p.sync {
            Duration::ZERO
        } else {
            Duration::from_millis(p.linger_ms)
        },
        batch_bytes: p.batch,
        max_in_flight: p.in_flight.max(1),
        acks,
        ..ProducerConfig::default()
    })
}

/// Records sent or received so far, for the progress line.
static DONE: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Prints `label: done/total` on stderr every second until dropped (nothing with --json).
struct Progress(Option<tokio::task::JoinHandle<()>>);

impl Progress {
    fn start(label: &'static str, total: u64, quiet: bool) -> Progress {
        DONE.store(0, std::sync::atomic::Ordering::Relaxed);
        if quiet {
            return Progress(None);
        }
        Progress(Some(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let n = DONE.load(std::sync::atomic::Ordering::Relaxed);
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

/// One record in this many has its ack latency measured (W1/W2-style runs).
const LATENCY_SAMPLE: u64 = 16;

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid histogram bounds")
}

/// Sends this producer's share; returns the send-to-ack latency histogram.
async fn produce_share(
    target: Target,
    topic: String,
    p: ProduceArgs,
    first: u64,
    count: u64,
) -> anyhow::Result<Histogram<u64>> {
    let client = target.connect().await?;
    let producer = client.producer(producer_config(&p)?);
    let value = Bytes::from(vec![0x42u8; p.size]);
    let keys: Vec<Bytes> = (0..p.keys)
        .map(|k| Bytes::from(format!("aggregate-{k:06}")))
        .collect();
    let mut hist = new_histogram();
    if p.sync {
        for i in first..first + count {
            let key = keys.get((i % p.keys.max(1)) as usize).cloned();
            let t = Instant::now();
            producer.send(&topic, key, value.clone()).await?.await?;
            DONE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            hist.record(t.elapsed().as_micros().max(1) as u64)?;
        }
        return Ok(hist);
    }
    // Acks are collected concurrently so that each latency is measured when it completes.
    let (tx, mut rx) = mpsc::channel::<(Instant, brook_client::Delivery)>(64 << 10);
    let collector = tokio::spawn(async move {
        let mut pending = FuturesUnordered::new();
        let mut hist = new_histogram();
        let mut open = true;
        loop {
            tokio::select! {
                item = rx.recv(), if open => match item {
                    Some((t, d)) => pending.push(async move { (t, d.await) }),
                    None => open = false,
                },
                Some((t, r)) = pending.next(), if !pending.is_empty() => {
                    r?;
                    hist.record(t.elapsed().as_micros().max(1) as u64)?;
                }
                else => return Ok::<_, anyhow::Error>(hist),
            }
        }
    });
    for i in first..first + count {
        let key = keys.get((i % p.keys.max(1)) as usize).cloned();
        let t = Instant::now();
        let d = producer.send(&topic, key, value.clone()).await?;
        DONE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        // Latency is sampled (every LATENCY_SAMPLE-th record, like
        // kafka-producer-perf-test's sampling) so that measuring costs little
        // next to sending; that every record was stored is checked after.
        if i % LATENCY_SAMPLE != 0 {
            continue;
        }
        if tx.send((t, d)).await.is_err() {
            // The collector stopped on a failed ack: report that failure.
            collector.await??;
            anyhow::bail!("ack collector stopped");
        }
    }
    drop(tx);
    producer.flush().await?;
    collector.await?
}

/// Sum of the topic's partition end offsets.
async fn client_end_offsets(target: &Target, topic: &str) -> anyhow::Result<u64> {
    let d = target
        .connect()
        .await?
        .admin()
        .describe_topic(topic)
        .await?;
    Ok(d.partitions.iter().map(|p| p.log_end_offset).sum())
}

async fn produce(args: &BenchArgs, target: &Target, p: &ProduceArgs) -> anyhow::Result<Report> {
    let progress = Progress::start("sent", p.messages, args.json);
    let before = client_end_offsets(target, &args.topic).await?;
    let started = Instant::now();
    let mut tasks = Vec::new();
    let per = p.messages / u64::from(p.producers.max(1));
    for i in 0..u64::from(p.producers.max(1)) {
        let count = if i + 1 == u64::from(p.producers.max(1)) {
            p.messages - per * i
        } else {
            per
        };
        tasks.push(tokio::spawn(produce_share(
            target.clone(),
            args.topic.clone(),
            p.clone(),
            per * i,
            count,
        )));
    }
    let mut hist = new_histogram();
    for t in tasks {
        hist.add(t.await??)?;
    }
    let elapsed = started.elapsed();
    drop(progress);
    let stored: u64 = client_end_offsets(target, &args.topic).await?;
    anyhow::ensure!(
        stored >= before + p.messages,
        "only {} of {} records were stored (the sampled acks did not show the failure)",
        stored.saturating_sub(before),
        p.messages
    );
    let bytes = p.messages * p.size as u64;
    let (buffered, baseline) = write_baseline(p.baseline_dir.clone(), bytes).await?;
    let workload = if p.sync {
        "produce (each send awaited)"
    } else {
        "produce"
    };
    Ok(Report {
        workload,
        messages: p.messages,
        bytes,
        elapsed,
        latency: Some(hist),
        baseline_mib_s: Some(baseline),
        buffered_baseline_mib_s: Some(buffered),
        broker_peak_rss_kib: None,
        broker_rss_anon_kib: None,
    })
}

async fn consume(
    client: &Client,
    topic: &str,
    c: &ConsumeArgs,
    quiet: bool,
) -> anyhow::Result<Report> {
    let _progress = Progress::start("received", c.messages, quiet);
    let partitions: Vec<u32> =
        (0..client.admin().describe_topic(topic).await?.partitions.len() as u32).collect();
    let config = ConsumerConfig {
        auto_commit: None,
        start_from: StartFrom::Earliest,
        fetch_max_bytes: c.fetch_bytes,
        ..ConsumerConfig::new("brook-bench", &[topic])
    };
    let started = Instant::now();
    let mut consumer = client.consumer_assigned(config, topic, &partitions).await?;
    let (mut n, mut bytes) = (0u64, 0u64);
    while n < c.messages {
        let r = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .with_context(|| {
                format!("no record for 30 s after {n}: does the topic hold --messages records?")
            })??;
        bytes += r.value.as_ref().map_or(0, |v| v.len() as u64);
        n += 1;
        DONE.store(n, std::sync::atomic::Ordering::Relaxed);
    }
    Ok(Report {
        workload: "consume",
        messages: n,
        bytes,
        elapsed: started.elapsed(),
        latency: None,
        baseline_mib_s: None,
        buffered_baseline_mib_s: None,
        broker_peak_rss_kib: None,
        broker_rss_anon_kib: None,
    })
}

async fn e2e(args: &BenchArgs, client: &Client, p: &ProduceArgs) -> anyhow::Result<Report> {
    let partitions: Vec<u32> = (0..client
        .admin()
        .describe_topic(&args.topic)
        .await?
        .partitions
        .len() as u32)
        .collect();
    let config = ConsumerConfig {
        auto_commit: None,
        start_from: StartFrom::Latest,
        ..ConsumerConfig::new("brook-bench-e2e", &[&args.topic])
    };
    let mut consumer = client
        .consumer_assigned(config, &args.topic, &partitions)
        .await?;
    // Let the fetchers settle on the log end before sending.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let base = Instant::now();
    let producer = client.producer(producer_config(p)?);
    let (size, messages, keys, topic) =
        (p.size.max(8), p.messages, p.keys.max(1), args.topic.clone());
    let sender = tokio::spawn(async move {
        for i in 0..messages {
            let mut v = vec![0u8; size];
            v[..8].copy_from_slice(&(base.elapsed().as_nanos() as u64).to_be_bytes());
            producer
                .send(&topic, Some(format!("aggregate-{:06}", i % keys)), v)
                .await?;
        }
        producer.flush().await?;
        Ok::<_, anyhow::Error>(())
    });
    let started = Instant::now();
    let mut hist = new_histogram();
    for n in 0..messages {
        let r = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .with_context(|| format!("stalled after {n} records"))??;
        let v = r.value.unwrap_or_default();
        let sent = u64::from_be_bytes(v.get(..8).and_then(|b| b.try_into().ok()).unwrap_or([0; 8]));
        let now = base.elapsed().as_nanos() as u64;
        hist.record((now.saturating_sub(sent) / 1000).max(1))?;
    }
    sender.await??;
    Ok(Report {
        workload: "e2e",
        messages,
        bytes: messages * size as u64,
        elapsed: started.elapsed(),
        latency: Some(hist),
        baseline_mib_s: None,
        buffered_baseline_mib_s: None,
        broker_peak_rss_kib: None,
        broker_rss_anon_kib: None,
    })
}

/// Sequential write of `bytes` in 1 MiB writes into a new file, then
/// fdatasync: what the machine does alone. Returns the bandwidth of the
/// writes alone (page cache) and of writes + sync (disk), in MiB/s.
async fn write_baseline(dir: Option<PathBuf>, bytes: u64) -> anyhow::Result<(f64, f64)> {
    tokio::task::spawn_blocking(move || {
        use std::io::Write;
        let dir = dir.unwrap_or_else(std::env::temp_dir);
        let path = dir.join(format!("brook-bench-baseline-{}", std::process::id()));
        let buf = vec![0x42u8; 1 << 20];
        let started = Instant::now();
        let mut f = std::fs::File::create(&path)?;
        let mut left = bytes;
        while left > 0 {
            let n = left.min(buf.len() as u64) as usize;
            f.write_all(&buf[..n])?;
            left -= n as u64;
        }
        let written = started.elapsed().as_secs_f64();
        f.sync_data()?;
        let synced = started.elapsed().as_secs_f64();
        drop(f);
        std::fs::remove_file(&path)?;
        let mib = bytes as f64 / (1 << 20) as f64;
        Ok((mib / written, mib / synced))
    })
    .await?
}

/// A `kB` field of the broker's /proc status (VmHWM: peak RSS; RssAnon: heap).
fn proc_status_kib(pid: Option<u32>, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{}/status", pid?)).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// The one `brook serve` process on this machine, if there is exactly one.
fn find_broker() -> Option<u32> {
    let found: Vec<u32> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
                let args: Vec<&[u8]> = c.split(|b| *b == 0).collect();
                args.first().is_some_and(|a| a.ends_with(b"brook"))
                    && args.iter().any(|a| *a == b"serve")
            })
        })
        .collect();
    (found.len() == 1).then(|| found[0])
}
