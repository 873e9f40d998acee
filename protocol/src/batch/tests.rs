use super::*;
use proptest::prelude::*;

type Rec = (
    i64,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
    Vec<(String, Vec<u8>)>,
);

fn build(records: &[Rec], base_offset: u64) -> Bytes {
    let mut b = BatchBuilder::new();
    for (ts, k, v, hs) in records {
        let hs: Vec<(&str, &[u8])> = hs.iter().map(|(k, v)| (k.as_str(), v.as_slice())).collect();
        b.push(*ts, k.as_deref(), v.as_deref(), &hs);
    }
    b.build(base_offset)
}

fn record_strategy() -> impl Strategy<Value = Rec> {
    (
        -1_000_000i64..4_000_000_000_000,
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..40)),
        proptest::option::of(proptest::collection::vec(any::<u8>(), 0..200)),
        proptest::collection::vec(
            (
                "[a-z-]{0,12}",
                proptest::collection::vec(any::<u8>(), 0..16),
            ),
            0..3,
        ),
    )
}

#[test]
fn header_layout_matches_docs_format_md() {
    let mut b = BatchBuilder::new().producer(7, 3, 11);
    b.push(1000, Some(b"k"), Some(b"v"), &[]);
    b.push(990, None, None, &[("h", b"x")]);
    let bytes = build_and_stamp(b, 0x0102_0304_0506_0708);
    assert_eq!(
        &bytes[0..8],
        &[1, 2, 3, 4, 5, 6, 7, 8],
        "base_offset, big-endian"
    );
    assert_eq!(
        u32::from_be_bytes(bytes[8..12].try_into().unwrap()) as usize,
        bytes.len() - 12
    );
    assert_eq!(bytes[12], MAGIC);
    assert_eq!(&bytes[17..19], &[0, 0], "attributes");
    assert_eq!(&bytes[19..23], &1u32.to_be_bytes(), "last_offset_delta");
    assert_eq!(&bytes[23..31], &1000i64.to_be_bytes(), "first_timestamp");
    assert_eq!(&bytes[31..39], &1000i64.to_be_bytes(), "max_timestamp");
    assert_eq!(&bytes[39..47], &7i64.to_be_bytes(), "producer_id");
    assert_eq!(&bytes[47..49], &3i16.to_be_bytes(), "producer_epoch");
    assert_eq!(&bytes[49..53], &11i32.to_be_bytes(), "base_sequence");
    assert_eq!(&bytes[53..57], &2u32.to_be_bytes(), "record_count");
    // First record: length 8, attributes 0, ts delta 0, offset delta 0,
    // key len 1 (zig-zag 2) "k", value len 1 "v", 0 headers.
    assert_eq!(&bytes[57..66], &[8, 0, 0, 0, 2, b'k', 2, b'v', 0]);
    let crc = crc32fast::hash(&bytes[17..]);
    assert_eq!(&bytes[13..17], &crc.to_be_bytes());
}

fn build_and_stamp(b: BatchBuilder, base: u64) -> Bytes {
    let mut v = b.build(0).to_vec();
    set_base_offset(&mut v, base);
    Bytes::from(v)
}

#[test]
fn stamping_base_offset_keeps_crc_valid() {
    let bytes = build(&[(5, Some(b"a".to_vec()), Some(b"b".to_vec()), vec![])], 0);
    let mut v = bytes.to_vec();
    set_base_offset(&mut v, 42);
    let batch = Batch::parse(Bytes::from(v)).unwrap();
    assert_eq!(batch.base_offset(), 42);
    assert_eq!(batch.records().next().unwrap().unwrap().offset, 42);
}

