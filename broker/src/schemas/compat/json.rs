//! JSON Schema compatibility: whether a reader schema accepts every
//! document a writer schema accepts, decided keyword by keyword (the rule
//! set in docs/schemas.md, "JSON Schema compatibility").
//!
//! A check that cannot prove a change safe reports it: the rules err on the
//! side of refusing. Each problem names the JSON pointer (in the reader
//! schema) and a rule in Confluent's vocabulary (`TYPE_NARROWED`,
//! `REQUIRED_PROPERTY_ADDED`, …), so a refusal says which field and which
//! rule.

use std::collections::HashSet;

use serde_json::{Map, Value};

/// How deep two schemas are compared (nesting plus `$ref` hops); deeper is
/// refused rather than walked.
const MAX_DEPTH: usize = 64;

/// How many comparisons one check may make: combinators over `$ref`s can
/// make the walk exponential in a schema's size, so a schema that needs
/// more is refused (`TOO_COMPLEX`) instead of holding the registry.
const MAX_STEPS: usize = 100_000;

/// Problems listed at most (the first ones; a refusal needs only one).
const MAX_PROBLEMS: usize = 50;

/// Keywords that annotate and never constrain: changes to them are free.
const ANNOTATIONS: &[&str] = &[
    "$schema",
    "$id",
    "id",
    "$comment",
    "$anchor",
    "$defs",
    "definitions",
    "title",
    "description",
    "default",
    "examples",
    "deprecated",
    "readOnly",
    "writeOnly",
    "contentEncoding",
    "contentMediaType",
];

/// Keywords the rules below compare; any other that differs is refused.
const COMPARED: &[&str] = &[
    "$ref",
    "type",
    "enum",
    "const",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "multipleOf",
    "minLength",
    "maxLength",
    "pattern",
    "format",
    "properties",
    "required",
    "additionalProperties",
    "minProperties",
    "maxProperties",
    "items",
    "prefixItems",
    "additionalItems",
    "minItems",
    "maxItems",
    "uniqueItems",
    "anyOf",
    "oneOf",
    "allOf",
];

/// The problems that stop `reader` from accepting everything `writer`
/// accepts; empty when it does. `reader` and `writer` are whole schemas
/// (local `$ref`s resolve against them).
pub fn reader_accepts_writer(reader: &Value, writer: &Value) -> Vec<String> {
    if reader == writer {
        return Vec::new();
    }
    let mut c = Checker {
        reader_root: reader,
        writer_root: writer,
        problems: Vec::new(),
        assumed: HashSet::new(),
        steps: 0,
        found: 0,
    };
    c.check(reader, writer, "#", 0);
    if c.steps > MAX_STEPS {
        c.problems = vec![format!(
            "#: TOO_COMPLEX: comparing these schemas takes more than {MAX_STEPS} steps (combinators over references); Brook refuses what it cannot check"
        )];
    }
    c.problems.truncate(MAX_PROBLEMS);
    c.problems
}

struct Checker<'a> {
    reader_root: &'a Value,
    writer_root: &'a Value,
    problems: Vec<String>,
    /// Pairs being compared further up: meeting one again (a recursive
    /// `$ref`) assumes it holds, which is sound for the greatest fixpoint.
    assumed: HashSet<(usize, usize)>,
    /// Comparisons made so far (see [`MAX_STEPS`]).
    steps: usize,
    /// Problems found, listed or not.
    found: usize,
}

impl<'a> Checker<'a> {
    fn problem(&mut self, path: &str, rule: &str, detail: String) {
        self.found += 1;
        if self.problems.len() < MAX_PROBLEMS {
            self.problems.push(format!("{path}: {rule}: {detail}"));
        }
    }

    /// Whether `reader` accepts `writer`, without recording problems.
    fn quietly<'v>(&mut self, reader: &'v Value, writer: &'v Value, depth: usize) -> bool
    where
        'a: 'v,
    {
        let (listed, found) = (self.problems.len(), self.found);
        self.check(reader, writer, "#", depth);
        let ok = self.found == found;
        self.problems.truncate(listed);
        self.found = found;
        ok
    }

