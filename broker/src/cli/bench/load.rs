//! `brook bench load`: many connections at once, as a shared broker sees
//! them. Measures the fast producers' throughput alone, then again while
//! `--connections` other clients (idle producers, long-polling fetchers,
//! subscribers, and `--slow` subscribers that read one message a second
//! and so leave the broker holding what they have not read) are connected
//! and working. Reports both rates, their ratio, every request error, and
//! the broker's peak memory.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use brook_client::proto as v1;
use brook_client::{Acks, Client, ConsumerConfig, ProducerConfig, StartFrom};
use tokio::task::JoinSet;
use tokio_stream::StreamExt;

use super::BenchArgs;
use crate::cli::connection::Target;

/// `brook bench load` flags.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct LoadArgs {
    /// Background connections (each its own client and TCP connection).
    #[arg(long, default_value_t = 1000)]
    pub(crate) connections: u32,
    /// Of those, subscribers that read one message per second.
    #[arg(long, default_value_t = 50)]
    pub(crate) slow: u32,
    /// Fast producers, measured alone and under load.
    #[arg(long, default_value_t = 2)]
    pub(crate) fast_producers: u32,
    /// Seconds each measurement lasts.
    #[arg(long, default_value_t = 10)]
    pub(crate) seconds: u64,
    /// Value size of the fast producers' records.
    #[arg(long, default_value_t = 1024)]
    pub(crate) size: usize,
}

/// What every background client counts.
#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    errors: AtomicU64,
}

impl Counts {
    /// Counts a request whose answer is not needed.
    fn note<T, E: std::fmt::Display>(&self, r: Result<T, E>) {
        let _ = self.count(r);
    }

    fn count<T, E: std::fmt::Display>(&self, r: Result<T, E>) -> Option<T> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        match r {
            Ok(v) => Some(v),
            Err(e) => {
                if self.errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("request error: {e}");
                }
                None
            }
        }
    }
}

