//! The schema registry over Confluent's REST API on the HTTP port, proven
//! with confluent-kafka's own `SchemaRegistryClient` and its JSON Schema and
//! Avro serializers (`tests/kafka/schema_registry.py`, installed with the
//! Kafka clients by `scripts/kafka-clients.sh`), against a real broker; and
//! its durability and credentials over raw HTTP.

use std::process::{Command, Stdio};

use brook_protocol::batch::BatchBuilder;
use brook_protocol::v1;
use brook_tests::{
    Broker, create_token, create_topic, fetch_batches, http_request, kafka_python, workspace_root,
};
use serde_json::{Value, json};

/// The steps the Python side printed, by name.
fn steps(out: &[u8]) -> std::collections::HashMap<String, Value> {
    String::from_utf8_lossy(out)
        .lines()
        .map(|l| {
            let v: Value =
                serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l:?}: {e}"));
            (v["step"].as_str().unwrap().to_string(), v)
        })
        .collect()
}

/// confluent-kafka registers, serializes, produces through the Kafka
/// listener, consumes and deserializes with a second client that fetches
/// the schema by id; the records Brook stored carry Confluent's framing
/// with the id the registry gave. Then the client's own API calls, each
/// answered as Confluent's registry answers them.
#[tokio::test(flavor = "multi_thread")]
async fn confluent_clients_and_serializers_work_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::spawn(dir.path(), &[]);
    b.wait_serving().await;
    create_topic(&b, "orders", 2).await;
    create_topic(&b, "payments", 1).await;
    let url = format!("http://{}", b.metrics);
    let out = Command::new(kafka_python())
        .arg(workspace_root().join("tests/kafka/schema_registry.py"))
        .args([&url, &b.kafka_bootstrap()])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the Python side failed: {:?}",
        out.status
    );
    let s = steps(&out.stdout);
    let step = |name: &str| {
        s.get(name)
            .unwrap_or_else(|| panic!("no step {name}: {s:?}"))
    };

    assert_eq!(step("types")["types"], json!(["JSON", "AVRO"]));
    assert_eq!(step("global_level")["level"], "BACKWARD");
    assert_eq!(
        step("json_roundtrip")["got"],
        step("json_roundtrip")["sent"]
    );
    assert_eq!(step("json_invalid_refused")["refused"], true);
    let latest = step("latest");
    assert_eq!(
        (latest["id"].as_u64(), latest["version"].as_u64()),
        (Some(1), Some(1))
    );
    assert_eq!(latest["schema_type"], "JSON");
    assert_eq!(step("registered_v2")["id"], 2);
    assert_eq!(
        step("registered_v2_again")["id"],
        2,
        "the same schema, the same id"
    );
    assert_eq!(step("compatible")["v2"], true);
    assert_eq!(step("compatible")["bad"], false);
    let incompatible = &step("incompatible")["error"];
    assert_eq!(
        (incompatible["http"].as_u64(), incompatible["code"].as_u64()),
        (Some(409), Some(409))
    );
    assert!(
        incompatible["message"]
            .as_str()
            .unwrap()
            .contains("REQUIRED_PROPERTY_ADDED"),
        "{incompatible}"
    );
    let invalid = &step("invalid")["error"];
    assert_eq!(
        (invalid["http"].as_u64(), invalid["code"].as_u64()),
        (Some(422), Some(42201))
    );
    assert_eq!(
        (
            step("lookup")["id"].as_u64(),
            step("lookup")["version"].as_u64()
        ),
        (Some(1), Some(1))
    );
    assert_eq!(step("versions")["versions"], json!([1, 2]));
    assert_eq!(step("missing_subject")["error"]["code"], 40401);
    assert_eq!(step("missing_id")["error"]["code"], 40403);
    assert_eq!(
        step("avro_roundtrip")["got"],
        step("avro_roundtrip")["sent"]
    );
    assert_eq!(step("subject_level")["level"], "FULL");
    assert_eq!(step("bad_level")["error"]["code"], 42203);
    assert_eq!(step("delete_version")["deleted"], 2);
    assert_eq!(step("versions_after_delete")["versions"], json!([1]));
    assert_eq!(step("permanent_first")["error"]["code"], 40405);
    assert_eq!(step("delete_subject")["soft"], json!([1]));
    assert_eq!(step("delete_subject")["permanent"], json!([1]));
    assert_eq!(step("subjects")["subjects"], json!(["orders-value"]));

    // What Brook stored is Confluent's framing: magic byte 0, the id, the payload.
    let mut framed = 0;
    for partition in 0..2 {
        for batch in fetch_batches(&b, "orders", partition, 0).await {
            for rec in batch.records() {
                let value = rec.unwrap().value.unwrap();
                assert_eq!(value[0], 0, "magic byte");
                assert_eq!(
                    u32::from_be_bytes(value[1..5].try_into().unwrap()),
                    1,
                    "schema id"
                );
                let event: Value = serde_json::from_slice(&value[5..]).unwrap();
                assert!(event["order_id"].is_string(), "{event}");
                framed += 1;
            }
        }
    }
    assert_eq!(framed, 6);
}

