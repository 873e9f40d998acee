//! A minimal consumer-group member over the raw gRPC API, for the tests:
//! it joins, heartbeats, acknowledges revocations after committing, and
//! consumes its partitions with fetch + commit at every batch end.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brook_protocol::batch::batches;
use brook_protocol::v1::{self, member_event::Event};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tonic::Streaming;

use crate::Broker;

/// A (member, partition, offset) for every record a member processed.
pub type Consumed = Arc<Mutex<Vec<(String, u32, u64)>>>;

/// A membership session, driven by hand.
pub struct Session {
    /// Messages to the broker.
    pub out: mpsc::Sender<v1::JoinMessage>,
    /// Events from the broker.
    pub events: Streaming<v1::MemberEvent>,
    /// This member's id.
    pub member_id: String,
}

impl Session {
    /// Joins `group` for `topic` and waits for the member id.
    pub async fn join(
        b: &Broker,
        group: &str,
        topic: &str,
        client_id: &str,
        session_timeout_ms: u32,
    ) -> Session {
        Session::join_over(
            b.channel().await,
            group,
            topic,
            client_id,
            session_timeout_ms,
        )
        .await
    }

    /// Like [`Session::join`], over a given connection.
    pub async fn join_over(
        channel: tonic::transport::Channel,
        group: &str,
        topic: &str,
        client_id: &str,
        session_timeout_ms: u32,
    ) -> Session {
        let (out, rx) = mpsc::channel(16);
        let join = v1::JoinGroup {
            group: group.into(),
            topics: vec![topic.into()],
            client_id: client_id.into(),
            session_timeout_ms,
            strategy: 0,
        };
        out.send(v1::JoinMessage {
            message: Some(v1::join_message::Message::Join(join)),
        })
        .await
        .unwrap();
        let mut client = v1::groups_client::GroupsClient::new(channel);
        let mut events = client
            .join(ReceiverStream::new(rx))
            .await
            .expect("join")
            .into_inner();
        let first = tokio::time::timeout(crate::DEADLINE, events.message())
            .await
            .expect("joined in time")
            .unwrap()
            .unwrap();
        let Some(Event::Joined(j)) = first.event else {
            panic!("expected Joined, got {first:?}")
        };
        Session {
            out,
            events,
            member_id: j.member_id,
        }
    }

    /// The next event, or `None` when the broker ended the session.
    pub async fn next(&mut self) -> Option<Event> {
        tokio::time::timeout(crate::DEADLINE, self.events.message())
            .await
            .expect("an event in time")
            .ok()
            .flatten()
            .and_then(|e| e.event)
    }

    /// Sends a heartbeat.
    pub async fn heartbeat(&self) {
        let _ = self
            .out
            .send(v1::JoinMessage {
                message: Some(v1::join_message::Message::Heartbeat(v1::Heartbeat {})),
            })
            .await;
    }

    /// Acknowledges a revocation.
    pub async fn revoke_done(&self, generation: u64) {
        let msg = v1::join_message::Message::RevokeDone(v1::RevokeDone { generation });
        let _ = self.out.send(v1::JoinMessage { message: Some(msg) }).await;
    }
}

/// Partitions of an event's topic list (the tests use one topic).
pub fn partitions(tps: &[v1::TopicPartitions]) -> Vec<u32> {
    tps.iter().flat_map(|t| t.partitions.clone()).collect()
}

/// Commits `positions` for the member; returns the broker's answer.
pub async fn commit(
    b: &Broker,
    group: &str,
    topic: &str,
    member: &str,
    generation: u64,
    positions: &BTreeMap<u32, u64>,
) -> Result<(), tonic::Status> {
    let offsets = positions
        .iter()
        .map(|(&partition, &offset)| v1::OffsetCommit {
            topic: topic.into(),
            partition,
            offset,
            metadata: String::new(),
        })
        .collect();
    let req = v1::CommitRequest {
        group: group.into(),
        member_id: member.into(),
        generation,
        offsets,
        durable: false,
    };
    v1::groups_client::GroupsClient::new(b.channel().await)
        .commit(req)
        .await
        .map(|_| ())
}

