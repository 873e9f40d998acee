//! Walking the batches of a segment's bytes: the checks every stored batch
//! must pass, and finding the next intact batch after a damaged one.
//!
//! Pure functions over a byte slice (a segment's mapping up to its size),
//! shared by recovery, the read path and `brook data verify`.

use brook_protocol::batch::{BatchHeader, LOG_OVERHEAD, MAGIC_V1, MAGIC_V2, MIN_BATCH_LENGTH};

use crate::epochs::MAX_LEADER_EPOCH;

/// The smallest batch of any format read: where a resync stops looking.
const MIN_BATCH: usize = LOG_OVERHEAD + MIN_BATCH_LENGTH as usize;

/// A damaged stretch of a segment found by `scan`: bytes that hold no
/// intact batch, and the offsets that were stored there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gap {
    /// First damaged byte.
    pub pos_start: u64,
    /// First byte of the intact batch after it (or the end of the data).
    pub pos_end: u64,
    /// First offset that was stored in the damaged bytes.
    pub first_offset: u64,
    /// First offset after them.
    pub end_offset: u64,
    /// What the check at `pos_start` found.
    pub reason: String,
}

/// Where a scan stopped and what it passed over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chain {
    /// End of the last intact batch (where the tail begins).
    pub valid_end: u64,
    /// Offset after the last intact batch.
    pub next_offset: u64,
    /// Damaged stretches followed by intact batches, in order.
    pub gaps: Vec<Gap>,
    /// Why the bytes at `valid_end` are not a batch, if the scan stopped
    /// before the end of the slice (zeros of preallocated space included).
    pub tail: Option<String>,
}

/// Checks the header of the batch at the start of `buf`: length within
/// `buf`, magic, attributes, that it holds the offsets `expected..`, and
/// that its leader epoch is one the broker stamps. The CRC covers neither
/// the base offset nor the leader epoch (the broker writes both when it
/// stores a batch): continuity is what catches damage to the first, the
/// epoch's range what catches damage to the second.
pub(crate) fn check_header(buf: &[u8], expected: u64) -> Result<BatchHeader, String> {
    let max = u32::try_from(buf.len().saturating_sub(LOG_OVERHEAD)).unwrap_or(u32::MAX);
    let h = BatchHeader::parse(buf, max.max(MIN_BATCH_LENGTH)).map_err(|e| e.to_string())?;
    if h.base_offset != expected {
        return Err(format!(
            "batch claims base offset {} where offset {expected} was expected",
            h.base_offset
        ));
    }
    let epoch = h.partition_leader_epoch;
    if epoch < -1 || i64::from(epoch) > i64::from(MAX_LEADER_EPOCH) {
        return Err(format!(
            "batch claims leader epoch {epoch}, outside -1..={MAX_LEADER_EPOCH}"
        ));
    }
    if u64::from(h.record_count) > u64::from(h.last_offset_delta) + 1 {
        return Err(format!(
            "batch header is inconsistent: {} records, last offset delta {}",
            h.record_count, h.last_offset_delta
        ));
    }
    Ok(h)
}

/// [`check_header`] plus the CRC: the whole check of a stored batch.
pub(crate) fn check_batch(buf: &[u8], expected: u64) -> Result<BatchHeader, String> {
    let h = check_header(buf, expected)?;
    h.check_crc(buf).map_err(|e| e.to_string())?;
    Ok(h)
}

/// The first position in `buf[from..]` holding an intact batch whose base
/// offset lies in `min_offset..limit`: where reading can go on after damage.
/// Zeros and random bytes are passed over with a one-byte check each; only
/// a plausible header costs a CRC.
pub(crate) fn resync(
    buf: &[u8],
    from: u64,
    min_offset: u64,
    limit: u64,
) -> Option<(u64, BatchHeader)> {
    let mut pos = usize::try_from(from).ok()?;
    while pos + MIN_BATCH <= buf.len() {
        // A v1 batch has its magic at byte 12, a v2 batch at byte 16.
        if buf[pos + 12] == MAGIC_V1 || buf[pos + 16] == MAGIC_V2 {
            let rest = &buf[pos..];
            let base = u64::from_be_bytes(rest[..8].try_into().ok()?);
            if (min_offset..limit).contains(&base)
                && let Ok(h) = check_batch(rest, base)
                && h.next_offset() <= limit
            {
                return Some((pos as u64, h));
            }
        }
        pos += 1;
    }
    None
}

