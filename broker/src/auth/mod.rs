//! Who is calling, and what they may do.
//!
//! - Authentication ([`layer::AuthLayer`]): a bearer token in the
//!   `authorization` metadata, looked up in the tokens file ([`tokens`]), or
//!   with mutual TLS the client certificate's subject ([`certificate`]).
//!   With `--auth required` a call with neither gets UNAUTHENTICATED before
//!   any handler runs; `--auth off` (the default) asks nobody anything.
//! - Authorization ([`Auth::authorize`]): Kafka-style ACLs ([`acl`]) stored
//!   in the data directory ([`store`]) and managed over `brook.v1.Acls`
//!   ([`service`]). Every handler checks the operation it performs on the
//!   resource it names, as soon as it has decoded the name; a table-driven
//!   test walks every RPC to keep it so.

pub mod acl;
pub mod certificate;
pub mod layer;
pub mod service;
pub mod store;
pub mod tokens;

use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use serde::Deserialize;

use self::acl::{Acl, Operation, ResourceType};
use self::store::AclStore;
use self::tokens::Tokens;
use crate::error::{ApiError, ApiResult, Reason};
use crate::quota::Rates;

/// Whether calls must say who they are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AuthMode {
    /// Nobody is asked; everything is allowed (a local or trusted network).
    #[default]
    Off,
    /// Every call needs a known token or client certificate, and ACLs decide.
    Required,
}

/// The authentication settings of `brook serve`.
#[derive(Clone, Debug, Default)]
pub struct AuthConfig {
    /// `--auth`.
    pub mode: AuthMode,
    /// `--tokens-file`: principals and token hashes, reloaded on SIGHUP.
    pub tokens_file: Option<PathBuf>,
    /// `--super-users`: principals no ACL restricts.
    pub super_users: Vec<String>,
    /// `--metrics-auth`: whether `/metrics` needs a token too.
    pub metrics_auth: AuthMode,
}

/// The authenticated caller of one request, put in its extensions by the
/// auth layer. `None`: authentication is off.
#[derive(Clone, Debug, Default)]
pub struct Caller {
    /// The principal's name.
    pub principal: Option<Arc<str>>,
    /// The hash of the bearer token it came with, if it came with one: a
    /// stream checks at each message that the token is still in the file.
    pub token: Option<[u8; 32]>,
}

impl Caller {
    /// The caller of `req` (nobody when the layer did not run).
    pub fn of<T>(req: &tonic::Request<T>) -> Caller {
        req.extensions()
            .get::<Caller>()
            .cloned()
            .unwrap_or_default()
    }
}

/// Authentication and authorization state, shared by the layer and the services.
pub struct Auth {
    config: AuthConfig,
    tokens: RwLock<Arc<Tokens>>,
    acls: AclStore,
}

impl Auth {
    /// Loads the tokens file (if any) and the data directory's ACLs.
    pub fn open(config: AuthConfig, data_dir: PathBuf) -> Result<Auth, String> {
        let tokens = match &config.tokens_file {
            Some(path) => Tokens::load(path)?,
            None => Tokens::default(),
        };
        Ok(Auth {
            config,
            tokens: RwLock::new(Arc::new(tokens)),
            acls: AclStore::open(data_dir)?,
        })
    }

    /// Whether calls must authenticate.
    pub fn mode(&self) -> AuthMode {
        self.config.mode
    }

    /// Whether `/metrics` needs a token.
    pub fn metrics_auth(&self) -> AuthMode {
        self.config.metrics_auth
    }

    /// Reads the tokens file again (on SIGHUP). On an error the tokens in
    /// force stay, so a typo never locks everyone out. Returns how many
    /// tokens are in force.
    pub fn reload_tokens(&self) -> Result<usize, String> {
        let Some(path) = &self.config.tokens_file else {
            return Ok(0);
        };
        let fresh = Tokens::load(path)?;
        let n = fresh.len();
        *self.tokens.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(fresh);
        Ok(n)
    }

