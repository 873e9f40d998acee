//! File helpers: the sequences storage builds on the [`FileSystem`] seam
//! (a whole positioned write, atomic replacement of a small file, directory
//! sync, segment file removal) and the read-only ones (segment names and
//! lists, where a file's data ends, small offset files).

use std::fs::{self, File, OpenOptions};
use std::io::{self, IoSlice};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{IoContext, Result};
use crate::fs::{FileSystem, RealFs};

/// Reserves disk blocks for `[from, to)` (growing the file to `to` if it is
/// shorter) so that later writes into that range, through `write` or through
/// a mapping, cannot fail for lack of space. This is what keeps a full disk
/// from raising SIGBUS inside a mapped segment.
pub(crate) fn preallocate(
    fs: &dyn FileSystem,
    file: &File,
    from: u64,
    to: u64,
    path: &Path,
) -> Result<()> {
    if to <= from {
        return Ok(());
    }
    fs.allocate(file, path, from, to - from).at(path)
}

/// Writes `head` then `body` at `pos`: one `pwritev` in the common case,
/// more after a short write, until every byte is written.
pub(crate) fn write_all_at(
    fs: &dyn FileSystem,
    file: &File,
    path: &Path,
    head: &[u8],
    body: &[u8],
    mut pos: u64,
) -> io::Result<()> {
    let mut slices = [IoSlice::new(head), IoSlice::new(body)];
    let mut bufs = &mut slices[..];
    let mut left = head.len() + body.len();
    while left > 0 {
        match fs.write_vectored_at(file, path, bufs, pos) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) if n > left => {
                return Err(io::Error::other(format!(
                    "a write of {left} bytes reported {n}"
                )));
            }
            Ok(n) => {
                IoSlice::advance_slices(&mut bufs, n);
                pos += n as u64;
                left -= n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The end of the last range of `[from, len)` that holds data, asking the
/// file system (`SEEK_DATA`/`SEEK_HOLE`) so that preallocated space that was
/// never written is not read byte by byte. Where the file system cannot say,
/// `len`.
pub(crate) fn data_end(file: &File, from: u64, len: u64) -> u64 {
    let fd = file.as_raw_fd();
    let (mut pos, mut end) = (from, from);
    while pos < len {
        let Ok(at) = libc::off_t::try_from(pos) else {
            return len;
        };
        // SAFETY: lseek on a descriptor we own; it moves no memory.
        let data = unsafe { libc::lseek(fd, at, libc::SEEK_DATA) };
        if data < 0 {
            return match io::Error::last_os_error().raw_os_error() {
                Some(libc::ENXIO) => end,
                _ => len,
            };
        }
        // SAFETY: as above.
        let hole = unsafe { libc::lseek(fd, data, libc::SEEK_HOLE) };
        if hole < 0 || (data as u64) >= len {
            return if hole < 0 { len } else { end };
        }
        end = (hole as u64).min(len);
        pos = hole as u64;
    }
    end
}

/// fsyncs a directory so that file creations, renames and deletions in it are durable.
pub(crate) fn sync_dir(fs: &dyn FileSystem, dir: &Path) -> Result<()> {
    fs.sync_dir(dir).at(dir)
}

/// Deletes a file; a missing one is fine (a crash or a rename took it).
pub(crate) fn remove_if_exists(fs: &dyn FileSystem, path: &Path) -> Result<()> {
    match fs.remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e).at(path),
        _ => Ok(()),
    }
}

/// Replaces `dir/name` with `contents` atomically and durably:
/// write a temporary file, fsync it, rename it over the old one, fsync the
/// directory. The one implementation of this sequence in Brook (storage's
/// offset files and snapshots, the broker's group offsets and producer ids),
/// here on the real file system.
///
/// The temporary file's name is unique in the process, so that two writers
/// of the same file never share one; a crash leaves a `*.tmp` file that the
/// directory's owner removes when it opens.
pub fn write_atomic(dir: &Path, name: &str, contents: &[u8]) -> Result<()> {
    write_atomic_in(&RealFs, dir, name, contents)
}

