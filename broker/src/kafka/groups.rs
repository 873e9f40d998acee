//! Kafka's group APIs over the broker's groups: FindCoordinator (this
//! node), the classic protocol (JoinGroup, SyncGroup, Heartbeat,
//! LeaveGroup) on `groups::classic`, and offsets (OffsetCommit,
//! OffsetFetch) in the same store as gRPC groups', so `brook lag`, the lag
//! RPC and its metrics cover Kafka consumers. ListGroups, DescribeGroups
//! and DeleteGroups see groups of both protocols.

use std::sync::Arc;
use std::time::Duration;

use brook_storage::now_ms;
use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::connection::Session;
use super::{NODE_ID, errors};
use crate::auth::acl::{Operation, ResourceType};
use crate::error::Reason;
use crate::groups::Groups;
use crate::groups::classic::{GroupError, JoinRequest, State};
use crate::groups::offsets::Committed;

/// Longest commit metadata kept (as gRPC commits).
const MAX_METADATA: usize = 4096;
/// FindCoordinator's key type of a transactional id.
const KEY_TYPE_TRANSACTION: i8 = 1;

fn group_code(e: GroupError) -> i16 {
    use ResponseError as K;
    match e {
        GroupError::UnknownMember => K::UnknownMemberId,
        GroupError::IllegalGeneration => K::IllegalGeneration,
        GroupError::RebalanceInProgress => K::RebalanceInProgress,
        GroupError::InconsistentProtocol | GroupError::InUseByGrpc => K::InconsistentGroupProtocol,
        GroupError::InvalidSessionTimeout => K::InvalidSessionTimeout,
        GroupError::MemberIdRequired => K::MemberIdRequired,
        GroupError::CoordinatorNotAvailable => K::CoordinatorNotAvailable,
    }
    .code()
}

/// The groups, or the error code every group answer carries while the
/// broker recovers.
fn groups(s: &Session) -> Result<&Arc<Groups>, i16> {
    s.broker
        .groups()
        .map_err(|_| ResponseError::CoordinatorLoadInProgress.code())
}

/// Checks the group name and the caller's right on it.
fn check_group(s: &Session, group: &str, op: Operation) -> Result<(), i16> {
    crate::groups::service::check_group_name(group).map_err(|e| errors::coordinator_code(&e))?;
    s.broker
        .auth
        .authorize(&s.caller, op, ResourceType::Group, group)
        .map_err(|e| match e.reason() {
            Reason::NotAuthorized => ResponseError::GroupAuthorizationFailed.code(),
            _ => errors::coordinator_code(&e),
        })
}

/// Sweeps expired sessions and overdue rebalances until the broker stops.
pub(super) async fn expire_loop(broker: Arc<crate::state::Broker>) {
    let mut shutdown = broker.shutdown_signal();
    loop {
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(100)) => {}
            _ = shutdown.wait_for(|s| *s) => {
                if let Ok(g) = broker.groups() {
                    g.classic.shutdown();
                }
                return;
            }
        }
        if let Ok(g) = broker.groups() {
            g.classic.expire();
        }
    }
}

pub(super) fn find_coordinator(
    s: &Session,
    req: FindCoordinatorRequest,
    version: i16,
) -> FindCoordinatorResponse {
    let host = StrBytes::from_string(s.advertised.host.clone());
    let answer = |key: &str| -> (i16, Option<StrBytes>) {
        if req.key_type == KEY_TYPE_TRANSACTION {
            return (
                ResponseError::TransactionalIdAuthorizationFailed.code(),
                Some(StrBytes::from_static_str(
                    "transactions are not supported by Brook",
                )),
            );
        }
        match check_group(s, key, Operation::Describe).and_then(|()| groups(s).map(|_| ())) {
            Ok(()) => (0, None),
            Err(code) => (code, None),
        }
    };
    let mut resp = FindCoordinatorResponse::default();
    if version >= 4 {
        resp.coordinators = req
            .coordinator_keys
            .iter()
            .map(|key| {
                let (code, message) = answer(key.as_str());
                find_coordinator_response::Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(NODE_ID))
                    .with_host(host.clone())
                    .with_port(s.advertised.port)
                    .with_error_code(code)
                    .with_error_message(message)
            })
            .collect();
    } else {
        let (code, message) = answer(req.key.as_str());
        resp.error_code = code;
        if version >= 1 {
            resp.error_message = message;
        }
        resp.node_id = BrokerId(NODE_ID);
        resp.host = host;
        resp.port = s.advertised.port;
    }
    resp
}

