//! `--request-timeout-ms`: a request whose handler has not answered in time
//! gets DEADLINE_EXCEEDED (reason `REQUEST_TIMEOUT`), and its handler is
//! dropped, so a stuck request holds no task, memory or lock for longer.
//!
//! What is timed is the handler up to its response: a unary call whole, a
//! stream until it starts (a subscription then runs for as long as the
//! client reads). The limit must exceed `--max-fetch-wait-ms`, so that a
//! long poll ends by its own wait first. A client's own deadline
//! (`grpc-timeout`) is honoured by tonic as well: the earlier one wins.

use std::task::{Context, Poll};
use std::time::Duration;

use futures_util::future::BoxFuture;
use tower::{Layer, Service};

use crate::error::{ApiError, Reason};

/// Puts a deadline on every call (`Server::builder().layer(...)`).
#[derive(Clone)]
pub struct DeadlineLayer {
    timeout: Duration,
}

impl DeadlineLayer {
    /// Calls get `timeout` to answer.
    pub fn new(timeout: Duration) -> DeadlineLayer {
        DeadlineLayer { timeout }
    }
}

impl<S> Layer<S> for DeadlineLayer {
    type Service = DeadlineService<S>;

    fn layer(&self, inner: S) -> DeadlineService<S> {
        DeadlineService {
            inner,
            timeout: self.timeout,
        }
    }
}

/// The service [`DeadlineLayer`] puts in front of `S`.
#[derive(Clone)]
pub struct DeadlineService<S> {
    inner: S,
    timeout: Duration,
}

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for DeadlineService<S>
where
    S: Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
    ResBody: Default + Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, S::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        let timeout = self.timeout;
        let call = self.inner.call(req);
        Box::pin(async move {
            match tokio::time::timeout(timeout, call).await {
                Ok(answer) => answer,
                Err(_) => Ok(ApiError::new(
                    Reason::RequestTimeout,
                    format!(
                        "the broker did not answer within --request-timeout-ms ({} ms)",
                        timeout.as_millis()
                    ),
                )
                .into_status()
                .into_http::<ResBody>()),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use tonic_types::StatusExt;
    use tower::ServiceExt;

    use super::*;

    #[tokio::test]
    async fn a_call_that_never_answers_gets_deadline_exceeded() {
        let never = tower::service_fn(|_req: http::Request<()>| {
            std::future::pending::<Result<http::Response<String>, Infallible>>()
        });
        let svc = DeadlineLayer::new(Duration::from_millis(50)).layer(never);
        let resp = svc.oneshot(http::Request::new(())).await.unwrap();
        let status = tonic::Status::from_header_map(resp.headers()).expect("a status");
        assert_eq!(status.code(), tonic::Code::DeadlineExceeded);
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            "REQUEST_TIMEOUT"
        );

        let quick = tower::service_fn(|_req: http::Request<()>| async {
            Ok::<_, Infallible>(http::Response::new("answer".to_string()))
        });
        let svc = DeadlineLayer::new(Duration::from_secs(60)).layer(quick);
        let resp = svc.oneshot(http::Request::new(())).await.unwrap();
        assert_eq!(resp.into_body(), "answer");
    }
}
