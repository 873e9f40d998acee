//! Metadata: the one broker, and each topic's partitions (all led by it).
//! A topic that does not exist is created here when `--auto-create-topics`
//! is on and the client allows it, as Kafka's `auto.create.topics.enable`.

use std::sync::Arc;

use brook_storage::Topic;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::metadata_response::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::connection::Session;
use super::{NODE_ID, admin, errors};
use crate::auth::acl::{Operation, ResourceType};

/// Cluster id reported to clients (a single-node Brook is its own cluster).
const CLUSTER_ID: &str = "brook";

pub(super) async fn handle(s: &Session, req: MetadataRequest, version: i16) -> MetadataResponse {
    let broker = MetadataResponseBroker::default()
        .with_node_id(BrokerId(NODE_ID))
        .with_host(StrBytes::from_string(s.advertised.host.clone()))
        .with_port(s.advertised.port);
    let mut resp = MetadataResponse::default()
        .with_brokers(vec![broker])
        .with_controller_id(BrokerId(NODE_ID));
    if version >= 2 {
        resp.cluster_id = Some(StrBytes::from_static_str(CLUSTER_ID));
    }
    let log = match s.broker.log() {
        Ok(log) => Arc::clone(log),
        Err(e) => {
            // Still recovering: every topic asked for is not available yet.
            let names = req.topics.unwrap_or_default();
            resp.topics = names
                .into_iter()
                .filter_map(|t| t.name)
                .map(|n| topic_error(n, errors::code(&e)))
                .collect();
            return resp;
        }
    };
    // v0 asks for every topic with an empty list; later versions with null.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && version == 0,
    };
    let auth = &s.broker.auth;
    if all {
        resp.topics = log
            .topics()
            .iter()
            .filter(|t| {
                auth.may(
                    &s.caller,
                    Operation::Describe,
                    ResourceType::Topic,
                    t.name(),
                )
            })
            .map(|t| describe(t))
            .collect();
        return resp;
    }
    let mut topics = Vec::new();
    for name in req
        .topics
        .unwrap_or_default()
        .into_iter()
        .filter_map(|t| t.name)
    {
        let n = name.0.as_str();
        if let Err(e) = auth.authorize(&s.caller, Operation::Describe, ResourceType::Topic, n) {
            topics.push(topic_error(name, errors::code(&e)));
            continue;
        }
        let found = match log.topic(n) {
            Ok(t) => Ok(t),
            Err(_) if s.broker.config.kafka.auto_create_topics && req.allow_auto_topic_creation => {
                admin::auto_create(s, n).await
            }
            Err(e) => Err(e.into()),
        };
        topics.push(match found {
            Ok(t) => describe(&t),
            Err(e) => topic_error(name, errors::code(&e)),
        });
    }
    resp.topics = topics;
    resp
}

fn topic_error(name: TopicName, code: i16) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_name(Some(name))
        .with_error_code(code)
}

fn describe(t: &Topic) -> MetadataResponseTopic {
    let offline: Vec<u32> = t.offline_partitions().into_iter().map(|(p, _)| p).collect();
    let partitions = (0..t.partition_count())
        .map(|p| {
            let error = if offline.contains(&p) {
                ResponseError::KafkaStorageError.code()
            } else {
                0
            };
            MetadataResponsePartition::default()
                .with_error_code(error)
                .with_partition_index(p as i32)
                .with_leader_id(BrokerId(NODE_ID))
                .with_leader_epoch(0)
                .with_replica_nodes(vec![BrokerId(NODE_ID)])
                .with_isr_nodes(vec![BrokerId(NODE_ID)])
        })
        .collect();
    MetadataResponseTopic::default()
        .with_name(Some(TopicName(StrBytes::from_string(t.name().to_string()))))
        .with_partitions(partitions)
}
