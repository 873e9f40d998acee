//! `brook health`: is the broker there and serving, which version, for how
//! long; the exit status says it, for scripts and container health checks.

use std::time::Duration;

use brook_client::proto as v1;
use serde_json::json;

use super::connection::Conn;
use super::output::Output;

/// `brook health` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Exit status: 0 when the broker serves; 1 when it does not (unreachable, still
recovering its log, shutting down) or, with --strict, has a partition offline.

Examples:
  brook health
  brook health --url broker:9292 --json
  brook health --strict --timeout 2s")]
pub(crate) struct HealthArgs {
    #[command(flatten)]
    pub(crate) conn: Conn,
    #[command(flatten)]
    pub(crate) output: Output,
    /// Unhealthy also while any partition is offline (it serves the others).
    #[arg(long)]
    pub(crate) strict: bool,
    /// Give up after this long (e.g. 2s, 500ms).
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub(crate) timeout: Duration,
}

/// What `brook health` found.
#[derive(Debug)]
enum Found {
    /// No answer: the reason.
    Unreachable(String),
    /// The health service's verdict and the broker's description.
    Answered {
        serving: bool,
        broker: Box<v1::BrokerDescription>,
    },
}

/// Runs `brook health`; returns whether the broker is healthy.
pub(crate) async fn run(args: HealthArgs) -> anyhow::Result<bool> {
    let url = args.conn.target()?.url().to_string();
    let found = match tokio::time::timeout(args.timeout, ask(&args.conn)).await {
        Ok(Ok(found)) => found,
        Ok(Err(e)) => {
            Found::Unreachable(format!("{:#}", super::connection::protocol_hint(e, &url)))
        }
        Err(_) => Found::Unreachable(format!(
            "no answer from {url} within {}",
            humantime::format_duration(args.timeout)
        )),
    };
    let healthy = match &found {
        Found::Unreachable(_) => false,
        Found::Answered { serving, broker } => {
            *serving && !(args.strict && broker.offline_partitions > 0)
        }
    };
    match args.output.json {
        true => println!("{}", as_json(&url, &found, healthy)),
        false => println!("{}", as_text(&url, &found)),
    }
    Ok(healthy)
}

async fn ask(conn: &Conn) -> anyhow::Result<Found> {
    let admin = conn.client().await?.admin();
    let serving = admin.is_serving("").await?;
    let cluster = admin.describe_cluster().await?;
    let broker = cluster
        .brokers
        .into_iter()
        .next()
        .ok_or_else(|| anyhow::anyhow!("the broker described no broker"))?;
    Ok(Found::Answered {
        serving,
        broker: Box::new(broker),
    })
}

fn as_text(url: &str, found: &Found) -> String {
    let (serving, b) = match found {
        // The reason names the address already.
        Found::Unreachable(why) => return format!("unreachable: {why}"),
        Found::Answered { serving, broker } => (*serving, broker),
    };
    let state = match serving {
        true => "serving",
        false if b.ready => "not serving",
        false => "not serving (recovering its log or shutting down)",
    };
    let mut text = format!(
        "{state}: brook {} ({}) at {url}, up {}, {} topics, {} partitions",
        b.version,
        b.commit,
        humantime::format_duration(Duration::from_secs(b.uptime_ms / 1000)),
        b.topics,
        b.partitions
    );
    if b.offline_partitions > 0 {
        text.push_str(&format!(
            "\ndegraded: {} partitions offline (brook topic describe TOPIC says why)",
            b.offline_partitions
        ));
    }
    text
}

fn as_json(url: &str, found: &Found, healthy: bool) -> serde_json::Value {
    match found {
        Found::Unreachable(why) => json!({
            "url": url, "healthy": false, "reachable": false, "error": why,
        }),
        Found::Answered { serving, broker: b } => json!({
            "url": url, "healthy": healthy, "reachable": true, "serving": serving,
            "version": b.version, "commit": b.commit, "started_at_ms": b.started_at_ms,
            "uptime_ms": b.uptime_ms, "topics": b.topics, "partitions": b.partitions,
            "offline_partitions": b.offline_partitions,
        }),
    }
}
