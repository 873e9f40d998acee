//! Delivery: one task per source partition that running rules read. The
//! task reads the partition once for all its rules, parses each record's
//! value once, and writes what each rule selects to its targets.
//!
//! **Exactly once.** Each rule writes one source partition's records as an
//! idempotent producer of its own (an id allocated once and made durable
//! before its first use), numbering the records it sends to each target
//! partition 0, 1, 2, … in source order. After a chunk is written, the
//! rule's position and those numbers are committed to the rules log. After
//! a crash the rule starts again from its committed position and asks each
//! target partition how far that producer's numbers got there: the records
//! beyond the committed number were written before the crash, and the same
//! source records, read again, produce them again in the same order, so
//! exactly that many are skipped. Nothing depends on the chunk boundaries,
//! and a lost commit costs a re-read, never a duplicate or a gap. The
//! numbering is deterministic as long as a target's partition count stays
//! as it was (records are routed by key hash, or by the source partition
//! for records without a key).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::batch::{Batch, BatchBuilder, batches};
use brook_protocol::partitioner::partition_for_key;
use brook_protocol::v1;
use brook_storage::Partition;
use bytes::Bytes;
use serde_json::Value;

use super::engine::{CompiledRule, Rules};
use super::store::{Progress, progress_entry};
use crate::consume::read_off_worker;
use crate::error::{ApiError, ApiResult, Reason};
use crate::produce::{Checked, append_now, check_schemas, make_durable};
use crate::state::Broker;

/// Bytes of the source read per chunk.
const CHUNK_BYTES: usize = 1 << 20;
/// Bytes of a target batch before another is started: well under any
/// topic's `max_batch_bytes`.
const BATCH_BYTES: usize = 256 << 10;
/// How long to wait before reading again after a read failed.
const RETRY_AFTER: Duration = Duration::from_secs(1);

/// Headers added to every record a rule writes.
pub const RULE_HEADER: &str = "brook-rule";
/// The source record's topic.
pub const SOURCE_TOPIC_HEADER: &str = "brook-source-topic";
/// The source record's partition.
pub const SOURCE_PARTITION_HEADER: &str = "brook-source-partition";
/// The source record's offset.
pub const SOURCE_OFFSET_HEADER: &str = "brook-source-offset";

/// Starts and restarts the delivery tasks: one per partition of every
/// source topic with a running rule, until the broker stops.
pub async fn run(broker: Arc<Broker>, rules: Arc<Rules>) {
    let mut changed = rules.subscribe();
    let mut shutdown = broker.shutdown_signal();
    let mut tasks: HashMap<(String, u32), tokio::task::JoinHandle<()>> = HashMap::new();
    loop {
        tasks.retain(|_, t| !t.is_finished());
        for topic in rules.running_sources() {
            let t = match broker.topic(&topic) {
                Ok(t) => t,
                Err(e) if e.reason() == Reason::TopicNotFound => {
                    fail_all_on(
                        &rules,
                        &topic,
                        format!("source topic {topic:?} does not exist"),
                    );
                    continue;
                }
                Err(_) => continue,
            };
            for (n, p) in t.partitions() {
                tasks.entry((topic.clone(), n)).or_insert_with(|| {
                    let task = Router {
                        broker: Arc::clone(&broker),
                        rules: Arc::clone(&rules),
                        topic: topic.clone(),
                        partition: n,
                        p,
                    };
                    tokio::spawn(task.run())
                });
            }
        }
        tokio::select! {
            _ = changed.changed() => {}
            // New partitions, and topics created again.
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = shutdown.wait_for(|s| *s) => break,
        }
    }
    for (_, t) in tasks {
        let _ = t.await;
    }
}

fn fail_all_on(rules: &Rules, topic: &str, reason: String) {
    for (rule, _) in rules.running_on(topic, 0) {
        tracing::warn!(rule = %rule.name, "rule failed: {reason}");
        let _ = rules.set_state(
            &rule.name,
            v1::RuleState::Failed,
            reason.clone(),
            Some(rule.incarnation),
        );
    }
}

/// One rule's work in one source partition.
struct Cursor {
    rule: Arc<CompiledRule>,
    progress: Progress,
    /// Per target partition: records already stored by an earlier run
    /// that the records read again will produce first.
    skip: HashMap<(String, u32), i32>,
    /// Target partitions whose sequence changed since the last commit.
    touched: BTreeSet<(String, u32)>,
}

