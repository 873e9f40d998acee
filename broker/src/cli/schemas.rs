//! `brook schema …`: the schema registry (docs/schemas.md) from the shell:
//! register, list, show, check, delete, and compatibility levels.

use std::path::PathBuf;

use serde_json::json;

use super::connection::Conn;
use super::output::{Output, table};

/// `brook schema` flags and its subcommand.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  brook schema register orders-value --type json --file order.schema.json
  brook schema list
  brook schema show orders-value
  brook schema show orders-value --version 2
  brook schema show --id 7
  brook schema check orders-value --type json --file order-v3.schema.json
  brook schema delete orders-value --version 2
  brook schema delete orders-value --version 2 --permanent
  brook schema compat set FULL --subject orders-value
  brook schema compat get
  brook schema bind orders --value-subject orders-value --mode full
  brook schema bind orders --value-subject orders-value --mode full --on-invalid dead-letter
  brook schema bind orders --unbind")]
pub(crate) struct SchemaArgs {
    #[command(flatten)]
    pub(crate) conn: Conn,
    #[command(flatten)]
    pub(crate) output: Output,
    #[command(subcommand)]
    pub(crate) cmd: SchemaCmd,
}

/// `brook schema …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum SchemaCmd {
    /// Register a schema under a subject (checked against its versions).
    Register {
        /// The subject (Confluent's serializers use TOPIC-value and TOPIC-key).
        subject: String,
        #[command(flatten)]
        schema: SchemaText,
    },
    /// Subjects, or a subject's versions.
    List {
        /// List this subject's versions instead.
        subject: Option<String>,
        /// Include soft-deleted ones.
        #[arg(long)]
        deleted: bool,
    },
    /// A version of a subject (the latest by default), or a schema by id.
    Show {
        /// The subject.
        #[arg(required_unless_present = "id")]
        subject: Option<String>,
        /// The version (default: the latest).
        #[arg(long)]
        version: Option<u32>,
        /// A schema by its global id instead.
        #[arg(long, conflicts_with_all = ["subject", "version"])]
        id: Option<u32>,
    },
    /// Would this schema be accepted (exit 1 if not, with the reasons).
    Check {
        /// The subject.
        subject: String,
        #[command(flatten)]
        schema: SchemaText,
        /// Check against this version alone (default: as a registration would).
        #[arg(long)]
        version: Option<u32>,
    },
    /// Delete a version, or every version of a subject: softly, then --permanent.
    Delete {
        /// The subject.
        subject: String,
        /// The version (default: all of the subject's).
        #[arg(long)]
        version: Option<u32>,
        /// For good (only after a soft delete).
        #[arg(long)]
        permanent: bool,
    },
    /// Compatibility levels: get or set, for a subject or the default.
    Compat {
        #[command(subcommand)]
        cmd: CompatCmd,
    },
    /// Bind a topic to subjects: produce requests to it are checked (or
    /// show its binding, with no other flag).
    Bind {
        /// The topic.
        topic: String,
        /// The subject its values follow.
        #[arg(long)]
        value_subject: Option<String>,
        /// The subject its keys follow.
        #[arg(long)]
        key_subject: Option<String>,
        /// `id`: Confluent's framing with an id of the subject; `full`: the
        /// payload valid against that schema too; `off`: keep, do not check.
        #[arg(long, value_parser = ["off", "id", "full"])]
        mode: Option<String>,
        /// `refuse` (default): a request with an invalid record fails whole;
        /// `dead-letter`: invalid records go to the dead-letter topic, the
        /// rest is stored.
        #[arg(long, value_parser = ["refuse", "dead-letter"])]
        on_invalid: Option<String>,
        /// The dead-letter topic (default `<topic>.dlq`).
        #[arg(long, requires = "on_invalid")]
        dead_letter_topic: Option<String>,
        /// Remove the binding.
        #[arg(long, conflicts_with_all = ["value_subject", "key_subject", "mode", "on_invalid", "dead_letter_topic"])]
        unbind: bool,
    },
}

