//! The client's idempotent producer retries across a broker crash without
//! duplicating or losing a record.

use std::collections::BTreeSet;

use brook_client::{Client, ProducerConfig};
use brook_tests::{Broker, create_topic, fetch_all};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_retries_across_a_broker_crash_without_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path(), &[]).await;
    create_topic(&broker, "pay", 2).await;
    let client = Client::connect(format!("http://{}", broker.grpc))
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig {
        batch_bytes: 2048,
        linger: std::time::Duration::ZERO,
        ..Default::default()
    });
    let mut deliveries = Vec::new();
    for i in 0..3000 {
        deliveries.push(
            producer
                .send("pay", Some(format!("k{}", i % 7)), format!("v{i}"))
                .await
                .unwrap(),
        );
        if i == 1500 {
            // Crash the broker mid-stream and bring it back on the same port.
            broker.kill9_in_place();
            broker.restart().await;
        }
    }
    producer.flush().await.unwrap();
    for d in deliveries {
        d.await.expect("every send is eventually acknowledged");
    }
    let mut values = BTreeSet::new();
    let mut total = 0;
    for p in 0..2 {
        for (_, _, v) in fetch_all(&broker, "pay", p, 0).await {
            total += 1;
            values.insert(v);
        }
    }
    assert_eq!(values.len(), 3000, "no record lost");
    assert_eq!(total, 3000, "no record stored twice");
}

/// Deterministic version: the broker (through a test-only fail point) drops
/// every produce stream right after storing a batch and before acking it,
/// so the client must re-send stored batches all the time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_acks_are_retried_and_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--debug-drop-stream-after", "3"]).await;
    create_topic(&broker, "pay", 3).await;
    let client = Client::connect(format!("http://{}", broker.grpc))
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig {
        batch_bytes: 512,
        linger: std::time::Duration::ZERO,
        ..Default::default()
    });
    let mut deliveries = Vec::new();
    for i in 0..1000 {
        deliveries.push(
            producer
                .send("pay", Some(format!("k{}", i % 11)), format!("v{i}"))
                .await
                .unwrap(),
        );
    }
    producer.flush().await.unwrap();
    let mut offsets = BTreeSet::new();
    for d in deliveries {
        let m = d.await.expect("acknowledged after retries");
        assert!(
            offsets.insert((m.partition, m.offset)),
            "two records acknowledged at one offset"
        );
    }
    let mut values = BTreeSet::new();
    let mut total = 0;
    for p in 0..3 {
        for (_, _, v) in fetch_all(&broker, "pay", p, 0).await {
            total += 1;
            values.insert(v);
        }
    }
    assert_eq!(
        (values.len(), total),
        (1000, 1000),
        "every record stored exactly once"
    );
}
