use std::io;
use std::path::{Path, PathBuf};

use brook_protocol::batch::DecodeError;
use thiserror::Error;

/// Everything the storage engine can fail with. Each variant is a decision a
/// caller can act on; the broker maps them to gRPC statuses in one place.
#[derive(Debug, Error)]
pub enum Error {
    /// A read asked for an offset outside `log_start_offset..=log_end_offset`.
    #[error(
        "offset {requested} is out of range: the partition holds offsets {log_start_offset}..{log_end_offset}"
    )]
    OffsetOutOfRange {
        /// The offset that was asked for.
        requested: u64,
        /// First offset still stored.
        log_start_offset: u64,
        /// The next offset to be assigned (reading at it returns nothing yet).
        log_end_offset: u64,
    },
    /// The batch is not well-formed.
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] DecodeError),
    /// A record without a key was sent to a compacted partition: compaction
    /// keeps the latest record of every key, so every record needs one.
    #[error(
        "{partition} is compacted (cleanup_policy {policy}): every record needs a key; record {index} of the batch has none"
    )]
    KeyRequired {
        /// The partition, `topic/partition`.
        partition: String,
        /// The partition's cleanup policy.
        policy: &'static str,
        /// The record's place in its batch, from 0.
        index: usize,
    },
    /// The batch is larger than the partition accepts.
    #[error("record batch of {size} bytes exceeds max_batch_bytes ({max})")]
    BatchTooLarge {
        /// Size of the rejected batch.
        size: usize,
        /// The configured limit.
        max: u32,
    },
    /// The disk has no room for the next segment; appends fail, reads go on.
    #[error("disk full while writing {path}")]
    DiskFull {
        /// The file that could not grow.
        path: PathBuf,
    },
    /// An I/O operation failed.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// The file or directory involved.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Stored bytes that were valid when written no longer decode (bit rot,
    /// outside damage): reads of that range fail instead of returning garbage.
    #[error("corrupt data in {path} at position {position}: {reason}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte position of the bad batch.
        position: u64,
        /// What did not decode.
        reason: String,
    },
    /// Stored bytes of a range of offsets fail their checks (CRC, length,
    /// offset continuity) or are missing: reads of that range fail with this,
    /// everything before and after it stays readable.
    #[error(
        "offsets {first_offset}..{end_offset} are damaged: {reason} ({path} bytes {position}..{end_position})"
    )]
    Damaged {
        /// The segment file.
        path: PathBuf,
        /// First byte of the damaged range in the file.
        position: u64,
        /// Byte after the damaged range.
        end_position: u64,
        /// First offset that cannot be read.
        first_offset: u64,
        /// First offset after the damage that can be read again.
        end_offset: u64,
        /// What failed.
        reason: String,
    },
    /// The partition could not be opened; it serves nothing until the problem
    /// is fixed and the broker restarted, while every other partition serves.
    #[error("partition {partition} is offline: {reason}")]
    Offline {
        /// Partition name (`topic/partition`).
        partition: String,
        /// Why it could not be opened.
        reason: String,
    },
    /// Another process holds the data directory's lock.
    #[error("data directory {} is locked by another process{}: {}", dir.display(), holder.map(|p| format!(" (pid {p})")).unwrap_or_default(), "two brokers must never share one data directory")]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// The holder's PID, where the lock file records it and that process lives.
        holder: Option<u32>,
    },
    /// The process or the system ran out of file descriptors.
    #[error("out of file descriptors opening {path} (raise `ulimit -n`)")]
    TooManyOpenFiles {
        /// The file that could not be opened or mapped.
        path: PathBuf,
    },
    /// A previous fsync failed. The page cache may have dropped the unwritten
    /// data, so the partition refuses further writes instead of pretending.
    #[error("partition {partition} stopped accepting writes after a failed flush: {reason}")]
    Poisoned {
        /// Partition name (`topic/partition`).
        partition: String,
        /// The original error.
        reason: String,
    },
    /// An idempotent producer's batch carries a negative sequence or epoch.
    #[error(
        "producer {producer_id} sent base_sequence {sequence} and epoch {epoch}: both must be >= 0"
    )]
    InvalidProducerFields {
        /// The producer.
        producer_id: i64,
        /// The epoch it sent.
        epoch: i16,
        /// The base sequence it sent.
        sequence: i32,
    },
    /// The partition has no state for this producer and its batch does not
    /// start at sequence 0 (Kafka's UNKNOWN_PRODUCER_ID): the producer must
    /// initialise again.
    #[error(
        "unknown producer {producer_id} must start at sequence 0, not {sequence} (call InitProducer again)"
    )]
    UnknownProducer {
        /// The producer.
        producer_id: i64,
        /// The sequence it sent.
        sequence: i32,
    },
    /// A newer epoch of this producer id has written to the partition: the
    /// sender is a zombie (Kafka's INVALID_PRODUCER_EPOCH).
    #[error("producer {producer_id} epoch {epoch} is fenced by epoch {current_epoch}")]
    ProducerFenced {
        /// The producer.
        producer_id: i64,
        /// The epoch it sent.
        epoch: i16,
        /// The epoch the partition knows.
        current_epoch: i16,
    },
    /// The batch's sequence does not follow the producer's last one and is
    /// not a remembered retry (Kafka's OUT_OF_ORDER_SEQUENCE_NUMBER).
    #[error(
        "producer {producer_id} sent sequence {received} but the partition expects {expected}: {reason}"
    )]
    OutOfOrderSequence {
        /// The producer.
        producer_id: i64,
        /// The sequence it sent.
        received: i32,
        /// The sequence the partition expects.
        expected: i32,
        /// Why it does not fit: a gap, or a retry too old to recognise.
        reason: &'static str,
    },
    /// A replicated batch does not continue the log where it ends.
    #[error("replicated batch starts at offset {received} but the log ends at {log_end_offset}")]
    OffsetMismatch {
        /// The batch's base offset.
        received: u64,
        /// The partition's log end offset.
        log_end_offset: u64,
    },
    /// A truncation below the high watermark: those records are committed.
    #[error(
        "cannot truncate to {offset}: offsets below the high watermark {high_watermark} are committed"
    )]
    TruncateBelowHighWatermark {
        /// The offset asked for.
        offset: u64,
        /// The partition's high watermark.
        high_watermark: u64,
    },
    /// A truncation offset inside a batch.
    #[error("offset {offset} is inside a batch (the batch before it ends at {batch_end})")]
    NotABatchBoundary {
        /// The offset asked for.
        offset: u64,
        /// Where the batches below it end.
        batch_end: u64,
    },
    /// A leader epoch older than one the partition has seen.
    #[error("leader epoch {epoch} is older than the partition's latest epoch {latest}")]
    StaleLeaderEpoch {
        /// The epoch given.
        epoch: u32,
        /// The latest epoch recorded.
        latest: u32,
    },
    /// A leader epoch above the largest a partition accepts.
    #[error("leader epoch {epoch} is above the largest accepted, {max}")]
    LeaderEpochOutOfRange {
        /// The epoch given.
        epoch: u32,
        /// The largest accepted.
        max: u32,
    },
    /// The partition was closed.
    #[error("partition {0} is closed")]
    Closed(String),
    /// The partition's topic was deleted: it serves nothing more.
    #[error("partition {0} was deleted with its topic")]
    Deleted(String),
    /// A configuration value is out of its allowed range.
    #[error("invalid configuration: {0}")]
    InvalidConfig(String),
    /// A topic with that name exists already.
    #[error("topic {0:?} already exists")]
    TopicExists(String),
    /// No topic has that name.
    #[error("unknown topic {0:?}")]
    UnknownTopic(String),
    /// The topic has no partition with that number.
    #[error("topic {topic:?} has no partition {partition} (it has {count})")]
    UnknownPartition {
        /// The topic.
        topic: String,
        /// The partition asked for.
        partition: u32,
        /// How many partitions the topic has.
        count: u32,
    },
    /// The topic name breaks the naming rules.
    #[error("invalid topic name {name:?}: {reason}")]
    InvalidTopicName {
        /// The rejected name.
        name: String,
        /// The rule it broke.
        reason: &'static str,
    },
}

/// Result type of the storage engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Attaches the path to an I/O error, turning "no space" into [`Error::DiskFull`].
pub(crate) trait IoContext<T> {
    fn at(self, path: &Path) -> Result<T>;
}

impl<T> IoContext<T> for io::Result<T> {
    fn at(self, path: &Path) -> Result<T> {
        self.map_err(|source| {
            let errno = source.raw_os_error();
            if errno == Some(libc::ENOSPC) || source.kind() == io::ErrorKind::StorageFull {
                Error::DiskFull {
                    path: path.to_path_buf(),
                }
            } else if errno == Some(libc::EMFILE) || errno == Some(libc::ENFILE) {
                Error::TooManyOpenFiles {
                    path: path.to_path_buf(),
                }
            } else {
                Error::Io {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })
    }
}
