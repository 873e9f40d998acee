//! Group membership: who is in each group, what each member owns, and the
//! two-step rebalance that keeps a partition from ever having two members.
//!
//! A join, a leave or an expiry computes a new target assignment. Members
//! losing partitions are sent `Revoke` and must answer `RevokeDone` (after
//! committing) — or leave, or be expelled when their session times out.
//! Only when no revocation is outstanding does the generation advance and
//! every member receive its new `Assignment`, so a partition reaches its new
//! owner only after its old owner stopped. All of this happens under one
//! lock per call and never waits: events go out on unbounded channels (they
//! are few: one per member per rebalance).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use brook_protocol::v1;
use tokio::sync::mpsc;
use tonic::Status;

use super::assign::{MemberView, Strategy, Tp, assign};
use crate::error::{ApiError, ApiResult, Reason};

/// Where a member's events go.
pub type EventTx = mpsc::UnboundedSender<Result<v1::MemberEvent, Status>>;

/// What a joining member asks for.
pub struct JoinSpec {
    /// Group name.
    pub group: String,
    /// Topics to consume.
    pub topics: BTreeSet<String>,
    /// Free text for DescribeGroup.
    pub client_id: String,
    /// The member's address.
    pub host: String,
    /// Expiry without heartbeats.
    pub session_timeout: Duration,
    /// Assignment strategy.
    pub strategy: Strategy,
}

struct Member {
    client_id: String,
    host: String,
    topics: BTreeSet<String>,
    session_timeout: Duration,
    last_seen: Instant,
    /// What the member may consume now.
    assignment: Vec<Tp>,
    /// Set while a revocation is outstanding.
    revoke_deadline: Option<Instant>,
    tx: EventTx,
}

#[derive(Default)]
struct Group {
    strategy: Option<Strategy>,
    generation: u64,
    members: BTreeMap<String, Member>,
    /// Members that still owe RevokeDones, with how many (one per Revoke sent).
    pending: BTreeMap<String, u32>,
    target: BTreeMap<String, Vec<Tp>>,
}

/// A member as DescribeGroup shows it.
pub struct MemberInfo {
    /// Member id.
    pub id: String,
    /// Client id.
    pub client_id: String,
    /// Address.
    pub host: String,
    /// Current assignment.
    pub assignment: Vec<Tp>,
}

/// A group's membership as DescribeGroup shows it.
pub struct GroupInfo {
    /// Empty, rebalancing or stable.
    pub state: v1::GroupState,
    /// Current generation.
    pub generation: u64,
    /// Strategy in use (while there are members).
    pub strategy: Option<Strategy>,
    /// Union of the members' topics.
    pub topics: BTreeSet<String>,
    /// Members by id.
    pub members: Vec<MemberInfo>,
}

impl Group {
    fn state(&self) -> v1::GroupState {
        match (self.members.is_empty(), self.pending.is_empty()) {
            (true, _) => v1::GroupState::Empty,
            (false, false) => v1::GroupState::Rebalancing,
            (false, true) => v1::GroupState::Stable,
        }
    }

    fn send(&self, id: &str, event: v1::member_event::Event) {
        if let Some(m) = self.members.get(id) {
            let _ = m.tx.send(Ok(v1::MemberEvent { event: Some(event) }));
        }
    }

    /// Computes the target assignment and starts revocations; completes at once if none are needed.
    fn rebalance(&mut self, partition_count: &dyn Fn(&str) -> Option<u32>) {
        let topics: BTreeSet<&String> = self.members.values().flat_map(|m| &m.topics).collect();
        let partitions: BTreeMap<String, u32> = topics
            .into_iter()
            .filter_map(|t| Some((t.clone(), partition_count(t)?)))
            .collect();
        let views: Vec<MemberView<'_>> = self
            .members
            .iter()
            .map(|(id, m)| MemberView {
                id,
                topics: &m.topics,
                current: &m.assignment,
            })
            .collect();
        let target = assign(
            self.strategy.unwrap_or(Strategy::Sticky),
            &views,
            &partitions,
        );
        let now = Instant::now();
        let mut revokes = Vec::new();
        for (id, m) in self.members.iter_mut() {
            let keep = &target[id];
            let revoked: Vec<Tp> = m
                .assignment
                .iter()
                .filter(|tp| !keep.contains(tp))
                .cloned()
                .collect();
            if !revoked.is_empty() {
                m.assignment.retain(|tp| keep.contains(tp));
                m.revoke_deadline.get_or_insert(now + m.session_timeout);
                revokes.push((id.clone(), revoked));
            }
        }
        for (id, revoked) in revokes {
            let event = v1::member_event::Event::Revoke(v1::Revoke {
                generation: self.generation,
                partitions: by_topic(&revoked),
            });
            self.send(&id, event);
            *self.pending.entry(id).or_default() += 1;
        }
        self.target = target;
        if self.pending.is_empty() {
            self.complete();
        }
    }

