//! One request layer for every `brook.v1` RPC: a tracing span, the request,
//! error and latency metrics, and one log line per failed request.
//!
//! [`RequestLayer`] sits in front of tonic's routes. For a `brook.v1` path
//! it creates a [`RequestContext`] and puts it in the request's http
//! extensions, which tonic hands to the handler as
//! `tonic::Request::extensions()`; the call runs inside the context's span.
//! Only the handler can decode the message, so it names the topic or group
//! with one call, [`RequestContext::resource`]. When the response headers
//! come back the layer reads the status: tonic answers a failed call
//! trailers-only, with `grpc-status` in the headers, so a failure is known
//! right there; headers without it mean the call succeeded (unary) or its
//! stream started. The layer then counts the request, times it into the
//! latency histogram and, for a failure, logs one line. A response that goes
//! on keeps the span until its trailers, which record the final code.
//!
//! So one request is, per kind of RPC:
//! - unary: the call, timed from its arrival to its answer;
//! - `Subscribe`, `Join`: the opening of the stream, timed to its first
//!   response headers (what the broker counted before this layer existed);
//! - `ProduceStream`: each batch, timed from its arrival to its ack. The
//!   layer cannot see batches, so the stream's handler counts them with
//!   [`record_message`]; the layer counts the stream only if it fails before
//!   its first batch (e.g. an unsupported encoding), so that no failure goes
//!   uncounted.

mod deadline;
mod layer;

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use brook_protocol::v1::{
    acls_server, cluster_server, consumer_server, groups_server, producer_server, queues_server,
    rules_server, schemas_server, topics_server,
};
use http::HeaderMap;
use tonic::{Code, Status};
use tracing::Span;
use tracing::field::Empty;

pub use deadline::DeadlineLayer;
pub use layer::RequestLayer;

use crate::metrics::RequestMetrics;

/// Every service and method the layer records: exactly the `rpc`s of
/// `protocol/proto/brook/v1` (a unit test compares them). Any other path
/// (health, reflection, a method this broker lacks) passes through
/// untouched, so a client cannot grow the metrics' label sets with made-up
/// method names.
const SERVICES: &[(&str, &[&str])] = &[
    (
        acls_server::SERVICE_NAME,
        &["CreateAcls", "ListAcls", "DeleteAcls", "WhoAmI"],
    ),
    (
        topics_server::SERVICE_NAME,
        &[
            "CreateTopic",
            "DeleteTopic",
            "ListTopics",
            "DescribeTopic",
            "AddPartitions",
            "AlterTopic",
        ],
    ),
    (
        producer_server::SERVICE_NAME,
        &["Produce", "ProduceStream", "Publish", "InitProducer"],
    ),
    (consumer_server::SERVICE_NAME, &["Fetch", "Subscribe"]),
    (
        groups_server::SERVICE_NAME,
        &[
            "Join",
            "Commit",
            "FetchCommitted",
            "ListGroups",
            "DescribeGroup",
            "DeleteGroup",
            "GetConsumerLag",
            "ResetOffsets",
        ],
    ),
    (cluster_server::SERVICE_NAME, &["DescribeCluster"]),
    (
        queues_server::SERVICE_NAME,
        &[
            "CreateQueue",
            "AlterQueue",
            "DeleteQueue",
            "FetchQueue",
            "Acknowledge",
            "ExtendLease",
            "DescribeQueue",
            "ListQueues",
            "Redrive",
        ],
    ),
    (
        rules_server::SERVICE_NAME,
        &[
            "CreateRule",
            "DescribeRule",
            "ListRules",
            "PauseRule",
            "ResumeRule",
            "DeleteRule",
        ],
    ),
    (
        schemas_server::SERVICE_NAME,
        &[
            "RegisterSchema",
            "ListSubjects",
            "ListVersions",
            "GetSchemaVersion",
            "GetSchemaById",
            "CheckCompatibility",
            "DeleteSchema",
            "GetCompatibility",
            "SetCompatibility",
            "SetTopicSchema",
            "GetTopicSchema",
        ],
    ),
];

