//! The broker's own spans, named and parented as OpenTelemetry's messaging
//! conventions suggest: `produce {topic}` for a batch taken in, `route
//! {rule}` for a record a rule routes.

use brook_protocol::batch::{Batch, Record};
use opentelemetry::KeyValue;
use opentelemetry::trace::{SpanContext, SpanKind, TraceContextExt, Tracer};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use super::propagate::{self, RecordHeaders};

/// Most links a produce span carries to the records of its batch beyond
/// the one that parents it: a batch of a thousand traces is linked to the
/// first few, not to all.
const MAX_LINKS: usize = 16;

/// The span of one partition's produce: the child of the first record
/// that names a trace, linked to the first record of each of the next 16
/// other traces. None when tracing is off or no record names a trace (the
/// RPC's span covers it).
pub fn produce(topic: &str, partition: u32, batches: &[&Batch]) -> Span {
    if !super::is_exporting() {
        return Span::none();
    }
    let mut count = 0u64;
    let mut parent: Option<opentelemetry::Context> = None;
    let mut links = Vec::new();
    for batch in batches {
        for record in batch.records().flatten() {
            count += 1;
            let Some(cx) = context_of(&record) else {
                continue;
            };
            let sc = cx.span().span_context().clone();
            match &parent {
                None => parent = Some(cx),
                Some(p) if p.span().span_context().trace_id() == sc.trace_id() => {}
                Some(_) if links.len() < MAX_LINKS && !linked(&links, &sc) => links.push(sc),
                Some(_) => {}
            }
        }
    }
    let Some(parent) = parent else {
        return Span::none();
    };
    let span = tracing::info_span!(
        "produce",
        otel.name = format!("produce {topic}"),
        otel.kind = "server",
        messaging.system = "brook",
        messaging.operation.name = "receive",
        messaging.destination.name = topic,
        messaging.destination.partition.id = partition,
        messaging.batch.message_count = count,
    );
    let _ = span.set_parent(parent);
    for link in links {
        span.add_link(link);
    }
    span
}

/// The span of `rule` routing the record at `source`/`partition`@`offset`
/// (ended when the returned context is dropped), the child of the trace
/// the record names; with the headers that make a routed record its child.
/// None when the record names no sampled trace.
///
/// Made with the OpenTelemetry tracer itself, not through `tracing`: a rule
/// routes hundreds of thousands of records a second, and the bridge's
/// per-span registry and field work would be most of the cost.
pub fn route<T>(
    tracer: &T,
    rule: &str,
    (source, partition, offset): (&str, u32, u64),
    headers: &[(&str, &[u8])],
) -> Option<(opentelemetry::Context, RecordHeaders)>
where
    T: Tracer,
    T::Span: Send + Sync + 'static,
{
    let parent = propagate::from_record(headers.iter().copied())?;
    if !parent.span().span_context().is_sampled() {
        // An unsampled trace records nothing: the record keeps naming its
        // producer's span, and routing pays no span.
        return None;
    }
    let span = tracer
        .span_builder(format!("route {rule}"))
        .with_kind(SpanKind::Producer)
        .with_attributes([
            KeyValue::new("messaging.system", "brook"),
            KeyValue::new("messaging.operation.name", "send"),
            KeyValue::new("brook.rule", rule.to_string()),
            KeyValue::new("brook.source.topic", source.to_string()),
            KeyValue::new("brook.source.partition", i64::from(partition)),
            KeyValue::new("brook.source.offset", offset as i64),
        ])
        .start_with_context(tracer, &parent);
    let cx = parent.with_span(span);
    let headers = propagate::to_record(&cx);
    headers.parent.as_ref()?;
    Some((cx, headers))
}

fn linked(links: &[SpanContext], sc: &SpanContext) -> bool {
    links.iter().any(|l| l.trace_id() == sc.trace_id())
}

fn context_of(record: &Record) -> Option<opentelemetry::Context> {
    // Allocates only for a record that has the headers.
    propagate::from_record((record.headers.iter()).map(|h| (h.key.as_str(), &h.value[..])))
}

