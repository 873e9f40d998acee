//! Leasing records to a consumer: the log is read into a partition's window
//! (at most `window` tracked records), deliverable records are leased and
//! the lease written to the queues log, and a fetch with nothing to deliver
//! waits for new records, a release, a backoff's end or its deadline.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::batch::{Batch, Record, batches};
use brook_storage::{Partition, Topic, now_ms};
use futures_util::future::select_all;
use tokio::time::Instant;

use super::share::spans;
use super::store::{DeliverEntry, Entry, Op, span_entries};
use super::{
    QueueInfo, QueueSettings, QueueStart, Queues, Runtime, bump, corrupt, not_found, update_error,
};
use crate::error::{ApiError, ApiResult, Reason, on_blocking_thread};
use crate::state::Broker;

/// Bytes of the log read into a window at a time.
const FILL_BYTES: usize = 1 << 20;

/// Room for this many records (or a quarter of the window) before the log
/// is read into it again.
const FILL_MIN_RECORDS: usize = 1_000;

/// Records redriven back into a group read from the log at a time.
const LOAD_REOPENED: usize = 1_000;

/// Bytes read at each redriven record (the read returns its whole batch).
const READ_REOPENED: usize = 64 << 10;

/// Records leased by one fetch.
#[derive(Debug, Default)]
pub struct Fetched {
    /// Per record: its partition, the record and its delivery count (1 on
    /// the first delivery).
    pub records: Vec<(u32, Record, u32)>,
    /// When their leases end (ms since the epoch).
    pub lease_until_ms: i64,
    /// The group's topic.
    pub topic: String,
}

/// What a fetch asks for.
#[derive(Debug, Clone)]
pub struct FetchSpec {
    /// Records at most.
    pub max_records: usize,
    /// Bytes (keys and values) at most, but at least one record.
    pub max_bytes: usize,
    /// How long to wait for a deliverable record.
    pub wait: Duration,
}

impl Queues {
    /// The group's topic and settings; with `topic` set, a group that does
    /// not exist is created with the defaults, starting at the end of the
    /// topic, and one that exists must read `topic`.
    pub fn ensure(&self, broker: &Broker, group: &str, topic: &str) -> ApiResult<QueueInfo> {
        match self.info(group) {
            Ok(info) if topic.is_empty() || info.topic == topic => Ok(info),
            Ok(info) => Err(ApiError::new(
                Reason::QueueTopicMismatch,
                format!(
                    "queue group {group:?} reads topic {:?}, not {topic:?}",
                    info.topic
                ),
            )
            .with("group", group)
            .with("topic", info.topic)),
            Err(e) if topic.is_empty() => Err(e),
            Err(_) => {
                let t = broker.topic(topic)?;
                let starts = start_offsets(&t, QueueStart::Latest);
                self.create(group, topic, QueueSettings::defaults(topic, group), &starts)
            }
        }
    }

    /// Leases up to `spec.max_records` deliverable records of `group` to
    /// `consumer`, waiting up to `spec.wait` for one.
    pub async fn fetch(
        self: &Arc<Self>,
        broker: &Broker,
        group: &str,
        topic: &str,
        consumer: &str,
        spec: FetchSpec,
    ) -> ApiResult<Fetched> {
        let info = self.ensure(broker, group, topic)?;
        let rt = self.runtime(group);
        let consumer: Arc<str> = Arc::from(consumer);
        self.seen(&rt, &consumer);
        let deadline = Instant::now() + spec.wait;
        let mut shutdown = broker.shutdown_signal();
        loop {
            let t = broker.topic(&info.topic)?;
            let parts = t.partitions();
            // Subscribed before looking, so nothing that happens between the
            // look and the wait is missed.
            let mut watches: Vec<_> = parts
                .iter()
                .map(|(_, p)| p.watch_high_watermark())
                .collect();
            let notified = rt.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let fetched = self.try_fetch(group, &rt, &parts, &consumer, &spec).await?;
            if !fetched.records.is_empty() {
                self.fill_ahead(group, &rt, &parts);
            }
            if !fetched.records.is_empty() || Instant::now() >= deadline {
                return Ok(Fetched {
                    topic: info.topic,
                    ..fetched
                });
            }
            let now = now_ms();
            let wake = match self.next_ready(group, now) {
                Some(at) => {
                    deadline.min(Instant::now() + Duration::from_millis((at - now).max(1) as u64))
                }
                None => deadline,
            };
            let any_new = async {
                if watches.is_empty() {
                    return std::future::pending().await;
                }
                let changed = watches.iter_mut().map(|w| {
                    Box::pin(async move {
                        // A partition closed (its topic deleted): the next
                        // look says so; until the wake-up, nothing to wait for.
                        if w.changed().await.is_err() {
                            std::future::pending::<()>().await;
                        }
                    })
                });
                select_all(changed).await;
            };
            tokio::select! {
                () = any_new => {}
                () = &mut notified => {}
                () = tokio::time::sleep_until(wake) => {}
                _ = shutdown.changed() => return Ok(Fetched { topic: info.topic, ..Fetched::default() }),
            }
        }
    }

