//! What every API route shares: who is calling, gRPC requests on their
//! behalf, JSON in and out, and errors as `{"error": {...}}` with the
//! gRPC API's reason.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use tonic::Code;

use crate::auth::{AuthMode, Caller};
use crate::error::{ApiError, Reason};
use crate::state::Broker;

/// The caller of an API request: the principal of its bearer token, or
/// nobody when authentication is off.
pub struct Who(pub Caller);

impl FromRequestParts<Arc<Broker>> for Who {
    type Rejection = Failure;

    async fn from_request_parts(
        parts: &mut Parts,
        broker: &Arc<Broker>,
    ) -> Result<Self, Self::Rejection> {
        if broker.auth.mode() == AuthMode::Off {
            return Ok(Who(Caller::default()));
        }
        let (principal, token) =
            crate::auth::layer::authenticate(&broker.auth, &parts.headers, None)?;
        Ok(Who(Caller {
            principal: Some(principal.into()),
            token,
        }))
    }
}

impl Who {
    /// A gRPC request carrying `message` as this caller's.
    pub fn request<T>(&self, message: T) -> tonic::Request<T> {
        let mut req = tonic::Request::new(message);
        req.extensions_mut().insert(self.0.clone());
        req
    }
}

/// A refused API request: its HTTP status and the gRPC API's code,
/// reason, message and metadata.
#[derive(Debug)]
pub struct Failure {
    status: StatusCode,
    code: &'static str,
    reason: String,
    message: String,
    metadata: BTreeMap<String, String>,
}

/// A result whose error is a [`Failure`].
pub type ApiResult<T> = Result<T, Failure>;

impl Failure {
    /// INVALID_REQUEST: the request's body, path or query is wrong.
    pub fn invalid(message: impl Into<String>) -> Failure {
        ApiError::invalid(message).into()
    }

    /// The machine-readable reason (`TOPIC_NOT_FOUND`, ...).
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// The HTTP status a gRPC code is answered with (docs/console.md).
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::InvalidArgument | Code::OutOfRange | Code::FailedPrecondition => {
            StatusCode::BAD_REQUEST
        }
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl From<tonic::Status> for Failure {
    fn from(status: tonic::Status) -> Failure {
        let info = tonic_types::StatusExt::get_details_error_info(&status);
        let (reason, metadata) = match info {
            Some(i) => (i.reason, i.metadata.into_iter().collect()),
            None => (String::new(), BTreeMap::new()),
        };
        Failure {
            status: http_status(status.code()),
            code: crate::request::code_name(status.code()),
            reason,
            message: status.message().to_string(),
            metadata,
        }
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Failure {
        e.into_status().into()
    }
}

impl From<brook_storage::Error> for Failure {
    fn from(e: brook_storage::Error) -> Failure {
        ApiError::from(e).into()
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        let body = json!({"error": {
            "code": self.code,
            "reason": self.reason,
            "message": self.message,
            "metadata": self.metadata,
        }});
        let mut resp = reply(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"brook\""),
            );
        }
        resp
    }
}

