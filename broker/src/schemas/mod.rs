//! The schema registry: subjects with versions and global schema ids,
//! JSON Schema and Avro, compatibility rules checked when a version is
//! registered, stored durably in the data directory (`~schemas/`), and
//! served over Confluent's Schema Registry REST API on the HTTP port
//! (`rest`), so that existing serializers work against Brook unchanged.
//!
//! - `parsed`: a schema's text, checked and parsed by its type;
//! - `compat`: compatibility levels and the rules (`compat/json.rs` for
//!   JSON Schema, `compat/avro.rs` for Avro);
//! - `state`: the registry's state and its durable changes;
//! - `error`: refusals with Confluent's status and error codes;
//! - `validate`: topics bound to subjects, and the check of produced records;
//! - `rest`: the HTTP routes; `service`: the `brook.v1.Schemas` gRPC service.
//!
//! docs/schemas.md is the user's guide.

pub mod compat;
pub(crate) mod deadletter;
pub mod error;
pub mod parsed;
pub mod rest;
pub mod service;
mod state;
pub mod tape;
pub mod validate;

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use anyhow::Context;
use brook_storage::FlushPolicy;

use crate::statelog::{StateLog, UpdateError};
pub use compat::Level;
pub use error::RegistryError;
pub use parsed::{Kind, Parsed};
use state::{
    BindingEntry, Change, ConfigEntry, DeletedEntry, Entry, SchemaEntry, State, VersionEntry,
};
pub use validate::{Binding, Invalid, Mode, OnInvalid, default_dead_letter_topic};
use validate::{Bindings, Compiled};

/// The registry's log, in its directory under the data directory.
const NAME: &str = "schemas.log";

/// The most a record's Avro may make the decoder allocate at once.
const MAX_AVRO_ALLOCATION: usize = 16 << 20;

/// The longest subject name accepted.
pub const MAX_SUBJECT_LEN: usize = 255;

/// Which version a request names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VersionRef {
    /// The newest live version (`latest`, or `-1`).
    Latest,
    /// A version number, from 1.
    Number(u32),
}

impl VersionRef {
    /// Parses `latest`, `-1` or a number from 1 to 2^31-1 (42202 otherwise).
    pub fn parse(s: &str) -> Result<VersionRef, RegistryError> {
        match s {
            "latest" | "-1" => Ok(VersionRef::Latest),
            n => match n.parse::<u32>() {
                Ok(v) if (1..=i32::MAX as u32).contains(&v) => Ok(VersionRef::Number(v)),
                _ => Err(RegistryError::invalid_version(s)),
            },
        }
    }
}

/// A version as the API shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionInfo {
    /// The subject.
    pub subject: String,
    /// The version number.
    pub version: u32,
    /// The schema's global id.
    pub id: u32,
    /// The schema's language.
    pub kind: Kind,
    /// The schema's text.
    pub text: String,
}

/// What a registration did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Registered {
    /// The schema's global id.
    pub id: u32,
    /// Its version in the subject.
    pub version: u32,
    /// Whether a new version was made (else the schema was there already).
    pub created: bool,
}

/// The schema registry. Methods block (each change is synced to disk
/// before it returns): call them on a blocking thread.
pub struct Registry {
    log: StateLog<State>,
    /// Parsed schemas by id: compatibility checks and validation reuse
    /// them instead of parsing the text again.
    parsed: Mutex<HashMap<u32, Arc<Parsed>>>,
    /// Bound topics with their subjects' ids, for the produce path (which
    /// must not wait on the log's lock).
    bindings: RwLock<Arc<Bindings>>,
    /// Whether any topic is bound: the produce path's first question.
    any_bound: AtomicBool,
    /// Threads one request's `full` validation may use (resolved: at least 1).
    validation_threads: AtomicUsize,
}

