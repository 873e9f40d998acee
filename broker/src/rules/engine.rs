//! The rules inside the broker: their durable store, their compiled
//! patterns and transforms, and the changes the delivery tasks follow
//! (`deliver.rs` moves the records; `service.rs` is `brook.v1.Rules`).

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};

use brook_protocol::v1;
use brook_storage::FlushPolicy;
use tokio::sync::watch;

use super::pattern::Pattern;
use super::store::{self, CreateEntry, Entry, Op, Progress, RuleBook, StateEntry};
use super::transform::Transform;
use crate::error::{ApiError, ApiResult, Reason};
use crate::statelog::{StateLog, UpdateError};

/// A rule ready to match: its pattern and transform compiled once.
#[derive(Debug)]
pub struct CompiledRule {
    /// The rule's name.
    pub name: String,
    /// Which creation of that name this is.
    pub incarnation: u64,
    /// What it was created with.
    pub definition: v1::RuleDefinition,
    /// The event pattern.
    pub pattern: Pattern,
    /// The input transform (`None`: the value as it is).
    pub transform: Option<Transform>,
    /// Whether the pattern reads the record's key or headers (`$key`,
    /// `$headers`), which are then added to the event.
    pub needs_meta: bool,
}

impl CompiledRule {
    /// Compiles a definition; the error is what was wrong, for the client.
    pub fn compile(definition: v1::RuleDefinition, incarnation: u64) -> ApiResult<CompiledRule> {
        let pattern = Pattern::parse(&definition.event_pattern).map_err(|e| {
            ApiError::new(Reason::InvalidPattern, e.to_string()).with("path", e.path.clone())
        })?;
        let transform = Transform::compile(definition.transform.as_ref())
            .map_err(|why| ApiError::invalid(format!("input transform: {why}")))?;
        let needs_meta = definition.event_pattern.contains("\"$key\"")
            || definition.event_pattern.contains("\"$headers\"");
        Ok(CompiledRule {
            name: definition.name.clone(),
            incarnation,
            definition,
            pattern,
            transform,
            needs_meta,
        })
    }
}

/// A rule's state and counts, as the store holds them.
#[derive(Clone, Debug)]
pub struct RuleStatus {
    /// The definition.
    pub definition: v1::RuleDefinition,
    /// Running, paused or failed.
    pub state: v1::RuleState,
    /// Why it is not running.
    pub reason: String,
    /// When it was created.
    pub created_ms: i64,
    /// Progress by source partition.
    pub partitions: BTreeMap<u32, Progress>,
    /// Deliveries refused since the broker started.
    pub failed: u64,
}

/// Every rule of the broker.
pub struct Rules {
    store: StateLog<RuleBook>,
    compiled: Mutex<HashMap<String, Arc<CompiledRule>>>,
    /// Bumped at every change of a rule's definition or state: delivery
    /// tasks look again at what they should run.
    changed: watch::Sender<u64>,
    failed: Mutex<HashMap<String, u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// NOT_FOUND / RULE_NOT_FOUND.
pub fn not_found(name: &str) -> ApiError {
    ApiError::new(Reason::RuleNotFound, format!("no rule named {name:?}")).with("rule", name)
}

fn io(e: impl std::fmt::Display) -> ApiError {
    ApiError::internal(format!("writing the rules log: {e}"))
}

fn update_error(e: UpdateError<ApiError>) -> ApiError {
    match e {
        UpdateError::Rejected(e) => e,
        UpdateError::Io(e) => io(e),
    }
}

impl Rules {
    /// Replays `<dir>/rules.log` and compiles every rule in it. A stored
    /// rule that no longer compiles (a pattern this build refuses) is kept,
    /// failed, with the reason.
    pub fn open(dir: &Path, flush: FlushPolicy) -> anyhow::Result<Rules> {
        let store = StateLog::open(dir.join(store::NAME), flush, RuleBook::default(), |_| {
            Ok(false)
        })?;
        let mut compiled = HashMap::new();
        store.with(|book| {
            for (name, r) in &mut book.rules {
                match CompiledRule::compile(r.definition.clone(), r.incarnation) {
                    Ok(c) => {
                        compiled.insert(name.clone(), Arc::new(c));
                    }
                    Err(e) => {
                        r.state = v1::RuleState::Failed;
                        r.reason = format!("the rule no longer compiles: {e}");
                    }
                }
            }
        });
        Ok(Rules {
            store,
            compiled: Mutex::new(compiled),
            changed: watch::Sender::new(0),
            failed: Mutex::new(HashMap::new()),
        })
    }