/// A record's producer fields: id, epoch, sequence.
type Stamp = (i64, i16, i32);

impl Cursor {
    /// Counts a selected record for a target partition and numbers it:
    /// `None` when an earlier run stored it already.
    fn stamp(&mut self, at: &(String, u32)) -> Option<Stamp> {
        self.progress.forwarded += 1;
        if let Some(n) = self.skip.get_mut(at).filter(|n| **n > 0) {
            *n -= 1;
            return None;
        }
        let (epoch, next) = self.progress.sequences.entry(at.clone()).or_insert((0, 0));
        let seq = *next;
        *next = next.wrapping_add(1);
        self.touched.insert(at.clone());
        Some((self.progress.producer_id, *epoch, seq))
    }
}

/// One rule's consecutive records for one target partition.
struct Run {
    /// The cursor's index.
    cursor: usize,
    batch: BatchBuilder,
}

/// A chunk's records for the targets. Per target partition they stay in
/// source order across rules: two rules writing one target keep an
/// aggregate's events in the order they happened.
#[derive(Default)]
struct Outbox {
    runs: BTreeMap<(String, u32), Vec<Run>>,
}

impl Outbox {
    fn push(
        &mut self,
        cursor: usize,
        (pid, epoch, seq): Stamp,
        at: (String, u32),
        record: (i64, Option<&[u8]>, Option<&[u8]>),
        headers: &[(&str, &[u8])],
    ) {
        let runs = self.runs.entry(at).or_default();
        let open = runs
            .last()
            .is_some_and(|r| r.cursor == cursor && r.batch.size_bytes() < BATCH_BYTES);
        if !open {
            runs.push(Run {
                cursor,
                batch: BatchBuilder::new().producer(pid, epoch, seq),
            });
        }
        if let Some(run) = runs.last_mut() {
            let (timestamp, key, value) = record;
            run.batch.push(timestamp, key, value, headers);
        }
    }
}

/// The delivery task of one source partition.
struct Router {
    broker: Arc<Broker>,
    rules: Arc<Rules>,
    topic: String,
    partition: u32,
    p: Partition,
}

impl Router {
    async fn run(self) {
        let mut changed = self.rules.subscribe();
        let mut shutdown = self.broker.shutdown_signal();
        let mut end = self.p.watch_high_watermark();
        let mut cursors: Vec<Cursor> = Vec::new();
        let mut seen = None;
        loop {
            if *shutdown.borrow() || self.p.is_deleted() {
                return;
            }
            let version = *changed.borrow_and_update();
            if seen != Some(version) {
                seen = Some(version);
                cursors = self.refresh(cursors).await;
                if cursors.is_empty() {
                    return;
                }
            }
            self.clamp(&mut cursors);
            let from = cursors.iter().map(|c| c.progress.position).min();
            let from = from.unwrap_or(u64::MAX);
            if from >= *end.borrow_and_update() {
                tokio::select! {
                    r = end.changed() => if r.is_err() { return },
                    _ = changed.changed() => {}
                    _ = shutdown.wait_for(|s| *s) => return,
                }
                continue;
            }
            if let Err(e) = self.chunk(&mut cursors, from).await {
                tracing::warn!(topic = %self.topic, partition = self.partition, "rule delivery: {e}");
                tokio::select! {
                    _ = tokio::time::sleep(RETRY_AFTER) => {}
                    _ = shutdown.wait_for(|s| *s) => return,
                }
            }
        }
    }

    /// Keeps the cursors of rules still running, opens those of rules that
    /// started (or resumed) since.
    async fn refresh(&self, old: Vec<Cursor>) -> Vec<Cursor> {
        let mut old: HashMap<(String, u64), Cursor> = old
            .into_iter()
            .map(|c| ((c.rule.name.clone(), c.rule.incarnation), c))
            .collect();
        let mut cursors = Vec::new();
        for (rule, progress) in self.rules.running_on(&self.topic, self.partition) {
            if let Some(c) = old.remove(&(rule.name.clone(), rule.incarnation)) {
                cursors.push(c);
                continue;
            }
            match self.open(Arc::clone(&rule), progress) {
                Ok(c) => cursors.push(c),
                Err(e) => self.fail(&rule, format!("{e}")),
            }
        }
        cursors
    }

