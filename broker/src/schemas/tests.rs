//! The registry's rules: ids and versions, compatibility by level for
//! JSON Schema and Avro, deletes as Confluent's, bad schemas, durability.

use std::path::Path;

use brook_storage::FlushPolicy;
use serde_json::json;

use super::*;

fn open(dir: &Path) -> Registry {
    Registry::open(dir, FlushPolicy::Never).unwrap()
}

fn order_json(extra: serde_json::Value, required: &[&str]) -> String {
    let mut props = json!({"id": {"type": "string"}, "total": {"type": "number"}});
    for (k, v) in extra.as_object().unwrap() {
        props[k] = v.clone();
    }
    json!({"type": "object", "properties": props, "required": required}).to_string()
}

fn avro(fields: serde_json::Value) -> String {
    json!({"type": "record", "name": "Order", "namespace": "shop", "fields": fields}).to_string()
}

#[test]
fn the_same_schema_gets_the_same_id_everywhere() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    let text = order_json(json!({}), &["id"]);
    let first = r.register("orders-value", Kind::Json, &text).unwrap();
    assert_eq!((first.id, first.version, first.created), (1, 1, true));
    let again = r.register("orders-value", Kind::Json, &text).unwrap();
    assert_eq!((again.id, again.version, again.created), (1, 1, false));
    // Whitespace and key order do not make a new schema.
    let reordered = serde_json::to_string_pretty(&json!({
        "required": ["id"], "type": "object",
        "properties": {"total": {"type": "number"}, "id": {"type": "string"}}
    }))
    .unwrap();
    assert_eq!(
        r.register("orders-value", Kind::Json, &reordered)
            .unwrap()
            .id,
        1
    );
    let elsewhere = r.register("refunds-value", Kind::Json, &text).unwrap();
    assert_eq!((elsewhere.id, elsewhere.version), (1, 1));
    // The same text as another type is another schema.
    let v2 = r
        .register(
            "orders-value",
            Kind::Json,
            &order_json(json!({"note": {"type": "string"}}), &["id"]),
        )
        .unwrap();
    assert_eq!((v2.id, v2.version), (2, 2));
    assert_eq!(r.versions("orders-value", false).unwrap(), vec![1, 2]);
    assert_eq!(
        r.version("orders-value", VersionRef::Latest, false)
            .unwrap()
            .id,
        2
    );
    assert_eq!(r.schema(1).unwrap().1, text, "the text as first registered");
    assert_eq!(
        r.uses(1).unwrap(),
        vec![
            ("orders-value".to_string(), 1),
            ("refunds-value".to_string(), 1)
        ]
    );
    let found = r
        .lookup("orders-value", Kind::Json, &reordered, false)
        .unwrap();
    assert_eq!((found.version, found.id), (1, 1));
}

#[test]
fn backward_is_the_default_and_refusals_list_the_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    r.register("s", Kind::Json, &order_json(json!({}), &["id"]))
        .unwrap();
    let err = r
        .register(
            "s",
            Kind::Json,
            &order_json(json!({"currency": {"type": "string"}}), &["id", "currency"]),
        )
        .unwrap_err();
    assert_eq!((err.status, err.code), (409, 409));
    assert!(
        err.message.contains("REQUIRED_PROPERTY_ADDED"),
        "{}",
        err.message
    );
    assert!(err.message.contains("version 1"), "{}", err.message);
    assert_eq!(
        r.versions("s", false).unwrap(),
        vec![1],
        "nothing was stored"
    );
    r.set_level(Some("s"), Level::None).unwrap();
    r.register(
        "s",
        Kind::Json,
        &order_json(json!({"currency": {"type": "string"}}), &["id", "currency"]),
    )
    .unwrap();
    assert_eq!(r.level(Some("s"), false).unwrap(), Level::None);
    assert_eq!(r.level(None, false).unwrap(), Level::Backward);
}

/// v1 -> v2 -> v3 where v3 reads v2's data but not v1's: a field with a
/// default in v2 loses it in v3.
#[test]
fn transitive_levels_check_every_live_version() {
    let v1 = avro(json!([{"name": "id", "type": "string"}]));
    let v2 = avro(
        json!([{"name": "id", "type": "string"}, {"name": "note", "type": "string", "default": ""}]),
    );
    let v3 = avro(json!([{"name": "id", "type": "string"}, {"name": "note", "type": "string"}]));
    for (level, accepted) in [
        (Level::Backward, true),
        (Level::BackwardTransitive, false),
        (Level::FullTransitive, false),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let r = open(dir.path());
        r.set_level(None, level).unwrap();
        r.register("s", Kind::Avro, &v1).unwrap();
        r.register("s", Kind::Avro, &v2).unwrap();
        let got = r.register("s", Kind::Avro, &v3);
        assert_eq!(got.is_ok(), accepted, "{level}: {got:?}");
        if let Err(e) = got {
            assert!(e.message.contains("version 1"), "names the version: {e}");
            assert!(!e.message.contains("version 2 (backward)"), "{e}");
        }
    }
}

