//! The `brook.v1.Queues` service: thin; checks names and rights, calls
//! [`Queues`], maps the answers.
//!
//! Rights (resource GROUP is the queue group's name): fetch, acknowledge
//! and extend need READ on the group and on its topic; create needs READ
//! on both too (as a fetch creates one); alter needs ALTER on the group,
//! delete DELETE, describe and list DESCRIBE; redrive needs ALTER on the
//! group, READ on its dead-letter topic and WRITE on the topic it writes
//! (none back into the group alone).

use std::sync::Arc;
use std::time::Duration;

use brook_protocol::v1::{self, queues_server};
use tonic::{Request, Response, Status};

use super::fetch::FetchSpec;
use super::redrive::RedriveSpec;
use super::{AckOutcome, Acknowledgement, QueueSettings, QueueStart, QueueView, Queues};
use crate::auth::acl::Operation;
use crate::consume::record_to_proto;
use crate::error::{ApiError, ApiResult};
use crate::groups::service::check_group_name;
use crate::request::RequestContext;
use crate::state::Broker;

/// Implements `brook.v1.Queues`.
pub struct QueuesService {
    broker: Arc<Broker>,
}

impl QueuesService {
    /// A service over the shared broker state.
    pub fn new(broker: Arc<Broker>) -> Self {
        QueuesService { broker }
    }

    fn queues(&self) -> ApiResult<&Arc<Queues>> {
        self.broker.queues()
    }
}

/// Default and largest records per fetch.
const DEFAULT_MAX_RECORDS: usize = 500;
const MAX_RECORDS: usize = 10_000;
/// Default bytes per fetch.
const DEFAULT_MAX_BYTES: usize = 1 << 20;
/// Longest consumer id.
const MAX_CONSUMER_ID: usize = 200;

fn check_consumer(id: &str) -> ApiResult<()> {
    if id.is_empty() || id.len() > MAX_CONSUMER_ID {
        return Err(ApiError::invalid(format!(
            "consumer_id must be 1 to {MAX_CONSUMER_ID} characters long (got {})",
            id.len()
        )));
    }
    Ok(())
}

/// `s`'s fields that are set, over `base`.
fn apply_settings(base: &mut QueueSettings, s: &v1::QueueSettings) {
    if let Some(v) = s.lease_ms {
        base.lease = Duration::from_millis(v);
    }
    if let Some(v) = s.max_deliveries {
        base.max_deliveries = v;
    }
    if let Some(v) = s.backoff_initial_ms {
        base.backoff_initial = Duration::from_millis(v);
    }
    if let Some(v) = s.backoff_max_ms {
        base.backoff_max = Duration::from_millis(v);
    }
    if let Some(v) = s.backoff_multiplier {
        base.backoff_multiplier = v;
    }
    if let Some(v) = s.key_ordered {
        base.key_ordered = v;
    }
    if let Some(v) = &s.dlq_topic {
        base.dlq_topic = v.clone();
    }
    if let Some(v) = s.dlq_partitions {
        base.dlq_partitions = v;
    }
    if let Some(v) = s.window {
        base.window = v;
    }
}

/// Every setting, filled in.
pub fn settings_to_proto(s: &QueueSettings) -> v1::QueueSettings {
    v1::QueueSettings {
        lease_ms: Some(s.lease.as_millis() as u64),
        max_deliveries: Some(s.max_deliveries),
        backoff_initial_ms: Some(s.backoff_initial.as_millis() as u64),
        backoff_max_ms: Some(s.backoff_max.as_millis() as u64),
        backoff_multiplier: Some(s.backoff_multiplier),
        key_ordered: Some(s.key_ordered),
        dlq_topic: Some(s.dlq_topic.clone()),
        dlq_partitions: Some(s.dlq_partitions),
        window: Some(s.window),
    }
}

