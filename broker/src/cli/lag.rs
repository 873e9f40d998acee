//! `brook lag`: how far each consumer group is behind, per partition, in
//! records and in time.

use std::time::Duration;

use brook_client::proto as v1;
use serde_json::json;

use super::connection::Conn;
use super::output::{Output, table};

/// `brook lag` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  brook lag
  brook lag billing --watch
  brook lag billing --json")]
pub(crate) struct LagArgs {
    #[command(flatten)]
    pub(crate) conn: Conn,
    #[command(flatten)]
    pub(crate) output: Output,
    /// Group (default: every group).
    pub(crate) group: Option<String>,
    /// Refresh every second until interrupted.
    #[arg(long)]
    pub(crate) watch: bool,
}

/// Runs `brook lag`.
pub(crate) async fn run(args: LagArgs) -> anyhow::Result<()> {
    let admin = args.conn.client().await?.admin();
    loop {
        let groups = match &args.group {
            Some(g) => vec![g.clone()],
            None => admin
                .list_groups()
                .await?
                .into_iter()
                .map(|g| g.group)
                .collect(),
        };
        let mut all = Vec::new();
        for g in &groups {
            match admin.consumer_lag(g, None).await {
                Ok(lag) => all.push(lag),
                // Listed, then gone (its last member left, or it was
                // deleted) before its lag was asked: nothing to report.
                Err(e) if args.group.is_none() && e.reason() == Some("GROUP_NOT_FOUND") => {}
                Err(e) => return Err(e.into()),
            }
        }
        print(&all, args.output.json);
        if !args.watch {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        println!();
    }
}

fn print(all: &[v1::ConsumerLag], json: bool) {
    if json {
        let v: Vec<_> = all
            .iter()
            .map(|l| json!({"group": l.group, "total_lag_records": l.total_lag_records, "max_lag_ms": l.max_lag_ms,
                "partitions": l.partitions.iter().map(|p| json!({"topic": p.topic, "partition": p.partition,
                    "committed": p.committed_offset, "log_end_offset": p.log_end_offset, "lag": p.lag_records, "lag_ms": p.lag_ms})).collect::<Vec<_>>()}))
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return;
    }
    let mut rows = Vec::new();
    for l in all {
        for p in &l.partitions {
            rows.push(vec![
                l.group.clone(),
                p.topic.clone(),
                p.partition.to_string(),
                p.committed_offset.map_or("-".into(), |c| c.to_string()),
                p.log_end_offset.to_string(),
                p.lag_records.to_string(),
                human_ms(p.lag_ms),
            ]);
        }
    }
    table(
        &[
            "GROUP",
            "TOPIC",
            "PARTITION",
            "COMMITTED",
            "END",
            "LAG",
            "TIME LAG",
        ],
        &rows,
    );
}

fn human_ms(ms: i64) -> String {
    match ms {
        0 => "0".into(),
        ms if ms < 1000 => format!("{ms}ms"),
        ms if ms < 60_000 => format!("{:.1}s", ms as f64 / 1000.0),
        ms if ms < 3_600_000 => format!("{:.1}m", ms as f64 / 60_000.0),
        ms => format!("{:.1}h", ms as f64 / 3_600_000.0),
    }
}
