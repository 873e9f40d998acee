//! The seed example: an order service and three independent consumer groups.
//!
//! The order service publishes `OrderPlaced` events (and `OrderCancelled` for
//! every fifth order) keyed by order id, so each order's events stay in one
//! partition, in order. Inventory, billing (deliberately slower) and shipping
//! each consume every event once as their own consumer group. The example
//! checks what an event-driven architecture relies on and exits non-zero if
//! any of it fails:
//! - each group sees every event exactly once;
//! - per order, OrderPlaced comes before OrderCancelled;
//! - billing's lag grows while it falls behind, then drains, while the others keep up;
//! - a consumer restarted after a commit resumes exactly where it committed.
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

use brook_client::{Client, ConsumerConfig, Producer, ProducerConfig, ProducerRecord};
use tokio::sync::watch;

const ORDERS: u32 = 300;

/// What one group has seen: (order, event type) pairs, and the last event type per order.
#[derive(Default)]
struct Seen {
    events: BTreeSet<(String, String)>,
    duplicates: u64,
    out_of_order: u64,
}

fn event(kind: &str, order: u32) -> (String, String) {
    let id = format!("order-{order:04}");
    let payload = match kind {
        "OrderPlaced" => format!(
            r#"{{"customer":"c-{}","items":[{{"sku":"sku-{}","qty":{}}}],"total":{}.50}}"#,
            order % 17,
            order % 23,
            1 + order % 3,
            10 + order % 90
        ),
        _ => r#"{"reason":"customer request"}"#.to_string(),
    };
    let json = format!(
        r#"{{"type":"{kind}","aggregate_id":"{id}","payload":{payload},"occurred_at":{}}}"#,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis()
    );
    (id, json)
}

async fn publish(
    producer: &Producer,
    topic: &str,
    kind: &str,
    orders: impl Iterator<Item = u32>,
) -> brook_client::Result<u64> {
    let mut deliveries = Vec::new();
    for order in orders {
        let (id, json) = event(kind, order);
        let record = ProducerRecord {
            topic: topic.into(),
            key: Some(id.into()),
            value: Some(json.into()),
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
        let v: serde_json::Value =
            serde_json::from_slice(record.value.as_deref().unwrap_or_default())
                .expect("events are JSON");
        let (kind, id) = (
            v["type"].as_str().unwrap_or_default().to_string(),
            v["aggregate_id"].as_str().unwrap_or_default().to_string(),
        );
        {
            let mut s = seen.lock().unwrap();
            if kind == "OrderCancelled" && !s.events.contains(&(id.clone(), "OrderPlaced".into())) {
                s.out_of_order += 1;
            }
            if !s.events.insert((id, kind)) {
                s.duplicates += 1;
            }
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await; // billing's slow invoice generation
        }
    }
    consumer.close().await
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
    client.admin().create_topic(&topic, 6).await?;
    println!("topic {topic}, groups inventory-{run}, billing-{run}, shipping-{run}");
    let roles = [
        ("inventory", Duration::ZERO),
        ("billing", Duration::from_millis(3)),
        ("shipping", Duration::ZERO),
    ];
    let mut seen: BTreeMap<&str, Arc<Mutex<Seen>>> = BTreeMap::new();
    let mut stops = BTreeMap::new();
    let mut tasks = BTreeMap::new();
    for (role, delay) in roles {
        let s = Arc::new(Mutex::new(Seen::default()));
        let (stop_tx, stop_rx) = watch::channel(false);
        tasks.insert(
            role,
            tokio::spawn(consume(
                client.clone(),
                topic.clone(),
                group(role),
                delay,
                Arc::clone(&s),
                stop_rx,
            )),
        );
        seen.insert(role, s);
        stops.insert(role, stop_tx);
    }
    // Let the members join before the orders flow.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let producer = client.producer(ProducerConfig::default());
    let mut expected = publish(&producer, &topic, "OrderPlaced", 0..ORDERS).await?;
    expected += publish(&producer, &topic, "OrderCancelled", (0..ORDERS).step_by(5)).await?;
    println!("order service published {expected} events");

    // Watch billing's lag grow and drain while inventory and shipping keep up.
    let (mut billing_max, deadline) = (0u64, Instant::now() + Duration::from_secs(120));
    loop {
        let lag = client
            .consumer_lag(&group("billing"))
            .await
            .map(|l| l.total_lag_records)
            .unwrap_or(0);
        billing_max = billing_max.max(lag);
        let counts: Vec<u64> = seen.values().map(count).collect();
        println!("  consumed {counts:?} of {expected}; billing lag {lag}");
        if counts.iter().all(|c| *c >= expected) {
            break;
        }
        if Instant::now() > deadline {
            return Err("the groups did not catch up within 120 s".into());
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
    let added = publish(&producer, &topic, "OrderPlaced", ORDERS..ORDERS + 20).await?;
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
    while seen.values().any(|s| count(s) < expected) {
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
        if s.events.len() as u64 != expected {
            failed.push(format!(
                "{role} saw {} of {expected} events",
                s.events.len()
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
    for role in ["inventory", "billing", "shipping"] {
        final_lag.push(client.consumer_lag(&group(role)).await?.total_lag_records);
    }
    println!("billing's lag peaked at {billing_max} and drained; final lag {final_lag:?}");
    let resumed = count(&seen["shipping"]) - before;
    println!("shipping resumed after {before} events and got exactly the {resumed} new ones");
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
