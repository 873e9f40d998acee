//! Compiling a pattern from its JSON: every operator's arguments checked,
//! every refusal naming its place in the pattern.

use serde_json::{Map, Number, Value};

use super::*;

/// Compiles a pattern, counting its values against [`MAX_MATCHERS`].
pub(super) struct Parser {
    pub(super) matchers: usize,
}

impl Parser {
    fn spend(&mut self, n: usize, at: &str) -> Result<(), PatternError> {
        self.matchers = self.matchers.saturating_add(n);
        if self.matchers > MAX_MATCHERS {
            return Err(error(
                at,
                format!(
                    "the pattern has more than {MAX_MATCHERS} values to match; split it into several patterns"
                ),
            ));
        }
        Ok(())
    }

    pub(super) fn node(
        &mut self,
        value: &Value,
        path: &str,
        depth: usize,
        in_or: bool,
    ) -> Result<Node, PatternError> {
        if depth > MAX_DEPTH {
            return Err(error(
                path,
                format!("the pattern nests objects more than {MAX_DEPTH} levels deep"),
            ));
        }
        let Value::Object(map) = value else {
            return Err(error(
                path,
                format!("expected an object of fields, found {}", kind(value)),
            ));
        };
        if map.is_empty() {
            return Err(error(path, "empty objects are not allowed"));
        }
        let mut node = Node {
            fields: Vec::with_capacity(map.len()),
            or: Vec::new(),
        };
        for (key, value) in map {
            let at = join(path, key);
            if key == OR {
                node.or = self.alternatives(value, &at, depth)?;
                continue;
            }
            if in_or && OPERATORS.contains(&key.as_str()) {
                return Err(error(
                    &at,
                    format!(
                        "{key:?} is an operator and cannot be a field name inside $or; write the field's name, then [{{{key:?}: ...}}]"
                    ),
                ));
            }
            let test = match value {
                Value::Array(items) => Test::Leaf(self.leaf(items, &at)?),
                Value::Object(_) => Test::Nested(self.node(value, &at, depth + 1, in_or)?),
                other => {
                    return Err(error(
                        &at,
                        format!(
                            "must be an array of values to match, such as [{}], or an object of nested fields; found {}",
                            show(other),
                            kind(other)
                        ),
                    ));
                }
            };
            node.fields.push(Field {
                name: key.clone(),
                test,
            });
        }
        Ok(node)
    }

    fn alternatives(
        &mut self,
        value: &Value,
        path: &str,
        depth: usize,
    ) -> Result<Vec<Node>, PatternError> {
        let Value::Array(alternatives) = value else {
            return Err(error(
                path,
                format!(
                    "$or takes an array of at least two pattern objects, found {}",
                    kind(value)
                ),
            ));
        };
        if alternatives.len() < 2 {
            return Err(error(
                path,
                format!(
                    "$or needs at least two alternatives, found {}",
                    alternatives.len()
                ),
            ));
        }
        alternatives
            .iter()
            .enumerate()
            .map(|(i, alternative)| self.node(alternative, &index(path, i), depth + 1, true))
            .collect()
    }

