//! Deleting a topic under its readers: subscriptions and long polls end
//! with NOT_FOUND at once, group members lose its partitions, and the broker
//! lets go of the deleted files (their disk space is freed) instead of
//! holding them open and mapped for as long as a reader waits.

use brook_protocol::v1::{self, member_event::Event};
use brook_tests::group::{Session, partitions};
use brook_tests::{Broker, DEADLINE, batch_of, create_topic};
use tokio_stream::StreamExt;
use tonic::Code;

/// The broker's open descriptors and mappings of segment files under `data`
/// (only there: its standard streams may well be a file named `*.log`).
fn segment_files_held(pid: u32, data: &std::path::Path) -> Vec<String> {
    let mut held: Vec<String> = std::fs::read_to_string(format!("/proc/{pid}/maps"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5).map(str::to_string))
        .collect();
    if let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) {
        held.extend(
            fds.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .map(|p| p.display().to_string()),
        );
    }
    let data = data.display().to_string();
    // Segment files of topics: the broker's own files (`~groups/offsets.log`) are not.
    held.retain(|p| {
        p.starts_with(&data)
            && !p.contains("/~")
            && [".log", ".index", ".timeindex"]
                .iter()
                .any(|x| p.contains(x))
    });
    held
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_of_a_deleted_topic_are_told_and_its_files_are_let_go() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    create_topic(&broker, "d", 1).await;
    let mut producer = broker.producer().await;
    producer
        .produce(v1::ProduceRequest {
            topic: "d".into(),
            partition: 0,
            batch: batch_of(Some(b"k"), &[b"v"]).into_bytes(),
            acks: 0,
        })
        .await
        .unwrap();
    let data = dir.path().canonicalize().unwrap();
    assert!(
        !segment_files_held(broker.pid(), &data).is_empty(),
        "the check sees the files"
    );

    // A subscription waiting at the end, a long poll, a group member.
    let mut subscription = broker
        .consumer()
        .await
        .subscribe(v1::SubscribeRequest {
            topic: "d".into(),
            start: Some(v1::StartPosition {
                position: Some(v1::start_position::Position::Latest(v1::Latest {})),
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut poller = broker.consumer().await;
    let long_poll = tokio::spawn(async move {
        poller
            .fetch(v1::FetchRequest {
                topic: "d".into(),
                partition: 0,
                offset: 1,
                max_bytes: 0,
                min_bytes: 1,
                max_wait_ms: 600_000,
                decoded: false,
            })
            .await
    });
    let mut member = Session::join(&broker, "g", "d", "m", 30_000).await;
    let Some(Event::Assignment(a)) = member.next().await else {
        panic!("an assignment")
    };
    assert_eq!(partitions(&a.partitions), [0]);

    broker
        .topics()
        .await
        .delete_topic(v1::DeleteTopicRequest { name: "d".into() })
        .await
        .unwrap();

    let ended = tokio::time::timeout(DEADLINE, subscription.next())
        .await
        .expect("the subscription ends at once");
    let status = ended.expect("a status").expect_err("NOT_FOUND");
    assert_eq!(status.code(), Code::NotFound, "{status:?}");
    assert_eq!(
        brook_tests::reason(&status).as_deref(),
        Some("TOPIC_NOT_FOUND")
    );
    let polled = tokio::time::timeout(DEADLINE, long_poll)
        .await
        .expect("the long poll ends at once")
        .unwrap();
    assert_eq!(polled.unwrap_err().code(), Code::NotFound);

    // The member gives the partition up and is left with nothing.
    let Some(Event::Revoke(r)) = member.next().await else {
        panic!("a revoke")
    };
    member.revoke_done(r.generation).await;
    let Some(Event::Assignment(a)) = member.next().await else {
        panic!("a new assignment")
    };
    assert!(partitions(&a.partitions).is_empty(), "{a:?}");

    let pid = broker.pid();
    brook_tests::eventually("the deleted files to be let go", async || {
        segment_files_held(pid, &data).is_empty()
    })
    .await;
}
