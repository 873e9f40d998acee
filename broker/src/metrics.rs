//! Prometheus metrics and the `/metrics` HTTP endpoint (its own port).

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use tokio::net::TcpListener;

use crate::state::Broker;

/// Labels of per-request metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// gRPC method, e.g. `Produce`.
    pub method: &'static str,
    /// Topic named by the request ("" when none).
    pub topic: String,
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

/// Labels of per-topic data counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TopicLabels {
    /// Topic name.
    pub topic: String,
}

/// Labels of per-partition gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PartitionLabels {
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: u32,
}

/// Labels of an offline partition ("" as partition: the whole topic).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OfflineLabels {
    /// Topic name.
    pub topic: String,
    /// Partition number, or "" when the topic's metadata cannot be read.
    pub partition: String,
}

/// Labels of per-group lag gauges.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct LagLabels {
    /// Consumer group.
    pub group: String,
    /// Topic name.
    pub topic: String,
    /// Partition number.
    pub partition: u32,
}

fn latency_histogram() -> Histogram {
    // 25 µs .. ~3.3 s
    Histogram::new(exponential_buckets(0.000_025, 2.0, 18))
}

/// Every metric the broker exports.
pub struct Metrics {
    registry: Registry,
    /// Requests by method and topic.
    pub requests: Family<RequestLabels, Counter>,
    /// Failed requests by method and status code.
    pub errors: Family<ErrorLabels, Counter>,
    /// Request latency by method, in seconds.
    pub latency: Family<MethodLabels, Histogram, fn() -> Histogram>,
    /// Records appended per topic.
    pub produced_records: Family<TopicLabels, Counter>,
    /// Batch bytes appended per topic.
    pub produced_bytes: Family<TopicLabels, Counter>,
    /// Records sent to consumers per topic (fetch and subscribe).
    pub fetched_records: Family<TopicLabels, Counter>,
    /// Batch bytes sent to consumers per topic.
    pub fetched_bytes: Family<TopicLabels, Counter>,
    log_end_offset: Family<PartitionLabels, Gauge>,
    log_start_offset: Family<PartitionLabels, Gauge>,
    size_bytes: Family<PartitionLabels, Gauge>,
    /// Open client connections on the gRPC port.
    pub open_connections: Gauge,
    /// Failed accepts on the gRPC port (e.g. out of file descriptors).
    pub accept_errors: Counter,
    damaged_ranges: Family<PartitionLabels, Gauge>,
    damaged_by_reads: Gauge,
    offline: Family<OfflineLabels, Gauge>,
    offline_total: Gauge,
    open_fds: Gauge,
    lag_records: Family<LagLabels, Gauge>,
    lag_seconds: Family<LagLabels, Gauge<f64, std::sync::atomic::AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::with_prefix("brook");
        let m = Metrics {
            requests: Family::default(),
            errors: Family::default(),
            latency: Family::new_with_constructor(latency_histogram),
            produced_records: Family::default(),
            produced_bytes: Family::default(),
            fetched_records: Family::default(),
            fetched_bytes: Family::default(),
            log_end_offset: Family::default(),
            log_start_offset: Family::default(),
            size_bytes: Family::default(),
            open_connections: Gauge::default(),
            accept_errors: Counter::default(),
            damaged_ranges: Family::default(),
            damaged_by_reads: Gauge::default(),
            offline: Family::default(),
            offline_total: Gauge::default(),
            open_fds: Gauge::default(),
            lag_records: Family::default(),
            lag_seconds: Family::default(),
            registry: Registry::default(),
        };
        r.register(
            "requests",
            "gRPC requests by method and topic",
            m.requests.clone(),
        );
        r.register(
            "request_errors",
            "Failed gRPC requests by method and status code",
            m.errors.clone(),
        );
        r.register(
            "request_duration_seconds",
            "gRPC request latency by method",
            m.latency.clone(),
        );
        r.register(
            "produced_records",
            "Records appended, by topic",
            m.produced_records.clone(),
        );
        r.register(
            "produced_bytes",
            "Record-batch bytes appended, by topic",
            m.produced_bytes.clone(),
        );
        r.register(
            "fetched_records",
            "Records sent to consumers, by topic",
            m.fetched_records.clone(),
        );
        r.register(
            "fetched_bytes",
            "Record-batch bytes sent to consumers, by topic",
            m.fetched_bytes.clone(),
        );
        r.register(
            "partition_log_end_offset",
            "Next offset to be assigned",
            m.log_end_offset.clone(),
        );
        r.register(
            "partition_log_start_offset",
            "First offset still stored",
            m.log_start_offset.clone(),
        );
        r.register(
            "partition_size_bytes",
            "Bytes of log on disk",
            m.size_bytes.clone(),
        );
        r.register(
            "open_connections",
            "Open gRPC client connections",
            m.open_connections.clone(),
        );
        r.register(
            "accept_errors",
            "Failed accepts on the gRPC port (out of file descriptors, ...)",
            m.accept_errors.clone(),
        );
        r.register(
            "partition_damaged_ranges",
            "Ranges of offsets whose stored bytes fail their checks; reads of them answer DATA_LOSS",
            m.damaged_ranges.clone(),
        );
        r.register(
            "damaged_ranges_found_by_reads",
            "Damaged ranges that reads found since the start (the rest were found when opening)",
            m.damaged_by_reads.clone(),
        );
        r.register(
            "partition_offline",
            "1 for each partition (or topic) that could not be opened and serves nothing",
            m.offline.clone(),
        );
        r.register(
            "partitions_offline",
            "Partitions (or topics) that could not be opened",
            m.offline_total.clone(),
        );
        r.register(
            "open_file_descriptors",
            "File descriptors the broker process holds",
            m.open_fds.clone(),
        );
        r.register(
            "consumer_lag_records",
            "Records a group has not consumed yet",
            m.lag_records.clone(),
        );
        r.register(
            "consumer_lag_seconds",
            "Age of a group's oldest unconsumed record",
            m.lag_seconds.clone(),
        );
        Metrics { registry: r, ..m }
    }
}

