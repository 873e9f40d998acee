//! The web console against the real broker: its JSON API over HTTP (what
//! the page and `curl` users get), with and without authentication, and
//! the page itself driven in headless Chromium (tests/console/console_test.py).

use std::path::{Path, PathBuf};

use brook_tests::{Broker, brook_cli, create_token, eventually, http_request, workspace_root};
use serde_json::{Value, json};

/// History sampled every 200 ms: charts move within a test's patience.
const FAST_HISTORY: &[&str] = &["--console-history-interval-ms", "200"];

/// `method path` with a JSON body (and a bearer token): the status and the
/// body parsed (Null when empty).
async fn call(
    b: &Broker,
    method: &str,
    path: &str,
    body: Option<Value>,
    token: Option<&str>,
) -> (u16, Value) {
    let auth = token.map(|t| format!("Authorization: Bearer {t}"));
    let mut headers = vec!["Content-Type: application/json"];
    if let Some(a) = &auth {
        headers.push(a);
    }
    let text = body.map_or(String::new(), |v| v.to_string());
    let (status, reply) = http_request(b.metrics, method, path, &headers, &text).await;
    let value = match reply.trim().is_empty() {
        true => Value::Null,
        false => serde_json::from_str(&reply).unwrap_or_else(|e| {
            panic!("{method} {path} answered {status} with non-JSON {reply:?}: {e}")
        }),
    };
    (status, value)
}

async fn get(b: &Broker, path: &str) -> Value {
    let (status, v) = call(b, "GET", path, None, None).await;
    assert_eq!(status, 200, "GET {path}: {v}");
    v
}

/// The `reason` of an error answer.
fn reason(v: &Value) -> &str {
    v["error"]["reason"]
        .as_str()
        .unwrap_or_else(|| panic!("not an error answer: {v}"))
}

