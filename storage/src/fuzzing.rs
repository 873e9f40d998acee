//! Entry points for the fuzz targets in `fuzz/` (cargo-fuzz; see
//! docs/fuzzing.md): the parsers of storage's small files and the walk over
//! a segment's bytes, which are private to this crate. Thin wrappers, no
//! logic of their own. Not a stable API: only the fuzz targets call these.

use std::path::Path;

use brook_protocol::batch::BatchHeader;

use crate::Result;
use crate::log::TopicConfig;

pub use crate::scan::{Chain, Gap};

/// `<dir>/topic.meta`, read as `Log::open` reads it.
pub fn read_topic_meta(dir: &Path) -> Result<TopicConfig> {
    crate::log::read_meta(dir)
}

/// Writes `<dir>/topic.meta` as `Log::create_topic` does.
pub fn write_topic_meta(dir: &Path, config: &TopicConfig) -> Result<()> {
    crate::log::write_meta(&crate::fs::RealFs, dir, config)
}

/// A file holding one decimal number (`recovery-point`,
/// `log-start-offset`, `.clean-shutdown`), read as a partition's open reads it.
pub fn read_offset_file(path: &Path) -> Option<u64> {
    crate::file::read_offset_file(path)
}

/// A `producer-state` snapshot's text, decoded as `Partition::open` loads
/// it: the offset it is valid to, and the snapshot this build writes for
/// the state decoded. `None` if it does not pass its checks.
pub fn decode_producer_state(text: &str) -> Option<(u64, String)> {
    crate::producers::decode(text).map(|(state, valid_to)| (valid_to, state.encode(valid_to)))
}

/// A `leader-epoch-checkpoint`'s text: its `(epoch, start offset)`
/// entries, or `None` if it does not parse.
pub fn parse_leader_epochs(text: &str) -> Option<Vec<(u32, u64)>> {
    crate::epochs::parse(text)
}

/// The walk over a segment's bytes that recovery, reads and verify share.
pub fn scan(
    buf: &[u8],
    from: u64,
    expected: u64,
    limit: u64,
    visit: impl FnMut(u64, &BatchHeader),
) -> Chain {
    crate::scan::scan(buf, from, expected, limit, visit)
}

/// The next intact batch after damage.
pub fn resync(buf: &[u8], from: u64, min_offset: u64, limit: u64) -> Option<(u64, BatchHeader)> {
    crate::scan::resync(buf, from, min_offset, limit)
}

/// The whole check of a stored batch at the start of `buf`.
pub fn check_batch(buf: &[u8], expected: u64) -> std::result::Result<BatchHeader, String> {
    crate::scan::check_batch(buf, expected)
}

/// The end of the last non-zero byte in `buf[from..]` (or `from`).
pub fn last_nonzero(buf: &[u8], from: u64) -> u64 {
    crate::scan::last_nonzero(buf, from)
}