    /// Every revocation is done: a new generation with the target assignment.
    fn complete(&mut self) {
        self.generation += 1;
        let generation = self.generation;
        let target = std::mem::take(&mut self.target);
        for (id, m) in self.members.iter_mut() {
            m.assignment = target.get(id).cloned().unwrap_or_default();
            m.revoke_deadline = None;
        }
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let partitions = by_topic(&self.members[&id].assignment);
            self.send(
                &id,
                v1::member_event::Event::Assignment(v1::Assignment {
                    generation,
                    partitions,
                }),
            );
        }
    }

    fn remove(&mut self, id: &str, partition_count: &dyn Fn(&str) -> Option<u32>) {
        if self.members.remove(id).is_none() {
            return;
        }
        self.pending.remove(id);
        if self.members.is_empty() {
            // Fences the departed members' commits.
            self.generation += 1;
            self.pending.clear();
            self.target.clear();
            self.strategy = None;
        } else {
            self.rebalance(partition_count);
        }
    }
}

/// Groups the partitions of an assignment by topic, for the wire.
pub fn by_topic(tps: &[Tp]) -> Vec<v1::TopicPartitions> {
    let mut map: BTreeMap<&str, Vec<u32>> = BTreeMap::new();
    for (t, p) in tps {
        map.entry(t).or_default().push(*p);
    }
    map.into_iter()
        .map(|(topic, mut partitions)| {
            partitions.sort_unstable();
            v1::TopicPartitions {
                topic: topic.to_string(),
                partitions,
            }
        })
        .collect()
}

/// Every group's membership.
pub struct Coordinator {
    groups: Mutex<HashMap<String, Group>>,
    next_member: AtomicU64,
    /// Makes member ids unique across broker restarts.
    epoch: String,
}

impl Default for Coordinator {
    fn default() -> Self {
        Coordinator {
            groups: Mutex::default(),
            next_member: AtomicU64::new(1),
            epoch: format!("{:x}", brook_storage::now_ms()),
        }
    }
}

impl Coordinator {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Group>> {
        self.groups.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a member and rebalances; returns its member id (sent as `Joined` first).
    pub fn join(
        &self,
        spec: JoinSpec,
        tx: EventTx,
        partition_count: &dyn Fn(&str) -> Option<u32>,
    ) -> ApiResult<String> {
        let mut groups = self.lock();
        let g = groups.entry(spec.group.clone()).or_default();
        match g.strategy {
            Some(s) if s != spec.strategy => {
                return Err(ApiError::new(
                    Reason::InconsistentStrategy,
                    format!(
                        "group {:?} uses the {s:?} assignment strategy; a member asked for {:?}",
                        spec.group, spec.strategy
                    ),
                )
                .with("group", &spec.group));
            }
            _ => g.strategy = Some(spec.strategy),
        }
        let n = self.next_member.fetch_add(1, Ordering::Relaxed);
        let prefix = if spec.client_id.is_empty() {
            "member"
        } else {
            &spec.client_id
        };
        let id = format!("{prefix}-{}-{n}", self.epoch);
        let joined = v1::member_event::Event::Joined(v1::Joined {
            member_id: id.clone(),
            session_timeout_ms: spec.session_timeout.as_millis() as u32,
        });
        let _ = tx.send(Ok(v1::MemberEvent {
            event: Some(joined),
        }));
        g.members.insert(
            id.clone(),
            Member {
                client_id: spec.client_id,
                host: spec.host,
                topics: spec.topics,
                session_timeout: spec.session_timeout,
                last_seen: Instant::now(),
                assignment: Vec::new(),
                revoke_deadline: None,
                tx,
            },
        );
        tracing::info!(group = %spec.group, member = %id, members = g.members.len(), "member joined");
        g.rebalance(partition_count);
        Ok(id)
    }

    /// Removes a member (stream closed) and rebalances the rest.
    pub fn leave(&self, group: &str, member: &str, partition_count: &dyn Fn(&str) -> Option<u32>) {
        if let Some(g) = self.lock().get_mut(group)
            && g.members.contains_key(member)
        {
            g.remove(member, partition_count);
            tracing::info!(group, member, members = g.members.len(), "member left");
        }
    }

    /// Records a heartbeat; false if the member is no longer in the group.
    pub fn heartbeat(&self, group: &str, member: &str) -> bool {
        let mut groups = self.lock();
        match groups
            .get_mut(group)
            .and_then(|g| g.members.get_mut(member))
        {
            Some(m) => {
                m.last_seen = Instant::now();
                true
            }
            None => false,
        }
    }

