//! Consumer groups against a real broker: sharing partitions, rebalancing
//! on leave/rejoin/crash/expiry, fencing zombies, durable commits, lag, replay.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};

use brook_protocol::batch::{Batch, BatchBuilder};
use brook_protocol::v1::{self, member_event::Event};
use brook_tests::group::{Consumed, Session, commit, committed, partitions, run_member};
use brook_tests::{Broker, DEADLINE, create_topic, eventually, fetch_all};
use tokio::sync::watch;

async fn publish(b: &Broker, topic: &str, n: usize, tag: &str) {
    let records = (0..n)
        .map(|i| v1::PublishRecord {
            key: Some(format!("order-{i}").into_bytes().into()),
            value: Some(format!("{tag}-{i}").into_bytes().into()),
            ..Default::default()
        })
        .collect();
    b.producer()
        .await
        .publish(v1::PublishRequest {
            topic: topic.into(),
            records,
            acks: 0,
        })
        .await
        .unwrap();
}

fn groups_client(
    ch: tonic::transport::Channel,
) -> v1::groups_client::GroupsClient<tonic::transport::Channel> {
    v1::groups_client::GroupsClient::new(ch)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_members_share_six_partitions_exactly_once_across_leave_and_rejoin() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Arc::new(Broker::start(dir.path(), &[]).await);
    create_topic(&broker, "orders", 6).await;
    let consumed: Consumed = Arc::new(Mutex::new(Vec::new()));
    let start = |name: &str| {
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run_member(
            Arc::clone(&broker),
            "billing".into(),
            "orders".into(),
            name.into(),
            Arc::clone(&consumed),
            stop_rx,
        ));
        (stop_tx, task)
    };
    let count = |c: &Consumed| c.lock().unwrap().len();
    let a = start("a");
    let b = start("b");
    let c = start("c");
    let mut groups = groups_client(broker.channel().await);
    eventually("3 stable members, 2 partitions each", async || {
        let req = v1::DescribeGroupRequest {
            group: "billing".into(),
        };
        // NOT_FOUND until the first member has joined.
        let Ok(d) = groups.describe_group(req).await.map(|r| r.into_inner()) else {
            return false;
        };
        d.state == v1::GroupState::Stable as i32
            && d.members.len() == 3
            && d.members
                .iter()
                .all(|m| partitions(&m.assignment).len() == 2)
    })
    .await;
    publish(&broker, "orders", 120, "one").await;
    eventually("first 120 consumed", async || count(&consumed) >= 120).await;

    // c leaves (commits, closes its stream); the others take over its partitions.
    c.0.send(true).unwrap();
    c.1.await.unwrap();
    publish(&broker, "orders", 120, "two").await;
    eventually("240 consumed by two members", async || {
        count(&consumed) >= 240
    })
    .await;
    // c comes back as a new member.
    let c2 = start("c2");
    eventually("3 members again", async || {
        let req = v1::DescribeGroupRequest {
            group: "billing".into(),
        };
        let Ok(d) = groups.describe_group(req).await.map(|r| r.into_inner()) else {
            return false;
        };
        d.state == v1::GroupState::Stable as i32 && d.members.len() == 3
    })
    .await;
    publish(&broker, "orders", 120, "three").await;
    eventually("all 360 consumed", async || count(&consumed) >= 360).await;

    // Every partition has exactly one member now.
    let d = groups
        .describe_group(v1::DescribeGroupRequest {
            group: "billing".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let mut owners: BTreeMap<u32, usize> = BTreeMap::new();
    for m in &d.members {
        for p in partitions(&m.assignment) {
            *owners.entry(p).or_default() += 1;
        }
    }
    assert_eq!(
        owners,
        (0..6).map(|p| (p, 1)).collect(),
        "each partition has exactly one member"
    );
    for (stop, task) in [a, b, c2] {
        stop.send(true).unwrap();
        task.await.unwrap();
    }
    // Exactly once: every stored record was processed by exactly one member, once.
    let log = consumed.lock().unwrap().clone();
    let mut seen = BTreeSet::new();
    for (member, p, o) in &log {
        assert!(
            seen.insert((*p, *o)),
            "record {p}/{o} consumed twice (second time by {member})"
        );
    }
    let mut stored = BTreeSet::new();
    for p in 0..6 {
        for (o, _, _) in fetch_all(&broker, "orders", p, 0).await {
            stored.insert((p, o));
        }
    }
    assert_eq!(seen, stored, "no record missed");
    let lag = groups
        .get_consumer_lag(v1::GetConsumerLagRequest {
            group: "billing".into(),
            topic: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        lag.total_lag_records, 0,
        "everything consumed was committed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_member_loses_its_partitions_and_its_commits_are_fenced() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    create_topic(&broker, "t", 4).await;
    publish(&broker, "t", 20, "x").await;
    let mut alive = Session::join(&broker, "g", "t", "alive", 10_000).await;
    let Some(Event::Assignment(first)) = alive.next().await else {
        panic!("alive gets everything first")
    };
    assert_eq!(partitions(&first.partitions).len(), 4);

    // The zombie joins with a short session and never heartbeats.
    let mut zombie = Session::join(&broker, "g", "t", "zombie", 1_000).await;
    let Some(Event::Revoke(r)) = alive.next().await else {
        panic!("alive must give partitions up")
    };
    alive.revoke_done(r.generation).await;
    let Some(Event::Assignment(a)) = alive.next().await else {
        panic!("new assignment")
    };
    let Some(Event::Assignment(z)) = zombie.next().await else {
        panic!("zombie assignment")
    };
    assert_eq!(
        partitions(&a.partitions).len() + partitions(&z.partitions).len(),
        4
    );
    let zombie_positions: BTreeMap<u32, u64> = partitions(&z.partitions)
        .into_iter()
        .map(|p| (p, 1))
        .collect();
    commit(
        &broker,
        "g",
        "t",
        &zombie.member_id,
        z.generation,
        &zombie_positions,
    )
    .await
    .expect("a live member's commit works");

    // alive keeps heartbeating; the zombie's session runs out and alive gets everything.
    let all = loop {
        alive.heartbeat().await;
        match tokio::time::timeout(
            std::time::Duration::from_millis(200),
            alive.events.message(),
        )
        .await
        {
            Ok(Ok(Some(v1::MemberEvent {
                event: Some(Event::Assignment(a)),
            }))) => break a,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => continue,
        }
    };
    assert_eq!(partitions(&all.partitions).len(), 4);
    assert!(all.generation > z.generation);
    assert!(
        zombie.next().await.is_none(),
        "the broker ended the zombie's session"
    );
    let err = commit(
        &broker,
        "g",
        "t",
        &zombie.member_id,
        z.generation,
        &zombie_positions,
    )
    .await
    .unwrap_err();
    assert_eq!(
        err.code(),
        tonic::Code::FailedPrecondition,
        "{}",
        err.message()
    );
    assert!(
        matches!(
            brook_tests::reason(&err).as_deref(),
            Some("STALE_GENERATION" | "UNKNOWN_MEMBER")
        ),
        "{err:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_survive_a_clean_restart_and_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    create_topic(&broker, "t", 3).await;
    publish(&broker, "t", 30, "x").await;
    let first: BTreeMap<u32, u64> = [(0, 3), (1, 5), (2, 1)].into();
    commit(&broker, "g", "t", "", 0, &first).await.unwrap();
    assert!(broker.terminate().success());
    let broker = Broker::start(dir.path(), &[]).await;
    assert_eq!(committed(&broker, "g", "t").await, first);

    let second: BTreeMap<u32, u64> = [(0, 4), (2, 2)].into();
    commit(&broker, "g", "t", "", 0, &second).await.unwrap();
    broker.kill9();
    let broker = Broker::start(dir.path(), &[]).await;
    assert_eq!(
        committed(&broker, "g", "t").await,
        [(0, 4), (1, 5), (2, 2)].into()
    );
}

/// A data directory from before the offsets log (one `<group>.offsets`
/// text file per group): the broker folds the files into the log and the
/// group goes on from its commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_of_the_first_format_are_kept_across_the_upgrade() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    create_topic(&broker, "t", 2).await;
    publish(&broker, "t", 20, "x").await;
    assert!(broker.terminate().success());
    let groups = dir.path().join("~groups");
    std::fs::create_dir_all(&groups).unwrap();
    std::fs::write(
        groups.join("billing.offsets"),
        "brook-offsets 1\nt 0 3 1700000000000 \nt 1 7 1700000000000 6d\n",
    )
    .unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    assert_eq!(
        committed(&broker, "billing", "t").await,
        [(0, 3), (1, 7)].into()
    );
    assert!(!groups.join("billing.offsets").exists());
    let later: BTreeMap<u32, u64> = [(0, 4)].into();
    commit(&broker, "billing", "t", "", 0, &later)
        .await
        .unwrap();
    broker.kill9();
    let broker = Broker::start(dir.path(), &[]).await;
    assert_eq!(
        committed(&broker, "billing", "t").await,
        [(0, 4), (1, 7)].into()
    );
}

/// What a commit's answer waits for: with `--flush never` a plain commit
/// is answered without a sync of the offsets log, a durable one after one
/// (the broker's own count, `brook_offsets_log_syncs_total`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_durable_commits_wait_for_a_sync() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &["--flush", "never"]).await;
    create_topic(&broker, "t", 1).await;
    publish(&broker, "t", 10, "x").await;
    let syncs = async || {
        let text = broker.metrics_text().await;
        let line = text
            .lines()
            .find(|l| l.starts_with("brook_offsets_log_syncs_total "))
            .unwrap_or_else(|| panic!("no sync count in {text}"))
            .to_string();
        line.rsplit(' ').next().unwrap().parse::<u64>().unwrap()
    };
    let mut groups = v1::groups_client::GroupsClient::new(broker.channel().await);
    let commit = |offset: u64, durable: bool| v1::CommitRequest {
        group: "g".into(),
        offsets: vec![v1::OffsetCommit {
            topic: "t".into(),
            partition: 0,
            offset,
            ..Default::default()
        }],
        durable,
        ..Default::default()
    };
    let before = syncs().await;
    groups.commit(commit(3, false)).await.unwrap();
    groups.commit(commit(4, false)).await.unwrap();
    assert_eq!(syncs().await, before, "a plain commit does not sync");
    groups.commit(commit(5, true)).await.unwrap();
    assert_eq!(syncs().await, before + 1, "a durable commit syncs");
    assert_eq!(committed(&broker, "g", "t").await, [(0, 5)].into());
}

/// One partition with 100 records, record i stamped `base + i * 1000` ms.
async fn timed_records(b: &Broker, topic: &str, base: i64) {
    create_topic(b, topic, 1).await;
    let mut builder = BatchBuilder::new();
    for i in 0..100i64 {
        builder.push(base + i * 1000, None, Some(format!("r{i}").as_bytes()), &[]);
    }
    let batch = Batch::parse(builder.build(0)).unwrap().into_bytes();
    let req = v1::ProduceRequest {
        topic: topic.into(),
        partition: 0,
        batch,
        acks: 0,
    };
    b.producer().await.produce(req).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lag_is_exact_in_records_and_time() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    let base = brook_storage_now() - 3_600_000;
    timed_records(&broker, "pay", base).await;
    commit(&broker, "billing", "pay", "", 0, &[(0, 60)].into())
        .await
        .unwrap();
    let mut groups = groups_client(broker.channel().await);
    let before = brook_storage_now();
    let lag = groups
        .get_consumer_lag(v1::GetConsumerLagRequest {
            group: "billing".into(),
            topic: "pay".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let after = brook_storage_now();
    let p = &lag.partitions[0];
    assert_eq!(
        (p.committed_offset, p.log_end_offset, p.lag_records),
        (Some(60), 100, 40)
    );
    let ts60 = base + 60_000;
    assert!(
        (before - ts60..=after - ts60).contains(&p.lag_ms),
        "time lag {} is the age of record 60",
        p.lag_ms
    );
    assert_eq!((lag.total_lag_records, lag.topics[0].lag_records), (40, 40));
    let metrics = http_get(broker.metrics, "/metrics").await;
    assert!(
        metrics.contains(
            "brook_consumer_lag_records{group=\"billing\",topic=\"pay\",partition=\"0\"} 40"
        ),
        "{metrics}"
    );

    commit(&broker, "billing", "pay", "", 0, &[(0, 100)].into())
        .await
        .unwrap();
    let lag = groups
        .get_consumer_lag(v1::GetConsumerLagRequest {
            group: "billing".into(),
            topic: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!((lag.total_lag_records, lag.max_lag_ms), (0, 0));
    let unknown = groups
        .get_consumer_lag(v1::GetConsumerLagRequest {
            group: "nobody".into(),
            topic: String::new(),
        })
        .await;
    let unknown = unknown.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound);
    assert_eq!(
        brook_tests::reason(&unknown).as_deref(),
        Some("GROUP_NOT_FOUND")
    );
    assert_eq!(
        brook_tests::error_metadata(&unknown, "group").as_deref(),
        Some("nobody")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_to_a_timestamp_replays_exactly_the_records_at_or_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    let base = 1_700_000_000_000;
    timed_records(&broker, "ev", base).await;
    commit(&broker, "audit", "ev", "", 0, &[(0, 100)].into())
        .await
        .unwrap();
    let mut groups = groups_client(broker.channel().await);
    let to_time = |t: i64, dry_run: bool| v1::ResetOffsetsRequest {
        group: "audit".into(),
        topic: "ev".into(),
        to: Some(v1::reset_offsets_request::To::TimestampMs(t)),
        dry_run,
        ..Default::default()
    };
    let dry = groups
        .reset_offsets(to_time(base + 42_500, true))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        (dry.changes[0].before, dry.changes[0].after, dry.applied),
        (Some(100), 43, false)
    );
    assert_eq!(
        committed(&broker, "audit", "ev").await,
        [(0, 100)].into(),
        "a dry run changes nothing"
    );

    groups
        .reset_offsets(to_time(base + 42_500, false))
        .await
        .unwrap();
    let from = committed(&broker, "audit", "ev").await[&0];
    let replay = fetch_all(&broker, "ev", 0, from).await;
    let values: Vec<String> = replay
        .iter()
        .map(|r| String::from_utf8(r.2.clone()).unwrap())
        .collect();
    assert_eq!(
        values,
        (43..100).map(|i| format!("r{i}")).collect::<Vec<_>>(),
        "exactly the records at or after the time"
    );

    let shift = v1::ResetOffsetsRequest {
        group: "audit".into(),
        topic: "ev".into(),
        to: Some(v1::reset_offsets_request::To::ShiftBy(-50)),
        ..Default::default()
    };
    let r = groups.reset_offsets(shift).await.unwrap().into_inner();
    assert_eq!(r.changes[0].after, 0, "shifts clamp to the log start");

    // Not while members are active, unless forced.
    let member = Session::join(&broker, "audit", "ev", "m", 10_000).await;
    let err = groups
        .reset_offsets(to_time(base, false))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::FailedPrecondition);
    assert_eq!(
        brook_tests::reason(&err).as_deref(),
        Some("GROUP_NOT_EMPTY")
    );
    assert!(
        err.message().contains("has 1 active member:") && err.message().contains("--force"),
        "{}",
        err.message()
    );
    // A dry run changes nothing: it is answered while members run.
    let dry = groups
        .reset_offsets(to_time(base + 99_000, true))
        .await
        .unwrap()
        .into_inner();
    assert!(!dry.applied);
    assert_eq!((dry.changes[0].before, dry.changes[0].after), (Some(0), 99));
    assert_eq!(committed(&broker, "audit", "ev").await[&0], 0, "unchanged");
    groups
        .reset_offsets(v1::ResetOffsetsRequest {
            force: true,
            ..to_time(base + 99_000, false)
        })
        .await
        .unwrap();
    assert_eq!(committed(&broker, "audit", "ev").await[&0], 99);
    drop(member);
}

fn brook_storage_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

async fn http_get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nHost: brook\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

/// Environment variable that makes the test binary the member process of
/// the SIGKILL test; its value is the broker's gRPC address.
const MEMBER_CHILD: &str = "BROOK_TEST_MEMBER_CHILD_ADDR";

/// Child side: join, heartbeat, acknowledge revocations, report assignments.
#[tokio::test]
async fn member_child() {
    let Ok(addr) = std::env::var(MEMBER_CHILD) else {
        return;
    };
    let channel = tonic::transport::Channel::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    let mut s = Session::join_over(channel, "shipping", "orders", "child", 2_000).await;
    let mut beat = tokio::time::interval(std::time::Duration::from_millis(300));
    loop {
        tokio::select! {
            ev = s.events.message() => match ev.ok().flatten().and_then(|e| e.event) {
                Some(Event::Revoke(r)) => s.revoke_done(r.generation).await,
                Some(Event::Assignment(a)) => println!("\nassigned {}", partitions(&a.partitions).len()),
                Some(_) => {}
                None => return,
            },
            _ = beat.tick() => s.heartbeat().await,
        }
    }
}

/// Waits for the member's next assignment, heartbeating and acknowledging
/// revocations meanwhile.
async fn next_assignment(s: &mut Session) -> v1::Assignment {
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        assert!(
            std::time::Instant::now() < deadline,
            "no new assignment in time"
        );
        s.heartbeat().await;
        match tokio::time::timeout(std::time::Duration::from_millis(200), s.events.message()).await
        {
            Ok(Ok(Some(v1::MemberEvent {
                event: Some(Event::Assignment(a)),
            }))) => return a,
            Ok(Ok(Some(v1::MemberEvent {
                event: Some(Event::Revoke(r)),
            }))) => s.revoke_done(r.generation).await,
            Ok(other) => panic!("unexpected {other:?}"),
            Err(_) => {}
        }
    }
}

/// A member process killed with SIGKILL (no goodbye): its partitions move
/// to the remaining member, with no wait for its session timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_members_partitions_move_to_the_others() {
    use std::io::BufRead;
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    create_topic(&broker, "orders", 6).await;
    let mut stays = Session::join(&broker, "shipping", "orders", "stays", 10_000).await;
    assert_eq!(
        partitions(&next_assignment(&mut stays).await.partitions).len(),
        6
    );

    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "member_child", "--nocapture", "--test-threads=1"])
        .env(MEMBER_CHILD, broker.grpc.to_string())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // The child's lines, read on a thread so this task can keep heartbeating.
    let (lines_tx, mut lines) = tokio::sync::mpsc::unbounded_channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
        {
            let _ = lines_tx.send(line);
        }
    });
    let shared = next_assignment(&mut stays).await;
    assert_eq!(
        partitions(&shared.partitions).len(),
        3,
        "half went to the child"
    );
    loop {
        let line = tokio::time::timeout(DEADLINE, lines.recv())
            .await
            .expect("the child reports")
            .expect("child output");
        // libtest may print "test member_child ... " on the same line first.
        if let Some(n) = line.split("assigned ").nth(1) {
            assert_eq!(n, "3");
            break;
        }
    }

    child.kill().unwrap(); // SIGKILL: no leave, no goodbye
    child.wait().unwrap();
    let moved = next_assignment(&mut stays).await;
    assert_eq!(
        partitions(&moved.partitions).len(),
        6,
        "the killed member's partitions moved"
    );
    let d = groups_client(broker.channel().await)
        .describe_group(v1::DescribeGroupRequest {
            group: "shipping".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.members.len(), 1);
}

