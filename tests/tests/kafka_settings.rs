//! The Kafka listener's settings (docs/kafka.md, "Settings") against a real
//! broker process: `--kafka-advertised-address`, `--auto-create-topics`
//! with `--default-partitions`, and `--kafka-listen off`; and the
//! operator commands (`brook lag`, `brook group reset-offsets`) on a group
//! of Kafka consumers. Raw requests are encoded and their answers decoded
//! with the `kafka-protocol` crate, as a client would; the consumer is
//! confluent-kafka (`consume-commit` in tests/kafka/clients.py).

use std::collections::{BTreeMap, BTreeSet};
use std::net::{SocketAddr, TcpStream};

use brook_protocol::v1;
use brook_tests::group::committed;
use brook_tests::kafka::{call, clients, run_json};
use brook_tests::{
    Broker, DEADLINE, brook_cli, create_topic, describe_topic, eventually, fetch_all,
};
use kafka_protocol::messages::{
    ApiKey, FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest, MetadataResponse,
    TopicName, metadata_request,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::{Value, json};

/// Kafka's `UNKNOWN_TOPIC_OR_PARTITION`.
const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;

/// A connection to a Kafka listener, as a client opens one.
fn kafka_connection(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).expect("connecting to the Kafka listener");
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    s
}

fn topic_name(name: &str) -> TopicName {
    TopicName(StrBytes::from_string(name.to_string()))
}

/// Metadata for `topics` (`None`: every topic), the client allowing
/// auto-creation or not.
fn metadata(
    s: &mut TcpStream,
    version: i16,
    correlation: i32,
    topics: Option<&[&str]>,
    allow_auto_topic_creation: bool,
) -> MetadataResponse {
    let topics: Option<Vec<_>> = topics.map(|names| {
        names
            .iter()
            .map(|n| {
                metadata_request::MetadataRequestTopic::default().with_name(Some(topic_name(n)))
            })
            .collect()
    });
    let request = MetadataRequest::default()
        .with_topics(topics)
        .with_allow_auto_topic_creation(allow_auto_topic_creation);
    call(s, ApiKey::Metadata as i16, version, correlation, &request)
}

/// The error code of `name` in a Metadata answer, and its partition
/// indexes.
fn topic_answer(r: &MetadataResponse, name: &str) -> (i16, Vec<i32>) {
    let t = r
        .topics
        .iter()
        .find(|t| t.name.as_ref().is_some_and(|n| n.as_str() == name))
        .unwrap_or_else(|| panic!("no {name} in the answer: {r:?}"));
    let partitions = t.partitions.iter().map(|p| p.partition_index).collect();
    (t.error_code, partitions)
}

/// Fails unless DescribeTopic over gRPC answers NOT_FOUND for `name`.
async fn assert_no_topic(b: &Broker, name: &str) {
    let gone = b
        .topics()
        .await
        .describe_topic(v1::DescribeTopicRequest { name: name.into() })
        .await
        .expect_err("the topic does not exist");
    assert_eq!(gone.code(), tonic::Code::NotFound, "{name}: {gone:?}");
}

/// Where the Kafka listener at `addr` tells a client to connect, as
/// `(host, port)`: the broker of Metadata v12 and v1 (every topic), and the
/// coordinator of FindCoordinator v3 (one group, `key`) and v4 (two groups,
/// `coordinator_keys`); every answer checked for node 0 and no error.
fn addresses_told(addr: SocketAddr) -> Vec<(String, i32)> {
    let mut s = kafka_connection(addr);
    let mut told = Vec::new();
    for (correlation, version) in [(1, 12), (2, 1)] {
        let r = metadata(&mut s, version, correlation, None, true);
        assert_eq!(r.brokers.len(), 1, "Metadata v{version}: {r:?}");
        let broker = &r.brokers[0];
        assert_eq!(broker.node_id.0, 0, "Metadata v{version}: {r:?}");
        told.push((broker.host.as_str().to_string(), broker.port));
    }

    let one = FindCoordinatorRequest::default()
        .with_key(StrBytes::from_static_str("billing"))
        .with_key_type(0);
    let r: FindCoordinatorResponse = call(&mut s, ApiKey::FindCoordinator as i16, 3, 3, &one);
    assert_eq!((r.error_code, r.node_id.0), (0, 0), "{r:?}");
    told.push((r.host.as_str().to_string(), r.port));

    let keys = ["billing", "audit"];
    let many = FindCoordinatorRequest::default()
        .with_key_type(0)
        .with_coordinator_keys(keys.map(StrBytes::from_static_str).to_vec());
    let r: FindCoordinatorResponse = call(&mut s, ApiKey::FindCoordinator as i16, 4, 4, &many);
    let answered: Vec<&str> = r.coordinators.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(answered, keys, "one coordinator per key: {r:?}");
    for c in &r.coordinators {
        assert_eq!((c.error_code, c.node_id.0), (0, 0), "{r:?}");
        told.push((c.host.as_str().to_string(), c.port));
    }
    told
}

