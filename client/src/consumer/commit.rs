//! Offset commits: the processed positions written to the broker on a
//! timer (auto-commit), on [`Consumer::commit`], before a revoked partition
//! is given up, and on close. Kept apart because every one of those paths
//! goes through `commit_positions`, which lets one commit be in flight at a
//! time so that the committed offset never moves backwards.

use std::sync::Arc;
use std::time::Duration;

use brook_protocol::v1;
use tokio::sync::oneshot;

use super::fetcher::stop_all_fetchers;
use super::{Consumer, Shared, Tp, lock};
use crate::error::Result;

/// Auto-commit of a consumer of given partitions (no membership): every
/// `every`, and once more when stopped, whose result `close` returns.
pub(super) async fn auto_commit_assigned(
    shared: Arc<Shared>,
    every: Duration,
    mut stop: oneshot::Receiver<()>,
) -> Result<()> {
    let mut tick = tokio::time::interval(every);
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                if let Err(e) = commit_positions(&shared, None).await {
                    tracing::debug!(error = %e, "auto-commit failed");
                }
            }
            _ = &mut stop => {
                let committed = commit_positions(&shared, None).await;
                stop_all_fetchers(&shared);
                return committed;
            }
        }
    }
}

/// Commits processed positions (of `only`, or of every partition).
pub(super) async fn commit_positions(shared: &Shared, only: Option<&[Tp]>) -> Result<()> {
    let one_at_a_time = shared.committing.lock().await;
    commit_locked(shared, only, one_at_a_time).await
}

/// [`commit_positions`] once the commit lock is held (`_one_at_a_time`).
async fn commit_locked(
    shared: &Shared,
    only: Option<&[Tp]>,
    _one_at_a_time: tokio::sync::MutexGuard<'_, ()>,
) -> Result<()> {
    let (member_id, generation, offsets) = {
        let st = lock(shared);
        let offsets: Vec<v1::OffsetCommit> = st
            .positions
            .iter()
            .filter(|(tp, _)| only.is_none_or(|o| o.contains(tp)))
            .map(|((topic, partition), offset)| v1::OffsetCommit {
                topic: topic.to_string(),
                partition: *partition,
                offset: *offset,
                metadata: String::new(),
            })
            .collect();
        (st.member_id.clone(), st.generation, offsets)
    };
    if offsets.is_empty() {
        return Ok(());
    }
    let req = v1::CommitRequest {
        group: shared.config.group.clone(),
        member_id,
        generation,
        offsets,
        durable: shared.config.durable_commits,
    };
    shared
        .client
        .retry(|| async { shared.client.groups().commit(req.clone()).await })
        .await?;
    Ok(())
}

impl Consumer {
    /// Commits every processed record (including the one in hand) in the
    /// background and returns at once, as Kafka's `commitAsync`: processing
    /// goes on while the commit travels. Commits still land one at a time
    /// and in order, so the committed offset never moves backwards; calls
    /// made while one is waiting to start are covered by it. A failed
    /// background commit is logged and the next commit covers its records
    /// (a crash in between re-delivers them: at least once). [`Consumer::commit`]
    /// or `close` waits for everything before it. Call it from within the
    /// Tokio runtime the consumer runs on (the commit is a task of it).
    ///
    /// ```no_run
    /// # async fn demo(mut billing: brook_client::Consumer) -> brook_client::Result<()> {
    /// let mut handled = 0u64;
    /// loop {
    ///     let order = billing.recv().await?;
    ///     // ... write the invoice for `order` ...
    ///     handled += 1;
    ///     if handled % 1000 == 0 {
    ///         billing.commit_async(); // no round trip on the processing path
    ///     }
    /// }
    /// # }
    /// ```
    pub fn commit_async(&mut self) {
        use std::sync::atomic::Ordering;
        self.mark_processed();
        if self.shared.commit_queued.swap(true, Ordering::AcqRel) {
            return;
        }
        let shared = Arc::clone(&self.shared);
        // A task is started only once the one before it holds the commit
        // lock (it clears the flag then): at most one waits, they commit in
        // the order started, and waiting for the last waits for them all.
        self.background_commit = Some(tokio::spawn(async move {
            let one_at_a_time = shared.committing.lock().await;
            // Cleared before the positions are read: a later call then
            // queues a commit of its own rather than relying on this one.
            shared.commit_queued.store(false, Ordering::Release);
            if let Err(e) = commit_locked(&shared, None, one_at_a_time).await {
                tracing::warn!(group = %shared.config.group, error = %e, "background commit failed; the next commit covers its records");
            }
        }));
    }

    /// Commits every processed record (including the one in hand) and waits for the broker.
    ///
    /// During a rebalance the group's generation can move on before this
    /// consumer has applied its new assignment; the commit is then retried
    /// for up to two seconds once the new generation is known.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// use brook_client::ConsumerConfig;
    /// let config = ConsumerConfig { auto_commit: None, ..ConsumerConfig::new("billing", &["orders"]) };
    /// let mut billing = client.consumer(config).await?;
    /// while let Ok(order) = billing.recv().await {
    ///     // ... write the invoice for `order` ...
    ///     billing.commit().await?; // after a crash, billing resumes after `order`
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn commit(&mut self) -> Result<()> {
        self.mark_processed();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let generation = lock(&self.shared).generation;
            match commit_positions(&self.shared, None).await {
                Err(e)
                    if matches!(e.reason(), Some("STALE_GENERATION" | "UNKNOWN_MEMBER"))
                        && self.member =>
                {
                    while lock(&self.shared).generation == generation {
                        if tokio::time::Instant::now() > deadline {
                            return Err(e);
                        }
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
                other => return other,
            }
        }
    }
}
