//! Fetching: one task per owned partition fetches ahead of the application
//! (long-polling when caught up) into one channel, and `recv` hands the
//! records out in offset order, keeping the processed positions that commits
//! write. Kept apart because where a partition is read from (its start
//! offset, the epochs that drop stale batches, seek, pause) is the same
//! whoever made the partition this consumer's: the group or the caller of
//! `consumer_assigned`.

use std::sync::Arc;
use std::time::Duration;

use brook_protocol::batch::batches;
use brook_protocol::v1;
use bytes::Bytes;

use super::{Consumer, ConsumerRecord, Shared, StartFrom, Tp, lock};
use crate::error::{Error, Result};

/// Fetched batches of one partition, tagged with the epoch they were fetched under.
pub(super) struct Fetched {
    tp: Tp,
    epoch: u64,
    from: u64,
    batches: Bytes,
    /// Instead of records: an error the application must see (damaged
    /// records, a deleted topic, a refusal), returned by `recv`.
    error: Option<Error>,
}

pub(super) fn stop_all_fetchers(shared: &Shared) {
    let all: Vec<Tp> = lock(shared).fetchers.keys().cloned().collect();
    stop_fetchers(shared, &all);
}

pub(super) fn stop_fetchers(shared: &Shared, tps: &[Tp]) {
    let mut st = lock(shared);
    for tp in tps {
        if let Some(f) = st.fetchers.remove(tp) {
            f.abort();
        }
        st.next.remove(tp);
        st.caught_up_at.remove(tp);
        *st.epochs.entry(tp.clone()).or_default() += 1;
    }
    shared
        .revision
        .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
}

/// Starts fetching `tps` from their committed offsets (or `start_from`).
/// With `epochs`, only the partitions whose epoch is still the one given
/// (not revoked or sought meanwhile), checked under the same lock that
/// registers the fetcher.
pub(super) async fn start_fetchers(
    shared: &Arc<Shared>,
    tps: &[Tp],
    epochs: Option<&[u64]>,
) -> Result<()> {
    if tps.is_empty() {
        return Ok(());
    }
    let committed = shared
        .client
        .admin()
        .committed(&shared.config.group, None)
        .await?;
    for (i, tp) in tps.iter().enumerate() {
        let start = committed
            .iter()
            .find(|c| *c.topic == *tp.0 && c.partition == tp.1)
            .map(|c| c.offset);
        spawn_fetcher(shared, tp.clone(), start, epochs.map(|e| e[i]));
    }
    Ok(())
}

fn spawn_fetcher(shared: &Arc<Shared>, tp: Tp, start: Option<u64>, expect_epoch: Option<u64>) {
    let mut st = lock(shared);
    let epoch = *st.epochs.entry(tp.clone()).or_default();
    if expect_epoch.is_some_and(|e| e != epoch) {
        return;
    }
    if let Some(s) = start {
        st.positions.insert(tp.clone(), s);
    }
    let task = tokio::spawn(fetch_loop(Arc::clone(shared), tp.clone(), epoch, start));
    if let Some(old) = st.fetchers.insert(tp, task) {
        old.abort();
    }
}

