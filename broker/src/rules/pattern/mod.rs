//! Amazon EventBridge event patterns, matched against JSON events.
//!
//! A pattern is a JSON object shaped like the events it selects: every field it
//! names must match (AND), each leaf is an array of values or operators of which
//! one must match (OR), and `"$or": [{..}, {..}]` at any level matches when one
//! of its alternatives does. The behaviour follows AWS's user guide:
//!
//! - <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern.html>
//! - <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-create-pattern-operators.html>
//! - <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-arrays.html>
//! - <https://docs.aws.amazon.com/eventbridge/latest/userguide/eb-event-patterns-null-values.html>
//!
//! Where the guide is silent, the behaviour is that of aws/event-ruler, the
//! matcher EventBridge runs (`JsonRuleCompiler`, `ByteMachine`, `ACFinder`):
//!
//! - Values are the event's *leaves*: strings, numbers, booleans and null. An
//!   array contributes its elements (at any depth), an object contributes none
//!   of its own (its fields are leaves of longer paths). So `exists` sees only
//!   leaves: `null` exists, an object or an empty array does not.
//! - A nested pattern over an array of objects must match within one element
//!   (event-ruler's "array consistency"); `exists: false` is judged per element.
//! - A number in a pattern equals the same number however it is written
//!   (`300`, `300.0`, `3.0e2`); numbers are compared to six decimal places
//!   within ±5e9, and numbers outside that range only equal themselves.
//! - `anything-but` needs the field present, and matches every leaf that is not
//!   excluded, so a value of another type (a number against a list of strings,
//!   `null` against anything) passes; an array passes when one element does.
//! - `prefix`, `suffix`, `equals-ignore-case`, `wildcard` and `cidr` match
//!   strings only; `numeric` matches JSON numbers only, never numeric strings.
//! - A string that is an IP address also matches other spellings of it.
//!
//! Patterns come from the network, so parsing bounds their nesting and size,
//! and every refusal names the place in the pattern (`detail.state[0].numeric`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use serde_json::{Map, Number, Value};

/// Object levels a pattern may nest (the root, each nested object and each
/// `$or` alternative count one): parsing and matching recurse once per level.
const MAX_DEPTH: usize = 32;
/// Values to match in one pattern, each entry of an `anything-but` list
/// included: bounds the work one event can cost.
const MAX_MATCHERS: usize = 1000;
/// The magnitude up to which EventBridge compares numbers numerically
/// (event-ruler's `ComparableNumber`).
const MAX_NUMBER: f64 = 5e9;
/// Nested arrays followed inside an event value: a `Value` built by hand, not
/// parsed (serde_json's parser stops at 128 levels), must not exhaust the stack.
const MAX_EVENT_ARRAY_DEPTH: usize = 128;
/// Characters of an event value quoted in a [`Mismatch`]; events can be large.
const MAX_SHOWN: usize = 80;
/// How errors name the pattern's top level, which has no path of its own.
const ROOT: &str = "(root)";
const OR: &str = "$or";
/// Names that are operators: inside `$or`, a field named so is a mistake
/// (`{"$or": [{"prefix": ..}]}`), and event-ruler refuses it.
const OPERATORS: [&str; 8] = [
    "anything-but",
    "cidr",
    "equals-ignore-case",
    "exists",
    "numeric",
    "prefix",
    "suffix",
    "wildcard",
];

/// A compiled EventBridge event pattern.
///
/// Compile once with [`Pattern::parse`] or [`Pattern::from_value`], then call
/// [`Pattern::matches`] per event: matching walks only the fields the pattern
/// names and allocates nothing. [`Pattern::explain`] says why an event was not
/// selected, for people and logs.
#[derive(Clone, Debug)]
pub struct Pattern {
    root: Node,
}

impl Pattern {
    /// Compiles a pattern from its JSON text.
    ///
    /// Invalid JSON and invalid patterns are refused the same way, with the
    /// place in the pattern and what is wrong there.
    pub fn parse(json: &str) -> Result<Pattern, PatternError> {
        let value: Value =
            serde_json::from_str(json).map_err(|e| error("", format!("not valid JSON: {e}")))?;
        Pattern::from_value(&value)
    }

