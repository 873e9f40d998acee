//! Model test: random sequences of append / read / roll / reopen (clean or
//! crashed) / retention / time lookups against a plain `Vec` of batches.
//! Every read and query must agree with the model.

mod common;

use brook_protocol::batch::batches;
use brook_storage::{FlushPolicy, Partition, PartitionConfig};
use common::{Rec, batch};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Append {
        count: usize,
        len: usize,
        ts_step: i64,
    },
    Read {
        at: prop::sample::Index,
        max_bytes: usize,
    },
    Roll,
    Reopen {
        clean: bool,
    },
    Retention {
        age: i64,
    },
    OffsetForTime {
        t: i64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (1usize..6, 0usize..400, -30i64..100).prop_map(|(count, len, ts_step)| Op::Append { count, len, ts_step }),
        4 => (any::<prop::sample::Index>(), 1usize..6000).prop_map(|(at, max_bytes)| Op::Read { at, max_bytes }),
        1 => Just(Op::Roll),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
        1 => (0i64..3000).prop_map(|age| Op::Retention { age }),
        2 => (0i64..6000).prop_map(|t| Op::OffsetForTime { t }),
    ]
}

fn config() -> PartitionConfig {
    PartitionConfig {
        segment_bytes: 4096,
        index_interval_bytes: 300,
        retention_ms: Some(1000),
        retention_bytes: Some(12_000),
        flush: FlushPolicy::Never,
        ..Default::default()
    }
}

/// The model: batches in order, each a list of records.
#[derive(Default)]
struct Model {
    batches: Vec<Vec<Rec>>,
    log_start: u64,
    end: u64,
    ts: i64,
}

impl Model {
    fn records(&self) -> impl Iterator<Item = &Rec> {
        self.batches.iter().flatten()
    }
}

fn run(ops: Vec<Op>) -> Result<(), TestCaseError> {
    let dir = tempfile::tempdir().unwrap();
    let mut p = Partition::open(dir.path(), "t/0", config()).unwrap();
    let mut m = Model {
        ts: 1000,
        ..Default::default()
    };
    for (step, op) in ops.into_iter().enumerate() {
        match op {
            Op::Append {
                count,
                len,
                ts_step,
            } => {
                m.ts += ts_step;
                let values: Vec<Vec<u8>> =
                    (0..count).map(|i| vec![(step + i) as u8; len]).collect();
                let info = p.append(&batch(m.ts, &values)).unwrap();
                prop_assert_eq!(info.base_offset, m.end);
                m.batches.push(
                    values
                        .into_iter()
                        .enumerate()
                        .map(|(i, v)| (m.end + i as u64, m.ts + i as i64, v))
                        .collect(),
                );
                m.end += count as u64;
            }
            Op::Read { at, max_bytes } => {
                let offset = m.log_start + at.index((m.end - m.log_start + 1) as usize) as u64;
                let got = p.read(offset, max_bytes).unwrap();
                prop_assert_eq!(
                    (got.log_start_offset, got.log_end_offset),
                    (m.log_start, m.end)
                );
                let records: Vec<Rec> = batches(got.batches)
                    .flat_map(|b| b.unwrap().records().map(|r| r.unwrap()).collect::<Vec<_>>())
                    .map(|r| (r.offset, r.timestamp, r.value.unwrap().to_vec()))
                    .collect();
                if offset == m.end {
                    prop_assert!(records.is_empty());
                } else {
                    let first = m
                        .batches
                        .iter()
                        .position(|b| b.last().unwrap().0 >= offset)
                        .unwrap();
                    let expected: Vec<Rec> = m.batches[first..]
                        .iter()
                        .flatten()
                        .take(records.len())
                        .cloned()
                        .collect();
                    prop_assert!(
                        !records.is_empty(),
                        "a read inside the log returns at least one batch"
                    );
                    prop_assert_eq!(records, expected);
                }
            }
            Op::Roll => {
                p.roll().unwrap();
            }
            Op::Reopen { clean } => {
                if clean {
                    p.close().unwrap();
                }
                drop(p);
                p = Partition::open(dir.path(), "t/0", config()).unwrap();
                prop_assert_eq!(p.recovery_report().clean, clean);
            }
            Op::Retention { age } => {
                p.enforce_retention(m.ts + age).unwrap();
                let start = p.log_start_offset();
                prop_assert!(start >= m.log_start, "log start never moves back");
                prop_assert!(
                    start == m.end || m.batches.iter().any(|b| b[0].0 == start),
                    "log start {} is a batch boundary",
                    start
                );
                m.batches.retain(|b| b[0].0 >= start);
                m.log_start = start;
                let below = p.read(start.wrapping_sub(1), 10);
                prop_assert!(
                    start == 0 || below.is_err(),
                    "reading below the log start is an error"
                );
            }
            Op::OffsetForTime { t } => {
                let expected = m.records().filter(|r| r.1 >= t).map(|r| r.0).min();
                prop_assert_eq!(
                    p.offset_for_timestamp(t).unwrap(),
                    expected,
                    "first offset with timestamp >= {}",
                    t
                );
            }
        }
        prop_assert_eq!(p.log_end_offset(), m.end);
        prop_assert_eq!(p.log_start_offset(), m.log_start);
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
    #[test]
    fn partition_matches_model(ops in proptest::collection::vec(op(), 1..120)) {
        run(ops)?;
    }
}
