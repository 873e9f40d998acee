//! The seed example: an order service, two queue groups and a consumer group.
//!
//! The order service publishes `OrderPlaced` events (and `OrderCancelled` for
//! every fifth order) keyed by order id, so each order's events stay in one
//! partition, in order. Every event goes through a **contract**: a JSON
//! Schema registered as the topic's value subject, checked by the service
//! before it sends (`JsonSerializer`), by the broker before it stores (the
//! topic is bound in `full` mode), and by every service when it reads
//! (`JsonDeserializer`). Three services react, each at its own pace:
//! - **inventory**, a queue group (key-ordered): reserves the items of each
//!   order; an order without items is malformed, its handler fails, and
//!   after 3 tries it lands in the dead-letter topic while the rest flow;
//! - **billing**, a queue group in key-ordered mode: 4 competing consumers on
//!   a 2-partition topic (more consumers than partitions), deliberately slow,
//!   never two events of one order at once and in order;
//! - **shipping**, a consumer group with committed offsets.
//!
//! The example checks what an event-driven architecture relies on and exits
//! non-zero if any of it fails:
//! - each service handles every event exactly once (inventory: every
//!   well-formed one), and the malformed orders, only those, are in
//!   inventory's dead-letter topic after exactly 3 deliveries;
//! - per order, OrderPlaced comes before OrderCancelled, in every service;
//! - billing's lag grows while it falls behind, then drains;
//! - a consumer restarted after a commit resumes exactly where it committed;
//! - an event that breaks the contract never leaves the order service, and
//!   no service reads one that breaks it.
//!
//! Each run uses a topic and groups of its own (`orders-demo-<run>`,
//! `billing-<run>`, …), so it works on a broker that already holds data,
//! including an earlier run's. A failed check is named in the error.
//!
//! ```text
//! cargo run --release -p brook -- serve                    # in one terminal
//! cargo run --release -p brook-client --example orders     # in another (BROOK_URL to point elsewhere)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brook_client::{
    Client, ConsumerConfig, ContractError, Failure, JsonDeserializer, JsonSerializer, Producer,
    ProducerConfig, ProducerRecord, QueueMessage, proto::QueueSettings,
};
use tokio::sync::watch;

const ORDERS: u32 = 300;

/// Orders 0, 60, 120, ... (of the first `ORDERS`) carry no items: inventory cannot reserve them.
const MALFORMED_EVERY: u32 = 60;

/// Deliveries inventory gives an order before it is dead-lettered.
const INVENTORY_TRIES: u32 = 3;

/// The event contract: registered as `<topic>-value`, the topic bound to it.
const ORDER_EVENT_SCHEMA: &str = r#"{
  "$schema": "http://json-schema.org/draft-07/schema#",
  "title": "OrderEvent",
  "type": "object",
  "properties": {
    "type": {"enum": ["OrderPlaced", "OrderCancelled"]},
    "aggregate_id": {"type": "string", "pattern": "^order-[0-9]+$"},
    "payload": {"type": "object"},
    "occurred_at": {"type": "integer", "minimum": 0}
  },
  "required": ["type", "aggregate_id", "payload", "occurred_at"],
  "additionalProperties": false
}"#;

/// An order event, as the order service writes it and every service reads it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct OrderEvent {
    #[serde(rename = "type")]
    kind: String,
    aggregate_id: String,
    payload: serde_json::Value,
    occurred_at: u64,
}

/// What one group has seen: (order, event type) pairs, and the last event type per order.
#[derive(Default)]
struct Seen {
    events: BTreeSet<(String, String)>,
    duplicates: u64,
    out_of_order: u64,
    /// Events that broke the contract on receipt.
    invalid: u64,
}

