//! Routing rules inside the broker (`brook.v1.Rules`, docs/rules.md)
//! against a real broker: a rule reads its source topic, selects the
//! records whose JSON value (with the key as `$key` and the headers as
//! `$headers`) matches its EventBridge pattern, and writes each to every
//! target topic with its key, timestamp and headers kept and its provenance
//! added, exactly once across `kill -9`, partitioned by key. Rules are
//! durable; they pause, resume, fail on a missing target and resume after
//! it is back; DescribeRule, ListRules, the metrics and the `brook rule`
//! commands show them; bad definitions are refused with their reasons.

use std::collections::{BTreeMap, BTreeSet};

use brook_protocol::batch::Record;
use brook_protocol::partitioner::partition_for_key;
use brook_protocol::v1;
use brook_tests::queue::now_ms;
use brook_tests::{
    Broker, brook_cli, create_topic, describe_topic, error_metadata, eventually, fetch_batches,
    reason,
};
use bytes::Bytes;
use serde_json::{Value, json};
use tonic::Code;
use tonic::transport::Channel;

const RUNNING: i32 = v1::RuleState::Running as i32;
const PAUSED: i32 = v1::RuleState::Paused as i32;
const FAILED: i32 = v1::RuleState::Failed as i32;

const PLACED: &str = r#"{"detail-type":["OrderPlaced"]}"#;
const CANCELLED: &str = r#"{"detail-type":["OrderCancelled"]}"#;

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// The `brook.v1.Rules` service of `b`, on a new connection.
async fn rules(b: &Broker) -> v1::rules_client::RulesClient<Channel> {
    v1::rules_client::RulesClient::new(b.channel().await)
}

/// A rule's definition, starting where the broker starts by default
/// (RULE_START_UNSPECIFIED), with no transform.
fn rule(name: &str, source: &str, pattern: &str, targets: &[&str]) -> v1::RuleDefinition {
    v1::RuleDefinition {
        name: name.into(),
        source_topic: source.into(),
        event_pattern: pattern.into(),
        targets: targets.iter().map(|t| t.to_string()).collect(),
        transform: None,
        start: v1::RuleStart::Unspecified as i32,
    }
}

/// `d` starting at the first record of its source.
fn from_earliest(mut d: v1::RuleDefinition) -> v1::RuleDefinition {
    d.start = v1::RuleStart::Earliest as i32;
    d
}

/// `d` with an input transform of `(name, path)` fields.
fn transformed(mut d: v1::RuleDefinition, fields: &[(&str, &str)]) -> v1::RuleDefinition {
    d.transform = Some(v1::InputTransform {
        fields: fields
            .iter()
            .map(|(name, path)| v1::TransformField {
                name: name.to_string(),
                path: path.to_string(),
            })
            .collect(),
    });
    d
}

fn create_request(d: v1::RuleDefinition) -> v1::CreateRuleRequest {
    v1::CreateRuleRequest { rule: Some(d) }
}

/// Creates a rule, failing the test if it is refused.
async fn create_rule(b: &Broker, d: v1::RuleDefinition) -> v1::RuleDescription {
    let name = d.name.clone();
    rules(b)
        .await
        .create_rule(create_request(d))
        .await
        .unwrap_or_else(|e| panic!("creating rule {name}: {e:?}"))
        .into_inner()
}

/// DescribeRule, failing the test on an error.
async fn describe(b: &Broker, name: &str) -> v1::RuleDescription {
    rules(b)
        .await
        .describe_rule(v1::DescribeRuleRequest { name: name.into() })
        .await
        .unwrap_or_else(|e| panic!("describing rule {name}: {e:?}"))
        .into_inner()
}

/// The names ListRules answers for `source` (every rule if empty), sorted.
async fn listed(b: &Broker, source: &str) -> Vec<String> {
    let mut names: Vec<String> = rules(b)
        .await
        .list_rules(v1::ListRulesRequest {
            source_topic: source.into(),
        })
        .await
        .expect("list rules")
        .into_inner()
        .rules
        .into_iter()
        .map(|d| d.rule.expect("a listed rule has its definition").name)
        .collect();
    names.sort();
    names
}

/// Polls DescribeRule (with the harness's deadline) until `done` holds;
/// the description that satisfied it. Errors count as "not yet" (a broker
/// just restarted).
async fn wait_for_rule(
    b: &Broker,
    name: &str,
    what: &str,
    done: impl Fn(&v1::RuleDescription) -> bool,
) -> v1::RuleDescription {
    let mut client = rules(b).await;
    let mut last = None;
    eventually(&format!("rule {name}: {what}"), async || {
        let Ok(d) = client
            .describe_rule(v1::DescribeRuleRequest { name: name.into() })
            .await
        else {
            return false;
        };
        let d = d.into_inner();
        let ok = done(&d);
        last = Some(d);
        ok
    })
    .await;
    last.expect("a description")
}

/// Waits until `name` runs with no lag and has forwarded at least
/// `forwarded` records, then checks it forwarded exactly that many.
async fn caught_up(b: &Broker, name: &str, forwarded: u64) -> v1::RuleDescription {
    let d = wait_for_rule(
        b,
        name,
        &format!("running, lag 0, {forwarded} records forwarded"),
        |d| d.state == RUNNING && d.lag == 0 && d.forwarded >= forwarded,
    )
    .await;
    assert_eq!(d.forwarded, forwarded, "no more than that: {d:?}");
    d
}

/// Each source partition's position, by partition.
fn positions(d: &v1::RuleDescription) -> BTreeMap<u32, u64> {
    d.partitions
        .iter()
        .map(|p| (p.partition, p.position))
        .collect()
}

/// The sum of the source partitions' log end offsets a description shows.
fn log_end(d: &v1::RuleDescription) -> u64 {
    d.partitions.iter().map(|p| p.log_end_offset).sum()
}

/// The lag a description shows is the sum of its partitions', and each
/// partition's is its log end minus its position.
fn assert_lag_adds_up(d: &v1::RuleDescription) {
    for p in &d.partitions {
        assert!(p.position <= p.log_end_offset, "{p:?}");
        assert_eq!(p.lag, p.log_end_offset - p.position, "{p:?}");
    }
    assert_eq!(
        d.lag,
        d.partitions.iter().map(|p| p.lag).sum::<u64>(),
        "{d:?}"
    );
}

/// The status a call was refused with, checked: its code and (when given)
/// its machine-readable reason.
fn refused<T: std::fmt::Debug>(
    answer: Result<tonic::Response<T>, tonic::Status>,
    code: Code,
    why: Option<&str>,
) -> tonic::Status {
    let status = match answer {
        Ok(r) => panic!("expected {code:?} ({why:?}), got {:?}", r.into_inner()),
        Err(s) => s,
    };
    assert_eq!(status.code(), code, "{status:?}");
    if let Some(why) = why {
        assert_eq!(reason(&status).as_deref(), Some(why), "{status:?}");
    }
    status
}

