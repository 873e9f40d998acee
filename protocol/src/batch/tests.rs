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
    assert_eq!(
        &bytes[12..16],
        &(-1i32).to_be_bytes(),
        "partitionLeaderEpoch"
    );
    assert_eq!(bytes[16], 2, "magic");
    assert_eq!(&bytes[21..23], &[0, 0], "attributes");
    assert_eq!(&bytes[23..27], &1u32.to_be_bytes(), "last_offset_delta");
    assert_eq!(&bytes[27..35], &1000i64.to_be_bytes(), "first_timestamp");
    assert_eq!(&bytes[35..43], &1000i64.to_be_bytes(), "max_timestamp");
    assert_eq!(&bytes[43..51], &7i64.to_be_bytes(), "producer_id");
    assert_eq!(&bytes[51..53], &3i16.to_be_bytes(), "producer_epoch");
    assert_eq!(&bytes[53..57], &11i32.to_be_bytes(), "base_sequence");
    assert_eq!(&bytes[57..61], &2u32.to_be_bytes(), "record_count");
    // First record, every varint zig-zag: length 8 (16), attributes 0, ts
    // delta 0, offset delta 0, key len 1 (2) "k", value len 1 (2) "v", 0 headers.
    assert_eq!(&bytes[61..70], &[16, 0, 0, 0, 2, b'k', 2, b'v', 0]);
    // Second record: ts delta -10 (19), offset delta 1 (2), null key and
    // value (-1: 1), 1 header (2): key "h" (2), value "x" (2).
    assert_eq!(&bytes[70..], &[20, 0, 19, 2, 1, 1, 2, 2, b'h', 2, b'x']);
    let crc = crc32c::crc32c(&bytes[21..]);
    assert_eq!(
        &bytes[17..21],
        &crc.to_be_bytes(),
        "CRC-32C of attributes..end"
    );
}

/// Brook's first format, encoded by hand as the builder of that version
/// wrote it: unsigned varints for lengths, magic at byte 12, CRC-32.
/// A record to encode by hand: timestamp, key, value, headers.
type RawRecord<'a> = (
    i64,
    Option<&'a [u8]>,
    Option<&'a [u8]>,
    &'a [(&'a str, &'a [u8])],
);

fn v1_batch(base: u64, records: &[RawRecord]) -> Bytes {
    use crate::varint::{put_uvarint, put_varint};
    let first_ts = records[0].0;
    let mut body = Vec::new();
    for (i, (ts, k, v, hs)) in records.iter().enumerate() {
        let mut r = vec![0u8];
        put_varint(&mut r, ts - first_ts);
        put_uvarint(&mut r, i as u64);
        for part in [k, v] {
            match part {
                None => put_varint(&mut r, -1),
                Some(b) => {
                    put_varint(&mut r, b.len() as i64);
                    r.extend_from_slice(b);
                }
            }
        }
        put_uvarint(&mut r, hs.len() as u64);
        for (hk, hv) in hs.iter() {
            put_uvarint(&mut r, hk.len() as u64);
            r.extend_from_slice(hk.as_bytes());
            put_uvarint(&mut r, hv.len() as u64);
            r.extend_from_slice(hv);
        }
        put_uvarint(&mut body, r.len() as u64);
        body.extend_from_slice(&r);
    }
    let mut v = Vec::new();
    v.extend_from_slice(&base.to_be_bytes());
    v.extend_from_slice(&((45 + body.len()) as u32).to_be_bytes());
    v.push(1);
    v.extend_from_slice(&[0; 4]);
    v.extend_from_slice(&0u16.to_be_bytes());
    v.extend_from_slice(&(records.len() as u32 - 1).to_be_bytes());
    v.extend_from_slice(&first_ts.to_be_bytes());
    let max_ts = records.iter().map(|r| r.0).max().unwrap();
    v.extend_from_slice(&max_ts.to_be_bytes());
    v.extend_from_slice(&(-1i64).to_be_bytes());
    v.extend_from_slice(&(-1i16).to_be_bytes());
    v.extend_from_slice(&(-1i32).to_be_bytes());
    v.extend_from_slice(&(records.len() as u32).to_be_bytes());
    v.extend_from_slice(&body);
    let crc = crc32fast::hash(&v[17..]);
    v[13..17].copy_from_slice(&crc.to_be_bytes());
    Bytes::from(v)
}