    /// Reads the log into the windows in the background once a fetch took
    /// records, so that the next fetch finds them read: the read overlaps
    /// the consumer's work instead of delaying its next answer. Skipped
    /// while another read is under way; a read that fails is tried again,
    /// and its error answered, by the next fetch.
    fn fill_ahead(self: &Arc<Self>, group: &str, rt: &Arc<Runtime>, parts: &[(u32, Partition)]) {
        let (queues, group, rt, parts) = (
            Arc::clone(self),
            group.to_string(),
            Arc::clone(rt),
            parts.to_vec(),
        );
        tokio::spawn(async move {
            let Ok(_one_reader) = rt.fill.try_lock() else {
                return;
            };
            for (id, p) in &parts {
                if queues.fill(&group, &rt, *id, p).await.is_err() {
                    return;
                }
            }
        });
    }

    /// The earliest time a waiting record of `group` becomes deliverable.
    fn next_ready(&self, group: &str, now: i64) -> Option<i64> {
        self.store.with(|m| {
            m.groups
                .get(group)?
                .partitions
                .values()
                .filter_map(|s| s.next_ready(now))
                .min()
        })
    }

    /// One look over the partitions, starting at a different one each time.
    async fn try_fetch(
        &self,
        group: &str,
        rt: &Runtime,
        parts: &[(u32, Partition)],
        consumer: &Arc<str>,
        spec: &FetchSpec,
    ) -> ApiResult<Fetched> {
        let mut out = Fetched::default();
        if parts.is_empty() {
            return Ok(out);
        }
        let first = rt.rotate.fetch_add(1, std::sync::atomic::Ordering::Relaxed) as usize;
        let order: Vec<&(u32, Partition)> = (0..parts.len())
            .map(|i| &parts[(first + i) % parts.len()])
            .collect();
        // Every read first, then every lease without an await between
        // them: a fetch dropped while it waits (the client went away) has
        // leased nothing it cannot return.
        for (id, p) in &order {
            let _one_reader = rt.fill.lock().await;
            self.fill(group, rt, *id, p).await?;
        }
        let mut bytes = 0usize;
        for (id, _) in order {
            let want = spec.max_records - out.records.len();
            let (records, until) = self.lease(
                group,
                *id,
                consumer,
                want,
                spec.max_bytes.saturating_sub(bytes),
            )?;
            bytes += records
                .iter()
                .map(|(r, _)| r.value.as_ref().map_or(0, |v| v.len()))
                .sum::<usize>();
            let again = records.iter().filter(|(_, count)| *count > 1).count();
            bump(&rt.redeliveries, again as u64);
            out.lease_until_ms = until;
            out.records
                .extend(records.into_iter().map(|(r, c)| (*id, r, c)));
            if out.records.len() >= spec.max_records || bytes >= spec.max_bytes {
                break;
            }
        }
        Ok(out)
    }

