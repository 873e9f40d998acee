use std::time::Duration;

use brook_protocol::batch::{Batch, BatchBuilder, DecodeError, batches};

use super::*;
use crate::config::AppendMode;
use crate::file::{read_offset_file, write_offset_file};

fn batch(first_ts: i64, values: &[&str]) -> Batch {
    let mut b = BatchBuilder::new();
    for (i, v) in values.iter().enumerate() {
        b.push(
            first_ts + i as i64,
            Some(v.as_bytes()),
            Some(v.as_bytes()),
            &[],
        );
    }
    Batch::parse(b.build(0)).unwrap()
}

fn cfg(mode: AppendMode) -> PartitionConfig {
    PartitionConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        append_mode: mode,
        flush: FlushPolicy::Never,
        ..Default::default()
    }
}

/// Every value stored from `from`, in order, read back batch by batch.
fn values(p: &Partition, from: u64) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let r = p.read(next, 1000).unwrap();
        if r.batches.is_empty() {
            return out;
        }
        for b in batches(r.batches) {
            for rec in b.unwrap().records() {
                let rec = rec.unwrap();
                if rec.offset >= next {
                    out.push((
                        rec.offset,
                        String::from_utf8(rec.value.unwrap().to_vec()).unwrap(),
                    ));
                }
            }
        }
        next = out.last().unwrap().0 + 1;
    }
}

fn both_modes(test: impl Fn(AppendMode)) {
    test(AppendMode::Write);
    test(AppendMode::Mmap);
}

#[test]
fn appends_get_consecutive_offsets_and_read_back() {
    both_modes(|mode| {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(dir.path(), "t/0", cfg(mode)).unwrap();
        let a = p.append(&batch(10, &["a", "b", "c"])).unwrap();
        let b = p.append(&batch(20, &["d"])).unwrap();
        assert_eq!(
            a,
            AppendInfo {
                base_offset: 0,
                last_offset: 2,
                log_end_offset: 3,
                duplicate: false,
            }
        );
        assert_eq!(
            b,
            AppendInfo {
                base_offset: 3,
                last_offset: 3,
                log_end_offset: 4,
                duplicate: false,
            }
        );
        assert_eq!(
            values(&p, 0),
            vec![
                (0, "a".into()),
                (1, "b".into()),
                (2, "c".into()),
                (3, "d".into())
            ]
        );
        // Reading from the middle of a batch starts at that batch.
        let r = p.read(1, 1 << 20).unwrap();
        assert_eq!(batches(r.batches).next().unwrap().unwrap().base_offset(), 0);
        assert!(
            p.read(4, 100).unwrap().batches.is_empty(),
            "reading at the log end is empty, not an error"
        );
        match p.read(5, 100) {
            Err(Error::OffsetOutOfRange {
                requested: 5,
                log_start_offset: 0,
                log_end_offset: 4,
            }) => {}
            other => panic!("expected out of range, got {other:?}"),
        }
    });
}

#[test]
fn max_bytes_limits_a_read_but_always_returns_one_batch() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), "t/0", cfg(AppendMode::Write)).unwrap();
    for i in 0..5 {
        p.append(&batch(i, &["xxxxxxxxxx"])).unwrap();
    }
    let one = p.read(0, 1).unwrap().batches;
    assert_eq!(batches(one.clone()).count(), 1);
    let two = p.read(0, one.len() * 2).unwrap().batches;
    assert_eq!(batches(two).count(), 2);
}

#[test]
fn rolls_at_segment_bytes_and_reads_across_segments() {
    both_modes(|mode| {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(dir.path(), "t/0", cfg(mode)).unwrap();
        let value = "v".repeat(500);
        for i in 0..40 {
            p.append(&batch(i, &[&value])).unwrap();
        }
        assert!(
            p.segment_count() >= 5,
            "4 KiB segments of ~570-byte batches roll: {}",
            p.segment_count()
        );
        let got = values(&p, 0);
        assert_eq!(got.len(), 40);
        assert!(got.iter().enumerate().all(|(i, (o, _))| *o == i as u64));
        // Sealed segments are trimmed to their real length.
        let on_disk: u64 = std::fs::read_dir(dir.path())
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
            .map(|e| e.metadata().unwrap().len())
            .sum();
        let reserved = p.config().segment_capacity();
        assert!(
            on_disk <= p.size_bytes() + reserved,
            "only the active segment keeps reserved space"
        );
    });
}

