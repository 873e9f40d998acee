//! The `leader-epoch-checkpoint` (`storage/src/epochs.rs` `parse`, Kafka's
//! layout: a version line, a count line, `epoch start_offset` lines), as
//! `LeaderEpochs::open` reads it when a partition opens.
//!
//! Needs `brook_storage::fuzzing` (see docs/fuzzing.md, "Crate-private
//! parsers"). Where it parses, the epochs grow strictly with start offsets
//! that never go back, and the file in the form storage persists reads back
//! the same.
#![no_main]

use brook_storage::fuzzing::parse_leader_epochs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some(entries) = parse_leader_epochs(text) else {
        return;
    };
    for w in entries.windows(2) {
        assert!(
            w[0].0 < w[1].0 && w[0].1 <= w[1].1,
            "out of order: {entries:?}"
        );
    }
    // The layout `LeaderEpochs::persist` writes (version 0).
    let mut persisted = format!("0\n{}\n", entries.len());
    for (epoch, start) in &entries {
        persisted.push_str(&format!("{epoch} {start}\n"));
    }
    assert_eq!(
        parse_leader_epochs(&persisted).as_ref(),
        Some(&entries),
        "the checkpoint does not round-trip"
    );
});
