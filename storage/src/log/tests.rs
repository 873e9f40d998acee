use std::time::Duration;

use super::*;
use crate::config::{FlushPolicy, PartitionConfig};
use brook_protocol::batch::{Batch, BatchBuilder};

fn one_record() -> Batch {
    let mut b = BatchBuilder::new();
    b.push(1, Some(b"k"), Some(b"v"), &[]);
    Batch::parse(b.build(0)).unwrap()
}

fn config(partitions: u32) -> TopicConfig {
    let partition = PartitionConfig {
        flush: FlushPolicy::Interval(Duration::from_millis(250)),
        retention_bytes: Some(1 << 30),
        ..Default::default()
    };
    TopicConfig {
        partitions,
        partition,
    }
}

#[test]
fn topic_names_follow_kafka_rules() {
    for ok in ["orders", "a", "Orders.v1_x-2", &"x".repeat(249)] {
        validate_topic_name(ok).unwrap();
    }
    for bad in [
        "",
        ".",
        "..",
        "a/b",
        "a b",
        "ü",
        &"x".repeat(250),
        "x~deleted",
    ] {
        assert!(
            matches!(
                validate_topic_name(bad),
                Err(Error::InvalidTopicName { .. })
            ),
            "{bad:?}"
        );
    }
}

#[test]
fn topics_survive_reopen_with_their_settings_and_data() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    log.create_topic("orders", config(3)).unwrap();
    log.create_topic("audit", config(1)).unwrap();
    assert!(matches!(
        log.create_topic("orders", config(1)),
        Err(Error::TopicExists(_))
    ));
    assert!(matches!(
        log.create_topic("bad", config(0)),
        Err(Error::InvalidConfig(_))
    ));
    log.topic("orders")
        .unwrap()
        .partition(2)
        .unwrap()
        .append(&one_record())
        .unwrap();
    log.add_partitions("orders", 5).unwrap();
    assert!(matches!(
        log.add_partitions("orders", 4),
        Err(Error::InvalidConfig(_))
    ));
    log.close().unwrap();
    drop(log);

    let log = Log::open(dir.path()).unwrap();
    let names: Vec<String> = log.topics().iter().map(|t| t.name().to_string()).collect();
    assert_eq!(names, ["audit", "orders"]);
    let orders = log.topic("orders").unwrap();
    assert_eq!(orders.config(), config(5));
    assert_eq!(orders.partition(2).unwrap().log_end_offset(), 1);
    assert!(orders.partition(2).unwrap().recovery_report().clean);
    assert!(matches!(
        orders.partition(5),
        Err(Error::UnknownPartition {
            partition: 5,
            count: 5,
            ..
        })
    ));
    assert!(matches!(log.topic("nope"), Err(Error::UnknownTopic(_))));
}

#[test]
fn deleted_topics_and_interrupted_creations_are_gone_after_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    let t = log.create_topic("gone", config(2)).unwrap();
    let p = t.partition(0).unwrap();
    p.append(&one_record()).unwrap();
    log.delete_topic("gone").unwrap();
    assert!(
        p.append(&one_record()).is_err(),
        "appends to a deleted topic fail"
    );
    assert!(matches!(
        log.delete_topic("gone"),
        Err(Error::UnknownTopic(_))
    ));
    // Leftovers of crashes: this version's names and an earlier one's.
    for left in [
        "half~creating/0",
        "old~deleted/0",
        "~creating.42.0/0",
        "~deleted.42.7/1",
    ] {
        fs::create_dir_all(dir.path().join(left)).unwrap();
    }
    drop(log);
    let log = Log::open(dir.path()).unwrap();
    assert!(log.topics().is_empty());
    let left: Vec<_> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, [crate::LOCK_FILE], "only the lock file is left");
    // The name can be used again, starting from offset 0.
    let t = log.create_topic("gone", config(1)).unwrap();
    assert_eq!(t.partition(0).unwrap().log_end_offset(), 0);
}