    /// Follows changes to rules (a new value at each).
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    fn bump(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// Creates a rule that was checked (topics exist, pattern compiles),
    /// starting at `positions` (by source partition; partitions not named
    /// start at their first record). The same definition again is answered
    /// with the rule; another under the same name is refused.
    pub fn create(
        &self,
        definition: v1::RuleDefinition,
        positions: BTreeMap<u32, u64>,
        now_ms: i64,
    ) -> ApiResult<()> {
        let name = definition.name.clone();
        let created = self.store.update(|book| {
            if let Some(existing) = book.rules.get(&name) {
                if existing.definition == definition {
                    return Ok((Vec::new(), None));
                }
                return Err(ApiError::new(
                    Reason::RuleExists,
                    format!("a rule named {name:?} exists with another definition"),
                )
                .with("rule", &name));
            }
            let incarnation = book.last_incarnation.saturating_add(1);
            let compiled = CompiledRule::compile(definition.clone(), incarnation)?;
            let mut entries = vec![Entry {
                rule: name.clone(),
                op: Some(Op::Create(CreateEntry {
                    definition: Some(definition.clone()),
                    incarnation,
                    created_ms: now_ms,
                })),
            }];
            for (partition, position) in positions {
                let at = Progress {
                    position,
                    ..Progress::default()
                };
                entries.push(Entry {
                    rule: name.clone(),
                    op: Some(Op::Progress(store::progress_entry(
                        incarnation,
                        partition,
                        &at,
                        std::iter::empty(),
                    ))),
                });
            }
            Ok((entries, Some(compiled)))
        });
        let (compiled, at) = created.map_err(update_error)?;
        if let Some(c) = compiled {
            self.sync_if_needed(at)?;
            lock(&self.compiled).insert(name, Arc::new(c));
            self.bump();
        }
        Ok(())
    }

    fn sync_if_needed(&self, at: crate::statelog::LogPosition) -> ApiResult<()> {
        if self.store.needs_sync(false) {
            crate::error::in_place_blocking(|| self.store.sync(at)).map_err(io)?;
        }
        Ok(())
    }

    /// A rule's state and counts.
    pub fn status(&self, name: &str) -> ApiResult<RuleStatus> {
        let failed = lock(&self.failed).get(name).copied().unwrap_or(0);
        self.store.with(|book| {
            let r = book.rules.get(name).ok_or_else(|| not_found(name))?;
            Ok(RuleStatus {
                definition: r.definition.clone(),
                state: r.state,
                reason: r.reason.clone(),
                created_ms: r.created_ms,
                partitions: r.partitions.clone(),
                failed,
            })
        })
    }

    /// Names of every rule, in order.
    pub fn names(&self) -> Vec<String> {
        self.store.with(|book| book.rules.keys().cloned().collect())
    }

    /// Pauses, resumes or fails a rule. `only_if` names the incarnation
    /// the change is meant for (a delivery task's failure must not land
    /// on a rule created again since).
    pub fn set_state(
        &self,
        name: &str,
        state: v1::RuleState,
        reason: String,
        only_if: Option<u64>,
    ) -> ApiResult<()> {
        let compiled = lock(&self.compiled).get(name).map(|c| c.incarnation);
        let (changed, at) = self
            .store
            .update(|book| {
                let r = book.rules.get(name).ok_or_else(|| not_found(name))?;
                if state == v1::RuleState::Running && compiled != Some(r.incarnation) {
                    return Err(ApiError::new(
                        Reason::InvalidPattern,
                        format!("rule {name:?} cannot run: {}", r.reason),
                    )
                    .with("rule", name));
                }
                if only_if.is_some_and(|i| i != r.incarnation)
                    || (r.state == state && r.reason == reason)
                {
                    return Ok((Vec::new(), false));
                }
                let entry = Entry {
                    rule: name.to_string(),
                    op: Some(Op::State(StateEntry {
                        incarnation: r.incarnation,
                        state: state as i32,
                        reason,
                    })),
                };
                Ok((vec![entry], true))
            })
            .map_err(update_error)?;
        if changed {
            self.sync_if_needed(at)?;
            self.bump();
        }
        Ok(())
    }

    /// Deletes a rule and its progress.
    pub fn delete(&self, name: &str) -> ApiResult<()> {
        let (incarnation, at) = self
            .store
            .update(|book| {
                let r = book.rules.get(name).ok_or_else(|| not_found(name))?;
                let entry = Entry {
                    rule: name.to_string(),
                    op: Some(Op::Delete(r.incarnation)),
                };
                Ok((vec![entry], r.incarnation))
            })
            .map_err(update_error)?;
        self.sync_if_needed(at)?;
        // Not a rule of the same name created since.
        let mut compiled = lock(&self.compiled);
        if compiled
            .get(name)
            .is_some_and(|c| c.incarnation == incarnation)
        {
            compiled.remove(name);
            lock(&self.failed).remove(name);
        }
        drop(compiled);
        self.bump();
        Ok(())
    }

    /// The running rules reading `topic`, with their progress in
    /// `partition` (default when they have none yet).
    pub fn running_on(&self, topic: &str, partition: u32) -> Vec<(Arc<CompiledRule>, Progress)> {
        let compiled = lock(&self.compiled).clone();
        self.store.with(|book| {
            (book.rules.iter())
                .filter(|(_, r)| {
                    r.state == v1::RuleState::Running && r.definition.source_topic == topic
                })
                .filter_map(|(name, r)| {
                    let c = compiled
                        .get(name)
                        .filter(|c| c.incarnation == r.incarnation)?;
                    let progress = r.partitions.get(&partition).cloned().unwrap_or_default();
                    Some((Arc::clone(c), progress))
                })
                .collect()
        })
    }

    /// Source topics with a running rule.
    pub fn running_sources(&self) -> Vec<String> {
        self.store.with(|book| {
            let mut topics: Vec<String> = (book.rules.values())
                .filter(|r| r.state == v1::RuleState::Running)
                .map(|r| r.definition.source_topic.clone())
                .collect();
            topics.sort();
            topics.dedup();
            topics
        })
    }

    /// Records a rule's progress in one source partition; `durable` waits
    /// until it is on disk (a newly allocated producer id must be, before
    /// anything is written with it).
    pub fn commit(
        &self,
        progress: store::ProgressEntry,
        rule: &str,
        durable: bool,
    ) -> ApiResult<()> {
        let entry = Entry {
            rule: rule.to_string(),
            op: Some(Op::Progress(progress)),
        };
        let at = self.store.append(vec![entry]).map_err(io)?;
        if self.store.needs_sync(durable) {
            crate::error::in_place_blocking(|| self.store.sync(at)).map_err(io)?;
        }
        Ok(())
    }

    /// Counts a delivery a target refused.
    pub fn count_failure(&self, rule: &str) {
        *lock(&self.failed).entry(rule.to_string()).or_default() += 1;
    }

    /// Background upkeep of the rules log (syncs by the flush policy,
    /// rewrites).
    pub fn maintain(&self) -> anyhow::Result<()> {
        self.store.maintain()
    }

    /// How often [`Rules::maintain`] runs.
    pub fn maintenance_period(&self) -> std::time::Duration {
        self.store.maintenance_period()
    }

    /// The durable state, one line per item (see the fuzz target
    /// `rules_log`).
    #[doc(hidden)]
    pub fn durable_lines(&self) -> Vec<String> {
        self.store.with(|book| book.durable_lines())
    }

    /// Writes the log out whole now (see the fuzz target `rules_log`).
    #[doc(hidden)]
    pub fn rewrite_now(&self) -> anyhow::Result<()> {
        self.store.rewrite()
    }

    /// Everything to disk (a clean stop).
    pub fn sync_all(&self) -> anyhow::Result<()> {
        self.store.sync_all()
    }
}