/// A record published to a source topic, and where it was stored.
#[derive(Clone, Debug)]
struct Sent {
    key: Option<String>,
    value: String,
    headers: Vec<(String, String)>,
    timestamp: i64,
    partition: u32,
    offset: u64,
}

/// An event to publish; [`publish`] fills in its timestamp and place.
fn event(key: Option<&str>, value: Value, headers: &[(&str, &str)]) -> Sent {
    Sent {
        key: key.map(str::to_string),
        value: value.to_string(),
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        timestamp: 0,
        partition: 0,
        offset: 0,
    }
}

/// An EventBridge-shaped order event.
fn order(kind: &str, order_id: &str, seq: usize) -> Value {
    json!({
        "source": "order-service",
        "detail-type": kind,
        "detail": {"orderId": order_id, "seq": seq},
    })
}

/// The `detail-type` of a JSON value.
fn kind_of(value: &[u8]) -> String {
    let v: Value = serde_json::from_slice(value).expect("a JSON value");
    v["detail-type"].as_str().unwrap_or_default().to_string()
}

/// How many of `sent` are of `kind` (their `detail-type`).
fn count_kind(sent: &[Sent], kind: &str) -> u64 {
    sent.iter()
        .filter(|s| kind_of(s.value.as_bytes()) == kind)
        .count() as u64
}

/// Publishes `events` to `topic` in one request (routed by key, keyless
/// ones round-robin) with timestamps of their own, ten minutes in the past
/// (not the broker's clock, so that a kept timestamp shows); the events
/// with their timestamps and places.
async fn publish(b: &Broker, topic: &str, events: Vec<Sent>) -> Vec<Sent> {
    let base = now_ms() - 600_000;
    let records = events
        .iter()
        .enumerate()
        .map(|(i, e)| v1::PublishRecord {
            key: e.key.clone().map(Bytes::from),
            value: Some(Bytes::from(e.value.clone())),
            headers: e
                .headers
                .iter()
                .map(|(k, v)| v1::Header {
                    key: k.clone(),
                    value: Bytes::from(v.clone()),
                })
                .collect(),
            timestamp_ms: Some(base + i as i64),
        })
        .collect();
    let positions = b
        .producer()
        .await
        .publish(v1::PublishRequest {
            topic: topic.into(),
            records,
            acks: v1::Acks::Written as i32,
        })
        .await
        .expect("publish")
        .into_inner()
        .positions;
    assert_eq!(positions.len(), events.len());
    events
        .into_iter()
        .zip(positions)
        .enumerate()
        .map(|(i, (mut e, p))| {
            e.timestamp = base + i as i64;
            e.partition = p.partition;
            e.offset = p.offset;
            e
        })
        .collect()
}

/// Every record of every partition of `topic`, as stored, with its
/// partition: partition by partition, each in offset order.
async fn read_topic(b: &Broker, topic: &str) -> Vec<(u32, Record)> {
    let mut out = Vec::new();
    for p in describe_topic(b, topic).await.partitions {
        for batch in fetch_batches(b, topic, p.partition, p.log_start_offset).await {
            for r in batch.records() {
                let r = r.expect("a valid record");
                if r.offset >= p.log_start_offset {
                    out.push((p.partition, r));
                }
            }
        }
    }
    out
}

/// The value of `r`'s header `key`, as text.
fn header<'r>(r: &'r Record, key: &str) -> Option<&'r str> {
    r.headers
        .iter()
        .find(|h| h.key == key)
        .map(|h| std::str::from_utf8(&h.value).expect("a UTF-8 header value"))
}

/// Where a forwarded record came from: its `brook-source-partition` and
/// `brook-source-offset` headers.
fn source_of(r: &Record) -> (u32, u64) {
    let partition = header(r, "brook-source-partition")
        .unwrap_or_else(|| panic!("no brook-source-partition header: {r:?}"))
        .parse()
        .expect("a decimal partition");
    let offset = header(r, "brook-source-offset")
        .unwrap_or_else(|| panic!("no brook-source-offset header: {r:?}"))
        .parse()
        .expect("a decimal offset");
    (partition, offset)
}

/// Checks that `topic` holds exactly the records of `sent` (published to
/// `source`) for which `rule_for` names a rule, once each, and nothing
/// else: each with the rule's and the source's headers, the source record's
/// key, timestamp and headers (and value, if `value_kept`), in the
/// partition its key hashes to (keyless: source partition % partitions),
/// and the records of each key in source order. Returns what it read, in
/// partition then offset order, with the source record of each.
async fn assert_routed(
    b: &Broker,
    topic: &str,
    source: &str,
    sent: &[Sent],
    rule_for: impl Fn(&Sent) -> Option<&'static str>,
    value_kept: bool,
) -> Vec<(u32, Record, Sent)> {
    let partitions = describe_topic(b, topic).await.partitions.len() as u32;
    let by_source: BTreeMap<(u32, u64), &Sent> =
        sent.iter().map(|s| ((s.partition, s.offset), s)).collect();
    let mut seen: BTreeMap<(u32, u64), usize> = BTreeMap::new();
    let mut out = Vec::new();
    for (partition, r) in read_topic(b, topic).await {
        let at = source_of(&r);
        let s = *by_source.get(&at).unwrap_or_else(|| {
            panic!("{topic}: a record from {source} {at:?} not published by this test: {r:?}")
        });
        let rule = rule_for(s).unwrap_or_else(|| {
            panic!(
                "{topic}: source record {at:?} ({}) should not be here",
                s.value
            )
        });
        assert_eq!(header(&r, "brook-rule"), Some(rule), "{topic} {at:?}");
        assert_eq!(
            header(&r, "brook-source-topic"),
            Some(source),
            "{topic} {at:?}"
        );
        assert_eq!(
            r.key.as_deref(),
            s.key.as_deref().map(str::as_bytes),
            "{topic} {at:?}: the key is kept"
        );
        assert_eq!(
            r.timestamp, s.timestamp,
            "{topic} {at:?}: the timestamp is kept"
        );
        for (k, v) in &s.headers {
            assert_eq!(
                header(&r, k),
                Some(v.as_str()),
                "{topic} {at:?}: header {k} is kept"
            );
        }
        if value_kept {
            assert_eq!(
                r.value.as_deref(),
                Some(s.value.as_bytes()),
                "{topic} {at:?}: the value is passed unchanged"
            );
        }
        let want = match &s.key {
            Some(k) => partition_for_key(k.as_bytes(), partitions),
            None => s.partition % partitions,
        };
        assert_eq!(
            partition, want,
            "{topic}: the partition of source record {at:?} (key {:?})",
            s.key
        );
        *seen.entry(at).or_default() += 1;
        out.push((partition, r, s.clone()));
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).take(20).collect();
    assert!(
        twice.is_empty(),
        "{topic}: source records delivered more than once ((partition, offset), times), e.g. {twice:?}"
    );
    let expected: BTreeSet<(u32, u64)> = sent
        .iter()
        .filter(|&s| rule_for(s).is_some())
        .map(|s| (s.partition, s.offset))
        .collect();
    let got: BTreeSet<(u32, u64)> = seen.keys().copied().collect();
    let missing: Vec<_> = expected.difference(&got).collect();
    assert!(
        missing.is_empty(),
        "{topic}: {} of {} source records missing, e.g. {:?}",
        missing.len(),
        expected.len(),
        &missing[..missing.len().min(20)]
    );
    // Every record of a key is in one partition (checked above), so the
    // reading order is the target's order: it must be the source's.
    let mut last: BTreeMap<&str, u64> = BTreeMap::new();
    for (_, _, s) in &out {
        if let Some(k) = &s.key
            && let Some(before) = last.insert(k, s.offset)
        {
            assert!(
                before < s.offset,
                "{topic}: key {k}: source offset {} after {before}",
                s.offset
            );
        }
    }
    out
}

