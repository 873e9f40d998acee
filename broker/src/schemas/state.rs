//! The registry's state and the changes that build it, kept durable by a
//! [`StateLog`](crate::statelog::StateLog) (`~schemas/schemas.log`), as the
//! groups' offsets are.

use std::collections::{BTreeMap, HashMap};

use super::compat::Level;
use super::parsed::Kind;
use super::validate::{Binding, Mode};
use crate::statelog::Machine;

/// One stored change.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Entry {
    /// What changed.
    #[prost(oneof = "Change", tags = "1, 2, 3, 4, 5, 6")]
    pub change: Option<Change>,
}

/// The kinds of change.
#[derive(Clone, PartialEq, prost::Oneof)]
pub enum Change {
    /// A schema got its id.
    #[prost(message, tag = "1")]
    Schema(SchemaEntry),
    /// A subject got a version (or, in a snapshot, has one).
    #[prost(message, tag = "2")]
    Version(VersionEntry),
    /// A version was deleted, softly or for good.
    #[prost(message, tag = "3")]
    Deleted(DeletedEntry),
    /// A compatibility level was set or cleared.
    #[prost(message, tag = "4")]
    Config(ConfigEntry),
    /// The next ids, kept across deletions (snapshots only): an id or a
    /// version number is never handed out twice.
    #[prost(message, tag = "5")]
    Counters(CountersEntry),
    /// A topic bound to subjects (or unbound: mode empty).
    #[prost(message, tag = "6")]
    Binding(BindingEntry),
}

/// A topic's binding to subjects.
#[derive(Clone, PartialEq, prost::Message)]
pub struct BindingEntry {
    /// The topic.
    #[prost(string, tag = "1")]
    pub topic: String,
    /// The subject of its values (empty: none).
    #[prost(string, tag = "2")]
    pub value_subject: String,
    /// The subject of its keys (empty: none).
    #[prost(string, tag = "3")]
    pub key_subject: String,
    /// `off`, `id` or `full`; empty removes the binding.
    #[prost(string, tag = "4")]
    pub mode: String,
    /// `refuse` or `dead-letter` (empty, as written before it existed: refuse).
    #[prost(string, tag = "5")]
    pub on_invalid: String,
    /// The dead-letter topic (empty: `<topic>.dlq`).
    #[prost(string, tag = "6")]
    pub dead_letter_topic: String,
}

/// A schema and its id.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SchemaEntry {
    /// The global id.
    #[prost(uint32, tag = "1")]
    pub id: u32,
    /// `JSON` or `AVRO`.
    #[prost(string, tag = "2")]
    pub kind: String,
    /// The text as first registered.
    #[prost(string, tag = "3")]
    pub text: String,
    /// The text in the form registrations are compared in.
    #[prost(string, tag = "4")]
    pub canonical: String,
}

/// A version of a subject.
#[derive(Clone, PartialEq, prost::Message)]
pub struct VersionEntry {
    /// The subject.
    #[prost(string, tag = "1")]
    pub subject: String,
    /// The version number (from 1).
    #[prost(uint32, tag = "2")]
    pub version: u32,
    /// The schema's id.
    #[prost(uint32, tag = "3")]
    pub id: u32,
    /// Soft-deleted (snapshots carry it).
    #[prost(bool, tag = "4")]
    pub deleted: bool,
}

/// A deletion of a version.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DeletedEntry {
    /// The subject.
    #[prost(string, tag = "1")]
    pub subject: String,
    /// The version.
    #[prost(uint32, tag = "2")]
    pub version: u32,
    /// Removed for good (else marked deleted).
    #[prost(bool, tag = "3")]
    pub permanent: bool,
}

/// A compatibility level set (or cleared, when empty).
#[derive(Clone, PartialEq, prost::Message)]
pub struct ConfigEntry {
    /// The subject, or empty for the registry's default.
    #[prost(string, tag = "1")]
    pub subject: String,
    /// The level's name, or empty to clear the subject's.
    #[prost(string, tag = "2")]
    pub level: String,
}

/// Counters that deletions must not move back.
#[derive(Clone, PartialEq, prost::Message)]
pub struct CountersEntry {
    /// The next schema id.
    #[prost(uint32, tag = "1")]
    pub next_id: u32,
    /// Each subject's next version number.
    #[prost(map = "string, uint32", tag = "2")]
    pub next_versions: HashMap<String, u32>,
}

/// A stored schema.
#[derive(Clone, Debug)]
pub struct Stored {
    /// Its language.
    pub kind: Kind,
    /// The text as first registered.
    pub text: String,
    /// The comparison form.
    pub canonical: String,
}

/// A version of a subject.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Version {
    /// The schema's id.
    pub id: u32,
    /// Soft-deleted: hidden unless asked for.
    pub deleted: bool,
}

/// A subject: its versions and its own compatibility level.
#[derive(Clone, Debug, Default)]
pub struct Subject {
    /// Versions by number.
    pub versions: BTreeMap<u32, Version>,
    /// The number the next version gets.
    pub next_version: u32,
    /// Its compatibility level, if set.
    pub level: Option<Level>,
}

impl Subject {
    /// Versions not soft-deleted, oldest first.
    pub fn live(&self) -> impl Iterator<Item = (u32, Version)> + '_ {
        self.versions
            .iter()
            .filter(|(_, v)| !v.deleted)
            .map(|(n, v)| (*n, *v))
    }
}

