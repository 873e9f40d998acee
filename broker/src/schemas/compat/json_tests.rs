//! The JSON Schema rules, one case per rule: each evolution is checked as
//! BACKWARD (the new schema reads data written with the old) and the rule
//! it breaks, if any, must be the one reported.

use serde_json::{Value, json};

use super::reader_accepts_writer;

/// `(what, old, new, the rule broken reading old data with new, or None)`.
fn cases() -> Vec<(&'static str, Value, Value, Option<&'static str>)> {
    let order = |props: Value, required: Value| json!({"type": "object", "properties": props, "required": required});
    vec![
        (
            "adding an optional property",
            order(json!({"id": {"type": "string"}}), json!(["id"])),
            order(
                json!({"id": {"type": "string"}, "note": {"type": "string"}}),
                json!(["id"]),
            ),
            None,
        ),
        (
            "adding a required property",
            order(json!({"id": {"type": "string"}}), json!(["id"])),
            order(
                json!({"id": {"type": "string"}, "total": {"type": "number"}}),
                json!(["id", "total"]),
            ),
            Some("REQUIRED_PROPERTY_ADDED"),
        ),
        (
            "making a property required",
            order(
                json!({"id": {"type": "string"}, "n": {"type": "integer"}}),
                json!(["id"]),
            ),
            order(
                json!({"id": {"type": "string"}, "n": {"type": "integer"}}),
                json!(["id", "n"]),
            ),
            Some("REQUIRED_PROPERTY_ADDED"),
        ),
        (
            "making a required property optional",
            order(
                json!({"id": {"type": "string"}, "n": {"type": "integer"}}),
                json!(["id", "n"]),
            ),
            order(
                json!({"id": {"type": "string"}, "n": {"type": "integer"}}),
                json!(["id"]),
            ),
            None,
        ),
        (
            "removing a property from an open model",
            order(
                json!({"id": {"type": "string"}, "n": {"type": "integer"}}),
                json!(["id", "n"]),
            ),
            order(json!({"id": {"type": "string"}}), json!(["id"])),
            None,
        ),
        (
            "removing a property from a closed model",
            json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "string"}}, "additionalProperties": false}),
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false}),
            Some("PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL"),
        ),
        (
            "closing an open content model",
            json!({"type": "object", "properties": {"a": {"type": "string"}}}),
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false}),
            Some("SCHEMA_NARROWED"),
        ),
        (
            "opening a closed content model",
            json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false}),
            json!({"type": "object", "properties": {"a": {"type": "string"}}}),
            None,
        ),
        (
            "narrowing number to integer",
            json!({"type": "number"}),
            json!({"type": "integer"}),
            Some("TYPE_NARROWED"),
        ),
        (
            "widening integer to number",
            json!({"type": "integer"}),
            json!({"type": "number"}),
            None,
        ),
        (
            "changing a type",
            json!({"type": "string"}),
            json!({"type": "boolean"}),
            Some("TYPE_CHANGED"),
        ),
        (
            "adding a type to a union",
            json!({"type": "string"}),
            json!({"type": ["string", "null"]}),
            None,
        ),
        (
            "removing a type from a union",
            json!({"type": ["string", "null"]}),
            json!({"type": "string"}),
            Some("TYPE_CHANGED"),
        ),
        (
            "adding an enum value",
            json!({"enum": ["NEW", "PAID"]}),
            json!({"enum": ["NEW", "PAID", "SHIPPED"]}),
            None,
        ),
        (
            "removing an enum value",
            json!({"enum": ["NEW", "PAID", "SHIPPED"]}),
            json!({"enum": ["NEW", "PAID"]}),
            Some("ENUM_ARRAY_NARROWED"),
        ),
        (
            "adding an enum to a free string",
            json!({"type": "string"}),
            json!({"type": "string", "enum": ["a"]}),
            Some("ENUM_ARRAY_NARROWED"),
        ),
        (
            "raising a minimum",
            json!({"type": "number", "minimum": 0}),
            json!({"type": "number", "minimum": 1}),
            Some("MINIMUM_INCREASED"),
        ),
        (
            "lowering a minimum",
            json!({"type": "number", "minimum": 1}),
            json!({"type": "number", "minimum": 0}),
            None,
        ),
        (
            "an inclusive minimum made exclusive",
            json!({"type": "number", "minimum": 0}),
            json!({"type": "number", "exclusiveMinimum": 0}),
            Some("MINIMUM_INCREASED"),
        ),
        (
            "lowering a maximum",
            json!({"type": "number", "maximum": 10}),
            json!({"type": "number", "maximum": 5}),
            Some("MAXIMUM_DECREASED"),
        ),
        (
            "adding a maximum",
            json!({"type": "number"}),
            json!({"type": "number", "maximum": 5}),
            Some("MAXIMUM_DECREASED"),
        ),
        (
            "a multipleOf that divides the old one",
            json!({"type": "integer", "multipleOf": 10}),
            json!({"type": "integer", "multipleOf": 5}),
            None,
        ),
        (
            "a multipleOf that does not",
            json!({"type": "integer", "multipleOf": 5}),
            json!({"type": "integer", "multipleOf": 10}),
            Some("MULTIPLE_OF_CHANGED"),
        ),
        (
            "lowering maxLength",
            json!({"type": "string", "maxLength": 20}),
            json!({"type": "string", "maxLength": 10}),
            Some("MAX_LENGTH_DECREASED"),
        ),
        (
            "raising minLength",
            json!({"type": "string", "minLength": 1}),
            json!({"type": "string", "minLength": 2}),
            Some("MIN_LENGTH_INCREASED"),
        ),
        (
            "raising maxLength",
            json!({"type": "string", "maxLength": 10}),
            json!({"type": "string", "maxLength": 20}),
            None,
        ),
        (
            "adding a pattern",
            json!({"type": "string"}),
            json!({"type": "string", "pattern": "^[A-Z]+$"}),
            Some("PATTERN_CHANGED"),
        ),
        (
            "adding a format",
            json!({"type": "string"}),
            json!({"type": "string", "format": "email"}),
            Some("FORMAT_CHANGED"),
        ),
        (
            "narrowing an array's items",
            json!({"type": "array", "items": {"type": "number"}}),
            json!({"type": "array", "items": {"type": "integer"}}),
            Some("TYPE_NARROWED"),
        ),
        (
            "raising minItems",
            json!({"type": "array", "minItems": 0}),
            json!({"type": "array", "minItems": 1}),
            Some("MIN_ITEMS_INCREASED"),
        ),
        (
            "requiring unique items",
            json!({"type": "array"}),
            json!({"type": "array", "uniqueItems": true}),
            Some("UNIQUE_ITEMS_ADDED"),
        ),
        (
            "lowering maxProperties",
            json!({"type": "object", "maxProperties": 5}),
            json!({"type": "object", "maxProperties": 2}),
            Some("MAX_PROPERTIES_DECREASED"),
        ),
        (
            "adding an anyOf branch",
            json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
            json!({"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}),
            None,
        ),
        (
            "removing an anyOf branch",
            json!({"anyOf": [{"type": "string"}, {"type": "integer"}]}),
            json!({"anyOf": [{"type": "string"}]}),
            Some("COMBINED_TYPE_SUBSCHEMAS_CHANGED"),
        ),
        (
            "a nested property narrowed",
            order(
                json!({"customer": {"type": "object", "properties": {"age": {"type": "number"}}}}),
                json!([]),
            ),
            order(
                json!({"customer": {"type": "object", "properties": {"age": {"type": "integer"}}}}),
                json!([]),
            ),
            Some("TYPE_NARROWED"),
        ),
        (
            "a keyword Brook does not compare, added",
            json!({"type": "object"}),
            json!({"type": "object", "propertyNames": {"maxLength": 3}}),
            Some("KEYWORD_CHANGED"),
        ),
        (
            "annotations changed",
            json!({"type": "string", "description": "old", "title": "A"}),
            json!({"type": "string", "description": "new", "examples": ["x"]}),
            None,
        ),
        (
            "from any value to a type",
            json!({}),
            json!({"type": "string"}),
            Some("TYPE_NARROWED"),
        ),
    ]
}

