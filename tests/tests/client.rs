//! The Rust client against a real broker: producer batching and acks,
//! group consumers sharing partitions, resuming from commits, lag.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use brook_client::{
    Client, Code, ConsumerConfig, Error, ProducerConfig, ProducerRecord, ReadFrom, ReaderConfig,
    StartFrom,
};
use brook_protocol::partitioner::partition_for_key;
use brook_tests::{Broker, DEADLINE, fetch_all};

/// Awaits `f`, failing with its name instead of hanging the suite.
async fn within<T>(what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(DEADLINE, f)
        .await
        .unwrap_or_else(|_| panic!("{what} did not complete within {DEADLINE:?}"))
}

async fn client(b: &Broker) -> Client {
    Client::connect(format!("http://{}", b.grpc)).await.unwrap()
}

/// A broker (started with `flags`) on a fresh data directory, a client of
/// it, and `topic` with `partitions`. Keep the directory alive with the broker.
async fn broker_with_topic(
    topic: &str,
    partitions: u32,
    flags: &[&str],
) -> (tempfile::TempDir, Broker, Client) {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), flags).await;
    let client = client(&broker).await;
    client
        .admin()
        .create_topic(topic, partitions)
        .await
        .unwrap();
    (dir, broker, client)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_batches_keyed_records_and_resolves_each_with_its_offset() {
    let (_dir, broker, client) = broker_with_topic("orders", 4, &[]).await;
    let producer = client.producer(ProducerConfig {
        linger: Duration::from_millis(20),
        batch_bytes: 4096,
        ..Default::default()
    });
    let mut deliveries = Vec::new();
    for i in 0..2000 {
        let key = format!("order-{}", i % 50);
        let d = producer
            .send("orders", Some(key.clone()), format!("{key}:{i}"))
            .await
            .unwrap();
        deliveries.push((key, i, d));
    }
    within("flush", producer.flush()).await.unwrap();
    let mut placed = BTreeMap::new();
    for (key, i, d) in deliveries {
        let m = within("delivery", d).await.unwrap();
        assert_eq!(
            m.partition,
            partition_for_key(key.as_bytes(), 4),
            "the client routes like the broker and Kafka"
        );
        assert!(
            placed
                .insert((m.partition, m.offset), format!("{key}:{i}"))
                .is_none(),
            "two records at one offset"
        );
    }
    for p in 0..4 {
        for (offset, _, value) in fetch_all(&broker, "orders", p, 0).await {
            assert_eq!(
                placed.remove(&(p, offset)).as_deref(),
                Some(String::from_utf8(value).unwrap().as_str())
            );
        }
    }
    assert!(
        placed.is_empty(),
        "every acknowledged record is stored where its ack said"
    );
    let d = client.admin().describe_topic("orders").await.unwrap();
    assert!(d.partitions.iter().map(|p| p.log_end_offset).sum::<u64>() == 2000);

    let err = producer
        .send("nope", None::<&str>, "x")
        .await
        .err()
        .unwrap();
    assert_eq!(err.code(), Some(tonic::Code::NotFound));
    assert_eq!(err.reason(), Some("TOPIC_NOT_FOUND"), "{err}");
    let record = ProducerRecord {
        topic: "orders".into(),
        partition: Some(9),
        value: Some("x".into()),
        ..Default::default()
    };
    assert_eq!(
        producer.send_record(record).await.err().unwrap().code(),
        Some(tonic::Code::NotFound)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn group_consumers_share_the_work_and_resume_from_commits() {
    let (_dir, _broker, client) = broker_with_topic("orders", 4, &[]).await;
    let producer = client.producer(Default::default());
    for i in 0..400 {
        producer
            .send("orders", Some(format!("k{i}")), format!("v{i}"))
            .await
            .unwrap();
    }
    within("flush", producer.flush()).await.unwrap();

    let config = || ConsumerConfig {
        auto_commit: Some(Duration::from_millis(100)),
        ..ConsumerConfig::new("billing", &["orders"])
    };
    let mut a = client.consumer(config()).await.unwrap();
    let mut b = client.consumer(config()).await.unwrap();
    // Consume only once the group settled: before, a owns all four
    // partitions and could hand out 300 records alone.
    brook_tests::eventually("a and b own two partitions each", async || {
        a.assignment().len() == 2 && b.assignment().len() == 2
    })
    .await;
    let mut seen = BTreeSet::new();
    let mut by_member = [0usize; 2];
    // Take 300 records from whichever member has one.
    while seen.len() < 300 {
        let (rec, who) = tokio::time::timeout(DEADLINE, async {
            tokio::select! {
                r = a.recv() => (r.unwrap(), 0),
                r = b.recv() => (r.unwrap(), 1),
            }
        })
        .await
        .expect("records keep coming");
        assert!(
            seen.insert((rec.partition, rec.offset)),
            "record {}/{} delivered twice",
            rec.partition,
            rec.offset
        );
        by_member[who] += 1;
    }
    assert!(
        by_member[0] > 0 && by_member[1] > 0,
        "both members got partitions: {by_member:?}"
    );
    within("commit", a.commit()).await.unwrap();
    within("commit", b.commit()).await.unwrap();
    within("close", a.close()).await.unwrap();
    within("close", b.close()).await.unwrap();

    // A new member resumes exactly after what was committed.
    let mut c = client.consumer(config()).await.unwrap();
    while seen.len() < 400 {
        let rec = tokio::time::timeout(DEADLINE, c.recv())
            .await
            .expect("the rest arrives")
            .unwrap();
        assert!(
            seen.insert((rec.partition, rec.offset)),
            "record {}/{} replayed after its commit",
            rec.partition,
            rec.offset
        );
    }
    within("commit", c.commit()).await.unwrap();
    let lag = client.consumer_lag("billing").await.unwrap();
    assert_eq!(lag.total_lag_records, 0);
    within("close", c.close()).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn assigned_consumer_seeks_by_offset_and_time() {
    let (_dir, _broker, client) = broker_with_topic("ev", 1, &[]).await;
    let producer = client.producer(Default::default());
    for i in 0..50i64 {
        let r = ProducerRecord {
            topic: "ev".into(),
            value: Some(format!("e{i}").into()),
            timestamp_ms: Some(1_000_000 + i * 10),
            ..Default::default()
        };
        producer.send_record(r).await.unwrap();
    }
    within("flush", producer.flush()).await.unwrap();
    let config = ConsumerConfig {
        start_from: StartFrom::Latest,
        auto_commit: None,
        ..ConsumerConfig::new("reader", &["ev"])
    };
    let mut c = client.consumer_assigned(config, "ev", &[0]).await.unwrap();
    c.seek("ev", 0, 40);
    let r = tokio::time::timeout(DEADLINE, c.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r.offset, r.value.as_deref()), (40, Some(&b"e40"[..])));
    c.seek_to_timestamp("ev", 0, 1_000_000 + 125).await.unwrap();
    let r = tokio::time::timeout(DEADLINE, c.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(r.offset, 13, "first record at or after the time");
    within("commit", c.commit()).await.unwrap();
    assert_eq!(
        client
            .admin()
            .committed("reader", Some("ev"))
            .await
            .unwrap()[0]
            .offset,
        14
    );
}

/// Sends `count` records `v<i>` to partition 0 of `topic`, in batches of
/// about 10 (so that reads start inside batches).
async fn fill(client: &Client, topic: &str, count: u32) {
    let producer = client.producer(ProducerConfig {
        batch_bytes: 200,
        ..Default::default()
    });
    for i in 0..count {
        let r = ProducerRecord {
            topic: topic.into(),
            partition: Some(0),
            value: Some(format!("v{i}").into()),
            ..Default::default()
        };
        producer.send_record(r).await.unwrap();
    }
    within("flush", producer.flush()).await.unwrap();
}

/// A partition reader reads from the offset asked for (also inside a
/// batch), in order, hands out whole batches too, and waits at the log end
/// for what comes next; `Latest` reads only what comes after it started.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_reader_reads_from_an_offset_and_waits_at_the_end() {
    let (_dir, _broker, client) = broker_with_topic("ev", 2, &[]).await;
    fill(&client, "ev", 100).await;
    let mut reader = client.reader("ev", 0, ReadFrom::Offset(43)).await.unwrap();
    let latest = client.reader("ev", 0, ReadFrom::Latest).await.unwrap();
    for expected in 43..100u64 {
        let r = within("recv", reader.recv()).await.unwrap();
        assert_eq!(
            (&*r.topic, r.partition, r.offset, r.value.as_deref()),
            ("ev", 0, expected, Some(format!("v{expected}").as_bytes()))
        );
    }
    assert_eq!(reader.position(), 100);
    assert_eq!(reader.log_end_offset(), Some(100));
    // At the end: the next record arrives through the long poll.
    let waiting = tokio::spawn(async move {
        let r = reader.recv().await;
        (r, reader)
    });
    fill(&client, "ev", 1).await;
    let (r, mut reader) = within("the record after the end", waiting).await.unwrap();
    assert_eq!(r.unwrap().offset, 100);
    // Only records after the reader started.
    let mut latest = latest;
    assert_eq!(within("latest", latest.recv()).await.unwrap().offset, 100);

    // Whole batches, from the start: together they hold every record once.
    reader.seek(0);
    let mut offsets = Vec::new();
    let mut batches = 0;
    while reader.position() < 101 {
        let batch = within("batch", reader.next_batch()).await.unwrap();
        batches += 1;
        for r in batch.records() {
            offsets.push(r.unwrap().offset);
        }
    }
    assert_eq!(offsets, (0..101).collect::<Vec<u64>>());
    assert!(batches < 50, "{batches} batches: records were batched");
    let mut earliest = client
        .reader_with("ev", 0, ReadFrom::Earliest, ReaderConfig::default())
        .await
        .unwrap();
    assert_eq!(within("earliest", earliest.recv()).await.unwrap().offset, 0);
}

/// Reading outside the log fails with the broker's OUT_OF_RANGE and then
/// Closed, until a seek to a stored offset; a missing partition is NOT_FOUND.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_reader_reports_a_start_outside_the_log_and_recovers_by_seeking() {
    let (_dir, _broker, client) = broker_with_topic("ev", 1, &[]).await;
    fill(&client, "ev", 5).await;
    let mut reader = client.reader("ev", 0, ReadFrom::Offset(50)).await.unwrap();
    let e = within("recv", reader.recv()).await.unwrap_err();
    assert_eq!(e.code(), Some(Code::OutOfRange), "{e}");
    assert!(matches!(
        within("recv", reader.recv()).await,
        Err(Error::Closed)
    ));
    reader.seek(3);
    assert_eq!(within("recv", reader.recv()).await.unwrap().offset, 3);
    let missing = client
        .reader("ev", 7, ReadFrom::Earliest)
        .await
        .err()
        .unwrap();
    assert_eq!(missing.code(), Some(Code::NotFound), "{missing}");
}

/// With nothing in flight a record goes at once, whatever the linger: one
/// awaited send is one round trip, not a linger's wait (the default
/// linger made each `send(..).await?.await?` take at least 5 ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_awaited_send_does_not_wait_for_the_linger() {
    let (_dir, _broker, client) = broker_with_topic("ev", 1, &[]).await;
    let producer = client.producer(ProducerConfig {
        linger: Duration::from_secs(3600),
        ..Default::default()
    });
    for i in 0..3 {
        let d = within("send", producer.send("ev", None::<&str>, format!("v{i}")))
            .await
            .unwrap();
        // Without the adaptive linger this waits an hour (the test's deadline fails first).
        assert_eq!(within("ack", d).await.unwrap().offset, i);
    }
}

