//! What Kafka consumers put in a classic group's opaque fields: the
//! subscription each member joins with (its topics) and the assignment the
//! leader hands out (topic partitions), in Kafka's `ConsumerProtocol`
//! format, read with the `kafka-protocol` crate. The broker reads them only
//! to report a Kafka group the way it reports a gRPC one (lag of the topics
//! it subscribes to, members and their partitions); a client that fills the
//! fields with something else is reported with no topics.

use std::collections::BTreeMap;

use bytes::{Buf, Bytes};
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::Decodable;

/// The protocol type of Kafka consumers' groups (Connect's and others' differ).
pub const CONSUMER: &str = "consumer";

/// The version prefix and the rest, if the version is one the crate reads.
fn versioned(bytes: &Bytes, max: i16) -> Option<(i16, Bytes)> {
    let mut b = bytes.clone();
    if b.remaining() < 2 {
        return None;
    }
    let version = b.get_i16();
    // Newer versions start with the fields of the older ones (Kafka's
    // rule for this format), so they are read as the newest known.
    Some((version.clamp(0, max), b))
}

/// The topics of a member's subscription metadata.
pub fn subscription_topics(metadata: &Bytes) -> Vec<String> {
    let Some((version, mut b)) = versioned(metadata, 3) else {
        return Vec::new();
    };
    ConsumerProtocolSubscription::decode(&mut b, version)
        .map(|s| s.topics.iter().map(|t| t.to_string()).collect())
        .unwrap_or_default()
}

/// The partitions of a member's assignment, by topic.
pub fn assignment(assignment: &Bytes) -> BTreeMap<String, Vec<u32>> {
    let Some((version, mut b)) = versioned(assignment, 3) else {
        return BTreeMap::new();
    };
    let Ok(a) = ConsumerProtocolAssignment::decode(&mut b, version) else {
        return BTreeMap::new();
    };
    let mut out: BTreeMap<String, Vec<u32>> = BTreeMap::new();
    for tp in a.assigned_partitions {
        let ids = tp.partitions.iter().filter_map(|&p| u32::try_from(p).ok());
        out.entry(tp.topic.to_string()).or_default().extend(ids);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BufMut;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition;
    use kafka_protocol::protocol::{Encodable, StrBytes};

    fn with_version<T: Encodable>(version: i16, body: &T) -> Bytes {
        let mut b = bytes::BytesMut::new();
        b.put_i16(version);
        body.encode(&mut b, version).unwrap();
        b.freeze()
    }

    #[test]
    fn a_subscription_and_an_assignment_as_kafka_clients_write_them() {
        for version in 0..=3 {
            let s = ConsumerProtocolSubscription::default().with_topics(vec![
                StrBytes::from_static_str("orders"),
                StrBytes::from_static_str("payments"),
            ]);
            assert_eq!(
                subscription_topics(&with_version(version, &s)),
                ["orders", "payments"],
                "v{version}"
            );
            let a = ConsumerProtocolAssignment::default().with_assigned_partitions(vec![
                TopicPartition::default()
                    .with_topic(TopicName(StrBytes::from_static_str("orders")))
                    .with_partitions(vec![0, 2]),
            ]);
            assert_eq!(
                assignment(&with_version(version, &a)),
                BTreeMap::from([("orders".to_string(), vec![0, 2])]),
                "v{version}"
            );
        }
    }

    #[test]
    fn anything_else_is_no_topics() {
        for junk in [
            &b""[..],
            b"\x00",
            b"\x00\x00\xff\xff\xff\xff",
            b"\x7f\xffnoise",
        ] {
            let junk = Bytes::copy_from_slice(junk);
            assert!(subscription_topics(&junk).is_empty());
            assert!(assignment(&junk).is_empty());
        }
    }
}