#[test]
fn every_rule_decides_as_documented() {
    for (what, old, new, broken) in cases() {
        let problems = reader_accepts_writer(&new, &old);
        match broken {
            None => assert!(
                problems.is_empty(),
                "{what}: expected compatible, got {problems:?}"
            ),
            Some(rule) => assert!(
                problems.iter().any(|p| p.contains(rule)),
                "{what}: expected {rule}, got {problems:?}"
            ),
        }
    }
}

#[test]
fn a_problem_names_the_field() {
    let old = json!({"type": "object", "properties": {"order": {"type": "object", "properties": {"total": {"type": "number"}}}}});
    let new = json!({"type": "object", "properties": {"order": {"type": "object", "properties": {"total": {"type": "integer"}}}}});
    let problems = reader_accepts_writer(&new, &old);
    assert_eq!(
        problems,
        vec![
            "#/properties/order/properties/total/type: TYPE_NARROWED: the writer allowed number, the reader accepts only [\"integer\"]"
        ]
    );
}

#[test]
fn local_refs_are_followed_and_recursive_ones_end() {
    // A tree of nodes, each with children of the same definition.
    let tree = |value_type: &str| {
        json!({
            "$ref": "#/definitions/node",
            "definitions": {"node": {"type": "object", "properties": {
                "value": {"type": value_type},
                "children": {"type": "array", "items": {"$ref": "#/definitions/node"}}
            }}}
        })
    };
    assert!(reader_accepts_writer(&tree("number"), &tree("integer")).is_empty());
    let problems = reader_accepts_writer(&tree("integer"), &tree("number"));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("/properties/value/type: TYPE_NARROWED")),
        "{problems:?}"
    );
    let dangling = json!({"$ref": "#/definitions/missing"});
    let problems = reader_accepts_writer(&dangling, &json!({"type": "string"}));
    assert!(problems[0].contains("REF_UNRESOLVED"), "{problems:?}");
}

