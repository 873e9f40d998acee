//! The Kafka listener, proven with clients no one here wrote: kcat,
//! kafka-python and confluent-kafka (librdkafka), against a real broker
//! process. `scripts/kafka-clients.sh` installs them (`.ci/run` runs it);
//! the Python side is `tests/kafka/clients.py`.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use brook_protocol::batch::Compression;
use brook_protocol::partitioner::partition_for_key;
use brook_protocol::v1;
use brook_tests::kafka::{call, clients, run_json};
use brook_tests::{
    Broker, DEADLINE, create_topic, eventually_within, fetch_batches, wait_for_exit,
};
use serde_json::Value;

fn kcat() -> Command {
    let found = Command::new("kcat")
        .arg("-V")
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(found, "kcat is missing: run scripts/kafka-clients.sh");
    Command::new("kcat")
}

/// A record read back over gRPC, with what the Kafka side should have kept.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stored {
    partition: u32,
    offset: u64,
    key: Option<String>,
    value: String,
    headers: Vec<(String, String)>,
}

/// Every record of `topic` over gRPC, partition by partition, and the
/// codecs of the batches they were stored in.
async fn read_all(
    b: &Broker,
    topic: &str,
    partitions: u32,
) -> (Vec<Stored>, BTreeSet<&'static str>) {
    let (mut out, mut codecs) = (Vec::new(), BTreeSet::new());
    for partition in 0..partitions {
        for batch in fetch_batches(b, topic, partition, 0).await {
            codecs.insert(batch.header().compression().name());
            for rec in batch.records() {
                let rec = rec.expect("a stored record decodes");
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                out.push(Stored {
                    partition,
                    offset: rec.offset,
                    key: rec.key.as_deref().map(text),
                    value: rec.value.as_deref().map(text).unwrap_or_default(),
                    headers: rec
                        .headers
                        .iter()
                        .map(|h| (h.key.clone(), text(&h.value)))
                        .collect(),
                });
            }
        }
    }
    (out, codecs)
}

