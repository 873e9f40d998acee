//! Tests of what this partition adds for idempotent producers, durable
//! waits and replication: producer state inside the append, snapshots,
//! the high watermark, leader epochs, follower appends and truncation.

use std::time::Duration;

use brook_protocol::batch::{Batch, BatchBuilder, headers};

use super::*;
use crate::producers::SNAPSHOT;

fn cfg() -> PartitionConfig {
    PartitionConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        flush: FlushPolicy::Never,
        ..Default::default()
    }
}

fn plain(n: usize) -> Batch {
    let mut b = BatchBuilder::new();
    for i in 0..n {
        b.push(
            1_000 + i as i64,
            None,
            Some(format!("v{i}").as_bytes()),
            &[],
        );
    }
    Batch::parse(b.build(0)).unwrap()
}

fn idempotent(pid: i64, epoch: i16, seq: i32, n: usize) -> Batch {
    let mut b = BatchBuilder::new().producer(pid, epoch, seq);
    for i in 0..n {
        b.push(
            1_000,
            None,
            Some(format!("p{pid}s{}", seq + i as i32).as_bytes()),
            &[],
        );
    }
    Batch::parse(b.build(0)).unwrap()
}

/// A batch as a leader would send it to a follower: offsets already assigned.
fn at(base: u64, n: usize) -> Batch {
    let mut b = BatchBuilder::new();
    for i in 0..n {
        b.push(
            1_000,
            None,
            Some(format!("r{}", base + i as u64).as_bytes()),
            &[],
        );
    }
    Batch::parse(b.build(base)).unwrap()
}

fn offsets(p: &Partition) -> Vec<u64> {
    let mut out = Vec::new();
    let mut next = p.log_start_offset();
    while let Ok(r) = p.read(next, 1 << 20) {
        let hs: Vec<_> = headers(&r.batches).collect();
        let Some(last) = hs.last() else { break };
        out.extend(hs.iter().flat_map(|h| h.base_offset..h.next_offset()));
        next = last.next_offset();
    }
    out
}

#[test]
fn a_retry_is_answered_with_its_first_offsets_and_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    p.append(&plain(2)).unwrap();
    let first = p.append(&idempotent(7, 0, 0, 3)).unwrap();
    assert_eq!((first.base_offset, first.duplicate), (2, false));
    let retry = p.append(&idempotent(7, 0, 0, 3)).unwrap();
    assert_eq!(
        (retry.base_offset, retry.last_offset, retry.duplicate),
        (2, 4, true)
    );
    assert_eq!(p.log_end_offset(), 5, "the retry wrote nothing");
    assert!(matches!(
        p.append(&idempotent(7, 0, 5, 1)),
        Err(Error::OutOfOrderSequence { expected: 3, .. })
    ));
    assert_eq!(p.log_end_offset(), 5, "a refused batch writes nothing");
    assert_eq!(p.producer_count(), 1);
}

#[test]
fn producer_state_survives_a_clean_close_without_replaying_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    p.append(&idempotent(1, 0, 0, 2)).unwrap();
    p.append(&plain(3)).unwrap();
    p.close().unwrap();
    drop(p);
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    assert_eq!(p.recovery_report().producer_offsets_replayed, 0);
    assert!(p.append(&idempotent(1, 0, 0, 2)).unwrap().duplicate);
    assert!(!p.append(&idempotent(1, 0, 2, 1)).unwrap().duplicate);
}

#[test]
fn after_a_crash_the_state_is_rebuilt_from_the_roll_snapshot_and_the_log_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    let mut seq = 0;
    while p.segment_count() < 3 {
        p.append(&idempotent(4, 0, seq, 4)).unwrap();
        seq += 4;
    }
    crate::flusher::drain();
    let snapshot_to = ProducerState::load(dir.path()).map(|(_, to)| to);
    let active_base = *p.shared.segments.read().unwrap().keys().last().unwrap();
    assert_eq!(snapshot_to, Some(active_base), "written at the last roll");
    p.append(&idempotent(4, 0, seq, 4)).unwrap();
    p.flush_to(p.log_end_offset()).unwrap();
    let end = p.log_end_offset();
    drop(p); // no close: a crash
    crate::flusher::drain();
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    assert_eq!(
        p.recovery_report().producer_offsets_replayed,
        end - active_base,
        "only the log after the snapshot is replayed"
    );
    let retry = p.append(&idempotent(4, 0, seq, 4)).unwrap();
    assert!(retry.duplicate, "the last batch is known after the crash");
    assert_eq!(retry.base_offset, end - 4);
}

