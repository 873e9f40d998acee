//! What every service shares: the log (once recovered), the shutdown signal,
//! settings and metrics.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Instant;

use brook_storage::{Log, Partition, Topic};
use tokio::sync::watch;

use crate::auth::acl::{Operation, ResourceType};
use crate::auth::{Auth, Caller};
use crate::config::ServeConfig;
use crate::error::{ApiError, ApiResult, Reason};
use crate::groups::Groups;
use crate::metrics::DirectionLabels;
use crate::metrics::Metrics;
use crate::queues::Queues;
use crate::quota::{Direction, Quotas};

/// The broker's shared state. Services hold it in an `Arc`.
pub struct Broker {
    log: OnceLock<Arc<Log>>,
    groups: OnceLock<Arc<Groups>>,
    queues: OnceLock<Arc<Queues>>,
    rules: OnceLock<Arc<crate::rules::Rules>>,
    shutdown: watch::Sender<bool>,
    /// Settings in force.
    pub config: ServeConfig,
    /// Prometheus metrics (shared with the `/metrics` endpoint).
    pub metrics: Arc<Metrics>,
    producer_ids: OnceLock<crate::producer_ids::ProducerIds>,
    /// Next partition for records without a key, per the round-robin rule.
    round_robin: AtomicU64,
    /// When the broker started, for its uptime.
    pub started: Instant,
    /// Who is calling and what they may do.
    pub auth: Arc<Auth>,
    /// Byte-rate quotas per client.
    pub quotas: Quotas,
    /// The same moment in ms since the Unix epoch.
    pub started_at_ms: i64,
    /// The schema registry, once the data directory is open (the REST
    /// routes share the slot and answer 503 until then).
    pub schemas: Arc<OnceLock<Arc<crate::schemas::Registry>>>,
    /// The web console's last hour of rates, lag and queue depths.
    pub console_history: Arc<crate::console::History>,
}

impl Broker {
    /// A broker that is still recovering: requests get UNAVAILABLE until [`Broker::set_ready`].
    pub fn new(config: ServeConfig, auth: Arc<Auth>) -> Broker {
        Broker {
            console_history: Arc::new(crate::console::History::new(
                config.console_history_interval,
            )),
            auth,
            quotas: Quotas::new(config.quotas),
            log: OnceLock::new(),
            groups: OnceLock::new(),
            queues: OnceLock::new(),
            rules: OnceLock::new(),
            shutdown: watch::Sender::new(false),
            config,
            metrics: Arc::new(Metrics::default()),
            producer_ids: OnceLock::new(),
            round_robin: AtomicU64::new(0),
            started: Instant::now(),
            started_at_ms: brook_storage::now_ms(),
            schemas: Arc::new(OnceLock::new()),
        }
    }

    /// Whether requests are served: the log is recovered and no shutdown began.
    pub fn is_ready(&self) -> bool {
        self.log().is_ok()
    }

    /// Makes the recovered log and the group state available to requests.
    pub fn set_ready(&self, log: Arc<Log>, groups: Arc<Groups>) {
        self.metrics
            .set_ready(Arc::clone(&log), Arc::clone(&groups));
        let _ = self.groups.set(groups);
        let _ = self.log.set(log);
    }

    /// Makes the queue groups' state available (before [`Broker::set_ready`]).
    pub fn set_queues(&self, queues: Arc<Queues>) {
        self.metrics.set_queues(Arc::clone(&queues));
        let _ = self.queues.set(queues);
    }

    /// Queue-group state, or UNAVAILABLE while recovering or shutting down.
    pub fn queues(&self) -> ApiResult<&Arc<Queues>> {
        self.log()?;
        self.queues.get().ok_or_else(starting)
    }

    /// Makes the routing rules available (before [`Broker::set_ready`]).
    pub fn set_rules(&self, rules: Arc<crate::rules::Rules>) {
        self.metrics.set_rules(Arc::clone(&rules));
        let _ = self.rules.set(rules);
    }

    /// The routing rules, or UNAVAILABLE while recovering or shutting down.
    pub fn rules(&self) -> ApiResult<&Arc<crate::rules::Rules>> {
        self.log()?;
        self.rules.get().ok_or_else(starting)
    }

    /// Sets the producer-id allocator (once the data directory is open).
    pub fn set_producer_ids(&self, ids: crate::producer_ids::ProducerIds) {
        let _ = self.producer_ids.set(ids);
    }

    /// A new idempotent producer id.
    pub fn allocate_producer_id(&self) -> ApiResult<i64> {
        self.log()?;
        let ids = self.producer_ids.get().ok_or_else(starting)?;
        ids.allocate()
            .map_err(|e| ApiError::internal(format!("reserving producer ids: {e}")))
    }

