//! The one-number files of a partition (`recovery-point`,
//! `log-start-offset`, `.clean-shutdown`), read by
//! `storage/src/file.rs` `read_offset_file`. The `recovery` target reads
//! them too, in context; this one is the parser alone, fast.
//!
//! Needs `brook_storage::fuzzing` (see docs/fuzzing.md, "Crate-private
//! parsers"). Where the file reads, the form storage writes
//! (`write_offset_file`: the number and a newline) reads back the same.
#![no_main]

use brook_fuzz::TempDir;
use brook_storage::fuzzing::read_offset_file;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tmp = TempDir::new("offset_file");
    let path = tmp.path().join("recovery-point");
    if std::fs::write(&path, data).is_err() {
        return;
    }
    let Some(offset) = read_offset_file(&path) else {
        return;
    };
    if std::fs::write(&path, format!("{offset}\n")).is_err() {
        return;
    }
    assert_eq!(read_offset_file(&path), Some(offset));
});
