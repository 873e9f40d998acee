//! The Kafka listener's semantics where a Kafka client can tell, checked
//! with raw requests (encoded and decoded with the `kafka-protocol` crate)
//! against a real broker: what `acks` promises, the error codes each
//! refusal carries, the fetch long poll, and the refusals of transactions.

use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use brook_protocol::batch::BatchBuilder;
use brook_tests::kafka::call;
use brook_tests::{Broker, DEADLINE, create_topic, eventually};
use bytes::Bytes;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

const OFFSET_OUT_OF_RANGE: i16 = 1;
const CORRUPT_MESSAGE: i16 = 2;
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const ILLEGAL_GENERATION: i16 = 22;
const REBALANCE_IN_PROGRESS: i16 = 27;
const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
const MEMBER_ID_REQUIRED: i16 = 79;
const INVALID_RECORD: i16 = 87;

fn connect(b: &Broker) -> TcpStream {
    let s = TcpStream::connect(b.kafka.expect("a Kafka listener")).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

fn name(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// A batch of `values`, from an idempotent producer when `producer` is given.
fn batch(values: &[&str], producer: Option<(i64, i16, i32)>) -> Bytes {
    let mut b = BatchBuilder::new();
    if let Some((id, epoch, sequence)) = producer {
        b = b.producer(id, epoch, sequence);
    }
    for v in values {
        b.push(now_ms(), Some(b"k"), Some(v.as_bytes()), &[]);
    }
    b.build(0)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// Produce v9 of `records` to `topic`/`partition`: the partition's error code.
fn produce(
    s: &mut TcpStream,
    topic: &str,
    partition: i32,
    acks: i16,
    records: Bytes,
    transactional_id: Option<&str>,
) -> i16 {
    let request = ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_transactional_id(transactional_id.map(|t| TransactionalId(name(t))))
        .with_topic_data(vec![
            produce_request::TopicProduceData::default()
                .with_name(TopicName(name(topic)))
                .with_partition_data(vec![
                    produce_request::PartitionProduceData::default()
                        .with_index(partition)
                        .with_records(Some(records)),
                ]),
        ]);
    let r: ProduceResponse = call(s, ApiKey::Produce as i16, 9, 1, &request);
    r.responses[0].partition_responses[0].error_code
}

/// Fetch v12 of `topic`/0 from `offset`: the partition's answer.
fn fetch(
    s: &mut TcpStream,
    topic: &str,
    offset: i64,
    max_wait_ms: i32,
) -> fetch_response::PartitionData {
    let request = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(max_wait_ms)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            fetch_request::FetchTopic::default()
                .with_topic(TopicName(name(topic)))
                .with_partitions(vec![
                    fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(offset)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let mut r: FetchResponse = call(s, ApiKey::Fetch as i16, 12, 2, &request);
    r.responses.remove(0).partitions.remove(0)
}

/// `brook_log_flushes_total` now.
async fn flushes(b: &Broker) -> u64 {
    let metrics = b.metrics_text().await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("brook_log_flushes_total "))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .unwrap_or_else(|| panic!("no brook_log_flushes_total in\n{metrics}")) as u64
}

/// `acks=-1` is the durable ack level: the answer waits for the partition's
/// log to be flushed to disk. `acks=1` is `written`: with the flush policy
/// `never`, nothing is flushed for it.
#[tokio::test(flavor = "multi_thread")]
async fn acks_all_waits_for_the_disk_and_acks_one_does_not() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &["--flush", "never"]).await;
    create_topic(&b, "ledger", 1).await;
    let mut s = connect(&b);
    let before = flushes(&b).await;
    for i in 0..3 {
        let value = format!("written-{i}");
        assert_eq!(
            produce(&mut s, "ledger", 0, 1, batch(&[&value], None), None),
            0
        );
    }
    assert_eq!(flushes(&b).await, before, "acks=1 flushes nothing");
    assert_eq!(
        produce(&mut s, "ledger", 0, -1, batch(&["durable"], None), None),
        0
    );
    assert!(flushes(&b).await > before, "acks=-1 flushed the log");
}

/// The per-partition codes of refusals a Kafka client acts on: a fetch
/// past the end, an unknown topic, a damaged batch, a sequence gap of an
/// idempotent producer; and the group codes of a stale generation and of
/// a heartbeat during a rebalance.
#[tokio::test(flavor = "multi_thread")]
async fn refusals_carry_kafkas_error_codes() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    create_topic(&b, "orders", 1).await;
    let mut s = connect(&b);

    assert_eq!(
        fetch(&mut s, "orders", 100, 0).error_code,
        OFFSET_OUT_OF_RANGE
    );
    assert_eq!(
        produce(&mut s, "nope", 0, 1, batch(&["x"], None), None),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        produce(&mut s, "orders", 7, 1, batch(&["x"], None), None),
        UNKNOWN_TOPIC_OR_PARTITION,
        "a partition the topic does not have"
    );
    let mut damaged = batch(&["damaged"], None).to_vec();
    let last = damaged.len() - 1;
    damaged[last] ^= 0x01;
    assert_eq!(
        produce(&mut s, "orders", 0, 1, Bytes::from(damaged), None),
        CORRUPT_MESSAGE
    );

    let init: InitProducerIdResponse = call(
        &mut s,
        ApiKey::InitProducerId as i16,
        4,
        3,
        &InitProducerIdRequest::default()
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(init.error_code, 0);
    let (pid, epoch) = (init.producer_id.0, init.producer_epoch);
    assert_eq!(
        produce(
            &mut s,
            "orders",
            0,
            -1,
            batch(&["a", "b"], Some((pid, epoch, 0))),
            None
        ),
        0
    );
    assert_eq!(
        produce(
            &mut s,
            "orders",
            0,
            -1,
            batch(&["gap"], Some((pid, epoch, 5))),
            None
        ),
        OUT_OF_ORDER_SEQUENCE_NUMBER
    );
    let stored = fetch(&mut s, "orders", 0, 0);
    assert_eq!(
        stored.high_watermark, 2,
        "only the two in sequence are stored"
    );

    // A group of one member, then a second joins.
    let join = |s: &mut TcpStream, member: &str| -> JoinGroupResponse {
        let request = JoinGroupRequest::default()
            .with_group_id(GroupId(name("billing")))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(5_000)
            .with_member_id(name(member))
            .with_protocol_type(name("consumer"))
            .with_protocols(vec![
                join_group_request::JoinGroupRequestProtocol::default()
                    .with_name(name("range"))
                    .with_metadata(Bytes::from_static(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0])),
            ]);
        call(s, ApiKey::JoinGroup as i16, 5, 4, &request)
    };
    let first = join(&mut s, "");
    assert_eq!(first.error_code, MEMBER_ID_REQUIRED);
    let id = first.member_id.to_string();
    let joined = join(&mut s, &id);
    assert_eq!(joined.error_code, 0, "{joined:?}");
    assert_eq!(joined.leader.as_str(), id);
    let generation = joined.generation_id;
    let sync: SyncGroupResponse = call(
        &mut s,
        ApiKey::SyncGroup as i16,
        3,
        5,
        &SyncGroupRequest::default()
            .with_group_id(GroupId(name("billing")))
            .with_generation_id(generation)
            .with_member_id(name(&id))
            .with_assignments(vec![
                sync_group_request::SyncGroupRequestAssignment::default()
                    .with_member_id(name(&id))
                    .with_assignment(Bytes::new()),
            ]),
    );
    assert_eq!(sync.error_code, 0);
    let heartbeat = |s: &mut TcpStream, generation: i32| -> i16 {
        let r: HeartbeatResponse = call(
            s,
            ApiKey::Heartbeat as i16,
            3,
            6,
            &HeartbeatRequest::default()
                .with_group_id(GroupId(name("billing")))
                .with_generation_id(generation)
                .with_member_id(name(&id)),
        );
        r.error_code
    };
    assert_eq!(heartbeat(&mut s, generation), 0);
    assert_eq!(heartbeat(&mut s, generation - 1), ILLEGAL_GENERATION);

    // A second member's join (answered once the rebalance ends, so on a
    // thread of its own) puts the group into a rebalance.
    let mut other = connect(&b);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let first = join(&mut other, "");
        let joined = join(&mut other, &first.member_id.to_string());
        let _ = tx.send(joined.error_code);
    });
    eventually(
        "the second join to start a rebalance",
        async || match heartbeat(&mut s, generation) {
            REBALANCE_IN_PROGRESS => true,
            0 => false,
            code => panic!("heartbeat during the second join answered {code}"),
        },
    )
    .await;
    // The first member rejoins: the rebalance completes for both.
    let rejoined = join(&mut s, &id);
    assert_eq!(rejoined.error_code, 0, "{rejoined:?}");
    assert!(rejoined.generation_id > generation);
    assert_eq!(rx.recv_timeout(DEADLINE).unwrap(), 0);
}