/// The whole registry.
#[derive(Debug)]
pub struct State {
    /// Schemas by id.
    pub schemas: BTreeMap<u32, Stored>,
    /// Ids by language and comparison form.
    pub ids: HashMap<(Kind, String), u32>,
    /// Subjects by name.
    pub subjects: BTreeMap<String, Subject>,
    /// The id the next new schema gets.
    pub next_id: u32,
    /// The registry's default level, if set.
    pub level: Option<Level>,
    /// Topics bound to subjects.
    pub bindings: BTreeMap<String, Binding>,
}

impl Default for State {
    fn default() -> State {
        State {
            schemas: BTreeMap::new(),
            ids: HashMap::new(),
            subjects: BTreeMap::new(),
            next_id: 1,
            level: None,
            bindings: BTreeMap::new(),
        }
    }
}

impl State {
    /// Forgets a schema no version refers to any more.
    fn drop_if_unused(&mut self, id: u32) {
        let used = self
            .subjects
            .values()
            .any(|s| s.versions.values().any(|v| v.id == id));
        if !used && let Some(stored) = self.schemas.remove(&id) {
            self.ids.remove(&(stored.kind, stored.canonical));
        }
    }
}

impl Machine for State {
    type Entry = Entry;
    const MAGIC: &'static [u8] = b"brook-schemas-log 1\n";
    const WHAT: &'static str = "the schemas log";

    fn apply(&mut self, entry: Entry) {
        let Some(change) = entry.change else {
            return;
        };
        match change {
            Change::Schema(s) => {
                // A kind this build does not know is kept out rather than guessed.
                let Ok(kind) = s.kind.parse::<Kind>() else {
                    tracing::error!(id = s.id, kind = %s.kind, "the schemas log holds a schema of an unknown type; skipped");
                    return;
                };
                self.ids.insert((kind, s.canonical.clone()), s.id);
                self.next_id = self.next_id.max(s.id.saturating_add(1));
                self.schemas.insert(
                    s.id,
                    Stored {
                        kind,
                        text: s.text,
                        canonical: s.canonical,
                    },
                );
            }
            Change::Version(v) => {
                let subject = self.subjects.entry(v.subject).or_default();
                subject.next_version = subject.next_version.max(v.version.saturating_add(1));
                subject.versions.insert(
                    v.version,
                    Version {
                        id: v.id,
                        deleted: v.deleted,
                    },
                );
            }
            Change::Deleted(d) => {
                let Some(subject) = self.subjects.get_mut(&d.subject) else {
                    return;
                };
                if d.permanent {
                    if let Some(gone) = subject.versions.remove(&d.version) {
                        self.drop_if_unused(gone.id);
                    }
                } else if let Some(v) = subject.versions.get_mut(&d.version) {
                    v.deleted = true;
                }
            }
            Change::Config(c) => {
                let level = c.level.parse::<Level>().ok();
                if c.subject.is_empty() {
                    self.level = level;
                } else {
                    self.subjects.entry(c.subject).or_default().level = level;
                }
            }
            Change::Binding(b) => match b.mode.parse::<Mode>() {
                Ok(mode) => {
                    let some = |s: String| (!s.is_empty()).then_some(s);
                    let binding = Binding {
                        value_subject: some(b.value_subject),
                        key_subject: some(b.key_subject),
                        mode,
                        // An action this build does not know refuses: it
                        // stores nothing it should not.
                        on_invalid: b.on_invalid.parse().unwrap_or_default(),
                        dead_letter_topic: some(b.dead_letter_topic),
                    };
                    self.bindings.insert(b.topic, binding);
                }
                Err(_) => {
                    self.bindings.remove(&b.topic);
                }
            },
            Change::Counters(c) => {
                self.next_id = self.next_id.max(c.next_id);
                for (name, next) in c.next_versions {
                    let subject = self.subjects.entry(name).or_default();
                    subject.next_version = subject.next_version.max(next);
                }
            }
        }
    }

    fn snapshot(&self, out: &mut dyn FnMut(Entry)) {
        let mut emit = |change| {
            out(Entry {
                change: Some(change),
            })
        };
        for (id, s) in &self.schemas {
            emit(Change::Schema(SchemaEntry {
                id: *id,
                kind: s.kind.name().to_string(),
                text: s.text.clone(),
                canonical: s.canonical.clone(),
            }));
        }
        let mut next_versions = HashMap::new();
        for (name, subject) in &self.subjects {
            for (version, v) in &subject.versions {
                emit(Change::Version(VersionEntry {
                    subject: name.clone(),
                    version: *version,
                    id: v.id,
                    deleted: v.deleted,
                }));
            }
            if let Some(level) = subject.level {
                emit(Change::Config(ConfigEntry {
                    subject: name.clone(),
                    level: level.name().to_string(),
                }));
            }
            next_versions.insert(name.clone(), subject.next_version);
        }
        if let Some(level) = self.level {
            emit(Change::Config(ConfigEntry {
                subject: String::new(),
                level: level.name().to_string(),
            }));
        }
        for (topic, b) in &self.bindings {
            emit(Change::Binding(BindingEntry {
                topic: topic.clone(),
                value_subject: b.value_subject.clone().unwrap_or_default(),
                key_subject: b.key_subject.clone().unwrap_or_default(),
                mode: b.mode.name().to_string(),
                on_invalid: b.on_invalid.name().to_string(),
                dead_letter_topic: b.dead_letter_topic.clone().unwrap_or_default(),
            }));
        }
        emit(Change::Counters(CountersEntry {
            next_id: self.next_id,
            next_versions,
        }));
    }
}
