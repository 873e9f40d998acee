//! Queue groups against a real broker, the details `queues.rs` leaves out:
//! a nack's own delay (`Acknowledgement.delay_ms`, the Rust client's
//! `QueueMessage::nack_after`) in both directions against the group's
//! backoff; leases that expire counted as failed deliveries up to the dead
//! letter (`lease expired`); a dead-letter topic named in the settings;
//! `brook queue consume --nack`; the queue gauges on `/metrics` while records
//! are held; and records retention removes before the group settled them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use brook_client::{Client, ProducerConfig, ProducerRecord, QueueConsumerConfig};
use brook_protocol::v1;
use brook_tests::queue::{
    ack, broker_with_topic, client, create_queue, describe, fetch, fetch_n, now_ms, queues,
    read_all, settle,
};
use brook_tests::{Broker, DEADLINE};

/// Publishes `(key, value)` records to `topic` and waits for them.
async fn publish(c: &Client, topic: &str, records: &[(&str, &str)]) {
    let producer = c.producer(ProducerConfig::default());
    let mut acks = Vec::new();
    for (key, value) in records {
        let r = ProducerRecord {
            topic: topic.into(),
            key: Some(key.as_bytes().to_vec().into()),
            value: Some(value.as_bytes().to_vec().into()),
            ..Default::default()
        };
        acks.push(producer.send_record(r).await.expect("sending a record"));
    }
    for a in acks {
        a.await.expect("the record is stored");
    }
}

/// `n` records `order-i` / `event-i`.
fn plain(n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|i| (format!("order-{i}"), format!("event-{i}")))
        .collect()
}

fn as_refs(records: &[(String, String)]) -> Vec<(&str, &str)> {
    records
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect()
}

/// A queue record's (partition, offset, value, delivery count).
fn parts(r: &v1::QueueRecord) -> (u32, u64, String, u32) {
    let record = r
        .record
        .as_ref()
        .expect("a queue record carries its record");
    let value = record
        .value
        .as_deref()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default();
    (r.partition, record.offset, value, r.delivery_count)
}

/// The value of `r`'s first header named `key`, as text.
fn header(r: &brook_client::ConsumerRecord, key: &str) -> Option<String> {
    r.headers
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
}

fn value_of(r: &brook_client::ConsumerRecord) -> String {
    r.value
        .as_deref()
        .map(|v| String::from_utf8_lossy(v).into_owned())
        .unwrap_or_default()
}

