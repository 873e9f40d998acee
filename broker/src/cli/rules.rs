//! `brook rule …`: routing rules (docs/rules.md).
//!
//! - `test` checks an EventBridge event pattern against an event here,
//!   without a broker: whether it matches, and if not, which field did not
//!   and why.
//! - `create`, `list`, `describe`, `pause`, `resume`, `delete` manage the
//!   broker's rules through the client crate. A rule reads a source topic
//!   inside the broker and writes every record whose JSON value matches its
//!   pattern to its target topics. `create` checks the pattern here first,
//!   as `test` does, so that a bad pattern fails before connecting. Tables
//!   for people; `--json` prints one object per rule (`list`: an array).
//!
//! Only the broker subcommands take the connection flags: `test` refuses
//! `--url`, as the other offline commands do.

use std::path::PathBuf;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::Context;
use brook_client::proto as v1;
use serde_json::json;

use super::connection::Conn;
use super::output::{Output, table};
use crate::rules::pattern::Pattern;

/// `brook rule` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  brook rule test --pattern '{\"source\":[\"order-service\"]}' --event '{\"source\":\"order-service\"}'
  brook rule create big-orders --source orders --pattern '{\"detail\":{\"amount\":[{\"numeric\":[\">\",100]}]}}' --target big-orders
  brook rule list --source orders
  brook rule describe big-orders --json
  brook rule pause big-orders")]
pub(crate) struct RuleArgs {
    /// What to do.
    #[command(subcommand)]
    pub(crate) cmd: RuleCmd,
}

impl RuleArgs {
    /// The connection flags of a subcommand that talks to a broker (`test`
    /// needs none).
    pub(crate) fn conn(&self) -> Option<&Conn> {
        match &self.cmd {
            RuleCmd::Test(_) => None,
            RuleCmd::Broker(cmd) => Some(cmd.conn()),
        }
    }
}

/// `brook rule …`: `test` here, the rest on a broker.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum RuleCmd {
    /// Does an event match a pattern? Exit 0 if it does; 1 if not, with the
    /// first field that did not match and why.
    #[command(after_help = "\
Examples:
  brook rule test --pattern '{\"source\":[\"order-service\"]}' --event '{\"source\":\"order-service\"}'
  brook rule test --pattern-file rule.json --event-file event.json
  brook rule test --pattern '{\"detail\":{\"amount\":[{\"numeric\":[\">\",100]}]}}' --event-file - --json")]
    Test(TestArgs),
    /// The subcommands that manage the broker's rules.
    #[command(flatten)]
    Broker(BrokerCmd),
}

/// The event pattern, given inline or in a file (`test` and `create`).
#[derive(Debug, clap::Args)]
pub(crate) struct PatternArgs {
    /// The event pattern (JSON, EventBridge's pattern language).
    #[arg(
        long,
        conflicts_with = "pattern_file",
        required_unless_present = "pattern_file"
    )]
    pattern: Option<String>,
    /// A file holding the pattern (`-`: standard input).
    #[arg(long)]
    pattern_file: Option<PathBuf>,
}

impl PatternArgs {
    /// The pattern's text.
    fn text(self) -> anyhow::Result<String> {
        text(self.pattern, self.pattern_file, "pattern")
    }
}

/// `brook rule test` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct TestArgs {
    #[command(flatten)]
    pattern: PatternArgs,
    /// The event (a JSON object, as a record's value).
    #[arg(
        long,
        conflicts_with = "event_file",
        required_unless_present = "event_file"
    )]
    event: Option<String>,
    /// A file holding the event (`-`: standard input).
    #[arg(long)]
    event_file: Option<PathBuf>,
    /// Print one JSON object: `{"matches": bool, "path": ..., "reason": ...}`.
    #[arg(long)]
    json: bool,
}

/// The `brook rule` subcommands that talk to a broker.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum BrokerCmd {
    /// Create a rule: every record of the source topic whose value matches
    /// the pattern is written to every target topic, exactly once.
    #[command(after_help = "\
Examples:
  brook rule create big-orders --source orders --pattern '{\"detail\":{\"amount\":[{\"numeric\":[\">\",100]}]}}' --target big-orders
  brook rule create eu-orders --source orders --pattern-file eu.json --target eu-orders --target audit --from earliest
  brook rule create order-ids --source orders --pattern '{\"source\":[\"shop\"]}' --target order-ids --transform orderId=$.detail.orderId
  brook rule create paid --source orders --pattern-file - --target paid --json < paid.json")]
    Create(CreateArgs),
    /// Rules with their targets, state, counts and lag.
    #[command(after_help = "\