/// With authentication off, a page of another site open in an operator's
/// browser could register or delete schemas: a change whose `Origin` is not
/// the broker's is refused; reads, the broker's own origin and Confluent's
/// clients (no `Origin`) pass.
#[tokio::test]
async fn a_change_from_another_sites_page_is_refused_and_clients_without_origin_pass() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::start(dir.path(), &[]).await;
    let json_type = "Content-Type: application/vnd.schemaregistry.v1+json";
    let body = json!({"schema": "{\"type\":\"string\"}", "schemaType": "JSON"}).to_string();
    let evil = "Origin: http://evil.example";
    let (status, answer) = http_request(
        b.metrics,
        "POST",
        "/subjects/s/versions",
        &[json_type, evil],
        &body,
    )
    .await;
    assert_eq!(status, 403, "{answer}");
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["error_code"],
        40301
    );
    let (status, subjects) = http_request(b.metrics, "GET", "/subjects", &[evil], "").await;
    assert_eq!(status, 200);
    assert_eq!(serde_json::from_str::<Value>(&subjects).unwrap(), json!([]));
    let own = format!("Origin: http://{}", b.metrics);
    for (i, origin) in [Some(own.as_str()), None].into_iter().enumerate() {
        let mut headers = vec![json_type];
        headers.extend(origin);
        let (status, answer) = http_request(
            b.metrics,
            "POST",
            &format!("/subjects/s{i}/versions"),
            &headers,
            &body,
        )
        .await;
        assert_eq!(status, 200, "{origin:?}: {answer}");
    }
}

/// Registrations are on disk when answered: a `kill -9` right after loses
/// none, ids and versions are the same after the restart, and the next
/// registration gets the next id.
#[tokio::test(flavor = "multi_thread")]
async fn registrations_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Broker::spawn(dir.path(), &[]);
    b.wait_serving().await;
    let json_type = "Content-Type: application/vnd.schemaregistry.v1+json";
    let body =
        |schema: Value| json!({"schema": schema.to_string(), "schemaType": "JSON"}).to_string();
    let mut ids = Vec::new();
    for (i, t) in ["string", "number"].iter().enumerate() {
        let subject = format!("s{i}");
        let (status, answer) = http_request(
            b.metrics,
            "POST",
            &format!("/subjects/{subject}/versions"),
            &[json_type],
            &body(json!({"type": t})),
        )
        .await;
        assert_eq!(status, 200, "{answer}");
        ids.push(serde_json::from_str::<Value>(&answer).unwrap()["id"].clone());
    }
    assert_eq!(ids, vec![json!(1), json!(2)]);
    let (status, _) = http_request(
        b.metrics,
        "PUT",
        "/config",
        &[json_type],
        r#"{"compatibility":"FULL_TRANSITIVE"}"#,
    )
    .await;
    assert_eq!(status, 200);
    b.kill9_in_place();
    b.restart_on_a_new_kafka_port().await;
    let (status, answer) = http_request(b.metrics, "GET", "/schemas/ids/2", &[], "").await;
    assert_eq!(status, 200, "{answer}");
    let schema: Value = serde_json::from_str(&answer).unwrap();
    assert_eq!(schema["schemaType"], "JSON");
    assert_eq!(
        serde_json::from_str::<Value>(schema["schema"].as_str().unwrap()).unwrap(),
        json!({"type": "number"})
    );
    let (_, answer) = http_request(b.metrics, "GET", "/config", &[], "").await;
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["compatibilityLevel"],
        "FULL_TRANSITIVE"
    );
    let (_, answer) = http_request(b.metrics, "GET", "/subjects", &[], "").await;
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap(),
        json!(["s0", "s1"])
    );
    let (status, answer) = http_request(
        b.metrics,
        "POST",
        "/subjects/s2/versions",
        &[json_type],
        &body(json!({"type": "boolean"})),
    )
    .await;
    assert_eq!(
        (
            status,
            serde_json::from_str::<Value>(&answer).unwrap()["id"].clone()
        ),
        (200, json!(3))
    );
    // Errors are Confluent's JSON, with its codes.
    let (status, answer) =
        http_request(b.metrics, "GET", "/subjects/nope/versions/latest", &[], "").await;
    assert_eq!(status, 404);
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["error_code"],
        40401
    );
    let (status, answer) =
        http_request(b.metrics, "GET", "/subjects/s0/versions/zero", &[], "").await;
    assert_eq!(
        (
            status,
            serde_json::from_str::<Value>(&answer).unwrap()["error_code"].clone()
        ),
        (422, json!(42202))
    );
    let (status, answer) = http_request(
        b.metrics,
        "POST",
        "/subjects/s0/versions",
        &[json_type],
        "{\"schema\": 5}",
    )
    .await;
    assert_eq!(status, 422, "{answer}");
    // The probes and /metrics still answer beside the registry.
    let (status, answer) = http_request(b.metrics, "GET", "/readyz", &[], "").await;
    assert_eq!((status, answer.as_str()), (200, "ready\n"));
}

