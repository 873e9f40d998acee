//! Retention: whole sealed segments deleted by age or total size.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::{LOG_START_OFFSET, Shared, lock};
use crate::error::Result;
use crate::file::{sync_dir, write_offset_file};
use crate::segment::Segment;

impl Shared {
    pub(super) fn enforce_retention(&self, now_ms: i64) -> Result<usize> {
        let _one_at_a_time = lock(&self.retention);
        let config = self.config();
        if !config.cleanup_policy.deletes() {
            return Ok(0);
        }
        let victims: Vec<Arc<Segment>> = {
            let map = self.segments.read().unwrap_or_else(|e| e.into_inner());
            let mut total: u64 = map.values().map(|s| s.size()).sum();
            let sealed = map.values().take(map.len().saturating_sub(1));
            let mut out = Vec::new();
            for seg in sealed {
                let too_old = config.retention_ms.is_some_and(|ms| {
                    seg.max_timestamp()
                        < now_ms.saturating_sub(i64::try_from(ms).unwrap_or(i64::MAX))
                });
                let too_big = config
                    .retention_bytes
                    .is_some_and(|max| total - seg.size() >= max);
                if !(too_old || too_big) {
                    break;
                }
                total -= seg.size();
                out.push(Arc::clone(seg));
            }
            out
        };
        let Some(last) = victims.last() else {
            return Ok(0);
        };
        let new_start = last.next_offset();
        // Persist first: a crash after this point deletes the rest on open.
        write_offset_file(&*self.fs, &self.dir, LOG_START_OFFSET, new_start)?;
        self.log_start.fetch_max(new_start, Ordering::AcqRel);
        {
            let mut map = self.segments.write().unwrap_or_else(|e| e.into_inner());
            for seg in &victims {
                map.remove(&seg.base_offset());
            }
        }
        for seg in &victims {
            seg.delete()?;
        }
        sync_dir(&*self.fs, &self.dir)?;
        tracing::info!(partition = %self.name, segments = victims.len(), log_start_offset = new_start, "retention deleted segments");
        Ok(victims.len())
    }
}