    /// Compiles a pattern already parsed as JSON.
    ///
    /// Refuses what EventBridge refuses (a leaf that is not an array, an empty
    /// array or object, an unknown operator, an operator's bad argument, an
    /// `$or` with fewer than two alternatives) and patterns nested deeper than
    /// 32 objects or holding more than 1000 values to match.
    pub fn from_value(value: &Value) -> Result<Pattern, PatternError> {
        let mut parser = Parser { matchers: 0 };
        let root = parser.node(value, "", 1, false)?;
        Ok(Pattern { root })
    }

    /// The event's top-level fields the pattern reads (in `$or`
    /// alternatives too): the rest of an event need not be parsed to match.
    pub fn top_level_fields(&self) -> Vec<&str> {
        fn collect<'a>(node: &'a Node, out: &mut Vec<&'a str>) {
            out.extend(node.fields.iter().map(|f| f.name.as_str()));
            for alternative in &node.or {
                collect(alternative, out);
            }
        }
        let mut out = Vec::new();
        collect(&self.root, &mut out);
        out.sort_unstable();
        out.dedup();
        out
    }

    /// Whether the event is selected by the pattern.
    ///
    /// An event that is not a JSON object has no fields: it matches only
    /// patterns that ask for fields to be absent.
    pub fn matches(&self, event: &Value) -> bool {
        self.root.matches(event.as_object())
    }

    /// `Ok` when the event matches; otherwise the first field (in the order
    /// the pattern's object yields its keys) that does not, and why.
    ///
    /// Slower than [`Pattern::matches`] on a mismatch: it builds the message.
    pub fn explain(&self, event: &Value) -> Result<(), Mismatch> {
        if self.matches(event) {
            return Ok(());
        }
        Err(self
            .root
            .explain(event.as_object(), "")
            .unwrap_or_else(|| Mismatch {
                path: ROOT.to_string(),
                reason: "does not match".to_string(),
            }))
    }
}

/// A pattern that cannot be compiled.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("pattern at {path}: {message}")]
pub struct PatternError {
    /// Where in the pattern, as `detail.state[0].numeric`, or `(root)`; `$or`
    /// alternatives appear as `$or[1]`, so the author can find the spot.
    pub path: String,
    /// What is wrong there.
    pub message: String,
}

/// Why an event does not match a pattern.
///
/// Displayed as `{path} {reason}`, e.g. `detail.amount is 12, not numeric [">", 100]`
/// or `source is absent`.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    /// The event field that failed, dotted from the top (`detail.items.price`);
    /// `$or` (or `detail.$or`) when none of an `$or`'s alternatives matched.
    pub path: String,
    /// The field's value and what the pattern wanted instead, or `is absent`.
    pub reason: String,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.path, self.reason)
    }
}

impl std::error::Error for Mismatch {}

/// One object level of a pattern: its fields, all required, and its `$or`.
#[derive(Clone, Debug)]
struct Node {
    fields: Vec<Field>,
    /// The `$or` alternatives, empty when the object has none.
    or: Vec<Node>,
}

#[derive(Clone, Debug)]
struct Field {
    name: String,
    test: Test,
}

#[derive(Clone, Debug)]
enum Test {
    Leaf(Leaf),
    Nested(Node),
}

/// The array of matchers at a pattern's leaf.
#[derive(Clone, Debug)]
struct Leaf {
    /// Exact strings, sorted: the common case (`"source": [..many..]`) is a
    /// binary search rather than a scan.
    strings: Vec<String>,
    matchers: Vec<Matcher>,
    /// Whether an `{"exists": false}` is among the matchers: a field without
    /// leaves matches only then.
    absent_ok: bool,
    /// The matchers as written, for [`Mismatch`] reasons.
    desc: String,
}

#[derive(Clone, Debug)]
enum Matcher {
    Exact(Exact),
    Prefix(String),
    /// Lower-cased once here, so an event's string is folded as it is read.
    PrefixIgnoreCase(String),
    Suffix(String),
    SuffixIgnoreCase(String),
    EqualsIgnoreCase(String),
    Wildcard(Glob),
    AnythingBut(AnythingBut),
    Numeric(Range),
    Exists(bool),
    Cidr(Cidr),
}

