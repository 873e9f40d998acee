//! `brook group …`: list, describe and delete consumer groups; move their
//! committed offsets to replay or skip records.

use brook_client::{Admin, ResetTo, proto as v1};
use serde_json::json;

use super::connection::Conn;
use super::output::{Output, table};
use super::position::parse_to;

/// `brook group` flags and its subcommand.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  brook group list
  brook group describe billing --json
  brook group reset-offsets billing --topic orders --to earliest --dry-run
  brook group reset-offsets billing --topic orders --partition 2 --to shift:-100")]
pub(crate) struct GroupArgs {
    #[command(flatten)]
    pub(crate) conn: Conn,
    #[command(flatten)]
    pub(crate) output: Output,
    #[command(subcommand)]
    pub(crate) cmd: GroupCmd,
}

/// `brook group …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum GroupCmd {
    /// List groups.
    List,
    /// State, members, assignments and committed offsets.
    Describe {
        /// Group name.
        group: String,
    },
    /// Delete a group's committed offsets (it must have no members).
    Delete {
        /// Group name.
        group: String,
    },
    /// Move a group's offsets: replay or skip.
    ResetOffsets {
        /// Group name.
        group: String,
        /// Topic.
        #[arg(long)]
        topic: String,
        /// Partitions (default: all).
        #[arg(long = "partition")]
        partitions: Vec<u32>,
        /// Where to move them: earliest, latest, offset:N, time:MS or shift:N
        ///
        ///   earliest   the first stored record (replay everything)
        ///   latest     the log end (skip everything stored)
        ///   offset:N   offset N, clamped to the log
        ///   time:MS    the first record at or after MS, in ms since the Unix epoch
        ///   shift:N    N records from the committed offset (negative: back)
        #[arg(long, value_name = "POSITION", value_parser = parse_to, verbatim_doc_comment)]
        to: ResetTo,
        /// Show the result, change nothing.
        #[arg(long)]
        dry_run: bool,
        /// Even while the group has members.
        #[arg(long)]
        force: bool,
    },
}

/// Runs `brook group …`.
pub(crate) async fn run(args: GroupArgs) -> anyhow::Result<()> {
    let admin = args.conn.client().await?.admin();
    let json = args.output.json;
    match args.cmd {
        GroupCmd::List => list(&admin, json).await?,
        GroupCmd::Describe { group } => describe(&admin, &group, json).await?,
        GroupCmd::Delete { group } => {
            admin.delete_group(&group).await?;
            if !json {
                println!("deleted group {group}");
            }
        }
        GroupCmd::ResetOffsets {
            group,
            topic,
            partitions,
            to,
            dry_run,
            force,
        } => {
            let r = admin
                .reset_offsets(&group, &topic, &partitions, to, dry_run, force)
                .await?;
            print_reset(&r, json);
        }
    }
    Ok(())
}

async fn list(admin: &Admin, json: bool) -> anyhow::Result<()> {
    let groups = admin.list_groups().await?;
    if json {
        let v: Vec<_> = groups
            .iter()
            .map(|g| json!({"group": g.group, "state": state(g.state), "members": g.members}))
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return Ok(());
    }
    let rows: Vec<Vec<String>> = groups
        .iter()
        .map(|g| {
            vec![
                g.group.clone(),
                state(g.state).into(),
                g.members.to_string(),
            ]
        })
        .collect();
    table(&["GROUP", "STATE", "MEMBERS"], &rows);
    Ok(())
}

async fn describe(admin: &Admin, group: &str, json: bool) -> anyhow::Result<()> {
    let d = admin.describe_group(group).await?;
    if json {
        let members: Vec<_> = d
            .members
            .iter()
            .map(|m| json!({"member_id": m.member_id, "client_id": m.client_id, "host": m.host,
                "assignment": m.assignment.iter().map(|t| json!({"topic": t.topic, "partitions": t.partitions})).collect::<Vec<_>>()}))
            .collect();
        let offsets: Vec<_> = d.offsets.iter().map(|o| json!({"topic": o.topic, "partition": o.partition, "offset": o.offset, "metadata": o.metadata})).collect();
        println!(
            "{}",
            json!({"group": d.group, "state": state(d.state), "generation": d.generation, "members": members, "offsets": offsets})
        );
        return Ok(());
    }
    println!(
        "group {} is {} at generation {}",
        d.group,
        state(d.state),
        d.generation
    );
    let rows: Vec<Vec<String>> = d
        .members
        .iter()
        .map(|m| {
            let parts: Vec<String> = m
                .assignment
                .iter()
                .map(|t| format!("{}:{:?}", t.topic, t.partitions))
                .collect();
            vec![
                m.member_id.clone(),
                m.client_id.clone(),
                m.host.clone(),
                parts.join(" "),
            ]
        })
        .collect();
    table(&["MEMBER", "CLIENT", "HOST", "ASSIGNMENT"], &rows);
    let rows: Vec<Vec<String>> = d
        .offsets
        .iter()
        .map(|o| {
            vec![
                o.topic.clone(),
                o.partition.to_string(),
                o.offset.to_string(),
            ]
        })
        .collect();
    table(&["TOPIC", "PARTITION", "COMMITTED"], &rows);
    Ok(())
}

fn print_reset(r: &v1::ResetOffsetsResponse, json: bool) {
    if json {
        let v: Vec<_> = r.changes.iter().map(|c| json!({"topic": c.topic, "partition": c.partition, "before": c.before, "after": c.after})).collect();
        println!("{}", json!({"applied": r.applied, "changes": v}));
        return;
    }
    let rows: Vec<Vec<String>> = r
        .changes
        .iter()
        .map(|c| {
            vec![
                c.topic.clone(),
                c.partition.to_string(),
                c.before.map_or("-".into(), |b| b.to_string()),
                c.after.to_string(),
            ]
        })
        .collect();
    table(&["TOPIC", "PARTITION", "BEFORE", "AFTER"], &rows);
    println!(
        "{}",
        if r.applied {
            "applied"
        } else {
            "dry run: nothing changed"
        }
    );
}

fn state(s: i32) -> &'static str {
    match v1::GroupState::try_from(s) {
        Ok(v1::GroupState::Empty) => "empty",
        Ok(v1::GroupState::Rebalancing) => "rebalancing",
        Ok(v1::GroupState::Stable) => "stable",
        _ => "unknown",
    }
}
