//! Fault injection against the real broker: a second broker on a locked
//! directory, flipped bytes in sealed segments, lost and cut indexes, a
//! partition that cannot be opened, and the offline tools that verify and
//! repair a data directory. Every test damages real files of a stopped
//! broker and checks what the restarted one serves.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use brook_protocol::batch::{BatchHeader, headers};
use brook_protocol::v1;
use brook_tests::{Broker, batch_of, brook_binary};
use tonic::Code;

/// Creates `topic` with small segments so that a few hundred batches make several.
async fn create_small_segment_topic(b: &Broker, topic: &str, partitions: u32) {
    b.topics()
        .await
        .create_topic(v1::CreateTopicRequest {
            name: topic.into(),
            config: Some(v1::TopicConfig {
                partitions,
                segment_bytes: Some(16 << 10),
                ..Default::default()
            }),
        })
        .await
        .expect("create topic");
}

/// Produces `n` batches of 3 records to `topic/partition` with durable acks;
/// returns every acknowledged record as (offset, value).
async fn produce(b: &Broker, topic: &str, partition: u32, n: usize) -> Vec<(u64, Vec<u8>)> {
    let mut producer = b.producer().await;
    let mut acked = Vec::new();
    for i in 0..n {
        let values: Vec<Vec<u8>> = (0..3)
            .map(|j| format!("{topic}-{partition}-{i}-{j}-{}", "x".repeat(100)).into_bytes())
            .collect();
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
        let r = producer
            .produce(v1::ProduceRequest {
                topic: topic.into(),
                partition,
                batch: batch_of(Some(b"k"), &refs).into_bytes(),
                acks: v1::Acks::Durable as i32,
            })
            .await
            .expect("produce")
            .into_inner();
        for (j, v) in values.into_iter().enumerate() {
            acked.push((r.base_offset + j as u64, v));
        }
    }
    acked
}

/// The segment files of a partition directory, oldest first.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    files.sort();
    files
}

/// Every batch of a segment file: (position, header).
fn batches_in(file: &Path) -> Vec<(u64, BatchHeader)> {
    let bytes = std::fs::read(file).unwrap();
    let mut pos = 0u64;
    headers(&bytes)
        .map(|h| {
            let at = pos;
            pos += h.total_len() as u64;
            (at, h)
        })
        .collect()
}

fn flip(file: &Path, pos: u64, len: usize) {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .open(file)
        .unwrap();
    let mut buf = vec![0u8; len];
    f.read_exact_at(&mut buf, pos).unwrap();
    for b in &mut buf {
        *b ^= 0x5A;
    }
    f.write_all_at(&buf, pos).unwrap();
}

