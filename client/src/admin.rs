use brook_protocol::v1;

use crate::client::Client;
use crate::error::Result;

/// Topic and group administration.
///
/// ```no_run
/// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
/// let admin = client.admin();
/// admin.create_topic("orders", 6).await?;
/// for t in admin.list_topics().await? {
///     println!("{} has {} partitions", t.name, t.partitions.len());
/// }
/// let lag = admin.consumer_lag("billing", Some("orders")).await?;
/// println!("billing is {} records behind", lag.total_lag_records);
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct Admin {
    pub(crate) client: Client,
}

impl Client {
    /// Topic and group administration on this connection.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// let admin = client.admin(); // cheap: shares the client's connection
    /// let orders = admin.describe_topic("orders").await?;
    /// println!("orders has {} partitions", orders.partitions.len());
    /// # Ok(()) }
    /// ```
    pub fn admin(&self) -> Admin {
        Admin {
            client: self.clone(),
        }
    }
}

/// Where a group's offsets should move to (see [`Admin::reset_offsets`]).
///
/// ```no_run
/// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
/// use brook_client::ResetTo;
/// // billing is stuck on a poison record at orders/3 offset 1041: skip it.
/// let (to, dry_run, force) = (ResetTo::Offset(1042), false, false);
/// let r = client.admin().reset_offsets("billing", "orders", &[3], to, dry_run, force).await?;
/// assert!(r.applied);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResetTo {
    /// The first stored record.
    Earliest,
    /// The log end: skip everything stored.
    Latest,
    /// This offset (clamped to the log).
    Offset(u64),
    /// The first record at or after this time (ms since the epoch).
    Timestamp(i64),
    /// This many records from the committed offset (negative: back).
    ShiftBy(i64),
}

impl Admin {
    /// Creates a topic with `partitions` partitions and the broker's defaults.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// // Fails with ALREADY_EXISTS if there is one (see `Error::code`).
    /// let orders = client.admin().create_topic("orders", 6).await?;
    /// assert_eq!(orders.partitions.len(), 6);
    /// # Ok(()) }
    /// ```
    pub async fn create_topic(&self, name: &str, partitions: u32) -> Result<v1::TopicDescription> {
        self.create_topic_with(
            name,
            v1::TopicConfig {
                partitions,
                ..Default::default()
            },
        )
        .await
    }

    /// Creates a topic with the given settings.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// use brook_client::proto::TopicConfig;
    /// let config = TopicConfig {
    ///     partitions: 6,
    ///     retention_ms: Some(7 * 24 * 3600 * 1000), // keep a week of orders
    ///     ..Default::default()
    /// };
    /// let orders = client.admin().create_topic_with("orders", config).await?;
    /// # Ok(()) }
    /// ```
    pub async fn create_topic_with(
        &self,
        name: &str,
        config: v1::TopicConfig,
    ) -> Result<v1::TopicDescription> {
        let req = v1::CreateTopicRequest {
            name: name.into(),
            config: Some(config),
        };
        // Not retried: a retry after a lost answer would say ALREADY_EXISTS.
        Ok(self.client.topics().create_topic(req).await?.into_inner())
    }

