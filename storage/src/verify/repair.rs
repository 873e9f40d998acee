//! `brook data repair`: moves a partition's damaged segments and indexes
//! into its `quarantine/` folder, never deleting anything.

use std::fs;
use std::path::{Path, PathBuf};

use super::*;

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
