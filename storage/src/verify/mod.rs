//! Offline checks of a data directory (`brook data verify`) and the one
//! repair that moves damage aside (`brook data repair`).
//!
//! Verification only reads: every batch of every segment (length, magic,
//! CRC, offset continuity), the continuity between segments, and every
//! index entry against the batches. It runs under the directory's shared
//! lock, so never beside a broker. Repair takes the exclusive lock and moves
//! whole damaged segments (and damaged indexes) into the partition's
//! `quarantine/` folder, saying what it moved; it never deletes anything.

use std::collections::HashMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use memmap2::Mmap;

use crate::error::{Error, IoContext, Result};
use crate::file::{SegmentPaths, list_segments, read_offset_file, sync_dir};
use crate::fs::RealFs;
use crate::lock::DirLock;
use crate::scan::{last_nonzero, scan};

mod repair;

pub use repair::{RepairReport, repair_partition};

/// Name of the folder, inside a partition's directory, that repair moves damaged files into.
pub const QUARANTINE: &str = "quarantine";

/// What kind of problem a [`Finding`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// Bytes inside a segment that hold no intact batch, with intact batches after them.
    DamagedBatches,
    /// Non-zero bytes after the last intact batch of a segment.
    DamagedTail,
    /// Offsets no segment holds (a segment ends before the next one starts).
    MissingOffsets,
    /// A segment holds offsets the next segment starts at.
    OverlappingSegments,
    /// An index file is missing or its entries disagree with the log.
    DamagedIndex,
    /// A file or directory cannot be read at all.
    Unreadable,
}

impl Problem {
    /// A short name for tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            Problem::DamagedBatches => "damaged-batches",
            Problem::DamagedTail => "damaged-tail",
            Problem::MissingOffsets => "missing-offsets",
            Problem::OverlappingSegments => "overlapping-segments",
            Problem::DamagedIndex => "damaged-index",
            Problem::Unreadable => "unreadable",
        }
    }

    /// Whether the segment's log data itself is affected (not only an index).
    fn in_log_data(self) -> bool {
        !matches!(self, Problem::DamagedIndex)
    }
}

/// One problem found by [`verify_dir`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Topic.
    pub topic: String,
    /// Partition, if the problem is inside one.
    pub partition: Option<u32>,
    /// The file (or directory) with the problem.
    pub file: PathBuf,
    /// What is wrong.
    pub problem: Problem,
    /// Byte range in the file, where it applies.
    pub bytes: Option<(u64, u64)>,
    /// Offsets affected (end exclusive), where known.
    pub offsets: Option<(u64, u64)>,
    /// Details: what the check found.
    pub detail: String,
}

/// What [`verify_dir`] checked and found.
#[derive(Debug, Clone, Default)]
pub struct VerifyReport {
    /// Partitions checked.
    pub partitions: u64,
    /// Segments checked.
    pub segments: u64,
    /// Intact batches read.
    pub batches: u64,
    /// Bytes of intact batches read.
    pub bytes: u64,
    /// Every problem found, in directory order.
    pub findings: Vec<Finding>,
}

/// Checks every partition under the data directory `root` without changing
/// anything, under the directory's shared lock.
pub fn verify_dir(root: &Path) -> Result<VerifyReport> {
    let _lock = DirLock::shared(root)?;
    let mut report = VerifyReport::default();
    for (topic, dir) in topic_dirs(root)? {
        let partitions = match partition_dirs(&dir) {
            Ok(p) => p,
            Err(e) => {
                report.findings.push(unreadable(&topic, None, &dir, e));
                continue;
            }
        };
        for (id, pdir) in partitions {
            verify_partition(&topic, id, &pdir, &mut report);
        }
    }
    Ok(report)
}

fn unreadable(topic: &str, partition: Option<u32>, path: &Path, e: Error) -> Finding {
    Finding {
        topic: topic.to_string(),
        partition,
        file: path.to_path_buf(),
        problem: Problem::Unreadable,
        bytes: None,
        offsets: None,
        detail: e.to_string(),
    }
}

/// Topic directories under the root (not staging, trash or group folders).
fn topic_dirs(root: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(root).at(root)? {
        let path = entry.at(root)?.path();
        let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
            continue;
        };
        if path.is_dir() && crate::log::validate_topic_name(name).is_ok() {
            out.push((name.to_string(), path.clone()));
        }
    }
    out.sort();
    Ok(out)
}

/// Numbered partition directories of a topic, in order.
fn partition_dirs(dir: &Path) -> Result<Vec<(u32, PathBuf)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).at(dir)? {
        let path = entry.at(dir)?.path();
        if let Some(id) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.parse::<u32>().ok())
            && path.is_dir()
        {
            out.push((id, path));
        }
    }
    out.sort();
    Ok(out)
}

/// A read-only mapping of a file (`None` for an empty one).
fn map(path: &Path) -> Result<Option<Mmap>> {
    let file = File::open(path).at(path)?;
    if file.metadata().at(path)?.len() == 0 {
        return Ok(None);
    }
    // SAFETY: read-only mapping of a file no other process writes (the
    // caller holds the directory's lock).
    unsafe { Mmap::map(&file) }.map(Some).at(path)
}

