//! [`FaultyFs`]: the real file system with faults a test scripts in advance
//! (a failed `fdatasync`, a full disk, short writes), so that every error
//! path of storage can be run deterministically on real files.

use std::fs::File;
use std::io::{self, IoSlice};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use super::{FileSystem, RealFs};

/// One operation of the [`FileSystem`] trait, for scripting faults and
/// counting calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FsOp {
    /// [`FileSystem::write_vectored_at`].
    Write,
    /// [`FileSystem::sync_data`].
    SyncData,
    /// [`FileSystem::sync_all`].
    SyncAll,
    /// [`FileSystem::sync_mapped`].
    SyncMapped,
    /// [`FileSystem::allocate`].
    Allocate,
    /// [`FileSystem::set_len`].
    SetLen,
    /// [`FileSystem::rename`].
    Rename,
    /// [`FileSystem::remove_file`].
    RemoveFile,
    /// [`FileSystem::sync_dir`].
    SyncDir,
    /// [`FileSystem::write_file`].
    WriteFile,
    /// [`FileSystem::sync_filesystem`].
    SyncFilesystem,
}

const OPS: usize = FsOp::SyncFilesystem as usize + 1;

/// A scripted failure: `op` (on a path containing `path_part`, if given)
/// fails with `errno`, once or until cleared.
#[derive(Debug)]
struct Rule {
    op: FsOp,
    path_part: Option<String>,
    errno: i32,
    once: bool,
}

#[derive(Debug, Default)]
struct State {
    rules: Vec<Rule>,
    /// Bytes that allocations and whole-file writes may still take; `None`: unlimited.
    space: Option<u64>,
    /// The most bytes one positioned write writes.
    max_write: Option<usize>,
    calls: [u64; OPS],
    failures: [u64; OPS],
}

/// The real file system ([`RealFs`]) with faults scripted by a test.
///
/// Faults are checked before the real call, which is then not made: a
/// failed operation changes nothing on disk (a real failed `fsync` may have
/// lost the dirty pages too; the partition must assume the worst either way).
/// Every call is counted, failed or not, so that a test can assert what
/// storage did. Share it as an `Arc` between the partition (or
/// [`crate::LogOptions::fs`]) and the test.
///
/// ```
/// # use std::sync::Arc;
/// use brook_storage::{FaultyFs, FileSystem, FsOp};
/// let fs = Arc::new(FaultyFs::new());
/// fs.fail_next(FsOp::SyncData, libc::EIO);
/// fs.short_writes(7);
/// let seam: Arc<dyn FileSystem> = fs.clone();
/// # let _ = seam;
/// assert_eq!(fs.calls(FsOp::SyncData), 0);
/// ```
#[derive(Debug, Default)]
pub struct FaultyFs {
    inner: RealFs,
    state: Mutex<State>,
}