/// Exact values other than plain strings (those are [`Leaf::strings`]).
#[derive(Clone, Debug)]
enum Exact {
    /// A string that is an IP address: event-ruler compares it as an address.
    Ip(IpAddr),
    Num(Num),
    Bool(bool),
    Null,
}

/// What an `anything-but` excludes; leaves of other types are not excluded.
#[derive(Clone, Debug)]
enum AnythingBut {
    /// Sorted, for binary search.
    Strings(Vec<String>),
    Numbers(Vec<Num>),
    Prefixes(Vec<String>),
    Suffixes(Vec<String>),
    /// Lower-cased.
    IgnoreCase(Vec<String>),
    Wildcards(Vec<Glob>),
}

/// A number from a pattern, with its fixed-point form when it has one.
#[derive(Clone, Debug)]
struct Num {
    raw: Number,
    micros: Option<i64>,
}

/// A numeric range in millionths, as EventBridge's six-decimal precision.
#[derive(Clone, Copy, Debug)]
struct Range {
    low: Option<Bound>,
    high: Option<Bound>,
}

#[derive(Clone, Copy, Debug)]
struct Bound {
    at: i64,
    inclusive: bool,
}

/// A CIDR block, as the network's bits and the prefix's mask.
#[derive(Clone, Debug)]
enum Cidr {
    V4 { network: u32, mask: u32 },
    V6 { network: u128, mask: u128 },
}

/// A wildcard pattern as the literal parts between its `*`s (unescaped), so
/// matching is a prefix, a suffix and an in-order search: no backtracking.
#[derive(Clone, Debug)]
struct Glob {
    /// One more than the number of `*`s; never empty.
    parts: Vec<String>,
}

impl Node {
    fn matches(&self, obj: Option<&Map<String, Value>>) -> bool {
        self.fields.iter().all(|field| field.matches(obj))
            && (self.or.is_empty() || self.or.iter().any(|alt| alt.matches(obj)))
    }

    /// A nested pattern against an event value: one object of an array of
    /// objects must match on its own; a value without objects has no fields.
    fn matches_value(&self, value: Option<&Value>) -> bool {
        let mut saw_object = false;
        if let Some(value) = value {
            let hit = any_object(value, 0, &mut |obj| {
                saw_object = true;
                self.matches(Some(obj))
            });
            if hit {
                return true;
            }
        }
        !saw_object && self.matches(None)
    }

    fn explain(&self, obj: Option<&Map<String, Value>>, path: &str) -> Option<Mismatch> {
        if let Some(field) = self.fields.iter().find(|field| !field.matches(obj)) {
            return Some(field.explain(obj, path));
        }
        if self.or.is_empty() || self.or.iter().any(|alt| alt.matches(obj)) {
            return None;
        }
        let reasons: Vec<String> = self
            .or
            .iter()
            .filter_map(|alt| alt.explain(obj, path))
            .map(|mismatch| mismatch.to_string())
            .collect();
        Some(Mismatch {
            path: join(path, OR),
            reason: format!(
                "matched none of its {} alternatives: {}",
                self.or.len(),
                reasons.join("; ")
            ),
        })
    }
}

impl Field {
    fn matches(&self, obj: Option<&Map<String, Value>>) -> bool {
        let value = obj.and_then(|obj| obj.get(&self.name));
        match &self.test {
            Test::Leaf(leaf) => leaf.matches(value),
            Test::Nested(node) => node.matches_value(value),
        }
    }

    fn explain(&self, obj: Option<&Map<String, Value>>, parent: &str) -> Mismatch {
        let path = join(parent, &self.name);
        let value = obj.and_then(|obj| obj.get(&self.name));
        match &self.test {
            Test::Leaf(leaf) => {
                let reason = match value {
                    None => "is absent".to_string(),
                    Some(value) => format!("is {}, not {}", show(value), leaf.desc),
                };
                Mismatch { path, reason }
            }
            Test::Nested(node) => {
                let mut objects = Vec::new();
                if let Some(value) = value {
                    any_object(value, 0, &mut |obj| {
                        objects.push(obj);
                        false
                    });
                }
                let explained = match objects.first().copied() {
                    None => node.explain(None, &path),
                    Some(first) => node.explain(Some(first), &path).map(|mut mismatch| {
                        if objects.len() > 1 {
                            mismatch.reason = format!(
                                "{} (none of the {} objects in {path} matched; the first is shown)",
                                mismatch.reason,
                                objects.len()
                            );
                        }
                        mismatch
                    }),
                };
                explained.unwrap_or_else(|| Mismatch {
                    path,
                    reason: "does not match".to_string(),
                })
            }
        }
    }
}