fn event(kind: &str, order: u32) -> OrderEvent {
    let payload = match kind {
        "OrderPlaced" if order.is_multiple_of(MALFORMED_EVERY) && order < ORDERS => {
            serde_json::json!({"customer": format!("c-{}", order % 17)})
        }
        "OrderPlaced" => serde_json::json!({
            "customer": format!("c-{}", order % 17),
            "items": [{"sku": format!("sku-{}", order % 23), "qty": 1 + order % 3}],
            "total": f64::from(10 + order % 90) + 0.5,
        }),
        _ => serde_json::json!({"reason": "customer request"}),
    };
    OrderEvent {
        kind: kind.to_string(),
        aggregate_id: format!("order-{order:04}"),
        payload,
        occurred_at: std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis() as u64,
    }
}

async fn publish(
    producer: &Producer,
    contract: &JsonSerializer<OrderEvent>,
    topic: &str,
    kind: &str,
    orders: impl Iterator<Item = u32>,
) -> Result<u64, Box<dyn std::error::Error>> {
    let mut deliveries = Vec::new();
    for order in orders {
        let event = event(kind, order);
        let record = ProducerRecord {
            topic: topic.into(),
            key: Some(event.aggregate_id.clone().into()),
            // Checked against the schema here, framed with its id.
            value: Some(contract.serialize(&event)?),
            headers: vec![
                ("type".into(), kind.to_string().into()),
                ("correlation-id".into(), format!("corr-{order}").into()),
            ],
            ..Default::default()
        };
        deliveries.push(producer.send_record(record).await?);
    }
    producer.flush().await?;
    for d in &mut deliveries {
        d.await?;
    }
    Ok(deliveries.len() as u64)
}

/// One group's consumer: records what it sees until told to stop, then commits and leaves.
async fn consume(
    client: Client,
    topic: String,
    group: String,
    delay: Duration,
    seen: Arc<Mutex<Seen>>,
    mut stop: watch::Receiver<bool>,
) -> brook_client::Result<()> {
    let contract = JsonDeserializer::<OrderEvent>::new(&client);
    let config = ConsumerConfig {
        auto_commit: Some(Duration::from_millis(200)),
        client_id: format!("{group}-service"),
        ..ConsumerConfig::new(&group, &[&topic])
    };
    let mut consumer = client.consumer(config).await?;
    loop {
        let record = tokio::select! {
            r = consumer.recv() => r?,
            _ = stop.wait_for(|s| *s) => break,
        };
        match contract
            .deserialize(record.value.as_deref().unwrap_or_default())
            .await
        {
            Ok(event) => note(&seen, event.kind, event.aggregate_id, false),
            Err(e) => {
                eprintln!("{group}: {}/{}: {e}", record.partition, record.offset);
                seen.lock().unwrap().invalid += 1;
            }
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await; // billing's slow invoice generation
        }
    }
    consumer.close().await
}

/// Notes an event a service handled; a cancellation of an order it never
/// handled is out of order, unless that order could not be (`dead`).
fn note(seen: &Mutex<Seen>, kind: String, id: String, dead: bool) {
    let mut s = seen.lock().unwrap();
    if kind == "OrderCancelled" && !dead && !s.events.contains(&(id.clone(), "OrderPlaced".into()))
    {
        s.out_of_order += 1;
    }
    if !s.events.insert((id, kind)) {
        s.duplicates += 1;
    }
}

