//! Prometheus metrics and the `/metrics` HTTP endpoint (its own port).
//!
//! Two kinds of metric live here. Counters and histograms that requests
//! move as they happen (`requests`, the produced and fetched data, the
//! connection gauges) are registered families that the code updates.
//! Everything that describes the log and the groups as they are now
//! (offsets, sizes, damage, offline partitions, lag) is read at scrape time
//! by [`collector::LogCollector`]: nothing is copied into gauges before an
//! encode, so two scrapes at once cannot see each other's half-written state.

mod cleaner_gauges;
mod collector;
mod process;
mod queue_gauges;
mod rule_gauges;

use std::sync::Arc;
use std::time::Duration;

use brook_storage::Log;
use bytes::Bytes;
use http_body_util::Full;
use hyper::{HeaderMap, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::auth::acl::{CLUSTER, Operation, ResourceType};
use crate::auth::{Auth, AuthMode, Caller};
use crate::groups::Groups;

/// Labels of per-request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// gRPC method, e.g. `Produce`.
    pub method: &'static str,
    /// Topic named by the request ("" when none, and on `Groups` methods).
    pub topic: String,
    /// Group named by a `Groups` method ("" elsewhere).
    pub group: String,
}

/// Labels of per-method error counts.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// gRPC method.
    pub method: &'static str,
    /// gRPC status code name.
    pub code: String,
}

/// Labels of per-method latency.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct MethodLabels {
    /// gRPC method.
    pub method: &'static str,
}

/// Labels of `brook_build_info`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
    commit: &'static str,
}

/// Labels of the quota counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DirectionLabels {
    /// `produce` or `fetch`.
    pub direction: &'static str,
}

/// Labels of the Kafka listener's request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KafkaApiLabels {
    /// Kafka API name, e.g. `Produce`, `JoinGroup`.
    pub api: &'static str,
}

/// The Kafka listener's metrics (docs/kafka.md): requests and their
/// latency per API, open connections, connections it closed.
#[derive(Clone)]
pub struct KafkaMetrics {
    /// Requests answered (or, with acks=0, handled), per API.
    pub requests: Family<KafkaApiLabels, Counter>,
    /// Time from a request's last byte to its answer, per API.
    pub latency: Family<KafkaApiLabels, Histogram, fn() -> Histogram>,
    /// Open Kafka connections.
    pub open_connections: Gauge,
    /// Connections the broker closed because a request could not be
    /// answered (malformed, unsupported, unauthenticated; each logged).
    pub closed_connections: Counter,
}

/// Labels of per-topic data counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    /// Topic name.
    pub topic: String,
}

fn latency_histogram() -> Histogram {
    // 25 µs .. ~3.3 s
    Histogram::new(exponential_buckets(0.000_025, 2.0, 18))
}

/// Requests, failures and latency per gRPC method: what the request layer
/// (`crate::request`) records once per RPC. Clones share the same families.
#[derive(Clone)]
pub struct RequestMetrics {
    requests: Family<RequestLabels, Counter>,
    errors: Family<ErrorLabels, Counter>,
    latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
}

impl RequestMetrics {
    fn new() -> Self {
        RequestMetrics {
            requests: Family::default(),
            errors: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
        }
    }

    /// Counts one request that took `elapsed`, and its failure if it failed.
    pub fn observe(
        &self,
        method: &'static str,
        (topic, group): (&str, &str),
        elapsed: Duration,
        result: Result<(), tonic::Code>,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                method,
                topic: topic.to_string(),
                group: group.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&MethodLabels { method })
            .observe(elapsed.as_secs_f64());
        if let Err(code) = result {
            self.errors
                .get_or_create(&ErrorLabels {
                    method,
                    code: crate::request::code_name(code).to_string(),
                })
                .inc();
        }
    }
}

/// Every metric the broker exports.
pub struct Metrics {
    registry: Registry,
    /// Per-method requests, errors and latency.
    pub requests: RequestMetrics,
    /// Records appended per topic.
    pub produced_records: Family<TopicLabels, Counter>,
    /// Batch bytes appended per topic.
    pub produced_bytes: Family<TopicLabels, Counter>,
    /// Records sent to consumers per topic (fetch and subscribe).
    pub fetched_records: Family<TopicLabels, Counter>,
    /// Batch bytes sent to consumers per topic.
    pub fetched_bytes: Family<TopicLabels, Counter>,
    /// Records that failed their topic's schema and went to its
    /// dead-letter topic, by the topic they were produced to.
    pub schema_dead_lettered: Family<TopicLabels, Counter>,
    /// Open client connections on the gRPC port.
    pub open_connections: Gauge,
    /// Failed accepts on the gRPC port (e.g. out of file descriptors).
    pub accept_errors: Counter,
    /// Connections closed at once because `--max-connections` were open.
    pub connections_refused: Counter,
    /// Time requests waited for their client's byte-rate quota, by direction.
    pub throttled_seconds: Family<DirectionLabels, Counter<f64, std::sync::atomic::AtomicU64>>,
    /// The Kafka listener's requests and connections.
    pub kafka: KafkaMetrics,
    /// Reads the log's gauges at scrape time, once the log is recovered.
    log: Arc<collector::LogCollector>,
}