    fn check<'v>(&mut self, reader: &'v Value, writer: &'v Value, path: &str, depth: usize)
    where
        'a: 'v,
    {
        self.steps += 1;
        if self.steps > MAX_STEPS {
            // Reported once, by the caller; a problem here ends quiet checks.
            self.problem(path, "TOO_COMPLEX", "too many comparisons".into());
            return;
        }
        if depth > MAX_DEPTH {
            self.problem(
                path,
                "TOO_DEEP",
                format!("schemas nest deeper than {MAX_DEPTH} levels (or $ref hops) here"),
            );
            return;
        }
        // Keywords beside a reader's `$ref` constrain too (draft 2019-09 on):
        // the writer must satisfy them as well as the target.
        if let Some(m) = reader.as_object()
            && m.contains_key("$ref")
            && m.keys()
                .any(|k| k != "$ref" && !ANNOTATIONS.contains(&k.as_str()))
        {
            let beside = Value::Object(without(m, "$ref"));
            self.check(&beside, writer, path, depth + 1);
        }
        let Some(reader) = self.resolve(reader, true, path) else {
            return;
        };
        let Some(writer) = self.resolve(writer, false, path) else {
            return;
        };
        let key = (
            reader as *const Value as usize,
            writer as *const Value as usize,
        );
        if !self.assumed.insert(key) {
            return;
        }
        self.compare(reader, writer, path, depth);
        self.assumed.remove(&key);
    }