#[test]
fn forward_and_full_check_the_other_way() {
    let v1 = order_json(json!({}), &["id", "total"]);
    // Dropping a required property: old readers need it.
    let v2 = order_json(json!({}), &["id"]);
    for (level, accepted) in [
        (Level::Backward, true),
        (Level::Forward, false),
        (Level::Full, false),
        (Level::None, true),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let r = open(dir.path());
        r.set_level(Some("s"), level).unwrap();
        r.register("s", Kind::Json, &v1).unwrap();
        assert_eq!(
            r.register("s", Kind::Json, &v2).is_ok(),
            accepted,
            "{level}"
        );
    }
}

#[test]
fn avro_evolution_follows_avros_resolution_rules() {
    let base = json!([{"name": "id", "type": "string"}, {"name": "total", "type": "double"}]);
    let with_default = json!([{"name": "id", "type": "string"}, {"name": "total", "type": "double"},
        {"name": "currency", "type": "string", "default": "EUR"}]);
    let without_default = json!([{"name": "id", "type": "string"}, {"name": "total", "type": "double"},
        {"name": "currency", "type": "string"}]);
    let cases = [
        (Level::Backward, &with_default, true),
        (Level::Backward, &without_default, false),
        (Level::Forward, &without_default, true),
        (Level::Full, &with_default, true),
        (Level::Full, &without_default, false),
    ];
    for (level, next, accepted) in cases {
        let dir = tempfile::tempdir().unwrap();
        let r = open(dir.path());
        r.set_level(None, level).unwrap();
        r.register("orders-value", Kind::Avro, &avro(base.clone()))
            .unwrap();
        let got = r.register("orders-value", Kind::Avro, &avro(next.clone()));
        assert_eq!(got.is_ok(), accepted, "{level} {next}: {got:?}");
        if let Err(e) = got {
            assert_eq!(e.code, 409);
            assert!(
                e.message.contains("currency"),
                "names the field: {}",
                e.message
            );
        }
    }
    // Changing a type Avro cannot promote.
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    r.register(
        "s",
        Kind::Avro,
        &avro(json!([{"name": "n", "type": "long"}])),
    )
    .unwrap();
    let err = r
        .register(
            "s",
            Kind::Avro,
            &avro(json!([{"name": "n", "type": "int"}])),
        )
        .unwrap_err();
    assert_eq!(err.code, 409, "{err}");
    // A different schema type is never compatible.
    let err = r
        .register("s", Kind::Json, &json!({"type": "object"}).to_string())
        .unwrap_err();
    assert!(err.message.contains("SCHEMA_TYPE_CHANGED"), "{err}");
}

#[test]
fn deletes_are_soft_first_and_ids_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    r.set_level(None, Level::None).unwrap();
    let a = json!({"type": "string"}).to_string();
    let b = json!({"type": "integer"}).to_string();
    assert_eq!(r.register("s", Kind::Json, &a).unwrap().id, 1);
    assert_eq!(r.register("s", Kind::Json, &b).unwrap().id, 2);
    assert_eq!(
        r.delete_version("s", VersionRef::Number(2), true)
            .unwrap_err()
            .code,
        40407
    );
    assert_eq!(r.delete_version("s", VersionRef::Latest, false).unwrap(), 2);
    assert_eq!(r.versions("s", false).unwrap(), vec![1]);
    assert_eq!(r.versions("s", true).unwrap(), vec![1, 2]);
    assert_eq!(
        r.version("s", VersionRef::Number(2), false)
            .unwrap_err()
            .code,
        40402
    );
    assert_eq!(r.version("s", VersionRef::Number(2), true).unwrap().id, 2);
    assert_eq!(
        r.schema(2).unwrap().0,
        Kind::Json,
        "a soft-deleted version's id is still served"
    );
    assert_eq!(
        r.delete_version("s", VersionRef::Number(2), true).unwrap(),
        2
    );
    assert_eq!(
        r.schema(2).unwrap_err().code,
        40403,
        "gone with its last version"
    );
    assert_eq!(r.delete_subject("s", true).unwrap_err().code, 40405);
    assert_eq!(r.delete_subject("s", false).unwrap(), vec![1]);
    assert_eq!(r.delete_subject("s", false).unwrap_err().code, 40404);
    assert!(r.subjects(false).is_empty());
    assert_eq!(r.subjects(true), vec!["s".to_string()]);
    assert_eq!(r.delete_subject("s", true).unwrap(), vec![1]);
    assert_eq!(r.versions("s", true).unwrap_err().code, 40401);
    // A schema seen before gets a new id once its old one is gone; versions go on.
    let again = r.register("s", Kind::Json, &b).unwrap();
    assert_eq!((again.id, again.version), (3, 3));
}

