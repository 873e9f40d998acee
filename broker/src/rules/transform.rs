//! A rule's input transform: fields picked from the event by JSON path
//! into a new object (EventBridge's `InputPathsMap`, without the template).

use brook_protocol::v1;
use serde_json::Value;

/// One step of a path: a field of an object or an element of an array.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Step {
    Field(String),
    Index(usize),
}

/// A path into an event: `$`, `$.a.b`, `$.items[0].id`.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Path(Vec<Step>);

impl Path {
    fn parse(text: &str) -> Result<Path, String> {
        let Some(mut rest) = text.strip_prefix('$') else {
            return Err(format!("path {text:?} must start with $"));
        };
        let mut steps = Vec::new();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                let end = after.find(['.', '[']).unwrap_or(after.len());
                if end == 0 {
                    return Err(format!("path {text:?} has an empty field name"));
                }
                steps.push(Step::Field(after[..end].to_string()));
                rest = &after[end..];
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after
                    .find(']')
                    .ok_or_else(|| format!("path {text:?} has a [ without ]"))?;
                let index = after[..end].parse().map_err(|_| {
                    format!("path {text:?}: [{}] is not an array index", &after[..end])
                })?;
                steps.push(Step::Index(index));
                rest = &after[end + 1..];
            } else {
                return Err(format!(
                    "path {text:?}: expected . or [ after {:?}",
                    &text[..text.len() - rest.len()]
                ));
            }
        }
        Ok(Path(steps))
    }

    fn find<'a>(&self, event: &'a Value) -> Option<&'a Value> {
        self.0.iter().try_fold(event, |at, step| match step {
            Step::Field(name) => at.get(name),
            Step::Index(i) => at.get(i),
        })
    }
}

/// A compiled input transform.
#[derive(Clone, Debug)]
pub struct Transform {
    fields: Vec<(String, Path)>,
}

impl Transform {
    /// Compiles a rule's transform: `None` passes the record's value as it
    /// is. Refuses a path that does not parse, an empty or repeated name.
    pub fn compile(spec: Option<&v1::InputTransform>) -> Result<Option<Transform>, String> {
        let Some(spec) = spec.filter(|t| !t.fields.is_empty()) else {
            return Ok(None);
        };
        let mut fields: Vec<(String, Path)> = Vec::with_capacity(spec.fields.len());
        for f in &spec.fields {
            if f.name.is_empty() {
                return Err(format!(
                    "transform field with path {:?} has no name",
                    f.path
                ));
            }
            if fields.iter().any(|(n, _)| *n == f.name) {
                return Err(format!("transform field {:?} is named twice", f.name));
            }
            fields.push((f.name.clone(), Path::parse(&f.path)?));
        }
        Ok(Some(Transform { fields }))
    }

    /// The event's top-level fields the transform reads, or `None` when
    /// it takes the whole event (`$`, or an index at the top).
    pub fn top_level_fields(&self) -> Option<Vec<&str>> {
        (self.fields.iter())
            .map(|(_, path)| match path.0.first() {
                Some(Step::Field(name)) => Some(name.as_str()),
                _ => None,
            })
            .collect()
    }

    /// The new event as JSON: each field's value found in `event`, in the
    /// transform's order; a path not in the event leaves its field out.
    pub fn apply(&self, event: &Value) -> Vec<u8> {
        // Written field by field: serde_json's map would sort the names.
        let mut out = b"{".to_vec();
        for (name, path) in &self.fields {
            if let Some(v) = path.find(event) {
                if out.len() > 1 {
                    out.push(b',');
                }
                let _ = serde_json::to_writer(&mut out, name);
                out.push(b':');
                let _ = serde_json::to_writer(&mut out, v);
            }
        }
        out.push(b'}');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transform(fields: &[(&str, &str)]) -> Result<Option<Transform>, String> {
        let spec = v1::InputTransform {
            fields: fields
                .iter()
                .map(|(n, p)| v1::TransformField {
                    name: n.to_string(),
                    path: p.to_string(),
                })
                .collect(),
        };
        Transform::compile(Some(&spec))
    }

    #[test]
    fn fields_are_picked_in_order_and_missing_ones_left_out() {
        let t = transform(&[
            ("order", "$.detail.orderId"),
            ("first", "$.detail.items[0].sku"),
            ("missing", "$.detail.nothing"),
            ("all", "$.source"),
        ])
        .unwrap()
        .unwrap();
        let event: Value = serde_json::from_str(
            r#"{"source":"shop","detail":{"orderId":"o-1","items":[{"sku":"a"},{"sku":"b"}]}}"#,
        )
        .unwrap();
        let out = String::from_utf8(t.apply(&event)).unwrap();
        assert_eq!(out, r#"{"order":"o-1","first":"a","all":"shop"}"#);
        assert_eq!(
            t.top_level_fields(),
            Some(vec!["detail", "detail", "detail", "source"])
        );
        let whole = transform(&[("event", "$")]).unwrap().unwrap();
        assert_eq!(whole.top_level_fields(), None);
        let out: Value = serde_json::from_slice(&whole.apply(&event)).unwrap();
        assert_eq!(out["event"], event);
    }

    #[test]
    fn no_fields_pass_the_value_and_bad_specs_are_refused_with_why() {
        assert!(transform(&[]).unwrap().is_none());
        assert!(Transform::compile(None).unwrap().is_none());
        for (spec, why) in [
            (("a", "detail.id"), "must start with $"),
            (("a", "$.detail..id"), "empty field name"),
            (("a", "$.items[x]"), "not an array index"),
            (("a", "$.items[0"), "without ]"),
            (("", "$.a"), "has no name"),
        ] {
            let err = transform(&[spec]).unwrap_err();
            assert!(err.contains(why), "{err}");
        }
        let err = transform(&[("a", "$.x"), ("a", "$.y")]).unwrap_err();
        assert!(err.contains("named twice"), "{err}");
    }
}
