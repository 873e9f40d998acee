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

/// With the broker gone for good, every send fails once `delivery_timeout`
/// has passed, also a batch that never got as far as a producer id (the
/// producer forgets its id after a timeout): no `Delivery` or `flush` hangs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_fail_after_the_delivery_timeout_when_the_broker_stays_down() {
    use std::time::Duration;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    create_topic(&broker, "pay", 1).await;
    let client = Client::connect(format!("http://{}", broker.grpc))
        .await
        .unwrap();
    let timeout = Duration::from_secs(1);
    let producer = client.producer(ProducerConfig {
        linger: Duration::ZERO,
        delivery_timeout: timeout,
        ..Default::default()
    });
    let bounded = |what: &'static str, d: brook_client::Delivery| async move {
        tokio::time::timeout(brook_tests::DEADLINE, d)
            .await
            .unwrap_or_else(|_| panic!("{what} never completed"))
    };
    bounded(
        "the first send",
        producer.send("pay", None::<&[u8]>, "a").await.unwrap(),
    )
    .await
    .expect("stored while the broker is up");
    broker.kill9();
    // In flight when the stream breaks: retried, then failed.
    let b = producer.send("pay", None::<&[u8]>, "b").await.unwrap();
    assert!(bounded("the send in flight", b).await.is_err());
    // After that failure the producer has no id: this batch waits for one.
    let started = std::time::Instant::now();
    let c = producer.send("pay", None::<&[u8]>, "c").await.unwrap();
    assert!(
        bounded("the send waiting for a producer id", c)
            .await
            .is_err()
    );
    assert!(
        started.elapsed() >= timeout,
        "failed only after the delivery timeout"
    );
    let flushed = tokio::time::timeout(brook_tests::DEADLINE, producer.flush()).await;
    assert!(flushed.is_ok(), "flush never completed");
}

/// The broker forgets an idle producer (--producer-id-expiration-ms); the
/// client's next batch gets UNKNOWN_PRODUCER, and the client asks for a new
/// id and sends it again under that id, as Kafka's producer does: the send
/// succeeds and the record is stored once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forgotten_producer_id_is_replaced_and_the_send_succeeds() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("broker.log");
    let broker = Broker::spawn_logged(
        &dir.path().join("data"),
        &[
            "--producer-id-expiration-ms",
            "300",
            "--retention-check-interval-ms",
            "100",
        ],
        &log,
    );
    broker.wait_serving().await;
    create_topic(&broker, "pay", 1).await;
    let client = Client::connect(format!("http://{}", broker.grpc))
        .await
        .unwrap();
    let producer = client.producer(ProducerConfig {
        linger: std::time::Duration::ZERO,
        ..Default::default()
    });
    let first = producer
        .send("pay", Some("k"), "a")
        .await
        .unwrap()
        .await
        .unwrap();
    brook_tests::eventually("the broker to forget the idle producer", async || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("forgot idle producers"))
    })
    .await;
    // Sequence 1 of a producer the partition no longer knows.
    let second = producer.send("pay", Some("k"), "b").await.unwrap().await;
    let second = second.expect("re-sent under a new producer id");
    assert_eq!((first.offset, second.offset), (0, 1));
    let values: Vec<Vec<u8>> = fetch_all(&broker, "pay", 0, 0)
        .await
        .into_iter()
        .map(|r| r.2)
        .collect();
    assert_eq!(values, [b"a".to_vec(), b"b".to_vec()]);
}