/// The value of the series `name{…,rule="rule",…}` on a /metrics page.
fn metric(page: &str, name: &str, rule: &str) -> Option<f64> {
    let label = format!("rule=\"{rule}\"");
    page.lines().find_map(|line| {
        let (series, value) = line.trim().rsplit_once(' ')?;
        let labels = series
            .strip_prefix(name)?
            .strip_prefix('{')?
            .strip_suffix('}')?;
        labels
            .split(',')
            .any(|l| l == label)
            .then(|| value.parse().ok())?
    })
}

/// A JSON object's fields in the order they were written (serde_json's
/// `Map` may sort them).
struct Fields(Vec<(String, serde_json::Value)>);

impl<'de> serde::Deserialize<'de> for Fields {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Fields, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = Fields;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<Fields, M::Error> {
                let mut fields = Vec::new();
                while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
                    fields.push(entry);
                }
                Ok(Fields(fields))
            }
        }
        d.deserialize_map(Visit)
    }
}

/// `brook` with `args` against `b`: success, stdout, stderr.
fn cli(b: &Broker, args: &[&str]) -> (bool, String, String) {
    let out = brook_cli(b, args, None);
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `brook` with `args` against `b`, which must succeed and print JSON.
fn cli_json(b: &Broker, args: &[&str]) -> Value {
    let (ok, out, err) = cli(b, args);
    assert!(ok, "brook {args:?} failed: {err}");
    serde_json::from_str(out.trim())
        .unwrap_or_else(|e| panic!("brook {args:?}: not JSON: {e}: {out}"))
}

/// The rule objects `brook rule list --json` printed: a JSON array, an
/// object with `rules`, or one object a line.
fn json_rules(out: &str) -> Vec<Value> {
    match serde_json::from_str::<Value>(out.trim()) {
        Ok(Value::Array(rules)) => rules,
        Ok(Value::Object(o)) if o.get("rules").is_some_and(Value::is_array) => {
            o["rules"].as_array().unwrap().clone()
        }
        Ok(one) => vec![one],
        Err(_) => out
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
            .collect(),
    }
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

/// The seed scenario: `events` carries EventBridge order events keyed by
/// order id; one rule routes OrderPlaced to `inventory` and `billing`,
/// another OrderCancelled to `inventory` only. Each target gets exactly its
/// events (none of the others, none twice), each order's in the order they
/// happened, in the partition its key hashes to, with key, value, timestamp
/// and headers kept and the rule and the source record named in headers.
/// DescribeRule counts one selected record with two targets as two
/// forwarded, and the metrics show the same counts and no lag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn order_events_reach_exactly_their_targets_in_per_order_order() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    create_topic(&b, "events", 3).await;
    create_topic(&b, "inventory", 2).await;
    create_topic(&b, "billing", 1).await;
    let placed = create_rule(
        &b,
        rule("orders-placed", "events", PLACED, &["inventory", "billing"]),
    )
    .await;
    assert_eq!(placed.state, RUNNING, "{placed:?}");
    assert_eq!(placed.partitions.len(), 3, "{placed:?}");
    create_rule(
        &b,
        rule("orders-cancelled", "events", CANCELLED, &["inventory"]),
    )
    .await;

    // Six orders, all placed; some shipped (no rule wants those), some
    // cancelled, and o-6 placed again after its cancellation.
    let script = [
        ("o-1", "OrderPlaced"),
        ("o-2", "OrderPlaced"),
        ("o-3", "OrderPlaced"),
        ("o-4", "OrderPlaced"),
        ("o-1", "OrderShipped"),
        ("o-2", "OrderCancelled"),
        ("o-5", "OrderPlaced"),
        ("o-6", "OrderPlaced"),
        ("o-4", "OrderCancelled"),
        ("o-3", "OrderShipped"),
        ("o-6", "OrderCancelled"),
        ("o-5", "OrderCancelled"),
        ("o-6", "OrderPlaced"),
    ];
    let events: Vec<Sent> = script
        .iter()
        .enumerate()
        .map(|(i, (id, kind))| {
            let correlation = format!("c-{i}");
            event(
                Some(*id),
                order(kind, id, i),
                &[("correlation-id", correlation.as_str())],
            )
        })
        .collect();
    // In two requests: the rules deliver the first while the second comes.
    let mut sent = publish(&b, "events", events[..6].to_vec()).await;
    sent.extend(publish(&b, "events", events[6..].to_vec()).await);

    let n_placed = count_kind(&sent, "OrderPlaced");
    let n_cancelled = count_kind(&sent, "OrderCancelled");
    assert_eq!((n_placed, n_cancelled), (7, 4), "the script");
    let d = caught_up(&b, "orders-placed", 2 * n_placed).await;
    assert_eq!(d.matched, n_placed, "{d:?}");
    assert_eq!(d.failed, 0, "{d:?}");
    assert!(d.reason.is_empty(), "a running rule has no reason: {d:?}");
    assert_lag_adds_up(&d);
    assert_eq!(log_end(&d), script.len() as u64, "{d:?}");
    let d = caught_up(&b, "orders-cancelled", n_cancelled).await;
    assert_eq!(d.matched, n_cancelled, "{d:?}");

    let inventory = assert_routed(
        &b,
        "inventory",
        "events",
        &sent,
        |s| match kind_of(s.value.as_bytes()).as_str() {
            "OrderPlaced" => Some("orders-placed"),
            "OrderCancelled" => Some("orders-cancelled"),
            _ => None,
        },
        true,
    )
    .await;
    let billing = assert_routed(
        &b,
        "billing",
        "events",
        &sent,
        |s| (kind_of(s.value.as_bytes()) == "OrderPlaced").then_some("orders-placed"),
        true,
    )
    .await;
    assert_eq!(billing.len() as u64, n_placed);
    // Each order's story, as inventory tells it.
    for id in ["o-1", "o-2", "o-3", "o-4", "o-5", "o-6"] {
        let told: Vec<String> = inventory
            .iter()
            .filter(|(_, r, _)| r.key.as_deref() == Some(id.as_bytes()))
            .map(|(_, r, _)| kind_of(r.value.as_deref().unwrap_or_default()))
            .collect();
        let happened: Vec<&str> = script
            .iter()
            .filter(|(k, kind)| *k == id && *kind != "OrderShipped")
            .map(|(_, kind)| *kind)
            .collect();
        assert_eq!(told, happened, "inventory's events of {id}");
    }

    eventually("the rules' metrics to show their counts", async || {
        let page = b.metrics_text().await;
        metric(&page, "brook_rule_matched_total", "orders-placed") == Some(n_placed as f64)
            && metric(&page, "brook_rule_forwarded_total", "orders-placed")
                == Some(2.0 * n_placed as f64)
            && metric(&page, "brook_rule_lag_records", "orders-placed") == Some(0.0)
            && metric(&page, "brook_rule_matched_total", "orders-cancelled")
                == Some(n_cancelled as f64)
            && metric(&page, "brook_rule_forwarded_total", "orders-cancelled")
                == Some(n_cancelled as f64)
            && metric(&page, "brook_rule_lag_records", "orders-cancelled") == Some(0.0)
    })
    .await;
}

/// The pattern sees more than the value: the record's key as `$key` and
/// its headers as `$headers` (a header contradicting the value decides). An
/// input transform writes a new JSON object of the fields named, in their
/// order, leaving out a path the event lacks (`$` is the whole event,
/// `[0]` an array element). A keyless record goes to (source partition %
/// target partitions). A rule starts at the end of its source by default
/// and at its first record with RULE_START_EARLIEST.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patterns_see_key_and_headers_transforms_reshape_and_the_start_decides_the_first_record() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    create_topic(&b, "events", 3).await;
    create_topic(&b, "placed", 2).await;
    create_topic(&b, "vip", 1).await;
    create_topic(&b, "replay", 1).await;
    let placed_header = [("type", "OrderPlaced")];
    let before = publish(
        &b,
        "events",
        vec![event(None, order("OrderPlaced", "o-0", 0), &placed_header)],
    )
    .await;

    let by_header = r#"{"$headers":{"type":["OrderPlaced"]}}"#;
    create_rule(
        &b,
        transformed(
            rule("by-header", "events", by_header, &["placed"]),
            &[
                ("id", "$.detail.orderId"),
                ("from", "$.source"),
                ("first", "$.detail.items[0]"),
                ("coupon", "$.detail.coupon"),
                ("event", "$"),
            ],
        ),
    )
    .await;
    create_rule(
        &b,
        rule(
            "by-key",
            "events",
            r#"{"$key":[{"prefix":"vip-"}]}"#,
            &["vip"],
        ),
    )
    .await;
    create_rule(
        &b,
        from_earliest(rule("replay", "events", by_header, &["replay"])),
    )
    .await;

    let with_items = json!({
        "source": "order-service",
        "detail-type": "OrderPlaced",
        "detail": {"orderId": "o-1", "items": ["apple", "pear"]},
    });
    let mut events = vec![
        event(Some("vip-1"), with_items, &placed_header),
        // The value says placed, the header says otherwise: the header decides.
        event(
            Some("reg-1"),
            order("OrderPlaced", "o-2", 2),
            &[("type", "OrderCancelled")],
        ),
    ];
    for i in 3..9 {
        events.push(event(
            None,
            order("OrderPlaced", &format!("o-{i}"), i),
            &placed_header,
        ));
    }
    events.push(event(Some("vip-2"), order("OrderCancelled", "o-9", 9), &[]));
    let after = publish(&b, "events", events).await;
    let all: Vec<Sent> = before.iter().chain(&after).cloned().collect();
    let has_placed_header = |s: &Sent| {
        s.headers
            .iter()
            .any(|(k, v)| k == "type" && v == "OrderPlaced")
    };

    caught_up(&b, "by-header", 7).await;
    caught_up(&b, "by-key", 2).await;
    caught_up(&b, "replay", 8).await;

    // by-header: the records published after it with the header, reshaped.
    let reshaped = assert_routed(
        &b,
        "placed",
        "events",
        &after,
        |s| has_placed_header(s).then_some("by-header"),
        false,
    )
    .await;
    assert_eq!(reshaped.len(), 7);
    for (_, r, s) in &reshaped {
        let source: Value = serde_json::from_str(&s.value).unwrap();
        let mut want = vec![
            ("id".to_string(), source["detail"]["orderId"].clone()),
            ("from".to_string(), json!("order-service")),
        ];
        if let Some(first) = source["detail"]["items"].get(0) {
            want.push(("first".to_string(), first.clone()));
        }
        want.push(("event".to_string(), source.clone()));
        let value = r.value.as_deref().expect("a transformed value");
        let Fields(got) = serde_json::from_slice::<Fields>(value).unwrap_or_else(|e| {
            panic!("not a JSON object: {e}: {}", String::from_utf8_lossy(value))
        });
        assert_eq!(
            got, want,
            "the fields named, in order, the missing ones left out"
        );
    }
    assert!(
        reshaped
            .iter()
            .any(|(_, r, _)| header(r, "type") == Some("OrderPlaced")
                && r.key.as_deref() == Some(&b"vip-1"[..])),
        "the keyed record is there, headers kept"
    );
    // by-key: the keys starting with vip-, whatever the headers.
    assert_routed(
        &b,
        "vip",
        "events",
        &after,
        |s| {
            s.key
                .as_deref()
                .is_some_and(|k| k.starts_with("vip-"))
                .then_some("by-key")
        },
        true,
    )
    .await;
    // replay: from the first record, the one published before it too.
    let replayed = assert_routed(
        &b,
        "replay",
        "events",
        &all,
        |s| has_placed_header(s).then_some("replay"),
        true,
    )
    .await;
    assert!(
        replayed
            .iter()
            .any(|(_, _, s)| (s.partition, s.offset) == (before[0].partition, before[0].offset)),
        "RULE_START_EARLIEST selects what was there before the rule"
    );
}