impl FaultyFs {
    /// No faults yet: behaves as [`RealFs`] until told otherwise.
    pub fn new() -> FaultyFs {
        FaultyFs::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A test that panicked while scripting leaves nothing half-made.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn add(&self, op: FsOp, path_part: Option<&str>, errno: i32, once: bool) {
        self.state().rules.push(Rule {
            op,
            path_part: path_part.map(str::to_string),
            errno,
            once,
        });
    }

    /// The next call of `op` fails with `errno` (e.g. `libc::EIO`).
    pub fn fail_next(&self, op: FsOp, errno: i32) {
        self.add(op, None, errno, true);
    }

    /// The next call of `op` on a path containing `path_part` (either path,
    /// for a rename) fails with `errno`.
    pub fn fail_next_on(&self, op: FsOp, path_part: &str, errno: i32) {
        self.add(op, Some(path_part), errno, true);
    }

    /// Every call of `op` fails with `errno` until [`FaultyFs::clear`].
    pub fn fail_always(&self, op: FsOp, errno: i32) {
        self.add(op, None, errno, false);
    }

    /// After `bytes` more bytes of allocations and whole-file writes, those
    /// fail with ENOSPC (an allocation that does not fit takes nothing).
    /// Positioned writes are not counted: storage writes only into space it
    /// allocated first, which a full disk cannot take back. Script
    /// `fail_next(FsOp::Write, libc::ENOSPC)` for a file system that would.
    pub fn enospc_after_bytes(&self, bytes: u64) {
        self.state().space = Some(bytes);
    }

    /// Every positioned write writes at most `max_bytes` (at least 1) and
    /// reports a short write, as the system call may.
    pub fn short_writes(&self, max_bytes: usize) {
        self.state().max_write = Some(max_bytes.max(1));
    }

    /// Removes every fault (the disk has room again, writes are whole);
    /// the counts stay.
    pub fn clear(&self) {
        let mut st = self.state();
        st.rules.clear();
        st.space = None;
        st.max_write = None;
    }

    /// Calls of `op` so far, failed ones included.
    pub fn calls(&self, op: FsOp) -> u64 {
        self.state().calls[op as usize]
    }

    /// Calls of `op` that a fault failed so far.
    pub fn failures(&self, op: FsOp) -> u64 {
        self.state().failures[op as usize]
    }

    /// Counts the call and applies the first rule that matches it; `bytes`
    /// is what the call takes from the disk's space.
    fn check(&self, op: FsOp, paths: &[&Path], bytes: u64) -> io::Result<()> {
        let mut st = self.state();
        st.calls[op as usize] += 1;
        let matches = |r: &Rule| {
            r.op == op
                && r.path_part.as_deref().is_none_or(|part| {
                    paths
                        .iter()
                        .any(|p| p.as_os_str().to_string_lossy().contains(part))
                })
        };
        let errno = match st.rules.iter().position(matches) {
            Some(i) if st.rules[i].once => Some(st.rules.remove(i).errno),
            Some(i) => Some(st.rules[i].errno),
            None => match st.space {
                Some(left) if bytes > left => Some(libc::ENOSPC),
                Some(left) => {
                    st.space = Some(left - bytes);
                    None
                }
                None => None,
            },
        };
        match errno {
            Some(errno) => {
                st.failures[op as usize] += 1;
                Err(io::Error::from_raw_os_error(errno))
            }
            None => Ok(()),
        }
    }
}

impl FileSystem for FaultyFs {
    fn write_vectored_at(
        &self,
        file: &File,
        path: &Path,
        bufs: &[IoSlice<'_>],
        pos: u64,
    ) -> io::Result<usize> {
        self.check(FsOp::Write, &[path], 0)?;
        let Some(max) = self.state().max_write else {
            return self.inner.write_vectored_at(file, path, bufs, pos);
        };
        // The first `max` bytes of `bufs`.
        let mut short = Vec::with_capacity(bufs.len());
        let mut left = max;
        for buf in bufs {
            if left == 0 {
                break;
            }
            let take = buf.len().min(left);
            short.push(IoSlice::new(&buf[..take]));
            left -= take;
        }
        self.inner.write_vectored_at(file, path, &short, pos)
    }

    fn sync_data(&self, file: &File, path: &Path) -> io::Result<()> {
        self.check(FsOp::SyncData, &[path], 0)?;
        self.inner.sync_data(file, path)
    }

    fn sync_all(&self, file: &File, path: &Path) -> io::Result<()> {
        self.check(FsOp::SyncAll, &[path], 0)?;
        self.inner.sync_all(file, path)
    }

    fn sync_mapped(&self, path: &Path, mapped: &[u8]) -> io::Result<()> {
        self.check(FsOp::SyncMapped, &[path], 0)?;
        self.inner.sync_mapped(path, mapped)
    }

    fn allocate(&self, file: &File, path: &Path, offset: u64, len: u64) -> io::Result<()> {
        self.check(FsOp::Allocate, &[path], len)?;
        self.inner.allocate(file, path, offset, len)
    }

    fn set_len(&self, file: &File, path: &Path, len: u64) -> io::Result<()> {
        self.check(FsOp::SetLen, &[path], 0)?;
        self.inner.set_len(file, path, len)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        self.check(FsOp::Rename, &[from, to], 0)?;
        self.inner.rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        self.check(FsOp::RemoveFile, &[path], 0)?;
        self.inner.remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        self.check(FsOp::SyncDir, &[dir], 0)?;
        self.inner.sync_dir(dir)
    }

    fn write_file(&self, path: &Path, contents: &[u8]) -> io::Result<File> {
        self.check(FsOp::WriteFile, &[path], contents.len() as u64)?;
        self.inner.write_file(path, contents)
    }

    fn sync_filesystem(&self, path: &Path) -> io::Result<()> {
        self.check(FsOp::SyncFilesystem, &[path], 0)?;
        self.inner.sync_filesystem(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::file::write_all_at;

    #[test]
    fn faults_fire_as_scripted_and_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFs::new();
        let path = dir.path().join("a");
        let f = fs.write_file(&path, b"x").unwrap();
        fs.fail_next(FsOp::SyncData, libc::EIO);
        let err = fs.sync_data(&f, &path).unwrap_err();
        assert_eq!(err.raw_os_error(), Some(libc::EIO));
        fs.sync_data(&f, &path).unwrap();
        assert_eq!(
            (fs.calls(FsOp::SyncData), fs.failures(FsOp::SyncData)),
            (2, 1)
        );

        fs.fail_next_on(FsOp::Rename, "other", libc::EIO);
        fs.rename(&path, &dir.path().join("b")).unwrap();
        assert!(
            fs.rename(&dir.path().join("b"), &dir.path().join("other"))
                .is_err()
        );

        fs.enospc_after_bytes(10);
        fs.allocate(&f, &path, 0, 8).unwrap();
        let full = fs.allocate(&f, &path, 8, 8).unwrap_err();
        assert_eq!(full.raw_os_error(), Some(libc::ENOSPC));
        fs.clear();
        fs.allocate(&f, &path, 8, 8).unwrap();
    }

    #[test]
    fn short_writes_are_completed_by_the_callers_loop() {
        let dir = tempfile::tempdir().unwrap();
        let fs = FaultyFs::new();
        let path = dir.path().join("a");
        let f = fs.write_file(&path, b"").unwrap();
        fs.short_writes(3);
        write_all_at(&fs, &f, &path, b"head", b"and the body", 5).unwrap();
        assert_eq!(fs.calls(FsOp::Write), 6, "16 bytes, 3 a call");
        let on_disk = std::fs::read(&path).unwrap();
        assert_eq!(&on_disk[5..], b"headand the body");
    }
}