#[test]
fn bad_schemas_are_refused_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    let deep = format!(
        "{}{}",
        "{\"items\":".repeat(200),
        "{}".to_string() + &"}".repeat(200)
    );
    let huge = json!({"type": "string", "description": "x".repeat(MAX_SCHEMA + 1)}).to_string();
    let cases: Vec<(Kind, String, &str)> = vec![
        (Kind::Json, "{not json".into(), "not JSON"),
        (
            Kind::Json,
            json!({"type": 12}).to_string(),
            "not a valid JSON Schema",
        ),
        (
            Kind::Json,
            json!({"type": "object", "properties": []}).to_string(),
            "not a valid JSON Schema",
        ),
        (
            Kind::Json,
            json!({"$ref": "https://example.com/x.json"}).to_string(),
            "not a valid JSON Schema",
        ),
        (Kind::Json, "42".into(), "object or a boolean"),
        (Kind::Json, deep, "not JSON"),
        (Kind::Json, huge, "more than"),
        (
            Kind::Avro,
            json!({"type": "record", "name": "R"}).to_string(),
            "not a valid Avro schema",
        ),
        (
            Kind::Avro,
            json!({"type": "nonsense"}).to_string(),
            "not a valid Avro schema",
        ),
    ];
    for (kind, text, why) in cases {
        let err = r.register("s", kind, &text).unwrap_err();
        assert_eq!((err.status, err.code), (422, 42201), "{why}: {err}");
        assert!(err.message.contains(why), "{why}: {err}");
    }
    assert!(r.subjects(true).is_empty(), "nothing was stored");
    // A recursive schema is fine, and so is evolving it.
    let tree = |t: &str| {
        json!({"$ref": "#/definitions/node", "definitions": {"node": {"type": "object",
            "properties": {"v": {"type": t}, "kids": {"type": "array", "items": {"$ref": "#/definitions/node"}}}}}})
        .to_string()
    };
    r.register("tree", Kind::Json, &tree("integer")).unwrap();
    r.register("tree", Kind::Json, &tree("number")).unwrap();
    assert!(
        !r.register("tree", Kind::Json, &tree("integer"))
            .unwrap()
            .created,
        "v1 is there"
    );
    let err = r.register("tree", Kind::Json, &tree("string")).unwrap_err();
    assert_eq!(err.code, 409, "{err}");
    assert!(
        err.message.contains("/properties/v/type: TYPE_CHANGED"),
        "{err}"
    );
    let err = r.register("bad\nname", Kind::Json, "{}").unwrap_err();
    assert_eq!(err.code, 42208, "{err}");
}

const MAX_SCHEMA: usize = parsed::MAX_SCHEMA_BYTES;

#[test]
fn the_registry_survives_a_crash_and_a_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let before = {
        let r = open(dir.path());
        r.set_level(None, Level::Full).unwrap();
        r.set_level(Some("b"), Level::None).unwrap();
        r.register("a", Kind::Json, &json!({"type": "string"}).to_string())
            .unwrap();
        r.register("b", Kind::Avro, &json!("string").to_string())
            .unwrap();
        r.register("b", Kind::Avro, &json!("long").to_string())
            .unwrap();
        r.delete_version("b", VersionRef::Number(2), false).unwrap();
        r.delete_version("b", VersionRef::Number(2), true).unwrap();
        // Dropped without a clean stop.
        (r.subjects(true), r.versions("b", true).unwrap())
    };
    for round in 0..2 {
        let r = open(dir.path());
        assert_eq!(
            (r.subjects(true), r.versions("b", true).unwrap()),
            before.clone()
        );
        assert_eq!(r.level(None, false).unwrap(), Level::Full);
        assert_eq!(r.level(Some("b"), false).unwrap(), Level::None);
        assert_eq!(r.schema(2).unwrap(), (Kind::Avro, "\"string\"".to_string()));
        assert_eq!(r.schema(3).unwrap_err().code, 40403);
        if round == 0 {
            // Written out whole: the counters must come through it too.
            r.log.rewrite().unwrap();
        } else {
            let next = r
                .register("b", Kind::Avro, &json!("int").to_string())
                .unwrap();
            assert_eq!(
                (next.id, next.version),
                (4, 3),
                "no id or version handed out twice"
            );
        }
    }
}

