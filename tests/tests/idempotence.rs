//! The idempotent producer against a real broker: retries are stored once,
//! gaps and fenced epochs are refused, and the state survives a clean
//! restart and kill -9.

use brook_protocol::batch::{Batch, BatchBuilder};
use brook_protocol::v1;
use brook_tests::{Broker, create_topic, fetch_all};

fn batch(pid: i64, epoch: i16, seq: i32, values: &[&str]) -> bytes::Bytes {
    let mut b = BatchBuilder::new().producer(pid, epoch, seq);
    for v in values {
        b.push(1, None, Some(v.as_bytes()), &[]);
    }
    Batch::parse(b.build(0)).unwrap().into_bytes()
}

async fn produce(b: &Broker, batch: bytes::Bytes) -> Result<v1::ProduceResponse, tonic::Status> {
    let req = v1::ProduceRequest {
        topic: "pay".into(),
        partition: 0,
        batch,
        acks: 0,
    };
    b.producer()
        .await
        .produce(req)
        .await
        .map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retried_batches_are_stored_once_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    create_topic(&broker, "pay", 1).await;
    let init = broker
        .producer()
        .await
        .init_producer(v1::InitProducerRequest {})
        .await
        .unwrap()
        .into_inner();
    let other = broker
        .producer()
        .await
        .init_producer(v1::InitProducerRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_ne!(init.producer_id, other.producer_id);
    let pid = init.producer_id;

    let first = produce(&broker, batch(pid, 0, 0, &["a", "b"]))
        .await
        .unwrap();
    assert!(!first.duplicate);
    let retry = produce(&broker, batch(pid, 0, 0, &["a", "b"]))
        .await
        .unwrap();
    assert!(retry.duplicate, "a retry is recognised");
    assert_eq!(
        (retry.base_offset, retry.last_offset),
        (first.base_offset, first.last_offset)
    );
    produce(&broker, batch(pid, 0, 2, &["c"])).await.unwrap();
    let gap = produce(&broker, batch(pid, 0, 9, &["z"]))
        .await
        .unwrap_err();
    assert_eq!(
        gap.code(),
        tonic::Code::FailedPrecondition,
        "{}",
        gap.message()
    );
    assert_eq!(fetch_all(&broker, "pay", 0, 0).await.len(), 3);

    // Clean restart: the snapshot carries the state.
    assert!(broker.terminate().success());
    let broker = Broker::start(dir.path(), &[]).await;
    assert!(
        produce(&broker, batch(pid, 0, 2, &["c"]))
            .await
            .unwrap()
            .duplicate
    );
    produce(&broker, batch(pid, 0, 3, &["d"])).await.unwrap();

    // kill -9: no fresh snapshot; the state is rebuilt from the log.
    broker.kill9();
    let broker = Broker::start(dir.path(), &[]).await;
    let again = produce(&broker, batch(pid, 0, 3, &["d"])).await.unwrap();
    assert!(again.duplicate, "rebuilt from the log after kill -9");
    assert_eq!(again.base_offset, 3);
    let values: Vec<Vec<u8>> = fetch_all(&broker, "pay", 0, 0)
        .await
        .into_iter()
        .map(|r| r.2)
        .collect();
    assert_eq!(
        values,
        [b"a".to_vec(), b"b".to_vec(), b"c".to_vec(), b"d".to_vec()]
    );
    let new_id = broker
        .producer()
        .await
        .init_producer(v1::InitProducerRequest {})
        .await
        .unwrap()
        .into_inner();
    assert!(
        new_id.producer_id > other.producer_id,
        "ids stay unique across restarts"
    );
}

/// Storage snapshots producer state when a segment rolls, so a crash
/// replays only the log after the last roll; batches after it are still
/// deduplicated, and a gap is refused with a machine-readable reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_snapshots_are_taken_at_rolls_and_survive_kill9() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    let config = v1::TopicConfig {
        partitions: 1,
        segment_bytes: Some(1024),
        ..Default::default()
    };
    broker
        .topics()
        .await
        .create_topic(v1::CreateTopicRequest {
            name: "pay".into(),
            config: Some(config),
        })
        .await
        .unwrap();
    let pid = broker
        .producer()
        .await
        .init_producer(v1::InitProducerRequest {})
        .await
        .unwrap()
        .into_inner()
        .producer_id;
    // Two of these do not fit one 1 KiB segment: each one rolls.
    let big = "x".repeat(600);
    for seq in 0..3 {
        produce(&broker, batch(pid, 0, seq, &[&big])).await.unwrap();
    }
    let snapshot = dir.path().join("pay/0/producer-state");
    let valid_to = || {
        std::fs::read_to_string(&snapshot).ok().and_then(|t| {
            // "brook-producers <version> <valid_to>"
            t.lines()
                .next()?
                .strip_prefix("brook-producers ")?
                .split(' ')
                .nth(1)?
                .parse::<u64>()
                .ok()
        })
    };
    brook_tests::eventually(
        "a snapshot valid to the last roll (offset 2) is written while running",
        async || valid_to() == Some(2),
    )
    .await;
    // Fits the active segment: no roll, only the log knows about this batch.
    produce(&broker, batch(pid, 0, 3, &["d"])).await.unwrap();
    broker.kill9();
    assert_eq!(valid_to(), Some(2), "the runtime snapshot is on disk");

    let broker = Broker::start(dir.path(), &[]).await;
    let c = produce(&broker, batch(pid, 0, 1, &[&big])).await.unwrap();
    assert!(c.duplicate && c.base_offset == 1, "known from the snapshot");
    let d = produce(&broker, batch(pid, 0, 3, &["d"])).await.unwrap();
    assert!(
        d.duplicate && d.base_offset == 3,
        "known from the log after the snapshot"
    );
    let gap = produce(&broker, batch(pid, 0, 9, &["z"]))
        .await
        .unwrap_err();
    assert_eq!(gap.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        brook_tests::reason(&gap).as_deref(),
        Some("OUT_OF_ORDER_SEQUENCE")
    );
    assert_eq!(
        brook_tests::error_metadata(&gap, "expected_sequence").as_deref(),
        Some("4")
    );
    assert_eq!(fetch_all(&broker, "pay", 0, 0).await.len(), 4);
}

