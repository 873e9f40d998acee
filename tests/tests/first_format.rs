//! A log written in Brook's first batch format (magic 1, before Kafka's
//! RecordBatch v2 became the one format) is served as it is stored
//! (docs/format.md, "Brook's first format"): recovered after a crash, read
//! over gRPC, sent to Kafka clients encoded again as v2, continued with v2
//! batches at the next offsets, and checked clean by `brook data verify`.

use std::net::TcpStream;

use brook_protocol::batch::{self, MAGIC_V2};
use brook_protocol::v1;
use brook_tests::kafka::call;
use brook_tests::{Broker, DEADLINE, brook_binary, create_topic, fetch_all};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

fn put_uvarint(buf: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        buf.push(v as u8 | 0x80);
        v >>= 7;
    }
    buf.push(v as u8);
}

fn put_varint(buf: &mut Vec<u8>, v: i64) {
    put_uvarint(buf, ((v << 1) ^ (v >> 63)) as u64);
}

/// A batch of the first format, laid out as docs/format.md describes it:
/// v2 without `partitionLeaderEpoch` (magic at byte 12, CRC at 13), a
/// CRC-32 (IEEE) of attributes..end, and unsigned varints for a record's
/// length, offset delta, header count and header lengths.
fn first_format_batch(base: u64, first_ts: i64, records: &[(&str, &str)]) -> Vec<u8> {
    let mut body = Vec::new();
    for (i, (key, value)) in records.iter().enumerate() {
        let mut r = vec![0u8];
        put_varint(&mut r, i as i64); // timestamp delta: 1 ms apart
        put_uvarint(&mut r, i as u64);
        for part in [key, value] {
            put_varint(&mut r, part.len() as i64);
            r.extend_from_slice(part.as_bytes());
        }
        put_uvarint(&mut r, 1);
        put_uvarint(&mut r, 6);
        r.extend_from_slice(b"format");
        put_uvarint(&mut r, 5);
        r.extend_from_slice(b"first");
        put_uvarint(&mut body, r.len() as u64);
        body.extend_from_slice(&r);
    }
    let mut v = Vec::new();
    v.extend_from_slice(&base.to_be_bytes());
    v.extend_from_slice(&((45 + body.len()) as u32).to_be_bytes());
    v.push(1); // magic
    v.extend_from_slice(&[0; 4]); // CRC, below
    v.extend_from_slice(&0u16.to_be_bytes()); // attributes
    v.extend_from_slice(&(records.len() as u32 - 1).to_be_bytes());
    v.extend_from_slice(&first_ts.to_be_bytes());
    v.extend_from_slice(&(first_ts + records.len() as i64 - 1).to_be_bytes());
    v.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    v.extend_from_slice(&(-1i16).to_be_bytes());
    v.extend_from_slice(&(-1i32).to_be_bytes());
    v.extend_from_slice(&(records.len() as u32).to_be_bytes());
    v.extend_from_slice(&body);
    let crc = crc32fast::hash(&v[17..]);
    v[13..17].copy_from_slice(&crc.to_be_bytes());
    v
}

/// Every record of partition 0 of `topic` through the Kafka listener
/// (Fetch v12, from offset 0 to the high watermark, as a consumer reads):
/// (offset, key, value), after checking that every batch arrives as v2.
fn kafka_read(b: &Broker, topic: &str) -> Vec<(u64, String, String)> {
    let mut s = TcpStream::connect(b.kafka.expect("a Kafka listener")).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut out = Vec::new();
    let mut next = 0i64;
    for correlation in 1.. {
        let request = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                fetch_request::FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![
                        fetch_request::FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(next)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]);
        let answer: FetchResponse = call(&mut s, ApiKey::Fetch as i16, 12, correlation, &request);
        let p = &answer.responses[0].partitions[0];
        assert_eq!(p.error_code, 0, "{p:?}");
        let records = p.records.clone().unwrap_or_default();
        assert!(!records.is_empty() || next >= p.high_watermark, "{p:?}");
        for b in batch::batches(records) {
            let b = b.expect("a valid batch");
            assert_eq!(b.header().magic, MAGIC_V2, "sent to Kafka clients as v2");
            for r in b.records() {
                let r = r.unwrap();
                let text =
                    |v: Option<bytes::Bytes>| String::from_utf8(v.unwrap().to_vec()).unwrap();
                out.push((r.offset, text(r.key), text(r.value)));
            }
            next = b.header().next_offset() as i64;
        }
        if next >= p.high_watermark {
            break;
        }
    }
    out
}