#[test]
fn a_partition_that_cannot_be_opened_is_offline_and_the_rest_serve() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    log.create_topic("orders", config(3)).unwrap();
    for id in 0..3 {
        log.topic("orders")
            .unwrap()
            .partition(id)
            .unwrap()
            .append(&one_record())
            .unwrap();
    }
    log.close().unwrap();
    drop(log);
    // A directory where partition 1's segment file should be.
    let seg = dir.path().join("orders/1/00000000000000000000.log");
    fs::remove_file(&seg).unwrap();
    fs::create_dir(&seg).unwrap();

    let strict = LogOptions {
        on_open_error: OnOpenError::Fail,
        ..Default::default()
    };
    assert!(Log::open_with(DirLock::exclusive(dir.path()).unwrap(), strict).is_err());

    let log = Log::open(dir.path()).unwrap();
    let topic = log.topic("orders").unwrap();
    assert_eq!(topic.partition_count(), 3);
    match topic.partition(1) {
        Err(Error::Offline { partition, reason }) => {
            assert_eq!(partition, "orders/1");
            assert!(reason.contains("00000000000000000000.log"), "{reason}");
        }
        other => panic!("expected Offline, got {:?}", other.map(|_| ())),
    }
    let online: Vec<u32> = topic.partitions().iter().map(|(id, _)| *id).collect();
    assert_eq!(online, [0, 2]);
    assert_eq!(log.offline().len(), 1);
    let p2 = topic.partition(2).unwrap();
    assert_eq!(p2.read(0, 1 << 20).unwrap().log_end_offset, 1);
    assert_eq!(p2.append(&one_record()).unwrap().base_offset, 1);
    // The data stays where it was for an operator to look at.
    assert!(seg.is_dir());
}

#[test]
fn a_second_log_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let _log = Log::open(dir.path()).unwrap();
    assert!(matches!(Log::open(dir.path()), Err(Error::Locked { .. })));
}

#[test]
fn altered_settings_apply_to_every_partition_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    log.create_topic("orders", config(2)).unwrap();
    let altered = PartitionConfig {
        retention_ms: None,
        retention_bytes: Some(4096),
        segment_bytes: 1 << 20,
        flush: FlushPolicy::Always,
        ..config(2).partition
    };
    let now = log.alter_topic("orders", altered.clone()).unwrap();
    assert_eq!(now.partition, altered);
    assert_eq!(now.partitions, 2);
    let orders = log.topic("orders").unwrap();
    for (_, p) in orders.partitions() {
        assert_eq!(p.config(), altered);
    }
    // A partition added later takes the altered settings too.
    log.add_partitions("orders", 3).unwrap();
    assert_eq!(orders.partition(2).unwrap().config(), altered);
    // A setting fixed at creation is refused, and nothing changes.
    let e = log
        .alter_topic(
            "orders",
            PartitionConfig {
                max_batch_bytes: 1 << 10,
                ..altered.clone()
            },
        )
        .unwrap_err();
    assert!(
        matches!(&e, Error::InvalidConfig(m) if m.contains("max_batch_bytes")),
        "{e}"
    );
    assert!(matches!(
        log.alter_topic("nope", altered.clone()),
        Err(Error::UnknownTopic(_))
    ));
    log.close().unwrap();
    drop(log);

    let log = Log::open(dir.path()).unwrap();
    let orders = log.topic("orders").unwrap();
    assert_eq!(orders.config().partition, altered);
    assert_eq!(orders.config().partitions, 3);
    assert_eq!(orders.partition(0).unwrap().config(), altered);
}

/// Names of the longest allowed length work end to end: the staging
/// directories of create and delete must not pass the 255-byte file-name
/// limit.
#[test]
fn a_topic_name_of_249_characters_is_created_used_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let log = Log::open(dir.path()).unwrap();
    for len in [247, 248, 249] {
        let name = "n".repeat(len);
        let t = log.create_topic(&name, config(2)).unwrap();
        t.partition(1).unwrap().append(&one_record()).unwrap();
        log.delete_topic(&name).unwrap();
        assert!(log.topics().is_empty(), "{len}");
    }
    let name = "m".repeat(249);
    log.create_topic(&name, config(1)).unwrap();
    log.close().unwrap();
    drop(log);
    let log = Log::open(dir.path()).unwrap();
    assert_eq!(log.topic(&name).unwrap().partition_count(), 1);
}