#[test]
fn a_snapshot_ahead_of_the_log_is_not_trusted() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    p.append(&idempotent(3, 0, 0, 1)).unwrap();
    p.close().unwrap();
    drop(p);
    // A snapshot claiming more than the log holds (as if the log lost its tail).
    let mut ahead = ProducerState::default();
    ahead.record(idempotent(3, 0, 1, 1).header(), 1, 0);
    ahead.save(&crate::fs::RealFs, dir.path(), 2, true).unwrap();
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    assert_eq!(p.recovery_report().producer_offsets_replayed, 1);
    let resent = p.append(&idempotent(3, 0, 1, 1)).unwrap();
    assert!(
        !resent.duplicate,
        "the batch the log does not hold is stored"
    );
}

#[tokio::test]
async fn durable_waiters_share_flushes_and_park_no_thread() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    let mut waits = Vec::new();
    for _ in 0..50 {
        let info = p.append_nowait(&plain(1)).unwrap();
        let p = p.clone();
        waits.push(tokio::spawn(async move {
            p.wait_durable(info.log_end_offset).await
        }));
    }
    for w in waits {
        w.await.unwrap().unwrap();
    }
    assert_eq!(p.durable_offset(), 50);
    // Already durable: completes at once.
    p.wait_durable(10).await.unwrap();
}

#[test]
fn under_flush_always_readers_see_only_durable_records() {
    let dir = tempfile::tempdir().unwrap();
    let config = PartitionConfig {
        flush: FlushPolicy::Always,
        ..cfg()
    };
    let p = Partition::open(dir.path(), "t/0", config).unwrap();
    p.append_nowait(&plain(3)).unwrap();
    assert_eq!((p.log_end_offset(), p.high_watermark()), (3, 0));
    assert!(p.read(0, 1 << 20).unwrap().batches.is_empty());
    p.flush_to(3).unwrap();
    assert_eq!(p.high_watermark(), 3);
    assert_eq!(offsets(&p), [0, 1, 2]);
}

#[test]
fn a_replicated_partition_reads_only_below_the_high_watermark() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    p.append(&plain(2)).unwrap();
    p.set_replicated(u64::MAX);
    p.append(&plain(2)).unwrap();
    p.append(&plain(2)).unwrap();
    assert_eq!((p.log_end_offset(), p.high_watermark()), (6, 2));
    assert_eq!(offsets(&p), [0, 1]);
    let r = p.read(4, 1 << 20).unwrap();
    assert!(r.batches.is_empty(), "above the watermark: nothing yet");
    assert_eq!((r.high_watermark, r.log_end_offset), (2, 6));
    let watch = p.watch_high_watermark();
    assert_eq!(p.advance_high_watermark(4), 4);
    assert!(watch.has_changed().unwrap());
    assert_eq!(offsets(&p), [0, 1, 2, 3]);
    assert_eq!(p.advance_high_watermark(1), 4, "never moves back");
    assert_eq!(p.advance_high_watermark(100), 6, "never past the log end");
}

#[test]
fn a_follower_keeps_its_leaders_offsets_and_epochs() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    p.set_replicated(0);
    p.append_replicated(&at(0, 3), 1).unwrap();
    assert!(matches!(
        p.append_replicated(&at(5, 1), 1),
        Err(Error::OffsetMismatch {
            received: 5,
            log_end_offset: 3
        })
    ));
    p.append_replicated(&at(3, 2), 4).unwrap();
    assert!(matches!(
        p.append_replicated(&at(5, 1), 2),
        Err(Error::StaleLeaderEpoch {
            epoch: 2,
            latest: 4
        })
    ));
    assert_eq!(p.leader_epoch(), Some((4, 3)));
    assert_eq!(p.epoch_for_offset(2), Some(1));
    assert_eq!(p.epoch_for_offset(3), Some(4));
    assert_eq!(p.end_offset_for_epoch(1), Some((1, 3)));
    assert_eq!(p.end_offset_for_epoch(3), Some((1, 3)));
    assert_eq!(p.end_offset_for_epoch(4), Some((4, 5)));
    p.begin_leader_epoch(6).unwrap();
    p.append(&plain(1)).unwrap();
    assert_eq!(p.epoch_for_offset(5), Some(6));
    p.close().unwrap();
    drop(p);
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    assert_eq!(p.leader_epoch(), Some((6, 5)), "epochs survive a restart");
}

