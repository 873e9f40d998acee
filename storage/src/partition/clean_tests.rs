//! Compaction of a real partition (files, swaps, reopen): a model-based
//! property test, the crash points of a swap, and the producer state kept.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use brook_protocol::batch::{Batch, BatchBuilder, batches};
use proptest::prelude::*;

use super::*;
use crate::config::{CleanupPolicy, Ratio};
use crate::fs::{FaultyFs, FsOp};

/// A record of the model: key, value (None: tombstone), timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Rec {
    key: u8,
    value: Option<u8>,
    ts: i64,
}

const RETENTION: u64 = 100;

fn cfg() -> PartitionConfig {
    PartitionConfig {
        segment_bytes: 1024,
        index_interval_bytes: 128,
        flush: FlushPolicy::Never,
        retention_ms: None,
        cleanup_policy: CleanupPolicy::Compact,
        delete_retention_ms: RETENTION,
        min_cleanable_dirty_ratio: Ratio::new(0.0).unwrap(),
        ..Default::default()
    }
}

fn keyed(records: &[(u8, Option<u8>)], ts: i64) -> Batch {
    let mut b = BatchBuilder::new();
    for (k, v) in records {
        let value = v.map(|v| vec![v; 20]);
        b.push(
            ts,
            Some(format!("key-{k}").as_bytes()),
            value.as_deref(),
            &[("h", b"x")],
        );
    }
    Batch::parse(b.build(0)).unwrap()
}

/// Every record from the log start to the high watermark, checking that
/// offsets strictly increase and that headers survive.
fn read_all(p: &Partition) -> BTreeMap<u64, Rec> {
    let mut out = BTreeMap::new();
    let mut next = p.log_start_offset();
    let hw = p.high_watermark();
    while next < hw {
        let r = p.read(next, 1 << 16).unwrap();
        assert!(
            !r.batches.is_empty(),
            "a read below the high watermark returns a batch"
        );
        for b in batches(r.batches) {
            let b = b.unwrap();
            for rec in b.records() {
                let rec = rec.unwrap();
                if rec.offset < next {
                    continue;
                }
                assert_eq!(rec.headers.len(), 1, "headers kept");
                let key = std::str::from_utf8(rec.key.as_deref().unwrap())
                    .unwrap()
                    .strip_prefix("key-")
                    .unwrap()
                    .parse()
                    .unwrap();
                let prev = out.insert(
                    rec.offset,
                    Rec {
                        key,
                        value: rec.value.map(|v| v[0]),
                        ts: rec.timestamp,
                    },
                );
                assert!(prev.is_none(), "offset {} read twice", rec.offset);
                assert!(
                    out.keys().next_back() == Some(&rec.offset),
                    "offsets increase"
                );
            }
            next = next.max(b.header().next_offset());
        }
    }
    out
}

/// Each key's latest record in `model`.
fn latest(model: &BTreeMap<u64, Rec>) -> BTreeMap<u8, (u64, Rec)> {
    let mut out = BTreeMap::new();
    for (o, r) in model {
        out.insert(r.key, (*o, *r));
    }
    out
}

/// What every state of the log must hold: only records appended, at
/// their offsets; each key's latest record unless it is a tombstone whose
/// retention ran out by `now`.
fn check_safe(p: &Partition, model: &BTreeMap<u64, Rec>, now: i64) {
    let log = read_all(p);
    for (o, r) in &log {
        assert_eq!(model.get(o), Some(r), "offset {o} holds what was appended");
    }
    for (key, (o, r)) in latest(model) {
        let may_go = r.value.is_none() && r.ts + RETENTION as i64 <= now;
        if !may_go {
            assert_eq!(
                log.get(&o),
                Some(&r),
                "key {key}'s latest record (offset {o}) is kept"
            );
        }
    }
    assert!(p.damaged_ranges().is_empty());
}

fn options(map_bytes: usize) -> CleanOptions<'static> {
    CleanOptions {
        map_bytes,
        throttle: None,
        stop: None,
    }
}