fn cli(b: &Broker, args: &[&str], stdin: Option<&str>) -> String {
    let out = brook_cli(b, args, stdin);
    assert!(
        out.status.success(),
        "brook {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The data every console test looks at (docs in tests/console/console_test.py):
/// `orders` (3 partitions, 30 JSON records keyed order-1..30, header
/// source=seed), group `billing` 5 records in, queue group `shipping` with
/// one dead letter, rule `big-orders`, subject `orders-value` v1 and v2.
fn seed(b: &Broker) {
    cli(b, &["topic", "create", "orders", "--partitions", "3"], None);
    let lines: String = (1..=30)
        .map(|i| format!("{{\"order_id\":\"order-{i}\",\"amount\":{i},\"status\":\"placed\"}}\n"))
        .collect();
    cli(
        b,
        &[
            "produce",
            "orders",
            "--key-field",
            "order_id",
            "--header",
            "source=seed",
        ],
        Some(&lines),
    );
    let out = brook_cli(
        b,
        &[
            "consume", "orders", "--group", "billing", "--from", "earliest", "--max", "5",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    cli(
        b,
        &["topic", "create", "shipments", "--partitions", "1"],
        None,
    );
    cli(
        b,
        &[
            "queue",
            "create",
            "shipping",
            "--topic",
            "shipments",
            "--from",
            "earliest",
            "--max-deliveries",
            "1",
            "--dlq-topic",
            "shipments.dlq",
        ],
        None,
    );
    cli(
        b,
        &["produce", "shipments", "--key", "s-1"],
        Some("{\"shipment\":\"s-1\",\"address\":\"?\"}\n"),
    );
    cli(
        b,
        &[
            "queue",
            "consume",
            "shipments",
            "--group",
            "shipping",
            "--reject",
            "--reason",
            "address unknown",
            "--max",
            "1",
            "--timeout",
            "10s",
        ],
        None,
    );
    cli(
        b,
        &["topic", "create", "big-orders", "--partitions", "1"],
        None,
    );
    cli(
        b,
        &[
            "rule",
            "create",
            "big-orders",
            "--source",
            "orders",
            "--target",
            "big-orders",
            "--from",
            "earliest",
            "--pattern",
            r#"{"amount":[{"numeric":[">",20]}]}"#,
        ],
        None,
    );
    for schema in [
        r#"{"type":"object","properties":{"order_id":{"type":"string"}}}"#,
        r#"{"type":"object","properties":{"order_id":{"type":"string"},"currency":{"type":"string"}}}"#,
    ] {
        cli(
            b,
            &[
                "schema",
                "register",
                "orders-value",
                "--type",
                "json",
                "--schema",
                schema,
            ],
            None,
        );
    }
}

#[tokio::test]
async fn topics_are_created_described_altered_grown_and_deleted_with_reasons_for_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), FAST_HISTORY).await;

    let (status, t) = call(
        &b,
        "POST",
        "/api/v1/topics",
        Some(json!({"name": "made", "partitions": 2, "settings": {"retention_ms": 60000}})),
        None,
    )
    .await;
    assert_eq!(status, 201, "{t}");
    assert_eq!(t["settings"]["retention_ms"], 60000);
    assert_eq!(t["partitions"].as_array().unwrap().len(), 2);

    // The same name again, an unknown setting, a body that is not JSON, a
    // topic that does not exist: each names what was wrong.
    let (status, e) = call(
        &b,
        "POST",
        "/api/v1/topics",
        Some(json!({"name": "made"})),
        None,
    )
    .await;
    assert_eq!((status, reason(&e)), (409, "TOPIC_ALREADY_EXISTS"), "{e}");
    let (status, e) = call(
        &b,
        "POST",
        "/api/v1/topics",
        Some(json!({"name": "x", "settings": {"retention": 5}})),
        None,
    )
    .await;
    assert_eq!((status, reason(&e)), (400, "INVALID_REQUEST"), "{e}");
    assert_eq!(e["error"]["metadata"]["field"], "retention", "{e}");
    let json = ["Content-Type: application/json"];
    let (status, e) = http_request(b.metrics, "POST", "/api/v1/topics", &json, "{not json").await;
    assert_eq!(status, 400, "{e}");
    // A change must say it is JSON and come from the console's own origin:
    // another site's page could send the rest without the browser asking.
    let body = r#"{"name": "csrf"}"#;
    let (status, e) = http_request(
        b.metrics,
        "POST",
        "/api/v1/topics",
        &["Content-Type: text/plain"],
        body,
    )
    .await;
    assert_eq!(status, 415, "{e}");
    let foreign = [
        "Content-Type: application/json",
        "Origin: http://evil.example",
    ];
    let (status, e) = http_request(b.metrics, "POST", "/api/v1/topics", &foreign, body).await;
    assert_eq!(status, 403, "{e}");
    let (status, _) = call(&b, "GET", "/api/v1/topics/csrf", None, None).await;
    assert_eq!(status, 404, "neither request created the topic");
    // The console's own page sends its own origin.
    let own = format!("Origin: http://{}", b.metrics);
    let (status, e) = http_request(
        b.metrics,
        "POST",
        "/api/v1/topics",
        &["Content-Type: application/json", &own],
        body,
    )
    .await;
    assert_eq!(status, 201, "{e}");
    // A browser's DELETE carries no body and no Content-Type.
    let (status, e) = http_request(b.metrics, "DELETE", "/api/v1/topics/csrf", &[&own], "").await;
    assert_eq!(status, 204, "{e}");
    // A request for a host name that is not the broker's (DNS rebinding)
    // is refused, reads too.
    let (status, e) = http_request(
        b.metrics,
        "GET",
        "/api/v1/topics",
        &["Host: evil.example"],
        "",
    )
    .await;
    assert_eq!(status, 403, "{e}");
    // axum's own refusals come as JSON errors too.
    let (status, e) = call(&b, "PUT", "/api/v1/topics", Some(json!({})), None).await;
    assert_eq!((status, reason(&e)), (405, "INVALID_REQUEST"), "{e}");
    let (status, e) = call(&b, "GET", "/api/v1/topics/nope", None, None).await;
    assert_eq!((status, reason(&e)), (404, "TOPIC_NOT_FOUND"), "{e}");
    let (status, e) = call(&b, "GET", "/api/v1/no-such-route", None, None).await;
    assert_eq!(status, 404, "{e}");

    let (status, t) = call(
        &b,
        "PATCH",
        "/api/v1/topics/made",
        Some(json!({"settings": {"retention_ms": null, "cleanup_policy": "compact,delete"}})),
        None,
    )
    .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["settings"]["retention_ms"], Value::Null, "unlimited: {t}");
    assert_eq!(t["settings"]["cleanup_policy"], "compact,delete");
    // Unchanged settings stay.
    assert_eq!(t["settings"]["partitions"], 2);

    let (status, t) = call(
        &b,
        "POST",
        "/api/v1/topics/made/partitions",
        Some(json!({"partitions": 4})),
        None,
    )
    .await;
    assert_eq!(status, 200, "{t}");
    assert_eq!(t["partitions"].as_array().unwrap().len(), 4);
    let listed = get(&b, "/api/v1/topics").await;
    let made = listed["topics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "made")
        .expect("listed");
    assert_eq!(made["partitions"], 4);

    let (status, v) = call(&b, "DELETE", "/api/v1/topics/made", None, None).await;
    assert_eq!(status, 204, "{v}");
    let (status, _) = call(&b, "GET", "/api/v1/topics/made", None, None).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn messages_are_browsed_by_offset_time_and_end_searched_within_bounds_and_produced() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), FAST_HISTORY).await;
    seed(&b);

    // order-7's partition, by search over every partition.
    let found = get(&b, "/api/v1/topics/orders/search?key=order-7").await;
    let matches = found["matches"].as_array().unwrap();
    assert_eq!(matches.len(), 1, "{found}");
    assert_eq!(found["scanned"], 30, "{found}");
    let m = &matches[0];
    let value: Value = serde_json::from_str(m["value"].as_str().unwrap()).unwrap();
    assert_eq!(value["amount"], 7);
    assert_eq!(m["headers"][0], json!({"key": "source", "value": "seed"}));
    let partition = m["partition"].as_u64().unwrap();

    // A bounded search reads only the range it says it read.
    let bounded = get(
        &b,
        &format!("/api/v1/topics/orders/search?header=source&header_value=seed&partition={partition}&from_offset=1&scan_limit=2"),
    )
    .await;
    assert_eq!(bounded["scanned"], 2, "{bounded}");
    assert_eq!(bounded["matches"].as_array().unwrap().len(), 2, "{bounded}");
    assert_eq!(
        bounded["partitions"],
        json!([{"partition": partition, "from_offset": 1, "to_offset": 3}])
    );

    // By header name alone (any value), and stopped by its match limit:
    // the range read ends right after the last match.
    let any = get(
        &b,
        "/api/v1/topics/orders/search?header=source&header_value=",
    )
    .await;
    assert_eq!(any["matches"].as_array().unwrap().len(), 30, "{any}");
    let one = get(
        &b,
        &format!(
            "/api/v1/topics/orders/search?header=source&partition={partition}&from_offset=0&limit=1"
        ),
    )
    .await;
    assert_eq!(one["matches"][0]["offset"], 0, "{one}");
    assert_eq!(
        one["partitions"],
        json!([{"partition": partition, "from_offset": 0, "to_offset": 1}])
    );

    // From an offset, with a limit: consecutive offsets and where to go on.
    let page = get(
        &b,
        &format!("/api/v1/topics/orders/partitions/{partition}/messages?offset=1&limit=2"),
    )
    .await;
    let offsets: Vec<u64> = page["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["offset"].as_u64().unwrap())
        .collect();
    assert_eq!(offsets, [1, 2], "{page}");
    assert_eq!(page["next_offset"], 3, "{page}");
    // The end: the last `limit` records.
    let end = page["log_end_offset"].as_u64().unwrap();
    let tail = get(
        &b,
        &format!("/api/v1/topics/orders/partitions/{partition}/messages?limit=1"),
    )
    .await;
    assert_eq!(tail["messages"][0]["offset"], end - 1, "{tail}");
    // By time: after every record's timestamp there is nothing.
    let later = m["timestamp_ms"].as_i64().unwrap() + 3_600_000;
    let none = get(
        &b,
        &format!("/api/v1/topics/orders/partitions/{partition}/messages?timestamp_ms={later}"),
    )
    .await;
    assert_eq!(none["messages"], json!([]), "{none}");
    let first = get(
        &b,
        &format!("/api/v1/topics/orders/partitions/{partition}/messages?timestamp_ms=0&limit=1"),
    )
    .await;
    assert_eq!(first["messages"][0]["offset"], 0, "{first}");

    // Bad input: a partition that is no number, one that does not exist,
    // both offset and time, a search without a key.
    let (status, e) = call(
        &b,
        "GET",
        "/api/v1/topics/orders/partitions/x/messages",
        None,
        None,
    )
    .await;
    assert_eq!((status, reason(&e)), (400, "INVALID_REQUEST"), "{e}");
    let (status, e) = call(
        &b,
        "GET",
        "/api/v1/topics/orders/partitions/9/messages",
        None,
        None,
    )
    .await;
    assert_eq!((status, reason(&e)), (404, "PARTITION_NOT_FOUND"), "{e}");
    let (status, e) = call(
        &b,
        "GET",
        "/api/v1/topics/orders/partitions/0/messages?offset=1&timestamp_ms=1",
        None,
        None,
    )
    .await;
    assert_eq!(status, 400, "{e}");
    let (status, _) = call(&b, "GET", "/api/v1/topics/orders/search", None, None).await;
    assert_eq!(status, 400);

    // A test message, routed by its key, read back as sent; bytes that are
    // not UTF-8 come as base64.
    let (status, at) = call(
        &b,
        "POST",
        "/api/v1/topics/orders/messages",
        Some(json!({"key": "order-7", "value": "{\"hello\":\"world\"}", "headers": [{"key": "h", "value": "v"}]})),
        None,
    )
    .await;
    assert_eq!(status, 201, "{at}");
    assert_eq!(
        at["partition"].as_u64(),
        Some(partition),
        "same key, same partition"
    );
    let back = get(
        &b,
        &format!(
            "/api/v1/topics/orders/partitions/{partition}/messages?offset={}&limit=1",
            at["offset"]
        ),
    )
    .await;
    assert_eq!(back["messages"][0]["value"], "{\"hello\":\"world\"}");
    assert_eq!(
        back["messages"][0]["headers"],
        json!([{"key": "h", "value": "v"}])
    );
    cli(&b, &["topic", "create", "raw", "--partitions", "1"], None);
    b.producer()
        .await
        .publish(brook_protocol::v1::PublishRequest {
            topic: "raw".into(),
            records: vec![brook_protocol::v1::PublishRecord {
                value: Some(vec![0xff, 0x00].into()),
                ..Default::default()
            }],
            acks: 0,
        })
        .await
        .unwrap();
    let raw = get(&b, "/api/v1/topics/raw/partitions/0/messages").await;
    assert_eq!(raw["messages"][0]["value"], json!({"base64": "/wA="}));
    assert_eq!(raw["messages"][0]["key"], Value::Null);
}