Examples:
  brook rule list
  brook rule list --source orders
  brook rule list --json")]
    List(ListArgs),
    /// A rule's definition, state, counts and lag per partition.
    #[command(after_help = "\
Examples:
  brook rule describe big-orders
  brook rule describe big-orders --json")]
    Describe(DescribeArgs),
    /// Stop a rule delivering; it keeps its position.
    #[command(after_help = "\
Examples:
  brook rule pause big-orders")]
    Pause(NameArgs),
    /// Make a paused or failed rule deliver again from where it stopped.
    #[command(after_help = "\
Examples:
  brook rule resume big-orders")]
    Resume(NameArgs),
    /// Delete a rule and its position (the records it delivered stay).
    #[command(after_help = "\
Examples:
  brook rule delete big-orders
  brook rule delete big-orders --context prod")]
    Delete(NameArgs),
}

impl BrokerCmd {
    /// The connection flags.
    fn conn(&self) -> &Conn {
        match self {
            BrokerCmd::Create(a) => &a.conn,
            BrokerCmd::List(a) => &a.conn,
            BrokerCmd::Describe(a) => &a.conn,
            BrokerCmd::Pause(a) | BrokerCmd::Resume(a) | BrokerCmd::Delete(a) => &a.conn,
        }
    }
}

/// `brook rule create` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct CreateArgs {
    /// The rule's name: 1-200 characters of A-Z, a-z, 0-9, '.', '_', '-'.
    name: String,
    /// The topic the rule reads.
    #[arg(long, value_name = "TOPIC")]
    source: String,
    /// The pattern, checked here before connecting.
    #[command(flatten)]
    pattern: PatternArgs,
    /// A topic that receives every selected record (repeat for more; not
    /// the source).
    #[arg(long = "target", value_name = "TOPIC", required = true)]
    targets: Vec<String>,
    /// Write a new JSON object instead of the record's value: field NAME
    /// gets the value at PATH (`$`, `$.a.b`, `$.items[0]`; a path not in
    /// the event leaves the field out). Repeat for more fields, in order.
    #[arg(long = "transform", value_name = "NAME=PATH", value_parser = transform_field)]
    transform: Vec<v1::TransformField>,
    /// Where the rule starts reading the source topic.
    #[arg(long, value_enum, default_value_t = Start::Latest)]
    from: Start,
    #[command(flatten)]
    conn: Conn,
    #[command(flatten)]
    output: Output,
}

/// `brook rule list` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    /// Only the rules reading this topic.
    #[arg(long, value_name = "TOPIC")]
    source: Option<String>,
    #[command(flatten)]
    conn: Conn,
    #[command(flatten)]
    output: Output,
}

/// `brook rule describe` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct DescribeArgs {
    /// The rule's name.
    name: String,
    #[command(flatten)]
    conn: Conn,
    #[command(flatten)]
    output: Output,
}

/// `brook rule pause|resume|delete` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct NameArgs {
    /// The rule's name.
    name: String,
    #[command(flatten)]
    conn: Conn,
}

/// Where a new rule starts reading its source topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Start {
    /// Records published from now on.
    Latest,
    /// The first record the topic still has.
    Earliest,
}

impl Start {
    /// The protocol's value.
    fn to_proto(self) -> v1::RuleStart {
        match self {
            Start::Latest => v1::RuleStart::Latest,
            Start::Earliest => v1::RuleStart::Earliest,
        }
    }
}

/// `--transform NAME=PATH` as a field of the new event. The broker checks
/// the path; here only its form.
fn transform_field(s: &str) -> Result<v1::TransformField, String> {
    let (name, path) = s
        .split_once('=')
        .ok_or_else(|| format!("{s:?} is not NAME=PATH, e.g. orderId=$.detail.orderId"))?;
    if name.is_empty() {
        return Err(format!("{s:?} has no field name before the '='"));
    }
    if !path.starts_with('$') {
        return Err(format!(
            "the path {path:?} does not start with `$`: `$` is the whole event, `$.a.b` a field in it"
        ));
    }
    Ok(v1::TransformField {
        name: name.into(),
        path: path.into(),
    })
}

