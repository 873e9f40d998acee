//! Distributed tracing across the broker, against a real broker exporting
//! over OTLP to a collector stub: the seed scenario's order is one trace
//! from the service that places it, through the broker's produce and the
//! rule that routes it, to the inventory and billing services that handle
//! it and what they publish in turn.

use std::collections::BTreeSet;
use std::time::Duration;

use brook_client::proto::QueueSettings;
use brook_client::{
    ConsumerConfig, ProducerConfig, ProducerRecord, QueueConsumerConfig, StartFrom,
};
use brook_protocol::v1;
use brook_tests::otlp::{Collector, SeenSpan, hex};
use brook_tests::queue::client;
use brook_tests::{Broker, create_topic, eventually};
use bytes::Bytes;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use tracing::Instrument;
use tracing_subscriber::layer::SubscriberExt;

fn event(id: &str, kind: &str) -> ProducerRecord {
    ProducerRecord {
        topic: "events".into(),
        key: Some(Bytes::from(id.to_string())),
        value: Some(Bytes::from(format!(
            r#"{{"source":"order-service","detail-type":"{kind}","detail":{{"orderId":"{id}"}}}}"#
        ))),
        ..Default::default()
    }
}

/// The application's spans (the services run in this process) as the
/// collector would show them.
fn services_spans(exporter: &InMemorySpanExporter) -> Vec<SeenSpan> {
    let spans = exporter.get_finished_spans().unwrap();
    spans
        .into_iter()
        .map(|s| SeenSpan {
            service: "order-service".into(),
            name: s.name.to_string(),
            trace_id: s.span_context.trace_id().to_string(),
            span_id: s.span_context.span_id().to_string(),
            parent_id: match s.parent_span_id {
                opentelemetry::trace::SpanId::INVALID => String::new(),
                id => id.to_string(),
            },
            links: s
                .links
                .iter()
                .map(|l| l.span_context.span_id().to_string())
                .collect(),
            attributes: vec![],
        })
        .collect()
}

fn one<'a>(spans: &'a [SeenSpan], what: &str, f: impl Fn(&SeenSpan) -> bool) -> &'a SeenSpan {
    let found: Vec<&SeenSpan> = spans.iter().filter(|s| f(s)).collect();
    assert_eq!(
        found.len(),
        1,
        "one {what} span, found {found:#?} among {spans:#?}"
    );
    found[0]
}