/// A value framed as Confluent's serializers frame it.
fn framed(id: u32, payload: &[u8]) -> Option<bytes::Bytes> {
    let mut v = vec![0u8];
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(payload);
    Some(v.into())
}

fn values(
    vs: Vec<Option<bytes::Bytes>>,
) -> impl Iterator<Item = (usize, Option<bytes::Bytes>, Option<bytes::Bytes>)> {
    vs.into_iter().enumerate().map(|(i, v)| (i, None, v))
}

#[test]
fn a_bound_topic_checks_framing_ids_and_payloads() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    let order = json!({"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]});
    let id = r
        .register("orders-value", Kind::Json, &order.to_string())
        .unwrap()
        .id;
    let other = r
        .register(
            "other-value",
            Kind::Json,
            &json!({"type": "string"}).to_string(),
        )
        .unwrap()
        .id;
    assert_eq!(r.mode_of("orders"), None, "nothing bound yet");
    let bind = |mode| Binding {
        value_subject: Some("orders-value".into()),
        key_subject: None,
        mode,
        ..Default::default()
    };
    r.bind("orders", &bind(Mode::Full)).unwrap();
    assert_eq!(r.mode_of("orders"), Some(Mode::Full));
    assert_eq!(r.mode_of("payments"), None);
    let good = framed(id, br#"{"total": 12.5}"#);
    assert_eq!(
        r.validate("orders", values(vec![good.clone(), None])),
        Ok(()),
        "a tombstone passes"
    );
    let cases: Vec<(Option<bytes::Bytes>, Option<u32>, &str, &str)> = vec![
        (
            Some(br#"{"total": 1}"#.to_vec().into()),
            None,
            "",
            "does not start with a schema id",
        ),
        (
            framed(other, b"\"x\""),
            Some(other),
            "",
            "is not a version of subject",
        ),
        (
            framed(999, b"{}"),
            Some(999),
            "",
            "is not a version of subject",
        ),
        (framed(id, b"{not json"), Some(id), "", "not JSON"),
        (
            framed(id, br#"{"total": "12"}"#),
            Some(id),
            "/total",
            "is not of type",
        ),
        (framed(id, br#"{}"#), Some(id), "/", "required"),
    ];
    for (value, schema_id, path, why) in cases {
        let err = r
            .validate("orders", values(vec![good.clone(), value]))
            .unwrap_err();
        assert_eq!(
            (err.index, err.field, err.schema_id),
            (1, "value", schema_id),
            "{err}"
        );
        assert_eq!(err.path, path, "{err}");
        assert!(err.to_string().contains(why), "{why}: {err}");
    }
    // `id` checks the id and not the payload.
    r.bind("orders", &bind(Mode::Id)).unwrap();
    assert_eq!(
        r.validate("orders", values(vec![framed(id, b"{not json")])),
        Ok(())
    );
    assert!(
        r.validate("orders", values(vec![framed(other, b"{}")]))
            .is_err()
    );
    // A new version's id is accepted as soon as it is registered; a
    // soft-deleted version's still is; a permanently deleted one's not.
    r.set_level(None, Level::None).unwrap();
    let v2 = r
        .register(
            "orders-value",
            Kind::Json,
            &json!({"type": "object"}).to_string(),
        )
        .unwrap()
        .id;
    assert_eq!(
        r.validate("orders", values(vec![framed(v2, b"{}")])),
        Ok(())
    );
    r.delete_version("orders-value", VersionRef::Number(2), false)
        .unwrap();
    assert_eq!(
        r.validate("orders", values(vec![framed(v2, b"{}")])),
        Ok(())
    );
    r.delete_version("orders-value", VersionRef::Number(2), true)
        .unwrap();
    assert!(
        r.validate("orders", values(vec![framed(v2, b"{}")]))
            .is_err()
    );
    // Bindings survive a reopen; unbinding stops the checks.
    drop(r);
    let r = open(dir.path());
    assert_eq!(r.binding("orders"), Some(bind(Mode::Id)));
    assert!(
        r.validate("orders", values(vec![Some(b"plain".to_vec().into())]))
            .is_err()
    );
    r.unbind("orders").unwrap();
    assert_eq!(r.mode_of("orders"), None);
    assert_eq!(r.binding("orders"), None);
}

#[test]
fn avro_payloads_and_keys_are_checked_whole() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    let schema = avro(json!([{"name": "id", "type": "string"}, {"name": "cents", "type": "long"}]));
    let value_id = r.register("pay-value", Kind::Avro, &schema).unwrap().id;
    let key_id = r
        .register("pay-key", Kind::Avro, &json!("string").to_string())
        .unwrap()
        .id;
    r.bind(
        "pay",
        &Binding {
            value_subject: Some("pay-value".into()),
            key_subject: Some("pay-key".into()),
            mode: Mode::Full,
            ..Default::default()
        },
    )
    .unwrap();
    // Avro binary: a string is its zig-zag length then bytes; a long zig-zag.
    let datum = [&[0x04][..], b"o1", &[0x94, 0x01]].concat(); // "o1", 74
    let key = [&[0x04][..], b"o1"].concat();
    let record = |k: &[u8], v: &[u8]| (0, framed(key_id, k), framed(value_id, v));
    assert_eq!(
        r.validate("pay", std::iter::once(record(&key, &datum))),
        Ok(())
    );
    let trailing = [&datum[..], &[0x00]].concat();
    let err = r
        .validate("pay", std::iter::once(record(&key, &trailing)))
        .unwrap_err();
    assert!(err.reason.contains("1 bytes follow"), "{err}");
    let err = r
        .validate("pay", std::iter::once(record(&key, &datum[..3])))
        .unwrap_err();
    assert!(err.reason.contains("not Avro"), "{err}");
    // A string claiming 2^40 bytes fails without reserving them.
    let huge = [0xff, 0xff, 0xff, 0xff, 0xff, 0x3f];
    let err = r
        .validate("pay", std::iter::once(record(&key, &huge)))
        .unwrap_err();
    assert!(err.reason.contains("not Avro"), "{err}");
    let err = r
        .validate("pay", std::iter::once(record(b"\x06o1", &datum)))
        .unwrap_err();
    assert_eq!(err.field, "key", "{err}");
    // A payload cut off before a trailing ["null", T] field (which the
    // decoder would read as null) is refused.
    r.set_level(None, Level::None).unwrap();
    let with_note = avro(
        json!([{"name": "id", "type": "string"}, {"name": "cents", "type": "long"},
        {"name": "note", "type": ["null", "string"], "default": null}]),
    );
    let v2 = r.register("pay-value", Kind::Avro, &with_note).unwrap().id;
    let full = [&datum[..], &[0x02, 0x02], b"x"].concat(); // note: the string "x"
    let rec = |v: &[u8]| (0, framed(key_id, &key), framed(v2, v));
    assert_eq!(r.validate("pay", std::iter::once(rec(&full))), Ok(()));
    let err = r.validate("pay", std::iter::once(rec(&datum))).unwrap_err();
    assert!(err.reason.contains("ends inside a value"), "{err}");
    // A recursive schema cannot be validated in full (its data could nest
    // as deep as the payload is long): said so, not attempted.
    let list = json!({"type": "record", "name": "Node", "fields": [{"name": "v", "type": "long"},
        {"name": "next", "type": ["null", "Node"], "default": null}]});
    let v3 = r
        .register("pay-value", Kind::Avro, &list.to_string())
        .unwrap()
        .id;
    let deep = vec![0x02; 1 << 20];
    let err = r
        .validate(
            "pay",
            std::iter::once((0, framed(key_id, &key), framed(v3, &deep))),
        )
        .unwrap_err();
    assert!(err.reason.contains("recursive Avro schema"), "{err}");
}

#[test]
fn soft_deleting_twice_is_confluents_40406() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    r.register("s", Kind::Json, &json!({"type": "string"}).to_string())
        .unwrap();
    r.register(
        "s",
        Kind::Json,
        &json!({"type": ["string", "null"]}).to_string(),
    )
    .unwrap();
    r.delete_version("s", VersionRef::Number(1), false).unwrap();
    let err = r
        .delete_version("s", VersionRef::Number(1), false)
        .unwrap_err();
    assert_eq!((err.status, err.code), (404, 40406), "{err}");
}

#[test]
fn a_dead_lettering_binding_is_kept_and_names_every_invalid_record() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    let order = json!({"type": "object", "required": ["total"]});
    let id = r
        .register("orders-value", Kind::Json, &order.to_string())
        .unwrap()
        .id;
    let binding = Binding {
        value_subject: Some("orders-value".into()),
        key_subject: None,
        mode: Mode::Full,
        on_invalid: OnInvalid::DeadLetter,
        dead_letter_topic: None,
    };
    r.bind("orders", &binding).unwrap();
    let own = Binding {
        dead_letter_topic: Some("orders".into()),
        ..binding.clone()
    };
    assert!(
        r.bind("orders", &own).is_err(),
        "not its own dead-letter topic"
    );
    let bad_name = Binding {
        dead_letter_topic: Some("no/slashes".into()),
        ..binding.clone()
    };
    assert!(r.bind("orders", &bad_name).is_err());
    let compiled = r.bound("orders").unwrap();
    assert_eq!(compiled.dead_letter_topic.as_deref(), Some("orders.dlq"));
    let records = values(vec![
        framed(id, b"{}"),
        framed(id, br#"{"total": 1}"#),
        Some(b"plain".to_vec().into()),
    ]);
    let invalid = r.validate_with(&compiled, records, false);
    let at: Vec<usize> = invalid.iter().map(|i| i.index).collect();
    assert_eq!(at, [0, 2], "every invalid record, in order");

    drop(r);
    let r = open(dir.path());
    assert_eq!(r.binding("orders"), Some(binding.clone()), "after a reopen");
    r.log.rewrite().unwrap();
    drop(r);
    let r = open(dir.path());
    assert_eq!(r.binding("orders"), Some(binding), "after a rewrite");
    assert_eq!(
        r.bound("orders").unwrap().dead_letter_topic.as_deref(),
        Some("orders.dlq")
    );
}

#[test]
fn many_records_checked_by_several_threads_report_as_one_would() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    let order = json!({"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]});
    let id = r
        .register("orders-value", Kind::Json, &order.to_string())
        .unwrap()
        .id;
    let binding = Binding {
        value_subject: Some("orders-value".into()),
        mode: Mode::Full,
        ..Default::default()
    };
    r.bind("orders", &binding).unwrap();
    let bad = [7usize, 400, 401, 999];
    let payloads: Vec<Option<bytes::Bytes>> = (0..1000)
        .map(|i| match bad.contains(&i) {
            true => framed(id, br#"{"total": "many"}"#),
            false => framed(id, format!(r#"{{"total": {i}}}"#).as_bytes()),
        })
        .collect();
    let compiled = r.bound("orders").unwrap();
    let mut answers = Vec::new();
    for threads in [4, 1] {
        r.set_validation_threads(threads);
        let all = r.validate_with(&compiled, values(payloads.clone()), false);
        let at: Vec<usize> = all.iter().map(|i| i.index).collect();
        assert_eq!(at, bad, "every one, in request order ({threads} threads)");
        assert!(all.iter().all(|i| i.path == "/total"));
        let first = r.validate_with(&compiled, values(payloads.clone()), true);
        let at: Vec<usize> = first.iter().map(|i| i.index).collect();
        assert_eq!(at, [7], "the first only ({threads} threads)");
        answers.push((all, first));
    }
    assert_eq!(
        answers[0], answers[1],
        "threads change nothing of the answer"
    );
}

#[test]
fn a_reason_quoting_a_huge_value_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let r = open(dir.path());
    let schema = json!({"type": "object", "properties": {"s": {"type": "integer"}}});
    let id = r
        .register("big-value", Kind::Json, &schema.to_string())
        .unwrap()
        .id;
    r.bind(
        "big",
        &Binding {
            value_subject: Some("big-value".into()),
            mode: Mode::Full,
            ..Default::default()
        },
    )
    .unwrap();
    // The validator's message quotes the string: 100 KiB of "é".
    let payload = format!(r#"{{"s": "{}"}}"#, "é".repeat(50_000));
    let invalid = r
        .validate("big", values(vec![framed(id, payload.as_bytes())]))
        .unwrap_err();
    assert!(
        invalid.reason.len() <= 1024 + '…'.len_utf8(),
        "{}",
        invalid.reason.len()
    );
    assert!(invalid.reason.ends_with('…'));
    assert_eq!(invalid.path, "/s");
}
