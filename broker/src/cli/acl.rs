//! `brook acl …`: who may do what, on a broker run with `--auth required`;
//! and `brook token create`, which makes a principal's bearer token.

use std::io::Write;
use std::path::PathBuf;

use brook_client::proto as v1;
use serde_json::json;

use super::connection::Conn;
use super::output::{Output, table};
use crate::auth::acl::{Acl, CLUSTER, Operation, PatternType, Permission, ResourceType};
use crate::auth::service::to_proto;

/// `brook acl` flags and its subcommand.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  brook acl add --principal billing --consumer --topic orders --group billing
  brook acl add --principal shop --producer --topic orders- --prefix
  brook acl add --principal ops --operation all --topic '*' --group '*' --cluster
  brook acl add --deny --principal intern --operation delete --topic '*'
  brook acl list --principal billing
  brook acl remove --principal shop --producer --topic orders- --prefix
  brook acl whoami")]
pub(crate) struct AclArgs {
    #[command(flatten)]
    pub(crate) conn: Conn,
    #[command(flatten)]
    pub(crate) output: Output,
    #[command(subcommand)]
    pub(crate) cmd: AclCmd,
}

/// `brook acl …`
#[derive(Debug, clap::Subcommand)]
pub(crate) enum AclCmd {
    /// Allow (or --deny) a principal operations on topics, groups or the cluster.
    Add(AclSpec),
    /// List entries (all, or those of a principal or resource).
    List(AclFilter),
    /// Remove the entries exactly as `add` with the same flags made them.
    Remove(AclSpec),
    /// The principal the broker sees for these connection settings.
    Whoami,
}

/// Which entries `add` or `remove` means.
#[derive(Debug, clap::Args)]
pub(crate) struct AclSpec {
    /// The principal (a token's principal, a certificate subject such as
    /// CN=billing,O=Acme), or '*' for every authenticated one.
    #[arg(long)]
    principal: String,
    /// Deny instead of allow (a deny wins over every allow).
    #[arg(long)]
    deny: bool,
    /// Operations (repeat or comma-separate).
    #[arg(long = "operation", value_enum, value_delimiter = ',')]
    operations: Vec<Operation>,
    /// Shorthand for a producer: write on the topics (InitProducer follows).
    #[arg(long)]
    producer: bool,
    /// Shorthand for a consumer: read on the topics, read and commit on the groups.
    #[arg(long)]
    consumer: bool,
    /// Topics ('*': every topic).
    #[arg(long = "topic")]
    topics: Vec<String>,
    /// Consumer groups ('*': every group).
    #[arg(long = "group")]
    groups: Vec<String>,
    /// The cluster (describe it; alter: manage ACLs).
    #[arg(long)]
    cluster: bool,
    /// The topic and group names are prefixes.
    #[arg(long)]
    prefix: bool,
}

/// Which entries `list` shows.
#[derive(Debug, clap::Args)]
pub(crate) struct AclFilter {
    /// Only this principal's.
    #[arg(long)]
    principal: Option<String>,
    /// Only entries naming this topic exactly.
    #[arg(long, conflicts_with_all = ["group", "cluster"])]
    topic: Option<String>,
    /// Only entries naming this group exactly.
    #[arg(long, conflicts_with = "cluster")]
    group: Option<String>,
    /// Only entries on the cluster.
    #[arg(long)]
    cluster: bool,
}

impl AclSpec {
    /// Every entry the flags name: each operation on each resource, plus
    /// what --producer and --consumer stand for.
    fn bindings(&self) -> anyhow::Result<Vec<v1::AclBinding>> {
        anyhow::ensure!(
            !self.topics.is_empty() || !self.groups.is_empty() || self.cluster,
            "name what the entry is about: --topic, --group or --cluster"
        );
        anyhow::ensure!(
            !self.operations.is_empty() || self.producer || self.consumer,
            "name the operations: --operation, --producer or --consumer"
        );
        let pattern = match self.prefix {
            true => PatternType::Prefixed,
            false => PatternType::Literal,
        };
        let permission = match self.deny {
            true => Permission::Deny,
            false => Permission::Allow,
        };
        let mut out = Vec::new();
        let mut push = |resource_type, name: &str, operation, pattern_type| {
            let b = to_proto(&Acl {
                principal: self.principal.clone(),
                permission,
                operation,
                resource_type,
                pattern_type,
                resource_name: name.to_string(),
            });
            if !out.contains(&b) {
                out.push(b);
            }
        };
        use Operation::{Commit, Read, Write};
        for t in &self.topics {
            for &op in &self.operations {
                push(ResourceType::Topic, t, op, pattern);
            }
            if self.producer {
                push(ResourceType::Topic, t, Write, pattern);
            }
            if self.consumer {
                push(ResourceType::Topic, t, Read, pattern);
            }
        }
        for g in &self.groups {
            for &op in &self.operations {
                push(ResourceType::Group, g, op, pattern);
            }
            if self.consumer {
                push(ResourceType::Group, g, Read, pattern);
                push(ResourceType::Group, g, Commit, pattern);
            }
        }
        if self.cluster {
            for &op in &self.operations {
                push(ResourceType::Cluster, CLUSTER, op, PatternType::Literal);
            }
        }
        anyhow::ensure!(
            !out.is_empty(),
            "--producer and --consumer need --topic (and --consumer a --group)"
        );
        Ok(out)
    }
}