/// The seed scenario: order-service publishes OrderPlaced (o-1) and
/// OrderCancelled (o-2) to `events`; rules route OrderPlaced to inventory
/// and billing and OrderCancelled to inventory only; inventory consumes as
/// a queue group with a dead-letter topic, billing as a consumer group
/// that publishes a payment caused by each bill.
///
/// One trace holds o-1's path: place order → publish events → (broker)
/// produce events and route placed → process inventory, process billing →
/// publish payments. o-2 is a trace of its own, and its dead-lettered
/// record still names it. A traced admin call's broker span is the child
/// of the caller's span, and its failure's JSON log line carries the ids.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_orders_spans_form_one_trace_across_producer_broker_rule_and_consumers() {
    let exporter = InMemorySpanExporter::default();
    let provider = SdkTracerProvider::builder()
        .with_simple_exporter(exporter.clone())
        .with_resource(
            Resource::builder()
                .with_service_name("order-service")
                .build(),
        )
        .build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("services"));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(otel)).unwrap();

    let collector = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("brook.log");
    let endpoint = collector.endpoint();
    let b = Broker::spawn_logged(
        &dir.path().join("data"),
        &["--otlp-endpoint", &endpoint, "--log-format", "json"],
        &log,
    );
    b.wait_serving().await;
    for (topic, partitions) in [
        ("events", 2),
        ("inventory", 1),
        ("billing", 1),
        ("payments", 1),
    ] {
        create_topic(&b, topic, partitions).await;
    }
    let c = client(&b).await;
    let admin = c.admin();
    for (name, kind, targets) in [
        ("placed", "OrderPlaced", vec!["inventory", "billing"]),
        ("cancelled", "OrderCancelled", vec!["inventory"]),
    ] {
        admin
            .create_rule(v1::RuleDefinition {
                name: name.into(),
                source_topic: "events".into(),
                event_pattern: format!(r#"{{"detail-type":["{kind}"]}}"#),
                targets: targets.into_iter().map(String::from).collect(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let dlq = "inventory.dead";
    let settings = QueueSettings {
        max_deliveries: Some(1),
        dlq_topic: Some(dlq.into()),
        ..Default::default()
    };
    admin
        .create_queue("inventory-service", "inventory", settings, true)
        .await
        .unwrap();

    // order-service: each order in a span of its own.
    let producer = c.producer(ProducerConfig::default());
    for (id, kind, span) in [
        ("o-1", "OrderPlaced", tracing::info_span!("place order")),
        ("o-2", "OrderCancelled", tracing::info_span!("cancel order")),
    ] {
        async {
            producer
                .send_record(event(id, kind))
                .await
                .unwrap()
                .await
                .unwrap();
            if id == "o-1" {
                // A call that fails, inside the trace: the broker logs it.
                let missing = admin.describe_topic("no-such-topic").await;
                assert!(missing.is_err());
            }
        }
        .instrument(span)
        .await;
    }

    // inventory: a queue group; it cannot handle a cancellation and nacks
    // it, which dead-letters it (max_deliveries 1).
    let mut inventory = c.queue_consumer("inventory-service", QueueConsumerConfig::default());
    for _ in 0..2 {
        let msg = tokio::time::timeout(Duration::from_secs(30), inventory.recv())
            .await
            .expect("a routed order")
            .unwrap();
        let span = msg.process_span();
        let placed = msg.key.as_deref() == Some(b"o-1");
        span.in_scope(|| match placed {
            true => msg.ack(),
            false => msg.nack("cancellations are handled elsewhere"),
        });
    }
    inventory.flush().await.unwrap();

    // billing: a consumer group that publishes a payment per bill.
    let mut billing = c
        .consumer(ConsumerConfig {
            start_from: StartFrom::Earliest,
            ..ConsumerConfig::new("billing-service", &["billing"])
        })
        .await
        .unwrap();
    let bill = tokio::time::timeout(Duration::from_secs(30), billing.recv())
        .await
        .expect("a routed bill")
        .unwrap();
    let payment = ProducerRecord {
        topic: "payments".into(),
        key: bill.key.clone(),
        value: Some(Bytes::from_static(br#"{"detail-type":"PaymentCaptured"}"#)),
        ..Default::default()
    }
    .caused_by(&bill);
    async { producer.send_record(payment).await.unwrap().await.unwrap() }
        .instrument(bill.process_span())
        .await;

    // The dead-lettered cancellation keeps the trace it was routed in.
    let mut dead = c
        .consumer(ConsumerConfig {
            start_from: StartFrom::Earliest,
            ..ConsumerConfig::new("dlq-reader", &[dlq])
        })
        .await
        .unwrap();
    let cancelled = tokio::time::timeout(Duration::from_secs(30), dead.recv())
        .await
        .expect("the dead-lettered cancellation")
        .unwrap();
    assert_eq!(cancelled.key.as_deref(), Some(&b"o-2"[..]));
    let dead_trace = cancelled
        .trace_context()
        .expect("a dead letter keeps its trace context");

    // A broker stopped by a signal exports what it still holds.
    provider.force_flush().unwrap();
    let status = tokio::task::spawn_blocking(move || b.terminate())
        .await
        .unwrap();
    assert!(status.success(), "{status:?}");
    let mut broker_spans = Vec::new();
    eventually("the broker's route spans at the collector", async || {
        broker_spans = collector.spans();
        broker_spans
            .iter()
            .filter(|s| s.name.starts_with("route "))
            .count()
            >= 2
    })
    .await;
    assert!(
        broker_spans.iter().all(|s| s.service == "brook"),
        "{broker_spans:#?}"
    );
    let mut spans = services_spans(&exporter);
    spans.extend(broker_spans);

    let root = one(&spans, "place order", |s| s.name == "place order");
    let trace = root.trace_id.clone();
    let in_trace = |name: &str| {
        let name = name.to_string();
        let trace = trace.clone();
        move |s: &SeenSpan| s.name == name && s.trace_id == trace
    };
    assert!(root.parent_id.is_empty());
    let publish = one(&spans, "publish events", in_trace("publish events"));
    assert_eq!(
        publish.parent_id, root.span_id,
        "the producer's span is the service's child"
    );
    let produce = one(&spans, "produce events", in_trace("produce events"));
    assert_eq!(produce.service, "brook");
    assert_eq!(
        produce.parent_id, publish.span_id,
        "the broker continues the record's trace"
    );
    let route = one(&spans, "route placed", in_trace("route placed"));
    assert_eq!(route.service, "brook");
    assert_eq!(
        route.parent_id, publish.span_id,
        "the rule routes the published record"
    );
    let inventory = one(&spans, "process inventory", in_trace("process inventory"));
    assert_eq!(
        inventory.parent_id, route.span_id,
        "inventory continues from the rule"
    );
    let billing = one(&spans, "process billing", in_trace("process billing"));
    assert_eq!(
        billing.parent_id, route.span_id,
        "billing continues from the rule"
    );
    let payment = one(&spans, "publish payments", in_trace("publish payments"));
    assert_eq!(
        payment.parent_id, billing.span_id,
        "the handler's publish is its child"
    );

    // The traced admin call: the broker's RPC span is the caller's child.
    let rpc = one(&spans, "DescribeTopic", |s| {
        s.name == "brook.v1.Topics/DescribeTopic"
            && s.attributes.iter().any(|a| a == "topic=no-such-topic")
    });
    assert_eq!(rpc.trace_id, trace);
    assert_eq!(
        rpc.parent_id, root.span_id,
        "gRPC metadata carries the context"
    );
    assert!(
        rpc.attributes.iter().any(|a| a == "code=NOT_FOUND"),
        "{rpc:?}"
    );
    let log = std::fs::read_to_string(&log).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("no-such-topic"))
        .unwrap_or_else(|| panic!("the failure is logged: {log}"));
    let line: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(line["trace_id"], trace.as_str(), "{line}");
    assert_eq!(line["span_id"], rpc.span_id.as_str(), "{line}");

    // o-2 is a trace of its own: the cancellation's route span and its
    // dead letter are in it, none of o-1's.
    let cancel = one(&spans, "cancel order", |s| s.name == "cancel order");
    assert_ne!(cancel.trace_id, trace);
    let routed = one(&spans, "route cancelled", |s| s.name == "route cancelled");
    assert_eq!(routed.trace_id, cancel.trace_id);
    use opentelemetry::trace::TraceContextExt;
    let dead_span = dead_trace.span();
    let dead_sc = dead_span.span_context();
    assert_eq!(hex(&dead_sc.trace_id().to_bytes()), cancel.trace_id);
    assert_eq!(
        dead_sc.span_id().to_string(),
        routed.span_id,
        "the dead letter names the route span"
    );
}

/// The seed scenario as a program (client/examples/traced_orders.rs),
/// exporting its spans over OTLP like any instrumented application, beside
/// a broker exporting to the same collector: it passes its own checks, and
/// every order it names is one trace holding the example's spans and the
/// broker's (produce, route) with the handlers' spans after the rule's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_traced_orders_example_shows_each_order_as_one_trace_with_the_brokers_spans() {
    let example = brook_tests::client_example("traced_orders");
    let collector = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let endpoint = collector.endpoint();
    let b = Broker::start(dir.path(), &["--otlp-endpoint", &endpoint]).await;
    let url = format!("http://{}", b.grpc);
    let out = tokio::task::spawn_blocking({
        let endpoint = endpoint.clone();
        move || {
            std::process::Command::new(example)
                .env("BROOK_URL", url)
                .env("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
                .output()
        }
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && stdout.contains("all checks passed"),
        "example failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let traces: Vec<(String, String)> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("order "))
        .filter_map(|l| l.split_once(": trace "))
        .map(|(o, t)| (o.to_string(), t.to_string()))
        .collect();
    assert_eq!(traces.len(), 6, "{stdout}");
    let status = tokio::task::spawn_blocking(move || b.terminate())
        .await
        .unwrap();
    assert!(status.success());

    let spans = collector.spans();
    for (order, trace) in &traces {
        let names: BTreeSet<(&str, &str)> = spans
            .iter()
            .filter(|s| &s.trace_id == trace)
            .map(|s| {
                (
                    s.service.as_str(),
                    s.name.split('-').next().unwrap_or_default(),
                )
            })
            .collect();
        for expected in [
            ("traced-orders", "place order"),
            ("traced-orders", "publish events"),
            ("brook", "produce events"),
            ("brook", "route placed"),
            ("traced-orders", "process inventory"),
            ("traced-orders", "process billing"),
            ("traced-orders", "publish payments"),
        ] {
            assert!(
                names.contains(&expected),
                "{order} {trace}: {expected:?} in {names:?}"
            );
        }
    }
}

/// A Kafka client that puts W3C trace context in its records' headers (as
/// OpenTelemetry's Kafka instrumentations do; kcat here): the broker's
/// produce span continues that trace, the rule's span too, and the Kafka
/// request itself is a span of the broker's own (the protocol carries no
/// context).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_producers_record_trace_context_is_continued_by_the_broker() {
    let collector = Collector::start().await;
    let dir = tempfile::tempdir().unwrap();
    let endpoint = collector.endpoint();
    let b = Broker::start(dir.path(), &["--otlp-endpoint", &endpoint]).await;
    create_topic(&b, "events", 1).await;
    create_topic(&b, "billing", 1).await;
    let c = client(&b).await;
    c.admin()
        .create_rule(v1::RuleDefinition {
            name: "bill".into(),
            source_topic: "events".into(),
            event_pattern: r#"{"detail-type":["OrderPlaced"]}"#.into(),
            targets: vec!["billing".into()],
            ..Default::default()
        })
        .await
        .unwrap();
    let (trace, parent) = ("0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331");
    let traceparent = format!("traceparent=00-{trace}-{parent}-01");
    let mut kcat = std::process::Command::new("kcat")
        .args([
            "-b",
            &b.kafka_bootstrap(),
            "-P",
            "-t",
            "events",
            "-k",
            "o-9",
        ])
        .args(["-H", &traceparent])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("kcat (scripts/kafka-clients.sh installs it)");
    use std::io::Write;
    let mut stdin = kcat.stdin.take().unwrap();
    stdin
        .write_all(br#"{"detail-type":"OrderPlaced"}"#)
        .unwrap();
    drop(stdin);
    assert!(kcat.wait().unwrap().success());
    let mut billing = c
        .consumer(ConsumerConfig {
            start_from: StartFrom::Earliest,
            ..ConsumerConfig::new("billing", &["billing"])
        })
        .await
        .unwrap();
    let bill = tokio::time::timeout(Duration::from_secs(30), billing.recv())
        .await
        .expect("the routed record")
        .unwrap();
    let status = tokio::task::spawn_blocking(move || b.terminate())
        .await
        .unwrap();
    assert!(status.success());

    let spans = collector.spans();
    let produce = one(&spans, "produce events", |s| s.name == "produce events");
    assert_eq!(
        (produce.trace_id.as_str(), produce.parent_id.as_str()),
        (trace, parent)
    );
    let route = one(&spans, "route bill", |s| s.name == "route bill");
    assert_eq!(
        (route.trace_id.as_str(), route.parent_id.as_str()),
        (trace, parent)
    );
    let routed = bill.trace_context().expect("the routed record's context");
    use opentelemetry::trace::TraceContextExt;
    assert_eq!(
        routed.span().span_context().span_id().to_string(),
        route.span_id
    );
    assert!(
        spans
            .iter()
            .any(|s| s.name == "kafka Produce" && s.parent_id.is_empty()),
        "{spans:#?}"
    );
}
