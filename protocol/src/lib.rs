//! Brook's wire protocol.
//!
//! - [`batch`]: the record-batch codec. The same bytes travel producer →
//!   broker → disk → consumer, so this one implementation is shared by the
//!   client, the broker and the storage engine. It needs only `bytes` and
//!   `crc32fast`.
//! - [`partitioner`]: Kafka-compatible key → partition routing.
//! - `v1` (feature `grpc`, on by default): the gRPC services and messages of
//!   `proto/brook/v1/*.proto`, generated with tonic and prost. The storage
//!   engine turns the feature off and sees the codec alone.
#![warn(missing_docs)]
// Input from the network or the disk must never reach an unwrap: the
// compiler keeps that rule in non-test code (tests may unwrap).
#![cfg_attr(not(test), deny(clippy::unwrap_used))]

pub mod batch;
pub mod partitioner;
pub mod trace_context;
mod varint;

/// The gRPC API, package `brook.v1` (generated from `proto/brook/v1`).
#[cfg(feature = "grpc")]
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("brook.v1");

    /// The encoded file descriptor set, for gRPC server reflection.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("brook_descriptor");
}