fn view_to_proto(v: QueueView) -> v1::QueueDescription {
    v1::QueueDescription {
        lag: v.lag(),
        in_flight: v.in_flight(),
        waiting: v.waiting(),
        oldest_unacked_age_ms: v.oldest_unacked_age_ms(),
        settings: Some(settings_to_proto(&v.settings)),
        partitions: v
            .partitions
            .iter()
            .map(|p| v1::QueuePartition {
                partition: p.partition,
                acked_up_to: p.acked_up_to,
                log_end_offset: p.log_end_offset,
                lag: p.log_end_offset.saturating_sub(p.acked_up_to),
                unsettled: p.unsettled,
                in_flight: p.in_flight,
                waiting: p.waiting,
                oldest_unacked_age_ms: p.oldest_unacked_age_ms,
            })
            .collect(),
        consumers: v
            .consumers
            .into_iter()
            .map(|(consumer_id, in_flight, idle_ms)| v1::QueueConsumer {
                consumer_id,
                in_flight,
                idle_ms,
            })
            .collect(),
        dlq_depth: v.dlq_depth,
        redeliveries: v.redeliveries,
        dead_lettered: v.dead_lettered,
        lost_to_retention: v.lost_to_retention,
        created_ms: v.created_ms,
        group: v.group,
        topic: v.topic,
    }
}

fn ranges_to_proto(r: Vec<(u32, u64, u64)>) -> Vec<v1::OffsetRange> {
    r.into_iter()
        .map(|(partition, first_offset, last_offset)| v1::OffsetRange {
            partition,
            first_offset,
            last_offset,
        })
        .collect()
}

impl QueuesService {
    fn describe(&self, group: &str) -> ApiResult<v1::QueueDescription> {
        let view = self.queues()?.describe(self.broker.log()?, group)?;
        Ok(view_to_proto(view))
    }

    /// Checks a call of a consumer holding leases: the group's name, the
    /// consumer id, READ on the group and on its topic.
    fn consumer_call<T>(
        &self,
        req: &Request<T>,
        group: &str,
        consumer: &str,
    ) -> ApiResult<&Arc<Queues>> {
        self.group(req, group, Operation::Read)?;
        check_consumer(consumer)?;
        let queues = self.queues()?;
        let topic = queues.info(group)?.topic;
        self.broker.authorize_topic(req, Operation::Read, &topic)?;
        Ok(queues)
    }

    /// Names the group to the request layer, checks its name and `op` on it.
    fn group<T>(&self, req: &Request<T>, group: &str, op: Operation) -> ApiResult<()> {
        RequestContext::of(req).resource(group);
        check_group_name(group)?;
        self.broker.authorize_group(req, op, group)
    }
}

#[tonic::async_trait]
impl queues_server::Queues for QueuesService {
    async fn create_queue(
        &self,
        req: Request<v1::CreateQueueRequest>,
    ) -> Result<Response<v1::QueueDescription>, Status> {
        let r = req.get_ref();
        self.group(&req, &r.group, Operation::Read)?;
        self.broker
            .authorize_topic(&req, Operation::Read, &r.topic)?;
        let topic = self.broker.topic(&r.topic)?;
        let mut settings = QueueSettings::defaults(&r.topic, &r.group);
        if let Some(s) = &r.settings {
            apply_settings(&mut settings, s);
        }
        let start = match v1::QueueStart::try_from(r.start) {
            Ok(v1::QueueStart::Earliest) => QueueStart::Earliest,
            Ok(_) => QueueStart::Latest,
            Err(_) => return Err(ApiError::invalid(format!("unknown start {}", r.start)).into()),
        };
        let starts = super::fetch::start_offsets(&topic, start);
        self.queues()?
            .create(&r.group, &r.topic, settings, &starts)?;
        Ok(Response::new(self.describe(&r.group)?))
    }

    async fn alter_queue(
        &self,
        req: Request<v1::AlterQueueRequest>,
    ) -> Result<Response<v1::QueueDescription>, Status> {
        let r = req.get_ref();
        self.group(&req, &r.group, Operation::Alter)?;
        let change = r.settings.clone().unwrap_or_default();
        self.queues()?
            .alter(&r.group, |s| apply_settings(s, &change))?;
        Ok(Response::new(self.describe(&r.group)?))
    }

