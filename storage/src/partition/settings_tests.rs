//! Settings changed on an open partition take effect without a reopen.

use std::time::{Duration, Instant};

use brook_protocol::batch::{Batch, BatchBuilder};

use super::*;

fn batch(ts: i64, bytes: usize) -> Batch {
    let mut b = BatchBuilder::new();
    b.push(ts, None, Some(&vec![b'x'; bytes][..]), &[]);
    Batch::parse(b.build(0)).unwrap()
}

fn open(dir: &Path, config: PartitionConfig) -> Partition {
    Partition::open(dir.join("p"), "t/0", config).unwrap()
}

fn never() -> PartitionConfig {
    PartitionConfig {
        flush: FlushPolicy::Never,
        ..Default::default()
    }
}

/// Polls `done` until it holds or 10 s pass.
fn eventually(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn a_smaller_segment_size_rolls_at_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), never());
    for i in 0..4 {
        p.append(&batch(i, 1000)).unwrap();
    }
    assert_eq!(p.segment_count(), 1, "128 MiB segments hold 4 KB");
    p.set_config(PartitionConfig {
        segment_bytes: 2048,
        ..never()
    })
    .unwrap();
    p.append(&batch(5, 1000)).unwrap();
    p.append(&batch(6, 1000)).unwrap();
    p.append(&batch(7, 1000)).unwrap();
    assert!(p.segment_count() >= 2, "{} segments", p.segment_count());
    assert_eq!(p.config().segment_bytes, 2048);
}

#[test]
fn retention_set_later_deletes_at_the_next_pass() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(
        dir.path(),
        PartitionConfig {
            segment_bytes: 2048,
            retention_ms: None,
            ..never()
        },
    );
    for i in 0..6 {
        p.append(&batch(1_000 + i, 1000)).unwrap();
    }
    let segments = p.segment_count();
    assert!(segments >= 3);
    assert_eq!(p.enforce_retention(now_ms()).unwrap(), 0, "kept forever");
    p.set_config(PartitionConfig {
        segment_bytes: 2048,
        retention_ms: Some(60_000),
        ..never()
    })
    .unwrap();
    // Every record is from 1970: all sealed segments are past a minute.
    assert_eq!(p.enforce_retention(now_ms()).unwrap(), segments - 1);
    assert!(p.log_start_offset() > 0);
}

#[test]
fn leaving_flush_always_shows_unflushed_records_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), never());
    p.append(&batch(1, 10)).unwrap();
    assert_eq!(p.high_watermark(), 1);
    p.set_config(PartitionConfig {
        flush: FlushPolicy::Always,
        ..never()
    })
    .unwrap();
    // Under Always, readers see only what is on disk.
    p.append_nowait(&batch(2, 10)).unwrap();
    assert_eq!(p.log_end_offset(), 2);
    assert_eq!(p.high_watermark(), 1, "not flushed yet");
    p.append(&batch(3, 10)).unwrap();
    assert_eq!(p.durable_offset(), 3, "append under Always flushes");
    assert_eq!(p.high_watermark(), 3);
    p.append_nowait(&batch(4, 10)).unwrap();
    assert_eq!(p.high_watermark(), 3);
    p.set_config(never()).unwrap();
    assert_eq!(p.high_watermark(), 4, "back to the log end");
    p.append_nowait(&batch(5, 10)).unwrap();
    assert_eq!(p.high_watermark(), 5);
}

#[test]
fn an_interval_policy_set_later_starts_flushing() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), never());
    let interval = |ms| PartitionConfig {
        flush: FlushPolicy::Interval(Duration::from_millis(ms)),
        ..never()
    };
    p.append(&batch(1, 10)).unwrap();
    assert_eq!(p.durable_offset(), 0, "Never does not flush");
    p.set_config(interval(10)).unwrap();
    eventually("the timer flushed offset 0", || p.durable_offset() == 1);
    // Off and on again: a new timer starts (or the old one carries on).
    p.set_config(never()).unwrap();
    p.set_config(interval(5)).unwrap();
    p.append(&batch(2, 10)).unwrap();
    eventually("the timer flushed offset 1", || p.durable_offset() == 2);
}

#[test]
fn settings_fixed_at_creation_are_refused_and_nothing_changes() {
    let dir = tempfile::tempdir().unwrap();
    let p = open(dir.path(), never());
    for (what, bad) in [
        (
            "max_batch_bytes",
            PartitionConfig {
                max_batch_bytes: 8 << 20,
                retention_ms: None,
                ..never()
            },
        ),
        (
            "index_interval_bytes",
            PartitionConfig {
                index_interval_bytes: 100,
                ..never()
            },
        ),
        (
            "append_mode",
            PartitionConfig {
                append_mode: crate::config::AppendMode::Mmap,
                ..never()
            },
        ),
        (
            "segment_bytes",
            PartitionConfig {
                segment_bytes: 1,
                ..never()
            },
        ),
    ] {
        let e = p.set_config(bad).unwrap_err();
        assert!(
            matches!(&e, Error::InvalidConfig(m) if m.contains(what)),
            "{what}: {e}"
        );
        assert_eq!(p.config(), never(), "{what}");
    }
}
