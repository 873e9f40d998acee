//! `brook rule`: routing rules. `test` checks an EventBridge event pattern
//! against an event here, without a broker: whether it matches, and if not,
//! which field did not and why (docs/rules.md).

use std::path::PathBuf;

use anyhow::Context;

use crate::rules::pattern::Pattern;

/// `brook rule` flags.
#[derive(Debug, clap::Args)]
pub(crate) struct RuleArgs {
    #[command(subcommand)]
    cmd: RuleCmd,
}

#[derive(Debug, clap::Subcommand)]
enum RuleCmd {
    /// Does an event match a pattern? Exit 0 if it does; 1 if not, with the
    /// first field that did not match and why.
    #[command(after_help = "\
Examples:
  brook rule test --pattern '{\"source\":[\"order-service\"]}' --event '{\"source\":\"order-service\"}'
  brook rule test --pattern-file rule.json --event-file event.json
  brook rule test --pattern '{\"detail\":{\"amount\":[{\"numeric\":[\">\",100]}]}}' --event-file - --json")]
    Test(TestArgs),
}

/// `brook rule test` flags.
#[derive(Debug, clap::Args)]
struct TestArgs {
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

/// Runs `brook rule`; `false` when a tested event does not match.
pub(crate) fn run(args: RuleArgs) -> anyhow::Result<bool> {
    match args.cmd {
        RuleCmd::Test(t) => {
            let pattern = Pattern::parse(&text(t.pattern, t.pattern_file, "pattern")?)?;
            let event = text(t.event, t.event_file, "event")?;
            let event: serde_json::Value =
                serde_json::from_str(&event).context("the event is not JSON")?;
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
    }
}