async fn init(b: &Broker) -> i64 {
    b.producer()
        .await
        .init_producer(v1::InitProducerRequest {})
        .await
        .unwrap()
        .into_inner()
        .producer_id
}

/// A producer id the broker never handed out is refused, so that it cannot
/// take the sequence numbers of the producer that gets it later: that one's
/// first batch is stored, not answered as a duplicate and lost. Ids handed
/// out before a restart stay good, and the next id is not the last one
/// plus one (ids carry a keyed tag in their low bits).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_producer_id_never_handed_out_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path(), &[]).await;
    create_topic(&broker, "pay", 1).await;
    let first = init(&broker).await;
    // A squatter's guess: the id after one it knows.
    let next = first + 1;
    let early = produce(&broker, batch(next, 0, 0, &["squatter"]))
        .await
        .expect_err("not handed out yet");
    assert_eq!(early.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        brook_tests::reason(&early).as_deref(),
        Some("INVALID_PRODUCER_ID_MAPPING")
    );
    assert!(
        early.message().contains("InitProducer"),
        "{}",
        early.message()
    );
    let owner = init(&broker).await;
    assert!(owner > first, "ids grow: {first}, then {owner}");
    assert_ne!(owner, next, "the next id is not the known one plus one");
    let stored = produce(&broker, batch(owner, 0, 0, &["mine"]))
        .await
        .unwrap();
    assert!(!stored.duplicate, "the owner's first batch is its own");
    assert_eq!(
        stored.base_offset, 0,
        "nothing of the squatter's was stored"
    );

    produce(&broker, batch(first, 0, 0, &["before"]))
        .await
        .unwrap();
    broker.kill9_in_place();
    broker.restart().await;
    let after = produce(&broker, batch(first, 0, 1, &["after"]))
        .await
        .unwrap();
    assert!(
        !after.duplicate,
        "an id from before the restart is still good"
    );
    let fresh = init(&broker).await;
    assert!(fresh > owner);
    let unissued = produce(&broker, batch(fresh + 1, 0, 0, &["x"]))
        .await
        .expect_err("past the last one handed out");
    assert_eq!(unissued.code(), tonic::Code::FailedPrecondition);
}

/// An idle producer's state is forgotten after --producer-id-expiration-ms:
/// a batch that would have been a sequence gap before is then from an
/// unknown producer (it must start again at sequence 0).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_producer_is_forgotten_after_the_expiration() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(
        dir.path(),
        &[
            "--producer-id-expiration-ms",
            "300",
            "--retention-check-interval-ms",
            "100",
        ],
    )
    .await;
    create_topic(&broker, "pay", 1).await;
    let pid = init(&broker).await;
    produce(&broker, batch(pid, 0, 0, &["a"])).await.unwrap();
    let mut last = None;
    brook_tests::eventually("the producer to be forgotten", async || {
        let e = produce(&broker, batch(pid, 0, 7, &["gap"]))
            .await
            .expect_err("a gap, then an unknown producer");
        last = brook_tests::reason(&e);
        last.as_deref() == Some("UNKNOWN_PRODUCER")
    })
    .await;
    // Starting again at sequence 0 works.
    let again = produce(&broker, batch(pid, 0, 0, &["b"])).await.unwrap();
    assert!(!again.duplicate);
    assert_eq!(again.base_offset, 1);
}