#[test]
fn batches_of_the_first_format_stay_readable() {
    let old = v1_batch(
        40,
        &[
            (1000, Some(b"k"), Some(b"v"), &[("h", b"x")]),
            (990, None, None, &[]),
        ],
    );
    let batch = Batch::parse(old.clone()).unwrap();
    batch.validate_records().unwrap();
    let h = batch.header();
    assert_eq!(
        (h.magic, h.header_len(), h.partition_leader_epoch),
        (1, 57, -1)
    );
    assert_eq!(
        (h.base_offset, h.record_count, h.max_timestamp),
        (40, 2, 1000)
    );
    let records: Vec<_> = batch.records().map(Result::unwrap).collect();
    assert_eq!(records[0].key.as_deref(), Some(&b"k"[..]));
    assert_eq!(records[0].headers[0].value.as_ref(), b"x");
    assert_eq!((records[1].offset, records[1].timestamp), (41, 990));
    assert_eq!(records[1].value, None);
    // A v1 batch and a v2 batch side by side, as in a log written by both versions.
    let new = build(&[(5, None, Some(b"n".to_vec()), vec![])], 42);
    let both: Vec<_> = batches(Bytes::from([old.as_ref(), new.as_ref()].concat()))
        .map(Result::unwrap)
        .map(|b| (b.header().magic, b.base_offset()))
        .collect();
    assert_eq!(both, [(1, 40), (2, 42)]);
    // Its producer fields can be restamped: the CRC stays CRC-32.
    let again = batch.restamped(9, 1, 0);
    Batch::parse(again.bytes().clone())
        .unwrap()
        .validate_records()
        .unwrap();
    // Upgraded to v2, it holds the same records and producer fields.
    let upgraded = again.upgraded().unwrap();
    upgraded.validate_records().unwrap();
    let h = upgraded.header();
    assert_eq!(
        (h.magic, h.base_offset, h.producer_id, h.max_timestamp),
        (2, 40, 9, 1000)
    );
    assert_eq!(
        upgraded.records().map(Result::unwrap).collect::<Vec<_>>(),
        records
    );
}

