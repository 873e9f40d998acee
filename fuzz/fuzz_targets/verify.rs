//! `brook data verify` and `brook data repair` over a data directory holding
//! one partition (`brook_storage::verify::{verify_dir, repair_partition}`):
//! every segment's batches, both index files checked entry by entry against
//! them, continuity between segments.
//!
//! The input lays the partition `t/0` out exactly as for the `recovery`
//! target (`brook_fuzz::lay_out_partition`; the two targets share seeds).
//! Verify must report, not panic; its report must count what is there.
//! Repair (moving files, unless the DRY_RUN option is set) must leave no
//! damaged batches behind: it moves every segment whose log data is damaged.
#![no_main]

use brook_fuzz::{TempDir, lay_out_partition, options};
use brook_storage::verify::{Problem, repair_partition, verify_dir};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tmp = TempDir::new("verify");
    let root = tmp.path();
    let Ok(laid) = lay_out_partition(&root.join("t").join("0"), data) else {
        return;
    };
    let Ok(report) = verify_dir(root) else {
        return;
    };
    assert_eq!(report.partitions, 1);
    assert_eq!(report.segments, laid.segments as u64);
    for f in &report.findings {
        if let Some((a, b)) = f.bytes {
            assert!(a <= b, "a finding's byte range is backwards: {f:?}");
        }
    }
    let dry_run = laid.options & options::DRY_RUN != 0;
    if repair_partition(root, "t", 0, dry_run).is_err() || dry_run {
        return;
    }
    let Ok(after) = verify_dir(root) else {
        return;
    };
    if let Some(f) = after
        .findings
        .iter()
        .find(|f| f.problem == Problem::DamagedBatches)
    {
        panic!(
            "repair left damaged batches in place: {f:?}\nbefore repair: {:?}",
            report.findings
        );
    }
});