    fn leaf(&mut self, items: &[Value], path: &str) -> Result<Leaf, PatternError> {
        if items.is_empty() {
            return Err(error(
                path,
                "empty arrays are not allowed: an array of values to match needs at least one",
            ));
        }
        let mut leaf = Leaf {
            strings: Vec::new(),
            matchers: Vec::new(),
            absent_ok: false,
            desc: String::new(),
        };
        let mut descs = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let at = index(path, i);
            self.spend(1, &at)?;
            match item {
                Value::String(s) => match s.parse::<IpAddr>() {
                    Ok(ip) => leaf.matchers.push(Matcher::Exact(Exact::Ip(ip))),
                    Err(_) => leaf.strings.push(s.clone()),
                },
                Value::Number(n) => leaf.matchers.push(Matcher::Exact(Exact::Num(Num::new(n)))),
                Value::Bool(b) => leaf.matchers.push(Matcher::Exact(Exact::Bool(*b))),
                Value::Null => leaf.matchers.push(Matcher::Exact(Exact::Null)),
                Value::Object(op) => {
                    let matcher = self.operator(op, &at)?;
                    if matches!(matcher, Matcher::Exists(false)) {
                        leaf.absent_ok = true;
                    }
                    leaf.matchers.push(matcher);
                }
                Value::Array(_) => {
                    return Err(error(
                        &at,
                        "a value to match must be a string, number, boolean, null or an operator object, not an array",
                    ));
                }
            }
            descs.push(describe(item));
        }
        leaf.strings.sort_unstable();
        leaf.strings.dedup();
        leaf.desc = match descs.as_slice() {
            [one] => one.clone(),
            _ => format!("one of {}", descs.join(", ")),
        };
        Ok(leaf)
    }

    fn operator(&mut self, op: &Map<String, Value>, path: &str) -> Result<Matcher, PatternError> {
        let mut entries = op.iter();
        let (Some((name, arg)), None) = (entries.next(), entries.next()) else {
            return Err(error(
                path,
                format!(
                    "an operator object has exactly one key, such as {{\"prefix\": \"abc\"}}; found {} keys",
                    op.len()
                ),
            ));
        };
        let at = join(path, name);
        match name.as_str() {
            "prefix" => match arg {
                Value::String(s) => Ok(Matcher::Prefix(s.clone())),
                Value::Object(inner) => Ok(Matcher::PrefixIgnoreCase(fold(ignore_case_arg(
                    inner, &at, "prefix",
                )?))),
                other => Err(error(
                    &at,
                    format!(
                        "prefix takes a string or {{\"equals-ignore-case\": \"...\"}}, found {}",
                        kind(other)
                    ),
                )),
            },
            "suffix" => match arg {
                Value::String(s) => Ok(Matcher::Suffix(s.clone())),
                Value::Object(inner) => Ok(Matcher::SuffixIgnoreCase(fold(ignore_case_arg(
                    inner, &at, "suffix",
                )?))),
                other => Err(error(
                    &at,
                    format!(
                        "suffix takes a string or {{\"equals-ignore-case\": \"...\"}}, found {}",
                        kind(other)
                    ),
                )),
            },
            "equals-ignore-case" => Ok(Matcher::EqualsIgnoreCase(fold(string_arg(
                arg,
                &at,
                "equals-ignore-case",
            )?))),
            "wildcard" => {
                let text = string_arg(arg, &at, "wildcard")?;
                Glob::parse(text)
                    .map(Matcher::Wildcard)
                    .map_err(|message| error(&at, message))
            }
            "anything-but" => self.anything_but(arg, &at).map(Matcher::AnythingBut),
            "numeric" => numeric(arg, &at).map(Matcher::Numeric),
            "exists" => match arg {
                Value::Bool(exists) => Ok(Matcher::Exists(*exists)),
                other => Err(error(
                    &at,
                    format!("exists takes true or false, found {}", kind(other)),
                )),
            },
            "cidr" => {
                let text = string_arg(arg, &at, "cidr")?;
                Cidr::parse(text)
                    .map(Matcher::Cidr)
                    .map_err(|message| error(&at, message))
            }
            other => Err(error(
                path,
                format!(
                    "unknown operator {other:?}; the operators are prefix, suffix, equals-ignore-case, wildcard, anything-but, numeric, exists and cidr"
                ),
            )),
        }
    }

    fn anything_but(&mut self, arg: &Value, at: &str) -> Result<AnythingBut, PatternError> {
        match arg {
            Value::String(s) => Ok(AnythingBut::Strings(vec![s.clone()])),
            Value::Number(n) => Ok(AnythingBut::Numbers(vec![comparable(n, at)?])),
            Value::Array(items) => {
                if items.is_empty() {
                    return Err(error(at, "anything-but needs at least one value"));
                }
                self.spend(items.len(), at)?;
                let mut strings = Vec::new();
                let mut numbers = Vec::new();
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => strings.push(s.clone()),
                        Value::Number(n) => numbers.push(comparable(n, &index(at, i))?),
                        other => {
                            return Err(error(
                                &index(at, i),
                                format!(
                                    "anything-but lists hold only strings or only numbers, found {}",
                                    kind(other)
                                ),
                            ));
                        }
                    }
                }
                if !strings.is_empty() && !numbers.is_empty() {
                    return Err(error(
                        at,
                        "anything-but lists hold only strings or only numbers, not both",
                    ));
                }
                if numbers.is_empty() {
                    strings.sort_unstable();
                    strings.dedup();
                    Ok(AnythingBut::Strings(strings))
                } else {
                    Ok(AnythingBut::Numbers(numbers))
                }
            }
            Value::Object(map) => {
                let mut entries = map.iter();
                let (Some((op, inner)), None) = (entries.next(), entries.next()) else {
                    return Err(error(
                        at,
                        "an anything-but object has exactly one key: prefix, suffix, equals-ignore-case or wildcard",
                    ));
                };
                let inner_at = join(at, op);
                match op.as_str() {
                    "prefix" | "suffix" => {
                        let values = self.string_list(inner, &inner_at, op)?;
                        if values.iter().any(String::is_empty) {
                            return Err(error(
                                &inner_at,
                                format!(
                                    "an empty {op} would exclude every string and is not allowed"
                                ),
                            ));
                        }
                        Ok(if op == "prefix" {
                            AnythingBut::Prefixes(values)
                        } else {
                            AnythingBut::Suffixes(values)
                        })
                    }
                    "equals-ignore-case" => {
                        let values = self.string_list(inner, &inner_at, op)?;
                        Ok(AnythingBut::IgnoreCase(
                            values.iter().map(String::as_str).map(fold).collect(),
                        ))
                    }
                    "wildcard" => {
                        let values = self.string_list(inner, &inner_at, op)?;
                        let globs = values
                            .iter()
                            .map(|v| Glob::parse(v).map_err(|message| error(&inner_at, message)))
                            .collect::<Result<Vec<_>, _>>()?;
                        Ok(AnythingBut::Wildcards(globs))
                    }
                    other => Err(error(
                        &inner_at,
                        format!(
                            "anything-but does not take {other:?}; it takes prefix, suffix, equals-ignore-case or wildcard"
                        ),
                    )),
                }
            }
            other => Err(error(
                at,
                format!(
                    "anything-but takes a string, a number, a list of strings or of numbers, or an object with prefix, suffix, equals-ignore-case or wildcard; found {}",
                    kind(other)
                ),
            )),
        }
    }

    /// A string, or a non-empty list of strings, as `anything-but`'s object
    /// forms take.
    fn string_list(
        &mut self,
        value: &Value,
        at: &str,
        op: &str,
    ) -> Result<Vec<String>, PatternError> {
        match value {
            Value::String(s) => Ok(vec![s.clone()]),
            Value::Array(items) if !items.is_empty() => {
                self.spend(items.len(), at)?;
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| match item {
                        Value::String(s) => Ok(s.clone()),
                        other => Err(error(
                            &index(at, i),
                            format!("{op} values must be strings, found {}", kind(other)),
                        )),
                    })
                    .collect()
            }
            other => Err(error(
                at,
                format!(
                    "{op} takes a string or a non-empty list of strings, found {}",
                    kind(other)
                ),
            )),
        }
    }
}

