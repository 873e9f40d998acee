//! The console's memory of the last hour: produce and fetch rates, each
//! consumer group's lag per partition, each queue group's depths, sampled
//! every `--console-history-interval-ms` into bounded rings. Nothing is
//! written to disk: history starts when the broker does.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brook_storage::now_ms;

use crate::metrics::{Metrics, TopicLabels};
use crate::state::Broker;

/// The most points a series keeps (an hour at the default 10 s).
const MAX_POINTS: usize = 360;
/// How far back a series reaches.
const SPAN: Duration = Duration::from_secs(3600);

/// Records and bytes per second, produced and fetched, at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Rates {
    /// Records appended per second.
    pub produce_records: f64,
    /// Batch bytes appended per second.
    pub produce_bytes: f64,
    /// Records sent to consumers per second.
    pub fetch_records: f64,
    /// Batch bytes sent to consumers per second.
    pub fetch_bytes: f64,
}

/// One partition's lag at one moment.
#[derive(Clone, Debug, PartialEq)]
pub struct PartitionLag {
    /// The topic.
    pub topic: Arc<str>,
    /// The partition.
    pub partition: u32,
    /// Records behind the log end.
    pub lag_records: u64,
    /// How old the first record not consumed is (ms).
    pub lag_ms: i64,
}

/// A consumer group's lag at one moment: per topic, and per partition only
/// for a group that reads at most [`MAX_PARTITIONS_CHARTED`] partitions (an
/// hour of points for thousands of partitions would take more memory than
/// the chart is worth).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct GroupLag {
    /// Per topic: records behind (summed) and the oldest lag (ms).
    pub topics: Vec<(Arc<str>, u64, i64)>,
    /// Per partition, or empty.
    pub partitions: Vec<PartitionLag>,
}

/// The most partitions of one group whose lag history is kept one by one.
pub const MAX_PARTITIONS_CHARTED: usize = 32;
/// The most topics of one group whose lag history is kept: a group reading
/// more has none (its lag is still on the groups page and in the metrics).
pub const MAX_TOPICS_CHARTED: usize = 32;
/// The most partition series over all groups (the first groups by name
/// first): 2048 series of 360 points of about 40 bytes are some 30 MB.
const MAX_PARTITION_SERIES: usize = 2048;
/// The most topic series over all groups (about 32 bytes a point): 2048
/// series of 360 points are some 24 MB; groups past it have no history.
const MAX_TOPIC_SERIES: usize = 2048;
/// The most groups with a history (the first by name): their points'
/// own overhead (some 50 bytes each) is some 9 MB.
pub const MAX_GROUPS_CHARTED: usize = 500;

/// A queue group's depths at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct QueueDepths {
    /// Records in the dead-letter topic not yet redriven.
    pub dlq_depth: u64,
    /// Records leased now.
    pub in_flight: u64,
    /// Records not settled yet.
    pub lag: u64,
    /// Redeliveries since the broker started.
    pub redeliveries: u64,
    /// Records dead-lettered since the broker started.
    pub dead_lettered: u64,
}

/// A sampled value and when (ms since the epoch).
#[derive(Clone, Debug, PartialEq)]
pub struct Point<T> {
    /// When it was sampled.
    pub t_ms: i64,
    /// What it was.
    pub value: T,
}

/// Counter totals, to turn two samples into rates.
#[derive(Clone, Copy, Debug, Default)]
struct Totals {
    produce_records: u64,
    produce_bytes: u64,
    fetch_records: u64,
    fetch_bytes: u64,
}

impl Totals {
    fn rates_since(&self, before: &Totals, seconds: f64) -> Rates {
        let rate = |now: u64, then: u64| now.saturating_sub(then) as f64 / seconds;
        Rates {
            produce_records: rate(self.produce_records, before.produce_records),
            produce_bytes: rate(self.produce_bytes, before.produce_bytes),
            fetch_records: rate(self.fetch_records, before.fetch_records),
            fetch_bytes: rate(self.fetch_bytes, before.fetch_bytes),
        }
    }
}