pub(super) async fn join(s: &Session, req: JoinGroupRequest, version: i16) -> JoinGroupResponse {
    // The protocol name stays "" until chosen: v0-6 have no null for it.
    let mut resp = JoinGroupResponse::default().with_member_id(req.member_id.clone());
    let group = req.group_id.0.to_string();
    let groups = match check_group(s, &group, Operation::Read).and_then(|()| groups(s)) {
        Ok(g) => Arc::clone(g),
        Err(code) => return resp.with_error_code(code),
    };
    let session = Duration::from_millis(req.session_timeout_ms.max(0) as u64);
    let config = &s.broker.config;
    if session < config.group_min_session_timeout || session > config.group_max_session_timeout {
        return resp.with_error_code(group_code(GroupError::InvalidSessionTimeout));
    }
    // v0 has no rebalance timeout: the session timeout stands in, as Kafka.
    let rebalance = match version {
        0 => session,
        _ => Duration::from_millis(req.rebalance_timeout_ms.max(0) as u64),
    };
    let in_use_by_grpc = groups.coordinator.member_count(&group) > 0;
    let join = JoinRequest {
        member_id: req.member_id.to_string(),
        client_id: s.client_id.to_string(),
        client_host: format!("/{}", s.peer.ip()),
        protocol_type: req.protocol_type.to_string(),
        protocols: req
            .protocols
            .into_iter()
            .map(|p| (p.name.to_string(), p.metadata))
            .collect(),
        session_timeout: session,
        rebalance_timeout: rebalance,
        may_require_member_id: version >= 4,
    };
    let rx = match groups.classic.join(&group, join, in_use_by_grpc) {
        Ok(rx) => rx,
        Err((e, member_id)) => {
            resp.error_code = group_code(e);
            resp.member_id = StrBytes::from_string(member_id);
            return resp;
        }
    };
    // Answered when the rebalance completes; the sweep ends it by the
    // rebalance deadline, so this wait is bounded.
    match rx.await {
        Ok(Ok(j)) => {
            resp.generation_id = j.generation;
            resp.protocol_name = Some(StrBytes::from_string(j.protocol));
            if version >= 7 {
                resp.protocol_type = Some(StrBytes::from_string(j.protocol_type));
            }
            resp.leader = StrBytes::from_string(j.leader);
            resp.member_id = StrBytes::from_string(j.member_id);
            resp.members = j
                .members
                .into_iter()
                .map(|(id, metadata)| {
                    join_group_response::JoinGroupResponseMember::default()
                        .with_member_id(StrBytes::from_string(id))
                        .with_metadata(metadata)
                })
                .collect();
            resp
        }
        Ok(Err(e)) => resp.with_error_code(group_code(e)),
        Err(_) => resp.with_error_code(ResponseError::CoordinatorNotAvailable.code()),
    }
}