/// The total lag of the newest point of a group's history.
async fn last_lag(b: &Broker, group: &str) -> Option<u64> {
    let h = get(b, &format!("/api/v1/groups/{group}/history")).await;
    h["points"].as_array()?.last()?["lag_records"].as_u64()
}

#[tokio::test]
async fn group_lag_history_follows_a_consumer_and_resets_are_previewed_before_they_apply() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), FAST_HISTORY).await;
    seed(&b);

    let g = get(&b, "/api/v1/groups/billing").await;
    assert_eq!(g["lag_records"], 25, "{g}");
    assert_eq!(g["state"], "empty");
    assert_eq!(
        g["topics"],
        json!(["orders"]),
        "the topic it has commits on: {g}"
    );
    eventually("billing's history shows lag 25", async || {
        last_lag(&b, "billing").await == Some(25)
    })
    .await;

    cli(
        &b,
        &[
            "consume",
            "orders",
            "--group",
            "billing",
            "--max",
            "25",
            "--timeout",
            "10s",
        ],
        None,
    );
    let g = get(&b, "/api/v1/groups/billing").await;
    assert_eq!(g["lag_records"], 0, "{g}");
    eventually("billing's history falls to 0", async || {
        last_lag(&b, "billing").await == Some(0)
    })
    .await;
    let h = get(&b, "/api/v1/groups/billing/history").await;
    let totals: Vec<u64> = h["points"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["lag_records"].as_u64().unwrap())
        .collect();
    assert!(
        totals.contains(&25) && totals.last() == Some(&0),
        "{totals:?}"
    );
    assert_eq!(h["partitions"].as_array().unwrap().len(), 3, "{h}");
    assert_eq!(h["interval_ms"], 200);

    // The preview changes nothing; the same request applied does.
    let reset = json!({"topic": "orders", "to": "earliest", "dry_run": true});
    let (status, preview) = call(
        &b,
        "POST",
        "/api/v1/groups/billing/reset-offsets",
        Some(reset.clone()),
        None,
    )
    .await;
    assert_eq!(status, 200, "{preview}");
    assert_eq!(preview["applied"], false);
    let changes = preview["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 3, "{preview}");
    assert!(changes.iter().all(|c| c["after"] == 0), "{preview}");
    assert_eq!(get(&b, "/api/v1/groups/billing").await["lag_records"], 0);
    let mut apply = reset;
    apply["dry_run"] = json!(false);
    let (status, applied) = call(
        &b,
        "POST",
        "/api/v1/groups/billing/reset-offsets",
        Some(apply),
        None,
    )
    .await;
    assert_eq!(
        (status, &applied["applied"]),
        (200, &json!(true)),
        "{applied}"
    );
    assert_eq!(get(&b, "/api/v1/groups/billing").await["lag_records"], 30);
    let listed = get(&b, "/api/v1/groups").await;
    let billing = &listed["groups"][0];
    assert_eq!(
        (
            &billing["group"],
            &billing["state"],
            &billing["members"],
            &billing["lag_records"]
        ),
        (&json!("billing"), &json!("empty"), &json!(0), &json!(30)),
        "{listed}"
    );

    // A value that is needed and missing, a target that does not exist.
    let (status, e) = call(
        &b,
        "POST",
        "/api/v1/groups/billing/reset-offsets",
        Some(json!({"topic": "orders", "to": "offset"})),
        None,
    )
    .await;
    assert_eq!((status, reason(&e)), (400, "INVALID_REQUEST"), "{e}");
    let (status, e) = call(
        &b,
        "POST",
        "/api/v1/groups/billing/reset-offsets",
        Some(json!({"topic": "orders", "to": "sideways"})),
        None,
    )
    .await;
    assert_eq!(status, 400, "{e}");
}

