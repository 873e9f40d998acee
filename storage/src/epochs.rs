//! Leader epochs of one partition (Kafka's `LeaderEpochFileCache`): which
//! leader epoch began at which offset, so every batch has an epoch (the one
//! whose start is the largest at or below the batch's base offset).
//!
//! Replication uses it the way Kafka does: a follower asks the leader where
//! its own latest epoch ends there ([`LeaderEpochs::end_offset_for`]) and
//! truncates its log to that offset before fetching, so a log that diverged
//! under an old leader never keeps records the new leader does not have.
//!
//! Kept in `leader-epoch-checkpoint` beside the segments, in Kafka's text
//! layout (a version line, a count line, one `epoch start_offset` line per
//! epoch), replaced atomically and durably on every change: changes come
//! once per leadership change, never per append.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{Error, IoContext, Result};
use crate::file::write_atomic_in;
use crate::fs::FileSystem;

/// The checkpoint's file name in the partition directory.
pub(crate) const CHECKPOINT: &str = "leader-epoch-checkpoint";
const VERSION: u32 = 0;

/// The largest leader epoch a partition accepts. The broker stamps every
/// stored batch with its epoch, or -1 before the first one, and the CRC does
/// not cover that field: keeping epochs below 2^24 - 1 means that any change
/// to one byte of a stamped -1 leaves the range that reads accept, so it is
/// found as damage (see `scan::check_header`).
pub const MAX_LEADER_EPOCH: u32 = 0x00FF_FFFE;

/// The epochs of one partition, oldest first, with their start offsets.
#[derive(Debug)]
pub(crate) struct LeaderEpochs {
    dir: PathBuf,
    entries: Vec<(u32, u64)>,
    /// The partition's file system, which the checkpoint is written through.
    fs: Arc<dyn FileSystem>,
}