/// The value of the sample `name{labels}` on a `/metrics` page.
fn sample(text: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = format!("{name}{{{labels}}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

/// The queue lines of a `/metrics` page (for failure messages).
fn queue_lines(text: &str) -> String {
    text.lines()
        .filter(|l| l.starts_with("brook_queue"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Polls `/metrics` until `ok` holds for the page; returns that page.
async fn metrics_until(b: &Broker, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let text = b.metrics_text().await;
        if ok(&text) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}; the queue metrics:\n{}",
            queue_lines(&text)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A record delivered again earlier than asked may have come this much
/// early on the clocks' millisecond rounding; anything more is a failure.
const TOLERANCE_MS: i64 = 50;

/// `QueueMessage::nack_after` (delay_ms on a NACK): with the group's backoff
/// at 0, the record would come straight back if the delay were ignored; it
/// must not come back before the delay, must come back after it as its
/// second delivery, and the records behind it flow meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nack_after_holds_the_record_for_the_consumers_delay_while_the_records_behind_it_flow() {
    const DELAY_MS: i64 = 3_000;
    let (_dir, _broker, c) = broker_with_topic("jobs", 1).await;
    let mut records = vec![("order-r".to_string(), "retry-me".to_string())];
    records.extend(plain(5));
    publish(&c, "jobs", &as_refs(&records)).await;
    let settings = v1::QueueSettings {
        backoff_initial_ms: Some(0),
        ..Default::default()
    };
    create_queue(&c, "workers", "jobs", settings).await;
    let config = QueueConsumerConfig {
        consumer_id: Some("nacker".into()),
        max_records: 1,
        max_wait: Duration::from_millis(200),
        ..Default::default()
    };
    let mut consumer = c.queue_consumer("workers", config);
    let first = tokio::time::timeout(DEADLINE, consumer.recv())
        .await
        .expect("the first message in time")
        .expect("receiving");
    assert_eq!(value_of(&first), "retry-me");
    assert_eq!(first.delivery_count, 1);
    // Taken before the nack leaves: the broker's clock at the nack is later.
    let sent = now_ms();
    first.nack_after(Duration::from_millis(DELAY_MS as u64), "rate limited");
    consumer.flush().await.expect("the nack reached the broker");

    let mut others: Vec<(String, i64)> = Vec::new();
    let deadline = Instant::now() + DEADLINE;
    let (again, again_at) = loop {
        assert!(
            Instant::now() < deadline,
            "retry-me never came back; others: {others:?}"
        );
        let Ok(got) = tokio::time::timeout(Duration::from_millis(500), consumer.recv()).await
        else {
            continue;
        };
        let msg = got.expect("receiving");
        let at = now_ms();
        if value_of(&msg) == "retry-me" {
            break (msg, at);
        }
        assert_eq!(msg.delivery_count, 1, "{}", value_of(&msg));
        others.push((value_of(&msg), at));
        msg.ack();
    };
    assert!(
        again_at >= sent + DELAY_MS - TOLERANCE_MS,
        "delivered again {} ms after the nack, before its delay of {DELAY_MS} ms",
        again_at - sent
    );
    assert_eq!(again.delivery_count, 2, "the nacked delivery counted");
    let mut values: Vec<&str> = others.iter().map(|(v, _)| v.as_str()).collect();
    values.sort_unstable();
    assert_eq!(
        values,
        ["event-0", "event-1", "event-2", "event-3", "event-4"],
        "every record behind it was delivered first, once"
    );
    assert!(
        others.iter().all(|(_, at)| *at < sent + DELAY_MS),
        "the records behind it waited for its delay: {others:?} (nacked at {sent})"
    );
    again.ack();
    consumer.flush().await.expect("the ack reached the broker");
    consumer.close().await.expect("closing the consumer");
    let d = describe(&c, "workers").await;
    assert_eq!((d.lag, d.in_flight, d.waiting), (0, 0, 0), "{d:?}");
    assert_eq!(d.redeliveries, 1, "{d:?}");
}

/// delay_ms shorter than the group's backoff: the record comes back after
/// the delay, not the backoff, and only the acknowledgement that named a
/// delay is affected (a plain nack beside it keeps the group's backoff).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_nack_delay_shorter_than_the_group_backoff_applies_to_that_record_only() {
    const DELAY_MS: u64 = 3_000;
    const BACKOFF_MS: u64 = 60_000;
    let (_dir, b, c) = broker_with_topic("jobs", 1).await;
    publish(&c, "jobs", &[("k-0", "delayed"), ("k-1", "backing-off")]).await;
    let settings = v1::QueueSettings {
        backoff_initial_ms: Some(BACKOFF_MS),
        backoff_max_ms: Some(BACKOFF_MS),
        ..Default::default()
    };
    create_queue(&c, "workers", "jobs", settings).await;
    let mut q = queues(b.channel().await);
    let mut held = BTreeMap::new();
    for r in fetch_n(&mut q, "workers", "w", 2).await {
        let (p, o, v, n) = parts(&r);
        assert_eq!(n, 1);
        held.insert(v, (p, o));
    }
    let (p0, o0) = held["delayed"];
    let (p1, o1) = held["backing-off"];
    let sent = now_ms();
    let answer = settle(
        &mut q,
        "workers",
        "w",
        vec![
            v1::Acknowledgement {
                delay_ms: Some(DELAY_MS),
                ..ack(p0, o0, v1::AckOutcome::Nack, "downstream rate limit")
            },
            ack(p1, o1, v1::AckOutcome::Nack, "plain failure"),
        ],
    )
    .await;
    assert_eq!(answer.settled, 2, "{answer:?}");
    assert!(answer.not_held.is_empty(), "{answer:?}");
    let d = describe(&c, "workers").await;
    assert_eq!((d.in_flight, d.waiting), (0, 2), "both wait: {d:?}");

    let deadline = Instant::now() + DEADLINE;
    let (back_at, count) = loop {
        assert!(
            Instant::now() < deadline,
            "the delayed record never came back"
        );
        let r = fetch(&mut q, "workers", "w", 10, 200).await;
        let mut got = None;
        for rec in &r.records {
            let (_, _, v, n) = parts(rec);
            assert_eq!(
                v, "delayed",
                "a plain nack waits for the group's {BACKOFF_MS} ms backoff"
            );
            got = Some(n);
        }
        if let Some(n) = got {
            break (now_ms(), n);
        }
    };
    let after = back_at - sent;
    assert!(
        after >= DELAY_MS as i64 - TOLERANCE_MS,
        "back after {after} ms, before its delay of {DELAY_MS} ms"
    );
    assert!(
        after < (BACKOFF_MS / 2) as i64,
        "back after {after} ms: the group's backoff was used, not the delay"
    );
    assert_eq!(count, 2);
    let d = describe(&c, "workers").await;
    assert_eq!(
        (d.in_flight, d.waiting),
        (1, 1),
        "the plain nack still backs off: {d:?}"
    );
}

/// With max_deliveries = 2, a record whose two leases expire unanswered is
/// dead-lettered by the sweep, with `lease expired` as its reason and 2
/// deliveries; records acked meanwhile stay out of the dead-letter topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_expired_leases_dead_letter_a_record_as_lease_expired_with_two_deliveries() {
    const LEASE_MS: u64 = 300; // the smallest lease allowed is 100 ms
    let (_dir, b, c) = broker_with_topic("orders", 1).await;
    publish(
        &c,
        "orders",
        &[
            ("order-a", "abandoned"),
            ("order-b", "fine-1"),
            ("order-c", "fine-2"),
        ],
    )
    .await;
    let settings = v1::QueueSettings {
        lease_ms: Some(LEASE_MS),
        max_deliveries: Some(2),
        backoff_initial_ms: Some(0),
        ..Default::default()
    };
    create_queue(&c, "shipping", "orders", settings).await;
    let mut q = queues(b.channel().await);
    // (delivery count, when it arrived, when its lease ends) per delivery.
    let mut abandoned: Vec<(u32, i64, i64)> = Vec::new();
    let mut acked = BTreeSet::new();
    let deadline = Instant::now() + DEADLINE;
    loop {
        let d = describe(&c, "shipping").await;
        if d.dlq_depth == 1 && acked.len() == 2 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{d:?}; abandoned {abandoned:?}, acked {acked:?}"
        );
        let r = fetch(&mut q, "shipping", "forgetful", 10, 200).await;
        let at = now_ms();
        let mut acks = Vec::new();
        for rec in &r.records {
            let (p, o, v, n) = parts(rec);
            if v == "abandoned" {
                // Never answered: the lease runs out.
                abandoned.push((n, at, r.lease_until_ms));
            } else {
                assert!(acked.insert(v), "an acked record came back");
                acks.push(ack(p, o, v1::AckOutcome::Ack, ""));
            }
        }
        if !acks.is_empty() {
            settle(&mut q, "shipping", "forgetful", acks).await;
        }
    }
    let counts: Vec<u32> = abandoned.iter().map(|(n, _, _)| *n).collect();
    assert_eq!(
        counts,
        [1, 2],
        "an expired lease is a failed delivery: {abandoned:?}"
    );
    assert!(
        abandoned[1].1 >= abandoned[0].2,
        "delivered again before the first lease ended: {abandoned:?}"
    );
    let dlq = read_all(&c, "orders.shipping.dlq").await;
    let values: Vec<String> = dlq.iter().map(value_of).collect();
    assert_eq!(values, ["abandoned"], "only the abandoned record");
    let dead = &dlq[0];
    let h = |k: &str| header(dead, k).unwrap_or_else(|| panic!("header {k} on {dead:?}"));
    assert_eq!(h("brook-dlq-reason"), "lease expired");
    assert_eq!(h("brook-dlq-delivery-count"), "2");
    assert_eq!(h("brook-dlq-offset"), "0");
    assert_eq!(h("brook-dlq-group"), "shipping");
    let first: i64 = h("brook-dlq-first-failure-ms")
        .parse()
        .expect("a first failure time");
    let last: i64 = h("brook-dlq-last-failure-ms")
        .parse()
        .expect("a last failure time");
    assert!(
        last - first >= LEASE_MS as i64,
        "the second lease ran a whole lease after the first failure: {first} {last}"
    );
    // Never a third delivery.
    let r = fetch(&mut q, "shipping", "forgetful", 10, (3 * LEASE_MS) as u32).await;
    assert!(r.records.is_empty(), "{r:?}");
    let d = describe(&c, "shipping").await;
    assert_eq!(
        (d.lag, d.in_flight, d.dead_lettered, d.redeliveries),
        (0, 0, 1, 1),
        "{d:?}"
    );
}

/// `dlq_topic` in the settings: rejects and nacks out of deliveries go
/// there (created on first use with `dlq_partitions`, by key), the default
/// `<topic>.<group>.dlq` is never created, and depth, metrics and redrive
/// follow the custom topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_dead_letter_topic_named_in_the_settings_is_used_and_the_default_one_is_never_created() {
    let (_dir, b, c) = broker_with_topic("orders", 2).await;
    publish(&c, "orders", &as_refs(&plain(4))).await;
    let settings = v1::QueueSettings {
        dlq_topic: Some("poison-orders".into()),
        dlq_partitions: Some(3),
        max_deliveries: Some(1),
        ..Default::default()
    };
    create_queue(&c, "inventory", "orders", settings).await;
    let d = describe(&c, "inventory").await;
    assert_eq!(
        d.settings.as_ref().expect("settings").dlq_topic(),
        "poison-orders"
    );
    let mut q = queues(b.channel().await);
    let mut acks = Vec::new();
    for r in fetch_n(&mut q, "inventory", "w", 4).await {
        let (p, o, v, _) = parts(&r);
        acks.push(match v.as_str() {
            "event-0" => ack(p, o, v1::AckOutcome::Reject, "unknown sku"),
            "event-1" => ack(p, o, v1::AckOutcome::Nack, "warehouse down"),
            _ => ack(p, o, v1::AckOutcome::Ack, ""),
        });
    }
    let answer = settle(&mut q, "inventory", "w", acks).await;
    assert_eq!((answer.settled, answer.dead_lettered), (4, 2), "{answer:?}");

    let names: Vec<String> = c
        .admin()
        .list_topics()
        .await
        .expect("list topics")
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert!(names.iter().any(|n| n == "poison-orders"), "{names:?}");
    assert!(
        !names.iter().any(|n| n == "orders.inventory.dlq"),
        "{names:?}"
    );
    let missing = c
        .admin()
        .describe_topic("orders.inventory.dlq")
        .await
        .expect_err("the default dead-letter topic does not exist");
    assert_eq!(missing.reason(), Some("TOPIC_NOT_FOUND"), "{missing}");
    let poison = c
        .admin()
        .describe_topic("poison-orders")
        .await
        .expect("describe the custom dead-letter topic");
    assert_eq!(poison.partitions.len(), 3, "created with dlq_partitions");

    let dlq = read_all(&c, "poison-orders").await;
    let by_value: BTreeMap<String, &brook_client::ConsumerRecord> =
        dlq.iter().map(|r| (value_of(r), r)).collect();
    assert_eq!(
        by_value.keys().map(String::as_str).collect::<Vec<_>>(),
        ["event-0", "event-1"]
    );
    for (value, reason) in [("event-0", "unknown sku"), ("event-1", "warehouse down")] {
        let r = by_value[value];
        let key = r.key.as_deref().expect("the record keeps its key");
        assert_eq!(
            r.partition,
            brook_protocol::partitioner::partition_for_key(key, 3),
            "{value}: placed by its key among the 3 partitions"
        );
        assert_eq!(header(r, "brook-dlq-reason").as_deref(), Some(reason));
        assert_eq!(header(r, "brook-dlq-topic").as_deref(), Some("orders"));
        assert_eq!(header(r, "brook-dlq-group").as_deref(), Some("inventory"));
        assert_eq!(header(r, "brook-dlq-delivery-count").as_deref(), Some("1"));
    }
    let d = describe(&c, "inventory").await;
    assert_eq!((d.dlq_depth, d.dead_lettered, d.lag), (2, 2, 0), "{d:?}");
    let metrics = b.metrics_text().await;
    assert_eq!(
        sample(
            &metrics,
            "brook_queue_dlq_depth",
            r#"group="inventory",topic="poison-orders""#
        ),
        Some(2.0),
        "{}",
        queue_lines(&metrics)
    );
    // (Other metrics may name it: the describe above failed on it.)
    assert!(
        !queue_lines(&metrics).contains("orders.inventory.dlq"),
        "{}",
        queue_lines(&metrics)
    );
    let moved = c
        .admin()
        .redrive(v1::RedriveRequest {
            group: "inventory".into(),
            ..Default::default()
        })
        .await
        .expect("redrive");
    assert_eq!(moved.redriven, 2, "redrive reads the custom topic");
    let d = describe(&c, "inventory").await;
    assert_eq!(d.dlq_depth, 0, "{d:?}");
    assert_eq!(read_all(&c, "orders").await.len(), 6, "two copies back");
}

