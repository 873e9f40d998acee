//! Helpers shared by Brook's fuzz targets (`fuzz_targets/`, see
//! docs/fuzzing.md): scratch directories for the parsers that read files,
//! CRC repair so that mutated batches get past their checksum, the input
//! format that lays a whole partition directory out from one input, and the
//! checks every read of a partition must pass.
//!
//! Only public APIs of the Brook crates are used here, so this library
//! builds whatever the targets that need `fuzzing` re-exports do.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use brook_protocol::batch::{LOG_OVERHEAD, MIN_BATCH_LENGTH, batches};
use brook_storage::{AppendMode, Error, FlushPolicy, Partition, PartitionConfig};

/// A fresh directory under `std::env::temp_dir()` (`$TMPDIR`; `run.sh` points
/// it at /dev/shm when it can), unique to this process and call, removed
/// with everything in it on drop.
pub struct TempDir(PathBuf);

impl TempDir {
    /// Creates `$TMPDIR/brook-fuzz-<tag>-<pid>-<n>`.
    ///
    /// # Panics
    /// If the directory cannot be created: the machine, not the input, is
    /// at fault then, and every later input would fail the same way.
    pub fn new(tag: &str) -> TempDir {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path =
            std::env::temp_dir().join(format!("brook-fuzz-{tag}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        if let Err(e) = std::fs::create_dir_all(&path) {
            panic!(
                "cannot create the scratch directory {}: {e}",
                path.display()
            );
        }
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Byte offsets in a batch header (docs/format.md, "Record batch"), v1;
/// in v2 everything from the magic on sits 4 bytes later.
const BASE_OFFSET_AT: usize = 0;
const BATCH_LENGTH_AT: usize = 8;
/// A v2 batch's partition leader epoch (where a v1 batch has its magic).
const LEADER_EPOCH_AT: usize = 12;
const CRC_AT: usize = 13;
/// The CRC covers everything from here to the end of the batch.
const ATTRIBUTES_AT: usize = 17;
const LAST_OFFSET_DELTA_AT: usize = 19;
/// What v2's `partitionLeaderEpoch` moves the rest by.
const V2_SHIFT: usize = 4;

/// Walks the batches laid back to back from the start of `buf` (as far as
/// their `batch_length` fields say they fit) and rewrites each one's CRC
/// to match its bytes, so that a mutation inside a batch reaches the record
/// and index code instead of stopping at the checksum. With `renumber_from`,
/// also stamps consecutive base offsets from that offset and a v2 batch's
/// leader epoch -1, as the broker does (the CRC covers neither; storage
/// checks their continuity and range). Returns how many batches
/// it rewrote.
pub fn fix_batches(buf: &mut [u8], mut renumber_from: Option<u64>) -> usize {
    let mut pos = 0usize;
    let mut fixed = 0;
    while let Some(head) = buf.get(pos..pos + LOG_OVERHEAD) {
        let length = u32::from_be_bytes([
            head[BATCH_LENGTH_AT],
            head[BATCH_LENGTH_AT + 1],
            head[BATCH_LENGTH_AT + 2],
            head[BATCH_LENGTH_AT + 3],
        ]);
        let end = pos + LOG_OVERHEAD + length as usize;
        if length < MIN_BATCH_LENGTH || end > buf.len() {
            break;
        }
        let batch = &mut buf[pos..end];
        // A 1 at byte 12 is Brook's first format (CRC-32); else Kafka's v2 (CRC-32C).
        let v1 = batch.get(12) == Some(&1);
        let shift = if v1 { 0 } else { V2_SHIFT };
        if batch.len() < LAST_OFFSET_DELTA_AT + shift + 4 {
            break;
        }
        if let Some(next) = renumber_from.as_mut() {
            batch[BASE_OFFSET_AT..BASE_OFFSET_AT + 8].copy_from_slice(&next.to_be_bytes());
            if !v1 {
                // As the broker stamps it before the first leader epoch.
                batch[LEADER_EPOCH_AT..LEADER_EPOCH_AT + 4].copy_from_slice(&(-1i32).to_be_bytes());
            }
            let at = LAST_OFFSET_DELTA_AT + shift;
            let delta = u32::from_be_bytes([batch[at], batch[at + 1], batch[at + 2], batch[at + 3]]);
            *next = next.saturating_add(u64::from(delta)).saturating_add(1);
        }
        let crc = match v1 {
            true => crc32fast::hash(&batch[ATTRIBUTES_AT..]),
            false => crc32c::crc32c(&batch[ATTRIBUTES_AT + shift..]),
        };
        batch[CRC_AT + shift..CRC_AT + shift + 4].copy_from_slice(&crc.to_be_bytes());
        pos = end;
        fixed += 1;
    }
    fixed
}

/// What separates the sections of an input that holds several files.
/// (Also in `dict/partition.dict`, so that libFuzzer inserts it.)
pub const SEPARATOR: &[u8] = b"\n=brook-fuzz=\n";

/// Splits `data` at every [`SEPARATOR`]; always at least one section.
pub fn split_sections(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while let Some(i) = rest.windows(SEPARATOR.len()).position(|w| w == SEPARATOR) {
        out.push(&rest[..i]);
        rest = &rest[i + SEPARATOR.len()..];
    }
    out.push(rest);
    out
}

/// Input options of the partition-directory targets (`recovery`, `verify`),
/// bits of the input's first byte.
pub mod options {
    /// Rewrite the CRC of every batch in the `.log` sections ([`super::fix_batches`]).
    pub const FIX_CRCS: u8 = 1;
    /// With [`FIX_CRCS`]: also stamp consecutive base offsets from the segment's base.
    pub const RENUMBER: u8 = 2;
    /// `recovery`: append a batch after the open and read it back.
    pub const APPEND: u8 = 4;
    /// `recovery`: close the partition and open it again.
    pub const REOPEN: u8 = 8;
    /// `recovery`: `AppendMode::Mmap` instead of `AppendMode::Write`.
    pub const MMAP: u8 = 16;
    /// `recovery`: an offset-index entry every 64 bytes instead of 4096.
    pub const SMALL_INDEX_INTERVAL: u8 = 32;
    /// `verify`: `repair_partition` with `dry_run` (else it moves files and verify runs again).
    pub const DRY_RUN: u8 = 64;
}

/// Bytes of the fixed header of a partition-directory input.
pub const PARTITION_HEADER_LEN: usize = 11;

/// The files of a partition directory, in the order of the input's
/// sections (and of the bits of its presence mask). `None`: a segment
/// file, named from the header's base offsets.
const PARTITION_FILES: [Option<&str>; 11] = [
    None, // 0: first segment's .log
    None, // 1: its .index
    None, // 2: its .timeindex
    None, // 3: second segment's .log
    None, // 4: its .index
    None, // 5: its .timeindex
    Some("recovery-point"),
    Some("log-start-offset"),
    Some(".clean-shutdown"),
    Some("producer-state"),
    Some("leader-epoch-checkpoint"),
];

/// What [`lay_out_partition`] wrote.
#[derive(Debug, Clone, Copy)]
pub struct LaidOut {
    /// The input's option bits ([`options`]).
    pub options: u8,
    /// `.log` files written (segments a scan of the directory finds).
    pub segments: usize,
}

/// Writes the partition directory `dir` that `data` describes (created if
/// missing). The input format, the same for the `recovery` and `verify`
/// targets and their seeds:
///
/// - byte 0: option bits ([`options`]);
/// - bytes 1-2: presence mask (big-endian u16): bit `i` set writes file `i`;
/// - bytes 3-6: the first segment's base offset (big-endian u32);
/// - bytes 7-10: the second segment's base offset minus the first's
///   (big-endian u32; 0: no second segment);
/// - then the files' contents, in this order, separated by [`SEPARATOR`]:
///   first segment `.log`, `.index`, `.timeindex`, second segment `.log`,
///   `.index`, `.timeindex`, `recovery-point`, `log-start-offset`,
///   `.clean-shutdown`, `producer-state`, `leader-epoch-checkpoint`.
///   A file whose bit is set but whose section is missing is written empty.
///
/// Missing header bytes count as zeros. Base offsets stay below 2^33: the
/// names of segment files are not what these targets fuzz.
pub fn lay_out_partition(dir: &Path, data: &[u8]) -> std::io::Result<LaidOut> {
    let mut head = [0u8; PARTITION_HEADER_LEN];
    let n = data.len().min(PARTITION_HEADER_LEN);
    head[..n].copy_from_slice(&data[..n]);
    let opts = head[0];
    let present = u16::from_be_bytes([head[1], head[2]]);
    let base0 = u64::from(u32::from_be_bytes([head[3], head[4], head[5], head[6]]));
    let delta = u64::from(u32::from_be_bytes([head[7], head[8], head[9], head[10]]));
    let bases = [Some(base0), (delta > 0).then(|| base0 + delta)];
    let sections = split_sections(&data[n..]);
    std::fs::create_dir_all(dir)?;
    let mut segments = 0;
    for (i, fixed_name) in PARTITION_FILES.iter().enumerate() {
        if present & (1 << i) == 0 {
            continue;
        }
        let content = sections.get(i).copied().unwrap_or(&[]);
        let (name, content) = match fixed_name {
            Some(name) => (name.to_string(), content.to_vec()),
            None => {
                let Some(base) = bases[i / 3] else { continue };
                let ext = ["log", "index", "timeindex"][i % 3];
                let mut content = content.to_vec();
                if ext == "log" {
                    segments += 1;
                    if opts & options::FIX_CRCS != 0 {
                        let renumber = (opts & options::RENUMBER != 0).then_some(base);
                        fix_batches(&mut content, renumber);
                    }
                }
                (format!("{base:020}.{ext}"), content)
            }
        };
        std::fs::write(dir.join(name), content)?;
    }
    Ok(LaidOut {
        options: opts,
        segments,
    })
}

/// The settings the `recovery` target opens partitions with: small
/// segments, no retention, no background flush thread.
pub fn partition_config(opts: u8) -> PartitionConfig {
    PartitionConfig {
        segment_bytes: 1 << 20,
        segment_ms: 7 * 24 * 3600 * 1000,
        index_interval_bytes: match opts & options::SMALL_INDEX_INTERVAL != 0 {
            true => 64,
            false => 4096,
        },
        retention_ms: None,
        retention_bytes: None,
        max_batch_bytes: 256 << 10,
        flush: FlushPolicy::Never,
        append_mode: match opts & options::MMAP != 0 {
            true => AppendMode::Mmap,
            false => AppendMode::Write,
        },
        ..PartitionConfig::default()
    }
}

/// Reads all of `p` from its log start to its high watermark and checks
/// what storage promises every reader (docs/format.md, "Reads check every
/// batch" and "Recovery"):
/// - log start ≤ high watermark ≤ log end;
/// - every batch a read returns passes `Batch::parse` (length, magic,
///   attributes, CRC): no batch that fails its checks leaves as data;
/// - a read starts with the batch holding the offset asked for, its batches
///   follow on without a jump in offsets, and none is at or past the high
///   watermark.
///
/// Damaged ranges (`Error::Damaged`) are stepped over; any other error ends
/// the walk. Also looks offsets up by timestamp (no check: a record's own
/// offset is only as good as its CRC-covered bytes).
pub fn check_reads(p: &Partition) {
    let start = p.log_start_offset();
    let hw = p.high_watermark();
    let end = p.log_end_offset();
    assert!(
        start <= hw && hw <= end,
        "log start {start}, high watermark {hw}, log end {end} out of order"
    );
    let mut next = start;
    while next < hw {
        let read = match p.read(next, 1 << 20) {
            Ok(read) => read,
            Err(Error::Damaged { end_offset, .. }) if end_offset > next => {
                next = end_offset;
                continue;
            }
            Err(_) => break,
        };
        let mut expected: Option<u64> = None;
        for batch in batches(read.batches.clone()) {
            let batch = match batch {
                Ok(b) => b,
                Err(e) => {
                    panic!("a read at offset {next} returned a batch that fails its checks: {e}")
                }
            };
            let h = batch.header();
            match expected {
                None => assert!(
                    h.base_offset <= next && next < h.next_offset(),
                    "a read at offset {next} starts with the batch {}..{}",
                    h.base_offset,
                    h.next_offset()
                ),
                Some(e) => assert_eq!(
                    h.base_offset, e,
                    "a read at offset {next} returned batches with a jump in offsets"
                ),
            }
            assert!(
                h.base_offset < hw,
                "a read returned a batch at {} at or past the high watermark {hw}",
                h.base_offset
            );
            expected = Some(h.next_offset());
        }
        match expected {
            Some(n) if n > next => next = n,
            _ => break,
        }
    }
    for ts in [i64::MIN, 0, 1_700_000_000_000, i64::MAX] {
        let _ = p.offset_for_timestamp(ts);
    }
    let _ = (p.damaged_ranges(), p.recovery_report(), p.size_bytes());
}

/// Waits for storage's background jobs (the sync of a rolled segment) to
/// finish, so that none touches a directory the target is about to remove.
/// (Nothing else runs in the background with `FlushPolicy::Never`.)
pub fn settle() {
    brook_storage::drain_background_jobs();
}