pub(super) async fn sync(s: &Session, req: SyncGroupRequest, version: i16) -> SyncGroupResponse {
    let resp = SyncGroupResponse::default();
    let group = req.group_id.0.to_string();
    let groups = match check_group(s, &group, Operation::Read).and_then(|()| groups(s)) {
        Ok(g) => Arc::clone(g),
        Err(code) => return resp.with_error_code(code),
    };
    let assignments = req
        .assignments
        .into_iter()
        .map(|a| (a.member_id.to_string(), a.assignment))
        .collect();
    let rx = match groups.classic.sync(
        &group,
        req.member_id.as_str(),
        req.generation_id,
        assignments,
    ) {
        Ok(rx) => rx,
        Err(e) => return resp.with_error_code(group_code(e)),
    };
    match rx.await {
        Ok(Ok(r)) => {
            let mut resp = resp.with_assignment(r.assignment);
            if version >= 5 {
                resp.protocol_type = Some(StrBytes::from_string(r.protocol_type));
                resp.protocol_name = Some(StrBytes::from_string(r.protocol));
            }
            resp
        }
        Ok(Err(e)) => resp.with_error_code(group_code(e)),
        Err(_) => resp.with_error_code(ResponseError::CoordinatorNotAvailable.code()),
    }
}

pub(super) fn heartbeat(s: &Session, req: HeartbeatRequest) -> HeartbeatResponse {
    let group = req.group_id.0.to_string();
    let code = match check_group(s, &group, Operation::Read).and_then(|()| groups(s)) {
        Ok(g) => match g
            .classic
            .heartbeat(&group, req.member_id.as_str(), req.generation_id)
        {
            Ok(()) => 0,
            Err(e) => group_code(e),
        },
        Err(code) => code,
    };
    HeartbeatResponse::default().with_error_code(code)
}

pub(super) fn leave(s: &Session, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
    let group = req.group_id.0.to_string();
    let groups = match check_group(s, &group, Operation::Read).and_then(|()| groups(s)) {
        Ok(g) => g,
        Err(code) => return LeaveGroupResponse::default().with_error_code(code),
    };
    if version < 3 {
        let left = groups.classic.leave(&group, &[req.member_id.to_string()]);
        let code = match left.first() {
            Some(true) => 0,
            _ => ResponseError::UnknownMemberId.code(),
        };
        return LeaveGroupResponse::default().with_error_code(code);
    }
    let ids: Vec<String> = req
        .members
        .iter()
        .map(|m| m.member_id.to_string())
        .collect();
    let left = groups.classic.leave(&group, &ids);
    let members = req
        .members
        .into_iter()
        .zip(left)
        .map(|(m, known)| {
            leave_group_response::MemberResponse::default()
                .with_member_id(m.member_id)
                .with_group_instance_id(m.group_instance_id)
                .with_error_code(if known {
                    0
                } else {
                    ResponseError::UnknownMemberId.code()
                })
        })
        .collect();
    LeaveGroupResponse::default().with_members(members)
}

