//! The `brook` command line against a real broker.

use std::process::{Command, Stdio};

use brook_tests::{Broker, brook_binary};

fn brook(b: &Broker, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    let out = brook_tests::brook_cli(b, args, stdin);
    (
        out.status.success(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_produce_consume_groups_and_lag_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    let (ok, out, err) = brook(
        &broker,
        &["topic", "create", "orders", "--partitions", "3"],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains("orders") && out.contains("PARTITION"), "{out}");

    let lines: String = (0..30)
        .map(|i| {
            format!(
                "{{\"type\":\"OrderPlaced\",\"aggregate_id\":\"order-{}\",\"n\":{i}}}\n",
                i % 6
            )
        })
        .collect();
    let (ok, _, err) = brook(
        &broker,
        &[
            "produce",
            "orders",
            "--key-field",
            "aggregate_id",
            "--header",
            "source=cli",
        ],
        Some(&lines),
    );
    assert!(ok, "{err}");
    assert!(err.contains("produced 30 records"), "{err}");

    let (ok, out, _) = brook(&broker, &["topic", "list", "--json"], None);
    assert!(ok && out.contains("\"orders\""), "{out}");

    let (ok, out, err) = brook(
        &broker,
        &[
            "consume", "orders", "--from", "earliest", "--max", "30", "--format", "json",
        ],
        None,
    );
    assert!(ok, "{err}");
    let records: Vec<&str> = out.lines().collect();
    assert_eq!(records.len(), 30);
    assert!(
        records
            .iter()
            .all(|r| r.contains("\"source\":\"cli\"") && r.contains("\"key\":\"order-")),
        "{out}"
    );

    // A group member commits what it consumed; lag shows the rest.
    let (ok, out, err) = brook(
        &broker,
        &["consume", "orders", "--group", "billing", "--max", "30"],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 30);
    let (ok, out, err) = brook(&broker, &["lag", "billing", "--json"], None);
    assert!(ok, "{err}");
    assert!(out.contains("\"total_lag_records\":0"), "{out}");
    let (ok, out, _) = brook(
        &broker,
        &[
            "group",
            "reset-offsets",
            "billing",
            "--topic",
            "orders",
            "--to",
            "earliest",
            "--dry-run",
        ],
        None,
    );
    assert!(ok && out.contains("dry run"), "{out}");
    let (ok, out, _) = brook(&broker, &["lag"], None);
    assert!(
        ok && out.contains("billing") && out.contains("TIME LAG"),
        "{out}"
    );

    let (ok, _, err) = brook(&broker, &["topic", "describe", "nope"], None);
    assert!(!ok, "a failed command exits non-zero");
    assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
    assert!(err.contains("nope"), "{err}");
}

/// `--json` on `consume` prints JSON like `--format json`; an unknown topic
/// gets the command that creates it, on produce and on consume.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_json_and_the_unknown_topic_hint() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    let (ok, _, err) = brook(&broker, &["produce", "nosuch"], Some("a\n"));
    assert!(!ok, "producing to a missing topic fails");
    assert!(err.contains("brook topic create nosuch"), "{err}");
    let (ok, _, err) = brook(&broker, &["consume", "nosuch", "--max", "1"], None);
    assert!(!ok);
    assert!(err.contains("brook topic create nosuch"), "{err}");

    let (ok, _, err) = brook(
        &broker,
        &["topic", "create", "t", "--partitions", "1"],
        None,
    );
    assert!(ok, "{err}");
    let (ok, _, err) = brook(&broker, &["produce", "t", "--key", "k"], Some("v1\n"));
    assert!(ok, "{err}");
    let (ok, json, err) = brook(&broker, &["consume", "t", "--max", "1", "--json"], None);
    assert!(ok, "{err}");
    let (ok, format_json, err) = brook(
        &broker,
        &["consume", "t", "--max", "1", "--format", "json"],
        None,
    );
    assert!(ok, "{err}");
    let record: serde_json::Value = serde_json::from_str(json.trim()).expect("one JSON line");
    assert_eq!(record["value"], "v1");
    assert_eq!(record["key"], "k");
    assert_eq!(json, format_json, "--json and --format json print the same");
}

/// Reading partitions directly leaves no group behind and commits nothing;
/// `--from offset:N` outside a partition is a clear error, not a silent
/// restart from the beginning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reading_directly_leaves_nothing_behind_and_checks_its_offset() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    let (ok, _, err) = brook(
        &broker,
        &["topic", "create", "orders", "--partitions", "3"],
        None,
    );
    assert!(ok, "{err}");
    let (ok, _, err) = brook(
        &broker,
        &["produce", "orders", "--key", "k"],
        Some("a\nb\n"),
    );
    assert!(ok, "{err}");
    // Both records went to k's partition; the other two are empty.
    let (ok, out, err) = brook(&broker, &["consume", "orders", "--max", "2"], None);
    assert!(ok, "{err}");
    assert_eq!(out, "a\nb\n");
    // The address as the broker prints it (host:port, no scheme) works too.
    let (ok, out, err) = brook(
        &broker,
        &["topic", "list", "--url", &broker.grpc.to_string()],
        None,
    );
    assert!(ok && out.contains("orders"), "{out}{err}");
    let (ok, groups, err) = brook(&broker, &["group", "list", "--json"], None);
    assert!(ok, "{err}");
    assert!(
        !groups.contains("brook-cli"),
        "no group left behind: {groups}"
    );

    // offset:1 exists only in k's partition: reading all three is refused up front.
    let (ok, _, err) = brook(
        &broker,
        &["consume", "orders", "--from", "offset:1", "--max", "1"],
        None,
    );
    assert!(!ok, "an offset past an empty partition's end is an error");
    assert!(err.contains("offset:1 is outside orders/"), "{err}");
    let (ok, _, err) = brook(
        &broker,
        &[
            "consume",
            "orders",
            "--partition",
            "0",
            "--from",
            "offset:99",
            "--max",
            "1",
        ],
        None,
    );
    assert!(!ok);
    assert!(err.contains("offset:99 is outside orders/0"), "{err}");
    // Inside the partition that holds it, offset:1 reads from there.
    let p = brook_protocol::partitioner::partition_for_key(b"k", 3).to_string();
    let (ok, out, err) = brook(
        &broker,
        &[
            "consume",
            "orders",
            "--partition",
            &p,
            "--from",
            "offset:1",
            "--max",
            "1",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(out, "b\n");
}

/// `brook produce` says where records went (`--verbose`), always sums up,
/// keys lines with `--key-separator`, skips empty lines, and on a bad line
/// names it and how many records before it were stored.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_reports_where_records_went_and_which_line_failed() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    let (ok, _, err) = brook(
        &broker,
        &["topic", "create", "t", "--partitions", "2"],
        None,
    );
    assert!(ok, "{err}");

    let args = ["produce", "t", "--key-separator", ":", "--verbose"];
    let (ok, out, err) = brook(&broker, &args, Some("k1:v1\n\nk2:v2\n"));
    assert!(ok, "{err}");
    let acks: Vec<&str> = out.lines().collect();
    assert_eq!(acks.len(), 2, "one line per record: {out}");
    assert!(
        acks[0].starts_with("line 1: partition ") && acks[1].starts_with("line 3: partition "),
        "{out}"
    );
    assert!(err.contains("produced 2 records (8 bytes)"), "{err}");
    assert!(err.contains("1 empty lines skipped"), "{err}");

    let args = [
        "produce",
        "t",
        "--key-separator",
        ":",
        "--verbose",
        "--json",
    ];
    let (ok, out, err) = brook(&broker, &args, Some("k3:v3\n"));
    assert!(ok, "{err}");
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2, "an ack line, then the summary: {out}");
    assert_eq!(lines[0]["line"], 1);
    let p = brook_protocol::partitioner::partition_for_key(b"k3", 2);
    assert_eq!(lines[0]["partition"], p);
    assert_eq!(lines[1]["records"], 1);
    assert_eq!(lines[1]["bytes"], 4);
    assert_eq!(lines[1]["partitions"], serde_json::json!([p]));

    let args = ["produce", "t", "--key-field", "id"];
    let (ok, _, err) = brook(
        &broker,
        &args,
        Some("{\"id\":\"a\"}\nnot json\n{\"id\":\"b\"}\n"),
    );
    assert!(!ok, "a bad line stops the command");
    assert!(err.contains("input line 2 is not JSON"), "{err}");
    assert!(err.contains(" at column "), "{err}");
    assert!(
        !err.contains("at line 1"),
        "no line number of the JSON parser's: {err}"
    );
    assert!(
        err.contains("stopped at input line 2; the 1 records before it were stored"),
        "{err}"
    );

    let (ok, _, err) = brook(
        &broker,
        &["produce", "t", "--key-separator", ":"],
        Some("a:1\nb\n"),
    );
    assert!(!ok);
    assert!(err.contains("input line 2 has no key separator"), "{err}");
    // Stored: k1, k2, k3, the JSON line with id a, and a:1.
    let (ok, out, err) = brook(&broker, &["consume", "t", "--max", "5"], None);
    assert!(ok, "{err}");
    let mut values: Vec<&str> = out.lines().collect();
    values.sort();
    assert_eq!(values, ["1", "v1", "v2", "v3", "{\"id\":\"a\"}"]);
}

