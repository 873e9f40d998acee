//! The queue consumer's background task: sends settlements in batches (a
//! range per run of consecutive offsets with the same outcome), and extends
//! the leases of messages still being processed before they run out.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use brook_protocol::v1;
use tokio::sync::{mpsc, oneshot};

use crate::client::Client;
use crate::consumer::fetcher::retry_quietly;
use crate::error::{Error, Result};
use crate::producer::now_ms;

/// What a consumer says about one message.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Verdict {
    Ack,
    Nack {
        reason: String,
        delay: Option<Duration>,
    },
    Reject {
        reason: String,
    },
    Release,
}

/// A message's identity: partition and offset.
pub(crate) type Tag = (u32, u64);

pub(crate) enum Command {
    Settle(Tag, Verdict),
    /// Answered once everything settled before it was sent.
    Flush(oneshot::Sender<Result<()>>),
}

/// Messages delivered and not yet settled, with when their lease ends (ms).
pub(crate) type Held = Arc<Mutex<BTreeMap<Tag, i64>>>;

/// What the acker shares with the consumer.
pub(crate) struct AckerConfig {
    pub client: Client,
    pub group: String,
    pub consumer_id: String,
    pub batch: usize,
    pub interval: Duration,
    /// Extend leases this long before they end (none yet, or zero: never).
    pub extend_before: Arc<Mutex<Option<Duration>>>,
    pub held: Held,
    /// Settlements the broker answered "not held" to (the lease had ended).
    pub lost: Arc<std::sync::atomic::AtomicU64>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Joins settlements into ranges: consecutive offsets of one partition with
/// the same verdict.
fn ranges(pending: &[(Tag, Verdict)]) -> Vec<v1::Acknowledgement> {
    let mut sorted: Vec<&(Tag, Verdict)> = pending.iter().collect();
    sorted.sort_by_key(|(tag, _)| *tag);
    let mut out: Vec<(v1::Acknowledgement, &Verdict)> = Vec::new();
    for ((partition, offset), verdict) in sorted {
        if let Some((last, v)) = out.last_mut()
            && last.partition == *partition
            && last.last_offset + 1 == *offset
            && *v == verdict
        {
            last.last_offset = *offset;
            continue;
        }
        let (outcome, reason, delay_ms) = match verdict {
            Verdict::Ack => (v1::AckOutcome::Ack, String::new(), None),
            Verdict::Nack { reason, delay } => (
                v1::AckOutcome::Nack,
                reason.clone(),
                delay.map(|d| d.as_millis() as u64),
            ),
            Verdict::Reject { reason } => (v1::AckOutcome::Reject, reason.clone(), None),
            Verdict::Release => (v1::AckOutcome::Release, String::new(), None),
        };
        out.push((
            v1::Acknowledgement {
                partition: *partition,
                first_offset: *offset,
                last_offset: *offset,
                outcome: outcome as i32,
                reason,
                delay_ms,
            },
            verdict,
        ));
    }
    out.into_iter().map(|(a, _)| a).collect()
}

/// Runs until every sender is gone, then sends what is pending.
pub(crate) async fn run(config: AckerConfig, mut commands: mpsc::UnboundedReceiver<Command>) {
    let mut pending: Vec<(Tag, Verdict)> = Vec::new();
    let mut waiters: Vec<oneshot::Sender<Result<()>>> = Vec::new();
    // The first failed send since the last flush: the flush reports it.
    let mut failed: Option<Error> = None;
    let mut tick = tokio::time::interval(config.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        // A tick sends whatever is pending: a settlement waits at most one
        // interval for others to share its request.
        let (open, ticked) = tokio::select! {
            c = commands.recv() => match c {
                Some(Command::Settle(tag, v)) => {
                    pending.push((tag, v));
                    (true, false)
                }
                Some(Command::Flush(done)) => {
                    waiters.push(done);
                    (true, false)
                }
                None => (false, false),
            },
            _ = tick.tick() => {
                extend_due(&config).await;
                (true, true)
            }
        };
        let due = pending.len() >= config.batch || (ticked && !pending.is_empty());
        if due || !waiters.is_empty() || !open {
            if let Err(e) = send(&config, std::mem::take(&mut pending)).await {
                tracing::warn!(error = %e, "queue acknowledgements failed; the records will be delivered again after their lease");
                failed.get_or_insert(e);
            }
            if !waiters.is_empty() {
                let result = failed.take().map_or(Ok(()), Err);
                for w in waiters.drain(..) {
                    let _ = w.send(result.clone());
                }
            }
        }
        if !open {
            return;
        }
    }
}

async fn send(config: &AckerConfig, pending: Vec<(Tag, Verdict)>) -> Result<()> {
    if pending.is_empty() {
        return Ok(());
    }
    {
        let mut held = lock(&config.held);
        for (tag, _) in &pending {
            held.remove(tag);
        }
    }
    let req = v1::AcknowledgeRequest {
        group: config.group.clone(),
        consumer_id: config.consumer_id.clone(),
        acks: ranges(&pending),
    };
    let mut delay = Duration::from_millis(50);
    for attempt in 0.. {
        let mut rpc = config.client.queues();
        match rpc.acknowledge(req.clone()).await {
            Ok(r) => {
                let r = r.into_inner();
                let lost: u64 = r
                    .not_held
                    .iter()
                    .map(|x| x.last_offset - x.first_offset + 1)
                    .sum();
                if lost > 0 {
                    config
                        .lost
                        .fetch_add(lost, std::sync::atomic::Ordering::Relaxed);
                    tracing::debug!(lost, "settlements of records whose lease had ended");
                }
                return Ok(());
            }
            Err(s) if retry_quietly(s.code()) && attempt < 10 => {
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(2));
            }
            Err(s) => return Err(Error::from(s)),
        }
    }
    unreachable!("the loop returns")
}

