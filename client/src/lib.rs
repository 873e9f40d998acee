//! The Rust client for Brook.
//!
//! - [`Client`]: one HTTP/2 connection, cheap to clone ([`ClientBuilder`] for timeouts and retries).
//! - [`Producer`]: batched, pipelined sends with per-record acknowledgements.
//! - [`Consumer`]: a consumer-group member (or a reader of given partitions) with commits.
//! - [`PartitionReader`]: one partition from an offset, no group ([`Client::reader`]).
//! - [`QueueConsumer`]: one of any number of competing consumers of a queue group, with per-message ack, nack, reject.
//! - [`Admin`]: topics, groups, committed offsets, lag, offset resets, queue groups, redrive, routing rules.
//!
//! ```no_run
//! # async fn demo() -> brook_client::Result<()> {
//! use brook_client::Client;
//! let client = Client::connect("http://127.0.0.1:9292").await?;
//! client.admin().create_topic("orders", 3).await?;
//! let producer = client.producer(Default::default());
//! producer.send("orders", Some("order-42"), "OrderPlaced").await?.await?;
//! let lag = client.consumer_lag("billing").await?;
//! # Ok(()) }
//! ```
#![warn(missing_docs)]
// Input from the network or the disk must never reach an unwrap: the
// compiler keeps that rule in non-test code (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

mod acls;
mod admin;
mod auth;
mod client;
mod consumer;
mod contract;
pub mod correlation;
mod error;
mod producer;
mod queue;
mod reader;
mod rules;
mod schemas;
pub mod trace_context;

pub use admin::{Admin, ResetTo};
pub use brook_protocol::v1 as proto;
pub use client::{Client, ClientBuilder};
pub use consumer::{Consumer, ConsumerConfig, ConsumerRecord, RevokeCallback, StartFrom};
pub use contract::{ContractError, JsonDeserializer, JsonSerializer};
pub use error::{Error, Result};
pub use producer::{
    Acks, Compression, Delivery, Producer, ProducerConfig, ProducerRecord, RecordMetadata,
};
pub use queue::{Failure, Flusher, QueueConsumer, QueueConsumerConfig, QueueMessage};
pub use reader::{PartitionReader, ReadFrom, ReaderConfig};
/// gRPC status codes, as in [`Error::code`] (re-exported so that callers need no `tonic` dependency).
pub use tonic::Code;