/// Rolls, waits for the roll's sync and cleans with a large map: then
/// each key's latest record is left, tombstones too (their retention
/// counts from this pass); one more pass once that retention has run out
/// leaves each live key's latest record only. Returns the clock then.
fn settle_and_check(p: &Partition, model: &BTreeMap<u64, Rec>, now: i64) -> i64 {
    p.roll().unwrap();
    crate::flusher::drain();
    p.clean(now, &options(1 << 20)).unwrap();
    let latest = latest(model);
    check_safe(p, model, now);
    let log = read_all(p);
    let latest_offsets: HashSet<u64> = latest.values().map(|(o, _)| *o).collect();
    assert!(
        log.keys().all(|o| latest_offsets.contains(o)),
        "after a pass: each key's latest record only"
    );
    assert_eq!(p.cleaning_status(now).dirty_bytes, 0);
    let later = now + RETENTION as i64;
    let due = p.cleaning_status(later).tombstones_due_ms;
    let tombstones = log.values().any(|r| r.value.is_none());
    assert_eq!(due.is_some(), tombstones, "{due:?}");
    assert!(due.is_none_or(|d| d <= later));
    p.clean(later, &options(1 << 20)).unwrap();
    let expected: BTreeMap<u64, Rec> = latest
        .into_values()
        .filter(|(_, r)| r.value.is_some())
        .collect();
    assert_eq!(read_all(p), expected, "past the retention: live keys only");
    assert_eq!(p.cleaning_due(later), None, "nothing left to do");
    later
}

#[derive(Debug, Clone)]
enum Op {
    Append(Vec<(u8, Option<u8>)>),
    Roll,
    Clean { map_bytes: usize },
    Tick(i64),
    Reopen { crash: bool },
}

fn op() -> impl Strategy<Value = Op> {
    let record = (
        0u8..8,
        prop_oneof![5 => any::<u8>().prop_map(Some), 1 => Just(None)],
    );
    prop_oneof![
        6 => prop::collection::vec(record, 1..5).prop_map(Op::Append),
        1 => Just(Op::Roll),
        2 => (100usize..3000).prop_map(|map_bytes| Op::Clean { map_bytes }),
        1 => (0i64..80).prop_map(Op::Tick),
        1 => any::<bool>().prop_map(|crash| Op::Reopen { crash }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(40))]
    #[test]
    fn cleaning_a_partition_keeps_each_keys_latest_record(ops in prop::collection::vec(op(), 1..60)) {
        let dir = tempfile::tempdir().unwrap();
        let open = || Partition::open(dir.path(), "t/0", cfg()).unwrap();
        let mut p = open();
        let mut model = BTreeMap::new();
        let mut now = 1_000_000i64;
        for op in ops {
            match op {
                Op::Append(records) => {
                    let info = p.append(&keyed(&records, now)).unwrap();
                    for (i, (key, value)) in records.iter().enumerate() {
                        model.insert(info.base_offset + i as u64, Rec { key: *key, value: *value, ts: now });
                    }
                }
                Op::Roll => {
                    p.roll().unwrap();
                    crate::flusher::drain();
                }
                Op::Clean { map_bytes } => {
                    let before = p.cleaning_status(now).cleaned_to;
                    let stats = p.clean(now, &options(map_bytes)).unwrap();
                    prop_assert!(stats.cleaned_to >= before);
                    prop_assert!(!stats.aborted);
                }
                Op::Tick(ms) => now += ms,
                Op::Reopen { crash } => {
                    if !crash {
                        p.close().unwrap();
                    }
                    drop(p);
                    crate::flusher::drain();
                    p = open();
                    prop_assert!(p.recovery_report().damaged.is_empty());
                }
            }
            check_safe(&p, &model, now);
        }
        now = settle_and_check(&p, &model, now);
        p.close().unwrap();
        drop(p);
        let p = open();
        check_safe(&p, &model, now);
        settle_and_check(&p, &model, now);
    }
}