/// With `--kafka-advertised-address`, Metadata and FindCoordinator (the
/// single-key and the batched form) tell clients to connect to that
/// `host:port`, not to the address the listener is bound to; without it,
/// they name the bound address (127.0.0.1 and the port picked at start).
#[tokio::test(flavor = "multi_thread")]
async fn advertised_address_is_what_metadata_and_find_coordinator_tell_clients() {
    let dir = tempfile::tempdir().unwrap();
    let advertised = Broker::start(
        &dir.path().join("advertised"),
        &["--kafka-advertised-address", "kafka.example.internal:19092"],
    )
    .await;
    let listener = advertised.kafka.expect("the Kafka listener is on");
    assert_eq!(
        addresses_told(listener),
        vec![("kafka.example.internal".to_string(), 19092); 5],
        "the advertised address, not the listener's {listener}"
    );

    let plain = Broker::start(&dir.path().join("plain"), &[]).await;
    let listener = plain.kafka.expect("the Kafka listener is on");
    assert_eq!(
        addresses_told(listener),
        vec![("127.0.0.1".to_string(), i32::from(listener.port())); 5],
        "the listener's own address"
    );
}

/// Metadata for a topic that does not exist creates it only when the
/// broker runs with `--auto-create-topics` and the client allows it: by
/// default the answer is UNKNOWN_TOPIC_OR_PARTITION and nothing is
/// created; with the setting (and `--default-partitions 3`) the topic is
/// created with 3 partitions and described in the same answer; a client
/// that does not allow it still gets UNKNOWN_TOPIC_OR_PARTITION.
#[tokio::test(flavor = "multi_thread")]
async fn auto_create_topics_follows_the_setting() {
    let dir = tempfile::tempdir().unwrap();

    // Off by default, even for a client that allows it.
    let b = Broker::start(&dir.path().join("default"), &[]).await;
    let mut s = kafka_connection(b.kafka.expect("the Kafka listener is on"));
    let r = metadata(&mut s, 12, 1, Some(&["nope"][..]), true);
    assert_eq!(
        topic_answer(&r, "nope"),
        (UNKNOWN_TOPIC_OR_PARTITION, vec![])
    );
    assert_no_topic(&b, "nope").await;
    // Asked again: still unknown (the first request did not create it late).
    let r = metadata(&mut s, 12, 2, Some(&["nope"][..]), true);
    assert_eq!(
        topic_answer(&r, "nope"),
        (UNKNOWN_TOPIC_OR_PARTITION, vec![])
    );
    assert_no_topic(&b, "nope").await;
    drop(s);
    b.terminate();

    // On: created with the default partition count, in the same answer.
    let b = Broker::start(
        &dir.path().join("auto"),
        &["--auto-create-topics", "--default-partitions", "3"],
    )
    .await;
    let mut s = kafka_connection(b.kafka.expect("the Kafka listener is on"));
    let r = metadata(&mut s, 12, 1, Some(&["nope"][..]), true);
    assert_eq!(topic_answer(&r, "nope"), (0, vec![0, 1, 2]), "{r:?}");
    let created = describe_topic(&b, "nope").await;
    let partitions: BTreeSet<u32> = created.partitions.iter().map(|p| p.partition).collect();
    assert_eq!(partitions, BTreeSet::from([0, 1, 2]), "{created:?}");

    // A client that does not allow it creates nothing; the topic made
    // before is described as it is.
    let r = metadata(&mut s, 12, 2, Some(&["nope", "unasked"][..]), false);
    assert_eq!(
        topic_answer(&r, "unasked"),
        (UNKNOWN_TOPIC_OR_PARTITION, vec![])
    );
    assert_eq!(topic_answer(&r, "nope"), (0, vec![0, 1, 2]));
    assert_no_topic(&b, "unasked").await;
    assert_eq!(describe_topic(&b, "nope").await.partitions.len(), 3);
}

