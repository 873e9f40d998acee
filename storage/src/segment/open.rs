//! Opening a segment's files: trusting them after a check, or scanning them
//! and rebuilding the indexes. The rules (docs/format.md, "Recovery"):
//! - a sealed segment is never cut or deleted, whatever is found in it;
//! - only the last segment's tail may be cut, and only past the recovery
//!   point, where nothing intact follows (unsynced bytes of an unclean stop);
//! - damage followed by intact batches, or below the recovery point, is kept
//!   on disk and recorded as a [`DamagedRange`]; offsets never go backwards.

use std::fs::File;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{ALLOC_MIN, Segment};
use crate::config::PartitionConfig;
use crate::damage::DamagedRange;
use crate::error::{Error, IoContext, Result};
use crate::file::{SegmentPaths, data_end, open_rw};
use crate::fs::FileSystem;
use crate::scan::{last_nonzero, scan};

/// What a segment is opened as.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role {
    /// A segment before the last one: read-only, and its offsets end where
    /// the next segment's begin.
    Sealed {
        /// Base offset of the next segment.
        next_base: u64,
    },
    /// The last segment, opened for appends.
    Active {
        /// Offsets below this were on disk before the stop: never cut.
        recovery_point: u64,
    },
}

/// What opening a segment found and did, for the partition's report.
#[derive(Debug, Default, Clone)]
pub(crate) struct OpenReport {
    /// Whether the segment was scanned (not trusted as it was).
    pub scanned: bool,
    /// Bytes of intact batches scanned.
    pub bytes_scanned: u64,
    /// Non-zero bytes cut from the tail.
    pub bytes_truncated: u64,
    /// The offset from which the cut bytes would have continued the log.
    pub truncated_from_offset: Option<u64>,
    /// Damaged ranges found (kept on disk).
    pub damaged: Vec<DamagedRange>,
    /// Whether a trusted segment's indexes failed their check (or were
    /// missing) and were rebuilt.
    pub indexes_rebuilt: bool,
    /// The last segment kept damage below the recovery point: the partition
    /// must seal it and go on in a new segment starting at this offset, so
    /// that no segment ever holds a jump in its offsets.
    pub roll_to: Option<u64>,
}

/// Entries in an index file, from its length (0 if it is missing).
fn entries(path: &Path, size: u64) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len() / size)
}

impl Segment {
    /// Opens an existing segment as `role`. `trusted` (after a clean
    /// shutdown, or below the recovery point) takes the file and indexes as
    /// they are after a check of the indexes and of the batches after the
    /// last index entry; anything else, or a failed check, is scanned and
    /// re-indexed under the rules above.
    pub fn open(
        fs: &Arc<dyn FileSystem>,
        dir: &Path,
        base_offset: u64,
        cfg: &PartitionConfig,
        role: Role,
        trusted: bool,
    ) -> Result<(Segment, OpenReport)> {
        let paths = SegmentPaths::new(dir, base_offset);
        let file = open_rw(&paths.log, false)?;
        let file_len = file.metadata().at(&paths.log)?.len();
        let active = matches!(role, Role::Active { .. });
        let capacity = file_len.max(cfg.segment_capacity());
        let before = (entries(&paths.index, 8), entries(&paths.timeindex, 12));
        let indexes_exist = paths.index.exists() && paths.timeindex.exists();
        let mut rebuild_reason = None;
        // An active segment's reserved space past its data reads as zeros:
        // ask the file system where the data ends rather than read it all.
        let data_end = if active {
            data_end(&file, 0, file_len)
        } else {
            file_len
        };
        if trusted {
            if indexes_exist {
                let seg = Self::with_file(
                    Arc::clone(fs),
                    SegmentPaths::new(dir, base_offset),
                    file.try_clone().at(&paths.log)?,
                    base_offset,
                    capacity,
                    file_len,
                    cfg,
                    true,
                    active,
                )?;
                match seg.verify_trusted(file_len, data_end, role) {
                    Ok(()) => {
                        if active {
                            seg.reserve_ahead(ALLOC_MIN)?;
                        }
                        return Ok((seg, OpenReport::default()));
                    }
                    Err(reason) => rebuild_reason = Some(reason),
                }
            } else {
                rebuild_reason = Some("an index file is missing".to_string());
            }
        }
        let seg = Self::with_file(
            Arc::clone(fs),
            paths,
            file,
            base_offset,
            capacity,
            file_len,
            cfg,
            false,
            active,
        )?;
        let mut report = seg.rescan(file_len, data_end, role)?;
        if let Some(reason) = rebuild_reason {
            report.indexes_rebuilt = true;
            tracing::warn!(
                segment = %seg.paths.log.display(),
                reason,
                offset_index_entries_before = before.0,
                offset_index_entries_after = seg.offset_index.len(),
                time_index_entries_before = before.1,
                time_index_entries_after = seg.time_index.len(),
                bytes_truncated = report.bytes_truncated,
                truncated_from_offset = ?report.truncated_from_offset,
                "segment failed its check on open; scanned it and rebuilt its indexes"
            );
        }
        Ok((seg, report))
    }

