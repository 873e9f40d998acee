//! The tracer provider behind the broker's spans: exported in batches over
//! OTLP/gRPC to `--otlp-endpoint`, or not exported at all (spans then only
//! give JSON log lines their trace and span ids).

use std::time::Duration;

use anyhow::Context as _;
use opentelemetry::KeyValue;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider};

/// How long one export may take before the batch is dropped (a collector
/// that hangs must not hold spans without bound).
const EXPORT_TIMEOUT: Duration = Duration::from_secs(10);

/// The tracing settings of `brook serve`.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// The OTLP/gRPC collector (`http://host:4317`), if spans are exported.
    pub endpoint: Option<String>,
    /// The share of traces the broker starts itself (an RPC without a
    /// `traceparent`, a Kafka request) that are kept; a span with a parent
    /// follows its parent's sampled flag.
    pub sample_ratio: f64,
}

/// The provider for `settings`. Its exporter (if any) runs on a runtime
/// of its own, on its own thread: a broker's runtime busy with requests
/// does not hold up the export, and the export never blocks a request.
pub fn provider(settings: &Settings) -> anyhow::Result<SdkTracerProvider> {
    let ratio = settings.sample_ratio;
    anyhow::ensure!(
        (0.0..=1.0).contains(&ratio),
        "--otlp-sample-ratio {ratio} is not between 0 and 1"
    );
    let service = std::env::var("OTEL_SERVICE_NAME").unwrap_or_else(|_| "brook".to_string());
    let resource = Resource::builder()
        .with_service_name(service)
        .with_attribute(KeyValue::new("service.version", env!("CARGO_PKG_VERSION")))
        .build();
    let mut builder = SdkTracerProvider::builder()
        .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
            ratio,
        ))))
        .with_resource(resource);
    if let Some(endpoint) = &settings.endpoint {
        let runtime = export_runtime()?;
        let _in_runtime = runtime.enter();
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .with_timeout(EXPORT_TIMEOUT)
            .build()
            .with_context(|| format!("--otlp-endpoint {endpoint}"))?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}

/// A single-threaded runtime on a thread of its own that lives as long as
/// the process: tonic's channel needs one for its connection task.
fn export_runtime() -> anyhow::Result<tokio::runtime::Handle> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("the OTLP exporter's runtime")?;
    let handle = runtime.handle().clone();
    std::thread::Builder::new()
        .name("otlp-export".into())
        .spawn(move || runtime.block_on(std::future::pending::<()>()))
        .context("the OTLP exporter's thread")?;
    Ok(handle)
}