/// `brook schema compat …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum CompatCmd {
    /// The level in force (a subject's own, or the default).
    Get {
        /// The subject (default: the registry's default).
        #[arg(long)]
        subject: Option<String>,
    },
    /// Set a level: NONE, BACKWARD, BACKWARD_TRANSITIVE, FORWARD,
    /// FORWARD_TRANSITIVE, FULL, FULL_TRANSITIVE; or `clear` (a subject
    /// follows the default again; the default goes back to BACKWARD).
    Set {
        /// The level, or `clear`.
        level: String,
        /// The subject (default: the registry's default).
        #[arg(long)]
        subject: Option<String>,
    },
}

/// A schema's text and type.
#[derive(Debug, clap::Args)]
pub(crate) struct SchemaText {
    /// `json` or `avro`.
    #[arg(long = "type", default_value = "avro")]
    schema_type: String,
    /// The file holding the schema ('-': standard input).
    #[arg(long, conflicts_with = "schema")]
    file: Option<PathBuf>,
    /// The schema itself.
    #[arg(long, required_unless_present = "file")]
    schema: Option<String>,
}

impl SchemaText {
    fn read(&self) -> anyhow::Result<(String, String)> {
        let text = match (&self.schema, &self.file) {
            (Some(text), _) => text.clone(),
            (None, Some(path)) if path.as_os_str() == "-" => {
                std::io::read_to_string(std::io::stdin())?
            }
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?,
            (None, None) => anyhow::bail!("give the schema with --file or --schema"),
        };
        Ok((self.schema_type.to_ascii_uppercase(), text))
    }
}