/// A JSON answer.
pub fn reply(status: StatusCode, body: &Value) -> Response {
    let mut resp = (status, body.to_string()).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// 200 with `body`.
pub fn ok(body: Value) -> ApiResult<Response> {
    Ok(reply(StatusCode::OK, &body))
}

/// 204, no body.
pub fn no_content() -> ApiResult<Response> {
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// The request body as `T`, or INVALID_REQUEST naming what was wrong.
pub fn body<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let bytes = match bytes.is_empty() {
        true => b"{}".as_slice(),
        false => bytes,
    };
    serde_json::from_slice(bytes).map_err(|e| {
        Failure::invalid(format!(
            "the request body is not what this route takes: {e}"
        ))
    })
}

/// The query parameters of a request.
pub type Params = HashMap<String, String>;

/// Query parameter `name` parsed as `T` (`None` when absent or empty).
pub fn param<T: FromStr>(params: &Params, name: &str) -> ApiResult<Option<T>> {
    match params.get(name).map(String::as_str) {
        None | Some("") => Ok(None),
        Some(text) => text.parse().map(Some).map_err(|_| {
            ApiError::invalid(format!(
                "query parameter {name}={text:?} is not a valid value"
            ))
            .with("field", name)
            .into()
        }),
    }
}

/// A path segment that must be a number (a partition, a version).
pub fn number<T: FromStr>(text: &str, what: &'static str) -> ApiResult<T> {
    text.parse().map_err(|_| {
        ApiError::invalid(format!("{what} {text:?} is not a number"))
            .with("field", what)
            .into()
    })
}

/// A refusal by [`guard`], before any route runs.
fn refused(status: StatusCode, code: &'static str, message: String) -> Response {
    Failure {
        status,
        code,
        reason: match status {
            StatusCode::FORBIDDEN => Reason::NotAuthorized,
            _ => Reason::InvalidRequest,
        }
        .as_str()
        .to_string(),
        message,
        metadata: BTreeMap::new(),
    }
    .into_response()
}

/// The host a `Host` (or `X-Forwarded-Host`) value names, without its port
/// and a trailing dot; empty when it is not `host[:port]` or `[v6][:port]`.
pub(crate) fn host_name(value: &str) -> &str {
    let host = match value.strip_prefix('[') {
        // Only a port may follow the address.
        Some(v6) => match v6.split_once(']') {
            Some((host, "")) => host,
            Some((host, rest)) if rest.starts_with(':') => host,
            _ => "",
        },
        None => value.rsplit_once(':').map_or(value, |(host, _)| host),
    };
    host.strip_suffix('.').unwrap_or(host)
}

/// Whether the API answers requests naming `host`: an IP address or
/// localhost (a DNS-rebinding page names a host of its own), or one of
/// `--console-allowed-hosts`.
fn host_allowed(host: &str, allowed: &[String]) -> bool {
    let name = host_name(host).to_ascii_lowercase();
    name.parse::<std::net::IpAddr>().is_ok()
        || name == "localhost"
        || name.ends_with(".localhost")
        || allowed.contains(&name)
}

/// A header of `req` as text (none when absent or not visible ASCII).
fn header_text(req: &axum::extract::Request, name: header::HeaderName) -> Option<&str> {
    req.headers().get(name).and_then(|v| v.to_str().ok())
}

/// The host `req` is for: its target's authority when it is in absolute
/// form (RFC 9112), else its `Host`.
fn request_host(req: &axum::extract::Request) -> Option<&str> {
    req.uri()
        .authority()
        .map(|a| a.as_str())
        .or_else(|| header_text(req, header::HOST))
}

/// The host a proxy says the browser asked for (`X-Forwarded-Host`).
fn forwarded_host(req: &axum::extract::Request) -> Option<&str> {
    header_text(req, header::HeaderName::from_static("x-forwarded-host"))
}

/// Whether `req` may change something (not GET, HEAD or OPTIONS).
pub(crate) fn is_change(req: &axum::extract::Request) -> bool {
    use axum::http::Method;
    !matches!(*req.method(), Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether a request comes from a page of the site it is sent to, or from
/// no page at all: browsers send `Origin` with every cross-site request that
/// changes something; other clients send none. Same site: the origin's
/// host is the request's, or the `X-Forwarded-Host` a proxy set.
pub(crate) fn from_own_origin(req: &axum::extract::Request) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let origin_host = origin
        .to_str()
        .ok()
        .and_then(|o| o.split_once("://"))
        .map(|(_, h)| h);
    origin_host.is_some_and(|o| Some(o) == request_host(req) || Some(o) == forwarded_host(req))
}

/// What every `/api/v1` request passes before its route:
/// - its `Host` must be an IP address, localhost or an allowed name
///   (`--console-allowed-hosts`): a page of another site that rebinds its
///   own name to the broker's address names its own host;
/// - a change (POST, PUT, PATCH, DELETE) must come from the console's own
///   origin (the `Origin` a browser sends names the host the request is
///   for, or the `X-Forwarded-Host` a proxy set) and declare its body JSON:
///   a cross-site page can send text/plain without the browser asking.
///
/// With authentication off nothing else would stop such a page from reading
/// messages or creating topics. Errors axum answers itself (405, 413) come
/// out as `{"error": ...}` like the routes' own.
pub async fn guard(
    axum::extract::State(broker): axum::extract::State<Arc<Broker>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    use axum::http::Method;
    if !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    // Behind a proxy the name the browser used is the forwarded one: it must
    // be allowed too, or a page rebinding its own name to the proxy passes.
    let (host, forwarded) = (request_host(&req), forwarded_host(&req));
    let allowed = &broker.config.console_allowed_hosts;
    let refused_host = match (host, forwarded) {
        (None, _) => Some(""),
        (Some(h), _) if !host_allowed(h, allowed) => Some(h),
        (_, Some(f)) if !host_allowed(f, allowed) => Some(f),
        _ => None,
    };
    if let Some(named) = refused_host {
        return refused(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            format!(
                "the console's API answers only requests for an IP address, localhost or a name of --console-allowed-hosts; this one is for {named:?}"
            ),
        );
    }
    if is_change(&req) {
        if !from_own_origin(&req) {
            return refused(
                StatusCode::FORBIDDEN,
                "PERMISSION_DENIED",
                format!(
                    "a change from another site's page (Origin {:?}) is refused: the console's API takes changes from its own page and from clients that send no Origin",
                    header_text(&req, header::ORIGIN).unwrap_or("")
                ),
            );
        }
        let json = header_text(&req, header::CONTENT_TYPE).is_some_and(|v| {
            v.trim_start()
                .to_ascii_lowercase()
                .starts_with("application/json")
        });
        if !json && req.method() != Method::DELETE {
            return refused(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "INVALID_ARGUMENT",
                "send the body as JSON, with \"Content-Type: application/json\"".to_string(),
            );
        }
    }
    let resp = next.run(req).await;
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if resp.status().is_success() || is_json {
        return resp;
    }
    // axum's own answer (a wrong method, a body too large): its text as
    // the message of a JSON error.
    let status = resp.status();
    let body = axum::body::to_bytes(resp.into_body(), 64 << 10)
        .await
        .unwrap_or_default();
    let code = match status {
        StatusCode::PAYLOAD_TOO_LARGE => "RESOURCE_EXHAUSTED",
        StatusCode::METHOD_NOT_ALLOWED => "UNIMPLEMENTED",
        _ => "INVALID_ARGUMENT",
    };
    let mut message = String::from_utf8_lossy(&body).trim().to_string();
    if message.is_empty() {
        message = status.canonical_reason().unwrap_or("refused").to_string();
    }
    refused(status, code, message)
}

/// 404 for an `/api/v1` path no route serves.
pub async fn no_such_route(uri: axum::http::Uri) -> Failure {
    Failure {
        status: StatusCode::NOT_FOUND,
        code: "NOT_FOUND",
        reason: Reason::InvalidRequest.as_str().to_string(),
        message: format!("no API route {}: docs/console.md lists them", uri.path()),
        metadata: BTreeMap::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_answers_addresses_localhost_and_allowed_names_only() {
        let allowed = vec!["brook.internal".to_string()];
        for host in [
            "127.0.0.1:9293",
            "10.1.2.3",
            "[::1]:9293",
            "localhost:9293",
            "LOCALHOST",
            "console.localhost:80",
            "brook.internal:9293",
            "Brook.Internal",
        ] {
            assert!(host_allowed(host, &allowed), "{host}");
        }
        assert!(host_allowed("localhost.:9293", &allowed), "a trailing dot");
        for host in [
            "evil.example:9293",
            "brook.internal.evil.example",
            "",
            "[::1",
            "[::1]evil.example",
        ] {
            assert!(!host_allowed(host, &allowed), "{host}");
        }
    }
}
