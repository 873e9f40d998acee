//! Queue groups against a real broker: competing consumers beyond the
//! partition count, leases that expire, nacks with backoff, dead letters
//! with their headers, key-ordered sharing, delayed delivery, redrive, and
//! the state surviving `kill -9`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brook_client::{Client, ProducerConfig, ProducerRecord, QueueConsumerConfig};
use brook_protocol::v1;
use brook_tests::queue::{
    ack, broker_with_topic, client, create_queue, fetch, now_ms, queues, read_all, settle,
};
use brook_tests::{DEADLINE, brook_binary, reason};
use tonic::transport::Channel;

/// A record to publish: key, value, headers.
type Rec = (String, String, Vec<(String, String)>);

/// Publishes `(key, value, headers)` records to `topic` and waits for them.
async fn publish(c: &Client, topic: &str, records: Vec<Rec>) {
    let producer = c.producer(ProducerConfig::default());
    let mut acks = Vec::new();
    for (key, value, headers) in records {
        let r = ProducerRecord {
            topic: topic.into(),
            key: Some(key.into_bytes().into()),
            value: Some(value.into_bytes().into()),
            headers: headers
                .into_iter()
                .map(|(k, v)| (k, v.into_bytes().into()))
                .collect(),
            timestamp_ms: None,
            partition: None,
        };
        acks.push(producer.send_record(r).await.unwrap());
    }
    for a in acks {
        a.await.unwrap();
    }
}

fn plain(n: usize, keys: usize) -> Vec<Rec> {
    (0..n)
        .map(|i| {
            (
                format!("order-{}", i % keys),
                format!("event-{i}"),
                Vec::new(),
            )
        })
        .collect()
}