    /// Leases up to `want` deliverable records of one partition.
    fn lease(
        &self,
        group: &str,
        partition: u32,
        consumer: &Arc<str>,
        want: usize,
        max_bytes: usize,
    ) -> ApiResult<(Vec<(Record, u32)>, i64)> {
        let now = now_ms();
        let ((records, until), _) = self
            .store
            .update(|m| {
                let g = m.groups.get_mut(group).ok_or_else(|| not_found(group))?;
                let until = now + g.settings.lease.as_millis() as i64;
                let key_ordered = g.settings.key_ordered;
                let share = g.share(partition);
                let offsets = share.acquirable(now, want, max_bytes.max(1), key_ordered);
                if offsets.is_empty() {
                    return Ok((Vec::new(), (Vec::new(), until)));
                }
                let records: Vec<(Record, u32)> = offsets
                    .iter()
                    .filter_map(|o| {
                        let s = &share.slots[o];
                        Some((s.record.clone()?, s.count + 1))
                    })
                    .collect();
                let entry = Entry {
                    group: group.to_string(),
                    op: Some(Op::Deliver(DeliverEntry {
                        partition,
                        holder: consumer.to_string(),
                        lease_until_ms: until,
                        spans: span_entries(&spans(&offsets)),
                    })),
                };
                Ok((vec![entry], (records, until)))
            })
            .map_err(update_error)?;
        Ok((records, until))
    }

