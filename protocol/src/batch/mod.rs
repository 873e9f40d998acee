//! The record batch: Brook's unit of storage and of transfer.
//!
//! A producer builds a batch with [`BatchBuilder`], the broker checks it with
//! [`Batch::parse`] and [`Batch::validate_records`], stamps the base offset in
//! place with [`set_base_offset`] (the CRC does not cover it) and appends the
//! very same bytes to the log; consumers receive them unchanged and read the
//! records with [`Batch::records`]. The byte layout is in `docs/format.md`.
//!
//! Every length read from the input is checked against the bytes that are
//! really there before it is used, so decoding arbitrary bytes returns an
//! error, never panics, and never allocates more than the input's size.

mod builder;
mod compression;
mod error;
mod header;
mod layout;
mod record;

pub use builder::BatchBuilder;
pub use compression::{Compression, MAX_DECOMPRESSED};
pub use error::DecodeError;
pub use header::{BatchHeader, peek_batch_len, set_base_offset, set_partition_leader_epoch};
pub use layout::{MAGIC_V1, MAGIC_V2};
pub use record::{Record, RecordHeader, Records};

use bytes::Bytes;

/// The format version written by this build: Kafka's RecordBatch v2.
pub const MAGIC: u8 = MAGIC_V2;
/// Bytes before the records in the format written (v2): the fixed batch header.
pub const HEADER_LEN: usize = 61;
/// Bytes before `batch_length` counts: base offset (8) and the length field itself (4).
pub const LOG_OVERHEAD: usize = 12;
/// Smallest `batch_length` of any format read (a v1 header with no record
/// bytes); a v2 batch needs 4 more.
pub const MIN_BATCH_LENGTH: u32 = 45;
/// `partitionLeaderEpoch` of a batch no leader stamped.
pub const NO_PARTITION_LEADER_EPOCH: i32 = -1;
/// Producer id of a batch written without the idempotent producer.
pub const NO_PRODUCER_ID: i64 = -1;
/// Producer epoch of a batch written without the idempotent producer.
pub const NO_PRODUCER_EPOCH: i16 = -1;
/// Base sequence of a batch written without the idempotent producer.
pub const NO_SEQUENCE: i32 = -1;

/// A batch whose header, length and CRC have been checked.
///
/// Holds the batch's bytes (`Bytes`, so a batch read from a memory-mapped
/// segment stays a zero-copy view of the mapping).
#[derive(Debug, Clone)]
pub struct Batch {
    header: BatchHeader,
    bytes: Bytes,
}

impl Batch {
    /// Checks that `bytes` is exactly one batch: header, bounds and CRC.
    ///
    /// Does not walk the records; use [`Batch::validate_records`] for input
    /// that was not written by this process (a producer's request).
    pub fn parse(bytes: Bytes) -> Result<Batch, DecodeError> {
        let header = BatchHeader::parse(&bytes, u32::MAX)?;
        if header.total_len() != bytes.len() {
            return Err(DecodeError::InvalidLength {
                length: u64::from(header.batch_length),
                min: u64::from(MIN_BATCH_LENGTH),
                max: (bytes.len() - LOG_OVERHEAD) as u64,
            });
        }
        header.check_crc(&bytes)?;
        Ok(Batch { header, bytes })
    }

    /// Walks every record and checks that the header agrees with them:
    /// the record count, dense offset deltas `0..count`, the last offset
    /// delta and the maximum timestamp.
    ///
    /// Transactional and control batches are refused: Brook has no
    /// transactions, and storing them would show consumers records of
    /// transactions that never commit or abort.
    pub fn validate_records(&self) -> Result<(), DecodeError> {
        let h = &self.header;
        if h.record_count == 0 {
            return Err(DecodeError::Empty);
        }
        if h.transactional_or_control() {
            return Err(DecodeError::Transactional);
        }
        let mut count: u32 = 0;
        let mut max_ts = i64::MIN;
        for record in self.records() {
            let record = record?;
            if record.offset != h.base_offset.wrapping_add(u64::from(count)) {
                return Err(DecodeError::InvalidRecord {
                    index: count,
                    reason: "offset delta is not the record's position in the batch",
                });
            }
            max_ts = max_ts.max(record.timestamp);
            count += 1;
        }
        if count != h.record_count {
            return Err(DecodeError::Inconsistent {
                field: "record_count",
                header: i64::from(h.record_count),
                actual: i64::from(count),
            });
        }
        if h.last_offset_delta != count - 1 {
            return Err(DecodeError::Inconsistent {
                field: "last_offset_delta",
                header: i64::from(h.last_offset_delta),
                actual: i64::from(count - 1),
            });
        }
        if h.max_timestamp != max_ts {
            return Err(DecodeError::Inconsistent {
                field: "max_timestamp",
                header: h.max_timestamp,
                actual: max_ts,
            });
        }
        Ok(())
    }

    /// The decoded header.
    pub fn header(&self) -> &BatchHeader {
        &self.header
    }

    /// The batch's bytes, exactly as stored and sent.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// Consumes the batch, returning its bytes.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Offset of the first record.
    pub fn base_offset(&self) -> u64 {
        self.header.base_offset
    }

    /// Offset of the last record.
    pub fn last_offset(&self) -> u64 {
        self.header.last_offset()
    }