/// A raw fetch of one offset.
async fn fetch(
    b: &Broker,
    topic: &str,
    partition: u32,
    offset: u64,
) -> Result<v1::FetchResponse, tonic::Status> {
    b.consumer()
        .await
        .fetch(v1::FetchRequest {
            topic: topic.into(),
            partition,
            offset,
            max_bytes: 1 << 20,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

/// Reads `from..until` record by record through raw fetches, checking the
/// CRC of every batch the broker returns.
async fn read_range(
    b: &Broker,
    topic: &str,
    partition: u32,
    from: u64,
    until: u64,
) -> Vec<(u64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = from;
    while next < until {
        let r = fetch(b, topic, partition, next)
            .await
            .unwrap_or_else(|s| panic!("fetch {next}: {s:?}"));
        assert!(
            !r.batches.is_empty(),
            "offset {next} below the end returned nothing"
        );
        for batch in brook_protocol::batch::batches(r.batches) {
            let batch = batch.expect("the broker returned a batch that fails its checks");
            for rec in batch.records() {
                let rec = rec.unwrap();
                if rec.offset >= next && rec.offset < until {
                    out.push((rec.offset, rec.value.unwrap().to_vec()));
                }
            }
        }
        next = out.last().map_or(until, |r| r.0 + 1);
    }
    out
}

fn damaged_range(status: &tonic::Status) -> (u64, u64) {
    assert_eq!(status.code(), Code::DataLoss, "{status:?}");
    assert_eq!(
        brook_tests::reason(status).as_deref(),
        Some("DAMAGED_RANGE")
    );
    let get = |k: &str| -> u64 {
        brook_tests::error_metadata(status, k)
            .unwrap_or_else(|| panic!("no {k} in {status:?}"))
            .parse()
            .unwrap()
    };
    (get("first_offset"), get("end_offset"))
}

fn brook(args: &[&str]) -> std::process::Output {
    Command::new(brook_binary())
        .args(args)
        .output()
        .expect("running brook")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_broker_on_a_locked_directory_exits_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let first = Broker::start(dir.path(), &[]).await;
    let (status, stdout, stderr) = Broker::run_refused(dir.path(), &[]);
    assert!(!status.success());
    assert!(
        !stdout.contains("listening"),
        "the refused broker never says it listens: {stdout}"
    );
    let lines: Vec<&str> = stderr.lines().filter(|l| l.contains("locked")).collect();
    assert_eq!(lines.len(), 1, "one line names the lock: {stderr}");
    assert!(
        lines[0].contains(&dir.path().display().to_string()),
        "{stderr}"
    );
    assert!(
        lines[0].contains(&format!("pid {}", first.pid())),
        "{stderr}"
    );
    // Offline tools are refused too while the broker runs.
    let verify = brook(&["data", "verify", dir.path().to_str().unwrap()]);
    assert!(!verify.status.success());
    assert!(String::from_utf8_lossy(&verify.stderr).contains("locked"));
    // kill -9 releases the lock: a restart needs no cleanup.
    first.kill9();
    let again = Broker::start(dir.path(), &[]).await;
    again.terminate();
}

/// The report: one flipped byte in the last batch of an older sealed
/// segment used to delete every newer segment. Now: nothing else is lost,
/// the damaged range answers DATA_LOSS naming its offsets, everything
/// around it is served, appends go on at the true end; and a flip in the
/// middle of another sealed segment is never served as data.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damage_in_sealed_segments_is_contained_after_kill9_and_after_a_clean_stop() {
    for clean in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let b = Broker::start(dir.path(), &[]).await;
        create_small_segment_topic(&b, "orders", 1).await;
        let acked = produce(&b, "orders", 0, 300).await;
        let end = acked.last().unwrap().0 + 1;
        if clean {
            assert!(b.terminate().success());
        } else {
            b.kill9();
        }
        let pdir = dir.path().join("orders/0");
        let segs = segments(&pdir);
        assert!(segs.len() >= 5, "several segments: {}", segs.len());
        // The last batch of segment 1, and a batch in the middle of segment 3.
        let (pos1, h1) = *batches_in(&segs[1]).last().unwrap();
        flip(&segs[1], pos1 + 30, 1);
        let in3 = batches_in(&segs[3]);
        let (pos3, h3) = in3[in3.len() / 2];
        flip(&segs[3], pos3 + 40, 8);

        let log = dir.path().join("broker.log");
        let b2 = Broker::spawn_logged(dir.path(), &[], &log);
        b2.wait_serving().await;
        for (h, _) in [(h1, pos1), (h3, pos3)] {
            let status = fetch(&b2, "orders", 0, h.base_offset).await.unwrap_err();
            assert_eq!(
                damaged_range(&status),
                (h.base_offset, h.next_offset()),
                "clean: {clean}"
            );
            assert!(
                status.message().contains("orders/0"),
                "{}",
                status.message()
            );
        }
        let expect = |from: u64, until: u64| -> Vec<(u64, Vec<u8>)> {
            acked
                .iter()
                .filter(|r| r.0 >= from && r.0 < until)
                .cloned()
                .collect()
        };
        assert_eq!(
            read_range(&b2, "orders", 0, 0, h1.base_offset).await,
            expect(0, h1.base_offset)
        );
        assert_eq!(
            read_range(&b2, "orders", 0, h1.next_offset(), h3.base_offset).await,
            expect(h1.next_offset(), h3.base_offset)
        );
        assert_eq!(
            read_range(&b2, "orders", 0, h3.next_offset(), end).await,
            expect(h3.next_offset(), end)
        );
        let more = produce(&b2, "orders", 0, 1).await;
        assert_eq!(
            more[0].0, end,
            "appends go on at the true log end; no offset is reused"
        );
        assert!(
            segments(&pdir).len() >= segs.len(),
            "no segment was deleted"
        );
        let metrics = b2.metrics_text().await;
        assert!(
            metrics.contains("brook_partition_damaged_ranges{topic=\"orders\",partition=\"0\"} 2"),
            "{metrics}"
        );
        // Found on open (segment 1's tail is checked) and logged with file, position and offsets.
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.contains("damaged range"), "{text}");
        assert!(
            text.contains(&format!("first_offset={}", h1.base_offset)),
            "{text}"
        );
        drop(b2);
    }
}

