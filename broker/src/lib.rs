//! The Brook broker: a tonic gRPC server in front of the storage engine.
//!
//! - [`server::run`]: start, serve, stop cleanly; [`signals`]: the stop signals, counted.
//! - [`config`]: `brook serve` settings (flags, `BROOK_*` environment, TOML file).
//! - `topics`, `produce`, `consume`, [`groups`], `cluster`: the `brook.v1` services.
//! - [`build`]: the version and commit this binary was built from.
//! - [`state::Broker`]: what the services share; [`error`]: the one error type
//!   (a reason per refusal) and its mapping to gRPC statuses with `ErrorInfo`.
//! - `request`: the tower layer that traces, counts, times and logs every RPC.
//! - `kafka`: the Kafka-protocol listener (Kafka clients on the same log).
//! - `metrics`: Prometheus metrics and the HTTP port (`/metrics`, probes); `conn`: counted connections.
//! - [`schemas`]: the schema registry and its Confluent-compatible REST API on the HTTP port.
//! - [`cli`]: the `brook` command line (serve, topic, produce, consume, group,
//!   lag, data, bench), one file per command family.
#![warn(missing_docs)]
// Input from the network or the disk must never reach an unwrap: the
// compiler keeps that rule in non-test code (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod auth;
pub mod build;
pub mod cli;
mod cluster;
pub mod config;
mod conn;
pub mod console;
mod consume;
pub mod error;
mod fdlimit;
pub mod groups;
mod kafka;
pub mod logging;
mod metrics;
pub mod otel;
mod produce;
mod producer_ids;
pub mod queues;
pub mod quota;
mod request;
pub mod rules;
pub mod schemas;
pub mod server;
pub mod signals;
pub mod state;
pub mod statelog;
mod tonic_status;
mod topics;

/// Entry points for the fuzz targets in `fuzz/` (docs/fuzzing.md); not a stable API.
#[doc(hidden)]
pub mod fuzzing {
    pub use crate::producer_ids::ProducerIds;
}