/// `brook health` says whether the broker serves, with its version and
/// uptime, and its exit status says the same: not while the log recovers,
/// yes once it serves, no for an address where nothing answers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_reports_serving_version_and_uptime_in_its_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::spawn_recovering(dir.path(), &["--debug-delay-recovery-ms", "8000"]);
    // Ports are bound before recovery starts: poll until the broker answers.
    let mut answer = None;
    brook_tests::eventually("brook health to get an answer", async || {
        let (ok, out, err) = brook(&broker, &["health", "--json"], None);
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap_or_default();
        if v["reachable"] == true {
            answer = Some((ok, v, err));
        }
        answer.is_some()
    })
    .await;
    let (ok, v, err) = answer.unwrap();
    assert!(!ok, "recovering is not healthy: {v} {err}");
    assert_eq!(v["serving"], false, "{v}");

    broker.wait_serving().await;
    let (ok, out, err) = brook(&broker, &["health"], None);
    assert!(ok, "{out} {err}");
    assert!(out.starts_with("serving: brook "), "{out}");
    let (ok, out, _) = brook(&broker, &["health", "--json"], None);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["healthy"], true);
    assert_eq!(v["version"], env!("CARGO_PKG_VERSION"));
    assert!(v["commit"].as_str().is_some_and(|c| !c.is_empty()), "{v}");
    assert!(v["uptime_ms"].as_u64().unwrap() >= 8000, "{v}");
    let started = v["started_at_ms"].as_i64().unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    assert!(started <= now && started > now - 600_000, "{v}");

    // The metrics port speaks HTTP/1: the error says which port is gRPC's.
    let metrics = broker.metrics.to_string();
    let (ok, _, err) = brook(&broker, &["topic", "list", "--url", &metrics], None);
    assert!(!ok);
    assert!(err.contains("is it the metrics port"), "{err}");
    let (ok, out, _) = brook(&broker, &["health", "--url", &metrics], None);
    assert!(!ok);
    assert!(out.contains("is it the metrics port"), "{out}");

    // Nothing listens on port 1.
    let (ok, out, _) = brook(
        &broker,
        &["health", "--url", "127.0.0.1:1", "--timeout", "3s"],
        None,
    );
    assert!(!ok);
    assert!(out.starts_with("unreachable: "), "{out}");
    assert_eq!(
        out.matches("http://127.0.0.1:1").count(),
        1,
        "named once: {out}"
    );
    broker.terminate();
}