/// Walks the batches of `buf` from position `from`, where offset `expected`
/// should start, calling `visit` with each intact batch. Damage followed by
/// an intact batch (offsets in `expected..limit`, going on upwards) is
/// recorded as a [`Gap`] and passed over; damage with nothing intact after
/// it ends the walk (the tail).
pub(crate) fn scan(
    buf: &[u8],
    from: u64,
    expected: u64,
    limit: u64,
    mut visit: impl FnMut(u64, &BatchHeader),
) -> Chain {
    let (mut pos, mut next) = (from, expected);
    let mut gaps = Vec::new();
    while (pos as usize) < buf.len() {
        match check_batch(&buf[pos as usize..], next) {
            Ok(h) => {
                visit(pos, &h);
                pos += h.total_len() as u64;
                next = h.next_offset();
            }
            // Never from `pos` itself: a batch there with a base offset other
            // than the expected one has a damaged base offset (the CRC does
            // not cover it), and must not be served at the offsets it claims.
            // No write ever leaves such a jump inside a segment (recovery
            // rolls to a new segment instead).
            Err(reason) => match resync(buf, pos + 1, next, limit) {
                Some((at, h)) => {
                    gaps.push(Gap {
                        pos_start: pos,
                        pos_end: at,
                        first_offset: next,
                        end_offset: h.base_offset,
                        reason,
                    });
                    pos = at;
                    next = h.base_offset;
                }
                None => {
                    return Chain {
                        valid_end: pos,
                        next_offset: next,
                        gaps,
                        tail: Some(reason),
                    };
                }
            },
        }
    }
    Chain {
        valid_end: pos,
        next_offset: next,
        gaps,
        tail: None,
    }
}

