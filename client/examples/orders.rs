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
//! ```text
//! cargo run --release -p brook -- serve          # in one terminal
//! cargo run -p brook-client --example orders     # in another (BROOK_URL to point elsewhere)
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brook_client::{Client, ConsumerConfig, Producer, ProducerConfig, ProducerRecord};
use tokio::sync::watch;

const TOPIC: &str = "orders";
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
    kind: &str,
    orders: impl Iterator<Item = u32>,
) -> brook_client::Result<u64> {
    let mut deliveries = Vec::new();
    for order in orders {
        let (id, json) = event(kind, order);
        let record = ProducerRecord {
            topic: TOPIC.into(),
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
    group: &str,
    delay: Duration,
    seen: Arc<Mutex<Seen>>,
    mut stop: watch::Receiver<bool>,
) -> brook_client::Result<()> {
    let config = ConsumerConfig {
        auto_commit: Some(Duration::from_millis(200)),
        client_id: format!("{group}-service"),
        ..ConsumerConfig::new(group, &[TOPIC])
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
    if let Err(e) = client.admin().create_topic(TOPIC, 6).await
        && e.code() != Some(tonic::Code::AlreadyExists)
    {
        return Err(e.into());
    }
    let groups = [
        ("inventory", Duration::ZERO),
        ("billing", Duration::from_millis(3)),
        ("shipping", Duration::ZERO),
    ];
    let mut seen: BTreeMap<&str, Arc<Mutex<Seen>>> = BTreeMap::new();
    let mut stops = BTreeMap::new();
    let mut tasks = BTreeMap::new();
    for (group, delay) in groups {
        let s = Arc::new(Mutex::new(Seen::default()));
        let (stop_tx, stop_rx) = watch::channel(false);
        tasks.insert(
            group,
            tokio::spawn(consume(
                client.clone(),
                group,
                delay,
                Arc::clone(&s),
                stop_rx,
            )),
        );
        seen.insert(group, s);
        stops.insert(group, stop_tx);
    }
    // Let the members join before the orders flow.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let producer = client.producer(ProducerConfig::default());
    let mut expected = publish(&producer, "OrderPlaced", 0..ORDERS).await?;
    expected += publish(&producer, "OrderCancelled", (0..ORDERS).step_by(5)).await?;
    println!("order service published {expected} events");

    // Watch billing's lag grow and drain while inventory and shipping keep up.
    let (mut billing_max, deadline) = (0u64, Instant::now() + Duration::from_secs(120));
    loop {
        let lag = client
            .consumer_lag("billing")
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
    tasks.remove("shipping").unwrap().await??;
    let before = count(&seen["shipping"]);
    expected += publish(&producer, "OrderPlaced", ORDERS..ORDERS + 20).await?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let restarted = tokio::spawn(consume(
        client.clone(),
        "shipping",
        Duration::ZERO,
        Arc::clone(&seen["shipping"]),
        stop_rx,
    ));
    let deadline = Instant::now() + Duration::from_secs(60);
    while seen.values().any(|s| count(s) < expected) {
        if Instant::now() > deadline {
            return Err("the last 20 orders were not consumed within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    stop_tx.send(true)?;
    restarted.await??;
    for (group, stop) in &stops {
        if *group != "shipping" {
            stop.send(true)?;
        }
    }
    for (_, t) in tasks {
        t.await??;
    }

    let mut ok = true;
    for (group, s) in &seen {
        let s = s.lock().unwrap();
        println!(
            "{group}: {} events, {} duplicates, {} cancellations before their order",
            s.events.len(),
            s.duplicates,
            s.out_of_order
        );
        ok &= s.events.len() as u64 == expected && s.duplicates == 0 && s.out_of_order == 0;
    }
    let final_lag: Vec<u64> = {
        let mut v = Vec::new();
        for g in ["inventory", "billing", "shipping"] {
            v.push(client.consumer_lag(g).await?.total_lag_records);
        }
        v
    };
    println!("billing's lag peaked at {billing_max} and drained; final lag {final_lag:?}");
    println!(
        "shipping resumed after {before} events and got exactly the {} new ones",
        expected - before
    );
    ok &= billing_max > 0 && final_lag.iter().all(|l| *l == 0);
    if !ok {
        return Err("a check failed (see above)".into());
    }
    println!("all checks passed");
    Ok(())
}
