//! A topic's `topic.meta` (`storage/src/log/topic.rs` `read_meta`), as
//! `Log::open` reads it for every topic at start.
//!
//! Needs `brook_storage::fuzzing` (see docs/fuzzing.md, "Crate-private
//! parsers"). Where the file reads, the settings are valid, and writing them
//! with storage's own writer and reading that back gives the same settings.
#![no_main]

use brook_fuzz::TempDir;
use brook_storage::MAX_PARTITIONS;
use brook_storage::fuzzing::{read_topic_meta, write_topic_meta};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tmp = TempDir::new("topic_meta");
    if std::fs::write(tmp.path().join("topic.meta"), data).is_err() {
        return;
    }
    let Ok(config) = read_topic_meta(tmp.path()) else {
        return;
    };
    assert!(
        (1..=MAX_PARTITIONS).contains(&config.partitions),
        "{config:?}"
    );
    if let Err(e) = config.partition.validate() {
        panic!("read_meta accepted invalid settings {config:?}: {e}");
    }
    let again = TempDir::new("topic_meta");
    if write_topic_meta(again.path(), &config).is_err() {
        return;
    }
    match read_topic_meta(again.path()) {
        Ok(reread) => assert_eq!(reread, config, "topic.meta does not round-trip"),
        Err(e) => panic!("storage cannot read the topic.meta it wrote for {config:?}: {e}"),
    }
});