/// `commit_async` returns at once and its commits land, in order, without
/// a synchronous commit; `close` waits for the last of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn background_commits_land_in_order() {
    let (_dir, _broker, client) = broker_with_topic("ev", 1, &[]).await;
    fill(&client, "ev", 50).await;
    let config = ConsumerConfig {
        auto_commit: None,
        ..ConsumerConfig::new("async", &["ev"])
    };
    let mut c = client.consumer(config).await.unwrap();
    for _ in 0..30 {
        within("recv", c.recv()).await.unwrap();
        c.commit_async();
    }
    let committed = async || {
        client
            .admin()
            .committed("async", Some("ev"))
            .await
            .unwrap()
            .first()
            .map(|o| o.offset)
    };
    brook_tests::eventually("the background commits to land", async || {
        committed().await == Some(30)
    })
    .await;
    for _ in 0..20 {
        within("recv", c.recv()).await.unwrap();
        c.commit_async();
    }
    within("close", c.close()).await.unwrap();
    assert_eq!(committed().await, Some(50));
}

/// Regression: a member kept the positions of partitions taken from it and
/// auto-committed them later, moving the new owner's offsets backwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_member_never_commits_partitions_it_no_longer_owns() {
    let (_dir, _broker, client) = broker_with_topic("t", 2, &[]).await;
    let producer = client.producer(Default::default());
    for i in 0..200 {
        let r = ProducerRecord {
            topic: "t".into(),
            partition: Some(i % 2),
            value: Some(format!("v{i}").into()),
            ..Default::default()
        };
        producer.send_record(r).await.unwrap();
    }
    within("flush", producer.flush()).await.unwrap();
    let config = || ConsumerConfig {
        auto_commit: Some(Duration::from_millis(20)),
        ..ConsumerConfig::new("g", &["t"])
    };
    let mut a = client.consumer(config()).await.unwrap();
    let mut from_a = BTreeSet::new();
    while from_a.len() < 2 {
        let r = tokio::time::timeout(DEADLINE, a.recv())
            .await
            .unwrap()
            .unwrap();
        from_a.insert(r.partition);
    }
    // One more: the record in hand is marked processed, so a holds a
    // position in both partitions, whichever b takes.
    within("a third record", a.recv()).await.unwrap();
    // b joins and takes one partition. Only once the rebalance is over do
    // more records arrive (before it, a may still read them all); b
    // consumes and commits all of its partition.
    let mut b = client.consumer(config()).await.unwrap();
    brook_tests::eventually("a and b own one partition each", async || {
        let (owned_a, owned_b) = (a.assignment(), b.assignment());
        owned_a.len() == 1 && owned_b.len() == 1 && owned_a != owned_b
    })
    .await;
    let taken = b.assignment()[0].1;
    for i in 0..200 {
        let r = ProducerRecord {
            topic: "t".into(),
            partition: Some(i % 2),
            value: Some(format!("w{i}").into()),
            ..Default::default()
        };
        producer.send_record(r).await.unwrap();
    }
    within("flush", producer.flush()).await.unwrap();
    let mut last = 0;
    while last < 199 {
        let r = tokio::time::timeout(DEADLINE, async {
            tokio::select! {
                r = b.recv() => Some(r.unwrap()),
                _ = a.recv() => None,
            }
        })
        .await
        .unwrap();
        if let Some(r) = r {
            assert_eq!(r.partition, taken);
            last = r.offset;
        }
    }
    within("commit", b.commit()).await.unwrap();
    let committed = |c: &Client| {
        let c = c.clone();
        async move {
            c.admin()
                .committed("g", Some("t"))
                .await
                .unwrap()
                .into_iter()
                .find(|o| o.partition == taken)
                .unwrap()
                .offset
        }
    };
    assert_eq!(committed(&client).await, 200);
    // a auto-commits every 20 ms; over many cycles the taken partition must stay at b's offset.
    let until = std::time::Instant::now() + Duration::from_millis(600);
    while std::time::Instant::now() < until {
        let _ = tokio::time::timeout(Duration::from_millis(20), a.recv()).await;
        assert_eq!(
            committed(&client).await,
            200,
            "a committed a partition it no longer owns"
        );
    }
}

