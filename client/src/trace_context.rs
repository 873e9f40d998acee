//! W3C Trace Context across the broker: a consumer's handler span
//! continues the producer's trace.
//!
//! On send, the producer puts the current `tracing` span's OpenTelemetry
//! context in the record's `traceparent` and `tracestate` headers, through
//! a `publish {topic}` span of its own (kind producer); a gRPC call made
//! inside a span carries its context in the metadata too. On receive,
//! [`ConsumerRecord::process_span`] opens the handler's span as the child
//! of the context the record names (a routing rule's span, for a routed
//! record). With no OpenTelemetry layer in the application's subscriber
//! (`tracing-opentelemetry`), there is no current context: records keep
//! the headers they were given, and nothing is added.
//!
//! ```no_run
//! # async fn demo(mut inventory: brook_client::Consumer, producer: brook_client::Producer) -> brook_client::Result<()> {
//! use brook_client::ProducerRecord;
//! use tracing::Instrument;
//! let order = inventory.recv().await?;
//! async {
//!     // Sent inside the handler's span: the reservation continues the order's trace.
//!     let reserved = ProducerRecord { topic: "reservations".into(), ..Default::default() };
//!     producer.send_record(reserved.caused_by(&order)).await?.await?;
//!     Ok::<_, brook_client::Error>(())
//! }
//! .instrument(order.process_span())
//! .await?;
//! # Ok(()) }
//! ```

use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::consumer::ConsumerRecord;
use crate::correlation::{TRACE_HEADERS, header};

const TRACEPARENT: &str = TRACE_HEADERS[0];
const TRACESTATE: &str = TRACE_HEADERS[1];

/// The current span's OpenTelemetry context, if it names a valid span.
pub(crate) fn current() -> Option<Context> {
    let span = Span::current();
    if span.is_none() {
        // Outside any span (a hot loop of sends, say): no lookup at all.
        return None;
    }
    valid(span.context())
}

fn valid(cx: Context) -> Option<Context> {
    cx.span().span_context().is_valid().then_some(cx)
}

/// `traceparent` and (if any) `tracestate` naming `cx`'s span.
pub(crate) fn headers_of(cx: &Context) -> Vec<(&'static str, String)> {
    let mut out = Carrier::default();
    TraceContextPropagator::new().inject_context(cx, &mut out);
    out.0
}

/// With a current trace, the headers a record sent now carries instead of
/// its own trace headers: those of a `publish {topic}` span, the current
/// span's child. None without a current trace.
pub(crate) fn publish_headers(topic: &str) -> Option<Vec<(&'static str, String)>> {
    let parent = current()?;
    let span = tracing::info_span!(
        "publish",
        otel.name = format!("publish {topic}"),
        otel.kind = "producer",
        messaging.system = "brook",
        messaging.operation.name = "send",
        messaging.destination.name = topic,
    );
    let _ = span.set_parent(parent.clone());
    // A publish span the subscriber filters out (a target filter on
    // `brook_client`) has no context: the record names the caller's span.
    let cx = valid(span.context()).unwrap_or(parent);
    Some(headers_of(&cx))
}

impl ConsumerRecord {
    /// The trace context the record's `traceparent` (and `tracestate`)
    /// names, if it names a valid one.
    pub fn trace_context(&self) -> Option<Context> {
        let parent = header(&self.headers, TRACEPARENT)?;
        if !brook_protocol::trace_context::traceparent_is_well_formed(parent) {
            return None;
        }
        valid(TraceContextPropagator::new().extract(&RecordCarrier(self)))
    }

    /// A span for handling this record (`process {topic}`, kind consumer):
    /// the child of the span that sent it, so that the handler's work and
    /// whatever it sends belong to the producer's trace. Enter it, or
    /// `instrument` the handler's future with it. A record without trace
    /// context gets a span of the current trace, or a new one.
    pub fn process_span(&self) -> Span {
        let span = tracing::info_span!(
            "process",
            otel.name = format!("process {}", self.topic),
            otel.kind = "consumer",
            messaging.system = "brook",
            messaging.operation.name = "process",
            messaging.destination.name = &*self.topic,
            messaging.destination.partition.id = self.partition,
            messaging.message.id = format!("{}/{}@{}", self.topic, self.partition, self.offset),
        );
        if let Some(cx) = self.trace_context() {
            let _ = span.set_parent(cx);
        }
        span
    }
}

