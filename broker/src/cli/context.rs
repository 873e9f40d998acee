//! Named connection profiles ("contexts", as `nats context` and `rpk
//! profile`): where a broker is, which CA to trust and which token to
//! present, kept in `~/.config/brook/config.toml` and picked with
//! `--context NAME`, `BROOK_CONTEXT`, or the file's `current`.
//!
//! ```toml
//! current = "prod"
//!
//! [contexts.local]
//! url = "http://127.0.0.1:9292"
//!
//! [contexts.prod]
//! url = "https://brook.internal:9292"
//! tls_ca = "/etc/brook/ca.pem"
//! token = "…"
//! ```
//!
//! A flag or its environment variable (`--url`/`BROOK_URL`, `--tls-ca`,
//! `--token`) overrides the context's value. `brook context` lists, shows,
//! adds, selects and removes contexts; it edits the file in place
//! (toml_edit keeps the comments and layout a person gave it).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};
use serde::Deserialize;
use serde_json::json;

use super::output::{Output, table};

/// One context: how to reach one broker.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Context {
    /// Broker address (a URL or host:port).
    pub(crate) url: Option<String>,
    /// PEM CA to trust for an https:// broker.
    pub(crate) tls_ca: Option<PathBuf>,
    /// Bearer token to present.
    pub(crate) token: Option<String>,
}

/// The file's contents.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Contexts {
    current: Option<String>,
    #[serde(default)]
    contexts: BTreeMap<String, Context>,
}

/// `$XDG_CONFIG_HOME/brook/config.toml`, else `~/.config/brook/config.toml`.
pub(crate) fn path() -> Option<PathBuf> {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))?;
    Some(base.join("brook").join("config.toml"))
}

