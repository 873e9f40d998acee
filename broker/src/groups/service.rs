//! The `brook.v1.Groups` service.

use std::collections::BTreeSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::v1::{self, groups_server};
use brook_storage::{Log, now_ms};
use futures_util::Stream;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::{Request, Response, Status, Streaming};

use super::Groups;
use super::assign::Strategy;
use super::commits::{blocking, no_members, store_checked};
use super::consumer_protocol;
use super::coordinator::{JoinSpec, by_topic};
use super::lag::unknown_group;
use super::offsets::Committed;
use crate::auth::Caller;
use crate::auth::acl::{Operation, ResourceType};
use crate::error::{ApiError, ApiResult, Reason};
use crate::request::RequestContext;
use crate::state::Broker;

/// One committed offset to store.
pub(super) type Entry = (super::offsets::Tp, Committed);

/// Longest commit metadata accepted.
pub(super) const MAX_METADATA: usize = 4096;

/// Implements `brook.v1.Groups`.
pub struct GroupsService {
    pub(super) broker: Arc<Broker>,
}

impl GroupsService {
    /// A service over the shared broker state.
    pub fn new(broker: Arc<Broker>) -> Self {
        GroupsService { broker }
    }
}

pub(crate) fn check_group_name(name: &str) -> ApiResult<()> {
    // The first format of offsets files named them after the group, within
    // the file system's 255-byte names: the limit stays, so that every name
    // accepted before is accepted now and no name accepted now is refused by
    // a broker of that version.
    if name.len() > MAX_GROUP_NAME {
        return Err(ApiError::new(
            Reason::InvalidGroupName,
            format!("invalid group name {name:?}: must be 1 to {MAX_GROUP_NAME} characters long"),
        ));
    }
    brook_storage::validate_topic_name(name).map_err(|e| match e {
        brook_storage::Error::InvalidTopicName { reason, .. } => ApiError::new(
            Reason::InvalidGroupName,
            format!("invalid group name {name:?}: {reason}"),
        ),
        other => other.into(),
    })
}

/// Longest group name: shorter than a topic's (249), since the first
/// format of offsets files named a file after its group, with a suffix.
pub const MAX_GROUP_NAME: usize = 200;

/// Partition counts for the coordinator.
pub fn counter(log: &Log) -> impl Fn(&str) -> Option<u32> + '_ {
    move |topic| log.topic(topic).ok().map(|t| t.partition_count())
}

fn strategy(s: i32) -> ApiResult<Strategy> {
    match v1::AssignmentStrategy::try_from(s) {
        Ok(v1::AssignmentStrategy::Unspecified | v1::AssignmentStrategy::Sticky) => {
            Ok(Strategy::Sticky)
        }
        Ok(v1::AssignmentStrategy::Range) => Ok(Strategy::Range),
        Ok(v1::AssignmentStrategy::RoundRobin) => Ok(Strategy::RoundRobin),
        Err(_) => Err(ApiError::invalid(format!(
            "unknown assignment strategy {s}"
        ))),
    }
}

fn strategy_to_proto(s: Option<Strategy>) -> v1::AssignmentStrategy {
    match s {
        None => v1::AssignmentStrategy::Unspecified,
        Some(Strategy::Range) => v1::AssignmentStrategy::Range,
        Some(Strategy::RoundRobin) => v1::AssignmentStrategy::RoundRobin,
        Some(Strategy::Sticky) => v1::AssignmentStrategy::Sticky,
    }
}

/// The group's committed offsets (of one topic, unless `topic` is empty)
/// on the topics the caller may describe: a group's offsets must not tell
/// a caller about topics it may not see.
fn committed_to_proto(
    group: &Groups,
    name: &str,
    topic: &str,
    visible: &dyn Fn(&str) -> bool,
) -> Vec<v1::CommittedOffset> {
    group
        .offsets
        .get(name)
        .into_iter()
        .filter(|((t, _), _)| (topic.is_empty() || t == topic) && visible(t))
        .map(|((topic, partition), c)| v1::CommittedOffset {
            topic,
            partition,
            offset: c.offset,
            metadata: c.metadata,
            commit_timestamp_ms: c.timestamp_ms,
        })
        .collect()
}