/// DescribeRule and ListRules (filtered by source topic) show rules; a
/// paused rule forwards nothing (its positions stay while the log ends
/// grow, and the lag and the metric show the backlog); resumed, it delivers
/// the backlog once. A deleted rule is gone (NOT_FOUND / RULE_NOT_FOUND for
/// every method), what it delivered stays, and a new rule of its name
/// starts afresh at the end of the topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_list_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    create_topic(&b, "orders", 2).await;
    create_topic(&b, "shipping", 1).await;
    create_topic(&b, "payments", 1).await;
    create_topic(&b, "audit", 1).await;
    let created = create_rule(&b, rule("ship", "orders", PLACED, &["shipping"])).await;
    let (t0, t1) = (now_ms() - 60_000, now_ms() + 60_000);
    assert!(
        (t0..t1).contains(&created.created_ms),
        "created_ms is now: {created:?}"
    );
    create_rule(
        &b,
        rule(
            "audit-payments",
            "payments",
            r#"{"source":["payment-service"]}"#,
            &["audit"],
        ),
    )
    .await;
    assert_eq!(listed(&b, "").await, ["audit-payments", "ship"]);
    assert_eq!(listed(&b, "orders").await, ["ship"]);
    assert_eq!(listed(&b, "payments").await, ["audit-payments"]);
    assert!(listed(&b, "shipping").await.is_empty());

    let orders = |from: usize, placed: usize, cancelled: usize| -> Vec<Sent> {
        let one = |i: usize, kind: &str| {
            let id = format!("o-{i}");
            event(Some(id.as_str()), order(kind, &id, i), &[])
        };
        (from..from + placed)
            .map(|i| one(i, "OrderPlaced"))
            .chain((from..from + cancelled).map(|i| one(i, "OrderCancelled")))
            .collect()
    };
    let is_placed = |s: &Sent| (kind_of(s.value.as_bytes()) == "OrderPlaced").then_some("ship");
    let mut sent = publish(&b, "orders", orders(0, 6, 2)).await;
    let d = caught_up(&b, "ship", 6).await;
    assert_eq!(d.matched, 6);
    assert_eq!(d.rule.as_ref().map(|r| r.name.as_str()), Some("ship"));

    let paused = rules(&b)
        .await
        .pause_rule(v1::PauseRuleRequest {
            name: "ship".into(),
        })
        .await
        .expect("pause")
        .into_inner();
    assert_eq!(paused.state, PAUSED, "{paused:?}");
    let held = positions(&paused);
    assert_eq!(
        held.values().sum::<u64>(),
        8,
        "everything looked at: {paused:?}"
    );

    sent.extend(publish(&b, "orders", orders(100, 4, 1)).await);
    let d = wait_for_rule(&b, "ship", "the log ends to show the new records", |d| {
        log_end(d) == 13
    })
    .await;
    assert_eq!(d.state, PAUSED, "{d:?}");
    assert_eq!(positions(&d), held, "a paused rule does not move: {d:?}");
    assert_eq!(d.lag, 5, "{d:?}");
    assert_lag_adds_up(&d);
    assert_eq!((d.matched, d.forwarded), (6, 6), "{d:?}");
    assert_eq!(
        read_topic(&b, "shipping").await.len(),
        6,
        "nothing new forwarded"
    );
    eventually("the lag metric to show the backlog", async || {
        let page = b.metrics_text().await;
        metric(&page, "brook_rule_lag_records", "ship") == Some(5.0)
    })
    .await;

    let resumed = rules(&b)
        .await
        .resume_rule(v1::ResumeRuleRequest {
            name: "ship".into(),
        })
        .await
        .expect("resume")
        .into_inner();
    assert_eq!(resumed.state, RUNNING, "{resumed:?}");
    let d = caught_up(&b, "ship", 10).await;
    assert_eq!(d.matched, 10);
    assert_routed(&b, "shipping", "orders", &sent, is_placed, true).await;

    rules(&b)
        .await
        .delete_rule(v1::DeleteRuleRequest {
            name: "ship".into(),
        })
        .await
        .expect("delete");
    let mut r = rules(&b).await;
    let gone = refused(
        r.describe_rule(v1::DescribeRuleRequest {
            name: "ship".into(),
        })
        .await,
        Code::NotFound,
        Some("RULE_NOT_FOUND"),
    );
    assert_eq!(error_metadata(&gone, "rule").as_deref(), Some("ship"));
    let name = || "ship".to_string();
    refused(
        r.pause_rule(v1::PauseRuleRequest { name: name() }).await,
        Code::NotFound,
        Some("RULE_NOT_FOUND"),
    );
    refused(
        r.resume_rule(v1::ResumeRuleRequest { name: name() }).await,
        Code::NotFound,
        Some("RULE_NOT_FOUND"),
    );
    refused(
        r.delete_rule(v1::DeleteRuleRequest { name: name() }).await,
        Code::NotFound,
        Some("RULE_NOT_FOUND"),
    );
    assert!(listed(&b, "orders").await.is_empty());
    assert_eq!(listed(&b, "").await, ["audit-payments"]);
    assert_eq!(
        read_topic(&b, "shipping").await.len(),
        10,
        "what the rule delivered stays"
    );

    // The name is free again; the new rule starts at the end (by default),
    // with nothing of the old one's position or counts.
    let again = create_rule(&b, rule("ship", "orders", PLACED, &["shipping"])).await;
    assert_eq!(
        (again.matched, again.forwarded, again.lag),
        (0, 0, 0),
        "{again:?}"
    );
    sent.extend(publish(&b, "orders", orders(200, 1, 1)).await);
    let d = caught_up(&b, "ship", 1).await;
    assert_eq!(d.matched, 1);
    let shipping = read_topic(&b, "shipping").await;
    assert_eq!(shipping.len(), 11, "one more, nothing again");
    let newest = &shipping.last().unwrap().1;
    let last_placed = sent.iter().rev().find(|&s| is_placed(s).is_some()).unwrap();
    assert_eq!(
        source_of(newest),
        (last_placed.partition, last_placed.offset)
    );
}

