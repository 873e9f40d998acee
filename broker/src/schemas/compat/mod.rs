//! Compatibility levels and the check a new version must pass against the
//! versions before it: BACKWARD (the new schema reads data written with
//! the old), FORWARD (the old reads the new), FULL (both), each against the
//! latest version or, `_TRANSITIVE`, against every live one; NONE checks
//! nothing.

pub mod avro;
pub mod json;

use std::fmt;
use std::str::FromStr;

use super::parsed::Parsed;

/// A subject's (or the registry's default) compatibility level.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// No check.
    None,
    /// The new version reads what the latest wrote.
    Backward,
    /// The new version reads what every live version wrote.
    BackwardTransitive,
    /// The latest version reads what the new one writes.
    Forward,
    /// Every live version reads what the new one writes.
    ForwardTransitive,
    /// Backward and forward, against the latest.
    Full,
    /// Backward and forward, against every live version.
    FullTransitive,
}

/// Every level, by its name.
const NAMES: [(Level, &str); 7] = [
    (Level::None, "NONE"),
    (Level::Backward, "BACKWARD"),
    (Level::BackwardTransitive, "BACKWARD_TRANSITIVE"),
    (Level::Forward, "FORWARD"),
    (Level::ForwardTransitive, "FORWARD_TRANSITIVE"),
    (Level::Full, "FULL"),
    (Level::FullTransitive, "FULL_TRANSITIVE"),
];

impl Level {
    /// The default when nothing is configured, as Confluent's.
    pub const DEFAULT: Level = Level::Backward;

    /// The level's name, as the REST API and the CLI spell it.
    pub fn name(self) -> &'static str {
        NAMES
            .iter()
            .find(|(l, _)| *l == self)
            .map_or("BACKWARD", |(_, n)| n)
    }

    fn transitive(self) -> bool {
        matches!(
            self,
            Level::BackwardTransitive | Level::ForwardTransitive | Level::FullTransitive
        )
    }

    fn backward(self) -> bool {
        matches!(
            self,
            Level::Backward | Level::BackwardTransitive | Level::Full | Level::FullTransitive
        )
    }

    fn forward(self) -> bool {
        matches!(
            self,
            Level::Forward | Level::ForwardTransitive | Level::Full | Level::FullTransitive
        )
    }
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Level {
    type Err = String;

    fn from_str(s: &str) -> Result<Level, String> {
        NAMES
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(s.trim()))
            .map(|(l, _)| *l)
            .ok_or_else(|| {
                let names: Vec<&str> = NAMES.iter().map(|(_, n)| *n).collect();
                format!(
                    "unknown compatibility level {s:?}: one of {}",
                    names.join(", ")
                )
            })
    }
}

/// The problems that make `new` incompatible under `level` with the live
/// versions `previous` (oldest first); empty when it is compatible. Each
/// problem names the version it is with.
pub fn check(level: Level, new: &Parsed, previous: &[(u32, &Parsed)]) -> Vec<String> {
    let against: &[(u32, &Parsed)] = match (level, previous) {
        (Level::None, _) | (_, []) => return Vec::new(),
        (l, all) if l.transitive() => all,
        (_, all) => &all[all.len() - 1..],
    };
    let mut problems = Vec::new();
    for (version, old) in against {
        if old.kind() != new.kind() {
            problems.push(format!(
                "version {version}: SCHEMA_TYPE_CHANGED: it is {}, the new schema is {}",
                old.kind(),
                new.kind()
            ));
            continue;
        }
        if level.backward() {
            for p in reader_accepts_writer(new, old) {
                problems.push(format!("version {version} (backward): {p}"));
            }
        }
        if level.forward() {
            for p in reader_accepts_writer(old, new) {
                problems.push(format!("version {version} (forward): {p}"));
            }
        }
    }
    problems
}

fn reader_accepts_writer(reader: &Parsed, writer: &Parsed) -> Vec<String> {
    match (reader, writer) {
        (Parsed::Json { value: r, .. }, Parsed::Json { value: w, .. }) => {
            json::reader_accepts_writer(r, w)
        }
        (Parsed::Avro { schema: r, .. }, Parsed::Avro { schema: w, .. }) => {
            avro::reader_accepts_writer(r, w)
        }
        _ => vec!["#: SCHEMA_TYPE_CHANGED".to_string()],
    }
}