#[test]
fn every_stored_batch_carries_the_epoch_it_was_written_in() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    let epoch_at = |p: &Partition, offset: u64| {
        let r = p.read(offset, 1 << 20).unwrap();
        let b = brook_protocol::batch::batches(r.batches)
            .next()
            .unwrap()
            .unwrap();
        b.header().partition_leader_epoch
    };
    // A producer's value (Kafka clients send 0 or -1) is never kept.
    let mut from_client = plain(2).bytes().to_vec();
    brook_protocol::batch::set_partition_leader_epoch(&mut from_client, 41);
    p.append(&Batch::parse(from_client.into()).unwrap())
        .unwrap();
    assert_eq!(epoch_at(&p, 0), -1, "before the first epoch");
    p.begin_leader_epoch(3).unwrap();
    p.append(&plain(1)).unwrap();
    assert_eq!(epoch_at(&p, 2), 3);
    assert_eq!(epoch_at(&p, 0), -1, "earlier batches keep theirs");
    assert!(matches!(
        p.begin_leader_epoch(crate::MAX_LEADER_EPOCH + 1),
        Err(Error::LeaderEpochOutOfRange { .. })
    ));
    p.close().unwrap();
    drop(p);
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    assert_eq!(
        (epoch_at(&p, 0), epoch_at(&p, 2)),
        (-1, 3),
        "after a reopen"
    );
}

/// Appends `batches` of 3 records each; returns the log end.
fn fill(p: &Partition, batches: usize) -> u64 {
    for _ in 0..batches {
        p.append(&plain(3)).unwrap();
    }
    p.log_end_offset()
}

#[test]
fn truncation_removes_a_diverged_tail_and_appends_continue_from_it() {
    for (label, cut_batches) in [("inside a segment", 40), ("in an earlier segment", 5)] {
        let dir = tempfile::tempdir().unwrap();
        let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
        p.set_replicated(0);
        let end = fill(&p, 150);
        assert!(p.segment_count() >= 3, "{label}: several segments");
        let cut = cut_batches as u64 * 3;
        p.advance_high_watermark(cut);
        assert!(matches!(
            p.truncate_to(cut - 3),
            Err(Error::TruncateBelowHighWatermark { .. })
        ));
        assert!(matches!(
            p.truncate_to(cut + 1),
            Err(Error::NotABatchBoundary { .. })
        ));
        p.truncate_to(cut).unwrap();
        assert_eq!(p.log_end_offset(), cut, "{label}");
        p.advance_high_watermark(end);
        assert_eq!(offsets(&p), (0..cut).collect::<Vec<_>>(), "{label}");
        let info = p.append_replicated(&at(cut, 2), 1).unwrap();
        assert_eq!(
            info.base_offset, cut,
            "{label}: offsets are reused after truncation"
        );
        p.flush_to(cut + 2).unwrap();
        drop(p); // a crash: the truncated log is what recovery finds
        crate::flusher::drain();
        let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
        assert_eq!(p.log_end_offset(), cut + 2, "{label}");
        assert_eq!(offsets(&p), (0..cut + 2).collect::<Vec<_>>(), "{label}");
        assert!(p.recovery_report().damaged.is_empty(), "{label}");
        assert!(!dir.path().join("truncating.tmp").exists());
    }
}