/// `brook topic alter --set` changes settings on the running broker,
/// `describe` shows them, a crash and restart keep them, and what cannot change is
/// refused with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_alter_changes_settings_that_describe_shows_and_a_restart_keeps() {
    let dir = tempfile::tempdir().unwrap();
    let mut broker = Broker::start(dir.path(), &[]).await;
    let (ok, _, err) = brook(&broker, &["topic", "create", "t"], None);
    assert!(ok, "{err}");
    let settings = |broker: &Broker| {
        let (ok, out, err) = brook(broker, &["topic", "describe", "t", "--json"], None);
        assert!(ok, "{err}");
        let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
        v["settings"].clone()
    };
    let before = settings(&broker);
    assert_eq!(before["retention_ms"], 604_800_000, "{before}");

    let (ok, out, err) = brook(
        &broker,
        &[
            "topic",
            "alter",
            "t",
            "--set",
            "retention_ms=-1",
            "--set",
            "flush=always",
            "--set",
            "segment.bytes=4096",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains("SETTING") && out.contains("always"), "{out}");
    let after = settings(&broker);
    assert_eq!(after["retention_ms"], -1, "{after}");
    assert_eq!(after["flush"], "always");
    assert_eq!(after["segment_bytes"], 4096);
    assert_eq!(after["max_batch_bytes"], before["max_batch_bytes"]);

    // The smaller segments apply at once: 20 KB of records roll several.
    let lines: String = (0..20)
        .map(|i| format!("{i}{}\n", "x".repeat(1000)))
        .collect();
    for line in lines.lines() {
        let (ok, _, err) = brook(&broker, &["produce", "t"], Some(line));
        assert!(ok, "{err}");
    }
    let (_, out, _) = brook(&broker, &["topic", "describe", "t", "--json"], None);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let segments = v["partitions"][0]["segments"].as_u64().unwrap();
    assert!(segments >= 3, "{v}");

    for (set, says) in [
        ("max_batch_bytes=1024", "fixed when the topic is created"),
        ("retention=5", "the settings are retention_ms"),
        ("flush=sometimes", "interval:MS"),
    ] {
        let (ok, _, err) = brook(&broker, &["topic", "alter", "t", "--set", set], None);
        assert!(!ok, "{set}");
        assert!(err.contains(says), "{set}: {err}");
    }
    let (ok, _, err) = brook(
        &broker,
        &["topic", "alter", "nosuch", "--set", "retention_ms=1"],
        None,
    );
    assert!(!ok);
    assert!(err.contains("brook topic create nosuch"), "{err}");

    // Stored before the answer: a crash right after keeps them.
    broker.kill9_in_place();
    broker.restart().await;
    assert_eq!(settings(&broker), after, "kept over a restart");
    broker.terminate();
}

