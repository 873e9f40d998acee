//! `/api/v1/groups`: consumer groups, their lag now and over the last hour,
//! and offset resets with a dry-run preview, through the Groups service.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use brook_protocol::v1;
use brook_protocol::v1::groups_server::Groups;
use serde::Deserialize;
use serde_json::{Value, json};

use super::call::{ApiResult, Failure, Who, body, no_content, ok};
use crate::auth::acl::{Operation, ResourceType};
use crate::error::Reason;
use crate::groups::service::GroupsService;
use crate::state::Broker;

fn service(broker: &Arc<Broker>) -> GroupsService {
    GroupsService::new(Arc::clone(broker))
}

fn state_name(v: i32) -> &'static str {
    match v1::GroupState::try_from(v) {
        Ok(v1::GroupState::Empty) => "empty",
        Ok(v1::GroupState::Rebalancing) => "rebalancing",
        Ok(v1::GroupState::Stable) => "stable",
        _ => "unknown",
    }
}

fn strategy_name(v: i32) -> &'static str {
    match v1::AssignmentStrategy::try_from(v) {
        Ok(v1::AssignmentStrategy::Range) => "range",
        Ok(v1::AssignmentStrategy::RoundRobin) => "round_robin",
        Ok(v1::AssignmentStrategy::Sticky) => "sticky",
        _ => "",
    }
}

/// The group's lag, or none yet: a group with members that never
/// committed has no lag to show rather than an error.
async fn lag(broker: &Arc<Broker>, who: &Who, group: &str) -> ApiResult<Option<v1::ConsumerLag>> {
    let r = service(broker)
        .get_consumer_lag(who.request(v1::GetConsumerLagRequest {
            group: group.to_string(),
            topic: String::new(),
        }))
        .await;
    match r {
        Ok(lag) => Ok(Some(lag.into_inner())),
        Err(status) => {
            let failure = Failure::from(status);
            match failure.reason() == Reason::GroupNotFound.as_str() {
                true => Ok(None),
                false => Err(failure),
            }
        }
    }
}

/// `GET /api/v1/groups`.
pub async fn list(State(broker): State<Arc<Broker>>, who: Who) -> ApiResult<Response> {
    let groups = service(&broker)
        .list_groups(who.request(v1::ListGroupsRequest {}))
        .await?
        .into_inner()
        .groups;
    let mut out = Vec::with_capacity(groups.len());
    for g in groups {
        let lag = lag(&broker, &who, &g.group).await?.unwrap_or_default();
        out.push(json!({
            "group": g.group,
            "state": state_name(g.state),
            "members": g.members,
            "lag_records": lag.total_lag_records,
            "max_lag_ms": lag.max_lag_ms,
        }));
    }
    ok(json!({ "groups": out }))
}

/// `GET /api/v1/groups/{group}`.
pub async fn describe(
    State(broker): State<Arc<Broker>>,
    who: Who,
    Path(group): Path<String>,
) -> ApiResult<Response> {
    let d = service(&broker)
        .describe_group(who.request(v1::DescribeGroupRequest {
            group: group.clone(),
        }))
        .await?
        .into_inner();
    let lag = lag(&broker, &who, &group).await?.unwrap_or_default();
    let commits: HashMap<(&str, u32), &v1::CommittedOffset> = d
        .offsets
        .iter()
        .map(|c| ((c.topic.as_str(), c.partition), c))
        .collect();
    let partitions: Vec<Value> = lag
        .partitions
        .iter()
        .map(|p| {
            let commit = commits.get(&(p.topic.as_str(), p.partition));
            json!({
                "topic": p.topic,
                "partition": p.partition,
                "committed_offset": p.committed_offset,
                "commit_timestamp_ms": commit.map(|c| c.commit_timestamp_ms),
                "metadata": commit.map(|c| c.metadata.as_str()),
                "log_start_offset": p.log_start_offset,
                "log_end_offset": p.log_end_offset,
                "lag_records": p.lag_records,
                "lag_ms": p.lag_ms,
            })
        })
        .collect();
    let members: Vec<Value> = d
        .members
        .iter()
        .map(|m| {
            json!({
                "member_id": m.member_id,
                "client_id": m.client_id,
                "host": m.host,
                "assignment": m.assignment.iter().map(|a| json!({
                    "topic": a.topic,
                    "partitions": a.partitions,
                })).collect::<Vec<_>>(),
            })
        })
        .collect();
    // What the members subscribe to, and what the group has commits on.
    let mut topics = d.topics.clone();
    topics.extend(lag.partitions.iter().map(|p| p.topic.clone()));
    topics.sort();
    topics.dedup();
    ok(json!({
        "group": d.group,
        "state": state_name(d.state),
        "generation": d.generation,
        "strategy": strategy_name(d.strategy),
        "topics": topics,
        "members": members,
        "partitions": partitions,
        "lag_records": lag.total_lag_records,
        "max_lag_ms": lag.max_lag_ms,
    }))
}