/// A fetch at the end of a partition waits (`max_wait_ms`, `min_bytes`):
/// it is answered when a record arrives, and without one not before its
/// wait is over.
#[tokio::test(flavor = "multi_thread")]
async fn a_fetch_at_the_end_waits_for_records() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    create_topic(&b, "orders", 1).await;

    let started = Instant::now();
    let empty = fetch(&mut connect(&b), "orders", 0, 500);
    assert_eq!(empty.error_code, 0);
    assert!(empty.records.unwrap_or_default().is_empty());
    assert!(
        started.elapsed() >= Duration::from_millis(500),
        "answered after {:?}, before its max_wait_ms",
        started.elapsed()
    );

    let mut waiting = connect(&b);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(fetch(&mut waiting, "orders", 0, 30_000));
    });
    assert!(
        rx.recv_timeout(Duration::from_millis(300)).is_err(),
        "a fetch at the end is not answered before a record arrives"
    );
    let mut s = connect(&b);
    assert_eq!(
        produce(&mut s, "orders", 0, 1, batch(&["wake"], None), None),
        0
    );
    let answer = rx
        .recv_timeout(DEADLINE)
        .expect("answered once a record arrived");
    assert_eq!(answer.error_code, 0);
    assert_eq!(answer.high_watermark, 1);
    assert!(
        !answer.records.unwrap_or_default().is_empty(),
        "with the record"
    );
}