/// The TCP ports process `pid` listens on: its socket descriptors
/// (/proc/PID/fd) matched against the kernel's listening sockets
/// (/proc/net/tcp and tcp6, state 0A).
fn listening_ports(pid: u32) -> BTreeSet<u16> {
    let inodes: BTreeSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("the broker's descriptors")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|target| {
            let t = target.to_str()?;
            Some(t.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let mut ports = BTreeSet::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            // sl local_address rem_address st tx:rx tr:when retrnsmt uid timeout inode ...
            let f: Vec<&str> = line.split_whitespace().collect();
            if f.len() > 9 && f[3] == "0A" && inodes.contains(f[9]) {
                let port = f[1]
                    .rsplit_once(':')
                    .and_then(|(_, p)| u16::from_str_radix(p, 16).ok());
                ports.extend(port);
            }
        }
    }
    ports
}

/// With `--kafka-listen off` the broker binds gRPC and metrics only (a
/// broker with the listener on binds a third port, the Kafka one), its
/// listening line and log name no Kafka address, and gRPC serves: a topic
/// is created and a record produced and read back.
#[tokio::test(flavor = "multi_thread")]
async fn kafka_listen_off_opens_no_kafka_port() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("off.log");
    let off = Broker::spawn_logged(&dir.path().join("off"), &["--kafka-listen", "off"], &log);
    off.wait_serving().await;
    assert!(
        off.kafka.is_none(),
        "the listening line names a Kafka address: {:?}",
        off.kafka
    );
    assert_eq!(
        listening_ports(off.pid()),
        BTreeSet::from([off.grpc.port(), off.metrics.port()]),
        "gRPC and metrics only"
    );
    let mut listening = String::new();
    eventually("the broker to log that it listens", async || {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        match text.lines().find(|l| l.contains("brook listening")) {
            Some(line) => {
                listening = line.to_string();
                true
            }
            None => false,
        }
    })
    .await;
    assert!(listening.contains("kafka=None"), "{listening}");

    // gRPC serves as ever.
    create_topic(&off, "orders", 1).await;
    let record = v1::PublishRecord {
        key: Some(b"order-1".to_vec().into()),
        value: Some(b"placed".to_vec().into()),
        ..Default::default()
    };
    let published = off
        .producer()
        .await
        .publish(v1::PublishRequest {
            topic: "orders".into(),
            records: vec![record],
            acks: 0,
        })
        .await
        .expect("publish over gRPC")
        .into_inner();
    assert_eq!(published.positions.len(), 1);
    assert_eq!(
        fetch_all(&off, "orders", 0, 0).await,
        vec![(0, Some(b"order-1".to_vec()), b"placed".to_vec())]
    );
    off.terminate();

    // The same with the listener on: its port is the third.
    let on = Broker::start(&dir.path().join("on"), &[]).await;
    let kafka = on.kafka.expect("the Kafka listener is on");
    assert_eq!(
        listening_ports(on.pid()),
        BTreeSet::from([on.grpc.port(), on.metrics.port(), kafka.port()])
    );
}

/// A record a Kafka consumer read: partition, offset, value.
type Read = (u32, u64, String);