/// With `--auth required` the registry wants a token: as HTTP Basic's
/// password (what `basic.auth.user.info` sends) or a Bearer token; reads
/// need `describe` on the cluster, changes `alter`.
#[tokio::test(flavor = "multi_thread")]
async fn with_auth_the_registry_wants_a_token_and_an_acl() {
    let dir = tempfile::tempdir().unwrap();
    let tokens = dir.path().join("tokens.toml");
    let admin = create_token("admin", &tokens);
    let reader = create_token("reader", &tokens);
    let b = Broker::spawn(
        &dir.path().join("data"),
        &[
            "--auth",
            "required",
            "--tokens-file",
            tokens.to_str().unwrap(),
            "--super-users",
            "admin",
        ],
    );
    b.wait_serving().await;
    let body = json!({"schema": "{\"type\":\"string\"}", "schemaType": "JSON"}).to_string();
    let (status, answer) =
        http_request(b.metrics, "POST", "/subjects/a/versions", &[], &body).await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["error_code"],
        40101
    );
    let wrong = basic("admin", "not-a-token");
    let (status, _) =
        http_request(b.metrics, "POST", "/subjects/a/versions", &[&wrong], &body).await;
    assert_eq!(status, 401);
    let admin_basic = basic("admin", &admin);
    let (status, answer) = http_request(
        b.metrics,
        "POST",
        "/subjects/a/versions",
        &[&admin_basic],
        &body,
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let bearer = format!("Authorization: Bearer {reader}");
    let (status, answer) = http_request(b.metrics, "GET", "/subjects", &[&bearer], "").await;
    assert_eq!(
        status, 403,
        "no ACL lets the reader describe the cluster: {answer}"
    );
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["error_code"],
        40301
    );
    let (status, answer) = http_request(b.metrics, "GET", "/subjects", &[&admin_basic], "").await;
    assert_eq!((status, answer.as_str()), (200, "[\"a\"]"));
}

/// An `Authorization: Basic …` header line for `user` and `password`.
fn basic(user: &str, password: &str) -> String {
    use base64::Engine;
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    format!("Authorization: Basic {encoded}")
}

fn brook(b: &Broker, args: &[&str], stdin: Option<&str>) -> (Option<i32>, String, String) {
    let out = brook_tests::brook_cli(b, args, stdin);
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// `brook schema` over gRPC: register from a file and from stdin, list,
/// show, check (exit 1 with the reasons when incompatible), levels, and
/// deletes; what it registers is what the REST API serves.
#[tokio::test(flavor = "multi_thread")]
async fn the_cli_manages_the_same_registry() {
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::spawn(&dir.path().join("data"), &[]);
    b.wait_serving().await;
    let v1 =
        json!({"type": "object", "properties": {"id": {"type": "string"}}, "required": ["id"]});
    let file = dir.path().join("order.json");
    std::fs::write(&file, v1.to_string()).unwrap();
    let (code, out, err) = brook(
        &b,
        &[
            "schema",
            "register",
            "orders-value",
            "--type",
            "json",
            "--file",
            file.to_str().unwrap(),
            "--json",
        ],
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    let registered: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (registered["id"].clone(), registered["created"].clone()),
        (json!(1), json!(true))
    );
    let (code, out, _) = brook(
        &b,
        &[
            "schema",
            "register",
            "orders-value",
            "--type",
            "json",
            "--file",
            "-",
        ],
        Some(&v1.to_string()),
    );
    assert_eq!(code, Some(0));
    assert!(out.contains("has this schema already: version 1"), "{out}");
    let (_, answer) = http_request(
        b.metrics,
        "GET",
        "/subjects/orders-value/versions/1",
        &[],
        "",
    )
    .await;
    assert_eq!(
        serde_json::from_str::<Value>(&answer).unwrap()["id"],
        1,
        "{answer}"
    );

    let bad =
        json!({"type": "object", "properties": {"id": {"type": "integer"}}, "required": ["id"]});
    let (code, out, _) = brook(
        &b,
        &[
            "schema",
            "check",
            "orders-value",
            "--type",
            "json",
            "--schema",
            &bad.to_string(),
        ],
        None,
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("#/properties/id/type: TYPE_CHANGED"), "{out}");
    let (code, _, err) = brook(
        &b,
        &[
            "schema",
            "register",
            "orders-value",
            "--type",
            "json",
            "--schema",
            &bad.to_string(),
        ],
        None,
    );
    assert_ne!(code, Some(0));
    assert!(
        err.contains("SCHEMA_INCOMPATIBLE") || err.contains("incompatible"),
        "{err}"
    );

    let (code, out, err) = brook(
        &b,
        &[
            "schema",
            "compat",
            "set",
            "none",
            "--subject",
            "orders-value",
        ],
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("NONE (orders-value's own)"), "{out}");
    let (code, _, err) = brook(
        &b,
        &[
            "schema",
            "register",
            "orders-value",
            "--type",
            "json",
            "--schema",
            &bad.to_string(),
        ],
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    let (_, out, _) = brook(&b, &["schema", "list", "orders-value", "--json"], None);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["versions"],
        json!([1, 2])
    );
    let (_, out, _) = brook(&b, &["schema", "show", "--id", "2", "--json"], None);
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["schemaType"], "JSON");
    assert_eq!(
        serde_json::from_str::<Value>(shown["schema"].as_str().unwrap()).unwrap(),
        bad
    );
    let (_, out, _) = brook(&b, &["schema", "compat", "get"], None);
    assert!(out.contains("BACKWARD (the default)"), "{out}");

    let (code, _, err) = brook(
        &b,
        &[
            "schema",
            "delete",
            "orders-value",
            "--version",
            "2",
            "--permanent",
        ],
        None,
    );
    assert_ne!(code, Some(0), "a permanent delete needs a soft one first");
    assert!(
        err.contains("SCHEMA_NOT_FOUND") || err.contains("not deleted first"),
        "{err}"
    );
    let (code, out, err) = brook(
        &b,
        &["schema", "delete", "orders-value", "--version", "2"],
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("[2] softly"), "{out}");
    let (_, out, _) = brook(&b, &["schema", "show", "orders-value", "--json"], None);
    assert_eq!(
        serde_json::from_str::<Value>(&out).unwrap()["version"],
        1,
        "latest is 1 again"
    );
    let (_, out, _) = brook(&b, &["schema", "list"], None);
    assert_eq!(out.trim(), "orders-value");
}