impl Registry {
    /// Opens (or creates) the registry kept in `dir`.
    pub fn open(dir: &Path, flush: FlushPolicy) -> anyhow::Result<Registry> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // A record's Avro claiming a huge string or array fails instead of
        // reserving it (the crate's default allows 512 MiB per allocation).
        apache_avro::util::max_allocation_bytes(MAX_AVRO_ALLOCATION);
        let log = StateLog::open(dir.join(NAME), flush, State::default(), |_| Ok(false))?;
        let registry = Registry {
            log,
            parsed: Mutex::new(HashMap::new()),
            bindings: RwLock::new(Arc::new(Bindings::new())),
            any_bound: AtomicBool::new(false),
            validation_threads: AtomicUsize::new(1),
        };
        registry.recompile();
        Ok(registry)
    }

    /// Binds `topic` to subjects: produce requests to it are checked from
    /// now on (docs/schemas.md, "Validation at the broker"). The subjects
    /// need not have versions yet (records are refused until they do).
    pub fn bind(&self, topic: &str, binding: &Binding) -> Result<(), RegistryError> {
        for subject in [&binding.value_subject, &binding.key_subject]
            .into_iter()
            .flatten()
        {
            check_subject(subject)?;
        }
        if binding.value_subject.is_none() && binding.key_subject.is_none() {
            return Err(RegistryError::invalid_request(
                "a binding names a value subject, a key subject or both".into(),
            ));
        }
        if let Some(dlq) = &binding.dead_letter_topic {
            brook_storage::validate_topic_name(dlq)
                .map_err(|e| RegistryError::invalid_request(format!("dead-letter topic: {e}")))?;
            if dlq == topic {
                return Err(RegistryError::invalid_request(format!(
                    "topic {topic:?} cannot be its own dead-letter topic"
                )));
            }
        }
        self.write_binding(BindingEntry {
            topic: topic.to_string(),
            value_subject: binding.value_subject.clone().unwrap_or_default(),
            key_subject: binding.key_subject.clone().unwrap_or_default(),
            mode: binding.mode.name().to_string(),
            on_invalid: binding.on_invalid.name().to_string(),
            dead_letter_topic: binding.dead_letter_topic.clone().unwrap_or_default(),
        })
    }

    /// Removes `topic`'s binding (nothing is checked any more).
    pub fn unbind(&self, topic: &str) -> Result<(), RegistryError> {
        self.write_binding(BindingEntry {
            topic: topic.to_string(),
            ..Default::default()
        })
    }

    /// `topic`'s binding, if it has one.
    pub fn binding(&self, topic: &str) -> Option<Binding> {
        self.log.with(|state| state.bindings.get(topic).cloned())
    }

    fn write_binding(&self, entry: BindingEntry) -> Result<(), RegistryError> {
        let at = self
            .log
            .append(vec![change(Change::Binding(entry))])
            .map_err(store_error)?;
        let synced = self.log.sync(at);
        self.recompile();
        synced.map_err(store_error)
    }

    /// How `topic`'s records are checked, if it is bound.
    pub fn mode_of(&self, topic: &str) -> Option<Mode> {
        self.bound(topic).map(|c| c.mode)
    }

    /// `topic`'s binding as the produce path checks it, if it is bound.
    pub(crate) fn bound(&self, topic: &str) -> Option<Arc<Compiled>> {
        if !self.any_bound.load(Ordering::Acquire) {
            return None;
        }
        self.compiled().get(topic).cloned()
    }

    /// Checks `records` (position in the request, key, value) bound for
    /// `topic`; the first record that fails, if one does.
    pub fn validate(
        &self,
        topic: &str,
        records: impl Iterator<Item = (usize, Option<bytes::Bytes>, Option<bytes::Bytes>)>,
    ) -> Result<(), Invalid> {
        match self.bound(topic) {
            Some(binding) => match self.validate_with(&binding, records, true).pop() {
                Some(first) => Err(first),
                None => Ok(()),
            },
            None => Ok(()),
        }
    }

    /// Sets how many threads one request's `full` validation may use
    /// (`brook serve --validation-threads`; 0, the default: one per core,
    /// at most 8).
    pub fn set_validation_threads(&self, threads: usize) {
        // Worked out once: the core count reads cgroup files on Linux.
        let threads = match threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        self.validation_threads.store(threads, Ordering::Relaxed);
    }

    /// Checks `records` against `binding` (from [`Registry::bound`]):
    /// every record that fails, or with `first_only` the first.
    pub(crate) fn validate_with(
        &self,
        binding: &Compiled,
        records: impl Iterator<Item = (usize, Option<bytes::Bytes>, Option<bytes::Bytes>)>,
        first_only: bool,
    ) -> Vec<Invalid> {
        let threads = self.validation_threads.load(Ordering::Relaxed);
        let schema = |id| self.parsed(id).ok();
        validate::check(binding, records, &schema, first_only, threads)
    }

    fn compiled(&self) -> Arc<Bindings> {
        Arc::clone(&self.bindings.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// Rebuilds the produce path's view of the bindings from the state,
    /// under the log's lock: two rebuilds never store out of order.
    fn recompile(&self) {
        self.log.with(|state| {
            let ids = |subject: &Option<String>| {
                subject.as_ref().map(|name| {
                    let ids = state
                        .subjects
                        .get(name)
                        .map(|s| s.versions.values().map(|v| v.id).collect())
                        .unwrap_or_default();
                    (name.clone(), ids)
                })
            };
            let compiled: Bindings = state
                .bindings
                .iter()
                .map(|(topic, b)| {
                    let c = Compiled {
                        mode: b.mode,
                        value: ids(&b.value_subject),
                        key: ids(&b.key_subject),
                        dead_letter_topic: (b.on_invalid == OnInvalid::DeadLetter).then(|| {
                            b.dead_letter_topic
                                .clone()
                                .unwrap_or_else(|| default_dead_letter_topic(topic))
                        }),
                    };
                    (topic.clone(), Arc::new(c))
                })
                .collect();
            self.any_bound
                .store(!compiled.is_empty(), Ordering::Release);
            *self.bindings.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(compiled);
        });
    }

    /// Registers `text` as a schema of `kind` under `subject`: its id and
    /// version, the existing ones if the subject has it already. Refused if
    /// it does not parse (42201) or is incompatible with the subject's
    /// versions under its level (409, with every problem found).
    pub fn register(
        &self,
        subject: &str,
        kind: Kind,
        text: &str,
    ) -> Result<Registered, RegistryError> {
        check_subject(subject)?;
        let parsed = Arc::new(Parsed::parse(kind, text).map_err(RegistryError::invalid_schema)?);
        let canonical = parsed::canonical(text)
            .ok_or_else(|| RegistryError::invalid_schema("the schema is not JSON".into()))?;
        let (registered, at) = self
            .log
            .update(|state| {
                let known = state.ids.get(&(kind, canonical.clone())).copied();
                let subj = state.subjects.get(subject);
                if let (Some(id), Some(subj)) = (known, subj)
                    && let Some((version, _)) = subj.live().find(|(_, v)| v.id == id)
                {
                    let found = Registered {
                        id,
                        version,
                        created: false,
                    };
                    return Ok((Vec::new(), found));
                }
                let level = effective_level(state, subject);
                let live: Vec<(u32, u32)> = subj
                    .map(|s| s.live().map(|(n, v)| (n, v.id)).collect())
                    .unwrap_or_default();
                let previous = self.parsed_versions(state, &live)?;
                let previous: Vec<(u32, &Parsed)> =
                    previous.iter().map(|(n, p)| (*n, p.as_ref())).collect();
                let problems = compat::check(level, &parsed, &previous);
                if !problems.is_empty() {
                    return Err(RegistryError::incompatible(&problems));
                }
                let id = known.unwrap_or(state.next_id);
                let version = subj.map_or(1, |s| s.next_version.max(1));
                let mut entries = Vec::new();
                if known.is_none() {
                    entries.push(change(Change::Schema(SchemaEntry {
                        id,
                        kind: kind.name().to_string(),
                        text: text.to_string(),
                        canonical: canonical.clone(),
                    })));
                }
                entries.push(change(Change::Version(VersionEntry {
                    subject: subject.to_string(),
                    version,
                    id,
                    deleted: false,
                })));
                let made = Registered {
                    id,
                    version,
                    created: true,
                };
                Ok((entries, made))
            })
            .map_err(update_error)?;
        // On disk before it is answered (and before a bound topic accepts
        // records naming the id); also when the schema was there already,
        // as that registration may not be synced yet.
        let synced = self.log.sync(at);
        if registered.created {
            self.cache().insert(registered.id, parsed);
            self.recompile();
        }
        synced.map_err(store_error)?;
        Ok(registered)
    }

    /// The version of `subject` that holds `text` (a live one, or any with
    /// `deleted`): 40401 without the subject, 40403 without the schema.
    pub fn lookup(
        &self,
        subject: &str,
        kind: Kind,
        text: &str,
        deleted: bool,
    ) -> Result<VersionInfo, RegistryError> {
        Parsed::parse(kind, text).map_err(RegistryError::invalid_schema)?;
        let canonical = parsed::canonical(text)
            .ok_or_else(|| RegistryError::invalid_schema("the schema is not JSON".into()))?;
        self.log.with(|state| {
            let subj = visible_subject(state, subject, deleted)?;
            let id = state.ids.get(&(kind, canonical)).copied();
            let found = id.and_then(|id| {
                subj.versions
                    .iter()
                    .rev()
                    .find(|(_, v)| v.id == id && (deleted || !v.deleted))
            });
            match found {
                Some((version, v)) => version_info(state, subject, *version, v.id),
                None => Err(RegistryError::schema_not_found("Schema not found".into())),
            }
        })
    }

    /// Subjects with a live version (or with any version, with `deleted`),
    /// sorted.
    pub fn subjects(&self, deleted: bool) -> Vec<String> {
        self.log.with(|state| {
            state
                .subjects
                .iter()
                .filter(|(_, s)| s.versions.values().any(|v| deleted || !v.deleted))
                .map(|(name, _)| name.clone())
                .collect()
        })
    }

    /// The version numbers of `subject`, oldest first.
    pub fn versions(&self, subject: &str, deleted: bool) -> Result<Vec<u32>, RegistryError> {
        self.log.with(|state| {
            let subj = visible_subject(state, subject, deleted)?;
            Ok(subj
                .versions
                .iter()
                .filter(|(_, v)| deleted || !v.deleted)
                .map(|(n, _)| *n)
                .collect())
        })
    }

    /// One version of `subject`.
    pub fn version(
        &self,
        subject: &str,
        which: VersionRef,
        deleted: bool,
    ) -> Result<VersionInfo, RegistryError> {
        self.log.with(|state| {
            let subj = visible_subject(state, subject, deleted)?;
            let (number, v) = pick(subj, subject, which, deleted)?;
            version_info(state, subject, number, v.id)
        })
    }

    /// The schema with global id `id`: its language and text.
    pub fn schema(&self, id: u32) -> Result<(Kind, String), RegistryError> {
        self.log.with(|state| {
            state
                .schemas
                .get(&id)
                .map(|s| (s.kind, s.text.clone()))
                .ok_or_else(|| RegistryError::schema_not_found(format!("Schema {id} not found")))
        })
    }

    /// The parsed schema with id `id`, from the cache (parsed on a miss).
    pub fn parsed(&self, id: u32) -> Result<Arc<Parsed>, RegistryError> {
        if let Some(p) = self.cache().get(&id) {
            return Ok(Arc::clone(p));
        }
        let (kind, text) = self.schema(id)?;
        let parsed = Arc::new(Parsed::parse(kind, &text).map_err(|e| {
            RegistryError::store(format!("stored schema {id} does not parse any more: {e}"))
        })?);
        self.cache().insert(id, Arc::clone(&parsed));
        Ok(parsed)
    }

    /// The subjects and versions that use schema `id` (live ones).
    pub fn uses(&self, id: u32) -> Result<Vec<(String, u32)>, RegistryError> {
        self.log.with(|state| {
            if !state.schemas.contains_key(&id) {
                return Err(RegistryError::schema_not_found(format!(
                    "Schema {id} not found"
                )));
            }
            Ok(state
                .subjects
                .iter()
                .flat_map(|(name, s)| {
                    s.live()
                        .filter(|(_, v)| v.id == id)
                        .map(|(n, _)| (name.clone(), n))
                        .collect::<Vec<_>>()
                })
                .collect())
        })
    }

    /// Deletes one version: softly (hidden, its id still served), or for
    /// good with `permanent` (only after a soft delete, as Confluent's).
    /// Returns the version number.
    pub fn delete_version(
        &self,
        subject: &str,
        which: VersionRef,
        permanent: bool,
    ) -> Result<u32, RegistryError> {
        let (number, at) = self
            .log
            .update(|state| {
                let subj = visible_subject(state, subject, true)?;
                if let (false, VersionRef::Number(n)) = (permanent, which)
                    && subj.versions.get(&n).is_some_and(|v| v.deleted)
                {
                    return Err(RegistryError::version_soft_deleted(subject, n));
                }
                let (number, v) = pick(subj, subject, which, permanent)?;
                if permanent && !v.deleted {
                    return Err(RegistryError::version_not_soft_deleted(subject, number));
                }
                let entry = change(Change::Deleted(DeletedEntry {
                    subject: subject.to_string(),
                    version: number,
                    permanent,
                }));
                Ok((vec![entry], number))
            })
            .map_err(update_error)?;
        let synced = self.log.sync(at);
        self.recompile();
        synced.map_err(store_error)?;
        Ok(number)
    }

    /// Deletes every version of `subject` (softly, or for good after a soft
    /// delete); returns their numbers.
    pub fn delete_subject(
        &self,
        subject: &str,
        permanent: bool,
    ) -> Result<Vec<u32>, RegistryError> {
        let (numbers, at) = self
            .log
            .update(|state| {
                let subj = visible_subject(state, subject, true)?;
                let live: Vec<u32> = subj.live().map(|(n, _)| n).collect();
                let numbers: Vec<u32> = match permanent {
                    true if !live.is_empty() => {
                        return Err(RegistryError::subject_not_soft_deleted(subject));
                    }
                    true => subj.versions.keys().copied().collect(),
                    false if live.is_empty() => {
                        return Err(RegistryError::subject_soft_deleted(subject));
                    }
                    false => live,
                };
                let entries = numbers
                    .iter()
                    .map(|&version| {
                        change(Change::Deleted(DeletedEntry {
                            subject: subject.to_string(),
                            version,
                            permanent,
                        }))
                    })
                    .collect();
                Ok((entries, numbers))
            })
            .map_err(update_error)?;
        let synced = self.log.sync(at);
        self.recompile();
        synced.map_err(store_error)?;
        Ok(numbers)
    }

    /// The compatibility level of `subject` (or the registry's, for
    /// `None`). A subject without its own answers 40408, unless
    /// `default_to_global`.
    pub fn level(
        &self,
        subject: Option<&str>,
        default_to_global: bool,
    ) -> Result<Level, RegistryError> {
        self.log.with(|state| match subject {
            None => Ok(state.level.unwrap_or(Level::DEFAULT)),
            Some(name) => match state.subjects.get(name).and_then(|s| s.level) {
                Some(level) => Ok(level),
                None if default_to_global => Ok(state.level.unwrap_or(Level::DEFAULT)),
                None => Err(RegistryError::subject_level_not_configured(name)),
            },
        })
    }

    /// Sets the compatibility level of `subject` (or the registry's).
    pub fn set_level(&self, subject: Option<&str>, level: Level) -> Result<Level, RegistryError> {
        if let Some(name) = subject {
            check_subject(name)?;
        }
        self.write_level(subject, level.name().to_string())?;
        Ok(level)
    }

    /// Clears the level of `subject` (it follows the registry's again), or
    /// resets the registry's to the default; returns the level it had.
    pub fn clear_level(&self, subject: Option<&str>) -> Result<Level, RegistryError> {
        let before = self.level(subject, true)?;
        self.write_level(subject, String::new())?;
        Ok(before)
    }

    fn write_level(&self, subject: Option<&str>, level: String) -> Result<(), RegistryError> {
        let entry = change(Change::Config(ConfigEntry {
            subject: subject.unwrap_or_default().to_string(),
            level,
        }));
        let at = self.log.append(vec![entry]).map_err(store_error)?;
        self.log.sync(at).map_err(store_error)
    }

    /// The problems that make `text` incompatible with `subject`'s versions:
    /// with one version (`Some`, checked in the level's direction), or as a
    /// registration would check it (`None`). Empty: compatible.
    pub fn check(
        &self,
        subject: &str,
        which: Option<VersionRef>,
        kind: Kind,
        text: &str,
    ) -> Result<Vec<String>, RegistryError> {
        let parsed = Parsed::parse(kind, text).map_err(RegistryError::invalid_schema)?;
        let (level, against) = self.log.with(|state| {
            let level = effective_level(state, subject);
            let against: Vec<(u32, u32)> = match (state.subjects.get(subject), which) {
                (None, None) => Vec::new(),
                (None, Some(_)) => return Err(RegistryError::subject_not_found(subject)),
                (Some(s), None) => s.live().map(|(n, v)| (n, v.id)).collect(),
                (Some(s), Some(which)) => {
                    let (n, v) = pick(s, subject, which, false)?;
                    vec![(n, v.id)]
                }
            };
            Ok((level, against))
        })?;
        let previous: Vec<(u32, Arc<Parsed>)> = against
            .iter()
            .map(|&(n, id)| self.parsed(id).map(|p| (n, p)))
            .collect::<Result<_, _>>()?;
        let previous: Vec<(u32, &Parsed)> =
            previous.iter().map(|(n, p)| (*n, p.as_ref())).collect();
        Ok(compat::check(level, &parsed, &previous))
    }

    /// Everything changed so far, to disk (a clean stop).
    pub fn sync_all(&self) -> anyhow::Result<()> {
        self.log.sync_all()
    }

    /// Rewrites the log once it has doubled (and syncs by the flush policy).
    pub fn maintain(&self) -> anyhow::Result<()> {
        self.log.maintain()
    }

    /// How often [`Registry::maintain`] should run.
    pub fn maintenance_period(&self) -> Duration {
        self.log.maintenance_period()
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Arc<Parsed>>> {
        self.parsed.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The parsed schemas of `versions` (number, id), under the state lock.
    fn parsed_versions(
        &self,
        state: &State,
        versions: &[(u32, u32)],
    ) -> Result<Vec<(u32, Arc<Parsed>)>, RegistryError> {
        let mut out = Vec::with_capacity(versions.len());
        for &(number, id) in versions {
            if let Some(p) = self.cache().get(&id) {
                out.push((number, Arc::clone(p)));
                continue;
            }
            let stored = state.schemas.get(&id).ok_or_else(|| {
                RegistryError::store(format!(
                    "version {number} names schema {id}, which is missing"
                ))
            })?;
            let parsed = Arc::new(Parsed::parse(stored.kind, &stored.text).map_err(|e| {
                RegistryError::store(format!("stored schema {id} does not parse any more: {e}"))
            })?);
            self.cache().insert(id, Arc::clone(&parsed));
            out.push((number, parsed));
        }
        Ok(out)
    }
}

fn change(c: Change) -> Entry {
    Entry { change: Some(c) }
}

fn effective_level(state: &State, subject: &str) -> Level {
    state
        .subjects
        .get(subject)
        .and_then(|s| s.level)
        .or(state.level)
        .unwrap_or(Level::DEFAULT)
}

/// The subject if it has a version to show (a live one, or any with
/// `deleted`); 40401 otherwise.
fn visible_subject<'s>(
    state: &'s State,
    subject: &str,
    deleted: bool,
) -> Result<&'s state::Subject, RegistryError> {
    state
        .subjects
        .get(subject)
        .filter(|s| s.versions.values().any(|v| deleted || !v.deleted))
        .ok_or_else(|| RegistryError::subject_not_found(subject))
}

fn pick(
    subj: &state::Subject,
    subject: &str,
    which: VersionRef,
    deleted: bool,
) -> Result<(u32, state::Version), RegistryError> {
    let found = match which {
        VersionRef::Latest => subj.live().last(),
        VersionRef::Number(n) => subj
            .versions
            .get(&n)
            .filter(|v| deleted || !v.deleted)
            .map(|v| (n, *v)),
    };
    found.ok_or_else(|| {
        let name = match which {
            VersionRef::Latest => "latest".to_string(),
            VersionRef::Number(n) => n.to_string(),
        };
        RegistryError::version_not_found(subject, &name)
    })
}

fn version_info(
    state: &State,
    subject: &str,
    version: u32,
    id: u32,
) -> Result<VersionInfo, RegistryError> {
    let stored = state.schemas.get(&id).ok_or_else(|| {
        RegistryError::store(format!(
            "version {version} names schema {id}, which is missing"
        ))
    })?;
    Ok(VersionInfo {
        subject: subject.to_string(),
        version,
        id,
        kind: stored.kind,
        text: stored.text.clone(),
    })
}

/// Subject names: 1 to 255 bytes, no control characters.
fn check_subject(subject: &str) -> Result<(), RegistryError> {
    if subject.is_empty() || subject.len() > MAX_SUBJECT_LEN {
        return Err(RegistryError::invalid_subject(format!(
            "a subject name has 1 to {MAX_SUBJECT_LEN} bytes; this one has {}",
            subject.len()
        )));
    }
    if subject.chars().any(char::is_control) {
        return Err(RegistryError::invalid_subject(format!(
            "subject name {subject:?} holds a control character"
        )));
    }
    Ok(())
}

fn update_error(e: UpdateError<RegistryError>) -> RegistryError {
    match e {
        UpdateError::Rejected(e) => e,
        UpdateError::Io(e) => store_error(e),
    }
}

fn store_error(e: anyhow::Error) -> RegistryError {
    tracing::error!(error = %format!("{e:#}"), "the schemas log failed");
    RegistryError::store(format!("{e:#}"))
}

#[cfg(test)]
mod tests;