/// Transactions are not supported (docs/kafka.md): a transactional id, a
/// transaction coordinator and a transactional batch are refused with the
/// documented codes, and nothing is stored.
#[tokio::test(flavor = "multi_thread")]
async fn transactions_are_refused_with_the_documented_codes() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    create_topic(&b, "orders", 1).await;
    let mut s = connect(&b);

    let init: InitProducerIdResponse = call(
        &mut s,
        ApiKey::InitProducerId as i16,
        4,
        1,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(name("payments-tx"))))
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    );
    assert_eq!(init.error_code, TRANSACTIONAL_ID_AUTHORIZATION_FAILED);

    let coordinator: FindCoordinatorResponse = call(
        &mut s,
        ApiKey::FindCoordinator as i16,
        3,
        2,
        &FindCoordinatorRequest::default()
            .with_key(name("payments-tx"))
            .with_key_type(1),
    );
    assert_eq!(
        coordinator.error_code,
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED
    );

    // A batch marked transactional (attribute bit 4), its CRC-32C made good.
    let mut tx_batch = batch(&["in a transaction"], Some((1000, 0, 0))).to_vec();
    tx_batch[22] |= 0x10;
    let crc = crc32c::crc32c(&tx_batch[21..]);
    tx_batch[17..21].copy_from_slice(&crc.to_be_bytes());
    let tx_batch = Bytes::from(tx_batch);
    assert_eq!(
        produce(
            &mut s,
            "orders",
            0,
            -1,
            tx_batch.clone(),
            Some("payments-tx")
        ),
        TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
        "a produce in a transaction"
    );
    assert_eq!(
        produce(&mut s, "orders", 0, -1, tx_batch, None),
        INVALID_RECORD,
        "a transactional batch without one"
    );
    assert_eq!(
        fetch(&mut s, "orders", 0, 0).high_watermark,
        0,
        "nothing stored"
    );
}