impl Leaf {
    fn matches(&self, value: Option<&Value>) -> bool {
        let Some(value) = value else {
            return self.absent_ok;
        };
        let mut present = false;
        let hit = any_scalar(value, 0, &mut |scalar| {
            present = true;
            self.matches_scalar(scalar)
        });
        hit || (!present && self.absent_ok)
    }

    fn matches_scalar(&self, scalar: &Value) -> bool {
        if let Value::String(text) = scalar
            && self
                .strings
                .binary_search_by(|s| s.as_str().cmp(text.as_str()))
                .is_ok()
        {
            return true;
        }
        self.matchers.iter().any(|matcher| matcher.matches(scalar))
    }
}

impl Matcher {
    /// Whether one leaf of the event (never an array or object) matches.
    fn matches(&self, scalar: &Value) -> bool {
        let text = scalar.as_str();
        match self {
            Matcher::Exact(exact) => exact.matches(scalar),
            Matcher::Prefix(prefix) => text.is_some_and(|s| s.starts_with(prefix.as_str())),
            Matcher::PrefixIgnoreCase(prefix) => {
                text.is_some_and(|s| starts_with_ignore_case(s, prefix))
            }
            Matcher::Suffix(suffix) => text.is_some_and(|s| s.ends_with(suffix.as_str())),
            Matcher::SuffixIgnoreCase(suffix) => {
                text.is_some_and(|s| ends_with_ignore_case(s, suffix))
            }
            Matcher::EqualsIgnoreCase(folded) => text.is_some_and(|s| eq_ignore_case(s, folded)),
            Matcher::Wildcard(glob) => text.is_some_and(|s| glob.matches(s)),
            Matcher::AnythingBut(but) => !but.excludes(scalar),
            Matcher::Numeric(range) => number_micros(scalar).is_some_and(|n| range.contains(n)),
            // A leaf is present, so it exists.
            Matcher::Exists(exists) => *exists,
            Matcher::Cidr(cidr) => text
                .and_then(|s| s.parse::<IpAddr>().ok())
                .is_some_and(|ip| cidr.contains(ip)),
        }
    }
}

impl Exact {
    fn matches(&self, scalar: &Value) -> bool {
        match (self, scalar) {
            (Exact::Ip(ip), Value::String(s)) => {
                s.parse::<IpAddr>().is_ok_and(|parsed| parsed == *ip)
            }
            (Exact::Num(num), Value::Number(n)) => num.equals(n),
            (Exact::Bool(want), Value::Bool(got)) => want == got,
            (Exact::Null, Value::Null) => true,
            _ => false,
        }
    }
}

impl AnythingBut {
    fn excludes(&self, scalar: &Value) -> bool {
        match (self, scalar) {
            (AnythingBut::Strings(list), Value::String(s)) => list
                .binary_search_by(|x| x.as_str().cmp(s.as_str()))
                .is_ok(),
            (AnythingBut::Numbers(list), Value::Number(n)) => list.iter().any(|x| x.equals(n)),
            (AnythingBut::Prefixes(list), Value::String(s)) => {
                list.iter().any(|p| s.starts_with(p.as_str()))
            }
            (AnythingBut::Suffixes(list), Value::String(s)) => {
                list.iter().any(|p| s.ends_with(p.as_str()))
            }
            (AnythingBut::IgnoreCase(list), Value::String(s)) => {
                list.iter().any(|folded| eq_ignore_case(s, folded))
            }
            (AnythingBut::Wildcards(list), Value::String(s)) => list.iter().any(|g| g.matches(s)),
            _ => false,
        }
    }
}

impl Num {
    fn new(raw: &Number) -> Num {
        Num {
            raw: raw.clone(),
            micros: micros(raw),
        }
    }

