//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

use brook_protocol::batch::{Batch, BatchBuilder, batches};
use brook_storage::Partition;

/// One record as the tests see it: offset, timestamp, value.
pub type Rec = (u64, i64, Vec<u8>);

/// A batch of the given values, with timestamps `ts, ts+1, ...`.
pub fn batch(ts: i64, values: &[Vec<u8>]) -> Batch {
    let mut b = BatchBuilder::new();
    for (i, v) in values.iter().enumerate() {
        b.push(ts + i as i64, None, Some(v), &[("h", b"1")]);
    }
    Batch::parse(b.build(0)).expect("builder output parses")
}

/// Every record from `from` to the log end, checking each batch's CRC and records.
pub fn read_all(p: &Partition, from: u64) -> Vec<Rec> {
    let mut out: Vec<Rec> = Vec::new();
    let mut next = from;
    loop {
        let r = p.read(next, 64 << 10).expect("read inside the log");
        if r.batches.is_empty() {
            return out;
        }
        for b in batches(r.batches) {
            let b = b.expect("reads return only valid batches");
            b.validate_records()
                .expect("stored batches are well-formed");
            for rec in b.records() {
                let rec = rec.unwrap();
                if rec.offset >= next {
                    out.push((rec.offset, rec.timestamp, rec.value.unwrap().to_vec()));
                }
            }
        }
        next = out.last().map_or(next, |r| r.0 + 1);
    }
}

/// How many segment (`.log`) files `dir` holds.
pub fn log_files(dir: &std::path::Path) -> usize {
    std::fs::read_dir(dir)
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "log")
        })
        .count()
}