/// One rule for every read of a named group: a group the broker does not
/// know answers NOT_FOUND, FetchCommitted included; and the metrics count
/// group methods under a `group` label, not `topic`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_groups_are_not_found_everywhere_and_counted_by_group() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    let mut groups = v1::groups_client::GroupsClient::new(broker.channel().await);
    let fetch = groups
        .fetch_committed(v1::FetchCommittedRequest {
            group: "nobody".into(),
            topic: String::new(),
        })
        .await
        .unwrap_err();
    let describe = groups
        .describe_group(v1::DescribeGroupRequest {
            group: "nobody".into(),
        })
        .await
        .unwrap_err();
    let lag = groups
        .get_consumer_lag(v1::GetConsumerLagRequest {
            group: "nobody".into(),
            topic: String::new(),
        })
        .await
        .unwrap_err();
    let delete = groups
        .delete_group(v1::DeleteGroupRequest {
            group: "nobody".into(),
        })
        .await
        .unwrap_err();
    for (what, status) in [
        ("FetchCommitted", fetch),
        ("DescribeGroup", describe),
        ("GetConsumerLag", lag),
        ("DeleteGroup", delete),
    ] {
        assert_eq!(status.code(), tonic::Code::NotFound, "{what}: {status:?}");
        assert_eq!(
            brook_tests::reason(&status).as_deref(),
            Some("GROUP_NOT_FOUND"),
            "{what}"
        );
        assert!(status.message().contains("nobody"), "{what}: {status:?}");
    }
    let text = http_get(broker.metrics, "/metrics").await;
    assert!(
        text.contains(r#"brook_requests_total{method="FetchCommitted",topic="",group="nobody"} 1"#),
        "{text}"
    );
}
