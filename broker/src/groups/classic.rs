//! Kafka's classic group protocol, for Kafka clients: members join, the
//! broker picks a protocol (an assignor all members support) and a leader,
//! the leader computes the assignment on the client side and hands it back
//! through SyncGroup, and heartbeats keep members in. A join, a leave or an
//! expired session starts a rebalance: every member rejoins (its heartbeat
//! says REBALANCE_IN_PROGRESS) within the rebalance timeout, or is removed.
//!
//! States, as Kafka names them: `Empty` → `PreparingRebalance` (waiting
//! for joins) → `CompletingRebalance` (waiting for the leader's
//! assignment) → `Stable`. Committed offsets are not here: they live in the
//! same store as gRPC groups' (`offsets`), so lag covers both.
//!
//! The gRPC groups' coordinator assigns on the broker instead; a group name
//! is used by one protocol at a time (a Kafka join to a group with gRPC
//! members is refused, and the reverse too).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::oneshot;

/// Why a group request is refused, as Kafka's error codes name it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupError {
    /// The member id is not in the group.
    UnknownMember,
    /// The generation is not the group's current one.
    IllegalGeneration,
    /// A rebalance is going on: rejoin.
    RebalanceInProgress,
    /// No protocol every member supports, or another protocol type.
    InconsistentProtocol,
    /// The session timeout is outside the broker's bounds.
    InvalidSessionTimeout,
    /// Join again with the member id handed out (KIP-394).
    MemberIdRequired,
    /// The group has members of the gRPC protocol.
    InUseByGrpc,
    /// The broker is stopping.
    CoordinatorNotAvailable,
}

/// A group's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// No members.
    Empty,
    /// Waiting for members to (re)join.
    PreparingRebalance,
    /// Waiting for the leader's assignment.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
}

impl State {
    /// Kafka's name for it (DescribeGroups, ListGroups).
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
        }
    }
}

/// What a member sends to join.
#[derive(Debug, Clone)]
pub struct JoinRequest {
    /// Empty for a first join.
    pub member_id: String,
    /// The client's id and address, for DescribeGroups.
    pub client_id: String,
    /// See `client_id`.
    pub client_host: String,
    /// `consumer` for consumers.
    pub protocol_type: String,
    /// The assignors it supports, in its order of preference, each with its metadata.
    pub protocols: Vec<(String, Bytes)>,
    /// How long it may go without a heartbeat.
    pub session_timeout: Duration,
    /// How long a rebalance waits for it to rejoin.
    pub rebalance_timeout: Duration,
    /// Whether the client understands MEMBER_ID_REQUIRED (JoinGroup v4+).
    pub may_require_member_id: bool,
}

/// The answer to a join, once the rebalance completes.
#[derive(Debug, Clone)]
pub struct JoinResult {
    /// The new generation.
    pub generation: i32,
    /// The protocol chosen.
    pub protocol: String,
    /// The protocol type.
    pub protocol_type: String,
    /// The leader's member id.
    pub leader: String,
    /// This member's id.
    pub member_id: String,
    /// Every member with its metadata for the chosen protocol (the leader only).
    pub members: Vec<(String, Bytes)>,
}

/// The answer to a sync: this member's assignment.
#[derive(Debug, Clone)]
pub struct SyncResult {
    /// The protocol type.
    pub protocol_type: String,
    /// The protocol chosen.
    pub protocol: String,
    /// The assignment, as the leader encoded it.
    pub assignment: Bytes,
}

/// A member as DescribeGroups shows it.
#[derive(Debug, Clone)]
pub struct MemberInfo {
    /// Member id.
    pub member_id: String,
    /// Client id.
    pub client_id: String,
    /// Client address.
    pub client_host: String,
    /// Metadata for the chosen protocol.
    pub metadata: Bytes,
    /// Its assignment.
    pub assignment: Bytes,
}