/// Rules are durable: after a restart each rule is there with its
/// definition, creation time, state, counts and positions; a running rule
/// goes on with what comes next and forwards nothing again; a paused one
/// stays paused and, resumed, delivers its backlog once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_survive_a_restart_and_continue_where_they_stopped() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    create_topic(&b, "events", 2).await;
    create_topic(&b, "copy-a", 1).await;
    create_topic(&b, "copy-b", 1).await;
    create_rule(&b, rule("to-a", "events", PLACED, &["copy-a"])).await;
    create_rule(
        &b,
        from_earliest(rule("to-b", "events", PLACED, &["copy-b"])),
    )
    .await;
    let orders = |from: usize, n: usize| -> Vec<Sent> {
        (from..from + n)
            .map(|i| {
                let id = format!("o-{}", i % 4);
                let kind = if i % 5 == 4 {
                    "OrderShipped"
                } else {
                    "OrderPlaced"
                };
                event(Some(id.as_str()), order(kind, &id, i), &[])
            })
            .collect()
    };
    let mut sent = publish(&b, "events", orders(0, 10)).await;
    caught_up(&b, "to-a", count_kind(&sent, "OrderPlaced")).await;
    caught_up(&b, "to-b", count_kind(&sent, "OrderPlaced")).await;
    rules(&b)
        .await
        .pause_rule(v1::PauseRuleRequest {
            name: "to-b".into(),
        })
        .await
        .expect("pause");
    let b_forwarded = count_kind(&sent, "OrderPlaced");
    sent.extend(publish(&b, "events", orders(10, 5)).await);
    let before_a = caught_up(&b, "to-a", count_kind(&sent, "OrderPlaced")).await;
    let before_b = wait_for_rule(&b, "to-b", "the log ends to show the new records", |d| {
        log_end(d) == 15
    })
    .await;
    assert_eq!(before_b.state, PAUSED);

    b.terminate();
    let b = Broker::start(dir.path(), &[]).await;

    let after_a = wait_for_rule(&b, "to-a", "known after the restart", |_| true).await;
    assert_eq!(after_a.rule, before_a.rule, "the definition");
    assert_eq!(after_a.created_ms, before_a.created_ms);
    assert_eq!(after_a.state, RUNNING, "{after_a:?}");
    assert_eq!(positions(&after_a), positions(&before_a), "{after_a:?}");
    assert_eq!(
        (after_a.matched, after_a.forwarded),
        (before_a.matched, before_a.forwarded),
        "the counts are kept"
    );
    let after_b = describe(&b, "to-b").await;
    assert_eq!(after_b.rule, before_b.rule, "the definition");
    assert_eq!(after_b.created_ms, before_b.created_ms);
    assert_eq!(after_b.state, PAUSED, "still paused: {after_b:?}");
    assert_eq!(positions(&after_b), positions(&before_b), "{after_b:?}");
    assert_eq!(after_b.forwarded, b_forwarded, "{after_b:?}");
    assert_eq!(listed(&b, "events").await, ["to-a", "to-b"]);

    sent.extend(publish(&b, "events", orders(15, 5)).await);
    caught_up(&b, "to-a", count_kind(&sent, "OrderPlaced")).await;
    let is_placed = |name: &'static str| {
        move |s: &Sent| (kind_of(s.value.as_bytes()) == "OrderPlaced").then_some(name)
    };
    assert_routed(&b, "copy-a", "events", &sent, is_placed("to-a"), true).await;
    let resumed = rules(&b)
        .await
        .resume_rule(v1::ResumeRuleRequest {
            name: "to-b".into(),
        })
        .await
        .expect("resume")
        .into_inner();
    assert_eq!(resumed.state, RUNNING);
    caught_up(&b, "to-b", count_kind(&sent, "OrderPlaced")).await;
    assert_routed(&b, "copy-b", "events", &sent, is_placed("to-b"), true).await;
}