/// Runs `brook` against `b`; its stdout, failing the test if it failed.
fn cli(b: &Broker, args: &[&str]) -> String {
    let out = brook_tests::brook_cli(b, args, None);
    assert!(
        out.status.success(),
        "brook {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("brook prints UTF-8")
}

/// `brook queue consume --json` lines: (value, delivery count), sorted.
fn consumed(out: &str) -> Vec<(String, u64)> {
    let mut v: Vec<(String, u64)> = out
        .lines()
        .map(|l| {
            let j: serde_json::Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("{l:?}: {e}"));
            (
                j["value"].as_str().expect("a value").to_string(),
                j["delivery_count"].as_u64().expect("a delivery count"),
            )
        })
        .collect();
    v.sort();
    v
}

/// `brook queue consume --nack` nacks what it prints: the records stay
/// unsettled and back off, come back as second deliveries, and a nack of
/// the last delivery allowed dead-letters them with the `--reason` given.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_cli_consume_nack_leaves_records_unsettled_for_redelivery_then_dead_letters_them() {
    let (_dir, b, c) = broker_with_topic("orders", 1).await;
    publish(&c, "orders", &as_refs(&plain(3))).await;
    cli(
        &b,
        &[
            "queue",
            "create",
            "inventory",
            "--topic",
            "orders",
            "--from",
            "earliest",
            "--max-deliveries",
            "2",
            "--backoff-initial-ms",
            "4000",
        ],
    );
    let nack = [
        "queue",
        "consume",
        "orders",
        "--group",
        "inventory",
        "--max",
        "3",
        "--nack",
        "--reason",
        "downstream timeout",
        "--timeout",
        "30s",
        "--json",
    ];
    let want =
        |n: u64| -> Vec<(String, u64)> { (0..3).map(|i| (format!("event-{i}"), n)).collect() };
    assert_eq!(consumed(&cli(&b, &nack)), want(1));
    // Not acked: unsettled, backing off (4 s), nothing dead-lettered yet.
    let d = describe(&c, "inventory").await;
    let p = &d.partitions[0];
    assert_eq!(
        (p.acked_up_to, p.unsettled, p.in_flight, p.waiting),
        (0, 3, 0, 3),
        "{d:?}"
    );
    assert_eq!((d.lag, d.dlq_depth), (3, 0), "{d:?}");
    // The next consume gets them again, as second deliveries; nacking the
    // last delivery allowed dead-letters them.
    assert_eq!(consumed(&cli(&b, &nack)), want(2));
    let d = describe(&c, "inventory").await;
    assert_eq!(
        (d.lag, d.dlq_depth, d.dead_lettered, d.redeliveries),
        (0, 3, 3, 3),
        "{d:?}"
    );
    let dlq = read_all(&c, "orders.inventory.dlq").await;
    assert_eq!(dlq.len(), 3);
    for r in &dlq {
        assert_eq!(
            header(r, "brook-dlq-reason").as_deref(),
            Some("downstream timeout")
        );
        assert_eq!(header(r, "brook-dlq-delivery-count").as_deref(), Some("2"));
    }
}