    /// Reads the log into the partition's window while it has room; moves
    /// the acked-up-to point past records retention removed first.
    pub(super) async fn fill(
        &self,
        group: &str,
        rt: &Runtime,
        id: u32,
        p: &Partition,
    ) -> ApiResult<()> {
        let log_start = p.log_start_offset();
        let look = || {
            self.store.with(|m| {
                let g = m.groups.get_mut(group).ok_or_else(|| not_found(group))?;
                let window = g.settings.window;
                let s = g.share(id);
                let behind = s.start < log_start;
                Ok::<_, ApiError>((s.fetched_end, s.room(window), window, behind))
            })
        };
        let (mut from, mut room, window, behind) = look()?;
        if behind {
            self.skip_removed(group, rt, id, p)?;
            (from, room, _, _) = look()?;
        }
        self.load_reopened(group, rt, id, p).await?;
        // Reads wait for room for a good part of the window (or for a
        // producer's batch): a read checks the CRC of every batch it
        // returns, and a batch read again for a few records more each time
        // cost the broker a tenth of its time.
        let worth_reading = (window as usize / 4).clamp(1, FILL_MIN_RECORDS);
        if room < worth_reading || from >= p.high_watermark() {
            return Ok(());
        }
        let reader = p.clone();
        let read = on_blocking_thread(move || reader.read(from, FILL_BYTES)).await?;
        let mut records = Vec::new();
        let mut end = from;
        'batches: for batch in batches(read.batches) {
            let batch = batch.map_err(corrupt)?;
            for r in batch.records() {
                let r = r.map_err(corrupt)?;
                if r.offset < from {
                    continue;
                }
                if records.len() >= room {
                    break 'batches;
                }
                end = r.offset.saturating_add(1);
                records.push(r);
            }
            // Offsets the batch covers without records (none today; a
            // compacted log will have holes) are passed too.
            if records.len() < room {
                end = end.max(batch.last_offset().saturating_add(1));
            }
        }
        self.store.with(|m| {
            // The same group still reading from where this read began (it
            // may have been deleted and made again meanwhile).
            if let Some(s) = m
                .groups
                .get_mut(group)
                .and_then(|g| g.partitions.get_mut(&id))
                && s.fetched_end == from
            {
                s.fill(records);
                s.fetched_to(end);
            }
        });
        Ok(())
    }

    /// Reads the records redriven back into the group that lie where the
    /// window has read already (below it, mostly below the acked-up-to
    /// point); those retention removed meanwhile are lost to the group,
    /// counted and logged as [`Queues::skip_removed`] does.
    async fn load_reopened(
        &self,
        group: &str,
        rt: &Runtime,
        id: u32,
        p: &Partition,
    ) -> ApiResult<()> {
        let wanted = self.store.with(|m| {
            m.groups
                .get_mut(group)
                .map(|g| g.share(id).unread_below(LOAD_REOPENED))
                .unwrap_or_default()
        });
        if wanted.is_empty() {
            return Ok(());
        }
        let mut found = Vec::new();
        // Offsets the log no longer has, and offsets it cannot read.
        let (mut gone, mut damaged) = (Vec::new(), Vec::new());
        let mut i = 0;
        while i < wanted.len() {
            let at = wanted[i];
            let reader = p.clone();
            let read = on_blocking_thread(move || match reader.read(at, READ_REOPENED) {
                Ok(read) => Ok(Ok(read)),
                Err(e @ brook_storage::Error::OffsetOutOfRange { .. })
                | Err(e @ brook_storage::Error::Damaged { .. }) => Ok(Err(e)),
                Err(e) => Err(e),
            })
            .await?;
            let read = match read {
                Ok(read) => read,
                Err(brook_storage::Error::OffsetOutOfRange { .. }) if at < p.log_start_offset() => {
                    gone.push(at);
                    i += 1;
                    continue;
                }
                // Past the log's visible end (not today: it never moves
                // back): left unread, for a later look.
                Err(brook_storage::Error::OffsetOutOfRange { .. }) => break,
                Err(e) => {
                    // One damaged range must not fail every fetch of the group.
                    tracing::error!(group, partition = id, offset = at, error = %e, "a record redriven back into the queue group cannot be read");
                    damaged.push(at);
                    i += 1;
                    continue;
                }
            };
            let decoded: Result<Vec<Batch>, _> = batches(read.batches).collect();
            let Ok(decoded) = decoded else {
                tracing::error!(
                    group,
                    partition = id,
                    offset = at,
                    "a record redriven back into the queue group is in a batch that does not decode"
                );
                damaged.push(at);
                i += 1;
                continue;
            };
            if decoded.is_empty() {
                break;
            }
            // Every wanted offset below `end` is now found or not in the log.
            let mut end = at + 1;
            let mut hits = HashSet::new();
            for batch in decoded {
                end = end.max(batch.last_offset().saturating_add(1));
                for r in batch.records() {
                    let r = r.map_err(corrupt)?;
                    if wanted[i..].binary_search(&r.offset).is_ok() && hits.insert(r.offset) {
                        found.push(r);
                    }
                }
            }
            while i < wanted.len() && wanted[i] < end {
                if !hits.contains(&wanted[i]) {
                    gone.push(wanted[i]);
                }
                i += 1;
            }
        }
        let lost = self.store.with(|m| {
            // Only the group that asked (it may have been deleted meanwhile).
            let Some(s) = m
                .groups
                .get_mut(group)
                .and_then(|g| g.partitions.get_mut(&id))
            else {
                return 0;
            };
            for r in found {
                s.load(r);
            }
            let lost = gone.iter().chain(&damaged).filter(|&&o| s.lose(o)).count();
            s.unread = !s.unread_below(1).is_empty();
            lost
        });
        if lost > 0 {
            bump(&rt.lost, lost as u64);
            tracing::warn!(
                group,
                partition = id,
                lost,
                removed = gone.len(),
                damaged = damaged.len(),
                "records redriven back into the queue group are no longer readable in the log (retention removed them, or they are damaged): they will not be delivered"
            );
        }
        Ok(())
    }

    /// Retention removed records the group had not settled: they are lost
    /// to it (as Kafka's share groups lose them), counted and logged.
    pub(super) fn skip_removed(
        &self,
        group: &str,
        rt: &Runtime,
        id: u32,
        p: &Partition,
    ) -> ApiResult<()> {
        let log_start = p.log_start_offset();
        let behind = self.store.with(|m| {
            m.groups
                .get_mut(group)
                .is_some_and(|g| g.share(id).start < log_start)
        });
        if !behind {
            return Ok(());
        }
        let (lost, _) = self
            .store
            .update(|m| {
                let g = m.groups.get_mut(group).ok_or_else(|| not_found(group))?;
                let s = g.share(id);
                if s.start >= log_start {
                    return Ok((Vec::new(), 0));
                }
                let lost = s.unsettled(log_start);
                let entry = Entry {
                    group: group.to_string(),
                    op: Some(Op::Skip(super::store::SkipEntry {
                        partition: id,
                        to: log_start,
                    })),
                };
                Ok((vec![entry], lost))
            })
            .map_err(update_error)?;
        if lost > 0 {
            bump(&rt.lost, lost);
            tracing::warn!(
                group,
                partition = id,
                lost,
                log_start,
                "retention removed records the queue group had not settled: they will not be delivered"
            );
        }
        Ok(())
    }
}

/// Where each partition of `topic` starts for a new group.
pub(super) fn start_offsets(topic: &Topic, start: QueueStart) -> Vec<(u32, u64)> {
    topic
        .partitions()
        .into_iter()
        .map(|(id, p)| match start {
            QueueStart::Latest => (id, p.high_watermark()),
            QueueStart::Earliest => (id, p.log_start_offset()),
        })
        .collect()
}