/// Exactly once across crashes: a rule from the first record of a
/// three-partition source, with two targets (two and five partitions),
/// delivers 3,000 events (two in three match; several keys, some keyless)
/// published in chunks while the broker is killed with SIGKILL and
/// restarted after each of the first four, without waiting for delivery.
/// Once the lag is 0, every matching source record is in each target once
/// (no duplicate, no gap, by the source partition and offset headers),
/// nothing else is, each key's records are in source order in the
/// partition its key hashes to, and the counts are exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_matching_record_reaches_each_target_exactly_once_across_kill_9() {
    const TOTAL: usize = 3_000;
    const CHUNK: usize = 500;
    const PER_REQUEST: usize = 100;
    const KILLS: usize = 4;
    let dir = tempfile::tempdir().unwrap();
    let mut b = Broker::start(dir.path(), &[]).await;
    create_topic(&b, "events", 3).await;
    create_topic(&b, "inventory", 2).await;
    create_topic(&b, "billing", 5).await;
    let events: Vec<Sent> = (0..TOTAL)
        .map(|i| {
            let id = format!("order-{}", i % 17);
            let key = (i % 10 != 9).then_some(id.as_str());
            let kind = if i % 3 == 0 {
                "Heartbeat"
            } else {
                "OrderPlaced"
            };
            let correlation = format!("c-{i}");
            event(
                key,
                order(kind, &id, i),
                &[("correlation-id", correlation.as_str())],
            )
        })
        .collect();
    let mut sent = Vec::new();
    for (chunk, part) in events.chunks(CHUNK).enumerate() {
        for request in part.chunks(PER_REQUEST) {
            sent.extend(publish(&b, "events", request.to_vec()).await);
        }
        if chunk == 0 {
            create_rule(
                &b,
                from_earliest(rule(
                    "exactly-once",
                    "events",
                    PLACED,
                    &["inventory", "billing"],
                )),
            )
            .await;
        }
        if chunk < KILLS {
            b.kill9_in_place();
            b.restart().await;
        }
    }
    assert_eq!(sent.len(), TOTAL);
    let matching = count_kind(&sent, "OrderPlaced");

    let d = wait_for_rule(&b, "exactly-once", "every record looked at", |d| {
        d.state == RUNNING && d.lag == 0 && log_end(d) == TOTAL as u64
    })
    .await;
    assert_lag_adds_up(&d);
    let rule_for =
        |s: &Sent| (kind_of(s.value.as_bytes()) == "OrderPlaced").then_some("exactly-once");
    for target in ["inventory", "billing"] {
        let got = assert_routed(&b, target, "events", &sent, rule_for, true).await;
        assert_eq!(got.len() as u64, matching, "{target}");
    }
    assert_eq!(
        (d.matched, d.forwarded),
        (matching, 2 * matching),
        "the counts are exact across the crashes: {d:?}"
    );
}

/// A target that refuses a record stops the rule: deleting a target topic
/// while the rule runs, then publishing a matching record, makes the rule
/// RULE_STATE_FAILED with a reason naming the target, at the record it
/// could not deliver. Once the topic is back, ResumeRule runs it again and
/// it delivers from that record on: each target gets each record once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_target_fails_the_rule_and_resume_delivers_once_it_is_back() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    create_topic(&b, "events", 1).await;
    create_topic(&b, "inventory", 1).await;
    create_topic(&b, "billing", 1).await;
    create_rule(
        &b,
        rule("placed", "events", PLACED, &["inventory", "billing"]),
    )
    .await;
    let mut sent = publish(
        &b,
        "events",
        vec![event(Some("o-1"), order("OrderPlaced", "o-1", 1), &[])],
    )
    .await;
    caught_up(&b, "placed", 2).await;

    b.topics()
        .await
        .delete_topic(v1::DeleteTopicRequest {
            name: "billing".into(),
        })
        .await
        .expect("delete billing");
    sent.extend(
        publish(
            &b,
            "events",
            vec![
                event(Some("o-2"), order("OrderPlaced", "o-2", 2), &[]),
                event(Some("o-2"), order("Heartbeat", "o-2", 3), &[]),
                event(Some("o-3"), order("OrderPlaced", "o-3", 4), &[]),
            ],
        )
        .await,
    );
    let failed = wait_for_rule(&b, "placed", "failed", |d| d.state == FAILED).await;
    assert!(
        failed.reason.contains("billing"),
        "the reason names the target: {failed:?}"
    );
    assert!(failed.failed >= 1, "a refused delivery counts: {failed:?}");
    assert_eq!(
        positions(&failed),
        BTreeMap::from([(0, 1)]),
        "stopped at the record it could not deliver: {failed:?}"
    );
    // Pausing a failed rule keeps why it failed (twice: the second pause
    // changes nothing).
    for _ in 0..2 {
        let paused = rules(&b)
            .await
            .pause_rule(v1::PauseRuleRequest {
                name: "placed".into(),
            })
            .await
            .expect("pause")
            .into_inner();
        assert_eq!(paused.state, v1::RuleState::Paused as i32, "{paused:?}");
        assert_eq!(
            paused.reason,
            format!("paused by PauseRule after it failed: {}", failed.reason)
        );
    }

    create_topic(&b, "billing", 1).await;
    let resumed = rules(&b)
        .await
        .resume_rule(v1::ResumeRuleRequest {
            name: "placed".into(),
        })
        .await
        .expect("resume")
        .into_inner();
    assert_eq!(resumed.state, RUNNING, "{resumed:?}");
    let d = caught_up(&b, "placed", 6).await;
    assert!(d.reason.is_empty(), "running again, no reason: {d:?}");
    assert_eq!(d.matched, 3);
    let rule_for = |s: &Sent| (kind_of(s.value.as_bytes()) == "OrderPlaced").then_some("placed");
    assert_routed(&b, "inventory", "events", &sent, rule_for, true).await;
    // The new billing topic has what came after its predecessor was deleted.
    let billing = assert_routed(&b, "billing", "events", &sent[1..], rule_for, true).await;
    let offsets: Vec<u64> = billing.iter().map(|(_, _, s)| s.offset).collect();
    assert_eq!(offsets, [1, 3]);
}

