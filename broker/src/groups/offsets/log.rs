//! The offsets log, `<data>/~groups/offsets.log`: every commit of every
//! group appended as one frame, so that a commit costs one small `pwrite`
//! into the page cache instead of rewriting and fsyncing a file.
//!
//! Layout: the line `brook-offsets-log 1\n`, then frames of
//! `[length: u32 LE][CRC-32 of the payload: u32 LE][payload]`, the payload an
//! [`Entry`] (protobuf). An entry replaces the offsets it names; one with
//! `delete` set first forgets the group's offsets. The file is rewritten as
//! one entry per group (compaction) when it outgrows its last rewrite.
//!
//! On open, a frame cut short by a crash at the end of the file (or a tail of
//! zeros, as ext4 leaves after a power cut) ends the log: nothing after it
//! was ever acknowledged as durable. A bad frame with intact frames after it
//! is damage, and an error that names the file and the byte.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use prost::Message;

/// The first bytes of the file.
pub(super) const MAGIC: &[u8] = b"brook-offsets-log 1\n";

/// The file's name in the groups directory.
pub(super) const NAME: &str = "offsets.log";

/// No entry is this large (a commit holds at most a few thousand partitions
/// with 4 KiB of metadata each); a longer length field is damage.
const MAX_FRAME: usize = 256 << 20;

/// One frame's payload.
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct Entry {
    /// The group.
    #[prost(string, tag = "1")]
    pub group: String,
    /// Offsets to store, replacing those of the same partitions.
    #[prost(message, repeated, tag = "2")]
    pub offsets: Vec<OffsetEntry>,
    /// Forget the group's offsets before storing `offsets`.
    #[prost(bool, tag = "3")]
    pub delete: bool,
}

/// One partition's committed offset in an [`Entry`].
#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct OffsetEntry {
    #[prost(string, tag = "1")]
    pub topic: String,
    #[prost(uint32, tag = "2")]
    pub partition: u32,
    #[prost(uint64, tag = "3")]
    pub offset: u64,
    #[prost(string, tag = "4")]
    pub metadata: String,
    #[prost(int64, tag = "5")]
    pub timestamp_ms: i64,
}