#[test]
fn compressed_batches_round_trip_with_every_codec() {
    for codec in [
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        let mut b = BatchBuilder::new().compression(codec);
        for i in 0..100u32 {
            let value = format!("{{\"order\":{i},\"type\":\"OrderPlaced\"}}");
            b.push(
                1000 + i64::from(i),
                Some(b"order-7"),
                Some(value.as_bytes()),
                &[("ce-type", b"OrderPlaced")],
            );
        }
        let plain_size = b.size_bytes();
        let batch = Batch::parse(b.build(10)).unwrap();
        assert_eq!(batch.header().compression(), codec);
        assert!(batch.bytes().len() < plain_size / 2, "{codec:?} compressed");
        batch.validate_records().unwrap();
        let records: Vec<_> = batch.records().map(Result::unwrap).collect();
        assert_eq!(records.len(), 100);
        assert_eq!(records[99].offset, 109);
        assert_eq!(
            records[99].value.as_deref(),
            Some(&br#"{"order":99,"type":"OrderPlaced"}"#[..])
        );
    }
    // Compression that does not pay leaves the batch plain.
    let mut b = BatchBuilder::new().compression(Compression::Zstd);
    b.push(1, None, Some(&[0x5a]), &[]);
    assert_eq!(
        Batch::parse(b.build(0)).unwrap().header().compression(),
        Compression::None
    );
}

#[test]
fn a_compressed_batch_that_does_not_decompress_is_an_error() {
    let mut b = BatchBuilder::new().compression(Compression::Lz4);
    for _ in 0..50 {
        b.push(1, None, Some(&[7u8; 100]), &[]);
    }
    let mut v = b.build(0).to_vec();
    let last = v.len() - 3;
    v[last] ^= 0xff;
    let crc = crc32c::crc32c(&v[21..]);
    v[17..21].copy_from_slice(&crc.to_be_bytes());
    let batch = Batch::parse(Bytes::from(v)).unwrap();
    assert!(matches!(
        batch.validate_records(),
        Err(DecodeError::Compression { codec: "lz4", .. })
    ));
    assert_eq!(batch.records().count(), 1, "one error, then nothing");
}

#[test]
fn transactional_and_control_batches_are_refused() {
    for bit in [0b1_0000u16, 0b10_0000] {
        let mut v = build(&[(1, None, Some(b"x".to_vec()), vec![])], 0).to_vec();
        v[21..23].copy_from_slice(&bit.to_be_bytes());
        let crc = crc32c::crc32c(&v[21..]);
        v[17..21].copy_from_slice(&crc.to_be_bytes());
        let batch = Batch::parse(Bytes::from(v)).unwrap();
        assert_eq!(batch.validate_records(), Err(DecodeError::Transactional));
    }
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
    flipped[64] ^= 0x40;
    assert!(matches!(
        Batch::parse(Bytes::from(flipped)),
        Err(DecodeError::CrcMismatch { .. })
    ));
    let mut magic = bytes.to_vec();
    magic[16] = 9;
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
        let crc = crc32c::crc32c(&v[21..]);
        v[17..21].copy_from_slice(&crc.to_be_bytes());
        Batch::parse(Bytes::from(v)).unwrap().validate_records()
    };
    assert!(matches!(
        relabel(57, &3u32.to_be_bytes()),
        Err(DecodeError::Inconsistent {
            field: "record_count",
            ..
        })
    ));
    assert!(matches!(
        relabel(57, &1u32.to_be_bytes()),
        Err(DecodeError::InvalidRecord { .. })
    ));
    assert!(matches!(
        relabel(23, &0u32.to_be_bytes()),
        Err(DecodeError::Inconsistent {
            field: "last_offset_delta",
            ..
        })
    ));
    assert!(matches!(
        relabel(35, &6i64.to_be_bytes()),
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
        v[57..61].copy_from_slice(&count.to_be_bytes());
        let crc = crc32c::crc32c(&v[21..]);
        v[17..21].copy_from_slice(&crc.to_be_bytes());
        let batch = Batch::parse(Bytes::from(v)).unwrap();
        let _ = batch.validate_records();
        for r in batch.records() { let _ = r; }
    }

    /// Any single flipped bit in a valid batch is caught by parse or validate.
    #[test]
    fn single_bit_flips_are_detected(records in proptest::collection::vec(record_strategy(), 1..5), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let mut v = build(&records, 0).to_vec();
        let at = pos.index(v.len());
        // The base offset and the leader epoch are deliberately not covered.
        prop_assume!(!(0..8).contains(&at) && !(12..16).contains(&at));
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

#[test]
fn a_batch_without_some_records_keeps_their_offsets_as_gaps() {
    for codec in [Compression::None, Compression::Zstd] {
        let mut b = BatchBuilder::new().producer(9, 2, 40).compression(codec);
        for i in 0..5u8 {
            let value = [b'v', b'0' + i].repeat(50);
            b.push(
                1_000 + i64::from(i),
                Some(&[b'k', i]),
                Some(&value),
                &[("h", &[i])],
            );
        }
        let batch = Batch::parse(b.build(100)).unwrap();
        let kept = batch.without(&[1, 4].into()).unwrap();
        let h = kept.header();
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 4, "the span stays the producer's");
        assert_eq!((h.base_offset, h.next_offset()), (100, 105));
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (9, 2, 40)
        );
        assert_eq!(h.compression(), codec);
        assert_eq!(h.first_timestamp, 1_000);
        assert_eq!(h.max_timestamp, 1_003, "the last kept record's timestamp");
        let records: Vec<(u64, i64, Bytes)> = kept
            .records()
            .map(|r| r.unwrap())
            .map(|r| (r.offset, r.timestamp, r.key.unwrap()))
            .collect();
        assert_eq!(
            records,
            vec![
                (100, 1_000, Bytes::from_static(&[b'k', 0])),
                (102, 1_002, Bytes::from_static(&[b'k', 2])),
                (103, 1_003, Bytes::from_static(&[b'k', 3])),
            ]
        );
        // A producer's batch must stay dense: the gaps are the broker's.
        assert!(kept.validate_records().is_err());

        let twice = kept.without(&[2].into()).unwrap();
        let offsets: Vec<u64> = twice.records().map(|r| r.unwrap().offset).collect();
        assert_eq!(offsets, vec![100, 103]);
        assert_eq!(twice.header().last_offset_delta, 4);

        let none = batch.without(&(0..5).collect()).unwrap();
        let h = none.header();
        assert_eq!((h.record_count, h.last_offset_delta), (0, 4));
        assert_eq!((h.first_timestamp, h.max_timestamp), (1_000, 1_000));
        assert_eq!(none.records().count(), 0);
    }
}
