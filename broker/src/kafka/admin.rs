//! Topic administration from Kafka clients and tools: CreateTopics,
//! DeleteTopics, CreatePartitions, DescribeConfigs, and the auto-creation
//! that Metadata may ask for. Kafka's config names map onto Brook's topic
//! settings (docs/kafka.md has the table); a config Brook does not have is
//! refused with INVALID_CONFIG naming it, never ignored.

use std::sync::Arc;
use std::time::Duration;

use brook_storage::{CleanupPolicy, FlushPolicy, PartitionConfig, Ratio, Topic, TopicConfig};
use kafka_protocol::ResponseError;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::describe_configs_response::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::connection::Session;
use super::errors;
use crate::auth::acl::{Operation, ResourceType};
use crate::error::{ApiError, ApiResult, Reason};

/// DescribeConfigs' resource types.
const RESOURCE_TOPIC: i8 = 2;
const RESOURCE_BROKER: i8 = 4;
/// DescribeConfigs' config sources.
const SOURCE_TOPIC: i8 = 1;
const SOURCE_DEFAULT: i8 = 5;

fn bad_config(message: String) -> ApiError {
    ApiError::new(Reason::InvalidConfig, message)
}

/// Brook's topic settings with Kafka's topic configs applied.
pub(super) fn apply_configs<'a>(
    mut c: PartitionConfig,
    configs: impl IntoIterator<Item = (&'a str, Option<&'a str>)>,
) -> ApiResult<PartitionConfig> {
    for (name, value) in configs {
        let Some(value) = value else { continue };
        let number = || {
            value
                .parse::<i64>()
                .map_err(|_| bad_config(format!("{name} must be a number, got {value:?}")))
        };
        let limit = |v: i64| match v {
            -1 => Ok(None),
            v if v >= 0 => Ok(Some(v as u64)),
            v => Err(bad_config(format!("{name} must be -1 or >= 0, got {v}"))),
        };
        let positive = |v: i64| {
            u64::try_from(v)
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| bad_config(format!("{name} must be > 0, got {v}")))
        };
        match name {
            "retention.ms" => c.retention_ms = limit(number()?)?,
            "retention.bytes" => c.retention_bytes = limit(number()?)?,
            "segment.bytes" => c.segment_bytes = positive(number()?)?,
            "segment.ms" => c.segment_ms = positive(number()?)?,
            "max.message.bytes" => {
                c.max_batch_bytes = u32::try_from(positive(number()?)?)
                    .map_err(|_| bad_config(format!("{name} is too large: {value}")))?
            }
            "flush.ms" => {
                c.flush = FlushPolicy::Interval(Duration::from_millis(positive(number()?)?))
            }
            "flush.messages" if value == "1" => c.flush = FlushPolicy::Always,
            "cleanup.policy" => {
                c.cleanup_policy = CleanupPolicy::from_name(value).ok_or_else(|| {
                    bad_config(format!(
                        "cleanup.policy must be delete, compact or compact,delete, got {value:?}"
                    ))
                })?
            }
            "delete.retention.ms" => {
                c.delete_retention_ms = u64::try_from(number()?)
                    .map_err(|_| bad_config(format!("{name} must be >= 0, got {value}")))?
            }
            "min.compaction.lag.ms" => {
                c.min_compaction_lag_ms = u64::try_from(number()?)
                    .map_err(|_| bad_config(format!("{name} must be >= 0, got {value}")))?
            }
            // Kafka's "no bound" is Long.MAX_VALUE, its default.
            "max.compaction.lag.ms" => {
                c.max_compaction_lag_ms = match positive(number()?)? {
                    v if v >= i64::MAX as u64 => None,
                    v => Some(v),
                }
            }
            "min.cleanable.dirty.ratio" => {
                c.min_cleanable_dirty_ratio = value
                    .parse::<f64>()
                    .ok()
                    .and_then(Ratio::new)
                    .ok_or_else(|| {
                        bad_config(format!("{name} must be a number in 0..=1, got {value:?}"))
                    })?
            }
            "compression.type" if value == "producer" => {}
            "message.timestamp.type" if value == "CreateTime" => {}
            "min.insync.replicas" if value == "1" => {}
            "compression.type"
            | "message.timestamp.type"
            | "min.insync.replicas"
            | "flush.messages" => {
                return Err(bad_config(format!(
                    "{name}={value} is not supported by Brook (docs/kafka.md lists the configs it has)"
                )));
            }
            _ => {
                return Err(bad_config(format!(
                    "unknown or unsupported topic config {name:?} (docs/kafka.md lists the configs Brook has)"
                )));
            }
        }
    }
    c.validate().map_err(|e| bad_config(e.to_string()))?;
    Ok(c)
}

/// Creates `name` with the broker's defaults (Metadata's auto-creation).
pub(super) async fn auto_create(s: &Session, name: &str) -> ApiResult<Arc<Topic>> {
    s.broker
        .auth
        .authorize(&s.caller, Operation::Create, ResourceType::Topic, name)?;
    let config = TopicConfig {
        partitions: s.broker.config.kafka.default_partitions,
        partition: s.broker.config.topic_defaults.clone(),
    };
    create(s, name, config).await
}