#[test]
fn combinators_over_refs_cannot_make_the_check_exponential() {
    // l0 .. l60, each an anyOf of two references to the next: 2^60 paths.
    let mut defs = serde_json::Map::new();
    for i in 0..60 {
        let next = json!({"$ref": format!("#/$defs/l{}", i + 1)});
        defs.insert(format!("l{i}"), json!({"anyOf": [next.clone(), next]}));
    }
    defs.insert("l60".into(), json!({"type": "string"}));
    let old = json!({"$ref": "#/$defs/l0", "$defs": defs});
    let mut new = old.clone();
    new["$defs"]["l60"] = json!({"type": "integer"});
    let started = std::time::Instant::now();
    let problems = reader_accepts_writer(&new, &old);
    assert!(
        problems.iter().any(|p| p.contains("TOO_COMPLEX")),
        "{problems:?}"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(30),
        "bounded, not exponential"
    );
    assert!(
        reader_accepts_writer(&old, &old.clone()).is_empty(),
        "the same schema is compatible"
    );
}

#[test]
fn keywords_beside_refs_and_combinators_still_constrain() {
    // A required property added beside a reader's anyOf.
    let old = json!({"type": "object", "anyOf": [{"required": ["email"]}]});
    let new = json!({"type": "object", "required": ["id"], "anyOf": [{"required": ["email"]}]});
    let problems = reader_accepts_writer(&new, &old);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("REQUIRED_PROPERTY_ADDED")),
        "{problems:?}"
    );
    // A required property added beside a root $ref.
    let defs = json!({"o": {"type": "object", "properties": {"x": {"type": "string"}}}});
    let old = json!({"$ref": "#/$defs/o", "$defs": defs});
    let new = json!({"$ref": "#/$defs/o", "required": ["x"], "$defs": defs});
    let problems = reader_accepts_writer(&new, &old);
    assert!(
        problems
            .iter()
            .any(|p| p.contains("REQUIRED_PROPERTY_ADDED")),
        "{problems:?}"
    );
    // An uncompared keyword whose text is the same but whose $ref target changed.
    let with_target = |t: &str| json!({"type": "object", "propertyNames": {"$ref": "#/$defs/n"}, "$defs": {"n": {"type": "string", "maxLength": t.len()}}});
    let problems = reader_accepts_writer(&with_target("ab"), &with_target("abcd"));
    assert!(
        problems.iter().any(|p| p.contains("KEYWORD_CHANGED")),
        "{problems:?}"
    );
}
