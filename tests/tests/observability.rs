//! What operators and generic tools see: Prometheus metrics, gRPC health and
//! server reflection, and the streaming produce path.

use brook_protocol::v1;
use brook_tests::{Broker, DEADLINE, batch_of, create_topic, fetch_all, http_get};
use tokio_stream::StreamExt;

/// The value of the first sample line that starts with `prefix`.
fn sample(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_requests_records_offsets_and_connections() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    create_topic(&broker, "m", 2).await;
    let mut producer = broker.producer().await;
    for _ in 0..3 {
        let req = v1::ProduceRequest {
            topic: "m".into(),
            partition: 1,
            batch: batch_of(None, &[b"a", b"b"]).into_bytes(),
            acks: 0,
        };
        producer.produce(req).await.unwrap();
    }
    let missing = v1::ProduceRequest {
        topic: "nope".into(),
        partition: 0,
        batch: batch_of(None, &[b"a"]).into_bytes(),
        acks: 0,
    };
    assert!(producer.produce(missing).await.is_err());
    fetch_all(&broker, "m", 1, 0).await;

    let text = http_get(broker.metrics, "/metrics").await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(
        sample(&text, "brook_produced_records_total{topic=\"m\"}"),
        Some(6.0),
        "{text}"
    );
    assert_eq!(
        sample(
            &text,
            "brook_requests_total{method=\"Produce\",topic=\"m\",group=\"\"}"
        ),
        Some(3.0)
    );
    assert_eq!(
        sample(
            &text,
            "brook_request_errors_total{method=\"Produce\",code=\"NOT_FOUND\"}"
        ),
        Some(1.0)
    );
    assert_eq!(
        sample(
            &text,
            "brook_partition_log_end_offset{topic=\"m\",partition=\"1\"}"
        ),
        Some(6.0)
    );
    assert_eq!(
        sample(
            &text,
            "brook_partition_log_end_offset{topic=\"m\",partition=\"0\"}"
        ),
        Some(0.0)
    );
    assert!(
        sample(
            &text,
            "brook_partition_size_bytes{topic=\"m\",partition=\"1\"}"
        )
        .unwrap()
            > 0.0
    );
    assert!(sample(&text, "brook_fetched_records_total{topic=\"m\"}").unwrap() >= 6.0);
    assert!(
        sample(
            &text,
            "brook_request_duration_seconds_count{method=\"Produce\"}"
        )
        .unwrap()
            >= 4.0
    );
    assert!(sample(&text, "brook_open_connections").unwrap() >= 1.0);
    // What every Prometheus client exports, under the standard names.
    assert!(sample(&text, "process_cpu_seconds_total ").unwrap() > 0.0);
    assert!(sample(&text, "process_resident_memory_bytes ").unwrap() > 1e6);
    assert!(sample(&text, "process_open_fds ").unwrap() >= 5.0);
    assert!(sample(&text, "process_max_fds ").unwrap() >= 1024.0);
    assert!(sample(&text, "process_threads ").unwrap() >= 2.0);
    let started = sample(&text, "process_start_time_seconds ").unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    assert!(started <= now + 1.0 && started > now - 600.0, "{started}");
    let version = format!(
        "brook_build_info{{version=\"{}\",commit=\"",
        env!("CARGO_PKG_VERSION")
    );
    assert_eq!(sample(&text, &version), Some(1.0), "{text}");
    assert!(
        http_get(broker.metrics, "/other")
            .await
            .starts_with("HTTP/1.1 404")
    );
}

