//! Accepted gRPC connections, counted for the `open_connections` gauge.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use prometheus_client::metrics::gauge::Gauge;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tonic::transport::server::{Connected, TcpConnectInfo};

/// A client connection; the gauge counts it until it is dropped.
pub struct Conn {
    stream: TcpStream,
    gauge: Gauge,
}

impl Drop for Conn {
    fn drop(&mut self) {
        self.gauge.dec();
    }
}

/// Accepts connections forever, with TCP_NODELAY (small acks must not wait
/// for Nagle), counting each in `gauge`.
pub fn incoming(listener: TcpListener, gauge: Gauge) -> impl Stream<Item = io::Result<Conn>> {
    futures_util::stream::unfold(listener, move |listener| {
        let gauge = gauge.clone();
        async move {
            let conn = listener.accept().await.map(|(stream, _)| {
                let _ = stream.set_nodelay(true);
                gauge.inc();
                Conn { stream, gauge }
            });
            Some((conn, listener))
        }
    })
}

impl Connected for Conn {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for Conn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Conn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}
