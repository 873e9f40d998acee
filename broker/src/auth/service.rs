//! The `brook.v1.Acls` service: add, list and remove ACL entries; who am I.

use std::sync::Arc;

use brook_protocol::v1::{self, acls_server};
use tonic::{Request, Response, Status};

use super::acl::{Acl, CLUSTER, Operation, PatternType, Permission, ResourceType};
use super::store::AclStore;
use super::{Auth, AuthMode, Caller};
use crate::error::{ApiError, ApiResult, Reason};

/// Implements `brook.v1.Acls`.
pub struct AclsService {
    auth: Arc<Auth>,
    super_users: Vec<String>,
}

impl AclsService {
    /// ACLs change only on a broker that checks who is calling: with
    /// `--auth off` anyone could grant themselves everything, to take
    /// effect the day authentication is turned on.
    fn changes_allowed(&self) -> ApiResult<()> {
        match self.auth.mode() {
            AuthMode::Required => Ok(()),
            AuthMode::Off => Err(ApiError::new(
                Reason::NotAuthorized,
                "ACLs can be changed only on a broker run with --auth required (set up the first ones as a --super-users principal)",
            )),
        }
    }

    /// Checks a change of the ACLs by `caller` and applies `f` (add or
    /// remove) on a blocking thread (it fsyncs); returns how many changed.
    async fn change(
        &self,
        caller: &Caller,
        acls: &[v1::AclBinding],
        f: fn(&AclStore, &[Acl]) -> Result<usize, String>,
    ) -> ApiResult<u32> {
        self.changes_allowed()?;
        self.auth
            .authorize(caller, Operation::Alter, ResourceType::Cluster, CLUSTER)?;
        let acls = bindings(acls)?;
        let auth = Arc::clone(&self.auth);
        stored(blocking(move || f(auth.store(), &acls)).await)
    }

    /// A service over the broker's auth state.
    pub fn new(auth: Arc<Auth>, super_users: Vec<String>) -> Self {
        AclsService { auth, super_users }
    }
}

/// The storage form of a wire binding; the error names the field.
pub fn from_proto(b: &v1::AclBinding) -> ApiResult<Acl> {
    let bad = |what: &str, v: i32| ApiError::invalid(format!("unknown or unset {what} {v}"));
    let permission = match v1::AclPermission::try_from(b.permission) {
        Ok(v1::AclPermission::Allow) => Permission::Allow,
        Ok(v1::AclPermission::Deny) => Permission::Deny,
        _ => return Err(bad("permission", b.permission)),
    };
    let operation = match v1::AclOperation::try_from(b.operation) {
        Ok(v1::AclOperation::All) => Operation::All,
        Ok(v1::AclOperation::Read) => Operation::Read,
        Ok(v1::AclOperation::Write) => Operation::Write,
        Ok(v1::AclOperation::Create) => Operation::Create,
        Ok(v1::AclOperation::Delete) => Operation::Delete,
        Ok(v1::AclOperation::Describe) => Operation::Describe,
        Ok(v1::AclOperation::Alter) => Operation::Alter,
        Ok(v1::AclOperation::Commit) => Operation::Commit,
        _ => return Err(bad("operation", b.operation)),
    };
    let resource_type =
        resource_type(b.resource_type)?.ok_or_else(|| bad("resource_type", b.resource_type))?;
    let pattern_type = match v1::PatternType::try_from(b.pattern_type) {
        Ok(v1::PatternType::Unspecified | v1::PatternType::Literal) => PatternType::Literal,
        Ok(v1::PatternType::Prefixed) => PatternType::Prefixed,
        Err(_) => return Err(bad("pattern_type", b.pattern_type)),
    };
    let acl = Acl {
        principal: b.principal.clone(),
        permission,
        operation,
        resource_type,
        pattern_type,
        resource_name: b.resource_name.clone(),
    };
    acl.check().map_err(ApiError::invalid)?;
    if resource_type == ResourceType::Cluster
        && !matches!(acl.resource_name.as_str(), CLUSTER | "*")
    {
        return Err(ApiError::invalid(format!(
            "the cluster resource is named {CLUSTER:?} (or \"*\"), not {:?}",
            acl.resource_name
        )));
    }
    Ok(acl)
}

fn resource_type(v: i32) -> ApiResult<Option<ResourceType>> {
    match v1::ResourceType::try_from(v) {
        Ok(v1::ResourceType::Unspecified) => Ok(None),
        Ok(v1::ResourceType::Topic) => Ok(Some(ResourceType::Topic)),
        Ok(v1::ResourceType::Group) => Ok(Some(ResourceType::Group)),
        Ok(v1::ResourceType::Cluster) => Ok(Some(ResourceType::Cluster)),
        Err(_) => Err(ApiError::invalid(format!("unknown resource_type {v}"))),
    }
}

