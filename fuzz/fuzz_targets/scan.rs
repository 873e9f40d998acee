//! Storage's walk over a segment's bytes (`storage/src/scan.rs`): the checks
//! of every stored batch and the resync after damage, shared by recovery,
//! the read path and `brook data verify`.
//!
//! Needs `brook_storage::fuzzing` (see docs/fuzzing.md, "Crate-private
//! parsers").
//!
//! Input: byte 0 options (bit 0: make every CRC right, bit 1: also stamp
//! consecutive base offsets and leader epoch -1), bytes 1-4 the offset expected first
//! (big-endian u32), bytes 5-8 the offset limit minus it (0: no limit),
//! bytes 9-10 where to start (modulo the buffer's length + 1); the rest is
//! the segment's bytes.
#![no_main]

use brook_fuzz::fix_batches;
use brook_protocol::batch::Batch;
use brook_storage::fuzzing::{check_batch, last_nonzero, resync, scan};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

const HEADER: usize = 11;

fuzz_target!(|data: &[u8]| {
    if data.len() < HEADER {
        return;
    }
    let (head, body) = data.split_at(HEADER);
    let expected = u64::from(u32::from_be_bytes([head[1], head[2], head[3], head[4]]));
    let span = u64::from(u32::from_be_bytes([head[5], head[6], head[7], head[8]]));
    let limit = match span {
        0 => u64::MAX,
        n => expected + n,
    };
    let mut buf = body.to_vec();
    if head[0] & 1 != 0 {
        fix_batches(&mut buf, (head[0] & 2 != 0).then_some(expected));
    }
    let from = u64::from(u16::from_be_bytes([head[9], head[10]])) % (buf.len() as u64 + 1);
    let len = buf.len() as u64;

    let mut visited: Vec<(u64, u64, u64)> = Vec::new();
    let chain = scan(&buf, from, expected, limit, |pos, h| {
        visited.push((pos, h.base_offset, h.total_len() as u64));
    });

    assert!(
        chain.valid_end >= from && chain.valid_end <= len,
        "{chain:?}"
    );
    assert!(chain.next_offset >= expected, "{chain:?}");
    if chain.tail.is_none() {
        assert_eq!(chain.valid_end, len, "no tail, but the walk stopped early");
    }
    let mut at = from;
    for gap in &chain.gaps {
        assert!(
            at <= gap.pos_start && gap.pos_start < gap.pos_end && gap.pos_end <= chain.valid_end,
            "gap out of place: {gap:?} in {chain:?}"
        );
        assert!(gap.first_offset <= gap.end_offset, "{gap:?}");
        assert!(gap.end_offset < limit, "a gap ends past the limit: {gap:?}");
        at = gap.pos_end;
    }
    // Every batch the walk passed as intact is one: it passes the codec's
    // own checks, the storage checks at its offset, and they tile the bytes.
    let mut end_of_last = from;
    for &(pos, base, total) in &visited {
        assert!(pos >= end_of_last && pos + total <= chain.valid_end);
        let bytes = &buf[pos as usize..(pos + total) as usize];
        if let Err(e) = Batch::parse(Bytes::copy_from_slice(bytes)) {
            panic!("scan passed the batch at byte {pos} but the codec refuses it: {e}");
        }
        if let Err(e) = check_batch(&buf[pos as usize..], base) {
            panic!("scan passed the batch at byte {pos} but check_batch refuses it: {e}");
        }
        end_of_last = pos + total;
    }
    let garbage_end = last_nonzero(&buf, chain.valid_end);
    assert!(garbage_end >= chain.valid_end && garbage_end <= len);

    if let Some((at, h)) = resync(&buf, from, expected, limit) {
        assert!(at >= from && at < len);
        assert!(h.base_offset >= expected && h.base_offset < limit);
        assert!(h.next_offset() <= limit);
        if let Err(e) = check_batch(&buf[at as usize..], h.base_offset) {
            panic!("resync found a batch at byte {at} that check_batch refuses: {e}");
        }
    }
});