/// The text of a flag or of the file another flag names.
fn text(inline: Option<String>, file: Option<PathBuf>, what: &str) -> anyhow::Result<String> {
    match (inline, file) {
        (Some(t), _) => Ok(t),
        (None, Some(p)) if p.as_os_str() == "-" => std::io::read_to_string(std::io::stdin())
            .with_context(|| format!("reading the {what} from standard input")),
        (None, Some(p)) => std::fs::read_to_string(&p)
            .with_context(|| format!("reading the {what} from {}", p.display())),
        (None, None) => anyhow::bail!("give the {what}"),
    }
}

/// Runs `brook rule test`; `false` when the event does not match.
pub(crate) fn run_test(t: TestArgs) -> anyhow::Result<bool> {
    let pattern = Pattern::parse(&t.pattern.text()?)?;
    let event = text(t.event, t.event_file, "event")?;
    let event: serde_json::Value = serde_json::from_str(&event).context("the event is not JSON")?;
    let verdict = pattern.explain(&event);
    if t.json {
        let v = match &verdict {
            Ok(()) => serde_json::json!({"matches": true}),
            Err(m) => {
                serde_json::json!({"matches": false, "path": m.path, "reason": m.reason})
            }
        };
        println!("{v}");
    } else {
        match &verdict {
            Ok(()) => println!("match"),
            Err(m) => println!("no match: {m}"),
        }
    }
    Ok(verdict.is_ok())
}

/// Runs a `brook rule` subcommand that talks to the broker.
pub(crate) async fn run(cmd: BrokerCmd) -> anyhow::Result<()> {
    match cmd {
        BrokerCmd::Create(a) => create(a).await?,
        BrokerCmd::List(a) => {
            let admin = a.conn.client().await?.admin();
            let rules = admin.list_rules(a.source.as_deref()).await?;
            print_list(&rules, a.output.json);
        }
        BrokerCmd::Describe(a) => {
            let admin = a.conn.client().await?.admin();
            let d = admin
                .describe_rule(&a.name)
                .await
                .map_err(|e| unknown_rule_hint(e, &a.name))?;
            print_description(&d, a.output.json);
        }
        BrokerCmd::Pause(a) => {
            let admin = a.conn.client().await?.admin();
            let d = admin
                .pause_rule(&a.name)
                .await
                .map_err(|e| unknown_rule_hint(e, &a.name))?;
            println!(
                "paused rule {}: it keeps its position, {} records behind",
                a.name, d.lag
            );
        }
        BrokerCmd::Resume(a) => {
            let admin = a.conn.client().await?.admin();
            let d = admin
                .resume_rule(&a.name)
                .await
                .map_err(|e| unknown_rule_hint(e, &a.name))?;
            println!("resumed rule {}: {}", a.name, state_line(&d));
        }
        BrokerCmd::Delete(a) => {
            let admin = a.conn.client().await?.admin();
            admin
                .delete_rule(&a.name)
                .await
                .map_err(|e| unknown_rule_hint(e, &a.name))?;
            println!("deleted rule {} (the records it delivered stay)", a.name);
        }
    }
    Ok(())
}

/// `brook rule create`: the pattern is checked before connecting, with the
/// message `brook rule test` prints.
async fn create(a: CreateArgs) -> anyhow::Result<()> {
    let pattern = a.pattern.text()?;
    Pattern::parse(&pattern)?;
    let transform = match a.transform.is_empty() {
        true => None,
        false => Some(v1::InputTransform {
            fields: a.transform,
        }),
    };
    let rule = v1::RuleDefinition {
        name: a.name,
        source_topic: a.source,
        event_pattern: pattern,
        targets: a.targets,
        transform,
        start: a.from.to_proto() as i32,
    };
    let d = a.conn.client().await?.admin().create_rule(rule).await?;
    print_description(&d, a.output.json);
    Ok(())
}

/// A client error, with the command that lists the rules when the broker
/// does not know the one named (reason RULE_NOT_FOUND).
fn unknown_rule_hint(e: brook_client::Error, name: &str) -> anyhow::Error {
    match e.reason() == Some("RULE_NOT_FOUND") {
        true => anyhow::Error::new(e).context(format!(
            "there is no rule {name:?}: `brook rule list` shows the rules"
        )),
        false => e.into(),
    }
}

/// A rule's state as a word: `running`, `paused`, `failed`.
fn state_word(state: v1::RuleState) -> &'static str {
    match state {
        v1::RuleState::Running => "running",
        v1::RuleState::Paused => "paused",
        v1::RuleState::Failed => "failed",
        v1::RuleState::Unspecified => "unknown",
    }
}