#[test]
fn truncation_at_a_segment_base_and_of_producer_state() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    p.set_replicated(0);
    fill(&p, 60);
    p.roll().unwrap();
    let base = p.log_end_offset();
    p.append(&idempotent(9, 0, 0, 2)).unwrap();
    p.close().unwrap();
    drop(p);
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    p.set_replicated(base);
    assert!(dir.path().join(SNAPSHOT).exists());
    p.truncate_to(base).unwrap();
    assert_eq!(p.log_end_offset(), base);
    let again = p.append(&idempotent(9, 0, 0, 2)).unwrap();
    assert!(
        !again.duplicate,
        "the truncated batch is forgotten by the producer state too"
    );
    assert_eq!(again.base_offset, base);
}

#[test]
fn wait_for_a_slow_flush_thread_is_bounded() {
    // The flush threads are shared: many partitions waiting at once all finish.
    let dirs: Vec<_> = (0..8).map(|_| tempfile::tempdir().unwrap()).collect();
    let parts: Vec<_> = dirs
        .iter()
        .map(|d| Partition::open(d.path(), "t/0", cfg()).unwrap())
        .collect();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let waits = parts.iter().map(|p| {
            let end = p.append_nowait(&plain(2)).unwrap().log_end_offset;
            let p = p.clone();
            async move { p.wait_durable(end).await }
        });
        let all = futures_join(waits.collect());
        tokio::time::timeout(Duration::from_secs(30), all)
            .await
            .expect("every durable wait completes")
    });
    assert!(parts.iter().all(|p| p.durable_offset() == 2));
}

async fn futures_join(futs: Vec<impl std::future::Future<Output = Result<()>>>) {
    for f in futs {
        f.await.unwrap();
    }
}

/// Every record stored from the start: (offset, value).
fn records(p: &Partition) -> Vec<(u64, String)> {
    let mut out = Vec::new();
    let mut next = p.log_start_offset();
    while let Ok(r) = p.read(next, 1 << 20) {
        let batches: Vec<_> = brook_protocol::batch::batches(r.batches)
            .map(|b| b.unwrap())
            .collect();
        let Some(last) = batches.last() else { break };
        next = last.header().next_offset();
        for b in &batches {
            for rec in b.records() {
                let rec = rec.unwrap();
                out.push((
                    rec.offset,
                    String::from_utf8_lossy(&rec.value.unwrap()).into(),
                ));
            }
        }
    }
    out
}

#[test]
fn a_batch_stored_with_gaps_keeps_its_offsets_and_its_producers_sequence() {
    let dir = tempfile::tempdir().unwrap();
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    let sent = idempotent(3, 0, 0, 4);
    let stored = p.append(&sent.without(&[1, 3].into()).unwrap()).unwrap();
    assert_eq!((stored.base_offset, stored.last_offset), (0, 3));
    assert_eq!(p.log_end_offset(), 4, "the gaps are offsets too");
    // The producer's retry of what it sent is the same batch.
    let retry = p.append(&sent).unwrap();
    assert_eq!((retry.base_offset, retry.duplicate), (0, true));
    // A batch with every record left out still moves the sequence on.
    let all_gone = idempotent(3, 0, 4, 2).without(&[0, 1].into()).unwrap();
    assert_eq!(p.append(&all_gone).unwrap().base_offset, 4);
    let next = p.append(&idempotent(3, 0, 6, 1)).unwrap();
    assert_eq!((next.base_offset, next.duplicate), (6, false));
    let expected = vec![
        (0, "p3s0".to_string()),
        (2, "p3s2".into()),
        (6, "p3s6".into()),
    ];
    assert_eq!(records(&p), expected);
    let end = p.log_end_offset();
    p.flush_to(end).unwrap();
    drop(p); // no close: a crash, and recovery scans the batches with gaps
    crate::flusher::drain();
    let p = Partition::open(dir.path(), "t/0", cfg()).unwrap();
    assert_eq!(p.log_end_offset(), end);
    assert_eq!(records(&p), expected);
    assert!(p.append(&idempotent(3, 0, 6, 1)).unwrap().duplicate);
    assert!(p.append(&idempotent(3, 0, 4, 2)).unwrap().duplicate);
    assert!(!p.append(&idempotent(3, 0, 7, 1)).unwrap().duplicate);
    // Reads that start inside a gap find the batch that spans it.
    assert!(!p.read(5, 1 << 20).unwrap().batches.is_empty());
}