/// A group member rejoins by itself when its session ends because the
/// broker restarted (membership lives in the broker's memory), and goes on
/// consuming from the group's commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_member_rejoins_after_the_broker_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path(), &[]).await;
    let client = client(&broker).await;
    client.admin().create_topic("orders", 2).await.unwrap();
    let producer = client.producer(Default::default());
    for i in 0..10 {
        producer
            .send("orders", Some(format!("order-{i}")), format!("placed-{i}"))
            .await
            .unwrap();
    }
    within("flush", producer.flush()).await.unwrap();
    let mut billing = client
        .consumer(ConsumerConfig::new("billing", &["orders"]))
        .await
        .unwrap();
    let mut seen = BTreeSet::new();
    while seen.len() < 10 {
        let r = within("a record before the restart", billing.recv())
            .await
            .unwrap();
        seen.insert(r.value.unwrap());
    }
    within("commit", billing.commit()).await.unwrap();

    broker.kill9_in_place();
    broker.restart().await;
    for i in 10..20 {
        producer
            .send("orders", Some(format!("order-{i}")), format!("placed-{i}"))
            .await
            .unwrap();
    }
    within("flush after the restart", producer.flush())
        .await
        .unwrap();
    let mut after = BTreeSet::new();
    while after.len() < 10 {
        let r = within("a record after the restart", billing.recv())
            .await
            .unwrap();
        let v = r.value.unwrap();
        assert!(!seen.contains(&v), "a committed record came again: {v:?}");
        after.insert(v);
    }
}

