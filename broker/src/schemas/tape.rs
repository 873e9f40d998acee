//! JSON payloads as simd-json's tape, validated in place by `jsonschema`
//! through the crate's API for custom JSON representations
//! (`jsonschema::options_for`).
//!
//! A `serde_json::Value` costs an allocation per string, array and object of
//! a payload; parsing 1 KiB events into them was more than half of the
//! broker's time in `full` validation (docs/benchmarks.md). The tape is one
//! vector of nodes per payload, strings borrowed from the payload, each
//! container followed by its members and knowing how many nodes they span.
//! This module only answers the validator's questions about that vector;
//! parsing is simd-json's, validating is `jsonschema`'s.

use std::borrow::Cow;

use jsonschema::JsonType;
use jsonschema::json::{Array, Json, JsonNumber, Node, NodeIdentity, Object};
use serde_json::Value;
use simd_json::{Node as Tape, StaticNode};

/// Deepest nesting a payload may have: `serde_json`'s own limit, which the
/// validator's recursion (and `Value`'s, on error paths) relies on.
pub const MAX_DEPTH: usize = 128;

/// The representation: nodes of a simd-json tape.
pub struct TapeJson;

/// One value: its node and the nodes of its members after it.
#[derive(Clone, Copy)]
pub struct TapeNode<'a>(&'a [Tape<'a>]);

/// Nodes a value spans on the tape, itself included.
fn span(node: &Tape<'_>) -> usize {
    match node {
        Tape::Object { count, .. } | Tape::Array { count, .. } => count + 1,
        _ => 1,
    }
}

impl<'a> TapeNode<'a> {
    /// The document a tape holds (its first node), if its nesting stays
    /// within [`MAX_DEPTH`], its spans are whole and no object repeats a
    /// key. The tape keeps every member of an object, where a
    /// `serde_json::Value` kept the last of a repeated key; the validator
    /// counts members (`required` with `additionalProperties: false`,
    /// `maxProperties`), so a repeated key would let a missing one pass.
    pub fn root(tape: &'a [Tape<'a>]) -> Result<TapeNode<'a>, String> {
        // Where each open container ends, innermost last.
        let mut open: Vec<usize> = Vec::new();
        for (at, node) in tape.iter().enumerate() {
            while open.last().is_some_and(|&end| end <= at) {
                open.pop();
            }
            if let Tape::Object { .. } | Tape::Array { .. } = node {
                open.push(at + span(node));
                if open.len() > MAX_DEPTH {
                    return Err(format!("it nests deeper than {MAX_DEPTH} levels"));
                }
            }
            if let Tape::Object { .. } = node
                && let Some(object) = tape.get(at..at + span(node))
            {
                unique_keys(TapeObject(object))?;
            }
        }
        match tape.first() {
            Some(first) if span(first) == tape.len() => Ok(TapeNode(tape)),
            _ => Err("the parser's tape is not one whole value".into()),
        }
    }

    fn head(&self) -> &'a Tape<'a> {
        &self.0[0]
    }

    /// The value that starts at `at` (a node's start).
    fn at(tape: &'a [Tape<'a>], at: usize) -> Option<TapeNode<'a>> {
        let end = at + span(tape.get(at)?);
        tape.get(at..end).map(TapeNode)
    }
}

/// Refuses an object that names a key twice.
fn unique_keys(object: TapeObject<'_>) -> Result<(), String> {
    let twice = |k: &str| Err(format!("an object names the key {k:?} twice"));
    // Most objects are small: compared in place, nothing allocated.
    const SMALL: usize = 16;
    if object.len() <= SMALL {
        let mut seen = [""; SMALL];
        for (i, (k, _)) in object.members().enumerate().take(SMALL) {
            if seen[..i].contains(&k) {
                return twice(k);
            }
            seen[i] = k;
        }
        return Ok(());
    }
    let mut keys: Vec<&str> = object.members().map(|(k, _)| k).collect();
    keys.sort_unstable();
    match keys.windows(2).find(|w| w[0] == w[1]) {
        Some(w) => twice(w[0]),
        None => Ok(()),
    }
}

impl Json for TapeJson {
    type Node<'a> = TapeNode<'a>;
    type PreparedKey = Box<str>;
    type StringBuffer = ();

    /// An object's lookup is a walk of its members: one walk beats any
    /// number of lookups. (The validator multiplies it by a small count:
    /// not `usize::MAX`.)
    const KEYS_PER_LOOKUP: usize = 1 << 20;
    const ACYCLIC: bool = true;

    fn prepare_key(key: &str) -> Box<str> {
        key.into()
    }

