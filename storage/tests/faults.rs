//! I/O faults injected through the file-system seam ([`FaultyFs`]) on real
//! files in a temporary directory: a failed `fdatasync`, a full disk at
//! allocation and at write, short writes, failed renames of the small files
//! written atomically, and a failed `syncfs` at a log's close. Each test says
//! what the partition must do, then reopens the directory on the real file
//! system and checks that nothing it had promised was lost.
//!
//! A fault here fails the call before it reaches the kernel; what a real
//! failed `fsync` may also do (drop dirty pages) is the crash tests' subject
//! (`crash.rs` damages files the way a power cut does).

mod common;

use std::path::Path;
use std::sync::Arc;

use brook_protocol::batch::{Batch, BatchBuilder};
use brook_storage::{
    AppendMode, DirLock, Error, FaultyFs, FileSystem, FlushPolicy, FsOp, Log, LogOptions,
    Partition, PartitionConfig, TopicConfig, drain_background_jobs,
};
use common::{Rec, batch, log_files, read_all};

const CLEAN_SHUTDOWN: &str = ".clean-shutdown";

fn config(mode: AppendMode) -> PartitionConfig {
    PartitionConfig {
        segment_bytes: 64 << 10,
        max_batch_bytes: 16 << 10,
        flush: FlushPolicy::Never,
        append_mode: mode,
        retention_ms: None,
        ..Default::default()
    }
}

fn open(dir: &Path, cfg: PartitionConfig, fs: &Arc<FaultyFs>) -> Partition {
    let seam: Arc<dyn FileSystem> = fs.clone();
    Partition::open_with(dir, "t/0", cfg, seam).unwrap()
}

/// Appends `n` batches of three records (values `tag-i-j`, `len` bytes
/// each), recording what was acknowledged in `model`.
fn append_n(p: &Partition, model: &mut Vec<Rec>, tag: &str, n: usize, len: usize) {
    for i in 0..n {
        let values: Vec<Vec<u8>> = (0..3)
            .map(|j| {
                let mut v = format!("{tag}-{i}-{j}-").into_bytes();
                v.resize(len.max(v.len()), b'a' + (i % 26) as u8);
                v
            })
            .collect();
        let ts = model.len() as i64;
        let info = p.append(&batch(ts, &values)).unwrap();
        for (j, v) in values.into_iter().enumerate() {
            model.push((info.base_offset + j as u64, ts + j as i64, v));
        }
    }
}

/// Closes `p`, opens its directory again on the real file system, and
/// checks that the open was clean and every record of `model` is there.
fn closed_and_reopened_cleanly(p: Partition, dir: &Path, model: &[Rec]) {
    p.close().unwrap();
    drop(p);
    let p = Partition::open(dir, "t/0", config(AppendMode::Write)).unwrap();
    assert!(p.recovery_report().clean);
    assert_eq!(read_all(&p, 0), model);
}

#[test]
fn eio_on_fdatasync_poisons_the_partition_and_loses_nothing_flushed() {
    // The flush's first sync call: the file's fdatasync, or in mmap mode the msync before it.
    for (mode, op) in [
        (AppendMode::Write, FsOp::SyncData),
        (AppendMode::Mmap, FsOp::SyncMapped),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let fs = Arc::new(FaultyFs::new());
        let p = open(dir.path(), config(mode), &fs);
        let mut model = Vec::new();
        append_n(&p, &mut model, "flushed", 10, 100);
        p.flush_to(p.log_end_offset()).unwrap();
        let flushed = model.len();
        append_n(&p, &mut model, "unflushed", 5, 100);

        fs.fail_next(op, libc::EIO);
        let err = p.flush_to(p.log_end_offset()).unwrap_err();
        assert!(matches!(err, Error::Poisoned { .. }), "{mode:?}: {err}");
        assert_eq!(fs.failures(op), 1);
        assert_eq!(p.durable_offset(), flushed as u64, "{mode:?}");
        // The poison stays: appends and later flushes fail, reads go on.
        let again = p.append(&batch(0, &[b"late".to_vec()])).unwrap_err();
        assert!(matches!(again, Error::Poisoned { .. }), "{again}");
        assert!(p.flush_to(p.log_end_offset()).is_err());
        assert_eq!(read_all(&p, 0), model, "{mode:?}");

        p.close().unwrap();
        assert!(
            !dir.path().join(CLEAN_SHUTDOWN).exists(),
            "{mode:?}: a poisoned partition must not vouch for its files"
        );
        drop(p);

        let p = Partition::open(dir.path(), "t/0", config(mode)).unwrap();
        assert!(!p.recovery_report().clean, "{mode:?}: the reopen scans");
        let recovered = read_all(&p, 0);
        assert_eq!(recovered[..flushed], model[..flushed], "{mode:?}");
        // No power was cut: the page cache still had the rest.
        assert_eq!(recovered, model, "{mode:?}");
        let next = p.append(&batch(0, &[b"after".to_vec()])).unwrap();
        assert_eq!(next.base_offset, model.len() as u64);
    }
}