/// The value of `r`'s first header named `key`.
fn header<'a>(r: &'a brook_client::ConsumerRecord, key: &str) -> Option<&'a bytes::Bytes> {
    r.headers.iter().find(|(k, _)| k == key).map(|(_, v)| v)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_competing_consumers_on_one_partition_settle_every_record_exactly_once() {
    let (_dir, _broker, c) = broker_with_topic("orders", 1).await;
    const N: usize = 3_000;
    publish(&c, "orders", plain(N, 100)).await;
    create_queue(&c, "inventory", "orders", Default::default()).await;
    let seen: Arc<Mutex<Vec<(u64, String)>>> = Default::default();
    let mut tasks = Vec::new();
    for i in 0..8 {
        let (c, seen) = (c.clone(), Arc::clone(&seen));
        tasks.push(tokio::spawn(async move {
            let config = QueueConsumerConfig {
                max_records: 50,
                max_wait: Duration::from_millis(200),
                ..Default::default()
            };
            let mut consumer = c.queue_consumer("inventory", config);
            let deadline = Instant::now() + DEADLINE;
            while seen.lock().unwrap().len() < N && Instant::now() < deadline {
                let Ok(Ok(msg)) =
                    tokio::time::timeout(Duration::from_millis(300), consumer.recv()).await
                else {
                    continue;
                };
                assert_eq!(
                    msg.delivery_count, 1,
                    "nothing failed, nothing is redelivered"
                );
                seen.lock().unwrap().push((msg.offset, format!("c{i}")));
                msg.ack();
            }
            consumer.close().await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let seen = seen.lock().unwrap().clone();
    let offsets: BTreeSet<u64> = seen.iter().map(|(o, _)| *o).collect();
    assert_eq!(seen.len(), N, "every record delivered once");
    assert_eq!(offsets, (0..N as u64).collect(), "and none missed");
    let consumers: BTreeSet<&String> = seen.iter().map(|(_, c)| c).collect();
    assert!(
        consumers.len() >= 2,
        "the records were shared: {consumers:?}"
    );
    // Every ack landed: the acked-up-to point is the log end, nothing in flight.
    brook_tests::eventually("every ack to land", async || {
        let d = c.admin().describe_queue("inventory").await.unwrap();
        d.lag == 0 && d.in_flight == 0 && d.partitions[0].acked_up_to == N as u64
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lease_that_expires_redelivers_to_another_consumer_and_the_late_ack_changes_nothing() {
    let (_dir, b, c) = broker_with_topic("orders", 2).await;
    publish(&c, "orders", plain(10, 10)).await;
    let settings = v1::QueueSettings {
        lease_ms: Some(1_000),
        backoff_initial_ms: Some(0),
        ..Default::default()
    };
    create_queue(&c, "shipping", "orders", settings).await;
    let mut q = queues(b.channel().await);
    // The first consumer takes everything, then dies without a word.
    let first = fetch(&mut q, "shipping", "crashed", 100, 1_000).await;
    let taken: BTreeSet<(u32, u64)> = first
        .records
        .iter()
        .map(|r| (r.partition, r.record.as_ref().unwrap().offset))
        .collect();
    assert_eq!(taken.len(), 10);
    let asked = Instant::now();
    let mut again = BTreeSet::new();
    while again.len() < 10 {
        let r = fetch(&mut q, "shipping", "survivor", 100, 5_000).await;
        for rec in &r.records {
            assert_eq!(
                rec.delivery_count, 2,
                "the expired lease counted as a delivery"
            );
            again.insert((rec.partition, rec.record.as_ref().unwrap().offset));
        }
        assert!(asked.elapsed() < DEADLINE);
    }
    assert!(
        asked.elapsed() >= Duration::from_millis(900),
        "not before the lease ended"
    );
    assert_eq!(again, taken);
    let late = settle(
        &mut q,
        "shipping",
        "crashed",
        taken
            .iter()
            .map(|&(p, o)| ack(p, o, v1::AckOutcome::Ack, ""))
            .collect(),
    )
    .await;
    assert_eq!(late.settled, 0);
    assert_eq!(late.not_held.len(), 10, "{late:?}");
    let d = c.admin().describe_queue("shipping").await.unwrap();
    assert_eq!(d.in_flight, 10, "still leased to the survivor");
    assert!(
        d.consumers
            .iter()
            .any(|x| x.consumer_id == "survivor" && x.in_flight == 10)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_record_is_dead_lettered_after_exactly_max_deliveries_with_its_headers_while_others_flow()
 {
    let (_dir, b, c) = broker_with_topic("orders", 2).await;
    let mut records = plain(30, 30);
    records[7] = (
        "order-7".into(),
        "not json".into(),
        vec![("correlation-id".into(), "c-7".into())],
    );
    records[9].1 = "rejected at once".into();
    publish(&c, "orders", records).await;
    let settings = v1::QueueSettings {
        max_deliveries: Some(3),
        backoff_initial_ms: Some(50),
        backoff_multiplier: Some(1.0),
        ..Default::default()
    };
    create_queue(&c, "inventory", "orders", settings).await;
    let mut q = queues(b.channel().await);
    let mut poison_counts = Vec::new();
    let mut acked = BTreeSet::new();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let d = c.admin().describe_queue("inventory").await.unwrap();
        if d.dlq_depth == 2 && acked.len() == 28 {
            break;
        }
        assert!(Instant::now() < deadline, "{d:?}");
        let r = fetch(&mut q, "inventory", "worker", 100, 200).await;
        let mut acks = Vec::new();
        for rec in r.records {
            let record = rec.record.unwrap();
            let value = String::from_utf8(record.value.unwrap().to_vec()).unwrap();
            let outcome = match value.as_str() {
                "not json" => {
                    poison_counts.push(rec.delivery_count);
                    (v1::AckOutcome::Nack, "bad payload: expected JSON")
                }
                "rejected at once" => (v1::AckOutcome::Reject, "unknown order type"),
                _ => {
                    assert!(acked.insert(value), "an acked record came back");
                    (v1::AckOutcome::Ack, "")
                }
            };
            acks.push(ack(rec.partition, record.offset, outcome.0, outcome.1));
        }
        if !acks.is_empty() {
            settle(&mut q, "inventory", "worker", acks).await;
        }
    }
    assert_eq!(
        poison_counts,
        [1, 2, 3],
        "delivered exactly max_deliveries times"
    );
    let dlq = read_all(&c, "orders.inventory.dlq").await;
    assert_eq!(dlq.len(), 2);
    let by_reason: BTreeMap<String, &brook_client::ConsumerRecord> = dlq
        .iter()
        .map(|r| {
            (
                String::from_utf8(header(r, "brook-dlq-reason").unwrap().to_vec()).unwrap(),
                r,
            )
        })
        .collect();
    let poison = by_reason["bad payload: expected JSON"];
    let h = |r: &brook_client::ConsumerRecord, k: &str| {
        String::from_utf8(
            header(r, k)
                .unwrap_or_else(|| panic!("header {k}"))
                .to_vec(),
        )
        .unwrap()
    };
    assert_eq!(poison.key.as_deref(), Some(&b"order-7"[..]));
    assert_eq!(poison.value.as_deref(), Some(&b"not json"[..]));
    assert_eq!(
        h(poison, "correlation-id"),
        "c-7",
        "the record's own headers are kept"
    );
    assert_eq!(h(poison, "brook-dlq-topic"), "orders");
    assert_eq!(h(poison, "brook-dlq-group"), "inventory");
    assert_eq!(h(poison, "brook-dlq-delivery-count"), "3");
    let source = brook_protocol::partitioner::partition_for_key(b"order-7", 2);
    assert_eq!(h(poison, "brook-dlq-partition"), source.to_string());
    let originals = read_all(&c, "orders").await;
    let original = originals
        .iter()
        .find(|r| r.key.as_deref() == Some(&b"order-7"[..]))
        .unwrap();
    assert_eq!(h(poison, "brook-dlq-offset"), original.offset.to_string());
    assert_eq!(
        h(poison, "brook-dlq-timestamp"),
        original.timestamp_ms.to_string()
    );
    let first: i64 = h(poison, "brook-dlq-first-failure-ms").parse().unwrap();
    let last: i64 = h(poison, "brook-dlq-last-failure-ms").parse().unwrap();
    assert!(
        first > 0 && last >= first + 100,
        "two backoffs of 50 ms apart at least: {first} {last}"
    );
    let rejected = by_reason["unknown order type"];
    assert_eq!(
        h(rejected, "brook-dlq-delivery-count"),
        "1",
        "a reject goes at once"
    );
    let d = c.admin().describe_queue("inventory").await.unwrap();
    assert_eq!((d.lag, d.dead_lettered, d.dlq_depth), (0, 2, 2));
    let metrics = b.metrics_text().await;
    assert!(
        metrics.contains(
            "brook_queue_dlq_depth{group=\"inventory\",topic=\"orders.inventory.dlq\"} 2"
        ),
        "{metrics}"
    );
    assert!(
        metrics.contains("brook_queue_dead_lettered_total{group=\"inventory\",topic=\"orders\"} 2")
    );
    assert!(
        metrics.contains("brook_queue_redeliveries_total{group=\"inventory\",topic=\"orders\"} 2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_ordered_mode_never_has_two_records_of_a_key_in_flight_and_keeps_their_order_under_random_nacks()
 {
    let (_dir, b, c) = broker_with_topic("orders", 2).await;
    const KEYS: usize = 12;
    const PER_KEY: usize = 15;
    publish(&c, "orders", plain(KEYS * PER_KEY, KEYS)).await;
    let settings = v1::QueueSettings {
        key_ordered: Some(true),
        backoff_initial_ms: Some(5),
        backoff_multiplier: Some(1.0),
        max_deliveries: Some(1000),
        ..Default::default()
    };
    create_queue(&c, "billing", "orders", settings).await;
    // Per key: the offsets acked so far, those nacked and not yet acked,
    // and the one in flight (from its fetch until its answer is sent: the
    // broker holds the key until the answer arrives).
    #[derive(Default)]
    struct Key {
        acked: Vec<u64>,
        nacked: BTreeSet<u64>,
        in_flight: Option<u64>,
    }
    let keys: Arc<Mutex<HashMap<String, Key>>> = Default::default();
    let mut tasks = Vec::new();
    for i in 0..4u64 {
        let (addr, keys) = (b.grpc, Arc::clone(&keys));
        tasks.push(tokio::spawn(async move {
            let mut q = queues_at(addr).await;
            let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ i;
            let deadline = Instant::now() + DEADLINE;
            loop {
                let done: usize = keys.lock().unwrap().values().map(|k| k.acked.len()).sum();
                if done == KEYS * PER_KEY {
                    return;
                }
                assert!(Instant::now() < deadline, "{done} acked");
                let consumer = format!("c{i}");
                let r = fetch(&mut q, "billing", &consumer, 20, 100).await;
                let mut got = Vec::new();
                for rec in r.records {
                    let record = rec.record.unwrap();
                    let key = String::from_utf8(record.key.unwrap().to_vec()).unwrap();
                    let mut k = keys.lock().unwrap();
                    let k = k.entry(key.clone()).or_default();
                    assert_eq!(k.in_flight, None, "two records of {key} in flight");
                    // In order: nothing earlier of its key is unsettled.
                    assert!(
                        k.acked.last().is_none_or(|&last| last < record.offset),
                        "{key}: offset {} after {:?}",
                        record.offset,
                        k.acked
                    );
                    assert!(
                        k.nacked.range(..record.offset).next().is_none(),
                        "{key}: offset {} while {:?} wait for a redelivery",
                        record.offset,
                        k.nacked
                    );
                    k.in_flight = Some(record.offset);
                    got.push((rec.partition, record.offset, key));
                }
                // Let the other consumers' fetches run while these records
                // are in flight.
                tokio::task::yield_now().await;
                let mut acks = Vec::new();
                for (partition, offset, key) in got {
                    rng ^= rng << 13;
                    rng ^= rng >> 7;
                    rng ^= rng << 17;
                    let nack = rng.is_multiple_of(5);
                    let mut k = keys.lock().unwrap();
                    let k = k.get_mut(&key).unwrap();
                    k.in_flight = None;
                    if nack {
                        k.nacked.insert(offset);
                    } else {
                        k.nacked.remove(&offset);
                        k.acked.push(offset);
                    }
                    let outcome = if nack {
                        v1::AckOutcome::Nack
                    } else {
                        v1::AckOutcome::Ack
                    };
                    acks.push(ack(partition, offset, outcome, "random failure"));
                }
                if !acks.is_empty() {
                    settle(&mut q, "billing", &consumer, acks).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for (key, k) in keys.lock().unwrap().iter() {
        assert_eq!(k.acked.len(), PER_KEY, "{key}");
        assert!(
            k.acked.windows(2).all(|w| w[0] < w[1]),
            "{key}: {:?}",
            k.acked
        );
    }
    assert_eq!(keys.lock().unwrap().len(), KEYS);
    let d = c.admin().describe_queue("billing").await.unwrap();
    assert!(d.redeliveries > 0, "some were nacked and came back");
    assert_eq!(d.lag, 0);
}

/// Returns once the clock is past `at` (ms since the epoch), polling.
async fn past_ms(at: i64) {
    let deadline = Instant::now() + DEADLINE;
    while now_ms() <= at {
        assert!(Instant::now() < deadline, "the clock never reached {at}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A queue client on a new connection to `addr`.
async fn queues_at(addr: std::net::SocketAddr) -> v1::queues_client::QueuesClient<Channel> {
    let ch = Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    queues(ch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delayed_record_waits_for_its_time_without_holding_back_the_others() {
    let (_dir, _broker, c) = broker_with_topic("reminders", 1).await;
    let at = now_ms() + 1_500;
    let mut records = plain(5, 5);
    records.insert(
        1,
        (
            "order-1".into(),
            "later".into(),
            vec![("brook-deliver-at".into(), at.to_string())],
        ),
    );
    publish(&c, "reminders", records).await;
    create_queue(&c, "mailer", "reminders", Default::default()).await;
    let config = QueueConsumerConfig {
        max_wait: Duration::from_millis(100),
        ..Default::default()
    };
    let mut consumer = c.queue_consumer("mailer", config);
    let mut got = Vec::new();
    while got.len() < 6 {
        let msg = tokio::time::timeout(DEADLINE, consumer.recv())
            .await
            .unwrap()
            .unwrap();
        got.push((
            String::from_utf8(msg.value.clone().unwrap().to_vec()).unwrap(),
            now_ms(),
        ));
        msg.ack();
    }
    consumer.close().await.unwrap();
    let order: Vec<&str> = got.iter().map(|(v, _)| v.as_str()).collect();
    assert_eq!(
        order.last(),
        Some(&"later"),
        "the others went first: {order:?}"
    );
    let (_, received) = got[5];
    assert!(
        received >= at,
        "delivered {} ms before its time",
        at - received
    );
    let (_, fifth) = got[4];
    assert!(fifth < at, "the others did not wait for it");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redrive_twice_moves_each_dead_letter_once() {
    let (_dir, b, c) = broker_with_topic("orders", 1).await;
    publish(&c, "orders", plain(5, 5)).await;
    create_queue(&c, "inventory", "orders", Default::default()).await;
    let mut q = queues(b.channel().await);
    let r = fetch(&mut q, "inventory", "w", 10, 1_000).await;
    assert_eq!(r.records.len(), 5);
    let rejects = r
        .records
        .iter()
        .map(|x| {
            ack(
                x.partition,
                x.record.as_ref().unwrap().offset,
                v1::AckOutcome::Reject,
                "poison",
            )
        })
        .collect();
    assert_eq!(
        settle(&mut q, "inventory", "w", rejects)
            .await
            .dead_lettered,
        5
    );
    let redrive = v1::RedriveRequest {
        group: "inventory".into(),
        ..Default::default()
    };
    let dry = c
        .admin()
        .redrive(v1::RedriveRequest {
            dry_run: true,
            ..redrive.clone()
        })
        .await
        .unwrap();
    assert_eq!((dry.redriven, dry.already_redriven), (5, 0));
    let first = c.admin().redrive(redrive.clone()).await.unwrap();
    assert_eq!((first.redriven, first.already_redriven), (5, 0));
    let second = c.admin().redrive(redrive).await.unwrap();
    assert_eq!((second.redriven, second.already_redriven), (0, 5));
    let all = read_all(&c, "orders").await;
    assert_eq!(all.len(), 10, "five copies back in the topic, once");
    for copy in &all[5..] {
        assert!(header(copy, "brook-redriven-from").is_some());
        assert!(
            copy.headers
                .iter()
                .all(|(k, _)| !k.starts_with("brook-dlq-"))
        );
    }
    let d = c.admin().describe_queue("inventory").await.unwrap();
    assert_eq!(d.dlq_depth, 0);
    // The queue delivers the copies again.
    let again = fetch(&mut q, "inventory", "w", 10, 1_000).await;
    assert_eq!(again.records.len(), 5);
}

/// Redrive back into the group alone: the source records are delivered
/// to that group again, nothing is appended to the topic, another group
/// sees nothing; it survives `kill -9`, and running it twice moves once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn redrive_to_the_group_delivers_again_to_that_group_alone_once_even_across_a_crash() {
    let (_dir, mut b, c) = broker_with_topic("orders", 2).await;
    publish(&c, "orders", plain(12, 12)).await;
    create_queue(&c, "inventory", "orders", Default::default()).await;
    create_queue(&c, "billing", "orders", Default::default()).await;
    let mut q = queues(b.channel().await);
    let all = |r: &v1::FetchQueueResponse| -> Vec<(u32, u64, bytes::Bytes)> {
        r.records
            .iter()
            .map(|x| {
                let rec = x.record.as_ref().unwrap();
                (
                    x.partition,
                    rec.offset,
                    rec.value.clone().unwrap_or_default(),
                )
            })
            .collect()
    };
    let acks = |records: &[(u32, u64, bytes::Bytes)], outcome| {
        records
            .iter()
            .map(|(p, o, _)| ack(*p, *o, outcome, "out of stock"))
            .collect::<Vec<_>>()
    };
    let billing = all(&fetch(&mut q, "billing", "b", 100, 1_000).await);
    assert_eq!(billing.len(), 12);
    settle(&mut q, "billing", "b", acks(&billing, v1::AckOutcome::Ack)).await;
    let delivered = all(&fetch(&mut q, "inventory", "w", 100, 1_000).await);
    assert_eq!(delivered.len(), 12);
    // The first record of each partition fails for good; the rest are done.
    let mut poison: Vec<(u32, u64, bytes::Bytes)> = Vec::new();
    for p in 0..2 {
        let first = delivered.iter().filter(|r| r.0 == p).min_by_key(|r| r.1);
        poison.push(first.expect("records in both partitions").clone());
    }
    let fine: Vec<_> = delivered
        .iter()
        .filter(|r| !poison.contains(r))
        .cloned()
        .collect();
    let r = settle(
        &mut q,
        "inventory",
        "w",
        acks(&poison, v1::AckOutcome::Reject),
    )
    .await;
    assert_eq!(r.dead_lettered, 2);
    settle(&mut q, "inventory", "w", acks(&fine, v1::AckOutcome::Ack)).await;
    let d = c.admin().describe_queue("inventory").await.unwrap();
    assert!(
        d.partitions
            .iter()
            .all(|p| p.acked_up_to == p.log_end_offset)
    );
    // A dead letter naming another group's record cannot go back into this one.
    let forged = (
        "k".to_string(),
        "forged".to_string(),
        vec![
            ("brook-dlq-topic".to_string(), "orders".to_string()),
            ("brook-dlq-partition".to_string(), "0".to_string()),
            ("brook-dlq-offset".to_string(), "0".to_string()),
            ("brook-dlq-group".to_string(), "someone-else".to_string()),
        ],
    );
    publish(&c, "orders.inventory.dlq", vec![forged]).await;
    let ends = |d: &v1::TopicDescription| -> Vec<u64> {
        d.partitions.iter().map(|p| p.log_end_offset).collect()
    };
    let topic_before = ends(&c.admin().describe_topic("orders").await.unwrap());

    let redrive = v1::RedriveRequest {
        group: "inventory".into(),
        to_group: true,
        ..Default::default()
    };
    let mixed = c
        .admin()
        .redrive(v1::RedriveRequest {
            target_topic: "orders".into(),
            ..redrive.clone()
        })
        .await
        .unwrap_err();
    assert_eq!(mixed.reason(), Some("INVALID_REQUEST"), "{mixed}");
    let dry = c
        .admin()
        .redrive(v1::RedriveRequest {
            dry_run: true,
            ..redrive.clone()
        })
        .await
        .unwrap();
    assert_eq!(
        (dry.redriven, dry.already_redriven, dry.unavailable),
        (2, 0, 1)
    );
    let first = c.admin().redrive(redrive.clone()).await.unwrap();
    assert_eq!(
        (first.redriven, first.already_redriven, first.unavailable),
        (2, 0, 1)
    );
    assert_eq!(
        ends(&c.admin().describe_topic("orders").await.unwrap()),
        topic_before,
        "nothing was appended to the topic"
    );
    let d = c.admin().describe_queue("inventory").await.unwrap();
    let unsettled: u64 = d.partitions.iter().map(|p| p.unsettled).sum();
    assert_eq!((unsettled, d.dlq_depth), (2, 1), "the forged one stays");
    let nothing = fetch(&mut q, "billing", "b", 100, 300).await;
    assert!(nothing.records.is_empty(), "another group sees nothing");

    // The state holds it: after kill -9, the group delivers them again.
    b.kill9_in_place();
    b.restart().await;
    let mut q = queues(b.channel().await);
    let again = fetch(&mut q, "inventory", "w2", 100, 2_000).await;
    let mut got = all(&again);
    got.sort();
    let mut want = poison.clone();
    want.sort();
    assert_eq!(got, want, "the rejected records, as they were published");
    assert!(again.records.iter().all(|x| x.delivery_count == 1));
    let twice = c.admin().redrive(redrive.clone()).await;
    // The client connected before the restart reconnects.
    let twice = match twice {
        Ok(r) => r,
        Err(_) => client(&b).await.admin().redrive(redrive).await.unwrap(),
    };
    assert_eq!(
        (twice.redriven, twice.already_redriven, twice.unavailable),
        (0, 2, 1)
    );
    settle(&mut q, "inventory", "w2", acks(&got, v1::AckOutcome::Ack)).await;
    let d = client(&b)
        .await
        .admin()
        .describe_queue("inventory")
        .await
        .unwrap();
    let unsettled: u64 = d.partitions.iter().map(|p| p.unsettled).sum();
    assert_eq!((unsettled, d.in_flight, d.lag), (0, 0, 0));
    let nothing = fetch(&mut q, "inventory", "w2", 100, 300).await;
    assert!(nothing.records.is_empty(), "acked once more, done");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_name_what_was_wrong() {
    let (_dir, b, c) = broker_with_topic("orders", 1).await;
    c.admin().create_topic("payments", 1).await.unwrap();
    let mut q = queues(b.channel().await);
    let unknown = q
        .fetch_queue(v1::FetchQueueRequest {
            group: "nobody".into(),
            consumer_id: "c".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    assert_eq!(reason(&unknown).as_deref(), Some("QUEUE_NOT_FOUND"));
    // A fetch naming the topic creates the group, at the end of the topic.
    let created = fetch_on(&mut q, "billing", "orders").await.unwrap();
    assert!(created.records.is_empty());
    let other = fetch_on(&mut q, "billing", "payments").await.unwrap_err();
    assert_eq!(other.code(), tonic::Code::FailedPrecondition);
    assert_eq!(reason(&other).as_deref(), Some("QUEUE_TOPIC_MISMATCH"));
    assert!(other.message().contains("orders"), "{}", other.message());
    let bad = c
        .admin()
        .create_queue(
            "x",
            "orders",
            v1::QueueSettings {
                max_deliveries: Some(0),
                ..Default::default()
            },
            true,
        )
        .await
        .unwrap_err();
    assert_eq!(bad.reason(), Some("INVALID_CONFIG"));
    assert!(bad.to_string().contains("max_deliveries"), "{bad}");
    let no_id = q
        .fetch_queue(v1::FetchQueueRequest {
            group: "billing".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(no_id.code(), tonic::Code::InvalidArgument);
    assert!(no_id.message().contains("consumer_id"));
    let huge = q
        .acknowledge(v1::AcknowledgeRequest {
            group: "billing".into(),
            consumer_id: "c".into(),
            acks: vec![v1::Acknowledgement {
                first_offset: 0,
                last_offset: 10_000_000,
                ..Default::default()
            }],
        })
        .await
        .unwrap_err();
    assert_eq!(huge.code(), tonic::Code::InvalidArgument);
    let missing = c
        .admin()
        .create_queue("y", "nope", Default::default(), true)
        .await
        .unwrap_err();
    assert_eq!(missing.reason(), Some("TOPIC_NOT_FOUND"));
}

async fn fetch_on(
    q: &mut v1::queues_client::QueuesClient<Channel>,
    group: &str,
    topic: &str,
) -> Result<v1::FetchQueueResponse, tonic::Status> {
    q.fetch_queue(v1::FetchQueueRequest {
        group: group.into(),
        topic: topic.into(),
        consumer_id: "c".into(),
        ..Default::default()
    })
    .await
    .map(|r| r.into_inner())
}

/// Rounds of `kill -9` under load: every record is acked in the end, none
/// is delivered again once its ack was answered, and a poison record's
/// delivery count keeps growing across the crashes until it is
/// dead-lettered after exactly `max_deliveries`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_queue_load_loses_nothing_redelivers_no_acked_record_and_keeps_delivery_counts()
{
    let (_dir, mut b, c) = broker_with_topic("orders", 2).await;
    const N: usize = 2_000;
    let mut records = plain(N, 50);
    records[100].1 = "poison".into();
    publish(&c, "orders", records).await;
    let settings = v1::QueueSettings {
        max_deliveries: Some(4),
        backoff_initial_ms: Some(0),
        lease_ms: Some(2_000),
        ..Default::default()
    };
    create_queue(&c, "inventory", "orders", settings).await;
    let mut confirmed: BTreeSet<(u32, u64)> = BTreeSet::new();
    let mut poison_counts: Vec<u32> = Vec::new();
    let mut rounds = 0;
    let deadline = Instant::now() + 2 * DEADLINE;
    while confirmed.len() < N - 1 {
        assert!(Instant::now() < deadline, "{} confirmed", confirmed.len());
        let mut q = queues(b.channel().await);
        // A few fetch-and-settle steps, then a crash.
        for _ in 0..3 {
            let Ok(r) = q
                .fetch_queue(v1::FetchQueueRequest {
                    group: "inventory".into(),
                    consumer_id: "worker".into(),
                    max_records: 150,
                    max_wait_ms: 500,
                    ..Default::default()
                })
                .await
            else {
                break;
            };
            let mut acks = Vec::new();
            let mut acked = Vec::new();
            for rec in r.into_inner().records {
                let record = rec.record.unwrap();
                let tag = (rec.partition, record.offset);
                assert!(
                    !confirmed.contains(&tag),
                    "{tag:?} came back after its ack was answered"
                );
                if record.value.as_deref() == Some(&b"poison"[..]) {
                    poison_counts.push(rec.delivery_count);
                    acks.push(ack(tag.0, tag.1, v1::AckOutcome::Nack, "poison"));
                } else {
                    acks.push(ack(tag.0, tag.1, v1::AckOutcome::Ack, ""));
                    acked.push(tag);
                }
            }
            let answered = q
                .acknowledge(v1::AcknowledgeRequest {
                    group: "inventory".into(),
                    consumer_id: "worker".into(),
                    acks,
                })
                .await;
            if let Ok(a) = answered {
                assert!(a.into_inner().not_held.is_empty());
                confirmed.extend(acked);
            }
        }
        b.kill9_in_place();
        b.restart().await;
        rounds += 1;
    }
    assert!(rounds >= 3, "{rounds} crashes");
    // The poison record: counted across crashes, never reset.
    let q = c.admin();
    brook_tests::eventually("the poison record to be dead-lettered", async || {
        let mut qc = queues(b.channel().await);
        if let Ok(r) = qc
            .fetch_queue(v1::FetchQueueRequest {
                group: "inventory".into(),
                consumer_id: "worker".into(),
                max_wait_ms: 200,
                ..Default::default()
            })
            .await
        {
            for rec in r.into_inner().records {
                poison_counts.push(rec.delivery_count);
                let o = rec.record.unwrap().offset;
                let _ = qc
                    .acknowledge(v1::AcknowledgeRequest {
                        group: "inventory".into(),
                        consumer_id: "worker".into(),
                        acks: vec![ack(rec.partition, o, v1::AckOutcome::Nack, "poison")],
                    })
                    .await;
            }
        }
        q.describe_queue("inventory")
            .await
            .is_ok_and(|d| d.dlq_depth == 1)
    })
    .await;
    assert!(
        poison_counts.windows(2).all(|w| w[0] < w[1]),
        "delivery counts never go back across crashes: {poison_counts:?}"
    );
    assert_eq!(poison_counts.last(), Some(&4), "{poison_counts:?}");
    let d = q.describe_queue("inventory").await.unwrap();
    assert_eq!(d.lag, 0, "{d:?}");
    let dlq = read_all(&c, "orders.inventory.dlq").await;
    assert_eq!(dlq.len(), 1, "dead-lettered once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_consumes_rejects_shows_and_redrives() {
    let (_dir, b, c) = broker_with_topic("orders", 1).await;
    let url = format!("http://{}", b.grpc);
    let brook = |args: &[&str]| {
        let out = std::process::Command::new(brook_binary())
            .args(args)
            .args(["--url", &url])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    brook(&[
        "queue",
        "create",
        "inventory",
        "--topic",
        "orders",
        "--from",
        "earliest",
        "--max-deliveries",
        "2",
    ]);
    publish(&c, "orders", plain(3, 3)).await;
    let printed = brook(&[
        "queue",
        "consume",
        "orders",
        "--group",
        "inventory",
        "--max",
        "3",
        "--reject",
        "--reason",
        "malformed",
    ]);
    assert_eq!(
        printed.lines().collect::<Vec<_>>(),
        ["event-0", "event-1", "event-2"]
    );
    let described: serde_json::Value =
        serde_json::from_str(&brook(&["queue", "describe", "inventory", "--json"])).unwrap();
    assert_eq!(described["dlq_depth"], 3);
    assert_eq!(described["settings"]["max_deliveries"], 2);
    let shown = brook(&["dlq", "show", "inventory"]);
    assert_eq!(
        shown.matches("after 1 deliveries: malformed").count(),
        3,
        "{shown}"
    );
    let counted = brook(&["dlq", "redrive", "inventory", "--to-group", "--dry-run"]);
    assert!(
        counted.contains(
            "would redrive 3 records of inventory's dead-letter topic back into the group"
        ),
        "{counted}"
    );
    let moved = brook(&["dlq", "redrive", "inventory"]);
    assert!(moved.contains("redrove 3 records"), "{moved}");
    let again = brook(&["dlq", "redrive", "inventory"]);
    assert!(again.contains("redrove 0 records"), "{again}");
    let acked = brook(&[
        "queue",
        "consume",
        "orders",
        "--group",
        "inventory",
        "--max",
        "3",
    ]);
    assert_eq!(acked.lines().count(), 3);
    let listed = brook(&["dlq", "list"]);
    assert!(listed.contains("orders.inventory.dlq"), "{listed}");
}

/// The runner answers by the handler's result: `Ok` acks, `?` on an error
/// nacks (retried), `Failure::reject` dead-letters; and a handler slower
/// than the lease keeps its message, because the lease is extended while it
/// runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_runner_acks_nacks_and_rejects_by_result_and_extends_leases_of_slow_handlers() {
    use brook_client::Failure;
    let (_dir, _broker, c) = broker_with_topic("orders", 2).await;
    let mut records = plain(40, 40);
    records[3].1 = "slow".into();
    records[5].1 = "flaky".into();
    records[8].1 = "poison".into();
    publish(&c, "orders", records).await;
    let settings = v1::QueueSettings {
        lease_ms: Some(1_000),
        backoff_initial_ms: Some(10),
        ..Default::default()
    };
    create_queue(&c, "billing", "orders", settings).await;
    let calls: Arc<Mutex<Vec<(String, u32)>>> = Default::default();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let runner = {
        let (consumer, calls) = (
            c.queue_consumer("billing", Default::default()),
            Arc::clone(&calls),
        );
        tokio::spawn(async move {
            consumer
                .run(
                    8,
                    move |msg| {
                        let calls = Arc::clone(&calls);
                        async move {
                            let value =
                                String::from_utf8(msg.value.clone().unwrap().to_vec()).unwrap();
                            calls
                                .lock()
                                .unwrap()
                                .push((value.clone(), msg.delivery_count));
                            match value.as_str() {
                                // Busy past the end of the lease it came with (and
                                // the broker's sweep after it): kept only if the
                                // lease is extended.
                                "slow" => past_ms(msg.lease_until_ms + 500).await,
                                "flaky" if msg.delivery_count == 1 => {
                                    "not a number".parse::<u32>()?;
                                }
                                "poison" => return Err(Failure::reject("cannot parse")),
                                _ => {}
                            }
                            Ok(())
                        }
                    },
                    async {
                        let _ = stop_rx.await;
                    },
                )
                .await
        })
    };
    brook_tests::eventually("every record settled", async || {
        let d = c.admin().describe_queue("billing").await.unwrap();
        d.lag == 0 && d.dlq_depth == 1
    })
    .await;
    stop_tx.send(()).unwrap();
    runner.await.unwrap().unwrap();
    let calls = calls.lock().unwrap().clone();
    let of = |v: &str| {
        calls
            .iter()
            .filter(|(x, _)| x == v)
            .map(|(_, n)| *n)
            .collect::<Vec<_>>()
    };
    assert_eq!(
        of("slow"),
        [1],
        "delivered once: its lease was extended while it ran"
    );
    assert_eq!(
        of("flaky"),
        [1, 2],
        "an error nacks, and the retry succeeds"
    );
    assert_eq!(of("poison"), [1], "a reject is not retried");
    assert_eq!(calls.len(), 41);
    let dlq = read_all(&c, "orders.billing.dlq").await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(dlq[0].value.as_deref(), Some(&b"poison"[..]));
}

/// A window full of leased records at a crash: after the restart the
/// records are read again, their leases expire as failed deliveries (count
/// 2), a consumer from before the crash can still settle what it holds,
/// and the partition goes on past the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill9_with_a_full_window_leases_resume_or_expire_and_the_partition_goes_on() {
    let (_dir, mut b, c) = broker_with_topic("orders", 1).await;
    publish(&c, "orders", plain(30, 30)).await;
    let settings = v1::QueueSettings {
        window: Some(10),
        lease_ms: Some(1_500),
        backoff_initial_ms: Some(0),
        ..Default::default()
    };
    create_queue(&c, "inventory", "orders", settings).await;
    let mut q = queues(b.channel().await);
    let first = fetch(&mut q, "inventory", "before", 100, 1_000).await;
    assert_eq!(first.records.len(), 10, "the window's worth");
    b.kill9_in_place();
    b.restart().await;
    let mut q = queues(b.channel().await);
    // The consumer from before the crash still holds its leases: it
    // extends one (and then dies for good).
    let extended = q
        .extend_lease(v1::ExtendLeaseRequest {
            group: "inventory".into(),
            consumer_id: "before".into(),
            ranges: vec![v1::OffsetRange {
                partition: 0,
                first_offset: 0,
                last_offset: 0,
            }],
            lease_ms: 3_000,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(extended.not_held.is_empty(), "{extended:?}");
    let mut counts = BTreeMap::new();
    let deadline = Instant::now() + DEADLINE;
    while counts.len() < 30 {
        assert!(Instant::now() < deadline, "{counts:?}");
        let r = fetch(&mut q, "inventory", "after", 100, 500).await;
        let mut acks = Vec::new();
        for rec in r.records {
            let o = rec.record.unwrap().offset;
            assert!(counts.insert(o, rec.delivery_count).is_none(), "{o} twice");
            acks.push(ack(0, o, v1::AckOutcome::Ack, ""));
        }
        if !acks.is_empty() {
            settle(&mut q, "inventory", "after", acks).await;
        }
    }
    // The 10 leased before the crash came back once their leases ended.
    assert!((0..10).all(|o| counts[&o] == 2), "{counts:?}");
    assert!((10..30).all(|o| counts[&o] == 1), "{counts:?}");
    let d = c.admin().describe_queue("inventory").await.unwrap();
    assert_eq!(d.lag, 0);
}