/// [`write_atomic`] on the file system `fs`.
pub(crate) fn write_atomic_in(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    contents: &[u8],
) -> Result<()> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let tmp = dir.join(format!("{name}.{n}.tmp"));
    let f = fs.write_file(&tmp, contents).at(&tmp)?;
    fs.sync_all(&f, &tmp).at(&tmp)?;
    drop(f);
    let dst = dir.join(name);
    if let Err(e) = fs.rename(&tmp, &dst) {
        // The old file is intact; leave no stray copy beside it.
        let _ = fs.remove_file(&tmp);
        return Err(e).at(&dst);
    }
    sync_dir(fs, dir)
}

/// Replaces `dir/name` with `contents` atomically but not durably (temporary
/// file and rename, no fsync): for callers that sync the whole file system
/// afterwards (see [`sync_filesystem`]), which write many small files at
/// once (a close). The old file is removed before the rename, because
/// renaming over an existing file makes ext4 write the new one out at once
/// (`auto_da_alloc`, ~0.3 ms per file) and thousands of them would take
/// seconds. A crash in between leaves no file, which every caller treats as
/// the safe case (no clean-shutdown marker: recover; no snapshot: replay).
pub(crate) fn replace_unsynced(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    contents: &[u8],
) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    fs.write_file(&tmp, contents).at(&tmp)?;
    let dst = dir.join(name);
    remove_if_exists(fs, &dst)?;
    fs.rename(&tmp, &dst).at(&dst)
}

/// Writes back everything dirty on the file system holding `path`
/// (`syncfs`): data, metadata and directories of every file at once.
pub(crate) fn sync_filesystem(fs: &dyn FileSystem, path: &Path) -> Result<()> {
    fs.sync_filesystem(path).at(path)
}

/// Reads a file holding one decimal number; `None` if it is missing or unreadable as a number.
pub(crate) fn read_offset_file(path: &Path) -> Option<u64> {
    fs::read_to_string(path).ok()?.trim().parse().ok()
}

/// Persists one decimal number atomically (log start offset, recovery point).
pub(crate) fn write_offset_file(
    fs: &dyn FileSystem,
    dir: &Path,
    name: &str,
    value: u64,
) -> Result<()> {
    write_atomic_in(fs, dir, name, format!("{value}\n").as_bytes())
}

/// The three files of the segment starting at `base_offset`.
pub(crate) struct SegmentPaths {
    pub log: PathBuf,
    pub index: PathBuf,
    pub timeindex: PathBuf,
}

impl SegmentPaths {
    pub fn new(dir: &Path, base_offset: u64) -> SegmentPaths {
        SegmentPaths {
            log: dir.join(format!("{base_offset:020}.log")),
            index: dir.join(format!("{base_offset:020}.index")),
            timeindex: dir.join(format!("{base_offset:020}.timeindex")),
        }
    }
}

/// Base offsets of the segments in `dir`, in order, from the `.log` file names.
pub(crate) fn list_segments(dir: &Path) -> Result<Vec<u64>> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let name = entry.at(dir)?.file_name();
        let Some(name) = name.to_str() else { continue };
        if let Some(stem) = name.strip_suffix(".log")
            && stem.len() == 20
            && let Ok(base) = stem.parse::<u64>()
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Opens a file for reading and writing, creating it if asked.
pub(crate) fn open_rw(path: &Path, create: bool) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(create)
        .truncate(false)
        .open(path)
        .at(path)
}

/// Deletes a segment's three files; missing ones are fine.
pub(crate) fn remove_segment_files(
    fs: &dyn FileSystem,
    dir: &Path,
    base_offset: u64,
) -> Result<()> {
    let p = SegmentPaths::new(dir, base_offset);
    [&p.log, &p.index, &p.timeindex]
        .into_iter()
        .try_for_each(|path| remove_if_exists(fs, path))
}
