//! The bearer token a client presents: `authorization: Bearer <token>` on
//! every request, unary and streaming, through one tonic interceptor; the
//! same interceptor puts the caller's trace context in the metadata.

use tonic::metadata::AsciiMetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::error::{Error, Result};

/// Adds the `authorization` header when a token is set.
#[derive(Clone, Default)]
pub(crate) struct Auth {
    header: Option<AsciiMetadataValue>,
}

/// Never prints the token.
impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.header.as_ref().map(|_| "Bearer <redacted>");
        f.debug_struct("Auth").field("header", &shown).finish()
    }
}

/// A token held by a builder: its `Debug` form never shows it.
#[derive(Clone)]
pub(crate) struct Token(pub(crate) String);

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

impl Auth {
    /// The header for `token`; a token that cannot travel in a header
    /// (control characters, non-ASCII) is refused before connecting.
    pub(crate) fn bearer(token: Option<&str>, url: &str) -> Result<Auth> {
        let header = token
            .map(|t| {
                let mut v: AsciiMetadataValue =
                    format!("Bearer {}", t.trim()).parse().map_err(|_| Error::Connect {
                        url: url.to_string(),
                        reason: "the token contains characters a header cannot carry (printable ASCII only)"
                            .into(),
                    })?;
                // HTTP/2 must not put it in its header compression table.
                v.set_sensitive(true);
                Ok::<_, Error>(v)
            })
            .transpose()?;
        Ok(Auth { header })
    }
}

impl tonic::service::Interceptor for Auth {
    fn call(
        &mut self,
        mut req: tonic::Request<()>,
    ) -> std::result::Result<tonic::Request<()>, tonic::Status> {
        if let Some(h) = &self.header {
            req.metadata_mut().insert("authorization", h.clone());
        }
        // The call continues the caller's trace (broker spans: docs/tracing.md).
        if let Some(cx) = crate::trace_context::current() {
            for (name, value) in crate::trace_context::headers_of(&cx) {
                if let Ok(v) = value.parse() {
                    req.metadata_mut().insert(name, v);
                }
            }
        }
        Ok(req)
    }
}

/// What every generated client of one [`crate::Client`] sends through.
pub(crate) type Transport = InterceptedService<Channel, Auth>;

#[cfg(test)]
mod tests {
    use tonic::service::Interceptor;

    use super::*;

    #[test]
    fn a_token_travels_as_a_bearer_header_and_none_adds_nothing() {
        let mut auth = Auth::bearer(Some(" s3cret "), "http://b:1").unwrap();
        let req = auth.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            req.metadata().get("authorization").unwrap(),
            "Bearer s3cret"
        );
        let mut none = Auth::bearer(None, "http://b:1").unwrap();
        let req = none.call(tonic::Request::new(())).unwrap();
        assert!(req.metadata().get("authorization").is_none());
        let e = Auth::bearer(Some("line\nbreak"), "http://b:1").unwrap_err();
        assert!(e.to_string().contains("printable ASCII"), "{e}");
    }
}
