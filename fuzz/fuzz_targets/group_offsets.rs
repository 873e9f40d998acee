//! A consumer group's committed offsets, `<data>/~groups/<group>.offsets`
//! (`broker/src/groups/offsets.rs`), loaded by `OffsetStore::open` at start.
//!
//! Where the file loads, committing what it holds under another group name
//! (the broker's own writer) and opening the directory again gives the same
//! offsets for both groups.
#![no_main]

use brook_broker::groups::offsets::OffsetStore;
use brook_fuzz::TempDir;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let tmp = TempDir::new("group_offsets");
    let dir = tmp.path().join("~groups");
    if std::fs::create_dir_all(&dir).is_err()
        || std::fs::write(dir.join("g.offsets"), data).is_err()
    {
        return;
    }
    let Ok(store) = OffsetStore::open(&dir) else {
        return;
    };
    let loaded = store.get("g");
    if store
        .commit("h", loaded.clone().into_iter().collect())
        .is_err()
    {
        return;
    }
    drop(store);
    let store = match OffsetStore::open(&dir) {
        Ok(s) => s,
        Err(e) => panic!("the broker cannot load the offsets file it wrote: {e:#}"),
    };
    assert_eq!(store.get("g"), loaded);
    assert_eq!(
        store.get("h"),
        loaded,
        "committed offsets do not round-trip"
    );
});
