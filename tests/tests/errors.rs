//! Every error code the API promises, each reached by a bad request, and the
//! data already stored unchanged afterwards.

use brook_protocol::v1;
use brook_tests::{Broker, batch_of, create_topic, describe_topic, fetch_all, http_get};
use tonic::Code;

/// The request failed with `code`, the ErrorInfo `reason`, and a message
/// that mentions `mentions`.
fn assert_code<T: std::fmt::Debug>(
    r: Result<T, tonic::Status>,
    code: Code,
    reason: &str,
    mentions: &str,
) {
    let status = r.expect_err("the request should fail");
    assert_eq!(status.code(), code, "wrong code for: {}", status.message());
    assert_eq!(
        brook_tests::reason(&status).as_deref(),
        Some(reason),
        "wrong reason for: {}",
        status.message()
    );
    assert!(
        status.message().contains(mentions),
        "message {:?} should mention {mentions:?}",
        status.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_precise_codes_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        dir.path(),
        &[
            "--max-request-bytes",
            "2097152",
            "--max-batch-bytes",
            "1048576",
        ],
    )
    .await;
    create_topic(&broker, "orders", 2).await;
    let mut topics = broker.topics().await;
    let mut producer = broker.producer().await;
    let mut consumer = broker.consumer().await;
    let good = |p: u32, v: &[u8]| v1::ProduceRequest {
        topic: "orders".into(),
        partition: p,
        batch: batch_of(Some(b"k"), &[v]).into_bytes(),
        acks: 0,
    };
    producer.produce(good(0, b"first")).await.unwrap();
    producer.produce(good(1, b"second")).await.unwrap();
    let before = (
        fetch_all(&broker, "orders", 0, 0).await,
        fetch_all(&broker, "orders", 1, 0).await,
    );

    // NOT_FOUND
    assert_code(
        producer
            .produce(v1::ProduceRequest {
                topic: "nope".into(),
                ..good(0, b"x")
            })
            .await,
        Code::NotFound,
        "TOPIC_NOT_FOUND",
        "nope",
    );
    assert_code(
        producer.produce(good(7, b"x")).await,
        Code::NotFound,
        "PARTITION_NOT_FOUND",
        "partition 7",
    );
    assert_code(
        topics
            .delete_topic(v1::DeleteTopicRequest {
                name: "nope".into(),
            })
            .await,
        Code::NotFound,
        "TOPIC_NOT_FOUND",
        "nope",
    );
    // ALREADY_EXISTS
    let again = v1::CreateTopicRequest {
        name: "orders".into(),
        config: Some(v1::TopicConfig {
            partitions: 1,
            ..Default::default()
        }),
    };
    assert_code(
        topics.create_topic(again).await,
        Code::AlreadyExists,
        "TOPIC_ALREADY_EXISTS",
        "orders",
    );
    // INVALID_ARGUMENT: name, config, empty batch, oversized batch, garbage.
    let bad_name = v1::CreateTopicRequest {
        name: "bad/name".into(),
        config: Some(v1::TopicConfig {
            partitions: 1,
            ..Default::default()
        }),
    };
    assert_code(
        topics.create_topic(bad_name).await,
        Code::InvalidArgument,
        "INVALID_TOPIC_NAME",
        "bad/name",
    );
    let zero = v1::CreateTopicRequest {
        name: "zero".into(),
        config: Some(v1::TopicConfig {
            partitions: 0,
            ..Default::default()
        }),
    };
    assert_code(
        topics.create_topic(zero).await,
        Code::InvalidArgument,
        "INVALID_CONFIG",
        "partitions",
    );
    let empty = brook_protocol::batch::BatchBuilder::new().build(0);
    assert_code(
        producer
            .produce(v1::ProduceRequest {
                batch: empty,
                ..good(0, b"")
            })
            .await,
        Code::InvalidArgument,
        "INVALID_RECORDS",
        "no records",
    );
    let big = vec![7u8; 1_500_000];
    assert_code(
        producer.produce(good(0, &big)).await,
        Code::InvalidArgument,
        "BATCH_TOO_LARGE",
        "max_batch_bytes",
    );
    let garbage = bytes::Bytes::from_static(
        b"definitely not a record batch, but long enough to parse a header from it",
    );
    assert_code(
        producer
            .produce(v1::ProduceRequest {
                batch: garbage,
                ..good(0, b"")
            })
            .await,
        Code::InvalidArgument,
        "INVALID_RECORDS",
        "batch",
    );
    assert_code(
        producer
            .publish(v1::PublishRequest {
                topic: "orders".into(),
                records: vec![],
                acks: 0,
            })
            .await,
        Code::InvalidArgument,
        "INVALID_REQUEST",
        "no records",
    );
    // Timestamps whose deltas cannot be encoded are refused, not stored undecodable.
    let extreme = |t: i64| v1::PublishRecord {
        key: Some("same-partition".into()),
        timestamp_ms: Some(t),
        value: Some(vec![1].into()),
        ..Default::default()
    };
    let req = v1::PublishRequest {
        topic: "orders".into(),
        records: vec![extreme(i64::MIN), extreme(1)],
        acks: 0,
    };
    assert_code(
        producer.publish(req).await,
        Code::InvalidArgument,
        "INVALID_RECORDS",
        "timestamp",
    );
    // AlterTopic: the count, the batch limit, an interval without its policy
    // and a negative retention are refused.
    let alter = |config: v1::TopicConfig| v1::AlterTopicRequest {
        name: "orders".into(),
        config: Some(config),
    };
    for (config, mentions) in [
        (
            v1::TopicConfig {
                partitions: 5,
                ..Default::default()
            },
            "AddPartitions",
        ),
        (
            v1::TopicConfig {
                max_batch_bytes: Some(2048),
                ..Default::default()
            },
            "max_batch_bytes is fixed",
        ),
        (
            v1::TopicConfig {
                flush_policy: v1::FlushPolicy::Never as i32,
                flush_interval_ms: Some(5),
                ..Default::default()
            },
            "goes only with FLUSH_POLICY_INTERVAL",
        ),
        (
            v1::TopicConfig {
                retention_ms: Some(-7),
                ..Default::default()
            },
            "retention_ms",
        ),
    ] {
        assert_code(
            topics.alter_topic(alter(config)).await,
            Code::InvalidArgument,
            "INVALID_CONFIG",
            mentions,
        );
    }
    assert_code(
        topics
            .alter_topic(v1::AlterTopicRequest {
                name: "nope".into(),
                config: Some(Default::default()),
            })
            .await,
        Code::NotFound,
        "TOPIC_NOT_FOUND",
        "nope",
    );
    // DATA_LOSS: a batch damaged in transit fails its CRC.
    let mut damaged = batch_of(Some(b"k"), &[b"payload"]).into_bytes().to_vec();
    let last = damaged.len() - 1;
    damaged[last] ^= 0xff;
    assert_code(
        producer
            .produce(v1::ProduceRequest {
                batch: damaged.into(),
                ..good(0, b"")
            })
            .await,
        Code::DataLoss,
        "CORRUPT_RECORDS",
        "CRC",
    );
    // OUT_OF_RANGE, with the valid range in the message.
    let far = v1::FetchRequest {
        topic: "orders".into(),
        partition: 0,
        offset: 99,
        ..Default::default()
    };
    assert_code(
        consumer.fetch(far).await,
        Code::OutOfRange,
        "OFFSET_OUT_OF_RANGE",
        "0..1",
    );
    // RESOURCE_EXHAUSTED: a request over --max-request-bytes.
    let huge = v1::PublishRequest {
        topic: "orders".into(),
        records: vec![v1::PublishRecord {
            value: Some(vec![1u8; 3 << 20].into()),
            ..Default::default()
        }],
        acks: 0,
    };
    assert_code(
        producer.publish(huge).await,
        Code::ResourceExhausted,
        "REQUEST_TOO_LARGE",
        "",
    );

    let after = (
        fetch_all(&broker, "orders", 0, 0).await,
        fetch_all(&broker, "orders", 1, 0).await,
    );
    assert_eq!(
        after, before,
        "failed requests stored nothing and changed nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unavailable_while_recovering() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::spawn_recovering(dir.path(), &["--debug-delay-recovery-ms", "5000"]);
    let mut topics = broker.topics().await;
    let refused = topics.list_topics(v1::ListTopicsRequest {}).await;
    if let Err(status) = &refused {
        // Waiting is the right answer, and the status says how long.
        use tonic_types::StatusExt;
        let retry = status.get_details_retry_info().expect("RetryInfo");
        assert!(retry.retry_delay.is_some_and(|d| !d.is_zero()), "{retry:?}");
    }
    assert_code(refused, Code::Unavailable, "BROKER_STARTING", "recovering");
    broker.wait_serving().await;
    assert!(topics.list_topics(v1::ListTopicsRequest {}).await.is_ok());
}

/// The HTTP probes: `/healthz` answers as soon as the process listens,
/// `/readyz` only once the log is recovered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_answers_at_once_and_readyz_once_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::spawn_recovering(dir.path(), &["--debug-delay-recovery-ms", "5000"]);
    let m = broker.metrics;
    brook_tests::eventually("/healthz answers 200 while recovering", async || {
        http_get(m, "/healthz").await.starts_with("HTTP/1.1 200")
    })
    .await;
    let ready = http_get(m, "/readyz").await;
    assert!(
        ready.starts_with("HTTP/1.1 503") && ready.ends_with("recovering\n"),
        "{ready}"
    );
    broker.wait_serving().await;
    let ready = http_get(m, "/readyz").await;
    assert!(
        ready.starts_with("HTTP/1.1 200") && ready.ends_with("ready\n"),
        "{ready}"
    );
}

