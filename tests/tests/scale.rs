//! Many partitions and few descriptors, against the real broker: what an
//! idle partition costs in file descriptors and reserved disk, and what
//! running out of descriptors looks like to clients.
//! (The 10,000-partition run with timings is `scripts/scale.sh`.)

use std::os::unix::fs::MetadataExt;
use std::path::Path;

use brook_protocol::v1;
use brook_tests::{Broker, batch_of, create_topic, eventually};
use tonic::Code;

const TOPICS: u32 = 250;
const PER_TOPIC: u32 = 8;

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

/// Bytes of disk the files under `dir` hold (allocated blocks, as `du`).
fn reserved_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else {
                total += meta.blocks() * 512;
            }
        }
    }
    total
}

fn hard_nofile() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) };
    lim.rlim_max
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_thousand_idle_partitions_cost_one_descriptor_and_about_a_mebibyte_each() {
    let partitions = (TOPICS * PER_TOPIC) as usize;
    if hard_nofile() < partitions as u64 + 500 {
        eprintln!(
            "SKIPPED: the hard RLIMIT_NOFILE ({}) is below {partitions} partitions + 500",
            hard_nofile()
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path(), &[]).await;
    let mut topics = broker.topics().await;
    let mut producer = broker.producer().await;
    for t in 0..TOPICS {
        let name = format!("t{t:04}");
        topics
            .create_topic(v1::CreateTopicRequest {
                name: name.clone(),
                config: Some(v1::TopicConfig {
                    partitions: PER_TOPIC,
                    ..Default::default()
                }),
            })
            .await
            .unwrap_or_else(|s| panic!("creating {name}: {s:?}"));
        for p in 0..PER_TOPIC {
            producer
                .produce(v1::ProduceRequest {
                    topic: name.clone(),
                    partition: p,
                    batch: batch_of(Some(b"k"), &[b"one small record"]).into_bytes(),
                    acks: v1::Acks::Written as i32,
                })
                .await
                .unwrap();
        }
    }
    let bound_fds = partitions + 100;
    let bound_disk = partitions as u64 * (2 << 20);
    let check = |what: &str, pid: u32| {
        let fds = open_fds(pid);
        let disk = reserved_bytes(dir.path());
        eprintln!(
            "{what}: {partitions} partitions, {fds} descriptors, {} MiB reserved",
            disk >> 20
        );
        assert!(
            fds <= bound_fds,
            "{what}: {fds} descriptors for {partitions} partitions"
        );
        assert!(
            disk <= bound_disk,
            "{what}: {} MiB reserved for {partitions} idle partitions",
            disk >> 20
        );
    };
    check("after creating", broker.pid());
    broker.kill9_in_place();
    broker.restart().await;
    check("after kill -9 and restart", broker.pid());
    let (grpc, _) = (broker.grpc, ());
    assert!(
        broker.terminate().success(),
        "a clean stop of {partitions} partitions"
    );
    let broker = Broker::spawn_at(dir.path(), &grpc.to_string(), &[]);
    broker.wait_serving().await;
    check("after a clean stop and restart", broker.pid());
    // Every partition still holds its record.
    let mut consumer = broker.consumer().await;
    for t in [0, TOPICS / 2, TOPICS - 1] {
        for p in 0..PER_TOPIC {
            let r = consumer
                .fetch(v1::FetchRequest {
                    topic: format!("t{t:04}"),
                    partition: p,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.log_end_offset, 1);
        }
    }
}

/// Out of descriptors: creating partitions fails with RESOURCE_EXHAUSTED
/// and a clear message (never INTERNAL), failed accepts are counted, and
/// the broker serves again once descriptors are free.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_out_of_descriptors_is_resource_exhausted_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::spawn_with_nofile(dir.path(), &[], 128);
    broker.wait_serving().await;
    let mut topics = broker.topics().await;
    let err = topics
        .create_topic(v1::CreateTopicRequest {
            name: "wide".into(),
            config: Some(v1::TopicConfig {
                partitions: 200,
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert!(err.message().contains("file descriptors"), "{err:?}");
    // The half-made topic was cleaned away: a smaller one can be made.
    create_topic(&broker, "narrow", 4).await;
    // More connections than descriptors: accepts fail, are counted, and stop once they close.
    let flood: Vec<std::net::TcpStream> = (0..200)
        .filter_map(|_| std::net::TcpStream::connect(broker.grpc).ok())
        .collect();
    // Wait until the broker holds (nearly) all the descriptors it may: its
    // next accept fails with EMFILE while the flood lasts.
    eventually("the broker to run out of descriptors", async || {
        open_fds(broker.pid()) >= 120
    })
    .await;
    drop(flood);
    eventually("failed accepts to be counted", async || {
        let text = broker.metrics_text().await;
        text.lines()
            .find_map(|l| l.strip_prefix("brook_accept_errors_total "))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .is_some_and(|n| n > 0)
    })
    .await;
    let list = broker
        .topics()
        .await
        .list_topics(v1::ListTopicsRequest {})
        .await
        .unwrap();
    assert_eq!(list.into_inner().topics.len(), 1, "the broker serves again");
}
