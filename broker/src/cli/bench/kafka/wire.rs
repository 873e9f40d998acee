//! One connection to a Kafka listener: requests written with the
//! `kafka-protocol` crate's encoders, answers read with its decoders, as
//! the listener itself does. Answers come back in request order, so a
//! caller may send a request before reading the previous answer.

use anyhow::Context;
use bytes::{Buf, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// The writing half: sends requests.
pub(super) struct Sender {
    wr: OwnedWriteHalf,
    next_correlation: i32,
    buf: BytesMut,
}

/// The reading half: reads answers in the order their requests were sent.
pub(super) struct Receiver {
    rd: BufReader<OwnedReadHalf>,
}

/// A request in flight: what its answer is read as.
pub(super) struct Pending {
    api: ApiKey,
    version: i16,
    correlation: i32,
}

/// Connects to `addr` (`HOST:PORT`).
pub(super) async fn connect(addr: &str) -> anyhow::Result<(Sender, Receiver)> {
    let stream = TcpStream::connect(addr)
        .await
        .with_context(|| format!("connecting to the Kafka listener at {addr}"))?;
    stream.set_nodelay(true)?;
    let (rd, wr) = stream.into_split();
    Ok((
        Sender {
            wr,
            next_correlation: 0,
            buf: BytesMut::new(),
        },
        Receiver {
            rd: BufReader::with_capacity(1 << 20, rd),
        },
    ))
}

impl Sender {
    /// Writes one request.
    pub(super) async fn send<Q: Encodable>(
        &mut self,
        api: ApiKey,
        version: i16,
        request: &Q,
    ) -> anyhow::Result<Pending> {
        let correlation = self.next_correlation;
        self.next_correlation = self.next_correlation.wrapping_add(1);
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation)
            .with_client_id(Some(StrBytes::from_static_str("brook-bench")));
        self.buf.clear();
        self.buf.extend_from_slice(&[0; 4]);
        header.encode(&mut self.buf, api.request_header_version(version))?;
        request.encode(&mut self.buf, version)?;
        let len = i32::try_from(self.buf.len() - 4)?;
        self.buf[..4].copy_from_slice(&len.to_be_bytes());
        self.wr.write_all(&self.buf).await?;
        Ok(Pending {
            api,
            version,
            correlation,
        })
    }
}

impl Receiver {
    /// Reads the answer to `pending` (the oldest request not yet answered).
    pub(super) async fn recv<A: Decodable>(&mut self, pending: Pending) -> anyhow::Result<A> {
        let Pending {
            api,
            version,
            correlation,
        } = pending;
        let len = self
            .rd
            .read_i32()
            .await
            .context("the listener closed the connection")?;
        let len = usize::try_from(len).context("negative answer length")?;
        let mut frame = BytesMut::zeroed(len);
        self.rd.read_exact(&mut frame).await?;
        let mut frame: Bytes = frame.freeze();
        let header = ResponseHeader::decode(&mut frame, api.response_header_version(version))?;
        anyhow::ensure!(
            header.correlation_id == correlation,
            "answer {} where {correlation} was due",
            header.correlation_id
        );
        let answer = A::decode(&mut frame, version)
            .with_context(|| format!("decoding the {api:?} v{version} answer"))?;
        anyhow::ensure!(
            !frame.has_remaining(),
            "{api:?} answer longer than its fields"
        );
        Ok(answer)
    }
}