impl std::ops::AddAssign for Rates {
    fn add_assign(&mut self, r: Rates) {
        self.produce_records += r.produce_records;
        self.produce_bytes += r.produce_bytes;
        self.fetch_records += r.fetch_records;
        self.fetch_bytes += r.fetch_bytes;
    }
}

/// Rates per topic between two samples of the counters `seconds` apart,
/// and their sum. A topic new since the first sample has no rate yet: its
/// counters may be a deleted namesake's lifetime counts (they are never
/// reset), not traffic of this interval.
fn rates_between(
    before: &HashMap<String, Totals>,
    now: &HashMap<String, Totals>,
    seconds: f64,
) -> (Rates, HashMap<String, Rates>) {
    let mut sum = Rates::default();
    let mut per_topic = HashMap::with_capacity(now.len());
    for (name, totals) in now {
        let rates = before
            .get(name)
            .map(|b| totals.rates_since(b, seconds))
            .unwrap_or_default();
        sum += rates;
        per_topic.insert(name.clone(), rates);
    }
    (sum, per_topic)
}

#[derive(Default)]
struct Series {
    /// The previous sample's counters per topic, and when (a monotonic
    /// clock: a wall clock step must not make a rate).
    last: Option<(Instant, HashMap<String, Totals>)>,
    broker: VecDeque<Point<Rates>>,
    /// Only the latest rates per topic: the topics page shows no chart.
    topics: HashMap<String, Rates>,
    groups: HashMap<String, VecDeque<Point<GroupLag>>>,
    queues: HashMap<String, VecDeque<Point<QueueDepths>>>,
}

/// The bounded history the console's charts read.
pub struct History {
    interval: Duration,
    series: Mutex<Series>,
    /// Topic names in use, one allocation each, shared by every point.
    names: Mutex<HashMap<String, Arc<str>>>,
}

/// The shared name of a topic: the one in use last sample if any.
fn intern(
    previous: &mut HashMap<String, Arc<str>>,
    used: &mut HashMap<String, Arc<str>>,
    name: &str,
) -> Arc<str> {
    if let Some(a) = used.get(name) {
        return Arc::clone(a);
    }
    let a = previous.remove(name).unwrap_or_else(|| Arc::from(name));
    used.insert(name.to_string(), Arc::clone(&a));
    a
}

impl History {
    /// An empty history sampled every `interval`.
    pub fn new(interval: Duration) -> History {
        History {
            interval,
            series: Mutex::new(Series::default()),
            names: Mutex::new(HashMap::new()),
        }
    }

    /// How often it is sampled.
    pub fn interval(&self) -> Duration {
        self.interval
    }

    /// How many points a series keeps at this interval.
    fn capacity(&self) -> usize {
        let per_span = SPAN.as_millis() / self.interval.as_millis().max(1);
        (per_span as usize).clamp(2, MAX_POINTS)
    }

    fn series(&self) -> std::sync::MutexGuard<'_, Series> {
        self.series.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The broker-wide rates, oldest first.
    pub fn broker_rates(&self) -> Vec<Point<Rates>> {
        self.series().broker.iter().cloned().collect()
    }

    /// The latest broker-wide rates (zero before two samples).
    pub fn latest_rates(&self) -> Rates {
        self.series()
            .broker
            .back()
            .map(|p| p.value)
            .unwrap_or_default()
    }

    /// The latest rates of `topic` (zero before two samples).
    pub fn topic_rates(&self, topic: &str) -> Rates {
        self.series().topics.get(topic).copied().unwrap_or_default()
    }

