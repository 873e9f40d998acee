//! Brook's wire protocol.
//!
//! - [`batch`]: the record-batch codec. The same bytes travel producer →
//!   broker → disk → consumer, so this one implementation is shared by the
//!   client, the broker and the storage engine. It needs only `bytes` and
//!   `crc32fast`.
//! - The gRPC service types live behind the default `grpc` feature; the
//!   storage engine turns it off and sees the codec alone.
#![warn(missing_docs)]

pub mod batch;
mod varint;