    async fn delete_queue(
        &self,
        req: Request<v1::DeleteQueueRequest>,
    ) -> Result<Response<v1::DeleteQueueResponse>, Status> {
        let r = req.get_ref();
        self.group(&req, &r.group, Operation::Delete)?;
        let queues = Arc::clone(self.queues()?);
        let group = r.group.clone();
        tokio::task::spawn_blocking(move || queues.delete(&group))
            .await
            .map_err(|e| ApiError::internal(format!("delete task failed: {e}")))??;
        Ok(Response::new(v1::DeleteQueueResponse {}))
    }

    async fn fetch_queue(
        &self,
        req: Request<v1::FetchQueueRequest>,
    ) -> Result<Response<v1::FetchQueueResponse>, Status> {
        let r = req.get_ref();
        self.group(&req, &r.group, Operation::Read)?;
        check_consumer(&r.consumer_id)?;
        let queues = self.queues()?;
        let topic = if r.topic.is_empty() {
            queues.info(&r.group)?.topic
        } else {
            r.topic.clone()
        };
        self.broker.authorize_topic(&req, Operation::Read, &topic)?;
        let spec = FetchSpec {
            max_records: match r.max_records as usize {
                0 => DEFAULT_MAX_RECORDS,
                n => n.min(MAX_RECORDS),
            },
            max_bytes: match r.max_bytes as usize {
                0 => DEFAULT_MAX_BYTES,
                n => n,
            },
            wait: Duration::from_millis(u64::from(r.max_wait_ms))
                .min(self.broker.config.max_fetch_wait),
        };
        let fetched = queues
            .fetch(&self.broker, &r.group, &r.topic, &r.consumer_id, spec)
            .await?;
        Ok(Response::new(v1::FetchQueueResponse {
            records: fetched
                .records
                .into_iter()
                .map(|(partition, record, delivery_count)| v1::QueueRecord {
                    partition,
                    record: Some(record_to_proto(record)),
                    delivery_count,
                })
                .collect(),
            lease_until_ms: fetched.lease_until_ms,
            topic: fetched.topic,
        }))
    }

    async fn acknowledge(
        &self,
        req: Request<v1::AcknowledgeRequest>,
    ) -> Result<Response<v1::AcknowledgeResponse>, Status> {
        let r = req.get_ref();
        let queues = self.consumer_call(&req, &r.group, &r.consumer_id)?;
        let acks = r
            .acks
            .iter()
            .map(|a| {
                let outcome = match v1::AckOutcome::try_from(a.outcome) {
                    Ok(v1::AckOutcome::Ack) => AckOutcome::Ack,
                    Ok(v1::AckOutcome::Nack) => AckOutcome::Nack {
                        delay: a.delay_ms.map(Duration::from_millis),
                    },
                    Ok(v1::AckOutcome::Reject) => AckOutcome::Reject,
                    Ok(v1::AckOutcome::Release) => AckOutcome::Release,
                    Err(_) => {
                        return Err(ApiError::invalid(format!("unknown outcome {}", a.outcome)));
                    }
                };
                if a.delay_ms
                    .is_some_and(|d| d > super::settings::MAX_LEASE.as_millis() as u64)
                {
                    return Err(ApiError::invalid(format!(
                        "delay_ms {} is over 12 hours",
                        a.delay_ms.unwrap_or_default()
                    )));
                }
                Ok(Acknowledgement {
                    partition: a.partition,
                    first: a.first_offset,
                    last: if a.last_offset < a.first_offset {
                        a.first_offset
                    } else {
                        a.last_offset
                    },
                    outcome,
                    reason: a.reason.chars().take(1000).collect(),
                })
            })
            .collect::<ApiResult<Vec<_>>>()?;
        // In a task of its own: a client that goes away mid-answer must
        // not leave records half dead-lettered.
        let (q, broker) = (Arc::clone(queues), Arc::clone(&self.broker));
        let (group, consumer) = (r.group.clone(), r.consumer_id.clone());
        let settled = tokio::spawn(async move {
            let settled = q.acknowledge(&broker, &group, &consumer, &acks).await?;
            if q.settlements_need_sync() {
                q.sync(None).await?;
            }
            Ok::<_, ApiError>(settled)
        })
        .await
        .map_err(|e| ApiError::internal(format!("acknowledge task failed: {e}")))??;
        Ok(Response::new(v1::AcknowledgeResponse {
            settled: settled.settled,
            not_held: ranges_to_proto(settled.not_held),
            dead_lettered: settled.dead_lettered,
        }))
    }

