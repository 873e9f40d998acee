//! ACL administration (`brook.v1.Acls`), for brokers run with `--auth required`.

use brook_protocol::v1;

use crate::admin::Admin;
use crate::error::Result;

impl Admin {
    /// Adds ACL entries (ones already there are not added twice); returns
    /// how many were new. Needs ALTER on the cluster, or a super user.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// use brook_client::proto::{AclBinding, AclOperation, AclPermission, PatternType, ResourceType};
    /// // billing may read every topic whose name starts with "orders".
    /// let read_orders = AclBinding {
    ///     principal: "billing".into(),
    ///     permission: AclPermission::Allow as i32,
    ///     operation: AclOperation::Read as i32,
    ///     resource_type: ResourceType::Topic as i32,
    ///     pattern_type: PatternType::Prefixed as i32,
    ///     resource_name: "orders".into(),
    /// };
    /// client.admin().create_acls(vec![read_orders]).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_acls(&self, acls: Vec<v1::AclBinding>) -> Result<u32> {
        let req = v1::CreateAclsRequest { acls };
        Ok(self
            .client
            .acls()
            .create_acls(req)
            .await?
            .into_inner()
            .created)
    }

    /// The ACL entries that match `filter` (its empty fields match all).
    /// Needs DESCRIBE on the cluster.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// let filter = brook_client::proto::ListAclsRequest { principal: "billing".into(), ..Default::default() };
    /// for acl in client.admin().list_acls(filter).await? {
    ///     println!("{acl:?}");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_acls(&self, filter: v1::ListAclsRequest) -> Result<Vec<v1::AclBinding>> {
        let acls = self
            .client
            .retry(|| async { self.client.acls().list_acls(filter.clone()).await })
            .await?;
        Ok(acls.into_inner().acls)
    }

    /// Removes the entries exactly equal to `acls`; returns how many went.
    /// Needs ALTER on the cluster.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client, acl: brook_client::proto::AclBinding) -> brook_client::Result<()> {
    /// let removed = client.admin().delete_acls(vec![acl]).await?;
    /// println!("{removed} removed");
    /// # Ok(()) }
    /// ```
    pub async fn delete_acls(&self, acls: Vec<v1::AclBinding>) -> Result<u32> {
        let req = v1::DeleteAclsRequest { acls };
        Ok(self
            .client
            .acls()
            .delete_acls(req)
            .await?
            .into_inner()
            .deleted)
    }

    /// The principal the broker sees for this client's calls.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// let me = client.admin().who_am_i().await?;
    /// println!("calling as {:?} (auth {})", me.principal, me.auth);
    /// # Ok(()) }
    /// ```
    pub async fn who_am_i(&self) -> Result<v1::WhoAmIResponse> {
        let me = self
            .client
            .retry(|| async { self.client.acls().who_am_i(v1::WhoAmIRequest {}).await })
            .await?;
        Ok(me.into_inner())
    }
}