/// CreateRule refuses what it must, each with its status and reason: an
/// invalid pattern (INVALID_PATTERN, naming the place in the pattern), a
/// name taken by another definition (RULE_EXISTS), a missing source or
/// target topic (TOPIC_NOT_FOUND, naming it), a target that is the source,
/// no target, a bad name or transform path (INVALID_ARGUMENT); the same
/// definition twice is the same rule. A rule no one created is
/// RULE_NOT_FOUND for every method, and nothing refused was created.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_definitions_are_refused_with_their_reasons_and_the_same_one_twice_is_one_rule() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    create_topic(&b, "events", 1).await;
    create_topic(&b, "inventory", 1).await;
    create_topic(&b, "billing", 1).await;
    let mut r = rules(&b).await;

    let mut good = rule("placed", "events", PLACED, &["inventory", "billing"]);
    good.start = v1::RuleStart::Latest as i32;
    let first = r
        .create_rule(create_request(good.clone()))
        .await
        .expect("created")
        .into_inner();
    assert_eq!(first.rule.as_ref(), Some(&good), "{first:?}");
    assert_eq!(first.state, RUNNING, "{first:?}");
    let again = r
        .create_rule(create_request(good.clone()))
        .await
        .expect("the same definition again is answered with the rule")
        .into_inner();
    assert_eq!(again.rule, first.rule);
    assert_eq!(
        again.created_ms, first.created_ms,
        "the same rule, not a new one"
    );

    let mut other = good.clone();
    other.targets = vec!["inventory".into()];
    let taken = refused(
        r.create_rule(create_request(other)).await,
        Code::AlreadyExists,
        Some("RULE_EXISTS"),
    );
    assert_eq!(error_metadata(&taken, "rule").as_deref(), Some("placed"));

    let bad = refused(
        r.create_rule(create_request(rule(
            "bad-numeric",
            "events",
            r#"{"detail":{"total":[{"numeric":["~",1]}]}}"#,
            &["inventory"],
        )))
        .await,
        Code::InvalidArgument,
        Some("INVALID_PATTERN"),
    );
    assert!(bad.message().contains("detail.total"), "{bad:?}");
    assert!(
        error_metadata(&bad, "path").is_some_and(|p| p.starts_with("detail.total")),
        "{bad:?}"
    );
    let bad = refused(
        r.create_rule(create_request(rule(
            "bad-leaf",
            "events",
            r#"{"source":"order-service"}"#,
            &["inventory"],
        )))
        .await,
        Code::InvalidArgument,
        Some("INVALID_PATTERN"),
    );
    assert!(bad.message().contains("source"), "{bad:?}");
    refused(
        r.create_rule(create_request(rule(
            "bad-json",
            "events",
            "not json",
            &["inventory"],
        )))
        .await,
        Code::InvalidArgument,
        Some("INVALID_PATTERN"),
    );

    let missing = refused(
        r.create_rule(create_request(rule(
            "x-source",
            "nope",
            PLACED,
            &["inventory"],
        )))
        .await,
        Code::NotFound,
        Some("TOPIC_NOT_FOUND"),
    );
    assert_eq!(error_metadata(&missing, "topic").as_deref(), Some("nope"));
    let missing = refused(
        r.create_rule(create_request(rule(
            "x-target",
            "events",
            PLACED,
            &["inventory", "gone"],
        )))
        .await,
        Code::NotFound,
        Some("TOPIC_NOT_FOUND"),
    );
    assert_eq!(error_metadata(&missing, "topic").as_deref(), Some("gone"));
    refused(
        r.create_rule(create_request(rule(
            "x-loop",
            "events",
            PLACED,
            &["inventory", "events"],
        )))
        .await,
        Code::InvalidArgument,
        None,
    );
    refused(
        r.create_rule(create_request(rule("x-none", "events", PLACED, &[])))
            .await,
        Code::InvalidArgument,
        None,
    );
    let long = "r".repeat(201);
    for name in ["", "no spaces!", long.as_str()] {
        refused(
            r.create_rule(create_request(rule(name, "events", PLACED, &["inventory"])))
                .await,
            Code::InvalidArgument,
            None,
        );
    }
    refused(
        r.create_rule(create_request(transformed(
            rule("x-path", "events", PLACED, &["inventory"]),
            &[("id", "detail.orderId")],
        )))
        .await,
        Code::InvalidArgument,
        None,
    );

    let nobody = || "nobody".to_string();
    for answer in [
        r.describe_rule(v1::DescribeRuleRequest { name: nobody() })
            .await
            .map(|_| ()),
        r.pause_rule(v1::PauseRuleRequest { name: nobody() })
            .await
            .map(|_| ()),
        r.resume_rule(v1::ResumeRuleRequest { name: nobody() })
            .await
            .map(|_| ()),
        r.delete_rule(v1::DeleteRuleRequest { name: nobody() })
            .await
            .map(|_| ()),
    ] {
        let status = answer.expect_err("no rule named nobody");
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert_eq!(
            reason(&status).as_deref(),
            Some("RULE_NOT_FOUND"),
            "{status:?}"
        );
    }
    assert_eq!(
        listed(&b, "").await,
        ["placed"],
        "nothing refused was created"
    );
    assert_eq!(describe(&b, "placed").await.rule, Some(good));
}