/// The queue gauges while records are held: `brook_queue_in_flight` is the
/// number leased and unanswered, `brook_queue_oldest_unacked_age_seconds`
/// is above 0 and agrees with DescribeQueue (in seconds), a nack with a
/// delay shows in `brook_queue_waiting`, and once everything is settled the
/// gauges are back to 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn queue_metrics_report_held_records_their_age_and_waiting_until_they_are_settled() {
    const LABELS: &str = r#"group="inventory",topic="orders""#;
    let (_dir, b, c) = broker_with_topic("orders", 1).await;
    publish(&c, "orders", &as_refs(&plain(5))).await;
    create_queue(&c, "inventory", "orders", Default::default()).await;
    let mut q = queues(b.channel().await);
    let held: Vec<u64> = fetch_n(&mut q, "inventory", "holder", 3)
        .await
        .iter()
        .map(|r| parts(r).1)
        .collect();
    assert_eq!(held, [0, 1, 2]);
    let g = |text: &str, name: &str| sample(text, name, LABELS);
    metrics_until(&b, "3 records in flight, aged", |t| {
        g(t, "brook_queue_in_flight") == Some(3.0)
            && g(t, "brook_queue_lag_records") == Some(5.0)
            && g(t, "brook_queue_waiting") == Some(0.0)
            && g(t, "brook_queue_oldest_unacked_age_seconds").is_some_and(|a| a > 0.0)
    })
    .await;
    // The age is in seconds: between DescribeQueue's ms before and after.
    let before = describe(&c, "inventory").await;
    let text = b.metrics_text().await;
    let after = describe(&c, "inventory").await;
    let age = g(&text, "brook_queue_oldest_unacked_age_seconds").expect("the age gauge");
    let (lo, hi) = (
        before.oldest_unacked_age_ms as f64 / 1000.0,
        after.oldest_unacked_age_ms as f64 / 1000.0,
    );
    assert!(
        lo - 0.002 <= age && age <= hi + 0.002,
        "{age} s is not between {lo} s and {hi} s"
    );
    assert_eq!(before.in_flight, 3, "{before:?}");

    // Ack two, nack one for a while: nothing in flight, one waiting.
    let answer = settle(
        &mut q,
        "inventory",
        "holder",
        vec![
            ack(0, 0, v1::AckOutcome::Ack, ""),
            ack(0, 1, v1::AckOutcome::Ack, ""),
            v1::Acknowledgement {
                delay_ms: Some(5_000),
                ..ack(0, 2, v1::AckOutcome::Nack, "later")
            },
        ],
    )
    .await;
    assert_eq!(answer.settled, 3, "{answer:?}");
    metrics_until(&b, "none in flight, one waiting", |t| {
        g(t, "brook_queue_in_flight") == Some(0.0)
            && g(t, "brook_queue_waiting") == Some(1.0)
            && g(t, "brook_queue_lag_records") == Some(3.0)
            && g(t, "brook_queue_oldest_unacked_age_seconds").is_some_and(|a| a > 0.0)
    })
    .await;

    // Settle the rest (the nacked one once its delay is over).
    let mut done = BTreeSet::new();
    let deadline = Instant::now() + DEADLINE;
    while done.len() < 3 {
        assert!(Instant::now() < deadline, "{done:?}");
        let r = fetch(&mut q, "inventory", "holder", 10, 500).await;
        let acks: Vec<_> = r
            .records
            .iter()
            .map(|rec| {
                let (p, o, _, _) = parts(rec);
                done.insert(o);
                ack(p, o, v1::AckOutcome::Ack, "")
            })
            .collect();
        if !acks.is_empty() {
            settle(&mut q, "inventory", "holder", acks).await;
        }
    }
    assert_eq!(done, BTreeSet::from([2, 3, 4]));
    metrics_until(&b, "everything settled", |t| {
        g(t, "brook_queue_in_flight") == Some(0.0)
            && g(t, "brook_queue_waiting") == Some(0.0)
            && g(t, "brook_queue_lag_records") == Some(0.0)
            && g(t, "brook_queue_oldest_unacked_age_seconds") == Some(0.0)
    })
    .await;
}