async fn create(s: &Session, name: &str, config: TopicConfig) -> ApiResult<Arc<Topic>> {
    match crate::topics::create(&s.broker, name, config).await {
        // Two clients auto-creating the same topic: the second finds it.
        Err(e) if e.reason() == Reason::TopicAlreadyExists => Ok(s.broker.topic(name)?),
        other => other,
    }
}

pub(super) async fn create_topics(s: &Session, req: CreateTopicsRequest) -> CreateTopicsResponse {
    let mut results = Vec::new();
    for t in req.topics {
        let name = t.name.0.to_string();
        // A count or factor Brook cannot serve has an error code of its own.
        let shape = match (t.num_partitions, t.replication_factor) {
            (n, _) if n != -1 && n <= 0 => Some((
                ResponseError::InvalidPartitions,
                format!("num_partitions must be > 0 (or -1 for the default), got {n}"),
            )),
            (_, f) if f > 1 => Some((
                ResponseError::InvalidReplicationFactor,
                format!("replication factor {f} needs more brokers: Brook is one"),
            )),
            _ => None,
        };
        if let Some((code, message)) = shape {
            results.push(
                CreatableTopicResult::default()
                    .with_name(t.name)
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message))),
            );
            continue;
        }
        let outcome = async {
            s.broker
                .auth
                .authorize(&s.caller, Operation::Create, ResourceType::Topic, &name)?;
            let partitions = match t.num_partitions {
                -1 => s.broker.config.kafka.default_partitions,
                n => u32::try_from(n)
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad_config(format!("num_partitions must be > 0, got {n}")))?,
            };
            let configs = t
                .configs
                .iter()
                .map(|c| (c.name.as_str(), c.value.as_deref()));
            let partition = apply_configs(s.broker.config.topic_defaults.clone(), configs)?;
            let config = TopicConfig {
                partitions,
                partition,
            };
            if req.validate_only {
                s.broker.log()?;
                if s.broker.topic(&name).is_ok() {
                    return Err(ApiError::new(
                        Reason::TopicAlreadyExists,
                        format!("topic {name:?} exists"),
                    ));
                }
                brook_storage::validate_topic_name(&name).map_err(ApiError::from)?;
                return Ok(partitions);
            }
            let topic = crate::topics::create(&s.broker, &name, config).await?;
            Ok(topic.partition_count())
        }
        .await;
        let mut r = CreatableTopicResult::default().with_name(t.name);
        match outcome {
            Ok(partitions) => {
                r.num_partitions = partitions as i32;
                r.replication_factor = 1;
                r.error_message = None;
            }
            Err(e) => {
                let (code, message) = errors::with_message(&e);
                r.error_code = code;
                r.error_message = message;
            }
        }
        results.push(r);
    }
    CreateTopicsResponse::default().with_topics(results)
}

pub(super) async fn delete_topics(s: &Session, req: DeleteTopicsRequest) -> DeleteTopicsResponse {
    let mut results = Vec::new();
    for name in req.topic_names {
        let n = name.0.to_string();
        let outcome = async {
            s.broker
                .auth
                .authorize(&s.caller, Operation::Delete, ResourceType::Topic, &n)?;
            crate::topics::delete(&s.broker, &n).await
        }
        .await;
        let mut r = DeletableTopicResult::default().with_name(Some(name));
        if let Err(e) = outcome {
            let (code, message) = errors::with_message(&e);
            r.error_code = code;
            r.error_message = message;
        }
        results.push(r);
    }
    DeleteTopicsResponse::default().with_responses(results)
}

pub(super) async fn create_partitions(
    s: &Session,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let mut results = Vec::new();
    for t in req.topics {
        let n = t.name.0.to_string();
        let outcome = async {
            s.broker
                .auth
                .authorize(&s.caller, Operation::Alter, ResourceType::Topic, &n)?;
            let total = u32::try_from(t.count)
                .map_err(|_| bad_config(format!("partition count {} is negative", t.count)))?;
            let current = s.broker.topic(&n)?.partition_count();
            if total <= current {
                return Err(ApiError::new(
                    Reason::InvalidRequest,
                    format!("topic {n:?} has {current} partitions; the new count must be larger, got {total}"),
                ));
            }
            if req.validate_only {
                return Ok(());
            }
            crate::topics::add_partitions(&s.broker, &n, total).await?;
            Ok(())
        }
        .await;
        let mut r = CreatePartitionsTopicResult::default().with_name(t.name);
        match outcome {
            Ok(()) => r.error_message = None,
            Err(e) => {
                let (code, message) = errors::with_message(&e);
                r.error_code = match e.reason() {
                    Reason::InvalidRequest => ResponseError::InvalidPartitions.code(),
                    _ => code,
                };
                r.error_message = message;
            }
        }
        results.push(r);
    }
    CreatePartitionsResponse::default().with_results(results)
}