/// Appends `entry` as a frame to `out`.
pub(super) fn encode_frame(entry: &Entry, out: &mut Vec<u8>) {
    let payload = entry.encode_to_vec();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// What a log file holds.
pub(super) struct Replayed {
    /// The entries, in order.
    pub entries: Vec<Entry>,
    /// Bytes up to the end of the last good frame.
    pub valid_len: u64,
    /// The file ended in a frame cut short (or zeros) after `valid_len`.
    pub torn_tail: bool,
}

/// Reads every frame of `bytes`, the contents of `path`.
pub(super) fn replay(bytes: &[u8], path: &Path) -> anyhow::Result<Replayed> {
    anyhow::ensure!(
        bytes.starts_with(MAGIC),
        "{}: not a brook offsets log (it does not start with {:?})",
        path.display(),
        String::from_utf8_lossy(MAGIC).trim_end()
    );
    let mut entries = Vec::new();
    let mut pos = MAGIC.len();
    let torn = |pos: usize, entries: Vec<Entry>| Replayed {
        entries,
        valid_len: pos as u64,
        torn_tail: true,
    };
    while pos < bytes.len() {
        let rest = &bytes[pos..];
        if rest.iter().all(|&b| b == 0) {
            return Ok(torn(pos, entries));
        }
        let damaged = |what: &str| {
            anyhow::anyhow!(
                "{}: damaged at byte {pos}: {what}, and frames follow it (not a write cut short by a crash); \
                 move the file away to start with the offsets it held lost",
                path.display()
            )
        };
        let Some((head, body)) = rest.split_first_chunk::<8>() else {
            return Ok(torn(pos, entries));
        };
        let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
        if len == 0 || len > MAX_FRAME {
            return Err(damaged(&format!("a frame length of {len}")));
        }
        let Some(payload) = body.get(..len) else {
            return Ok(torn(pos, entries));
        };
        let end = pos + 8 + len;
        if crc32fast::hash(payload) != crc {
            if end == bytes.len() {
                return Ok(torn(pos, entries));
            }
            return Err(damaged("a frame whose CRC does not match"));
        }
        let entry = Entry::decode(payload).map_err(|e| damaged(&format!("{e}")))?;
        entries.push(entry);
        pos = end;
    }
    Ok(Replayed {
        entries,
        valid_len: pos as u64,
        torn_tail: false,
    })
}

/// The open log file: where the next frame goes.
pub(super) struct LogFile {
    path: PathBuf,
    file: std::sync::Arc<File>,
    /// End of the last frame written.
    len: u64,
    /// The length right after the last rewrite.
    rewritten_len: u64,
}

impl LogFile {
    /// Opens `path` for appending at `len` (where its good frames end).
    pub(super) fn open(path: PathBuf, len: u64) -> anyhow::Result<LogFile> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        Ok(LogFile {
            path,
            file: std::sync::Arc::new(file),
            len,
            rewritten_len: len,
        })
    }

    /// Writes `frames` after the last frame. A failed write leaves `len` where
    /// it was, so the next frame overwrites whatever part of it landed.
    pub(super) fn append(&mut self, frames: &[u8]) -> anyhow::Result<()> {
        self.file
            .write_all_at(frames, self.len)
            .with_context(|| format!("appending to {}", self.path.display()))?;
        self.len += frames.len() as u64;
        Ok(())
    }

    /// The file, to sync outside the log's lock.
    pub(super) fn handle(&self) -> std::sync::Arc<File> {
        std::sync::Arc::clone(&self.file)
    }

    /// Whether the file has grown enough since its last rewrite to rewrite it.
    pub(super) fn wants_rewrite(&self, min_bytes: u64) -> bool {
        self.len > min_bytes.max(2 * self.rewritten_len)
    }

    /// Bytes in the file.
    pub(super) fn len(&self) -> u64 {
        self.len
    }

    /// Replaces the file with `contents` (atomically and durably) and
    /// appends after them from now on.
    pub(super) fn rewrite(&mut self, contents: &[u8]) -> anyhow::Result<()> {
        let dir = self.path.parent().unwrap_or(Path::new("."));
        brook_storage::write_atomic(dir, NAME, contents)?;
        *self = LogFile::open(self.path.clone(), contents.len() as u64)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(group: &str, offset: u64) -> Entry {
        Entry {
            group: group.into(),
            offsets: vec![OffsetEntry {
                topic: "orders".into(),
                partition: 1,
                offset,
                metadata: String::new(),
                timestamp_ms: 5,
            }],
            delete: false,
        }
    }

    fn log_of(entries: &[Entry]) -> Vec<u8> {
        let mut bytes = MAGIC.to_vec();
        for e in entries {
            encode_frame(e, &mut bytes);
        }
        bytes
    }

    #[test]
    fn frames_replay_in_order() {
        let bytes = log_of(&[entry("a", 1), entry("b", 2), entry("a", 3)]);
        let r = replay(&bytes, Path::new("offsets.log")).unwrap();
        assert_eq!(r.entries, [entry("a", 1), entry("b", 2), entry("a", 3)]);
        assert_eq!(r.valid_len, bytes.len() as u64);
        assert!(!r.torn_tail);
    }

    #[test]
    fn a_frame_cut_short_or_zeros_at_the_end_is_a_torn_tail() {
        let whole = log_of(&[entry("a", 1), entry("b", 2)]);
        let first_end = log_of(&[entry("a", 1)]).len();
        for cut in first_end + 1..whole.len() {
            let r = replay(&whole[..cut], Path::new("offsets.log")).unwrap();
            assert_eq!(r.entries, [entry("a", 1)], "cut at {cut}");
            assert_eq!(r.valid_len, first_end as u64);
            assert!(r.torn_tail);
        }
        let mut zeros = whole.clone();
        zeros.extend_from_slice(&[0; 4096]);
        let r = replay(&zeros, Path::new("offsets.log")).unwrap();
        assert_eq!(r.entries.len(), 2);
        assert!(r.torn_tail);
        // The last frame's payload damaged: the crash tore it.
        let mut last = whole.clone();
        let n = last.len();
        last[n - 1] ^= 0xff;
        assert!(replay(&last, Path::new("offsets.log")).unwrap().torn_tail);
    }

    #[test]
    fn a_bad_frame_before_good_ones_is_damage_named_by_byte() {
        let mut bytes = log_of(&[entry("a", 1), entry("b", 2)]);
        let at = MAGIC.len() + 9;
        bytes[at] ^= 0xff;
        let err = replay(&bytes, Path::new("/d/offsets.log"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("/d/offsets.log: damaged at byte 20"), "{err}");
        let err = replay(b"brook-offsets 1\n", Path::new("x")).err().unwrap();
        assert!(err.to_string().contains("not a brook offsets log"));
    }
}