/// Streams whose handler counts each message as one request ([`record_message`]).
const PER_MESSAGE: &[&str] = &["ProduceStream"];

/// What a request's resource is: the log field it goes into.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Resource {
    Topic,
    Group,
    /// A routing rule: named in the span and the failure log line, not in
    /// the metrics' labels.
    Rule,
}

/// One RPC the layer records.
#[derive(Clone, Copy, Debug)]
struct Rpc {
    /// The method's name, as in the metrics' `method` label.
    method: &'static str,
    /// The service's full name (`brook.v1.Producer`): the span's name is
    /// `service/method`, as OpenTelemetry's RPC conventions name it.
    service: &'static str,
    resource: Resource,
    per_message: bool,
}

impl Rpc {
    /// The RPC of a `/package.Service/Method` path, if it is one of [`SERVICES`].
    fn from_path(path: &str) -> Option<Rpc> {
        let (service, method) = path.strip_prefix('/')?.split_once('/')?;
        let (service, methods) = SERVICES.iter().find(|(s, _)| *s == service)?;
        let method = *methods.iter().find(|m| **m == method)?;
        let service = *service;
        let groups = [groups_server::SERVICE_NAME, queues_server::SERVICE_NAME];
        let resource = match (groups.contains(&service), service) {
            (true, _) => Resource::Group,
            (false, rules_server::SERVICE_NAME) => Resource::Rule,
            (false, _) => Resource::Topic,
        };
        Some(Rpc {
            method,
            service,
            resource,
            per_message: PER_MESSAGE.contains(&method),
        })
    }
}

/// What the layer and a handler share about one RPC: the handler names the
/// resource once it has decoded the message; the layer reads it when the
/// response comes back. Handlers reach it with [`RequestContext::of`].
pub struct RequestContext {
    rpc: Rpc,
    /// The topic or group named by the request; none for e.g. `ListTopics`.
    resource: OnceLock<String>,
    /// The partition, for requests about one (it goes into the failure log line).
    partition: OnceLock<u32>,
    /// Who called, when authentication is on (the failure log line names them).
    principal: OnceLock<String>,
    /// `rpc{method, topic | group, partition, code}`.
    span: Span,
}

impl RequestContext {
    /// The context of a call whose metadata is `headers`: with tracing on,
    /// its span continues the trace their `traceparent` names.
    fn new(rpc: Rpc, headers: &HeaderMap) -> RequestContext {
        let span = tracing::info_span!(
            "rpc",
            method = rpc.method,
            topic = Empty,
            group = Empty,
            rule = Empty,
            partition = Empty,
            principal = Empty,
            code = Empty,
            otel.name = Empty,
            otel.kind = Empty,
            otel.status_code = Empty,
            rpc.system = Empty,
        );
        if crate::otel::is_on() {
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            // Recorded only when traced: untraced log lines stay short.
            span.record("otel.name", format!("{}/{}", rpc.service, rpc.method));
            span.record("otel.kind", "server");
            span.record("rpc.system", "grpc");
            if let Some(parent) = crate::otel::propagate::from_http(headers) {
                let _ = span.set_parent(parent);
            }
        }
        RequestContext {
            rpc,
            resource: OnceLock::new(),
            partition: OnceLock::new(),
            principal: OnceLock::new(),
            span,
        }
    }

    /// The context the layer attached to `req`; a detached one, which
    /// records nothing, when the handler is called without the layer.
    pub fn of<T>(req: &tonic::Request<T>) -> Arc<RequestContext> {
        match req.extensions().get::<Arc<RequestContext>>() {
            Some(ctx) => Arc::clone(ctx),
            None => Arc::new(RequestContext {
                rpc: Rpc {
                    method: "",
                    service: "",
                    resource: Resource::Topic,
                    per_message: false,
                },
                resource: OnceLock::new(),
                partition: OnceLock::new(),
                principal: OnceLock::new(),
                span: Span::none(),
            }),
        }
    }