/// What a `consume-commit` run printed: the records it read, as
/// (partition, offset, value), and the offsets it committed by partition.
fn consumed(lines: Vec<Value>) -> (Vec<Read>, BTreeMap<u32, u64>) {
    let (mut read, mut commits) = (Vec::new(), None);
    for l in lines {
        if let Some(c) = l.get("committed") {
            let c = c.as_object().expect("committed offsets by partition");
            let c: BTreeMap<u32, u64> = c
                .iter()
                .map(|(p, o)| (p.parse().unwrap(), o.as_u64().unwrap()))
                .collect();
            assert_eq!(l["consumed"], read.len(), "{l}");
            commits = Some(c);
        } else {
            read.push((
                l["partition"].as_u64().unwrap() as u32,
                l["offset"].as_u64().unwrap(),
                l["value"].as_str().unwrap().to_string(),
            ));
        }
    }
    (read, commits.expect("the client's summary line"))
}

/// `brook lag billing --json`: the group's entry.
fn lag_of_billing(b: &Broker) -> Value {
    let out = brook_cli(b, &["lag", "billing", "--json"], None);
    assert!(
        out.status.success(),
        "brook lag: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let all: Value = serde_json::from_slice(&out.stdout).expect("brook lag --json prints JSON");
    assert_eq!(all.as_array().map(Vec::len), Some(1), "{all}");
    all[0].clone()
}

/// Checks a `brook lag` entry of `billing` against the partitions' ends and
/// the group's committed offsets: each partition's lag is its end minus
/// its committed offset (its log start, 0, when it has none).
fn assert_lag(lag: &Value, ends: &BTreeMap<u32, u64>, committed: &BTreeMap<u32, u64>) {
    assert_eq!(lag["group"], "billing", "{lag}");
    let partitions = lag["partitions"].as_array().expect("partitions");
    let listed: BTreeSet<u64> = partitions
        .iter()
        .map(|p| p["partition"].as_u64().unwrap())
        .collect();
    assert_eq!(
        (partitions.len(), listed),
        (2, BTreeSet::from([0, 1])),
        "{lag}"
    );
    let mut total = 0;
    for p in partitions {
        let id = p["partition"].as_u64().unwrap() as u32;
        let c = committed.get(&id).copied();
        assert_eq!(p["topic"], "ledger", "{lag}");
        assert_eq!(p["log_end_offset"], ends[&id], "{lag}");
        assert_eq!(p["committed"], json!(c), "{lag}");
        assert_eq!(p["lag"], ends[&id] - c.unwrap_or(0), "{lag}");
        total += ends[&id] - c.unwrap_or(0);
    }
    assert_eq!(lag["total_lag_records"], total, "{lag}");
}

/// `brook lag` and `brook group reset-offsets` work on a group of Kafka
/// consumers: after confluent-kafka's consumer commits 25 of 40 records,
/// `brook lag` reports 15 in all, each partition's lag matching the
/// offsets committed as gRPC reads them; `reset-offsets --to earliest`
/// (once the consumer has left) moves every partition to 0, lag becomes
/// 40, and a new consumer of the group reads all 40 again from the reset
/// offsets.
#[tokio::test(flavor = "multi_thread")]
async fn brook_lag_and_reset_offsets_cover_kafka_groups() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    create_topic(&b, "ledger", 2).await;
    let records = (0..40)
        .map(|i| v1::PublishRecord {
            key: Some(format!("acct-{i}").into_bytes().into()),
            value: Some(format!("entry-{i}").into_bytes().into()),
            ..Default::default()
        })
        .collect();
    b.producer()
        .await
        .publish(v1::PublishRequest {
            topic: "ledger".into(),
            records,
            acks: 0,
        })
        .await
        .expect("publish over gRPC");
    let ends: BTreeMap<u32, u64> = describe_topic(&b, "ledger")
        .await
        .partitions
        .iter()
        .map(|p| (p.partition, p.log_end_offset))
        .collect();
    assert_eq!(ends.values().sum::<u64>(), 40, "{ends:?}");
    assert!(
        ends.values().all(|e| *e > 0),
        "both partitions hold records: {ends:?}"
    );
    let everything: BTreeSet<String> = (0..40).map(|i| format!("entry-{i}")).collect();
    let bootstrap = b.kafka_bootstrap();

    // 25 read and committed by a Kafka consumer of the group, which then leaves.
    let (read, by_client) = consumed(run_json(clients(
        &bootstrap,
        &["consume-commit", "ledger", "billing", "25"],
    )));
    assert_eq!(read.len(), 25, "{read:?}");
    for (&p, &next) in &by_client {
        let offsets: Vec<u64> = read.iter().filter(|r| r.0 == p).map(|r| r.1).collect();
        assert_eq!(
            offsets,
            (0..next).collect::<Vec<_>>(),
            "partition {p} read in order"
        );
    }
    let stored = committed(&b, "billing", "ledger").await;
    assert_eq!(stored, by_client, "the Kafka commits, as gRPC reads them");
    assert_eq!(stored.values().sum::<u64>(), 25);

    let lag = lag_of_billing(&b);
    assert_eq!(lag["total_lag_records"], 15, "{lag}");
    assert_lag(&lag, &ends, &stored);

    // Back to the start. The consumer has closed (left the group); should
    // its leave still be in flight, the reset is refused for an active
    // member and tried again.
    let mut reset = Value::Null;
    eventually("the group to have no members for the reset", async || {
        let out = brook_cli(
            &b,
            &[
                "group",
                "reset-offsets",
                "billing",
                "--topic",
                "ledger",
                "--to",
                "earliest",
                "--json",
            ],
            None,
        );
        if out.status.success() {
            reset = serde_json::from_slice(&out.stdout).expect("reset-offsets --json prints JSON");
            return true;
        }
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("active member"),
            "brook group reset-offsets: {err}"
        );
        false
    })
    .await;
    assert_eq!(reset["applied"], true, "{reset}");
    let changes: BTreeMap<u64, (Value, Value)> = reset["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| {
            assert_eq!(c["topic"], "ledger", "{reset}");
            let p = c["partition"].as_u64().unwrap();
            (p, (c["before"].clone(), c["after"].clone()))
        })
        .collect();
    let expected: BTreeMap<u64, (Value, Value)> = ends
        .keys()
        .map(|&p| (u64::from(p), (json!(stored.get(&p)), json!(0))))
        .collect();
    assert_eq!(changes, expected, "{reset}");
    let reset_to: BTreeMap<u32, u64> = ends.keys().map(|&p| (p, 0)).collect();
    assert_eq!(committed(&b, "billing", "ledger").await, reset_to);
    let lag = lag_of_billing(&b);
    assert_eq!(lag["total_lag_records"], 40, "{lag}");
    assert_lag(&lag, &ends, &reset_to);

    // The group's next Kafka consumer starts from the reset offsets: it
    // reads all 40 (from the old commits it would find 15 only).
    let (read, by_client) = consumed(run_json(clients(
        &bootstrap,
        &["consume-commit", "ledger", "billing", "40"],
    )));
    assert_eq!(read.len(), 40, "{read:?}");
    let values: BTreeSet<String> = read.iter().map(|r| r.2.clone()).collect();
    assert_eq!(values, everything, "every record again, once");
    for (&p, &end) in &ends {
        let offsets: Vec<u64> = read.iter().filter(|r| r.0 == p).map(|r| r.1).collect();
        assert_eq!(
            offsets,
            (0..end).collect::<Vec<_>>(),
            "partition {p} from 0"
        );
    }
    assert_eq!(by_client, ends);
    let lag = lag_of_billing(&b);
    assert_eq!(lag["total_lag_records"], 0, "{lag}");
    assert_lag(&lag, &ends, &ends);
}