/// A batch never grows past `batch_bytes`, so a producer whose batch size
/// equals the broker's `max_batch_bytes` never has a batch refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_never_exceed_batch_bytes() {
    let (_dir, broker, client) =
        broker_with_topic("orders", 1, &["--max-batch-bytes", "65536"]).await;
    let producer = client.producer(ProducerConfig {
        batch_bytes: 65536,
        linger: Duration::from_millis(50),
        ..Default::default()
    });
    let value = vec![b'x'; 1000];
    let mut deliveries = Vec::new();
    for i in 0..500 {
        deliveries.push(
            producer
                .send("orders", Some(format!("order-{i}")), &value)
                .await
                .unwrap(),
        );
    }
    within("flush", producer.flush())
        .await
        .expect("no batch was refused");
    for d in deliveries {
        within("delivery", d).await.unwrap();
    }
    assert_eq!(fetch_all(&broker, "orders", 0, 0).await.len(), 500);
}

/// `send` waits while the records buffered or in flight fill `buffer_bytes`,
/// and goes on once the broker acknowledged some of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_waits_while_the_buffer_is_full() {
    let (_dir, broker, client) = broker_with_topic("orders", 1, &[]).await;
    let producer = client.producer(ProducerConfig {
        buffer_bytes: 64 << 10,
        batch_bytes: 1 << 20,
        linger: Duration::from_secs(3600),
        ..Default::default()
    });
    let value = vec![b'x'; 10 << 10];
    let mut deliveries = Vec::new();
    // One record through first: the producer knows the topic, has its id
    // and its stream, and needs nothing more of the broker to accept sends.
    let warm = within(
        "a first send",
        producer.send("orders", None::<&[u8]>, b"warm"),
    )
    .await
    .unwrap();
    within("its ack", warm).await.unwrap();
    // A stopped broker acknowledges nothing: the first record goes at once
    // (nothing is in flight) but holds its buffer space like the rest.
    broker.signal(libc::SIGSTOP);
    // Six 10 KiB records fit in 64 KiB; the seventh does not.
    for _ in 0..6 {
        deliveries.push(
            within(
                "a send with room",
                producer.send("orders", None::<&[u8]>, &value),
            )
            .await
            .unwrap(),
        );
    }
    let mut seventh = Box::pin(producer.send("orders", None::<&[u8]>, &value));
    assert!(
        tokio::time::timeout(Duration::from_millis(300), &mut seventh)
            .await
            .is_err(),
        "a send went through with the buffer full"
    );
    // Once the broker acknowledges, the buffer frees: the first record's
    // ack, then the flush sends the other five (the linger is an hour).
    broker.signal(libc::SIGCONT);
    let flushing = tokio::spawn({
        let producer = producer.clone();
        async move { producer.flush().await }
    });
    let d = within("the seventh send after the flush", seventh)
        .await
        .unwrap();
    within("flush", flushing).await.unwrap().unwrap();
    deliveries.push(d);
    within("flush again", producer.flush()).await.unwrap();
    for d in deliveries {
        within("delivery", d).await.unwrap();
    }
    assert_eq!(fetch_all(&broker, "orders", 0, 0).await.len(), 8);
}

