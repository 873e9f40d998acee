//! Group membership: the session with the group coordinator that joins,
//! heartbeats, handles revocations and assignments, and rejoins when the
//! session is lost. Kept apart because a consumer of given partitions
//! (`consumer_assigned`) never runs it, and because the rebalance protocol's
//! order lives here in one place: stop fetching a revoked partition, commit
//! it, forget it, then tell the coordinator. A member's auto-commit ticks
//! in this same loop, so it never runs in the middle of a revocation.

use std::sync::Arc;
use std::time::Duration;

use brook_protocol::v1::{self, member_event::Event};
use tokio::sync::{mpsc, oneshot};
use tokio_stream::wrappers::ReceiverStream;

use super::commit::commit_positions;
use super::fetcher::{start_fetchers, stop_all_fetchers, stop_fetchers};
use super::{Consumer, Shared, Tp, lock};
use crate::error::Result;

type Session = (
    tonic::Streaming<v1::MemberEvent>,
    mpsc::Sender<v1::JoinMessage>,
);

pub(super) async fn join(shared: &Arc<Shared>) -> Result<Session> {
    let c = &shared.config;
    let (requests, rx) = mpsc::channel(16);
    let join = v1::JoinGroup {
        group: c.group.clone(),
        topics: c.topics.clone(),
        client_id: c.client_id.clone(),
        session_timeout_ms: c.session_timeout.as_millis() as u32,
        strategy: 0,
    };
    let _ = requests
        .send(v1::JoinMessage {
            message: Some(v1::join_message::Message::Join(join)),
        })
        .await;
    let events = shared
        .client
        .groups()
        .join(ReceiverStream::new(rx))
        .await?
        .into_inner();
    Ok((events, requests))
}