/// Extends leases that end within `extend_before`.
async fn extend_due(config: &AckerConfig) {
    let Some(before) = *lock(&config.extend_before) else {
        return;
    };
    if before.is_zero() {
        return;
    }
    let now = now_ms();
    let due: Vec<Tag> = lock(&config.held)
        .iter()
        .filter(|(_, until)| **until - now <= before.as_millis() as i64)
        .map(|(tag, _)| *tag)
        .collect();
    if due.is_empty() {
        return;
    }
    let req = v1::ExtendLeaseRequest {
        group: config.group.clone(),
        consumer_id: config.consumer_id.clone(),
        ranges: due
            .iter()
            .map(|&(partition, offset)| v1::OffsetRange {
                partition,
                first_offset: offset,
                last_offset: offset,
            })
            .collect(),
        lease_ms: 0,
    };
    // Bounded: answers wait behind it.
    let extended = tokio::time::timeout(
        Duration::from_secs(5),
        config.client.queues().extend_lease(req),
    )
    .await;
    match extended.unwrap_or_else(|_| Err(tonic::Status::deadline_exceeded("no answer in 5 s"))) {
        Ok(r) => {
            let until = r.into_inner().lease_until_ms;
            let mut held = lock(&config.held);
            for tag in due {
                if let Some(u) = held.get_mut(&tag) {
                    *u = until;
                }
            }
        }
        Err(e) => tracing::debug!(error = %e, "extending leases failed; retrying at the next tick"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn consecutive_offsets_with_one_verdict_become_one_range() {
        let nack = Verdict::Nack {
            reason: "x".into(),
            delay: None,
        };
        let pending = vec![
            ((0, 3), Verdict::Ack),
            ((0, 1), Verdict::Ack),
            ((0, 2), Verdict::Ack),
            ((0, 4), nack.clone()),
            ((0, 5), nack),
            ((1, 6), Verdict::Ack),
            ((0, 7), Verdict::Ack),
        ];
        let r: Vec<(u32, u64, u64, i32)> = ranges(&pending)
            .into_iter()
            .map(|a| (a.partition, a.first_offset, a.last_offset, a.outcome))
            .collect();
        let (ack, nack) = (v1::AckOutcome::Ack as i32, v1::AckOutcome::Nack as i32);
        assert_eq!(
            r,
            [
                (0, 1, 3, ack),
                (0, 4, 5, nack),
                (0, 7, 7, ack),
                (1, 6, 6, ack)
            ]
        );
    }
}