/// A partition of three sealed segments holding keys 0..4 written over
/// and over, and a tombstone for key 3.
fn filled(dir: &std::path::Path, fs: Arc<dyn FileSystem>) -> (Partition, BTreeMap<u64, Rec>) {
    let p = Partition::open_with(dir, "t/0", cfg(), fs).unwrap();
    let mut model = BTreeMap::new();
    let now = 1_000_000;
    for round in 0..3u8 {
        for i in 0..6u8 {
            let records: Vec<(u8, Option<u8>)> = (0..4)
                .map(|k| match (round, i, k) {
                    (2, 5, 3) => (k, None),
                    _ => (k, Some(round * 10 + i)),
                })
                .collect();
            let info = p.append(&keyed(&records, now)).unwrap();
            for (j, (key, value)) in records.iter().enumerate() {
                model.insert(
                    info.base_offset + j as u64,
                    Rec {
                        key: *key,
                        value: *value,
                        ts: now,
                    },
                );
            }
        }
        p.roll().unwrap();
    }
    crate::flusher::drain();
    assert!(p.segment_count() >= 4, "{} segments", p.segment_count());
    (p, model)
}

/// The base offset of every segment file in `dir`.
fn bases(dir: &std::path::Path) -> Vec<u64> {
    crate::file::list_segments(dir).unwrap()
}

#[test]
fn a_crash_at_any_step_of_a_swap_leaves_a_whole_log_with_every_keys_latest_record() {
    let now = 1_000_000;
    // Every step of the second segment's swap (the first one completes),
    // and the checkpoint after all of them.
    for (op, step) in [
        (FsOp::RemoveFile, "index"),
        (FsOp::RemoveFile, "timeindex"),
        (FsOp::Rename, "log"),
        (FsOp::Rename, "index"),
        (FsOp::Rename, "timeindex"),
        (FsOp::WriteFile, "cleaner-checkpoint"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let faulty = Arc::new(FaultyFs::new());
        let (p, model) = filled(dir.path(), faulty.clone());
        let second = bases(dir.path())[1];
        let part = match step {
            "cleaner-checkpoint" => step.to_string(),
            ext => format!("{second:020}.{ext}"),
        };
        faulty.fail_next_on(op, &part, libc::EIO);
        let failed = p.clean(now, &options(1 << 20));
        assert!(
            failed.is_err(),
            "{op:?} {part}: the pass stops at the fault"
        );
        assert_eq!(faulty.failures(op), 1, "{op:?} {part}");
        // A crash: no close, the next open recovers from the files.
        drop(p);
        crate::flusher::drain();
        let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
        assert!(p.recovery_report().damaged.is_empty(), "{op:?} {part}");
        check_safe(&p, &model, now);
        assert_eq!(
            p.log_end_offset(),
            model.len() as u64,
            "{op:?} {part}: the log ends where it did"
        );
        settle_and_check(&p, &model, now);
    }
}

#[test]
fn a_pass_removes_superseded_records_and_keeps_offsets_and_idempotent_producers() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    let now = 1_000_000;
    // An idempotent producer writes key 1 five times, one record a batch.
    for seq in 0..5 {
        let mut b = BatchBuilder::new().producer(42, 0, seq);
        b.push(now, Some(b"key-1"), Some(&[seq as u8; 20]), &[("h", b"x")]);
        p.append(&Batch::parse(b.build(0)).unwrap()).unwrap();
    }
    p.append(&keyed(&[(2, Some(7))], now)).unwrap();
    let before = p.producer_next_sequence(42);
    assert_eq!(before, Some((0, 5)));
    p.roll().unwrap();
    crate::flusher::drain();
    let size_before = p.size_bytes();
    let stats = p.clean(now, &options(1 << 20)).unwrap();
    assert_eq!(stats.superseded, 4, "{stats:?}");
    assert_eq!(stats.segments_rewritten, 1);
    assert!(p.size_bytes() < size_before);
    let log = read_all(&p);
    assert_eq!(
        log.keys().copied().collect::<Vec<_>>(),
        vec![4, 5],
        "offsets kept"
    );
    // The offsets compacted away read as the next record kept.
    let r = p.read(1, 1 << 16).unwrap();
    let first = batches(r.batches).next().unwrap().unwrap();
    assert!(first.header().base_offset <= 1 && first.header().next_offset() > 1);
    assert_eq!(
        first.header().record_count,
        0,
        "a span batch covers offsets 0..4"
    );
    // The producer state rebuilds from the log alone.
    p.close().unwrap();
    drop(p);
    std::fs::remove_file(dir.path().join(crate::producers::SNAPSHOT)).unwrap();
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    assert_eq!(p.producer_next_sequence(42), before);
    let mut b = BatchBuilder::new().producer(42, 0, 4);
    b.push(now, Some(b"key-1"), Some(&[4; 20]), &[("h", b"x")]);
    let retry = p.append(&Batch::parse(b.build(0)).unwrap()).unwrap();
    assert!(
        retry.duplicate,
        "a retry of the last batch is still a duplicate"
    );
    assert_eq!(retry.base_offset, 4);
}