impl Default for Metrics {
    fn default() -> Self {
        // process_* keep their standard names; everything else is brook_*.
        let mut root = Registry::default();
        root.register_collector(Box::new(process::ProcessCollector));
        let r = root.sub_registry_with_prefix("brook");
        r.register(
            "build",
            "The version and git commit of the running broker",
            Info::new(BuildLabels {
                version: crate::build::VERSION,
                commit: crate::build::COMMIT,
            }),
        );
        let requests = RequestMetrics::new();
        r.register(
            "requests",
            "gRPC requests by method and topic",
            requests.requests.clone(),
        );
        r.register(
            "request_errors",
            "Failed gRPC requests by method and status code",
            requests.errors.clone(),
        );
        r.register(
            "request_duration_seconds",
            "gRPC request latency by method",
            requests.latency.clone(),
        );
        let counter = |r: &mut Registry, name: &str, help: &str| {
            let family = Family::<TopicLabels, Counter>::default();
            r.register(name, help, family.clone());
            family
        };
        let produced_records = counter(r, "produced_records", "Records appended, by topic");
        let produced_bytes = counter(r, "produced_bytes", "Record-batch bytes appended, by topic");
        let fetched_records = counter(r, "fetched_records", "Records sent to consumers, by topic");
        let fetched_bytes = counter(
            r,
            "fetched_bytes",
            "Record-batch bytes sent to consumers, by topic",
        );
        let schema_dead_lettered = counter(
            r,
            "schema_dead_lettered_records",
            "Records that failed their topic's schema and went to its dead-letter topic, by the topic they were produced to",
        );
        let open_connections = Gauge::default();
        r.register(
            "open_connections",
            "Open gRPC client connections",
            open_connections.clone(),
        );
        let connections_refused = Counter::default();
        r.register(
            "connections_refused",
            "Connections closed on arrival because --max-connections were open",
            connections_refused.clone(),
        );
        let throttled_seconds = Family::default();
        r.register(
            "throttled_seconds",
            "Time requests waited for their client's byte-rate quota (produce, fetch)",
            throttled_seconds.clone(),
        );
        let accept_errors = Counter::default();
        r.register(
            "accept_errors",
            "Failed accepts on the gRPC port (out of file descriptors, ...)",
            accept_errors.clone(),
        );
        let kafka = KafkaMetrics {
            requests: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            open_connections: Gauge::default(),
            closed_connections: Counter::default(),
        };
        r.register(
            "kafka_requests",
            "Kafka-protocol requests by API",
            kafka.requests.clone(),
        );
        r.register(
            "kafka_request_duration_seconds",
            "Kafka-protocol request latency by API",
            kafka.latency.clone(),
        );
        r.register(
            "kafka_open_connections",
            "Open Kafka-protocol client connections",
            kafka.open_connections.clone(),
        );
        r.register(
            "kafka_closed_connections",
            "Kafka-protocol connections closed for a request that could not be answered",
            kafka.closed_connections.clone(),
        );
        let log = Arc::new(collector::LogCollector::default());
        r.register_collector(Box::new(Arc::clone(&log)));
        Metrics {
            registry: root,
            requests,
            produced_records,
            produced_bytes,
            fetched_records,
            fetched_bytes,
            schema_dead_lettered,
            open_connections,
            accept_errors,
            connections_refused,
            throttled_seconds,
            kafka,
            log,
        }
    }
}

impl Metrics {
    /// From now on, scrapes report the partitions of `log` and the lag of `groups`.
    pub fn set_ready(&self, log: Arc<Log>, groups: Arc<Groups>) {
        self.log.set_ready(log, groups);
    }

    /// From now on, scrapes report queue groups too.
    pub fn set_queues(&self, queues: Arc<crate::queues::Queues>) {
        self.log.set_queues(queues);
    }

    /// From now on, scrapes report routing rules too.
    pub fn set_rules(&self, rules: Arc<crate::rules::Rules>) {
        self.log.set_rules(rules);
    }

    /// From now on, scrapes report the log cleaner too.
    pub fn set_cleaner(&self, cleaner: Arc<brook_storage::compaction::Cleaner>) {
        self.log.set_cleaner(cleaner);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// A plain-text answer.
fn text(status: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::from_static(body.as_bytes())));
    *resp.status_mut() = status;
    resp
}