/// A Kafka consumer that has joined its group but committed nothing (a new
/// consumer of a topic that has not been read yet) is reported as gRPC
/// members are: GetConsumerLag, `brook lag` and the lag metrics count the
/// partitions of the topic it subscribes to from their start, and
/// DescribeGroup and ListGroups show it with its assignment. Once it
/// leaves, the group is gone and `brook lag` of every group still answers.
#[tokio::test(flavor = "multi_thread")]
async fn a_kafka_group_without_commits_is_reported_with_its_members() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(&dir.path().join("data"), &[]).await;
    create_topic(&b, "fresh", 2).await;
    let records = (0..3)
        .map(|i| v1::PublishRecord {
            key: Some(format!("k{i}").into_bytes().into()),
            value: Some(b"v".to_vec().into()),
            ..Default::default()
        })
        .collect();
    b.producer()
        .await
        .publish(v1::PublishRequest {
            topic: "fresh".into(),
            records,
            acks: 0,
        })
        .await
        .unwrap();

    let stop = dir.path().join("stop");
    let mut member = clients(
        &b.kafka_bootstrap(),
        &["idle-member", "fresh", "idle", stop.to_str().unwrap()],
    )
    .stderr(std::process::Stdio::null())
    .spawn()
    .unwrap();
    let mut lines = BufReader::new(member.stdout.take().unwrap()).lines();
    // Killed if an assertion fails before it is stopped below.
    let mut member = KillOnDrop(member);
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["assigned"], json!([0, 1]), "{first}");

    let mut groups = v1::groups_client::GroupsClient::new(b.channel().await);
    let lag = groups
        .get_consumer_lag(v1::GetConsumerLagRequest {
            group: "idle".into(),
            topic: String::new(),
        })
        .await
        .expect("the lag of a group with a member and no commits")
        .into_inner();
    assert_eq!(lag.total_lag_records, 3, "{lag:?}");
    assert_eq!(lag.partitions.len(), 2, "{lag:?}");
    assert!(lag.partitions.iter().all(|p| p.committed_offset.is_none()));

    let all = brook_cli(&b, &["lag", "--json"], None);
    assert!(
        all.status.success(),
        "{}",
        String::from_utf8_lossy(&all.stderr)
    );
    let all: Value = serde_json::from_slice(&all.stdout).unwrap();
    let idle = all
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["group"] == "idle");
    assert_eq!(
        idle.map(|g| g["total_lag_records"].clone()),
        Some(json!(3)),
        "{all}"
    );
    let metrics = b.metrics_text().await;
    let lag_lines = metrics
        .lines()
        .filter(|l| l.starts_with(r#"brook_consumer_lag_records{group="idle",topic="fresh""#))
        .count();
    assert_eq!(lag_lines, 2, "{metrics}");

    let d = groups
        .describe_group(v1::DescribeGroupRequest {
            group: "idle".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.state, v1::GroupState::Stable as i32, "{d:?}");
    assert_eq!(d.topics, ["fresh"], "{d:?}");
    assert_eq!(d.members.len(), 1, "{d:?}");
    let held: Vec<_> = (d.members[0].assignment.iter())
        .map(|tp| (tp.topic.clone(), tp.partitions.clone()))
        .collect();
    assert_eq!(held, [("fresh".to_string(), vec![0, 1])], "{d:?}");
    let listed = groups
        .list_groups(v1::ListGroupsRequest {})
        .await
        .unwrap()
        .into_inner();
    let summary = listed.groups.iter().find(|g| g.group == "idle").unwrap();
    assert_eq!(summary.members, 1, "{listed:?}");

    // Not deletable under its member.
    let refused = groups
        .delete_group(v1::DeleteGroupRequest {
            group: "idle".into(),
        })
        .await
        .expect_err("a group with a Kafka member is not deleted");
    assert_eq!(
        refused.code(),
        tonic::Code::FailedPrecondition,
        "{refused:?}"
    );

    std::fs::write(&stop, b"").unwrap();
    assert!(member.0.wait().unwrap().success());
    eventually("the group to be gone once its member left", async || {
        let lag = groups
            .get_consumer_lag(v1::GetConsumerLagRequest {
                group: "idle".into(),
                topic: String::new(),
            })
            .await;
        matches!(lag, Err(s) if s.code() == tonic::Code::NotFound)
    })
    .await;
    let all = brook_cli(&b, &["lag", "--json"], None);
    assert!(
        all.status.success(),
        "{}",
        String::from_utf8_lossy(&all.stderr)
    );
}

/// A child process killed when dropped.
struct KillOnDrop(std::process::Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