/// A topic's settings under Kafka's config names, with whether each
/// differs from the broker's default.
fn topic_configs(
    c: &PartitionConfig,
    defaults: &PartitionConfig,
) -> Vec<(&'static str, String, bool)> {
    let limit = |v: Option<u64>| v.map_or("-1".to_string(), |v| v.to_string());
    let flush_ms = |f: &FlushPolicy| match f {
        FlushPolicy::Interval(d) => d.as_millis().to_string(),
        FlushPolicy::Always => "0".to_string(),
        FlushPolicy::Never => i64::MAX.to_string(),
    };
    let flush_messages = |f: &FlushPolicy| match f {
        FlushPolicy::Always => "1".to_string(),
        _ => i64::MAX.to_string(),
    };
    vec![
        (
            "cleanup.policy",
            c.cleanup_policy.name().into(),
            c.cleanup_policy != defaults.cleanup_policy,
        ),
        (
            "delete.retention.ms",
            c.delete_retention_ms.to_string(),
            c.delete_retention_ms != defaults.delete_retention_ms,
        ),
        (
            "min.compaction.lag.ms",
            c.min_compaction_lag_ms.to_string(),
            c.min_compaction_lag_ms != defaults.min_compaction_lag_ms,
        ),
        (
            "max.compaction.lag.ms",
            c.max_compaction_lag_ms
                .unwrap_or(i64::MAX as u64)
                .to_string(),
            c.max_compaction_lag_ms != defaults.max_compaction_lag_ms,
        ),
        (
            "min.cleanable.dirty.ratio",
            c.min_cleanable_dirty_ratio.get().to_string(),
            c.min_cleanable_dirty_ratio != defaults.min_cleanable_dirty_ratio,
        ),
        ("compression.type", "producer".into(), false),
        ("message.timestamp.type", "CreateTime".into(), false),
        ("min.insync.replicas", "1".into(), false),
        (
            "retention.ms",
            limit(c.retention_ms),
            c.retention_ms != defaults.retention_ms,
        ),
        (
            "retention.bytes",
            limit(c.retention_bytes),
            c.retention_bytes != defaults.retention_bytes,
        ),
        (
            "segment.bytes",
            c.segment_bytes.to_string(),
            c.segment_bytes != defaults.segment_bytes,
        ),
        (
            "segment.ms",
            c.segment_ms.to_string(),
            c.segment_ms != defaults.segment_ms,
        ),
        (
            "max.message.bytes",
            c.max_batch_bytes.to_string(),
            c.max_batch_bytes != defaults.max_batch_bytes,
        ),
        ("flush.ms", flush_ms(&c.flush), c.flush != defaults.flush),
        (
            "flush.messages",
            flush_messages(&c.flush),
            c.flush != defaults.flush,
        ),
    ]
}

pub(super) fn describe_configs(
    s: &Session,
    req: DescribeConfigsRequest,
) -> DescribeConfigsResponse {
    let defaults = &s.broker.config.topic_defaults;
    let results = req
        .resources
        .into_iter()
        .map(|r| {
            let mut result = DescribeConfigsResult::default()
                .with_resource_type(r.resource_type)
                .with_resource_name(r.resource_name.clone())
                .with_error_message(None);
            let settings = match r.resource_type {
                RESOURCE_TOPIC => s
                    .broker
                    .auth
                    .authorize(
                        &s.caller,
                        Operation::Describe,
                        ResourceType::Topic,
                        &r.resource_name,
                    )
                    .and_then(|()| s.broker.topic(&r.resource_name))
                    .map(|t| topic_configs(&t.config().partition, defaults)),
                RESOURCE_BROKER => s
                    .broker
                    .auth
                    .authorize(
                        &s.caller,
                        Operation::Describe,
                        ResourceType::Cluster,
                        crate::auth::acl::CLUSTER,
                    )
                    .map(|()| {
                        topic_configs(defaults, defaults)
                            .into_iter()
                            .map(|(k, v, _)| (k, v, false))
                            .collect()
                    }),
                other => Err(ApiError::new(
                    Reason::InvalidRequest,
                    format!("resource type {other} has no configs here (topics: 2, brokers: 4)"),
                )),
            };
            match settings {
                Ok(settings) => {
                    let wanted = r.configuration_keys.as_ref();
                    result.configs = settings
                        .into_iter()
                        .filter(|(k, _, _)| {
                            wanted.is_none_or(|w| w.iter().any(|n| n.as_str() == *k))
                        })
                        .map(|(k, v, set)| {
                            DescribeConfigsResourceResult::default()
                                .with_name(StrBytes::from_static_str(k))
                                .with_value(Some(StrBytes::from_string(v)))
                                .with_config_source(if set { SOURCE_TOPIC } else { SOURCE_DEFAULT })
                        })
                        .collect();
                }
                Err(e) => {
                    let (code, message) = errors::with_message(&e);
                    result.error_code = code;
                    result.error_message = message;
                }
            }
            result
        })
        .collect();
    DescribeConfigsResponse::default().with_results(results)
}