/// `/metrics`, and the two probes load balancers and orchestrators ask:
/// `/healthz` (the process answers) and `/readyz` (the log is recovered and
/// the broker is not stopping: send it traffic).
fn respond(
    metrics: &Metrics,
    auth: &Auth,
    stopping: bool,
    path: &str,
    headers: &HeaderMap,
) -> Response<Full<Bytes>> {
    match path {
        // The probes stay open: orchestrators call them without credentials.
        "/metrics" if auth.metrics_auth() == AuthMode::Required => {
            let token = headers
                .get(hyper::header::AUTHORIZATION)
                .and_then(crate::auth::layer::bearer);
            // Any token of the file, and (when ACLs apply) describe on the
            // cluster: the page names every topic and group.
            let principal = token.and_then(|t| auth.principal_of_token(t));
            let caller = Caller {
                principal: principal.map(Into::into),
                token: None,
            };
            let allowed = caller.principal.is_some()
                && auth.may(&caller, Operation::Describe, ResourceType::Cluster, CLUSTER);
            if !allowed {
                let mut resp = text(
                    StatusCode::UNAUTHORIZED,
                    "/metrics needs \"Authorization: Bearer <token>\" with a token of the broker's tokens file (--metrics-auth)\n",
                );
                resp.headers_mut().insert(
                    hyper::header::WWW_AUTHENTICATE,
                    hyper::header::HeaderValue::from_static("Bearer realm=\"brook\""),
                );
                return resp;
            }
        }
        "/metrics" => {}
        "/healthz" => return text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            return match (metrics.log.is_ready(), stopping) {
                (_, true) => text(StatusCode::SERVICE_UNAVAILABLE, "stopping\n"),
                (false, false) => text(StatusCode::SERVICE_UNAVAILABLE, "recovering\n"),
                (true, false) => text(StatusCode::OK, "ready\n"),
            };
        }
        _ => {
            return text(
                StatusCode::NOT_FOUND,
                "not found: /metrics, /healthz, /readyz, the console (/ui, /api/v1: docs/console.md) and the schema registry's routes (docs/schemas.md) are served here\n",
            );
        }
    }
    let mut resp = Response::new(Full::new(Bytes::new()));
    let text = metrics.render();
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    *resp.body_mut() = Full::new(Bytes::from(text));
    resp
}

/// Whether a request is a gRPC call (a client pointed at the wrong port).
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(hyper::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"))
}

/// A gRPC answer (trailers only) saying which port this is: the port also
/// speaks HTTP/2, so a gRPC client reaches it and deserves a clear status.
fn not_the_grpc_port() -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    let headers = resp.headers_mut();
    headers.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/grpc"),
    );
    headers.insert("grpc-status", hyper::header::HeaderValue::from_static("12"));
    headers.insert(
        "grpc-message",
        hyper::header::HeaderValue::from_static(
            "this is the broker's HTTP port (metrics, probes, console, schema registry), not its gRPC port",
        ),
    );
    resp
}

/// Serves the HTTP port until `shutdown` turns true: `/metrics`,
/// `/healthz` and `/readyz`, the schema registry's REST API
/// (`schemas::rest`, answering 503 until `schemas` is set), and the web
/// console with its JSON API (`console`).
pub async fn serve(listener: TcpListener, broker: Arc<crate::state::Broker>) {
    let metrics = Arc::clone(&broker.metrics);
    let auth = Arc::clone(&broker.auth);
    let schemas = Arc::clone(&broker.schemas);
    let shutdown = broker.shutdown_signal();
    let probes = {
        let (auth, stopping) = (Arc::clone(&auth), shutdown.clone());
        move |req: axum::extract::Request| {
            let resp = match is_grpc(req.headers()) {
                true => not_the_grpc_port(),
                false => respond(
                    &metrics,
                    &auth,
                    *stopping.borrow(),
                    req.uri().path(),
                    req.headers(),
                ),
            };
            std::future::ready(resp.map(axum::body::Body::new))
        }
    };
    let app = crate::schemas::rest::router(crate::schemas::rest::RestState {
        registry: schemas,
        auth,
    })
    .fallback(probes);
    let app = match broker.config.console {
        true => app.merge(crate::console::router(broker)),
        false => app,
    };
    let mut stop = shutdown;
    let stopped = async move {
        let _ = stop.wait_for(|s| *s).await;
    };
    if let Err(e) = axum::serve(listener, app)
        .with_graceful_shutdown(stopped)
        .await
    {
        tracing::error!(error = %e, "the HTTP port stopped serving");
    }
}