pub(super) async fn offset_commit(s: &Session, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let group = req.group_id.0.to_string();
    let all = |code: i16, topics: Vec<offset_commit_request::OffsetCommitRequestTopic>| {
        topics
            .into_iter()
            .map(|t| {
                let partitions = t
                    .partitions
                    .iter()
                    .map(|p| {
                        offset_commit_response::OffsetCommitResponsePartition::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(code)
                    })
                    .collect();
                offset_commit_response::OffsetCommitResponseTopic::default()
                    .with_name(t.name)
                    .with_partitions(partitions)
            })
            .collect()
    };
    // As gRPC commits: the Commit permission on the group.
    let groups = match check_group(s, &group, Operation::Commit).and_then(|()| groups(s)) {
        Ok(g) => Arc::clone(g),
        Err(code) => return OffsetCommitResponse::default().with_topics(all(code, req.topics)),
    };
    let member = req.member_id.to_string();
    let generation = req.generation_id_or_member_epoch;
    let check = |groups: &Groups| {
        // A commit from no member may not overwrite a group with members of
        // either protocol (Kafka: UNKNOWN_MEMBER_ID).
        if member.is_empty() && groups.coordinator.member_count(&group) > 0 {
            return Err(GroupError::UnknownMember);
        }
        groups.classic.check_commit(&group, &member, generation)
    };
    if let Err(e) = check(&groups) {
        return OffsetCommitResponse::default().with_topics(all(group_code(e), req.topics));
    }
    // Each partition is checked on its own; the good ones are stored together.
    let now = now_ms();
    let mut entries = Vec::new();
    let mut codes: Vec<Vec<i16>> = Vec::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let readable =
            s.broker
                .auth
                .authorize(&s.caller, Operation::Read, ResourceType::Topic, &name);
        let mut topic_codes = Vec::new();
        for p in &t.partitions {
            let code = (|| {
                readable.clone().map_err(|e| errors::coordinator_code(&e))?;
                let index = u32::try_from(p.partition_index)
                    .map_err(|_| ResponseError::UnknownTopicOrPartition.code())?;
                let part = s
                    .broker
                    .partition(&name, index)
                    .map_err(|e| errors::coordinator_code(&e))?;
                let offset = u64::try_from(p.committed_offset)
                    .ok()
                    .filter(|o| *o <= part.log_end_offset())
                    .ok_or(ResponseError::OffsetOutOfRange.code())?;
                let metadata = p
                    .committed_metadata
                    .as_ref()
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                if metadata.len() > MAX_METADATA {
                    return Err(ResponseError::OffsetMetadataTooLarge.code());
                }
                entries.push((
                    (name.clone(), index),
                    Committed {
                        offset,
                        metadata,
                        timestamp_ms: now,
                    },
                ));
                Ok(())
            })()
            .err()
            .unwrap_or(0);
            topic_codes.push(code);
        }
        codes.push(topic_codes);
    }
    if !entries.is_empty() {
        // Checked again under the offsets lock: a rebalance may have begun.
        let stored = groups
            .offsets
            .commit_checked(&group, entries, || check(&groups));
        let failure = match stored {
            Ok(at) => match groups.offsets.needs_sync(false) {
                true => {
                    let g = Arc::clone(&groups);
                    let synced = tokio::task::spawn_blocking(move || g.offsets.sync(at)).await;
                    match synced {
                        Ok(Ok(())) => None,
                        _ => Some(ResponseError::KafkaStorageError.code()),
                    }
                }
                false => None,
            },
            Err(crate::groups::offsets::CommitError::Rejected(e)) => Some(group_code(e)),
            Err(crate::groups::offsets::CommitError::Io(e)) => Some(errors::coordinator_code(
                &crate::groups::commits_io_error(e),
            )),
        };
        if let Some(code) = failure {
            for c in codes.iter_mut().flatten().filter(|c| **c == 0) {
                *c = code;
            }
        }
    }
    let topics = req
        .topics
        .into_iter()
        .zip(codes)
        .map(|(t, codes)| {
            let partitions = t
                .partitions
                .iter()
                .zip(codes)
                .map(|(p, code)| {
                    offset_commit_response::OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(code)
                })
                .collect();
            offset_commit_response::OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

/// One partition's committed offset as OffsetFetch answers it (-1: none).
fn committed(
    stored: &std::collections::BTreeMap<(String, u32), Committed>,
    topic: &str,
    partition: i32,
) -> (i64, Option<StrBytes>) {
    u32::try_from(partition)
        .ok()
        .and_then(|p| stored.get(&(topic.to_string(), p)))
        .map_or((-1, Some(StrBytes::new())), |c| {
            (
                c.offset as i64,
                Some(StrBytes::from_string(c.metadata.clone())),
            )
        })
}

/// `(topic, partitions)` a group fetch asks for; `None` asks for all.
type Wanted = Option<Vec<(TopicName, Vec<i32>)>>;

/// One partition's answer: index, committed offset, metadata, error code.
type FetchedOffset = (i32, i64, Option<StrBytes>, i16);

/// The committed offsets of `group`, per topic, as asked.
fn fetch_group(
    s: &Session,
    group: &str,
    wanted: Wanted,
) -> (i16, Vec<(TopicName, Vec<FetchedOffset>)>) {
    let groups = match check_group(s, group, Operation::Describe).and_then(|()| groups(s)) {
        Ok(g) => g,
        Err(code) => return (code, Vec::new()),
    };
    let stored = groups.offsets.get(group);
    let visible = |t: &str| {
        s.broker
            .auth
            .may(&s.caller, Operation::Describe, ResourceType::Topic, t)
    };
    let wanted = wanted.unwrap_or_else(|| {
        let mut by_topic: std::collections::BTreeMap<String, Vec<i32>> = Default::default();
        for (t, p) in stored.keys() {
            by_topic.entry(t.clone()).or_default().push(*p as i32);
        }
        by_topic
            .into_iter()
            .filter(|(t, _)| visible(t))
            .map(|(t, ps)| (TopicName(StrBytes::from_string(t)), ps))
            .collect()
    });
    let topics = wanted
        .into_iter()
        .map(|(name, partitions)| {
            let allowed = visible(name.0.as_str());
            let rows = partitions
                .into_iter()
                .map(|p| match allowed {
                    true => {
                        let (offset, metadata) = committed(&stored, name.0.as_str(), p);
                        (p, offset, metadata, 0)
                    }
                    false => (
                        p,
                        -1,
                        Some(StrBytes::new()),
                        ResponseError::TopicAuthorizationFailed.code(),
                    ),
                })
                .collect();
            (name, rows)
        })
        .collect();
    (0, topics)
}

/// The answer's topics for `fetch_group`'s rows. v8+ and earlier versions
/// have types of their own with the same fields: one shape for both.
macro_rules! offset_topics {
    ($topics:expr, $topic:ty, $partition:ty) => {
        $topics
            .into_iter()
            .map(|(name, rows)| {
                <$topic>::default().with_name(name).with_partitions(
                    rows.into_iter()
                        .map(|(p, offset, metadata, code)| {
                            <$partition>::default()
                                .with_partition_index(p)
                                .with_committed_offset(offset)
                                .with_metadata(metadata)
                                .with_error_code(code)
                        })
                        .collect(),
                )
            })
            .collect()
    };
}

pub(super) fn offset_fetch(
    s: &Session,
    req: OffsetFetchRequest,
    version: i16,
) -> OffsetFetchResponse {
    use offset_fetch_response::*;
    if version >= 8 {
        let groups = req
            .groups
            .into_iter()
            .map(|g| {
                let wanted = g.topics.map(|ts| {
                    ts.into_iter()
                        .map(|t| (t.name, t.partition_indexes))
                        .collect()
                });
                let (code, topics) = fetch_group(s, g.group_id.0.as_str(), wanted);
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id)
                    .with_topics(offset_topics!(
                        topics,
                        OffsetFetchResponseTopics,
                        OffsetFetchResponsePartitions
                    ))
                    .with_error_code(code)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let wanted = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.name, t.partition_indexes))
            .collect()
    });
    let (code, topics) = fetch_group(s, req.group_id.0.as_str(), wanted);
    let mut resp = OffsetFetchResponse::default().with_topics(offset_topics!(
        topics,
        OffsetFetchResponseTopic,
        OffsetFetchResponsePartition
    ));
    if version >= 2 {
        resp.error_code = code;
    }
    resp
}