/// The request layer records each call exactly once: a success and a
/// failure of one method on one topic move that topic's request count by
/// two, the method's error count and latency count by one and two, and log
/// one line; a request refused before any handler decodes it (over
/// `--max-request-bytes`) is counted too, as a failure with no topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_call_is_counted_timed_and_its_failure_logged_once() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("broker.log");
    let broker = Broker::spawn_logged(
        dir.path(),
        &["--max-request-bytes", "65536", "--max-batch-bytes", "32768"],
        &log,
    );
    broker.wait_serving().await;
    create_topic(&broker, "layer", 1).await;
    let mut consumer = broker.consumer().await;
    let mut producer = broker.producer().await;
    let fetch = |partition| v1::FetchRequest {
        topic: "layer".into(),
        partition,
        ..Default::default()
    };

    let before = broker.metrics_text().await;
    consumer.fetch(fetch(0)).await.unwrap();
    let missing = consumer.fetch(fetch(7)).await.unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);
    let huge = v1::ProduceRequest {
        topic: "layer".into(),
        partition: 0,
        batch: batch_of(None, &[&[7u8; 100_000]]).into_bytes(),
        acks: 0,
    };
    let refused = producer.produce(huge).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    let after = broker.metrics_text().await;

    let moved =
        |line: &str| sample(&after, line).unwrap_or(0.0) - sample(&before, line).unwrap_or(0.0);
    for (line, by) in [
        (
            r#"brook_requests_total{method="Fetch",topic="layer",group=""}"#,
            2.0,
        ),
        (
            r#"brook_request_errors_total{method="Fetch",code="NOT_FOUND"}"#,
            1.0,
        ),
        (
            r#"brook_request_duration_seconds_count{method="Fetch"}"#,
            2.0,
        ),
        (
            r#"brook_requests_total{method="Produce",topic="",group=""}"#,
            1.0,
        ),
        (
            r#"brook_request_errors_total{method="Produce",code="RESOURCE_EXHAUSTED"}"#,
            1.0,
        ),
        (
            r#"brook_requests_total{method="Produce",topic="layer",group=""}"#,
            0.0,
        ),
    ] {
        assert_eq!(moved(line), by, "{line}\n{after}");
    }
    let text = std::fs::read_to_string(&log).unwrap();
    let failed: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("request failed"))
        .collect();
    assert_eq!(failed.len(), 2, "{text}");
    for (line, fields) in failed.iter().zip([
        [
            r#"method="Fetch""#,
            r#"topic="layer""#,
            "partition=7",
            "code=\"NOT_FOUND\"",
        ],
        [
            r#"method="Produce""#,
            r#"topic="""#,
            "code=\"RESOURCE_EXHAUSTED\"",
            "too large",
        ],
    ]) {
        for field in fields {
            assert!(line.contains(field), "{field} in {line}");
        }
    }
}