#[test]
fn enospc_on_allocate_is_disk_full_and_appends_resume_where_they_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(FaultyFs::new());
    let p = open(dir.path(), config(AppendMode::Write), &fs);
    let mut model = Vec::new();
    append_n(&p, &mut model, "before", 30, 1500);
    assert!(p.segment_count() > 1);

    // Each segment reserves its space when it is created, so the next roll
    // is where a full disk shows.
    fs.fail_always(FsOp::Allocate, libc::ENOSPC);
    let big = vec![b'x'; 4500];
    let err = loop {
        match p.append(&batch(0, std::slice::from_ref(&big))) {
            Ok(info) => model.push((info.base_offset, 0, big.clone())),
            Err(e) => break e,
        }
        assert!(model.len() < 1000, "the disk never filled up");
    };
    assert!(matches!(err, Error::DiskFull { .. }), "{err:?}");
    assert!(fs.failures(FsOp::Allocate) > 0);
    let end = model.len() as u64;
    assert_eq!(p.log_end_offset(), end);
    assert_eq!(read_all(&p, 0), model, "reads go on, nothing acked is lost");
    let err = p.append(&batch(0, &[vec![b'y'; 4500]])).unwrap_err();
    assert!(matches!(err, Error::DiskFull { .. }), "{err:?}");
    assert_eq!(p.log_end_offset(), end, "a failed append takes no offset");
    // The failed roll left no empty segment behind to overlap the active
    // one, which a smaller batch can still go into.
    assert_eq!(log_files(dir.path()), p.segment_count());

    fs.clear();
    let info = p.append(&batch(0, &[b"after".to_vec()])).unwrap();
    assert_eq!(info.base_offset, end);
    model.push((end, 0, b"after".to_vec()));
    closed_and_reopened_cleanly(p, dir.path(), &model);
}

#[test]
fn enospc_on_a_write_publishes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(FaultyFs::new());
    let p = open(dir.path(), config(AppendMode::Write), &fs);
    let mut model = Vec::new();
    append_n(&p, &mut model, "a", 3, 50);
    let end = p.log_end_offset();

    fs.fail_next(FsOp::Write, libc::ENOSPC);
    let err = p.append(&batch(0, &[b"lost".to_vec()])).unwrap_err();
    assert!(matches!(err, Error::DiskFull { .. }), "{err:?}");
    assert_eq!(p.log_end_offset(), end);
    assert_eq!(read_all(&p, 0), model);

    // The next batch takes the offsets and the bytes the failed one did not.
    append_n(&p, &mut model, "b", 3, 50);
    assert_eq!(model[end as usize].0, end);
    assert_eq!(read_all(&p, 0), model);
}

#[test]
fn short_writes_are_completed_and_every_batch_reads_back_intact() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(FaultyFs::new());
    let p = open(dir.path(), config(AppendMode::Write), &fs);
    fs.short_writes(7);
    let mut model = Vec::new();
    for round in 0..8 {
        append_n(&p, &mut model, &format!("r{round}"), 5, 10 + round * 300);
    }
    let batches = 40;
    assert!(
        fs.calls(FsOp::Write) > 10 * batches,
        "7 bytes a call: {} calls for {batches} batches",
        fs.calls(FsOp::Write)
    );
    assert_eq!(read_all(&p, 0), model);
    closed_and_reopened_cleanly(p, dir.path(), &model);
}

