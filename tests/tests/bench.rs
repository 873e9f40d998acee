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

/// The standard scenarios run through the public client API against a real
/// broker: w1 stores what it says, w2 and w2-group read it back (w2-group
/// leaves its group's commits at the log end), w3 awaits each send.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standard_scenarios_run_and_leave_what_they_say() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    let w1 = bench(
        &broker,
        &["--topic", "s", "--scenario", "w1", "--records", "20000"],
    );
    assert_eq!(field(&w1, "messages"), 20000.0);
    let mut topics = broker.topics().await;
    let describe = brook_protocol::v1::DescribeTopicRequest { name: "s".into() };
    let d = topics
        .describe_topic(describe.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.partitions.len(), 8, "the scenarios' 8 partitions");
    let ends: Vec<u64> = d.partitions.iter().map(|p| p.log_end_offset).collect();
    assert_eq!(ends.iter().sum::<u64>(), 20000);
    assert!(
        ends.iter().all(|&e| e > 0),
        "keys spread over every partition: {ends:?}"
    );

    let w2 = bench(
        &broker,
        &["--topic", "s", "--scenario", "w2", "--records", "20000"],
    );
    assert_eq!(field(&w2, "messages"), 20000.0);
    for scenario in ["w2-group", "w2-group-async"] {
        let group = bench(
            &broker,
            &["--topic", "s", "--scenario", scenario, "--records", "20000"],
        );
        assert_eq!(field(&group, "messages"), 20000.0, "{scenario}");
    }
    // Each run's group committed the log end of every partition.
    let mut groups = brook_protocol::v1::groups_client::GroupsClient::new(broker.channel().await);
    let listed = groups
        .list_groups(brook_protocol::v1::ListGroupsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.groups.len(), 2, "{listed:?}");
    for g in &listed.groups {
        let committed = groups
            .fetch_committed(brook_protocol::v1::FetchCommittedRequest {
                group: g.group.clone(),
                topic: "s".into(),
            })
            .await
            .unwrap()
            .into_inner();
        let mut at: Vec<(u32, u64)> = committed
            .offsets
            .iter()
            .map(|c| (c.partition, c.offset))
            .collect();
        at.sort();
        let expected: Vec<(u32, u64)> = ends
            .iter()
            .enumerate()
            .map(|(p, &e)| (p as u32, e))
            .collect();
        assert_eq!(at, expected, "group {}", g.group);
    }

    // Too few records to read: an error that says what to run.
    let out = std::process::Command::new(brook_binary())
        .args(["bench", "--url", &format!("http://{}", broker.grpc)])
        .args(["--topic", "s", "--scenario", "w2", "--records", "30000"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--scenario w1"));

    for scenario in ["w3", "w3-durable"] {
        let w3 = bench(
            &broker,
            &[
                "--topic",
                scenario,
                "--scenario",
                scenario,
                "--records",
                "200",
            ],
        );
        assert_eq!(field(&w3, "messages"), 200.0);
        assert!(field(&w3, "rpc_baseline_p99_us") >= field(&w3, "rpc_baseline_p50_us"));
        assert!(field(&w3, "p99_us") >= field(&w3, "p50_us"));
    }
    let d = topics
        .describe_topic(brook_protocol::v1::DescribeTopicRequest {
            name: "w3-durable".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        d.partitions.iter().map(|p| p.log_end_offset).sum::<u64>(),
        200
    );
}

/// `--protocol kafka` runs the scenarios through the Kafka listener: w1
/// stores every record in the partition Kafka's partitioner picks for its
/// key, w2 reads them all back, w3 awaits each Produce, and a scenario that
/// needs a Kafka group member is refused with what to use instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_standard_scenarios_run_over_the_kafka_listener() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    let kafka = broker.kafka.expect("a Kafka listener").to_string();
    let over_kafka = |args: &[&str]| {
        let mut all = vec!["--protocol", "kafka", "--kafka-bootstrap", kafka.as_str()];
        all.extend_from_slice(args);
        bench(&broker, &all)
    };
    let w1 = over_kafka(&["--topic", "k", "--scenario", "w1", "--records", "20000"]);
    assert_eq!(field(&w1, "messages"), 20000.0);
    assert!(w1.contains("over Kafka"), "{w1}");
    let d = brook_tests::describe_topic(&broker, "k").await;
    assert_eq!(d.partitions.len(), 8);
    let ends: Vec<u64> = d.partitions.iter().map(|p| p.log_end_offset).collect();
    assert_eq!(ends.iter().sum::<u64>(), 20000, "{ends:?}");
    for p in 0..8u32 {
        let batches = brook_tests::fetch_batches(&broker, "k", p, 0).await;
        assert!(!batches.is_empty(), "partition {p} holds records");
        for rec in batches[0].records() {
            let key = rec.unwrap().key.expect("keyed");
            assert_eq!(
                brook_protocol::partitioner::partition_for_key(&key, 8),
                p,
                "{key:?} routed by Kafka's partitioner"
            );
        }
    }

    let w2 = over_kafka(&["--topic", "k", "--scenario", "w2", "--records", "20000"]);
    assert_eq!(field(&w2, "messages"), 20000.0);
    assert!(field(&w2, "mib_per_s") > 0.0);

    for scenario in ["w3", "w3-durable"] {
        let w3 = over_kafka(&[
            "--topic",
            scenario,
            "--scenario",
            scenario,
            "--records",
            "200",
        ]);
        assert_eq!(field(&w3, "messages"), 200.0);
        assert!(field(&w3, "rpc_baseline_p99_us") >= field(&w3, "rpc_baseline_p50_us"));
    }
    let d = brook_tests::describe_topic(&broker, "w3-durable").await;
    assert_eq!(
        d.partitions.iter().map(|p| p.log_end_offset).sum::<u64>(),
        200
    );

    for (args, says) in [
        (
            vec!["--topic", "k", "--scenario", "w2", "--records", "30000"],
            "--scenario w1",
        ),
        (
            vec!["--topic", "k", "--scenario", "w2-group"],
            "w1, w1-durable, w2",
        ),
    ] {
        let out = std::process::Command::new(brook_binary())
            .args(["bench", "--url", &format!("http://{}", broker.grpc)])
            .args(["--protocol", "kafka", "--kafka-bootstrap", &kafka])
            .args(&args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}
