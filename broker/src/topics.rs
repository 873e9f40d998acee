//! The `brook.v1.Topics` service: create, delete, list, describe, alter,
//! add partitions.

use std::sync::Arc;
use std::time::Duration;

use brook_protocol::v1::{self, topics_server::Topics};
use brook_storage::{CleanupPolicy, FlushPolicy, PartitionConfig, Ratio, Topic, TopicConfig};
use tonic::{Request, Response, Status};

use crate::auth::Caller;
use crate::auth::acl::{Operation, ResourceType};
use crate::error::{ApiError, ApiResult, Reason, on_blocking_thread};
use crate::request::RequestContext;
use crate::state::Broker;

/// Implements `brook.v1.Topics`.
pub struct TopicsService {
    broker: Arc<Broker>,
}

impl TopicsService {
    /// A service over the shared broker state.
    pub fn new(broker: Arc<Broker>) -> Self {
        TopicsService { broker }
    }
}

fn limit(v: Option<i64>, default: Option<u64>, what: &str) -> ApiResult<Option<u64>> {
    match v {
        None => Ok(default),
        Some(-1) => Ok(None),
        Some(v) if v >= 0 => Ok(Some(v as u64)),
        Some(v) => Err(bad_config(format!(
            "{what} must be -1 (unlimited) or >= 0, got {v}"
        ))),
    }
}

/// Creates a topic (either protocol's request): on a blocking thread, logged.
pub(crate) async fn create(
    broker: &Broker,
    name: &str,
    config: TopicConfig,
) -> ApiResult<Arc<Topic>> {
    let log = Arc::clone(broker.log()?);
    let n = name.to_string();
    let topic = on_blocking_thread(move || log.create_topic(&n, config)).await?;
    tracing::info!(topic = %name, partitions = topic.partition_count(), "created topic");
    Ok(topic)
}

/// Deletes a topic; members of groups lose its partitions now, not at
/// their next rebalance.
pub(crate) async fn delete(broker: &Broker, name: &str) -> ApiResult<()> {
    let log = Arc::clone(broker.log()?);
    let n = name.to_string();
    on_blocking_thread(move || log.delete_topic(&n)).await?;
    tracing::info!(topic = %name, "deleted topic");
    topic_changed(broker, name)
}

/// Raises a topic's partition count to `total`; groups are told.
pub(crate) async fn add_partitions(
    broker: &Broker,
    name: &str,
    total: u32,
) -> ApiResult<Arc<Topic>> {
    let log = Arc::clone(broker.log()?);
    let n = name.to_string();
    let topic =
        on_blocking_thread(move || log.add_partitions(&n, total).and_then(|()| log.topic(&n)))
            .await?;
    topic_changed(broker, name)?;
    Ok(topic)
}

fn topic_changed(broker: &Broker, name: &str) -> ApiResult<()> {
    let (log, groups) = (broker.log()?, broker.groups()?);
    groups
        .coordinator
        .topic_changed(name, &crate::groups::service::counter(log));
    Ok(())
}

/// INVALID_CONFIG: a topic setting the broker does not accept.
fn bad_config(message: impl Into<String>) -> ApiError {
    ApiError::new(Reason::InvalidConfig, message)
}