/// A queue-group service: `consumers` competing consumers, each handling
/// up to 4 events at once with `handle`, until told to stop. An event that
/// breaks the contract is rejected to the dead-letter topic unhandled
/// (and counted in `seen`).
async fn serve_queue<F>(
    client: Client,
    group: String,
    consumers: usize,
    handle: F,
    delay: Duration,
    seen: Arc<Mutex<Seen>>,
    stop: watch::Receiver<bool>,
) -> brook_client::Result<()>
where
    F: Fn(OrderEvent) -> Result<(), Failure> + Clone + Send + Sync + 'static,
{
    let contract = Arc::new(JsonDeserializer::<OrderEvent>::new(&client));
    let mut running = Vec::new();
    for _ in 0..consumers {
        let consumer = client.queue_consumer(&group, Default::default());
        let (handle, mut stop) = (handle.clone(), stop.clone());
        let (contract, seen) = (Arc::clone(&contract), Arc::clone(&seen));
        running.push(tokio::spawn(consumer.run(
            4,
            move |msg: Arc<QueueMessage>| {
                let (handle, contract, seen) =
                    (handle.clone(), Arc::clone(&contract), Arc::clone(&seen));
                async move {
                    let value = msg.value.as_deref().unwrap_or_default();
                    let result = match contract.deserialize(value).await {
                        Ok(event) => handle(event),
                        Err(e) => {
                            seen.lock().unwrap().invalid += 1;
                            Err(Failure::reject(e))
                        }
                    };
                    if !delay.is_zero() {
                        tokio::time::sleep(delay).await; // billing's slow invoice generation
                    }
                    result
                }
            },
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        )));
    }
    for r in running {
        r.await.expect("a queue consumer panicked")?;
    }
    Ok(())
}