/// The grpc-status a raw call gets: `messages` framed as gRPC frames them,
/// whatever bytes they are. No gRPC library sends a malformed message on
/// purpose, so this speaks HTTP/2 itself.
async fn raw_call(
    addr: std::net::SocketAddr,
    path: &str,
    messages: &[&[u8]],
) -> (String, String, Option<String>) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let (client, connection) = h2::client::handshake(tcp).await.unwrap();
    tokio::spawn(connection);
    let mut client = client.ready().await.unwrap();
    let req = http::Request::post(format!("http://{addr}{path}"))
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(())
        .unwrap();
    let (response, mut body) = client.send_request(req, false).unwrap();
    let mut framed = Vec::new();
    for m in messages {
        framed.push(0);
        framed.extend((m.len() as u32).to_be_bytes());
        framed.extend(*m);
    }
    body.send_data(framed.into(), true).unwrap();
    let response = response.await.unwrap();
    let status = |h: &http::HeaderMap| {
        let get = |k: &str| h.get(k).map(|v| v.to_str().unwrap().to_string());
        let reason = tonic::Status::from_header_map(h).and_then(|s| brook_tests::reason(&s));
        get("grpc-status").map(|c| (c, get("grpc-message").unwrap_or_default(), reason))
    };
    if let Some(s) = status(response.headers()) {
        return s;
    }
    let mut body = response.into_body();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
    }
    let trailers = body.trailers().await.unwrap().expect("trailers");
    status(&trailers).expect("a grpc-status")
}