/// Request settings over the broker's defaults.
fn topic_config(
    req: Option<v1::TopicConfig>,
    defaults: &PartitionConfig,
) -> ApiResult<TopicConfig> {
    let c = req.ok_or_else(|| bad_config("config is required (at least config.partitions)"))?;
    let flush = match v1::FlushPolicy::try_from(c.flush_policy) {
        Ok(v1::FlushPolicy::Unspecified) => defaults.flush,
        Ok(v1::FlushPolicy::Always) => FlushPolicy::Always,
        Ok(v1::FlushPolicy::Never) => FlushPolicy::Never,
        Ok(v1::FlushPolicy::Interval) => {
            let ms = c.flush_interval_ms.ok_or_else(|| {
                bad_config("flush_interval_ms is required with FLUSH_POLICY_INTERVAL")
            })?;
            FlushPolicy::Interval(Duration::from_millis(ms))
        }
        Err(_) => {
            return Err(bad_config(format!(
                "unknown flush_policy {}",
                c.flush_policy
            )));
        }
    };
    let partition = PartitionConfig {
        segment_bytes: c.segment_bytes.unwrap_or(defaults.segment_bytes),
        segment_ms: c.segment_ms.unwrap_or(defaults.segment_ms),
        retention_ms: limit(c.retention_ms, defaults.retention_ms, "retention_ms")?,
        retention_bytes: limit(
            c.retention_bytes,
            defaults.retention_bytes,
            "retention_bytes",
        )?,
        max_batch_bytes: c.max_batch_bytes.unwrap_or(defaults.max_batch_bytes),
        flush,
        ..defaults.clone()
    };
    let partition = with_compaction(partition, &c)?;
    Ok(TopicConfig {
        partitions: c.partitions,
        partition,
    })
}

/// `p` with the compaction settings `c` sets (unset ones unchanged).
fn with_compaction(mut p: PartitionConfig, c: &v1::TopicConfig) -> ApiResult<PartitionConfig> {
    p.cleanup_policy = match v1::CleanupPolicy::try_from(c.cleanup_policy) {
        Ok(v1::CleanupPolicy::Unspecified) => p.cleanup_policy,
        Ok(v1::CleanupPolicy::Delete) => CleanupPolicy::Delete,
        Ok(v1::CleanupPolicy::Compact) => CleanupPolicy::Compact,
        Ok(v1::CleanupPolicy::CompactDelete) => CleanupPolicy::CompactDelete,
        Err(_) => {
            return Err(bad_config(format!(
                "unknown cleanup_policy {}",
                c.cleanup_policy
            )));
        }
    };
    p.min_compaction_lag_ms = c.min_compaction_lag_ms.unwrap_or(p.min_compaction_lag_ms);
    if let Some(v) = c.max_compaction_lag_ms {
        p.max_compaction_lag_ms = limit(Some(v), None, "max_compaction_lag_ms")?;
    }
    p.delete_retention_ms = c.delete_retention_ms.unwrap_or(p.delete_retention_ms);
    if let Some(v) = c.min_cleanable_dirty_ratio {
        p.min_cleanable_dirty_ratio = Ratio::new(v).ok_or_else(|| {
            bad_config(format!(
                "min_cleanable_dirty_ratio must be in 0..=1, got {v}"
            ))
        })?;
    }
    Ok(p)
}

/// `current`'s partition settings with the fields `req` sets changed. The
/// storage refuses changes to what is fixed at creation.
fn altered(current: &TopicConfig, req: Option<v1::TopicConfig>) -> ApiResult<PartitionConfig> {
    let c = req.ok_or_else(|| bad_config("config is required: the settings to change"))?;
    if c.partitions != 0 && c.partitions != current.partitions {
        return Err(bad_config(format!(
            "the partition count ({}) changes only by AddPartitions (brook topic add-partitions)",
            current.partitions
        )));
    }
    let mut p = current.partition.clone();
    if let Some(v) = c.retention_ms {
        p.retention_ms = limit(Some(v), None, "retention_ms")?;
    }
    if let Some(v) = c.retention_bytes {
        p.retention_bytes = limit(Some(v), None, "retention_bytes")?;
    }
    let mut p = with_compaction(p, &c)?;
    p.segment_bytes = c.segment_bytes.unwrap_or(p.segment_bytes);
    p.segment_ms = c.segment_ms.unwrap_or(p.segment_ms);
    p.max_batch_bytes = c.max_batch_bytes.unwrap_or(p.max_batch_bytes);
    let interval = c.flush_interval_ms.map(Duration::from_millis);
    p.flush = match (v1::FlushPolicy::try_from(c.flush_policy), interval) {
        (Ok(v1::FlushPolicy::Unspecified), None) => p.flush,
        (Ok(v1::FlushPolicy::Unspecified), Some(period)) => match p.flush {
            FlushPolicy::Interval(_) => FlushPolicy::Interval(period),
            _ => {
                return Err(bad_config(
                    "flush_interval_ms alone changes the period of a topic that flushes at an interval; set flush_policy FLUSH_POLICY_INTERVAL too",
                ));
            }
        },
        (Ok(v1::FlushPolicy::Interval), Some(period)) => FlushPolicy::Interval(period),
        (Ok(v1::FlushPolicy::Interval), None) => {
            return Err(bad_config(
                "flush_interval_ms is required with FLUSH_POLICY_INTERVAL",
            ));
        }
        (Ok(v1::FlushPolicy::Always | v1::FlushPolicy::Never), Some(_)) => {
            return Err(bad_config(
                "flush_interval_ms goes only with FLUSH_POLICY_INTERVAL",
            ));
        }
        (Ok(v1::FlushPolicy::Always), None) => FlushPolicy::Always,
        (Ok(v1::FlushPolicy::Never), None) => FlushPolicy::Never,
        (Err(_), _) => {
            return Err(bad_config(format!(
                "unknown flush_policy {}",
                c.flush_policy
            )));
        }
    };
    Ok(p)
}

