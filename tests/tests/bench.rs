//! `brook bench` runs its workloads against a real broker and reports them.

use brook_tests::{Broker, brook_binary};

fn bench(broker: &Broker, args: &[&str]) -> String {
    let out = std::process::Command::new(brook_binary())
        .arg("bench")
        .args(["--url", &format!("http://{}", broker.grpc), "--json"])
        .args(args)
        .output()
        .expect("running brook bench");
    assert!(
        out.status.success(),
        "brook bench {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn field(json: &str, name: &str) -> f64 {
    let key = format!("\"{name}\":");
    let rest = &json[json
        .find(&key)
        .unwrap_or_else(|| panic!("{name} missing in {json}"))
        + key.len()..];
    rest.split([',', '}'])
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("{name} is not a number in {json}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_consume_and_e2e_report_what_they_did() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    let produced = bench(
        &broker,
        &[
            "--topic",
            "b",
            "--partitions",
            "3",
            "produce",
            "--messages",
            "3000",
            "--size",
            "100",
            "--keys",
            "50",
        ],
    );
    assert_eq!(field(&produced, "messages"), 3000.0);
    assert!(field(&produced, "msgs_per_s") > 0.0);
    assert!(field(&produced, "p99_us") >= field(&produced, "p50_us"));
    assert!(field(&produced, "baseline_write_mib_per_s") > 0.0);
    assert!(field(&produced, "baseline_buffered_mib_per_s") > 0.0);
    let d = broker
        .topics()
        .await
        .describe_topic(brook_protocol::v1::DescribeTopicRequest { name: "b".into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.partitions.len(), 3);
    assert_eq!(
        d.partitions.iter().map(|p| p.log_end_offset).sum::<u64>(),
        3000,
        "every record was stored"
    );

    let consumed = bench(&broker, &["--topic", "b", "consume", "--messages", "3000"]);
    assert_eq!(field(&consumed, "messages"), 3000.0);
    let e2e = bench(
        &broker,
        &["--topic", "b", "e2e", "--messages", "500", "--size", "64"],
    );
    assert_eq!(field(&e2e, "messages"), 500.0);
    assert!(field(&e2e, "p50_us") > 0.0);
    let synced = bench(
        &broker,
        &[
            "--topic",
            "b",
            "produce",
            "--messages",
            "50",
            "--sync",
            "--acks",
            "durable",
        ],
    );
    assert_eq!(field(&synced, "messages"), 50.0);
}
