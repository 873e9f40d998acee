//! Compacted topics against the real broker: every kind of reader across
//! the holes compaction leaves, keyless records refused, Kafka clients no
//! one here wrote, the CLI, and a `kill -9` loop while the cleaner runs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brook_client::{Client, ConsumerConfig};
use brook_protocol::batch::{Batch, BatchBuilder};
use brook_protocol::v1;
use brook_tests::kafka::{clients, run_json};
use brook_tests::{
    Broker, brook_cli, describe_topic, error_metadata, eventually, eventually_within, reason,
};
use serde_json::Value;

/// The cleaner looks for work every 50 ms instead of every 15 s.
const FAST_CLEANER: &[&str] = &["--cleaner-backoff-ms", "50"];

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// One batch of `(key, value)` records (value `None`: a tombstone) at `ts`.
fn keyed(records: &[(&str, Option<&str>)], ts: i64) -> Batch {
    let mut b = BatchBuilder::new();
    for (k, v) in records {
        b.push(ts, Some(k.as_bytes()), v.map(str::as_bytes), &[("h", b"x")]);
    }
    Batch::parse(b.build(0)).unwrap()
}

/// Creates a one-partition compacted topic with small segments, cleaned
/// as soon as anything is dirty.
async fn create_compacted(b: &Broker, name: &str, segment_bytes: u64) {
    b.topics()
        .await
        .create_topic(v1::CreateTopicRequest {
            name: name.into(),
            config: Some(v1::TopicConfig {
                partitions: 1,
                segment_bytes: Some(segment_bytes),
                cleanup_policy: v1::CleanupPolicy::Compact as i32,
                min_cleanable_dirty_ratio: Some(0.01),
                delete_retention_ms: Some(3_600_000),
                ..Default::default()
            }),
        })
        .await
        .expect("create a compacted topic");
}

async fn produce(
    b: &Broker,
    topic: &str,
    batch: Batch,
) -> Result<v1::ProduceResponse, tonic::Status> {
    b.producer()
        .await
        .produce(v1::ProduceRequest {
            topic: topic.into(),
            partition: 0,
            batch: batch.into_bytes(),
            acks: v1::Acks::Durable as i32,
        })
        .await
        .map(|r| r.into_inner())
}

/// Waits until the cleaner has cleaned partition 0 of `topic` up to `offset`.
async fn wait_cleaned_to(b: &Broker, topic: &str, offset: u64) {
    eventually(&format!("{topic} cleaned to {offset}"), async || {
        let p = &describe_topic(b, topic).await.partitions[0];
        p.cleaned_to >= offset && p.dirty_bytes == 0
    })
    .await;
}

type Rec = (u64, Option<Vec<u8>>, Option<Vec<u8>>);

/// `brook_cleaner_segments_rewritten_total` in a metrics scrape (0 if absent).
fn segments_rewritten(metrics: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("brook_cleaner_segments_rewritten_total "))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Every record of partition 0 from `from`, with null values kept apart from empty ones.
async fn read_from(b: &Broker, topic: &str, from: u64) -> Vec<Rec> {
    let mut out = Vec::new();
    for batch in brook_tests::fetch_batches(b, topic, 0, from).await {
        for r in batch.records() {
            let r = r.unwrap();
            if r.offset >= from {
                out.push((
                    r.offset,
                    r.key.map(|k| k.to_vec()),
                    r.value.map(|v| v.to_vec()),
                ));
            }
        }
    }
    out
}

fn text(v: &Option<Vec<u8>>) -> Option<String> {
    v.as_ref().map(|v| String::from_utf8_lossy(v).into_owned())
}

