use bytes::{BufMut, Bytes, BytesMut};

use super::layout::{BASE_OFFSET, BATCH_LENGTH, PARTITION_LEADER_EPOCH, V2};
use super::{
    Compression, HEADER_LEN, LOG_OVERHEAD, MAGIC, NO_PARTITION_LEADER_EPOCH, NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID, NO_SEQUENCE,
};
use crate::varint::{put_varint, varint_len};

/// Encodes records into one batch, in Kafka's RecordBatch v2.
///
/// ```
/// use brook_protocol::batch::{Batch, BatchBuilder};
///
/// let mut b = BatchBuilder::new();
/// b.push(1_700_000_000_000, Some(b"order-42"), Some(b"{\"type\":\"OrderPlaced\"}"), &[("correlation-id", b"c-1")]);
/// let batch = Batch::parse(b.build(0)).unwrap();
/// batch.validate_records().unwrap();
/// assert_eq!(batch.header().record_count, 1);
/// ```
#[derive(Debug)]
pub struct BatchBuilder {
    buf: BytesMut,
    count: u32,
    /// The offset delta of the next record: `count` plus offsets skipped.
    next_delta: u32,
    first_timestamp: i64,
    /// Set by [`BatchBuilder::first_timestamp`]: the first push keeps it.
    pinned_timestamp: bool,
    max_timestamp: i64,
    producer_id: i64,
    producer_epoch: i16,
    base_sequence: i32,
    attributes: u16,
    compression: Compression,
}

impl Default for BatchBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl BatchBuilder {
    /// An empty batch with no producer id (not idempotent).
    pub fn new() -> BatchBuilder {
        Self::with_capacity(4096)
    }

    /// An empty batch whose buffer starts with room for `bytes` bytes.
    pub fn with_capacity(bytes: usize) -> BatchBuilder {
        Self::with_buffer(BytesMut::with_capacity(bytes.max(HEADER_LEN)))
    }

    /// An empty batch written into `buf` (cleared first): a producer hands
    /// back the buffer of a batch the broker acknowledged, so that a new
    /// batch does not take fresh pages (which the kernel must zero) for
    /// every megabyte it sends.
    pub fn with_buffer(mut buf: BytesMut) -> BatchBuilder {
        buf.clear();
        buf.put_bytes(0, HEADER_LEN);
        BatchBuilder {
            buf,
            count: 0,
            next_delta: 0,
            first_timestamp: 0,
            pinned_timestamp: false,
            max_timestamp: i64::MIN,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            base_sequence: NO_SEQUENCE,
            attributes: 0,
            compression: Compression::None,
        }
    }

    /// Marks the batch as coming from an idempotent producer.
    pub fn producer(mut self, producer_id: i64, producer_epoch: i16, base_sequence: i32) -> Self {
        self.producer_id = producer_id;
        self.producer_epoch = producer_epoch;
        self.base_sequence = base_sequence;
        self
    }

    /// Marks the timestamps as the broker's append time (attribute bit 3).
    pub fn log_append_time(mut self) -> Self {
        self.attributes |= 0b1000;
        self
    }

    /// Compresses the records with `codec` when the batch is built.
    pub fn compression(mut self, codec: Compression) -> Self {
        self.compression = codec;
        self
    }

    /// Sets the batch's first timestamp, which records' timestamps are
    /// stored relative to, instead of taking the first record's: a batch
    /// rebuilt without some of its records keeps its producer's.
    pub fn first_timestamp(mut self, timestamp: i64) -> Self {
        self.first_timestamp = timestamp;
        self.pinned_timestamp = true;
        self
    }

    /// Leaves `n` offsets without a record: the next record pushed takes the
    /// offset after them, and a batch ending with skipped offsets still
    /// spans them. The broker builds such a batch when it stores a
    /// producer's batch without some of its records (records that failed
    /// the topic's schema and went to its dead-letter topic): the other
    /// records keep their offsets, and an idempotent producer's sequence
    /// numbers (counted over the whole span, as Kafka's `lastOffsetDelta`)
    /// stay where the producer put them. Kafka's compaction leaves the same
    /// gaps.
    pub fn skip_offsets(&mut self, n: u32) {
        self.next_delta = self.next_delta.saturating_add(n);
    }