/// The end of the last non-zero byte in `buf[from..]` (or `from`).
pub(crate) fn last_nonzero(buf: &[u8], from: u64) -> u64 {
    buf.get(from as usize..)
        .and_then(|tail| tail.iter().rposition(|&b| b != 0))
        .map_or(from, |i| from + i as u64 + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use brook_protocol::batch::BatchBuilder;

    /// Three batches of 2 records each at offsets 10.., back to back.
    fn log() -> (Vec<u8>, Vec<u64>) {
        let mut buf = Vec::new();
        let mut starts = Vec::new();
        for i in 0..3u64 {
            let mut b = BatchBuilder::new();
            b.push(100 + i as i64, Some(b"k"), Some(b"some value"), &[]);
            b.push(101 + i as i64, None, Some(b"another value"), &[]);
            starts.push(buf.len() as u64);
            buf.extend_from_slice(&b.build(10 + 2 * i));
        }
        (buf, starts)
    }

    #[test]
    fn an_intact_log_is_one_chain() {
        let (buf, starts) = log();
        let mut seen = Vec::new();
        let chain = scan(&buf, 0, 10, u64::MAX, |p, h| seen.push((p, h.base_offset)));
        assert_eq!(
            seen,
            vec![(starts[0], 10), (starts[1], 12), (starts[2], 14)]
        );
        assert_eq!(chain.valid_end, buf.len() as u64);
        assert_eq!(chain.next_offset, 16);
        assert!(chain.gaps.is_empty() && chain.tail.is_none());
    }

    #[test]
    fn a_damaged_middle_batch_is_a_gap_and_the_walk_goes_on() {
        let (mut buf, starts) = log();
        buf[starts[1] as usize + 40] ^= 0x10;
        let chain = scan(&buf, 0, 10, u64::MAX, |_, _| {});
        assert_eq!(chain.next_offset, 16);
        assert_eq!(chain.gaps.len(), 1);
        let gap = &chain.gaps[0];
        assert_eq!((gap.pos_start, gap.pos_end), (starts[1], starts[2]));
        assert_eq!((gap.first_offset, gap.end_offset), (12, 14));
        assert!(gap.reason.contains("CRC"), "{}", gap.reason);
    }

    #[test]
    fn a_damaged_base_offset_is_caught_by_continuity() {
        let (mut buf, starts) = log();
        buf[starts[1] as usize + 7] ^= 0x01; // the middle batch now claims 13
        let chain = scan(&buf, 0, 10, u64::MAX, |_, _| {});
        assert_eq!(chain.gaps.len(), 1, "{chain:?}");
        let gap = &chain.gaps[0];
        assert_eq!((gap.first_offset, gap.end_offset), (12, 14));
        assert_eq!((gap.pos_start, gap.pos_end), (starts[1], starts[2]));
        assert_eq!(
            chain.next_offset, 16,
            "the batch after it is served at its own offsets"
        );
        assert!(chain.tail.is_none());
    }

    #[test]
    fn any_change_to_one_byte_of_an_unset_leader_epoch_is_a_gap() {
        // The CRC does not cover bytes 12..16; the epoch's range must.
        for byte in 12..16 {
            for mask in 1..=255u8 {
                let (mut buf, starts) = log();
                buf[starts[1] as usize + byte] ^= mask;
                let chain = scan(&buf, 0, 10, u64::MAX, |_, _| {});
                assert_eq!(chain.gaps.len(), 1, "byte {byte} mask {mask}: {chain:?}");
                let gap = &chain.gaps[0];
                assert_eq!((gap.first_offset, gap.end_offset), (12, 14));
                assert_eq!(chain.next_offset, 16);
            }
        }
    }

    #[test]
    fn a_stamped_leader_epoch_in_range_is_accepted() {
        let (mut buf, starts) = log();
        for (i, epoch) in [0, 7, MAX_LEADER_EPOCH as i32].into_iter().enumerate() {
            brook_protocol::batch::set_partition_leader_epoch(
                &mut buf[starts[i] as usize..],
                epoch,
            );
        }
        let mut epochs = Vec::new();
        let chain = scan(&buf, 0, 10, u64::MAX, |_, h| {
            epochs.push(h.partition_leader_epoch)
        });
        assert!(chain.gaps.is_empty() && chain.tail.is_none(), "{chain:?}");
        assert_eq!(epochs, vec![0, 7, MAX_LEADER_EPOCH as i32]);
    }

    #[test]
    fn damage_with_nothing_after_it_is_the_tail() {
        let (mut buf, starts) = log();
        buf[starts[2] as usize + 30] ^= 0xFF;
        buf.extend_from_slice(&[0; 300]);
        let chain = scan(&buf, 0, 10, u64::MAX, |_, _| {});
        assert_eq!(chain.valid_end, starts[2]);
        assert_eq!(chain.next_offset, 14);
        assert!(chain.gaps.is_empty());
        assert!(chain.tail.is_some());
        let data_len = buf.len() as u64 - 300;
        let end = last_nonzero(&buf, starts[2]);
        assert!(
            end > starts[2] && end <= data_len,
            "{end} not in the damaged batch"
        );
        assert_eq!(
            last_nonzero(&buf, data_len),
            data_len,
            "zeros only after the data"
        );
    }

    #[test]
    fn resync_respects_the_offset_bounds() {
        let (buf, starts) = log();
        assert_eq!(resync(&buf, 1, 10, u64::MAX).map(|r| r.0), Some(starts[1]));
        assert_eq!(resync(&buf, 1, 13, u64::MAX).map(|r| r.0), Some(starts[2]));
        assert_eq!(resync(&buf, 1, 10, 14).map(|r| r.0), Some(starts[1]));
        assert_eq!(
            resync(&buf, 1, 10, 13),
            None,
            "a batch past the limit is not taken"
        );
    }
}
