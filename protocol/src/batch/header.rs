use super::compression::{CODEC_MASK, Compression};
use super::layout::{self, BASE_OFFSET, BATCH_LENGTH, Layout, PARTITION_LEADER_EPOCH};
use super::{DecodeError, LOG_OVERHEAD, MIN_BATCH_LENGTH};

/// The fixed header at the start of every batch: 61 bytes in v2, 57 in
/// Brook's first format (see `docs/format.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record; stamped by the broker, not covered by the CRC.
    pub base_offset: u64,
    /// Bytes that follow the `batch_length` field (to the end of the last record).
    pub batch_length: u32,
    /// The leader epoch the batch was appended in (v2; not covered by the
    /// CRC); -1 when none was stamped, and always -1 for v1.
    pub partition_leader_epoch: i32,
    /// Format version: 2 (Kafka's RecordBatch v2) or 1 (Brook's first format).
    pub magic: u8,
    /// CRC-32C (v2) or CRC-32 (v1) of everything after the CRC field.
    pub crc: u32,
    /// Bits 0-2: compression codec (v2: 0 none, 1 gzip, 2 snappy, 3 lz4,
    /// 4 zstd; v1: 0 only); bit 3: timestamp type (0 create time, 1
    /// log-append time); v2 bit 4: transactional, bit 5: control batch,
    /// bit 6: has a delete horizon. Other bits are reserved, zero.
    pub attributes: u16,
    /// Offset of the last record minus `base_offset`.
    pub last_offset_delta: u32,
    /// Timestamp (ms since the Unix epoch) of the first record; record timestamps are deltas from it.
    pub first_timestamp: i64,
    /// Largest record timestamp in the batch.
    pub max_timestamp: i64,
    /// Idempotent producer id, or -1.
    pub producer_id: i64,
    /// Idempotent producer epoch, or -1.
    pub producer_epoch: i16,
    /// Sequence number of the first record for this producer and partition, or -1.
    pub base_sequence: i32,
    /// Number of records that follow the header.
    pub record_count: u32,
}

/// Attribute bits v1 defines: the timestamp type (its codec must be 0).
const KNOWN_ATTRIBUTES_V1: u16 = 0b1000;
/// Attribute bits v2 defines: codec, timestamp type, transactional,
/// control, delete horizon.
const KNOWN_ATTRIBUTES_V2: u16 = 0b111_1111;
/// v2's transactional and control bits.
pub(crate) const TRANSACTIONAL_OR_CONTROL: u16 = 0b11_0000;

fn u16_at(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}
fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes(b[at..at + 4].try_into().expect("4-byte slice"))
}
fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_be_bytes(b[at..at + 8].try_into().expect("8-byte slice"))
}

/// Reads the total size (`LOG_OVERHEAD + batch_length`) of the batch at the
/// start of `buf` from its first 12 bytes, checking the length's bounds.
///
/// `max_batch_length` bounds `batch_length` (use the segment's remaining bytes
/// or the broker's limit); it is what stops a corrupt length from being trusted.
pub fn peek_batch_len(buf: &[u8], max_batch_length: u32) -> Result<usize, DecodeError> {
    if buf.len() < LOG_OVERHEAD {
        return Err(DecodeError::Truncated {
            needed: LOG_OVERHEAD,
            available: buf.len(),
        });
    }
    let length = u32_at(buf, BATCH_LENGTH);
    if !(MIN_BATCH_LENGTH..=max_batch_length).contains(&length) {
        return Err(DecodeError::InvalidLength {
            length: u64::from(length),
            min: u64::from(MIN_BATCH_LENGTH),
            max: u64::from(max_batch_length),
        });
    }
    Ok(LOG_OVERHEAD + length as usize)
}

