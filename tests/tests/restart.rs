//! The broker keeps what it acknowledged: across a clean restart (SIGTERM)
//! and across a crash (SIGKILL, where recovery scans the logs).

use brook_protocol::v1;
use brook_tests::{Broker, batch_of, create_topic, fetch_all};

async fn produce_some(
    b: &Broker,
    topic: &str,
    partitions: u32,
    per_partition: u8,
    acks: v1::Acks,
) -> u64 {
    let mut producer = b.producer().await;
    let mut count = 0;
    for p in 0..partitions {
        for i in 0..per_partition {
            let batch = batch_of(Some(format!("k{p}").as_bytes()), &[&[i; 100], &[i; 10]]);
            let req = v1::ProduceRequest {
                topic: topic.into(),
                partition: p,
                batch: batch.into_bytes(),
                acks: acks as i32,
            };
            producer.produce(req).await.expect("produce");
            count += 2;
        }
    }
    count
}

async fn snapshot(
    b: &Broker,
    topic: &str,
    partitions: u32,
) -> Vec<Vec<(u64, Option<Vec<u8>>, Vec<u8>)>> {
    let mut out = Vec::new();
    for p in 0..partitions {
        out.push(fetch_all(b, topic, p, 0).await);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clean_restart_finds_topics_records_and_settings() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    let config = v1::TopicConfig {
        partitions: 3,
        retention_ms: Some(-1),
        segment_bytes: Some(1 << 20),
        ..Default::default()
    };
    let created = broker
        .topics()
        .await
        .create_topic(v1::CreateTopicRequest {
            name: "orders".into(),
            config: Some(config),
        })
        .await
        .unwrap()
        .into_inner();
    let produced = produce_some(&broker, "orders", 3, 20, v1::Acks::Written).await;
    let before = snapshot(&broker, "orders", 3).await;
    assert_eq!(before.iter().map(Vec::len).sum::<usize>() as u64, produced);
    // An open subscription must not hold the shutdown up.
    let mut consumer = broker.consumer().await;
    let sub = v1::SubscribeRequest {
        topic: "orders".into(),
        ..Default::default()
    };
    let mut live = consumer.subscribe(sub).await.unwrap().into_inner();
    let status = broker.terminate();
    while let Some(Ok(_)) = live.message().await.transpose() {}
    assert!(status.success(), "SIGTERM exits 0, got {status:?}");
    for p in 0..3 {
        assert!(
            dir.path()
                .join(format!("orders/{p}/.clean-shutdown"))
                .exists(),
            "partition {p} was closed cleanly"
        );
    }

    let broker = Broker::start(dir.path(), &[]).await;
    assert_eq!(snapshot(&broker, "orders", 3).await, before);
    let described = broker
        .topics()
        .await
        .describe_topic(v1::DescribeTopicRequest {
            name: "orders".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        described.config, created.config,
        "settings survive the restart"
    );
    assert_eq!(
        described
            .partitions
            .iter()
            .map(|p| p.log_end_offset)
            .sum::<u64>(),
        produced
    );
    // Appends continue after the old end.
    let mut producer = broker.producer().await;
    let req = v1::ProduceRequest {
        topic: "orders".into(),
        partition: 0,
        batch: batch_of(None, &[b"next"]).into_bytes(),
        acks: 0,
    };
    let r = producer.produce(req).await.unwrap().into_inner();
    assert_eq!(r.base_offset, described.partitions[0].log_end_offset);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    create_topic(&broker, "payments", 2).await;
    let produced = produce_some(&broker, "payments", 2, 30, v1::Acks::Written).await;
    let before = snapshot(&broker, "payments", 2).await;
    broker.kill9();
    assert!(!dir.path().join("payments/0/.clean-shutdown").exists());

    let broker = Broker::start(dir.path(), &[]).await;
    let after = snapshot(&broker, "payments", 2).await;
    assert_eq!(
        after.iter().map(Vec::len).sum::<usize>() as u64,
        produced,
        "every acknowledged record survived SIGKILL"
    );
    assert_eq!(after, before);
}