/// Two batches of the first format written into a partition's segment
/// (as an older build left them, indexes not yet written): recovered at
/// start, read over gRPC with their timestamps and headers, sent to a
/// Kafka fetch as v2, followed by a v2 record at offset 3, all of it there
/// after `kill -9`, stored as written, and verified clean offline.
#[tokio::test(flavor = "multi_thread")]
async fn a_log_of_the_first_format_is_served_over_both_protocols_and_through_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Broker::start(dir.path(), &[]).await;
    create_topic(&b, "legacy", 1).await;
    b.kill9_in_place();

    // The partition's empty segment now holds two batches an older build
    // wrote; its indexes go, as a crash before they were written leaves them.
    let ts = 1_700_000_000_000;
    let mut old = first_format_batch(0, ts, &[("order-1", "placed"), ("order-2", "placed")]);
    old.extend(first_format_batch(2, ts + 10, &[("order-1", "paid")]));
    let partition = dir.path().join("legacy/0");
    let segment = partition.join("00000000000000000000.log");
    let mut bytes = std::fs::read(&segment).expect("the partition's first segment");
    assert!(bytes.iter().all(|&b| b == 0), "an empty segment");
    assert!(bytes.len() >= old.len());
    bytes[..old.len()].copy_from_slice(&old);
    std::fs::write(&segment, &bytes).unwrap();
    for index in [
        "00000000000000000000.index",
        "00000000000000000000.timeindex",
    ] {
        let _ = std::fs::remove_file(partition.join(index));
    }
    b.restart().await;

    let first = vec![
        (0, "order-1", "placed"),
        (1, "order-2", "placed"),
        (2, "order-1", "paid"),
    ];
    let as_grpc = |v: &[(u64, &str, &str)]| -> Vec<(u64, Option<Vec<u8>>, Vec<u8>)> {
        v.iter()
            .map(|(o, k, val)| (*o, Some(k.as_bytes().to_vec()), val.as_bytes().to_vec()))
            .collect()
    };
    let as_kafka = |v: &[(u64, &str, &str)]| -> Vec<(u64, String, String)> {
        v.iter()
            .map(|(o, k, val)| (*o, k.to_string(), val.to_string()))
            .collect()
    };
    assert_eq!(fetch_all(&b, "legacy", 0, 0).await, as_grpc(&first));
    let mut consumer = b.consumer().await;
    let decoded = consumer
        .fetch(v1::FetchRequest {
            topic: "legacy".into(),
            decoded: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let headers: Vec<_> = (decoded.records.iter())
        .map(|r| (r.offset, r.timestamp_ms, r.headers[0].key.clone()))
        .collect();
    assert_eq!(
        headers,
        [
            (0, ts, "format".to_string()),
            (1, ts + 1, "format".to_string()),
            (2, ts + 10, "format".to_string()),
        ],
        "timestamps and headers of the first format"
    );
    assert_eq!(kafka_read(&b, "legacy"), as_kafka(&first));

    // New records are v2, at the offsets after the old ones, and all of it
    // survives a crash.
    let published = b
        .producer()
        .await
        .publish(v1::PublishRequest {
            topic: "legacy".into(),
            records: vec![v1::PublishRecord {
                key: Some(b"order-2".to_vec().into()),
                value: Some(b"paid".to_vec().into()),
                ..Default::default()
            }],
            acks: v1::Acks::Durable as i32,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(published.positions[0].offset, 3);
    b.kill9_in_place();
    b.restart().await;
    let mut all = first.clone();
    all.push((3, "order-2", "paid"));
    assert_eq!(fetch_all(&b, "legacy", 0, 0).await, as_grpc(&all));
    assert_eq!(kafka_read(&b, "legacy"), as_kafka(&all));
    let stored: Vec<u8> = (brook_tests::fetch_batches(&b, "legacy", 0, 0).await)
        .iter()
        .map(|batch| batch.header().magic)
        .collect();
    assert_eq!(stored, [1, 1, 2], "stored as written, nothing converted");
    b.kill9_in_place();

    let verify = std::process::Command::new(brook_binary())
        .args(["data", "verify"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        verify.status.success(),
        "brook data verify: {}{}",
        String::from_utf8_lossy(&verify.stdout),
        String::from_utf8_lossy(&verify.stderr)
    );
}
