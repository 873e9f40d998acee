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

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};

use memmap2::{MmapRaw, UncheckedAdvice};

/// Bytes read through the mappings between two trims: the bound on what
/// reads add to RSS.
pub const TRIM_EVERY: u64 = 16 << 20;

static READ_SINCE_TRIM: AtomicU64 = AtomicU64::new(0);
static MAPS: Mutex<Vec<Tracked>> = Mutex::new(Vec::new());

/// A tracked mapping and whether it was read since the last trim: a trim
/// visits only those, so that thousands of idle partitions cost it nothing.
struct Tracked {
    map: Weak<MmapRaw>,
    read: Arc<AtomicBool>,
}

/// Set by reads of one mapping: [`note_read`] marks it for the next trim.
pub(crate) type ReadMark = Arc<AtomicBool>;

/// Tracks a segment mapping so that trims cover it; reads of it pass the
/// mark returned to [`note_read`].
pub(crate) fn register(map: &Arc<MmapRaw>) -> ReadMark {
    let read = ReadMark::default();
    let mut maps = MAPS.lock().unwrap_or_else(|e| e.into_inner());
    // Forget the mappings of deleted or closed segments as new ones come.
    if maps.len() >= 64 && maps.len().is_power_of_two() {
        maps.retain(|m| m.map.strong_count() > 0);
    }
    maps.push(Tracked {
        map: Arc::downgrade(map),
        read: Arc::clone(&read),
    });
    read
}

/// Counts `bytes` handed out by a read of the mapping `mark` belongs to;
/// trims once enough were.
pub(crate) fn note_read(mark: &ReadMark, bytes: usize) {
    mark.store(true, Ordering::Relaxed);
    let total = READ_SINCE_TRIM.fetch_add(bytes as u64, Ordering::Relaxed) + bytes as u64;
    if total >= TRIM_EVERY
        && READ_SINCE_TRIM
            .compare_exchange(total, 0, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        trim();
    }
}

/// Drops the pages of every tracked mapping read since the last trim from
/// the page tables.
fn trim() {
    let live: Vec<Arc<MmapRaw>> = {
        let mut maps = MAPS.lock().unwrap_or_else(|e| e.into_inner());
        maps.retain(|m| m.map.strong_count() > 0);
        maps.iter()
            .filter(|m| m.read.swap(false, Ordering::Relaxed))
            .filter_map(|m| m.map.upgrade())
            .collect()
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
        let mark = register(&map);
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
            note_read(&mark, chunk);
        }
        assert_eq!(sum, 7 * len / 4096, "every page was read");
        let rss = rss_of(map.as_ptr() as usize);
        assert!(
            rss <= TRIM_EVERY + chunk as u64,
            "{} MiB of the 96 MiB read stayed resident",
            rss >> 20
        );
        // The data is still there after a trim.
        mark.store(true, Ordering::Relaxed);
        trim();
        // SAFETY: in bounds.
        assert_eq!(unsafe { *map.as_ptr().add(len as usize - 1) }, 7);
    }

    /// A trim visits only mappings read since the last one: a mapping whose
    /// pages are resident but were not read through `note_read` keeps them.
    #[test]
    fn a_trim_leaves_mappings_not_read_since_the_last_one() {
        let dir = tempfile::tempdir().unwrap();
        let map_of = |name: &str, len: usize| {
            let path = dir.path().join(name);
            std::fs::write(&path, vec![1u8; len]).unwrap();
            let file = std::fs::File::open(&path).unwrap();
            Arc::new(
                memmap2::MmapOptions::new()
                    .map_raw_read_only(&file)
                    .unwrap(),
            )
        };
        let idle = map_of("idle", 8 << 20);
        let busy = map_of("busy", 1 << 20);
        let _idle_mark = register(&idle);
        let busy_mark = register(&busy);
        let touch = |map: &MmapRaw, len: usize| {
            // SAFETY: in bounds of the mapping; the file is not modified.
            let bytes = unsafe { std::slice::from_raw_parts(map.as_ptr(), len) };
            bytes
                .iter()
                .step_by(4096)
                .map(|&b| u64::from(b))
                .sum::<u64>()
        };
        assert_eq!(touch(&idle, 8 << 20), 2048);
        let resident_before = rss_of(idle.as_ptr() as usize);
        assert!(resident_before >= 4 << 20, "{resident_before}");
        for _ in 0..(TRIM_EVERY >> 20) + 1 {
            touch(&busy, 1 << 20);
            note_read(&busy_mark, 1 << 20);
        }
        assert_eq!(rss_of(idle.as_ptr() as usize), resident_before);
    }
}