    /// A member finished giving up its revoked partitions.
    pub fn revoke_done(&self, group: &str, member: &str) -> bool {
        let mut groups = self.lock();
        let Some(g) = groups.get_mut(group) else {
            return false;
        };
        let Some(m) = g.members.get_mut(member) else {
            return false;
        };
        m.last_seen = Instant::now();
        // Each Revoke is acknowledged on its own: partitions revoked by a
        // later Revoke may still be in use until its RevokeDone arrives.
        let Some(owed) = g.pending.get_mut(member) else {
            return true;
        };
        *owed -= 1;
        if *owed == 0 {
            g.pending.remove(member);
            m.revoke_deadline = None;
            if g.pending.is_empty() {
                g.complete();
            }
        }
        true
    }

    /// Rejects commits from members that are gone or from an old generation.
    pub fn check_commit(&self, group: &str, member: &str, generation: u64) -> ApiResult<()> {
        let groups = self.lock();
        let g = groups.get(group);
        let members = g.map_or(0, |g| g.members.len());
        if member.is_empty() {
            return match members {
                0 => Ok(()),
                n => Err(ApiError::new(
                    Reason::GroupNotEmpty,
                    format!(
                        "group {group:?} has {}: a standalone commit (no member id) needs an empty group",
                        super::commits::members(n)
                    ),
                )
                .with("group", group)),
            };
        }
        let Some(g) = g.filter(|g| g.members.contains_key(member)) else {
            return Err(ApiError::new(
                Reason::UnknownMember,
                format!(
                    "member {member:?} is not in group {group:?} (it left or was removed): its commit is rejected"
                ),
            )
            .with("group", group));
        };
        if g.generation != generation {
            return Err(ApiError::new(
                Reason::StaleGeneration,
                format!(
                    "commit for generation {generation} of group {group:?}, which is at generation {}: stale member",
                    g.generation
                ),
            )
            .with("group", group)
            .with("generation", g.generation));
        }
        Ok(())
    }

    /// A topic gained partitions or was deleted: every group with a member
    /// subscribed to it rebalances, so that new partitions get owners and a
    /// deleted topic's are taken from their members (as Kafka does on a
    /// metadata change).
    pub fn topic_changed(&self, topic: &str, partition_count: &dyn Fn(&str) -> Option<u32>) {
        let mut groups = self.lock();
        for (name, g) in groups.iter_mut() {
            if g.members
                .values()
                .any(|m| m.topics.iter().any(|t| t == topic))
            {
                tracing::info!(group = %name, topic, "topic's partitions changed; rebalancing");
                g.rebalance(partition_count);
            }
        }
    }

    /// Removes members whose session or revocation deadline passed.
    pub fn expire(&self, partition_count: &dyn Fn(&str) -> Option<u32>) {
        let now = Instant::now();
        let mut groups = self.lock();
        for (name, g) in groups.iter_mut() {
            let expired: Vec<String> = g
                .members
                .iter()
                .filter(|(_, m)| {
                    now > m.last_seen + m.session_timeout
                        || m.revoke_deadline.is_some_and(|d| now > d)
                })
                .map(|(id, _)| id.clone())
                .collect();
            for id in expired {
                tracing::warn!(group = %name, member = %id, "member missed its session timeout; removing it");
                g.remove(&id, partition_count);
            }
        }
        groups.retain(|_, g| !g.members.is_empty() || g.generation > 0);
    }

