//! The tower layer itself, and the response body that carries the span to
//! the trailers. What it records and why: see the parent module.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

use futures_util::future::BoxFuture;
use hyper::body::{Body, Frame, SizeHint};
use tower::{Layer, Service};
use tracing::{Instrument, Span};

use super::{RequestContext, Rpc, code_in, record_code};
use crate::metrics::RequestMetrics;

/// Wraps the gRPC routes so that every `brook.v1` RPC is traced, counted,
/// timed and, if it fails, logged once (`Server::builder().layer(...)`).
#[derive(Clone)]
pub struct RequestLayer {
    metrics: RequestMetrics,
}

impl RequestLayer {
    /// A layer that records into `metrics`.
    pub fn new(metrics: RequestMetrics) -> RequestLayer {
        RequestLayer { metrics }
    }
}

impl<S> Layer<S> for RequestLayer {
    type Service = RequestService<S>;

    fn layer(&self, inner: S) -> RequestService<S> {
        RequestService {
            inner,
            metrics: self.metrics.clone(),
        }
    }
}

/// The service [`RequestLayer`] puts in front of `S`.
#[derive(Clone)]
pub struct RequestService<S> {
    inner: S,
    metrics: RequestMetrics,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for RequestService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<TracedBody<ResBody>>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let Some(rpc) = Rpc::from_path(req.uri().path()) else {
            let call = self.inner.call(req);
            return Box::pin(async move { Ok(call.await?.map(TracedBody::untraced)) });
        };
        let ctx = Arc::new(RequestContext::new(rpc, req.headers()));
        req.extensions_mut().insert(Arc::clone(&ctx));
        let started = Instant::now();
        let call = self.inner.call(req).instrument(ctx.span.clone());
        let metrics = self.metrics.clone();
        Box::pin(async move {
            // An error here is the transport's (tonic's routes never return
            // one): there is no gRPC status to record, hyper resets the stream.
            let resp = call.await?;
            let span = ctx.finish(&metrics, started.elapsed(), resp.headers());
            Ok(resp.map(|inner| TracedBody { inner, span }))
        })
    }
}

/// A response body that records the RPC's final gRPC status on its span
/// when the trailers go out, and keeps the span open until then: for a
/// stream, the span lasts as long as the stream.
pub struct TracedBody<B> {
    inner: B,
    span: Option<Span>,
}

impl<B> TracedBody<B> {
    fn untraced(inner: B) -> TracedBody<B> {
        TracedBody { inner, span: None }
    }
}