/// Partition gauges are read from the log by each scrape: two at once both
/// get every partition (they used to share gauges one of them could be clearing).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_scrapes_each_report_every_partition() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    create_topic(&broker, "wide", 64).await;
    for _ in 0..10 {
        let (a, b) = tokio::join!(broker.metrics_text(), broker.metrics_text());
        for text in [a, b] {
            for family in ["log_end_offset", "log_start_offset", "size_bytes"] {
                let prefix = format!("brook_partition_{family}{{topic=\"wide\",");
                let n = text.lines().filter(|l| l.starts_with(&prefix)).count();
                assert_eq!(n, 64, "{family}: {text}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reflection_lists_every_service() {
    /// The services a reflection client of `$version` is told of.
    macro_rules! listed_services {
        ($version:ident, $channel:expr) => {{
            use tonic_reflection::pb::$version::ServerReflectionRequest;
            use tonic_reflection::pb::$version::server_reflection_client::ServerReflectionClient;
            use tonic_reflection::pb::$version::server_reflection_request::MessageRequest;
            use tonic_reflection::pb::$version::server_reflection_response::MessageResponse;
            let req = ServerReflectionRequest {
                host: String::new(),
                message_request: Some(MessageRequest::ListServices(String::new())),
            };
            let mut responses = ServerReflectionClient::new($channel)
                .server_reflection_info(tokio_stream::iter([req]))
                .await
                .unwrap()
                .into_inner();
            let resp = responses.next().await.unwrap().unwrap();
            let Some(MessageResponse::ListServicesResponse(list)) = resp.message_response else {
                panic!("unexpected {resp:?}")
            };
            list.service
                .into_iter()
                .map(|s| s.name)
                .collect::<Vec<String>>()
        }};
    }
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    // v1 as grpcurl asks; v1alpha as grpcio's reflection client, older
    // grpcurl, grpcui and Postman ask.
    let v1 = listed_services!(v1, broker.channel().await);
    let v1alpha = listed_services!(v1alpha, broker.channel().await);
    for want in [
        "brook.v1.Topics",
        "brook.v1.Producer",
        "brook.v1.Consumer",
        "brook.v1.Groups",
        "brook.v1.Cluster",
        "brook.v1.Queues",
        "brook.v1.Schemas",
        "brook.v1.Acls",
        "grpc.health.v1.Health",
    ] {
        assert!(
            v1.iter().any(|n| n == want),
            "v1: {want} missing from {v1:?}"
        );
        assert!(
            v1alpha.iter().any(|n| n == want),
            "v1alpha: {want} missing from {v1alpha:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_stream_acks_in_order_and_stops_at_the_first_bad_batch() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    create_topic(&broker, "s", 1).await;
    let mut producer = broker.producer().await;
    let mut reqs = Vec::new();
    for i in 0..50u32 {
        let acks = if i % 7 == 0 {
            v1::Acks::Durable
        } else {
            v1::Acks::Written
        };
        let value = i.to_be_bytes();
        reqs.push(v1::ProduceRequest {
            topic: "s".into(),
            partition: 0,
            batch: batch_of(None, &[&value, &value]).into_bytes(),
            acks: acks as i32,
        });
    }
    let mut bad = batch_of(None, &[b"bad"]).into_bytes().to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 1;
    reqs.push(v1::ProduceRequest {
        topic: "s".into(),
        partition: 0,
        batch: bad.into(),
        acks: 0,
    });
    reqs.push(v1::ProduceRequest {
        topic: "s".into(),
        partition: 0,
        batch: batch_of(None, &[b"after"]).into_bytes(),
        acks: 0,
    });

    let mut acks = producer
        .produce_stream(tokio_stream::iter(reqs))
        .await
        .unwrap()
        .into_inner();
    for i in 0..50u64 {
        let ack = tokio::time::timeout(DEADLINE, acks.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(ack.base_offset, i * 2, "acks arrive in request order");
    }
    let err = tokio::time::timeout(DEADLINE, acks.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::DataLoss);
    assert!(
        acks.next().await.is_none(),
        "the stream ends at the first failure"
    );
    let stored = fetch_all(&broker, "s", 0, 0).await;
    assert_eq!(
        stored.len(),
        100,
        "nothing after the bad batch was appended"
    );
}

/// `--log-format json`: every line the broker writes is one JSON object
/// (timestamp, level, target, fields with the message), so that collectors
/// parse it; a failed request's warning keeps its fields. Without it, a log
/// written to a file is plain text, without colour codes.
#[tokio::test(flavor = "multi_thread")]
async fn logs_are_json_lines_with_log_format_json_and_plain_text_otherwise() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("json.log");
    let b = Broker::spawn_logged(&dir.path().join("json"), &["--log-format", "json"], &log);
    b.wait_serving().await;
    let missing = b
        .topics()
        .await
        .describe_topic(v1::DescribeTopicRequest {
            name: "nowhere".into(),
        })
        .await;
    assert!(missing.is_err());
    b.terminate();
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}")))
        .collect();
    for l in &lines {
        for field in ["timestamp", "level", "target"] {
            assert!(l[field].is_string(), "{field} in {l}");
        }
        assert!(l["fields"].is_object(), "{l}");
    }
    assert!(
        lines
            .iter()
            .any(|l| l["level"] == "INFO" && l["fields"]["message"] == "brook listening"),
        "{text}"
    );
    let failed = lines
        .iter()
        .find(|l| l["level"] == "WARN" && l["fields"]["method"] == "DescribeTopic")
        .unwrap_or_else(|| panic!("the failed request's warning in {text}"));
    assert_eq!(failed["fields"]["topic"], "nowhere", "{failed}");
    assert_eq!(failed["fields"]["reason"], "TOPIC_NOT_FOUND", "{failed}");

    let log = dir.path().join("text.log");
    let b = Broker::spawn_logged(&dir.path().join("text"), &[], &log);
    b.wait_serving().await;
    b.terminate();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("brook listening"), "{text}");
    assert!(
        !text.contains('\u{1b}'),
        "colour codes in a log file: {text:?}"
    );
    assert!(serde_json::from_str::<serde_json::Value>(text.lines().next().unwrap()).is_err());
}