#[tokio::test]
async fn queues_rules_schemas_and_overview_answer_what_the_broker_holds() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), FAST_HISTORY).await;
    seed(&b);

    let q = get(&b, "/api/v1/queues/shipping").await;
    assert_eq!(q["dlq_depth"], 1, "{q}");
    assert_eq!(q["settings"]["dlq_topic"], "shipments.dlq");
    eventually("the DLQ depth history shows 1", async || {
        let h = get(&b, "/api/v1/queues/shipping/history").await;
        h["points"]
            .as_array()
            .unwrap()
            .last()
            .is_some_and(|p| p["dlq_depth"] == 1)
    })
    .await;
    let dead = get(&b, "/api/v1/topics/shipments.dlq/partitions/0/messages").await;
    let headers = dead["messages"][0]["headers"].as_array().unwrap();
    assert!(
        headers.contains(&json!({"key": "brook-dlq-reason", "value": "address unknown"})),
        "{dead}"
    );
    let (status, preview) = call(
        &b,
        "POST",
        "/api/v1/queues/shipping/redrive",
        Some(json!({"dry_run": true})),
        None,
    )
    .await;
    assert_eq!(
        (status, &preview["redriven"]),
        (200, &json!(1)),
        "{preview}"
    );
    assert_eq!(
        get(&b, "/api/v1/queues/shipping").await["dlq_depth"],
        1,
        "a dry run redrives nothing"
    );
    let (status, done) = call(
        &b,
        "POST",
        "/api/v1/queues/shipping/redrive",
        Some(json!({})),
        None,
    )
    .await;
    assert_eq!((status, &done["redriven"]), (200, &json!(1)), "{done}");
    assert_eq!(get(&b, "/api/v1/queues/shipping").await["dlq_depth"], 0);

    eventually("big-orders matched the 10 orders above 20", async || {
        let r = get(&b, "/api/v1/rules/big-orders").await;
        r["matched"] == 10 && r["forwarded"] == 10
    })
    .await;
    assert_eq!(
        get(&b, "/api/v1/rules").await["rules"][0]["state"],
        "running"
    );
    let pattern = r#"{"amount":[{"numeric":[">",20]}]}"#;
    let (_, yes) = call(
        &b,
        "POST",
        "/api/v1/rules/test",
        Some(json!({"pattern": pattern, "event": "{\"amount\": 25}"})),
        None,
    )
    .await;
    assert_eq!(yes["matches"], true, "{yes}");
    let (_, no) = call(
        &b,
        "POST",
        "/api/v1/rules/test",
        Some(json!({"pattern": pattern, "event": "{\"amount\": 3}"})),
        None,
    )
    .await;
    assert_eq!(no["matches"], false, "{no}");
    assert!(no["mismatch"].as_str().unwrap().contains("amount"), "{no}");
    let (status, bad) = call(
        &b,
        "POST",
        "/api/v1/rules/test",
        Some(json!({"pattern": "{\"amount\": 5}", "event": "{}"})),
        None,
    )
    .await;
    assert_eq!((status, reason(&bad)), (400, "INVALID_PATTERN"), "{bad}");
    assert_eq!(bad["error"]["metadata"]["path"], "amount", "{bad}");

    let subjects = get(&b, "/api/v1/schemas/subjects").await;
    assert_eq!(subjects["subjects"][0]["subject"], "orders-value");
    assert_eq!(subjects["subjects"][0]["versions"], json!([1, 2]));
    let diff = get(&b, "/api/v1/schemas/subjects/orders-value/diff?from=1&to=2").await;
    let added: Vec<&str> = diff["lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["op"] == "+")
        .map(|l| l["text"].as_str().unwrap())
        .collect();
    assert!(added.iter().any(|l| l.contains("currency")), "{diff}");
    assert!(
        diff["lines"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["op"] != "-"),
        "{diff}"
    );
    let (status, level) = call(
        &b,
        "PUT",
        "/api/v1/schemas/subjects/orders-value/compatibility",
        Some(json!({"level": "FULL"})),
        None,
    )
    .await;
    assert_eq!((status, &level["level"]), (200, &json!("FULL")), "{level}");
    assert_eq!(
        get(&b, "/api/v1/schemas/subjects").await["subjects"][0]["compatibility"],
        "FULL"
    );

    let o = get(&b, "/api/v1/overview").await;
    assert_eq!(o["ready"], true);
    assert!(o["topics"].as_u64().unwrap() >= 4, "{o}");
    assert!(o["data_dir"]["log_bytes"].as_u64().unwrap() > 0, "{o}");
    assert!(o["data_dir"]["fs_total_bytes"].as_u64().unwrap() > 0, "{o}");
    // Records produced now show in the next points' rates.
    cli(&b, &["produce", "orders", "--key", "k"], Some("1\n2\n3\n"));
    eventually("a produce rate in the overview's history", async || {
        let h = get(&b, "/api/v1/overview/history").await;
        h["points"]
            .as_array()
            .unwrap()
            .iter()
            .any(|p| p["produce_records_per_sec"].as_f64().unwrap() > 0.0)
    })
    .await;

    // The page and its assets are served from the binary.
    let (status, page) = http_request(b.metrics, "GET", "/ui", &[], "").await;
    assert_eq!(status, 200);
    assert!(page.contains("/ui/assets/app.js"), "{page}");
    let (status, _) = http_request(
        b.metrics,
        "GET",
        "/ui/assets/vendor/uPlot.iife.min.js",
        &[],
        "",
    )
    .await;
    assert_eq!(status, 200);
    let (status, _) = http_request(b.metrics, "GET", "/ui/assets/nope.js", &[], "").await;
    assert_eq!(status, 404);
}

