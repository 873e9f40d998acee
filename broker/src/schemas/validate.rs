//! Validation at the broker: a topic bound to a subject (its values, and
//! optionally its keys) has every record checked before anything of the
//! request is stored. `id`: the record carries Confluent's framing (magic
//! byte 0, a 4-byte big-endian schema id) with an id of one of the
//! subject's versions; `full`: its payload is also valid against that
//! schema (JSON Schema, or Avro binary that decodes whole).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;

use brook_protocol::batch::Batch;
use bytes::Bytes;

use super::Parsed;
use super::tape::{TapeJson, TapeNode};

/// How a bound topic's records are checked.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Not at all (the binding is kept, for later).
    #[default]
    Off,
    /// Framing and a schema id of the subject.
    Id,
    /// Also the payload against that schema.
    Full,
}

impl Mode {
    /// `off`, `id`, `full`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Off => "off",
            Mode::Id => "id",
            Mode::Full => "full",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = String;

    fn from_str(s: &str) -> Result<Mode, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "off" => Ok(Mode::Off),
            "id" => Ok(Mode::Id),
            "full" => Ok(Mode::Full),
            other => Err(format!(
                "unknown validation mode {other:?}: off, id or full"
            )),
        }
    }
}

/// What becomes of a request with records that fail.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum OnInvalid {
    /// The request fails whole and nothing of it is stored.
    #[default]
    Refuse,
    /// The invalid records go to the topic's dead-letter topic, the valid
    /// ones to the topic.
    DeadLetter,
}

impl OnInvalid {
    /// `refuse`, `dead-letter`.
    pub fn name(self) -> &'static str {
        match self {
            OnInvalid::Refuse => "refuse",
            OnInvalid::DeadLetter => "dead-letter",
        }
    }
}

impl FromStr for OnInvalid {
    type Err = String;

    fn from_str(s: &str) -> Result<OnInvalid, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "" | "refuse" => Ok(OnInvalid::Refuse),
            "dead-letter" | "dead_letter" | "dlq" => Ok(OnInvalid::DeadLetter),
            other => Err(format!(
                "unknown on-invalid action {other:?}: refuse or dead-letter"
            )),
        }
    }
}

/// A topic's binding as stored: the subjects and the mode.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Binding {
    /// The subject its values must follow.
    pub value_subject: Option<String>,
    /// The subject its keys must follow.
    pub key_subject: Option<String>,
    /// How records are checked.
    pub mode: Mode,
    /// What becomes of a request with invalid records.
    pub on_invalid: OnInvalid,
    /// Where invalid records go with [`OnInvalid::DeadLetter`] (none: the
    /// default, [`default_dead_letter_topic`]).
    pub dead_letter_topic: Option<String>,
}

/// The dead-letter topic of `topic`'s invalid records unless its binding
/// names one: `<topic>.dlq`.
pub fn default_dead_letter_topic(topic: &str) -> String {
    format!("{topic}.dlq")
}

/// A binding ready for the produce path: each subject with the ids of its
/// versions (soft-deleted ones too: records written with them stay valid).
#[derive(Debug)]
pub(crate) struct Compiled {
    pub mode: Mode,
    pub value: Option<(String, HashSet<u32>)>,
    pub key: Option<(String, HashSet<u32>)>,
    /// The dead-letter topic, when invalid records go to one.
    pub dead_letter_topic: Option<String>,
}

/// Every topic's compiled binding, rebuilt whole after each change to the
/// registry (changes are rare; produce requests read it).
pub(crate) type Bindings = HashMap<String, Arc<Compiled>>;

/// Why a record was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid {
    /// The record's position in the request (from 0).
    pub index: usize,
    /// `value` or `key`.
    pub field: &'static str,
    /// The subject it had to follow.
    pub subject: String,
    /// The schema id it carried, if it carried one.
    pub schema_id: Option<u32>,
    /// Where in the payload (a JSON pointer; empty when not about a place).
    pub path: String,
    /// What was wrong.
    pub reason: String,
}

impl fmt::Display for Invalid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "record {} ({}) does not follow subject {:?}",
            self.index, self.field, self.subject
        )?;
        if let Some(id) = self.schema_id {
            write!(f, " (schema id {id})")?;
        }
        if !self.path.is_empty() {
            write!(f, " at {}", self.path)?;
        }
        write!(f, ": {}", self.reason)
    }
}

/// The records of `batches` as (position in the request, key, value),
/// the first batch's first record at `first_index`.
pub(crate) fn records_of<'b>(
    batches: &'b [&'b Batch],
    first_index: usize,
) -> impl Iterator<Item = (usize, Option<Bytes>, Option<Bytes>)> + 'b {
    batches
        .iter()
        .flat_map(|b| b.records())
        .enumerate()
        // The produce path checked every record before this.
        .filter_map(move |(i, r)| r.ok().map(|r| (first_index + i, r.key, r.value)))
}