/// The `brook rule` commands manage the same rules as the API: `create`
/// (several `--target`s, `--transform name=$.path`, `--from earliest`,
/// latest by default), `list` (text and JSON), `describe --json` (the
/// documented fields, state in lower case), `pause`, `resume` and
/// `delete`; an invalid pattern fails naming its place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_line_creates_lists_describes_pauses_resumes_and_deletes_rules() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    create_topic(&b, "events", 2).await;
    create_topic(&b, "inventory", 1).await;
    create_topic(&b, "billing", 1).await;
    let sent = publish(
        &b,
        "events",
        vec![
            event(Some("o-1"), order("OrderPlaced", "o-1", 1), &[]),
            event(Some("o-2"), order("OrderPlaced", "o-2", 2), &[]),
            event(Some("o-1"), order("OrderCancelled", "o-1", 3), &[]),
            event(Some("o-3"), order("OrderPlaced", "o-3", 4), &[]),
        ],
    )
    .await;

    let created = cli_json(
        &b,
        &[
            "rule",
            "create",
            "placed",
            "--source",
            "events",
            "--pattern",
            PLACED,
            "--target",
            "inventory",
            "--target",
            "billing",
            "--transform",
            "id=$.detail.orderId",
            "--from",
            "earliest",
            "--json",
        ],
    );
    assert_eq!(created["name"], "placed", "{created}");
    let (ok, _, err) = cli(
        &b,
        &[
            "rule",
            "create",
            "cancelled",
            "--source",
            "events",
            "--pattern",
            CANCELLED,
            "--target",
            "inventory",
        ],
    );
    assert!(ok, "{err}");

    let mut v = Value::Null;
    eventually(
        "brook rule describe to show the rule caught up",
        async || {
            v = cli_json(&b, &["rule", "describe", "placed", "--json"]);
            v["state"] == "running" && v["lag"] == 0 && v["forwarded"].as_u64() >= Some(6)
        },
    )
    .await;
    assert_eq!(v["name"], "placed", "{v}");
    assert_eq!(v["source_topic"], "events", "{v}");
    let pattern: Value = serde_json::from_str(v["event_pattern"].as_str().unwrap_or("null"))
        .unwrap_or_else(|e| panic!("event_pattern: {e}: {v}"));
    assert_eq!(pattern, serde_json::from_str::<Value>(PLACED).unwrap());
    assert_eq!(v["targets"], json!(["inventory", "billing"]), "{v}");
    let transform = v["transform"].to_string();
    assert!(
        transform.contains("\"id\"") && transform.contains("$.detail.orderId"),
        "{v}"
    );
    assert!(
        v["start"]
            .as_str()
            .is_some_and(|s| s.to_lowercase().contains("earliest")),
        "{v}"
    );
    assert_eq!(
        (v["matched"].as_u64(), v["forwarded"].as_u64()),
        (Some(3), Some(6)),
        "{v}"
    );
    assert_eq!(v["failed"], 0, "{v}");
    assert!(v["reason"].as_str().unwrap_or_default().is_empty(), "{v}");
    assert_eq!(v["partitions"].as_array().map(Vec::len), Some(2), "{v}");
    assert!(
        v["created_ms"]
            .as_i64()
            .is_some_and(|t| t > 0 && t <= now_ms()),
        "{v}"
    );

    // The API sees what the command line made.
    let d = describe(&b, "placed").await;
    let definition = d.rule.expect("a definition");
    assert_eq!(definition.start, v1::RuleStart::Earliest as i32);
    assert_eq!(
        definition.transform.map(|t| t.fields),
        Some(vec![v1::TransformField {
            name: "id".into(),
            path: "$.detail.orderId".into(),
        }])
    );
    let cancelled = caught_up(&b, "cancelled", 0).await;
    assert_eq!(cancelled.matched, 0, "latest by default: {cancelled:?}");
    let billing = assert_routed(
        &b,
        "billing",
        "events",
        &sent,
        |s| (kind_of(s.value.as_bytes()) == "OrderPlaced").then_some("placed"),
        false,
    )
    .await;
    for (_, r, s) in &billing {
        let value: Value = serde_json::from_slice(r.value.as_deref().unwrap_or_default()).unwrap();
        assert_eq!(
            value,
            json!({"id": s.key.clone().unwrap()}),
            "the transform"
        );
    }

    let (ok, out, err) = cli(&b, &["rule", "list"]);
    assert!(ok, "{err}");
    assert!(out.contains("placed") && out.contains("cancelled"), "{out}");
    let (ok, out, err) = cli(&b, &["rule", "list", "--json"]);
    assert!(ok, "{err}");
    let names: BTreeSet<String> = json_rules(&out)
        .iter()
        .map(|r| r["name"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["cancelled".to_string(), "placed".to_string()]),
        "{out}"
    );

    let (ok, _, err) = cli(&b, &["rule", "pause", "cancelled"]);
    assert!(ok, "{err}");
    let v = cli_json(&b, &["rule", "describe", "cancelled", "--json"]);
    assert_eq!(v["state"], "paused", "{v}");
    assert_eq!(describe(&b, "cancelled").await.state, PAUSED);
    let (ok, _, err) = cli(&b, &["rule", "resume", "cancelled"]);
    assert!(ok, "{err}");
    let v = cli_json(&b, &["rule", "describe", "cancelled", "--json"]);
    assert_eq!(v["state"], "running", "{v}");
    let (ok, _, err) = cli(&b, &["rule", "delete", "cancelled"]);
    assert!(ok, "{err}");
    let (ok, _, err) = cli(&b, &["rule", "describe", "cancelled", "--json"]);
    assert!(!ok, "a deleted rule is not described");
    assert!(err.contains("cancelled"), "{err}");
    let (ok, out, err) = cli(&b, &["rule", "list", "--json"]);
    assert!(ok, "{err}");
    let names: Vec<Value> = json_rules(&out).iter().map(|r| r["name"].clone()).collect();
    assert_eq!(names, [json!("placed")], "{out}");

    let (ok, _, err) = cli(
        &b,
        &[
            "rule",
            "create",
            "bad",
            "--source",
            "events",
            "--pattern",
            r#"{"detail":{"total":[{"numeric":["~",1]}]}}"#,
            "--target",
            "inventory",
        ],
    );
    assert!(!ok, "an invalid pattern is refused");
    assert!(err.contains("detail.total"), "{err}");
    assert_eq!(listed(&b, "").await, ["placed"]);
}

/// A rule idle for longer than `--producer-id-expiration-ms` finds that
/// its target forgot its producer: it goes on with a new producer epoch
/// (still running, nothing lost or written twice) instead of failing on
/// UNKNOWN_PRODUCER.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rule_idle_past_the_producer_expiry_goes_on_with_a_new_epoch() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("broker.log");
    let flags = [
        "--producer-id-expiration-ms",
        "300",
        "--retention-check-interval-ms",
        "100",
    ];
    let b = Broker::spawn_logged(&dir.path().join("data"), &flags, &log);
    b.wait_serving().await;
    create_topic(&b, "orders", 1).await;
    create_topic(&b, "placed", 1).await;
    create_rule(&b, rule("idle", "orders", PLACED, &["placed"])).await;
    let first: Vec<Sent> = (0..2)
        .map(|i| event(Some("o-1"), order("OrderPlaced", "o-1", i), &[]))
        .collect();
    let mut sent = publish(&b, "orders", first).await;
    caught_up(&b, "idle", 2).await;

    eventually("the idle producers to be forgotten", async || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("forgot idle producers"))
    })
    .await;
    let second: Vec<Sent> = (2..4)
        .map(|i| event(Some("o-1"), order("OrderPlaced", "o-1", i), &[]))
        .collect();
    sent.extend(publish(&b, "orders", second).await);
    let d = caught_up(&b, "idle", 4).await;
    assert_eq!((d.state, d.failed), (RUNNING, 0), "{d:?}");

    let stored: Vec<(u32, u64)> = read_topic(&b, "placed")
        .await
        .iter()
        .map(|(_, r)| source_of(r))
        .collect();
    let expected: Vec<(u32, u64)> = sent.iter().map(|s| (s.partition, s.offset)).collect();
    assert_eq!(stored, expected, "each record once, in order");
}
