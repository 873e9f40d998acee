//! Load for the scale measurement (`scripts/scale.sh`): creates TOPICS
//! topics of PER_TOPIC partitions each (`t00000`, `t00001`, ...) and puts
//! one small record into every partition, through the public client API.
//!
//! ```text
//! cargo run --release -p brook-client --example many_partitions -- URL TOPICS PER_TOPIC
//! ```
//! Prints one line: how many partitions were created and filled, and how long it took.

use std::time::Instant;

use brook_client::{Client, ProducerRecord};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, topics, per_topic] = &args[..] else {
        return Err("usage: many_partitions URL TOPICS PER_TOPIC".into());
    };
    let (topics, per_topic): (u32, u32) = (topics.parse()?, per_topic.parse()?);
    let client = Client::connect(url.clone()).await?;
    let admin = client.admin();
    let started = Instant::now();
    // A few creations at a time: the broker opens each topic's partitions in parallel.
    let mut pending = Vec::new();
    for t in 0..topics {
        let admin = admin.clone();
        pending.push(tokio::spawn(async move {
            admin.create_topic(&format!("t{t:05}"), per_topic).await
        }));
        if pending.len() == 8 {
            for p in pending.drain(..) {
                p.await??;
            }
        }
    }
    for p in pending {
        p.await??;
    }
    let created = started.elapsed();
    let producer = client.producer(Default::default());
    let mut deliveries = Vec::new();
    for t in 0..topics {
        for p in 0..per_topic {
            let record = ProducerRecord {
                topic: format!("t{t:05}"),
                value: Some("one small record".into()),
                partition: Some(p),
                ..Default::default()
            };
            deliveries.push(producer.send_record(record).await?);
        }
    }
    for d in deliveries {
        d.await?;
    }
    println!(
        "partitions={} create_s={:.2} total_s={:.2}",
        topics * per_topic,
        created.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    Ok(())
}
