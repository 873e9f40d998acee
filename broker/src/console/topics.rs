//! `/api/v1/topics`: list, create, describe, alter, add partitions, delete,
//! through the Topics gRPC service.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use brook_protocol::v1;
use brook_protocol::v1::topics_server::Topics;
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::call::{ApiResult, Failure, Who, body, no_content, ok, reply};
use super::overview::rates_json;
use crate::error::ApiError;
use crate::state::Broker;
use crate::topics::TopicsService;

fn service(broker: &Arc<Broker>) -> TopicsService {
    TopicsService::new(Arc::clone(broker))
}

/// -1 (unlimited) as null.
fn limit(v: Option<i64>) -> Value {
    match v {
        Some(v) if v >= 0 => json!(v),
        _ => Value::Null,
    }
}

fn flush_policy_name(v: i32) -> &'static str {
    match v1::FlushPolicy::try_from(v) {
        Ok(v1::FlushPolicy::Always) => "always",
        Ok(v1::FlushPolicy::Interval) => "interval",
        Ok(v1::FlushPolicy::Never) => "never",
        _ => "",
    }
}

/// The API's name of a cleanup policy.
pub fn cleanup_policy_name(v: i32) -> &'static str {
    match v1::CleanupPolicy::try_from(v) {
        Ok(v1::CleanupPolicy::Compact) => "compact",
        Ok(v1::CleanupPolicy::CompactDelete) => "compact,delete",
        _ => "delete",
    }
}

/// A topic's settings as the API names them.
fn settings_json(c: &v1::TopicConfig) -> Value {
    json!({
        "partitions": c.partitions,
        "retention_ms": limit(c.retention_ms),
        "retention_bytes": limit(c.retention_bytes),
        "segment_bytes": c.segment_bytes,
        "segment_ms": c.segment_ms,
        "max_batch_bytes": c.max_batch_bytes,
        "flush_policy": flush_policy_name(c.flush_policy),
        "flush_interval_ms": c.flush_interval_ms,
        "cleanup_policy": cleanup_policy_name(c.cleanup_policy),
        "min_compaction_lag_ms": c.min_compaction_lag_ms,
        "max_compaction_lag_ms": limit(c.max_compaction_lag_ms),
        "delete_retention_ms": c.delete_retention_ms,
        "min_cleanable_dirty_ratio": c.min_cleanable_dirty_ratio,
    })
}

/// Records in the log: log end minus log start, over the partitions.
fn records(t: &v1::TopicDescription) -> u64 {
    t.partitions
        .iter()
        .map(|p| p.log_end_offset.saturating_sub(p.log_start_offset))
        .sum()
}

fn topic_json(broker: &Broker, t: &v1::TopicDescription) -> Value {
    let config = t.config.unwrap_or_default();
    let partitions: Vec<Value> = t
        .partitions
        .iter()
        .map(|p| {
            json!({
                "partition": p.partition,
                "log_start_offset": p.log_start_offset,
                "log_end_offset": p.log_end_offset,
                "size_bytes": p.size_bytes,
                "segment_count": p.segment_count,
                "offline_reason": p.offline_reason,
                "damaged": p.damaged.iter().map(|d| json!({
                    "first_offset": d.first_offset,
                    "end_offset": d.end_offset,
                    "reason": d.reason,
                })).collect::<Vec<_>>(),
                "dirty_ratio": p.dirty_ratio,
                "cleaned_to": p.cleaned_to,
            })
        })
        .collect();
    let mut v = json!({
        "name": t.name,
        "settings": settings_json(&config),
        "size_bytes": t.partitions.iter().map(|p| p.size_bytes).sum::<u64>(),
        "records": records(t),
        "partitions": partitions,
    });
    merge(
        &mut v,
        rates_json(&broker.console_history.topic_rates(&t.name)),
    );
    v
}

fn merge(into: &mut Value, from: Value) {
    if let (Value::Object(into), Value::Object(from)) = (into, from) {
        into.extend(from);
    }
}

/// `GET /api/v1/topics`.
pub async fn list(State(broker): State<Arc<Broker>>, who: Who) -> ApiResult<Response> {
    let topics = service(&broker)
        .list_topics(who.request(v1::ListTopicsRequest {}))
        .await?
        .into_inner()
        .topics;
    let topics: Vec<Value> = topics
        .iter()
        .map(|t| {
            let c = t.config.unwrap_or_default();
            let mut v = json!({
                "name": t.name,
                "partitions": c.partitions,
                "size_bytes": t.partitions.iter().map(|p| p.size_bytes).sum::<u64>(),
                "records": records(t),
                "retention_ms": limit(c.retention_ms),
                "retention_bytes": limit(c.retention_bytes),
                "cleanup_policy": cleanup_policy_name(c.cleanup_policy),
            });
            merge(
                &mut v,
                rates_json(&broker.console_history.topic_rates(&t.name)),
            );
            v
        })
        .collect();
    ok(json!({ "topics": topics }))
}

