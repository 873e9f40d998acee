//! Keyed publish, raw produce, fetch, long-poll and subscribe against a real broker.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use brook_protocol::partitioner::partition_for_key;
use brook_protocol::v1;
use brook_tests::{Broker, DEADLINE, batch_of, create_topic, fetch_all};
use tokio_stream::StreamExt;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyed_publish_keeps_every_key_on_one_partition_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    create_topic(&broker, "orders", 4).await;

    // 4 clients, each publishing 60 records over 10 keys of its own, 6 requests each.
    let mut tasks = Vec::new();
    for client in 0..4 {
        let mut producer = broker.producer().await;
        tasks.push(tokio::spawn(async move {
            let mut placed = Vec::new();
            for request in 0..6 {
                let records: Vec<v1::PublishRecord> = (0..10)
                    .map(|k| v1::PublishRecord {
                        key: Some(format!("order-{client}-{k}").into_bytes().into()),
                        value: Some(format!("{client}-{k}-{request}").into_bytes().into()),
                        headers: vec![v1::Header {
                            key: "type".into(),
                            value: "OrderPlaced".into(),
                        }],
                        timestamp_ms: None,
                    })
                    .collect();
                let req = v1::PublishRequest {
                    topic: "orders".into(),
                    records: records.clone(),
                    acks: v1::Acks::Written as i32,
                };
                let resp = producer.publish(req).await.expect("publish").into_inner();
                assert_eq!(resp.positions.len(), records.len());
                placed.extend(records.into_iter().zip(resp.positions));
            }
            placed
        }));
    }
    let mut placed = Vec::new();
    for t in tasks {
        placed.extend(t.await.unwrap());
    }
    assert_eq!(placed.len(), 240);

    let mut key_partition: HashMap<Vec<u8>, u32> = HashMap::new();
    let mut total = 0;
    for p in 0..4 {
        let records = fetch_all(&broker, "orders", p, 0).await;
        total += records.len();
        let mut last_request: HashMap<Vec<u8>, u32> = HashMap::new();
        for (_, key, value) in records {
            let key = key.expect("every record has a key");
            let owner = *key_partition.entry(key.clone()).or_insert(p);
            assert_eq!(
                owner,
                p,
                "key {} is on two partitions",
                String::from_utf8_lossy(&key)
            );
            assert_eq!(
                partition_for_key(&key, 4),
                p,
                "the key sits where a Kafka client would put it"
            );
            let request: u32 = String::from_utf8(value)
                .unwrap()
                .rsplit('-')
                .next()
                .unwrap()
                .parse()
                .unwrap();
            let prev = last_request.insert(key.clone(), request);
            assert!(
                prev.is_none_or(|prev| prev < request),
                "records of one key are in publish order"
            );
        }
    }
    assert_eq!(total, 240, "every record published is stored once");
    // The positions the broker answered are where the records are.
    for (record, pos) in placed.iter().step_by(17) {
        let got = fetch_all(&broker, "orders", pos.partition, pos.offset).await;
        assert_eq!(got[0].0, pos.offset);
        assert_eq!(got[0].2, record.value.as_ref().unwrap().to_vec());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_fetch_by_offset_and_long_poll() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    create_topic(&broker, "events", 1).await;
    let mut producer = broker.producer().await;
    for i in 0..5u8 {
        let batch = batch_of(Some(b"k"), &[&[i], &[i, i]]);
        let req = v1::ProduceRequest {
            topic: "events".into(),
            partition: 0,
            batch: batch.into_bytes(),
            acks: v1::Acks::Durable as i32,
        };
        let r = producer.produce(req).await.unwrap().into_inner();
        assert_eq!(
            (r.base_offset, r.last_offset),
            (u64::from(i) * 2, u64::from(i) * 2 + 1)
        );
    }
    // Fetch from the middle of a batch, decoded.
    let mut consumer = broker.consumer().await;
    let req = v1::FetchRequest {
        topic: "events".into(),
        partition: 0,
        offset: 5,
        decoded: true,
        ..Default::default()
    };
    let r = consumer.fetch(req).await.unwrap().into_inner();
    assert_eq!(
        r.records.first().map(|r| r.offset),
        Some(5),
        "decoded records start at the requested offset"
    );
    assert_eq!(
        r.records
            .first()
            .and_then(|r| r.value.clone())
            .unwrap()
            .to_vec(),
        vec![2, 2]
    );
    assert_eq!(r.records[0].headers[0].key, "correlation-id");
    assert_eq!(
        (r.log_start_offset, r.log_end_offset, r.next_offset),
        (0, 10, 10)
    );

    // A long poll at the log end wakes up when data arrives, well before its deadline.
    let mut waiter = tokio::spawn(async move {
        let started = Instant::now();
        let req = v1::FetchRequest {
            topic: "events".into(),
            partition: 0,
            offset: 10,
            min_bytes: 1,
            max_wait_ms: 30_000,
            ..Default::default()
        };
        let r = consumer.fetch(req).await.unwrap().into_inner();
        (r, started.elapsed())
    });
    // With nothing to return, the poll waits: still unanswered a while
    // later (and by then most likely parked, so the append must wake it).
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut waiter)
            .await
            .is_err(),
        "the long poll answered with nothing to return"
    );
    let req = v1::ProduceRequest {
        topic: "events".into(),
        partition: 0,
        batch: batch_of(None, &[b"late"]).into_bytes(),
        acks: 0,
    };
    producer.produce(req).await.unwrap();
    let (r, waited) = waiter.await.unwrap();
    assert!(
        !r.batches.is_empty(),
        "the long poll returned the new batch"
    );
    assert!(
        waited < Duration::from_secs(20),
        "the long poll woke on the append, not at its 30 s deadline ({waited:?})"
    );
    assert_eq!(r.next_offset, 11);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_pushes_new_records_and_replays_from_earliest() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    create_topic(&broker, "feed", 2).await;
    let mut producer = broker.producer().await;
    let publish = |values: Vec<&'static str>| v1::PublishRequest {
        topic: "feed".into(),
        records: values
            .into_iter()
            .map(|v| v1::PublishRecord {
                value: Some(v.as_bytes().to_vec().into()),
                ..Default::default()
            })
            .collect(),
        acks: 0,
    };
    producer
        .publish(publish(vec!["old-1", "old-2"]))
        .await
        .unwrap();

    let mut consumer = broker.consumer().await;
    let latest = v1::StartPosition {
        position: Some(v1::start_position::Position::Latest(v1::Latest {})),
    };
    let req = v1::SubscribeRequest {
        topic: "feed".into(),
        start: Some(latest),
        decoded: true,
        ..Default::default()
    };
    let mut live = consumer.subscribe(req).await.unwrap().into_inner();
    producer
        .publish(publish(vec!["new-1", "new-2", "new-3"]))
        .await
        .unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 {
        let msg = tokio::time::timeout(DEADLINE, live.next())
            .await
            .expect("pushed before the deadline")
            .unwrap()
            .unwrap();
        seen.extend(
            msg.records
                .into_iter()
                .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap()),
        );
    }
    seen.sort();
    assert_eq!(
        seen,
        ["new-1", "new-2", "new-3"],
        "a subscription from latest sees only new records"
    );

    let earliest = v1::StartPosition {
        position: Some(v1::start_position::Position::Earliest(v1::Earliest {})),
    };
    let req = v1::SubscribeRequest {
        topic: "feed".into(),
        start: Some(earliest),
        decoded: true,
        partitions: vec![0, 1],
        ..Default::default()
    };
    let mut replay = consumer.subscribe(req).await.unwrap().into_inner();
    let mut all = Vec::new();
    while all.len() < 5 {
        let msg = tokio::time::timeout(DEADLINE, replay.next())
            .await
            .expect("replayed before the deadline")
            .unwrap()
            .unwrap();
        all.extend(
            msg.records
                .into_iter()
                .map(|r| String::from_utf8(r.value.unwrap().to_vec()).unwrap()),
        );
    }
    all.sort();
    assert_eq!(all, ["new-1", "new-2", "new-3", "old-1", "old-2"]);
}
