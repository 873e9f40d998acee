//! Reads: whole batches from the segments, zero-copy, none at or past the
//! high watermark.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use brook_protocol::batch::headers;
use bytes::Bytes;

use super::{ReadResult, Shared};
use crate::error::{Error, Result};
use crate::segment::Segment;

impl Shared {
    /// Reads from `offset` (see [`Partition::read`]); `visible_only` stops
    /// at the high watermark, else at the log end (replaying the log).
    pub(super) fn read(
        &self,
        offset: u64,
        max_bytes: usize,
        visible_only: bool,
    ) -> Result<ReadResult> {
        if self.deleted.load(Ordering::Acquire) {
            return Err(Error::Deleted(self.name.clone()));
        }
        // The watermark first: it never passes the end read after it.
        let high_watermark = *self.high_watermark.borrow();
        let log_end = *self.end.borrow();
        let bound = match visible_only {
            true => high_watermark.min(log_end),
            false => log_end,
        };
        let log_start = self.log_start.load(Ordering::Acquire);
        let out_of_range = || Error::OffsetOutOfRange {
            requested: offset,
            log_start_offset: log_start,
            log_end_offset: log_end,
        };
        if offset < log_start || offset > log_end {
            return Err(out_of_range());
        }
        let mut result = ReadResult {
            batches: Bytes::new(),
            log_start_offset: log_start,
            log_end_offset: log_end,
            high_watermark,
        };
        if offset >= bound {
            return Ok(result);
        }
        let segs: Vec<Arc<Segment>> = {
            let map = self.segments.read().unwrap_or_else(|e| e.into_inner());
            // None: retention removed the segment since the range check.
            let Some((&first, _)) = map.range(..=offset).next_back() else {
                let log_start = self.log_start.load(Ordering::Acquire);
                return Err(Error::OffsetOutOfRange {
                    requested: offset,
                    log_start_offset: log_start,
                    log_end_offset: log_end,
                });
            };
            map.range(first..)
                .take(2)
                .map(|(_, s)| Arc::clone(s))
                .collect()
        };
        for seg in segs {
            if let Some(batches) = seg.read(offset, max_bytes)? {
                result.batches = match bound < log_end {
                    true => batches_below(batches, bound),
                    false => batches,
                };
                return Ok(result);
            }
        }
        // Retention removed the segment between the range check and the lookup.
        let log_start = self.log_start.load(Ordering::Acquire);
        Err(Error::OffsetOutOfRange {
            requested: offset,
            log_start_offset: log_start,
            log_end_offset: log_end,
        })
    }
}

/// The leading batches of `batches` whose base offset is below `bound`.
fn batches_below(batches: Bytes, bound: u64) -> Bytes {
    let mut len = 0;
    for h in headers(&batches) {
        if h.base_offset >= bound {
            break;
        }
        len += h.batch_length as usize + brook_protocol::batch::LOG_OVERHEAD;
    }
    batches.slice(..len.min(batches.len()))
}
