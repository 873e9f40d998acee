//! The file under a [`super::StateLog`]: a first line naming the format,
//! then frames of `[length: u32 LE][CRC-32 of the payload: u32 LE][payload]`,
//! each payload one protobuf entry.
//!
//! On open, a frame cut short by a crash at the end of the file (or a tail of
//! zeros, as ext4 leaves after a power cut) ends the log: nothing after it
//! was ever acknowledged as durable. A bad frame with intact frames after it
//! is damage, and an error that names the file and the byte.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

/// No entry is this large (a snapshot entry is bounded well below it by
/// whoever writes it); a longer length field is damage.
const MAX_FRAME: usize = 256 << 20;

/// Appends `entry` as a frame to `out`.
pub(crate) fn encode_frame<E: prost::Message>(entry: &E, out: &mut Vec<u8>) {
    let payload = entry.encode_to_vec();
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// What a log file holds.
pub(crate) struct Replayed<E> {
    /// The entries, in order.
    pub entries: Vec<E>,
    /// Bytes up to the end of the last good frame.
    pub valid_len: u64,
    /// The file ended in a frame cut short (or zeros) after `valid_len`.
    pub torn_tail: bool,
}

/// The frame at the start of `rest`, if one is there whole and intact:
/// its payload and its length with the header.
fn frame_at(rest: &[u8]) -> Option<(&[u8], usize)> {
    let (head, body) = rest.split_first_chunk::<8>()?;
    let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let crc = u32::from_le_bytes([head[4], head[5], head[6], head[7]]);
    if len == 0 || len > MAX_FRAME {
        return None;
    }
    let payload = body.get(..len)?;
    (crc32fast::hash(payload) == crc).then_some((payload, 8 + len))
}

/// Reads every frame of `bytes`, the contents of `path`.
///
/// A frame that is cut short or fails its CRC ends the log when no intact
/// frame follows it anywhere in the file: that is what a crash leaves (a
/// write cut short, a tail of zeros or of stale bytes, the half of a frame
/// whose write failed). An intact frame after it means the file was damaged
/// in the middle: an error that names the byte, since replaying past the
/// hole would lose the offsets it held and stopping there would lose the
/// later ones.
pub(crate) fn replay<E: prost::Message + Default>(
    bytes: &[u8],
    magic: &[u8],
    path: &Path,
) -> anyhow::Result<Replayed<E>> {
    anyhow::ensure!(
        bytes.starts_with(magic),
        "{}: not a {} (it does not start with {:?})",
        path.display(),
        String::from_utf8_lossy(magic).trim_end(),
        String::from_utf8_lossy(magic).trim_end()
    );
    let mut entries = Vec::new();
    let mut pos = magic.len();
    while pos < bytes.len() {
        let Some((payload, len)) = frame_at(&bytes[pos..]) else {
            let intact_after = (pos + 1..bytes.len()).find(|&at| frame_at(&bytes[at..]).is_some());
            if let Some(at) = intact_after {
                anyhow::bail!(
                    "{}: damaged at byte {pos}: a frame there fails its length or CRC check, and an intact frame \
                     follows at byte {at} (not a write cut short by a crash); move the file away to start with \
                     what it held lost",
                    path.display()
                );
            }
            return Ok(Replayed {
                entries,
                valid_len: pos as u64,
                torn_tail: true,
            });
        };
        let entry = E::decode(payload).map_err(|e| {
            anyhow::anyhow!(
                "{}: the frame at byte {pos} passes its CRC but does not decode ({e}): written by another version?",
                path.display()
            )
        })?;
        entries.push(entry);
        pos += len;
    }
    Ok(Replayed {
        entries,
        valid_len: pos as u64,
        torn_tail: false,
    })
}

/// The open log file: where the next frame goes.
pub(crate) struct LogFile {
    path: PathBuf,
    file: std::sync::Arc<File>,
    /// End of the last frame written.
    len: u64,
    /// The length right after the last rewrite.
    rewritten_len: u64,
}

impl LogFile {
    /// Opens `path` for appending at `len` (where its good frames end).
    pub(crate) fn open(path: PathBuf, len: u64) -> anyhow::Result<LogFile> {
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
    /// it was and cuts off what part of it landed, so that nothing but
    /// intact frames is ever followed by a frame (and if the cut fails too,
    /// the next frame overwrites it, and the rest reads as a torn tail).
    pub(crate) fn append(&mut self, frames: &[u8]) -> anyhow::Result<()> {
        if let Err(e) = self.file.write_all_at(frames, self.len) {
            let _ = self.file.set_len(self.len);
            return Err(e).with_context(|| format!("appending to {}", self.path.display()));
        }
        self.len += frames.len() as u64;
        Ok(())
    }

    /// The file, to sync outside the log's lock.
    pub(crate) fn handle(&self) -> std::sync::Arc<File> {
        std::sync::Arc::clone(&self.file)
    }

    /// Whether the file has grown enough since its last rewrite to rewrite it.
    pub(crate) fn wants_rewrite(&self, min_bytes: u64) -> bool {
        self.len > min_bytes.max(2 * self.rewritten_len)
    }

    /// Bytes in the file.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// The log's directory.
    pub(crate) fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// Takes `tmp` (written and synced by the caller, with `len` bytes) as
    /// the log: renamed over it, appended to from now on. The file handle
    /// moves to the new file as soon as the rename is done, whatever
    /// happens next, so that no append goes to the old, unlinked file.
    /// An error after the rename (the directory sync) says the rename may
    /// not survive a power cut: the caller must not count anything as
    /// durable until a later rewrite succeeds.
    pub(crate) fn replace_with(&mut self, tmp: &Path, file: File, len: u64) -> anyhow::Result<()> {
        if let Err(e) = std::fs::rename(tmp, &self.path) {
            let _ = std::fs::remove_file(tmp);
            return Err(e)
                .with_context(|| format!("renaming {} to {}", tmp.display(), self.path.display()));
        }
        self.file = std::sync::Arc::new(file);
        self.len = len;
        self.rewritten_len = len;
        let dir = self.dir().to_path_buf();
        File::open(&dir)
            .and_then(|d| d.sync_all())
            .with_context(|| format!("syncing the directory {}", dir.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAGIC: &[u8] = b"brook-test-log 1\n";

    #[derive(Clone, PartialEq, prost::Message)]
    struct Entry {
        #[prost(string, tag = "1")]
        group: String,
        #[prost(uint64, tag = "2")]
        offset: u64,
    }

    fn entry(group: &str, offset: u64) -> Entry {
        // Long enough that a test can take stale bytes from inside a frame.
        Entry {
            group: format!("{group}-{}", "x".repeat(24)),
            offset,
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
        let r = replay::<Entry>(&bytes, MAGIC, Path::new("offsets.log")).unwrap();
        assert_eq!(r.entries, [entry("a", 1), entry("b", 2), entry("a", 3)]);
        assert_eq!(r.valid_len, bytes.len() as u64);
        assert!(!r.torn_tail);
    }

    #[test]
    fn a_frame_cut_short_or_zeros_at_the_end_is_a_torn_tail() {
        let whole = log_of(&[entry("a", 1), entry("b", 2)]);
        let first_end = log_of(&[entry("a", 1)]).len();
        for cut in first_end + 1..whole.len() {
            let r = replay::<Entry>(&whole[..cut], MAGIC, Path::new("offsets.log")).unwrap();
            assert_eq!(r.entries, [entry("a", 1)], "cut at {cut}");
            assert_eq!(r.valid_len, first_end as u64);
            assert!(r.torn_tail);
        }
        let mut zeros = whole.clone();
        zeros.extend_from_slice(&[0; 4096]);
        let r = replay::<Entry>(&zeros, MAGIC, Path::new("offsets.log")).unwrap();
        assert_eq!(r.entries.len(), 2);
        assert!(r.torn_tail);
        // The last frame's payload damaged: the crash tore it.
        let mut last = whole.clone();
        let n = last.len();
        last[n - 1] ^= 0xff;
        assert!(
            replay::<Entry>(&last, MAGIC, Path::new("offsets.log"))
                .unwrap()
                .torn_tail
        );
    }

    #[test]
    fn a_bad_frame_with_no_intact_frame_after_it_is_a_torn_tail() {
        let good = log_of(&[entry("a", 1)]);
        let whole = log_of(&[entry("a", 1), entry("b", 2)]);
        // The second frame damaged, then zeros and stale bytes after it:
        // what a power cut leaves, or a failed append's half.
        let mut bytes = whole.clone();
        let n = bytes.len();
        bytes[n - 3] ^= 0x55;
        bytes.extend_from_slice(&[0; 100]);
        bytes.extend_from_slice(&whole[good.len() + 4..good.len() + 20]);
        let r = replay::<Entry>(&bytes, MAGIC, Path::new("offsets.log")).unwrap();
        assert!(r.torn_tail);
        assert_eq!(r.entries, [entry("a", 1)]);
        assert_eq!(r.valid_len, good.len() as u64);
        // A length field of zero, then nothing intact: torn too.
        let mut zero_len = good.clone();
        zero_len.extend_from_slice(&[0, 0, 0, 0, 9, 9, 9, 9, 1]);
        assert!(
            replay::<Entry>(&zero_len, MAGIC, Path::new("x"))
                .unwrap()
                .torn_tail
        );
    }

    #[test]
    fn a_bad_frame_before_good_ones_is_damage_named_by_byte() {
        let mut bytes = log_of(&[entry("a", 1), entry("b", 2)]);
        let at = MAGIC.len() + 9;
        bytes[at] ^= 0xff;
        let err = replay::<Entry>(&bytes, MAGIC, Path::new("/d/offsets.log"))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("/d/offsets.log: damaged at byte 17"), "{err}");
        let err = replay::<Entry>(b"brook-offsets 1\n", MAGIC, Path::new("x"))
            .err()
            .unwrap();
        assert!(err.to_string().contains("not a brook-test-log 1"));
    }
}
