//! The `brook` command line: the top-level [`Cli`], its commands and the
//! dispatch to them. One file per command family:
//!
//! - `connection`: `--url` and `--tls-ca`, flattened into every command that
//!   connects; `output`: `--json` and the table printer.
//! - `topics`, `produce`, `consume`, `groups`, `lag`: the operator commands.
//!   Human tables by default, JSON with `--json`.
//! - `position`: the `earliest|latest|offset:N|time:MS|shift:N` forms.
//! - `data`: `brook data verify|repair`, offline, on a data directory.
//! - `acl`: `brook acl add|list|remove|whoami` and `brook token create`.
//! - `schemas`: `brook schema register|list|show|check|delete|compat`.
//! - `trace`: `brook trace ID`, the events sharing a correlation id.
//! - `rules`: `brook rule test` (offline: a pattern against an event) and
//!   `brook rule create|list|describe|pause|resume|delete` (on a broker).
//! - `bench`: `brook bench` and its workloads.
//!
//! `brook serve`'s flags live with the rest of its settings in
//! [`crate::config`]. Errors come back to `main`, which prints them on one
//! line and exits non-zero.

use std::process::ExitCode;

use crate::config::ServeArgs;
use crate::signals::Signals;

mod acl;
mod bench;
mod connection;
mod consume;
mod context;
mod data;
mod groups;
mod health;
mod lag;
mod output;
mod position;
mod produce;
mod queues;
mod rules;
mod schemas;
mod settings;
mod topics;
mod trace;

/// Brook: a Kafka-like event log broker in one binary.
#[derive(Debug, clap::Parser)]
#[command(name = "brook", version, about, long_about = None)]
#[command(after_help = "\
Examples:
  brook serve --data-dir /var/lib/brook
  brook topic create orders --partitions 3
  brook consume orders --from earliest --max 10
  brook lag billing --watch")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, clap::Subcommand)]
