use thiserror::Error;

/// Why a byte sequence is not a valid record batch.
///
/// Each variant names the field that was wrong, so that a broker can turn it
/// into an error message a producer can act on.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// The input ended before the batch did.
    #[error("truncated batch: needed {needed} bytes, only {available} available")]
    Truncated {
        /// Bytes the batch claims or the header requires.
        needed: usize,
        /// Bytes that were present.
        available: usize,
    },
    /// The `batch_length` field is outside the allowed bounds.
    #[error("batch_length {length} is outside the allowed range {min}..={max}")]
    InvalidLength {
        /// The value read from the header.
        length: u64,
        /// Smallest valid value (a header with no records).
        min: u64,
        /// Largest value accepted by the caller.
        max: u64,
    },
    /// The magic byte names a format version this build does not know.
    #[error("unsupported batch format version (magic) {0}")]
    UnsupportedMagic(u8),
    /// The stored CRC does not match the bytes.
    #[error("batch CRC mismatch: header says {stored:#010x}, bytes give {computed:#010x}")]
    CrcMismatch {
        /// CRC stored in the header.
        stored: u32,
        /// CRC computed over the batch.
        computed: u32,
    },
    /// Attribute bits that are reserved or name an unsupported codec are set.
    #[error("unsupported batch attributes {0:#06x}")]
    UnsupportedAttributes(u16),
    /// A batch must carry at least one record.
    #[error("batch has no records")]
    Empty,
    /// A header field disagrees with the records it describes.
    #[error("batch header field {field} is {header}, but the records give {actual}")]
    Inconsistent {
        /// The header field's name, as in docs/format.md.
        field: &'static str,
        /// The value in the header.
        header: i64,
        /// The value the records imply.
        actual: i64,
    },
    /// A record inside the batch is malformed.
    #[error("record {index} is malformed: {reason}")]
    InvalidRecord {
        /// Position of the record in the batch, from 0.
        index: u32,
        /// What was wrong.
        reason: &'static str,
    },
    /// The records of a compressed batch do not decompress.
    #[error("batch records do not decompress with {codec}: {reason}")]
    Compression {
        /// The codec named by the batch's attributes.
        codec: &'static str,
        /// What was wrong.
        reason: &'static str,
    },
    /// The batch belongs to a transaction or is a transaction marker.
    #[error("transactional and control batches are not supported")]
    Transactional,
}