/// A value as Confluent's serializers frame it: magic 0, the id, the payload.
fn framed(id: u32, payload: &str) -> Vec<u8> {
    let mut v = vec![0u8];
    v.extend_from_slice(&id.to_be_bytes());
    v.extend_from_slice(payload.as_bytes());
    v
}

/// Registers a JSON Schema over REST; its id.
async fn register_json(b: &Broker, subject: &str, schema: Value) -> u32 {
    let body = json!({"schema": schema.to_string(), "schemaType": "JSON"}).to_string();
    let path = format!("/subjects/{subject}/versions");
    let (status, answer) = http_request(b.metrics, "POST", &path, &[], &body).await;
    assert_eq!(status, 200, "{answer}");
    serde_json::from_str::<Value>(&answer).unwrap()["id"]
        .as_u64()
        .unwrap() as u32
}

/// `kcat -P` of `lines` to `orders` (to `partition`, or kcat's choice).
fn kcat_produce(b: &Broker, partition: Option<&str>, lines: &[Vec<u8>]) -> std::process::Output {
    use std::io::Write;
    let bootstrap = b.kafka_bootstrap();
    let mut args = vec!["-b", &bootstrap, "-P", "-t", "orders"];
    args.extend(["-X", "message.timeout.ms=5000"]);
    if let Some(p) = partition {
        args.extend(["-p", p]);
    }
    let mut p = Command::new("kcat")
        .args(&args)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("kcat (scripts/kafka-clients.sh installs it)");
    let mut input = p.stdin.take().unwrap();
    for line in lines {
        input.write_all(line).unwrap();
        input.write_all(b"\n").unwrap();
    }
    drop(input);
    p.wait_with_output().unwrap()
}

/// The log end of a one-partition topic.
async fn log_end(b: &Broker, topic: &str) -> u64 {
    brook_tests::describe_topic(b, topic).await.partitions[0].log_end_offset
}

