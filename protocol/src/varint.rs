//! LEB128 varints, unsigned and zig-zag signed, as used inside records.
//!
//! Every decoder takes the remaining input and returns the value with the
//! number of bytes it used, or `None` when the input ends early or the varint
//! is longer than its type allows: a malicious length can never make a
//! decoder loop or overflow.

use bytes::BufMut;

/// Appends `v` as an unsigned LEB128 varint.
pub fn put_uvarint(buf: &mut impl BufMut, mut v: u64) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

/// Appends `v` zig-zag encoded, so that small negative numbers stay short.
pub fn put_varint(buf: &mut impl BufMut, v: i64) {
    put_uvarint(buf, ((v << 1) ^ (v >> 63)) as u64);
}

/// Number of bytes `put_uvarint(v)` writes.
pub fn uvarint_len(mut v: u64) -> usize {
    let mut n = 1;
    while v >= 0x80 {
        v >>= 7;
        n += 1;
    }
    n
}

/// Number of bytes `put_varint(v)` writes.
pub fn varint_len(v: i64) -> usize {
    uvarint_len(((v << 1) ^ (v >> 63)) as u64)
}

/// Decodes an unsigned varint of at most `max_bytes` bytes (5 for 32-bit, 10 for 64-bit values).
pub fn get_uvarint(buf: &[u8], max_bytes: usize) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for (i, &b) in buf.iter().take(max_bytes).enumerate() {
        let part = u64::from(b & 0x7f);
        let shift = 7 * i as u32;
        // The last allowed byte of a 64-bit varint may only carry one bit.
        if shift == 63 && part > 1 {
            return None;
        }
        v |= part << shift;
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

/// Decodes a zig-zag signed varint of at most `max_bytes` bytes.
pub fn get_varint(buf: &[u8], max_bytes: usize) -> Option<(i64, usize)> {
    let (u, n) = get_uvarint(buf, max_bytes)?;
    Some((((u >> 1) as i64) ^ -((u & 1) as i64), n))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn known_encodings() {
        let mut b = Vec::new();
        put_uvarint(&mut b, 300);
        assert_eq!(b, [0xac, 0x02]);
        b.clear();
        put_varint(&mut b, -1);
        assert_eq!(b, [0x01]);
        b.clear();
        put_varint(&mut b, 1);
        assert_eq!(b, [0x02]);
    }

    #[test]
    fn rejects_overlong_and_truncated() {
        assert_eq!(get_uvarint(&[0x80, 0x80], 10), None);
        assert_eq!(get_uvarint(&[0xff; 6], 5), None);
        assert_eq!(
            get_uvarint(
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
                10
            ),
            None
        );
        assert_eq!(get_uvarint(&[], 10), None);
    }

    proptest! {
        #[test]
        fn roundtrip(u in any::<u64>(), i in any::<i64>()) {
            let mut b = Vec::new();
            put_uvarint(&mut b, u);
            prop_assert_eq!(b.len(), uvarint_len(u));
            prop_assert_eq!(get_uvarint(&b, 10), Some((u, b.len())));
            b.clear();
            put_varint(&mut b, i);
            prop_assert_eq!(b.len(), varint_len(i));
            prop_assert_eq!(get_varint(&b, 10), Some((i, b.len())));
        }

        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..12), max in 1usize..11) {
            let _ = get_uvarint(&bytes, max);
            let _ = get_varint(&bytes, max);
        }
    }
}