fn verify_partition(topic: &str, id: u32, dir: &Path, report: &mut VerifyReport) {
    report.partitions += 1;
    let bases = match list_segments(dir) {
        Ok(b) => b,
        Err(e) => {
            report.findings.push(unreadable(topic, Some(id), dir, e));
            return;
        }
    };
    let finding = |file: &Path, problem, bytes, offsets, detail: String| Finding {
        topic: topic.to_string(),
        partition: Some(id),
        file: file.to_path_buf(),
        problem,
        bytes,
        offsets,
        detail,
    };
    for (i, &base) in bases.iter().enumerate() {
        report.segments += 1;
        let paths = SegmentPaths::new(dir, base);
        let next_base = bases.get(i + 1).copied();
        let mapped = match map(&paths.log) {
            Ok(m) => m,
            Err(e) => {
                report
                    .findings
                    .push(unreadable(topic, Some(id), &paths.log, e));
                continue;
            }
        };
        let buf: &[u8] = mapped.as_deref().unwrap_or(&[]);
        let limit = next_base.unwrap_or(base.saturating_add(u64::from(u32::MAX)));
        let mut batch_at: HashMap<u64, (u64, u64, i64)> = HashMap::new();
        let chain = scan(buf, 0, base, limit, |pos, h| {
            batch_at.insert(pos, (h.base_offset, h.next_offset(), h.max_timestamp));
        });
        report.batches += batch_at.len() as u64;
        report.bytes += chain.valid_end;
        for gap in &chain.gaps {
            // A gap with no bytes is offsets missing, not bytes damaged.
            let problem = match gap.pos_start == gap.pos_end {
                true => Problem::MissingOffsets,
                false => Problem::DamagedBatches,
            };
            report.findings.push(finding(
                &paths.log,
                problem,
                Some((gap.pos_start, gap.pos_end)),
                Some((gap.first_offset, gap.end_offset)),
                gap.reason.clone(),
            ));
        }
        let garbage_end = last_nonzero(buf, chain.valid_end);
        if garbage_end > chain.valid_end {
            report.findings.push(finding(
                &paths.log,
                Problem::DamagedTail,
                Some((chain.valid_end, garbage_end)),
                next_base.map(|n| (chain.next_offset, n)),
                chain.tail.clone().unwrap_or_default(),
            ));
        } else if let Some(n) = next_base.filter(|n| chain.next_offset < *n) {
            report.findings.push(finding(
                &paths.log,
                Problem::MissingOffsets,
                None,
                Some((chain.next_offset, n)),
                "no segment holds these offsets".into(),
            ));
        }
        if let Some(n) = next_base.filter(|n| chain.next_offset > *n) {
            report.findings.push(finding(
                &paths.log,
                Problem::OverlappingSegments,
                None,
                Some((n, chain.next_offset)),
                format!("the next segment starts at {n}"),
            ));
        }
        for problem in check_indexes(&paths, base, &batch_at, chain.next_offset) {
            let file = if problem.0 {
                &paths.index
            } else {
                &paths.timeindex
            };
            report
                .findings
                .push(finding(file, Problem::DamagedIndex, None, None, problem.1));
        }
    }
}

/// Checks both index files against the batches found (position → (base,
/// next, max timestamp)); returns (is the offset index, what is wrong).
fn check_indexes(
    paths: &SegmentPaths,
    base: u64,
    batch_at: &HashMap<u64, (u64, u64, i64)>,
    next_offset: u64,
) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    match fs::read(&paths.index) {
        Err(e) => out.push((true, format!("cannot read the offset index: {e}"))),
        Ok(bytes) => {
            let mut prev: Option<(u32, u32)> = None;
            for (i, e) in bytes.chunks_exact(8).enumerate() {
                let rel = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
                let pos = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
                if (rel, pos) == (0, 0) {
                    break; // reserved space of an active segment
                }
                let ok = batch_at
                    .get(&u64::from(pos))
                    .is_some_and(|b| b.0 == base + u64::from(rel))
                    && prev.is_none_or(|p| rel > p.0 && pos > p.1);
                if !ok {
                    out.push((
                        true,
                        format!(
                            "entry {i} (offset {}, byte {pos}) does not point at that batch",
                            base + u64::from(rel)
                        ),
                    ));
                    break;
                }
                prev = Some((rel, pos));
            }
        }
    }
    match fs::read(&paths.timeindex) {
        Err(e) => out.push((false, format!("cannot read the time index: {e}"))),
        Ok(bytes) => {
            let mut batches: Vec<&(u64, u64, i64)> = batch_at.values().collect();
            batches.sort_by_key(|b| b.0);
            // newest[i]: the largest timestamp of batches[..=i].
            let newest: Vec<i64> = batches
                .iter()
                .scan(i64::MIN, |m, b| {
                    *m = (*m).max(b.2);
                    Some(*m)
                })
                .collect();
            let mut prev: Option<(i64, u32)> = None;
            for (i, e) in bytes.chunks_exact(12).enumerate() {
                let ts = i64::from_be_bytes(e[0..8].try_into().unwrap_or([0; 8]));
                let rel = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
                if rel == 0 {
                    break; // reserved space of an active segment
                }
                let end = base + u64::from(rel);
                // Every record before the entry's offset is no newer than its timestamp.
                let before = batches.partition_point(|b| b.0 < end);
                let covered = before == 0 || newest[before - 1] <= ts;
                let ordered = prev.is_none_or(|p| ts >= p.0 && rel >= p.1);
                if end > next_offset || !covered || !ordered {
                    out.push((
                        false,
                        format!("entry {i} (timestamp {ts}, offset {end}) disagrees with the log"),
                    ));
                    break;
                }
                prev = Some((ts, rel));
            }
        }
    }
    out
}
