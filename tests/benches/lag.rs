//! How long GetConsumerLag takes, on the broker (its own request histogram)
//! and seen by a client, next to DescribeTopic (another in-memory RPC) as
//! the baseline measured in the same run.
//!
//! ```text
//! cargo bench -p brook-tests --bench lag
//! ```

use std::time::{Duration, Instant};

use brook_protocol::v1;
use brook_tests::Broker;

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

async fn server_mean_us(b: &Broker, method: &str) -> f64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(b.metrics).await.unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: b\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).await.unwrap();
    let value = |name: &str| -> f64 {
        let prefix = format!("brook_request_duration_seconds_{name}{{method=\"{method}\"}} ");
        text.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .unwrap()
            .parse()
            .unwrap()
    };
    value("sum") / value("count") * 1e6
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    const PARTITIONS: u32 = 8;
    const CALLS: usize = 2000;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    let config = v1::TopicConfig {
        partitions: PARTITIONS,
        ..Default::default()
    };
    broker
        .topics()
        .await
        .create_topic(v1::CreateTopicRequest {
            name: "orders".into(),
            config: Some(config),
        })
        .await
        .unwrap();
    let mut producer = broker.producer().await;
    for round in 0..20 {
        let records = (0..500)
            .map(|i| v1::PublishRecord {
                key: Some(format!("k{i}").into_bytes().into()),
                value: Some(vec![round as u8; 200].into()),
                ..Default::default()
            })
            .collect();
        producer
            .publish(v1::PublishRequest {
                topic: "orders".into(),
                records,
                acks: 0,
            })
            .await
            .unwrap();
    }
    let mut groups = v1::groups_client::GroupsClient::new(broker.channel().await);
    let offsets = (0..PARTITIONS)
        .map(|p| v1::OffsetCommit {
            topic: "orders".into(),
            partition: p,
            offset: 100,
            metadata: String::new(),
        })
        .collect();
    groups
        .commit(v1::CommitRequest {
            group: "billing".into(),
            offsets,
            ..Default::default()
        })
        .await
        .unwrap();
    let mut topics = broker.topics().await;

    let mut lag_times = Vec::with_capacity(CALLS);
    let mut describe_times = Vec::with_capacity(CALLS);
    for _ in 0..CALLS {
        let t = Instant::now();
        let lag = groups
            .get_consumer_lag(v1::GetConsumerLagRequest {
                group: "billing".into(),
                topic: String::new(),
            })
            .await
            .unwrap();
        lag_times.push(t.elapsed());
        assert_eq!(lag.into_inner().partitions.len(), PARTITIONS as usize);
        let t = Instant::now();
        topics
            .describe_topic(v1::DescribeTopicRequest {
                name: "orders".into(),
            })
            .await
            .unwrap();
        describe_times.push(t.elapsed());
    }
    lag_times.sort();
    describe_times.sort();
    let lag_server = server_mean_us(&broker, "GetConsumerLag").await;
    let describe_server = server_mean_us(&broker, "DescribeTopic").await;
    println!(
        "GetConsumerLag over {PARTITIONS} partitions, {CALLS} calls (debug={})\n",
        cfg!(debug_assertions)
    );
    println!("| RPC | server mean µs | client p50 µs | client p99 µs |");
    println!("|---|---:|---:|---:|");
    for (name, server, times) in [
        ("GetConsumerLag", lag_server, &lag_times),
        ("DescribeTopic (baseline)", describe_server, &describe_times),
    ] {
        println!(
            "| {name} | {server:.1} | {:.0} | {:.0} |",
            percentile(times, 0.5).as_secs_f64() * 1e6,
            percentile(times, 0.99).as_secs_f64() * 1e6
        );
    }
    println!(
        "\nserver time ratio lag / describe: {:.2}x",
        lag_server / describe_server
    );
}