/// `GET /api/v1/groups/{group}/history`: the group's lag over the last
/// hour, in total and per partition of the topics the caller may see.
pub async fn history(
    State(broker): State<Arc<Broker>>,
    who: Who,
    Path(group): Path<String>,
) -> ApiResult<Response> {
    let auth = &broker.auth;
    auth.authorize(&who.0, Operation::Describe, ResourceType::Group, &group)?;
    let visible = |topic: &str| auth.may(&who.0, Operation::Describe, ResourceType::Topic, topic);
    let history = &broker.console_history;
    let mut totals = Vec::new();
    let mut per_partition: Vec<((String, u32), Vec<Value>)> = Vec::new();
    let mut index: HashMap<(String, u32), usize> = HashMap::new();
    for point in history.group_lag(&group) {
        let (mut records, mut ms) = (0u64, 0i64);
        for (_, lag_records, lag_ms) in point.value.topics.iter().filter(|t| visible(&t.0)) {
            records += lag_records;
            ms = ms.max(*lag_ms);
        }
        totals.push(json!({"t_ms": point.t_ms, "lag_records": records, "lag_ms": ms}));
        for p in point.value.partitions.iter().filter(|p| visible(&p.topic)) {
            let key = (p.topic.to_string(), p.partition);
            let at = *index.entry(key.clone()).or_insert_with(|| {
                per_partition.push((key, Vec::new()));
                per_partition.len() - 1
            });
            per_partition[at].1.push(json!({
                "t_ms": point.t_ms,
                "lag_records": p.lag_records,
                "lag_ms": p.lag_ms,
            }));
        }
    }
    per_partition.sort_by(|a, b| a.0.cmp(&b.0));
    let partitions: Vec<Value> = per_partition
        .into_iter()
        .map(|((topic, partition), points)| {
            json!({"topic": topic, "partition": partition, "points": points})
        })
        .collect();
    ok(json!({
        "interval_ms": history.interval().as_millis() as u64,
        "points": totals,
        "partitions": partitions,
    }))
}

#[derive(Deserialize)]
#[serde(rename_all = "lowercase")]
enum ResetTo {
    Earliest,
    Latest,
    Offset,
    Timestamp,
    Shift,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    topic: String,
    #[serde(default)]
    partitions: Vec<u32>,
    to: ResetTo,
    #[serde(default)]
    value: Option<i64>,
    #[serde(default)]
    dry_run: bool,
    #[serde(default)]
    force: bool,
}

/// `POST /api/v1/groups/{group}/reset-offsets`.
pub async fn reset_offsets(
    State(broker): State<Arc<Broker>>,
    who: Who,
    Path(group): Path<String>,
    bytes: Bytes,
) -> ApiResult<Response> {
    use v1::reset_offsets_request::To;
    let b: ResetBody = body(&bytes)?;
    let value = |what: &str| {
        b.value
            .ok_or_else(|| Failure::invalid(format!("to={what} needs a value: the {what}")))
    };
    let to = match b.to {
        ResetTo::Earliest => To::Earliest(v1::Earliest {}),
        ResetTo::Latest => To::Latest(v1::Latest {}),
        ResetTo::Offset => To::Offset(
            u64::try_from(value("offset")?)
                .map_err(|_| Failure::invalid("to=offset needs an offset ≥ 0"))?,
        ),
        ResetTo::Timestamp => To::TimestampMs(value("timestamp")?),
        ResetTo::Shift => To::ShiftBy(value("shift")?),
    };
    let r = service(&broker)
        .reset_offsets(who.request(v1::ResetOffsetsRequest {
            group,
            topic: b.topic,
            partitions: b.partitions,
            to: Some(to),
            dry_run: b.dry_run,
            force: b.force,
        }))
        .await?
        .into_inner();
    let changes: Vec<Value> = r
        .changes
        .iter()
        .map(|c| {
            json!({
                "topic": c.topic,
                "partition": c.partition,
                "before": c.before,
                "after": c.after,
            })
        })
        .collect();
    ok(json!({ "applied": r.applied, "changes": changes }))
}

/// `DELETE /api/v1/groups/{group}`.
pub async fn delete(
    State(broker): State<Arc<Broker>>,
    who: Who,
    Path(group): Path<String>,
) -> ApiResult<Response> {
    service(&broker)
        .delete_group(who.request(v1::DeleteGroupRequest { group }))
        .await?;
    no_content()
}