#[test]
fn failed_renames_after_a_roll_are_warnings_and_the_log_is_intact() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(FaultyFs::new());
    let p = open(dir.path(), config(AppendMode::Write), &fs);
    let mut model = Vec::new();
    append_n(&p, &mut model, "a", 5, 100);

    // The roll's background sync records the recovery point and the
    // producer-state snapshot, each by an atomic rename.
    fs.fail_next_on(FsOp::Rename, "recovery-point", libc::EIO);
    fs.fail_next_on(FsOp::Rename, "producer-state", libc::EIO);
    assert!(p.roll().unwrap());
    drain_background_jobs();
    assert_eq!(fs.failures(FsOp::Rename), 2);
    assert!(!dir.path().join("recovery-point").exists());
    assert!(!dir.path().join("producer-state").exists());
    let strays: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(strays.is_empty(), "temporary files left: {strays:?}");

    // Not poisoned: the log's own files were synced.
    append_n(&p, &mut model, "b", 5, 100);
    p.flush_to(p.log_end_offset()).unwrap();
    assert_eq!(read_all(&p, 0), model);
    closed_and_reopened_cleanly(p, dir.path(), &model);
}

#[test]
fn a_failed_snapshot_at_close_still_closes_cleanly_and_the_state_is_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(FaultyFs::new());
    let p = open(dir.path(), config(AppendMode::Write), &fs);
    let mut model = Vec::new();
    append_n(&p, &mut model, "a", 5, 100);
    let mut b = BatchBuilder::new().producer(7, 0, 0);
    b.push(1, None, Some(b"once"), &[]);
    let idempotent = Batch::parse(b.build(0)).unwrap();
    let first = p.append(&idempotent).unwrap();

    fs.fail_next_on(FsOp::Rename, "producer-state", libc::EIO);
    p.close().unwrap();
    assert_eq!(fs.failures(FsOp::Rename), 1, "the snapshot's rename failed");
    assert!(
        dir.path().join(CLEAN_SHUTDOWN).exists(),
        "the log is complete"
    );
    drop(p);

    let p = Partition::open(dir.path(), "t/0", config(AppendMode::Write)).unwrap();
    assert!(p.recovery_report().clean);
    assert!(p.recovery_report().producer_offsets_replayed > 0);
    let retry = p.append(&idempotent).unwrap();
    assert!(retry.duplicate, "the producer is known from the log");
    assert_eq!(retry.base_offset, first.base_offset);
}

#[test]
fn a_log_hands_its_file_system_to_every_partition_and_its_close() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(FaultyFs::new());
    let options = LogOptions {
        fs: fs.clone(),
        ..Default::default()
    };
    let log = Log::open_with(DirLock::exclusive(dir.path()).unwrap(), options).unwrap();
    let topic = TopicConfig {
        partitions: 2,
        partition: config(AppendMode::Write),
    };
    log.create_topic("orders", topic).unwrap();
    let mut models = [Vec::new(), Vec::new()];
    for (id, model) in models.iter_mut().enumerate() {
        let p = log.topic("orders").unwrap().partition(id as u32).unwrap();
        append_n(&p, model, "a", 3, 100);
    }
    assert!(fs.calls(FsOp::Allocate) >= 2, "each partition's segment");
    assert!(fs.calls(FsOp::Write) >= 6, "every append");
    assert!(fs.calls(FsOp::WriteFile) >= 1, "the topic's metadata");

    // The close's first syncfs fails: no partition may write its marker.
    fs.fail_next(FsOp::SyncFilesystem, libc::EIO);
    assert!(log.close().is_err());
    for id in 0..2 {
        let marker = dir.path().join(format!("orders/{id}/{CLEAN_SHUTDOWN}"));
        assert!(!marker.exists(), "{}", marker.display());
    }
    drop(log);

    let log = Log::open(dir.path()).unwrap();
    for (id, model) in models.iter().enumerate() {
        let p = log.topic("orders").unwrap().partition(id as u32).unwrap();
        assert!(!p.recovery_report().clean);
        assert_eq!(&read_all(&p, 0), model);
    }
}
