use super::{DecodeError, HEADER_LEN, LOG_OVERHEAD, MAGIC, MIN_BATCH_LENGTH, field};

/// The fixed 57-byte header at the start of every batch (see `docs/format.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    /// Offset of the first record; stamped by the broker, not covered by the CRC.
    pub base_offset: u64,
    /// Bytes that follow the `batch_length` field (magic to the end of the last record).
    pub batch_length: u32,
    /// Format version.
    pub magic: u8,
    /// CRC-32 (IEEE) of everything after the CRC field.
    pub crc: u32,
    /// Bits 0-2: compression codec (only 0, none, is defined); bit 3: timestamp
    /// type (0 create time, 1 log-append time); other bits reserved, zero.
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

/// Attribute bits this version understands: the codec (must be 0) and the timestamp type.
const KNOWN_ATTRIBUTES: u16 = 0b1000;

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
    let length = u32_at(buf, field::BATCH_LENGTH);
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
    buf[field::BASE_OFFSET..field::BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

impl BatchHeader {
    /// Decodes and checks the header at the start of `buf`: the length bounds
    /// (against `max_batch_length` and the bytes present), the magic and the
    /// attribute bits. Does not check the CRC (see [`BatchHeader::check_crc`]).
    pub fn parse(buf: &[u8], max_batch_length: u32) -> Result<BatchHeader, DecodeError> {
        let total = peek_batch_len(buf, max_batch_length)?;
        if buf.len() < HEADER_LEN {
            return Err(DecodeError::Truncated {
                needed: HEADER_LEN,
                available: buf.len(),
            });
        }
        if buf.len() < total {
            return Err(DecodeError::Truncated {
                needed: total,
                available: buf.len(),
            });
        }
        let magic = buf[field::MAGIC];
        if magic != MAGIC {
            return Err(DecodeError::UnsupportedMagic(magic));
        }
        let attributes = u16_at(buf, field::ATTRIBUTES);
        if attributes & !KNOWN_ATTRIBUTES != 0 {
            return Err(DecodeError::UnsupportedAttributes(attributes));
        }
        Ok(BatchHeader {
            base_offset: u64_at(buf, field::BASE_OFFSET),
            batch_length: u32_at(buf, field::BATCH_LENGTH),
            magic,
            crc: u32_at(buf, field::CRC),
            attributes,
            last_offset_delta: u32_at(buf, field::LAST_OFFSET_DELTA),
            first_timestamp: u64_at(buf, field::FIRST_TIMESTAMP) as i64,
            max_timestamp: u64_at(buf, field::MAX_TIMESTAMP) as i64,
            producer_id: u64_at(buf, field::PRODUCER_ID) as i64,
            producer_epoch: u16_at(buf, field::PRODUCER_EPOCH) as i16,
            base_sequence: u32_at(buf, field::BASE_SEQUENCE) as i32,
            record_count: u32_at(buf, field::RECORD_COUNT),
        })
    }

    /// Checks the CRC against `buf`, which must hold the whole batch
    /// (as guaranteed by a successful [`BatchHeader::parse`] of the same buffer).
    pub fn check_crc(&self, buf: &[u8]) -> Result<(), DecodeError> {
        let covered =
            buf.get(field::ATTRIBUTES..self.total_len())
                .ok_or(DecodeError::Truncated {
                    needed: self.total_len(),
                    available: buf.len(),
                })?;
        let computed = crc32fast::hash(covered);
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
}
