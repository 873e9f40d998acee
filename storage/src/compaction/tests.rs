//! A model-based property test of a cleaning pass: random keyed records,
//! tombstones and keyless records appended in batches, passes at random
//! points with random map sizes and tombstone horizons; after each pass the
//! log read from the start equals the model.

use std::collections::BTreeMap;

use brook_protocol::batch::{Batch, BatchBuilder};
use bytes::Bytes;
use proptest::prelude::*;

use super::{Cleaned, Tally, build_map, clean_batch};

/// One record as appended: key, value (None: a tombstone), timestamp.
type Rec = (Option<u8>, Option<u8>, i64);

#[derive(Debug, Clone)]
enum Step {
    Append(Vec<Rec>),
    Clean {
        /// Batches at the end left alone (the active segment).
        active: usize,
        /// The map's size in bytes.
        limit: usize,
        /// Tombstones older than this go.
        horizon: i64,
        /// Keep batches a pass empties (as a producer's last batch is kept).
        keep_emptied: bool,
    },
}

fn rec() -> impl Strategy<Value = Rec> {
    (
        prop_oneof![9 => (0u8..6).prop_map(Some), 1 => Just(None)],
        prop_oneof![4 => any::<u8>().prop_map(Some), 1 => Just(None)],
        0i64..100,
    )
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => prop::collection::vec(rec(), 1..4).prop_map(Step::Append),
        1 => (0usize..3, 0usize..600, 0i64..120, any::<bool>()).prop_map(
            |(active, limit, horizon, keep_emptied)| Step::Clean { active, limit, horizon, keep_emptied }
        ),
    ]
}

fn key(k: u8) -> Bytes {
    Bytes::from(format!("key-{k}"))
}

fn batch(records: &[Rec], base: u64) -> Batch {
    let mut b = BatchBuilder::new();
    for (k, v, ts) in records {
        let k = k.map(key);
        let v = v.map(|v| vec![v]);
        b.push(*ts, k.as_deref(), v.as_deref(), &[("h", b"x")]);
    }
    Batch::parse(b.build(base)).unwrap()
}

/// Every record of the log, by offset.
fn read(log: &[Batch]) -> BTreeMap<u64, Rec> {
    let mut out = BTreeMap::new();
    let mut last = None;
    for b in log {
        for r in b.records() {
            let r = r.unwrap();
            assert!(last < Some(r.offset), "offsets strictly increase");
            last = Some(r.offset);
            assert_eq!(r.headers.len(), 1, "headers kept");
            let k = r.key.map(|k| {
                let text = std::str::from_utf8(&k).unwrap();
                text.strip_prefix("key-").unwrap().parse::<u8>().unwrap()
            });
            out.insert(r.offset, (k, r.value.map(|v| v[0]), r.timestamp));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn a_pass_keeps_exactly_each_keys_latest_record(steps in prop::collection::vec(step(), 1..40)) {
        let mut log: Vec<Batch> = Vec::new();
        let mut model: BTreeMap<u64, Rec> = BTreeMap::new();
        let mut next = 0u64;
        for step in steps {
            match step {
                Step::Append(records) => {
                    log.push(batch(&records, next));
                    for r in records {
                        model.insert(next, r);
                        next += 1;
                    }
                }
                Step::Clean { active, limit, horizon, keep_emptied } => {
                    let cleanable = log.len().saturating_sub(active);
                    let (map, covered) = build_map(&log[..cleanable], limit).unwrap();
                    // The covered range ends at a batch boundary of the cleanable part.
                    let ends: Vec<u64> = log[..cleanable].iter().map(|b| b.header().next_offset()).collect();
                    prop_assert!(covered == 0 || ends.contains(&covered), "{covered} in {ends:?}");
                    let mut cleaned = Vec::new();
                    for (i, b) in log.iter().enumerate() {
                        let outcome = match i < cleanable {
                            true => clean_batch(b, &map, covered, &|_, ts| ts < horizon, &mut Tally::default()).unwrap(),
                            false => Cleaned::Unchanged,
                        };
                        match outcome {
                            Cleaned::Unchanged => cleaned.push(b.clone()),
                            Cleaned::Rebuilt(r) => {
                                prop_assert_eq!(r.header().base_offset, b.header().base_offset);
                                prop_assert_eq!(r.header().next_offset(), b.header().next_offset());
                                cleaned.push(r);
                            }
                            Cleaned::Emptied(e) => {
                                prop_assert_eq!(e.header().record_count, 0);
                                prop_assert_eq!(e.header().next_offset(), b.header().next_offset());
                                if keep_emptied {
                                    cleaned.push(e);
                                }
                            }
                        }
                    }
                    log = cleaned;
                    // The model: below `covered`, a keyed record goes when a
                    // later record of its key is still there below `covered`,
                    // and a tombstone goes once older than the horizon.
                    let before = model.clone();
                    model.retain(|&offset, (k, v, ts)| {
                        let Some(k) = k else { return true };
                        if offset >= covered {
                            return true;
                        }
                        let superseded = before
                            .range(offset + 1..covered)
                            .any(|(_, (k2, _, _))| k2.as_ref() == Some(&*k));
                        let expired = v.is_none() && *ts < horizon;
                        !(superseded || expired)
                    });
                    // Below `covered`, one record per key at most.
                    let mut seen = std::collections::BTreeSet::new();
                    for (_, (k, _, _)) in model.range(..covered) {
                        if let Some(k) = k {
                            prop_assert!(seen.insert(*k), "key {k} twice below {covered}");
                        }
                    }
                }
            }
            prop_assert_eq!(read(&log), model.clone());
        }
    }
}

/// A map too small for the next batch's keys ends the covered range before
/// that batch, and a batch that fits is covered whole.
#[test]
fn a_full_map_covers_whole_batches_only() {
    let log = [
        batch(&[(Some(1), Some(1), 0), (Some(2), Some(1), 0)], 0),
        batch(&[(Some(3), Some(1), 0), (Some(1), Some(2), 0)], 2),
    ];
    // Room for two keys (5 bytes and 64 of overhead each), not three.
    let (map, covered) = build_map(&log, 2 * 69).unwrap();
    assert_eq!(covered, 2);
    assert_eq!((map.len(), map.latest(b"key-1")), (2, Some(0)));
    let (map, covered) = build_map(&log, 3 * 69).unwrap();
    assert_eq!(covered, 4);
    assert_eq!(map.latest(b"key-1"), Some(3));
    // The first batch is taken even when its keys do not fit: every pass
    // makes progress.
    let (map, covered) = build_map(&log, 0).unwrap();
    assert_eq!((covered, map.len()), (2, 2));
}
