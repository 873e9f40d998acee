//! The broker's one error type, and its one mapping to a gRPC status.
//!
//! Every refusal has a [`Reason`]: a constant name (`PRODUCER_FENCED`,
//! `TOPIC_NOT_FOUND`, ...) that fixes the status code and goes to the client
//! in the standard `google.rpc.ErrorInfo` detail (domain `brook`), with
//! metadata such as the topic and partition. Where waiting and retrying is
//! the right answer, a `google.rpc.RetryInfo` detail says how long to wait.
//! Clients decide on the reason, never on the message text, which is for
//! people. docs/broker.md lists every reason, its code and what a client
//! does about it (a unit test holds the two together).

use std::time::Duration;

use brook_protocol::batch::DecodeError;
use brook_storage::Error as StorageError;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `ErrorInfo.domain` of every Brook error.
pub const DOMAIN: &str = "brook";

macro_rules! reasons {
    ($($(#[doc = $doc:literal])* $name:ident = $text:literal, $code:ident;)*) => {
        /// Why a request was refused: the `ErrorInfo.reason` a client decides on.
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum Reason {
            $($(#[doc = $doc])* $name,)*
        }

        impl Reason {
            /// Every reason, in the order docs/broker.md lists them.
            pub const ALL: &[Reason] = &[$(Reason::$name,)*];

            /// The name on the wire (`ErrorInfo.reason`).
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Reason::$name => $text,)*
                }
            }

            /// The gRPC status code this reason is sent with.
            pub fn code(self) -> Code {
                match self {
                    $(Reason::$name => Code::$code,)*
                }
            }
        }
    };
}

reasons! {
    /// A field is missing, out of range or contradicts another.
    InvalidRequest = "INVALID_REQUEST", InvalidArgument;
    /// The request did not decode (bad protobuf, a string that is not UTF-8).
    MalformedRequest = "MALFORMED_REQUEST", InvalidArgument;
    /// A topic name breaks the naming rules.
    InvalidTopicName = "INVALID_TOPIC_NAME", InvalidArgument;
    /// A group name breaks the naming rules.
    InvalidGroupName = "INVALID_GROUP_NAME", InvalidArgument;
    /// A topic setting has a value the broker does not accept.
    InvalidConfig = "INVALID_CONFIG", InvalidArgument;
    /// A record batch is not valid (bad header, bad records, bad producer fields).
    InvalidRecords = "INVALID_RECORDS", InvalidArgument;
    /// A record batch is over the topic's max_batch_bytes.
    BatchTooLarge = "BATCH_TOO_LARGE", InvalidArgument;
    /// A request message is over --max-request-bytes.
    RequestTooLarge = "REQUEST_TOO_LARGE", ResourceExhausted;
    /// A record batch's CRC does not match its bytes: it was damaged in transit.
    CorruptRecords = "CORRUPT_RECORDS", DataLoss;
    /// No topic of that name (or it was deleted while the request ran).
    TopicNotFound = "TOPIC_NOT_FOUND", NotFound;
    /// The topic has no partition of that number.
    PartitionNotFound = "PARTITION_NOT_FOUND", NotFound;
    /// No group of that name has members or committed offsets.
    GroupNotFound = "GROUP_NOT_FOUND", NotFound;
    /// No queue group of that name.
    QueueNotFound = "QUEUE_NOT_FOUND", NotFound;
    /// A queue group of that name exists already, with other settings or on another topic.
    QueueAlreadyExists = "QUEUE_ALREADY_EXISTS", AlreadyExists;
    /// The queue group reads another topic than the one named.
    QueueTopicMismatch = "QUEUE_TOPIC_MISMATCH", FailedPrecondition;
    /// No routing rule of that name.
    RuleNotFound = "RULE_NOT_FOUND", NotFound;
    /// A routing rule of that name exists already, with another definition.
    RuleExists = "RULE_EXISTS", AlreadyExists;
    /// An event pattern that does not compile (the message names the place
    /// in the pattern; metadata `path`).
    InvalidPattern = "INVALID_PATTERN", InvalidArgument;
    /// No subject, version or schema of that name or id in the schema
    /// registry (metadata `registry_code`: Confluent's, e.g. 40401).
    SchemaNotFound = "SCHEMA_NOT_FOUND", NotFound;
    /// A schema that does not parse or check, or a subject name, version or
    /// compatibility level the registry does not accept.
    InvalidSchema = "INVALID_SCHEMA", InvalidArgument;
    /// A schema incompatible with its subject's versions under the
    /// subject's compatibility level; the message lists every problem.
    SchemaIncompatible = "SCHEMA_INCOMPATIBLE", FailedPrecondition;
    /// A record does not follow the subject its topic is bound to: nothing
    /// of the request was stored (metadata: `record_index`, `field`,
    /// `subject`, `schema_id`, `path`).
    SchemaValidationFailed = "SCHEMA_VALIDATION_FAILED", InvalidArgument;
    /// A topic of that name exists already.
    TopicAlreadyExists = "TOPIC_ALREADY_EXISTS", AlreadyExists;
    /// An offset outside the partition's log (metadata: the log's bounds).
    OffsetOutOfRange = "OFFSET_OUT_OF_RANGE", OutOfRange;
    /// A newer epoch of this producer id exists: this producer is a zombie.
    ProducerFenced = "PRODUCER_FENCED", FailedPrecondition;
    /// A batch's sequence number is not the next one (metadata: the expected one).
    OutOfOrderSequence = "OUT_OF_ORDER_SEQUENCE", FailedPrecondition;
    /// The broker no longer has state for this producer id (expired or
    /// removed by retention): re-initialise with InitProducer.
    UnknownProducer = "UNKNOWN_PRODUCER", FailedPrecondition;
    /// A producer id this broker never handed out: call InitProducer.
    InvalidProducerIdMapping = "INVALID_PRODUCER_ID_MAPPING", FailedPrecondition;
    /// A group member's generation is not the group's current one.
    StaleGeneration = "STALE_GENERATION", FailedPrecondition;
    /// The member id is not in the group (it left or was removed).
    UnknownMember = "UNKNOWN_MEMBER", FailedPrecondition;
    /// The group has members, and the request needs it empty.
    GroupNotEmpty = "GROUP_NOT_EMPTY", FailedPrecondition;
    /// A member asked for an assignment strategy other than the group's.
    InconsistentStrategy = "INCONSISTENT_STRATEGY", FailedPrecondition;
    /// A replica request does not fit the log (offset, epoch or truncation point).
    ReplicaMismatch = "REPLICA_MISMATCH", FailedPrecondition;
    /// The broker did not answer within --request-timeout-ms.
    RequestTimeout = "REQUEST_TIMEOUT", DeadlineExceeded;
    /// The disk under the data directory is full.
    DiskFull = "DISK_FULL", ResourceExhausted;
    /// The broker ran out of file descriptors.
    TooManyOpenFiles = "TOO_MANY_OPEN_FILES", ResourceExhausted;
    /// The broker is still recovering its log after a start: retry shortly.
    BrokerStarting = "BROKER_STARTING", Unavailable;
    /// The broker is shutting down: retry against it once it is back.
    BrokerStopping = "BROKER_STOPPING", Unavailable;
    /// The partition could not be opened (see the broker's log and `brook verify`).
    PartitionOffline = "PARTITION_OFFLINE", Unavailable;
    /// Records of the partition are damaged on disk (metadata: the range).
    DamagedRange = "DAMAGED_RANGE", DataLoss;
    /// A file of the partition is damaged where no range can be named.
    CorruptStorage = "CORRUPT_STORAGE", DataLoss;
    /// The call carries no credentials, or ones the broker does not know.
    NotAuthenticated = "NOT_AUTHENTICATED", Unauthenticated;
    /// The caller's principal is not allowed this operation on this resource.
    NotAuthorized = "NOT_AUTHORIZED", PermissionDenied;
    /// The broker failed (an I/O error, a failed task): see its log.
    Internal = "INTERNAL", Internal;
}

/// A refused request: a reason, a message naming what was wrong, and the
/// metadata a client acts on.
#[derive(Debug, Clone)]
pub struct ApiError {
    reason: Reason,
    message: String,
    metadata: Vec<(&'static str, String)>,
    retry_after: Option<Duration>,
}

/// A result whose error is an [`ApiError`].
pub type ApiResult<T> = Result<T, ApiError>;

impl ApiError {
    /// An error for `reason` with a message for people.
    pub fn new(reason: Reason, message: impl Into<String>) -> ApiError {
        let retry_after = match reason {
            Reason::BrokerStarting | Reason::BrokerStopping => Some(Duration::from_secs(1)),
            _ => None,
        };
        ApiError {
            reason,
            message: message.into(),
            metadata: Vec::new(),
            retry_after,
        }
    }

    /// INVALID_REQUEST: a field is missing or out of range.
    pub fn invalid(message: impl Into<String>) -> ApiError {
        ApiError::new(Reason::InvalidRequest, message)
    }

    /// INTERNAL: the broker failed.
    pub fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(Reason::Internal, message)
    }

    /// Adds `key: value` to the ErrorInfo metadata.
    pub fn with(mut self, key: &'static str, value: impl ToString) -> ApiError {
        self.metadata.push((key, value.to_string()));
        self
    }

    /// Adds a RetryInfo detail: retrying after `delay` is right.
    pub fn retry_after(mut self, delay: Duration) -> ApiError {
        self.retry_after = Some(delay);
        self
    }

    /// Why the request was refused.
    pub fn reason(&self) -> Reason {
        self.reason
    }

    /// The status code it is sent with.
    pub fn code(&self) -> Code {
        self.reason.code()
    }

    /// The message, for people.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The gRPC status: the reason's code, the message, and the details.
    pub fn into_status(self) -> Status {
        let metadata = self
            .metadata
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect::<std::collections::HashMap<_, _>>();
        let mut details = ErrorDetails::with_error_info(self.reason.as_str(), DOMAIN, metadata);
        if let Some(delay) = self.retry_after {
            details.set_retry_info(Some(delay));
        }
        Status::with_error_details(self.reason.code(), self.message, details)
    }
}

/// Runs a storage call on a blocking thread (it may fsync or touch many
/// files); a failed task is INTERNAL.
pub async fn on_blocking_thread<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StorageError> + Send + 'static,
) -> ApiResult<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::internal(format!("storage task failed: {e}")))?
        .map_err(ApiError::from)
}