fn count(seen: &Arc<Mutex<Seen>>) -> u64 {
    seen.lock().unwrap().events.len() as u64
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("BROOK_URL").unwrap_or_else(|_| "http://127.0.0.1:9292".into());
    let client = Client::connect(&url).await?;
    // A topic and groups of this run's own: data already on the broker
    // (the Quick start's, an earlier run's) cannot change the counts.
    let run = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis();
    let topic = format!("orders-demo-{run}");
    let group = |role: &str| format!("{role}-{run}");
    client.admin().create_topic(&topic, 2).await?;
    // The contract: registered (the same schema keeps its id across runs)
    // and bound, so the broker checks every event before it stores it.
    let subject = format!("{topic}-value");
    let contract =
        JsonSerializer::<OrderEvent>::register(&client, &subject, ORDER_EVENT_SCHEMA).await?;
    client
        .admin()
        .set_topic_schema(&topic, &subject, "", "full")
        .await?;
    println!(
        "events follow schema id {} ({subject}), checked by the service, the broker and every reader",
        contract.schema_id()
    );
    // Key-ordered too: an order's cancellation must not overtake its
    // placement (a retried one holds its order's later events back).
    let inventory_settings = QueueSettings {
        key_ordered: Some(true),
        max_deliveries: Some(INVENTORY_TRIES),
        backoff_initial_ms: Some(50),
        backoff_multiplier: Some(1.0),
        ..Default::default()
    };
    let inventory = client
        .admin()
        .create_queue(&group("inventory"), &topic, inventory_settings, true)
        .await?;
    let dlq = inventory
        .settings
        .unwrap_or_default()
        .dlq_topic()
        .to_string();
    let billing_settings = QueueSettings {
        key_ordered: Some(true),
        ..Default::default()
    };
    client
        .admin()
        .create_queue(&group("billing"), &topic, billing_settings, true)
        .await?;
    println!(
        "topic {topic}; queue groups inventory-{run} (dead letters to {dlq}) and billing-{run}; consumer group shipping-{run}"
    );
    let seen: BTreeMap<&str, Arc<Mutex<Seen>>> = ["inventory", "billing", "shipping"]
        .into_iter()
        .map(|role| (role, Arc::new(Mutex::new(Seen::default()))))
        .collect();
    let mut stops = BTreeMap::new();
    let mut tasks = BTreeMap::new();
    // Inventory: an order without items cannot be reserved; failing it
    // sends it back, and after 3 tries to the dead-letter topic.
    let (stop_tx, stop_rx) = watch::channel(false);
    let s = Arc::clone(&seen["inventory"]);
    let reserve = move |event: OrderEvent| {
        let (kind, id) = (event.kind, event.aggregate_id);
        if kind == "OrderPlaced" && event.payload["items"].as_array().is_none() {
            return Err(Failure::retry(format!("malformed order {id}: no items")));
        }
        // Cancelling an order that was dead-lettered releases nothing.
        let number: u32 = id.trim_start_matches("order-").parse().unwrap_or(1);
        let dead = number.is_multiple_of(MALFORMED_EVERY) && number < ORDERS;
        note(&s, kind, id, dead);
        Ok(())
    };
    let c = client.clone();
    tasks.insert(
        "inventory",
        tokio::spawn(serve_queue(
            c,
            group("inventory"),
            2,
            reserve,
            Duration::ZERO,
            Arc::clone(&seen["inventory"]),
            stop_rx,
        )),
    );
    stops.insert("inventory", stop_tx);
    // Billing: 4 competing consumers on 2 partitions, slow; key-ordered
    // mode keeps each order's events one at a time and in order.
    let (stop_tx, stop_rx) = watch::channel(false);
    let s = Arc::clone(&seen["billing"]);
    let invoice = move |event: OrderEvent| {
        note(&s, event.kind, event.aggregate_id, false);
        Ok(())
    };
    let c = client.clone();
    tasks.insert(
        "billing",
        tokio::spawn(serve_queue(
            c,
            group("billing"),
            4,
            invoice,
            Duration::from_millis(25),
            Arc::clone(&seen["billing"]),
            stop_rx,
        )),
    );
    stops.insert("billing", stop_tx);
    // Shipping: a consumer group.
    let (stop_tx, stop_rx) = watch::channel(false);
    tasks.insert(
        "shipping",
        tokio::spawn(consume(
            client.clone(),
            topic.clone(),
            group("shipping"),
            Duration::ZERO,
            Arc::clone(&seen["shipping"]),
            stop_rx,
        )),
    );
    stops.insert("shipping", stop_tx);
    // Let the shipping member join before the orders flow.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let producer = client.producer(ProducerConfig::default());
    let mut expected = publish(&producer, &contract, &topic, "OrderPlaced", 0..ORDERS).await?;
    expected += publish(
        &producer,
        &contract,
        &topic,
        "OrderCancelled",
        (0..ORDERS).step_by(5),
    )
    .await?;
    // An event type the contract does not know never leaves the service.
    let kept_back = match contract.serialize(&event("OrderShipped", 1)) {
        Err(ContractError::Invalid { path, .. }) => {
            println!(
                "the contract kept an OrderShipped event (at {path}) from leaving the service"
            );
            true
        }
        _ => false,
    };
    let malformed = u64::from(ORDERS.div_ceil(MALFORMED_EVERY));
    println!("order service published {expected} events ({malformed} malformed orders)");
    let wanted = |role: &str, expected: u64| match role {
        "inventory" => expected - malformed,
        _ => expected,
    };

    // Watch billing's lag grow and drain while the others keep up.
    let (mut billing_max, deadline) = (0u64, Instant::now() + Duration::from_secs(120));
    loop {
        let lag = client.admin().describe_queue(&group("billing")).await?.lag;
        let dead = client
            .admin()
            .describe_queue(&group("inventory"))
            .await?
            .dlq_depth;
        billing_max = billing_max.max(lag);
        let counts: Vec<u64> = seen.values().map(count).collect();
        println!(
            "  handled {counts:?} of {expected}; billing lag {lag}; inventory dead letters {dead}"
        );
        if seen
            .iter()
            .all(|(role, s)| count(s) >= wanted(role, expected))
            && dead >= malformed
        {
            break;
        }
        if Instant::now() > deadline {
            return Err("the services did not catch up within 120 s".into());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Restart shipping: it must resume exactly after its last commit.
    stops["shipping"].send(true)?;
    tasks
        .remove("shipping")
        .ok_or("no shipping task")?
        .await??;
    let before = count(&seen["shipping"]);
    let added = publish(
        &producer,
        &contract,
        &topic,
        "OrderPlaced",
        ORDERS..ORDERS + 20,
    )
    .await?;
    expected += added;
    let (stop_tx, stop_rx) = watch::channel(false);
    let restarted = tokio::spawn(consume(
        client.clone(),
        topic.clone(),
        group("shipping"),
        Duration::ZERO,
        Arc::clone(&seen["shipping"]),
        stop_rx,
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen
        .iter()
        .any(|(role, s)| count(s) < wanted(role, expected))
    {
        if Instant::now() > deadline {
            return Err(format!("the last {added} orders were not consumed within 60 s").into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_tx.send(true)?;
    restarted.await??;
    for (role, stop) in &stops {
        if *role != "shipping" {
            stop.send(true)?;
        }
    }
    for (_, t) in tasks {
        t.await??;
    }

    let mut failed = Vec::new();
    for (role, s) in &seen {
        let s = s.lock().map_err(|_| "a consumer panicked")?;
        println!(
            "{role}: {} events, {} duplicates, {} cancellations before their order",
            s.events.len(),
            s.duplicates,
            s.out_of_order
        );
        let want = wanted(role, expected);
        if s.events.len() as u64 != want {
            failed.push(format!("{role} saw {} of {want} events", s.events.len()));
        }
        if s.invalid > 0 {
            failed.push(format!(
                "{role} read {} events breaking the contract",
                s.invalid
            ));
        }
        if s.duplicates > 0 {
            failed.push(format!("{role} saw {} events twice", s.duplicates));
        }
        if s.out_of_order > 0 {
            failed.push(format!(
                "{role} saw {} cancellations before their order",
                s.out_of_order
            ));
        }
    }
    let mut final_lag = Vec::new();
    for role in ["inventory", "billing"] {
        final_lag.push(client.admin().describe_queue(&group(role)).await?.lag);
    }
    final_lag.push(
        client
            .consumer_lag(&group("shipping"))
            .await?
            .total_lag_records,
    );
    // The dead letters: the malformed orders, each after 3 deliveries.
    let mut dead = Vec::new();
    for p in client.admin().describe_topic(&dlq).await?.partitions {
        let mut reader = client
            .reader(&dlq, p.partition, brook_client::ReadFrom::Earliest)
            .await?;
        while reader.position() < p.log_end_offset {
            let r = reader.recv().await?;
            let header = |k: &str| {
                r.headers
                    .iter()
                    .find(|(key, _)| key == k)
                    .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
                    .unwrap_or_default()
            };
            dead.push((
                header("brook-dlq-delivery-count"),
                header("brook-dlq-reason"),
            ));
        }
    }
    println!(
        "inventory dead-lettered {} orders; the first: {:?}",
        dead.len(),
        dead.first()
    );
    if dead.len() as u64 != malformed {
        failed.push(format!(
            "{} dead letters, not the {malformed} malformed orders",
            dead.len()
        ));
    }
    if let Some(bad) = dead
        .iter()
        .find(|(n, why)| *n != INVENTORY_TRIES.to_string() || !why.contains("no items"))
    {
        failed.push(format!(
            "a dead letter after {} deliveries for {:?}",
            bad.0, bad.1
        ));
    }
    println!("billing's lag peaked at {billing_max} and drained; final lag {final_lag:?}");
    let resumed = count(&seen["shipping"]) - before;
    println!("shipping resumed after {before} events and got exactly the {resumed} new ones");
    if !kept_back {
        failed.push("the contract let an OrderShipped event through".into());
    }
    if billing_max == 0 {
        failed.push("billing never lagged".into());
    }
    if final_lag.iter().any(|l| *l != 0) {
        failed.push(format!("lag did not drain: {final_lag:?}"));
    }
    if resumed != added {
        failed.push(format!(
            "restarted shipping got {resumed} new events, not the {added} published"
        ));
    }
    if !failed.is_empty() {
        return Err(format!("checks failed: {}", failed.join("; ")).into());
    }
    println!("all checks passed (delete the demo topic with: brook topic delete {topic})");
    Ok(())
}