/// Runs `brook schema …`; false when `check` finds the schema incompatible.
pub(crate) async fn run(args: SchemaArgs) -> anyhow::Result<bool> {
    let admin = args.conn.client().await?.admin();
    let json = args.output.json;
    match args.cmd {
        SchemaCmd::Register { subject, schema } => {
            let (kind, text) = schema.read()?;
            let r = admin.register_schema(&subject, &kind, &text).await?;
            match json {
                true => println!(
                    "{}",
                    json!({"subject": subject, "id": r.id, "version": r.version, "created": r.created})
                ),
                false if r.created => {
                    println!(
                        "registered {subject} version {} (schema id {})",
                        r.version, r.id
                    )
                }
                false => println!(
                    "{subject} has this schema already: version {} (schema id {})",
                    r.version, r.id
                ),
            }
        }
        SchemaCmd::List {
            subject: None,
            deleted,
        } => {
            let subjects = admin.list_subjects(deleted).await?;
            match json {
                true => println!("{}", json!(subjects)),
                false => subjects.iter().for_each(|s| println!("{s}")),
            }
        }
        SchemaCmd::List {
            subject: Some(subject),
            deleted,
        } => {
            let versions = admin.list_schema_versions(&subject, deleted).await?;
            let mut rows = Vec::new();
            for v in &versions {
                let shown = admin.schema_version(&subject, *v).await?;
                rows.push(vec![v.to_string(), shown.id.to_string(), shown.schema_type]);
            }
            match json {
                true => println!("{}", json!({"subject": subject, "versions": versions})),
                false => table(&["VERSION", "ID", "TYPE"], &rows),
            }
        }
        SchemaCmd::Show {
            subject,
            version,
            id,
        } => {
            let v = match (id, subject) {
                (Some(id), _) => admin.schema_by_id(id).await?,
                (None, Some(subject)) => {
                    admin.schema_version(&subject, version.unwrap_or(0)).await?
                }
                (None, None) => anyhow::bail!("name a subject, or --id"),
            };
            match json {
                true => println!(
                    "{}",
                    json!({"subject": v.subject, "version": v.version, "id": v.id,
                        "schemaType": v.schema_type, "schema": v.schema})
                ),
                false => {
                    if !v.subject.is_empty() {
                        println!("subject: {}  version: {}", v.subject, v.version);
                    }
                    println!("id: {}  type: {}", v.id, v.schema_type);
                    println!("{}", pretty(&v.schema));
                }
            }
        }
        SchemaCmd::Check {
            subject,
            schema,
            version,
        } => {
            let (kind, text) = schema.read()?;
            let r = admin
                .check_schema(&subject, &kind, &text, version.unwrap_or(0))
                .await?;
            match json {
                true => println!(
                    "{}",
                    json!({"compatible": r.compatible, "problems": r.problems})
                ),
                false if r.compatible => println!("compatible"),
                false => {
                    println!("incompatible:");
                    r.problems.iter().for_each(|p| println!("  {p}"));
                }
            }
            return Ok(r.compatible);
        }
        SchemaCmd::Delete {
            subject,
            version,
            permanent,
        } => {
            let versions = admin
                .delete_schema(&subject, version.unwrap_or(0), permanent)
                .await?;
            let how = if permanent { "permanently" } else { "softly" };
            match json {
                true => println!("{}", json!({"deleted": versions, "permanent": permanent})),
                false => println!("deleted {subject} versions {versions:?} {how}"),
            }
        }
        SchemaCmd::Bind {
            topic,
            value_subject,
            key_subject,
            mode,
            on_invalid,
            dead_letter_topic,
            unbind,
        } => {
            let changes = value_subject.is_some()
                || key_subject.is_some()
                || mode.is_some()
                || on_invalid.is_some()
                || dead_letter_topic.is_some();
            let b = match (unbind, changes) {
                (true, _) => admin.set_topic_schema(&topic, "", "", "").await?,
                (false, true) => {
                    admin
                        .set_topic_binding(brook_client::proto::TopicSchema {
                            topic: topic.clone(),
                            value_subject: value_subject.unwrap_or_default(),
                            key_subject: key_subject.unwrap_or_default(),
                            mode: mode.unwrap_or_else(|| "full".into()),
                            on_invalid: on_invalid.unwrap_or_default(),
                            dead_letter_topic: dead_letter_topic.unwrap_or_default(),
                        })
                        .await?
                }
                (false, false) => admin.topic_schema(&topic).await?,
            };
            match json {
                true => println!(
                    "{}",
                    json!({"topic": b.topic, "value_subject": b.value_subject,
                        "key_subject": b.key_subject, "mode": b.mode,
                        "on_invalid": b.on_invalid, "dead_letter_topic": b.dead_letter_topic})
                ),
                false if b.mode.is_empty() => println!("{topic} is not bound to a subject"),
                false => {
                    let or_none = |s: &str| {
                        if s.is_empty() {
                            "-".to_string()
                        } else {
                            s.to_string()
                        }
                    };
                    let invalid = match b.on_invalid.as_str() {
                        "dead-letter" => format!("invalid records to {}", b.dead_letter_topic),
                        _ => "requests with invalid records refused".to_string(),
                    };
                    println!(
                        "{topic}: values {}, keys {}, mode {}, {invalid}",
                        or_none(&b.value_subject),
                        or_none(&b.key_subject),
                        b.mode
                    );
                }
            }
        }
        SchemaCmd::Compat { cmd } => {
            let (subject, level) = match cmd {
                CompatCmd::Get { subject } => {
                    let subject = subject.unwrap_or_default();
                    (subject.clone(), admin.schema_compatibility(&subject).await?)
                }
                CompatCmd::Set { level, subject } => {
                    let subject = subject.unwrap_or_default();
                    let level = match level.eq_ignore_ascii_case("clear") {
                        true => String::new(),
                        false => level.to_ascii_uppercase(),
                    };
                    (
                        subject.clone(),
                        admin.set_schema_compatibility(&subject, &level).await?,
                    )
                }
            };
            let whose = match (subject.is_empty(), level.own) {
                (true, _) => "the default".to_string(),
                (false, true) => format!("{subject}'s own"),
                (false, false) => format!("the default, which {subject} follows"),
            };
            match json {
                true => println!(
                    "{}",
                    json!({"subject": subject, "level": level.level, "own": level.own})
                ),
                false => println!("{} ({whose})", level.level),
            }
        }
    }
    Ok(true)
}

/// A JSON schema indented for reading (as stored if it is not JSON).
fn pretty(text: &str) -> String {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| text.to_string())
}