/// Retention removing records the group had not settled (one of them
/// leased): the acked-up-to point moves to the new log start, the records
/// are counted in `lost_to_retention` and `brook_queue_lost_to_retention_total`,
/// the lease on a removed record is gone (its late ack is `not_held`), and
/// what is left is delivered as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn records_retention_removes_before_they_are_settled_are_counted_lost_and_passed() {
    const N: u64 = 10;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let b = Broker::start(dir.path(), &["--retention-check-interval-ms", "100"]).await;
    let c = client(&b).await;
    // Small segments (the smallest allowed), and no retention yet.
    let config = v1::TopicConfig {
        partitions: 1,
        segment_bytes: Some(1024),
        retention_bytes: Some(-1),
        ..Default::default()
    };
    c.admin()
        .create_topic_with("events", config)
        .await
        .expect("create events");
    // One batch per record (nothing else in flight), about 700 bytes each:
    // a segment holds one.
    let producer = c.producer(ProducerConfig::default());
    for i in 0..N {
        let value = format!("event-{i}:{}", "x".repeat(700));
        producer
            .send("events", Some("audit"), value)
            .await
            .expect("send")
            .await
            .expect("stored");
    }
    let t = c.admin().describe_topic("events").await.expect("describe");
    let p = &t.partitions[0];
    assert_eq!((p.log_start_offset, p.log_end_offset), (0, N), "{p:?}");
    assert!(p.segment_count > 3, "several segments: {p:?}");

    create_queue(&c, "audit", "events", Default::default()).await;
    let mut q = queues(b.channel().await);
    let mut held = Vec::new();
    for r in fetch_n(&mut q, "audit", "slow", 3).await {
        let (_, o, _, n) = parts(&r);
        assert_eq!(n, 1);
        held.push(o);
    }
    assert_eq!(held, [0, 1, 2]);
    // 0 and 1 settled; 2 stays leased.
    let answer = settle(
        &mut q,
        "audit",
        "slow",
        vec![
            ack(0, 0, v1::AckOutcome::Ack, ""),
            ack(0, 1, v1::AckOutcome::Ack, ""),
        ],
    )
    .await;
    assert_eq!(answer.settled, 2);
    let d = describe(&c, "audit").await;
    assert_eq!(
        (
            d.partitions[0].acked_up_to,
            d.lost_to_retention,
            d.in_flight
        ),
        (2, 0, 1),
        "{d:?}"
    );

    // Retention now keeps only the active segment.
    c.admin()
        .alter_topic(
            "events",
            v1::TopicConfig {
                retention_bytes: Some(1),
                ..Default::default()
            },
        )
        .await
        .expect("alter retention");
    let deadline = Instant::now() + DEADLINE;
    let (log_start, d) = loop {
        let t = c.admin().describe_topic("events").await.expect("describe");
        let start = t.partitions[0].log_start_offset;
        let d = describe(&c, "audit").await;
        if start > 2 && d.partitions[0].acked_up_to >= start && d.lost_to_retention > 0 {
            break (start, d);
        }
        assert!(Instant::now() < deadline, "log start {start}, queue {d:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(log_start < N, "the active segment stays: {log_start}");
    assert_eq!(
        d.partitions[0].acked_up_to, log_start,
        "moved to the new log start, no further: {d:?}"
    );
    assert_eq!(
        d.lost_to_retention,
        log_start - 2,
        "every unsettled record below the log start, the leased one too: {d:?}"
    );
    assert_eq!(d.in_flight, 0, "the lease went with its record: {d:?}");
    let metrics = b.metrics_text().await;
    assert_eq!(
        sample(
            &metrics,
            "brook_queue_lost_to_retention_total",
            r#"group="audit",topic="events""#
        ),
        Some((log_start - 2) as f64),
        "{}",
        queue_lines(&metrics)
    );
    let late = settle(
        &mut q,
        "audit",
        "slow",
        vec![ack(0, 2, v1::AckOutcome::Ack, "")],
    )
    .await;
    assert_eq!(late.settled, 0, "{late:?}");
    assert_eq!(
        late.not_held,
        [v1::OffsetRange {
            partition: 0,
            first_offset: 2,
            last_offset: 2,
        }]
    );

    // What retention left is delivered, once each, and nothing below it.
    let mut rest = BTreeSet::new();
    let deadline = Instant::now() + DEADLINE;
    while rest.len() < (N - log_start) as usize {
        assert!(Instant::now() < deadline, "{rest:?}");
        let r = fetch(&mut q, "audit", "fast", 100, 500).await;
        let mut acks = Vec::new();
        for rec in &r.records {
            let (p, o, _, n) = parts(rec);
            assert!(
                o >= log_start,
                "offset {o} is below the log start {log_start}"
            );
            assert_eq!(n, 1, "offset {o}");
            assert!(rest.insert(o), "offset {o} twice");
            acks.push(ack(p, o, v1::AckOutcome::Ack, ""));
        }
        if !acks.is_empty() {
            settle(&mut q, "audit", "fast", acks).await;
        }
    }
    let d = describe(&c, "audit").await;
    assert_eq!((d.lag, d.in_flight), (0, 0), "{d:?}");
    assert_eq!(d.lost_to_retention, log_start - 2, "counted once: {d:?}");
}
