//! The file-system seam: every operation by which storage changes what is
//! on disk (positioned writes, syncs, allocation, truncation, renames,
//! deletions, small whole files, file-system syncs) goes through one
//! [`FileSystem`] trait, as raft-engine's `FileSystem` does. [`RealFs`] is
//! the default and makes the plain system calls; tests put a wrapper in its
//! place to make any of them fail, deterministically, the way a sick or full
//! disk does (`FaultyFs`, behind the `fault-injection` feature).
//!
//! What stays outside, and why:
//! - Stores into a memory mapping (appends under `AppendMode::Mmap`, index
//!   entries) are not system calls; their write-back is, and goes through
//!   [`FileSystem::sync_mapped`] and the syncs.
//! - Opening, reading and listing files: they change nothing on disk, and
//!   their failures already surface as errors where they happen.
//! - Creating and removing whole directories (topic creation and deletion,
//!   a truncation's scratch directory): rare, and made crash-safe by the
//!   renames and directory syncs that follow them, which are on the seam.
//!
//! The seam is handed down from [`crate::LogOptions::fs`] or
//! [`crate::Partition::open_with`]; nothing is global, so two logs in one
//! process (a test, a broker and its tools) can use different ones.

#[cfg(any(test, feature = "fault-injection"))]
mod faulty;

use std::fs::{File, OpenOptions};
use std::io::{self, IoSlice, Write};
use std::os::fd::AsRawFd;
use std::path::Path;

#[cfg(any(test, feature = "fault-injection"))]
pub use faulty::{FaultyFs, FsOp};

/// The operations storage performs that change the disk.
///
/// Every method gets the path of the file it works on, for errors and so
/// that a test double can aim at one file; an implementation must act on
/// `file` (the path may name a file since renamed). Errors are plain
/// [`io::Error`]s, mapped by the caller (ENOSPC becomes
/// [`crate::Error::DiskFull`]).
pub trait FileSystem: Send + Sync + std::fmt::Debug {
    /// One positioned vector write (`pwritev`) of `bufs` at `pos`. Like the
    /// system call it may write fewer bytes than given and returns how many
    /// it wrote; the caller writes the rest.
    fn write_vectored_at(
        &self,
        file: &File,
        path: &Path,
        bufs: &[IoSlice<'_>],
        pos: u64,
    ) -> io::Result<usize>;

    /// Forces the file's data (and the metadata needed to read it) to disk: `fdatasync`.
    fn sync_data(&self, file: &File, path: &Path) -> io::Result<()>;

    /// Forces the file's data and all its metadata to disk: `fsync`.
    fn sync_all(&self, file: &File, path: &Path) -> io::Result<()>;

    /// Writes back the dirty pages of `mapped`, a part of a shared mapping
    /// of the file at `path`, and waits for them (`msync(MS_SYNC)`).
    fn sync_mapped(&self, path: &Path, mapped: &[u8]) -> io::Result<()>;

    /// Reserves disk blocks for `len` bytes at `offset`, growing the file if
    /// it is shorter (`posix_fallocate`): writes into the range, through
    /// `write` or a mapping, can then not fail for lack of space.
    fn allocate(&self, file: &File, path: &Path, offset: u64, len: u64) -> io::Result<()>;

    /// Cuts or extends the file to `len` bytes (`ftruncate`).
    fn set_len(&self, file: &File, path: &Path, len: u64) -> io::Result<()>;

    /// Renames `from` to `to`, replacing `to` if it exists.
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()>;

    /// Deletes a file.
    fn remove_file(&self, path: &Path) -> io::Result<()>;

    /// fsyncs the directory `dir`, so that creations, renames and deletions
    /// in it survive a power cut.
    fn sync_dir(&self, dir: &Path) -> io::Result<()>;

    /// Creates (or empties) the file at `path` and writes all of `contents`
    /// to it: the small files storage replaces whole (offsets, snapshots,
    /// metadata). Returns the open file so that the caller can sync it.
    fn write_file(&self, path: &Path, contents: &[u8]) -> io::Result<File>;

    /// Writes back everything dirty on the file system holding `path`
    /// (`syncfs`): data, metadata and directories of every file at once.
    fn sync_filesystem(&self, path: &Path) -> io::Result<()>;
}

/// The real file system: each method is the one system call it names.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealFs;

/// `v` as an `off_t`, or an error naming `what`.
fn off_t(v: u64, what: &str) -> io::Result<libc::off_t> {
    libc::off_t::try_from(v).map_err(|_| io::Error::other(format!("{what} overflows off_t")))
}

impl FileSystem for RealFs {
    fn write_vectored_at(
        &self,
        file: &File,
        _path: &Path,
        bufs: &[IoSlice<'_>],
        pos: u64,
    ) -> io::Result<usize> {
        let offset = off_t(pos, "position")?;
        // Beyond IOV_MAX the call would fail; fewer is a legal short write.
        let count = bufs.len().min(1024) as libc::c_int;
        // SAFETY: `IoSlice` is ABI-compatible with `iovec` on Unix, and the
        // slices outlive the call.
        let n = unsafe {
            libc::pwritev(
                file.as_raw_fd(),
                bufs.as_ptr().cast::<libc::iovec>(),
                count,
                offset,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(n as usize)
    }

    fn sync_data(&self, file: &File, _path: &Path) -> io::Result<()> {
        file.sync_data()
    }

    fn sync_all(&self, file: &File, _path: &Path) -> io::Result<()> {
        file.sync_all()
    }

    fn sync_mapped(&self, _path: &Path, mapped: &[u8]) -> io::Result<()> {
        if mapped.is_empty() {
            return Ok(());
        }
        // msync wants a page-aligned start.
        // SAFETY: sysconf reads a constant of the system.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as usize;
        let addr = mapped.as_ptr() as usize;
        let start = addr - addr % page;
        // SAFETY: msync only writes back pages; on memory that is not a
        // mapping it fails with ENOMEM instead of touching it.
        let rc = unsafe {
            libc::msync(
                start as *mut libc::c_void,
                mapped.len() + (addr - start),
                libc::MS_SYNC,
            )
        };
        match rc {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }

    fn allocate(&self, file: &File, _path: &Path, offset: u64, len: u64) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        let (start, len) = (off_t(offset, "offset")?, off_t(len, "length")?);
        // SAFETY: a plain syscall on a descriptor we own. It returns the
        // error number instead of setting errno.
        match unsafe { libc::posix_fallocate(file.as_raw_fd(), start, len) } {
            0 => Ok(()),
            rc => Err(io::Error::from_raw_os_error(rc)),
        }
    }

    fn set_len(&self, file: &File, _path: &Path, len: u64) -> io::Result<()> {
        file.set_len(len)
    }

    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        std::fs::rename(from, to)
    }

    fn remove_file(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_file(path)
    }

    fn sync_dir(&self, dir: &Path) -> io::Result<()> {
        File::open(dir)?.sync_all()
    }

    fn write_file(&self, path: &Path, contents: &[u8]) -> io::Result<File> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        f.write_all(contents)?;
        Ok(f)
    }

    fn sync_filesystem(&self, path: &Path) -> io::Result<()> {
        let dir = File::open(path)?;
        // SAFETY: syncfs on a descriptor we own.
        match unsafe { libc::syncfs(dir.as_raw_fd()) } {
            0 => Ok(()),
            _ => Err(io::Error::last_os_error()),
        }
    }
}
