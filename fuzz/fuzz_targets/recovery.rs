//! Opening a partition from whatever is on disk (`Partition::open`,
//! storage/src/partition/loader.rs): the segment files and their indexes,
//! the recovery scan, `recovery-point`, `log-start-offset`, the
//! clean-shutdown marker, the `producer-state` snapshot and the
//! `leader-epoch-checkpoint` — every file storage reads back, through its
//! public API.
//!
//! The input lays a partition directory out (`brook_fuzz::lay_out_partition`:
//! an 11-byte header, then the files separated by `SEPARATOR`). Opening may
//! fail; it must not panic. Once open, every read must keep storage's
//! promises (`brook_fuzz::check_reads`); with the APPEND option a new batch
//! goes on at the log end and reads back; with REOPEN the partition is
//! closed and opened again, and no offset it had handed out may be reused.
#![no_main]

use brook_fuzz::{TempDir, check_reads, lay_out_partition, options, partition_config, settle};
use brook_protocol::batch::{Batch, BatchBuilder, batches};
use brook_storage::{Partition, now_ms};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tmp = TempDir::new("recovery");
    let dir = tmp.path().join("p");
    let Ok(laid) = lay_out_partition(&dir, data) else {
        return;
    };
    let config = partition_config(laid.options);
    if let Ok(p) = Partition::open(&dir, "fuzz/0", config.clone()) {
        check_reads(&p);
        if laid.options & options::APPEND != 0 {
            append_and_read_back(&p);
        }
        if laid.options & options::REOPEN != 0 {
            let end = p.log_end_offset();
            if p.close().is_ok() {
                drop(p);
                settle();
                let q = match Partition::open(&dir, "fuzz/0", config) {
                    Ok(q) => q,
                    Err(e) => panic!("a partition closed cleanly does not open again: {e}"),
                };
                assert!(
                    q.log_end_offset() >= end,
                    "the log end went back from {end} to {} across a clean close: offsets would be reused",
                    q.log_end_offset()
                );
                check_reads(&q);
                let _ = q.close();
            }
        }
    }
    settle();
});

fn append_and_read_back(p: &Partition) {
    let mut b = BatchBuilder::new();
    b.push(
        now_ms(),
        Some(&b"fuzz-key"[..]),
        Some(&b"fuzz-value"[..]),
        &[("h", &b"v"[..])],
    );
    let batch = match Batch::parse(b.build(0)) {
        Ok(b) => b,
        Err(e) => panic!("BatchBuilder's batch does not parse: {e}"),
    };
    let end = p.log_end_offset();
    let Ok(info) = p.append(&batch) else {
        return;
    };
    assert_eq!(
        info.base_offset, end,
        "an append did not go on at the log end"
    );
    assert!(!info.duplicate);
    assert_eq!(p.log_end_offset(), info.last_offset + 1);
    let read = match p.read(info.base_offset, 1 << 20) {
        Ok(r) => r,
        Err(e) => panic!(
            "the batch just appended at {} does not read back: {e}",
            info.base_offset
        ),
    };
    let first = match batches(read.batches).next() {
        Some(Ok(b)) => b,
        Some(Err(e)) => panic!("the batch just appended reads back damaged: {e}"),
        None => panic!("a read at the batch just appended returned nothing"),
    };
    assert_eq!(first.base_offset(), info.base_offset);
    let record = match first.records().next() {
        Some(Ok(r)) => r,
        other => panic!("the record just appended does not decode: {other:?}"),
    };
    assert_eq!(record.value.as_deref(), Some(&b"fuzz-value"[..]));
    check_reads(p);
}
