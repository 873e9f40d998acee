//! A small OTLP/gRPC trace collector on 127.0.0.1: what an OpenTelemetry
//! Collector's receiver does, minus the pipeline. It keeps every span it
//! is sent, with the service name of its resource, for a test to read.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;

/// One span as a trace viewer shows it: ids in lower-case hex.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenSpan {
    /// `service.name` of the process that sent it.
    pub service: String,
    /// The span's name (`produce events`).
    pub name: String,
    /// 32 hex digits.
    pub trace_id: String,
    /// 16 hex digits.
    pub span_id: String,
    /// 16 hex digits; empty for a root span.
    pub parent_id: String,
    /// The span ids of its links.
    pub links: Vec<String>,
    /// String attributes, as `key=value`.
    pub attributes: Vec<String>,
}

/// The collector: serving until dropped.
pub struct Collector {
    addr: SocketAddr,
    spans: Arc<Mutex<Vec<SeenSpan>>>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Collector {
    /// Listens on an ephemeral port.
    pub async fn start() -> Collector {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let service = Receiver {
            spans: Arc::clone(&spans),
        };
        let server = tokio::spawn(async move {
            let _ = tonic::transport::Server::builder()
                .add_service(TraceServiceServer::new(service))
                .serve_with_incoming(TcpListenerStream::new(listener))
                .await;
        });
        Collector {
            addr,
            spans,
            server,
        }
    }

    /// The address to give an exporter (`--otlp-endpoint`).
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<SeenSpan> {
        self.spans.lock().unwrap().clone()
    }
}

struct Receiver {
    spans: Arc<Mutex<Vec<SeenSpan>>>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        req: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let mut seen = Vec::new();
        for rs in req.into_inner().resource_spans {
            let service = (rs.resource.iter())
                .flat_map(|r| &r.attributes)
                .find(|kv| kv.key == "service.name")
                .and_then(|kv| text(kv.value.as_ref()?.value.as_ref()?))
                .unwrap_or_default();
            for span in rs.scope_spans.into_iter().flat_map(|s| s.spans) {
                seen.push(SeenSpan {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_id: hex(&span.parent_span_id),
                    links: span.links.iter().map(|l| hex(&l.span_id)).collect(),
                    attributes: (span.attributes.iter())
                        .filter_map(|kv| {
                            let v = text(kv.value.as_ref()?.value.as_ref()?)?;
                            Some(format!("{}={v}", kv.key))
                        })
                        .collect(),
                });
            }
        }
        self.spans.lock().unwrap().extend(seen);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::StringValue(s) => Some(s.clone()),
        Value::IntValue(i) => Some(i.to_string()),
        Value::BoolValue(b) => Some(b.to_string()),
        _ => None,
    }
}

/// Lower-case hex, as W3C `traceparent` writes ids.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