/// The wire form of an entry.
pub fn to_proto(a: &Acl) -> v1::AclBinding {
    v1::AclBinding {
        principal: a.principal.clone(),
        permission: match a.permission {
            Permission::Allow => v1::AclPermission::Allow,
            Permission::Deny => v1::AclPermission::Deny,
        } as i32,
        operation: match a.operation {
            Operation::All => v1::AclOperation::All,
            Operation::Read => v1::AclOperation::Read,
            Operation::Write => v1::AclOperation::Write,
            Operation::Create => v1::AclOperation::Create,
            Operation::Delete => v1::AclOperation::Delete,
            Operation::Describe => v1::AclOperation::Describe,
            Operation::Alter => v1::AclOperation::Alter,
            Operation::Commit => v1::AclOperation::Commit,
        } as i32,
        resource_type: match a.resource_type {
            ResourceType::Topic => v1::ResourceType::Topic,
            ResourceType::Group => v1::ResourceType::Group,
            ResourceType::Cluster => v1::ResourceType::Cluster,
        } as i32,
        pattern_type: match a.pattern_type {
            PatternType::Literal => v1::PatternType::Literal,
            PatternType::Prefixed => v1::PatternType::Prefixed,
        } as i32,
        resource_name: a.resource_name.clone(),
    }
}

fn bindings(acls: &[v1::AclBinding]) -> ApiResult<Vec<Acl>> {
    if acls.is_empty() {
        return Err(ApiError::invalid("no ACL entries given"));
    }
    acls.iter().map(from_proto).collect()
}

fn stored(r: Result<usize, String>) -> ApiResult<u32> {
    r.map(|n| n as u32).map_err(|e| {
        let reason = match e.contains("No space left") {
            true => Reason::DiskFull,
            false => Reason::Internal,
        };
        ApiError::new(reason, e)
    })
}

/// Runs a change of the ACL file (an fsync) off the async workers.
async fn blocking(
    f: impl FnOnce() -> Result<usize, String> + Send + 'static,
) -> Result<usize, String> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(format!("ACL task failed: {e}")))
}

#[tonic::async_trait]
impl acls_server::Acls for AclsService {
    async fn create_acls(
        &self,
        req: Request<v1::CreateAclsRequest>,
    ) -> Result<Response<v1::CreateAclsResponse>, Status> {
        let caller = Caller::of(&req);
        let acls = req.into_inner().acls;
        let created = self.change(&caller, &acls, AclStore::add).await?;
        tracing::info!(
            principal = caller.principal.as_deref(),
            created,
            "ACLs added"
        );
        Ok(Response::new(v1::CreateAclsResponse { created }))
    }

    async fn list_acls(
        &self,
        req: Request<v1::ListAclsRequest>,
    ) -> Result<Response<v1::ListAclsResponse>, Status> {
        self.auth.authorize(
            &Caller::of(&req),
            Operation::Describe,
            ResourceType::Cluster,
            CLUSTER,
        )?;
        let f = req.into_inner();
        let only_type = resource_type(f.resource_type)?;
        let acls = self
            .auth
            .acls()
            .iter()
            .filter(|a| f.principal.is_empty() || a.principal == f.principal)
            .filter(|a| only_type.is_none_or(|t| a.resource_type == t))
            .filter(|a| f.resource_name.is_empty() || a.resource_name == f.resource_name)
            .map(to_proto)
            .collect();
        Ok(Response::new(v1::ListAclsResponse { acls }))
    }

    async fn delete_acls(
        &self,
        req: Request<v1::DeleteAclsRequest>,
    ) -> Result<Response<v1::DeleteAclsResponse>, Status> {
        let caller = Caller::of(&req);
        let acls = req.into_inner().acls;
        let deleted = self.change(&caller, &acls, AclStore::remove).await?;
        tracing::info!(
            principal = caller.principal.as_deref(),
            deleted,
            "ACLs removed"
        );
        Ok(Response::new(v1::DeleteAclsResponse { deleted }))
    }

    async fn who_am_i(
        &self,
        req: Request<v1::WhoAmIRequest>,
    ) -> Result<Response<v1::WhoAmIResponse>, Status> {
        let principal = Caller::of(&req)
            .principal
            .map(|p| p.to_string())
            .unwrap_or_default();
        let super_user = self.super_users.contains(&principal);
        let auth = match self.auth.mode() {
            AuthMode::Off => "off",
            AuthMode::Required => "required",
        };
        Ok(Response::new(v1::WhoAmIResponse {
            principal,
            super_user,
            auth: auth.into(),
        }))
    }
}