/// A group's state, protocol type and protocol as Kafka tools show them.
fn group_summary(groups: &Groups, name: &str) -> (&'static str, String) {
    if let Some(info) = groups.classic.describe(name) {
        return (info.state.name(), info.protocol_type);
    }
    if groups.coordinator.member_count(name) > 0 {
        // A gRPC group: assigned by the broker, not by a Kafka assignor.
        return ("Stable", "brook".to_string());
    }
    (State::Empty.name(), "consumer".to_string())
}

pub(super) fn list(s: &Session, req: ListGroupsRequest) -> ListGroupsResponse {
    let groups = match groups(s) {
        Ok(g) => g,
        Err(code) => return ListGroupsResponse::default().with_error_code(code),
    };
    let listed = groups
        .names()
        .into_iter()
        .filter(|n| {
            s.broker
                .auth
                .may(&s.caller, Operation::Describe, ResourceType::Group, n)
        })
        .filter_map(|n| {
            let (state, protocol_type) = group_summary(groups, &n);
            let wanted = req.states_filter.is_empty()
                || req.states_filter.iter().any(|f| f.as_str() == state);
            wanted.then(|| {
                list_groups_response::ListedGroup::default()
                    .with_group_id(GroupId(StrBytes::from_string(n)))
                    .with_protocol_type(StrBytes::from_string(protocol_type))
                    .with_group_state(StrBytes::from_static_str(state))
            })
        })
        .collect();
    ListGroupsResponse::default().with_groups(listed)
}