struct Secured {
    broker: Broker,
    admin: String,
    reader: String,
    _dir: tempfile::TempDir,
}

/// A broker with `--auth required`: `admin` is a super user; `reader` may
/// describe the cluster and read and describe `orders` and nothing else.
async fn secured(extra: &[&str]) -> Secured {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    let admin = create_token("admin", &tokens);
    let reader = create_token("reader", &tokens);
    let mut flags = vec![
        "--auth",
        "required",
        "--tokens-file",
        tokens.to_str().unwrap(),
        "--super-users",
        "admin",
    ];
    flags.extend_from_slice(extra);
    let broker = Broker::start(&dir.path().join("data"), &flags).await;
    for acl in [
        vec!["--operation", "describe", "--cluster"],
        vec![
            "--operation",
            "describe",
            "--operation",
            "read",
            "--topic",
            "orders",
        ],
    ] {
        let mut args = vec!["acl", "add", "--principal", "reader", "--token", &admin];
        args.extend(acl);
        cli(&broker, &args, None);
    }
    Secured {
        broker,
        admin,
        reader,
        _dir: dir,
    }
}

#[tokio::test]
async fn with_auth_on_every_call_needs_a_token_and_acls_decide_what_it_sees_and_does() {
    let s = secured(FAST_HISTORY).await;
    let b = &s.broker;
    for name in ["orders", "secret"] {
        let (status, v) = call(
            b,
            "POST",
            "/api/v1/topics",
            Some(json!({"name": name})),
            Some(&s.admin),
        )
        .await;
        assert_eq!(status, 201, "{v}");
    }

    // Without a token: the session says so, the API refuses.
    let (status, session) = call(b, "GET", "/api/v1/session", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        session,
        json!({"auth_required": true, "authenticated": false, "principal": null, "may_alter": false})
    );
    let (status, e) = call(b, "GET", "/api/v1/topics", None, None).await;
    assert_eq!((status, reason(&e)), (401, "NOT_AUTHENTICATED"), "{e}");
    let (status, e) = call(b, "GET", "/api/v1/session", None, Some("wrong")).await;
    assert_eq!((status, reason(&e)), (401, "NOT_AUTHENTICATED"), "{e}");

    let (_, session) = call(b, "GET", "/api/v1/session", None, Some(&s.admin)).await;
    assert_eq!(session["may_alter"], true, "{session}");
    let (_, session) = call(b, "GET", "/api/v1/session", None, Some(&s.reader)).await;
    assert_eq!(session["principal"], "reader");
    assert_eq!(session["may_alter"], false, "{session}");

    // The reader sees only what its ACLs allow, and changes nothing.
    let (status, topics) = call(b, "GET", "/api/v1/topics", None, Some(&s.reader)).await;
    assert_eq!(status, 200, "{topics}");
    let names: Vec<&str> = topics["topics"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["orders"]);
    let (status, e) = call(
        b,
        "GET",
        "/api/v1/topics/secret/partitions/0/messages",
        None,
        Some(&s.reader),
    )
    .await;
    assert_eq!((status, reason(&e)), (403, "NOT_AUTHORIZED"), "{e}");
    let (status, e) = call(
        b,
        "POST",
        "/api/v1/topics",
        Some(json!({"name": "mine"})),
        Some(&s.reader),
    )
    .await;
    assert_eq!((status, reason(&e)), (403, "NOT_AUTHORIZED"), "{e}");
    let (status, e) = call(b, "DELETE", "/api/v1/topics/orders", None, Some(&s.reader)).await;
    assert_eq!((status, reason(&e)), (403, "NOT_AUTHORIZED"), "{e}");
    let (status, e) = call(
        b,
        "POST",
        "/api/v1/topics/orders/messages",
        Some(json!({"value": "x"})),
        Some(&s.reader),
    )
    .await;
    assert_eq!((status, reason(&e)), (403, "NOT_AUTHORIZED"), "{e}");
    for path in [
        "/api/v1/topics/secret/partitions/0/messages?timestamp_ms=0",
        "/api/v1/topics/secret/search?key=k",
        "/api/v1/groups/audit/history",
    ] {
        let (status, e) = call(b, "GET", path, None, Some(&s.reader)).await;
        assert_eq!((status, reason(&e)), (403, "NOT_AUTHORIZED"), "{path}: {e}");
    }
    let (status, page) = call(
        b,
        "GET",
        "/api/v1/topics/orders/partitions/0/messages",
        None,
        Some(&s.reader),
    )
    .await;
    assert_eq!(status, 200, "{page}");
    let (status, _) = call(b, "GET", "/api/v1/overview", None, Some(&s.reader)).await;
    assert_eq!(status, 200);
    // The page itself is open: it shows the login form.
    let (status, _) = http_request(b.metrics, "GET", "/ui", &[], "").await;
    assert_eq!(status, 200);
}

