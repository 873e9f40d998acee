//! The idempotent-producer id reservation, `<data>/~producer-ids`
//! (`broker/src/producer_ids.rs`), read by `ProducerIds::open` at start.
//!
//! Needs `brook_broker::fuzzing` (see docs/fuzzing.md, "Crate-private
//! parsers"). Where the file reads, the id handed out next is a real one
//! (not negative: -1 means "no producer id" in a batch), counts as issued,
//! and a restart never hands it out again.
#![no_main]

use brook_broker::fuzzing::ProducerIds;
use brook_fuzz::TempDir;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tmp = TempDir::new("producer_ids");
    if std::fs::write(tmp.path().join("~producer-ids"), data).is_err() {
        return;
    }
    let Ok(ids) = ProducerIds::open(tmp.path()) else {
        return;
    };
    let Ok(id) = ids.allocate() else {
        return;
    };
    assert!(id >= 0, "handed out the producer id {id}");
    assert!(
        ids.issued(id),
        "the id just handed out ({id}) does not count as issued"
    );
    drop(ids);
    let ids = match ProducerIds::open(tmp.path()) {
        Ok(ids) => ids,
        Err(e) => panic!("the broker cannot read the reservation it wrote: {e}"),
    };
    if let Ok(next) = ids.allocate() {
        assert!(
            next > id,
            "after a restart the id {next} came after {id}: ids are reused"
        );
    }
});