/// `text` cut to at most `max_bytes` at a character boundary, marked with
/// `…` when cut: for messages that quote what a client sent, which may be
/// as large as it likes.
pub(crate) fn shortened(mut text: String, max_bytes: usize) -> String {
    if text.len() > max_bytes {
        let mut at = max_bytes;
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.truncate(at);
        text.push('…');
    }
    text
}

/// Runs `f` on this thread, handed over to blocking work first when it is
/// a worker of a multi-thread runtime (its other tasks move to other
/// workers): for CPU-heavy or disk-touching work a request cannot hand off.
pub fn in_place_blocking<T>(f: impl FnOnce() -> T) -> T {
    let multi_thread = tokio::runtime::Handle::try_current()
        .is_ok_and(|h| h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread);
    match multi_thread {
        true => tokio::task::block_in_place(f),
        false => f(),
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.reason.as_str(), self.message)
    }
}

impl From<ApiError> for Status {
    fn from(e: ApiError) -> Status {
        e.into_status()
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> ApiError {
        use StorageError as E;
        let reason = match &e {
            E::OffsetOutOfRange { .. } => Reason::OffsetOutOfRange,
            E::InvalidBatch(DecodeError::CrcMismatch { .. }) => Reason::CorruptRecords,
            E::InvalidBatch(_) | E::InvalidProducerFields { .. } | E::KeyRequired { .. } => {
                Reason::InvalidRecords
            }
            E::BatchTooLarge { .. } => Reason::BatchTooLarge,
            E::InvalidConfig(_) => Reason::InvalidConfig,
            E::InvalidTopicName { .. } => Reason::InvalidTopicName,
            E::Deleted(_) | E::UnknownTopic(_) => Reason::TopicNotFound,
            E::UnknownPartition { .. } => Reason::PartitionNotFound,
            E::TopicExists(_) => Reason::TopicAlreadyExists,
            E::DiskFull { .. } => Reason::DiskFull,
            E::TooManyOpenFiles { .. } => Reason::TooManyOpenFiles,
            E::Closed(_) => Reason::BrokerStopping,
            E::Offline { .. } | E::Locked { .. } => Reason::PartitionOffline,
            E::Damaged { .. } => Reason::DamagedRange,
            E::Corrupt { .. } => Reason::CorruptStorage,
            E::Io { .. } | E::Poisoned { .. } => Reason::Internal,
            E::UnknownProducer { .. } => Reason::UnknownProducer,
            E::ProducerFenced { .. } => Reason::ProducerFenced,
            E::OutOfOrderSequence { .. } => Reason::OutOfOrderSequence,
            E::OffsetMismatch { .. }
            | E::StaleLeaderEpoch { .. }
            | E::LeaderEpochOutOfRange { .. }
            | E::TruncateBelowHighWatermark { .. }
            | E::NotABatchBoundary { .. } => Reason::ReplicaMismatch,
        };
        let err = ApiError::new(reason, e.to_string());
        match e {
            E::OffsetOutOfRange {
                log_start_offset,
                log_end_offset,
                ..
            } => err
                .with("log_start_offset", log_start_offset)
                .with("log_end_offset", log_end_offset),
            E::Damaged {
                first_offset,
                end_offset,
                ..
            } => err
                .with("first_offset", first_offset)
                .with("end_offset", end_offset),
            E::UnknownTopic(topic) | E::TopicExists(topic) => err.with("topic", topic),
            // A deleted partition is named "topic/partition".
            E::Deleted(name) => match name.rsplit_once('/') {
                Some((topic, partition)) => err.with("topic", topic).with("partition", partition),
                None => err.with("topic", name),
            },
            E::UnknownPartition {
                topic, partition, ..
            } => err.with("topic", topic).with("partition", partition),
            E::KeyRequired { index, .. } => err.with("record_index", index).with("field", "key"),
            E::OutOfOrderSequence {
                producer_id,
                expected,
                ..
            } => err
                .with("producer_id", producer_id)
                .with("expected_sequence", expected),
            E::ProducerFenced { producer_id, .. } | E::UnknownProducer { producer_id, .. } => {
                err.with("producer_id", producer_id)
            }
            _ => err,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_carries_the_reason_its_code_and_the_metadata() {
        let status: Status = ApiError::new(Reason::TopicNotFound, "unknown topic \"x\"")
            .with("topic", "x")
            .into();
        assert_eq!(status.code(), Code::NotFound);
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(
            (info.reason.as_str(), info.domain.as_str()),
            ("TOPIC_NOT_FOUND", DOMAIN)
        );
        assert_eq!(info.metadata["topic"], "x");
        assert!(status.get_details_retry_info().is_none());
    }

    #[test]
    fn waiting_for_the_broker_comes_with_retry_info() {
        let status: Status = ApiError::new(Reason::BrokerStarting, "recovering").into();
        assert_eq!(status.code(), Code::Unavailable);
        let retry = status.get_details_retry_info().expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(Duration::from_secs(1)));
    }

    #[test]
    fn reasons_are_unique_and_well_formed() {
        let mut seen = std::collections::BTreeSet::new();
        for r in Reason::ALL {
            let s = r.as_str();
            assert!(seen.insert(s), "{s} twice");
            assert!(
                s.len() <= 63 && s.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'),
                "{s}: ErrorInfo reasons are [A-Z0-9_]{{1,63}}"
            );
        }
    }

    #[test]
    fn docs_list_every_reason_with_its_code() {
        let docs = include_str!("../../docs/broker.md");
        for r in Reason::ALL {
            let row = format!(
                "| `{}` | {} |",
                r.as_str(),
                crate::request::code_name(r.code())
            );
            assert!(docs.contains(&row), "docs/broker.md lacks the row {row}");
        }
    }

    #[test]
    fn storage_errors_keep_their_machine_readable_parts() {
        let status: Status = ApiError::from(StorageError::OffsetOutOfRange {
            requested: 9,
            log_start_offset: 2,
            log_end_offset: 5,
        })
        .into();
        assert_eq!(status.code(), Code::OutOfRange);
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "OFFSET_OUT_OF_RANGE");
        assert_eq!(
            (
                info.metadata["log_start_offset"].as_str(),
                info.metadata["log_end_offset"].as_str()
            ),
            ("2", "5")
        );
    }
}