/// `brook data verify` reports the damage and exits non-zero;
/// `brook data repair` moves the damaged segment aside, says so, and the
/// broker then serves everything else, answers DATA_LOSS for the moved
/// offsets and never hands them out again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_finds_damage_and_repair_quarantines_it() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    create_small_segment_topic(&b, "orders", 2).await;
    let acked = produce(&b, "orders", 0, 200).await;
    produce(&b, "orders", 1, 5).await;
    let end = acked.last().unwrap().0 + 1;
    assert!(b.terminate().success());
    let data = dir.path().to_str().unwrap();

    let ok = brook(&["data", "verify", data]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
    assert!(String::from_utf8_lossy(&ok.stdout).contains("no damage"));

    let pdir = dir.path().join("orders/0");
    let segs = segments(&pdir);
    let in2 = batches_in(&segs[2]);
    let (pos, h) = in2[in2.len() / 2];
    flip(&segs[2], pos + 20, 4);
    let bad = brook(&["data", "verify", data]);
    assert_eq!(bad.status.code(), Some(1));
    let table = String::from_utf8_lossy(&bad.stdout);
    let row = table
        .lines()
        .find(|l| l.contains("damaged-batches"))
        .unwrap_or_else(|| panic!("{table}"));
    assert!(
        row.contains("orders") && row.contains(&format!("{}..{}", h.base_offset, h.next_offset())),
        "{row}"
    );

    let dry = brook(&[
        "data",
        "repair",
        data,
        "--partition",
        "orders/0",
        "--dry-run",
    ]);
    assert!(dry.status.success());
    assert!(segs[2].exists(), "a dry run moves nothing");
    let repair = brook(&["data", "repair", data, "--partition", "orders/0"]);
    let said = String::from_utf8_lossy(&repair.stdout);
    assert!(repair.status.success(), "{said}");
    let name = segs[2].file_name().unwrap().to_str().unwrap();
    assert!(said.contains(name) && said.contains("quarantine"), "{said}");
    assert!(pdir.join("quarantine").join(name).exists());
    assert_eq!(
        std::fs::metadata(&segs[2]).unwrap().len(),
        0,
        "an empty segment holds its place"
    );
    assert!(said.contains("left an empty"), "{said}");

    let b = Broker::start(dir.path(), &[]).await;
    let seg2_first = batches_in(&pdir.join("quarantine").join(name))[0]
        .1
        .base_offset;
    let seg3_first = batches_in(&segs[3])[0].1.base_offset;
    let status = fetch(&b, "orders", 0, seg2_first).await.unwrap_err();
    assert_eq!(damaged_range(&status), (seg2_first, seg3_first));
    let expect: Vec<(u64, Vec<u8>)> = acked
        .iter()
        .filter(|r| r.0 >= seg3_first)
        .cloned()
        .collect();
    assert_eq!(read_range(&b, "orders", 0, seg3_first, end).await, expect);
    assert_eq!(produce(&b, "orders", 0, 1).await[0].0, end);
}

