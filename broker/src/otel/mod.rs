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
//! Spans exist only when tracing is on: `--otlp-endpoint` (exported over
//! OTLP/gRPC, [`export`]) or `--log-format json` (not exported: the ids go
//! into log lines, `logging`). Off, the hot paths pay one relaxed load.

pub mod export;
pub mod propagate;
pub mod spans;

use std::sync::atomic::{AtomicBool, Ordering};

static ON: AtomicBool = AtomicBool::new(false);

/// Whether spans are recorded (an OpenTelemetry layer is installed).
pub fn is_on() -> bool {
    ON.load(Ordering::Relaxed)
}

/// Marks spans as recorded from now on (by `logging::init`).
pub(crate) fn turn_on() {
    ON.store(true, Ordering::Relaxed);
}