impl LeaderEpochs {
    /// Reads the checkpoint in `dir` (none: no epoch yet). A checkpoint that
    /// does not parse is an error: guessing epochs could keep diverged data.
    pub fn open(fs: &Arc<dyn FileSystem>, dir: &Path) -> Result<LeaderEpochs> {
        let path = dir.join(CHECKPOINT);
        let entries = match std::fs::read_to_string(&path) {
            Ok(text) => parse(&text).ok_or_else(|| Error::Corrupt {
                path: path.clone(),
                position: 0,
                reason: "leader-epoch checkpoint does not parse".into(),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(e).at(&path),
        };
        Ok(LeaderEpochs {
            dir: dir.to_path_buf(),
            entries,
            fs: Arc::clone(fs),
        })
    }

    /// The latest epoch and where it started.
    pub fn latest(&self) -> Option<(u32, u64)> {
        self.entries.last().copied()
    }

    /// Records that `epoch` begins at `start_offset` (the log end when a
    /// leader takes over, or a replicated batch's base offset). The same
    /// epoch again changes nothing; an older one is refused.
    pub fn assign(&mut self, epoch: u32, start_offset: u64) -> Result<()> {
        if epoch > MAX_LEADER_EPOCH {
            return Err(Error::LeaderEpochOutOfRange {
                epoch,
                max: MAX_LEADER_EPOCH,
            });
        }
        match self.latest() {
            Some((latest, _)) if latest == epoch => return Ok(()),
            Some((latest, _)) if latest > epoch => {
                return Err(Error::StaleLeaderEpoch { epoch, latest });
            }
            _ => {}
        }
        self.entries.push((epoch, start_offset));
        self.persist()
    }

    /// The epoch of the batch holding `offset`.
    pub fn epoch_for(&self, offset: u64) -> Option<u32> {
        self.entries
            .iter()
            .rev()
            .find(|(_, start)| *start <= offset)
            .map(|(epoch, _)| *epoch)
    }

    /// Kafka's `OffsetsForLeaderEpoch`: the largest epoch at or below
    /// `epoch`, and the offset where it ends (the next epoch's start, or
    /// `log_end` for the latest). `None` if every epoch is newer.
    pub fn end_offset_for(&self, epoch: u32, log_end: u64) -> Option<(u32, u64)> {
        let i = self.entries.iter().rposition(|(e, _)| *e <= epoch)?;
        let end = self.entries.get(i + 1).map_or(log_end, |(_, start)| *start);
        Some((self.entries[i].0, end))
    }

    /// Forgets the epochs that start at or after `offset` (the log is being
    /// truncated there).
    pub fn truncate_from(&mut self, offset: u64) -> Result<()> {
        let keep = self.entries.partition_point(|(_, start)| *start < offset);
        if keep == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(keep);
        self.persist()
    }

    fn persist(&self) -> Result<()> {
        let mut text = format!("{VERSION}\n{}\n", self.entries.len());
        for (epoch, start) in &self.entries {
            text.push_str(&format!("{epoch} {start}\n"));
        }
        write_atomic_in(&*self.fs, &self.dir, CHECKPOINT, text.as_bytes())
    }
}

pub(crate) fn parse(text: &str) -> Option<Vec<(u32, u64)>> {
    let mut lines = text.lines();
    if lines.next()?.trim().parse::<u32>().ok()? != VERSION {
        return None;
    }
    let count: usize = lines.next()?.trim().parse().ok()?;
    let entries: Vec<(u32, u64)> = lines
        .map(|l| {
            let (e, s) = l.trim().split_once(' ')?;
            Some((e.parse().ok()?, s.parse().ok()?))
        })
        .collect::<Option<_>>()?;
    let increasing = entries
        .windows(2)
        .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
    let in_range = entries.iter().all(|(e, _)| *e <= MAX_LEADER_EPOCH);
    (entries.len() == count && increasing && in_range).then_some(entries)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::RealFs;

    fn open(dir: &Path) -> Result<LeaderEpochs> {
        LeaderEpochs::open(&(Arc::new(RealFs) as Arc<dyn FileSystem>), dir)
    }

    #[test]
    fn epochs_answer_kafkas_questions_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut e = open(dir.path()).unwrap();
        assert_eq!(e.latest(), None);
        assert_eq!(e.end_offset_for(0, 0), None);
        e.assign(1, 0).unwrap();
        e.assign(1, 5).unwrap();
        e.assign(3, 10).unwrap();
        assert!(matches!(
            e.assign(2, 12),
            Err(Error::StaleLeaderEpoch {
                epoch: 2,
                latest: 3
            })
        ));
        assert!(matches!(
            e.assign(MAX_LEADER_EPOCH + 1, 12),
            Err(Error::LeaderEpochOutOfRange { .. })
        ));
        assert_eq!(e.epoch_for(9), Some(1));
        assert_eq!(e.epoch_for(10), Some(3));
        assert_eq!(e.end_offset_for(1, 20), Some((1, 10)));
        assert_eq!(
            e.end_offset_for(2, 20),
            Some((1, 10)),
            "epoch 2 never led here"
        );
        assert_eq!(e.end_offset_for(3, 20), Some((3, 20)));
        let reopened = open(dir.path()).unwrap();
        assert_eq!(reopened.entries, [(1, 0), (3, 10)]);
        e.truncate_from(10).unwrap();
        assert_eq!(e.latest(), Some((1, 0)));
        assert_eq!(
            open(dir.path()).unwrap().entries,
            [(1, 0)],
            "truncation is persisted"
        );
    }

    #[test]
    fn a_damaged_checkpoint_is_an_error_not_a_guess() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(CHECKPOINT), "0\n2\n1 0\n").unwrap();
        assert!(matches!(open(dir.path()), Err(Error::Corrupt { .. })));
        std::fs::write(dir.path().join(CHECKPOINT), "0\n2\n3 0\n1 5\n").unwrap();
        assert!(open(dir.path()).is_err(), "epochs must grow");
        let too_large = format!("0\n1\n{} 0\n", MAX_LEADER_EPOCH + 1);
        std::fs::write(dir.path().join(CHECKPOINT), too_large).unwrap();
        assert!(
            open(dir.path()).is_err(),
            "no epoch a batch could not carry"
        );
    }
}