    /// Checks a trusted segment: consistent indexes, a time index that ends
    /// at the segment's end (sealing writes that entry), and intact batches
    /// from the last index entry to exactly the end of the file (for the
    /// active segment: to the end of its data, only zeros after it). Sets
    /// size, next offset and maximum timestamp from what it read.
    fn verify_trusted(&self, file_len: u64, data_end: u64, role: Role) -> Result<(), String> {
        let active = matches!(role, Role::Active { .. });
        let data_len = if active { data_end } else { file_len };
        if !self.offset_index.is_consistent(data_len) {
            return Err("offset index entries are out of order or point past the log".into());
        }
        let (rel, pos) = match self.offset_index.len() {
            0 => (0, 0),
            n => self.offset_index.entry(n - 1),
        };
        if data_end > 0 && self.time_index.len() == 0 && !active {
            return Err("the time index is empty".into());
        }
        let mut max_ts = self.time_index.last().map_or(i64::MIN, |(t, _)| t);
        // Replays the writer's indexing rule over the tail: a batch that would
        // have got an entry but has none means the index lost entries.
        let (mut since_index, mut missing_entry) = (0u64, false);
        let buf = self.bytes_at(0, data_len);
        let chain = scan(
            buf,
            u64::from(pos),
            self.base_offset + u64::from(rel),
            u64::MAX,
            |p, h| {
                missing_entry |= p != u64::from(pos) && since_index >= self.index_interval;
                since_index += h.total_len() as u64;
                max_ts = max_ts.max(h.max_timestamp);
            },
        );
        // Zeros after the data: the active segment's reserved space, or a
        // segment whose roll was interrupted before it was trimmed (its
        // offsets must then reach the next segment's).
        let zeros_after = last_nonzero(buf, chain.valid_end) == chain.valid_end
            && match role {
                Role::Active { .. } => true,
                Role::Sealed { next_base } => chain.next_offset == next_base,
            };
        let bad = chain
            .gaps
            .first()
            .map(|g| g.reason.clone())
            .or(chain.tail.clone().filter(|_| !zeros_after));
        if let Some(reason) = bad {
            return Err(format!("the log after the last index entry: {reason}"));
        }
        let size = chain.valid_end;
        if missing_entry {
            return Err("the offset index lacks entries at its end".into());
        }
        if let Role::Active { recovery_point } = role
            && chain.next_offset < recovery_point
        {
            return Err(format!(
                "the log ends at offset {} but offsets up to {recovery_point} were on disk",
                chain.next_offset
            ));
        }
        let next_rel = chain.next_offset - self.base_offset;
        let ends_at_end =
            size == 0 || self.time_index.last().map(|(_, o)| u64::from(o)) == Some(next_rel);
        if !self.time_index.is_consistent(next_rel) || !ends_at_end {
            return Err("the time index is inconsistent or lacks entries at its end".into());
        }
        self.size.store(size, Ordering::Release);
        self.next_offset.store(chain.next_offset, Ordering::Release);
        self.max_timestamp.store(max_ts, Ordering::Release);
        self.writer().bytes_since_index = size - u64::from(pos);
        Ok(())
    }