/// `brook consume -e` stops at the end, alone or as a group member;
/// `--timeout` stops after a quiet spell; Ctrl-C prints what was consumed
/// and committed and exits 130. Each prints its one-line summary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consume_stops_at_the_end_after_a_quiet_spell_or_on_ctrl_c() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(dir.path(), &[]).await;
    let (ok, _, err) = brook(
        &broker,
        &["topic", "create", "o", "--partitions", "3"],
        None,
    );
    assert!(ok, "{err}");
    let (ok, _, err) = brook(&broker, &["produce", "o"], Some("a\nb\nc\nd\ne\n"));
    assert!(ok, "{err}");

    let (ok, out, err) = brook(&broker, &["consume", "o", "-e"], None);
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(err.contains("consumed 5 records from o"), "{err}");
    assert!(err.contains("end reached; nothing committed"), "{err}");

    let (ok, out, err) = brook(
        &broker,
        &["consume", "o", "--exit-on-end", "--group", "g"],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(out.lines().count(), 5, "{out}");
    assert!(err.contains("end reached; group g committed"), "{err}");
    // The group goes on where it stopped: nothing new, and it still ends.
    let (ok, out, err) = brook(&broker, &["consume", "o", "-e", "--group", "g"], None);
    assert!(ok, "{err}");
    assert_eq!(out, "", "{err}");
    assert!(err.contains("consumed 0 records"), "{err}");

    let (ok, out, err) = brook(
        &broker,
        &["consume", "o", "--from", "latest", "--timeout", "300ms"],
        None,
    );
    assert!(ok, "{err}");
    assert_eq!(out, "");
    assert!(err.contains("nothing for 300ms"), "{err}");

    // Ctrl-C while waiting for more, as a group member: the summary says
    // what was committed, and the exit status says it was interrupted.
    let mut child = Command::new(brook_binary())
        .args(["consume", "o", "--group", "h"])
        .env("BROOK_URL", format!("http://{}", broker.grpc))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = std::io::BufRead::lines(std::io::BufReader::new(stdout));
    for _ in 0..5 {
        lines.next().expect("a record").unwrap();
    }
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(130), "{err}");
    assert!(err.contains("consumed 5 records from o"), "{err}");
    assert!(err.contains("interrupted; group h committed"), "{err}");
    let (ok, lag, _) = brook(&broker, &["lag", "h", "--json"], None);
    assert!(ok);
    let lag: serde_json::Value = serde_json::from_str(lag.trim()).unwrap();
    assert_eq!(lag[0]["total_lag_records"], 0, "{lag}");
}

