//! The routing rules, loaded by `Rules::open` at start
//! (`broker/src/rules/store.rs`): `<data>/~rules/rules.log`. When the
//! first input byte is even, the log's first line goes before the rest, so
//! that the fuzzer spends its time on frames.
//!
//! Where the file loads, the state written out whole (the broker's rewrite)
//! and opened again is the state that was loaded.
#![no_main]

use brook_broker::rules::Rules;
use brook_fuzz::TempDir;
use brook_storage::FlushPolicy;
use libfuzzer_sys::fuzz_target;

/// The log's first line (`broker/src/rules/store.rs`).
const MAGIC: &[u8] = b"brook-rules-log 1\n";

fuzz_target!(|data: &[u8]| {
    let Some((&which, contents)) = data.split_first() else {
        return;
    };
    let tmp = TempDir::new("rules_log");
    let dir = tmp.path().join("~rules");
    let mut bytes = Vec::new();
    if which % 2 == 0 {
        bytes.extend_from_slice(MAGIC);
    }
    bytes.extend_from_slice(contents);
    if std::fs::create_dir_all(&dir).is_err()
        || std::fs::write(dir.join("rules.log"), &bytes).is_err()
    {
        return;
    }
    let Ok(rules) = Rules::open(&dir, FlushPolicy::Never) else {
        return;
    };
    let loaded = rules.durable_lines();
    if rules.rewrite_now().is_err() {
        return;
    }
    drop(rules);
    let rules = match Rules::open(&dir, FlushPolicy::Never) {
        Ok(r) => r,
        Err(e) => panic!("the broker cannot load the rules log it wrote: {e:#}"),
    };
    assert_eq!(
        rules.durable_lines(),
        loaded,
        "the state did not survive its rewrite"
    );
});
