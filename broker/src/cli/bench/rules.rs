//! `brook bench rules`: routing rules' throughput inside the broker, the
//! workload scripts/bench-rules.sh runs with 1, 10 and 100 rules
//! (docs/benchmarks.md).
//!
//! `--messages` JSON events of about `--size` bytes, keyed by 10,000
//! aggregates, are published to the topic first. Event `i` has
//! `detail-type` `Type-(i mod R)`: with R rules, each selecting one type
//! (`{"source": ["bench"], "detail-type": ["Type-j"]}`), every event is
//! selected by exactly one rule and written once, so the rule count
//! measures what matching costs. The rules are then created from the
//! earliest record, all writing to one target topic, and the clock runs
//! until every rule's lag is 0. Throughput is source events per second;
//! before the rules, the same events are read back once by a plain
//! consumer, the baseline the rules are measured against (its rate is in
//! the report's `baseline_records_per_s`).

use std::time::{Duration, Instant};

use brook_client::{Client, ProducerConfig, proto as v1};
use bytes::Bytes;

use super::progress::Progress;
use super::report::Report;
use super::{aggregate_keys, end_offsets};

/// `brook bench rules` flags.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct RulesArgs {
    /// Events to publish and route.
    #[arg(long, default_value_t = 500_000)]
    pub(crate) messages: u64,
    /// Approximate size of each event's JSON value, in bytes.
    #[arg(long, default_value_t = 1024)]
    pub(crate) size: usize,
    /// Rules reading the topic, each selecting one event type.
    #[arg(long, default_value_t = 10)]
    pub(crate) rules: u32,
    /// Every event carries a W3C `traceparent` of its own (a sampled trace
    /// per event): with a broker exporting spans, each routed event costs
    /// a route span.
    #[arg(long)]
    pub(crate) traced: bool,
}

/// Aggregates the events belong to.
const AGGREGATES: u64 = 10_000;
/// How often the rules' lag is asked for.
const POLL: Duration = Duration::from_millis(20);

/// The JSON event `i`, padded to about `size` bytes.
fn event(i: u64, types: u32, size: usize) -> Bytes {
    let head = format!(
        r#"{{"version":"0","id":"{i:016x}","source":"bench","detail-type":"Type-{}","time":"2026-12-01T00:00:00Z","detail":{{"orderId":"o-{}","amount":{},"currency":"EUR","note":""#,
        i % u64::from(types),
        i % AGGREGATES,
        i % 1000
    );
    let pad = size.saturating_sub(head.len() + 3);
    Bytes::from(format!("{head}{}\"}}}}", "x".repeat(pad)))
}

/// Runs the workload.
pub(crate) async fn rules(
    client: &Client,
    topic: &str,
    args: &RulesArgs,
    quiet: bool,
) -> anyhow::Result<Report> {
    anyhow::ensure!(args.rules > 0, "--rules must be at least 1");
    let admin = client.admin();
    let source = admin.describe_topic(topic).await?;
    let target = format!("{topic}-routed");
    if admin.describe_topic(&target).await.is_err() {
        admin
            .create_topic(&target, source.partitions.len() as u32)
            .await?;
    }
    let before = end_offsets(client, topic).await?;
    anyhow::ensure!(
        before == 0,
        "topic {topic} holds {before} records already: give a new --topic"
    );
    let keys = aggregate_keys(AGGREGATES);
    let producer = client.producer(ProducerConfig {
        batch_bytes: 1 << 20,
        ..ProducerConfig::default()
    });
    let published = Instant::now();
    for i in 0..args.messages {
        let key = keys[(i % AGGREGATES) as usize].clone();
        let value = event(i, args.rules, args.size);
        match args.traced {
            false => producer.send(topic, Some(key), value).await?,
            true => {
                let traceparent = format!("00-{:032x}-{:016x}-01", i + 1, i + 1);
                let record = brook_client::ProducerRecord {
                    topic: topic.to_string(),
                    key: Some(key),
                    value: Some(value),
                    headers: vec![("traceparent".into(), Bytes::from(traceparent))],
                    ..Default::default()
                };
                producer.send_record(record).await?
            }
        };
    }
    producer.flush().await?;
    let publish_secs = published.elapsed().as_secs_f64();
    let stored = end_offsets(client, topic).await?;
    anyhow::ensure!(stored >= args.messages, "not every event was stored");
    let read = super::ConsumeArgs {
        messages: args.messages,
        fetch_bytes: 4 << 20,
    };
    let baseline = super::consume::consume(client, topic, &read, true)
        .await?
        .elapsed;
    if !quiet {
        eprintln!(
            "published {} events in {publish_secs:.2} s; a plain consumer read them at {:.0}/s; routing with {} rules",
            args.messages,
            args.messages as f64 / baseline.as_secs_f64(),
            args.rules
        );
    }

    let _progress = Progress::start("routed", args.messages, quiet);
    let names: Vec<String> = (0..args.rules)
        .map(|j| format!("bench-{topic}-{j}"))
        .collect();
    let started = Instant::now();
    for (j, name) in names.iter().enumerate() {
        let rule = v1::RuleDefinition {
            name: name.clone(),
            source_topic: topic.into(),
            event_pattern: format!(r#"{{"source":["bench"],"detail-type":["Type-{j}"]}}"#),
            targets: vec![target.clone()],
            start: v1::RuleStart::Earliest as i32,
            ..Default::default()
        };
        admin.create_rule(rule).await?;
    }
    let forwarded = loop {
        let listed = admin.list_rules(Some(topic)).await?;
        let lag: u64 = listed.iter().map(|r| r.lag).sum();
        let forwarded: u64 = listed.iter().map(|r| r.forwarded).sum();
        super::progress::set(forwarded);
        if let Some(failed) = listed.iter().find(|r| !r.reason.is_empty()) {
            anyhow::bail!(
                "rule {:?} stopped: {}",
                failed.rule.as_ref().map(|d| &d.name),
                failed.reason
            );
        }
        if lag == 0 && listed.len() == names.len() {
            break forwarded;
        }
        tokio::time::sleep(POLL).await;
    };
    let elapsed = started.elapsed();
    anyhow::ensure!(
        forwarded == args.messages,
        "the rules forwarded {forwarded} events, expected {}",
        args.messages
    );
    for name in &names {
        admin.delete_rule(name).await?;
    }
    let mut report = Report::new(
        "rules (source events routed)",
        args.messages,
        stored * args.size as u64,
        elapsed,
        None,
    );
    report.baseline_records_per_s = Some(args.messages as f64 / baseline.as_secs_f64());
    Ok(report)
}