impl GroupsService {
    /// Whether `caller` may describe a topic, for filtering what a group
    /// answer reveals about topics.
    fn topic_filter(&self, caller: &Caller) -> impl Fn(&str) -> bool + '_ {
        let (auth, caller) = (Arc::clone(&self.broker.auth), caller.clone());
        move |topic| auth.may(&caller, Operation::Describe, ResourceType::Topic, topic)
    }

    /// Refuses `req` unless its caller may do `op` on each topic.
    fn authorize_topics<'a, T>(
        &self,
        req: &Request<T>,
        op: Operation,
        topics: impl IntoIterator<Item = &'a str>,
    ) -> ApiResult<()> {
        let distinct: BTreeSet<&str> = topics.into_iter().collect();
        for topic in distinct {
            self.broker.authorize_topic(req, op, topic)?;
        }
        Ok(())
    }

    pub(super) fn state(&self) -> ApiResult<(&Arc<Log>, &Arc<Groups>)> {
        Ok((self.broker.log()?, self.broker.groups()?))
    }

    /// Reads the JoinGroup that opens a session and checks it.
    fn join_spec(&self, first: Option<v1::JoinMessage>, host: String) -> ApiResult<JoinSpec> {
        let Some(v1::JoinMessage {
            message: Some(v1::join_message::Message::Join(j)),
        }) = first
        else {
            return Err(ApiError::invalid(
                "the first message of a Join stream must be a JoinGroup",
            ));
        };
        check_group_name(&j.group)?;
        if j.topics.is_empty() {
            return Err(ApiError::invalid("JoinGroup needs at least one topic"));
        }
        let log = self.broker.log()?;
        for t in &j.topics {
            log.topic(t)?;
        }
        let c = &self.broker.config;
        let timeout = match j.session_timeout_ms {
            0 => Duration::from_secs(10)
                .clamp(c.group_min_session_timeout, c.group_max_session_timeout),
            ms => Duration::from_millis(u64::from(ms)),
        };
        if timeout < c.group_min_session_timeout || timeout > c.group_max_session_timeout {
            return Err(ApiError::invalid(format!(
                "session_timeout_ms {} is outside the broker's limits {}..={}",
                timeout.as_millis(),
                c.group_min_session_timeout.as_millis(),
                c.group_max_session_timeout.as_millis()
            )));
        }
        Ok(JoinSpec {
            group: j.group,
            topics: j.topics.into_iter().collect::<BTreeSet<_>>(),
            client_id: j.client_id,
            host,
            session_timeout: timeout,
            strategy: strategy(j.strategy)?,
        })
    }
}

type EventStream = Pin<Box<dyn Stream<Item = Result<v1::MemberEvent, Status>> + Send>>;

#[tonic::async_trait]
impl groups_server::Groups for GroupsService {
    type JoinStream = EventStream;

