//! Accepted gRPC connections, counted for the `open_connections` gauge and
//! capped by `--max-connections`.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use std::time::{Duration, Instant};

use prometheus_client::metrics::counter::Counter;
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

/// How long accepting pauses after a failure: out of descriptors (EMFILE),
/// accept would fail again at once and spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// At most one log line per this period for failed accepts (each is counted).
const ACCEPT_LOG_EVERY: Duration = Duration::from_secs(5);

/// What [`incoming`] counts.
pub struct Counters {
    /// Open connections.
    pub open: Gauge,
    /// Failed accepts.
    pub errors: Counter,
    /// Connections closed on arrival, over the limit.
    pub refused: Counter,
}

/// Accepts connections forever, with TCP_NODELAY (small acks must not wait
/// for Nagle), counting each in `open`. One that arrives while `max` are
/// open is closed at once and counted in `refused`: a client sees its
/// connection reset and retries later, and the broker's descriptors and
/// memory stay bounded. A failed accept (e.g. EMFILE, out of file
/// descriptors) is counted in `errors`, logged at most every few seconds,
/// and retried after a pause: the listener never ends.
pub fn incoming(
    listener: TcpListener,
    counters: Counters,
    max: usize,
) -> impl Stream<Item = io::Result<Conn>> {
    let last_log: Option<Instant> = None;
    let Counters {
        open: gauge,
        errors,
        refused,
    } = counters;
    futures_util::stream::unfold((listener, last_log), move |(listener, mut last_log)| {
        let (gauge, errors, refused) = (gauge.clone(), errors.clone(), refused.clone());
        async move {
            loop {
                match listener.accept().await {
                    Ok((stream, peer)) if gauge.get() >= max as i64 => {
                        refused.inc();
                        if last_log.is_none_or(|t| t.elapsed() >= ACCEPT_LOG_EVERY) {
                            last_log = Some(Instant::now());
                            tracing::warn!(%peer, max, refused_total = refused.get(),
                                "closing a new connection: --max-connections are open");
                        }
                        drop(stream);
                    }
                    Ok((stream, _)) => {
                        let _ = stream.set_nodelay(true);
                        gauge.inc();
                        return Some((Ok(Conn { stream, gauge }), (listener, last_log)));
                    }
                    Err(e) => {
                        errors.inc();
                        if last_log.is_none_or(|t| t.elapsed() >= ACCEPT_LOG_EVERY) {
                            last_log = Some(Instant::now());
                            tracing::error!(error = %e, failed_total = errors.get(),
                                "accepting a connection failed (out of file descriptors? raise `ulimit -n`); retrying");
                        }
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                }
            }
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