#[test]
fn a_keyless_record_is_refused_on_a_compacted_partition_only() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    let mut b = BatchBuilder::new();
    b.push(1, Some(b"k"), Some(b"v"), &[]);
    b.push(1, None, Some(b"v"), &[]);
    let batch = Batch::parse(b.build(0)).unwrap();
    match p.append(&batch) {
        Err(Error::KeyRequired { index, .. }) => assert_eq!(index, 1),
        other => panic!("{other:?}"),
    }
    assert_eq!(p.log_end_offset(), 0, "nothing of the batch stored");
    p.set_config(PartitionConfig {
        cleanup_policy: CleanupPolicy::Delete,
        ..cfg()
    })
    .unwrap();
    p.append(&batch).unwrap();
}

#[test]
fn tombstones_stay_for_their_retention_after_the_pass_that_first_cleans_them() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    let now = 1_000_000;
    p.append(&keyed(&[(1, Some(1)), (2, Some(2))], now))
        .unwrap();
    p.append(&keyed(&[(1, None)], now + 10)).unwrap();
    // Mirrored from elsewhere with its old timestamp: the clock is not its own.
    p.append(&keyed(&[(2, None)], now - 10 * RETENTION as i64))
        .unwrap();
    p.roll().unwrap();
    crate::flusher::drain();
    let first = now + 20;
    let stats = p.clean(first, &options(1 << 20)).unwrap();
    assert_eq!((stats.superseded, stats.tombstones), (2, 0));
    let log = read_all(&p);
    assert_eq!(log.keys().copied().collect::<Vec<_>>(), vec![2, 3]);
    assert!(
        log.values().all(|r| r.value.is_none()),
        "both tombstones stay"
    );
    let due = p.cleaning_status(first).tombstones_due_ms;
    assert_eq!(due, Some(first + RETENTION as i64));
    assert_eq!(
        p.cleaning_due(first + RETENTION as i64 - 1),
        None,
        "nothing to do until then"
    );
    // The retention is read when counted: lowering it brings the time forward.
    let due_now = first + 40;
    p.set_config(PartitionConfig {
        delete_retention_ms: 40,
        ..cfg()
    })
    .unwrap();
    assert_eq!(p.cleaning_status(first).tombstones_due_ms, Some(due_now));
    assert!(
        p.cleaning_due(due_now).is_some(),
        "due once the tombstones may go"
    );
    let stats = p.clean(due_now, &options(1 << 20)).unwrap();
    assert_eq!(stats.tombstones, 2);
    assert!(read_all(&p).is_empty());
    assert_eq!(p.cleaning_due(due_now), None);
    // The history survives a reopen.
    p.close().unwrap();
    drop(p);
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    p.append(&keyed(&[(3, None)], now)).unwrap();
    p.roll().unwrap();
    crate::flusher::drain();
    p.clean(due_now + 5, &options(1 << 20)).unwrap();
    assert_eq!(
        read_all(&p).len(),
        1,
        "a new tombstone stays for its retention"
    );
    assert_eq!(
        p.cleaning_status(due_now + 5).tombstones_due_ms,
        Some(due_now + 5 + RETENTION as i64)
    );
}