    fn with_string_node<T>(_: &mut (), string: &str, f: impl FnOnce(TapeNode<'_>) -> T) -> T {
        let node = [Tape::String(string)];
        f(TapeNode(&node))
    }
}

/// A number as simd-json read it: an integer that fits 64 bits, or a float.
pub struct TapeNumber(StaticNode);

impl JsonNumber for TapeNumber {
    fn as_u64(&self) -> Option<u64> {
        match self.0 {
            StaticNode::U64(u) => Some(u),
            StaticNode::I64(i) => u64::try_from(i).ok(),
            _ => None,
        }
    }

    fn as_i64(&self) -> Option<i64> {
        match self.0 {
            StaticNode::I64(i) => Some(i),
            StaticNode::U64(u) => i64::try_from(u).ok(),
            _ => None,
        }
    }

    fn as_f64(&self) -> Option<f64> {
        match self.0 {
            StaticNode::I64(i) => Some(i as f64),
            StaticNode::U64(u) => Some(u as f64),
            StaticNode::F64(f) => Some(f),
            _ => None,
        }
    }

    fn as_str(&self) -> Cow<'_, str> {
        Cow::Owned(self.to_number().to_string())
    }

    fn to_number(&self) -> Cow<'_, serde_json::Number> {
        Cow::Owned(match self.0 {
            StaticNode::I64(i) => i.into(),
            StaticNode::U64(u) => u.into(),
            // The parser gives finite floats only.
            StaticNode::F64(f) => serde_json::Number::from_f64(f).unwrap_or_else(|| 0.into()),
            _ => 0.into(),
        })
    }

    fn is_integer(&self) -> bool {
        match self.0 {
            StaticNode::I64(_) | StaticNode::U64(_) => true,
            StaticNode::F64(f) => f.fract() == 0.0,
            _ => false,
        }
    }

    fn is_written_as_integer(&self) -> bool {
        // simd-json reads `1.0` and `1e2` as floats, integers as integers.
        matches!(self.0, StaticNode::I64(_) | StaticNode::U64(_))
    }
}

impl<'a> Node<'a, TapeJson> for TapeNode<'a> {
    type Object = TapeObject<'a>;
    type Array = TapeArray<'a>;
    type Number = TapeNumber;

    fn as_object(&self) -> Option<TapeObject<'a>> {
        matches!(self.head(), Tape::Object { .. }).then_some(TapeObject(self.0))
    }

    fn as_array(&self) -> Option<TapeArray<'a>> {
        matches!(self.head(), Tape::Array { .. }).then_some(TapeArray(self.0))
    }

    fn as_string(&self) -> Option<Cow<'a, str>> {
        match self.head() {
            Tape::String(s) => Some(Cow::Borrowed(s)),
            _ => None,
        }
    }

    fn as_number(&self) -> Option<TapeNumber> {
        match self.head() {
            Tape::Static(n @ (StaticNode::I64(_) | StaticNode::U64(_) | StaticNode::F64(_))) => {
                Some(TapeNumber(*n))
            }
            _ => None,
        }
    }

    fn as_boolean(&self) -> Option<bool> {
        match self.head() {
            Tape::Static(StaticNode::Bool(b)) => Some(*b),
            _ => None,
        }
    }

    fn is_null(&self) -> bool {
        matches!(self.head(), Tape::Static(StaticNode::Null))
    }

    fn json_type(&self) -> JsonType {
        match self.head() {
            Tape::String(_) => JsonType::String,
            Tape::Object { .. } => JsonType::Object,
            Tape::Array { .. } => JsonType::Array,
            Tape::Static(StaticNode::Null) => JsonType::Null,
            Tape::Static(StaticNode::Bool(_)) => JsonType::Boolean,
            Tape::Static(_) => JsonType::Number,
        }
    }

    fn string_length(&self) -> Option<u64> {
        self.as_string().map(|s| s.chars().count() as u64)
    }

    fn equals_value(&self, expected: &Value) -> bool {
        // `enum` and `const` of strings on every record: no copy for them.
        match (self.head(), expected) {
            (Tape::String(s), Value::String(e)) => s == e,
            (Tape::String(_), _) => false,
            _ => jsonschema::json::cmp::equal(&self.to_value(), expected),
        }
    }

    fn to_value(&self) -> Cow<'a, Value> {
        Cow::Owned(match self.head() {
            Tape::String(s) => Value::String((*s).to_string()),
            Tape::Static(StaticNode::Null) => Value::Null,
            Tape::Static(StaticNode::Bool(b)) => Value::Bool(*b),
            Tape::Static(n) => Value::Number(TapeNumber(*n).to_number().into_owned()),
            Tape::Array { .. } => Value::Array(
                TapeArray(self.0)
                    .elements()
                    .map(|e| e.to_value().into_owned())
                    .collect(),
            ),
            Tape::Object { .. } => Value::Object(
                TapeObject(self.0)
                    .members()
                    .map(|(k, v)| (k.to_string(), v.to_value().into_owned()))
                    .collect(),
            ),
        })
    }

    fn identity(&self) -> Option<NodeIdentity> {
        // Each node has its own place on the tape.
        Some(NodeIdentity::new(self.0.as_ptr() as usize))
    }
}

