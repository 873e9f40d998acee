//! The connection flags (`--url`, `--tls-ca`, `--token`, `--context`),
//! defined once and flattened into every command that talks to a broker,
//! and the one place that turns them, over the chosen context (see
//! `context`), into a [`Client`].

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use brook_client::Client;

/// Where the broker is and how to trust it.
///
/// The flags are `global` so that they may follow a subcommand
/// (`brook topic list --url …`), as scripts and the docs write them.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Conn {
    /// Broker address: a URL (https:// for a TLS broker), or host:port
    /// (http://, or https:// when --tls-ca is given) [default: the context's, else http://127.0.0.1:9292]
    #[arg(long, env = "BROOK_URL", global = true, help_heading = "Connection")]
    pub(crate) url: Option<String>,
    /// PEM CA to trust for an https:// broker (default: the context's, else the system's roots).
    #[arg(long, env = "BROOK_TLS_CA", global = true, help_heading = "Connection")]
    pub(crate) tls_ca: Option<PathBuf>,
    /// Bearer token to present (default: the context's).
    #[arg(
        long,
        env = "BROOK_TOKEN",
        global = true,
        hide_env_values = true,
        help_heading = "Connection"
    )]
    pub(crate) token: Option<String>,
    /// Named connection settings from ~/.config/brook/config.toml (see `brook context`) [default: the file's current one]
    #[arg(
        long,
        env = "BROOK_CONTEXT",
        global = true,
        help_heading = "Connection"
    )]
    pub(crate) context: Option<String>,
}

/// Where a command connects when neither a flag nor a context says.
const DEFAULT_URL: &str = "http://127.0.0.1:9292";

impl Conn {
    /// Reads the CA file once, so that a [`Target`] can open as many
    /// connections as a run needs (bench opens one per producer).
    pub(crate) fn target(&self) -> anyhow::Result<Target> {
        let context = super::context::selected(self.context.as_deref())?
            .map(|(_, c)| c)
            .unwrap_or_default();
        let url = self
            .url
            .clone()
            .or(context.url)
            .unwrap_or_else(|| DEFAULT_URL.to_string());
        let tls_ca = self
            .tls_ca
            .clone()
            .or(context.tls_ca)
            .as_deref()
            .map(read_ca)
            .transpose()?;
        Ok(Target {
            url: with_scheme(&url, tls_ca.is_some()),
            tls_ca: tls_ca.map(Arc::new),
            token: self.token.clone().or(context.token),
        })
    }

    /// One connection to the broker.
    pub(crate) async fn client(&self) -> anyhow::Result<Client> {
        self.target()?.connect().await
    }
}

/// A broker address with its CA already read: cheap to clone into tasks.
#[derive(Debug, Clone)]
pub(crate) struct Target {
    url: String,
    tls_ca: Option<Arc<Vec<u8>>>,
    token: Option<String>,
}

impl Target {
    /// The broker's URL, with its scheme.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// Connects; the error names the address (the client's own error does),
    /// which is what a user checks first.
    pub(crate) async fn connect(&self) -> anyhow::Result<Client> {
        let mut builder = Client::builder(&self.url);
        if let Some(ca) = &self.tls_ca {
            builder = builder.tls_ca_pem(ca.as_slice());
        }
        if let Some(token) = &self.token {
            builder = builder.token(token);
        }
        builder.connect().await.context("cannot reach the broker")
    }
}

/// Adds what is probably wrong to an error that says the peer does not
/// speak gRPC: an HTTP/1 server such as the broker's own metrics port ends
/// the HTTP/2 connection at once, which tonic reports as a cancelled or
/// unknown-status call, or a transport error.
pub(crate) fn protocol_hint(e: anyhow::Error, url: &str) -> anyhow::Error {
    let speaks_something_else = e.chain().any(|cause| {
        let text = cause.to_string();
        match cause.downcast_ref::<brook_client::Error>() {
            Some(client) => {
                matches!(client.code(), Some(tonic::Code::Cancelled))
                    || (client.code() == Some(tonic::Code::Unimplemented)
                        && text.contains("HTTP port"))
                    || (client.code() == Some(tonic::Code::Unknown)
                        && (text.contains("transport error") || text.contains("h2 protocol")))
            }
            None => text.contains("h2 protocol error") || text.contains("frame with invalid size"),
        }
    });
    match speaks_something_else {
        true => e.context(format!(
            "{url} does not answer as a Brook gRPC port: is it the metrics port (HTTP, default 9293) or another server? The gRPC port is the grpc= address of the broker's `brook listening` line (default 9292)"
        )),
        false => e,
    }
}

/// `host:port` as a URL: what users type after seeing `127.0.0.1:9292`
/// in the broker's listening line.
fn with_scheme(url: &str, tls: bool) -> String {
    match (url.contains("://"), tls) {
        (true, _) => url.to_string(),
        (false, true) => format!("https://{url}"),
        (false, false) => format!("http://{url}"),
    }
}

fn read_ca(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading the CA file {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::with_scheme;

    #[test]
    fn host_and_port_get_a_scheme() {
        assert_eq!(
            with_scheme("127.0.0.1:9292", false),
            "http://127.0.0.1:9292"
        );
        assert_eq!(with_scheme("broker:9292", true), "https://broker:9292");
        assert_eq!(
            with_scheme("http://b:1", true),
            "http://b:1",
            "a URL is kept"
        );
        assert_eq!(with_scheme("https://b:1", false), "https://b:1");
    }
}
