//! A record's value as the event rules match: parsed once per record for
//! every rule of a source partition, and only as far as they need.
//!
//! An event is mostly fields no pattern names (a large `detail`, say):
//! when the rules name their top-level fields and no transform takes the
//! whole event, only those fields are built into values; the rest are
//! read without allocating. They are still read as strictly as a whole
//! parse would (numbers in range, strings valid, nesting bounded): which
//! events a rule selects must not depend on what the other rules read.

use std::collections::BTreeSet;
use std::fmt;

use bytes::Bytes;
use serde::de::{Deserialize, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};

/// Which top-level fields to build: `None` means all of them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Needed(pub Option<BTreeSet<String>>);

impl Needed {
    /// Nothing yet: add what each rule needs.
    pub fn none() -> Needed {
        Needed(Some(BTreeSet::new()))
    }

    /// Adds the fields one rule needs (`None`: every field).
    pub fn add<'a>(&mut self, fields: Option<impl IntoIterator<Item = &'a str>>) {
        match (&mut self.0, fields) {
            (Some(set), Some(fields)) => set.extend(fields.into_iter().map(str::to_string)),
            (_, None) => self.0 = None,
            (None, Some(_)) => {}
        }
    }
}

/// The event of a record's value: a JSON object with the needed fields,
/// or `Null` when the value is not a JSON object.
pub fn parse(value: Option<&Bytes>, needed: &Needed) -> Value {
    let Some(v) = value else {
        return Value::Null;
    };
    let parsed = match &needed.0 {
        None => serde_json::from_slice(v).ok(),
        Some(fields) => {
            let mut de = serde_json::Deserializer::from_slice(v);
            let seed = Selective(fields);
            seed.deserialize(&mut de).ok().filter(|_| de.end().is_ok())
        }
    };
    parsed.unwrap_or(Value::Null)
}

/// Deserializes a top-level object keeping only `fields`.
struct Selective<'a>(&'a BTreeSet<String>);

impl<'de> DeserializeSeed<'de> for Selective<'_> {
    type Value = Value;

    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for Selective<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            if self.0.contains(key.as_ref()) {
                out.insert(key.into_owned(), map.next_value()?);
            } else {
                map.next_value::<Checked>()?;
            }
        }
        Ok(Value::Object(out))
    }

    // Not an object: no field to match, as for a value that is not JSON.
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Value::Null)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_str<E>(self, _: &str) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
}

/// A value read and dropped through the same paths a `Value` is built
/// by, unlike serde's `IgnoredAny`, which serde_json skips without
/// checking numbers' range, escapes or depth.
struct Checked;

impl<'de> Deserialize<'de> for Checked {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Checked, D::Error> {
        d.deserialize_any(CheckedVisitor)
    }
}

struct CheckedVisitor;

impl<'de> Visitor<'de> for CheckedVisitor {
    type Value = Checked;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Checked, A::Error> {
        while map.next_entry::<Checked, Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Checked, A::Error> {
        while seq.next_element::<Checked>()?.is_some() {}
        Ok(Checked)
    }

    fn visit_bool<E>(self, _: bool) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_i64<E>(self, _: i64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_u64<E>(self, _: u64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_f64<E>(self, _: f64) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_str<E>(self, _: &str) -> Result<Checked, E> {
        Ok(Checked)
    }

    fn visit_unit<E>(self) -> Result<Checked, E> {
        Ok(Checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn needed(fields: &[&str]) -> Needed {
        let mut n = Needed::none();
        n.add(Some(fields.iter().copied()));
        n
    }

    #[test]
    fn only_the_needed_fields_are_built_and_the_rest_is_still_checked() {
        let v = Bytes::from_static(
            br#"{"source":"shop","detail":{"big":[1,2,{"x":"y"}]},"detail-type":"OrderPlaced","n":1.5}"#,
        );
        let e = parse(Some(&v), &needed(&["source", "detail-type"]));
        assert_eq!(
            e,
            serde_json::json!({"source": "shop", "detail-type": "OrderPlaced"})
        );
        let all = parse(Some(&v), &Needed(None));
        assert_eq!(all["detail"]["big"][2]["x"], "y");
        // Invalid JSON anywhere, trailing bytes, or not an object: no fields.
        for bad in [
            &br#"{"source":"shop","detail":{"#[..],
            br#"{"source":"shop"} x"#,
            br#"[1,2]"#,
            br#""text""#,
            b"not json",
        ] {
            let v = Bytes::copy_from_slice(bad);
            assert_eq!(
                parse(Some(&v), &needed(&["source"])),
                Value::Null,
                "{bad:?}"
            );
        }
        assert_eq!(parse(None, &needed(&["source"])), Value::Null);
    }

    #[test]
    fn a_field_not_read_is_checked_as_a_whole_parse_checks_it() {
        let deep = format!("{}1{}", "[".repeat(200), "]".repeat(200));
        for bad in [
            r#"{"source":"a","x":1e400}"#.to_string(),
            r#"{"source":"a","x":"\ud800"}"#.to_string(),
            format!(r#"{{"source":"a","x":{deep}}}"#),
        ] {
            let v = Bytes::from(bad.clone());
            let whole = parse(Some(&v), &Needed(None));
            let some = parse(Some(&v), &needed(&["source"]));
            assert_eq!(whole, Value::Null, "{bad}");
            assert_eq!(some, Value::Null, "{bad}");
        }
    }

    #[test]
    fn needing_everything_wins_over_field_lists() {
        let mut n = needed(&["a"]);
        n.add(Some(["b"]));
        assert_eq!(n, needed(&["a", "b"]));
        n.add(None::<Vec<&str>>);
        n.add(Some(["c"]));
        assert_eq!(n, Needed(None));
    }
}
