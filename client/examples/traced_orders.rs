//! The seed scenario with routing rules and one trace per order.
//!
//! order-service publishes `OrderPlaced` (and, for one order in three,
//! `OrderCancelled`) to an `events` topic, each order inside a span of its
//! own. Two routing rules inside the broker send OrderPlaced to the
//! `inventory` and `billing` topics and OrderCancelled to `inventory` only.
//! **inventory** consumes as a queue group with a dead-letter topic: it
//! reserves stock for a placed order and refuses a cancellation (this
//! demo's inventory cannot release stock), which lands in the dead-letter
//! topic. **billing** is a consumer group that publishes `PaymentCaptured`
//! to `payments` for each bill, caused by it (same correlation id, the
//! handler's trace).
//!
//! Spans go over OTLP to `OTEL_EXPORTER_OTLP_ENDPOINT` (default
//! `http://localhost:4317`, e.g. Jaeger or an OpenTelemetry Collector).
//! Start the broker with the same endpoint and each order is one trace:
//! place order → publish events → produce events (broker) → route (broker)
//! → process inventory / process billing → publish payments. The example
//! prints each order's trace id, checks what it relies on (every event
//! routed exactly where its rule says, the refused cancellations and only
//! those dead-lettered, every routed record in its order's trace) and
//! exits non-zero if any of it fails.
//!
//! ```text
//! brook serve --otlp-endpoint http://localhost:4317                       # one terminal
//! cargo run -p brook-client --example traced_orders                        # another (BROOK_URL to point elsewhere)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use brook_client::proto::{QueueSettings, RuleDefinition};
use brook_client::{
    Client, ConsumerConfig, ConsumerRecord, ProducerConfig, ProducerRecord, QueueConsumerConfig,
    StartFrom,
};
use bytes::Bytes;
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;

const ORDERS: usize = 6;
const WAIT: Duration = Duration::from_secs(30);

type Error = Box<dyn std::error::Error + Send + Sync>;

fn event(topic: &str, order: &str, kind: &str) -> ProducerRecord {
    ProducerRecord {
        topic: topic.into(),
        key: Some(Bytes::from(order.to_string())),
        value: Some(Bytes::from(format!(
            r#"{{"source":"order-service","detail-type":"{kind}","detail":{{"orderId":"{order}"}}}}"#
        ))),
        ..Default::default()
    }
}

fn trace_of(record: &ConsumerRecord) -> String {
    record
        .trace_context()
        .map(|cx| cx.span().span_context().trace_id().to_string())
        .unwrap_or_default()
}

fn key_of(record: &ConsumerRecord) -> String {
    String::from_utf8_lossy(record.key.as_deref().unwrap_or_default()).into_owned()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result<(), Error> {
    // The application's tracing: spans of `tracing`, exported over OTLP.
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .build()?;
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name("traced-orders")
                .build(),
        )
        .build();
    let otel = tracing_opentelemetry::layer().with_tracer(provider.tracer("traced-orders"));
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(otel))?;

    let result = run().await;
    // Export what the batch still holds before exiting.
    tokio::task::spawn_blocking(move || provider.shutdown()).await??;
    result
}