    /// Names the topic or group the request is about (the first name given
    /// stays): the metrics' `topic` label, the span's `topic` or `group`.
    pub fn resource(&self, name: &str) -> &Self {
        if self.resource.set(name.to_string()).is_ok() {
            match self.rpc.resource {
                Resource::Topic => self.span.record("topic", name),
                Resource::Group => self.span.record("group", name),
                Resource::Rule => self.span.record("rule", name),
            };
        }
        self
    }

    /// Names the partition the request is about.
    pub fn partition(&self, id: u32) -> &Self {
        if self.partition.set(id).is_ok() {
            self.span.record("partition", id);
        }
        self
    }

    /// Names the authenticated caller (set by the auth layer).
    pub fn principal(&self, name: &str) {
        if self.principal.set(name.to_string()).is_ok() {
            self.span.record("principal", name);
        }
    }

    /// Records the call whose response headers are `headers`, `elapsed`
    /// after it arrived. Returns the span when the status is still to come
    /// (in the trailers), for the response body to keep until then.
    fn finish(
        &self,
        metrics: &RequestMetrics,
        elapsed: Duration,
        headers: &HeaderMap,
    ) -> Option<Span> {
        let Some(code) = code_in(headers) else {
            if !self.rpc.per_message {
                metrics.observe(self.rpc.method, self.labels(), elapsed, Ok(()));
            }
            return Some(self.span.clone());
        };
        record_code(&self.span, code);
        let result = match code {
            Code::Ok => Ok(()),
            failed => Err(failed),
        };
        // A per-message stream counts its messages; one that fails before the
        // first is counted here, or the failure would go uncounted.
        if !self.rpc.per_message || result.is_err() {
            metrics.observe(self.rpc.method, self.labels(), elapsed, result);
        }
        if result.is_err() {
            // Only failures pay for decoding the message.
            let status = Status::from_header_map(headers).unwrap_or_else(|| Status::new(code, ""));
            self.log_failure(&status);
        }
        None
    }

    fn name(&self) -> &str {
        self.resource.get().map_or("", String::as_str)
    }

    /// The metrics' `(topic, group)` labels: the resource goes in the one
    /// its kind names.
    fn labels(&self) -> (&str, &str) {
        match self.rpc.resource {
            Resource::Topic => (self.name(), ""),
            Resource::Group => ("", self.name()),
            Resource::Rule => ("", ""),
        }
    }

    fn log_failure(&self, status: &Status) {
        // The line is written after the call, outside its span: its trace
        // context is made current for the ids of a JSON line.
        let _in_trace = crate::otel::is_on().then(|| {
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            self.span.context().attach()
        });
        log_failure(
            Failure {
                method: self.rpc.method,
                resource: self.rpc.resource,
                name: self.name(),
                partition: self.partition.get().copied(),
                principal: self.principal.get().map_or("", String::as_str),
            },
            status,
        );
    }
}

/// The gRPC status code in `headers`, if there is one.
fn code_in(headers: &HeaderMap) -> Option<Code> {
    headers
        .get(Status::GRPC_STATUS)
        .map(|v| Code::from_bytes(v.as_bytes()))
}

fn record_code(span: &Span, code: Code) {
    span.record("code", code_name(code));
    if code != Code::Ok && crate::otel::is_on() {
        span.record("otel.status_code", "ERROR");
    }
}

/// The canonical name of a gRPC status code (`NOT_FOUND`), as the gRPC
/// specification, grpcurl and other gRPC tools spell it: the `code` label
/// of the error counter and the `code` field of spans and log lines.
pub fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// The one line a failed request logs. It is a root event (`parent: None`),
/// not one inside the `rpc` span: it names the method and resource itself,
/// so a subscriber that prints span context does not print them twice, and
/// one that filters the span out still gets them.
/// What a failure log line names besides the status.
struct Failure<'a> {
    method: &'static str,
    resource: Resource,
    name: &'a str,
    partition: Option<u32>,
    /// Empty when authentication is off.
    principal: &'a str,
}

