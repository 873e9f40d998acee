//! The queue groups' state, loaded by `Queues::open` at start
//! (`broker/src/queues/store.rs`): `<data>/~queues/queues.log`. When the
//! first input byte is even, the log's first line goes before the rest, so
//! that the fuzzer spends its time on frames.
//!
//! Where the file loads, the state written out whole (the broker's rewrite)
//! and opened again is the state that was loaded.
#![no_main]

use brook_broker::queues::Queues;
use brook_fuzz::TempDir;
use brook_storage::FlushPolicy;
use libfuzzer_sys::fuzz_target;

/// The log's first line (`broker/src/queues/store.rs`).
const MAGIC: &[u8] = b"brook-queues-log 1\n";

fuzz_target!(|data: &[u8]| {
    let Some((&which, contents)) = data.split_first() else {
        return;
    };
    let tmp = TempDir::new("queues_log");
    let dir = tmp.path().join("~queues");
    let mut bytes = Vec::new();
    if which % 2 == 0 {
        bytes.extend_from_slice(MAGIC);
    }
    bytes.extend_from_slice(contents);
    if std::fs::create_dir_all(&dir).is_err()
        || std::fs::write(dir.join("queues.log"), &bytes).is_err()
    {
        return;
    }
    let Ok(queues) = Queues::open(&dir, FlushPolicy::Never) else {
        return;
    };
    let loaded = queues.durable_lines();
    if queues.rewrite_now().is_err() {
        return;
    }
    drop(queues);
    let queues = match Queues::open(&dir, FlushPolicy::Never) {
        Ok(q) => q,
        Err(e) => panic!("the broker cannot load the queues log it wrote: {e:#}"),
    };
    assert_eq!(
        queues.durable_lines(),
        loaded,
        "the state did not survive its rewrite"
    );
});
