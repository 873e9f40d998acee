//! The data directory's lock: one broker (or one offline tool that writes)
//! per directory at a time, as Kafka's `.lock`.
//!
//! An `flock` on `<dir>/.lock`, held for the life of the [`DirLock`]. The OS
//! drops it when the holder exits, however it exits (`kill -9` included), so
//! a restart never needs a cleanup step. An exclusive holder writes its PID
//! into the file so that the process refused can name it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use crate::error::{Error, IoContext, Result};

/// Name of the lock file inside the data directory.
pub const LOCK_FILE: &str = ".lock";

/// A held lock on a data directory; dropping it releases the lock.
#[derive(Debug)]
pub struct DirLock {
    dir: PathBuf,
    _file: File,
}

impl DirLock {
    /// Takes the directory's lock for a writer (a broker, `brook data
    /// repair`), creating the directory if needed. Fails at once with
    /// [`Error::Locked`] while any other process holds it.
    pub fn exclusive(dir: &Path) -> Result<DirLock> {
        std::fs::create_dir_all(dir).at(dir)?;
        let mut file = open_lock_file(dir)?;
        take(&file, dir, libc::LOCK_EX)?;
        // Best effort: the PID only makes the refusal message better.
        let path = dir.join(LOCK_FILE);
        let _ = file
            .set_len(0)
            .and_then(|()| file.seek(SeekFrom::Start(0)))
            .and_then(|_| writeln!(file, "{}", std::process::id()));
        tracing::debug!(lock = %path.display(), "data directory locked");
        Ok(DirLock {
            dir: dir.to_path_buf(),
            _file: file,
        })
    }

    /// Takes the directory's lock for a reader (`brook data verify`): any
    /// number of readers at once, but never while a writer holds it.
    pub fn shared(dir: &Path) -> Result<DirLock> {
        if !dir.is_dir() {
            return Err(Error::Io {
                path: dir.to_path_buf(),
                source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such data directory"),
            });
        }
        let file = open_lock_file(dir)?;
        take(&file, dir, libc::LOCK_SH)?;
        Ok(DirLock {
            dir: dir.to_path_buf(),
            _file: file,
        })
    }

    /// The locked directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

fn open_lock_file(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .at(&path)
}

fn take(file: &File, dir: &Path, mode: libc::c_int) -> Result<()> {
    // SAFETY: flock on a descriptor we own; no memory is involved.
    let rc = unsafe { libc::flock(file.as_raw_fd(), mode | libc::LOCK_NB) };
    if rc == 0 {
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    if err.raw_os_error() == Some(libc::EWOULDBLOCK) {
        return Err(Error::Locked {
            dir: dir.to_path_buf(),
            holder: recorded_holder(file),
        });
    }
    Err(err).at(&dir.join(LOCK_FILE))
}

/// The PID in the lock file, if it names a live process.
fn recorded_holder(mut file: &File) -> Option<u32> {
    let mut text = String::new();
    file.read_to_string(&mut text).ok()?;
    let pid: u32 = text.trim().parse().ok()?;
    Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_exclusive_or_shared_lock_is_refused_until_the_first_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let first = DirLock::exclusive(dir.path()).unwrap();
        match DirLock::exclusive(dir.path()) {
            Err(Error::Locked { holder, .. }) => assert_eq!(holder, Some(std::process::id())),
            other => panic!("expected Locked, got {other:?}"),
        }
        assert!(matches!(
            DirLock::shared(dir.path()),
            Err(Error::Locked { .. })
        ));
        drop(first);
        let readers = [
            DirLock::shared(dir.path()).unwrap(),
            DirLock::shared(dir.path()).unwrap(),
        ];
        assert!(matches!(
            DirLock::exclusive(dir.path()),
            Err(Error::Locked { .. })
        ));
        drop(readers);
        DirLock::exclusive(dir.path()).unwrap();
    }
}
