//! Committed offsets of consumer groups, loaded by `OffsetStore::open` at
//! start (`broker/src/groups/offsets/`): the offsets log
//! `<data>/~groups/offsets.log` when the first input byte is even, a file of
//! the first format (`<group>.offsets`, migrated into the log) when odd.
//!
//! Where the directory loads, a commit appended through the broker's writer
//! and opening the directory again give what was loaded plus that commit.
#![no_main]

use std::collections::BTreeMap;

use brook_broker::groups::offsets::{Committed, OffsetStore};
use brook_fuzz::TempDir;
use brook_storage::FlushPolicy;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&which, contents)) = data.split_first() else {
        return;
    };
    let tmp = TempDir::new("group_offsets");
    let dir = tmp.path().join("~groups");
    let name = if which % 2 == 0 { "offsets.log" } else { "g.offsets" };
    if std::fs::create_dir_all(&dir).is_err() || std::fs::write(dir.join(name), contents).is_err()
    {
        return;
    }
    let Ok(store) = OffsetStore::open(&dir, FlushPolicy::Never) else {
        return;
    };
    let loaded: BTreeMap<String, _> = store
        .groups()
        .into_iter()
        .map(|g| {
            let offsets = store.get(&g);
            (g, offsets)
        })
        .collect();
    let added = (
        ("fuzz-topic".to_string(), 3),
        Committed {
            offset: 11,
            metadata: "m".into(),
            timestamp_ms: 5,
        },
    );
    if store.commit("fuzz-group", vec![added.clone()]).is_err() {
        return;
    }
    drop(store);
    let store = match OffsetStore::open(&dir, FlushPolicy::Never) {
        Ok(s) => s,
        Err(e) => panic!("the broker cannot load the offsets it wrote: {e:#}"),
    };
    for (group, offsets) in &loaded {
        let mut expected = offsets.clone();
        if group == "fuzz-group" {
            expected.insert(added.0.clone(), added.1.clone());
        }
        assert_eq!(&store.get(group), &expected, "group {group:?} did not round-trip");
    }
    assert_eq!(store.get("fuzz-group").get(&added.0), Some(&added.1));
});
