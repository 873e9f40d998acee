//! A full disk: appends fail with `DiskFull`, reads go on, nothing already
//! acknowledged is lost, and appends resume once there is room again.
//!
//! One scenario, on two disks: a 3 MiB tmpfs, which fills up for real (the
//! kernel's own ENOSPC, wherever it strikes first; mounting takes root, and
//! CI and the development machines run as root), and [`FaultyFs`] with a
//! 3 MiB budget, which fails the same way on any machine and at the same
//! call every run.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use brook_storage::{
    Error, FaultyFs, FileSystem, FlushPolicy, FsOp, Partition, PartitionConfig, RealFs,
};
use common::{batch, read_all};

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

fn config() -> PartitionConfig {
    PartitionConfig {
        segment_bytes: 512 << 10,
        max_batch_bytes: 64 << 10,
        flush: FlushPolicy::Never,
        ..Default::default()
    }
}

/// Appends until the disk is full, checks what a full disk must do, lets
/// `make_room` free space and checks that appends resume at the right
/// offset and that everything survives a reopen.
fn fill_up_and_recover(data: &Path, fs: Arc<dyn FileSystem>, make_room: impl FnOnce(&Partition)) {
    let p = Partition::open_with(data, "t/0", config(), fs).unwrap();
    let value = vec![7u8; 20_000];
    let mut acked = 0u64;
    let err = loop {
        match p.append(&batch(acked as i64, std::slice::from_ref(&value))) {
            Ok(info) => acked = info.log_end_offset,
            Err(e) => break e,
        }
        assert!(acked < 1000, "a 3 MiB disk never filled up");
    };
    assert!(
        matches!(err, Error::DiskFull { .. }),
        "expected DiskFull, got {err:?}"
    );
    assert!(acked > 0);
    // Reads go on, and every acknowledged record is there.
    assert_eq!(read_all(&p, 0).len() as u64, acked);
    assert_eq!(p.log_end_offset(), acked);
    // A second attempt fails the same way without damaging anything.
    assert!(matches!(
        p.append(&batch(0, std::slice::from_ref(&value))),
        Err(Error::DiskFull { .. })
    ));
    assert_eq!(read_all(&p, 0).len() as u64, acked);
    make_room(&p);
    let info = p.append(&batch(0, &[value])).unwrap();
    assert_eq!(info.base_offset, acked);
    let kept = read_all(&p, p.log_start_offset());
    p.close().unwrap();
    drop(p);
    let p = Partition::open(data, "t/0", config()).unwrap();
    assert!(p.recovery_report().clean);
    assert_eq!(read_all(&p, p.log_start_offset()), kept);
    assert_eq!(p.log_end_offset(), acked + 1);
}

#[test]
fn full_tmpfs_is_an_error_and_reads_go_on() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!(
            "SKIPPED: mounting a tmpfs needs root; run as root to exercise the full-disk path"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=3m", "brook-full-test"])
        .arg(dir.path())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "could not mount a tmpfs at {} although running as root",
        dir.path().display()
    );
    let _mount = Mount(dir.path().to_path_buf());
    // Retention frees the space.
    fill_up_and_recover(&dir.path().join("p"), Arc::new(RealFs), |p| {
        assert!(p.enforce_retention(i64::MAX).unwrap() > 0);
    });
}

#[test]
fn full_faulty_fs_is_an_error_and_reads_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let fs = Arc::new(FaultyFs::new());
    fs.enospc_after_bytes(3 << 20);
    fill_up_and_recover(&dir.path().join("p"), fs.clone(), |p| {
        assert!(
            fs.failures(FsOp::Allocate) > 0,
            "the allocation failed first"
        );
        // FaultyFs does not count what retention frees: give the room back.
        assert!(p.enforce_retention(i64::MAX).unwrap() > 0);
        fs.clear();
    });
}