    /// Re-reads the tokens file at every SIGHUP, for as long as the
    /// runtime runs: tokens are added and revoked without a restart.
    /// (Without a tokens file a SIGHUP is only logged: it never stops the
    /// broker, as its default action would.)
    pub fn reload_on_sighup(self: &Arc<Auth>) {
        let auth = Arc::clone(self);
        tokio::spawn(async move {
            use tokio::signal::unix::{SignalKind, signal};
            let mut hup = match signal(SignalKind::hangup()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGHUP; the tokens file is read only at start");
                    return;
                }
            };
            while hup.recv().await.is_some() {
                match auth.reload_tokens() {
                    Ok(_) if auth.config.tokens_file.is_none() => {
                        tracing::info!("SIGHUP: no tokens file to reload")
                    }
                    Ok(n) => tracing::info!(tokens = n, "tokens file reloaded (SIGHUP)"),
                    Err(e) => {
                        tracing::error!(error = %e, "tokens file not reloaded; the previous tokens stay in force")
                    }
                }
            }
        });
    }

    /// Whether `caller`'s token is still in the tokens file (a stream opened
    /// with a token that was revoked since must stop).
    pub fn still_valid(&self, caller: &Caller) -> bool {
        let Some(hash) = &caller.token else {
            return true;
        };
        let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        tokens.principal_of_hash(hash) == caller.principal.as_deref()
    }

    /// The principal a bearer token belongs to.
    pub fn principal_of_token(&self, token: &str) -> Option<String> {
        let tokens = Arc::clone(&self.tokens.read().unwrap_or_else(|p| p.into_inner()));
        tokens.principal(token).map(str::to_string)
    }

    /// The byte rates the tokens file sets for `principal`, and whether it
    /// sets any for anyone.
    pub fn quotas(&self, principal: &str) -> (Option<Rates>, bool) {
        let tokens = self.tokens.read().unwrap_or_else(|p| p.into_inner());
        (tokens.quotas(principal), tokens.has_quotas())
    }

    /// Refuses `caller` doing `op` on a resource unless an ACL allows it
    /// (NOT_AUTHORIZED, naming all four). Authentication off: allowed.
    pub fn authorize(
        &self,
        caller: &Caller,
        op: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> ApiResult<()> {
        if self.config.mode == AuthMode::Required && !self.still_valid(caller) {
            return Err(revoked());
        }
        if self.may(caller, op, resource_type, name) {
            return Ok(());
        }
        let principal = caller.principal.as_deref().unwrap_or("");
        Err(ApiError::new(
            Reason::NotAuthorized,
            format!(
                "principal {principal:?} may not {} {} {name:?}: no ACL allows it (brook acl add)",
                op_name(op),
                type_name(resource_type)
            ),
        )
        .with("principal", principal)
        .with("operation", op_name(op))
        .with("resource_type", type_name(resource_type))
        .with("resource", name))
    }

    /// Whether `caller` may do `op` on the resource (for filtering lists).
    pub fn may(
        &self,
        caller: &Caller,
        op: Operation,
        resource_type: ResourceType,
        name: &str,
    ) -> bool {
        match self.restricted(caller) {
            None => true,
            Some(principal) => self.acls.read().allows(principal, op, resource_type, name),
        }
    }

    /// Whether `caller` may do `op` on some resource of the type, or on
    /// the cluster (InitProducer: may this principal write anywhere?).
    pub fn authorize_some(
        &self,
        caller: &Caller,
        op: Operation,
        resource_type: ResourceType,
    ) -> ApiResult<()> {
        if self.config.mode == AuthMode::Required && !self.still_valid(caller) {
            return Err(revoked());
        }
        let Some(principal) = self.restricted(caller) else {
            return Ok(());
        };
        let acls = self.acls.read();
        if acls.allows_some(principal, op, resource_type)
            || acls.allows(principal, op, ResourceType::Cluster, acl::CLUSTER)
        {
            return Ok(());
        }
        Err(ApiError::new(
            Reason::NotAuthorized,
            format!(
                "principal {principal:?} may not {} any {}: no ACL allows it (brook acl add)",
                op_name(op),
                type_name(resource_type)
            ),
        )
        .with("principal", principal)
        .with("operation", op_name(op))
        .with("resource_type", type_name(resource_type))
        .with("resource", "*"))
    }

    /// The principal whose ACLs apply, or `None` when nothing is checked
    /// (authentication off, or a super user).
    fn restricted<'a>(&self, caller: &'a Caller) -> Option<&'a str> {
        if self.config.mode == AuthMode::Off {
            return None;
        }
        // The auth layer lets no call through without a principal; one
        // without is refused everything.
        let principal = caller.principal.as_deref().unwrap_or("");
        match self.config.super_users.iter().any(|s| s == principal) {
            true => None,
            false => Some(principal),
        }
    }

    /// Every ACL entry.
    pub fn acls(&self) -> Vec<Acl> {
        self.acls.read().entries().to_vec()
    }

    /// The ACL store.
    pub fn store(&self) -> &AclStore {
        &self.acls
    }
}

/// An operation's name in messages and metadata.
pub fn op_name(op: Operation) -> &'static str {
    match op {
        Operation::All => "all",
        Operation::Read => "read",
        Operation::Write => "write",
        Operation::Create => "create",
        Operation::Delete => "delete",
        Operation::Describe => "describe",
        Operation::Alter => "alter",
        Operation::Commit => "commit",
    }
}

/// A resource type's name in messages and metadata.
pub fn type_name(t: ResourceType) -> &'static str {
    match t {
        ResourceType::Topic => "topic",
        ResourceType::Group => "group",
        ResourceType::Cluster => "cluster",
    }
}

/// NOT_AUTHENTICATED for a stream whose token was removed from the file.
fn revoked() -> ApiError {
    ApiError::new(
        Reason::NotAuthenticated,
        "the token this call was made with has been removed from the broker's tokens file",
    )
}