#[test]
fn detects_each_kind_of_damage() {
    let bytes = build(
        &[(5, Some(b"key".to_vec()), Some(b"value".to_vec()), vec![])],
        0,
    );
    let mut flipped = bytes.to_vec();
    flipped[60] ^= 0x40;
    assert!(matches!(
        Batch::parse(Bytes::from(flipped)),
        Err(DecodeError::CrcMismatch { .. })
    ));
    let mut magic = bytes.to_vec();
    magic[12] = 9;
    assert_eq!(
        Batch::parse(Bytes::from(magic)).unwrap_err(),
        DecodeError::UnsupportedMagic(9)
    );
    let cut = bytes.slice(..bytes.len() - 1);
    assert!(matches!(
        Batch::parse(cut),
        Err(DecodeError::Truncated { .. })
    ));
    let mut zero_len = bytes.to_vec();
    zero_len[8..12].copy_from_slice(&0u32.to_be_bytes());
    assert!(matches!(
        Batch::parse(Bytes::from(zero_len)),
        Err(DecodeError::InvalidLength { .. })
    ));
    let empty = BatchBuilder::new().build(0);
    assert_eq!(
        Batch::parse(empty).unwrap().validate_records(),
        Err(DecodeError::Empty)
    );
}

#[test]
fn validate_records_catches_header_lies_with_a_good_crc() {
    let bytes = build(
        &[
            (5, None, Some(b"x".to_vec()), vec![]),
            (9, None, None, vec![]),
        ],
        0,
    );
    let relabel = |at: usize, val: &[u8]| {
        let mut v = bytes.to_vec();
        v[at..at + val.len()].copy_from_slice(val);
        let crc = crc32fast::hash(&v[17..]);
        v[13..17].copy_from_slice(&crc.to_be_bytes());
        Batch::parse(Bytes::from(v)).unwrap().validate_records()
    };
    assert!(matches!(
        relabel(53, &3u32.to_be_bytes()),
        Err(DecodeError::Inconsistent {
            field: "record_count",
            ..
        })
    ));
    assert!(matches!(
        relabel(53, &1u32.to_be_bytes()),
        Err(DecodeError::InvalidRecord { .. })
    ));
    assert!(matches!(
        relabel(19, &0u32.to_be_bytes()),
        Err(DecodeError::Inconsistent {
            field: "last_offset_delta",
            ..
        })
    ));
    assert!(matches!(
        relabel(31, &6i64.to_be_bytes()),
        Err(DecodeError::Inconsistent {
            field: "max_timestamp",
            ..
        })
    ));
}

#[test]
fn batches_splits_a_buffer_and_stops_at_garbage() {
    let a = build(&[(1, None, Some(vec![1]), vec![])], 0);
    let b = build(
        &[(2, None, Some(vec![2]), vec![]), (3, None, None, vec![])],
        1,
    );
    let mut all = [a.as_ref(), b.as_ref(), &[0xff; 20]].concat();
    let parsed: Vec<_> = batches(Bytes::from(all.clone())).collect();
    assert_eq!(parsed.len(), 3);
    assert_eq!(parsed[1].as_ref().unwrap().base_offset(), 1);
    assert!(parsed[2].is_err());
    all.truncate(a.len() + b.len());
    assert_eq!(batches(Bytes::from(all)).filter(|r| r.is_ok()).count(), 2);
}