/// Most invalid records one request reports: past them, the rest of the
/// request is refused (a dead-lettering topic would otherwise copy a
/// whole request of garbage record by record).
pub const MAX_INVALID: usize = 10_000;

/// Records a request must hold before `full` validation is shared out
/// among threads: below it, starting a thread costs more than it saves.
const PARALLEL_FROM: usize = 64;

/// Most threads one request's `full` validation uses.
const MAX_THREADS: usize = 8;

/// A record to check: its position in the request, key and value.
pub(crate) type ToCheck = (usize, Option<Bytes>, Option<Bytes>);

/// Checks `records` (position in the request, key, value) against
/// `binding`; `schema` resolves an id to its parsed schema. Every record
/// that fails is returned (its first failure: the value's, then the
/// key's), in order; with `first_only`, the first.
///
/// In `full` mode a request of many records is checked by up to `threads`
/// threads, each a contiguous share, the caller's thread taking the first:
/// parsing payloads is the cost (docs/benchmarks.md, "Validation at the
/// broker"), and a producer waits for its request.
pub(crate) fn check(
    binding: &Compiled,
    records: impl Iterator<Item = ToCheck>,
    schema: &(dyn Fn(u32) -> Option<Arc<Parsed>> + Sync),
    first_only: bool,
    threads: usize,
) -> Vec<Invalid> {
    if binding.mode != Mode::Full || threads <= 1 {
        return check_serially(binding, records, schema, first_only);
    }
    let records: Vec<ToCheck> = records.collect();
    let threads = threads
        .min(MAX_THREADS)
        .min(records.len() / PARALLEL_FROM)
        .max(1);
    if threads == 1 {
        return check_serially(binding, records.into_iter(), schema, first_only);
    }
    let share = records.len().div_ceil(threads);
    let mut shares = records.chunks(share);
    let first = shares.next().unwrap_or_default();
    let found: Vec<Vec<Invalid>> = std::thread::scope(|scope| {
        let check = move |part: &[ToCheck]| {
            check_serially(binding, part.iter().cloned(), schema, first_only)
        };
        // A share whose thread cannot start (the system is out of threads)
        // is checked on this one.
        let others: Vec<Result<_, &[ToCheck]>> = shares
            .map(|part| {
                std::thread::Builder::new()
                    .name("brook-validate".into())
                    .spawn_scoped(scope, move || check(part))
                    .map_err(|_| part)
            })
            .collect();
        let mut found = vec![check(first)];
        // A panic goes on as it would have on this thread.
        found.extend(others.into_iter().map(|t| {
            match t {
                Ok(t) => t
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic)),
                Err(part) => check(part),
            }
        }));
        found
    });
    let mut invalid: Vec<Invalid> = found.into_iter().flatten().collect();
    if first_only {
        invalid.truncate(1);
    }
    invalid.truncate(MAX_INVALID + 1);
    invalid
}

/// [`check`] on the caller's thread.
fn check_serially(
    binding: &Compiled,
    records: impl Iterator<Item = ToCheck>,
    schema: &(dyn Fn(u32) -> Option<Arc<Parsed>> + Sync),
    first_only: bool,
) -> Vec<Invalid> {
    let mut invalid = Vec::new();
    if binding.mode == Mode::Off {
        return invalid;
    }
    // Records of a request mostly carry one schema id: resolve each id once.
    let mut resolved: Vec<(u32, Arc<Parsed>)> = Vec::new();
    let schema = |id: u32, resolved: &mut Vec<(u32, Arc<Parsed>)>| {
        if let Some((_, p)) = resolved.iter().find(|(i, _)| *i == id) {
            return Some(Arc::clone(p));
        }
        let p = schema(id)?;
        resolved.push((id, Arc::clone(&p)));
        Some(p)
    };
    for (index, key, value) in records {
        for (field, bound, bytes) in [
            ("value", &binding.value, &value),
            ("key", &binding.key, &key),
        ] {
            let (Some((subject, ids)), Some(bytes)) = (bound, bytes) else {
                continue;
            };
            let checked = check_one(binding.mode, subject, ids, bytes, &mut |id| {
                schema(id, &mut resolved)
            });
            if let Err((schema_id, path, reason)) = checked {
                invalid.push(Invalid {
                    index,
                    field,
                    subject: subject.clone(),
                    schema_id,
                    path: capped(path),
                    reason: capped(reason),
                });
                if first_only || invalid.len() > MAX_INVALID {
                    return invalid;
                }
                break;
            }
        }
    }
    invalid
}

type Failure = (Option<u32>, String, String);