/// The state, with the reason when the rule is not running.
fn state_line(d: &v1::RuleDescription) -> String {
    match d.reason.is_empty() {
        true => state_word(d.state()).to_string(),
        false => format!("{} ({})", state_word(d.state()), d.reason),
    }
}

/// Where a rule started: `earliest` or `latest` (unspecified is latest).
fn start_word(start: v1::RuleStart) -> &'static str {
    match start {
        v1::RuleStart::Earliest => "earliest",
        v1::RuleStart::Latest | v1::RuleStart::Unspecified => "latest",
    }
}

/// The transform's fields as `NAME=PATH, …`, or what is written without one.
fn transform_text(def: &v1::RuleDefinition) -> String {
    let fields = def
        .transform
        .as_ref()
        .map(|t| t.fields.as_slice())
        .unwrap_or_default();
    match fields.is_empty() {
        true => "none (the record's value as it is)".to_string(),
        false => fields
            .iter()
            .map(|f| format!("{}={}", f.name, f.path))
            .collect::<Vec<_>>()
            .join(", "),
    }
}

/// A time in ms since the Unix epoch as RFC 3339 (`-` when unset).
pub(super) fn time_text(ms: i64) -> String {
    match u64::try_from(ms) {
        Ok(ms) if ms > 0 => {
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        }
        _ => "-".to_string(),
    }
}

/// One rule as the JSON object `--json` prints.
fn description_json(d: &v1::RuleDescription) -> serde_json::Value {
    let def = d.rule.clone().unwrap_or_default();
    let fields = def
        .transform
        .as_ref()
        .map(|t| t.fields.as_slice())
        .unwrap_or_default();
    let transform: Vec<_> = fields
        .iter()
        .map(|f| json!({"name": f.name, "path": f.path}))
        .collect();
    let partitions: Vec<_> = d
        .partitions
        .iter()
        .map(|p| {
            json!({"partition": p.partition, "position": p.position,
                "log_end_offset": p.log_end_offset, "lag": p.lag})
        })
        .collect();
    json!({
        "name": def.name,
        "source_topic": def.source_topic,
        "event_pattern": def.event_pattern,
        "targets": def.targets,
        "transform": transform,
        "start": start_word(def.start()),
        "state": state_word(d.state()),
        "reason": d.reason,
        "matched": d.matched,
        "forwarded": d.forwarded,
        "failed": d.failed,
        "lag": d.lag,
        "partitions": partitions,
        "created_ms": d.created_ms,
    })
}

/// Prints one rule: its definition, state, counts and a row per partition.
fn print_description(d: &v1::RuleDescription, json: bool) {
    if json {
        println!("{}", description_json(d));
        return;
    }
    let def = d.rule.clone().unwrap_or_default();
    println!(
        "rule {}: {} -> {}",
        def.name,
        def.source_topic,
        def.targets.join(", ")
    );
    println!("state:     {}", state_line(d));
    println!("pattern:   {}", def.event_pattern);
    println!("transform: {}", transform_text(&def));
    println!("start:     {}", start_word(def.start()));
    println!("created:   {}", time_text(d.created_ms));
    println!(
        "matched {}, forwarded {}, lag {}; failed {} since the broker started",
        d.matched, d.forwarded, d.lag, d.failed
    );
    let rows: Vec<Vec<String>> = d
        .partitions
        .iter()
        .map(|p| {
            vec![
                p.partition.to_string(),
                p.position.to_string(),
                p.log_end_offset.to_string(),
                p.lag.to_string(),
            ]
        })
        .collect();
    table(&["PARTITION", "POSITION", "LOG-END", "LAG"], &rows);
}