/// Partitions added to a topic get owners: the group rebalances and its
/// member consumes them without rejoining.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn added_partitions_are_assigned_to_the_group() {
    let (_dir, _broker, client) = broker_with_topic("orders", 2, &[]).await;
    let mut billing = client
        .consumer(ConsumerConfig::new("billing", &["orders"]))
        .await
        .unwrap();
    let producer = client.producer(Default::default());
    let send_to = |partition: u32| ProducerRecord {
        topic: "orders".into(),
        partition: Some(partition),
        value: Some(format!("to-{partition}").into()),
        ..Default::default()
    };
    producer.send_record(send_to(0)).await.unwrap();
    within("flush", producer.flush()).await.unwrap();
    let first = within("a record from the first partitions", billing.recv())
        .await
        .unwrap();
    assert_eq!(first.partition, 0);

    client.admin().add_partitions("orders", 4).await.unwrap();
    // A new producer learns the new partition count.
    let producer = client.producer(Default::default());
    for p in [2, 3] {
        producer.send_record(send_to(p)).await.unwrap();
    }
    within("flush", producer.flush()).await.unwrap();
    let mut got = BTreeSet::new();
    while got.len() < 2 {
        let r = within("a record from an added partition", billing.recv())
            .await
            .unwrap();
        got.insert(r.partition);
    }
    assert_eq!(got, BTreeSet::from([2, 3]));
}