/// Longest reason or path kept: the validator's messages quote the value
/// that failed, which a payload makes as large as it likes, and they go
/// into answers and dead letters' headers.
const MAX_REASON_BYTES: usize = 1024;

/// `text` cut to [`MAX_REASON_BYTES`].
fn capped(text: String) -> String {
    crate::error::shortened(text, MAX_REASON_BYTES)
}

/// One key or value (a null one passes: a tombstone carries no payload).
fn check_one(
    mode: Mode,
    subject: &str,
    ids: &HashSet<u32>,
    bytes: &Bytes,
    schema: &mut dyn FnMut(u32) -> Option<Arc<Parsed>>,
) -> Result<(), Failure> {
    if bytes.len() < 5 || bytes[0] != 0 {
        return Err((
            None,
            String::new(),
            "it does not start with a schema id (magic byte 0, then the id as 4 bytes big-endian, as Confluent's serializers write)".into(),
        ));
    }
    let id = u32::from_be_bytes([bytes[1], bytes[2], bytes[3], bytes[4]]);
    if !ids.contains(&id) {
        return Err((
            Some(id),
            String::new(),
            format!("schema id {id} is not a version of subject {subject:?}"),
        ));
    }
    if mode != Mode::Full {
        return Ok(());
    }
    let Some(parsed) = schema(id) else {
        return Err((
            Some(id),
            String::new(),
            format!("schema id {id} is not in the registry"),
        ));
    };
    let payload = &bytes[5..];
    match parsed.as_ref() {
        Parsed::Json { validator, .. } => {
            json_payload(validator, payload).map_err(|(path, reason)| (Some(id), path, reason))
        }
        Parsed::Avro {
            schema: avro,
            recursive,
        } => {
            // Decoding data of a recursive schema recurses as deep as the
            // data nests, which a payload controls: never on a worker's stack.
            if *recursive {
                return Err((
                    Some(id),
                    String::new(),
                    "full validation of a recursive Avro schema is not supported: bind the topic in mode id".into(),
                ));
            }
            let mut reader = Counted {
                rest: payload,
                short: false,
            };
            let value = apache_avro::reader::datum::GenericDatumReader::builder(avro)
                .build()
                .and_then(|r| r.read_value(&mut reader))
                .map_err(|e| {
                    (
                        Some(id),
                        String::new(),
                        format!("the payload is not Avro of this schema: {e}"),
                    )
                })?;
            // The decoder reads some values cut short as null (a string, a
            // union): a read that came up short, or a value that does not
            // fit the schema, is a truncated payload.
            if reader.short || !value.validate(avro) {
                return Err((
                    Some(id),
                    String::new(),
                    "the payload is not Avro of this schema: it ends inside a value".into(),
                ));
            }
            match reader.rest.is_empty() {
                true => Ok(()),
                false => Err((
                    Some(id),
                    String::new(),
                    format!("{} bytes follow the Avro datum", reader.rest.len()),
                )),
            }
        }
    }
}

thread_local! {
    /// A copy of the payload being parsed (simd-json parses in place) and
    /// the parser's buffers, kept for the thread's next payload.
    static SCRATCH: std::cell::RefCell<(Vec<u8>, simd_json::Buffers)> =
        std::cell::RefCell::new((Vec::new(), simd_json::Buffers::new(4096)));
}

/// Checks a JSON payload against `validator`: parsed onto a simd-json tape
/// and validated in place; for a payload that fails, the JSON pointer and
/// the first error.
fn json_payload(
    validator: &jsonschema::Validator<TapeJson>,
    payload: &[u8],
) -> Result<(), (String, String)> {
    SCRATCH.with_borrow_mut(|(copy, buffers)| {
        copy.clear();
        copy.extend_from_slice(payload);
        let not_json = |e: String| (String::new(), format!("the payload is not JSON: {e}"));
        let tape =
            simd_json::to_tape_with_buffers(copy, buffers).map_err(|e| not_json(e.to_string()))?;
        let root = TapeNode::root(&tape.0).map_err(not_json)?;
        // The boolean check is the fast path; errors are gathered only
        // for a record that fails, to name where.
        if validator.is_valid(root) {
            return Ok(());
        }
        match validator.iter_errors(root).next() {
            None => Ok(()),
            Some(e) => {
                let at = e.instance_path().to_string();
                Err((if at.is_empty() { "/".into() } else { at }, e.to_string()))
            }
        }
    })
}

/// A payload reader that remembers whether a read asked for more than was
/// left (the decoder turns some of those into nulls instead of errors).
struct Counted<'p> {
    rest: &'p [u8],
    short: bool,
}

impl std::io::Read for Counted<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = buf.len().min(self.rest.len());
        self.short |= n < buf.len();
        buf[..n].copy_from_slice(&self.rest[..n]);
        self.rest = &self.rest[n..];
        Ok(n)
    }
}