/// Committed offsets of a group for one topic.
pub async fn committed(b: &Broker, group: &str, topic: &str) -> BTreeMap<u32, u64> {
    let req = v1::FetchCommittedRequest {
        group: group.into(),
        topic: topic.into(),
    };
    let r = v1::groups_client::GroupsClient::new(b.channel().await)
        .fetch_committed(req)
        .await
        .unwrap()
        .into_inner();
    r.offsets
        .into_iter()
        .map(|o| (o.partition, o.offset))
        .collect()
}

/// Runs a member until `stop` turns true: consumes its partitions, commits
/// after every batch, commits and acknowledges revocations, and on stop
/// commits and leaves (closing its stream).
pub async fn run_member(
    b: Arc<Broker>,
    group: String,
    topic: String,
    name: String,
    consumed: Consumed,
    mut stop: watch::Receiver<bool>,
) {
    let mut s = Session::join(&b, &group, &topic, &name, 10_000).await;
    let mut consumer = b.consumer().await;
    let mut generation = 0;
    let mut positions: BTreeMap<u32, u64> = BTreeMap::new();
    let mut beat = tokio::time::interval(Duration::from_millis(500));
    let mut poll = tokio::time::interval(Duration::from_millis(5));
    loop {
        tokio::select! {
            ev = s.events.message() => match ev.ok().flatten().and_then(|e| e.event) {
                Some(Event::Revoke(r)) => {
                    let gone = partitions(&r.partitions);
                    let mine: BTreeMap<u32, u64> = positions.iter().filter(|(p, _)| gone.contains(p)).map(|(p, o)| (*p, *o)).collect();
                    commit(&b, &group, &topic, &s.member_id, generation, &mine).await.expect("commit before giving a partition up");
                    positions.retain(|p, _| !gone.contains(p));
                    s.revoke_done(r.generation).await;
                }
                Some(Event::Assignment(a)) => {
                    generation = a.generation;
                    let now = partitions(&a.partitions);
                    let start = committed(&b, &group, &topic).await;
                    positions.retain(|p, _| now.contains(p));
                    for p in now {
                        positions.entry(p).or_insert_with(|| start.get(&p).copied().unwrap_or(0));
                    }
                }
                Some(Event::Joined(_)) => {}
                None => return,
            },
            _ = beat.tick() => s.heartbeat().await,
            _ = async { let _ = stop.wait_for(|v| *v).await; } => {
                // A rebalance may have moved the generation on with its
                // Assignment still unread: take pending events, then commit again.
                for _ in 0..50 {
                    match commit(&b, &group, &topic, &s.member_id, generation, &positions).await {
                        Err(e) if e.code() == tonic::Code::FailedPrecondition => {}
                        _ => break,
                    }
                    let pending = tokio::time::timeout(Duration::from_millis(100), s.events.message()).await;
                    match pending.ok().and_then(|r| r.ok()).flatten().and_then(|e| e.event) {
                        Some(Event::Assignment(a)) => {
                            generation = a.generation;
                            let now = partitions(&a.partitions);
                            positions.retain(|p, _| now.contains(p));
                        }
                        Some(Event::Revoke(r)) => {
                            let gone = partitions(&r.partitions);
                            let mine: BTreeMap<u32, u64> = positions.iter().filter(|(p, _)| gone.contains(p)).map(|(p, o)| (*p, *o)).collect();
                            let _ = commit(&b, &group, &topic, &s.member_id, generation, &mine).await;
                            positions.retain(|p, _| !gone.contains(p));
                            s.revoke_done(r.generation).await;
                        }
                        _ => {}
                    }
                }
                return; // dropping the session closes the stream: the member leaves
            }
            _ = poll.tick() => {
                for (p, pos) in positions.clone() {
                    let req = v1::FetchRequest { topic: topic.clone(), partition: p, offset: pos, ..Default::default() };
                    let r = consumer.fetch(req).await.expect("fetch").into_inner();
                    if r.batches.is_empty() {
                        continue;
                    }
                    {
                        let mut log = consumed.lock().unwrap();
                        for batch in batches(r.batches) {
                            for rec in batch.unwrap().records() {
                                let rec = rec.unwrap();
                                if rec.offset >= pos {
                                    log.push((name.clone(), p, rec.offset));
                                }
                            }
                        }
                    }
                    positions.insert(p, r.next_offset);
                    let one: BTreeMap<u32, u64> = [(p, r.next_offset)].into();
                    // A commit can lose the race with a new generation; the position stays local.
                    let _ = commit(&b, &group, &topic, &s.member_id, generation, &one).await;
                }
            }
        }
    }
}