    /// Appends one record. Its offset is the batch's base offset plus the
    /// number of records pushed (and offsets skipped) before it.
    pub fn push(
        &mut self,
        timestamp: i64,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        headers: &[(&str, &[u8])],
    ) {
        if self.count == 0 && !self.pinned_timestamp {
            self.first_timestamp = timestamp;
        }
        self.max_timestamp = self.max_timestamp.max(timestamp);
        let ts_delta = timestamp.wrapping_sub(self.first_timestamp);
        let offset_delta = i64::from(self.next_delta);
        let nullable_len = |b: Option<&[u8]>| match b {
            None => 1,
            Some(b) => varint_len(b.len() as i64) + b.len(),
        };
        let mut len = 1
            + varint_len(ts_delta)
            + varint_len(offset_delta)
            + nullable_len(key)
            + nullable_len(value)
            + varint_len(headers.len() as i64);
        for (k, v) in headers {
            len += varint_len(k.len() as i64) + k.len() + varint_len(v.len() as i64) + v.len();
        }
        self.buf.reserve(len + 5);
        put_varint(&mut self.buf, len as i64);
        self.buf.put_u8(0);
        put_varint(&mut self.buf, ts_delta);
        put_varint(&mut self.buf, offset_delta);
        for part in [key, value] {
            match part {
                None => put_varint(&mut self.buf, -1),
                Some(b) => {
                    put_varint(&mut self.buf, b.len() as i64);
                    self.buf.put_slice(b);
                }
            }
        }
        put_varint(&mut self.buf, headers.len() as i64);
        for (k, v) in headers {
            put_varint(&mut self.buf, k.len() as i64);
            self.buf.put_slice(k.as_bytes());
            put_varint(&mut self.buf, v.len() as i64);
            self.buf.put_slice(v);
        }
        self.count += 1;
        self.next_delta = self.next_delta.saturating_add(1);
    }

    /// Records pushed so far.
    pub fn record_count(&self) -> u32 {
        self.count
    }

    /// Whether no record was pushed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Size the batch will have once built (before compression).
    pub fn size_bytes(&self) -> usize {
        self.buf.len()
    }

    /// Writes the header and CRC and returns the finished batch.
    ///
    /// The base offset is usually 0 from a producer: the broker stamps the
    /// real one. An empty builder gives a batch with no records, which
    /// [`super::Batch::validate_records`] rejects.
    pub fn build(mut self, base_offset: u64) -> Bytes {
        let mut attributes = self.attributes;
        if self.compression != Compression::None && self.count > 0 {
            let packed = self.compression.compress(&self.buf[HEADER_LEN..]);
            // Kafka's producers send a batch plain when compression does not pay.
            if packed.len() < self.buf.len() - HEADER_LEN {
                self.buf.truncate(HEADER_LEN);
                self.buf.extend_from_slice(&packed);
                attributes |= self.compression.bits();
            }
        }
        let batch_length = (self.buf.len() - LOG_OVERHEAD) as u32;
        let max_timestamp = if self.count == 0 {
            self.first_timestamp
        } else {
            self.max_timestamp
        };
        let l = V2;
        let h = &mut self.buf[..HEADER_LEN];
        h[BASE_OFFSET..][..8].copy_from_slice(&base_offset.to_be_bytes());
        h[BATCH_LENGTH..][..4].copy_from_slice(&batch_length.to_be_bytes());
        h[PARTITION_LEADER_EPOCH..][..4].copy_from_slice(&NO_PARTITION_LEADER_EPOCH.to_be_bytes());
        h[l.magic_at()] = MAGIC;
        h[l.attributes_at()..][..2].copy_from_slice(&attributes.to_be_bytes());
        h[l.last_offset_delta_at()..][..4]
            .copy_from_slice(&self.next_delta.saturating_sub(1).to_be_bytes());
        h[l.first_timestamp_at()..][..8].copy_from_slice(&self.first_timestamp.to_be_bytes());
        h[l.max_timestamp_at()..][..8].copy_from_slice(&max_timestamp.to_be_bytes());
        h[l.producer_id_at()..][..8].copy_from_slice(&self.producer_id.to_be_bytes());
        h[l.producer_epoch_at()..][..2].copy_from_slice(&self.producer_epoch.to_be_bytes());
        h[l.base_sequence_at()..][..4].copy_from_slice(&self.base_sequence.to_be_bytes());
        h[l.record_count_at()..][..4].copy_from_slice(&self.count.to_be_bytes());
        let crc = l.crc(&self.buf[l.attributes_at()..]);
        self.buf[l.crc_at()..][..4].copy_from_slice(&crc.to_be_bytes());
        self.buf.freeze()
    }
}
