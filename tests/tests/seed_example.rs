//! The seed example (client/examples/orders.rs) runs against a real broker and
//! passes its own checks: every group sees every order event once, in order
//! per order; billing's lag grows and drains; a restarted consumer resumes
//! exactly where it committed.

use brook_tests::{Broker, client_example};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_service_example_passes_its_checks() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    let example = client_example("orders");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(example)
            .env("BROOK_URL", format!("http://{}", broker.grpc))
            .output()
            .map(|o| (o, broker))
    })
    .await
    .unwrap()
    .unwrap();
    let (out, _broker) = out;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "example failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("all checks passed"), "{stdout}");
    assert!(
        stdout.contains("billing: 380 events, 0 duplicates, 0 cancellations before their order"),
        "{stdout}"
    );
}
