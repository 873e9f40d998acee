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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use brook_protocol::batch::{Batch, BatchBuilder, batches};
use brook_protocol::partitioner::partition_for_key;
use brook_protocol::v1;
use brook_storage::Partition;
use bytes::Bytes;
use serde_json::Value;

use super::engine::{CompiledRule, Rules};
use super::event::Needed;
use super::outbox::{Outbox, Stamp};
use super::store::{Progress, progress_entry};
use crate::consume::read_off_worker;
use crate::error::{ApiError, ApiResult, Reason};
use crate::otel::propagate::{TRACEPARENT, TRACESTATE};
use crate::produce::{Checked, append_now, check_schemas, make_durable};
use crate::state::Broker;

/// Bytes of the source read per chunk.
const CHUNK_BYTES: usize = 1 << 20;
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

/// Where a rule's numbering stands in one target partition.
#[derive(Clone, Copy, Debug, Default)]
struct Lane {
    epoch: i16,
    /// The sequence of the next record written there.
    next: i32,
    /// Records already stored by an earlier run that the records read
    /// again will produce first.
    skip: i32,
    /// Changed since the last commit.
    touched: bool,
}

/// One rule's work in one source partition.
struct Cursor {
    rule: Arc<CompiledRule>,
    progress: Progress,
    /// By the target's index in the rule's definition, then partition.
    lanes: Vec<Vec<Lane>>,
}

impl Cursor {
    /// Counts a selected record for partition `tp` of target `target` and
    /// numbers it: `None` when an earlier run stored it already.
    fn stamp(&mut self, target: usize, tp: u32) -> Option<Stamp> {
        self.progress.forwarded += 1;
        let lanes = &mut self.lanes[target];
        if lanes.len() <= tp as usize {
            // Partitions added since the cursor opened: nothing written there.
            lanes.resize(tp as usize + 1, Lane::default());
        }
        let lane = &mut lanes[tp as usize];
        // The skips used are committed with the position they belong to.
        lane.touched = true;
        if lane.skip > 0 {
            lane.skip -= 1;
            return None;
        }
        if lane.next == i32::MAX {
            // Storage takes no negative sequence: a new epoch, from 0.
            (lane.epoch, lane.next) = (lane.epoch.wrapping_add(1).max(0), 0);
        }
        let seq = lane.next;
        lane.next += 1;
        Some((self.progress.producer_id, lane.epoch, seq))
    }

    /// Whether [`Cursor::stamp`] would skip the next record for partition
    /// `tp` of target `target` (an earlier run stored it).
    fn skips(&self, target: usize, tp: u32) -> bool {
        (self.lanes[target].get(tp as usize)).is_some_and(|lane| lane.skip > 0)
    }

    /// The frame that commits the cursor's position and the sequences
    /// changed since the last commit.
    fn commit_entry(&mut self, partition: u32) -> super::store::ProgressEntry {
        let mut changed = Vec::new();
        for (j, lanes) in self.lanes.iter_mut().enumerate() {
            for (n, lane) in lanes.iter_mut().enumerate().filter(|(_, l)| l.touched) {
                let at = (self.rule.definition.targets[j].clone(), n as u32);
                // What the position committed stands for: records still to
                // skip are stored, but after it.
                let committed = (lane.epoch, lane.next - lane.skip);
                self.progress.sequences.insert(at.clone(), committed);
                changed.push(at);
                lane.touched = false;
            }
        }
        let sequences = &self.progress.sequences;
        progress_entry(
            self.rule.incarnation,
            partition,
            &self.progress,
            changed.iter().filter_map(|at| sequences.get_key_value(at)),
        )
    }
}