    /// A rule's cursor from its committed progress, reconciled with what
    /// its targets stored (see the module documentation).
    fn open(&self, rule: Arc<CompiledRule>, mut progress: Progress) -> ApiResult<Cursor> {
        let mut touched = BTreeSet::new();
        if progress.producer_id == 0 {
            progress.producer_id = self.broker.allocate_producer_id()?;
            let entry = progress_entry(
                rule.incarnation,
                self.partition,
                &progress,
                progress.sequences.iter(),
            );
            self.rules.commit(entry, &rule.name, true)?;
        }
        let mut skip = HashMap::new();
        for target in &rule.definition.targets {
            let t = self
                .broker
                .topic(target)
                .map_err(|e| target_failed(target, e))?;
            for n in 0..t.partition_count() {
                let tp = t
                    .partition(n)
                    .map_err(|e| target_failed(target, e.into()))?;
                let at = (target.clone(), n);
                let committed = progress.sequences.get(&at).copied().unwrap_or((0, 0));
                let stored = tp.producer_next_sequence(progress.producer_id);
                let (now, already) = reconcile(committed, stored);
                if already > 0 {
                    skip.insert(at.clone(), already);
                }
                if now != committed {
                    progress.sequences.insert(at.clone(), now);
                    touched.insert(at);
                }
            }
        }
        Ok(Cursor {
            rule,
            progress,
            skip,
            touched,
        })
    }

    /// Moves cursors into the partition's log: past records retention
    /// removed, and to the start of a topic created again.
    fn clamp(&self, cursors: &mut [Cursor]) {
        let (start, end) = (self.p.log_start_offset(), self.p.high_watermark());
        for c in cursors {
            let at = c.progress.position;
            if at < start || at > end {
                if c.progress.matched > 0 || c.progress.forwarded > 0 {
                    tracing::warn!(
                        rule = %c.rule.name, topic = %self.topic, partition = self.partition,
                        position = at, log_start = start, log_end = end,
                        "the rule's position is outside the partition's log: it goes on from the log's start"
                    );
                }
                c.progress.position = start;
            }
        }
    }

    fn fail(&self, rule: &CompiledRule, reason: String) {
        tracing::warn!(rule = %rule.name, "rule failed: {reason}");
        self.rules.count_failure(&rule.name);
        if let Err(e) = self.rules.set_state(
            &rule.name,
            v1::RuleState::Failed,
            reason,
            Some(rule.incarnation),
        ) {
            tracing::warn!(rule = %rule.name, "recording the rule's failure: {e}");
        }
    }

    /// Reads one chunk from `from`, selects and writes for every cursor,
    /// and commits each cursor's progress. A rule whose target refuses is
    /// failed and its cursor dropped; the others go on.
    async fn chunk(&self, cursors: &mut Vec<Cursor>, from: u64) -> ApiResult<()> {
        let read = read_off_worker(&self.p, from, CHUNK_BYTES).await?;
        if read.batches.is_empty() {
            return Ok(());
        }
        let mut widths = HashMap::new();
        for c in cursors.iter() {
            for target in &c.rule.definition.targets {
                if let Ok(t) = self.broker.topic(target) {
                    widths.insert(target.clone(), t.partition_count());
                }
            }
        }
        let mut outbox = Outbox::default();
        let next = crate::error::in_place_blocking(|| {
            let source = (self.topic.as_str(), self.partition);
            select(&read.batches, from, source, cursors, &widths, &mut outbox)
        })?;
        let mut failed = self.deliver(outbox).await;
        let mut dropped = Vec::new();
        for (i, c) in cursors.iter_mut().enumerate() {
            if let Some(e) = failed.remove(&i) {
                self.fail(&c.rule, e.to_string());
                dropped.push(i);
                continue;
            }
            if c.progress.position >= next {
                continue;
            }
            c.progress.position = next;
            let entry = progress_entry(
                c.rule.incarnation,
                self.partition,
                &c.progress,
                (c.progress.sequences.iter()).filter(|(at, _)| c.touched.contains(*at)),
            );
            self.rules.commit(entry, &c.rule.name, false)?;
            c.touched.clear();
        }
        for i in dropped.into_iter().rev() {
            cursors.remove(i);
        }
        Ok(())
    }