proptest! {
    #[test]
    fn roundtrip(records in proptest::collection::vec(record_strategy(), 1..20), base in 0u64..1 << 60) {
        let bytes = build(&records, base);
        let batch = Batch::parse(bytes).unwrap();
        batch.validate_records().unwrap();
        let h = batch.header();
        prop_assert_eq!(h.record_count as usize, records.len());
        prop_assert_eq!(h.max_timestamp, records.iter().map(|r| r.0).max().unwrap());
        for (i, (got, want)) in batch.records().zip(&records).enumerate() {
            let got = got.unwrap();
            prop_assert_eq!(got.offset, base + i as u64);
            prop_assert_eq!(got.timestamp, want.0);
            prop_assert_eq!(got.key.as_deref(), want.1.as_deref());
            prop_assert_eq!(got.value.as_deref(), want.2.as_deref());
            let hs: Vec<(String, Vec<u8>)> = got.headers.iter().map(|h| (h.key.clone(), h.value.to_vec())).collect();
            prop_assert_eq!(&hs, &want.3);
        }
    }

    /// Arbitrary bytes: the decoder returns errors, never panics, and
    /// every accepted batch is internally consistent.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        for batch in batches(Bytes::from(bytes.clone())).flatten() {
            let _ = batch.validate_records();
            for r in batch.records() { let _ = r; }
        }
        let _ = BatchHeader::parse(&bytes, u32::MAX);
    }

    /// Arbitrary bytes behind a valid-looking header with a correct CRC, so
    /// the fuzzing reaches the record decoder instead of stopping at the CRC.
    #[test]
    fn arbitrary_records_behind_a_valid_crc(body in proptest::collection::vec(any::<u8>(), 0..300), count in 0u32..10) {
        let mut v = build(&[(0, None, None, vec![])], 0).to_vec();
        v.truncate(HEADER_LEN);
        v.extend_from_slice(&body);
        let len = (v.len() - LOG_OVERHEAD) as u32;
        v[8..12].copy_from_slice(&len.to_be_bytes());
        v[53..57].copy_from_slice(&count.to_be_bytes());
        let crc = crc32fast::hash(&v[17..]);
        v[13..17].copy_from_slice(&crc.to_be_bytes());
        let batch = Batch::parse(Bytes::from(v)).unwrap();
        let _ = batch.validate_records();
        for r in batch.records() { let _ = r; }
    }

    /// Any single flipped bit in a valid batch is caught by parse or validate.
    #[test]
    fn single_bit_flips_are_detected(records in proptest::collection::vec(record_strategy(), 1..5), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut v = build(&records, 0).to_vec();
        let at = pos.index(v.len());
        prop_assume!(at >= 8); // the base offset is deliberately not covered
        v[at] ^= 1 << bit;
        let res = Batch::parse(Bytes::from(v)).and_then(|b| b.validate_records());
        prop_assert!(res.is_err(), "flip at byte {} bit {} went unnoticed", at, bit);
    }
}

#[test]
fn restamping_changes_only_the_producer_fields_and_keeps_the_batch_valid() {
    let mut b = BatchBuilder::new().producer(7, 3, 11);
    b.push(1_000, Some(b"k"), Some(b"v1"), &[]);
    b.push(1_001, None, Some(b"v2"), &[]);
    let original = Batch::parse(b.build(42)).unwrap();
    let again = original.restamped(1 << 40, 9, 0);
    let reparsed = Batch::parse(again.bytes().clone()).expect("the CRC was computed again");
    reparsed.validate_records().unwrap();
    let h = reparsed.header();
    assert_eq!(
        (h.producer_id, h.producer_epoch, h.base_sequence),
        (1 << 40, 9, 0)
    );
    assert_eq!(h, again.header());
    assert_eq!(h.base_offset, 42);
    assert_ne!(h.crc, original.header().crc);
    let records = |b: &Batch| b.records().map(|r| r.unwrap().value).collect::<Vec<_>>();
    assert_eq!(records(&reparsed), records(&original));
}

/// A producer writes a new batch into the buffer of one the broker
/// acknowledged: the batch it builds is whole and the memory is the same.
#[test]
fn a_built_batch_buffer_is_reused_for_the_next_batch() {
    let mut b = BatchBuilder::with_capacity(64 << 10);
    b.push(1, Some(b"k1"), Some(&[7u8; 1000][..]), &[]);
    let first = b.build(0);
    let at = first.as_ptr();
    let buf = first.try_into_mut().expect("nothing else holds the batch");
    assert!(buf.capacity() >= 64 << 10);
    let mut b = BatchBuilder::with_buffer(buf);
    b.push(2, Some(b"k2"), Some(b"v2"), &[("h", b"x")]);
    let second = b.build(5);
    assert_eq!(second.as_ptr(), at, "the same memory");
    let batch = Batch::parse(second).unwrap();
    batch.validate_records().unwrap();
    let records: Vec<_> = batch.records().map(Result::unwrap).collect();
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].offset, records[0].key.as_deref()),
        (5, Some(&b"k2"[..]))
    );
    assert_eq!(records[0].headers[0].value.as_ref(), b"x");
}