#[test]
fn clean_close_skips_recovery_and_appends_continue() {
    both_modes(|mode| {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(dir.path(), "t/0", cfg(mode)).unwrap();
        for i in 0..20 {
            p.append(&batch(i, &["hello", "world"])).unwrap();
        }
        p.close().unwrap();
        assert!(matches!(
            p.append(&batch(0, &["late"])),
            Err(Error::Closed(_))
        ));
        drop(p);
        let p = Partition::open(dir.path(), "t/0", cfg(mode)).unwrap();
        let report = p.recovery_report();
        assert!(report.clean);
        assert_eq!(report.segments_scanned, 0);
        assert_eq!(p.log_end_offset(), 40);
        assert_eq!(p.append(&batch(0, &["next"])).unwrap().base_offset, 40);
        assert_eq!(values(&p, 0).len(), 41);
        drop(p);
        // Dropped without close: the next open scans, and finds the same log.
        let p = Partition::open(dir.path(), "t/0", cfg(mode)).unwrap();
        assert!(!p.recovery_report().clean);
        assert!(p.recovery_report().segments_scanned >= 1);
        assert_eq!(p.recovery_report().bytes_truncated, 0);
        assert_eq!(values(&p, 0).len(), 41);
    });
}

#[test]
fn offset_for_timestamp_finds_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), "t/0", cfg(AppendMode::Write)).unwrap();
    // Timestamps: batch i holds i*100 .. i*100+2, with one out-of-order batch.
    for i in 0..30 {
        p.append(&batch(i * 100, &["a", "b", "c"])).unwrap();
    }
    p.append(&batch(50, &["late"])).unwrap(); // offset 90, old timestamp
    assert_eq!(p.offset_for_timestamp(0).unwrap(), Some(0));
    assert_eq!(p.offset_for_timestamp(101).unwrap(), Some(4));
    assert_eq!(p.offset_for_timestamp(1502).unwrap(), Some(47));
    assert_eq!(p.offset_for_timestamp(2902).unwrap(), Some(89));
    assert_eq!(p.offset_for_timestamp(2903).unwrap(), None);
    p.close().unwrap();
    drop(p);
    let p = Partition::open(dir.path(), "t/0", cfg(AppendMode::Write)).unwrap();
    assert_eq!(
        p.offset_for_timestamp(1502).unwrap(),
        Some(47),
        "time index survives reopen"
    );
}

#[test]
fn retention_by_bytes_deletes_oldest_segments_and_persists_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = PartitionConfig {
        retention_bytes: Some(4096),
        retention_ms: None,
        ..cfg(AppendMode::Write)
    };
    let p = Partition::open(dir.path(), "t/0", config.clone()).unwrap();
    let value = "v".repeat(500);
    for i in 0..40 {
        p.append(&batch(i, &[&value])).unwrap();
    }
    let before = p.size_bytes();
    let deleted = p.enforce_retention(now_ms()).unwrap();
    assert!(deleted > 0);
    let start = p.log_start_offset();
    assert!(start > 0);
    assert!(p.size_bytes() < before);
    assert!(
        p.size_bytes() - 4096 < 4096,
        "what is left is within one segment of the limit"
    );
    assert!(
        matches!(p.read(0, 100), Err(Error::OffsetOutOfRange { log_start_offset, .. }) if log_start_offset == start)
    );
    assert_eq!(values(&p, start).first().unwrap().0, start);
    drop(p);
    let p = Partition::open(dir.path(), "t/0", config).unwrap();
    assert_eq!(
        p.log_start_offset(),
        start,
        "log start offset survives reopen"
    );
    assert_eq!(p.log_end_offset(), 40);
}