/// Named contexts: `brook context add` writes ~/.config/brook/config.toml
/// (XDG_CONFIG_HOME here), commands then connect without --url, pick
/// another context with --context or BROOK_CONTEXT, and a flag overrides
/// the context's value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contexts_name_brokers_and_flags_override_them() {
    let dir = tempfile::tempdir().unwrap();
    let broker = Broker::start(&dir.path().join("data"), &[]).await;
    let config = dir.path().join("config");
    let run = |args: &[&str], context_env: Option<&str>| {
        let mut cmd = Command::new(brook_binary());
        cmd.args(args)
            .env_remove("BROOK_URL")
            .env_remove("BROOK_CONTEXT")
            .env("XDG_CONFIG_HOME", &config);
        if let Some(c) = context_env {
            cmd.env("BROOK_CONTEXT", c);
        }
        let out = cmd.output().unwrap();
        (
            out.status.success(),
            String::from_utf8(out.stdout).unwrap(),
            String::from_utf8(out.stderr).unwrap(),
        )
    };
    let grpc = broker.grpc.to_string();
    let (ok, _, err) = run(&["context", "add", "local", "--url", &grpc, "--use"], None);
    assert!(ok, "{err}");
    let (ok, _, err) = run(&["context", "add", "nowhere", "--url", "127.0.0.1:1"], None);
    assert!(ok, "{err}");
    let file = config.join("brook/config.toml");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600,
        "it may hold tokens"
    );

    // The current context, without --url.
    let (ok, _, err) = run(&["topic", "create", "ctx"], None);
    assert!(ok, "{err}");
    let (ok, out, _) = run(&["context", "list"], None);
    assert!(ok);
    assert!(
        out.lines()
            .any(|l| l.starts_with('*') && l.contains("local")),
        "{out}"
    );

    // Another context, by flag or by environment; a flag overrides its URL.
    for (args, env) in [
        (&["topic", "list", "--context", "nowhere"][..], None),
        (&["topic", "list"][..], Some("nowhere")),
    ] {
        let (ok, _, err) = run(args, env);
        assert!(!ok, "{args:?} {env:?}");
        assert!(err.contains("127.0.0.1:1"), "{err}");
    }
    let (ok, out, err) = run(
        &["topic", "list", "--context", "nowhere", "--url", &grpc],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains("ctx"), "{out}");

    let (ok, _, err) = run(&["topic", "list", "--context", "nosuch"], None);
    assert!(!ok);
    assert!(err.contains("local, nowhere"), "{err}");

    let (ok, _, err) = run(&["context", "use", "nowhere"], None);
    assert!(ok, "{err}");
    let (ok, _, _) = run(&["topic", "list"], None);
    assert!(
        !ok,
        "the current context is now the one where nothing listens"
    );
    let (ok, out, _) = run(&["context", "show", "--json"], None);
    assert!(ok);
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["name"], "nowhere");
    assert_eq!(v["current"], true);
}

/// A reader that stops early (`brook completions bash | head -1`) ends the
/// command quietly, by SIGPIPE as cat's, not with a panic. The bash script
/// (about 80 KB) is larger than a pipe holds, so the write does meet the
/// closed pipe.
#[test]
fn a_reader_that_stops_early_ends_the_command_quietly() {
    use std::io::Read;
    use std::os::unix::process::ExitStatusExt;
    let mut child = Command::new(brook_binary())
        .args(["completions", "bash"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut first = [0u8; 100];
    child.stdout.take().unwrap().read_exact(&mut first).unwrap();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        out.status.signal(),
        Some(libc::SIGPIPE),
        "{:?} {err}",
        out.status
    );
}

/// `brook rule test` checks an EventBridge pattern against an event with
/// no broker: exit 0 and `match`, or exit 1 with the field that did not
/// match and why (also as JSON, and with the event on standard input); an
/// invalid pattern is an error naming its place in the pattern.
#[test]
fn rule_test_says_whether_an_event_matches_and_why_not() {
    use std::io::Write;
    let run = |args: &[&str], stdin: Option<&str>| {
        let mut child = Command::new(brook_binary())
            .args(["rule", "test"])
            .args(args)
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut input = child.stdin.take().unwrap();
        input.write_all(stdin.unwrap_or("").as_bytes()).unwrap();
        drop(input);
        let out = child.wait_with_output().unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let placed = r#"{"source":["order-service"],"detail-type":["OrderPlaced"],"detail":{"total":[{"numeric":[">=",100]}]}}"#;
    let event = |kind: &str, total: u32| {
        format!(
            r#"{{"source":"order-service","detail-type":"{kind}","detail":{{"total":{total}}}}}"#
        )
    };
    let (code, out, _) = run(
        &["--pattern", placed, "--event", &event("OrderPlaced", 250)],
        None,
    );
    assert_eq!((code, out.trim()), (Some(0), "match"));

    let (code, out, _) = run(
        &[
            "--pattern",
            placed,
            "--event",
            &event("OrderCancelled", 250),
        ],
        None,
    );
    assert_eq!(code, Some(1));
    assert!(out.starts_with("no match: detail-type"), "{out}");
    assert!(out.contains("OrderCancelled"), "{out}");

    let (code, out, _) = run(
        &["--pattern", placed, "--event-file", "-", "--json"],
        Some(&event("OrderPlaced", 20)),
    );
    assert_eq!(code, Some(1));
    let v: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(v["matches"], false, "{v}");
    assert_eq!(v["path"], "detail.total", "{v}");

    let (code, _, err) = run(
        &[
            "--pattern",
            r#"{"detail":{"total":[{"numeric":["~",1]}]}}"#,
            "--event",
            "{}",
        ],
        None,
    );
    assert_eq!(code, Some(1));
    assert!(err.contains("pattern at detail.total"), "{err}");
}