/// A group as DescribeGroups and ListGroups show it.
#[derive(Debug, Clone)]
pub struct GroupInfo {
    /// Its state.
    pub state: State,
    /// The protocol type.
    pub protocol_type: String,
    /// The protocol chosen ("" before the first generation).
    pub protocol: String,
    /// The generation (0 before the first).
    pub generation: i32,
    /// The members.
    pub members: Vec<MemberInfo>,
}

impl GroupInfo {
    /// Whether its members are Kafka consumers, whose metadata and
    /// assignments are in Kafka's `ConsumerProtocol` format.
    pub fn of_consumers(&self) -> bool {
        self.protocol_type == super::consumer_protocol::CONSUMER
    }
}

/// Member ids a group keeps between MEMBER_ID_REQUIRED and the join that
/// uses them.
const MAX_PENDING: usize = 1000;

type JoinReply = oneshot::Sender<Result<JoinResult, GroupError>>;
type SyncReply = oneshot::Sender<Result<SyncResult, GroupError>>;

struct Member {
    client_id: String,
    client_host: String,
    protocols: Vec<(String, Bytes)>,
    session_timeout: Duration,
    rebalance_timeout: Duration,
    assignment: Bytes,
    last_seen: Instant,
    join: Option<JoinReply>,
    sync: Option<SyncReply>,
}

struct Group {
    state: State,
    generation: i32,
    protocol_type: String,
    protocol: String,
    leader: Option<String>,
    members: BTreeMap<String, Member>,
    /// Ids handed out with MEMBER_ID_REQUIRED, not joined yet.
    pending: HashMap<String, Instant>,
    /// When the rebalance under way gives up on members that did not rejoin.
    rebalance_deadline: Option<Instant>,
}

impl Group {
    fn new(protocol_type: &str) -> Group {
        Group {
            state: State::Empty,
            generation: 0,
            protocol_type: protocol_type.to_string(),
            protocol: String::new(),
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            rebalance_deadline: None,
        }
    }

    /// Starts a rebalance (or keeps the one under way): members that are
    /// waiting for an assignment learn that it will not come.
    fn prepare_rebalance(&mut self, now: Instant) {
        if self.state == State::PreparingRebalance {
            return;
        }
        for m in self.members.values_mut() {
            if let Some(reply) = m.sync.take() {
                let _ = reply.send(Err(GroupError::RebalanceInProgress));
            }
        }
        let wait = self
            .members
            .values()
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.state = State::PreparingRebalance;
        self.rebalance_deadline = Some(now + wait);
    }

    /// Completes the join phase once every member has rejoined, or the
    /// deadline has passed (then those that did not are removed).
    fn maybe_complete_join(&mut self, now: Instant) {
        if self.state != State::PreparingRebalance {
            return;
        }
        let all_joined = self.members.values().all(|m| m.join.is_some());
        let late = self.rebalance_deadline.is_some_and(|d| now >= d);
        if !all_joined && !late {
            return;
        }
        self.members.retain(|_, m| m.join.is_some());
        if self.members.is_empty() {
            self.become_empty();
            return;
        }
        let Some(protocol) = self.choose_protocol() else {
            // Cannot happen: joins are checked against the members' protocols.
            for m in self.members.values_mut() {
                if let Some(reply) = m.join.take() {
                    let _ = reply.send(Err(GroupError::InconsistentProtocol));
                }
            }
            self.members.clear();
            self.become_empty();
            return;
        };
        self.generation = self.generation.wrapping_add(1).max(1);
        self.protocol = protocol;
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        let leader = self.leader.clone().unwrap_or_default();
        let metadata: Vec<(String, Bytes)> = self
            .members
            .iter()
            .map(|(id, m)| (id.clone(), metadata_for(m, &self.protocol)))
            .collect();
        self.state = State::CompletingRebalance;
        self.rebalance_deadline = None;
        for (id, m) in self.members.iter_mut() {
            m.last_seen = now;
            m.assignment = Bytes::new();
            if let Some(reply) = m.join.take() {
                let _ = reply.send(Ok(JoinResult {
                    generation: self.generation,
                    protocol: self.protocol.clone(),
                    protocol_type: self.protocol_type.clone(),
                    leader: leader.clone(),
                    member_id: id.clone(),
                    members: if *id == leader {
                        metadata.clone()
                    } else {
                        Vec::new()
                    },
                }));
            }
        }
    }