    /// Numerically equal within EventBridge's range, otherwise equal as
    /// written (event-ruler keeps an exact match beside the numeric one, for
    /// numbers such as account ids that are too large to compare).
    fn equals(&self, other: &Number) -> bool {
        match (self.micros, micros(other)) {
            (Some(a), Some(b)) => a == b,
            _ => self.raw == *other,
        }
    }
}

impl Range {
    fn contains(&self, n: i64) -> bool {
        self.low
            .is_none_or(|b| if b.inclusive { n >= b.at } else { n > b.at })
            && self
                .high
                .is_none_or(|b| if b.inclusive { n <= b.at } else { n < b.at })
    }
}

impl Cidr {
    fn parse(text: &str) -> Result<Cidr, String> {
        let Some((address, bits)) = text.split_once('/') else {
            return Err(format!(
                "{text:?} is not a CIDR block such as \"10.0.0.0/24\": the /prefix-length is missing"
            ));
        };
        let address: IpAddr = address
            .parse()
            .map_err(|_| format!("{address:?} is not an IPv4 or IPv6 address"))?;
        let bits: u32 = bits
            .parse()
            .map_err(|_| format!("{bits:?} is not a prefix length"))?;
        // Host bits are refused rather than masked: event-ruler's block would
        // start at the address given, not at the network, and a pattern
        // accepted here must not select different events than it would there.
        match address {
            IpAddr::V4(address) => {
                if bits > 32 {
                    return Err(format!("an IPv4 prefix length is at most 32, found {bits}"));
                }
                let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
                let network = u32::from(address);
                if network & !mask != 0 {
                    return Err(format!(
                        "{text:?} has host bits set; the block is {}/{bits}",
                        Ipv4Addr::from(network & mask)
                    ));
                }
                Ok(Cidr::V4 { network, mask })
            }
            IpAddr::V6(address) => {
                if bits > 128 {
                    return Err(format!(
                        "an IPv6 prefix length is at most 128, found {bits}"
                    ));
                }
                let mask = u128::MAX.checked_shl(128 - bits).unwrap_or(0);
                let network = u128::from(address);
                if network & !mask != 0 {
                    return Err(format!(
                        "{text:?} has host bits set; the block is {}/{bits}",
                        Ipv6Addr::from(network & mask)
                    ));
                }
                Ok(Cidr::V6 { network, mask })
            }
        }
    }

    fn contains(&self, ip: IpAddr) -> bool {
        match (self, ip) {
            (Cidr::V4 { network, mask }, IpAddr::V4(ip)) => (u32::from(ip) & *mask) == *network,
            (Cidr::V6 { network, mask }, IpAddr::V6(ip)) => (u128::from(ip) & *mask) == *network,
            _ => false,
        }
    }
}

impl Glob {
    /// EventBridge's wildcard syntax: `*` is any run of characters, `\*` and
    /// `\\` are literals, any other escape and `**` are refused.
    fn parse(text: &str) -> Result<Glob, String> {
        let mut parts = Vec::new();
        let mut current = String::new();
        let mut chars = text.char_indices().peekable();
        while let Some((at, c)) = chars.next() {
            match c {
                '*' => {
                    if chars.peek().is_some_and(|&(_, next)| next == '*') {
                        return Err(format!(
                            "consecutive wildcard characters at position {at} are not allowed"
                        ));
                    }
                    parts.push(std::mem::take(&mut current));
                }
                '\\' => match chars.next() {
                    Some((_, escaped @ ('*' | '\\'))) => current.push(escaped),
                    _ => {
                        return Err(format!(
                            "invalid escape at position {at}: a backslash may only escape * or \\"
                        ));
                    }
                },
                other => current.push(other),
            }
        }
        parts.push(current);
        Ok(Glob { parts })
    }

    fn matches(&self, s: &str) -> bool {
        let [first, middle @ .., last] = self.parts.as_slice() else {
            return self.parts.first().is_some_and(|only| only == s);
        };
        if first.len() + last.len() > s.len()
            || !s.starts_with(first.as_str())
            || !s.ends_with(last.as_str())
        {
            return false;
        }
        let Some(mut rest) = s.get(first.len()..s.len() - last.len()) else {
            return false;
        };
        // Leftmost placement of each part is never worse for the parts after it.
        for part in middle {
            let Some(at) = rest.find(part.as_str()) else {
                return false;
            };
            let Some(after) = rest.get(at + part.len()..) else {
                return false;
            };
            rest = after;
        }
        true
    }
}