    /// Follows a local `$ref` (`#/...`) to the schema it names; `None` (with
    /// a problem) for one that does not resolve or is not local.
    fn resolve<'v>(&mut self, mut schema: &'v Value, reader: bool, path: &str) -> Option<&'v Value>
    where
        'a: 'v,
    {
        let root = if reader {
            self.reader_root
        } else {
            self.writer_root
        };
        for _ in 0..MAX_DEPTH {
            let Some(target) = schema.get("$ref").and_then(Value::as_str) else {
                return Some(schema);
            };
            let found = target
                .strip_prefix('#')
                .and_then(|pointer| root.pointer(pointer));
            match found {
                Some(next) => schema = next,
                None => {
                    let side = if reader { "reader" } else { "writer" };
                    self.problem(
                        path,
                        "REF_UNRESOLVED",
                        format!(
                            "the {side}'s $ref {target:?} is not a local reference that resolves"
                        ),
                    );
                    return None;
                }
            }
        }
        self.problem(path, "TOO_DEEP", "a chain of $ref that does not end".into());
        None
    }

    fn compare<'v>(&mut self, reader: &'v Value, writer: &'v Value, path: &str, depth: usize)
    where
        'a: 'v,
    {
        // `true` and `{}` accept everything; `false` accepts nothing.
        if accepts_anything(reader) || writer == &Value::Bool(false) {
            return;
        }
        let (Some(r), Some(w)) = (reader.as_object(), writer.as_object()) else {
            match reader {
                Value::Bool(false) => self.problem(
                    path,
                    "SCHEMA_NARROWED",
                    "the reader accepts nothing here".into(),
                ),
                _ => self.problem(
                    path,
                    "SCHEMA_NARROWED",
                    "the writer accepted any value here; the reader constrains it".into(),
                ),
            }
            return;
        };
        // A writer made of alternatives: each must be accepted.
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = w.get(key).and_then(Value::as_array) {
                let rest = without(w, key);
                for (i, b) in branches.iter().enumerate() {
                    let merged = merge(&rest, b);
                    self.check(reader, &merged, &format!("{path}/{key}/{i}"), depth + 1);
                }
                return;
            }
        }
        // A writer that is an intersection is accepted if one part is.
        if let Some(parts) = w.get("allOf").and_then(Value::as_array) {
            let rest = Value::Object(without(w, "allOf"));
            let mut candidates: Vec<&Value> = parts.iter().collect();
            candidates.push(&rest);
            if !candidates
                .iter()
                .any(|part| self.quietly(reader, part, depth + 1))
            {
                self.problem(
                    path,
                    "COMBINED_TYPE_CHANGED",
                    "the reader accepts no part of the writer's allOf on its own".into(),
                );
            }
            return;
        }
        // A reader made of alternatives accepts the writer if the keywords
        // beside the combinator do and one alternative does on its own.
        for key in ["anyOf", "oneOf"] {
            if let Some(branches) = r.get(key).and_then(Value::as_array) {
                let rest = Value::Object(without(r, key));
                self.check(&rest, writer, path, depth + 1);
                let found = branches.iter().any(|b| self.quietly(b, writer, depth + 1));
                if !found {
                    self.problem(
                        path,
                        "COMBINED_TYPE_SUBSCHEMAS_CHANGED",
                        format!("no branch of the reader's {key} accepts what the writer allowed"),
                    );
                }
                return;
            }
        }
        if let Some(parts) = r.get("allOf").and_then(Value::as_array) {
            for (i, part) in parts.iter().enumerate() {
                self.check(part, writer, &format!("{path}/allOf/{i}"), depth + 1);
            }
            let rest = Value::Object(without(r, "allOf"));
            self.check(&rest, writer, path, depth + 1);
            return;
        }
        self.compare_types(r, w, path);
        self.compare_values(r, w, path);
        self.compare_numbers(r, w, path);
        self.compare_strings(r, w, path);
        self.compare_objects(r, w, path, depth);
        self.compare_arrays(r, w, path, depth);
        for (key, value) in r {
            let known = COMPARED.contains(&key.as_str()) || ANNOTATIONS.contains(&key.as_str());
            // Equal text can still mean other constraints when it refers to
            // definitions that changed: such a keyword counts as changed.
            if !known && (w.get(key) != Some(value) || holds_ref(value)) {
                self.problem(
                    &format!("{path}/{key}"),
                    "KEYWORD_CHANGED",
                    format!("{key:?} was added or changed; Brook does not compare it, so it refuses the change"),
                );
            }
        }
    }

    fn compare_types(&mut self, r: &Map<String, Value>, w: &Map<String, Value>, path: &str) {
        let Some(reader_types) = types(r) else {
            return;
        };
        match types(w) {
            Some(writer_types) => {
                for t in writer_types {
                    let covered = reader_types.contains(&t)
                        || (t == "integer" && reader_types.contains(&"number"));
                    if !covered {
                        let rule = if t == "number" && reader_types.contains(&"integer") {
                            "TYPE_NARROWED"
                        } else {
                            "TYPE_CHANGED"
                        };
                        self.problem(
                            &format!("{path}/type"),
                            rule,
                            format!(
                                "the writer allowed {t}, the reader accepts only {reader_types:?}"
                            ),
                        );
                    }
                }
            }
            None => {
                // A writer limited to listed values is fine if each has a reader type.
                let listed = listed_values(w);
                let all_typed = listed
                    .as_ref()
                    .is_some_and(|vs| vs.iter().all(|v| value_has_type(v, &reader_types)));
                if !all_typed {
                    self.problem(
                        &format!("{path}/type"),
                        "TYPE_NARROWED",
                        format!(
                            "the writer allowed any type, the reader accepts only {reader_types:?}"
                        ),
                    );
                }
            }
        }
    }

    fn compare_values(&mut self, r: &Map<String, Value>, w: &Map<String, Value>, path: &str) {
        let reader_values = match (r.get("enum"), r.get("const")) {
            (Some(Value::Array(e)), _) => Some(e.clone()),
            (_, Some(c)) => Some(vec![c.clone()]),
            _ => None,
        };
        let Some(reader_values) = reader_values else {
            return;
        };
        let rule = if r.contains_key("enum") {
            "ENUM_ARRAY_NARROWED"
        } else {
            "CONST_CHANGED"
        };
        match listed_values(w) {
            Some(writer_values) => {
                for v in writer_values {
                    if !reader_values.contains(&v) {
                        self.problem(
                            path,
                            rule,
                            format!("the writer allowed {v}, which the reader does not list"),
                        );
                    }
                }
            }
            None => self.problem(
                path,
                rule,
                "the writer allowed any value here, the reader lists the values it accepts".into(),
            ),
        }
    }

    fn compare_numbers(&mut self, r: &Map<String, Value>, w: &Map<String, Value>, path: &str) {
        if let Some((reader_min, reader_excl)) = lower_bound(r) {
            match lower_bound(w) {
                Some((writer_min, writer_excl))
                    if writer_min > reader_min
                        || (writer_min == reader_min && (writer_excl || !reader_excl)) => {}
                _ => self.problem(
                    &format!("{path}/minimum"),
                    "MINIMUM_INCREASED",
                    format!("the reader's lower bound {reader_min} is above the writer's"),
                ),
            }
        }
        if let Some((reader_max, reader_excl)) = upper_bound(r) {
            match upper_bound(w) {
                Some((writer_max, writer_excl))
                    if writer_max < reader_max
                        || (writer_max == reader_max && (writer_excl || !reader_excl)) => {}
                _ => self.problem(
                    &format!("{path}/maximum"),
                    "MAXIMUM_DECREASED",
                    format!("the reader's upper bound {reader_max} is below the writer's"),
                ),
            }
        }
        if let Some(reader_step) = number(r, "multipleOf") {
            let divides = number(w, "multipleOf").is_some_and(|writer_step| {
                let q = writer_step / reader_step;
                (q - q.round()).abs() < 1e-9
            });
            if !divides {
                self.problem(
                    &format!("{path}/multipleOf"),
                    "MULTIPLE_OF_CHANGED",
                    format!("the writer's values need not be multiples of {reader_step}"),
                );
            }
        }
    }

    fn compare_strings(&mut self, r: &Map<String, Value>, w: &Map<String, Value>, path: &str) {
        if let Some(reader_max) = number(r, "maxLength")
            && number(w, "maxLength").is_none_or(|writer_max| writer_max > reader_max)
        {
            self.problem(
                &format!("{path}/maxLength"),
                "MAX_LENGTH_DECREASED",
                format!("the reader accepts strings of at most {reader_max} characters"),
            );
        }
        if let Some(reader_min) = number(r, "minLength")
            && number(w, "minLength").unwrap_or(0.0) < reader_min
        {
            self.problem(
                &format!("{path}/minLength"),
                "MIN_LENGTH_INCREASED",
                format!("the reader needs strings of at least {reader_min} characters"),
            );
        }
        for (key, rule) in [("pattern", "PATTERN_CHANGED"), ("format", "FORMAT_CHANGED")] {
            if let Some(value) = r.get(key)
                && w.get(key) != Some(value)
            {
                self.problem(
                    &format!("{path}/{key}"),
                    rule,
                    format!("the reader requires {key} {value}, which the writer did not"),
                );
            }
        }
    }

    fn compare_objects<'v>(
        &mut self,
        r: &'v Map<String, Value>,
        w: &'v Map<String, Value>,
        path: &str,
        depth: usize,
    ) where
        'a: 'v,
    {
        let empty = Map::new();
        let reader_props = r
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let writer_props = w
            .get("properties")
            .and_then(Value::as_object)
            .unwrap_or(&empty);
        let writer_required = strings(w.get("required"));
        for name in strings(r.get("required")) {
            if !writer_required.contains(&name) {
                self.problem(
                    &format!("{path}/required"),
                    "REQUIRED_PROPERTY_ADDED",
                    format!("the reader requires {name:?}, which the writer did not require"),
                );
            }
        }
        let reader_extra = r.get("additionalProperties");
        let writer_extra = w.get("additionalProperties");
        for (name, reader_prop) in reader_props {
            let at = format!("{path}/properties/{}", escape(name));
            match (writer_props.get(name), writer_extra) {
                (Some(writer_prop), _) => self.check(reader_prop, writer_prop, &at, depth + 1),
                // The writer's closed model never let the property through.
                (None, Some(Value::Bool(false))) => {}
                (None, Some(extra @ Value::Object(_))) => {
                    self.check(reader_prop, extra, &at, depth + 1)
                }
                // Added to an open model: compatible by the documented rule
                // (writers are assumed to have sent only declared properties).
                (None, _) => {}
            }
        }
        for (name, writer_prop) in writer_props {
            if reader_props.contains_key(name) {
                continue;
            }
            let at = format!("{path}/properties/{}", escape(name));
            match reader_extra {
                Some(Value::Bool(false)) => self.problem(
                    &at,
                    "PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL",
                    format!("the writer allowed {name:?}; the reader's closed model refuses it"),
                ),
                Some(extra @ Value::Object(_)) => self.check(extra, writer_prop, &at, depth + 1),
                _ => {}
            }
        }
        match (reader_extra, writer_extra) {
            (None | Some(Value::Bool(true)), _) | (_, Some(Value::Bool(false))) => {}
            (Some(reader_extra), writer_extra) => {
                let open = Value::Bool(true);
                let writer_extra = writer_extra.unwrap_or(&open);
                self.check(
                    reader_extra,
                    writer_extra,
                    &format!("{path}/additionalProperties"),
                    depth + 1,
                );
            }
        }
        self.bound_counts(
            r,
            w,
            path,
            ("minProperties", "MIN_PROPERTIES_INCREASED"),
            ("maxProperties", "MAX_PROPERTIES_DECREASED"),
        );
    }

    fn compare_arrays<'v>(
        &mut self,
        r: &'v Map<String, Value>,
        w: &'v Map<String, Value>,
        path: &str,
        depth: usize,
    ) where
        'a: 'v,
    {
        // Per position: draft 2020-12's prefixItems, or draft 7's items array.
        let reader_tuple = tuple(r);
        let writer_tuple = tuple(w);
        let reader_rest = rest_items(r);
        let writer_rest = rest_items(w);
        let positions = reader_tuple.len().max(writer_tuple.len());
        for i in 0..positions {
            let reader_item = reader_tuple.get(i).copied().or(reader_rest);
            let writer_item = writer_tuple.get(i).copied().or(writer_rest);
            if let Some(reader_item) = reader_item {
                let writer_item = writer_item.unwrap_or(&Value::Bool(true));
                self.check(
                    reader_item,
                    writer_item,
                    &format!("{path}/items/{i}"),
                    depth + 1,
                );
            }
        }
        if let Some(reader_item) = reader_rest {
            let writer_item = writer_rest.unwrap_or(&Value::Bool(true));
            self.check(
                reader_item,
                writer_item,
                &format!("{path}/items"),
                depth + 1,
            );
        }
        self.bound_counts(
            r,
            w,
            path,
            ("minItems", "MIN_ITEMS_INCREASED"),
            ("maxItems", "MAX_ITEMS_DECREASED"),
        );
        if r.get("uniqueItems") == Some(&Value::Bool(true))
            && w.get("uniqueItems") != Some(&Value::Bool(true))
        {
            self.problem(
                &format!("{path}/uniqueItems"),
                "UNIQUE_ITEMS_ADDED",
                "the reader requires unique items; the writer did not".into(),
            );
        }
    }

    fn bound_counts(
        &mut self,
        r: &Map<String, Value>,
        w: &Map<String, Value>,
        path: &str,
        (min_key, min_rule): (&str, &str),
        (max_key, max_rule): (&str, &str),
    ) {
        if let Some(reader_min) = number(r, min_key)
            && number(w, min_key).unwrap_or(0.0) < reader_min
        {
            self.problem(
                &format!("{path}/{min_key}"),
                min_rule,
                format!("the reader needs at least {reader_min}"),
            );
        }
        if let Some(reader_max) = number(r, max_key)
            && number(w, max_key).is_none_or(|writer_max| writer_max > reader_max)
        {
            self.problem(
                &format!("{path}/{max_key}"),
                max_rule,
                format!("the reader accepts at most {reader_max}"),
            );
        }
    }
}

