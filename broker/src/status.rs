//! The one place where storage errors become gRPC statuses.

use brook_protocol::batch::DecodeError;
use brook_storage::Error;
use tonic::{Code, Status};

/// Maps a storage error to the status a client can act on; the message names
/// the thing that was wrong.
pub fn to_status(e: Error) -> Status {
    let code = match &e {
        Error::OffsetOutOfRange { .. } => Code::OutOfRange,
        Error::InvalidBatch(DecodeError::CrcMismatch { .. }) => Code::DataLoss,
        Error::InvalidBatch(_) | Error::BatchTooLarge { .. } => Code::InvalidArgument,
        Error::InvalidConfig(_) | Error::InvalidTopicName { .. } => Code::InvalidArgument,
        Error::Deleted(_) => Code::NotFound,
        Error::DiskFull { .. } | Error::TooManyOpenFiles { .. } => Code::ResourceExhausted,
        Error::TopicExists(_) => Code::AlreadyExists,
        Error::UnknownTopic(_) | Error::UnknownPartition { .. } => Code::NotFound,
        Error::Closed(_) | Error::Offline { .. } | Error::Locked { .. } => Code::Unavailable,
        Error::Corrupt { .. } | Error::Damaged { .. } => Code::DataLoss,
        Error::Io { .. } | Error::Poisoned { .. } => Code::Internal,
        Error::InvalidProducerFields { .. } | Error::NotABatchBoundary { .. } => {
            Code::InvalidArgument
        }
        Error::UnknownProducer { .. }
        | Error::ProducerFenced { .. }
        | Error::OutOfOrderSequence { .. }
        | Error::OffsetMismatch { .. }
        | Error::StaleLeaderEpoch { .. }
        | Error::TruncateBelowHighWatermark { .. } => Code::FailedPrecondition,
    };
    let reason = match &e {
        Error::UnknownProducer { .. } => Some("UNKNOWN_PRODUCER_ID"),
        Error::ProducerFenced { .. } => Some("PRODUCER_FENCED"),
        Error::OutOfOrderSequence { .. } => Some("OUT_OF_ORDER_SEQUENCE"),
        _ => None,
    };
    let mut status = Status::new(code, e.to_string());
    if let Some(reason) = reason {
        status = with_reason(status, reason);
    }
    // Machine-readable: a consumer can skip exactly the damaged offsets.
    if let Error::Damaged {
        first_offset,
        end_offset,
        ..
    } = &e
    {
        status = with_reason(status, "DAMAGED_RANGE");
        let md = status.metadata_mut();
        md.insert("brook-damaged-first-offset", (*first_offset).into());
        md.insert("brook-damaged-end-offset", (*end_offset).into());
    }
    status
}

/// `status` with the machine-readable `brook-reason` a client decides on.
pub fn with_reason(mut status: Status, reason: &'static str) -> Status {
    status.metadata_mut().insert(
        "brook-reason",
        tonic::metadata::MetadataValue::from_static(reason),
    );
    status
}

/// Shorthand for an INVALID_ARGUMENT status.
pub fn invalid(msg: impl Into<String>) -> Status {
    Status::invalid_argument(msg)
}
