//! Where each header field sits, for the two batch formats Brook reads.
//!
//! Kafka's RecordBatch v2 (magic 2) is what every new batch is written in.
//! Brook's first format (magic 1) is read so that logs written before v2
//! stay readable: it is v2 without `partitionLeaderEpoch`, with the magic
//! before the CRC, so from the magic on every field sits 4 bytes earlier.

use super::DecodeError;

/// Magic of Kafka's RecordBatch v2, written for all new data.
pub const MAGIC_V2: u8 = 2;
/// Magic of Brook's first batch format, still read.
pub const MAGIC_V1: u8 = 1;

/// Field positions of one format. From `magic` on, v2's fields are v1's
/// shifted by the 4 bytes of `partitionLeaderEpoch`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    shift: usize,
    magic: u8,
}

/// The v2 layout (Kafka's).
pub(crate) const V2: Layout = Layout {
    shift: 4,
    magic: MAGIC_V2,
};
/// Brook's first layout.
pub(crate) const V1: Layout = Layout {
    shift: 0,
    magic: MAGIC_V1,
};

pub(crate) const BASE_OFFSET: usize = 0;
pub(crate) const BATCH_LENGTH: usize = 8;
/// v2 only: not covered by the CRC, stamped by a leader.
pub(crate) const PARTITION_LEADER_EPOCH: usize = 12;

impl Layout {
    /// The layout of the batch at the start of `buf` (at least 17 bytes).
    ///
    /// A v1 batch has its magic at byte 12, where a v2 batch has the first
    /// byte of `partitionLeaderEpoch`: producers send -1 there (0xff) and
    /// leader epochs stay below 2^24, so a 1 at byte 12 is a v1 batch.
    /// Otherwise the magic is byte 16, as in every Kafka format.
    pub(crate) fn of(buf: &[u8]) -> Result<Layout, DecodeError> {
        if buf.len() < 17 {
            return Err(DecodeError::Truncated {
                needed: 17,
                available: buf.len(),
            });
        }
        match (buf[12], buf[16]) {
            (MAGIC_V1, _) => Ok(V1),
            (_, MAGIC_V2) => Ok(V2),
            (_, other) => Err(DecodeError::UnsupportedMagic(other)),
        }
    }

    pub(crate) fn magic(self) -> u8 {
        self.magic
    }
    pub(crate) fn magic_at(self) -> usize {
        12 + self.shift
    }
    pub(crate) fn crc_at(self) -> usize {
        13 + self.shift
    }
    /// The CRC covers everything from here to the end of the batch.
    pub(crate) fn attributes_at(self) -> usize {
        17 + self.shift
    }
    pub(crate) fn last_offset_delta_at(self) -> usize {
        19 + self.shift
    }
    pub(crate) fn first_timestamp_at(self) -> usize {
        23 + self.shift
    }
    pub(crate) fn max_timestamp_at(self) -> usize {
        31 + self.shift
    }
    pub(crate) fn producer_id_at(self) -> usize {
        39 + self.shift
    }
    pub(crate) fn producer_epoch_at(self) -> usize {
        47 + self.shift
    }
    pub(crate) fn base_sequence_at(self) -> usize {
        49 + self.shift
    }
    pub(crate) fn record_count_at(self) -> usize {
        53 + self.shift
    }
    /// Bytes before the first record.
    pub(crate) fn header_len(self) -> usize {
        57 + self.shift
    }

    /// The CRC of `covered`: CRC-32C for v2 (as Kafka), CRC-32 (IEEE) for v1.
    pub(crate) fn crc(self, covered: &[u8]) -> u32 {
        if self.magic == MAGIC_V2 {
            crc32c::crc32c(covered)
        } else {
            crc32fast::hash(covered)
        }
    }

    /// Whether record-level lengths, offset deltas and header counts are
    /// zig-zag varints (v2, as Kafka) rather than unsigned ones (v1).
    pub(crate) fn signed_lengths(self) -> bool {
        self.magic == MAGIC_V2
    }
}