/// Starts fetching `tps` with backoff until it works, or until a newer
/// generation took over (its own Assignment starts what it still owns).
async fn retry_start(shared: Arc<Shared>, tps: Vec<Tp>, generation: u64) {
    // A partition revoked meanwhile bumps its epoch: it is then left alone.
    let epochs: Vec<u64> = {
        let st = lock(&shared);
        tps.iter()
            .map(|tp| st.epochs.get(tp).copied().unwrap_or(0))
            .collect()
    };
    let mut delay = Duration::from_millis(100);
    loop {
        tokio::time::sleep(delay).await;
        if lock(&shared).generation != generation {
            return;
        }
        match start_fetchers(&shared, &tps, Some(&epochs)).await {
            Ok(()) => return,
            Err(e) => {
                tracing::warn!(error = %e, "starting fetchers failed; retrying");
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

/// Drives the membership session: heartbeats, revocations, assignments, auto-commit.
pub(super) async fn membership(
    shared: Arc<Shared>,
    mut events: tonic::Streaming<v1::MemberEvent>,
    mut requests: mpsc::Sender<v1::JoinMessage>,
    mut stop: oneshot::Receiver<()>,
) -> Result<()> {
    let mut heartbeat = tokio::time::interval(shared.config.session_timeout / 3);
    let auto = shared
        .config
        .auto_commit
        .unwrap_or(Duration::from_secs(3600 * 24 * 365));
    let mut auto_commit = tokio::time::interval(auto);
    auto_commit.tick().await;
    loop {
        tokio::select! {
            ev = events.message() => match ev.ok().flatten().and_then(|e| e.event) {
                Some(Event::Joined(j)) => lock(&shared).member_id = j.member_id,
                Some(Event::Revoke(r)) => {
                    let tps: Vec<Tp> = r.partitions.iter().flat_map(|t| t.partitions.iter().map(|p| (Arc::from(t.topic.as_str()), *p))).collect();
                    stop_fetchers(&shared, &tps);
                    if let Some(cb) = &shared.config.on_revoke {
                        let named: Vec<(String, u32)> = tps.iter().map(|(t, p)| (t.to_string(), *p)).collect();
                        cb(&named);
                    }
                    if let Err(e) = commit_positions(&shared, Some(&tps)).await {
                        tracing::warn!(error = %e, "commit before revocation failed");
                    }
                    // Forget them: a later commit must never write offsets for
                    // partitions another member now owns.
                    lock(&shared).positions.retain(|tp, _| !tps.contains(tp));
                    let done = v1::join_message::Message::RevokeDone(v1::RevokeDone { generation: r.generation });
                    let _ = requests.send(v1::JoinMessage { message: Some(done) }).await;
                }
                Some(Event::Assignment(a)) => {
                    lock(&shared).generation = a.generation;
                    let tps: Vec<Tp> = a.partitions.iter().flat_map(|t| t.partitions.iter().map(|p| (Arc::from(t.topic.as_str()), *p))).collect();
                    let new: Vec<Tp> = {
                        let mut st = lock(&shared);
                        // Only what this member owns now may be committed.
                        st.positions.retain(|tp, _| tps.contains(tp));
                        tps.into_iter().filter(|tp| !st.fetchers.contains_key(tp)).collect()
                    };
                    if let Err(e) = start_fetchers(&shared, &new, None).await {
                        // Keep trying in the background, or these partitions
                        // would stay assigned here and never be read.
                        tracing::warn!(error = %e, "starting fetchers failed; retrying");
                        tokio::spawn(retry_start(Arc::clone(&shared), new, a.generation));
                    }
                }
                None => {
                    // The broker restarted, or removed this member (session
                    // timeout): its partitions may be someone else's now.
                    tracing::warn!(group = %shared.config.group, "group session ended; rejoining");
                    stop_all_fetchers(&shared);
                    // Processed but uncommitted records come again (at-least-once).
                    lock(&shared).positions.clear();
                    match rejoin(&shared, &mut stop).await {
                        Some((e, r)) => (events, requests) = (e, r),
                        // Closed while rejoining: nothing is left to commit.
                        None => return Ok(()),
                    }
                }
            },
            _ = heartbeat.tick() => {
                let _ = requests.send(v1::JoinMessage { message: Some(v1::join_message::Message::Heartbeat(v1::Heartbeat {})) }).await;
            }
            _ = auto_commit.tick(), if shared.config.auto_commit.is_some() => {
                if let Err(e) = commit_positions(&shared, None).await {
                    tracing::debug!(error = %e, "auto-commit failed");
                }
            }
            _ = &mut stop => {
                // A rebalance may have moved the generation on with its
                // Assignment still unread: apply pending events and commit again.
                let mut committed = Ok(());
                for _ in 0..20 {
                    committed = commit_positions(&shared, None).await;
                    match &committed {
                        Err(e) if matches!(e.reason(), Some("STALE_GENERATION" | "UNKNOWN_MEMBER")) => {}
                        _ => break,
                    }
                    let pending = tokio::time::timeout(Duration::from_millis(100), events.message()).await;
                    match pending.ok().and_then(|r| r.ok()).flatten().and_then(|e| e.event) {
                        Some(Event::Assignment(a)) => lock(&shared).generation = a.generation,
                        Some(Event::Revoke(r)) => {
                            let done = v1::join_message::Message::RevokeDone(v1::RevokeDone { generation: r.generation });
                            let _ = requests.send(v1::JoinMessage { message: Some(done) }).await;
                        }
                        _ => {}
                    }
                }
                stop_all_fetchers(&shared);
                return committed; // dropping the request stream leaves the group
            }
        }
    }
}

/// Joins again, with backoff, until it works (`None` if the consumer is
/// closed meanwhile).
async fn rejoin(shared: &Arc<Shared>, stop: &mut oneshot::Receiver<()>) -> Option<Session> {
    let mut delay = Duration::from_millis(100);
    loop {
        tokio::select! {
            _ = &mut *stop => return None,
            () = tokio::time::sleep(delay) => {}
        }
        match join(shared).await {
            Ok(session) => return Some(session),
            Err(e) => {
                tracing::warn!(group = %shared.config.group, error = %e, "rejoining the group failed; retrying");
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

impl Consumer {
    /// Partitions this consumer fetches now.
    ///
    /// ```no_run
    /// # async fn demo(billing: brook_client::Consumer) -> brook_client::Result<()> {
    /// // Empty until the group assigned partitions; changes with every rebalance.
    /// for (topic, partition) in billing.assignment() {
    ///     println!("this billing member reads {topic}/{partition}");
    /// }
    /// # Ok(()) }
    /// ```
    pub fn assignment(&self) -> Vec<(String, u32)> {
        let mut v: Vec<(String, u32)> = lock(&self.shared)
            .fetchers
            .keys()
            .map(|(t, p)| (t.to_string(), *p))
            .collect();
        v.sort();
        v
    }
}