fn log_failure(f: Failure<'_>, status: &Status) {
    let Failure {
        method,
        resource,
        name,
        partition,
        principal,
    } = f;
    let (code, message) = (status.code(), status.message());
    let info = tonic_types::StatusExt::get_details_error_info(status);
    // Absent, not empty, when there is none (authentication off; a status
    // tonic made).
    let reason = info.as_ref().map(|i| i.reason.as_str());
    let principal = (!principal.is_empty()).then_some(principal);
    match resource {
        Resource::Topic => tracing::warn!(
            parent: None,
            method,
            topic = name,
            partition,
            principal,
            code = code_name(code),
            reason,
            message,
            "request failed"
        ),
        Resource::Group => tracing::warn!(
            parent: None,
            method,
            group = name,
            principal,
            code = code_name(code),
            reason,
            message,
            "request failed"
        ),
        Resource::Rule => tracing::warn!(
            parent: None,
            method,
            rule = name,
            principal,
            code = code_name(code),
            reason,
            message,
            "request failed"
        ),
    }
}

/// Records one message of a stream that counts each message as a request,
/// `started` being when the message arrived and `result` its answer.
///
/// `ProduceStream` acks each batch on its own, and a producer streams for
/// as long as it lives: counting the stream would say nothing about the
/// batches. The layer sees only the stream's HTTP response, whose headers
/// go out before the first batch is read, so the handler calls this once
/// per ack instead.
pub fn record_message<T>(
    metrics: &RequestMetrics,
    method: &'static str,
    topic: &str,
    partition: u32,
    started: Instant,
    result: &Result<T, Status>,
) {
    let code = result.as_ref().map(|_| ()).map_err(Status::code);
    metrics.observe(method, (topic, ""), started.elapsed(), code);
    if let Err(status) = result {
        let failure = Failure {
            method,
            resource: Resource::Topic,
            name: topic,
            partition: Some(partition),
            principal: "",
        };
        log_failure(failure, status);
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use prost::Message;

    use super::*;

    #[test]
    fn the_method_table_is_exactly_the_protos_rpcs() {
        let fds = prost_types::FileDescriptorSet::decode(brook_protocol::v1::FILE_DESCRIPTOR_SET)
            .unwrap();
        let in_proto: BTreeSet<String> = fds
            .file
            .iter()
            .flat_map(|f| {
                f.service.iter().flat_map(move |s| {
                    s.method
                        .iter()
                        .map(move |m| format!("/{}.{}/{}", f.package(), s.name(), m.name()))
                })
            })
            .collect();
        let in_table: BTreeSet<String> = SERVICES
            .iter()
            .flat_map(|(s, ms)| ms.iter().map(move |m| format!("/{s}/{m}")))
            .collect();
        assert_eq!(in_table, in_proto, "add new rpcs to request::SERVICES");
        let methods: Vec<&str> = SERVICES
            .iter()
            .flat_map(|(_, ms)| ms.iter().copied())
            .collect();
        let unique: BTreeSet<&str> = methods.iter().copied().collect();
        assert_eq!(
            unique.len(),
            methods.len(),
            "the `method` label alone names an RPC"
        );
    }

    #[test]
    fn only_brook_paths_are_rpcs() {
        let produce = Rpc::from_path("/brook.v1.Producer/ProduceStream").unwrap();
        assert_eq!(produce.method, "ProduceStream");
        assert!(produce.per_message);
        assert_eq!(produce.resource, Resource::Topic);
        let commit = Rpc::from_path("/brook.v1.Groups/Commit").unwrap();
        assert_eq!(
            (commit.resource, commit.per_message),
            (Resource::Group, false)
        );
        for other in [
            "/grpc.health.v1.Health/Check",
            "/brook.v1.Producer/Made-up",
            "/brook.v1.Groups/Produce",
            "/brook.v1.Producer",
            "",
        ] {
            assert!(Rpc::from_path(other).is_none(), "{other}");
        }
    }
}