    /// Refuses a producer id this broker never handed out (FAILED_PRECONDITION,
    /// reason INVALID_PRODUCER_ID_MAPPING, as Kafka names it): its
    /// batches would take the sequence numbers of whoever is given that id
    /// later, whose first batch would then be answered as a duplicate and lost.
    pub fn check_producer_id(&self, id: i64) -> ApiResult<()> {
        let ids = self.producer_ids.get().ok_or_else(starting)?;
        if ids.issued(id) {
            return Ok(());
        }
        Err(ApiError::new(
            Reason::InvalidProducerIdMapping,
            format!(
                "producer id {id} was never handed out by this broker: ask InitProducer for one"
            ),
        )
        .with("producer_id", id))
    }

    /// Consumer-group state, or UNAVAILABLE while recovering or shutting down.
    pub fn groups(&self) -> ApiResult<&Arc<Groups>> {
        self.log()?;
        self.groups.get().ok_or_else(starting)
    }

    /// The log, or UNAVAILABLE while recovering or shutting down.
    pub fn log(&self) -> ApiResult<&Arc<Log>> {
        if *self.shutdown.borrow() {
            return Err(ApiError::new(
                Reason::BrokerStopping,
                "the broker is shutting down",
            ));
        }
        self.log.get().ok_or_else(starting)
    }

    /// Waits as long as `client`'s byte-rate quota needs after `bytes()`
    /// more in `direction` (not at all without quotas), and counts the wait.
    /// `bytes` is called only when a quota applies: sizing a response is
    /// work the common case, no quotas, does not pay for.
    pub async fn throttle(
        &self,
        client: &QuotaClient,
        direction: Direction,
        bytes: impl FnOnce() -> usize,
    ) {
        let (own, overrides) = match &client.caller.principal {
            Some(p) => self.auth.quotas(p),
            None => (None, false),
        };
        if !self.quotas.any(overrides) {
            return;
        }
        let key = match (&client.caller.principal, client.peer) {
            (Some(p), _) => p.to_string(),
            (None, Some(ip)) => ip.to_string(),
            (None, None) => String::new(),
        };
        let wait = self.quotas.charge(direction, &key, own, bytes());
        if wait.is_zero() {
            return;
        }
        let label = DirectionLabels {
            direction: match direction {
                Direction::Produce => "produce",
                Direction::Fetch => "fetch",
            },
        };
        self.metrics
            .throttled_seconds
            .get_or_create(&label)
            .inc_by(wait.as_secs_f64());
        tokio::time::sleep(wait).await;
    }

    /// Refuses `req`'s caller `op` on the topic unless an ACL allows it.
    pub fn authorize_topic<T>(
        &self,
        req: &tonic::Request<T>,
        op: Operation,
        topic: &str,
    ) -> ApiResult<()> {
        self.auth
            .authorize(&Caller::of(req), op, ResourceType::Topic, topic)
    }

    /// Refuses `req`'s caller `op` on the group unless an ACL allows it.
    pub fn authorize_group<T>(
        &self,
        req: &tonic::Request<T>,
        op: Operation,
        group: &str,
    ) -> ApiResult<()> {
        self.auth
            .authorize(&Caller::of(req), op, ResourceType::Group, group)
    }

    /// A topic by name (NOT_FOUND if unknown).
    pub fn topic(&self, name: &str) -> ApiResult<Arc<Topic>> {
        Ok(self.log()?.topic(name)?)
    }

    /// A partition (NOT_FOUND if the topic or partition is unknown).
    pub fn partition(&self, topic: &str, partition: u32) -> ApiResult<Partition> {
        Ok(self.topic(topic)?.partition(partition)?)
    }

    /// Starts the shutdown: new requests get UNAVAILABLE, streams end.
    pub fn begin_shutdown(&self) {
        self.shutdown.send_replace(true);
    }

    /// A receiver that turns true when shutdown begins; long polls and
    /// subscriptions select on it so that a graceful stop never waits on them.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.shutdown.subscribe()
    }

    /// The partition for the next record without a key.
    pub fn next_round_robin(&self, partitions: u32) -> u32 {
        (self.round_robin.fetch_add(1, Ordering::Relaxed) % u64::from(partitions.max(1))) as u32
    }
}

/// UNAVAILABLE while the log is being recovered, with RetryInfo.
fn starting() -> ApiError {
    ApiError::new(
        Reason::BrokerStarting,
        "the broker is recovering its partitions; retry shortly",
    )
}

/// Whom a quota counts: the principal, else the peer's IP address.
#[derive(Clone, Debug)]
pub struct QuotaClient {
    caller: Caller,
    peer: Option<std::net::IpAddr>,
}

impl QuotaClient {
    /// Who called.
    pub fn caller(&self) -> &Caller {
        &self.caller
    }

    /// A client known by its caller and address (the Kafka listener's).
    pub fn new(caller: Caller, peer: std::net::IpAddr) -> QuotaClient {
        QuotaClient {
            caller,
            peer: Some(peer),
        }
    }

    /// The client that sent `req`.
    pub fn of<T>(req: &tonic::Request<T>) -> QuotaClient {
        QuotaClient {
            caller: Caller::of(req),
            peer: req.remote_addr().map(|a| a.ip()),
        }
    }
}