    /// Appends a chunk's runs, each batch durable as its topic's flush
    /// policy says. Returns the cursors a target refused, with why: their
    /// later runs are not written.
    async fn deliver(&self, outbox: Outbox) -> HashMap<usize, ApiError> {
        let mut failed = HashMap::new();
        for ((target, tp), runs) in outbox.runs {
            let p = self.broker.partition(&target, tp);
            for run in runs {
                if failed.contains_key(&run.cursor) {
                    continue;
                }
                let written = match &p {
                    Ok(p) => self.append(&target, p, run.batch).await,
                    Err(e) => Err(target_failed(&target, e.clone())),
                };
                if let Err(e) = written {
                    failed.insert(run.cursor, e);
                }
            }
        }
        failed
    }

    async fn append(&self, target: &str, p: &Partition, b: BatchBuilder) -> ApiResult<()> {
        let batch = Batch::parse(b.build(0))
            .map_err(|e| ApiError::internal(format!("building a batch: {e}")))?;
        check_target(&self.broker, target, &batch)?;
        let info =
            append_now(&self.broker, target, p, &batch).map_err(|e| target_failed(target, e))?;
        make_durable(p.clone(), info, false).await?;
        Ok(())
    }
}

/// A target's refusal, naming the target.
fn target_failed(target: &str, e: ApiError) -> ApiError {
    ApiError::new(e.reason(), format!("target {target:?}: {}", e.message())).with("topic", target)
}

/// A target bound to a schema takes only valid records: one that would be
/// refused or dead-lettered fails the rule instead (its records are not
/// the target's producer's to discard).
fn check_target(broker: &Broker, target: &str, batch: &Batch) -> ApiResult<()> {
    let records = batch
        .records()
        .filter_map(Result::ok)
        .enumerate()
        .map(|(i, r)| (i, r.key, r.value));
    match check_schemas(broker, target, records).map_err(|e| target_failed(target, e))? {
        Checked::Valid => Ok(()),
        Checked::DeadLetter { invalid, .. } => Err(ApiError::new(
            Reason::SchemaValidationFailed,
            format!(
                "target {target:?}: {}",
                invalid.first().map(|i| i.to_string()).unwrap_or_default()
            ),
        )
        .with("topic", target)),
    }
}

/// From a committed (epoch, next sequence) and what the target partition
/// stores for the producer: the (epoch, next sequence) to go on with, and
/// how many records read again were stored already.
fn reconcile(committed: (i16, i32), stored: Option<(i16, i32)>) -> ((i16, i32), i32) {
    let (epoch, next) = committed;
    match stored {
        // Records written after the last commit: skip them.
        Some((e, n)) if e == epoch && n >= next => ((e, n), n - next),
        // A new epoch begun (below) and written before its commit.
        Some((e, n)) if e > epoch => ((e, n), n),
        // Never written there (or nothing since the commit).
        None if next == 0 => (committed, 0),
        // The target forgot the producer (its state expired, or the topic
        // was created again), or holds less than was committed (a power
        // loss took unflushed records): a new epoch starts at 0.
        Some((e, _)) => ((e.max(epoch).wrapping_add(1), 0), 0),
        None => ((epoch.wrapping_add(1), 0), 0),
    }
}

/// The event a record's value makes: its JSON, or nothing when the value
/// is not JSON.
fn parse_event(value: Option<&Bytes>) -> Value {
    value
        .and_then(|v| serde_json::from_slice(v).ok())
        .unwrap_or(Value::Null)
}

/// The event with the record's key and headers as `$key` and `$headers`.
fn with_meta(event: &Value, key: Option<&Bytes>, headers: &[(&str, &[u8])]) -> Value {
    let mut map = match event {
        Value::Object(m) => m.clone(),
        _ => serde_json::Map::new(),
    };
    if let Some(k) = key.and_then(|k| std::str::from_utf8(k).ok()) {
        map.insert("$key".into(), Value::String(k.to_string()));
    }
    let h: serde_json::Map<String, Value> = headers
        .iter()
        .filter_map(|(k, v)| {
            let v = std::str::from_utf8(v).ok()?;
            Some((k.to_string(), Value::String(v.to_string())))
        })
        .collect();
    map.insert("$headers".into(), Value::Object(h));
    Value::Object(map)
}

