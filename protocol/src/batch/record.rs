use std::ops::Range;

use bytes::Bytes;

use super::{BatchHeader, DecodeError};
use crate::varint::{get_uvarint, get_varint};

/// A header of a record: a string key and a bytes value (for example a
/// correlation id or an event type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordHeader {
    /// UTF-8 key.
    pub key: String,
    /// Opaque value.
    pub value: Bytes,
}

/// One decoded record. Keys and values are zero-copy slices of the batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The record's offset in its partition.
    pub offset: u64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    /// The key, used for partitioning; `None` is a null key (not an empty one).
    pub key: Option<Bytes>,
    /// The value; `None` is a null value (a tombstone).
    pub value: Option<Bytes>,
    /// Headers, in the order they were written.
    pub headers: Vec<RecordHeader>,
}

/// Iterator over the records of one batch; yields an error and stops at the
/// first malformed record.
///
/// It walks the batch by position and slices the batch's `Bytes` only for
/// what it hands out (key, value, header values): a slice per field it
/// merely steps over would cost two atomic reference-count updates each, and
/// this loop runs for every record the broker takes in or serves and every
/// record a client reads.
pub struct Records {
    buf: Bytes,
    pos: usize,
    base_offset: u64,
    first_timestamp: i64,
    count: u32,
    index: u32,
    failed: bool,
    /// v2 writes every length, offset delta and count zig-zag; v1 unsigned.
    signed: bool,
    /// Why the records cannot be read at all (a batch that does not decompress).
    error: Option<DecodeError>,
}

impl Record {
    /// The headers as (key, value) pairs, as [`super::BatchBuilder::push`]
    /// takes them.
    pub fn header_pairs(&self) -> Vec<(&str, &[u8])> {
        self.headers
            .iter()
            .map(|h| (h.key.as_str(), h.value.as_ref()))
            .collect()
    }
}

impl Records {
    pub(super) fn new(header: &BatchHeader, body: Bytes) -> Records {
        Records {
            buf: body,
            pos: 0,
            base_offset: header.base_offset,
            first_timestamp: header.first_timestamp,
            count: header.record_count,
            index: 0,
            failed: false,
            signed: header.layout().signed_lengths(),
            error: None,
        }
    }

    /// An iterator that yields `error` once: the records cannot be read.
    pub(super) fn failed(header: &BatchHeader, error: DecodeError) -> Records {
        Records {
            error: Some(error),
            ..Records::new(header, Bytes::new())
        }
    }

    fn invalid(&self, reason: &'static str) -> DecodeError {
        DecodeError::InvalidRecord {
            index: self.index,
            reason,
        }
    }

    fn next_record(&mut self) -> Result<Record, DecodeError> {
        let rest = &self.buf[self.pos..];
        let (len, n) = length(rest, self.signed).ok_or(self.invalid("bad length varint"))?;
        if len > rest.len() - n {
            return Err(self.invalid("length runs past the end of the batch"));
        }
        let start = self.pos + n;
        let end = start + len;
        self.pos = end;
        let mut r = Cursor {
            buf: &self.buf[..end],
            pos: start,
            index: self.index,
            signed: self.signed,
        };
        if r.u8()? != 0 {
            return Err(self.invalid("reserved record attributes are set"));
        }
        let ts_delta = r.varint(10, "bad timestamp delta")?;
        let timestamp = self
            .first_timestamp
            .checked_add(ts_delta)
            .ok_or(self.invalid("timestamp overflows"))?;
        let offset_delta = r.length("bad offset delta")? as u64;
        let key = r.nullable_range("bad key")?;
        let value = r.nullable_range("bad value")?;
        let header_count = r.length("bad header count")?;
        // Each header takes at least two bytes: never reserve more than the input can hold.
        let mut headers = Vec::with_capacity(header_count.min((end - r.pos) / 2));
        for _ in 0..header_count {
            let key_len = r.length("bad header key length")?;
            let key = r.take(key_len, "header key runs past the record")?;
            let key = String::from_utf8(self.buf[key].to_vec())
                .map_err(|_| self.invalid("header key is not UTF-8"))?;
            // v2 allows a null header value; it reads as an empty one.
            let value = match self.signed {
                true => r.nullable_range("bad header value")?.unwrap_or(0..0),
                false => {
                    let value_len = r.length("bad header value length")?;
                    r.take(value_len, "header value runs past the record")?
                }
            };
            headers.push(RecordHeader {
                key,
                value: self.buf.slice(value),
            });
        }
        if r.pos != end {
            return Err(self.invalid("record length does not match its fields"));
        }
        Ok(Record {
            offset: self.base_offset.wrapping_add(offset_delta),
            timestamp,
            key: key.map(|k| self.buf.slice(k)),
            value: value.map(|v| self.buf.slice(v)),
            headers,
        })
    }
}