/// A request that does not decode is the caller's fault: INVALID_ARGUMENT
/// on unary, server-streaming, client-streaming and bidirectional methods,
/// never INTERNAL; and the broker goes on serving.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_requests_are_invalid_arguments() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    create_topic(&broker, "t", 1).await;
    // Field 1 (a string) holding bytes that are not UTF-8.
    let not_utf8: &[u8] = &[0x0a, 0x02, 0xff, 0xfe];
    for (path, message) in [
        ("/brook.v1.Producer/Produce", &[0xffu8][..]),
        ("/brook.v1.Topics/CreateTopic", not_utf8),
        ("/brook.v1.Topics/DescribeTopic", not_utf8),
        ("/brook.v1.Consumer/Fetch", &[0xff][..]),
        ("/brook.v1.Consumer/Subscribe", &[0xff][..]),
        ("/brook.v1.Producer/ProduceStream", &[0xff][..]),
        ("/brook.v1.Groups/Join", &[0xff][..]),
        ("/brook.v1.Groups/Commit", not_utf8),
    ] {
        let (code, message, reason) = raw_call(broker.grpc, path, &[message]).await;
        assert_eq!(code, "3", "{path}: {message}");
        assert_eq!(
            reason.as_deref(),
            Some("MALFORMED_REQUEST"),
            "{path}: {message}"
        );
        assert!(message.contains("decode"), "{path}: {message}");
    }
    // Still serving, and a valid raw call is answered normally.
    let (code, _, _) = raw_call(broker.grpc, "/brook.v1.Topics/ListTopics", &[&[]]).await;
    assert_eq!(code, "0");
    assert_eq!(describe_topic(&broker, "t").await.name, "t");
}