/// The fast producers for `seconds`: records acknowledged per second.
async fn fast_rate(
    target: &Target,
    topic: &str,
    args: &LoadArgs,
    counts: &Arc<Counts>,
) -> anyhow::Result<f64> {
    let value = vec![b'x'; args.size];
    let deadline = Instant::now() + Duration::from_secs(args.seconds);
    let acked = Arc::new(AtomicU64::new(0));
    let mut tasks = JoinSet::new();
    for i in 0..args.fast_producers {
        let client = target.connect().await?;
        let (topic, value, acked, counts) = (
            topic.to_string(),
            value.clone(),
            Arc::clone(&acked),
            Arc::clone(counts),
        );
        tasks.spawn(async move {
            let config = ProducerConfig {
                acks: Acks::Written,
                max_in_flight: 4,
                ..Default::default()
            };
            let producer = client.producer(config);
            let mut pending = std::collections::VecDeque::new();
            let mut n = 0u64;
            while Instant::now() < deadline {
                let key = format!("{i}-{}", n % 1000);
                n += 1;
                match producer
                    .send(&topic, Some(key.as_str()), value.clone())
                    .await
                {
                    Ok(delivery) => pending.push_back(delivery),
                    Err(e) => counts.note::<(), _>(Err(e)),
                }
                // Bounded: a window of unacknowledged sends per producer.
                while pending.len() > 10_000 {
                    let done = pending.pop_front().expect("not empty").await;
                    if counts.count(done).is_some() {
                        acked.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            for delivery in pending {
                if counts.count(delivery.await).is_some() {
                    acked.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    let started = Instant::now();
    while tasks.join_next().await.is_some() {}
    Ok(acked.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64())
}

/// The topics of the run: the fast producers' (which the slow consumers
/// read), one nobody writes (fetchers and subscribers wait at its end),
/// and the idle producers'.
#[derive(Clone)]
struct Topics {
    busy: String,
    quiet: String,
    ticks: String,
}

/// One background client of kind `i % 3` (or slow), until `stop`.
async fn background(
    i: u32,
    slow: bool,
    target: Target,
    url: String,
    topics: Topics,
    counts: Arc<Counts>,
    stop: tokio::sync::watch::Receiver<bool>,
) {
    let Topics { quiet, busy, ticks } = topics;
    let stopped = |stop: &tokio::sync::watch::Receiver<bool>| *stop.borrow();
    let channel = match tonic::transport::Channel::from_shared(url).map(|e| e.connect_lazy()) {
        Ok(c) => c,
        Err(e) => return counts.note::<(), _>(Err(e)),
    };
    if slow || i % 3 == 2 {
        // A subscriber: the slow ones read the busy topic from its start,
        // one message a second; the others wait for the quiet topic's news.
        let mut consumer = v1::consumer_client::ConsumerClient::new(channel);
        let (topic, position) = match slow {
            true => (
                busy,
                v1::start_position::Position::Earliest(v1::Earliest {}),
            ),
            false => (quiet, v1::start_position::Position::Latest(v1::Latest {})),
        };
        let req = v1::SubscribeRequest {
            topic,
            start: Some(v1::StartPosition {
                position: Some(position),
            }),
            // A consumer that takes small bites, slowly.
            max_bytes: 64 << 10,
            ..Default::default()
        };
        let Some(stream) = counts.count(consumer.subscribe(req).await) else {
            return;
        };
        let mut stream = stream.into_inner();
        while !stopped(&stop) {
            let next = tokio::time::timeout(Duration::from_secs(1), stream.next()).await;
            match next {
                Ok(Some(msg)) => counts.note(msg),
                Ok(None) => return,
                Err(_) => {}
            }
            if slow {
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
        return;
    }
    let client = match target.connect().await {
        Ok(c) => c,
        Err(e) => return counts.note::<(), _>(Err(e)),
    };
    if i.is_multiple_of(3) {
        // An idle producer: one small record every two seconds.
        let producer = client.producer(ProducerConfig::default());
        while !stopped(&stop) {
            let sent = producer.send(&ticks, Some("k"), "tick").await;
            if let Some(delivery) = counts.count(sent) {
                counts.note(delivery.await);
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    } else {
        // A fetcher, long-polling at the quiet topic's end.
        let config = ConsumerConfig {
            start_from: StartFrom::Latest,
            fetch_max_wait: Duration::from_secs(1),
            auto_commit: None,
            ..ConsumerConfig::new(format!("load-fetcher-{i}"), &[quiet.as_str()])
        };
        let Some(mut consumer) = counts.count(client.consumer_assigned(config, &quiet, &[0]).await)
        else {
            return;
        };
        while !stopped(&stop) {
            if let Ok(r) = tokio::time::timeout(Duration::from_secs(1), consumer.recv()).await {
                counts.note(r);
            }
        }
    }
}

/// Runs `brook bench load`.
pub(crate) async fn load(args: &BenchArgs, target: &Target, load: &LoadArgs) -> anyhow::Result<()> {
    let client: Client = target.connect().await?;
    let topics = Topics {
        busy: args.topic.clone(),
        quiet: format!("{}-quiet", args.topic),
        ticks: format!("{}-ticks", args.topic),
    };
    super::ensure_topic(&client, &topics.quiet, 1).await?;
    super::ensure_topic(&client, &topics.ticks, 8).await?;
    let (counts, fast) = (Arc::new(Counts::default()), Arc::new(Counts::default()));
    // Measured alone before and after the loaded run (A-B-A), after a
    // warm-up: the first seconds of a fresh broker and page cache are
    // slower, and the machine's noise shows as the two alone runs' spread.
    eprintln!("warm-up, 3 s ...");
    let warm_up = LoadArgs {
        seconds: 3,
        ..load.clone()
    };
    fast_rate(target, &topics.busy, &warm_up, &fast).await?;
    eprintln!("fast producers alone, {} s ...", load.seconds);
    let alone = fast_rate(target, &topics.busy, load, &fast).await?;

    eprintln!("opening {} connections ...", load.connections);
    let (stop_tx, stop) = tokio::sync::watch::channel(false);
    let mut tasks = JoinSet::new();
    for i in 0..load.connections {
        let slow = i < load.slow;
        tasks.spawn(background(
            i,
            slow,
            target.clone(),
            target.url().to_string(),
            topics.clone(),
            Arc::clone(&counts),
            stop.clone(),
        ));
    }
    // Every connection made and working before the measurement.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let background_before = counts.requests.load(Ordering::Relaxed);
    eprintln!("fast producers under load, {} s ...", load.seconds);
    let loaded = fast_rate(target, &topics.busy, load, &fast).await?;
    let background_requests = counts.requests.load(Ordering::Relaxed) - background_before;
    stop_tx.send_replace(true);
    while tasks.join_next().await.is_some() {}
    eprintln!("fast producers alone again, {} s ...", load.seconds);
    let alone_after = fast_rate(target, &topics.busy, load, &fast).await?;
    let alone_mean = (alone + alone_after) / 2.0;

    let pid = args.broker_pid.or_else(super::memory::find_broker);
    let peak = super::memory::proc_status_kib(pid, "VmHWM:");
    let anon = super::memory::proc_status_kib(pid, "RssAnon:");
    let report = serde_json::json!({
        "workload": "load",
        "connections": load.connections,
        "slow_consumers": load.slow,
        "fast_producers": load.fast_producers,
        "record_bytes": load.size,
        "fast_records_per_sec_alone_before": alone.round(),
        "fast_records_per_sec_under_load": loaded.round(),
        "fast_records_per_sec_alone_after": alone_after.round(),
        "under_load_ratio": (loaded / alone_mean * 1000.0).round() / 1000.0,
        "requests_during_load": background_requests,
        "fast_requests": fast.requests.load(Ordering::Relaxed),
        "request_errors": counts.errors.load(Ordering::Relaxed) + fast.errors.load(Ordering::Relaxed),
        "broker_peak_rss_kib": peak,
        "broker_rss_anon_kib_at_end": anon,
    });
    match args.json {
        true => println!("{report}"),
        false => println!("{}", serde_json::to_string_pretty(&report)?),
    }
    Ok(())
}