    fn become_empty(&mut self) {
        self.state = State::Empty;
        self.leader = None;
        self.rebalance_deadline = None;
        self.generation = self.generation.wrapping_add(1).max(1);
    }

    /// The protocol every member supports that most members prefer first
    /// (ties: the first member's order), as Kafka votes.
    fn choose_protocol(&self) -> Option<String> {
        let first = self.members.values().next()?;
        let candidates: Vec<&String> = first
            .protocols
            .iter()
            .map(|(n, _)| n)
            .filter(|n| {
                self.members
                    .values()
                    .all(|m| m.protocols.iter().any(|(p, _)| p == *n))
            })
            .collect();
        let votes = |name: &String| {
            self.members
                .values()
                .filter(|m| {
                    m.protocols
                        .iter()
                        .find(|(p, _)| candidates.contains(&p))
                        .is_some_and(|(p, _)| p == name)
                })
                .count()
        };
        let mut best: Option<(&String, usize)> = None;
        for c in &candidates {
            let v = votes(c);
            if best.is_none_or(|(_, bv)| v > bv) {
                best = Some((c, v));
            }
        }
        best.map(|(n, _)| n.clone())
    }

    fn remove(&mut self, member: &str, now: Instant) {
        if let Some(mut m) = self.members.remove(member) {
            if let Some(reply) = m.join.take() {
                let _ = reply.send(Err(GroupError::UnknownMember));
            }
            if let Some(reply) = m.sync.take() {
                let _ = reply.send(Err(GroupError::UnknownMember));
            }
        }
        if self.members.is_empty() {
            self.become_empty();
        } else {
            self.prepare_rebalance(now);
            self.maybe_complete_join(now);
        }
    }