    async fn join(
        &self,
        req: Request<Streaming<v1::JoinMessage>>,
    ) -> Result<Response<EventStream>, Status> {
        let ctx = RequestContext::of(&req);
        let host = req
            .remote_addr()
            .map_or_else(|| "unknown".to_string(), |a| a.to_string());
        let caller = Caller::of(&req);
        let mut inbound = req.into_inner();
        let first = inbound.message().await?;
        if let Some(v1::JoinMessage {
            message: Some(v1::join_message::Message::Join(j)),
        }) = &first
        {
            ctx.resource(&j.group);
            // A member reads the group and learns the topics' partitions.
            let auth = &self.broker.auth;
            auth.authorize(&caller, Operation::Read, ResourceType::Group, &j.group)?;
            for topic in &j.topics {
                auth.authorize(&caller, Operation::Describe, ResourceType::Topic, topic)?;
            }
        }
        let (group, member, rx, log, groups) = (|| {
            let spec = self.join_spec(first, host)?;
            let (log, groups) = self.state()?;
            let (tx, rx) = mpsc::unbounded_channel();
            let group = spec.group.clone();
            if groups.classic.member_count(&group) > 0 {
                return Err(ApiError::new(
                    Reason::InconsistentStrategy,
                    format!("group {group:?} has Kafka-protocol members: a group is used by one protocol at a time"),
                )
                .with("group", &group));
            }
            let member = groups.coordinator.join(spec, tx, &counter(log))?;
            Ok::<_, ApiError>((group, member, rx, Arc::clone(log), Arc::clone(groups)))
        })()?;
        let mut shutdown = self.broker.shutdown_signal();
        tokio::spawn(async move {
            loop {
                let msg = tokio::select! {
                    m = inbound.message() => m,
                    _ = shutdown.wait_for(|s| *s) => return,
                };
                let still_member = match msg {
                    Ok(Some(v1::JoinMessage {
                        message: Some(v1::join_message::Message::Heartbeat(_)),
                    })) => groups.coordinator.heartbeat(&group, &member),
                    Ok(Some(v1::JoinMessage {
                        message: Some(v1::join_message::Message::RevokeDone(_)),
                    })) => groups.coordinator.revoke_done(&group, &member),
                    // A second JoinGroup or an empty message: ignore, the session stands.
                    Ok(Some(_)) => true,
                    // The client closed the stream or its connection died: it leaves.
                    Ok(None) | Err(_) => false,
                };
                if !still_member {
                    groups.coordinator.leave(&group, &member, &counter(&log));
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(UnboundedReceiverStream::new(rx))))
    }

    async fn commit(
        &self,
        req: Request<v1::CommitRequest>,
    ) -> Result<Response<v1::CommitResponse>, Status> {
        RequestContext::of(&req).resource(&req.get_ref().group);
        self.broker
            .authorize_group(&req, Operation::Commit, &req.get_ref().group)?;
        // As Kafka's OffsetCommit: read on each topic committed for.
        let topics = req.get_ref().offsets.iter().map(|o| o.topic.as_str());
        self.authorize_topics(&req, Operation::Read, topics)?;
        let req = req.into_inner();
        let group = req.group.clone();
        let (member, generation, durable) = (req.member_id.clone(), req.generation, req.durable);
        let r = async {
            let entries = self.commit_inner(req)?;
            let groups = Arc::clone(self.broker.groups()?);
            // The membership check runs again under the group's offsets lock:
            // a member fenced in between cannot land its write.
            store_checked(groups, group.clone(), entries, durable, move |groups, g| {
                groups.coordinator.check_commit(g, &member, generation)
            })
            .await?;
            Ok::<_, ApiError>(v1::CommitResponse {})
        }
        .await;
        Ok(Response::new(r?))
    }

    async fn fetch_committed(
        &self,
        req: Request<v1::FetchCommittedRequest>,
    ) -> Result<Response<v1::FetchCommittedResponse>, Status> {
        RequestContext::of(&req).resource(&req.get_ref().group);
        self.broker
            .authorize_group(&req, Operation::Describe, &req.get_ref().group)?;
        let caller = Caller::of(&req);
        let req = req.into_inner();
        static FAILED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        if FAILED.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            < self.broker.config.debug_fail_fetch_committed
        {
            return Err(ApiError::internal("debug fail point: FetchCommitted failed").into());
        }
        check_group_name(&req.group)?;
        let groups = self.broker.groups()?;
        // One rule for every read of a named group: unknown is NOT_FOUND.
        if !groups.names().contains(&req.group) {
            return Err(unknown_group(&req.group).into());
        }
        let visible = self.topic_filter(&caller);
        let offsets = committed_to_proto(groups, &req.group, &req.topic, &visible);
        Ok(Response::new(v1::FetchCommittedResponse { offsets }))
    }

    async fn list_groups(
        &self,
        req: Request<v1::ListGroupsRequest>,
    ) -> Result<Response<v1::ListGroupsResponse>, Status> {
        // Only the groups the caller may describe, as Kafka lists them.
        let caller = Caller::of(&req);
        let auth = &self.broker.auth;
        let r = self.broker.groups().map(|g| {
            let groups = g
                .names()
                .into_iter()
                .filter(|name| auth.may(&caller, Operation::Describe, ResourceType::Group, name))
                .map(|name| {
                    let (state, members) = match g.coordinator.describe(&name) {
                        Some(i) => (i.state, i.members.len() as u32),
                        None => match g.classic.describe(&name) {
                            Some(i) => (classic_state(i.state), i.members.len() as u32),
                            None => (v1::GroupState::Empty, 0),
                        },
                    };
                    v1::GroupSummary {
                        state: state as i32,
                        members,
                        group: name,
                    }
                })
                .collect();
            v1::ListGroupsResponse { groups }
        });
        Ok(Response::new(r?))
    }

    async fn describe_group(
        &self,
        req: Request<v1::DescribeGroupRequest>,
    ) -> Result<Response<v1::GroupDescription>, Status> {
        RequestContext::of(&req).resource(&req.get_ref().group);
        self.broker
            .authorize_group(&req, Operation::Describe, &req.get_ref().group)?;
        let visible = self.topic_filter(&Caller::of(&req));
        let name = req.into_inner().group;
        let r = (|| {
            check_group_name(&name)?;
            let g = self.broker.groups()?;
            let info = g.coordinator.describe(&name);
            // Whether the group exists does not depend on what the caller sees.
            if info.is_none() && !g.names().contains(&name) {
                return Err(unknown_group(&name));
            }
            let offsets = committed_to_proto(g, &name, "", &visible);
            let mut d = v1::GroupDescription {
                group: name.clone(),
                offsets,
                state: v1::GroupState::Empty as i32,
                ..Default::default()
            };
            if let Some(info) = info {
                d.state = info.state as i32;
                d.generation = info.generation;
                d.strategy = strategy_to_proto(info.strategy) as i32;
                d.topics = info.topics.into_iter().collect();
                d.members = info
                    .members
                    .into_iter()
                    .map(|m| v1::MemberDescription {
                        member_id: m.id,
                        client_id: m.client_id,
                        host: m.host,
                        assignment: by_topic(&m.assignment),
                    })
                    .collect();
            } else if let Some(info) = g.classic.describe(&name) {
                // A group of Kafka clients: its members as Kafka reports them.
                d.state = classic_state(info.state) as i32;
                d.generation = u64::try_from(info.generation).unwrap_or(0);
                d.topics = g.classic.subscribed_topics(&name).into_iter().collect();
                let consumers = info.of_consumers();
                d.members = info
                    .members
                    .into_iter()
                    .map(|m| v1::MemberDescription {
                        assignment: match consumers {
                            true => consumer_protocol::assignment(&m.assignment)
                                .into_iter()
                                .map(|(topic, partitions)| v1::TopicPartitions {
                                    topic,
                                    partitions,
                                })
                                .collect(),
                            false => Vec::new(),
                        },
                        member_id: m.member_id,
                        client_id: m.client_id,
                        host: m.client_host,
                    })
                    .collect();
            }
            Ok::<_, ApiError>(d)
        })();
        Ok(Response::new(r?))
    }

    async fn delete_group(
        &self,
        req: Request<v1::DeleteGroupRequest>,
    ) -> Result<Response<v1::DeleteGroupResponse>, Status> {
        RequestContext::of(&req).resource(&req.get_ref().group);
        self.broker
            .authorize_group(&req, Operation::Delete, &req.get_ref().group)?;
        let name = req.into_inner().group;
        let r = async {
            check_group_name(&name)?;
            let groups = Arc::clone(self.broker.groups()?);
            // Members of either protocol: a Kafka consumer's group is no
            // more deletable under it than a gRPC one's.
            let members = groups.member_count(&name);
            if members > 0 {
                return Err(ApiError::new(
                    Reason::GroupNotEmpty,
                    format!(
                        "group {name:?} has {}: stop them first",
                        super::commits::members(members)
                    ),
                )
                .with("group", &name));
            }
            if !groups.names().contains(&name) {
                return Err(unknown_group(&name));
            }
            let n = name.clone();
            blocking(move || {
                groups.coordinator.forget(&n);
                groups.offsets.delete(&n)
            })
            .await?;
            Ok(v1::DeleteGroupResponse {})
        }
        .await;
        Ok(Response::new(r?))
    }

    async fn get_consumer_lag(
        &self,
        req: Request<v1::GetConsumerLagRequest>,
    ) -> Result<Response<v1::ConsumerLag>, Status> {
        RequestContext::of(&req).resource(&req.get_ref().group);
        self.broker
            .authorize_group(&req, Operation::Describe, &req.get_ref().group)?;
        if !req.get_ref().topic.is_empty() {
            self.broker
                .authorize_topic(&req, Operation::Describe, &req.get_ref().topic)?;
        }
        let visible = self.topic_filter(&Caller::of(&req));
        let req = req.into_inner();
        check_group_name(&req.group)?;
        let (log, groups) = self.state()?;
        let lag = super::lag::consumer_lag(groups, log, &req.group, &req.topic, now_ms())?;
        Ok(Response::new(super::lag::only_topics(lag, &visible)))
    }

    async fn reset_offsets(
        &self,
        req: Request<v1::ResetOffsetsRequest>,
    ) -> Result<Response<v1::ResetOffsetsResponse>, Status> {
        RequestContext::of(&req).resource(&req.get_ref().group);
        // A dry run only looks.
        let op = match req.get_ref().dry_run {
            true => Operation::Describe,
            false => Operation::Alter,
        };
        self.broker
            .authorize_group(&req, op, &req.get_ref().group)?;
        // Moving a group on a topic is reading it (Kafka: read on the topic).
        let topic_op = match req.get_ref().dry_run {
            true => Operation::Describe,
            false => Operation::Read,
        };
        self.broker
            .authorize_topic(&req, topic_op, &req.get_ref().topic)?;
        let req = req.into_inner();
        let r = async {
            let (changes, entries) = self.reset_inner(&req)?;
            if !req.dry_run {
                let groups = Arc::clone(self.broker.groups()?);
                let force = req.force;
                // Checked again under the offsets lock: a member that joins
                // meanwhile either blocks the reset or reads the new offsets.
                // An operator's reset is rare: it is on disk before the answer.
                store_checked(groups, req.group.clone(), entries, true, move |groups, g| no_members(groups, g, force)).await?;
                tracing::info!(group = %req.group, topic = %req.topic, partitions = changes.len(), "offsets reset");
            }
            Ok::<_, ApiError>(v1::ResetOffsetsResponse { changes, applied: !req.dry_run })
        }
        .await;
        Ok(Response::new(r?))
    }
}

/// A Kafka group's state in gRPC's terms: joining and awaiting the leader's
/// assignment are both a rebalance.
fn classic_state(state: super::classic::State) -> v1::GroupState {
    use super::classic::State;
    match state {
        State::Empty => v1::GroupState::Empty,
        State::PreparingRebalance | State::CompletingRebalance => v1::GroupState::Rebalancing,
        State::Stable => v1::GroupState::Stable,
    }
}