/// The settings of a request body as the gRPC message; an unknown name or
/// a value of the wrong type is INVALID_REQUEST naming the setting.
fn settings_from(settings: &Map<String, Value>) -> ApiResult<v1::TopicConfig> {
    let mut c = v1::TopicConfig::default();
    for (name, value) in settings {
        let wrong = |what: &str| -> Failure {
            ApiError::invalid(format!("setting {name} must be {what}, not {value}"))
                .with("field", name)
                .into()
        };
        let unsigned = || value.as_u64().ok_or_else(|| wrong("a number ≥ 0"));
        // null and -1: unlimited.
        let signed = || match value {
            Value::Null => Ok(-1),
            v => v
                .as_i64()
                .ok_or_else(|| wrong("a number, or -1 or null for unlimited")),
        };
        match name.as_str() {
            "partitions" => {
                c.partitions = u32::try_from(unsigned()?).map_err(|_| wrong("a partition count"))?
            }
            "retention_ms" => c.retention_ms = Some(signed()?),
            "retention_bytes" => c.retention_bytes = Some(signed()?),
            "segment_bytes" => c.segment_bytes = Some(unsigned()?),
            "segment_ms" => c.segment_ms = Some(unsigned()?),
            "max_batch_bytes" => {
                c.max_batch_bytes =
                    Some(u32::try_from(unsigned()?).map_err(|_| wrong("a size below 4 GiB"))?)
            }
            "flush_policy" => {
                c.flush_policy = match value.as_str() {
                    Some("always") => v1::FlushPolicy::Always,
                    Some("interval") => v1::FlushPolicy::Interval,
                    Some("never") => v1::FlushPolicy::Never,
                    _ => return Err(wrong("\"always\", \"interval\" or \"never\"")),
                } as i32
            }
            "flush_interval_ms" => c.flush_interval_ms = Some(unsigned()?),
            "cleanup_policy" => {
                c.cleanup_policy = match value.as_str() {
                    Some("delete") => v1::CleanupPolicy::Delete,
                    Some("compact") => v1::CleanupPolicy::Compact,
                    Some("compact,delete" | "delete,compact") => v1::CleanupPolicy::CompactDelete,
                    _ => return Err(wrong("\"delete\", \"compact\" or \"compact,delete\"")),
                } as i32
            }
            "min_compaction_lag_ms" => c.min_compaction_lag_ms = Some(unsigned()?),
            "max_compaction_lag_ms" => c.max_compaction_lag_ms = Some(signed()?),
            "delete_retention_ms" => c.delete_retention_ms = Some(unsigned()?),
            "min_cleanable_dirty_ratio" => {
                c.min_cleanable_dirty_ratio = Some(
                    value
                        .as_f64()
                        .ok_or_else(|| wrong("a ratio between 0 and 1"))?,
                )
            }
            _ => {
                return Err(ApiError::invalid(format!(
                    "unknown setting {name:?} (docs/console.md lists them)"
                ))
                .with("field", name)
                .into());
            }
        }
    }
    Ok(c)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CreateBody {
    name: String,
    #[serde(default)]
    partitions: Option<u32>,
    #[serde(default)]
    settings: Map<String, Value>,
}

/// `POST /api/v1/topics`.
pub async fn create(
    State(broker): State<Arc<Broker>>,
    who: Who,
    bytes: Bytes,
) -> ApiResult<Response> {
    let b: CreateBody = body(&bytes)?;
    let mut config = settings_from(&b.settings)?;
    if let Some(n) = b.partitions {
        config.partitions = n;
    }
    // Neither given: the broker's default, as for Kafka's CreateTopics.
    if config.partitions == 0 && b.partitions.is_none() {
        config.partitions = broker.config.kafka.default_partitions;
    }
    let t = service(&broker)
        .create_topic(who.request(v1::CreateTopicRequest {
            name: b.name,
            config: Some(config),
        }))
        .await?
        .into_inner();
    Ok(reply(StatusCode::CREATED, &topic_json(&broker, &t)))
}

/// `GET /api/v1/topics/{topic}`.
pub async fn describe(
    State(broker): State<Arc<Broker>>,
    who: Who,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    let t = service(&broker)
        .describe_topic(who.request(v1::DescribeTopicRequest { name }))
        .await?
        .into_inner();
    ok(topic_json(&broker, &t))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AlterBody {
    settings: Map<String, Value>,
}

/// `PATCH /api/v1/topics/{topic}`: only the settings named change.
pub async fn alter(
    State(broker): State<Arc<Broker>>,
    who: Who,
    Path(name): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let b: AlterBody = body(&bytes)?;
    let config = settings_from(&b.settings)?;
    let t = service(&broker)
        .alter_topic(who.request(v1::AlterTopicRequest {
            name,
            config: Some(config),
        }))
        .await?
        .into_inner();
    ok(topic_json(&broker, &t))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddPartitionsBody {
    partitions: u32,
}

/// `POST /api/v1/topics/{topic}/partitions`: the new total.
pub async fn add_partitions(
    State(broker): State<Arc<Broker>>,
    who: Who,
    Path(name): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let b: AddPartitionsBody = body(&bytes)?;
    let t = service(&broker)
        .add_partitions(who.request(v1::AddPartitionsRequest {
            name,
            partitions: b.partitions,
        }))
        .await?
        .into_inner();
    ok(topic_json(&broker, &t))
}

/// `DELETE /api/v1/topics/{topic}`.
pub async fn delete(
    State(broker): State<Arc<Broker>>,
    who: Who,
    Path(name): Path<String>,
) -> ApiResult<Response> {
    service(&broker)
        .delete_topic(who.request(v1::DeleteTopicRequest { name }))
        .await?;
    no_content()
}
