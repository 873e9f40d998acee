//! The seed example (client/examples/orders.rs) runs against a real broker and
//! passes its own checks: every service handles every order event once, in
//! order per order (billing as 4 competing consumers of a key-ordered queue
//! group on 2 partitions); inventory's malformed orders, and only those, are
//! dead-lettered after 3 tries while the rest flow; billing's lag grows and
//! drains; a restarted consumer resumes exactly where it committed; and all
//! that on a broker that already holds data, its own from an earlier run
//! included. Its events go through a registered JSON Schema the topic is
//! bound to, so the broker stores only what follows it.

use brook_tests::{Broker, client_example, create_topic};

/// Runs the example against the broker at `grpc` and returns its stdout,
/// failing the test (with both outputs) if it does not pass.
async fn run_example(grpc: std::net::SocketAddr) -> String {
    let example = client_example("orders");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(example)
            .env("BROOK_URL", format!("http://{grpc}"))
            .output()
    })
    .await
    .unwrap()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "example failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Twice on one broker: the second run finds the first one's topic, groups
/// and commits (and the Quick start's `orders` topic) and must count exactly
/// the same, since a user runs it on a broker that already holds data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_service_example_passes_its_checks_on_a_broker_with_data() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    create_topic(&broker, "orders", 3).await;
    let client = brook_client::Client::connect(&format!("http://{}", broker.grpc))
        .await
        .unwrap();
    let producer = client.producer(Default::default());
    for order in ["OrderPlaced", "OrderCancelled"] {
        producer
            .send("orders", Some("order-42"), order)
            .await
            .unwrap()
            .await
            .unwrap();
    }
    for run in 1..=2 {
        let stdout = run_example(broker.grpc).await;
        assert!(stdout.contains("all checks passed"), "run {run}: {stdout}");
        assert!(
            stdout
                .contains("billing: 380 events, 0 duplicates, 0 cancellations before their order"),
            "run {run}: {stdout}"
        );
        assert!(
            stdout.contains("got exactly the 20 new ones"),
            "run {run}: {stdout}"
        );
        assert!(
            stdout.contains(
                "inventory: 375 events, 0 duplicates, 0 cancellations before their order"
            ),
            "run {run}: {stdout}"
        );
        assert!(
            stdout.contains("inventory dead-lettered 5 orders"),
            "run {run}: {stdout}"
        );
        assert!(
            stdout.contains("kept an OrderShipped event (at /type)"),
            "run {run}: {stdout}"
        );
    }
    // Each run registered its topic's contract and bound the topic to it:
    // the broker itself refuses an event that does not follow it.
    let subjects = client.admin().list_subjects(false).await.unwrap();
    let demo: Vec<&String> = subjects
        .iter()
        .filter(|s| s.starts_with("orders-demo-") && s.ends_with("-value"))
        .collect();
    assert_eq!(demo.len(), 2, "{subjects:?}");
    let topic = demo[0].trim_end_matches("-value");
    let binding = client.admin().topic_schema(topic).await.unwrap();
    assert_eq!(
        (binding.value_subject.as_str(), binding.mode.as_str()),
        (demo[0].as_str(), "full")
    );
    let refused = producer
        .send(topic, Some("order-0001"), r#"{"type":"OrderPlaced"}"#)
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("does not start with a schema id"),
        "{refused}"
    );
    // A framed event the schema refuses (a type it does not know) too.
    let id = client.admin().schema_version(demo[0], 1).await.unwrap().id;
    let mut forged = vec![0u8];
    forged.extend_from_slice(&id.to_be_bytes());
    forged.extend_from_slice(
        br#"{"type":"OrderShipped","aggregate_id":"order-1","payload":{},"occurred_at":1}"#,
    );
    let refused = producer
        .send(topic, Some("order-0001"), forged)
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert!(refused.to_string().contains("at /type"), "{refused}");
}