#[test]
fn retention_by_time_keeps_the_active_segment() {
    let dir = tempfile::tempdir().unwrap();
    let config = PartitionConfig {
        retention_ms: Some(1000),
        ..cfg(AppendMode::Write)
    };
    let p = Partition::open(dir.path(), "t/0", config).unwrap();
    let value = "v".repeat(500);
    for i in 0..20 {
        p.append(&batch(10_000 + i, &[&value])).unwrap();
    }
    p.append(&batch(50_000, &[&value])).unwrap();
    assert_eq!(
        p.enforce_retention(10_500).unwrap(),
        0,
        "nothing is older than 1 s yet"
    );
    p.enforce_retention(1_000_000).unwrap();
    assert_eq!(p.segment_count(), 1);
    let start = p.log_start_offset();
    assert!(
        start > 0 && start <= 20,
        "log start moved to the active segment: {start}"
    );
    assert_eq!(
        values(&p, start).last().unwrap().0,
        20,
        "the active segment's records stay"
    );
}

#[test]
fn concurrent_durable_appenders_share_flushes() {
    let dir = tempfile::tempdir().unwrap();
    let config = PartitionConfig {
        flush: FlushPolicy::Always,
        segment_bytes: 1 << 20,
        ..cfg(AppendMode::Write)
    };
    let p = Partition::open(dir.path(), "t/0", config).unwrap();
    std::thread::scope(|s| {
        for t in 0..8 {
            let p = p.clone();
            s.spawn(move || {
                for i in 0..50 {
                    let info = p.append(&batch(i, &[&format!("{t}-{i}")])).unwrap();
                    assert!(
                        p.durable_offset() >= info.log_end_offset,
                        "Always returns only once durable"
                    );
                }
            });
        }
    });
    assert_eq!(p.log_end_offset(), 400);
    assert_eq!(p.durable_offset(), 400);
    let mut got: Vec<String> = values(&p, 0).into_iter().map(|(_, v)| v).collect();
    got.sort();
    got.dedup();
    assert_eq!(got.len(), 400);
}

#[test]
fn rejects_bad_batches_without_touching_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let config = PartitionConfig {
        max_batch_bytes: 1024,
        ..cfg(AppendMode::Write)
    };
    let p = Partition::open(dir.path(), "t/0", config).unwrap();
    p.append(&batch(1, &["keep"])).unwrap();
    let big = "x".repeat(2000);
    assert!(matches!(
        p.append(&batch(1, &[&big])),
        Err(Error::BatchTooLarge { max: 1024, .. })
    ));
    // A batch claiming more records than offsets (the CRC made good again).
    let mut lying = batch(1, &["a", "b"]).bytes().to_vec();
    lying[57..61].copy_from_slice(&3u32.to_be_bytes()); // recordCount
    let crc = crc32c_of(&lying[21..]);
    lying[17..21].copy_from_slice(&crc.to_be_bytes());
    let lying = Batch::parse(lying.into()).unwrap();
    assert!(matches!(
        p.append(&lying),
        Err(Error::InvalidBatch(DecodeError::Inconsistent {
            field: "record_count",
            ..
        }))
    ));
    // A batch with no records is the broker's (a producer's batch with
    // every record dead-lettered): producers' batches are refused earlier,
    // by `Batch::validate_records`.
    let empty = Batch::parse(BatchBuilder::new().build(0)).unwrap();
    assert_eq!(empty.validate_records(), Err(DecodeError::Empty));
    assert_eq!(values(&p, 0), vec![(0, "keep".to_string())]);
    assert_eq!(p.log_end_offset(), 1);
}

#[test]
fn rolls_when_segment_ms_passes() {
    let dir = tempfile::tempdir().unwrap();
    let config = PartitionConfig {
        segment_ms: 1,
        segment_bytes: 1 << 20,
        ..cfg(AppendMode::Write)
    };
    let p = Partition::open(dir.path(), "t/0", config).unwrap();
    p.append(&batch(1, &["a"])).unwrap();
    let start = std::time::Instant::now();
    while now_ms() <= p.shared.appender.lock().unwrap().rolled_at_ms
        && start.elapsed() < Duration::from_secs(5)
    {
        std::hint::spin_loop();
    }
    p.append(&batch(2, &["b"])).unwrap();
    assert_eq!(p.segment_count(), 2);
}

