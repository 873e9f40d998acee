//! Acknowledged means stored: a `kill -9` loop under durable produce load,
//! and a full disk, against the real broker.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use brook_protocol::v1;
use brook_tests::{Broker, batch_of, create_topic, eventually, fetch_all};
use tonic::Code;

const ROUNDS: usize = 10;
const PARTITIONS: u32 = 3;

/// Every acknowledged record: (partition, offset) → value.
type Acked = Arc<Mutex<BTreeMap<(u32, u64), Vec<u8>>>>;

/// Produces batches with durable acks until the broker goes away,
/// recording each acknowledged record; returns how many batches were acked.
async fn produce_until_gone(
    channel: tonic::transport::Channel,
    task: usize,
    round: usize,
    acked: Acked,
) -> usize {
    let mut producer = v1::producer_client::ProducerClient::new(channel);
    for i in 0.. {
        let partition = (i % PARTITIONS as usize) as u32;
        let values: Vec<Vec<u8>> = (0..1 + i % 4)
            .map(|j| {
                format!(
                    "round {round} task {task} batch {i} record {j} {}",
                    "v".repeat(i % 200)
                )
                .into_bytes()
            })
            .collect();
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
        let r = producer
            .produce(v1::ProduceRequest {
                topic: "events".into(),
                partition,
                batch: batch_of(Some(b"key"), &refs).into_bytes(),
                acks: v1::Acks::Durable as i32,
            })
            .await;
        let Ok(r) = r else { return i };
        let r = r.into_inner();
        let mut map = acked.lock().unwrap();
        for (j, v) in values.into_iter().enumerate() {
            let previous = map.insert((partition, r.base_offset + j as u64), v);
            assert!(
                previous.is_none(),
                "offset {} of partition {partition} was handed out twice",
                r.base_offset + j as u64
            );
        }
    }
    unreachable!()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_loop_with_durable_acks_loses_no_acknowledged_byte() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path(), &["--segment-bytes", "65536"]).await;
    create_topic(&broker, "events", PARTITIONS).await;
    let acked: Acked = Arc::default();
    for round in 0..ROUNDS {
        let channel = broker.channel().await;
        let before = acked.lock().unwrap().len();
        let producers: Vec<_> = (0..2)
            .map(|task| {
                tokio::spawn(produce_until_gone(
                    channel.clone(),
                    task,
                    round,
                    Arc::clone(&acked),
                ))
            })
            .collect();
        // Kill at a different point each round, while appends are in flight.
        let target = before + 40 + 37 * round;
        eventually(
            "the producers to reach this round's kill point",
            async || acked.lock().unwrap().len() >= target,
        )
        .await;
        broker.kill9_in_place();
        for p in producers {
            p.await.unwrap();
        }
        broker.restart().await;
        let expected = acked.lock().unwrap().clone();
        for partition in 0..PARTITIONS {
            let stored: BTreeMap<u64, Vec<u8>> = fetch_all(&broker, "events", partition, 0)
                .await
                .into_iter()
                .map(|(offset, _, value)| (offset, value))
                .collect();
            for ((p, offset), value) in expected.range((partition, 0)..(partition + 1, 0)) {
                assert_eq!(*p, partition);
                assert_eq!(
                    stored.get(offset),
                    Some(value),
                    "round {round}: acknowledged record {partition}/{offset} lost or changed"
                );
            }
        }
    }
    assert!(acked.lock().unwrap().len() >= ROUNDS * 40);
}

/// Unmounts the test's tmpfs when dropped.
struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// On a small file system: produce answers RESOURCE_EXHAUSTED once it is
/// full, nothing acknowledged before is damaged, and produce works again
/// once space is freed, also across a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_answers_resource_exhausted_and_recovers_when_space_is_freed() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: mounting a size-limited tmpfs needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=12m", "brook-disk-full"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!(
            "SKIPPED: could not mount a tmpfs at {} (no mount permission in this sandbox?)",
            dir.path().display()
        );
        return;
    }
    let _mount = Mount(dir.path().to_path_buf());
    let filler = dir.path().join("filler");
    std::fs::write(&filler, vec![1u8; 7 << 20]).unwrap();
    let data = dir.path().join("data");
    let mut broker = Broker::start(&data, &[]).await;
    create_topic(&broker, "big", 1).await;
    let mut producer = broker.producer().await;
    let value = vec![b'x'; 32 << 10];
    let produce = |i: u32| v1::ProduceRequest {
        topic: "big".into(),
        partition: 0,
        batch: batch_of(Some(format!("k{i}").as_bytes()), &[&value]).into_bytes(),
        acks: v1::Acks::Durable as i32,
    };
    let mut acked = Vec::new();
    let full = loop {
        assert!(acked.len() < 1000, "a 12 MiB file system never filled up");
        match producer.produce(produce(acked.len() as u32)).await {
            Ok(r) => acked.push(r.into_inner().base_offset),
            Err(status) => break status,
        }
    };
    assert_eq!(full.code(), Code::ResourceExhausted, "{full:?}");
    assert!(full.message().contains("disk full"), "{full:?}");
    assert!(acked.len() > 10, "some batches fit before the disk filled");
    let check = |stored: Vec<(u64, Option<Vec<u8>>, Vec<u8>)>, n: usize| {
        assert_eq!(
            stored.len(),
            n,
            "every acknowledged record is there, nothing else"
        );
        for (i, (offset, key, v)) in stored.iter().enumerate() {
            assert_eq!(*offset, i as u64);
            assert_eq!(key.as_deref(), Some(format!("k{i}").as_bytes()));
            assert_eq!(v, &value);
        }
    };
    check(fetch_all(&broker, "big", 0, 0).await, acked.len());

    std::fs::remove_file(&filler).unwrap();
    let r = producer
        .produce(produce(acked.len() as u32))
        .await
        .expect("produce after space was freed");
    assert_eq!(r.into_inner().base_offset, acked.len() as u64);
    broker.kill9_in_place();
    broker.restart().await;
    check(fetch_all(&broker, "big", 0, 0).await, acked.len() + 1);
}