    /// Membership of one group, if it has ever had members since start.
    pub fn describe(&self, group: &str) -> Option<GroupInfo> {
        let groups = self.lock();
        let g = groups.get(group)?;
        Some(GroupInfo {
            state: g.state(),
            generation: g.generation,
            strategy: g.strategy,
            topics: g
                .members
                .values()
                .flat_map(|m| m.topics.iter().cloned())
                .collect(),
            members: g
                .members
                .iter()
                .map(|(id, m)| MemberInfo {
                    id: id.clone(),
                    client_id: m.client_id.clone(),
                    host: m.host.clone(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    /// Names of groups with members or a generation.
    pub fn groups(&self) -> Vec<String> {
        self.lock().keys().cloned().collect()
    }

    /// Active members of a group.
    pub fn member_count(&self, group: &str) -> usize {
        self.lock().get(group).map_or(0, |g| g.members.len())
    }

    /// Forgets an empty group's membership record.
    pub fn forget(&self, group: &str) {
        let mut groups = self.lock();
        if groups.get(group).is_some_and(|g| g.members.is_empty()) {
            groups.remove(group);
        }
    }

    /// Ends every membership stream (broker shutdown).
    pub fn shutdown(&self) {
        for g in self.lock().values_mut() {
            g.members.clear();
            g.pending.clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(group: &str, client: &str) -> JoinSpec {
        JoinSpec {
            group: group.into(),
            topics: ["t".to_string()].into(),
            client_id: client.into(),
            host: "test".into(),
            session_timeout: Duration::from_secs(30),
            strategy: Strategy::Sticky,
        }
    }

    fn events(
        rx: &mut mpsc::UnboundedReceiver<Result<v1::MemberEvent, Status>>,
    ) -> Vec<v1::member_event::Event> {
        let mut out = Vec::new();
        while let Ok(e) = rx.try_recv() {
            out.push(e.unwrap().event.unwrap());
        }
        out
    }

    fn owned(events: &[v1::member_event::Event]) -> Option<(u64, Vec<u32>)> {
        events.iter().rev().find_map(|e| match e {
            v1::member_event::Event::Assignment(a) => Some((
                a.generation,
                a.partitions
                    .iter()
                    .flat_map(|t| t.partitions.clone())
                    .collect(),
            )),
            _ => None,
        })
    }

    #[test]
    fn a_partition_moves_only_after_its_owner_revoked_it() {
        let c = Coordinator::default();
        let count = |_: &str| Some(4);
        let (tx1, mut rx1) = mpsc::unbounded_channel();
        let a = c.join(spec("g", "a"), tx1, &count).unwrap();
        assert_eq!(owned(&events(&mut rx1)), Some((1, vec![0, 1, 2, 3])));

        let (tx2, mut rx2) = mpsc::unbounded_channel();
        let b = c.join(spec("g", "b"), tx2, &count).unwrap();
        let ev1 = events(&mut rx1);
        assert!(
            matches!(&ev1[..], [v1::member_event::Event::Revoke(r)] if r.partitions[0].partitions.len() == 2)
        );
        assert_eq!(
            owned(&events(&mut rx2)),
            None,
            "b gets nothing while a still owns it"
        );
        assert_eq!(c.describe("g").unwrap().state, v1::GroupState::Rebalancing);
        // a's commits for the current generation still count during the revocation.
        c.check_commit("g", &a, 1).unwrap();

        assert!(c.revoke_done("g", &a));
        let (ga, pa) = owned(&events(&mut rx1)).unwrap();
        let (gb, pb) = owned(&events(&mut rx2)).unwrap();
        assert_eq!((ga, gb), (2, 2));
        assert_eq!(pa.len() + pb.len(), 4);
        assert!(pa.iter().all(|p| !pb.contains(p)));
        // A zombie's commit from generation 1 is fenced.
        assert_eq!(
            c.check_commit("g", &a, 1).unwrap_err().code(),
            tonic::Code::FailedPrecondition
        );
        c.check_commit("g", &b, 2).unwrap();

        c.leave("g", &b, &count);
        assert_eq!(
            owned(&events(&mut rx1)),
            Some((3, vec![0, 1, 2, 3])),
            "a leaving member's partitions go at once"
        );
        assert!(
            c.check_commit("g", &b, 3).is_err(),
            "a member that left cannot commit"
        );
        assert!(
            c.check_commit("g", "", 0).is_err(),
            "standalone commits need an empty group"
        );
        c.leave("g", &a, &count);
        c.check_commit("g", "", 0).unwrap();
    }

    #[test]
    fn every_revoke_must_be_acknowledged_before_partitions_move() {
        let c = Coordinator::default();
        let count = |_: &str| Some(6);
        let (tx1, mut rx1) = mpsc::unbounded_channel();
        let a = c.join(spec("g", "a"), tx1, &count).unwrap();
        events(&mut rx1);
        let (tx2, mut rx2) = mpsc::unbounded_channel();
        c.join(spec("g", "b"), tx2, &count).unwrap();
        let (tx3, mut rx3) = mpsc::unbounded_channel();
        c.join(spec("g", "c"), tx3, &count).unwrap();
        let revokes = events(&mut rx1)
            .iter()
            .filter(|e| matches!(e, v1::member_event::Event::Revoke(_)))
            .count();
        assert_eq!(revokes, 2, "a is asked twice");
        c.revoke_done("g", &a);
        assert_eq!(
            owned(&events(&mut rx2)),
            None,
            "one RevokeDone does not answer two Revokes"
        );
        c.revoke_done("g", &a);
        let (pa, pb, pc) = (
            owned(&events(&mut rx1)).unwrap(),
            owned(&events(&mut rx2)).unwrap(),
            owned(&events(&mut rx3)).unwrap(),
        );
        assert_eq!((pa.1.len(), pb.1.len(), pc.1.len()), (2, 2, 2));
    }

    #[test]
    fn silent_members_expire() {
        let c = Coordinator::default();
        let count = |_: &str| Some(2);
        let (tx, _rx) = mpsc::unbounded_channel();
        let mut s = spec("g", "a");
        s.session_timeout = Duration::from_millis(1);
        let a = c.join(s, tx, &count).unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while c.member_count("g") > 0 {
            assert!(Instant::now() < deadline, "member never expired");
            c.expire(&count);
        }
        assert!(!c.heartbeat("g", &a));
    }
}
