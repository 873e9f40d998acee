//! The Kafka-protocol listener: Kafka clients (librdkafka, kafka-python,
//! the Java client, kcat) talk to the same log, groups and settings as the
//! gRPC API, on a port of their own (`--kafka-listen`, default
//! `127.0.0.1:9092`).
//!
//! Messages are decoded and encoded by the `kafka-protocol` crate (Kafka's
//! own schemas, every version); record batches are not decoded at all on
//! the way through, because the log stores Kafka's RecordBatch v2: a
//! producer's batch is checked and appended as it arrived, and a fetch
//! answers with the stored bytes.
//!
//! - `connection`: one client connection, requests answered in order.
//! - `frame`: the length-prefixed frames and response headers.
//! - `versions`: the APIs and versions offered (ApiVersions).
//! - `errors`: the broker's refusal reasons as Kafka error codes.
//! - one module per API family: `metadata`, `produce`, `fetch`,
//!   `list_offsets`, `producer_id`, `admin` (topics and configs), `groups`
//!   (coordinator, classic group protocol, offsets), `sasl` (PLAIN with the
//!   broker's tokens).

mod admin;
mod connection;
mod errors;
mod fetch;
mod frame;
mod groups;
mod list_offsets;
mod metadata;
mod produce;
mod producer_id;
mod refuse;
mod sasl;
mod versions;

use std::sync::Arc;

use tokio::net::TcpListener;

use crate::state::Broker;

/// The broker id every Kafka client is told about: Brook is one node.
pub(crate) const NODE_ID: i32 = 0;

/// Where Kafka clients are told to connect (Metadata, FindCoordinator).
#[derive(Debug, Clone)]
pub(crate) struct Advertised {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: i32,
}

/// Accepts Kafka clients until the broker stops; each connection is served
/// by a task of its own.
pub(crate) async fn serve(listener: TcpListener, broker: Arc<Broker>, advertised: Advertised) {
    let advertised = Arc::new(advertised);
    tokio::spawn(groups::expire_loop(Arc::clone(&broker)));
    let mut shutdown = broker.shutdown_signal();
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = shutdown.wait_for(|s| *s) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let _ = stream.set_nodelay(true);
                let session =
                    connection::Session::new(Arc::clone(&broker), Arc::clone(&advertised), peer);
                tokio::spawn(session.run(stream));
            }
            Err(e) => {
                // Out of descriptors, most likely: let the others finish.
                tracing::warn!(error = %e, "accepting a Kafka connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
}