/// An object: its node, then each member's key and value.
pub struct TapeObject<'a>(&'a [Tape<'a>]);

impl<'a> Object<'a, TapeJson> for TapeObject<'a> {
    type Node = TapeNode<'a>;
    type MemberName = &'a str;
    type MembersIter = Members<'a>;

    fn len(&self) -> usize {
        match self.0[0] {
            Tape::Object { len, .. } => len,
            _ => 0,
        }
    }

    fn get(&self, key: &Box<str>) -> Option<TapeNode<'a>> {
        self.members()
            .find(|(name, _)| *name == &**key)
            .map(|(_, v)| v)
    }

    fn members(&self) -> Members<'a> {
        Members {
            tape: self.0,
            at: 1,
            left: self.len(),
        }
    }
}

/// An object's members in order.
pub struct Members<'a> {
    tape: &'a [Tape<'a>],
    at: usize,
    left: usize,
}

impl<'a> Iterator for Members<'a> {
    type Item = (&'a str, TapeNode<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let Tape::String(name) = self.tape.get(self.at)? else {
            return None;
        };
        let value = TapeNode::at(self.tape, self.at + 1)?;
        self.at += 1 + value.0.len();
        Some((name, value))
    }
}

/// An array: its node, then its elements.
pub struct TapeArray<'a>(&'a [Tape<'a>]);

impl<'a> Array<'a, TapeJson> for TapeArray<'a> {
    type Node = TapeNode<'a>;
    type ElementsIter = Elements<'a>;

    fn len(&self) -> usize {
        match self.0[0] {
            Tape::Array { len, .. } => len,
            _ => 0,
        }
    }

    fn elements(&self) -> Elements<'a> {
        Elements {
            tape: self.0,
            at: 1,
            left: self.len(),
        }
    }
}

/// An array's elements in order.
pub struct Elements<'a> {
    tape: &'a [Tape<'a>],
    at: usize,
    left: usize,
}

impl<'a> Iterator for Elements<'a> {
    type Item = TapeNode<'a>;

    fn next(&mut self) -> Option<TapeNode<'a>> {
        if self.left == 0 {
            return None;
        }
        self.left -= 1;
        let value = TapeNode::at(self.tape, self.at)?;
        self.at += value.0.len();
        Some(value)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// Parses `text` and runs `f` on its root.
    fn with_root<T>(text: &str, f: impl FnOnce(TapeNode<'_>) -> T) -> Result<T, String> {
        let mut bytes = text.as_bytes().to_vec();
        let tape = simd_json::to_tape(&mut bytes).map_err(|e| e.to_string())?;
        let root = TapeNode::root(&tape.0)?;
        Ok(f(root))
    }

    #[test]
    fn the_tape_keeps_the_validators_contract() {
        let doc = jsonschema::json::conformance::document().to_string();
        with_root(&doc, |root| {
            jsonschema::json::conformance::assert_conformance::<TapeJson>(&root)
        })
        .unwrap();
    }

    #[test]
    fn it_answers_as_the_serde_json_validator_does() {
        let schema = json!({
            "type": "object",
            "properties": {
                "id": {"type": "string", "pattern": "^o-[0-9]+$"},
                "n": {"type": "integer", "minimum": 1},
                "price": {"type": "number", "exclusiveMaximum": 100},
                "kind": {"enum": ["a", "b", 3]},
                "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": true},
                "meta": {"type": "object", "additionalProperties": false,
                         "properties": {"k": {"const": {"x": [1, 2.0]}}}},
                "name": {"type": "string", "minLength": 2, "maxLength": 3}
            },
            "required": ["id", "n"]
        });
        let serde = jsonschema::options().build(&schema).unwrap();
        let tape = jsonschema::options_for::<TapeJson>()
            .build(&schema)
            .unwrap();
        let cases = [
            r#"{"id": "o-1", "n": 2}"#,
            r#"{"id": "o-1", "n": 2.0}"#,
            r#"{"id": "o-1", "n": 2.5}"#,
            r#"{"id": "x-1", "n": 2}"#,
            r#"{"id": "o-1", "n": 0}"#,
            r#"{"id": "o-1", "n": 18446744073709551615}"#,
            r#"{"id": "o-1", "n": -9223372036854775808}"#,
            r#"{"id": "o-1", "n": 1e2}"#,
            r#"{"id": "o-1", "n": 1, "price": 100}"#,
            r#"{"id": "o-1", "n": 1, "price": 99.99}"#,
            r#"{"id": "o-1", "n": 1, "kind": "b"}"#,
            r#"{"id": "o-1", "n": 1, "kind": 3.0}"#,
            r#"{"id": "o-1", "n": 1, "kind": "c"}"#,
            r#"{"id": "o-1", "n": 1, "tags": ["a", "b"]}"#,
            r#"{"id": "o-1", "n": 1, "tags": ["a", "a"]}"#,
            r#"{"id": "o-1", "n": 1, "tags": ["a", 1]}"#,
            r#"{"id": "o-1", "n": 1, "meta": {"k": {"x": [1.0, 2]}}}"#,
            r#"{"id": "o-1", "n": 1, "meta": {"k": {"x": [1, 3]}}}"#,
            r#"{"id": "o-1", "n": 1, "meta": {"j": 1}}"#,
            r#"{"id": "o-1", "n": 1, "name": "héé"}"#,
            r#"{"id": "o-1", "n": 1, "name": "h\u00e9\u00e9x"}"#,
            r#"{"id": "o\"1", "n": 1}"#,
            r#"{"n": 1}"#,
            r#"{"id": "o-1"}"#,
            r#"{"id": "o-1", "n": 1, "name": "ab", "price": 1}"#,
            r#"[1, 2]"#,
            r#""o-1""#,
            r#"null"#,
        ];
        for case in cases {
            let value: Value = serde_json::from_str(case).unwrap();
            let want: Vec<(String, String)> = serde
                .iter_errors(&value)
                .map(|e| (e.instance_path().to_string(), e.to_string()))
                .collect();
            let got = with_root(case, |root| {
                assert_eq!(tape.is_valid(root), want.is_empty(), "{case}");
                tape.iter_errors(root)
                    .map(|e| (e.instance_path().to_string(), e.to_string()))
                    .collect::<Vec<_>>()
            })
            .unwrap();
            assert_eq!(got, want, "{case}");
        }
    }

