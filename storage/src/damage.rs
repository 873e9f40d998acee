//! Damaged ranges: stored bytes that fail their checks, kept on disk and
//! reported instead of being served or deleted.

use std::path::PathBuf;

use crate::error::Error;
use crate::scan::Gap;

/// A range of offsets whose stored bytes fail their checks (CRC, length,
/// offset continuity) or are missing. The bytes stay on disk untouched; a
/// read of these offsets fails with [`Error::Damaged`] naming the range, and
/// the offsets before and after it stay readable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DamagedRange {
    /// The segment file.
    pub path: PathBuf,
    /// First damaged byte in the file.
    pub position: u64,
    /// Byte after the damaged bytes.
    pub end_position: u64,
    /// First offset that cannot be read.
    pub first_offset: u64,
    /// First offset after the damage that can be read again.
    pub end_offset: u64,
    /// What failed.
    pub reason: String,
}

impl DamagedRange {
    pub(crate) fn from_gap(path: PathBuf, gap: Gap) -> DamagedRange {
        DamagedRange {
            path,
            position: gap.pos_start,
            end_position: gap.pos_end,
            first_offset: gap.first_offset,
            end_offset: gap.end_offset,
            reason: gap.reason,
        }
    }

    /// The error a read of this range answers.
    pub fn to_error(&self) -> Error {
        Error::Damaged {
            path: self.path.clone(),
            position: self.position,
            end_position: self.end_position,
            first_offset: self.first_offset,
            end_offset: self.end_offset,
            reason: self.reason.clone(),
        }
    }

    /// Bytes of the file the range covers.
    pub fn bytes(&self) -> u64 {
        self.end_position - self.position
    }
}