impl Records {
    /// Whether every record has been read (or reading failed): the last
    /// record read was the batch's last.
    pub fn is_done(&self) -> bool {
        self.failed || self.index >= self.count
    }
}

impl Iterator for Records {
    type Item = Result<Record, DecodeError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed {
            return None;
        }
        if let Some(e) = self.error.take() {
            self.failed = true;
            return Some(Err(e));
        }
        let drained = self.pos == self.buf.len();
        if self.index == self.count || drained {
            if self.index == self.count && !drained {
                self.failed = true;
                return Some(Err(self.invalid("bytes follow the last record")));
            }
            return None;
        }
        let result = self.next_record();
        self.failed = result.is_err();
        self.index += 1;
        Some(result)
    }
}

/// Reads fields of one record, each bounded by the record's own length:
/// `buf` ends where the record ends, `pos` is where the next field starts.
struct Cursor<'a> {
    buf: &'a [u8],
    pos: usize,
    index: u32,
    signed: bool,
}

/// A non-negative 32-bit length or count: a zig-zag varint (v2) or an
/// unsigned one (v1). Returns it with the bytes it took.
fn length(buf: &[u8], signed: bool) -> Option<(usize, usize)> {
    let (v, n) = match signed {
        true => {
            let (v, n) = get_varint(buf, 5)?;
            (u64::try_from(v).ok()?, n)
        }
        false => get_uvarint(buf, 5)?,
    };
    Some((usize::try_from(u32::try_from(v).ok()?).ok()?, n))
}

impl Cursor<'_> {
    fn err(&self, reason: &'static str) -> DecodeError {
        DecodeError::InvalidRecord {
            index: self.index,
            reason,
        }
    }

    fn u8(&mut self) -> Result<u8, DecodeError> {
        let b = *self.buf.get(self.pos).ok_or(self.err("record is empty"))?;
        self.pos += 1;
        Ok(b)
    }

    fn length(&mut self, what: &'static str) -> Result<usize, DecodeError> {
        let (v, n) = length(&self.buf[self.pos..], self.signed).ok_or(self.err(what))?;
        self.pos += n;
        Ok(v)
    }

    fn varint(&mut self, max: usize, what: &'static str) -> Result<i64, DecodeError> {
        let (v, n) = get_varint(&self.buf[self.pos..], max).ok_or(self.err(what))?;
        self.pos += n;
        Ok(v)
    }

    /// The next `len` bytes, as a range of the batch.
    fn take(&mut self, len: usize, what: &'static str) -> Result<Range<usize>, DecodeError> {
        if len > self.buf.len() - self.pos {
            return Err(self.err(what));
        }
        let range = self.pos..self.pos + len;
        self.pos += len;
        Ok(range)
    }

    fn nullable_range(&mut self, what: &'static str) -> Result<Option<Range<usize>>, DecodeError> {
        match self.varint(5, what)? {
            -1 => Ok(None),
            len if len < 0 => Err(self.err(what)),
            len => self.take(len as usize, what).map(Some),
        }
    }
}