/// Calls `f` on each object in `value`: the value itself, or the objects of an
/// array at any depth; stops at the first `true`.
fn any_object<'v, F>(value: &'v Value, depth: usize, f: &mut F) -> bool
where
    F: FnMut(&'v Map<String, Value>) -> bool,
{
    match value {
        Value::Object(obj) => f(obj),
        Value::Array(items) if depth < MAX_EVENT_ARRAY_DEPTH => {
            for item in items {
                if any_object(item, depth + 1, f) {
                    return true;
                }
            }
            false
        }
        _ => false,
    }
}

/// Calls `f` on each leaf in `value`: the value itself, or the non-object
/// elements of an array at any depth; stops at the first `true`.
fn any_scalar<'v, F>(value: &'v Value, depth: usize, f: &mut F) -> bool
where
    F: FnMut(&'v Value) -> bool,
{
    match value {
        Value::Object(_) => false,
        Value::Array(items) => {
            if depth >= MAX_EVENT_ARRAY_DEPTH {
                return false;
            }
            for item in items {
                if any_scalar(item, depth + 1, f) {
                    return true;
                }
            }
            false
        }
        scalar => f(scalar),
    }
}

/// A number as millionths, when within the range EventBridge compares.
fn micros(n: &Number) -> Option<i64> {
    let x = n.as_f64()?;
    (x.is_finite() && x.abs() <= MAX_NUMBER).then(|| (x * 1e6).round() as i64)
}

fn number_micros(value: &Value) -> Option<i64> {
    match value {
        Value::Number(n) => micros(n),
        _ => None,
    }
}

/// Lower-cases character by character, the same way for the pattern (once)
/// and the event (as it is read, without allocating).
fn fold(s: &str) -> String {
    s.chars().flat_map(char::to_lowercase).collect()
}

fn eq_ignore_case(s: &str, folded: &str) -> bool {
    s.chars().flat_map(char::to_lowercase).eq(folded.chars())
}

fn starts_with_ignore_case(s: &str, folded: &str) -> bool {
    let mut have = s.chars().flat_map(char::to_lowercase);
    folded.chars().all(|want| have.next() == Some(want))
}

fn ends_with_ignore_case(s: &str, folded: &str) -> bool {
    let mut want = folded.chars().rev();
    for c in s.chars().rev() {
        // A character lower-cases to at most three.
        let mut lower = ['\0'; 3];
        let mut n = 0;
        for l in c.to_lowercase() {
            if let Some(slot) = lower.get_mut(n) {
                *slot = l;
                n += 1;
            }
        }
        for &l in lower.iter().take(n).rev() {
            match want.next() {
                None => return true,
                Some(w) if w == l => {}
                Some(_) => return false,
            }
        }
    }
    want.next().is_none()
}

fn join(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

fn error(path: &str, message: impl Into<String>) -> PatternError {
    PatternError {
        path: if path.is_empty() {
            ROOT.to_string()
        } else {
            path.to_string()
        },
        message: message.into(),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// An event value for a message, cut short: events can be large.
fn show(value: &Value) -> String {
    crate::error::shortened(value.to_string(), MAX_SHOWN)
}

/// One matcher as the pattern wrote it: `"aws.ec2"`, `numeric [">", 100]`.
fn describe(item: &Value) -> String {
    let mut out = String::new();
    match item {
        Value::Object(map) if map.len() == 1 => {
            for (op, arg) in map {
                out.push_str(op);
                out.push(' ');
                write_json(arg, &mut out);
            }
        }
        other => write_json(other, &mut out),
    }
    out
}

/// JSON with a space after each comma, as people write patterns. Only called
/// on matchers already accepted, which nest a few levels at most.
fn write_json(value: &Value, out: &mut String) {
    match value {
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_json(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&Value::from(key.as_str()).to_string());
                out.push_str(": ");
                write_json(item, out);
            }
            out.push('}');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

mod parse;
#[cfg(test)]
mod tests;

use parse::Parser;