    #[test]
    fn a_repeated_key_is_refused_so_counts_cannot_be_fooled() {
        // Every declared property required, no others: the validator
        // decides by counting members.
        let schema = json!({
            "type": "object",
            "properties": {"a": {}, "b": {}, "c": {}},
            "required": ["a", "b", "c"],
            "additionalProperties": false
        });
        let tape = jsonschema::options_for::<TapeJson>()
            .build(&schema)
            .unwrap();
        let whole = r#"{"a": 1, "b": 2, "c": 3}"#;
        assert_eq!(with_root(whole, |root| tape.is_valid(root)), Ok(true));
        let missing = r#"{"a": 1, "b": 2}"#;
        assert_eq!(with_root(missing, |root| tape.is_valid(root)), Ok(false));
        // Three required names, other members allowed: the validator
        // weighs lookups against a walk (KEYS_PER_LOOKUP times a count).
        let open = jsonschema::options_for::<TapeJson>()
            .build(&json!({"required": ["a", "b", "c"]}))
            .unwrap();
        let more = r#"{"a": 1, "b": 2, "c": 3, "d": 4}"#;
        assert_eq!(with_root(more, |root| open.is_valid(root)), Ok(true));
        assert_eq!(with_root(missing, |root| open.is_valid(root)), Ok(false));
        let many: Vec<String> = (0..40).map(|i| format!("\"k{i}\": {i}")).collect();
        let large = format!("{{{}, \"k7\": 0}}", many.join(", "));
        let large_ok = format!("{{{}}}", many.join(", "));
        assert!(with_root(&large_ok, |_| ()).is_ok());
        for repeated in [
            large.as_str(),
            r#"{"a": 1, "a": 1, "b": 2}"#,
            r#"{"x": [{"k": 1, "k": 2}]}"#,
        ] {
            let refused = with_root(repeated, |_| ()).unwrap_err();
            assert!(refused.contains("twice"), "{refused}");
        }
    }

    #[test]
    fn deep_nesting_and_broken_input_are_refused_not_followed() {
        let deep = format!("{}{}", "[".repeat(MAX_DEPTH + 1), "]".repeat(MAX_DEPTH + 1));
        let refused = with_root(&deep, |_| ()).unwrap_err();
        assert!(refused.contains("deeper than 128"), "{refused}");
        let fine = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert!(with_root(&fine, |_| ()).is_ok());
        let a_million = format!("{}{}", "[".repeat(1 << 20), "]".repeat(1 << 20));
        assert!(with_root(&a_million, |_| ()).is_err());
        for broken in ["{", "[1,]", "{\"a\" 1}", "", "1 2", "\"\u{0}\""] {
            assert!(with_root(broken, |_| ()).is_err(), "{broken:?}");
        }
        let mut not_utf8 = b"\"\xff\"".to_vec();
        assert!(simd_json::to_tape(&mut not_utf8).is_err());
    }
}