/// A partition that cannot be opened goes offline; every other partition
/// serves, health and metrics show it; `--on-open-error fail` refuses to
/// start instead, with the reason said once and no listening line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unopenable_partition_goes_offline_while_the_others_serve() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    create_small_segment_topic(&b, "orders", 3).await;
    for p in 0..3 {
        produce(&b, "orders", p, 2).await;
    }
    assert!(b.terminate().success());
    let seg = segments(&dir.path().join("orders/1"))[0].clone();
    std::fs::remove_file(&seg).unwrap();
    std::fs::create_dir(&seg).unwrap();

    let (status, stdout, stderr) = Broker::run_refused(dir.path(), &["--on-open-error", "fail"]);
    assert!(!status.success());
    assert!(!stdout.contains("listening"), "{stdout}");
    let seg_name = seg.file_name().unwrap().to_str().unwrap();
    assert_eq!(
        stderr.matches(seg_name).count(),
        1,
        "the reason is said once: {stderr}"
    );

    let b = Broker::start(dir.path(), &[]).await;
    for p in [0, 2] {
        assert_eq!(read_range(&b, "orders", p, 0, 6).await.len(), 6);
        assert_eq!(produce(&b, "orders", p, 1).await[0].0, 6);
    }
    let status = fetch(&b, "orders", 1, 0).await.unwrap_err();
    assert_eq!(status.code(), Code::Unavailable);
    assert!(
        status.message().contains("offline") && status.message().contains(seg_name),
        "{status:?}"
    );
    let described = brook_tests::describe_topic(&b, "orders").await;
    assert!(described.partitions[1].offline_reason.contains(seg_name));
    assert!(described.partitions[0].offline_reason.is_empty());

    use tonic_health::pb::{
        HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
    };
    let mut health = HealthClient::new(b.channel().await);
    let check = |service: &str| HealthCheckRequest {
        service: service.into(),
    };
    assert_eq!(
        health.check(check("")).await.unwrap().into_inner().status,
        ServingStatus::Serving as i32
    );
    assert_eq!(
        health
            .check(check("brook.storage"))
            .await
            .unwrap()
            .into_inner()
            .status,
        ServingStatus::NotServing as i32
    );
    let metrics = b.metrics_text().await;
    assert!(metrics.contains("brook_partitions_offline 1"), "{metrics}");
    assert!(
        metrics.contains("brook_partition_offline{topic=\"orders\",partition=\"1\"} 1"),
        "{metrics}"
    );
}

/// A deleted `.index` and a cut `.timeindex` are rebuilt on open, the
/// repair logged with the segment and the entry counts, and lookups by
/// time through them are right.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_and_cut_indexes_are_rebuilt_and_logged() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    create_small_segment_topic(&b, "orders", 1).await;
    let acked = produce(&b, "orders", 0, 300).await;
    assert!(b.terminate().success());
    let segs = segments(&dir.path().join("orders/0"));
    std::fs::remove_file(segs[1].with_extension("index")).unwrap();
    let ti = segs[2].with_extension("timeindex");
    let len = std::fs::metadata(&ti).unwrap().len();
    assert!(len >= 24, "the time index has entries to lose");
    OpenOptions::new()
        .write(true)
        .open(&ti)
        .unwrap()
        .set_len(len - 12)
        .unwrap();

    let log = dir.path().join("broker.log");
    let b = Broker::spawn_logged(dir.path(), &[], &log);
    b.wait_serving().await;
    let text = std::fs::read_to_string(&log).unwrap();
    let rebuilt: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("rebuilt its indexes"))
        .collect();
    assert_eq!(rebuilt.len(), 2, "{text}");
    for (seg, line) in [
        (&segs[1], "offset_index_entries_before=0"),
        (&segs[2], "time_index_entries_before="),
    ] {
        let name = seg.file_name().unwrap().to_str().unwrap();
        assert!(
            rebuilt.iter().any(|l| l.contains(name)
                && l.contains(line)
                && l.contains("time_index_entries_after=")),
            "{text}"
        );
    }
    assert_eq!(
        read_range(&b, "orders", 0, 0, acked.len() as u64).await,
        acked
    );
}