async fn run() -> Result<(), Error> {
    let url = std::env::var("BROOK_URL").unwrap_or_else(|_| "http://127.0.0.1:9292".into());
    let client = Client::connect(&url).await?;
    let admin = client.admin();
    // Topics, rules and groups of this run's own: a broker with data works.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let name = |what: &str| format!("{what}-{run}");
    let (events, inventory, billing, payments) = (
        name("events"),
        name("inventory"),
        name("billing"),
        name("payments"),
    );
    for topic in [&events, &inventory, &billing, &payments] {
        admin.create_topic(topic, 2).await?;
    }
    for (rule, kind, targets) in [
        ("placed", "OrderPlaced", vec![&inventory, &billing]),
        ("cancelled", "OrderCancelled", vec![&inventory]),
    ] {
        admin
            .create_rule(RuleDefinition {
                name: name(rule),
                source_topic: events.clone(),
                event_pattern: format!(r#"{{"detail-type":["{kind}"]}}"#),
                targets: targets.into_iter().cloned().collect(),
                ..Default::default()
            })
            .await?;
    }
    let dead_letters = name("inventory-dlq");
    let settings = QueueSettings {
        max_deliveries: Some(1),
        dlq_topic: Some(dead_letters.clone()),
        ..Default::default()
    };
    admin
        .create_queue(&name("inventory"), &inventory, settings, true)
        .await?;

    // order-service: one span, one trace, per order.
    let producer = client.producer(ProducerConfig::default());
    let mut traces = BTreeMap::new();
    let mut cancelled = BTreeSet::new();
    for i in 1..=ORDERS {
        let order = format!("o-{i}");
        let span = tracing::info_span!("place order", order = %order);
        let trace = span.context().span().span_context().trace_id().to_string();
        async {
            producer
                .send_record(event(&events, &order, "OrderPlaced"))
                .await?
                .await?;
            if i % 3 == 0 {
                producer
                    .send_record(event(&events, &order, "OrderCancelled"))
                    .await?
                    .await?;
                cancelled.insert(order.clone());
            }
            Ok::<_, Error>(())
        }
        .instrument(span)
        .await?;
        println!("order {order}: trace {trace}");
        traces.insert(order, trace);
    }

    // inventory: a queue group; a cancellation is refused (dead-lettered).
    let mut queue = client.queue_consumer(&name("inventory"), QueueConsumerConfig::default());
    let mut reserved = BTreeSet::new();
    let mut wrong_trace = Vec::new();
    for _ in 0..ORDERS + cancelled.len() {
        let msg = tokio::time::timeout(WAIT, queue.recv()).await??;
        let (order, trace) = (key_of(&msg), trace_of(&msg));
        if traces.get(&order) != Some(&trace) {
            wrong_trace.push(format!("{inventory} {order}"));
        }
        let span = msg.process_span();
        let placed = msg
            .value
            .as_deref()
            .is_some_and(|v| String::from_utf8_lossy(v).contains("OrderPlaced"));
        span.in_scope(|| match placed {
            true => {
                reserved.insert(order);
                msg.ack();
            }
            false => msg.nack("this inventory cannot release stock"),
        });
    }
    queue.flush().await?;

    // billing: a consumer group; each bill causes a payment.
    let mut bills = client
        .consumer(ConsumerConfig {
            start_from: StartFrom::Earliest,
            ..ConsumerConfig::new(name("billing"), &[billing.as_str()])
        })
        .await?;
    let mut billed = BTreeSet::new();
    for _ in 0..ORDERS {
        let bill = tokio::time::timeout(WAIT, bills.recv()).await??;
        let (order, trace) = (key_of(&bill), trace_of(&bill));
        if traces.get(&order) != Some(&trace) {
            wrong_trace.push(format!("{billing} {order}"));
        }
        let payment = ProducerRecord {
            topic: payments.clone(),
            key: bill.key.clone(),
            value: Some(Bytes::from_static(br#"{"detail-type":"PaymentCaptured"}"#)),
            ..Default::default()
        }
        .caused_by(&bill);
        async { producer.send_record(payment).await?.await }
            .instrument(bill.process_span())
            .await?;
        billed.insert(order);
    }

    // The dead letters: exactly the cancellations.
    let mut dlq = client
        .consumer(ConsumerConfig {
            start_from: StartFrom::Earliest,
            ..ConsumerConfig::new(name("dlq-reader"), &[dead_letters.as_str()])
        })
        .await?;
    let mut dead = BTreeSet::new();
    while dead.len() < cancelled.len() {
        let r = tokio::time::timeout(WAIT, dlq.recv()).await??;
        if traces.get(&key_of(&r)) != Some(&trace_of(&r)) {
            wrong_trace.push(format!("{dead_letters} {}", key_of(&r)));
        }
        dead.insert(key_of(&r));
    }

    let all: BTreeSet<String> = traces.keys().cloned().collect();
    println!(
        "inventory reserved {}, billing billed {}, dead-lettered {:?}",
        reserved.len(),
        billed.len(),
        dead
    );
    let mut failed = Vec::new();
    if reserved != all {
        failed.push(format!("inventory reserved {reserved:?}, not {all:?}"));
    }
    if billed != all {
        failed.push(format!("billing billed {billed:?}, not {all:?}"));
    }
    if dead != cancelled {
        failed.push(format!(
            "dead letters {dead:?}, not the cancellations {cancelled:?}"
        ));
    }
    if !wrong_trace.is_empty() {
        failed.push(format!(
            "records outside their order's trace: {wrong_trace:?}"
        ));
    }
    if !failed.is_empty() {
        return Err(failed.join("; ").into());
    }
    println!("all checks passed");
    Ok(())
}