/// kcat lists the topic, produces with every codec (and headers), and
/// reads everything back; the Brook client reads the same records, from
/// batches stored compressed as they arrived.
#[tokio::test(flavor = "multi_thread")]
async fn kcat_metadata_produce_and_consume_with_every_codec() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    create_topic(&b, "orders", 2).await;
    let bootstrap = b.kafka_bootstrap();

    let listing = kcat()
        .args(["-b", &bootstrap, "-L", "-t", "orders"])
        .output()
        .unwrap();
    let listing = String::from_utf8_lossy(&listing.stdout);
    assert!(
        listing.contains("topic \"orders\" with 2 partitions"),
        "{listing}"
    );
    assert!(
        listing.contains(&format!("broker 0 at {bootstrap}")),
        "{listing}"
    );

    let codecs = ["none", "gzip", "snappy", "lz4", "zstd"];
    for codec in codecs {
        // Values that compress: librdkafka sends a batch plain when they don't.
        let input: String = (0..4)
            .map(|i| format!("order-{i}:{codec}-{i}-{}\n", "x".repeat(300)))
            .collect();
        let mut p = kcat()
            // Java's partitioner (murmur2), which Brook's keyed publish uses too;
            // librdkafka's own default hashes with CRC-32.
            .args([
                "-b",
                &bootstrap,
                "-P",
                "-t",
                "orders",
                "-K:",
                "-z",
                codec,
                "-X",
                "partitioner=murmur2_random",
            ])
            .args(["-H", &format!("codec={codec}")])
            .stdin(Stdio::piped())
            .spawn()
            .unwrap();
        p.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
        assert!(p.wait().unwrap().success(), "kcat -P -z {codec}");
    }
    let out = kcat()
        .args([
            "-b",
            &bootstrap,
            "-C",
            "-t",
            "orders",
            "-e",
            "-q",
            "-f",
            "%k|%s|%h\\n",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let read: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect();
    let pad = "x".repeat(300);
    let expected: BTreeSet<String> = codecs
        .iter()
        .flat_map(|c| {
            (0..4)
                .map(|i| format!("order-{i}|{c}-{i}-{pad}|codec={c}"))
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(read, expected, "kcat reads back what kcat wrote");

    let (stored, stored_codecs) = read_all(&b, "orders", 2).await;
    assert_eq!(stored.len(), 20);
    for s in &stored {
        let key = s.key.as_deref().expect("keyed");
        let n: u32 = key.trim_start_matches("order-").parse().unwrap();
        assert_eq!(
            s.partition,
            partition_for_key(key.as_bytes(), 2),
            "Kafka's partitioner on both sides"
        );
        let codec = s.value.split('-').next().unwrap();
        assert_eq!(s.value, format!("{codec}-{n}-{pad}"));
        assert_eq!(s.headers, vec![("codec".to_string(), codec.to_string())]);
    }
    let all: BTreeSet<&str> = codecs.into_iter().collect();
    assert_eq!(
        stored_codecs, all,
        "every batch is stored with the codec it came with"
    );

    // The stored compressed batches, decompressed for gRPC clients without
    // the codec (`decoded`) and by the Rust client (`brook consume`).
    let mut consumer = b.consumer().await;
    let mut decoded = BTreeSet::new();
    for partition in 0..2 {
        let mut offset = 0;
        loop {
            let r = consumer
                .fetch(v1::FetchRequest {
                    topic: "orders".into(),
                    partition,
                    offset,
                    decoded: true,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            for rec in &r.records {
                let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
                let h = &rec.headers[0];
                decoded.insert(format!(
                    "{}|{}|{}={}",
                    text(rec.key()),
                    text(rec.value()),
                    h.key,
                    text(&h.value)
                ));
            }
            if r.next_offset >= r.log_end_offset {
                break;
            }
            offset = r.next_offset;
        }
    }
    assert_eq!(decoded, expected, "gRPC's decoded fetch");
    let out = brook_tests::brook_cli(&b, &["consume", "orders", "-e", "--format", "json"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let consumed: BTreeSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
            format!(
                "{}|{}|codec={}",
                v["key"].as_str().unwrap(),
                v["value"].as_str().unwrap(),
                v["headers"]["codec"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{v}"))
            )
        })
        .collect();
    assert_eq!(
        consumed, expected,
        "the Rust client's consumer (brook consume)"
    );

    // The listener's own metrics count what kcat sent.
    let metrics = b.metrics_text().await;
    let count = |api: &str| -> f64 {
        let prefix = format!("brook_kafka_requests_total{{api=\"{api}\"}} ");
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0.0)
    };
    assert!(count("Produce") >= 5.0, "{metrics}");
    assert!(
        count("Fetch") >= 1.0 && count("ApiVersions") >= 1.0,
        "{metrics}"
    );
    assert!(
        metrics.contains("brook_kafka_open_connections "),
        "{metrics}"
    );
}

/// The admin and lookup APIs the other tests do not use, through
/// confluent-kafka's AdminClient and kafka-python (`admin-tour` in
/// tests/kafka/clients.py): CreateTopics with a config (and
/// TOPIC_ALREADY_EXISTS the second time), CreatePartitions,
/// DescribeConfigs, Produce with acks 0 and 1, ListOffsets (earliest,
/// latest, by timestamp), OffsetCommit from a group with no members,
/// ListGroups, DescribeGroups, OffsetFetch, DeleteGroups and DeleteTopics.
#[tokio::test(flavor = "multi_thread")]
async fn admin_and_lookup_apis_answer_third_party_clients() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    let steps: BTreeMap<String, Value> =
        run_json(clients(&b.kafka_bootstrap(), &["admin-tour", "tour"]))
            .into_iter()
            .map(|v| (v["step"].as_str().unwrap().to_string(), v))
            .collect();
    let seen = |step: &str, field: &str| steps[step][field].clone();
    assert_eq!(seen("create-again", "error"), "TOPIC_ALREADY_EXISTS");
    assert_eq!(seen("partitions", "count"), 3);
    assert_eq!(seen("describe-configs", "retention_ms"), "3600000");
    // Ten records with acks=0, then ten with acks=1, each a millisecond
    // apart: the first at or after the twelfth millisecond is offset 12.
    assert_eq!(
        (
            seen("offsets", "begin"),
            seen("offsets", "end"),
            seen("offsets", "at_time")
        ),
        (0.into(), 20.into(), 12.into())
    );
    assert_eq!(seen("list-groups", "found"), true);
    assert_eq!(seen("describe-group", "members"), 0);
    assert_eq!(seen("group-offsets", "offset"), 7);
    assert_eq!(seen("deleted-group", "found"), false);
    assert_eq!(seen("deleted-topic", "found"), false);
    let mut topics = b.topics().await;
    let gone = topics
        .describe_topic(v1::DescribeTopicRequest {
            name: "tour".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), tonic::Code::NotFound);
}

/// The seed's kafka-python producer publishes OrderPlaced events that the
/// gRPC side, the Rust client's group consumer and `brook consume` read
/// with keys, headers and per-order order; events published over gRPC
/// (compressed with zstd, then lz4) are read by kafka-python and
/// confluent-kafka, each order's in the order sent.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_clients_and_grpc_read_each_others_events() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    create_topic(&b, "orders", 3).await;
    let bootstrap = b.kafka_bootstrap();
    let done = run_json(clients(&bootstrap, &["seed-producer", "orders", "70"]));
    assert_eq!(done, vec![serde_json::json!({"produced": 70})]);

    let (stored, _) = read_all(&b, "orders", 3).await;
    assert_eq!(stored.len(), 70);
    let mut last_seq: BTreeMap<String, i64> = BTreeMap::new();
    let mut by_offset = stored.clone();
    by_offset.sort_by_key(|s| (s.partition, s.offset));
    for s in &by_offset {
        let event: Value = serde_json::from_str(&s.value).unwrap();
        let key = s.key.clone().unwrap();
        assert_eq!(event["order"], key.as_str());
        assert_eq!(event["type"], "OrderPlaced");
        assert_eq!(s.partition, partition_for_key(key.as_bytes(), 3));
        let seq = event["seq"].as_i64().unwrap();
        assert_eq!(
            s.headers,
            vec![("correlation-id".to_string(), format!("c-{seq}"))]
        );
        let before = last_seq.insert(key.clone(), seq);
        assert!(
            before.is_none_or(|b| b < seq),
            "order {key}: {seq} after {before:?}"
        );
    }
    assert_eq!(last_seq.len(), 7);

    // Read by the Rust client, as a group member and through `brook
    // consume`: keys, headers and each order's events in order.
    let in_order = |events: &[(String, Value, String)], reader: &str| {
        let mut last: BTreeMap<String, i64> = BTreeMap::new();
        for (key, event, correlation) in events {
            assert_eq!(event["order"], key.as_str(), "{reader}");
            let seq = event["seq"].as_i64().unwrap();
            assert_eq!(correlation, &format!("c-{seq}"), "{reader}");
            let before = last.insert(key.clone(), seq);
            assert!(
                before.is_none_or(|b| b < seq),
                "{reader}: {key} {seq} after {before:?}"
            );
        }
        assert_eq!(events.len(), 70, "{reader}");
        assert_eq!(last.len(), 7, "{reader}");
    };
    let client = brook_client::Client::connect(format!("http://{}", b.grpc))
        .await
        .unwrap();
    let config = brook_client::ConsumerConfig {
        start_from: brook_client::StartFrom::Earliest,
        ..brook_client::ConsumerConfig::new("order-readers", &["orders"])
    };
    let mut consumer = client.consumer(config).await.unwrap();
    let mut events = Vec::new();
    while events.len() < 70 {
        let r = tokio::time::timeout(DEADLINE, consumer.recv())
            .await
            .expect("the 70 events")
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        let correlation = (r.headers.iter())
            .find(|(k, _)| k == "correlation-id")
            .map(|(_, v)| text(v))
            .unwrap_or_default();
        let event = serde_json::from_slice(r.value.as_deref().unwrap()).unwrap();
        events.push((text(r.key.as_deref().unwrap()), event, correlation));
    }
    consumer.close().await.unwrap();
    in_order(&events, "the Rust client's consumer");
    let out = brook_tests::brook_cli(&b, &["consume", "orders", "-e", "--format", "json"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let events: Vec<_> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            let event = serde_json::from_str(v["value"].as_str().unwrap()).unwrap();
            let correlation = v["headers"]["correlation-id"].as_str().unwrap().to_string();
            (v["key"].as_str().unwrap().to_string(), event, correlation)
        })
        .collect();
    in_order(&events, "brook consume");

    // The other way: events published over gRPC, read by both Kafka clients.
    create_topic(&b, "shipments", 2).await;
    // Compressed by the Rust client, the first half with zstd and the
    // second with lz4: the Kafka clients decompress both.
    for (codec, range) in [(Compression::Zstd, 0..10), (Compression::Lz4, 10..20)] {
        let config = brook_client::ProducerConfig {
            compression: codec,
            ..Default::default()
        };
        let producer = client.producer(config);
        let mut sends = Vec::new();
        for i in range {
            let record = brook_client::ProducerRecord {
                topic: "shipments".into(),
                key: Some(format!("order-{}", i % 4).into()),
                value: Some(format!("{{\"shipment\":{i}}}").into()),
                headers: vec![("trace".into(), format!("t-{i}").into())],
                ..Default::default()
            };
            sends.push(producer.send_record(record).await.unwrap());
        }
        for sent in sends {
            sent.await.unwrap();
        }
    }
    let (_, codecs) = read_all(&b, "shipments", 2).await;
    assert!(
        codecs.contains("zstd") && codecs.contains("lz4"),
        "the Rust client compressed: {codecs:?}"
    );
    for client in ["kafka-python-consume", "confluent-consume"] {
        let read = run_json(clients(&bootstrap, &[client, "shipments", "20"]));
        assert_eq!(read.len(), 20, "{client}");
        let mut values = BTreeSet::new();
        let mut last: BTreeMap<u32, u32> = BTreeMap::new();
        for r in &read {
            let value = r["value"].as_str().unwrap();
            let i: u32 = value
                .trim_start_matches("{\"shipment\":")
                .trim_end_matches('}')
                .parse()
                .unwrap();
            assert_eq!(r["key"], format!("order-{}", i % 4), "{client}");
            assert_eq!(r["headers"]["trace"], format!("t-{i}"), "{client}");
            let key = format!("order-{}", i % 4);
            assert_eq!(
                r["partition"],
                partition_for_key(key.as_bytes(), 2),
                "{client}"
            );
            values.insert(i);
            // Each order's shipments in the order they were sent.
            let before = last.insert(i % 4, i);
            assert!(
                before.is_none_or(|b| b < i),
                "{client}: {i} after {before:?}"
            );
        }
        assert_eq!(values, (0..20).collect(), "{client} read every event once");
    }
}

/// kafka-python's batches compressed with each codec it has (gzip, snappy
/// in Kafka's xerial framing, lz4, zstd) are stored as they came and read
/// back by confluent-kafka (librdkafka) and the gRPC side.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_python_batches_with_every_codec_are_stored_and_read() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    create_topic(&b, "packed", 3).await;
    let bootstrap = b.kafka_bootstrap();
    let codecs = ["gzip", "snappy", "lz4", "zstd"];
    for codec in codecs {
        let done = run_json(clients(
            &bootstrap,
            &["compressed-producer", "packed", codec, "9"],
        ));
        assert_eq!(done[0]["produced"], 9, "{codec}");
    }
    let expected: BTreeSet<(String, String)> = codecs
        .iter()
        .flat_map(|c| (0..9).map(move |i| (format!("{c}-{}", i % 3), format!("{c}-event-{i}"))))
        .collect();

    let (stored, stored_codecs) = read_all(&b, "packed", 3).await;
    assert_eq!(
        stored_codecs,
        codecs.into_iter().collect(),
        "stored with the codec each batch came with"
    );
    let read: BTreeSet<(String, String)> = stored
        .iter()
        .map(|s| {
            let codec = s.value.split('-').next().unwrap();
            assert_eq!(s.headers, vec![("codec".to_string(), codec.to_string())]);
            (s.key.clone().unwrap(), s.value.clone())
        })
        .collect();
    assert_eq!(read, expected, "over gRPC");

    let consumed = run_json(clients(&bootstrap, &["confluent-consume", "packed", "36"]));
    let read: BTreeSet<(String, String)> = consumed
        .iter()
        .map(|r| {
            let key = r["key"].as_str().unwrap().to_string();
            (key, r["value"].as_str().unwrap().to_string())
        })
        .collect();
    assert_eq!(read, expected, "by confluent-kafka");
}

/// confluent-kafka's idempotent producer (acks=all) through a broker crash
/// and restart: every value stored exactly once, none missing.
#[tokio::test(flavor = "multi_thread")]
async fn idempotent_confluent_producer_through_a_broker_restart() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Broker::start(dir.path(), &[]).await;
    create_topic(&b, "payments", 2).await;
    let bootstrap = b.kafka_bootstrap();
    let stop = dir.path().join("stop-producing");
    let mut producer = clients(
        &bootstrap,
        &["idempotent-produce", "payments", stop.to_str().unwrap()],
    )
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    let grpc = b.grpc;
    let stored = async || {
        let Ok(mut c) = v1::topics_client::TopicsClient::connect(format!("http://{grpc}")).await
        else {
            return 0;
        };
        let req = v1::DescribeTopicRequest {
            name: "payments".into(),
        };
        c.describe_topic(req).await.map_or(0, |d| {
            d.into_inner()
                .partitions
                .iter()
                .map(|p| p.log_end_offset)
                .sum::<u64>()
        })
    };
    eventually_within("the producer to be under way", DEADLINE * 2, async || {
        stored().await >= 1000
    })
    .await;
    b.kill9_in_place();
    b.restart().await;
    // The producer goes on through the restart, then stops.
    let survived = stored().await;
    eventually_within(
        "the producer to go on after the restart",
        DEADLINE * 2,
        async || stored().await >= survived + 1000,
    )
    .await;
    std::fs::write(&stop, b"").unwrap();
    let mut status = None;
    eventually_within("the producer to finish", DEADLINE * 3, async || {
        status = producer.try_wait().unwrap();
        status.is_some()
    })
    .await;
    let status = status.expect("it exited");
    let mut out = String::new();
    producer
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    assert!(status.success(), "{out}");
    let report: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(report["failed"], serde_json::json!([]), "{out}");
    assert_eq!(report["unflushed"], 0, "{out}");
    let total = report["produced"].as_u64().unwrap() as u32;

    let (records, _) = read_all(&b, "payments", 2).await;
    let mut seen: BTreeMap<u32, usize> = BTreeMap::new();
    for r in &records {
        *seen.entry(r.value.parse().unwrap()).or_default() += 1;
    }
    let duplicates: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(duplicates.is_empty(), "duplicates: {duplicates:?}");
    let missing: Vec<u32> = (0..total).filter(|i| !seen.contains_key(i)).collect();
    assert!(
        missing.is_empty(),
        "gaps: {} values missing, first {:?}",
        missing.len(),
        missing.first()
    );
}

/// One confluent-kafka group member as a child process.
struct Member {
    child: std::process::Child,
    stop: PathBuf,
    lines: std::sync::mpsc::Receiver<Value>,
}

impl Member {
    fn start(bootstrap: &str, dir: &std::path::Path, name: &str) -> Member {
        let stop = dir.join(format!("stop-{name}"));
        let mut child = clients(
            bootstrap,
            &[
                "group-member",
                "billing-events",
                "billing",
                name,
                stop.to_str().unwrap(),
            ],
        )
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stdout)
                .lines()
                .map_while(Result::ok)
            {
                if let Ok(v) = serde_json::from_str(&line) {
                    let _ = tx.send(v);
                }
            }
        });
        Member { child, stop, lines }
    }

    fn stop(mut self) {
        std::fs::write(&self.stop, b"").unwrap();
        wait_for_exit(&mut self.child, "a group member did not stop");
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Three confluent-kafka members share a group; one leaves and another
/// joins while records flow. Every record is processed, none twice (each
/// is committed before the next), and the gRPC lag of the Kafka group is
/// exact: zero once all is processed. With librdkafka's eager assignors
/// (range, roundrobin).
#[tokio::test(flavor = "multi_thread")]
async fn a_confluent_consumer_group_shares_work_through_leaves_and_joins() {
    group_shares_work_through_leaves_and_joins("").await;
}

/// The same with the cooperative-sticky assignor: incremental rebalances,
/// where members give up only the partitions that move.
#[tokio::test(flavor = "multi_thread")]
async fn a_cooperative_sticky_group_shares_work_through_leaves_and_joins() {
    group_shares_work_through_leaves_and_joins("-sticky").await;
}

/// The group test, members named with `suffix` (`-sticky` members ask for
/// the cooperative-sticky assignor: tests/kafka/clients.py).
async fn group_shares_work_through_leaves_and_joins(suffix: &str) {
    let name = |n: &str| format!("{n}{suffix}");
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    create_topic(&b, "billing-events", 6).await;
    let bootstrap = b.kafka_bootstrap();
    let client = brook_client::Client::connect(format!("http://{}", b.grpc))
        .await
        .unwrap();
    let producer = client.producer(brook_client::ProducerConfig::default());
    let mut sent = 0u32;
    let mut produce = async |n: u32| {
        for _ in 0..n {
            let key = format!("k{}", sent % 13);
            producer
                .send("billing-events", Some(key), sent.to_string())
                .await
                .unwrap()
                .await
                .unwrap();
            sent += 1;
        }
    };
    let mut processed: Vec<Value> = Vec::new();
    let mut commit_failed: BTreeSet<(u64, u64)> = BTreeSet::new();
    // Each member's latest assignment (librdkafka's on_assign).
    let mut assigned: BTreeMap<String, usize> = BTreeMap::new();
    let mut drain = |members: &[&Member], processed: &mut Vec<Value>| {
        for m in members {
            while let Ok(v) = m.lines.try_recv() {
                if v.get("offset").is_some() {
                    processed.push(v);
                } else if let Some(at) = v.get("commit_failed") {
                    commit_failed.insert((at[0].as_u64().unwrap(), at[1].as_u64().unwrap()));
                } else if let Some(parts) = v.get("assigned") {
                    let name = v["member"].as_str().unwrap().to_string();
                    assigned.insert(name, parts.as_array().unwrap().len());
                }
            }
        }
        assigned.clone()
    };
    let a = Member::start(&bootstrap, dir.path(), &name("a"));
    let bm = Member::start(&bootstrap, dir.path(), &name("b"));
    let c = Member::start(&bootstrap, dir.path(), &name("c"));
    let holding = |assigned: &BTreeMap<String, usize>, names: &[&String]| {
        names
            .iter()
            .all(|n| assigned.get(n.as_str()).is_some_and(|p| *p > 0))
    };
    eventually_within("a, b and c to hold partitions", DEADLINE * 2, async || {
        holding(
            &drain(&[&a, &bm, &c], &mut processed),
            &[&name("a"), &name("b"), &name("c")],
        )
    })
    .await;
    produce(300).await;
    eventually_within("300 records processed", DEADLINE * 2, async || {
        drain(&[&a, &bm, &c], &mut processed);
        processed.len() >= 300
    })
    .await;
    // One leaves, another joins; then more records flow.
    drain(&[&bm], &mut processed);
    bm.stop();
    let d = Member::start(&bootstrap, dir.path(), &name("d"));
    eventually_within("a, c and d to hold partitions", DEADLINE * 2, async || {
        holding(
            &drain(&[&a, &c, &d], &mut processed),
            &[&name("a"), &name("c"), &name("d")],
        )
    })
    .await;
    produce(300).await;
    eventually_within("600 distinct records processed", DEADLINE * 2, async || {
        drain(&[&a, &c, &d], &mut processed);
        let distinct: BTreeSet<(u64, u64)> = processed
            .iter()
            .map(|v| {
                (
                    v["partition"].as_u64().unwrap(),
                    v["offset"].as_u64().unwrap(),
                )
            })
            .collect();
        distinct.len() >= 600
    })
    .await;
    let members: BTreeSet<String> = processed
        .iter()
        .filter_map(|v| v["member"].as_str().map(String::from))
        .collect();
    assert_eq!(
        members,
        ["a", "b", "c", "d"].map(name).into(),
        "the work was shared"
    );
    let mut seen = BTreeMap::new();
    for v in &processed {
        let at = (
            v["partition"].as_u64().unwrap(),
            v["offset"].as_u64().unwrap(),
        );
        *seen.entry(at).or_insert(0) += 1;
    }
    // A record is processed again only if its commit was refused (a
    // rebalance took its partition first): once per group between commits.
    let twice: Vec<_> = seen
        .iter()
        .filter(|(at, n)| **n > 1 && !commit_failed.contains(at))
        .collect();
    assert!(
        twice.is_empty(),
        "processed twice although committed: {twice:?}"
    );
    assert!(
        commit_failed.len() < 10,
        "{} commits refused",
        commit_failed.len()
    );
    let values: BTreeSet<u32> = processed
        .iter()
        .map(|v| v["value"].as_str().unwrap().parse().unwrap())
        .collect();
    assert_eq!(values, (0..600).collect());

    // The group's lag, over gRPC: exact, and zero with everything committed.
    let mut groups = v1::groups_client::GroupsClient::new(b.channel().await);
    let lag = groups
        .get_consumer_lag(v1::GetConsumerLagRequest {
            group: "billing".into(),
            topic: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(lag.partitions.len(), 6);
    let ends: u64 = lag.partitions.iter().map(|p| p.log_end_offset).sum();
    assert_eq!(ends, 600);
    for p in &lag.partitions {
        assert_eq!(p.committed_offset, Some(p.log_end_offset), "{p:?}");
    }
    assert_eq!(lag.total_lag_records, 0);
    for m in [a, c, d] {
        m.stop();
    }
}

/// Raw frames: what a Kafka client would never send gets the connection
/// closed or an error answer; the broker keeps serving and stores nothing.
#[tokio::test(flavor = "multi_thread")]
async fn malformed_kafka_frames_close_the_connection_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    // 4 GiB of address space: a request that makes the broker reserve more
    // aborts it here, whatever this host's overcommit policy.
    let b = Broker::spawn_with_address_space(dir.path(), &[], 4 << 30);
    b.wait_serving().await;
    create_topic(&b, "orders", 1).await;
    let addr = b.kafka.unwrap();
    let connect = || {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(DEADLINE)).unwrap();
        s
    };
    // The connection ends (EOF or reset), with nothing answered.
    let closed = |mut s: TcpStream| {
        let mut buf = [0u8; 64];
        match s.read(&mut buf) {
            Ok(0) | Err(_) => {}
            Ok(n) => panic!("{n} bytes answered to a malformed frame"),
        }
    };
    let frame = |body: &[u8]| [&(body.len() as i32).to_be_bytes()[..], body].concat();
    // ApiVersions: key 18, version, correlation id, null client id; from
    // v3 on the header and the body end with (empty) tagged fields.
    let api_versions = |version: i16, correlation: i32| {
        let mut body = [
            &18i16.to_be_bytes()[..],
            &version.to_be_bytes(),
            &correlation.to_be_bytes(),
            &(-1i16).to_be_bytes(),
        ]
        .concat();
        if version >= 3 {
            body.extend_from_slice(&[0, 1, 1, 0]);
        }
        frame(&body)
    };

    let mut s = connect();
    let noise: Vec<u8> = (0..200u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    s.write_all(&noise).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    closed(s);

    let mut s = connect();
    s.write_all(&i32::MAX.to_be_bytes()).unwrap();
    closed(s);

    let mut s = connect();
    s.write_all(&frame(
        &[
            &999i16.to_be_bytes()[..],
            &0i16.to_be_bytes(),
            &1i32.to_be_bytes(),
            &(-1i16).to_be_bytes(),
        ]
        .concat(),
    ))
    .unwrap();
    closed(s);

    // A Metadata request claiming 2^31 topics in 14 bytes, classic and
    // compact (flexible): refused, not a reservation that aborts the broker.
    for (version, count) in [
        (1i16, (i32::MAX).to_be_bytes().to_vec()),
        (9, vec![0xff, 0xff, 0xff, 0xff, 0x0f]),
    ] {
        let mut s = connect();
        let mut body = [
            &3i16.to_be_bytes()[..],
            &version.to_be_bytes(),
            &9i32.to_be_bytes(),
            &(-1i16).to_be_bytes(),
        ]
        .concat();
        if version >= 9 {
            body.push(0); // the header's tagged fields
        }
        body.extend_from_slice(&count);
        s.write_all(&frame(&body)).unwrap();
        closed(s);
    }

    // Truncated: a length that promises more than comes, then the client hangs up.
    let mut s = connect();
    s.write_all(&100i32.to_be_bytes()).unwrap();
    s.write_all(&[0, 0, 0, 3]).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    closed(s);

    // A Produce v3 whose records are noise: answered with an error, nothing stored.
    let mut body = Vec::new();
    body.extend_from_slice(&0i16.to_be_bytes()); // Produce
    body.extend_from_slice(&3i16.to_be_bytes()); // v3
    body.extend_from_slice(&7i32.to_be_bytes());
    body.extend_from_slice(&(-1i16).to_be_bytes()); // client id
    body.extend_from_slice(&(-1i16).to_be_bytes()); // transactional id
    body.extend_from_slice(&(-1i16).to_be_bytes()); // acks
    body.extend_from_slice(&1000i32.to_be_bytes());
    body.extend_from_slice(&1i32.to_be_bytes()); // one topic
    body.extend_from_slice(&6i16.to_be_bytes());
    body.extend_from_slice(b"orders");
    body.extend_from_slice(&1i32.to_be_bytes()); // one partition
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&(noise.len() as i32).to_be_bytes());
    body.extend_from_slice(&noise);
    let mut s = connect();
    s.write_all(&frame(&body)).unwrap();
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut resp).unwrap();
    assert_eq!(&resp[..4], &7i32.to_be_bytes(), "correlation id");
    // correlation(4) topics(4) name(2+6) partitions(4) index(4) error_code(2)
    let error = i16::from_be_bytes([resp[24], resp[25]]);
    assert_ne!(error, 0, "garbage records are refused");

    // An ApiVersions version from the future: a v0 answer with UNSUPPORTED_VERSION (35).
    let mut s = connect();
    s.write_all(&api_versions(99, 5)).unwrap();
    s.read_exact(&mut len).unwrap();
    let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut resp).unwrap();
    assert_eq!(&resp[..4], &5i32.to_be_bytes());
    assert_eq!(i16::from_be_bytes([resp[4], resp[5]]), 35);
    // And the same connection still answers a proper request.
    s.write_all(&api_versions(0, 6)).unwrap();
    s.read_exact(&mut len).unwrap();
    let mut resp = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut resp).unwrap();
    assert_eq!(&resp[..4], &6i32.to_be_bytes());
    assert_eq!(i16::from_be_bytes([resp[4], resp[5]]), 0);

    b.wait_serving().await;
    let (stored, _) = read_all(&b, "orders", 1).await;
    assert!(stored.is_empty(), "nothing stored: {stored:?}");
    let metrics = b.metrics_text().await;
    let closed = metrics
        .lines()
        .find_map(|l| l.strip_prefix("brook_kafka_closed_connections_total "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    // At least the oversized length, the unknown API and the two lying
    // arrays (a frame cut short ends with the client's own close).
    assert!(
        closed.is_some_and(|n| n >= 4.0),
        "closed connections counted: {closed:?}"
    );
}

/// Versions ApiVersions does not list and APIs it does not list, sent
/// raw as a tool that skips the version check would: each gets an answer
/// of its own version with `UNSUPPORTED_VERSION` (35) for every entry it
/// named, nothing is stored, and the connection goes on serving.
#[tokio::test(flavor = "multi_thread")]
async fn requests_the_listener_does_not_serve_get_unsupported_version_answers() {
    use kafka_protocol::messages::*;
    use kafka_protocol::protocol::StrBytes;
    const UNSUPPORTED: i16 = 35;
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    create_topic(&b, "orders", 2).await;
    let mut s = TcpStream::connect(b.kafka.unwrap()).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let orders = || TopicName(StrBytes::from_static_str("orders"));

    // Fetch v13 names topics by id, which Brook does not have.
    let topic_id = uuid::Uuid::from_u128(0x0b5e55ed);
    let fetch = FetchRequest::default()
        .with_max_wait_ms(0)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic_id(topic_id)
                .with_partitions(vec![
                    fetch_request::FetchPartition::default().with_partition(0),
                    fetch_request::FetchPartition::default().with_partition(1),
                ]),
        ]);
    let r: FetchResponse = call(&mut s, ApiKey::Fetch as i16, 13, 1, &fetch);
    assert_eq!(r.error_code, UNSUPPORTED);
    assert_eq!(r.responses.len(), 1);
    assert_eq!(r.responses[0].topic_id, topic_id);
    let parts: Vec<_> = (r.responses[0].partitions.iter())
        .map(|p| (p.partition_index, p.error_code))
        .collect();
    assert_eq!(parts, [(0, UNSUPPORTED), (1, UNSUPPORTED)]);

    // Produce v11 with a well-formed batch: refused, not stored.
    let mut batch = brook_protocol::batch::BatchBuilder::new();
    batch.push(1, Some(b"k"), Some(b"refused"), &[]);
    let batch = batch.build(0);
    let produce = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(orders())
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(1)
                        .with_records(Some(batch)),
                ]),
        ]);
    let r: ProduceResponse = call(&mut s, ApiKey::Produce as i16, 11, 2, &produce);
    assert_eq!(r.responses.len(), 1);
    assert_eq!(r.responses[0].name, orders());
    let p = &r.responses[0].partition_responses;
    assert_eq!((p.len(), p[0].index, p[0].error_code), (1, 1, UNSUPPORTED));

    // ListOffsets v7 (a version past the listed 6).
    let list = ListOffsetsRequest::default().with_topics(vec![
        list_offsets_request::ListOffsetsTopic::default()
            .with_name(orders())
            .with_partitions(vec![
                list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-1),
            ]),
    ]);
    let r: ListOffsetsResponse = call(&mut s, ApiKey::ListOffsets as i16, 7, 3, &list);
    assert_eq!(r.topics[0].partitions[0].error_code, UNSUPPORTED);

    // APIs not listed at all: ACLs (a top-level error), configuration
    // changes (one per resource), transactions.
    let acls = DescribeAclsRequest::default()
        .with_resource_type_filter(1)
        .with_pattern_type_filter(1)
        .with_operation(1)
        .with_permission_type(1);
    let r: DescribeAclsResponse = call(&mut s, ApiKey::DescribeAcls as i16, 1, 4, &acls);
    assert_eq!(r.error_code, UNSUPPORTED);
    let alter = AlterConfigsRequest::default().with_resources(vec![
        alter_configs_request::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str("orders")),
    ]);
    let r: AlterConfigsResponse = call(&mut s, ApiKey::AlterConfigs as i16, 1, 5, &alter);
    assert_eq!(r.responses.len(), 1);
    assert_eq!(r.responses[0].resource_name.as_str(), "orders");
    assert_eq!(r.responses[0].error_code, UNSUPPORTED);
    let end = EndTxnRequest::default()
        .with_transactional_id(TransactionalId(StrBytes::from_static_str("t")));
    let r: EndTxnResponse = call(&mut s, ApiKey::EndTxn as i16, 3, 6, &end);
    assert_eq!(r.error_code, UNSUPPORTED);

    // The same connection still serves what is listed.
    let r: ApiVersionsResponse = call(
        &mut s,
        ApiKey::ApiVersions as i16,
        3,
        7,
        &ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("raw"))
            .with_client_software_version(StrBytes::from_static_str("1")),
    );
    assert_eq!(r.error_code, 0);
    let listed = |key: ApiKey| r.api_keys.iter().find(|k| k.api_key == key as i16).cloned();
    assert!(listed(ApiKey::DescribeAcls).is_none());
    assert!(listed(ApiKey::Fetch).is_some_and(|k| k.max_version < 13));

    let (stored, _) = read_all(&b, "orders", 2).await;
    assert!(stored.is_empty(), "nothing stored: {stored:?}");
    let metrics = b.metrics_text().await;
    assert!(
        !metrics
            .lines()
            .any(|l| l.starts_with("brook_kafka_closed_connections_total ") && !l.ends_with(" 0")),
        "no connection closed:\n{metrics}"
    );
}