/// The proto form of a topic's settings, every field filled in.
pub fn config_to_proto(c: &TopicConfig) -> v1::TopicConfig {
    let p = &c.partition;
    let (flush_policy, flush_interval_ms) = match p.flush {
        FlushPolicy::Always => (v1::FlushPolicy::Always, None),
        FlushPolicy::Never => (v1::FlushPolicy::Never, None),
        FlushPolicy::Interval(d) => (v1::FlushPolicy::Interval, Some(d.as_millis() as u64)),
    };
    let signed = |v: Option<u64>| Some(v.map_or(-1, |v| v.min(i64::MAX as u64) as i64));
    v1::TopicConfig {
        partitions: c.partitions,
        retention_ms: signed(p.retention_ms),
        retention_bytes: signed(p.retention_bytes),
        segment_bytes: Some(p.segment_bytes),
        segment_ms: Some(p.segment_ms),
        max_batch_bytes: Some(p.max_batch_bytes),
        flush_policy: flush_policy as i32,
        flush_interval_ms,
        cleanup_policy: match p.cleanup_policy {
            CleanupPolicy::Delete => v1::CleanupPolicy::Delete,
            CleanupPolicy::Compact => v1::CleanupPolicy::Compact,
            CleanupPolicy::CompactDelete => v1::CleanupPolicy::CompactDelete,
        } as i32,
        min_compaction_lag_ms: Some(p.min_compaction_lag_ms),
        max_compaction_lag_ms: signed(p.max_compaction_lag_ms),
        delete_retention_ms: Some(p.delete_retention_ms),
        min_cleanable_dirty_ratio: Some(p.min_cleanable_dirty_ratio.get()),
    }
}

/// A topic with its partitions' offsets and sizes.
pub fn describe(t: &Topic) -> v1::TopicDescription {
    let now = brook_storage::now_ms();
    let compacted = t.config().partition.cleanup_policy.compacts();
    let mut partitions: Vec<v1::PartitionDescription> = t
        .partitions()
        .into_iter()
        .map(|(id, p)| {
            let cleaning = match compacted {
                true => p.cleaning_status(now),
                false => Default::default(),
            };
            v1::PartitionDescription {
                partition: id,
                dirty_ratio: cleaning.dirty_ratio,
                dirty_bytes: cleaning.dirty_bytes,
                cleaned_to: cleaning.cleaned_to,
                log_start_offset: p.log_start_offset(),
                log_end_offset: p.log_end_offset(),
                size_bytes: p.size_bytes(),
                segment_count: p.segment_count() as u32,
                offline_reason: String::new(),
                damaged: p
                    .damaged_ranges()
                    .into_iter()
                    .map(|d| v1::DamagedRange {
                        first_offset: d.first_offset,
                        end_offset: d.end_offset,
                        reason: d.reason,
                    })
                    .collect(),
            }
        })
        .collect();
    partitions.extend(t.offline_partitions().into_iter().map(|(id, reason)| {
        v1::PartitionDescription {
            partition: id,
            offline_reason: reason,
            ..Default::default()
        }
    }));
    partitions.sort_by_key(|p| p.partition);
    v1::TopicDescription {
        name: t.name().to_string(),
        config: Some(config_to_proto(&t.config())),
        partitions,
    }
}

