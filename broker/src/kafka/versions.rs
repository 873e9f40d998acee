//! The APIs this listener answers and the versions of each, as ApiVersions
//! tells a client. Each range is what the handler implements, within what
//! the `kafka-protocol` crate decodes (`XRequest::VERSIONS`); the newest
//! versions that address topics by id (Fetch 13+, Produce 13, DeleteTopics
//! 6) are left out: Brook names topics.

use kafka_protocol::messages::api_versions_response::ApiVersion;
use kafka_protocol::messages::*;
#[cfg(test)]
use kafka_protocol::protocol::Message;
use kafka_protocol::protocol::VersionRange;

/// Every API answered, with its lowest and highest version.
pub(crate) const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 3, 10),
    (ApiKey::Fetch, 4, 12),
    (ApiKey::ListOffsets, 1, 6),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 4),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 5),
    (ApiKey::InitProducerId, 0, 4),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 9),
    (ApiKey::OffsetFetch, 1, 9),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    // v0 is followed by a raw SASL frame, v1 by SaslAuthenticate requests.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
];

/// The API's name as Kafka spells it (`Produce`, `JoinGroup`), for metric
/// labels: made once per API, not per request.
pub(crate) fn name(key: ApiKey) -> &'static str {
    static NAMES: std::sync::LazyLock<Vec<(ApiKey, &'static str)>> =
        std::sync::LazyLock::new(|| {
            ApiKey::iter()
                .map(|k| (k, &*format!("{k:?}").leak()))
                .collect()
        });
    NAMES
        .iter()
        .find(|(k, _)| *k == key)
        .map_or("unknown", |(_, n)| n)
}

/// The versions of `key` this listener answers, if it answers it at all.
pub(crate) fn supported(key: ApiKey) -> Option<VersionRange> {
    SUPPORTED
        .iter()
        .find(|(k, _, _)| *k == key)
        .map(|&(_, min, max)| VersionRange { min, max })
}

/// The lowest version listed for `key` in ApiVersions, where it differs
/// from what is answered: Produce is listed from v0 because librdkafka
/// before 2.8 sends gzip, snappy and lz4 batches uncompressed to a broker
/// whose Produce starts later (librdkafka issue #4956; Debian's kcat has
/// 2.0). Produce v0-2 carry the old message-set formats, which Brook does
/// not store: a client that really sends one is disconnected.
fn listed_min(key: ApiKey, min: i16) -> i16 {
    match key {
        ApiKey::Produce => 0,
        _ => min,
    }
}

/// The `api_keys` of an ApiVersions response.
pub(crate) fn api_versions() -> Vec<ApiVersion> {
    SUPPORTED
        .iter()
        .map(|&(key, min, max)| {
            let min = listed_min(key, min);
            ApiVersion::default()
                .with_api_key(key as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

/// The crate's range for a request type (used by the test that keeps
/// [`SUPPORTED`] inside what the crate decodes).
#[cfg(test)]
fn decodable(key: ApiKey) -> VersionRange {
    match key {
        ApiKey::Produce => ProduceRequest::VERSIONS,
        ApiKey::Fetch => FetchRequest::VERSIONS,
        ApiKey::ListOffsets => ListOffsetsRequest::VERSIONS,
        ApiKey::Metadata => MetadataRequest::VERSIONS,
        ApiKey::ApiVersions => ApiVersionsRequest::VERSIONS,
        ApiKey::CreateTopics => CreateTopicsRequest::VERSIONS,
        ApiKey::DeleteTopics => DeleteTopicsRequest::VERSIONS,
        ApiKey::InitProducerId => InitProducerIdRequest::VERSIONS,
        ApiKey::DescribeConfigs => DescribeConfigsRequest::VERSIONS,
        ApiKey::CreatePartitions => CreatePartitionsRequest::VERSIONS,
        ApiKey::FindCoordinator => FindCoordinatorRequest::VERSIONS,
        ApiKey::JoinGroup => JoinGroupRequest::VERSIONS,
        ApiKey::SyncGroup => SyncGroupRequest::VERSIONS,
        ApiKey::Heartbeat => HeartbeatRequest::VERSIONS,
        ApiKey::LeaveGroup => LeaveGroupRequest::VERSIONS,
        ApiKey::OffsetCommit => OffsetCommitRequest::VERSIONS,
        ApiKey::OffsetFetch => OffsetFetchRequest::VERSIONS,
        ApiKey::ListGroups => ListGroupsRequest::VERSIONS,
        ApiKey::DescribeGroups => DescribeGroupsRequest::VERSIONS,
        ApiKey::DeleteGroups => DeleteGroupsRequest::VERSIONS,
        ApiKey::SaslHandshake => SaslHandshakeRequest::VERSIONS,
        ApiKey::SaslAuthenticate => SaslAuthenticateRequest::VERSIONS,
        other => panic!("{other:?} has no entry here"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_offered_version_decodes() {
        for &(key, min, max) in SUPPORTED {
            let crate_range = decodable(key);
            assert!(
                crate_range.min <= min && max <= crate_range.max && min <= max,
                "{key:?} {min}..={max} outside the crate's {crate_range}"
            );
        }
    }
}