impl Metrics {
    /// Counts one request, and its failure if it failed.
    pub fn observe(
        &self,
        method: &'static str,
        topic: &str,
        started: std::time::Instant,
        result: Result<(), tonic::Code>,
    ) {
        self.requests
            .get_or_create(&RequestLabels {
                method,
                topic: topic.to_string(),
            })
            .inc();
        self.latency
            .get_or_create(&MethodLabels { method })
            .observe(started.elapsed().as_secs_f64());
        if let Err(code) = result {
            self.errors
                .get_or_create(&ErrorLabels {
                    method,
                    code: format!("{code:?}"),
                })
                .inc();
        }
    }

    /// The text exposition, with partition gauges read from the log now.
    pub fn render(&self, broker: &Broker) -> String {
        for family in [
            &self.log_end_offset,
            &self.log_start_offset,
            &self.size_bytes,
            &self.damaged_ranges,
        ] {
            family.clear();
        }
        self.offline.clear();
        self.damaged_by_reads
            .set(brook_storage::damage_found_by_reads() as i64);
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(fds.count() as i64);
        }
        if let Some(log) = broker.recovered_log() {
            let offline = log.offline();
            self.offline_total.set(offline.len() as i64);
            for o in offline {
                let labels = OfflineLabels {
                    topic: o.topic,
                    partition: o.partition.map_or_else(String::new, |p| p.to_string()),
                };
                self.offline.get_or_create(&labels).set(1);
            }
            for topic in log.topics() {
                for (id, p) in topic.partitions() {
                    let labels = PartitionLabels {
                        topic: topic.name().to_string(),
                        partition: id,
                    };
                    let damaged = p.damaged_ranges().len();
                    if damaged > 0 {
                        self.damaged_ranges
                            .get_or_create(&labels)
                            .set(damaged as i64);
                    }
                    self.log_end_offset
                        .get_or_create(&labels)
                        .set(p.log_end_offset() as i64);
                    self.log_start_offset
                        .get_or_create(&labels)
                        .set(p.log_start_offset() as i64);
                    self.size_bytes
                        .get_or_create(&labels)
                        .set(p.size_bytes() as i64);
                }
            }
        }
        self.render_lag(broker);
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl Metrics {
    fn render_lag(&self, broker: &Broker) {
        self.lag_records.clear();
        self.lag_seconds.clear();
        let (Some(log), Some(groups)) = (broker.recovered_log(), broker.recovered_groups()) else {
            return;
        };
        let now = brook_storage::now_ms();
        for group in groups.names() {
            let Ok(lag) = crate::groups::lag::consumer_lag(groups, log, &group, "", now) else {
                continue;
            };
            for p in lag.partitions {
                let labels = LagLabels {
                    group: group.clone(),
                    topic: p.topic,
                    partition: p.partition,
                };
                self.lag_records
                    .get_or_create(&labels)
                    .set(p.lag_records as i64);
                self.lag_seconds
                    .get_or_create(&labels)
                    .set(p.lag_ms as f64 / 1000.0);
            }
        }
    }
}

fn respond(broker: &Broker, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(Bytes::new()));
    if req.uri().path() != "/metrics" {
        *resp.status_mut() = StatusCode::NOT_FOUND;
        *resp.body_mut() = Full::new(Bytes::from_static(b"not found: metrics are at /metrics\n"));
        return resp;
    }
    let text = broker.metrics.render(broker);
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static(
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        ),
    );
    *resp.body_mut() = Full::new(Bytes::from(text));
    resp
}

/// Serves `/metrics` until shutdown begins.
pub async fn serve(listener: TcpListener, broker: Arc<Broker>) {
    let mut shutdown = broker.shutdown_signal();
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics accept failed");
                    continue;
                }
            },
            _ = shutdown.wait_for(|s| *s) => return,
        };
        let broker = Arc::clone(&broker);
        tokio::spawn(async move {
            let svc = service_fn(move |req| {
                let resp = respond(&broker, &req);
                async move { Ok::<_, Infallible>(resp) }
            });
            if let Err(e) = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await
            {
                tracing::debug!(error = %e, "metrics connection ended with an error");
            }
        });
    }
}