/// Whether `v` holds a `$ref` anywhere.
fn holds_ref(v: &Value) -> bool {
    match v {
        Value::Object(m) => m.contains_key("$ref") || m.values().any(holds_ref),
        Value::Array(a) => a.iter().any(holds_ref),
        _ => false,
    }
}

fn accepts_anything(schema: &Value) -> bool {
    match schema {
        Value::Bool(b) => *b,
        Value::Object(m) => m.keys().all(|k| ANNOTATIONS.contains(&k.as_str())),
        _ => false,
    }
}

fn without(m: &Map<String, Value>, key: &str) -> Map<String, Value> {
    let mut m = m.clone();
    m.remove(key);
    m
}

/// `base` with `branch`'s keywords laid over it: one alternative of a
/// combinator together with the keywords beside the combinator.
fn merge(base: &Map<String, Value>, branch: &Value) -> Value {
    match branch {
        Value::Object(b) => {
            let mut m = base.clone();
            for (k, v) in b {
                m.insert(k.clone(), v.clone());
            }
            Value::Object(m)
        }
        other if base.keys().all(|k| ANNOTATIONS.contains(&k.as_str())) => other.clone(),
        // `false` beside other keywords still accepts nothing.
        Value::Bool(false) => Value::Bool(false),
        _ => Value::Object(base.clone()),
    }
}