fn load(path: &Path) -> anyhow::Result<Contexts> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).with_context(|| format!("reading {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Contexts::default()),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

/// The context to connect with: `name` (from `--context` or
/// `BROOK_CONTEXT`), else the file's `current`, else none. A name the file
/// does not have is an error listing the ones it has.
pub(crate) fn selected(name: Option<&str>) -> anyhow::Result<Option<(String, Context)>> {
    let Some(path) = path() else {
        return match name {
            Some(name) => {
                bail!("context {name:?}: no config file (neither XDG_CONFIG_HOME nor HOME is set)")
            }
            None => Ok(None),
        };
    };
    let file = load(&path)?;
    let Some(name) = name.map(str::to_string).or(file.current.clone()) else {
        return Ok(None);
    };
    match file.contexts.get(&name) {
        Some(c) => Ok(Some((name, c.clone()))),
        None => {
            let known: Vec<&str> = file.contexts.keys().map(String::as_str).collect();
            bail!(
                "no context {name:?} in {} (it has: {}); add one with `brook context add {name} --url URL`",
                path.display(),
                match known.is_empty() {
                    true => "none".to_string(),
                    false => known.join(", "),
                }
            )
        }
    }
}

/// `brook context` flags.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The file: $XDG_CONFIG_HOME/brook/config.toml (default ~/.config/brook/config.toml).
A command uses --context NAME, else BROOK_CONTEXT, else the file's current
context; --url, --tls-ca and --token (or their BROOK_* variables) override it.

Examples:
  brook context add prod --url https://brook.internal:9292 --tls-ca ca.pem --use
  brook context add local --url 127.0.0.1:9292
  brook context list
  brook context use local
  brook topic list --context prod")]
pub(crate) struct ContextArgs {
    #[command(flatten)]
    output: Output,
    #[command(subcommand)]
    cmd: ContextCmd,
}

#[derive(Debug, clap::Subcommand)]
enum ContextCmd {
    /// List the contexts (* marks the current one).
    List,
    /// Show a context's settings (the current one by default; the token is not printed).
    Show {
        /// Context name.
        name: Option<String>,
    },
    /// Add a context, or replace the one of that name.
    Add {
        /// Context name.
        name: String,
        /// Broker address: a URL or host:port.
        #[arg(long)]
        url: String,
        /// PEM CA to trust for an https:// broker.
        #[arg(long)]
        tls_ca: Option<PathBuf>,
        /// Bearer token to present (stored in the file, which is made readable by you only).
        #[arg(long)]
        token: Option<String>,
        /// Make it the current context too.
        #[arg(long = "use")]
        make_current: bool,
    },
    /// Make a context the current one.
    Use {
        /// Context name.
        name: String,
    },
    /// Remove a context.
    Remove {
        /// Context name.
        name: String,
    },
}

/// Runs `brook context …`.
pub(crate) fn run(args: ContextArgs) -> anyhow::Result<()> {
    let path = path().context("no config file: neither XDG_CONFIG_HOME nor HOME is set")?;
    let file = load(&path)?;
    let json = args.output.json;
    match args.cmd {
        ContextCmd::List => list(&file, json),
        ContextCmd::Show { name } => {
            let name = name.or(file.current.clone()).context(
                "no current context: name one, or pick one with `brook context use NAME`",
            )?;
            let Some(c) = file.contexts.get(&name) else {
                bail!("no context {name:?} in {}", path.display());
            };
            let ca = c.tls_ca.as_ref().map(|p| p.display().to_string());
            let token = c.token.as_ref().map(|_| "(set)");
            match json {
                true => println!(
                    "{}",
                    json!({"name": name, "url": c.url, "tls_ca": ca, "token": token.is_some(), "current": file.current.as_deref() == Some(&name)})
                ),
                false => {
                    let show = |v: Option<&str>| v.unwrap_or("-").to_string();
                    table(
                        &["SETTING", "VALUE"],
                        &[
                            vec!["name".into(), name.clone()],
                            vec!["url".into(), show(c.url.as_deref())],
                            vec!["tls_ca".into(), show(ca.as_deref())],
                            vec!["token".into(), show(token)],
                        ],
                    );
                }
            }
        }
        ContextCmd::Add {
            name,
            url,
            tls_ca,
            token,
            make_current,
        } => {
            edit(&path, |doc| {
                let mut table = toml_edit::Table::new();
                table["url"] = toml_edit::value(url);
                if let Some(ca) = tls_ca {
                    // Relative paths would depend on where brook runs later.
                    let ca = std::path::absolute(&ca).unwrap_or(ca);
                    table["tls_ca"] = toml_edit::value(ca.display().to_string());
                }
                if let Some(token) = token {
                    table["token"] = toml_edit::value(token);
                }
                contexts_table(doc)?.insert(&name, toml_edit::Item::Table(table));
                if make_current {
                    doc["current"] = toml_edit::value(name.as_str());
                }
                Ok(())
            })?;
            if !json {
                println!("added context {name} to {}", path.display());
            }
        }
        ContextCmd::Use { name } => {
            if !file.contexts.contains_key(&name) {
                bail!("no context {name:?} in {}", path.display());
            }
            edit(&path, |doc| {
                doc["current"] = toml_edit::value(name.as_str());
                Ok(())
            })?;
            if !json {
                println!("current context: {name}");
            }
        }
        ContextCmd::Remove { name } => {
            if !file.contexts.contains_key(&name) {
                bail!("no context {name:?} in {}", path.display());
            }
            edit(&path, |doc| {
                contexts_table(doc)?.remove(&name);
                if doc.get("current").and_then(|c| c.as_str()) == Some(name.as_str()) {
                    doc.remove("current");
                }
                Ok(())
            })?;
            if !json {
                println!("removed context {name}");
            }
        }
    }
    Ok(())
}

fn list(file: &Contexts, json: bool) {
    let current = file.current.as_deref();
    if json {
        let all: Vec<serde_json::Value> = file
            .contexts
            .iter()
            .map(|(name, c)| json!({"name": name, "url": c.url, "current": current == Some(name.as_str())}))
            .collect();
        println!("{}", serde_json::Value::Array(all));
        return;
    }
    let rows: Vec<Vec<String>> = file
        .contexts
        .iter()
        .map(|(name, c)| {
            let mark = if current == Some(name.as_str()) {
                "*"
            } else {
                ""
            };
            vec![
                mark.to_string(),
                name.clone(),
                c.url.clone().unwrap_or_default(),
            ]
        })
        .collect();
    table(&["", "NAME", "URL"], &rows);
}

/// The `[contexts]` table of the document, made if missing.
fn contexts_table(doc: &mut toml_edit::DocumentMut) -> anyhow::Result<&mut toml_edit::Table> {
    let item = doc
        .entry("contexts")
        .or_insert(toml_edit::Item::Table(toml_edit::Table::new()));
    if let Some(t) = item.as_table_mut() {
        t.set_implicit(true);
    }
    item.as_table_mut()
        .context("`contexts` in the config file is not a table")
}

/// Applies `change` to the file (made if missing) and writes it back
/// atomically, readable and writable by its owner only: it may hold tokens.
fn edit(
    path: &Path,
    change: impl FnOnce(&mut toml_edit::DocumentMut) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
    };
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    change(&mut doc)?;
    let dir = path.parent().context("the config file has no directory")?;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let tmp = path.with_extension(format!("toml.{}.tmp", std::process::id()));
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .with_context(|| format!("writing {}", tmp.display()))?;
        f.write_all(doc.to_string().as_bytes())
            .and_then(|()| f.sync_all())
            .with_context(|| format!("writing {}", tmp.display()))?;
    }
    std::fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_reads_contexts_and_refuses_unknown_keys() {
        let file: Contexts = toml::from_str(
            "current = \"p\"\n[contexts.p]\nurl = \"https://b:1\"\ntls_ca = \"/ca.pem\"\ntoken = \"t\"\n",
        )
        .unwrap();
        assert_eq!(file.current.as_deref(), Some("p"));
        assert_eq!(
            file.contexts["p"],
            Context {
                url: Some("https://b:1".into()),
                tls_ca: Some("/ca.pem".into()),
                token: Some("t".into()),
            }
        );
        let e = toml::from_str::<Contexts>("[contexts.p]\nadress = \"x\"\n").unwrap_err();
        assert!(e.to_string().contains("adress"), "{e}");
    }

    #[test]
    fn edits_keep_what_a_person_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("brook/config.toml");
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(
            &path,
            "# my brokers\n[contexts.a]\nurl = \"http://a:1\" # lab\n",
        )
        .unwrap();
        edit(&path, |doc| {
            let mut t = toml_edit::Table::new();
            t["url"] = toml_edit::value("http://b:2");
            contexts_table(doc)?.insert("b", toml_edit::Item::Table(t));
            doc["current"] = toml_edit::value("b");
            Ok(())
        })
        .unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.contains("# my brokers") && text.contains("# lab"),
            "{text}"
        );
        let file = load(&path).unwrap();
        assert_eq!(file.current.as_deref(), Some("b"));
        assert_eq!(file.contexts["b"].url.as_deref(), Some("http://b:2"));
        assert_eq!(file.contexts["a"].url.as_deref(), Some("http://a:1"));
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}