enum Command {
    /// Start the broker.
    ///
    /// Every setting is a flag, an environment variable (BROOK_...) and a key of
    /// the TOML file given with --config. Precedence: flag, then environment,
    /// then the file, then the default. Logs go to stderr (RUST_LOG filters);
    /// the first line on stdout is `brook listening grpc=ADDR metrics=ADDR kafka=ADDR`.
    #[command(after_help = "\
Examples:
  brook serve --data-dir /var/lib/brook --listen 0.0.0.0:9292
  brook serve --config /etc/brook/brook.toml
  brook serve --flush always --retention-ms -1
  brook serve --tls-cert server.pem --tls-key server.key")]
    Serve(Box<ServeArgs>),
    /// Measure a running broker: produce, consume or end-to-end load.
    Bench(bench::BenchArgs),
    /// Create, list, describe, delete topics; add partitions.
    Topic(topics::TopicArgs),
    /// Send standard input to a topic, one record per line.
    Produce(produce::ProduceArgs),
    /// Print a topic's records (as a group member with --group).
    Consume(consume::ConsumeArgs),
    /// List, describe, delete consumer groups; reset their offsets.
    Group(groups::GroupArgs),
    /// Queue groups: competing consumers with per-message ack, nack, reject.
    Queue(queues::QueueArgs),
    /// Dead-letter topics of queue groups: list, show, redrive.
    Dlq(queues::DlqArgs),
    /// Check or repair a data directory offline (no broker running on it).
    #[command(after_help = "\
Examples:
  brook data verify ./brook-data
  brook data verify ./brook-data --json
  brook data repair ./brook-data --partition orders/3 --dry-run")]
    Data {
        #[command(subcommand)]
        cmd: data::DataCmd,
    },
    /// Consumer lag per partition: committed, end, lag in records and time.
    Lag(lag::LagArgs),
    /// Is the broker reachable and serving: version, uptime, state (exit 0 if so).
    Health(health::HealthArgs),
    /// Who may do what (brokers run with --auth required): add, list, remove, whoami.
    Acl(acl::AclArgs),
    /// Make bearer tokens for the broker's --tokens-file.
    Token(acl::TokenArgs),
    /// The schema registry: register, list, show, check, delete, compat.
    Schema(schemas::SchemaArgs),
    /// Routing rules: create, list, describe, pause, resume, delete; test a pattern offline.
    Rule(rules::RuleArgs),
    /// The events that share a correlation id, across topics, in time order.
    Trace(trace::TraceArgs),
    /// Named connection settings (url, CA, token): list, show, add, use, remove.
    Context(context::ContextArgs),
    /// Print a shell completion script for brook.
    #[command(after_help = "\
Examples:
  brook completions bash > /etc/bash_completion.d/brook
  brook completions zsh > \"${fpath[1]}/_brook\"
  brook completions fish > ~/.config/fish/completions/brook.fish")]
    Completions {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

impl Cli {
    /// Whether this is `brook serve` (the other commands are short-lived
    /// tools that write to standard output).
    pub fn is_server(&self) -> bool {
        matches!(self.command, Command::Serve(_))
    }

    /// How the log is written: `brook serve --log-format`; text for the
    /// other commands.
    pub fn log_format(&self) -> crate::logging::LogFormat {
        match &self.command {
            Command::Serve(args) => args.log_format.unwrap_or_default(),
            _ => crate::logging::LogFormat::Text,
        }
    }

    /// Whether and how the broker records spans: `brook serve
    /// --otlp-endpoint` exports them; `--log-format json` records them for
    /// the ids in its lines. None for the other commands.
    pub fn tracing(&self) -> Option<crate::otel::export::Settings> {
        let Command::Serve(args) = &self.command else {
            return None;
        };
        let json = args.log_format == Some(crate::logging::LogFormat::Json);
        (args.otlp_endpoint.is_some() || json).then(|| crate::otel::export::Settings {
            endpoint: args.otlp_endpoint.clone(),
            sample_ratio: args.otlp_sample_ratio.unwrap_or(1.0),
        })
    }

    /// Runs the command. `brook serve` stops on SIGTERM or SIGINT (see
    /// [`crate::server::run`]).
    ///
    /// Exits 1 without an error when `brook data verify` finds damage: the
    /// table says what, the exit code tells scripts.
    pub fn run(self) -> anyhow::Result<ExitCode> {
        let conn = self.command.conn().cloned();
        self.dispatch().map_err(|e| {
            // The address as resolved (flag, context, default), for the
            // hint; resolved again only when there is an error to explain.
            match conn.and_then(|c| c.target().ok()) {
                Some(target) => connection::protocol_hint(e, target.url()),
                None => e,
            }
        })
    }

    fn dispatch(self) -> anyhow::Result<ExitCode> {
        match self.command {
            Command::Serve(args) => {
                let config = args.resolve()?;
                block_on(async { crate::server::run(config, Signals::listen()).await })?;
            }
            Command::Bench(args) => block_on(bench::run(args))?,
            Command::Topic(args) => block_on(topics::run(args))?,
            Command::Produce(args) => block_on(produce::run(args))?,
            Command::Consume(args) => {
                if !block_on(consume::run(args))? {
                    return Ok(ExitCode::from(130));
                }
            }
            Command::Group(args) => block_on(groups::run(args))?,
            Command::Queue(args) => block_on(queues::run(args))?,
            Command::Dlq(args) => block_on(queues::run_dlq(args))?,
            Command::Lag(args) => block_on(lag::run(args))?,
            Command::Trace(args) => {
                if !block_on(trace::run(args))? {
                    return Ok(ExitCode::from(1));
                }
            }
            Command::Health(args) => {
                if !block_on(health::run(args))? {
                    return Ok(ExitCode::from(1));
                }
            }
            Command::Completions { shell } => {
                let mut cmd = <Cli as clap::CommandFactory>::command();
                clap_complete::generate(shell, &mut cmd, "brook", &mut std::io::stdout());
            }
            Command::Context(args) => context::run(args)?,
            Command::Acl(args) => block_on(acl::run(args))?,
            Command::Token(args) => acl::run_token(args)?,
            Command::Schema(args) => {
                if !block_on(schemas::run(args))? {
                    return Ok(ExitCode::from(1));
                }
            }
            Command::Data { cmd } => {
                if !data::run(cmd)? {
                    return Ok(ExitCode::from(1));
                }
            }
            // `test` needs no broker (exit 1: no match); the others connect.
            Command::Rule(args) => match args.cmd {
                rules::RuleCmd::Test(test) => {
                    if !rules::run_test(test)? {
                        return Ok(ExitCode::from(1));
                    }
                }
                rules::RuleCmd::Broker(cmd) => block_on(rules::run(cmd))?,
            },
        }
        Ok(ExitCode::SUCCESS)
    }
}

impl Command {
    /// The connection flags of a command that talks to a broker.
    fn conn(&self) -> Option<&connection::Conn> {
        match self {
            Command::Bench(a) => Some(&a.conn),
            Command::Topic(a) => Some(&a.conn),
            Command::Produce(a) => Some(&a.conn),
            Command::Consume(a) => Some(&a.conn),
            Command::Group(a) => Some(&a.conn),
            Command::Queue(a) => Some(&a.conn),
            Command::Dlq(a) => Some(&a.conn),
            Command::Lag(a) => Some(&a.conn),
            Command::Trace(a) => Some(&a.conn),
            Command::Health(a) => Some(&a.conn),
            Command::Acl(a) => Some(&a.conn),
            Command::Schema(a) => Some(&a.conn),
            Command::Rule(a) => a.conn(),
            Command::Serve(_)
            | Command::Token(_)
            | Command::Data { .. }
            | Command::Completions { .. }
            | Command::Context(_) => None,
        }
    }
}

/// [`unknown_topic_hint`] for an error already wrapped.
fn unknown_topic_hint_any(e: anyhow::Error, topic: &str) -> anyhow::Error {
    match e.downcast::<brook_client::Error>() {
        Ok(e) => unknown_topic_hint(e, topic),
        Err(e) => e,
    }
}

/// A client error, with the command that fixes it when the topic does not
/// exist (reason TOPIC_NOT_FOUND).
fn unknown_topic_hint(e: brook_client::Error, topic: &str) -> anyhow::Error {
    match e.reason() == Some("TOPIC_NOT_FOUND") {
        true => anyhow::Error::new(e).context(format!(
            "topic {topic:?} does not exist: create it with `brook topic create {topic}`"
        )),
        false => e.into(),
    }
}

fn block_on<T>(f: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<T> {
    tokio::runtime::Runtime::new()?.block_on(f)
}

#[cfg(test)]
mod tests {
    use clap::error::ErrorKind;
    use clap::{CommandFactory, Parser};

    use super::*;

    fn parse(line: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(line.split_whitespace())
    }

    /// The completion scripts know the subcommands and their flags; a shell
    /// brook does not know is refused by clap with the choices.
    #[test]
    fn completions_cover_the_commands_and_their_flags() {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            let mut out = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "brook", &mut out);
            let script = String::from_utf8(out).unwrap();
            for word in ["consume", "reset-offsets", "key-separator", "tls-ca"] {
                assert!(script.contains(word), "{shell}: {word} missing");
            }
        }
        assert!(matches!(
            parse("brook completions bash"),
            Ok(Cli {
                command: Command::Completions { .. },
                ..
            })
        ));
        assert_eq!(
            refused("brook completions tcsh").kind(),
            ErrorKind::InvalidValue
        );
    }

    /// `brook bench --help` says what W1, W2 and W3 are, one workload and
    /// one example per line.
    #[test]
    fn bench_help_names_its_workloads() {
        let mut cli = Cli::command();
        let bench = cli.find_subcommand_mut("bench").unwrap();
        let help = bench.render_help().to_string();
        for w in [
            "W1  produce throughput",
            "W2  consume",
            "W3  produce latency",
        ] {
            assert!(help.contains(w), "{w}: {help}");
        }
        let produce = bench
            .find_subcommand_mut("produce")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(produce.contains("\n  W3  latency"), "{produce}");
        assert!(
            produce.contains("\n      brook bench --topic w3 produce"),
            "{produce}"
        );
    }

    /// The connection flags have their own heading in every command's help.
    #[test]
    fn connection_flags_have_their_own_heading() {
        let help = Cli::command()
            .find_subcommand_mut("consume")
            .unwrap()
            .render_help()
            .to_string();
        let heading = help.find("Connection:").expect("a Connection heading");
        assert!(help[heading..].contains("--url"), "{help}");
    }

    /// The error of a refused line. A word outside a `ValueEnum` is an
    /// `InvalidValue` (clap lists the choices); a word-or-number value our
    /// parser refuses is a `ValueValidation` (our message lists the forms).
    fn refused(line: &str) -> clap::Error {
        match parse(line) {
            Ok(cli) => panic!("{line} was accepted: {cli:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn the_flag_definitions_hold_together() {
        Cli::command().debug_assert();
    }

    /// Command lines from README.md, docs/, scripts/ and the end-to-end
    /// tests: every one of them must keep parsing.
    const DOCUMENTED: &[&str] = &[
        "brook serve",
        "brook serve --tls-cert server.pem --tls-key server.key --tls-client-ca ca.pem",
        "brook serve --on-open-error fail --flush always --segment-bytes 65536",
        "brook topic create orders --partitions 3",
        "brook topic create t --retention-ms -1 --flush interval:500",
        "brook topic list --url https://localhost:9292 --tls-ca ca.pem",
        "brook topic list --json",
        "brook topic describe orders",
        "brook topic delete orders",
        "brook topic add-partitions orders --partitions 4",
        "brook topic alter orders --set retention_ms=-1 --set flush=interval:200",
        "brook topic alter orders --set retention.bytes=1073741824",
        "brook topic create payments --partitions 3 --url https://localhost:1 --tls-ca ca.pem",
        "brook produce orders --key-field aggregate_id --header source=shop",
        "brook produce orders --key k --header a=b --header c=d --durable",
        "brook consume orders --from earliest --max 2 --format json",
        "brook consume orders --group billing --max 2",
        "brook consume orders --partition 0 --partition 2 --from offset:5 --format plain",
        "brook consume orders --from time:1700000000000",
        "brook consume orders --from latest",
        "brook consume orders -e --format json",
        "brook consume orders --group billing --timeout 10s",
        "brook topic alter orders --set retention_ms=-1",
        "brook context add prod --url https://brook.internal:9292 --tls-ca ca.pem --use",
        "brook completions bash",
        "brook lag",
        "brook topic list --context prod",
        "brook context add prod --url https://brook.internal:9292 --tls-ca ca.pem --token t --use",
        "brook context list --json",
        "brook health",
        "brook health --url 127.0.0.1:9292 --json --strict --timeout 2s",
        "brook lag billing",
        "brook lag billing --json --watch",
        "brook group list",
        "brook group describe billing",
        "brook group delete billing",
        "brook group reset-offsets billing --topic orders --to earliest --dry-run",
        "brook group reset-offsets billing --topic orders --partition 1 --to offset:10 --force",
        "brook group reset-offsets billing --topic orders --to time:1700000000000",
        "brook group reset-offsets billing --topic orders --to shift:-5",
        "brook group reset-offsets billing --topic orders --to latest",
        "brook bench produce --messages 100000",
        "brook bench --topic w1 produce --messages 1000000 --in-flight 1",
        "brook bench --topic w1 consume --messages 1000000",
        "brook bench --topic w1d produce --messages 1000000 --in-flight 1 --acks durable",
        "brook bench --topic w3d produce --messages 20000 --sync --acks durable",
        "brook bench --url http://127.0.0.1:1 --json --topic ab produce --messages 10 --in-flight 1",
        "brook bench --url http://127.0.0.1:1 --broker-pid 42 --json --topic w1 consume --messages 1",
        "brook bench --url http://127.0.0.1:1 --json --topic b --partitions 3 produce --messages 3000 --size 100 --keys 50",
        "brook bench --url http://127.0.0.1:1 --json --topic b e2e --messages 500 --size 64",
        "brook bench --topic p --json produce --messages 2000 --url https://localhost:1 --tls-ca ca.pem",
        "brook data verify ./brook-data",
        "brook data verify ./brook-data --json",
        "brook data repair ./brook-data --partition orders/3 --dry-run",
    ];

    #[test]
    fn documented_command_lines_parse() {
        for line in DOCUMENTED {
            if let Err(e) = parse(line) {
                panic!("{line}: {e}");
            }
        }
    }

    /// The container health checks run `brook health`: the command line in
    /// the Dockerfile and in docker-compose.yml must parse.
    #[test]
    fn container_health_checks_are_brook_command_lines() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        for file in ["Dockerfile", "docker-compose.yml"] {
            let text = std::fs::read_to_string(root.join(file)).unwrap();
            let at = text.find("\"health\"").expect(file);
            let start = text[..at].rfind('[').unwrap();
            let end = at + text[at..].find(']').unwrap();
            let mut words: Vec<String> = text[start + 1..end]
                .split(',')
                .map(|w| w.trim().trim_matches('"').to_string())
                .filter(|w| w != "CMD")
                .collect();
            // The program by its path in the image.
            words[0] = words[0].rsplit('/').next().unwrap().to_string();
            assert_eq!(words[..2], ["brook", "health"], "{file}: {words:?}");
            match Cli::try_parse_from(&words) {
                Ok(Cli {
                    command: Command::Health(_),
                }) => {}
                other => panic!("{file}: {words:?}: {other:?}"),
            }
        }
    }

    /// The `brook …` part of each example line in every command's `--help`.
    fn examples(cmd: &clap::Command, out: &mut Vec<String>) {
        let help = cmd.get_after_help().map(|h| h.to_string());
        for line in help.iter().flat_map(|h| h.lines()) {
            if let Some(at) = line.find("brook ") {
                let line = &line[at..];
                // Redirections belong to the shell, not to brook.
                let end = [" <", " >"]
                    .iter()
                    .filter_map(|r| line.find(r))
                    .min()
                    .unwrap_or(line.len());
                out.push(line[..end].to_string());
            }
        }
        for sub in cmd.get_subcommands() {
            examples(sub, out);
        }
    }

    #[test]
    fn every_help_example_parses() {
        let mut found = Vec::new();
        examples(&Cli::command(), &mut found);
        // Top level, serve, bench, topic, produce, consume, group, lag, data (+ verify, repair).
        assert!(found.len() >= 30, "{found:?}");
        for line in &found {
            if let Err(e) = parse(line) {
                panic!("example {line:?}: {e}");
            }
        }
    }

    #[test]
    fn connection_flags_are_accepted_before_and_after_a_subcommand() {
        for line in [
            "brook bench --url https://b:1 --tls-ca ca.pem produce",
            "brook bench produce --url https://b:1 --tls-ca ca.pem",
            "brook topic --url https://b:1 --tls-ca ca.pem list",
            "brook topic list --url https://b:1 --tls-ca ca.pem",
            "brook group describe g --url https://b:1 --tls-ca ca.pem",
            "brook consume t --url https://b:1 --tls-ca ca.pem",
            "brook produce t --url https://b:1 --tls-ca ca.pem",
            "brook lag --url https://b:1 --tls-ca ca.pem",
        ] {
            let url = match parse(line)
                .unwrap_or_else(|e| panic!("{line}: {e}"))
                .command
            {
                Command::Bench(a) => a.conn.url,
                Command::Topic(a) => a.conn.url,
                Command::Group(a) => a.conn.url,
                Command::Consume(a) => a.conn.url,
                Command::Produce(a) => a.conn.url,
                Command::Lag(a) => a.conn.url,
                other => panic!("{line}: {other:?}"),
            };
            assert_eq!(url.as_deref(), Some("https://b:1"), "{line}");
        }
        // Offline and server commands take no broker address.
        refused("brook data verify d --url http://b:1");
        refused("brook serve --url http://b:1");
    }

    fn consume(line: &str) -> consume::ConsumeArgs {
        match parse(line)
            .unwrap_or_else(|e| panic!("{line}: {e}"))
            .command
        {
            Command::Consume(a) => a,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn consume_format_is_a_choice_of_words() {
        assert_eq!(consume("brook consume t").format, consume::Format::Plain);
        assert_eq!(
            consume("brook consume t --format json").format,
            consume::Format::Json
        );
        let e = refused("brook consume t --format xml");
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        let text = e.to_string();
        assert!(text.contains("plain") && text.contains("json"), "{text}");
    }

    #[test]
    fn consume_from_takes_a_word_or_a_position() {
        use brook_client::ResetTo;
        assert_eq!(consume("brook consume t").from, ResetTo::Earliest);
        let cases = [
            ("earliest", ResetTo::Earliest),
            ("latest", ResetTo::Latest),
            ("offset:1500", ResetTo::Offset(1500)),
            ("time:1767225600000", ResetTo::Timestamp(1_767_225_600_000)),
        ];
        for (from, want) in cases {
            assert_eq!(
                consume(&format!("brook consume t --from {from}")).from,
                want
            );
        }
        for bad in ["begin", "shift:-1", "offset:x", "1500"] {
            let e = refused(&format!("brook consume t --from {bad}"));
            assert_eq!(e.kind(), ErrorKind::ValueValidation, "{bad}: {e}");
        }
        let help = Cli::command()
            .find_subcommand_mut("consume")
            .map(|c| c.render_long_help().to_string())
            .unwrap_or_default();
        assert!(
            help.contains("offset:N") && help.contains("time:MS"),
            "{help}"
        );
    }

    #[test]
    fn reset_offsets_to_takes_a_shift_too() {
        let line = "brook group reset-offsets g --topic t --to shift:-100";
        match parse(line).map(|c| c.command) {
            Ok(Command::Group(a)) => assert!(matches!(
                a.cmd,
                groups::GroupCmd::ResetOffsets {
                    to: brook_client::ResetTo::ShiftBy(-100),
                    ..
                }
            )),
            other => panic!("{other:?}"),
        }
        let e = refused("brook group reset-offsets g --topic t --to back:5");
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        // --to has no default: resetting to nowhere is a mistake.
        assert_eq!(
            refused("brook group reset-offsets g --topic t").kind(),
            ErrorKind::MissingRequiredArgument
        );
    }

    #[test]
    fn bench_acks_is_a_choice_of_words() {
        let acks = |line: &str| match parse(line).map(|c| c.command) {
            Ok(Command::Bench(bench::BenchArgs {
                workload: Some(bench::Workload::Produce(p)),
                ..
            })) => p.acks,
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(acks("brook bench produce"), bench::AckLevel::Written);
        assert_eq!(
            acks("brook bench produce --acks durable"),
            bench::AckLevel::Durable
        );
        let e = refused("brook bench produce --acks all");
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        assert!(e.to_string().contains("written"), "{e}");
        assert!(matches!(
            parse("brook bench --scenario w2-group --records 10").map(|c| c.command),
            Ok(Command::Bench(bench::BenchArgs {
                scenario: Some(_),
                records: Some(10),
                ..
            }))
        ));
    }

    #[test]
    fn topic_flush_takes_a_word_or_an_interval() {
        use brook_storage::FlushPolicy;
        use std::time::Duration;
        let flush = |line: &str| match parse(line).map(|c| c.command) {
            Ok(Command::Topic(topics::TopicArgs {
                cmd: topics::TopicCmd::Create { flush, .. },
                ..
            })) => flush,
            other => panic!("{line}: {other:?}"),
        };
        assert_eq!(flush("brook topic create t"), None);
        assert_eq!(
            flush("brook topic create t --flush always"),
            Some(FlushPolicy::Always)
        );
        assert_eq!(
            flush("brook topic create t --flush interval:250"),
            Some(FlushPolicy::Interval(Duration::from_millis(250)))
        );
        for bad in ["sometimes", "interval:0", "interval:"] {
            let e = refused(&format!("brook topic create t --flush {bad}"));
            assert_eq!(e.kind(), ErrorKind::ValueValidation, "{bad}: {e}");
        }
    }

    #[test]
    fn serve_refuses_unknown_words_up_front() {
        let e = refused("brook serve --on-open-error retry");
        assert_eq!(e.kind(), ErrorKind::InvalidValue);
        assert!(e.to_string().contains("offline"), "{e}");
        assert_eq!(
            refused("brook serve --flush sometimes").kind(),
            ErrorKind::ValueValidation
        );
    }
}