/// Runs `brook acl …`.
pub(crate) async fn run(args: AclArgs) -> anyhow::Result<()> {
    let admin = args.conn.client().await?.admin();
    let json = args.output.json;
    match args.cmd {
        AclCmd::Add(spec) => {
            let bindings = spec.bindings()?;
            let n = bindings.len();
            let created = admin.create_acls(bindings).await?;
            match json {
                true => println!("{}", json!({"created": created, "given": n})),
                false => println!(
                    "added {created} ACL entries ({} were there already)",
                    n as u32 - created
                ),
            }
        }
        AclCmd::Remove(spec) => {
            let deleted = admin.delete_acls(spec.bindings()?).await?;
            match json {
                true => println!("{}", json!({"deleted": deleted})),
                false => println!("removed {deleted} ACL entries"),
            }
        }
        AclCmd::List(f) => {
            let (resource_type, resource_name) = match (&f.topic, &f.group, f.cluster) {
                (Some(t), _, _) => (v1::ResourceType::Topic, t.clone()),
                (_, Some(g), _) => (v1::ResourceType::Group, g.clone()),
                (_, _, true) => (v1::ResourceType::Cluster, String::new()),
                _ => (v1::ResourceType::Unspecified, String::new()),
            };
            let filter = v1::ListAclsRequest {
                principal: f.principal.unwrap_or_default(),
                resource_type: resource_type as i32,
                resource_name,
            };
            print_acls(&admin.list_acls(filter).await?, json);
        }
        AclCmd::Whoami => {
            let me = admin.who_am_i().await?;
            match json {
                true => println!(
                    "{}",
                    json!({"principal": me.principal, "super_user": me.super_user, "auth": me.auth})
                ),
                false if me.auth == "off" => {
                    println!("(the broker runs with --auth off: no principal)")
                }
                false => println!(
                    "{}{}",
                    me.principal,
                    if me.super_user { " (super user)" } else { "" }
                ),
            }
        }
    }
    Ok(())
}

fn lower(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix)
        .unwrap_or(name)
        .to_ascii_lowercase()
}

fn print_acls(acls: &[v1::AclBinding], json: bool) {
    let row = |a: &v1::AclBinding| {
        let name = |n: Option<&str>, p: &str| lower(n.unwrap_or("?"), p);
        [
            a.principal.clone(),
            name(
                v1::AclPermission::try_from(a.permission)
                    .ok()
                    .map(|v| v.as_str_name()),
                "ACL_PERMISSION_",
            ),
            name(
                v1::AclOperation::try_from(a.operation)
                    .ok()
                    .map(|v| v.as_str_name()),
                "ACL_OPERATION_",
            ),
            name(
                v1::ResourceType::try_from(a.resource_type)
                    .ok()
                    .map(|v| v.as_str_name()),
                "RESOURCE_TYPE_",
            ),
            name(
                v1::PatternType::try_from(a.pattern_type)
                    .ok()
                    .map(|v| v.as_str_name()),
                "PATTERN_TYPE_",
            ),
            a.resource_name.clone(),
        ]
    };
    if json {
        let v: Vec<_> = acls
            .iter()
            .map(|a| {
                let [principal, permission, operation, resource_type, pattern_type, resource_name] =
                    row(a);
                json!({"principal": principal, "permission": permission, "operation": operation,
                    "resource_type": resource_type, "pattern_type": pattern_type, "resource_name": resource_name})
            })
            .collect();
        println!("{}", serde_json::Value::Array(v));
        return;
    }
    let rows: Vec<Vec<String>> = acls.iter().map(|a| row(a).to_vec()).collect();
    table(
        &[
            "PRINCIPAL",
            "PERMISSION",
            "OPERATION",
            "RESOURCE",
            "PATTERN",
            "NAME",
        ],
        &rows,
    );
}

/// `brook token …`
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  brook token create billing --tokens-file /etc/brook/tokens.toml
  kill -HUP $(pidof brook)   # the broker reloads the file")]
pub(crate) struct TokenArgs {
    #[command(subcommand)]
    cmd: TokenCmd,
}

#[derive(Debug, clap::Subcommand)]
enum TokenCmd {
    /// Make a new random token for a principal: the token goes to standard
    /// output (give it to the client: --token, BROOK_TOKEN), only its hash
    /// into the tokens file.
    Create {
        /// The principal the token authenticates as.
        principal: String,
        /// The broker's --tokens-file, to append the entry to (created 0600 if missing).
        #[arg(long)]
        tokens_file: PathBuf,
    },
}

/// Runs `brook token …`.
pub(crate) fn run_token(args: TokenArgs) -> anyhow::Result<()> {
    let TokenCmd::Create {
        principal,
        tokens_file,
    } = args.cmd;
    use crate::auth::tokens;
    tokens::check_principal(&principal).map_err(anyhow::Error::msg)?;
    let token = tokens::generate().map_err(anyhow::Error::msg)?;
    let mut text = match std::fs::read_to_string(&tokens_file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => anyhow::bail!("reading {}: {e}", tokens_file.display()),
    };
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&tokens::entry(&principal, &token));
    // The whole file is checked before it is written: a broken file would
    // be refused at the broker's next reload.
    tokens::Tokens::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", tokens_file.display()))?;
    let dir = match tokens_file.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let name = tokens_file
        .file_name()
        .and_then(|n| n.to_str())
        .ok_or_else(|| anyhow::anyhow!("{} is not a file name", tokens_file.display()))?;
    brook_storage::write_atomic(&dir, name, text.as_bytes())?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&tokens_file, std::fs::Permissions::from_mode(0o600))?;
    writeln!(std::io::stdout(), "{token}")?;
    eprintln!(
        "added {principal:?} to {}; a running broker loads it on SIGHUP (kill -HUP <pid>)",
        tokens_file.display()
    );
    Ok(())
}