/// Selects the records of `buf` from `from` for each cursor that has not
/// seen them, filling the cursors' batches. Returns the offset after the
/// last batch read.
fn select(
    buf: &Bytes,
    from: u64,
    (topic, partition): (&str, u32),
    cursors: &mut [Cursor],
    widths: &HashMap<String, u32>,
    outbox: &mut Outbox,
) -> ApiResult<u64> {
    let corrupt = |e: brook_protocol::batch::DecodeError| {
        ApiError::new(
            Reason::CorruptStorage,
            format!("a stored batch failed to decode: {e}"),
        )
    };
    let partition_text = partition.to_string();
    let mut next = from;
    for batch in batches(buf.clone()) {
        let batch = batch.map_err(corrupt)?;
        next = next.max(batch.header().next_offset());
        if batch.header().transactional_or_control() {
            continue;
        }
        for r in batch.records() {
            let r = r.map_err(corrupt)?;
            if r.offset < from {
                continue;
            }
            let offset_text = r.offset.to_string();
            let headers = r.header_pairs();
            let mut event: Option<Value> = None;
            let mut event_with_meta: Option<Value> = None;
            for (i, c) in cursors.iter_mut().enumerate() {
                if c.progress.position > r.offset {
                    continue;
                }
                let rule = Arc::clone(&c.rule);
                let plain = event.get_or_insert_with(|| parse_event(r.value.as_ref()));
                let selected = match rule.needs_meta {
                    false => rule.pattern.matches(plain),
                    true => {
                        let meta = event_with_meta
                            .get_or_insert_with(|| with_meta(plain, r.key.as_ref(), &headers));
                        rule.pattern.matches(meta)
                    }
                };
                if !selected {
                    continue;
                }
                c.progress.matched += 1;
                let transformed = rule.transform.as_ref().map(|t| t.apply(plain));
                let value = match &transformed {
                    Some(v) => Some(v.as_slice()),
                    None => r.value.as_deref(),
                };
                let mut out_headers = Vec::with_capacity(headers.len() + 4);
                out_headers.extend_from_slice(&headers);
                out_headers.extend([
                    (RULE_HEADER, rule.name.as_bytes()),
                    (SOURCE_TOPIC_HEADER, topic.as_bytes()),
                    (SOURCE_PARTITION_HEADER, partition_text.as_bytes()),
                    (SOURCE_OFFSET_HEADER, offset_text.as_bytes()),
                ]);
                for target in &rule.definition.targets {
                    // A target that is gone fails at delivery, with its name.
                    let width = widths.get(target).copied().unwrap_or(1);
                    let tp = match &r.key {
                        Some(k) => partition_for_key(k, width),
                        None => partition % width.max(1),
                    };
                    let at = (target.clone(), tp);
                    if let Some(stamp) = c.stamp(&at) {
                        let record = (r.timestamp, r.key.as_deref(), value);
                        outbox.push(i, stamp, at, record, &out_headers);
                    }
                }
            }
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::reconcile;

    #[test]
    fn reconciling_skips_exactly_what_was_stored_after_the_commit() {
        // Nothing written since the commit.
        assert_eq!(reconcile((0, 10), Some((0, 10))), ((0, 10), 0));
        // Four records stored, then the crash: skip them.
        assert_eq!(reconcile((0, 10), Some((0, 14))), ((0, 14), 4));
        // Never written there; the first write is 0.
        assert_eq!(reconcile((0, 0), None), ((0, 0), 0));
        // The first write crashed before its commit.
        assert_eq!(reconcile((0, 0), Some((0, 3))), ((0, 3), 3));
        // The target forgot the producer: a new epoch.
        assert_eq!(reconcile((0, 10), None), ((1, 0), 0));
        // That new epoch was written to before its commit.
        assert_eq!(reconcile((0, 10), Some((1, 2))), ((1, 2), 2));
        // The target holds less than was committed.
        assert_eq!(reconcile((2, 10), Some((2, 7))), ((3, 0), 0));
        assert_eq!(reconcile((2, 10), Some((1, 70))), ((3, 0), 0));
    }
}