#[derive(Default)]
struct Carrier(Vec<(&'static str, String)>);

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        let name = match key {
            TRACEPARENT => TRACEPARENT,
            TRACESTATE if !value.is_empty() => TRACESTATE,
            _ => return,
        };
        self.0.push((name, value));
    }
}

struct RecordCarrier<'a>(&'a ConsumerRecord);

impl Extractor for RecordCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        header(&self.0.headers, key)
    }

    fn keys(&self) -> Vec<&str> {
        TRACE_HEADERS.to_vec()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_sdk::trace::SdkTracerProvider;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn record(headers: &[(&str, &str)]) -> ConsumerRecord {
        ConsumerRecord {
            topic: Arc::from("inventory"),
            partition: 2,
            offset: 7,
            timestamp_ms: 0,
            key: None,
            value: None,
            headers: (headers.iter())
                .map(|(k, v)| (k.to_string(), Bytes::from(v.to_string())))
                .collect(),
        }
    }

    fn with_otel<T>(f: impl FnOnce() -> T) -> T {
        let provider = SdkTracerProvider::builder().build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("test"));
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f)
    }

    #[test]
    fn a_handlers_span_is_the_child_of_the_records_sender() {
        with_otel(|| {
            let r = record(&[(TRACEPARENT, PARENT), (TRACESTATE, "v=1")]);
            let span = r.process_span();
            let cx = span.context();
            let sc = cx.span().span_context().clone();
            assert_eq!(
                sc.trace_id().to_string(),
                "4bf92f3577b34da6a3ce929d0e0e4736"
            );
            assert_ne!(sc.span_id().to_string(), "00f067aa0ba902b7");
            // What the handler sends names the handler's span, in the same trace.
            let _in_handler = span.enter();
            let sent = publish_headers("reservations").unwrap();
            let parent = &sent.iter().find(|(k, _)| *k == TRACEPARENT).unwrap().1;
            assert!(
                parent.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"),
                "{parent}"
            );
            assert!(
                !parent.contains(&sc.span_id().to_string()),
                "a publish span of its own"
            );
            assert!(sent.contains(&(TRACESTATE, "v=1".to_string())));
        });
    }

    #[test]
    fn a_filtered_out_publish_span_leaves_the_callers_context() {
        use tracing_subscriber::Layer;
        use tracing_subscriber::filter::Targets;
        let provider = SdkTracerProvider::builder().build();
        // The application traces only its own target, not brook_client's.
        let layer = tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("test"))
            .with_filter(Targets::new().with_target("app", tracing::Level::TRACE));
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let handler = tracing::info_span!(target: "app", "handler");
            let span_id = handler.context().span().span_context().span_id();
            let _in = handler.enter();
            let sent = publish_headers("t").expect("the caller's trace");
            let parent = &sent.iter().find(|(k, _)| *k == TRACEPARENT).unwrap().1;
            assert!(parent.contains(&span_id.to_string()), "{parent}");
        });
    }

    #[test]
    fn no_trace_no_headers() {
        with_otel(|| {
            assert!(publish_headers("t").is_none(), "no current span");
            assert!(record(&[]).trace_context().is_none());
            assert!(
                record(&[(TRACEPARENT, "garbage")])
                    .trace_context()
                    .is_none()
            );
            // The SDK's parser alone would take ids this short.
            let short = record(&[(TRACEPARENT, "00-1-2-01")]);
            assert!(short.trace_context().is_none());
        });
        // Without an OpenTelemetry layer there is no context at all.
        let _s = tracing::info_span!("plain").entered();
        assert!(publish_headers("t").is_none());
    }
}