/// Prints rules as a table, or as a JSON array.
fn print_list(rules: &[v1::RuleDescription], json: bool) {
    if json {
        let all: Vec<_> = rules.iter().map(description_json).collect();
        println!("{}", serde_json::Value::Array(all));
        return;
    }
    let rows: Vec<Vec<String>> = rules
        .iter()
        .map(|d| {
            let def = d.rule.clone().unwrap_or_default();
            vec![
                def.name,
                def.source_topic,
                def.targets.join(","),
                state_word(d.state()).to_string(),
                d.matched.to_string(),
                d.forwarded.to_string(),
                d.lag.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "SOURCE",
            "TARGETS",
            "STATE",
            "MATCHED",
            "FORWARDED",
            "LAG",
        ],
        &rows,
    );
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use clap::error::ErrorKind;

    use super::*;
    use crate::cli::{Cli, Command};

    fn parse(line: &str) -> Result<RuleArgs, clap::Error> {
        match Cli::try_parse_from(line.split_whitespace())?.command {
            Command::Rule(a) => Ok(a),
            other => panic!("{line}: {other:?}"),
        }
    }

    fn create(line: &str) -> CreateArgs {
        match parse(line).map(|a| a.cmd) {
            Ok(RuleCmd::Broker(BrokerCmd::Create(a))) => a,
            other => panic!("{line}: {other:?}"),
        }
    }

    fn field(name: &str, path: &str) -> v1::TransformField {
        v1::TransformField {
            name: name.into(),
            path: path.into(),
        }
    }

    #[test]
    fn create_takes_targets_transforms_and_a_start() {
        let a = create(
            "brook rule create ids --source orders --pattern {} --target a --target b --transform id=$.detail.id --transform all=$ --from earliest",
        );
        assert_eq!(a.name, "ids");
        assert_eq!(a.source, "orders");
        assert_eq!(a.targets, ["a", "b"]);
        assert_eq!(a.transform, [field("id", "$.detail.id"), field("all", "$")]);
        assert_eq!(a.from, Start::Earliest);
        let a = create("brook rule create ids --source orders --pattern {} --target a");
        assert_eq!(a.from, Start::Latest, "the default start");
        assert!(a.transform.is_empty());
    }

    #[test]
    fn create_refuses_a_rule_without_target_or_with_a_bad_transform() {
        let refused = |line: &str| match parse(line) {
            Ok(a) => panic!("{line} was accepted: {a:?}"),
            Err(e) => e.kind(),
        };
        assert_eq!(
            refused("brook rule create r --source s --pattern {}"),
            ErrorKind::MissingRequiredArgument
        );
        for bad in ["id", "=$.id", "id=detail.id"] {
            assert_eq!(
                refused(&format!(
                    "brook rule create r --source s --pattern {{}} --target t --transform {bad}"
                )),
                ErrorKind::ValueValidation,
                "{bad}"
            );
        }
    }

    /// `test` runs here and takes no broker address; the others do.
    #[test]
    fn only_the_broker_subcommands_take_connection_flags() {
        assert!(parse("brook rule test --pattern {} --event {} --url http://b:1").is_err());
        let a = parse("brook rule test --pattern {} --event {} --json").unwrap();
        assert!(a.conn().is_none());
        for line in [
            "brook rule list --url http://b:1 --json",
            "brook rule describe r --url http://b:1",
            "brook rule pause r --url http://b:1",
            "brook rule delete r --url http://b:1",
        ] {
            let a = parse(line).unwrap_or_else(|e| panic!("{line}: {e}"));
            let url = a.conn().and_then(|c| c.url.clone());
            assert_eq!(url.as_deref(), Some("http://b:1"), "{line}");
        }
    }

    #[test]
    fn a_rule_as_json_names_its_state_and_start_in_words() {
        let d = v1::RuleDescription {
            rule: Some(v1::RuleDefinition {
                name: "ids".into(),
                source_topic: "orders".into(),
                event_pattern: r#"{"source":["shop"]}"#.into(),
                targets: vec!["order-ids".into()],
                transform: Some(v1::InputTransform {
                    fields: vec![field("id", "$.detail.id")],
                }),
                start: v1::RuleStart::Earliest as i32,
            }),
            state: v1::RuleState::Paused as i32,
            lag: 3,
            partitions: vec![v1::RulePartition {
                partition: 0,
                position: 7,
                log_end_offset: 10,
                lag: 3,
            }],
            created_ms: 1_767_225_600_000,
            ..Default::default()
        };
        let v = description_json(&d);
        assert_eq!(v["state"], "paused");
        assert_eq!(v["start"], "earliest");
        assert_eq!(v["event_pattern"], r#"{"source":["shop"]}"#);
        assert_eq!(v["targets"], json!(["order-ids"]));
        assert_eq!(
            v["transform"],
            json!([{"name": "id", "path": "$.detail.id"}])
        );
        assert_eq!(
            v["partitions"],
            json!([{"partition": 0, "position": 7, "log_end_offset": 10, "lag": 3}])
        );
        for key in [
            "name",
            "source_topic",
            "reason",
            "matched",
            "forwarded",
            "failed",
            "lag",
            "created_ms",
        ] {
            assert!(v.get(key).is_some(), "{key} missing: {v}");
        }
        assert_eq!(time_text(d.created_ms), "2026-01-01T00:00:00.000Z");
        assert_eq!(time_text(0), "-");
    }
}