    /// `group`'s lag, oldest first.
    pub fn group_lag(&self, group: &str) -> Vec<Point<GroupLag>> {
        self.series()
            .groups
            .get(group)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// `group`'s queue depths, oldest first.
    pub fn queue_depths(&self, group: &str) -> Vec<Point<QueueDepths>> {
        self.series()
            .queues
            .get(group)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Takes one sample of `broker` at `t_ms`.
    pub fn sample(&self, broker: &Broker, t_ms: i64) {
        let per_topic = totals(&broker.metrics, broker);
        let now = Instant::now();
        let groups = {
            let mut names = self.names.lock().unwrap_or_else(|p| p.into_inner());
            let mut used = HashMap::new();
            let groups = group_lags(broker, t_ms, &mut |n| intern(&mut names, &mut used, n));
            *names = used;
            groups
        };
        let queues = queue_depths(broker);
        let capacity = self.capacity();
        let mut guard = self.series();
        let s = &mut *guard;
        if let Some((then, before)) = &s.last {
            let seconds = now.duration_since(*then).as_secs_f64().max(0.001);
            let (rates, topics) = rates_between(before, &per_topic, seconds);
            push(&mut s.broker, capacity, t_ms, rates);
            s.topics = topics;
        }
        s.last = Some((now, per_topic));
        // A group or queue that is gone takes its series with it.
        s.groups.retain(|name, _| groups.contains_key(name));
        for (name, lag) in groups {
            push(s.groups.entry(name).or_default(), capacity, t_ms, lag);
        }
        s.queues.retain(|name, _| queues.contains_key(name));
        for (name, depths) in queues {
            push(s.queues.entry(name).or_default(), capacity, t_ms, depths);
        }
    }

    /// Samples `broker` every interval until it shuts down. The first
    /// sample is taken at once, so charts have a point to start from.
    pub async fn run(self: Arc<Self>, broker: Arc<Broker>) {
        let mut stop = broker.shutdown_signal();
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.wait_for(|s| *s) => return,
            }
            let (history, broker) = (Arc::clone(&self), Arc::clone(&broker));
            // Lag reads the log (the first record not consumed, for its time).
            let sampled =
                tokio::task::spawn_blocking(move || history.sample(&broker, now_ms())).await;
            if let Err(e) = sampled {
                tracing::warn!(error = %e, "sampling the console's history failed");
            }
        }
    }
}

fn push<T>(ring: &mut VecDeque<Point<T>>, capacity: usize, t_ms: i64, value: T) {
    while ring.len() >= capacity {
        ring.pop_front();
    }
    ring.push_back(Point { t_ms, value });
}

/// The produce and fetch counters of each of the log's topics.
fn totals(metrics: &Metrics, broker: &Broker) -> HashMap<String, Totals> {
    let names = broker.log().map(|log| log.topics()).unwrap_or_default();
    let mut per_topic = HashMap::with_capacity(names.len());
    for topic in names {
        let labels = TopicLabels {
            topic: topic.name().to_string(),
        };
        let read = |family: &prometheus_client::metrics::family::Family<
            TopicLabels,
            prometheus_client::metrics::counter::Counter,
        >| family.get(&labels).map_or(0, |c| c.get());
        let t = Totals {
            produce_records: read(&metrics.produced_records),
            produce_bytes: read(&metrics.produced_bytes),
            fetch_records: read(&metrics.fetched_records),
            fetch_bytes: read(&metrics.fetched_bytes),
        };
        per_topic.insert(labels.topic, t);
    }
    per_topic
}

fn group_lags(
    broker: &Broker,
    t_ms: i64,
    name: &mut dyn FnMut(&str) -> Arc<str>,
) -> HashMap<String, GroupLag> {
    let (Ok(log), Ok(groups)) = (broker.log(), broker.groups()) else {
        return HashMap::new();
    };
    let mut lags = crate::groups::lag::every_group(groups, log, t_ms);
    lags.sort_by(|a, b| a.group.cmp(&b.group));
    let (mut topic_series, mut partition_series) = (0, 0);
    let mut out = HashMap::new();
    for lag in lags {
        let topics = lag.topics.len();
        if out.len() == MAX_GROUPS_CHARTED
            || topics > MAX_TOPICS_CHARTED
            || topic_series + topics > MAX_TOPIC_SERIES
        {
            continue;
        }
        topic_series += topics;
        let n = lag.partitions.len();
        let charted = n <= MAX_PARTITIONS_CHARTED && partition_series + n <= MAX_PARTITION_SERIES;
        let partitions = match charted {
            true => {
                partition_series += n;
                lag.partitions
                    .iter()
                    .map(|p| PartitionLag {
                        topic: name(&p.topic),
                        partition: p.partition,
                        lag_records: p.lag_records,
                        lag_ms: p.lag_ms,
                    })
                    .collect()
            }
            false => Vec::new(),
        };
        let topics = lag
            .topics
            .iter()
            .map(|t| (name(&t.topic), t.lag_records, t.lag_ms))
            .collect();
        out.insert(lag.group, GroupLag { topics, partitions });
    }
    out
}

