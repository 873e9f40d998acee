//! Kafka's framing: every request and response is a 4-byte big-endian
//! length and that many bytes. A request starts with its header (API key,
//! version, correlation id, client id); a response with the correlation id.

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, ResponseHeader, ResponseKind};
use kafka_protocol::protocol::Encodable;
use tokio::io::{AsyncRead, AsyncReadExt};

/// Smallest request: API key, version and correlation id.
const MIN_REQUEST: usize = 8;

/// Why a connection is closed instead of answered.
#[derive(Debug, thiserror::Error)]
pub(crate) enum FrameError {
    /// The client closed the connection (or it broke).
    #[error("connection closed: {0}")]
    Closed(#[from] std::io::Error),
    /// The length prefix is out of bounds: the stream cannot be resynchronised.
    #[error("request length {0} is outside 8..={1}")]
    BadLength(i32, usize),
}

/// Reads one request frame (without its length prefix).
pub(crate) async fn read_frame<R: AsyncRead + Unpin>(
    r: &mut R,
    max: usize,
) -> Result<Bytes, FrameError> {
    let len = r.read_i32().await?;
    if len < MIN_REQUEST as i32 || len as usize > max {
        return Err(FrameError::BadLength(len, max));
    }
    let mut buf = BytesMut::zeroed(len as usize);
    r.read_exact(&mut buf).await?;
    Ok(buf.freeze())
}

/// The API key, version and correlation id at the start of a request
/// (the frame is at least [`MIN_REQUEST`] bytes).
pub(crate) fn peek_header(frame: &[u8]) -> (i16, i16, i32) {
    let i16_at = |at: usize| i16::from_be_bytes([frame[at], frame[at + 1]]);
    let correlation = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    (i16_at(0), i16_at(2), correlation)
}

/// A whole response frame: length, header (of the version the API's
/// version calls for) and body.
pub(crate) fn encode_response<T: Encodable>(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &T,
) -> anyhow::Result<Bytes> {
    // Sized first: a fetch answer carries megabytes of records.
    let capacity = 4 + 16 + body.compute_size(version)?;
    framed(correlation_id, api_key, version, capacity, |buf| {
        body.encode(buf, version)
    })
}

/// [`encode_response`] for a body of any API (an error answer built
/// for whichever API was asked).
pub(crate) fn encode_response_kind(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    body: &ResponseKind,
) -> anyhow::Result<Bytes> {
    framed(correlation_id, api_key, version, 256, |buf| {
        body.encode(buf, version)
    })
}

/// The length, the response header and what `body` writes, the length
/// filled in once the rest is written.
fn framed(
    correlation_id: i32,
    api_key: ApiKey,
    version: i16,
    capacity: usize,
    body: impl FnOnce(&mut BytesMut) -> anyhow::Result<()>,
) -> anyhow::Result<Bytes> {
    let header_version = api_key.response_header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let mut buf = BytesMut::with_capacity(capacity);
    buf.put_i32(0);
    header.encode(&mut buf, header_version)?;
    body(&mut buf)?;
    let size = i32::try_from(buf.len() - 4)?;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    Ok(buf.freeze())
}