#[tonic::async_trait]
impl Topics for TopicsService {
    async fn create_topic(
        &self,
        req: Request<v1::CreateTopicRequest>,
    ) -> Result<Response<v1::TopicDescription>, Status> {
        RequestContext::of(&req).resource(&req.get_ref().name);
        self.broker
            .authorize_topic(&req, Operation::Create, &req.get_ref().name)?;
        let req = req.into_inner();
        let r = async {
            let config = topic_config(req.config, &self.broker.config.topic_defaults)?;
            let topic = create(&self.broker, &req.name, config).await?;
            Ok::<_, ApiError>(describe(&topic))
        }
        .await;
        Ok(Response::new(r?))
    }

    async fn delete_topic(
        &self,
        req: Request<v1::DeleteTopicRequest>,
    ) -> Result<Response<v1::DeleteTopicResponse>, Status> {
        RequestContext::of(&req).resource(&req.get_ref().name);
        self.broker
            .authorize_topic(&req, Operation::Delete, &req.get_ref().name)?;
        let name = req.into_inner().name;
        let r = delete(&self.broker, &name)
            .await
            .map(|()| v1::DeleteTopicResponse {});
        Ok(Response::new(r?))
    }

    async fn list_topics(
        &self,
        req: Request<v1::ListTopicsRequest>,
    ) -> Result<Response<v1::ListTopicsResponse>, Status> {
        // As Kafka lists topics: only those the caller may describe.
        let caller = Caller::of(&req);
        let auth = &self.broker.auth;
        let r = self.broker.log().map(|log| v1::ListTopicsResponse {
            topics: log
                .topics()
                .iter()
                .filter(|t| auth.may(&caller, Operation::Describe, ResourceType::Topic, t.name()))
                .map(|t| describe(t))
                .collect(),
        });
        Ok(Response::new(r?))
    }

    async fn describe_topic(
        &self,
        req: Request<v1::DescribeTopicRequest>,
    ) -> Result<Response<v1::TopicDescription>, Status> {
        RequestContext::of(&req).resource(&req.get_ref().name);
        self.broker
            .authorize_topic(&req, Operation::Describe, &req.get_ref().name)?;
        let t = self.broker.topic(&req.into_inner().name)?;
        Ok(Response::new(describe(&t)))
    }

    async fn alter_topic(
        &self,
        req: Request<v1::AlterTopicRequest>,
    ) -> Result<Response<v1::TopicDescription>, Status> {
        RequestContext::of(&req).resource(&req.get_ref().name);
        self.broker
            .authorize_topic(&req, Operation::Alter, &req.get_ref().name)?;
        let req = req.into_inner();
        let r = async {
            let topic = self.broker.topic(&req.name)?;
            let wanted = altered(&topic.config(), req.config)?;
            let log = Arc::clone(self.broker.log()?);
            let name = req.name.clone();
            let config = on_blocking_thread(move || log.alter_topic(&name, wanted)).await?;
            tracing::info!(topic = %req.name, config = ?config.partition, "altered topic");
            Ok::<_, ApiError>(describe(&topic))
        }
        .await;
        Ok(Response::new(r?))
    }

    async fn add_partitions(
        &self,
        req: Request<v1::AddPartitionsRequest>,
    ) -> Result<Response<v1::TopicDescription>, Status> {
        RequestContext::of(&req).resource(&req.get_ref().name);
        self.broker
            .authorize_topic(&req, Operation::Alter, &req.get_ref().name)?;
        let req = req.into_inner();
        let r = add_partitions(&self.broker, &req.name, req.partitions)
            .await
            .map(|t| describe(&t));
        Ok(Response::new(r?))
    }
}