#[test]
fn a_small_map_cleans_over_several_passes_and_the_checkpoint_survives_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    let now = 1_000_000;
    let mut model = BTreeMap::new();
    for round in 0..4u8 {
        for k in 0..10u8 {
            let info = p.append(&keyed(&[(k, Some(round))], now)).unwrap();
            model.insert(
                info.base_offset,
                Rec {
                    key: k,
                    value: Some(round),
                    ts: now,
                },
            );
        }
    }
    p.roll().unwrap();
    crate::flusher::drain();
    let mut passes = 0;
    let mut seen = HashSet::new();
    while p.cleaning_due(now).is_some() {
        let stats = p.clean(now, &options(3 * 70)).unwrap();
        assert!(seen.insert(stats.cleaned_to), "every pass moves on");
        passes += 1;
        check_safe(&p, &model, now);
    }
    assert!(passes > 2, "{passes} passes");
    let cleaned_to = p.cleaning_status(now).cleaned_to;
    assert_eq!(cleaned_to, 40);
    p.close().unwrap();
    drop(p);
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    assert_eq!(p.cleaning_status(now).cleaned_to, cleaned_to);
    assert_eq!(p.cleaning_due(now), None);
}

#[test]
fn max_compaction_lag_makes_a_partition_due_whatever_its_dirty_ratio() {
    let dir = tempfile::tempdir().unwrap();
    let config = PartitionConfig {
        min_cleanable_dirty_ratio: Ratio::new(1.0).unwrap(),
        max_compaction_lag_ms: Some(60_000),
        ..cfg()
    };
    let p = Partition::open(dir.path(), "t/0", config.clone()).unwrap();
    let now = crate::partition::now_ms();
    p.append(&keyed(&[(1, Some(1)), (2, Some(1))], now))
        .unwrap();
    p.roll().unwrap();
    crate::flusher::drain();
    p.clean(now, &options(1 << 20)).unwrap();
    // Superseding records two minutes old: dirty, but under the ratio.
    p.append(&keyed(&[(1, Some(2))], now - 120_000)).unwrap();
    p.roll().unwrap();
    crate::flusher::drain();
    let st = p.cleaning_status(now);
    assert!(st.dirty_bytes > 0 && st.dirty_ratio < 1.0, "{st:?}");
    assert!(
        p.cleaning_due(now).is_some_and(|u| u >= 2.0),
        "past the max lag"
    );
    p.set_config(PartitionConfig {
        max_compaction_lag_ms: None,
        ..config
    })
    .unwrap();
    assert_eq!(
        p.cleaning_due(now),
        None,
        "without the bound, the ratio decides"
    );
}

#[test]
fn a_compacted_partition_rolls_its_active_segment_at_the_max_compaction_lag() {
    let dir = tempfile::tempdir().unwrap();
    let rolls = |config: PartitionConfig| {
        let d = dir.path().join(format!("{:?}", config.cleanup_policy));
        let p = Partition::open(&d, "t/0", config).unwrap();
        p.append(&keyed(&[(1, Some(1))], 0)).unwrap();
        // The wall clock moves past the 1 ms bound (a poll, no sleep).
        let start = crate::partition::now_ms();
        while crate::partition::now_ms() < start + 2 {
            std::hint::spin_loop();
        }
        p.append(&keyed(&[(1, Some(2))], 0)).unwrap();
        p.segment_count()
    };
    let lag = |cleanup_policy| PartitionConfig {
        cleanup_policy,
        max_compaction_lag_ms: Some(1),
        ..cfg()
    };
    assert_eq!(
        rolls(lag(CleanupPolicy::Compact)),
        2,
        "the active segment rolled"
    );
    assert_eq!(
        rolls(lag(CleanupPolicy::Delete)),
        1,
        "a bound for compaction only"
    );
}