// `B: Unpin` spares a pin projection: tonic's body is a boxed one.
impl<B: Body + Unpin> Body for TracedBody<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(code) = frame.trailers_ref().and_then(code_in)
            && let Some(span) = this.span.take()
        {
            record_code(&span, code);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;
    use std::future::{Ready, ready};
    use std::sync::Mutex;

    use bytes::Bytes;
    use http::HeaderMap;
    use http_body_util::combinators::WithTrailers;
    use http_body_util::{BodyExt, Full};
    use tower::ServiceExt;
    use tracing_subscriber::fmt::format::FmtSpan;

    use super::*;
    use crate::metrics::Metrics;

    type TestBody = WithTrailers<Full<Bytes>, Ready<Option<Result<HeaderMap, Infallible>>>>;

    /// A stand-in for tonic's routes: names the resource like a handler,
    /// then fails trailers-only (`x-fail: CODE`) or succeeds with the status
    /// in the trailers, as tonic does.
    async fn routes(req: http::Request<()>) -> Result<http::Response<TestBody>, Infallible> {
        if let Some(ctx) = req.extensions().get::<Arc<RequestContext>>() {
            let topic = req.headers().get("x-topic").unwrap().to_str().unwrap();
            ctx.resource(topic).partition(3);
        }
        let mut resp = http::Response::new(Full::new(Bytes::from_static(b"msg")));
        let trailers = match req.headers().get("x-fail") {
            Some(code) => {
                let headers = resp.headers_mut();
                headers.insert("grpc-status", code.clone());
                headers.insert("grpc-message", "unknown%20topic".parse().unwrap());
                None
            }
            None => {
                let mut t = HeaderMap::new();
                t.insert("grpc-status", "0".parse().unwrap());
                Some(Ok(t))
            }
        };
        Ok(resp.map(|b| b.with_trailers(ready(trailers))))
    }

    /// Calls `path` through the layer and reads the whole response body.
    async fn call(metrics: &Metrics, path: &str, topic: &str, fail: Option<&str>) {
        let layer = RequestLayer::new(metrics.requests.clone());
        let svc = layer.layer(tower::service_fn(routes));
        let mut req = http::Request::builder().uri(path).header("x-topic", topic);
        if let Some(code) = fail {
            req = req.header("x-fail", code);
        }
        let resp = svc.oneshot(req.body(()).unwrap()).await.unwrap();
        resp.into_body().collect().await.unwrap();
    }

    /// The log lines written while `f` runs, span closes included.
    async fn logged<F: Future<Output = ()>>(f: F) -> String {
        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_span_events(FmtSpan::CLOSE)
            .with_ansi(false)
            .finish();
        let _guard = tracing::subscriber::set_default(subscriber);
        f.await;
        String::from_utf8(buf.0.lock().unwrap().clone()).unwrap()
    }

    fn sample(text: &str, line: &str) -> Option<String> {
        text.lines()
            .find_map(|l| l.strip_prefix(line)?.strip_prefix(' ').map(str::to_string))
    }

    #[tokio::test]
    async fn each_rpc_is_counted_timed_and_traced_once_and_a_failure_logged_once() {
        let metrics = Metrics::default();
        let log = logged(async {
            call(&metrics, "/brook.v1.Producer/Produce", "orders", None).await;
            call(&metrics, "/brook.v1.Producer/Produce", "nope", Some("5")).await;
        })
        .await;
        let text = metrics.render();
        for (line, want) in [
            (
                r#"brook_requests_total{method="Produce",topic="orders",group=""}"#,
                "1",
            ),
            (
                r#"brook_requests_total{method="Produce",topic="nope",group=""}"#,
                "1",
            ),
            (
                r#"brook_request_errors_total{method="Produce",code="NOT_FOUND"}"#,
                "1",
            ),
            (
                r#"brook_request_duration_seconds_count{method="Produce"}"#,
                "2",
            ),
        ] {
            assert_eq!(sample(&text, line).as_deref(), Some(want), "{line}\n{text}");
        }
        let failed: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("request failed"))
            .collect();
        assert_eq!(failed.len(), 1, "{log}");
        for field in [
            r#"method="Produce""#,
            r#"topic="nope""#,
            "partition=3",
            "code=\"NOT_FOUND\"",
            "unknown topic",
        ] {
            assert!(failed[0].contains(field), "{field} in {}", failed[0]);
        }
        // The success's code comes from its trailers, the failure's from its headers.
        let closed: Vec<&str> = log.lines().filter(|l| l.contains(": close ")).collect();
        assert_eq!(closed.len(), 2, "{log}");
        assert!(
            closed[0].contains("rpc{method=\"Produce\" topic=\"orders\" partition=3 code=\"OK\"}"),
            "{log}"
        );
        assert!(
            closed[1].contains("topic=\"nope\" partition=3 code=\"NOT_FOUND\"}"),
            "{log}"
        );
    }

    #[tokio::test]
    async fn a_group_rpc_names_its_group() {
        let metrics = Metrics::default();
        let log = logged(call(
            &metrics,
            "/brook.v1.Groups/Commit",
            "billing",
            Some("9"),
        ))
        .await;
        let text = metrics.render();
        let line = r#"brook_requests_total{method="Commit",topic="",group="billing"}"#;
        assert_eq!(sample(&text, line).as_deref(), Some("1"), "{text}");
        assert!(
            log.contains(
                r#"request failed method="Commit" group="billing" code="FAILED_PRECONDITION""#
            ),
            "{log}"
        );
    }

    #[tokio::test]
    async fn other_paths_pass_through_unrecorded() {
        let metrics = Metrics::default();
        let log = logged(async {
            call(&metrics, "/grpc.health.v1.Health/Check", "", Some("5")).await;
            call(&metrics, "/brook.v1.Producer/MadeUp", "", Some("12")).await;
        })
        .await;
        assert!(
            !metrics.render().contains("brook_request"),
            "{}",
            metrics.render()
        );
        assert_eq!(log, "");
    }

    #[tokio::test]
    async fn a_produce_stream_is_counted_by_its_batches_unless_it_fails_to_start() {
        let metrics = Metrics::default();
        call(&metrics, "/brook.v1.Producer/ProduceStream", "orders", None).await;
        assert!(
            !metrics.render().contains("brook_request"),
            "{}",
            metrics.render()
        );
        call(&metrics, "/brook.v1.Producer/ProduceStream", "", Some("12")).await;
        let text = metrics.render();
        let line = r#"brook_request_errors_total{method="ProduceStream",code="UNIMPLEMENTED"}"#;
        assert_eq!(sample(&text, line).as_deref(), Some("1"), "{text}");
    }
}