/// With `--auth required`, a Kafka client authenticates with SASL PLAIN
/// (its principal and a token) and is then under the principal's ACLs;
/// without credentials, or with a wrong token, it gets nothing.
#[tokio::test(flavor = "multi_thread")]
async fn sasl_plain_with_a_token_is_the_tokens_principal() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    let admin = brook_tests::create_token("admin", &tokens);
    let reader = brook_tests::create_token("reader", &tokens);
    let data = dir.path().join("data");
    let flags = [
        "--auth",
        "required",
        "--tokens-file",
        tokens.to_str().unwrap(),
        "--super-users",
        "admin",
    ];
    let b = Broker::spawn(&data, &flags);
    b.wait_serving().await;
    let bootstrap = b.kafka_bootstrap();
    let sasl = |user: &str, password: &str| {
        let mut cmd = kcat();
        cmd.args([
            "-b",
            &bootstrap,
            "-X",
            "security.protocol=SASL_PLAINTEXT",
            "-X",
            "sasl.mechanisms=PLAIN",
        ])
        .args([
            "-X",
            &format!("sasl.username={user}"),
            "-X",
            &format!("sasl.password={password}"),
        ]);
        cmd
    };
    let produce = |mut cmd: Command, value: &str| {
        let mut p = cmd
            .args(["-P", "-t", "audit", "-X", "message.timeout.ms=5000"])
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        p.stdin
            .take()
            .unwrap()
            .write_all(format!("{value}\n").as_bytes())
            .unwrap();
        p.wait_with_output().unwrap()
    };
    // The admin (a super user) creates the topic and writes to it.
    let mut admin_client = sasl("admin", &admin);
    admin_client.args(["-L", "-m", "10"]);
    assert!(admin_client.output().unwrap().status.success());
    let mut topics = v1::topics_client::TopicsClient::new(b.channel().await);
    let mut req = tonic::Request::new(v1::CreateTopicRequest {
        name: "audit".into(),
        config: Some(v1::TopicConfig {
            partitions: 1,
            ..Default::default()
        }),
    });
    req.metadata_mut()
        .insert("authorization", format!("Bearer {admin}").parse().unwrap());
    topics.create_topic(req).await.unwrap();
    let out = produce(sasl("admin", &admin), "by-admin");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A principal with no ACL authenticates, and is refused the write.
    let out = produce(sasl("reader", &reader), "by-reader");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("authoriz"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // A token under another name, a wrong token, and no SASL at all: nothing.
    for (user, password) in [("admin", reader.as_str()), ("admin", "brk_0000")] {
        let out = sasl(user, password)
            .args(["-L", "-m", "3"])
            .output()
            .unwrap();
        assert!(
            !out.status.success(),
            "{user} with a bad password listed topics"
        );
    }
    let out = kcat()
        .args(["-b", &bootstrap, "-L", "-m", "3"])
        .output()
        .unwrap();
    assert!(
        !out.status.success(),
        "listed topics without authenticating"
    );

    // Only the admin's record is there.
    let mut consumer = v1::consumer_client::ConsumerClient::new(b.channel().await);
    let mut req = tonic::Request::new(v1::FetchRequest {
        topic: "audit".into(),
        decoded: true,
        ..Default::default()
    });
    req.metadata_mut()
        .insert("authorization", format!("Bearer {admin}").parse().unwrap());
    let fetched = consumer.fetch(req).await.unwrap().into_inner();
    let values: Vec<_> = fetched
        .records
        .iter()
        .map(|r| String::from_utf8_lossy(r.value()).into_owned())
        .collect();
    assert_eq!(values, ["by-admin"]);
}