/// A consumer of given partitions auto-commits what it processed, like a
/// group member, without `commit()` or `close()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assigned_consumer_auto_commits() {
    let (_dir, _broker, client) = broker_with_topic("orders", 1, &[]).await;
    let producer = client.producer(Default::default());
    for i in 0..10 {
        producer
            .send("orders", Some(format!("order-{i}")), "OrderPlaced")
            .await
            .unwrap();
    }
    within("flush", producer.flush()).await.unwrap();
    let config = ConsumerConfig {
        auto_commit: Some(Duration::from_millis(50)),
        start_from: StartFrom::Earliest,
        ..ConsumerConfig::new("audit", &["orders"])
    };
    let mut audit = client
        .consumer_assigned(config, "orders", &[0])
        .await
        .unwrap();
    for _ in 0..10 {
        within("a record", audit.recv()).await.unwrap();
    }
    // Asking for one more marks the tenth processed; none comes.
    let _ = tokio::time::timeout(Duration::from_millis(100), audit.recv()).await;
    brook_tests::eventually("the ten records are auto-committed", async || {
        client
            .admin()
            .committed("audit", Some("orders"))
            .await
            .unwrap()
            .iter()
            .any(|c| c.partition == 0 && c.offset == 10)
    })
    .await;
    within("close", audit.close()).await.unwrap();
}

/// A group member whose first look-up of the committed offsets fails (a
/// transient error) still reads its partitions: it retries with backoff.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_retries_starting_its_partitions() {
    let (_dir, _broker, client) =
        broker_with_topic("orders", 1, &["--debug-fail-fetch-committed", "3"]).await;
    let producer = client.producer(Default::default());
    producer
        .send("orders", Some("order-1"), "OrderPlaced")
        .await
        .unwrap();
    within("flush", producer.flush()).await.unwrap();
    let mut billing = client
        .consumer(ConsumerConfig::new("billing", &["orders"]))
        .await
        .unwrap();
    let r = within("the record, after the failed look-ups", billing.recv())
        .await
        .unwrap();
    assert_eq!(&r.value.unwrap()[..], b"OrderPlaced");
}

