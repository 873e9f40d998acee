//! Brook's storage engine: a partitioned, crash-safe, append-only log of
//! record batches in segment files read through memory maps.
//!
//! # Layout
//! - [`Partition`]: one partition's log — append, read, flush (group
//!   commit), recovery on open, retention. The type most callers use.
//! - [`Log`] and [`Topic`]: the topics under one data directory, each a set of partitions.
//! - [`PartitionConfig`], [`FlushPolicy`], [`AppendMode`], [`CleanupPolicy`]: settings.
//! - [`Error`]: every failure, as a variant a caller can act on.
//!
//! - [`DirLock`]: the data directory's lock (one writer process at a time).
//! - [`DamagedRange`]: stored bytes that fail their checks, contained.
//!
//! - [`FileSystem`] and [`RealFs`] (module `fs`): the file-system seam every
//!   write, sync, allocation, truncation and rename goes through, handed in
//!   with [`LogOptions::fs`] or [`Partition::open_with`]; with the
//!   `fault-injection` feature, `FaultyFs` scripts EIO, ENOSPC and short
//!   writes on it for tests.
//!
//! Internals: `segment` (one `.log` file with its `.index` and
//! `.timeindex`), `scan` (the checks of stored batches and resync after
//! damage), `index` (the two mmap'd sparse indexes), `file` (the
//! sequences built on the seam: whole writes, atomic replacement, directory
//! sync), `flusher` (the background flush thread), `resident` (keeps
//! pages that reads touched from staying in the process's RSS).
//!
//! The batch format is `brook_protocol::batch`; the on-disk layout is
//! written down in `docs/format.md`. Nothing here knows about gRPC.
#![warn(missing_docs)]
// Input from the network or the disk must never reach an unwrap: the
// compiler keeps that rule in non-test code (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod compaction;
mod config;
mod damage;
mod epochs;
mod error;
mod file;
mod flusher;
mod fs;
mod index;
mod lock;
mod log;
mod partition;
mod producers;
mod resident;
mod scan;
mod segment;
pub mod verify;

/// Entry points for the fuzz targets in `fuzz/` (docs/fuzzing.md); not a stable API.
#[doc(hidden)]
pub mod fuzzing;

pub use config::{AppendMode, CleanupPolicy, FlushPolicy, PartitionConfig, Ratio};
pub use damage::DamagedRange;
pub use epochs::MAX_LEADER_EPOCH;
pub use error::{Error, Result};
pub use file::write_atomic;
pub use flusher::drain as drain_background_jobs;
#[cfg(feature = "fault-injection")]
pub use fs::{FaultyFs, FsOp};
pub use fs::{FileSystem, RealFs};
pub use lock::{DirLock, LOCK_FILE};
pub use log::{
    Log, LogOptions, MAX_PARTITIONS, MAX_TOPIC_NAME, OfflinePartition, OnOpenError, Topic,
    TopicConfig, validate_topic_name,
};
pub use partition::{
    AppendInfo, CleanOptions, CleanStats, CleaningStatus, Partition, ReadResult, RecoveryReport,
    now_ms, partition_flushes,
};
pub use producers::CACHED_BATCHES;
pub use segment::damage_found_by_reads;