/// The Python of `target/console-venv` (scripts/browser.sh installs it), or
/// why the browser test cannot run here (where `CI` is set, as `.ci/run`
/// sets it after installing both, a missing one fails the test instead).
fn browser_setup() -> Result<(PathBuf, PathBuf), String> {
    let python = std::env::var_os("BROOK_CONSOLE_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target/console-venv/bin/python"));
    let chromium = std::env::var_os("BROOK_CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let missing = [&python, &chromium].into_iter().find(|p| !p.exists());
    match missing {
        None => Ok((python, chromium)),
        Some(p) if std::env::var_os("CI").is_some() => {
            panic!(
                "{} is missing in CI: .ci/run runs scripts/browser.sh",
                p.display()
            )
        }
        Some(p) => Err(format!(
            "{} is missing: run scripts/browser.sh",
            p.display()
        )),
    }
}

/// Where a run's screenshots go: `target/console-screenshots/<name>`.
fn screenshots(name: &str) -> PathBuf {
    let dir = workspace_root()
        .join("target/console-screenshots")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs tests/console/console_test.py against `b`; fails with its output.
fn run_browser(python: &Path, chromium: &Path, b: &Broker, shots: &Path, extra: &[&str]) {
    let script = workspace_root().join("tests/console/console_test.py");
    let out = std::process::Command::new(python)
        .arg(&script)
        .args([
            "--http",
            &b.metrics.to_string(),
            "--grpc",
            &b.grpc.to_string(),
        ])
        .arg("--brook")
        .arg(brook_tests::brook_binary())
        .env("BROOK_CHROMIUM", chromium)
        .arg("--screenshots")
        .arg(shots)
        .args(extra)
        .output()
        .expect("running the browser test");
    assert!(
        out.status.success(),
        "the console's browser test failed (screenshots in {}):\n{}\n{}",
        shots.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let taken = std::fs::read_dir(shots).unwrap().count();
    assert!(
        taken >= 2,
        "only {taken} screenshots in {}",
        shots.display()
    );
}

#[tokio::test]
async fn the_console_works_in_a_real_browser() {
    let (python, chromium) = match browser_setup() {
        Ok(found) => found,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &["--console-history-interval-ms", "1000"]).await;
    seed(&b);
    let shots = screenshots("console");
    let b = tokio::task::spawn_blocking(move || {
        run_browser(&python, &chromium, &b, &shots, &[]);
        b
    })
    .await
    .unwrap();
    drop(b);
}

#[tokio::test]
async fn the_console_asks_for_a_token_and_is_read_only_without_alter_in_a_real_browser() {
    let (python, chromium) = match browser_setup() {
        Ok(found) => found,
        Err(why) => {
            eprintln!("skipped: {why}");
            return;
        }
    };
    let s = secured(&["--console-history-interval-ms", "1000"]).await;
    let (status, v) = call(
        &s.broker,
        "POST",
        "/api/v1/topics",
        Some(json!({"name": "orders", "partitions": 3})),
        Some(&s.admin),
    )
    .await;
    assert_eq!(status, 201, "{v}");
    let shots = screenshots("console-auth");
    let reader = s.reader.clone();
    tokio::task::spawn_blocking(move || {
        run_browser(
            &python,
            &chromium,
            &s.broker,
            &shots,
            &["--token", &reader, "--read-only"],
        );
    })
    .await
    .unwrap();
}

#[tokio::test]
async fn browsing_from_below_a_moved_log_start_starts_at_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &["--retention-check-interval-ms", "50"]).await;
    let (status, t) = call(
        &b,
        "POST",
        "/api/v1/topics",
        Some(json!({"name": "short", "partitions": 1, "settings": {"segment_bytes": 1024, "retention_bytes": 2048}})),
        None,
    )
    .await;
    assert_eq!(status, 201, "{t}");
    let value = "x".repeat(200);
    for i in 0..40 {
        let (status, at) = call(
            &b,
            "POST",
            "/api/v1/topics/short/messages",
            Some(json!({"key": format!("k{i}"), "value": value})),
            None,
        )
        .await;
        assert_eq!(status, 201, "{at}");
    }
    let mut start = 0;
    eventually("retention moves the log start", async || {
        let t = get(&b, "/api/v1/topics/short").await;
        start = t["partitions"][0]["log_start_offset"].as_u64().unwrap();
        start > 0
    })
    .await;
    let page = get(
        &b,
        "/api/v1/topics/short/partitions/0/messages?offset=0&limit=2",
    )
    .await;
    let first = page["messages"][0]["offset"].as_u64().unwrap();
    assert!(first >= start, "{page}");
    assert!(
        page["log_start_offset"].as_u64().unwrap() <= first,
        "{page}"
    );
}

#[tokio::test]
async fn console_off_serves_neither_page_nor_api_and_allowed_hosts_extend_the_api() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &["--console", "false"]).await;
    for path in ["/ui", "/api/v1/topics"] {
        let (status, _) = http_request(b.metrics, "GET", path, &[], "").await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = http_request(b.metrics, "GET", "/metrics", &[], "").await;
    assert_eq!(status, 200);
    drop(b);

    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &["--console-allowed-hosts", "brook.internal"]).await;
    for (header, expected) in [
        ("Host: brook.internal:9293", 200),
        ("Host: other.internal", 403),
        // Behind a proxy, the name the browser used must be allowed too.
        ("X-Forwarded-Host: evil.example", 403),
        ("X-Forwarded-Host: Brook.Internal.", 200),
    ] {
        let (status, v) = http_request(b.metrics, "GET", "/api/v1/topics", &[header], "").await;
        assert_eq!(status, expected, "{header}: {v}");
    }
}