    /// Deletes a topic and its data.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// // NOT_FOUND if there is no such topic.
    /// client.admin().delete_topic("orders-staging").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_topic(&self, name: &str) -> Result<()> {
        self.client
            .topics()
            .delete_topic(v1::DeleteTopicRequest { name: name.into() })
            .await?;
        Ok(())
    }

    /// Every topic with its partitions.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// for t in client.admin().list_topics().await? {
    ///     let stored: u64 = t.partitions.iter().map(|p| p.log_end_offset - p.log_start_offset).sum();
    ///     println!("{}: {} partitions, {stored} records", t.name, t.partitions.len());
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_topics(&self) -> Result<Vec<v1::TopicDescription>> {
        let r = self
            .client
            .retry(|| async {
                self.client
                    .topics()
                    .list_topics(v1::ListTopicsRequest {})
                    .await
            })
            .await?;
        Ok(r.into_inner().topics)
    }

    /// One topic: settings, and offsets and sizes per partition.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// let orders = client.admin().describe_topic("orders").await?; // NOT_FOUND if none
    /// for p in &orders.partitions {
    ///     // Stored: offsets start..end; the next record appended gets offset `end`.
    ///     let (start, end) = (p.log_start_offset, p.log_end_offset);
    ///     println!("orders/{}: {start}..{end}, {} bytes", p.partition, p.size_bytes);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn describe_topic(&self, name: &str) -> Result<v1::TopicDescription> {
        let req = v1::DescribeTopicRequest { name: name.into() };
        Ok(self
            .client
            .retry(|| async { self.client.topics().describe_topic(req.clone()).await })
            .await?
            .into_inner())
    }

    /// Raises a topic's partition count to `total`.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// // 6 -> 12 partitions (INVALID_ARGUMENT unless more than now). Keys route by
    /// // partition count, so new events for an order may land in another partition.
    /// let orders = client.admin().add_partitions("orders", 12).await?;
    /// assert_eq!(orders.partitions.len(), 12);
    /// # Ok(()) }
    /// ```
    pub async fn add_partitions(&self, name: &str, total: u32) -> Result<v1::TopicDescription> {
        let req = v1::AddPartitionsRequest {
            name: name.into(),
            partitions: total,
        };
        Ok(self.client.topics().add_partitions(req).await?.into_inner())
    }

    /// Changes a topic's settings: the fields set in `changes` (an unset
    /// field, `partitions: 0` and `FLUSH_POLICY_UNSPECIFIED` keep their
    /// value). Returns the topic with the settings now in force.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// use brook_client::proto::{FlushPolicy, TopicConfig};
    /// // Keep orders for 30 days, and acknowledge only what is on disk.
    /// let changes = TopicConfig {
    ///     retention_ms: Some(30 * 24 * 3600 * 1000),
    ///     flush_policy: FlushPolicy::Always as i32,
    ///     ..Default::default()
    /// };
    /// let orders = client.admin().alter_topic("orders", changes).await?;
    /// assert_eq!(orders.config.unwrap().flush_policy(), FlushPolicy::Always);
    /// # Ok(()) }
    /// ```
    pub async fn alter_topic(
        &self,
        name: &str,
        changes: v1::TopicConfig,
    ) -> Result<v1::TopicDescription> {
        let req = v1::AlterTopicRequest {
            name: name.into(),
            config: Some(changes),
        };
        Ok(self.client.topics().alter_topic(req).await?.into_inner())
    }

    /// The brokers with their version, uptime and state (one broker today).
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// for b in client.admin().describe_cluster().await?.brokers {
    ///     println!("brook {} ({}), up {} s", b.version, b.commit, b.uptime_ms / 1000);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn describe_cluster(&self) -> Result<v1::ClusterDescription> {
        let req = v1::DescribeClusterRequest {};
        Ok(self
            .client
            .retry(|| async { self.client.cluster().describe_cluster(req).await })
            .await?
            .into_inner())
    }

    /// Whether the broker's standard gRPC health service (`grpc.health.v1`)
    /// reports `service` as serving: `""` is the broker as a whole (false
    /// while it recovers its log or shuts down), `"brook.storage"` is false
    /// while any partition is offline. Asked once, without retries.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// if !client.admin().is_serving("").await? {
    ///     eprintln!("the broker is still recovering");
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn is_serving(&self, service: &str) -> Result<bool> {
        use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus};
        let req = HealthCheckRequest {
            service: service.into(),
        };
        let status = self.client.health().check(req).await?.into_inner().status();
        Ok(status == ServingStatus::Serving)
    }

    /// Groups known to the broker.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// for g in client.admin().list_groups().await? {
    ///     println!("{}: {:?}, {} members", g.group, g.state(), g.members);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn list_groups(&self) -> Result<Vec<v1::GroupSummary>> {
        let r = self
            .client
            .retry(|| async {
                self.client
                    .groups()
                    .list_groups(v1::ListGroupsRequest {})
                    .await
            })
            .await?;
        Ok(r.into_inner().groups)
    }

    /// A group's state, members and committed offsets.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// let billing = client.admin().describe_group("billing").await?; // NOT_FOUND if unknown
    /// for m in &billing.members {
    ///     println!("{} at {} owns {:?}", m.client_id, m.host, m.assignment);
    /// }
    /// for c in &billing.offsets {
    ///     println!("{}/{}: committed {}", c.topic, c.partition, c.offset);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn describe_group(&self, group: &str) -> Result<v1::GroupDescription> {
        let req = v1::DescribeGroupRequest {
            group: group.into(),
        };
        Ok(self
            .client
            .retry(|| async { self.client.groups().describe_group(req.clone()).await })
            .await?
            .into_inner())
    }

    /// Deletes a group's committed offsets (only while it has no members).
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// // FAILED_PRECONDITION while a consumer of the group is still running.
    /// client.admin().delete_group("billing-v1").await?;
    /// # Ok(()) }
    /// ```
    pub async fn delete_group(&self, group: &str) -> Result<()> {
        self.client
            .groups()
            .delete_group(v1::DeleteGroupRequest {
                group: group.into(),
            })
            .await?;
        Ok(())
    }

    /// The committed offsets of a group, optionally for one topic. A group
    /// the broker does not know (no members, no commits; the broker answers
    /// NOT_FOUND) has none: an empty list, as Kafka's admin client answers.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// for c in client.admin().committed("billing", Some("orders")).await? {
    ///     // `offset` is the next record billing reads from that partition.
    ///     println!("orders/{}: next {}", c.partition, c.offset);
    /// }
    /// # Ok(()) }
    /// ```
    pub async fn committed(
        &self,
        group: &str,
        topic: Option<&str>,
    ) -> Result<Vec<v1::CommittedOffset>> {
        let req = v1::FetchCommittedRequest {
            group: group.into(),
            topic: topic.unwrap_or_default().into(),
        };
        let answer = self
            .client
            .retry(|| async { self.client.groups().fetch_committed(req.clone()).await })
            .await;
        match answer {
            Ok(r) => Ok(r.into_inner().offsets),
            Err(e) if e.reason() == Some("GROUP_NOT_FOUND") => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }

    /// Lag of a group per partition, per topic and in total.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// let lag = client.admin().consumer_lag("billing", Some("orders")).await?;
    /// for p in &lag.partitions {
    ///     // lag_ms: age of the oldest record billing has not consumed (0 when caught up).
    ///     println!("orders/{}: {} records, {} ms behind", p.partition, p.lag_records, p.lag_ms);
    /// }
    /// println!("billing is {} records behind in total", lag.total_lag_records);
    /// # Ok(()) }
    /// ```
    pub async fn consumer_lag(&self, group: &str, topic: Option<&str>) -> Result<v1::ConsumerLag> {
        let req = v1::GetConsumerLagRequest {
            group: group.into(),
            topic: topic.unwrap_or_default().into(),
        };
        Ok(self
            .client
            .retry(|| async { self.client.groups().get_consumer_lag(req.clone()).await })
            .await?
            .into_inner())
    }

    /// Moves a group's offsets for `topic` (all partitions, or `partitions`).
    /// With `dry_run` nothing changes and the answer shows what would.
    ///
    /// ```no_run
    /// # async fn demo(client: brook_client::Client) -> brook_client::Result<()> {
    /// use brook_client::ResetTo;
    /// # let now_ms: i64 = 0;
    /// let to = ResetTo::Timestamp(now_ms - 3_600_000); // replay the last hour of orders
    /// let preview = client.admin().reset_offsets("billing", "orders", &[], to, true, false).await?;
    /// for c in &preview.changes {
    ///     println!("orders/{}: {:?} -> {}", c.partition, c.before, c.after);
    /// }
    /// // Applies it: FAILED_PRECONDITION while billing's consumers run, unless forced.
    /// client.admin().reset_offsets("billing", "orders", &[], to, false, false).await?;
    /// # Ok(()) }
    /// ```
    pub async fn reset_offsets(
        &self,
        group: &str,
        topic: &str,
        partitions: &[u32],
        to: ResetTo,
        dry_run: bool,
        force: bool,
    ) -> Result<v1::ResetOffsetsResponse> {
        use v1::reset_offsets_request::To;
        let to = match to {
            ResetTo::Earliest => To::Earliest(v1::Earliest {}),
            ResetTo::Latest => To::Latest(v1::Latest {}),
            ResetTo::Offset(o) => To::Offset(o),
            ResetTo::Timestamp(t) => To::TimestampMs(t),
            ResetTo::ShiftBy(n) => To::ShiftBy(n),
        };
        let req = v1::ResetOffsetsRequest {
            group: group.into(),
            topic: topic.into(),
            partitions: partitions.to_vec(),
            to: Some(to),
            dry_run,
            force,
        };
        Ok(self.client.groups().reset_offsets(req).await?.into_inner())
    }
}
