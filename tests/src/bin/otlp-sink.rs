//! An OTLP/gRPC trace sink for benchmarks (scripts/bench-tracing.sh): the
//! collector stub of the tests (brook_tests::otlp) on an ephemeral port.
//! Prints `listening http://ADDR`, then on SIGTERM or SIGINT the number of
//! spans it was sent, and exits.

use brook_tests::otlp::Collector;

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let collector = Collector::start().await;
    println!("listening {}", collector.endpoint());
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    println!("spans {}", collector.spans().len());
}