/// Fetches one partition ahead of the application, long-polling when caught up.
async fn fetch_loop(shared: Arc<Shared>, tp: Tp, epoch: u64, start: Option<u64>) {
    let mut rpc = shared.client.consumer_rpc();
    let c = &shared.config;
    let mut next = match start {
        Some(o) => o,
        None => loop {
            match first_offset(&shared, &tp).await {
                Ok(o) => break o,
                // The topic is gone, or asking is refused: the application
                // hears of it (as of a refused fetch), and the question is
                // asked again now and then.
                Err(e) if e.code().is_some_and(|c| !retry_quietly(c)) => {
                    tracing::warn!(topic = %tp.0, partition = tp.1, error = %e, "cannot find where to start");
                    if !tell(&shared, &tp, epoch, 0, e).await {
                        return;
                    }
                }
                Err(e) => {
                    tracing::debug!(topic = %tp.0, partition = tp.1, error = %e, "cannot find where to start yet; retrying");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        },
    };
    {
        let mut st = lock(&shared);
        if st.epochs.get(&tp).copied().unwrap_or(0) != epoch {
            return;
        }
        st.next.insert(tp.clone(), next);
    }
    let mut caught_up = false;
    loop {
        if lock(&shared).paused.contains(&tp) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        // Until it has found the end once, a fetch does not wait: `at_end`
        // learns at once where the end is, and long polls follow.
        let max_wait = match caught_up {
            true => c.fetch_max_wait.as_millis() as u32,
            false => 0,
        };
        let req = v1::FetchRequest {
            topic: tp.0.to_string(),
            partition: tp.1,
            offset: next,
            max_bytes: c.fetch_max_bytes,
            min_bytes: 1,
            max_wait_ms: max_wait,
            decoded: false,
        };
        match rpc.fetch(req).await {
            Ok(r) => {
                let r = r.into_inner();
                if r.batches.is_empty() {
                    if !caught_up {
                        caught_up = true;
                        let mut st = lock(&shared);
                        if st.epochs.get(&tp).copied().unwrap_or(0) == epoch {
                            st.caught_up_at.insert(tp.clone(), next);
                        }
                    }
                    continue;
                }
                if caught_up {
                    caught_up = false;
                    lock(&shared).caught_up_at.remove(&tp);
                }
                let from = next;
                next = r.next_offset;
                if shared
                    .records
                    .send(Fetched {
                        tp: tp.clone(),
                        epoch,
                        from,
                        batches: r.batches,
                        error: None,
                    })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            Err(s) if s.code() == tonic::Code::OutOfRange => {
                tracing::warn!(topic = %tp.0, partition = tp.1, message = s.message(), "offset out of range; restarting from start_from");
                match first_offset(&shared, &tp).await {
                    Ok(o) => next = o,
                    Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
                }
            }
            Err(s) if !retry_quietly(s.code()) => {
                // Damaged records, a deleted topic, a refusal: retrying will
                // not help by itself. Tell the application (recv returns the
                // error) and ask again now and then, until it acts (a seek
                // past the damage starts a new fetcher) or stops.
                tracing::warn!(topic = %tp.0, partition = tp.1, code = ?s.code(), message = s.message(), "fetch refused");
                let error = Error::damaged(&s, &tp.0, tp.1).unwrap_or_else(|| s.into());
                if !tell(&shared, &tp, epoch, next, error).await {
                    return;
                }
            }
            Err(s) => {
                tracing::debug!(topic = %tp.0, partition = tp.1, message = s.message(), "fetch failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Hands `error` to the application (its next `recv` returns it), then
/// waits a second before the fetcher asks the broker again. False once the
/// consumer is gone.
async fn tell(shared: &Shared, tp: &Tp, epoch: u64, from: u64, error: Error) -> bool {
    let notice = Fetched {
        tp: tp.clone(),
        epoch,
        from,
        batches: Bytes::new(),
        error: Some(error),
    };
    if shared.records.send(notice).await.is_err() {
        return false;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    true
}

/// Whether a failed fetch is retried without telling the application: a
/// broker restarting or unreachable (UNAVAILABLE, a transport error), a
/// request cut short. What the broker refuses for a reason (NOT_FOUND,
/// DATA_LOSS, INVALID_ARGUMENT, PERMISSION_DENIED, ...) goes to `recv`.
/// (OUT_OF_RANGE is handled before this: it restarts from `start_from`.)
pub(crate) fn retry_quietly(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        Unavailable | Unknown | Cancelled | DeadlineExceeded | Aborted | ResourceExhausted
    )
}

async fn first_offset(shared: &Shared, tp: &Tp) -> Result<u64> {
    let d = shared.client.admin().describe_topic(&tp.0).await?;
    let p = d
        .partitions
        .get(tp.1 as usize)
        .ok_or_else(|| Error::Protocol(format!("no partition {} in {}", tp.1, tp.0)))?;
    Ok(match shared.config.start_from {
        StartFrom::Earliest => p.log_start_offset,
        StartFrom::Latest => p.log_end_offset,
    })
}

impl Consumer {
    /// The next record. Waits for one (a group member whose session ended,
    /// e.g. because the broker restarted, rejoins and goes on); fails on a
    /// batch it cannot decode, and with [`Error::Damaged`](crate::Error::Damaged)
    /// when the broker holds the next records of a partition only as damaged
    /// bytes (seek past them to go on: `Consumer::seek(topic, partition, end_offset)`).
    /// A fetch the broker refuses for a reason (the topic was deleted:
    /// NOT_FOUND; not allowed; ...) fails it too, with that status, again
    /// about every second while the reason lasts; an unreachable or
    /// restarting broker does not (the fetch is retried).
    ///
    /// ```no_run
    /// # async fn demo(mut billing: brook_client::Consumer) -> brook_client::Result<()> {
    /// let order = billing.recv().await?;
    /// println!("orders/{} offset {}: {:?}", order.partition, order.offset, order.value);
    /// // Asking for the next record marks `order` processed: auto-commit may now commit it.
    /// let next = billing.recv().await?;
    /// # Ok(()) }
    /// ```
    pub async fn recv(&mut self) -> Result<ConsumerRecord> {
        self.mark_processed();
        loop {
            let revision = self
                .shared
                .revision
                .load(std::sync::atomic::Ordering::Acquire);
            if revision != self.checked_revision {
                // Something was revoked or sought: drop what was fetched before it.
                let st = lock(&self.shared);
                self.current.retain(|(rec, epoch, _)| {
                    st.epochs
                        .get(&(Arc::clone(&rec.topic), rec.partition))
                        .copied()
                        .unwrap_or(0)
                        == *epoch
                });
                drop(st);
                self.checked_revision = revision;
            }
            if let Some((rec, epoch, after)) = self.current.pop_front() {
                let tp = (Arc::clone(&rec.topic), rec.partition);
                {
                    let mut st = lock(&self.shared);
                    if st.epochs.get(&tp).copied().unwrap_or(0) == epoch {
                        st.next.insert(tp.clone(), after);
                    }
                }
                self.last = Some((tp, after, epoch));
                return Ok(rec);
            }
            let fetched = self.records.recv().await.ok_or(Error::Closed)?;
            // Batches fetched under an older epoch are stale as a whole.
            if lock(&self.shared)
                .epochs
                .get(&fetched.tp)
                .copied()
                .unwrap_or(0)
                == fetched.epoch
            {
                self.decode(fetched)?;
            }
        }
    }

    fn decode(&mut self, mut f: Fetched) -> Result<()> {
        if let Some(error) = f.error.take() {
            return Err(error);
        }
        let topic: Arc<str> = Arc::clone(&f.tp.0);
        let mut pushed = false;
        for batch in batches(f.batches) {
            let batch = batch.map_err(|e| Error::Protocol(e.to_string()))?;
            let end = batch.header().next_offset();
            for r in batch.records() {
                let r = r.map_err(|e| Error::Protocol(e.to_string()))?;
                if r.offset < f.from {
                    continue;
                }
                let after = r.offset + 1;
                let rec = ConsumerRecord {
                    topic: Arc::clone(&topic),
                    partition: f.tp.1,
                    offset: r.offset,
                    timestamp_ms: r.timestamp,
                    key: r.key,
                    value: r.value,
                    headers: r.headers.into_iter().map(|h| (h.key, h.value)).collect(),
                };
                self.current.push_back((rec, f.epoch, after));
                pushed = true;
            }
            // A batch may end in offsets without records (records the
            // broker dead-lettered, or none at all): the position moves past
            // them with the batch's last record, or at once when there is
            // none to wait for, so commits and lag reach the log end.
            if end <= f.from {
                continue;
            }
            match (pushed, &mut self.last) {
                (true, _) => {
                    if let Some(back) = self.current.back_mut() {
                        back.2 = back.2.max(end);
                    }
                }
                (false, Some((tp, after, epoch))) if *tp == f.tp && *epoch == f.epoch => {
                    *after = (*after).max(end);
                }
                (false, _) => {
                    let mut guard = lock(&self.shared);
                    let st = &mut *guard;
                    if st.epochs.get(&f.tp).copied().unwrap_or(0) == f.epoch {
                        for map in [&mut st.positions, &mut st.next] {
                            let at = map.entry(f.tp.clone()).or_insert(end);
                            *at = (*at).max(end);
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The record handed out last is done: its successor is the position to commit.
    pub(super) fn mark_processed(&mut self) {
        if let Some((tp, after, epoch)) = self.last.take() {
            let mut st = lock(&self.shared);
            if st.epochs.get(&tp).copied().unwrap_or(0) == epoch {
                st.positions.insert(tp, after);
            }
        }
    }

    /// Moves a partition this consumer owns to `offset`; records fetched before are dropped.
    ///
    /// ```no_run
    /// # async fn demo(mut billing: brook_client::Consumer) -> brook_client::Result<()> {
    /// // Re-read orders/2 from offset 1000 (commits now store 1000 for it too).
    /// billing.seek("orders", 2, 1000);
    /// let record = billing.recv().await?; // orders/2 gives 1000 next; other partitions go on
    /// # Ok(()) }
    /// ```
    pub fn seek(&mut self, topic: &str, partition: u32, offset: u64) {
        let tp: Tp = (Arc::from(topic), partition);
        stop_fetchers(&self.shared, std::slice::from_ref(&tp));
        spawn_fetcher(&self.shared, tp, Some(offset), None);
    }

    /// Moves a partition to the first record at or after `timestamp_ms` (or
    /// its end if every record is older), found through the broker's time index.
    ///
    /// ```no_run
    /// # async fn demo(mut billing: brook_client::Consumer) -> brook_client::Result<()> {
    /// # let now_ms: i64 = 0;
    /// // Re-process the last 10 minutes of orders/2.
    /// billing.seek_to_timestamp("orders", 2, now_ms - 600_000).await?;
    /// let record = billing.recv().await?;
    /// # Ok(()) }
    /// ```
    pub async fn seek_to_timestamp(
        &mut self,
        topic: &str,
        partition: u32,
        timestamp_ms: i64,
    ) -> Result<()> {
        // A dry-run reset answers exactly this question without changing anything.
        let admin = self.shared.client.admin();
        let r = admin
            .reset_offsets(
                &self.shared.config.group,
                topic,
                &[partition],
                crate::ResetTo::Timestamp(timestamp_ms),
                true,
                true,
            )
            .await?;
        let offset = r
            .changes
            .first()
            .map(|c| c.after)
            .ok_or_else(|| Error::Protocol("empty reset answer".into()))?;
        self.seek(topic, partition, offset);
        Ok(())
    }

    /// The offset of the next record [`Consumer::recv`] hands out from a
    /// partition this consumer reads (Kafka's `position`), once its start is
    /// known; `None` for a partition it does not read.
    ///
    /// ```no_run
    /// # async fn demo(mut billing: brook_client::Consumer) -> brook_client::Result<()> {
    /// let order = billing.recv().await?;
    /// assert_eq!(billing.position(&order.topic, order.partition), Some(order.offset + 1));
    /// # Ok(()) }
    /// ```
    pub fn position(&self, topic: &str, partition: u32) -> Option<u64> {
        let st = lock(&self.shared);
        st.fetchers
            .contains_key(&(Arc::from(topic), partition))
            .then_some(())?;
        st.next.get(&(Arc::from(topic), partition)).copied()
    }

    /// Whether every partition this consumer reads has been read to its end:
    /// each has found the log end once, and `recv` has handed out every
    /// record before it (kcat's `-e`). False while it reads no partition
    /// yet (a group member before its first assignment) or a fetch is still
    /// finding the end. Records appended afterwards are still fetched: this
    /// says "caught up", not "no more will come".
    ///
    /// ```no_run
    /// # async fn demo(mut audit: brook_client::Consumer) -> brook_client::Result<()> {
    /// // Print everything stored now, then stop.
    /// while !audit.at_end() {
    ///     tokio::select! {
    ///         r = audit.recv() => println!("{:?}", r?.value),
    ///         _ = tokio::time::sleep(std::time::Duration::from_millis(50)) => {}
    ///     }
    /// }
    /// # Ok(()) }
    /// ```
    pub fn at_end(&self) -> bool {
        let st = lock(&self.shared);
        !st.fetchers.is_empty()
            && st.fetchers.keys().all(|tp| {
                let next = st.next.get(tp);
                st.caught_up_at
                    .get(tp)
                    .is_some_and(|end| next.is_some_and(|n| n >= end))
            })
    }

    /// Stops fetching a partition (records already fetched still come out).
    ///
    /// ```no_run
    /// # async fn demo(billing: brook_client::Consumer) -> brook_client::Result<()> {
    /// // The warehouse behind orders/0 is offline: stop fetching its orders for now.
    /// billing.pause("orders", 0);
    /// // ... once it is back:
    /// billing.resume("orders", 0);
    /// # Ok(()) }
    /// ```
    pub fn pause(&self, topic: &str, partition: u32) {
        lock(&self.shared)
            .paused
            .insert((Arc::from(topic), partition));
    }

    /// Resumes a paused partition.
    ///
    /// ```no_run
    /// # async fn demo(mut billing: brook_client::Consumer) -> brook_client::Result<()> {
    /// billing.pause("orders", 0);
    /// let other = billing.recv().await?; // records of the other partitions keep coming
    /// billing.resume("orders", 0); // fetching orders/0 continues where it stopped
    /// # Ok(()) }
    /// ```
    pub fn resume(&self, topic: &str, partition: u32) {
        lock(&self.shared)
            .paused
            .remove(&(Arc::from(topic), partition));
    }
}
