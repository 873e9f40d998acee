//! The record-batch codec (`brook_protocol::batch`): what the broker runs on
//! every produced batch and every reader runs on fetched bytes.
//!
//! The input is tried as it is, and again with every batch's CRC made right
//! (`fix_batches`), so that mutations reach the record decoder. Where a
//! batch parses and its records validate, the target checks that
//! - the bytes are exactly one batch, and `headers` agrees with `batches`;
//! - stamping another base offset keeps the batch valid (the CRC does not
//!   cover it) and moves every record's offset with it;
//! - `BatchBuilder` re-encodes the same records, with the same codec, into a
//!   batch that parses and validates, with the same header fields (but the
//!   delete-horizon bit, which only a cleaner sets) and the same records.
#![no_main]

use brook_fuzz::fix_batches;
use brook_protocol::batch::{
    Batch, BatchBuilder, BatchHeader, Record, batches, headers, peek_batch_len, set_base_offset,
};
use bytes::Bytes;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    check_buffer(Bytes::copy_from_slice(data));
    let mut fixed = data.to_vec();
    if fix_batches(&mut fixed, None) > 0 && fixed != data {
        check_buffer(Bytes::from(fixed));
    }
});

fn check_buffer(buf: Bytes) {
    let _ = peek_batch_len(&buf, u32::MAX);
    let _ = BatchHeader::parse(&buf, u32::MAX);
    let whole = Batch::parse(buf.clone()).ok();
    // Back-to-back batches, as in a fetch response or a segment.
    let parsed: Vec<Batch> = batches(buf.clone()).map_while(Result::ok).collect();
    if let Some(batch) = &whole {
        assert_eq!(batch.bytes().len(), buf.len(), "Batch::parse took a prefix");
        assert_eq!(
            parsed.len(),
            1,
            "one whole batch, but batches() found {}",
            parsed.len()
        );
        assert_eq!(parsed[0].header(), batch.header());
    }
    let walked: Vec<BatchHeader> = headers(&buf).take(parsed.len()).collect();
    assert_eq!(
        walked.len(),
        parsed.len(),
        "headers() stopped before a batch that batches() accepted"
    );
    for (h, b) in walked.iter().zip(&parsed) {
        assert_eq!(h, b.header(), "headers() and batches() disagree");
        check_batch(b);
    }
}

fn check_batch(batch: &Batch) {
    let h = *batch.header();
    assert_eq!(batch.bytes().len(), h.total_len());
    if batch.validate_records().is_err() {
        // Still walk the records: the iterator must stop with an error, not panic.
        for record in batch.records() {
            if record.is_err() {
                break;
            }
        }
        return;
    }
    let records: Vec<Record> = match batch.records().collect::<Result<Vec<Record>, _>>() {
        Ok(r) => r,
        Err(e) => panic!("validate_records passed but a record does not decode: {e}"),
    };
    assert_eq!(records.len() as u64, u64::from(h.record_count));
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.offset, h.base_offset.wrapping_add(i as u64));
    }

    // The base offset is outside the CRC: stamping it keeps the batch valid.
    let new_base = h.base_offset ^ 0x5555_5555;
    let mut stamped = batch.bytes().to_vec();
    set_base_offset(&mut stamped, new_base);
    let restamped = match Batch::parse(Bytes::from(stamped)) {
        Ok(b) => b,
        Err(e) => panic!("a batch with its base offset stamped no longer parses: {e}"),
    };
    assert_eq!(restamped.base_offset(), new_base);
    if let Err(e) = restamped.validate_records() {
        panic!("a batch with its base offset stamped no longer validates: {e}");
    }

    rebuild_and_compare(&h, &records);
}

/// v2's "delete horizon set" attribute: only a log cleaner writes it, so
/// `BatchBuilder` has no way to ask for it and the re-encoding leaves it off.
const DELETE_HORIZON: u16 = 0b100_0000;

/// Encodes the records again with `BatchBuilder` and checks the result
/// decodes to the same batch.
fn rebuild_and_compare(h: &BatchHeader, records: &[Record]) {
    // BatchBuilder stores timestamps as deltas from the first record's;
    // where one is more than i64::MAX away from it the delta wraps and the
    // batch it builds is refused ("timestamp overflows"). Known; skipped.
    let first_ts = records[0].timestamp;
    if records
        .iter()
        .any(|r| r.timestamp.checked_sub(first_ts).is_none())
    {
        return;
    }
    let mut builder = BatchBuilder::with_capacity(h.total_len()).producer(
        h.producer_id,
        h.producer_epoch,
        h.base_sequence,
    );
    if h.log_append_time() {
        builder = builder.log_append_time();
    }
    builder = builder.compression(h.compression());
    for r in records {
        let hs: Vec<(&str, &[u8])> = r
            .headers
            .iter()
            .map(|x| (x.key.as_str(), &x.value[..]))
            .collect();
        builder.push(r.timestamp, r.key.as_deref(), r.value.as_deref(), &hs);
    }
    let rebuilt = match Batch::parse(builder.build(h.base_offset)) {
        Ok(b) => b,
        Err(e) => panic!("BatchBuilder's re-encoding does not parse: {e}"),
    };
    if let Err(e) = rebuilt.validate_records() {
        panic!("BatchBuilder's re-encoding does not validate: {e}");
    }
    let g = rebuilt.header();
    assert_eq!(
        (
            g.base_offset,
            g.attributes & !DELETE_HORIZON,
            g.last_offset_delta,
            g.max_timestamp,
            g.producer_id,
            g.producer_epoch,
            g.base_sequence,
            g.record_count,
        ),
        (
            h.base_offset,
            h.attributes & !DELETE_HORIZON,
            h.last_offset_delta,
            h.max_timestamp,
            h.producer_id,
            h.producer_epoch,
            h.base_sequence,
            h.record_count,
        ),
        "the re-encoded batch's header differs"
    );
    let again: Vec<Record> = match rebuilt.records().collect::<Result<Vec<Record>, _>>() {
        Ok(r) => r,
        Err(e) => panic!("a record of the re-encoded batch does not decode: {e}"),
    };
    assert_eq!(again, records, "the re-encoded batch holds other records");
}
