//! Keeps the pages that reads touched from piling up in the process's RSS.
//!
//! Reads are zero-copy views of the segment mappings, and every page a
//! consumer reads stays mapped, counted in the broker's resident set, for as
//! long as the mapping lives: reading a 1 GiB log made a 1 GiB RSS although
//! those pages are just page cache. After every [`TRIM_EVERY`] bytes read,
//! the mappings' pages are dropped from the page tables (`MADV_DONTNEED`).
//! On a shared file mapping that loses nothing: the data stays in the page
//! cache (dirty pages stay dirty), and the next access maps it again, so a
//! view still being sent reads the same bytes, at the cost of a minor fault.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use memmap2::{MmapRaw, UncheckedAdvice};

/// Bytes read through the mappings between two trims: the bound on what
/// reads add to RSS.
pub const TRIM_EVERY: u64 = 16 << 20;

static READ_SINCE_TRIM: AtomicU64 = AtomicU64::new(0);
static MAPS: Mutex<Vec<Weak<MmapRaw>>> = Mutex::new(Vec::new());

/// Tracks a segment mapping so that trims cover it.
pub(crate) fn register(map: &Arc<MmapRaw>) {
    let mut maps = MAPS.lock().unwrap_or_else(|e| e.into_inner());
    // Forget the mappings of deleted or closed segments as new ones come.
    if maps.len() >= 64 && maps.len().is_power_of_two() {
        maps.retain(|m| m.strong_count() > 0);
    }
    maps.push(Arc::downgrade(map));
}

/// Counts `bytes` handed out by a read; trims once enough were.
pub(crate) fn note_read(bytes: usize) {
    let total = READ_SINCE_TRIM.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
    if total >= TRIM_EVERY
        && READ_SINCE_TRIM
            .compare_exchange(total, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        trim();
    }
}

/// Drops every tracked mapping's pages from the page tables.
fn trim() {
    let live: Vec<Arc<MmapRaw>> = {
        let mut maps = MAPS.lock().unwrap_or_else(|e| e.into_inner());
        maps.retain(|m| m.strong_count() > 0);
        maps.iter().filter_map(Weak::upgrade).collect()
    };
    for map in live {
        // SAFETY: the mappings are MAP_SHARED views of files: MADV_DONTNEED
        // only unmaps their pages, which the next access maps again from the
        // page cache with the same contents (dirty pages are kept dirty). No
        // data, and no reference into the mapping, is invalidated.
        if let Err(e) = unsafe { map.unchecked_advise(UncheckedAdvice::DontNeed) } {
            tracing::debug!(error = %e, "madvise(DONTNEED) on a segment mapping failed");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Resident bytes of the mapping that starts at `addr`, from /proc/self/smaps.
    fn rss_of(addr: usize) -> u64 {
        let smaps = std::fs::read_to_string("/proc/self/smaps").unwrap();
        let mut lines = smaps.lines();
        while let Some(line) = lines.next() {
            let start = line.split('-').next().unwrap_or("");
            if usize::from_str_radix(start, 16).ok() == Some(addr) {
                for l in lines.by_ref() {
                    if let Some(kb) = l.strip_prefix("Rss:") {
                        return kb
                            .trim()
                            .trim_end_matches(" kB")
                            .trim()
                            .parse::<u64>()
                            .unwrap()
                            * 1024;
                    }
                }
            }
        }
        panic!("no mapping at {addr:#x}");
    }

    #[test]
    fn pages_touched_by_reads_do_not_stay_resident() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("segment");
        let len: u64 = 96 << 20;
        std::fs::write(&path, vec![7u8; len as usize]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let map = Arc::new(
            memmap2::MmapOptions::new()
                .map_raw_read_only(&file)
                .unwrap(),
        );
        register(&map);
        let chunk = 1 << 20;
        let mut sum = 0u64;
        for start in (0..len as usize).step_by(chunk) {
            // SAFETY: in bounds of the mapping; the file is not modified.
            let bytes = unsafe { std::slice::from_raw_parts(map.as_ptr().add(start), chunk) };
            sum += bytes
                .iter()
                .step_by(4096)
                .map(|&b| u64::from(b))
                .sum::<u64>();
            note_read(chunk);
        }
        assert_eq!(sum, 7 * len / 4096, "every page was read");
        let rss = rss_of(map.as_ptr() as usize);
        assert!(
            rss <= TRIM_EVERY + chunk as u64,
            "{} MiB of the 96 MiB read stayed resident",
            rss >> 20
        );
        // The data is still there after a trim.
        trim();
        // SAFETY: in bounds.
        assert_eq!(unsafe { *map.as_ptr().add(len as usize - 1) }, 7);
    }
}