    /// Scans `[0, data_end)` (the file holds `file_len` bytes), publishing
    /// every intact batch and rebuilding the indexes, then applies the rules
    /// of this module to what follows the last intact batch.
    fn rescan(&self, file_len: u64, data_end: u64, role: Role) -> Result<OpenReport> {
        let limit = match role {
            Role::Sealed { next_base } => next_base,
            Role::Active { .. } => self.base_offset.saturating_add(u64::from(u32::MAX)),
        };
        let buf = self.bytes_at(0, data_end);
        let mut w = self.writer();
        let chain = scan(buf, 0, self.base_offset, limit, |pos, h| {
            self.publish(&mut w, pos, h)
        });
        let path = self.paths.log.clone();
        let mut damaged: Vec<DamagedRange> = chain
            .gaps
            .iter()
            .cloned()
            .map(|g| DamagedRange::from_gap(path.clone(), g))
            .collect();
        let nonzero_end = last_nonzero(buf, chain.valid_end);
        let tail_reason = chain
            .tail
            .clone()
            .unwrap_or_else(|| "no segment holds these offsets".into());
        let mut report = OpenReport {
            scanned: true,
            bytes_scanned: chain.valid_end,
            ..Default::default()
        };
        match role {
            Role::Sealed { next_base } => {
                if chain.next_offset > next_base {
                    return Err(Error::Corrupt {
                        path,
                        position: chain.valid_end,
                        reason: format!(
                            "the segment holds offsets up to {} but the next segment starts at {next_base}",
                            chain.next_offset - 1
                        ),
                    });
                }
                if chain.next_offset < next_base {
                    damaged.push(DamagedRange {
                        path: path.clone(),
                        position: chain.valid_end,
                        end_position: file_len,
                        first_offset: chain.next_offset,
                        end_offset: next_base,
                        reason: tail_reason,
                    });
                    self.size.store(file_len, Ordering::Release);
                } else if nonzero_end > chain.valid_end {
                    tracing::warn!(segment = %path.display(), position = chain.valid_end, bytes = file_len - chain.valid_end,
                        "bytes after the segment's last batch do not decode; kept in the file, never served");
                }
                self.next_offset.store(next_base, Ordering::Release);
                let max_ts = self.max_timestamp();
                if max_ts != i64::MIN {
                    let rel = u32::try_from(next_base - self.base_offset).unwrap_or(u32::MAX);
                    self.time_index.push_final(max_ts, rel);
                }
                self.offset_index.trim(&*self.fs)?;
                self.time_index.trim(&*self.fs)?;
                self.offset_index.sync(&*self.fs)?;
                self.time_index.sync(&*self.fs)?;
            }
            Role::Active { recovery_point } => {
                let file: &File = w
                    .file
                    .as_deref()
                    .ok_or_else(|| Error::Closed(path.display().to_string()))?;
                let keep_to = if chain.next_offset >= recovery_point {
                    // Past the recovery point, with nothing intact after it:
                    // the unsynced tail of an unclean stop. Cut it.
                    report.bytes_truncated = nonzero_end - chain.valid_end;
                    if report.bytes_truncated > 0 {
                        report.truncated_from_offset = Some(chain.next_offset);
                        tracing::warn!(segment = %path.display(), position = chain.valid_end, bytes_truncated = report.bytes_truncated,
                            from_offset = chain.next_offset, reason = tail_reason, "cut the unsynced tail of the log");
                    }
                    chain.valid_end
                } else {
                    // Offsets below the recovery point were on disk: keep the
                    // bytes, mark them, and go on after them.
                    damaged.push(DamagedRange {
                        path: path.clone(),
                        position: chain.valid_end,
                        end_position: nonzero_end,
                        first_offset: chain.next_offset,
                        end_offset: recovery_point,
                        reason: tail_reason,
                    });
                    self.size.store(nonzero_end, Ordering::Release);
                    self.next_offset.store(recovery_point, Ordering::Release);
                    report.roll_to = Some(recovery_point);
                    // Nothing is cut here; the roll seals the segment at
                    // the end of the kept bytes.
                    file_len
                };
                if keep_to < file_len {
                    // The cut range is reserved again on the next append and
                    // reads as zeros: no stale batch can reappear behind it.
                    self.fs.set_len(file, &path, keep_to).at(&path)?;
                    self.fs.sync_all(file, &path).at(&path)?;
                }
                w.allocated = keep_to;
            }
        }
        for d in &damaged {
            tracing::error!(segment = %path.display(), position = d.position, end_position = d.end_position,
                first_offset = d.first_offset, end_offset = d.end_offset, reason = %d.reason,
                "damaged range in the log: kept on disk; reads of these offsets answer DATA_LOSS");
        }
        report.damaged = damaged.clone();
        if !damaged.is_empty() {
            *self.damage.write().unwrap_or_else(|e| e.into_inner()) = damaged;
            self.has_damage.store(true, Ordering::Release);
        }
        drop(w);
        if matches!(role, Role::Active { .. }) {
            self.reserve_ahead(ALLOC_MIN)?;
        }
        Ok(report)
    }
}