fn types(m: &Map<String, Value>) -> Option<Vec<&str>> {
    match m.get("type")? {
        Value::String(t) => Some(vec![t.as_str()]),
        Value::Array(ts) => Some(ts.iter().filter_map(Value::as_str).collect()),
        _ => None,
    }
}

fn listed_values(m: &Map<String, Value>) -> Option<Vec<Value>> {
    match (m.get("enum"), m.get("const")) {
        (Some(Value::Array(e)), _) => Some(e.clone()),
        (_, Some(c)) => Some(vec![c.clone()]),
        _ => None,
    }
}

fn value_has_type(v: &Value, types: &[&str]) -> bool {
    types.iter().any(|t| match *t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "object" => v.is_object(),
        "array" => v.is_array(),
        "string" => v.is_string(),
        "number" => v.is_number(),
        "integer" => v.as_f64().is_some_and(|f| f.fract() == 0.0),
        _ => false,
    })
}

fn number(m: &Map<String, Value>, key: &str) -> Option<f64> {
    m.get(key).and_then(Value::as_f64)
}

/// The lower bound and whether it is exclusive (draft 4's boolean
/// `exclusiveMinimum` or draft 6+'s number).
fn lower_bound(m: &Map<String, Value>) -> Option<(f64, bool)> {
    bound(m, "minimum", "exclusiveMinimum", f64::max)
}