fn string_arg<'a>(value: &'a Value, at: &str, op: &str) -> Result<&'a str, PatternError> {
    match value {
        Value::String(s) => Ok(s.as_str()),
        other => Err(error(
            at,
            format!("{op} takes a string, found {}", kind(other)),
        )),
    }
}

/// The `{"equals-ignore-case": "..."}` that `prefix` and `suffix` accept.
fn ignore_case_arg<'a>(
    inner: &'a Map<String, Value>,
    at: &str,
    op: &str,
) -> Result<&'a str, PatternError> {
    let mut entries = inner.iter();
    match (entries.next(), entries.next()) {
        (Some((key, Value::String(s))), None) if key.as_str() == "equals-ignore-case" => {
            Ok(s.as_str())
        }
        _ => Err(error(
            at,
            format!("{op} takes a string or {{\"equals-ignore-case\": \"...\"}}"),
        )),
    }
}

/// A pattern number that must be compared numerically, so within ±5e9.
fn comparable(n: &Number, at: &str) -> Result<Num, PatternError> {
    let num = Num::new(n);
    if num.micros.is_none() {
        return Err(error(
            at,
            format!("{n} is outside the range EventBridge compares, -5e9 to 5e9"),
        ));
    }
    Ok(num)
}

/// `numeric`'s argument: one comparison (`["<", 10]`, `["=", 3]`) or a range
/// with its lower bound first (`[">", 0, "<=", 5]`), as EventBridge accepts.
fn numeric(arg: &Value, at: &str) -> Result<Range, PatternError> {
    let Value::Array(items) = arg else {
        return Err(error(
            at,
            format!(
                "numeric takes an array such as [\">\", 0, \"<=\", 5], found {}",
                kind(arg)
            ),
        ));
    };
    match items.as_slice() {
        [op, n] => {
            let op_at = index(at, 0);
            let op = comparison(op, &op_at)?;
            let value = bound(n, &index(at, 1))?;
            let inclusive = |at| {
                Some(Bound {
                    at,
                    inclusive: true,
                })
            };
            let exclusive = |at| {
                Some(Bound {
                    at,
                    inclusive: false,
                })
            };
            match op {
                "=" => Ok(Range {
                    low: inclusive(value),
                    high: inclusive(value),
                }),
                ">" => Ok(Range {
                    low: exclusive(value),
                    high: None,
                }),
                ">=" => Ok(Range {
                    low: inclusive(value),
                    high: None,
                }),
                "<" => Ok(Range {
                    low: None,
                    high: exclusive(value),
                }),
                "<=" => Ok(Range {
                    low: None,
                    high: inclusive(value),
                }),
                other => Err(error(
                    &op_at,
                    format!("unknown comparison {other:?}; the comparisons are =, <, <=, > and >="),
                )),
            }
        }
        [low_op, low, high_op, high] => {
            let low_at = index(at, 0);
            let high_at = index(at, 2);
            let low_op = comparison(low_op, &low_at)?;
            let low = bound(low, &index(at, 1))?;
            let high_op = comparison(high_op, &high_at)?;
            let high = bound(high, &index(at, 3))?;
            let low = match low_op {
                ">" => Bound {
                    at: low,
                    inclusive: false,
                },
                ">=" => Bound {
                    at: low,
                    inclusive: true,
                },
                other => {
                    return Err(error(
                        &low_at,
                        format!("a range starts with > or >=, found {other:?}"),
                    ));
                }
            };
            let high = match high_op {
                "<" => Bound {
                    at: high,
                    inclusive: false,
                },
                "<=" => Bound {
                    at: high,
                    inclusive: true,
                },
                other => {
                    return Err(error(
                        &high_at,
                        format!("a range ends with < or <=, found {other:?}"),
                    ));
                }
            };
            if low.at > high.at || (low.at == high.at && !(low.inclusive && high.inclusive)) {
                return Err(error(
                    at,
                    "the range is empty: its lower bound is not below its upper bound",
                ));
            }
            Ok(Range {
                low: Some(low),
                high: Some(high),
            })
        }
        _ => Err(error(
            at,
            format!(
                "numeric takes one comparison such as [\"<\", 10] or a range such as [\">\", 0, \"<=\", 5], found {} elements",
                items.len()
            ),
        )),
    }
}

fn comparison<'a>(value: &'a Value, at: &str) -> Result<&'a str, PatternError> {
    match value {
        Value::String(op) => Ok(op.as_str()),
        other => Err(error(
            at,
            format!(
                "expected a comparison (=, <, <=, > or >=), found {}",
                kind(other)
            ),
        )),
    }
}

fn bound(value: &Value, at: &str) -> Result<i64, PatternError> {
    match value {
        Value::Number(n) => comparable(n, at)?.micros.ok_or_else(|| {
            error(
                at,
                format!("{n} is outside the range EventBridge compares, -5e9 to 5e9"),
            )
        }),
        other => Err(error(
            at,
            format!("expected a number, found {}", kind(other)),
        )),
    }
}