/// What a chunk asks of the delivery task: cursors it dropped are opened
/// again from their commits (reconciled with their targets) at once, or
/// after [`RETRY_AFTER`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Retry {
    No,
    Now,
    Later,
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
            let pause = match self.chunk(&mut cursors, from).await {
                Ok(Retry::No) => continue,
                Ok(Retry::Now) => false,
                Ok(Retry::Later) => true,
                Err(e) => {
                    tracing::warn!(topic = %self.topic, partition = self.partition, "rule delivery: {e}");
                    // Their numbering may be ahead of what was committed:
                    // every cursor opens again from its commit.
                    cursors.clear();
                    true
                }
            };
            // Cursors were dropped to be opened again from their commits.
            seen = None;
            if pause {
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
        let mut lanes = Vec::new();
        for target in &rule.definition.targets {
            let t = self
                .broker
                .topic(target)
                .map_err(|e| target_failed(target, e))?;
            let mut of_target = Vec::new();
            for n in 0..t.partition_count() {
                let tp = t
                    .partition(n)
                    .map_err(|e| target_failed(target, e.into()))?;
                let at = (target.clone(), n);
                let committed = progress.sequences.get(&at).copied().unwrap_or((0, 0));
                let stored = tp.producer_next_sequence(progress.producer_id);
                let ((epoch, next), skip) = reconcile(committed, stored);
                of_target.push(Lane {
                    epoch,
                    next,
                    skip,
                    touched: (epoch, next) != committed,
                });
            }
            lanes.push(of_target);
        }
        Ok(Cursor {
            rule,
            progress,
            lanes,
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
    async fn chunk(&self, cursors: &mut Vec<Cursor>, from: u64) -> ApiResult<Retry> {
        let read = read_off_worker(&self.p, from, CHUNK_BYTES).await?;
        if read.batches.is_empty() {
            return Ok(Retry::No);
        }
        let targets = Targets::of(&self.broker, cursors);
        let mut outbox = Outbox::default();
        let next = crate::error::in_place_blocking(|| {
            let source = (self.topic.as_str(), self.partition);
            select(&read.batches, from, source, cursors, &targets, &mut outbox)
        })?;
        let mut failed = self.deliver(outbox, &targets.names).await;
        let (mut dropped, mut retry) = (Vec::new(), Retry::No);
        for (i, c) in cursors.iter_mut().enumerate() {
            if let Some(e) = failed.remove(&i) {
                let again = match e.reason() {
                    // The target forgot the rule's producer (it was idle
                    // longer than --producer-id-expiration-ms): a new epoch.
                    Reason::UnknownProducer => Retry::Now,
                    Reason::TopicNotFound
                    | Reason::PartitionNotFound
                    | Reason::SchemaValidationFailed
                    | Reason::InvalidRecords
                    | Reason::BatchTooLarge
                    | Reason::NotAuthorized => {
                        self.fail(&c.rule, e.to_string());
                        Retry::No
                    }
                    // A full disk, a partition offline, the broker stopping:
                    // the same records are tried again.
                    _ => Retry::Later,
                };
                if again != Retry::No {
                    tracing::info!(
                        rule = %c.rule.name, topic = %self.topic, partition = self.partition,
                        "rule delivery stopped short ({e}): it goes on from its last commit"
                    );
                }
                retry = retry.max(again);
                dropped.push(i);
                continue;
            }
            if c.progress.position >= next {
                continue;
            }
            c.progress.position = next;
            let entry = c.commit_entry(self.partition);
            self.rules.commit(entry, &c.rule.name, false)?;
        }
        for i in dropped.into_iter().rev() {
            cursors.remove(i);
        }
        Ok(retry)
    }

    /// Appends a chunk's runs, each batch durable as its topic's flush
    /// policy says. Returns the cursors a target refused, with why: their
    /// later runs are not written.
    async fn deliver(&self, outbox: Outbox, names: &[String]) -> HashMap<usize, ApiError> {
        let mut failed = HashMap::new();
        for ((target, tp), runs) in outbox.into_runs() {
            let target = &names[target];
            let p = self.broker.partition(target, tp);
            for run in runs {
                if failed.contains_key(&run.cursor) {
                    continue;
                }
                let written = match &p {
                    Ok(p) => self.append(target, p, run.batch).await,
                    Err(e) => Err(target_failed(target, e.clone())),
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
    if next < 0 || epoch < 0 {
        // Not a state this broker commits: start a new epoch.
        return ((epoch.max(0).wrapping_add(1).max(0), 0), 0);
    }
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

/// The targets of a chunk's cursors, numbered: what the outbox's lanes
/// are keyed by.
struct Targets {
    /// Every cursor's targets, each once.
    names: Vec<String>,
    /// Partitions of each (1 for a target that is gone: it fails at
    /// delivery, with its name).
    widths: Vec<u32>,
    /// Each one's `max_batch_bytes`.
    limits: Vec<usize>,
    /// By cursor, then the target's index in its rule: the number here.
    ids: Vec<Vec<usize>>,
}

impl Targets {
    fn of(broker: &Broker, cursors: &[Cursor]) -> Targets {
        let mut t = Targets {
            names: Vec::new(),
            widths: Vec::new(),
            limits: Vec::new(),
            ids: Vec::new(),
        };
        for c in cursors {
            let mut ids = Vec::new();
            for name in &c.rule.definition.targets {
                let id = match t.names.iter().position(|n| n == name) {
                    Some(id) => id,
                    None => {
                        let topic = broker.topic(name).ok();
                        let width = topic.as_ref().map_or(1, |t| t.partition_count());
                        let limit = (topic.as_ref()).map_or(usize::MAX, |t| {
                            t.config().partition.max_batch_bytes as usize
                        });
                        t.names.push(name.clone());
                        t.widths.push(width.max(1));
                        t.limits.push(limit);
                        t.names.len() - 1
                    }
                };
                ids.push(id);
            }
            t.ids.push(ids);
        }
        t
    }
}

/// Selects the records of `buf` from `from` for each cursor that has not
/// seen them, filling the cursors' batches. Returns the offset after the
/// last batch read.
fn select(
    buf: &Bytes,
    from: u64,
    (topic, partition): (&str, u32),
    cursors: &mut [Cursor],
    targets: &Targets,
    outbox: &mut Outbox,
) -> ApiResult<u64> {
    let corrupt = |e: brook_protocol::batch::DecodeError| {
        ApiError::new(
            Reason::CorruptStorage,
            format!("a stored batch failed to decode: {e}"),
        )
    };
    let partition_text = partition.to_string();
    let mut needed = Needed::none();
    for c in cursors.iter() {
        needed.add(Some(c.rule.pattern.top_level_fields()));
        if let Some(t) = &c.rule.transform {
            needed.add(t.top_level_fields());
        }
    }
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
            // Built once a rule selects the record: most records, most rules do not.
            let offset_text = std::cell::OnceCell::new();
            let headers = std::cell::OnceCell::new();
            let mut event: Option<Value> = None;
            let mut event_with_meta: Option<Value> = None;
            for (i, c) in cursors.iter_mut().enumerate() {
                if c.progress.position > r.offset {
                    continue;
                }
                let rule = &*c.rule;
                let plain =
                    event.get_or_insert_with(|| super::event::parse(r.value.as_ref(), &needed));
                let selected = match rule.needs_meta {
                    false => rule.pattern.matches(plain),
                    true => {
                        let meta = event_with_meta.get_or_insert_with(|| {
                            with_meta(
                                plain,
                                r.key.as_ref(),
                                headers.get_or_init(|| r.header_pairs()),
                            )
                        });
                        rule.pattern.matches(meta)
                    }
                };
                if !selected {
                    continue;
                }
                let rule = Arc::clone(&c.rule);
                c.progress.matched += 1;
                let transformed = rule.transform.as_ref().map(|t| t.apply(plain));
                let value = match &transformed {
                    Some(v) => Some(v.as_slice()),
                    None => r.value.as_deref(),
                };
                let headers = headers.get_or_init(|| r.header_pairs());
                let offset_text = offset_text.get_or_init(|| r.offset.to_string());
                let target_partition = |id: usize| {
                    let width = targets.widths[id];
                    match &r.key {
                        Some(k) => partition_for_key(k, width),
                        None => partition % width,
                    }
                };
                // Exporting spans, the routed record names this rule's span
                // as its parent: its consumer continues the trace from here.
                // A record an earlier run stored everywhere gets no new span.
                let stored_before = || {
                    (targets.ids[i].iter().enumerate())
                        .all(|(j, &id)| c.skips(j, target_partition(id)))
                };
                let routed = match crate::otel::exporting_tracer() {
                    Some(tracer) if !stored_before() => {
                        let source = (topic, partition, r.offset);
                        crate::otel::spans::route(tracer, &rule.name, source, headers)
                    }
                    _ => None,
                };
                let mut out_headers = Vec::with_capacity(headers.len() + 4);
                match &routed {
                    None => out_headers.extend_from_slice(headers),
                    Some((_span, trace)) => {
                        let (parent, state) = (TRACEPARENT, TRACESTATE);
                        out_headers
                            .extend(headers.iter().filter(|(k, _)| *k != parent && *k != state));
                        out_headers.extend(trace.parent.as_deref().map(|v| (parent, v.as_bytes())));
                        out_headers.extend(trace.state.as_deref().map(|v| (state, v.as_bytes())));
                    }
                }
                out_headers.extend([
                    (RULE_HEADER, rule.name.as_bytes()),
                    (SOURCE_TOPIC_HEADER, topic.as_bytes()),
                    (SOURCE_PARTITION_HEADER, partition_text.as_bytes()),
                    (SOURCE_OFFSET_HEADER, offset_text.as_bytes()),
                ]);
                for (j, &id) in targets.ids[i].iter().enumerate() {
                    let tp = target_partition(id);
                    if let Some(stamp) = c.stamp(j, tp) {
                        let record = (r.timestamp, r.key.as_ref(), value);
                        let limit = targets.limits[id];
                        outbox.push(i, stamp, (id, tp), limit, record, &out_headers);
                    }
                }
            }
        }
    }
    Ok(next)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cursor(lane: Lane) -> Cursor {
        let definition = v1::RuleDefinition {
            name: "r".into(),
            event_pattern: r#"{"a":[1]}"#.into(),
            targets: vec!["t".into()],
            ..Default::default()
        };
        Cursor {
            rule: Arc::new(CompiledRule::compile(definition, 1).unwrap()),
            progress: Progress {
                producer_id: 7,
                ..Progress::default()
            },
            lanes: vec![vec![lane]],
        }
    }

    #[test]
    fn a_commit_with_skips_left_stands_for_the_records_before_them() {
        // Reopened after a crash: 4 records past the commit were stored.
        let mut c = cursor(Lane {
            epoch: 0,
            next: 14,
            skip: 4,
            touched: true,
        });
        assert_eq!(c.stamp(0, 0), None, "stored already");
        let entry = c.commit_entry(0);
        // Reopened from this commit, the target's 14 leaves 3 to skip.
        assert_eq!(entry.sequences[0].next_sequence, 11);
        assert_eq!(reconcile((0, 11), Some((0, 14))), ((0, 14), 3));
        for _ in 0..3 {
            assert_eq!(c.stamp(0, 0), None);
        }
        assert_eq!(c.stamp(0, 0), Some((7, 0, 14)), "then numbering goes on");
        assert_eq!(c.commit_entry(0).sequences[0].next_sequence, 15);
    }

    #[test]
    fn numbering_starts_a_new_epoch_before_the_sequence_runs_out() {
        let mut c = cursor(Lane {
            epoch: 2,
            next: i32::MAX - 1,
            skip: 0,
            touched: false,
        });
        assert_eq!(c.stamp(0, 0), Some((7, 2, i32::MAX - 1)));
        assert_eq!(c.stamp(0, 0), Some((7, 3, 0)));
        assert_eq!(c.stamp(0, 0), Some((7, 3, 1)));
    }

    #[test]
    fn a_committed_state_no_broker_writes_starts_a_new_epoch() {
        assert_eq!(reconcile((0, -5), Some((0, 3))), ((1, 0), 0));
        assert_eq!(reconcile((-1, 5), None), ((1, 0), 0));
    }

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