/// `position` is where `recv` goes on; `at_end` turns true once every
/// partition has been read to the end it found, and false again while
/// records appended later are still to come.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_knows_its_position_and_when_it_has_read_to_the_end() {
    let (_dir, _broker, client) = broker_with_topic("ev", 2, &[]).await;
    let producer = client.producer(Default::default());
    let send = async |partition: u32, n: u32| {
        for i in 0..n {
            let r = ProducerRecord {
                topic: "ev".into(),
                partition: Some(partition),
                value: Some(format!("v{i}").into()),
                ..Default::default()
            };
            producer.send_record(r).await.unwrap();
        }
        within("flush", producer.flush()).await.unwrap();
    };
    send(0, 3).await;
    let config = ConsumerConfig {
        start_from: StartFrom::Earliest,
        auto_commit: None,
        ..ConsumerConfig::new("reader", &["ev"])
    };
    let mut c = client
        .consumer_assigned(config, "ev", &[0, 1])
        .await
        .unwrap();
    assert_eq!(c.position("ev", 7), None, "not read");
    let mut got = Vec::new();
    brook_tests::eventually("reading to the end", async || {
        // Whatever has arrived, then the question again.
        while let Ok(r) = tokio::time::timeout(Duration::ZERO, c.recv()).await {
            got.push(r.unwrap());
        }
        c.at_end()
    })
    .await;
    assert_eq!(got.len(), 3, "everything stored, and then at the end");
    assert_eq!(c.position("ev", 0), Some(3));
    assert_eq!(
        c.position("ev", 1),
        Some(0),
        "an empty partition is at its end"
    );

    send(1, 2).await;
    let r = within("a record appended later", c.recv()).await.unwrap();
    assert_eq!((r.partition, r.offset), (1, 0));
    assert_eq!(c.position("ev", 1), Some(1));
    // The two records may have gone in two batches (the first at once, as
    // nothing was in flight): the fetcher can have found the end between
    // them for a moment, but once it has the second, the end is not reached.
    brook_tests::eventually("one more record of partition 1 still to come", async || {
        !c.at_end()
    })
    .await;
    within("the last record", c.recv()).await.unwrap();
    brook_tests::eventually("at the end again", async || c.at_end()).await;
    c.seek("ev", 0, 1);
    assert_eq!(
        within("after a seek", c.recv()).await.unwrap().offset,
        1,
        "a seek moves the position"
    );
    assert_eq!(c.position("ev", 0), Some(2));
}

/// A refusal that retrying will not cure reaches `recv` instead of being
/// retried silently: here, the topic was deleted, while the consumer was
/// reading it and before another one had found where to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_of_a_deleted_topic_is_told() {
    let (_dir, _broker, client) = broker_with_topic("gone", 1, &[]).await;
    let producer = client.producer(Default::default());
    let r = ProducerRecord {
        topic: "gone".into(),
        value: Some("v".into()),
        ..Default::default()
    };
    producer.send_record(r).await.unwrap();
    within("flush", producer.flush()).await.unwrap();
    let config = ConsumerConfig {
        start_from: StartFrom::Earliest,
        auto_commit: None,
        ..ConsumerConfig::new("reader", &["gone"])
    };
    let mut reading = client
        .consumer_assigned(config.clone(), "gone", &[0])
        .await
        .unwrap();
    within("the record", reading.recv()).await.unwrap();
    client.admin().delete_topic("gone").await.unwrap();
    let e = within("recv after the delete", reading.recv())
        .await
        .expect_err("no records: the topic is gone");
    assert_eq!(e.code(), Some(tonic::Code::NotFound), "{e}");

    // A consumer whose start is looked up after the delete.
    let code = match client.consumer_assigned(config, "gone", &[0]).await {
        Err(e) => e.code(),
        Ok(mut late) => within("recv of a late consumer", late.recv())
            .await
            .expect_err("no records: the topic is gone")
            .code(),
    };
    assert_eq!(code, Some(tonic::Code::NotFound));
}
