//! Following one business transaction across topics against a real
//! broker: a `correlation-id` header travels through a routing rule (which
//! keeps headers) and through a service's handler (the client's
//! `ProducerRecord::caused_by`), and `brook trace ID` prints the chain in
//! time order with where each routed record came from.

use std::time::Duration;

use brook_client::{
    ConsumerConfig, ProducerConfig, ProducerRecord, StartFrom, correlation::CORRELATION_ID,
};
use brook_protocol::v1;
use brook_tests::queue::client;
use brook_tests::{Broker, brook_cli, create_topic, eventually};
use bytes::Bytes;
use serde_json::Value;

/// A trace context from an instrumented producer elsewhere.
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

fn order(id: &str, correlation: &str) -> ProducerRecord {
    ProducerRecord {
        topic: "events".into(),
        key: Some(Bytes::from(id.to_string())),
        value: Some(Bytes::from(format!(
            r#"{{"source":"order-service","detail-type":"OrderPlaced","detail":{{"orderId":"{id}"}}}}"#
        ))),
        headers: vec![
            (CORRELATION_ID.into(), Bytes::from(correlation.to_string())),
            ("traceparent".into(), Bytes::from(TRACEPARENT)),
        ],
        timestamp_ms: None,
        partition: None,
    }
}

/// OrderPlaced (correlation c-1) is routed by a rule to `billing`; a
/// billing handler publishes PaymentCaptured caused by it; `brook trace
/// c-1` prints the three records in time order, the routed one with its
/// rule and source, and nothing of another order's chain; `--topics`
/// narrows the scan, `--json` prints one object a line, and an unknown id
/// exits 1. The broker logs JSON but exports no spans: the routed record
/// keeps the source's `traceparent` (no span of the broker's to name).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brook_trace_follows_a_correlation_id_through_a_rule_and_a_handler() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &["--log-format", "json"]).await;
    create_topic(&b, "events", 2).await;
    create_topic(&b, "billing", 1).await;
    create_topic(&b, "payments", 1).await;
    let c = client(&b).await;
    c.admin()
        .create_rule(v1::RuleDefinition {
            name: "bill-placed".into(),
            source_topic: "events".into(),
            event_pattern: r#"{"detail-type":["OrderPlaced"]}"#.into(),
            targets: vec!["billing".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let producer = c.producer(ProducerConfig::default());
    for (id, corr) in [("o-1", "c-1"), ("o-2", "c-2")] {
        producer
            .send_record(order(id, corr))
            .await
            .unwrap()
            .await
            .unwrap();
    }

    // The billing service: each bill it reads causes a payment.
    let mut bills = c
        .consumer(ConsumerConfig {
            start_from: StartFrom::Earliest,
            auto_commit: None,
            ..ConsumerConfig::new("billing-service", &["billing"])
        })
        .await
        .unwrap();
    for _ in 0..2 {
        let bill = tokio::time::timeout(Duration::from_secs(30), bills.recv())
            .await
            .expect("a routed bill")
            .unwrap();
        let traceparents: Vec<&Bytes> = (bill.headers.iter())
            .filter(|(k, _)| k == "traceparent")
            .map(|(_, v)| v)
            .collect();
        assert_eq!(traceparents, [&Bytes::from(TRACEPARENT)]);
        let payment = ProducerRecord {
            topic: "payments".into(),
            key: bill.key.clone(),
            value: Some(Bytes::from_static(br#"{"detail-type":"PaymentCaptured"}"#)),
            headers: vec![],
            timestamp_ms: None,
            partition: None,
        }
        .caused_by(&bill);
        producer.send_record(payment).await.unwrap().await.unwrap();
    }

    let lines = |args: &[&str]| -> (bool, Vec<Value>) {
        let out = brook_cli(&b, args, None);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let json = stdout
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect();
        (out.status.success(), json)
    };
    let mut chain = Vec::new();
    eventually("the payment of o-1 to be stored", async || {
        chain = lines(&["trace", "c-1", "--json"]).1;
        chain.len() == 3
    })
    .await;
    let places: Vec<(&str, &str)> = chain
        .iter()
        .map(|r| (r["topic"].as_str().unwrap(), r["key"].as_str().unwrap()))
        .collect();
    assert_eq!(
        places,
        [("events", "o-1"), ("billing", "o-1"), ("payments", "o-1")],
        "{chain:?}"
    );
    let times: Vec<i64> = chain
        .iter()
        .map(|r| r["timestamp_ms"].as_i64().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] <= w[1]),
        "time order: {times:?}"
    );
    let source = &chain[0];
    let via = format!(
        "rule bill-placed from events/{}@{}",
        source["partition"], source["offset"]
    );
    assert_eq!(chain[1]["via"], via.as_str());
    assert_eq!(chain[2]["via"], "", "a handler's record, not a rule's");
    assert!(
        chain
            .iter()
            .all(|r| r["headers"]["correlation-id"] == "c-1")
    );

    let (ok, narrowed) = lines(&["trace", "c-1", "--json", "--topics", "events,payments"]);
    assert!(ok);
    let topics: Vec<&str> = narrowed
        .iter()
        .map(|r| r["topic"].as_str().unwrap())
        .collect();
    assert_eq!(topics, ["events", "payments"]);

    let text = brook_cli(&b, &["trace", "c-1"], None);
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(text.contains("rule bill-placed from events/"), "{text}");
    assert!(!text.contains("o-2"), "{text}");

    let (found, none) = lines(&["trace", "c-404", "--json"]);
    assert!(
        !found && none.is_empty(),
        "an unknown id exits 1 with nothing"
    );
}
