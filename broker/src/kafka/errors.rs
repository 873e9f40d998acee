//! The broker's refusal reasons as Kafka error codes: what a Kafka client
//! retries, refreshes metadata for, or gives up on.

use kafka_protocol::ResponseError;

use crate::error::{ApiError, Reason};

/// The Kafka error code for `e`.
pub(crate) fn code(e: &ApiError) -> i16 {
    use ResponseError as K;
    let k = match e.reason() {
        Reason::InvalidRequest | Reason::MalformedRequest => K::InvalidRequest,
        Reason::InvalidTopicName => K::InvalidTopicException,
        Reason::InvalidGroupName => K::InvalidGroupId,
        Reason::InvalidConfig => K::InvalidConfig,
        Reason::InvalidRecords | Reason::SchemaValidationFailed => K::InvalidRecord,
        Reason::BatchTooLarge => K::MessageTooLarge,
        Reason::RequestTooLarge => K::RecordListTooLarge,
        Reason::CorruptRecords => K::CorruptMessage,
        Reason::TopicNotFound | Reason::PartitionNotFound => K::UnknownTopicOrPartition,
        Reason::GroupNotFound => K::GroupIdNotFound,
        Reason::TopicAlreadyExists => K::TopicAlreadyExists,
        Reason::OffsetOutOfRange => K::OffsetOutOfRange,
        Reason::ProducerFenced => K::InvalidProducerEpoch,
        Reason::OutOfOrderSequence => K::OutOfOrderSequenceNumber,
        Reason::UnknownProducer => K::UnknownProducerId,
        Reason::InvalidProducerIdMapping => K::InvalidProducerIdMapping,
        Reason::StaleGeneration => K::IllegalGeneration,
        Reason::UnknownMember => K::UnknownMemberId,
        Reason::GroupNotEmpty => K::NonEmptyGroup,
        Reason::InconsistentStrategy => K::InconsistentGroupProtocol,
        Reason::RequestTimeout => K::RequestTimedOut,
        // Retriable: the client waits and tries again.
        Reason::BrokerStarting => K::LeaderNotAvailable,
        Reason::BrokerStopping => K::NotLeaderOrFollower,
        Reason::DiskFull
        | Reason::TooManyOpenFiles
        | Reason::PartitionOffline
        | Reason::DamagedRange
        | Reason::CorruptStorage => K::KafkaStorageError,
        Reason::NotAuthenticated => K::SaslAuthenticationFailed,
        Reason::NotAuthorized => K::TopicAuthorizationFailed,
        // Kafka's own APIs never reach the schema registry.
        Reason::SchemaNotFound | Reason::InvalidSchema | Reason::SchemaIncompatible => {
            K::UnknownServerError
        }
        Reason::QueueNotFound
        | Reason::QueueAlreadyExists
        | Reason::QueueTopicMismatch
        | Reason::RuleNotFound
        | Reason::RuleExists
        | Reason::InvalidPattern
        | Reason::ReplicaMismatch
        | Reason::Internal => K::UnknownServerError,
    };
    k.code()
}

/// The Kafka error code for `e` in the answer of a group coordinator's API
/// (JoinGroup, OffsetCommit, ...): a broker starting or stopping is a
/// coordinator loading or not available, which Kafka's clients wait out or
/// answer by finding the coordinator again, where a partition leader's
/// codes would end a commit with an unexpected error.
pub(crate) fn coordinator_code(e: &ApiError) -> i16 {
    match e.reason() {
        Reason::BrokerStarting => ResponseError::CoordinatorLoadInProgress.code(),
        Reason::BrokerStopping => ResponseError::CoordinatorNotAvailable.code(),
        _ => code(e),
    }
}

/// Kafka's error code for a refusal, with the broker's message (for
/// responses that carry one).
pub(crate) fn with_message(e: &ApiError) -> (i16, Option<kafka_protocol::protocol::StrBytes>) {
    (
        code(e),
        Some(kafka_protocol::protocol::StrBytes::from_string(
            e.message().to_string(),
        )),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_starting_or_stopping_broker_is_a_coordinator_loading_or_unavailable() {
        let e = |r| ApiError::new(r, "test");
        let pairs = [
            (
                Reason::BrokerStarting,
                ResponseError::LeaderNotAvailable,
                ResponseError::CoordinatorLoadInProgress,
            ),
            (
                Reason::BrokerStopping,
                ResponseError::NotLeaderOrFollower,
                ResponseError::CoordinatorNotAvailable,
            ),
            (
                Reason::TopicNotFound,
                ResponseError::UnknownTopicOrPartition,
                ResponseError::UnknownTopicOrPartition,
            ),
        ];
        for (reason, partition, coordinator) in pairs {
            assert_eq!(code(&e(reason)), partition.code(), "{reason:?}");
            assert_eq!(
                coordinator_code(&e(reason)),
                coordinator.code(),
                "{reason:?}"
            );
        }
    }
}
