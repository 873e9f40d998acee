//! Distributed tracing: the broker's spans in the trace of the events it
//! carries.
//!
//! A client puts W3C Trace Context (`traceparent`, `tracestate`) in its
//! gRPC metadata and in its records' headers. The broker continues those
//! traces: an RPC's span (`request/`) is the child of the metadata's
//! context; a produce's span (`produce {topic}`, gRPC and Kafka) is the
//! child of the first traced record of its batch and links the others; a
//! rule's span (`route {rule}`) is the child of the record it routes and
//! the parent named by the routed record's new `traceparent`, so the
//! target's consumer continues from it. Fetches and group operations have
//! their RPC's span.
//!
//! RPC spans exist when an OpenTelemetry layer is installed:
//! `--otlp-endpoint` (exported over OTLP/gRPC, [`export`]) or `--log-format
//! json` (not exported: the ids go into log lines, `logging`). Produce and
//! route spans, and the routed records' new `traceparent`, only when spans
//! are exported: a record must not name a span no backend will have. Off,
//! the hot paths pay one relaxed load.

pub mod export;
pub mod propagate;
pub mod spans;

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry_sdk::trace::SdkTracer;

static ON: AtomicBool = AtomicBool::new(false);
static EXPORTING: AtomicBool = AtomicBool::new(false);
static EXPORTING_TRACER: OnceLock<SdkTracer> = OnceLock::new();

/// The tracer of the spans made without `tracing` (a rule's route spans),
/// when spans are exported.
pub fn exporting_tracer() -> Option<&'static SdkTracer> {
    EXPORTING_TRACER.get()
}

/// Whether spans are exported (`--otlp-endpoint`): produce and route
/// spans are made only then.
pub fn is_exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed) || (cfg!(test) && ON_IN_TEST.with(std::cell::Cell::get))
}

/// Whether spans are recorded (an OpenTelemetry layer is installed).
pub fn is_on() -> bool {
    ON.load(Ordering::Relaxed) || (cfg!(test) && ON_IN_TEST.with(std::cell::Cell::get))
}

thread_local! {
    /// A unit test's tracing, on its own thread only: the process-wide
    /// switch would reach the other tests of the binary.
    static ON_IN_TEST: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Turns tracing on for the calling thread's unit test.
#[cfg(test)]
pub(crate) fn turn_on_in_this_thread() {
    ON_IN_TEST.with(|on| on.set(true));
}

/// Marks spans as recorded from now on, and as exported if `exporting`
/// (by `logging::init`).
pub(crate) fn turn_on(tracer: SdkTracer, exporting: bool) {
    ON.store(true, Ordering::Relaxed);
    EXPORTING.store(exporting, Ordering::Relaxed);
    if exporting {
        let _ = EXPORTING_TRACER.set(tracer);
    }
}