    async fn extend_lease(
        &self,
        req: Request<v1::ExtendLeaseRequest>,
    ) -> Result<Response<v1::ExtendLeaseResponse>, Status> {
        let r = req.get_ref();
        let queues = self.consumer_call(&req, &r.group, &r.consumer_id)?;
        let ranges: Vec<(u32, u64, u64)> = r
            .ranges
            .iter()
            .map(|x| {
                (
                    x.partition,
                    x.first_offset,
                    x.last_offset.max(x.first_offset),
                )
            })
            .collect();
        let lease = (r.lease_ms > 0).then(|| Duration::from_millis(r.lease_ms));
        let (until, not_held) = queues.extend(&r.group, &r.consumer_id, &ranges, lease)?;
        Ok(Response::new(v1::ExtendLeaseResponse {
            lease_until_ms: until,
            not_held: ranges_to_proto(not_held),
        }))
    }

    async fn describe_queue(
        &self,
        req: Request<v1::DescribeQueueRequest>,
    ) -> Result<Response<v1::QueueDescription>, Status> {
        let r = req.get_ref();
        self.group(&req, &r.group, Operation::Describe)?;
        Ok(Response::new(self.describe(&r.group)?))
    }

    async fn list_queues(
        &self,
        req: Request<v1::ListQueuesRequest>,
    ) -> Result<Response<v1::ListQueuesResponse>, Status> {
        let caller = crate::auth::Caller::of(&req);
        let queues = self.queues()?;
        let log = self.broker.log()?;
        let mut out = Vec::new();
        for name in queues.names() {
            if !self.broker.auth.may(
                &caller,
                Operation::Describe,
                crate::auth::acl::ResourceType::Group,
                &name,
            ) {
                continue;
            }
            // Deleted meanwhile: not listed.
            if let Ok(v) = queues.describe(log, &name) {
                out.push(view_to_proto(v));
            }
        }
        Ok(Response::new(v1::ListQueuesResponse { queues: out }))
    }

    async fn redrive(
        &self,
        req: Request<v1::RedriveRequest>,
    ) -> Result<Response<v1::RedriveResponse>, Status> {
        let r = req.get_ref();
        self.group(&req, &r.group, Operation::Alter)?;
        let queues = self.queues()?;
        let info = queues.info(&r.group)?;
        let target = if r.target_topic.is_empty() {
            &info.topic
        } else {
            &r.target_topic
        };
        // Back into the group alone writes to no topic.
        if !r.to_group {
            self.broker
                .authorize_topic(&req, Operation::Write, target)?;
        }
        self.broker
            .authorize_topic(&req, Operation::Read, &info.settings.dlq_topic)?;
        let spec = RedriveSpec {
            dlq_partition: r.dlq_partition,
            from_offset: r.from_offset,
            to_offset: r.to_offset,
            from_time_ms: r.from_time_ms,
            to_time_ms: r.to_time_ms,
            target_topic: r.target_topic.clone(),
            dry_run: r.dry_run,
            limit: r.limit,
            to_group: r.to_group,
        };
        // In a task of its own, as an acknowledgement: copy and mark go together.
        let (q, broker, group) = (
            Arc::clone(queues),
            Arc::clone(&self.broker),
            r.group.clone(),
        );
        let done = tokio::spawn(async move { q.redrive(&broker, &group, &spec).await })
            .await
            .map_err(|e| ApiError::internal(format!("redrive task failed: {e}")))??;
        Ok(Response::new(v1::RedriveResponse {
            redriven: done.moved,
            already_redriven: done.already,
            unavailable: done.unavailable,
        }))
    }
}
