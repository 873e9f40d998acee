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

/// What [`repair_partition`] moved.
#[derive(Debug, Clone, Default)]
pub struct RepairReport {
    /// One line per file moved (or that would be, with `dry_run`).
    pub moved: Vec<String>,
    /// Problems left as they were (e.g. missing offsets: nothing to move).
    pub left: Vec<Finding>,
}

/// Moves the damaged segments and indexes of partition `topic/partition`
/// under `root` into its `quarantine/` folder, under the directory's
/// exclusive lock (no broker may run). The broker then serves the offsets
/// of a moved segment as missing (DATA_LOSS), never reuses them, and
/// rebuilds a moved index. With `dry_run`, only says what it would move.
pub fn repair_partition(
    root: &Path,
    topic: &str,
    partition: u32,
    dry_run: bool,
) -> Result<RepairReport> {
    let _lock = DirLock::exclusive(root)?;
    let dir = root.join(topic).join(partition.to_string());
    if !dir.is_dir() {
        return Err(Error::UnknownPartition {
            topic: topic.to_string(),
            partition,
            count: partition_dirs(&root.join(topic)).map_or(0, |p| p.len() as u32),
        });
    }
    let mut found = VerifyReport::default();
    verify_partition(topic, partition, &dir, &mut found);
    let mut report = RepairReport::default();
    let quarantine = dir.join(QUARANTINE);
    let bases = list_segments(&dir)?;
    let last = bases.last().copied();
    let mut moved_last_end = None;
    for base in &bases {
        let paths = SegmentPaths::new(&dir, *base);
        let here: Vec<&Finding> = found
            .findings
            .iter()
            .filter(|f| f.file == paths.log || f.file == paths.index || f.file == paths.timeindex)
            .collect();
        // Not worth moving a segment for: offsets no segment holds (nothing
        // to move), a last segment's damaged tail (the unsynced tail of an
        // unclean stop, which the broker cuts past the recovery point), and
        // junk after a sealed segment's complete offsets (never served).
        let is_last = Some(*base) == last;
        let data = here
            .iter()
            .filter(|f| f.problem.in_log_data() && f.file == paths.log)
            .filter(|f| match f.problem {
                Problem::MissingOffsets => false,
                Problem::DamagedTail => !is_last && f.offsets.is_some_and(|(a, b)| a < b),
                _ => true,
            })
            .collect::<Vec<_>>();
        let why = |fs: &[&Finding]| {
            fs.iter()
                .map(|f| f.detail.clone())
                .collect::<Vec<_>>()
                .join("; ")
        };
        let whole_segment = !data.is_empty();
        let files: Vec<&PathBuf> = if whole_segment {
            if is_last {
                moved_last_end = Some(claimed_end(&dir, &paths.log, *base));
            }
            vec![&paths.log, &paths.index, &paths.timeindex]
        } else {
            here.iter()
                .filter(|f| f.problem == Problem::DamagedIndex && f.file.exists())
                .map(|f| &f.file)
                .collect()
        };
        for file in files {
            if !file.exists() {
                continue;
            }
            let target = free_name(&quarantine, file);
            report.moved.push(format!(
                "{} -> {}: {}",
                file.display(),
                target.display(),
                why(&here)
            ));
            if !dry_run {
                fs::create_dir_all(&quarantine).at(&quarantine)?;
                fs::rename(file, &target).at(file)?;
            }
        }
        if whole_segment {
            // An empty segment in its place: its offsets then read as missing
            // (DATA_LOSS), even for the first segment, whose offsets would
            // otherwise fall below the log start (OUT_OF_RANGE).
            report.moved.push(format!(
                "left an empty {} in its place: its offsets answer DATA_LOSS",
                paths.log.display()
            ));
            if !dry_run {
                for p in [&paths.log, &paths.index, &paths.timeindex] {
                    File::create(p).at(p)?;
                }
            }
        }
    }
    if let Some(end) = moved_last_end {
        // The moved segment held the newest offsets: an empty segment at its
        // end keeps them from being handed out again.
        report.moved.push(format!(
            "created an empty segment at offset {end} so that offsets below it are never reused"
        ));
        if !dry_run {
            let paths = SegmentPaths::new(&dir, end);
            for p in [&paths.log, &paths.index, &paths.timeindex] {
                File::create(p).at(p)?;
            }
            let _ = fs::remove_file(dir.join(".clean-shutdown"));
        }
    }
    if !dry_run && !report.moved.is_empty() {
        sync_dir(&RealFs, &dir)?;
        if quarantine.is_dir() {
            sync_dir(&RealFs, &quarantine)?;
        }
    }
    report.left = found
        .findings
        .into_iter()
        .filter(|f| f.problem == Problem::MissingOffsets)
        .collect();
    Ok(report)
}

/// The offset after the last one a damaged last segment may have handed
/// out: the most of what its intact batches show, its clean-shutdown record
/// and the recovery point.
fn claimed_end(dir: &Path, log: &Path, base: u64) -> u64 {
    let scanned = map(log)
        .ok()
        .map(|m| {
            let buf: &[u8] = m.as_deref().unwrap_or(&[]);
            scan(
                buf,
                0,
                base,
                base.saturating_add(u64::from(u32::MAX)),
                |_, _| {},
            )
            .next_offset
        })
        .unwrap_or(base);
    [
        Some(scanned),
        read_offset_file(&dir.join(".clean-shutdown")),
        read_offset_file(&dir.join("recovery-point")),
    ]
    .into_iter()
    .flatten()
    .max()
    .unwrap_or(base)
    .max(base + 1)
}

/// `quarantine/<name>`, or `<name>.1`, `.2`, ... if an earlier repair left one:
/// evidence is never overwritten.
fn free_name(quarantine: &Path, file: &Path) -> PathBuf {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    let mut target = quarantine.join(&*name);
    let mut n = 0;
    while target.exists() {
        n += 1;
        target = quarantine.join(format!("{name}.{n}"));
    }
    target
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