#[cfg(test)]
mod tests {
    use brook_protocol::batch::{Batch, BatchBuilder};
    use brook_storage::TopicConfig;

    use super::*;
    use crate::groups::offsets::Committed;

    /// The sample lines of families whose name starts with `prefix`, sorted.
    fn samples(text: &str, prefix: &str) -> Vec<String> {
        let mut lines: Vec<String> = text
            .lines()
            .filter(|l| l.starts_with(prefix))
            .map(str::to_string)
            .collect();
        lines.sort();
        lines
    }

    #[test]
    fn scrapes_read_the_log_as_it_is_and_leave_empty_families_out() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::default();
        let before = metrics.render();
        assert!(before.contains("brook_partitions_offline 0\n"), "{before}");
        assert!(
            before.contains("brook_damaged_ranges_found_by_reads "),
            "{before}"
        );
        assert!(before.contains("brook_open_file_descriptors "), "{before}");
        assert!(
            !before.contains("brook_partition_log_end_offset"),
            "{before}"
        );

        let log = Arc::new(Log::open(dir.path()).unwrap());
        let groups = Arc::new(
            Groups::open(
                dir.path().join("~groups"),
                brook_storage::FlushPolicy::Never,
            )
            .unwrap(),
        );
        let topic = TopicConfig {
            partitions: 2,
            partition: Default::default(),
        };
        log.create_topic("orders", topic).unwrap();
        let mut b = BatchBuilder::new();
        b.push(1, None, Some(b"OrderPlaced"), &[]);
        b.push(2, None, Some(b"OrderPaid"), &[]);
        let p1 = log.topic("orders").unwrap().partition(1).unwrap();
        p1.append(&Batch::parse(b.build(0)).unwrap()).unwrap();
        let committed = Committed {
            offset: 1,
            metadata: String::new(),
            timestamp_ms: 0,
        };
        groups
            .offsets
            .commit("billing", vec![(("orders".into(), 1), committed)])
            .unwrap();
        metrics.set_ready(Arc::clone(&log), groups);

        let text = metrics.render();
        let size = p1.size_bytes();
        let want = [
            r#"brook_consumer_lag_records{group="billing",topic="orders",partition="0"} 0"#
                .to_string(),
            r#"brook_consumer_lag_records{group="billing",topic="orders",partition="1"} 1"#
                .to_string(),
        ];
        assert_eq!(samples(&text, "brook_consumer_lag_records"), want, "{text}");
        assert_eq!(
            samples(&text, "brook_consumer_lag_seconds").len(),
            2,
            "{text}"
        );
        let want = [
            r#"brook_partition_log_end_offset{topic="orders",partition="0"} 0"#.to_string(),
            r#"brook_partition_log_end_offset{topic="orders",partition="1"} 2"#.to_string(),
            r#"brook_partition_log_start_offset{topic="orders",partition="0"} 0"#.to_string(),
            r#"brook_partition_log_start_offset{topic="orders",partition="1"} 0"#.to_string(),
            r#"brook_partition_size_bytes{topic="orders",partition="0"} 0"#.to_string(),
            format!(r#"brook_partition_size_bytes{{topic="orders",partition="1"}} {size}"#),
        ];
        assert_eq!(samples(&text, "brook_partition_"), want, "{text}");
        assert!(
            text.contains("# TYPE brook_partition_log_end_offset gauge\n"),
            "{text}"
        );
        assert!(text.contains("brook_partitions_offline 0\n"), "{text}");
        assert!(
            !text.contains("brook_partition_damaged_ranges"),
            "no damage: {text}"
        );
        assert!(
            !text.contains("brook_partition_offline"),
            "none offline: {text}"
        );
    }

    #[test]
    fn concurrent_scrapes_each_see_every_partition() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::default();
        let log = Arc::new(Log::open(dir.path()).unwrap());
        let groups = Arc::new(
            Groups::open(
                dir.path().join("~groups"),
                brook_storage::FlushPolicy::Never,
            )
            .unwrap(),
        );
        let topic = TopicConfig {
            partitions: 64,
            partition: Default::default(),
        };
        log.create_topic("orders", topic).unwrap();
        metrics.set_ready(log, groups);
        std::thread::scope(|s| {
            let scrapes: Vec<_> = (0..4)
                .map(|_| s.spawn(|| (0..20).map(|_| metrics.render()).collect::<Vec<_>>()))
                .collect();
            for text in scrapes.into_iter().flat_map(|t| t.join().unwrap()) {
                assert_eq!(samples(&text, "brook_partition_log_end_offset{").len(), 64);
                assert_eq!(samples(&text, "brook_partition_size_bytes{").len(), 64);
            }
        });
    }
}