    fn info(&self) -> GroupInfo {
        GroupInfo {
            state: self.state,
            protocol_type: self.protocol_type.clone(),
            protocol: self.protocol.clone(),
            generation: self.generation,
            members: self
                .members
                .iter()
                .map(|(id, m)| MemberInfo {
                    member_id: id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    metadata: metadata_for(m, &self.protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }
}

fn metadata_for(m: &Member, protocol: &str) -> Bytes {
    m.protocols
        .iter()
        .find(|(p, _)| p == protocol)
        .map(|(_, md)| md.clone())
        .unwrap_or_default()
}

/// Every classic group, in memory (membership is not kept across restarts:
/// members rejoin, as with Kafka's coordinator failover).
pub struct Classic {
    groups: Mutex<HashMap<String, Group>>,
    next_id: std::sync::atomic::AtomicU64,
}

impl Default for Classic {
    fn default() -> Self {
        Classic {
            groups: Mutex::new(HashMap::new()),
            next_id: std::sync::atomic::AtomicU64::new(1),
        }
    }
}

fn lock(m: &Mutex<HashMap<String, Group>>) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Classic {
    fn member_id(&self, client_id: &str) -> String {
        let n = self
            .next_id
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut salt = [0u8; 8];
        let _ = getrandom::fill(&mut salt);
        let client = if client_id.is_empty() {
            "member"
        } else {
            client_id
        };
        format!("{client}-{n}-{}", hex::encode(salt))
    }

    /// Starts a join; the receiver gets the answer when the rebalance
    /// completes. `in_use_by_grpc` is checked under the lock.
    pub fn join(
        &self,
        group: &str,
        req: JoinRequest,
        in_use_by_grpc: bool,
    ) -> Result<oneshot::Receiver<Result<JoinResult, GroupError>>, (GroupError, String)> {
        let now = Instant::now();
        let mut groups = lock(&self.groups);
        let g = groups
            .entry(group.to_string())
            .or_insert_with(|| Group::new(&req.protocol_type));
        if g.members.is_empty() && in_use_by_grpc {
            return Err((GroupError::InUseByGrpc, String::new()));
        }
        if g.members.is_empty() {
            g.protocol_type = req.protocol_type.clone();
        }
        if req.protocols.is_empty()
            || g.protocol_type != req.protocol_type
            || !g.members.is_empty()
                && !req.protocols.iter().any(|(p, _)| {
                    g.members
                        .values()
                        .all(|m| m.protocols.iter().any(|(mp, _)| mp == p))
                })
        {
            return Err((GroupError::InconsistentProtocol, req.member_id));
        }
        let member_id = if req.member_id.is_empty() {
            let id = self.member_id(&req.client_id);
            if req.may_require_member_id {
                // Ids handed out and never used: the oldest go first.
                if g.pending.len() >= MAX_PENDING {
                    let oldest = g
                        .pending
                        .iter()
                        .min_by_key(|(_, at)| **at)
                        .map(|(id, _)| id.clone());
                    if let Some(oldest) = oldest {
                        g.pending.remove(&oldest);
                    }
                }
                g.pending.insert(id.clone(), now);
                return Err((GroupError::MemberIdRequired, id));
            }
            id
        } else {
            let known = g.members.contains_key(&req.member_id)
                || g.pending.remove(&req.member_id).is_some();
            if !known {
                return Err((GroupError::UnknownMember, req.member_id));
            }
            req.member_id.clone()
        };
        let (tx, rx) = oneshot::channel();
        let m = g.members.entry(member_id).or_insert_with(|| Member {
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            protocols: Vec::new(),
            session_timeout: req.session_timeout,
            rebalance_timeout: req.rebalance_timeout,
            assignment: Bytes::new(),
            last_seen: now,
            join: None,
            sync: None,
        });
        m.protocols = req.protocols;
        m.session_timeout = req.session_timeout;
        m.rebalance_timeout = req.rebalance_timeout;
        m.last_seen = now;
        if let Some(old) = m.join.replace(tx) {
            let _ = old.send(Err(GroupError::RebalanceInProgress));
        }
        g.prepare_rebalance(now);
        g.maybe_complete_join(now);
        Ok(rx)
    }

    /// A member's SyncGroup: the leader's carries every assignment.
    pub fn sync(
        &self,
        group: &str,
        member: &str,
        generation: i32,
        assignments: Vec<(String, Bytes)>,
    ) -> Result<oneshot::Receiver<Result<SyncResult, GroupError>>, GroupError> {
        let mut groups = lock(&self.groups);
        let g = groups.get_mut(group).ok_or(GroupError::UnknownMember)?;
        if !g.members.contains_key(member) {
            return Err(GroupError::UnknownMember);
        }
        if generation != g.generation {
            return Err(GroupError::IllegalGeneration);
        }
        let (tx, rx) = oneshot::channel();
        let result = |g: &Group, m: &Member| SyncResult {
            protocol_type: g.protocol_type.clone(),
            protocol: g.protocol.clone(),
            assignment: m.assignment.clone(),
        };
        match g.state {
            State::Empty | State::PreparingRebalance => {
                return Err(GroupError::RebalanceInProgress);
            }
            State::Stable => {
                let m = &g.members[member];
                let _ = tx.send(Ok(result(g, m)));
            }
            State::CompletingRebalance => {
                let now = Instant::now();
                if let Some(m) = g.members.get_mut(member) {
                    m.last_seen = now;
                    m.sync = Some(tx);
                }
                if g.leader.as_deref() == Some(member) {
                    let mut by_member: HashMap<String, Bytes> = assignments.into_iter().collect();
                    g.state = State::Stable;
                    let snapshot = (g.protocol_type.clone(), g.protocol.clone());
                    for (id, m) in g.members.iter_mut() {
                        m.assignment = by_member.remove(id).unwrap_or_default();
                        if let Some(reply) = m.sync.take() {
                            let _ = reply.send(Ok(SyncResult {
                                protocol_type: snapshot.0.clone(),
                                protocol: snapshot.1.clone(),
                                assignment: m.assignment.clone(),
                            }));
                        }
                    }
                }
            }
        }
        Ok(rx)
    }

    /// A heartbeat: keeps the member in, and tells it of a rebalance.
    pub fn heartbeat(&self, group: &str, member: &str, generation: i32) -> Result<(), GroupError> {
        let mut groups = lock(&self.groups);
        let g = groups.get_mut(group).ok_or(GroupError::UnknownMember)?;
        let state = g.state;
        let current = g.generation;
        let m = g.members.get_mut(member).ok_or(GroupError::UnknownMember)?;
        m.last_seen = Instant::now();
        // As Kafka: a member that has its JoinGroup answer may heartbeat
        // while the leader's assignment is on its way.
        match state {
            State::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            _ if generation != current => Err(GroupError::IllegalGeneration),
            _ => Ok(()),
        }
    }

    /// Members leave; each id's answer (`false`: it was not in the group).
    pub fn leave(&self, group: &str, members: &[String]) -> Vec<bool> {
        let now = Instant::now();
        let mut groups = lock(&self.groups);
        let Some(g) = groups.get_mut(group) else {
            return vec![false; members.len()];
        };
        members
            .iter()
            .map(|id| {
                let known = g.members.contains_key(id);
                if known {
                    g.remove(id, now);
                }
                known
            })
            .collect()
    }

    /// Whether an offset commit from `member` at `generation` may be
    /// stored: `None` for a commit outside the group protocol (generation
    /// -1, no member), allowed while the group has no members.
    pub fn check_commit(
        &self,
        group: &str,
        member: &str,
        generation: i32,
    ) -> Result<(), GroupError> {
        let groups = lock(&self.groups);
        let Some(g) = groups.get(group) else {
            return match generation < 0 {
                true => Ok(()),
                false => Err(GroupError::IllegalGeneration),
            };
        };
        if generation < 0 && member.is_empty() {
            return match g.members.is_empty() {
                true => Ok(()),
                false => Err(GroupError::UnknownMember),
            };
        }
        if !g.members.contains_key(member) {
            return Err(GroupError::UnknownMember);
        }
        // As Kafka: while members rejoin, the generation that is ending may
        // still commit what it processed; only between the join and the
        // assignment is there no generation to commit for.
        match g.state {
            State::CompletingRebalance => Err(GroupError::RebalanceInProgress),
            _ if generation != g.generation => Err(GroupError::IllegalGeneration),
            _ => Ok(()),
        }
    }

    /// Removes members whose session expired and ends rebalances whose
    /// deadline passed; forgets empty groups' ids handed out long ago.
    pub fn expire(&self) {
        let now = Instant::now();
        let mut groups = lock(&self.groups);
        for g in groups.values_mut() {
            // A member waiting in a join or a sync is not expected to
            // heartbeat (Kafka's shouldKeepAlive).
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|(_, m)| {
                    m.join.is_none()
                        && m.sync.is_none()
                        && now.duration_since(m.last_seen) > m.session_timeout
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                tracing::info!(member = %id, "Kafka group member's session expired");
                g.remove(&id, now);
            }
            g.maybe_complete_join(now);
            g.pending
                .retain(|_, at| now.duration_since(*at) < Duration::from_secs(300));
        }
        groups.retain(|_, g| !(g.members.is_empty() && g.pending.is_empty()));
    }

    /// Members of `group` (0 when unknown).
    pub fn member_count(&self, group: &str) -> usize {
        lock(&self.groups).get(group).map_or(0, |g| g.members.len())
    }

    /// Names of the groups with members.
    pub fn groups(&self) -> Vec<String> {
        lock(&self.groups)
            .iter()
            .filter(|(_, g)| !g.members.is_empty())
            .map(|(n, _)| n.clone())
            .collect()
    }

    /// A group's state and members, if it has any.
    pub fn describe(&self, group: &str) -> Option<GroupInfo> {
        lock(&self.groups)
            .get(group)
            .filter(|g| !g.members.is_empty())
            .map(Group::info)
    }

    /// The topics the members of `group` subscribe to, when they are Kafka
    /// consumers (read from the metadata of the protocol chosen, or of
    /// their first before the first generation).
    pub fn subscribed_topics(&self, group: &str) -> BTreeSet<String> {
        let groups = lock(&self.groups);
        let Some(g) = groups.get(group) else {
            return BTreeSet::new();
        };
        if g.protocol_type != super::consumer_protocol::CONSUMER {
            return BTreeSet::new();
        }
        g.members
            .values()
            .filter_map(|m| {
                let chosen = m.protocols.iter().find(|(p, _)| *p == g.protocol);
                chosen.or(m.protocols.first())
            })
            .flat_map(|(_, md)| super::consumer_protocol::subscription_topics(md))
            .collect()
    }

    /// Forgets `group` (DeleteGroups; the caller checked it has no members).
    pub fn forget(&self, group: &str) {
        lock(&self.groups).remove(group);
    }

    /// The broker is stopping: waiting joins and syncs are answered.
    pub fn shutdown(&self) {
        let mut groups = lock(&self.groups);
        for g in groups.values_mut() {
            for m in g.members.values_mut() {
                if let Some(r) = m.join.take() {
                    let _ = r.send(Err(GroupError::CoordinatorNotAvailable));
                }
                if let Some(r) = m.sync.take() {
                    let _ = r.send(Err(GroupError::CoordinatorNotAvailable));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn join_req(member: &str, protocols: &[&str]) -> JoinRequest {
        JoinRequest {
            member_id: member.to_string(),
            client_id: "c".into(),
            client_host: "/127.0.0.1".into(),
            protocol_type: "consumer".into(),
            protocols: protocols
                .iter()
                .map(|p| (p.to_string(), Bytes::from(format!("md-{p}"))))
                .collect(),
            session_timeout: Duration::from_secs(10),
            rebalance_timeout: Duration::from_secs(10),
            may_require_member_id: true,
        }
    }

    /// A first join gets an id to come back with, then forms generation 1
    /// alone; a second member's join starts a rebalance that completes when
    /// the first rejoins, with a protocol both support.
    #[test]
    fn two_members_join_sync_and_rebalance() {
        let c = Classic::default();
        let (code, a) = c.join("g", join_req("", &["range"]), false).unwrap_err();
        assert_eq!(code, GroupError::MemberIdRequired);
        let mut ra = c
            .join("g", join_req(&a, &["range", "roundrobin"]), false)
            .unwrap();
        let ja = ra.try_recv().unwrap().unwrap();
        assert_eq!(
            (ja.generation, ja.leader.as_str(), ja.members.len()),
            (1, a.as_str(), 1)
        );
        let mut sa = c
            .sync("g", &a, 1, vec![(a.clone(), Bytes::from_static(b"all"))])
            .unwrap();
        assert_eq!(sa.try_recv().unwrap().unwrap().assignment.as_ref(), b"all");
        assert_eq!(c.heartbeat("g", &a, 1), Ok(()));

        let (_, b) = c
            .join("g", join_req("", &["roundrobin"]), false)
            .unwrap_err();
        let mut rb = c.join("g", join_req(&b, &["roundrobin"]), false).unwrap();
        assert!(
            rb.try_recv().is_err(),
            "waits for the first member to rejoin"
        );
        assert_eq!(
            c.heartbeat("g", &a, 1),
            Err(GroupError::RebalanceInProgress)
        );
        assert_eq!(
            c.check_commit("g", &a, 1),
            Ok(()),
            "the ending generation may commit"
        );
        let mut ra = c
            .join("g", join_req(&a, &["range", "roundrobin"]), false)
            .unwrap();
        let (ja, jb) = (
            ra.try_recv().unwrap().unwrap(),
            rb.try_recv().unwrap().unwrap(),
        );
        assert_eq!((ja.generation, jb.generation), (2, 2));
        assert_eq!(ja.protocol, "roundrobin", "the only protocol both support");
        assert_eq!(ja.members.len(), 2, "the leader sees every member");
        assert!(jb.members.is_empty());
        assert_eq!(
            c.check_commit("g", &a, 2),
            Err(GroupError::RebalanceInProgress)
        );
        assert_eq!(
            c.heartbeat("g", &b, 2),
            Ok(()),
            "joined members heartbeat meanwhile"
        );
        // The follower's sync waits for the leader's.
        let mut sb = c.sync("g", &b, 2, vec![]).unwrap();
        assert!(sb.try_recv().is_err());
        let assignments = vec![
            (a.clone(), Bytes::from_static(b"p0")),
            (b.clone(), Bytes::from_static(b"p1")),
        ];
        let mut sa = c.sync("g", &a, 2, assignments).unwrap();
        assert_eq!(sa.try_recv().unwrap().unwrap().assignment.as_ref(), b"p0");
        assert_eq!(sb.try_recv().unwrap().unwrap().assignment.as_ref(), b"p1");
        assert_eq!(c.check_commit("g", &b, 2), Ok(()));
        assert_eq!(
            c.check_commit("g", &b, 1),
            Err(GroupError::IllegalGeneration)
        );
        assert_eq!(c.check_commit("g", "", -1), Err(GroupError::UnknownMember));

        // The leader leaves: the other member rejoins alone and leads.
        assert_eq!(
            c.leave("g", &[a.clone(), "nobody".into()]),
            vec![true, false]
        );
        assert_eq!(
            c.heartbeat("g", &b, 2),
            Err(GroupError::RebalanceInProgress)
        );
        let mut rb = c.join("g", join_req(&b, &["roundrobin"]), false).unwrap();
        let jb = rb.try_recv().unwrap().unwrap();
        assert_eq!((jb.generation, jb.leader), (3, b.clone()));
        assert_eq!(c.leave("g", &[b]), vec![true]);
        assert_eq!(c.member_count("g"), 0);
        assert_eq!(
            c.check_commit("g", "", -1),
            Ok(()),
            "an empty group takes plain commits"
        );
    }

    #[test]
    fn joins_that_cannot_be_served_are_refused() {
        let c = Classic::default();
        let (_, a) = c.join("g", join_req("", &["range"]), false).unwrap_err();
        let _ra = c.join("g", join_req(&a, &["range"]), false).unwrap();
        let (_, b) = c.join("g", join_req("", &["sticky"]), false).unwrap_err();
        assert_eq!(
            c.join("g", join_req(&b, &["sticky"]), false).unwrap_err().0,
            GroupError::InconsistentProtocol
        );
        assert_eq!(
            c.join("g", join_req("made-up", &["range"]), false)
                .unwrap_err()
                .0,
            GroupError::UnknownMember
        );
        assert_eq!(
            c.join("other", join_req("", &["range"]), true)
                .unwrap_err()
                .0,
            GroupError::InUseByGrpc
        );
        assert_eq!(
            c.sync("g", &a, 7, vec![]).unwrap_err(),
            GroupError::IllegalGeneration
        );
    }

    /// A member that stops heartbeating is removed when its session
    /// expires, and the rest rebalance without it.
    #[test]
    fn an_expired_session_removes_the_member() {
        let c = Classic::default();
        let mut fast = join_req("", &["range"]);
        fast.may_require_member_id = false;
        fast.session_timeout = Duration::from_millis(1);
        let mut r = c.join("g", fast, false).unwrap();
        let j = r.try_recv().unwrap().unwrap();
        let mut synced = c.sync("g", &j.member_id, j.generation, vec![]).unwrap();
        assert!(
            synced.try_recv().unwrap().is_ok(),
            "the only member leads and is answered"
        );
        let deadline = Instant::now() + Duration::from_secs(5);
        while c.member_count("g") > 0 {
            assert!(Instant::now() < deadline, "the session never expired");
            std::thread::yield_now();
            c.expire();
        }
        assert_eq!(
            c.heartbeat("g", &j.member_id, j.generation),
            Err(GroupError::UnknownMember)
        );
    }
}