/// A topic bound to a subject refuses, on every produce path, a request
/// with a record that does not follow it, storing none of its records, and
/// says which record, where and why; valid records are stored. The binding
/// outlives a `kill -9`.
#[tokio::test(flavor = "multi_thread")]
async fn a_bound_topic_refuses_invalid_records_on_every_produce_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Broker::spawn(&dir.path().join("data"), &[]);
    b.wait_serving().await;
    create_topic(&b, "orders", 1).await;
    let order = json!({"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]});
    let id = register_json(&b, "orders-value", order).await;
    let other = register_json(&b, "users-value", json!({"type": "string"})).await;
    let (code, out, err) = brook(
        &b,
        &[
            "schema",
            "bind",
            "orders",
            "--value-subject",
            "orders-value",
            "--mode",
            "full",
        ],
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("values orders-value, keys -, mode full"),
        "{out}"
    );

    let publish = |values: Vec<Vec<u8>>| v1::PublishRequest {
        topic: "orders".into(),
        records: values
            .into_iter()
            .map(|v| v1::PublishRecord {
                value: Some(v.into()),
                ..Default::default()
            })
            .collect(),
        acks: v1::Acks::Durable as i32,
    };
    let mut producer = b.producer().await;
    let refused = producer
        .publish(publish(vec![
            framed(id, r#"{"total": 1}"#),
            framed(id, r#"{"total": "one"}"#),
        ]))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    assert_eq!(
        brook_tests::reason(&refused).as_deref(),
        Some("SCHEMA_VALIDATION_FAILED")
    );
    let meta = |k| brook_tests::error_metadata(&refused, k);
    assert_eq!(
        (
            meta("record_index"),
            meta("schema_id"),
            meta("path"),
            meta("subject")
        ),
        (
            Some("1".into()),
            Some(id.to_string()),
            Some("/total".into()),
            Some("orders-value".into())
        )
    );
    assert_eq!(
        log_end(&b, "orders").await,
        0,
        "nothing of the request was stored"
    );
    producer
        .publish(publish(vec![
            framed(id, r#"{"total": 1}"#),
            framed(id, r#"{"total": 2.5}"#),
        ]))
        .await
        .unwrap();
    assert_eq!(log_end(&b, "orders").await, 2);

    // A raw batch (the Rust client's path) with another subject's id.
    let batch = brook_tests::batch_of(None, &[&framed(other, "\"x\"")]);
    let refused = producer
        .produce(v1::ProduceRequest {
            topic: "orders".into(),
            partition: 0,
            batch: batch.into_bytes(),
            acks: v1::Acks::Written as i32,
        })
        .await
        .unwrap_err();
    assert_eq!(
        brook_tests::error_metadata(&refused, "schema_id"),
        Some(other.to_string())
    );
    assert!(
        refused.message().contains("is not a version of subject"),
        "{refused:?}"
    );

    // The Kafka listener: kcat's plain line is refused, a framed one stored.
    let out = kcat_produce(&b, None, &[br#"{"total": 3}"#.to_vec()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    // librdkafka's words for INVALID_RECORD (87).
    assert!(stderr.contains("failed to validate record"), "{stderr}");
    assert_eq!(log_end(&b, "orders").await, 2);
    let out = kcat_produce(&b, None, &[framed(id, r#"{"total": 3}"#)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(log_end(&b, "orders").await, 3);

    // After a crash the binding holds; `id` mode lets any payload of the subject through.
    b.kill9_in_place();
    b.restart_on_a_new_kafka_port().await;
    let mut producer = b.producer().await;
    let refused = producer
        .publish(publish(vec![b"plain".to_vec()]))
        .await
        .unwrap_err();
    assert!(
        refused
            .message()
            .contains("does not start with a schema id"),
        "{refused:?}"
    );
    let (code, _, err) = brook(
        &b,
        &[
            "schema",
            "bind",
            "orders",
            "--value-subject",
            "orders-value",
            "--mode",
            "id",
        ],
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    producer
        .publish(publish(vec![framed(id, "not even JSON")]))
        .await
        .unwrap();
    let (code, out, _) = brook(&b, &["schema", "bind", "orders", "--unbind"], None);
    assert_eq!(code, Some(0));
    assert!(out.contains("is not bound"), "{out}");
    producer
        .publish(publish(vec![b"plain".to_vec()]))
        .await
        .unwrap();
    assert_eq!(log_end(&b, "orders").await, 5);
}

/// An order event as a service's code knows it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct OrderPlaced {
    order_id: String,
    total: f64,
}

/// The Rust client's typed serializers: a value that breaks the contract
/// never leaves the service; what it sends is Confluent's framing, which
/// the broker's `full` validation accepts and confluent-style readers can
/// read; on receipt every value is checked against the schema its id
/// names, and an invalid one is an error naming the schema and the field.
#[tokio::test(flavor = "multi_thread")]
async fn the_rust_client_checks_contracts_at_both_boundaries() {
    use brook_client::{ContractError, JsonDeserializer, JsonSerializer, ReadFrom};
    let dir = tempfile::tempdir().unwrap();
    let b = Broker::spawn(&dir.path().join("data"), &["--kafka-listen", "off"]);
    b.wait_serving().await;
    create_topic(&b, "orders", 1).await;
    let client = brook_client::Client::connect(format!("http://{}", b.grpc))
        .await
        .unwrap();
    let schema = json!({"type": "object", "properties": {"order_id": {"type": "string"},
        "total": {"type": "number", "minimum": 0}}, "required": ["order_id", "total"]});
    let serializer =
        JsonSerializer::<OrderPlaced>::register(&client, "orders-value", &schema.to_string())
            .await
            .unwrap();
    let again =
        JsonSerializer::<OrderPlaced>::register(&client, "orders-value", &schema.to_string())
            .await
            .unwrap();
    assert_eq!(
        serializer.schema_id(),
        again.schema_id(),
        "the same schema, the same id"
    );
    client
        .admin()
        .set_topic_schema("orders", "orders-value", "", "full")
        .await
        .unwrap();

    let good = OrderPlaced {
        order_id: "o-1".into(),
        total: 12.5,
    };
    let bad = OrderPlaced {
        order_id: "o-2".into(),
        total: -1.0,
    };
    match serializer.serialize(&bad) {
        Err(ContractError::Invalid {
            path, schema_id, ..
        }) => {
            assert_eq!(
                (path.as_str(), schema_id),
                ("/total", serializer.schema_id())
            )
        }
        other => panic!("expected the contract to refuse it: {other:?}"),
    }
    let producer = client.producer(Default::default());
    producer
        .send("orders", Some("o-1"), serializer.serialize(&good).unwrap())
        .await
        .unwrap()
        .await
        .unwrap();
    // A producer that bypasses the contract is stopped by the broker.
    let forged = [
        &[0u8][..],
        &serializer.schema_id().to_be_bytes(),
        br#"{"order_id":"o-3","total":-5}"#,
    ]
    .concat();
    let refused = producer
        .send("orders", Some("o-3"), &forged)
        .await
        .unwrap()
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("does not follow subject"),
        "{refused}"
    );

    let deserializer = JsonDeserializer::<OrderPlaced>::new(&client);
    let mut reader = client
        .reader("orders", 0, ReadFrom::Earliest)
        .await
        .unwrap();
    let record = reader.recv().await.unwrap();
    let order = deserializer
        .deserialize(record.value.as_deref().unwrap())
        .await
        .unwrap();
    assert_eq!((record.offset, order), (0, good));
    // On receipt: an invalid value (written before any binding, say) and
    // an unframed one are errors the handler sees.
    match deserializer.deserialize(&forged).await {
        Err(ContractError::Invalid { path, .. }) => assert_eq!(path, "/total"),
        other => panic!("expected Invalid: {other:?}"),
    }
    assert!(matches!(
        deserializer.deserialize(b"{}").await,
        Err(ContractError::NotFramed)
    ));
    let unknown = [&[0u8][..], &9999u32.to_be_bytes(), b"{}"].concat();
    assert!(matches!(
        deserializer.deserialize(&unknown).await,
        Err(ContractError::Registry(_))
    ));
}

/// Every record of every partition of `topic`, with its headers.
async fn all_records(b: &Broker, topic: &str) -> Vec<brook_protocol::batch::Record> {
    let partitions = brook_tests::describe_topic(b, topic).await.partitions.len() as u32;
    let mut out = Vec::new();
    for p in 0..partitions {
        for batch in fetch_batches(b, topic, p, 0).await {
            out.extend(batch.records().map(|r| r.unwrap()));
        }
    }
    out
}

fn header<'r>(r: &'r brook_protocol::batch::Record, key: &str) -> Option<&'r [u8]> {
    r.headers
        .iter()
        .find(|h| h.key == key)
        .map(|h| h.value.as_ref())
}

/// A topic bound with `--on-invalid dead-letter` stores the valid records
/// of a request and sends the invalid ones to `<topic>.dlq` (created on
/// first use), key, value and headers kept, the reason added, on every
/// produce path: gRPC Publish (each position says where its record went),
/// the Rust client's idempotent producer (a dead-lettered send fails with
/// `Error::DeadLettered`; its offset is a gap; the producer's sequence goes
/// on, even after a batch with no valid record), and the Kafka listener.
/// kafka-python and librdkafka consumers read the valid records over the
/// gaps; a group consumer reads them and its lag reaches 0 past the gaps;
/// the dead letters survive `kill -9`.
#[tokio::test(flavor = "multi_thread")]
async fn invalid_records_go_to_the_dead_letter_topic_on_every_produce_path() {
    let dir = tempfile::tempdir().unwrap();
    let mut b = Broker::spawn(&dir.path().join("data"), &[]);
    b.wait_serving().await;
    create_topic(&b, "orders", 2).await;
    let schema = json!({"type": "object", "properties": {"total": {"type": "number"}}, "required": ["total"]});
    let id = register_json(&b, "orders-value", schema).await;
    let (code, out, err) = brook(
        &b,
        &[
            "schema",
            "bind",
            "orders",
            "--value-subject",
            "orders-value",
            "--mode",
            "full",
            "--on-invalid",
            "dead-letter",
        ],
        None,
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(out.contains("invalid records to orders.dlq"), "{out}");

    // gRPC Publish: two of four records fail.
    let record = |key: &str, value: Vec<u8>| v1::PublishRecord {
        key: Some(key.as_bytes().to_vec().into()),
        value: Some(value.into()),
        headers: vec![v1::Header {
            key: "correlation-id".into(),
            value: format!("c-{key}").into_bytes().into(),
        }],
        ..Default::default()
    };
    let mut producer = b.producer().await;
    let positions = producer
        .publish(v1::PublishRequest {
            topic: "orders".into(),
            records: vec![
                record("a", framed(id, r#"{"total": 1}"#)),
                record("b", framed(id, r#"{"total": "one"}"#)),
                record("c", framed(id, r#"{"total": 3}"#)),
                record("d", b"plain".to_vec()),
            ],
            acks: v1::Acks::Durable as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .positions;
    let went: Vec<&str> = positions
        .iter()
        .map(|p| p.dead_letter_topic.as_str())
        .collect();
    assert_eq!(went, ["", "orders.dlq", "", "orders.dlq"]);
    assert!(
        positions[1].dead_letter_reason.contains("/total"),
        "{positions:?}"
    );
    assert!(
        positions[3]
            .dead_letter_reason
            .contains("does not start with a schema id"),
        "{positions:?}"
    );
    assert_eq!(
        brook_tests::describe_topic(&b, "orders.dlq")
            .await
            .partitions
            .len(),
        2,
        "created with the topic's partition count"
    );

    // The Rust client's idempotent producer, one key (one partition).
    let client = brook_client::Client::connect(format!("http://{}", b.grpc))
        .await
        .unwrap();
    let rust = client.producer(Default::default());
    let send = |value: Vec<u8>| rust.send("orders", Some("k"), value);
    let mut deliveries = Vec::new();
    for i in 0..6 {
        let value = match i % 2 {
            0 => framed(id, &format!(r#"{{"total": {i}}}"#)),
            _ => framed(id, r#"{"total": null}"#),
        };
        deliveries.push(send(value).await.unwrap());
    }
    let mut stored = Vec::new();
    for (i, d) in deliveries.into_iter().enumerate() {
        match (i % 2, d.await) {
            (0, Ok(m)) => stored.push((i, m.partition, m.offset)),
            (
                1,
                Err(brook_client::Error::DeadLettered {
                    dead_letter_topic,
                    reason,
                }),
            ) => {
                assert_eq!(dead_letter_topic, "orders.dlq");
                assert!(reason.contains("/total"), "{reason}");
            }
            (_, other) => panic!("record {i}: {other:?}"),
        }
    }
    // Each delivery names where its own record is.
    for &(i, partition, offset) in &stored {
        let record = fetch_batches(&b, "orders", partition, offset)
            .await
            .iter()
            .flat_map(|batch| batch.records().map(|r| r.unwrap()))
            .find(|r| r.offset == offset)
            .expect("a record at the delivery's offset");
        let total: Value = serde_json::from_slice(&record.value.unwrap()[5..]).unwrap();
        assert_eq!(total["total"], i, "record {i} at {partition}/{offset}");
    }
    assert!(stored.windows(2).all(|w| w[1].2 > w[0].2), "{stored:?}");
    // A batch with no valid record at all, then the sequence goes on; and
    // the partition ends with one more such batch (a gap at its end).
    let alone = send(b"plain".to_vec()).await.unwrap().await;
    assert!(
        matches!(alone, Err(brook_client::Error::DeadLettered { .. })),
        "{alone:?}"
    );
    let after = send(framed(id, r#"{"total": 9}"#))
        .await
        .unwrap()
        .await
        .unwrap();
    assert!(after.offset > stored.last().unwrap().2 + 1, "{after:?}");
    let last = send(b"plain too".to_vec()).await.unwrap().await;
    assert!(
        matches!(last, Err(brook_client::Error::DeadLettered { .. })),
        "{last:?}"
    );

    // The Kafka listener: kcat's three lines, one of them not framed, to
    // the other partition (the producer's ends with a gap).
    let other_partition = (1 - after.partition).to_string();
    let lines = [
        framed(id, r#"{"total": 10}"#),
        b"{\"total\": 11}".to_vec(),
        framed(id, r#"{"total": 12}"#),
    ];
    let out = kcat_produce(&b, Some(&other_partition), &lines);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // What the topic holds: the valid records only.
    let valid: Vec<Value> = all_records(&b, "orders")
        .await
        .iter()
        .map(|r| serde_json::from_slice(&r.value.as_ref().unwrap()[5..]).unwrap())
        .collect();
    let mut totals: Vec<i64> = valid.iter().map(|v| v["total"].as_i64().unwrap()).collect();
    totals.sort_unstable();
    assert_eq!(totals, [0, 1, 2, 3, 4, 9, 10, 12]);

    // What the dead-letter topic holds: the others, with where and why.
    let check_dead_letters = async |b: &Broker| {
        let dead = all_records(b, "orders.dlq").await;
        assert_eq!(dead.len(), 2 + 3 + 2 + 1, "publish, producer, alone, kcat");
        for r in &dead {
            assert_eq!(header(r, "brook-invalid-topic"), Some(&b"orders"[..]));
            assert_eq!(header(r, "brook-invalid-field"), Some(&b"value"[..]));
            assert_eq!(
                header(r, "brook-invalid-subject"),
                Some(&b"orders-value"[..])
            );
            assert!(header(r, "brook-invalid-reason").is_some_and(|v| !v.is_empty()));
            assert!(header(r, "brook-invalid-time-ms").is_some());
        }
        let b_record = dead
            .iter()
            .find(|r| r.key.as_deref() == Some(&b"b"[..]))
            .expect("the published record b");
        assert_eq!(
            b_record.value.as_deref(),
            Some(&framed(id, r#"{"total": "one"}"#)[..])
        );
        assert_eq!(header(b_record, "correlation-id"), Some(&b"c-b"[..]));
        assert_eq!(header(b_record, "brook-invalid-path"), Some(&b"/total"[..]));
        assert_eq!(
            header(b_record, "brook-invalid-schema-id"),
            Some(id.to_string().as_bytes())
        );
    };
    check_dead_letters(&b).await;
    let metrics = b.metrics_text().await;
    assert!(
        metrics.contains(r#"brook_schema_dead_lettered_records_total{topic="orders"} 8"#),
        "{metrics}"
    );

    // Kafka consumers (kafka-python; librdkafka) read them over the gaps.
    for command in ["kafka-python-consume", "confluent-consume"] {
        let out = Command::new(kafka_python())
            .arg(workspace_root().join("tests/kafka/clients.py"))
            .args([&b.kafka_bootstrap(), command, "orders", "8"])
            .stderr(Stdio::inherit())
            .output()
            .unwrap();
        assert!(out.status.success(), "{command}");
        let mut read: Vec<i64> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(|l| {
                let v: Value = serde_json::from_str(l).unwrap();
                let value = v["value"].as_str().unwrap().as_bytes()[5..].to_vec();
                serde_json::from_slice::<Value>(&value).unwrap()["total"]
                    .as_i64()
                    .unwrap()
            })
            .collect();
        read.sort_unstable();
        assert_eq!(read, totals, "{command}");
    }

    // A partition reader's position reaches the log end past the gaps (the
    // producer's partition ends with a batch of no records).
    let end = brook_tests::describe_topic(&b, "orders").await.partitions[after.partition as usize]
        .log_end_offset;
    let mut reader = client
        .reader("orders", after.partition, brook_client::ReadFrom::Earliest)
        .await
        .unwrap();
    let mut offsets = Vec::new();
    let read_to_end = async {
        while reader.position() < end {
            offsets.push(reader.recv().await.unwrap().offset);
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(20), read_to_end)
        .await
        .expect("the reader's position reaches the log end");
    assert!(offsets.contains(&after.offset), "{offsets:?}");
    assert_eq!(reader.position(), end);

    // A group consumer reads the valid records, and its lag reaches 0
    // past the gaps, the one at the partition's end too.
    let mut consumer = client
        .consumer(brook_client::ConsumerConfig::new("audit", &["orders"]))
        .await
        .unwrap();
    let mut read = Vec::new();
    brook_tests::eventually("the group reads every valid record", async || {
        while let Ok(Ok(r)) =
            tokio::time::timeout(std::time::Duration::from_millis(200), consumer.recv()).await
        {
            read.push(r.offset);
        }
        read.len() >= 8 && consumer.at_end()
    })
    .await;
    assert_eq!(read.len(), 8, "{read:?}");
    consumer.commit().await.unwrap();
    let lag = client.admin().consumer_lag("audit", None).await.unwrap();
    assert_eq!(lag.total_lag_records, 0, "{lag:?}");
    consumer.close().await.unwrap();

    b.kill9_in_place();
    b.restart_on_a_new_kafka_port().await;
    check_dead_letters(&b).await;
    let mut producer = b.producer().await;
    let positions = producer
        .publish(v1::PublishRequest {
            topic: "orders".into(),
            records: vec![record("e", b"plain".to_vec())],
            acks: v1::Acks::Durable as i32,
        })
        .await
        .unwrap()
        .into_inner()
        .positions;
    assert_eq!(
        positions[0].dead_letter_topic, "orders.dlq",
        "the binding holds"
    );

    // An idempotent producer's retry of a stored batch is answered as the
    // first time and writes no dead letter again; a refused batch writes none.
    let dead_before = all_records(&b, "orders.dlq").await.len();
    let ids = producer
        .init_producer(v1::InitProducerRequest {})
        .await
        .unwrap()
        .into_inner();
    let idempotent = |sequence: i32, values: &[&[u8]]| {
        let epoch = ids.producer_epoch as i16;
        let mut batch = BatchBuilder::new().producer(ids.producer_id, epoch, sequence);
        for v in values {
            batch.push(1_700_000_000_000, None, Some(v), &[]);
        }
        v1::ProduceRequest {
            topic: "orders".into(),
            partition: 0,
            batch: batch.build(0),
            acks: v1::Acks::Durable as i32,
        }
    };
    let valid = framed(id, r#"{"total": 20}"#);
    let request = idempotent(0, &[&valid, b"plain"]);
    let first = producer
        .produce(request.clone())
        .await
        .unwrap()
        .into_inner();
    let again = producer.produce(request).await.unwrap().into_inner();
    assert_eq!((&first.dead_lettered, first.duplicate), (&vec![1], false));
    assert_eq!((&again.dead_lettered, again.duplicate), (&vec![1], true));
    assert_eq!(again.base_offset, first.base_offset);
    assert_eq!(all_records(&b, "orders.dlq").await.len(), dead_before + 1);
    let gap = producer
        .produce(idempotent(5, &[b"plain"]))
        .await
        .unwrap_err();
    assert_eq!(
        brook_tests::reason(&gap).as_deref(),
        Some("OUT_OF_ORDER_SEQUENCE")
    );
    assert_eq!(all_records(&b, "orders.dlq").await.len(), dead_before + 1);

    // `brook produce` goes on past a line that is dead-lettered and says so.
    let (code, _, err) = brook(&b, &["produce", "orders"], Some("plain line\n"));
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("went to its dead-letter topic"), "{err}");
    assert_eq!(all_records(&b, "orders.dlq").await.len(), dead_before + 2);
}