#[tokio::test]
async fn waiters_wake_when_data_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), "t/0", cfg(AppendMode::Write)).unwrap();
    let mut end = p.watch_high_watermark();
    let writer = p.clone();
    let handle = tokio::task::spawn_blocking(move || writer.append(&batch(1, &["x"])).unwrap());
    let seen = tokio::time::timeout(Duration::from_secs(10), end.wait_for(|e| *e > 0)).await;
    assert_eq!(*seen.expect("woken before the deadline").unwrap(), 1);
    handle.await.unwrap();
}

#[test]
fn interval_policy_flushes_in_the_background() {
    let dir = tempfile::tempdir().unwrap();
    let config = PartitionConfig {
        flush: FlushPolicy::Interval(Duration::from_millis(5)),
        ..cfg(AppendMode::Write)
    };
    let p = Partition::open(dir.path(), "t/0", config).unwrap();
    p.append(&batch(1, &["x", "y"])).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while p.durable_offset() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the flusher never made offset 2 durable"
        );
        std::thread::yield_now();
    }
}

#[test]
fn an_empty_segment_reopened_after_a_clean_close_still_fits_the_largest_batch() {
    // Regression: the reopened active segment was sized by segment_bytes
    // alone, so a batch larger than it was written past the mapping.
    let dir = tempfile::tempdir().unwrap();
    let config = PartitionConfig {
        segment_bytes: 1024,
        max_batch_bytes: 64 << 10,
        ..cfg(AppendMode::Write)
    };
    let p = Partition::open(dir.path(), "t/0", config.clone()).unwrap();
    p.close().unwrap();
    drop(p);
    let p = Partition::open(dir.path(), "t/0", config).unwrap();
    let big = "b".repeat(8000);
    p.append(&batch(1, &[&big])).unwrap();
    assert_eq!(values(&p, 0), vec![(0, big)]);
}

/// A flush records the offset it made durable as the recovery point, so
/// after a crash the last segment is never cut below it: a durably
/// acknowledged last batch that is found damaged is contained (DATA_LOSS
/// for its offsets, the log end kept), not cut and its offsets reused.
#[test]
fn damage_below_a_flushed_recovery_point_in_the_active_segment_is_never_cut() {
    let dir = tempfile::tempdir().unwrap();
    let config = PartitionConfig {
        segment_bytes: 1 << 20,
        ..cfg(AppendMode::Write)
    };
    let p = Partition::open(dir.path(), "t/0", config.clone()).unwrap();
    p.append(&batch(1, &["a", "b"])).unwrap();
    let last = p.append(&batch(3, &["c", "d", "e"])).unwrap();
    p.flush_to(last.log_end_offset).unwrap();
    assert_eq!(
        read_offset_file(&dir.path().join(RECOVERY_POINT)),
        Some(last.log_end_offset),
        "the flush recorded what it made durable"
    );
    drop(p); // a crash: no close
    crate::flusher::drain();
    let seg = dir.path().join(format!("{:020}.log", 0));
    let mut bytes = std::fs::read(&seg).unwrap();
    let second = headers_positions(&bytes)[1];
    bytes[second + 40] ^= 0xFF;
    std::fs::write(&seg, &bytes).unwrap();

    let p = Partition::open(dir.path(), "t/0", config).unwrap();
    assert!(!p.recovery_report().clean);
    assert_eq!(p.log_end_offset(), last.log_end_offset, "nothing was cut");
    match p.read(2, 1 << 20) {
        Err(Error::Damaged {
            first_offset,
            end_offset,
            ..
        }) => assert_eq!((first_offset, end_offset), (2, 5)),
        other => panic!("expected Damaged, got {:?}", other.map(|r| r.batches.len())),
    }
    // A read from 0 returns the intact batch and stops before the damaged one.
    let before: Vec<u64> = batches(p.read(0, 1 << 20).unwrap().batches)
        .flat_map(|b| {
            b.unwrap()
                .records()
                .map(|r| r.unwrap().offset)
                .collect::<Vec<_>>()
        })
        .collect();
    assert_eq!(before, [0, 1]);
    assert_eq!(p.append(&batch(9, &["f"])).unwrap().base_offset, 5);
    assert_eq!(values(&p, 5), [(5, "f".to_string())]);
}

