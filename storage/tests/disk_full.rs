//! A full disk: appends fail with `DiskFull`, reads go on, nothing already
//! acknowledged is lost, and appends resume once there is room again.
//!
//! Needs a small file system of its own, so it mounts a 3 MiB tmpfs; that
//! takes root (CI and the development machines run as root).

mod common;

use std::process::Command;

use brook_storage::{Error, FlushPolicy, Partition, PartitionConfig};
use common::{batch, read_all};

struct Mount(std::path::PathBuf);

impl Drop for Mount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn full_disk_is_an_error_and_reads_go_on() {
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

    let config = PartitionConfig {
        segment_bytes: 512 << 10,
        max_batch_bytes: 64 << 10,
        flush: FlushPolicy::Never,
        ..Default::default()
    };
    let data = dir.path().join("p");
    let p = Partition::open(&data, "t/0", config).unwrap();
    let value = vec![7u8; 20_000];
    let mut acked = 0u64;
    let err = loop {
        match p.append(&batch(acked as i64, std::slice::from_ref(&value))) {
            Ok(info) => acked = info.log_end_offset,
            Err(e) => break e,
        }
        assert!(acked < 1000, "a 3 MiB file system never filled up");
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
    // Free space (retention would do this); appends resume at the right offset.
    p.enforce_retention(i64::MAX).unwrap();
    let info = p.append(&batch(0, &[value])).unwrap();
    assert_eq!(info.base_offset, acked);
}