fn queue_depths(broker: &Broker) -> HashMap<String, QueueDepths> {
    let (Ok(log), Ok(queues)) = (broker.log(), broker.queues()) else {
        return HashMap::new();
    };
    queues
        .names()
        .into_iter()
        .filter_map(|name| {
            let v = queues.describe(log, &name).ok()?;
            let depths = QueueDepths {
                dlq_depth: v.dlq_depth,
                in_flight: v.in_flight(),
                lag: v.lag(),
                redeliveries: v.redeliveries,
                dead_lettered: v.dead_lettered,
            };
            Some((name, depths))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_hour_is_kept_at_most_360_points_and_at_least_two() {
        let points = |ms| History::new(Duration::from_millis(ms)).capacity();
        assert_eq!(points(10_000), 360);
        assert_eq!(points(1_000), 360, "capped");
        assert_eq!(points(60_000), 60);
        assert_eq!(points(3_600_000), 2, "never fewer than a line needs");
    }

    #[test]
    fn a_topic_name_is_one_allocation_across_samples_and_forgotten_when_unused() {
        let (mut previous, mut used) = (HashMap::new(), HashMap::new());
        let a = intern(&mut previous, &mut used, "orders");
        let b = intern(&mut previous, &mut used, "orders");
        assert!(Arc::ptr_eq(&a, &b));
        // The next sample reuses it; a name no longer used is dropped.
        let (mut previous, mut used) = (used, HashMap::new());
        intern(&mut previous, &mut used, "payments");
        let c = intern(&mut previous, &mut used, "orders");
        assert!(Arc::ptr_eq(&a, &c));
        let (mut previous, mut used) = (used, HashMap::new());
        intern(&mut previous, &mut used, "payments");
        assert!(!used.contains_key("orders"));
    }

    #[test]
    fn a_ring_drops_its_oldest_point_when_full() {
        let mut ring = VecDeque::new();
        for t in 0..5 {
            push(&mut ring, 3, t, t * 10);
        }
        let kept: Vec<(i64, i64)> = ring.iter().map(|p| (p.t_ms, p.value)).collect();
        assert_eq!(kept, [(2, 20), (3, 30), (4, 40)]);
    }

    #[test]
    fn rates_are_the_counters_growth_per_second_and_never_negative() {
        let before = Totals {
            produce_records: 100,
            produce_bytes: 1000,
            fetch_records: 50,
            fetch_bytes: 500,
        };
        let now = Totals {
            produce_records: 300,
            produce_bytes: 5000,
            fetch_records: 50,
            fetch_bytes: 0,
        };
        let r = now.rates_since(&before, 2.0);
        assert_eq!(r.produce_records, 100.0);
        assert_eq!(r.produce_bytes, 2000.0);
        assert_eq!(r.fetch_records, 0.0);
        // Counters never go down; if one did, that is no traffic.
        assert_eq!(r.fetch_bytes, 0.0);
    }

    #[test]
    fn a_topic_new_since_the_last_sample_adds_no_rate_until_the_next() {
        let t = |produce_records| Totals {
            produce_records,
            ..Totals::default()
        };
        let before = HashMap::from([("a".to_string(), t(10)), ("gone".to_string(), t(500))]);
        // `b` was made (or deleted and made again, its counter carrying
        // its namesake's 1000) since; `gone` was deleted.
        let now = HashMap::from([("a".to_string(), t(30)), ("b".to_string(), t(1000))]);
        let (sum, per_topic) = rates_between(&before, &now, 2.0);
        assert_eq!(sum.produce_records, 10.0, "only a's 20 records in 2 s");
        assert_eq!(per_topic["b"].produce_records, 0.0);
        assert!(!per_topic.contains_key("gone"));
    }
}