/// The name limits hold exactly, end to end: a topic of 249 characters is
/// created, written, read and deleted; 250 is refused. Groups: 200, and 201
/// is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_of_the_longest_allowed_length_work_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    let mut topics = broker.topics().await;
    let mut producer = broker.producer().await;
    for len in [247, 248, 249] {
        let name = "t".repeat(len);
        create_topic(&broker, &name, 1).await;
        producer
            .produce(v1::ProduceRequest {
                topic: name.clone(),
                partition: 0,
                batch: batch_of(Some(b"k"), &[b"v"]).into_bytes(),
                acks: v1::Acks::Durable as i32,
            })
            .await
            .unwrap();
        assert_eq!(fetch_all(&broker, &name, 0, 0).await.len(), 1, "{len}");
        topics
            .delete_topic(v1::DeleteTopicRequest { name })
            .await
            .unwrap();
    }
    let create = |name: String| v1::CreateTopicRequest {
        name,
        config: Some(v1::TopicConfig {
            partitions: 1,
            ..Default::default()
        }),
    };
    assert_code(
        topics.create_topic(create("t".repeat(250))).await,
        Code::InvalidArgument,
        "INVALID_TOPIC_NAME",
        "1 to 249 characters",
    );
    create_topic(&broker, "t", 1).await;
    let mut groups = v1::groups_client::GroupsClient::new(broker.channel().await);
    let commit = |group: String| v1::CommitRequest {
        group,
        offsets: vec![v1::OffsetCommit {
            topic: "t".into(),
            partition: 0,
            offset: 0,
            ..Default::default()
        }],
        ..Default::default()
    };
    groups.commit(commit("g".repeat(200))).await.unwrap();
    let fetched = groups
        .fetch_committed(v1::FetchCommittedRequest {
            group: "g".repeat(200),
            topic: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched.offsets.len(), 1);
    assert_code(
        groups.commit(commit("g".repeat(201))).await,
        Code::InvalidArgument,
        "INVALID_GROUP_NAME",
        "1 to 200 characters",
    );
}

/// A fetch's size is capped by --max-fetch-bytes whatever max_bytes asks
/// (half with decoded records), and still carries one whole batch larger
/// than the cap: a fetch always makes progress.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_sizes_are_capped_but_a_batch_always_goes_out() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--max-fetch-bytes", "262144"]).await;
    create_topic(&broker, "big", 1).await;
    let mut producer = broker.producer().await;
    let value = vec![b'x'; 100_000];
    let mut sizes = Vec::new();
    for n in [1usize, 1, 1, 1, 1, 1, 4] {
        let values: Vec<&[u8]> = (0..n).map(|_| value.as_slice()).collect();
        let batch = batch_of(None, &values).into_bytes();
        sizes.push(batch.len());
        producer
            .produce(v1::ProduceRequest {
                topic: "big".into(),
                partition: 0,
                batch,
                acks: 0,
            })
            .await
            .unwrap();
    }
    let mut consumer = broker.consumer().await;
    let fetch = |offset: u64, decoded: bool| v1::FetchRequest {
        topic: "big".into(),
        partition: 0,
        offset,
        max_bytes: u32::MAX,
        min_bytes: 1,
        max_wait_ms: 0,
        decoded,
    };
    let r = consumer.fetch(fetch(0, false)).await.unwrap().into_inner();
    assert_eq!(
        r.batches.len(),
        sizes[0] + sizes[1],
        "two ~100 KB batches fit 256 KiB"
    );
    let r = consumer.fetch(fetch(0, true)).await.unwrap().into_inner();
    assert_eq!(r.batches.len(), sizes[0], "one fits half of it");
    assert_eq!(r.records.len(), 1);
    // The last batch (~400 KB) is larger than the cap: it comes alone.
    let r = consumer.fetch(fetch(6, false)).await.unwrap().into_inner();
    assert_eq!(r.batches.len(), sizes[6]);
    assert_eq!(r.next_offset, 10);
}