pub(super) fn describe(s: &Session, req: DescribeGroupsRequest) -> DescribeGroupsResponse {
    use describe_groups_response::*;
    let described = req
        .groups
        .into_iter()
        .map(|name| {
            let mut d = DescribedGroup::default().with_group_id(name.clone());
            let groups = match check_group(s, name.0.as_str(), Operation::Describe)
                .and_then(|()| groups(s))
            {
                Ok(g) => g,
                Err(code) => return d.with_error_code(code),
            };
            if let Some(info) = groups.classic.describe(name.0.as_str()) {
                d.group_state = StrBytes::from_static_str(info.state.name());
                d.protocol_type = StrBytes::from_string(info.protocol_type);
                d.protocol_data = StrBytes::from_string(info.protocol);
                d.members = info
                    .members
                    .into_iter()
                    .map(|m| {
                        DescribedGroupMember::default()
                            .with_member_id(StrBytes::from_string(m.member_id))
                            .with_client_id(StrBytes::from_string(m.client_id))
                            .with_client_host(StrBytes::from_string(m.client_host))
                            .with_member_metadata(m.metadata)
                            .with_member_assignment(m.assignment)
                    })
                    .collect();
                return d;
            }
            let known = groups.names().iter().any(|n| n == name.0.as_str());
            let (state, protocol_type) = group_summary(groups, name.0.as_str());
            d.group_state = StrBytes::from_static_str(if known { state } else { "Dead" });
            d.protocol_type =
                StrBytes::from_string(if known { protocol_type } else { String::new() });
            d
        })
        .collect();
    DescribeGroupsResponse::default().with_groups(described)
}

pub(super) async fn delete(s: &Session, req: DeleteGroupsRequest) -> DeleteGroupsResponse {
    let mut results = Vec::new();
    for name in req.groups_names {
        let code = async {
            check_group(s, name.0.as_str(), Operation::Delete)?;
            let groups = Arc::clone(groups(s)?);
            let n = name.0.to_string();
            if groups.member_count(&n) > 0 {
                return Err(ResponseError::NonEmptyGroup.code());
            }
            if !groups.names().contains(&n) {
                return Err(ResponseError::GroupIdNotFound.code());
            }
            let g = Arc::clone(&groups);
            let target = n.clone();
            let deleted = tokio::task::spawn_blocking(move || g.offsets.delete(&target)).await;
            match deleted {
                Ok(Ok(())) => {
                    groups.classic.forget(&n);
                    groups.coordinator.forget(&n);
                    tracing::info!(group = %n, "deleted group (Kafka client)");
                    Ok(())
                }
                _ => Err(ResponseError::KafkaStorageError.code()),
            }
        }
        .await;
        results.push(
            delete_groups_response::DeletableGroupResult::default()
                .with_group_id(name)
                .with_error_code(code.err().unwrap_or(0)),
        );
    }
    DeleteGroupsResponse::default().with_results(results)
}