/// Five rounds over keys c0..c4, a tombstone for c4, then writes of
/// another key so that all of it is sealed: after cleaning, fetch,
/// subscribe (from the start and from a timestamp), a consumer group and
/// a fetch at a compacted-away offset all see each key's latest record,
/// at its offset; a keyless record is refused with the reason.
#[tokio::test(flavor = "multi_thread")]
async fn every_reader_sees_each_keys_latest_record_across_the_holes() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), FAST_CLEANER).await;
    create_compacted(&b, "profiles", 1024).await;
    let base = now_ms();
    for round in 0..5 {
        let values: Vec<String> = (0..5).map(|k| format!("c{k}-v{round}")).collect();
        let records: Vec<(String, Option<&str>)> = (0..5)
            .map(|k| (format!("c{k}"), Some(values[k].as_str())))
            .collect();
        let refs: Vec<(&str, Option<&str>)> =
            records.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let r = produce(&b, "profiles", keyed(&refs, base + round * 1000))
            .await
            .unwrap();
        assert_eq!(r.base_offset, round as u64 * 5);
    }
    let tombstone = produce(&b, "profiles", keyed(&[("c4", None)], base + 5000))
        .await
        .unwrap();
    assert_eq!(tombstone.base_offset, 25);
    for i in 0..14 {
        let v = format!("z-{i}-{}", "x".repeat(60));
        produce(&b, "profiles", keyed(&[("z", Some(&v))], base + 6000))
            .await
            .unwrap();
    }
    wait_cleaned_to(&b, "profiles", 26).await;

    let all = read_from(&b, "profiles", 0).await;
    let cs: Vec<(u64, Option<String>, Option<String>)> = all
        .iter()
        .filter(|(_, k, _)| k.as_deref().is_some_and(|k| k.starts_with(b"c")))
        .map(|(o, k, v)| (*o, text(k), text(v)))
        .collect();
    // c4's last value (offset 24) went: its tombstone is the later record.
    let mut want: Vec<(u64, Option<String>, Option<String>)> = (0..4)
        .map(|k| (20 + k, Some(format!("c{k}")), Some(format!("c{k}-v4"))))
        .collect();
    want.push((25, Some("c4".into()), None));
    assert_eq!(cs, want, "each key's latest record, at its offset");
    let offsets: Vec<u64> = all.iter().map(|r| r.0).collect();
    assert!(offsets.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");
    assert!(all.len() < 40, "compaction removed records: {}", all.len());

    // A fetch at an offset compacted away starts at the next record kept.
    let mut consumer = b.consumer().await;
    let mut next = 3;
    let first = loop {
        let r = consumer
            .fetch(v1::FetchRequest {
                topic: "profiles".into(),
                partition: 0,
                offset: next,
                decoded: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        if let Some(rec) = r.records.first() {
            break rec.offset;
        }
        assert!(r.next_offset > next, "a fetch in a hole moves on");
        next = r.next_offset;
    };
    assert_eq!(first, 20);

    // Subscribe from the start, and from round 2's timestamp (whose
    // records are gone: the next kept record is round 4's first).
    for (start, from_offset) in [
        (v1::start_position::Position::Earliest(v1::Earliest {}), 0),
        (v1::start_position::Position::TimestampMs(base + 2000), 20),
    ] {
        let mut stream = consumer
            .subscribe(v1::SubscribeRequest {
                topic: "profiles".into(),
                start: Some(v1::StartPosition {
                    position: Some(start),
                }),
                decoded: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let end = *offsets.last().unwrap() + 1;
        let mut seen = Vec::new();
        while seen.last().is_none_or(|o| *o + 1 < end) {
            let m = tokio::time::timeout(Duration::from_secs(30), stream.message())
                .await
                .expect("the subscription moves on")
                .unwrap()
                .unwrap();
            seen.extend(m.records.iter().map(|r| r.offset));
        }
        let want: Vec<u64> = offsets
            .iter()
            .copied()
            .filter(|o| *o >= from_offset)
            .collect();
        assert_eq!(seen, want);
    }

    // A consumer group from the earliest offset.
    let client = Client::connect(format!("http://{}", b.grpc)).await.unwrap();
    let mut group = client
        .consumer(ConsumerConfig::new("readers", &["profiles"]))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < offsets.len() {
        let r = tokio::time::timeout(Duration::from_secs(30), group.recv())
            .await
            .expect("the group consumer moves on")
            .unwrap();
        seen.push(r.offset);
    }
    assert_eq!(seen, offsets);
    group.close().await.unwrap();

    // Keyless records are refused, naming the record; nothing is stored.
    let end = describe_topic(&b, "profiles").await.partitions[0].log_end_offset;
    let mut mixed = BatchBuilder::new();
    mixed.push(now_ms(), Some(b"k"), Some(b"v"), &[]);
    mixed.push(now_ms(), None, Some(b"v"), &[]);
    let e = produce(&b, "profiles", Batch::parse(mixed.build(0)).unwrap())
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_eq!(reason(&e).as_deref(), Some("INVALID_RECORDS"));
    assert_eq!(error_metadata(&e, "record_index").as_deref(), Some("1"));
    assert!(e.message().contains("needs a key"), "{}", e.message());
    assert_eq!(
        describe_topic(&b, "profiles").await.partitions[0].log_end_offset,
        end
    );

    let metrics = b.metrics_text().await;
    assert!(segments_rewritten(&metrics) >= 1.0, "{metrics}");
    assert!(
        metrics.contains(r#"brook_partition_dirty_ratio{topic="profiles",partition="0"} 0"#),
        "{metrics}"
    );
}

/// `brook topic create --cleanup compact`, `describe` with the dirty
/// column, `alter --set cleanup_policy=...`.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_creates_alters_and_describes_compacted_topics() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    let out = brook_cli(
        &b,
        &["topic", "create", "customers", "--cleanup", "compact"],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("cleanup_policy") && text.contains("compact"),
        "{text}"
    );
    assert!(
        text.contains("DIRTY") && text.contains("CLEANED_TO"),
        "{text}"
    );
    let out = brook_cli(
        &b,
        &[
            "topic",
            "alter",
            "customers",
            "--set",
            "cleanup.policy=delete,compact",
            "--set",
            "delete_retention_ms=1000",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = brook_cli(&b, &["topic", "describe", "customers", "--json"], None);
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(json["settings"]["cleanup_policy"], "compact,delete");
    assert_eq!(json["settings"]["delete_retention_ms"], 1000);
    assert!(json["partitions"][0]["dirty_ratio"].is_number(), "{json}");
    let out = brook_cli(&b, &["topic", "create", "bad", "--cleanup", "shred"], None);
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("delete, compact or compact,delete"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Kafka clients: a compacted topic created and described through
/// confluent-kafka's AdminClient, written with kafka-python (tombstones
/// too), a keyless record refused with INVALID_RECORD; once cleaned, both
/// kafka-python and librdkafka read from the beginning across the holes
/// and see exactly what the broker kept.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_clients_create_write_and_read_a_compacted_topic() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), FAST_CLEANER).await;
    let bootstrap = b.kafka_bootstrap();
    let steps: BTreeMap<String, Value> =
        run_json(clients(&bootstrap, &["compaction-produce", "kafka-state"]))
            .into_iter()
            .map(|v| (v["step"].as_str().unwrap().to_string(), v))
            .collect();
    assert_eq!(steps["describe-configs"]["cleanup_policy"], "compact");
    assert_eq!(steps["describe-configs"]["delete_retention_ms"], "3600000");
    assert_eq!(steps["keyless"]["error"], "INVALID_RECORD");
    let produced = steps["produced"]["count"].as_u64().unwrap();
    // 200 versions of ten keys and two tombstones: cleaned past them.
    wait_cleaned_to(&b, "kafka-state", 202).await;
    let kept = read_from(&b, "kafka-state", 0).await;
    assert!(
        (kept.len() as u64) < produced / 2,
        "{} of {produced} kept",
        kept.len()
    );
    let mut latest: BTreeMap<String, Option<String>> = BTreeMap::new();
    for (_, k, v) in &kept {
        latest.insert(text(k).unwrap(), text(v));
    }
    for k in 0..10 {
        let want = match k {
            0 | 1 => None,
            _ => Some(format!("k{k}-v19")),
        };
        assert_eq!(latest[&format!("k{k}")], want, "key k{k}");
    }
    let count = kept.len().to_string();
    let read = run_json(clients(
        &bootstrap,
        &["compaction-consume", "kafka-state", &count],
    ));
    for client in ["kafka-python", "confluent-kafka"] {
        let seen: Vec<(u64, Option<String>, Option<String>)> = read
            .iter()
            .filter(|v| v["client"] == client)
            .map(|v| {
                (
                    v["offset"].as_u64().unwrap(),
                    v["key"].as_str().map(String::from),
                    v["value"].as_str().map(String::from),
                )
            })
            .collect();
        let want: Vec<(u64, Option<String>, Option<String>)> = kept
            .iter()
            .map(|(o, k, v)| (*o, text(k), text(v)))
            .collect();
        assert_eq!(seen, want, "{client} reads what the broker kept");
    }
}

/// A pass throttled to 1 KB/s over hundreds of KB would take minutes: a
/// SIGTERM during it still stops the broker promptly and cleanly, and the
/// next start finds every record.
#[tokio::test(flavor = "multi_thread")]
async fn a_stop_does_not_wait_for_a_throttled_cleaning_pass() {
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--cleaner-backoff-ms",
        "50",
        "--cleaner-io-bytes-per-sec",
        "1000",
    ];
    let b = Broker::start(dir.path(), &flags).await;
    create_compacted(&b, "slow", 16 << 10).await;
    let value = "v".repeat(1000);
    for i in 0..300 {
        let key = format!("k{}", i % 10);
        produce(&b, "slow", keyed(&[(&key, Some(&value))], now_ms()))
            .await
            .unwrap();
    }
    eventually("a cleaning pass runs", async || {
        b.metrics_text()
            .await
            .contains("brook_cleaner_pass_running 1")
    })
    .await;
    // `terminate` fails the test if the broker takes over a minute: the
    // pass alone would take five at this rate.
    let status = b.terminate();
    assert!(status.success(), "{status:?}");
    let b = Broker::start(dir.path(), &flags).await;
    assert_eq!(
        describe_topic(&b, "slow").await.partitions[0].log_end_offset,
        300
    );
    assert_eq!(
        read_from(&b, "slow", 0).await.last().map(|r| r.0),
        Some(299)
    );
}

const ROUNDS: usize = 6;
const KEYS: u32 = 100;

/// Acknowledged writes: key → (its highest acknowledged version, whether
/// that write was a tombstone).
type Acked = Arc<Mutex<BTreeMap<u32, (u64, bool)>>>;

/// Writes versions of random keys (one write in seven a tombstone) with
/// durable acks until the broker goes. The version rides in a header, so
/// that tombstones carry one too.
async fn write_until_gone(b: tonic::transport::Channel, round: usize, acked: Acked) {
    let mut producer = v1::producer_client::ProducerClient::new(b);
    let mut version = (round as u64) << 32;
    let mut seed = round as u64 + 1;
    loop {
        let mut records = Vec::new();
        for _ in 0..20 {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let key = ((seed >> 33) % u64::from(KEYS)) as u32;
            version += 1;
            records.push((key, version, (seed >> 20).is_multiple_of(7)));
        }
        let mut batch = BatchBuilder::new();
        for (key, version, tombstone) in &records {
            let value = format!("{key}:{version}:{}", "p".repeat(80));
            let v = version.to_string();
            batch.push(
                now_ms(),
                Some(format!("key-{key}").as_bytes()),
                (!tombstone).then_some(value.as_bytes()),
                &[("v", v.as_bytes())],
            );
        }
        let r = producer
            .produce(v1::ProduceRequest {
                topic: "state".into(),
                partition: 0,
                batch: batch.build(0),
                acks: v1::Acks::Durable as i32,
            })
            .await;
        if r.is_err() {
            return;
        }
        let mut map = acked.lock().unwrap();
        for (key, version, tombstone) in records {
            let v = map.entry(key).or_default();
            if version > v.0 {
                *v = (version, tombstone);
            }
        }
    }
}

/// Checks the log after a restart: offsets increase; each key's last
/// record is its newest acknowledged write or a later one (a tombstone if
/// that write was one and nothing followed); no key twice below
/// `cleaned_to`.
async fn check_state(b: &Broker, acked: &BTreeMap<u32, (u64, bool)>) {
    let p = describe_topic(b, "state").await.partitions[0].clone();
    let mut last: BTreeMap<u32, (u64, bool)> = BTreeMap::new();
    let mut below_clean: BTreeMap<u32, u64> = BTreeMap::new();
    let mut previous = None;
    for batch in brook_tests::fetch_batches(b, "state", 0, 0).await {
        for r in batch.records() {
            let r = r.unwrap();
            assert!(previous < Some(r.offset), "offsets increase");
            previous = Some(r.offset);
            let key: u32 = std::str::from_utf8(r.key.as_deref().unwrap())
                .unwrap()
                .strip_prefix("key-")
                .unwrap()
                .parse()
                .unwrap();
            let (_, v) = r
                .header_pairs()
                .into_iter()
                .find(|(k, _)| *k == "v")
                .unwrap();
            let version: u64 = std::str::from_utf8(v).unwrap().parse().unwrap();
            if let Some(value) = &r.value {
                let value = std::str::from_utf8(value).unwrap();
                assert!(value.starts_with(&format!("{key}:{version}:")), "{value}");
            }
            last.insert(key, (version, r.value.is_none()));
            if r.offset < p.cleaned_to {
                let seen = below_clean.entry(key).or_default();
                *seen += 1;
                assert_eq!(
                    *seen, 1,
                    "key {key} twice below cleaned_to {}",
                    p.cleaned_to
                );
            }
        }
    }
    for (key, (version, tombstone)) in acked {
        let Some((stored, stored_tombstone)) = last.get(key) else {
            panic!("key {key}: acknowledged version {version} (tombstone: {tombstone}) is gone");
        };
        assert!(
            stored >= version,
            "key {key}: acknowledged {version}, last stored {stored}"
        );
        if stored == version {
            assert_eq!(stored_tombstone, tombstone, "key {key} version {version}");
        }
    }
}

/// Durable writes to a compacted topic while the cleaner runs (slowed to
/// 4 MB/s so that passes are long), `kill -9` once it has swapped
/// segments, restart: every round, each key's latest acknowledged write
/// (value or tombstone) is its last record, and the clean part holds each
/// key once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_during_cleaning_keeps_each_keys_latest_acknowledged_value() {
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--cleaner-backoff-ms",
        "20",
        "--cleaner-io-bytes-per-sec",
        "4000000",
    ];
    let mut b = Broker::start(dir.path(), &flags).await;
    create_compacted(&b, "state", 16 << 10).await;
    let acked: Acked = Arc::default();
    let mut swapped = 0.0;
    for round in 0..ROUNDS {
        let writer = tokio::spawn(write_until_gone(
            b.channel().await,
            round,
            Arc::clone(&acked),
        ));
        // Kill once this broker has swapped segments in, a little later each round.
        eventually_within(
            "the cleaner swaps segments",
            Duration::from_secs(60),
            async || {
                let n = segments_rewritten(&b.metrics_text().await);
                if n >= 1.0 {
                    swapped += n;
                }
                n >= 1.0
            },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(37 * round as u64)).await;
        b.kill9_in_place();
        writer.await.unwrap();
        b = Broker::start(dir.path(), &flags).await;
        let acked = acked.lock().unwrap().clone();
        assert!(!acked.is_empty());
        check_state(&b, &acked).await;
    }
    assert!(swapped >= ROUNDS as f64);
    let p = describe_topic(&b, "state").await.partitions[0].clone();
    assert!(p.cleaned_to > 0, "{p:?}");
    let stored = brook_tests::fetch_batches(&b, "state", 0, 0)
        .await
        .iter()
        .map(|b| u64::from(b.header().record_count))
        .sum::<u64>();
    assert!(
        stored < p.log_end_offset / 2,
        "{stored} of {} offsets hold records",
        p.log_end_offset
    );
    let spans = brook_tests::fetch_batches(&b, "state", 0, 0)
        .await
        .iter()
        .filter(|b| b.header().record_count == 0)
        .count();
    assert!(spans > 0, "compacted-away runs read as record-less batches");
}