fn upper_bound(m: &Map<String, Value>) -> Option<(f64, bool)> {
    bound(m, "maximum", "exclusiveMaximum", f64::min)
}

fn bound(
    m: &Map<String, Value>,
    inclusive: &str,
    exclusive: &str,
    tighter: fn(f64, f64) -> f64,
) -> Option<(f64, bool)> {
    let inc = number(m, inclusive);
    match (inc, m.get(exclusive)) {
        (Some(v), Some(Value::Bool(true))) => Some((v, true)),
        (inc, Some(Value::Number(e))) => {
            let e = e.as_f64()?;
            match inc {
                Some(v) if tighter(v, e) == v && v != e => Some((v, false)),
                _ => Some((e, true)),
            }
        }
        (Some(v), _) => Some((v, false)),
        (None, _) => None,
    }
}

fn strings(v: Option<&Value>) -> Vec<String> {
    v.and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn tuple(m: &Map<String, Value>) -> Vec<&Value> {
    match (m.get("prefixItems"), m.get("items")) {
        (Some(Value::Array(items)), _) | (None, Some(Value::Array(items))) => {
            items.iter().collect()
        }
        _ => Vec::new(),
    }
}

/// The schema of items after the tuple (or of every item).
fn rest_items(m: &Map<String, Value>) -> Option<&Value> {
    match (m.get("prefixItems"), m.get("items")) {
        (Some(_), Some(items)) => Some(items),
        (None, Some(Value::Array(_))) => m.get("additionalItems"),
        (None, Some(items)) => Some(items),
        (_, None) => None,
    }
}

/// A property name as a JSON-pointer segment.
fn escape(name: &str) -> String {
    name.replace('~', "~0").replace('/', "~1")
}

#[cfg(test)]
#[path = "json_tests.rs"]
mod tests;