/// A broker over `orders` (one partition, small segments, 360 acknowledged
/// records) with one batch in the middle of its second segment damaged on
/// disk: the broker, every acknowledged record, and the damaged batch.
async fn one_damaged_batch(dir: &Path) -> (Broker, Vec<(u64, Vec<u8>)>, BatchHeader) {
    let b = Broker::start(dir, &[]).await;
    create_small_segment_topic(&b, "orders", 1).await;
    let acked = produce(&b, "orders", 0, 120).await;
    assert!(b.terminate().success());
    let segs = segments(&dir.join("orders/0"));
    let in1 = batches_in(&segs[1]);
    let (pos, h) = in1[in1.len() / 2];
    flip(&segs[1], pos + 50, 2);
    (Broker::start(dir, &[]).await, acked, h)
}

/// The Rust client's consumer does not stall silently at damage: `recv`
/// returns `Error::Damaged` naming the offsets (again, until the
/// application decides), and after a seek past it the records that follow arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_is_told_of_damage_and_can_seek_past_it() {
    use brook_client::{Client, ConsumerConfig, Error, StartFrom};
    let dir = tempfile::tempdir().unwrap();
    let (b, acked, h) = one_damaged_batch(dir.path()).await;

    let client = Client::connect(format!("http://{}", b.grpc)).await.unwrap();
    let config = ConsumerConfig {
        start_from: StartFrom::Earliest,
        ..ConsumerConfig::new("audit", &["orders"])
    };
    let mut consumer = client
        .consumer_assigned(config, "orders", &[0])
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + brook_tests::DEADLINE;
    let mut got = Vec::new();
    let mut told = 0;
    while got.len() < acked.len() - 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "got {} records, told {told} times",
            got.len()
        );
        match tokio::time::timeout(brook_tests::DEADLINE, consumer.recv())
            .await
            .expect("recv")
        {
            Ok(rec) => got.push((rec.offset, rec.value.unwrap().to_vec())),
            Err(Error::Damaged {
                first_offset,
                end_offset,
                partition,
                ..
            }) => {
                assert_eq!(
                    (partition, first_offset, end_offset),
                    (0, h.base_offset, h.next_offset())
                );
                told += 1;
                if told == 2 {
                    consumer.seek("orders", 0, end_offset);
                }
            }
            Err(e) => panic!("unexpected error: {e}"),
        }
    }
    assert_eq!(told, 2, "told once per recv until the seek");
    let expected: Vec<(u64, Vec<u8>)> = acked
        .into_iter()
        .filter(|r| r.0 < h.base_offset || r.0 >= h.next_offset())
        .collect();
    assert_eq!(got, expected);
}

/// `brook consume` stops at damaged records with a non-zero exit and the
/// command that reads on past them (it used to re-fetch them silently
/// forever); that command then reads the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brook_consume_stops_at_damage_and_says_how_to_skip_it() {
    let dir = tempfile::tempdir().unwrap();
    let (b, acked, h) = one_damaged_batch(dir.path()).await;

    let consume = |args: &[&str]| {
        let out = Command::new(brook_binary())
            .arg("consume")
            .args(args)
            .env("BROOK_URL", format!("http://{}", b.grpc))
            .output()
            .unwrap();
        (
            out.status,
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let (status, out, err) = consume(&["orders", "-e"]);
    assert_eq!(status.code(), Some(1), "{err}");
    assert_eq!(
        out.lines().count() as u64,
        h.base_offset,
        "every record before the damage"
    );
    let skip = format!(
        "brook consume orders --partition 0 --from offset:{}",
        h.next_offset()
    );
    assert!(err.contains(&skip), "{err}");

    let from = format!("offset:{}", h.next_offset());
    let (status, out, err) = consume(&["orders", "--partition", "0", "--from", &from, "-e"]);
    assert!(status.success(), "{err}");
    let after = acked.iter().filter(|r| r.0 >= h.next_offset()).count();
    assert_eq!(out.lines().count(), after, "{err}");
}
