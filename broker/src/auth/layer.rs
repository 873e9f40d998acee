//! The tower layer that authenticates every call before tonic routes it.
//!
//! It puts the [`Caller`] in the request's extensions, where handlers find
//! it for their ACL checks. With `--auth required`, a call without a known
//! token or client certificate is answered UNAUTHENTICATED
//! (`NOT_AUTHENTICATED`) right here, trailers-only, and no handler runs. The
//! health service stays open: load balancers and orchestrators probe it
//! without credentials.

use std::sync::Arc;
use std::task::{Context, Poll};

use futures_util::future::BoxFuture;
use http::HeaderMap;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};

use super::{Auth, AuthMode, Caller};
use crate::error::{ApiError, Reason};
use crate::request::RequestContext;

/// Wraps the gRPC routes with authentication (`Server::builder().layer(...)`).
#[derive(Clone)]
pub struct AuthLayer {
    auth: Arc<Auth>,
}

impl AuthLayer {
    /// A layer that authenticates against `auth`.
    pub fn new(auth: Arc<Auth>) -> AuthLayer {
        AuthLayer { auth }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;

    fn layer(&self, inner: S) -> AuthService<S> {
        AuthService {
            inner,
            auth: Arc::clone(&self.auth),
        }
    }
}

/// The service [`AuthLayer`] puts in front of `S`.
#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    auth: Arc<Auth>,
}

/// Paths open to anyone: the standard health service.
const OPEN: &[&str] = &["/grpc.health.v1.Health/"];

impl<S, ReqBody, ResBody> Service<http::Request<ReqBody>> for AuthService<S>
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

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        if self.auth.mode() == AuthMode::Off || OPEN.iter().any(|p| req.uri().path().starts_with(p))
        {
            req.extensions_mut().insert(Caller::default());
            return Box::pin(self.inner.call(req));
        }
        let certs = req
            .extensions()
            .get::<TlsConnectInfo<TcpConnectInfo>>()
            .and_then(|info| info.peer_certs());
        let client_cert = certs.as_ref().and_then(|c| c.first()).map(|c| c.as_ref());
        match authenticate(&self.auth, req.headers(), client_cert) {
            Ok((principal, token)) => {
                if let Some(ctx) = req.extensions().get::<Arc<RequestContext>>() {
                    ctx.principal(&principal);
                }
                req.extensions_mut().insert(Caller {
                    principal: Some(principal.into()),
                    token,
                });
                Box::pin(self.inner.call(req))
            }
            Err(refused) => {
                let resp = refused.into_status().into_http::<ResBody>();
                Box::pin(async move { Ok(resp) })
            }
        }
    }
}

/// The token of an `authorization: Bearer <token>` value (the scheme in
/// either case), or `None` if the value is not one.
pub fn bearer(value: &http::HeaderValue) -> Option<&str> {
    let v = value.to_str().ok()?;
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .map(str::trim)
}

/// The principal of a call: its bearer token's (with the token's hash),
/// else its client certificate's subject. A token that is sent must be a
/// known one: a typo'd token falls back on nothing.
pub fn authenticate(
    auth: &Auth,
    headers: &HeaderMap,
    client_cert: Option<&[u8]>,
) -> Result<(String, Option<[u8; 32]>), ApiError> {
    if let Some(value) = headers.get(http::header::AUTHORIZATION) {
        let token = bearer(value).ok_or_else(|| {
            ApiError::new(
                Reason::NotAuthenticated,
                "the authorization metadata must be \"Bearer <token>\"",
            )
        })?;
        let principal = auth.principal_of_token(token).ok_or_else(|| {
            ApiError::new(
                Reason::NotAuthenticated,
                "unknown token: it is not in the broker's tokens file (or was removed from it)",
            )
        })?;
        return Ok((principal, Some(super::tokens::hash(token))));
    }
    if let Some(der) = client_cert {
        let subject = super::certificate::subject(der).map_err(|e| {
            ApiError::new(
                Reason::NotAuthenticated,
                format!("the client certificate names no principal: {e}"),
            )
        })?;
        return Ok((subject, None));
    }
    Err(ApiError::new(
        Reason::NotAuthenticated,
        "this broker requires authentication: send \"authorization: Bearer <token>\" (brook --token, BROOK_TOKEN) or a client certificate",
    ))
}