/// Byte positions of the batches at the start of `bytes` (until zeros).
fn headers_positions(bytes: &[u8]) -> Vec<usize> {
    let mut pos = 0;
    brook_protocol::batch::headers(bytes)
        .map(|h| {
            let at = pos;
            pos += h.total_len();
            at
        })
        .collect()
}

/// The last segment lost after a crash: the one before becomes the last,
/// but the recovery point says more offsets were on disk, so they are
/// reported missing and never handed out again; a batch appended after the
/// gap is readable across reopens.
#[test]
fn a_lost_last_segment_never_lets_its_offsets_be_reused() {
    let dir = tempfile::tempdir().unwrap();
    let config = cfg(AppendMode::Write);
    let p = Partition::open(dir.path(), "t/0", config.clone()).unwrap();
    let end = fill_segments(&p, 3);
    let last_base = p.shared.segment_list().last().unwrap().base_offset();
    p.flush_to(end).unwrap();
    drop(p);
    crate::flusher::drain();
    crate::file::remove_segment_files(&crate::fs::RealFs, dir.path(), last_base).unwrap();

    for round in 0..2 {
        let p = Partition::open(dir.path(), "t/0", config.clone()).unwrap();
        assert_eq!(
            p.log_end_offset(),
            end + round,
            "offsets up to {end} were handed out"
        );
        match p.read(last_base, 1 << 20) {
            Err(Error::Damaged {
                first_offset,
                end_offset,
                ..
            }) => assert_eq!((first_offset, end_offset), (last_base, end)),
            other => panic!("expected Damaged, got {:?}", other.map(|r| r.batches.len())),
        }
        if round == 0 {
            assert_eq!(p.append(&batch(7, &["after"])).unwrap().base_offset, end);
        }
        assert_eq!(values(&p, end), [(end, "after".to_string())]);
    }
}

/// A damaged `log-start-offset` (not a segment boundary) deletes nothing;
/// one that retention wrote before a crash cut it short finishes the job.
#[test]
fn only_a_log_start_at_a_segment_boundary_deletes_segments_on_open() {
    let dir = tempfile::tempdir().unwrap();
    let config = cfg(AppendMode::Write);
    let p = Partition::open(dir.path(), "t/0", config.clone()).unwrap();
    let end = fill_segments(&p, 4);
    let bases: Vec<u64> = p
        .shared
        .segment_list()
        .iter()
        .map(|s| s.base_offset())
        .collect();
    p.close().unwrap();
    drop(p);

    write_offset_file(
        &crate::fs::RealFs,
        dir.path(),
        LOG_START_OFFSET,
        bases[2] + 1,
    )
    .unwrap();
    let p = Partition::open(dir.path(), "t/0", config.clone()).unwrap();
    assert_eq!(
        p.segment_count(),
        4,
        "a log start inside a segment deletes nothing"
    );
    assert_eq!(p.log_start_offset(), 0);
    assert_eq!(values(&p, 0).len() as u64, end);
    p.close().unwrap();
    drop(p);

    write_offset_file(&crate::fs::RealFs, dir.path(), LOG_START_OFFSET, bases[2]).unwrap();
    let p = Partition::open(dir.path(), "t/0", config).unwrap();
    assert_eq!(p.segment_count(), 2, "an interrupted retention is finished");
    assert_eq!(p.log_start_offset(), bases[2]);
}

/// Appends two-record batches until the partition has `segments` segments;
/// returns the log end.
fn fill_segments(p: &Partition, segments: usize) -> u64 {
    let mut end = 0;
    while p.segment_count() < segments {
        end = p
            .append(&batch(end as i64, &["some value", "another value"]))
            .unwrap()
            .log_end_offset;
    }
    end
}

/// CRC-32C (Castagnoli), bit by bit: enough for a test's few bytes.
fn crc32c_of(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}