    /// The records, decoded lazily; keys and values are zero-copy slices
    /// (of the decompressed records, for a compressed batch: a batch that
    /// does not decompress yields that error).
    pub fn records(&self) -> Records {
        let body = self.bytes.slice(self.header.header_len()..);
        match self.header.compression() {
            Compression::None => Records::new(&self.header, body),
            codec => match codec.decompress(&body) {
                Ok(plain) => Records::new(&self.header, plain),
                Err(e) => Records::failed(&self.header, e),
            },
        }
    }

    /// The batch in the format written now (v2): itself if it is one, else
    /// its records encoded again with the same producer fields, timestamps
    /// and timestamp type. A producer of an older build sends v1 batches;
    /// the broker stores every new batch as v2.
    pub fn upgraded(self) -> Result<Batch, DecodeError> {
        if self.header.magic == MAGIC {
            return Ok(self);
        }
        let h = self.header;
        let mut b = BatchBuilder::with_capacity(self.bytes.len() + 4 + h.record_count as usize)
            .producer(h.producer_id, h.producer_epoch, h.base_sequence);
        if h.log_append_time() {
            b = b.log_append_time();
        }
        for record in self.records() {
            let r = record?;
            b.push(
                r.timestamp,
                r.key.as_deref(),
                r.value.as_deref(),
                &r.header_pairs(),
            );
        }
        Batch::parse(b.build(h.base_offset))
    }

    /// The batch stored without the records at `positions` (their places in
    /// the batch, from 0): the same producer fields, timestamp type,
    /// compression and first timestamp, every other record at its offset,
    /// and the offsets left out kept as gaps (see
    /// [`BatchBuilder::skip_offsets`]). With every record left out the
    /// batch has none, and still spans its offsets: the idempotent
    /// producer's sequence numbers must advance past them.
    pub fn without(
        &self,
        positions: &std::collections::BTreeSet<u32>,
    ) -> Result<Batch, DecodeError> {
        let h = &self.header;
        let mut b = BatchBuilder::with_capacity(self.bytes.len())
            .producer(h.producer_id, h.producer_epoch, h.base_sequence)
            .compression(h.compression())
            .first_timestamp(h.first_timestamp);
        if h.log_append_time() {
            b = b.log_append_time();
        }
        let mut next = h.base_offset;
        for record in self.records() {
            let r = record?;
            let position = r.offset.wrapping_sub(h.base_offset);
            b.skip_offsets(r.offset.wrapping_sub(next) as u32);
            next = r.offset.wrapping_add(1);
            if positions.contains(&(position as u32)) {
                b.skip_offsets(1);
                continue;
            }
            b.push(
                r.timestamp,
                r.key.as_deref(),
                r.value.as_deref(),
                &r.header_pairs(),
            );
        }
        b.skip_offsets(h.next_offset().wrapping_sub(next) as u32);
        Batch::parse(b.build(h.base_offset))
    }

    /// A copy stamped with another producer id, epoch and base sequence,
    /// its CRC computed again (it covers those fields). An idempotent
    /// producer whose id the broker no longer knows re-sends its unstored
    /// batches under a new id this way.
    pub fn restamped(&self, producer_id: i64, epoch: i16, base_sequence: i32) -> Batch {
        let layout = self.header.layout();
        let mut buf = self.bytes.to_vec();
        buf[layout.producer_id_at()..][..8].copy_from_slice(&producer_id.to_be_bytes());
        buf[layout.producer_epoch_at()..][..2].copy_from_slice(&epoch.to_be_bytes());
        buf[layout.base_sequence_at()..][..4].copy_from_slice(&base_sequence.to_be_bytes());
        let crc = layout.crc(&buf[layout.attributes_at()..]);
        buf[layout.crc_at()..][..4].copy_from_slice(&crc.to_be_bytes());
        let header = BatchHeader {
            crc,
            producer_id,
            producer_epoch: epoch,
            base_sequence,
            ..self.header
        };
        Batch {
            header,
            bytes: Bytes::from(buf),
        }
    }
}

/// Splits a buffer of back-to-back batches (a fetch response, a segment) into
/// checked batches. Stops with an error at the first invalid batch.
pub fn batches(buf: Bytes) -> impl Iterator<Item = Result<Batch, DecodeError>> {
    let mut rest = buf;
    let mut failed = false;
    std::iter::from_fn(move || {
        if rest.is_empty() || failed {
            return None;
        }
        let result = peek_batch_len(&rest, u32::MAX)
            .and_then(|len| {
                if len > rest.len() {
                    return Err(DecodeError::Truncated {
                        needed: len,
                        available: rest.len(),
                    });
                }
                Ok(len)
            })
            .and_then(|len| Batch::parse(rest.split_to(len)));
        failed = result.is_err();
        Some(result)
    })
}

/// Walks the headers of back-to-back batches without checking CRCs or
/// decoding records (for bytes that were checked when they were stored):
/// counting records, finding the offset after the last batch. Stops at the
/// first header that does not parse.
pub fn headers(buf: &[u8]) -> impl Iterator<Item = BatchHeader> + '_ {
    let mut pos = 0usize;
    std::iter::from_fn(move || {
        let h = BatchHeader::parse(buf.get(pos..)?, u32::MAX).ok()?;
        pos += h.total_len();
        Some(h)
    })
}

#[cfg(test)]
mod tests;
