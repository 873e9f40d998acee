//! Queue-group administration: create, alter, describe, list, delete, redrive.

use brook_protocol::v1;

use crate::admin::Admin;
use crate::error::Result;

impl Admin {
    /// Creates the queue group `group` on `topic` (unset settings take the
    /// broker's defaults; `earliest` starts at the first stored record, else
    /// at the end of the topic).
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// use brook_client::proto::QueueSettings;
    /// let settings = QueueSettings { key_ordered: Some(true), max_deliveries: Some(3), ..Default::default() };
    /// let billing = client.admin().create_queue("billing", "orders", settings, true).await?;
    /// println!("dead letters go to {}", billing.settings.unwrap_or_default().dlq_topic());
    /// # Ok(()) }
    /// ```
    pub async fn create_queue(
        &self,
        group: &str,
        topic: &str,
        settings: v1::QueueSettings,
        earliest: bool,
    ) -> Result<v1::QueueDescription> {
        let start = if earliest {
            v1::QueueStart::Earliest
        } else {
            v1::QueueStart::Latest
        };
        let req = v1::CreateQueueRequest {
            group: group.into(),
            topic: topic.into(),
            settings: Some(settings),
            start: start as i32,
        };
        Ok(self
            .client
            .retry(|| async { self.client.queues().create_queue(req.clone()).await })
            .await?
            .into_inner())
    }

    /// Changes the settings that `settings` sets.
    pub async fn alter_queue(
        &self,
        group: &str,
        settings: v1::QueueSettings,
    ) -> Result<v1::QueueDescription> {
        let req = v1::AlterQueueRequest {
            group: group.into(),
            settings: Some(settings),
        };
        Ok(self.client.queues().alter_queue(req).await?.into_inner())
    }

    /// A queue group's state: per partition acked-up-to point, lag, in
    /// flight, waiting; its consumers; its dead-letter depth.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// let q = client.admin().describe_queue("inventory").await?;
    /// println!("{} behind, {} in flight, {} dead-lettered", q.lag, q.in_flight, q.dlq_depth);
    /// # Ok(()) }
    /// ```
    pub async fn describe_queue(&self, group: &str) -> Result<v1::QueueDescription> {
        let req = v1::DescribeQueueRequest {
            group: group.into(),
        };
        Ok(self
            .client
            .retry(|| async { self.client.queues().describe_queue(req.clone()).await })
            .await?
            .into_inner())
    }

    /// Every queue group the caller may describe.
    pub async fn list_queues(&self) -> Result<Vec<v1::QueueDescription>> {
        Ok(self
            .client
            .retry(|| async {
                self.client
                    .queues()
                    .list_queues(v1::ListQueuesRequest {})
                    .await
            })
            .await?
            .into_inner()
            .queues)
    }

    /// Deletes a queue group's state (its dead-letter topic stays).
    pub async fn delete_queue(&self, group: &str) -> Result<()> {
        self.client
            .queues()
            .delete_queue(v1::DeleteQueueRequest {
                group: group.into(),
            })
            .await?;
        Ok(())
    }

    /// Copies dead-lettered records back (see [`v1::RedriveRequest`]);
    /// records redriven once are never copied again.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// use brook_client::proto::RedriveRequest;
    /// let req = RedriveRequest { group: "inventory".into(), ..Default::default() };
    /// let r = client.admin().redrive(req).await?;
    /// println!("{} records back in orders", r.redriven);
    /// # Ok(()) }
    /// ```
    pub async fn redrive(&self, req: v1::RedriveRequest) -> Result<v1::RedriveResponse> {
        Ok(self.client.queues().redrive(req).await?.into_inner())
    }
}
