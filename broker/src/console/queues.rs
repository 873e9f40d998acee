//! `/api/v1/queues`: queue groups, their depths over the last hour, and
//! redrive of dead letters, through the Queues service.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use brook_protocol::v1;
use brook_protocol::v1::queues_server::Queues;
use serde::Deserialize;
use serde_json::{Value, json};

use super::call::{ApiResult, Who, body, ok};
use crate::auth::acl::{Operation, ResourceType};
use crate::queues::service::QueuesService;
use crate::state::Broker;

fn service(broker: &Arc<Broker>) -> QueuesService {
    QueuesService::new(Arc::clone(broker))
}

fn queue_json(q: &v1::QueueDescription) -> Value {
    let s = q.settings.clone().unwrap_or_default();
    json!({
        "group": q.group,
        "topic": q.topic,
        "settings": {
            "lease_ms": s.lease_ms,
            "max_deliveries": s.max_deliveries,
            "backoff_initial_ms": s.backoff_initial_ms,
            "backoff_max_ms": s.backoff_max_ms,
            "backoff_multiplier": s.backoff_multiplier,
            "key_ordered": s.key_ordered,
            "dlq_topic": s.dlq_topic,
            "dlq_partitions": s.dlq_partitions,
            "window": s.window,
        },
        "lag": q.lag,
        "in_flight": q.in_flight,
        "waiting": q.waiting,
        "oldest_unacked_age_ms": q.oldest_unacked_age_ms,
        "dlq_depth": q.dlq_depth,
        "redeliveries": q.redeliveries,
        "dead_lettered": q.dead_lettered,
        "lost_to_retention": q.lost_to_retention,
        "created_ms": q.created_ms,
        "partitions": q.partitions.iter().map(|p| json!({
            "partition": p.partition,
            "acked_up_to": p.acked_up_to,
            "log_end_offset": p.log_end_offset,
            "lag": p.lag,
            "unsettled": p.unsettled,
            "in_flight": p.in_flight,
            "waiting": p.waiting,
            "oldest_unacked_age_ms": p.oldest_unacked_age_ms,
        })).collect::<Vec<_>>(),
        "consumers": q.consumers.iter().map(|c| json!({
            "consumer_id": c.consumer_id,
            "in_flight": c.in_flight,
            "idle_ms": c.idle_ms,
        })).collect::<Vec<_>>(),
    })
}

/// `GET /api/v1/queues`.
pub async fn list(State(broker): State<Arc<Broker>>, who: Who) -> ApiResult<Response> {
    let queues = service(&broker)
        .list_queues(who.request(v1::ListQueuesRequest {}))
        .await?
        .into_inner()
        .queues;
    ok(json!({ "queues": queues.iter().map(queue_json).collect::<Vec<_>>() }))
}

/// `GET /api/v1/queues/{group}`.
pub async fn describe(
    State(broker): State<Arc<Broker>>,
    who: Who,
    Path(group): Path<String>,
) -> ApiResult<Response> {
    let q = service(&broker)
        .describe_queue(who.request(v1::DescribeQueueRequest { group }))
        .await?
        .into_inner();
    ok(queue_json(&q))
}

/// `GET /api/v1/queues/{group}/history`.
pub async fn history(
    State(broker): State<Arc<Broker>>,
    who: Who,
    Path(group): Path<String>,
) -> ApiResult<Response> {
    broker
        .auth
        .authorize(&who.0, Operation::Describe, ResourceType::Group, &group)?;
    let history = &broker.console_history;
    let points: Vec<Value> = history
        .queue_depths(&group)
        .iter()
        .map(|p| {
            json!({
                "t_ms": p.t_ms,
                "dlq_depth": p.value.dlq_depth,
                "in_flight": p.value.in_flight,
                "lag": p.value.lag,
                "redeliveries": p.value.redeliveries,
                "dead_lettered": p.value.dead_lettered,
            })
        })
        .collect();
    ok(json!({
        "interval_ms": history.interval().as_millis() as u64,
        "points": points,
    }))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RedriveBody {
    dry_run: bool,
    dlq_partition: Option<u32>,
    from_offset: Option<u64>,
    to_offset: Option<u64>,
    from_time_ms: Option<i64>,
    to_time_ms: Option<i64>,
    limit: u64,
    target_topic: String,
    to_group: bool,
}

/// `POST /api/v1/queues/{group}/redrive`.
pub async fn redrive(
    State(broker): State<Arc<Broker>>,
    who: Who,
    Path(group): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    let b: RedriveBody = body(&bytes)?;
    let r = service(&broker)
        .redrive(who.request(v1::RedriveRequest {
            group,
            dlq_partition: b.dlq_partition,
            from_offset: b.from_offset,
            to_offset: b.to_offset,
            from_time_ms: b.from_time_ms,
            to_time_ms: b.to_time_ms,
            target_topic: b.target_topic,
            dry_run: b.dry_run,
            limit: b.limit,
            to_group: b.to_group,
        }))
        .await?
        .into_inner();
    ok(json!({
        "redriven": r.redriven,
        "already_redriven": r.already_redriven,
        "unavailable": r.unavailable,
    }))
}