/// Overwrites the base offset of the batch at the start of `buf` in place.
///
/// The CRC does not cover the base offset, so the batch stays valid.
///
/// # Panics
/// If `buf` is shorter than 8 bytes (the caller has parsed the batch already).
pub fn set_base_offset(buf: &mut [u8], base_offset: u64) {
    buf[BASE_OFFSET..BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Overwrites the partition leader epoch of the v2 batch at the start of
/// `buf` in place; a magic-1 batch has no such field and is left as it is.
///
/// The CRC does not cover the epoch, so the batch stays valid.
///
/// # Panics
/// If `buf` is shorter than 17 bytes (the caller has parsed the batch already).
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) {
    if buf[layout::V2.magic_at()] == layout::MAGIC_V2 {
        buf[PARTITION_LEADER_EPOCH..PARTITION_LEADER_EPOCH + 4]
            .copy_from_slice(&epoch.to_be_bytes());
    }
}

impl BatchHeader {
    /// Decodes and checks the header at the start of `buf`: the length bounds
    /// (against `max_batch_length` and the bytes present), the magic and the
    /// attribute bits. Does not check the CRC (see [`BatchHeader::check_crc`]).
    pub fn parse(buf: &[u8], max_batch_length: u32) -> Result<BatchHeader, DecodeError> {
        let total = peek_batch_len(buf, max_batch_length)?;
        let layout = Layout::of(buf)?;
        let header_len = layout.header_len();
        if buf.len() < header_len {
            return Err(DecodeError::Truncated {
                needed: header_len,
                available: buf.len(),
            });
        }
        if total < header_len {
            return Err(DecodeError::InvalidLength {
                length: (total - LOG_OVERHEAD) as u64,
                min: (header_len - LOG_OVERHEAD) as u64,
                max: u64::from(max_batch_length),
            });
        }
        if buf.len() < total {
            return Err(DecodeError::Truncated {
                needed: total,
                available: buf.len(),
            });
        }
        let attributes = u16_at(buf, layout.attributes_at());
        let known = match layout.magic() {
            layout::MAGIC_V2 => KNOWN_ATTRIBUTES_V2,
            _ => KNOWN_ATTRIBUTES_V1,
        };
        if attributes & !known != 0 || Compression::from_attributes(attributes).is_none() {
            return Err(DecodeError::UnsupportedAttributes(attributes));
        }
        let partition_leader_epoch = match layout.magic() {
            layout::MAGIC_V2 => u32_at(buf, PARTITION_LEADER_EPOCH) as i32,
            _ => -1,
        };
        Ok(BatchHeader {
            base_offset: u64_at(buf, BASE_OFFSET),
            batch_length: u32_at(buf, BATCH_LENGTH),
            partition_leader_epoch,
            magic: layout.magic(),
            crc: u32_at(buf, layout.crc_at()),
            attributes,
            last_offset_delta: u32_at(buf, layout.last_offset_delta_at()),
            first_timestamp: u64_at(buf, layout.first_timestamp_at()) as i64,
            max_timestamp: u64_at(buf, layout.max_timestamp_at()) as i64,
            producer_id: u64_at(buf, layout.producer_id_at()) as i64,
            producer_epoch: u16_at(buf, layout.producer_epoch_at()) as i16,
            base_sequence: u32_at(buf, layout.base_sequence_at()) as i32,
            record_count: u32_at(buf, layout.record_count_at()),
        })
    }

    /// Checks the CRC against `buf`, which must hold the whole batch
    /// (as guaranteed by a successful [`BatchHeader::parse`] of the same buffer).
    pub fn check_crc(&self, buf: &[u8]) -> Result<(), DecodeError> {
        let layout = self.layout();
        let covered =
            buf.get(layout.attributes_at()..self.total_len())
                .ok_or(DecodeError::Truncated {
                    needed: self.total_len(),
                    available: buf.len(),
                })?;
        let computed = layout.crc(covered);
        if computed != self.crc {
            return Err(DecodeError::CrcMismatch {
                stored: self.crc,
                computed,
            });
        }
        Ok(())
    }

    /// Size of the whole batch in bytes, header included.
    pub fn total_len(&self) -> usize {
        LOG_OVERHEAD + self.batch_length as usize
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> u64 {
        self.base_offset
            .saturating_add(u64::from(self.last_offset_delta))
    }

    /// The offset after the last record: where the next batch starts.
    pub fn next_offset(&self) -> u64 {
        self.last_offset().saturating_add(1)
    }

    /// Whether the timestamps are the broker's append time rather than the producer's.
    pub fn log_append_time(&self) -> bool {
        self.attributes & 0b1000 != 0
    }

    /// The codec the records are compressed with.
    pub fn compression(&self) -> Compression {
        Compression::from_attributes(self.attributes & CODEC_MASK).unwrap_or_default()
    }

    /// Whether this is a transaction's batch or a transaction marker (v2
    /// attribute bits 4 and 5): Brook does not support transactions.
    pub fn transactional_or_control(&self) -> bool {
        self.attributes & TRANSACTIONAL_OR_CONTROL != 0
    }

    /// Bytes before the first record (61 in v2, 57 in v1).
    pub fn header_len(&self) -> usize {
        self.layout().header_len()
    }

    pub(crate) fn layout(&self) -> Layout {
        if self.magic == layout::MAGIC_V1 {
            layout::V1
        } else {
            layout::V2
        }
    }
}