#[cfg(test)]
mod tests {
    use brook_protocol::batch::BatchBuilder;
    use opentelemetry::trace::{SpanId, TracerProvider as _};
    use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider, SpanData};
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    fn parent(trace: u8, span: u8) -> String {
        format!("00-{:032x}-{:016x}-01", trace, span)
    }

    fn batch(parents: &[Option<String>]) -> Batch {
        let mut b = BatchBuilder::new();
        for p in parents {
            let headers: Vec<(&str, &[u8])> = p
                .iter()
                .map(|p| (propagate::TRACEPARENT, p.as_bytes()))
                .collect();
            b.push(0, Some(b"k"), Some(b"v"), &headers);
        }
        Batch::parse(b.build(0)).unwrap()
    }

    /// Runs `f` with a subscriber that records into an in-memory exporter.
    fn recorded(f: impl FnOnce()) -> Vec<SpanData> {
        super::super::turn_on_in_this_thread();
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let layer = tracing_opentelemetry::layer().with_tracer(provider.tracer("t"));
        tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), f);
        exporter.get_finished_spans().unwrap()
    }

    #[test]
    fn a_produce_span_continues_the_first_traced_record_and_links_other_traces() {
        let spans = recorded(|| {
            let one = batch(&[None, Some(parent(1, 1)), Some(parent(1, 2))]);
            let two = batch(&[Some(parent(2, 3)), Some(parent(2, 4)), Some(parent(3, 5))]);
            drop(produce("orders", 4, &[&one, &two]));
        });
        assert_eq!(spans.len(), 1);
        let s = &spans[0];
        assert_eq!(s.name, "produce orders");
        assert_eq!(s.span_context.trace_id().to_string(), format!("{:032x}", 1));
        assert_eq!(s.parent_span_id, SpanId::from(1u64));
        // One link per other trace's first record; none to the parent's trace.
        let links: Vec<SpanId> = s.links.iter().map(|l| l.span_context.span_id()).collect();
        assert_eq!(links, [SpanId::from(3u64), SpanId::from(5u64)]);
        let count = s
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "messaging.batch.message_count");
        assert_eq!(
            count.map(|kv| kv.value.to_string()),
            Some("6".to_string()),
            "{:?}",
            s.attributes
        );
    }

    #[test]
    fn a_batch_naming_no_trace_gets_no_span_of_its_own() {
        let spans = recorded(|| drop(produce("orders", 0, &[&batch(&[None, None])])));
        assert!(spans.is_empty(), "{spans:?}");
    }

    #[test]
    fn a_route_span_is_the_records_child_and_the_routed_records_parent() {
        let exporter = InMemorySpanExporter::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build();
        let tracer = provider.tracer("t");
        let tp = parent(7, 9);
        let headers = [("traceparent", tp.as_bytes()), ("tracestate", &b"v=1"[..])];
        let (span, routed) = route(&tracer, "placed", ("events", 1, 42), &headers).unwrap();
        drop(span);
        assert!(route(&tracer, "placed", ("events", 1, 43), &[]).is_none());
        let unsampled = format!("00-{:032x}-{:016x}-00", 7, 9);
        let headers = [("traceparent", unsampled.as_bytes())];
        assert!(route(&tracer, "placed", ("events", 1, 44), &headers).is_none());
        let spans = exporter.get_finished_spans().unwrap();
        assert_eq!(spans.len(), 1);
        let s = &spans[0];
        assert_eq!(s.name, "route placed");
        assert_eq!(s.parent_span_id, SpanId::from(9u64));
        assert_eq!(s.span_kind, SpanKind::Producer);
        let out = routed;
        let expected = format!(
            "00-{}-{}-01",
            s.span_context.trace_id(),
            s.span_context.span_id()
        );
        assert_eq!(out.parent.as_deref(), Some(expected.as_str()));
        assert_eq!(out.state.as_deref(), Some("v=1"));
    }
}
