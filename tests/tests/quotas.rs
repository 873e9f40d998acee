//! Byte-rate quotas: a client past its rate is slowed down, never refused,
//! and what it sent is all stored. The checks are lower bounds on time (a
//! throttled client cannot be faster than its rate allows), which a slow
//! machine only makes easier to pass, and the broker's own throttle counter.

use std::time::{Duration, Instant};

use brook_protocol::v1;
use brook_tests::{Broker, batch_of, create_topic, fetch_all};

/// `brook_throttled_seconds_total{direction=…}` from the metrics page.
async fn throttled(broker: &Broker, direction: &str) -> f64 {
    let text = broker.metrics_text().await;
    let line = format!("brook_throttled_seconds_total{{direction=\"{direction}\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&line))
        .map_or(0.0, |v| v.parse().unwrap())
}

async fn produce_all(
    broker: &Broker,
    topic: &str,
    batches: usize,
    value: &[u8],
    token: Option<&str>,
) {
    let mut producer = broker.producer().await;
    for _ in 0..batches {
        let mut req = tonic::Request::new(v1::ProduceRequest {
            topic: topic.into(),
            partition: 0,
            batch: batch_of(None, &[value]).into_bytes(),
            acks: 0,
        });
        if let Some(t) = token {
            req.metadata_mut()
                .insert("authorization", format!("Bearer {t}").parse().unwrap());
        }
        producer.produce(req).await.unwrap();
    }
}

/// 600 kB produced and fetched at 200 kB/s: the first second's worth passes
/// at once, the rest waits its share, and every record is stored and read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_rate_waits_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let rate = "200000";
    let broker = Broker::start(
        dir.path(),
        &[
            "--quota-produce-bytes-per-sec",
            rate,
            "--quota-fetch-bytes-per-sec",
            rate,
        ],
    )
    .await;
    create_topic(&broker, "t", 1).await;
    let value = vec![7u8; 100_000];
    let started = Instant::now();
    produce_all(&broker, "t", 6, &value, None).await;
    let took = started.elapsed();
    // 600,000 bytes, 200,000 of them free: at least 2 s of waiting.
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(throttled(&broker, "produce").await >= 1.5);

    let started = Instant::now();
    let records = fetch_all(&broker, "t", 0, 0).await;
    assert_eq!(records.len(), 6, "everything produced is stored");
    assert!(records.iter().all(|r| r.2 == value));
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert!(throttled(&broker, "fetch").await >= 1.5);
}

/// The tokens file gives one principal its own rate; another, with the
/// broker's default (none), is never slowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_principal_can_have_its_own_rate() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    let token = |principal: &str| {
        let out = std::process::Command::new(brook_tests::brook_binary())
            .args(["token", "create", principal, "--tokens-file"])
            .arg(&tokens)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap().trim().to_string()
    };
    let (fast, slow) = (token("fast"), token("slow"));
    let mut text = std::fs::read_to_string(&tokens).unwrap();
    text.push_str("\n[quotas.slow]\nproduce_bytes_per_sec = 100000\n");
    std::fs::write(&tokens, text).unwrap();
    let broker = Broker::start(
        &dir.path().join("data"),
        &[
            "--auth",
            "required",
            "--tokens-file",
            tokens.to_str().unwrap(),
            "--super-users",
            "fast,slow",
        ],
    )
    .await;
    let mut topics = broker.topics().await;
    let mut create = tonic::Request::new(v1::CreateTopicRequest {
        name: "t".into(),
        config: Some(v1::TopicConfig {
            partitions: 1,
            ..Default::default()
        }),
    });
    create
        .metadata_mut()
        .insert("authorization", format!("Bearer {fast}").parse().unwrap());
    topics.create_topic(create).await.unwrap();

    let value = vec![1u8; 100_000];
    produce_all(&broker, "t", 5, &value, Some(&fast)).await;
    assert_eq!(
        throttled(&broker, "produce").await,
        0.0,
        "fast has no quota"
    );
    let started = Instant::now();
    produce_all(&broker, "t", 3, &value, Some(&slow)).await;
    // 300,000 bytes, 100,000 free, at 100,000 B/s: at least 2 s.
    assert!(
        started.elapsed() >= Duration::from_millis(1500),
        "{:?}",
        started.elapsed()
    );
    assert!(throttled(&broker, "produce").await >= 1.5);
}
