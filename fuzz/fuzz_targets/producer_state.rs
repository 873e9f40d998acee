//! The idempotent producers' snapshot, `producer-state`
//! (`storage/src/producers.rs` `decode`, all three versions), as
//! `Partition::open` loads it.
//!
//! Needs `brook_storage::fuzzing` (see docs/fuzzing.md, "Crate-private
//! parsers"). Where a snapshot loads, the snapshot this build writes for the
//! state it holds (`encode`, version 3 with its CRC) loads again to the same
//! state and offset.
#![no_main]

use brook_storage::fuzzing::decode_producer_state;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // Storage reads the file with `read_to_string`: text that is not UTF-8
    // never reaches the decoder.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some((valid_to, written)) = decode_producer_state(text) else {
        return;
    };
    match decode_producer_state(&written) {
        Some((again_to, rewritten)) => {
            assert_eq!(
                again_to, valid_to,
                "the snapshot's offset does not round-trip"
            );
            assert_eq!(
                rewritten, written,
                "the producers' state does not round-trip"
            );
        }
        None => panic!("storage cannot load the snapshot it writes:\n{written}"),
    }
});
