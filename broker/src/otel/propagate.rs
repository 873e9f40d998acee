//! W3C Trace Context in and out: `traceparent`/`tracestate` read from gRPC
//! metadata and record headers, written into record headers. The SDK's
//! propagator does the parsing (version, ids, flags, tracestate rules).

use brook_protocol::trace_context::traceparent_is_well_formed;
use opentelemetry::Context;
use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;

/// The header (and metadata key) naming a record's or request's parent span.
pub const TRACEPARENT: &str = "traceparent";
/// Vendor trace state that travels with [`TRACEPARENT`].
pub const TRACESTATE: &str = "tracestate";

/// The context an HTTP/2 request's metadata names, if it names a valid one.
pub fn from_http(headers: &http::HeaderMap) -> Option<Context> {
    let parent = headers.get(TRACEPARENT)?.to_str().ok()?;
    if !traceparent_is_well_formed(parent) {
        return None;
    }
    valid(TraceContextPropagator::new().extract(&HttpHeaders(headers)))
}

/// The context a record's headers name, if they name a valid one.
pub fn from_record<'a, V: AsRef<[u8]> + 'a>(
    headers: impl IntoIterator<Item = (&'a str, V)>,
) -> Option<Context> {
    let mut carrier = RecordHeaders::default();
    for (k, v) in headers {
        let slot = match k {
            TRACEPARENT => &mut carrier.parent,
            TRACESTATE => &mut carrier.state,
            _ => continue,
        };
        if slot.is_none() {
            *slot = std::str::from_utf8(v.as_ref()).ok().map(str::to_owned);
        }
    }
    if !traceparent_is_well_formed(carrier.parent.as_deref()?) {
        return None;
    }
    valid(TraceContextPropagator::new().extract(&carrier))
}

/// The `traceparent` (and `tracestate`, if any) naming `cx`'s span.
pub fn to_record(cx: &Context) -> RecordHeaders {
    let mut carrier = RecordHeaders::default();
    TraceContextPropagator::new().inject_context(cx, &mut carrier);
    carrier
}

fn valid(cx: Context) -> Option<Context> {
    cx.span().span_context().is_valid().then_some(cx)
}

/// The two trace headers of one record.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RecordHeaders {
    /// `traceparent`.
    pub parent: Option<String>,
    /// `tracestate`.
    pub state: Option<String>,
}

impl Extractor for RecordHeaders {
    fn get(&self, key: &str) -> Option<&str> {
        match key {
            TRACEPARENT => self.parent.as_deref(),
            TRACESTATE => self.state.as_deref(),
            _ => None,
        }
    }

    fn keys(&self) -> Vec<&str> {
        vec![TRACEPARENT, TRACESTATE]
    }
}

impl Injector for RecordHeaders {
    fn set(&mut self, key: &str, value: String) {
        match key {
            TRACEPARENT => self.parent = Some(value),
            TRACESTATE if !value.is_empty() => self.state = Some(value),
            _ => {}
        }
    }
}

struct HttpHeaders<'a>(&'a http::HeaderMap);

impl Extractor for HttpHeaders<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(http::HeaderName::as_str).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn a_records_traceparent_names_its_trace_and_span() {
        let cx = from_record([("type", &b"x"[..]), (TRACEPARENT, PARENT.as_bytes())]).unwrap();
        let sc = cx.span().span_context().clone();
        assert_eq!(
            sc.trace_id().to_string(),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(sc.span_id().to_string(), "00f067aa0ba902b7");
        assert!(sc.is_sampled() && sc.is_remote());
        assert_eq!(to_record(&cx).parent.as_deref(), Some(PARENT));
    }

    #[test]
    fn invalid_or_missing_traceparents_name_nothing() {
        for bad in [
            "",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "zz-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ] {
            assert!(
                from_record([(TRACEPARENT, bad.as_bytes())]).is_none(),
                "{bad}"
            );
        }
        assert!(from_record([(TRACEPARENT, &[0xff, 0xfe][..])]).is_none());
        // A later version's extra fields are allowed (W3C's forward compatibility).
        let v1 = "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later";
        assert!(from_record([(TRACEPARENT, v1.as_bytes())]).is_some());
        assert!(from_record([("correlation-id", &b"c"[..])]).is_none());
    }

    #[test]
    fn the_first_traceparent_counts_and_tracestate_travels() {
        let other = "00-11111111111111111111111111111111-2222222222222222-01";
        let cx = from_record([
            (TRACEPARENT, PARENT.as_bytes()),
            (TRACESTATE, b"vendor=1".as_slice()),
            (TRACEPARENT, other.as_bytes()),
        ])
        .unwrap();
        let out = to_record(&cx);
        assert_eq!(out.parent.as_deref(), Some(PARENT));
        assert_eq!(out.state.as_deref(), Some("vendor=1"));
    }

    #[test]
    fn grpc_metadata_names_a_parent() {
        let mut h = http::HeaderMap::new();
        assert!(from_http(&h).is_none());
        h.insert(TRACEPARENT, PARENT.parse().unwrap());
        let cx = from_http(&h).unwrap();
        assert_eq!(
            cx.span().span_context().span_id().to_string(),
            "00f067aa0ba902b7"
        );
    }
}
