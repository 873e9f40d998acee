//! A schema's text, checked and parsed by its type: JSON Schema (drafts 4
//! to 2020-12, draft 7 when it names none, as Confluent's) through the
//! `jsonschema` crate, Avro through `apache-avro`. Protobuf is not yet
//! supported (docs/schemas.md says so).

use super::tape::TapeJson;
use std::fmt;
use std::str::FromStr;

use serde_json::Value;

/// Schema text longer than this is refused (Confluent's default limit on a
/// request is larger; no event contract needs more).
pub const MAX_SCHEMA_BYTES: usize = 1 << 20;

/// The schema languages the registry speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// JSON Schema.
    Json,
    /// Apache Avro (the default when a request names none, as Confluent's).
    Avro,
}

impl Kind {
    /// The name on the wire: `JSON`, `AVRO`.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Json => "JSON",
            Kind::Avro => "AVRO",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Kind {
    type Err = String;

    fn from_str(s: &str) -> Result<Kind, String> {
        match s.trim().to_ascii_uppercase().as_str() {
            "JSON" => Ok(Kind::Json),
            "AVRO" | "" => Ok(Kind::Avro),
            "PROTOBUF" => Err(
                "schema type PROTOBUF is not supported yet: register JSON or AVRO schemas".into(),
            ),
            other => Err(format!("unknown schema type {other:?}: JSON or AVRO")),
        }
    }
}

/// A schema that parsed and checked.
pub enum Parsed {
    /// A JSON Schema and its compiled validator.
    Json {
        /// The schema document.
        value: Value,
        /// The validator compiled from it (drafts as `$schema` says), for
        /// payloads parsed onto a simd-json tape (`super::tape`).
        validator: Box<jsonschema::Validator<TapeJson>>,
    },
    /// An Avro schema.
    Avro {
        /// The schema.
        schema: apache_avro::Schema,
        /// Whether a named type contains itself (a list, a tree): data of
        /// it can nest as deep as a payload is long.
        recursive: bool,
    },
}

impl Parsed {
    /// Checks and parses `text` as a schema of `kind`; the error says what
    /// is wrong with it.
    pub fn parse(kind: Kind, text: &str) -> Result<Parsed, String> {
        if text.len() > MAX_SCHEMA_BYTES {
            return Err(format!(
                "the schema is {} bytes, more than the {MAX_SCHEMA_BYTES} accepted",
                text.len()
            ));
        }
        // serde_json refuses nesting deeper than 128 levels: a deeply nested
        // document is an error here, never a stack overflow further on.
        let value: Value =
            serde_json::from_str(text).map_err(|e| format!("the schema is not JSON: {e}"))?;
        match kind {
            Kind::Json => parse_json_schema(value),
            Kind::Avro => apache_avro::Schema::parse(&value)
                .map(|schema| Parsed::Avro {
                    recursive: is_recursive(&schema, &mut Vec::new()),
                    schema,
                })
                .map_err(|e| format!("not a valid Avro schema: {e}")),
        }
    }

    /// The schema's language.
    pub fn kind(&self) -> Kind {
        match self {
            Parsed::Json { .. } => Kind::Json,
            Parsed::Avro { .. } => Kind::Avro,
        }
    }
}

fn parse_json_schema(value: Value) -> Result<Parsed, String> {
    if !value.is_object() && !value.is_boolean() {
        return Err("a JSON Schema is an object or a boolean".into());
    }
    let draft = match value.get("$schema").and_then(Value::as_str) {
        Some(_) => None,
        None => Some(jsonschema::Draft::Draft7),
    };
    if let Err(e) = meta_check(&value, draft) {
        return Err(format!("not a valid JSON Schema: {e}"));
    }
    let mut options = jsonschema::options_for::<TapeJson>();
    if let Some(draft) = draft {
        options = options.with_draft(draft);
    }
    // No retriever is built in (the crate's file and HTTP features are off):
    // a `$ref` to anything outside the document fails here.
    let validator = options
        .build(&value)
        .map_err(|e| format!("not a valid JSON Schema: {e}"))?;
    Ok(Parsed::Json {
        value,
        validator: Box::new(validator),
    })
}

/// Validates the schema against its draft's meta-schema.
fn meta_check(value: &Value, draft: Option<jsonschema::Draft>) -> Result<(), String> {
    let result = match draft {
        Some(jsonschema::Draft::Draft7) => jsonschema::draft7::meta::validate(value),
        _ => jsonschema::meta::validate(value),
    };
    result.map_err(|e| {
        let at = e.instance_path().to_string();
        let at = if at.is_empty() { "/".to_string() } else { at };
        format!("{e} (at {at})")
    })
}

/// The form two registrations are compared in: the JSON document written
/// compactly with its object keys sorted, so that whitespace and key order
/// never make a second id for the same schema.
pub fn canonical(text: &str) -> Option<String> {
    let value: Value = serde_json::from_str(text).ok()?;
    serde_json::to_string(&sorted(value)).ok()
}

fn sorted(value: Value) -> Value {
    match value {
        Value::Object(m) => {
            let mut entries: Vec<(String, Value)> = m.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(entries.into_iter().map(|(k, v)| (k, sorted(v))).collect())
        }
        Value::Array(a) => Value::Array(a.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// Whether a named type of `schema` contains itself.
fn is_recursive(schema: &apache_avro::Schema, open: &mut Vec<apache_avro::schema::Name>) -> bool {
    use apache_avro::Schema;
    match schema {
        Schema::Ref { name } => open.contains(name),
        Schema::Record(r) => {
            open.push(r.name.clone());
            let found = r.fields.iter().any(|f| is_recursive(&f.schema, open));
            open.pop();
            found
        }
        Schema::Array(a) => is_recursive(&a.items, open),
        Schema::Map(m) => is_recursive(&m.types, open),
        Schema::Union(u) => u.variants().iter().any(|v| is_recursive(v, open)),
        _ => false,
    }
}
