//! Oversized requests answer RESOURCE_EXHAUSTED.
//!
//! The gRPC status-code guide names RESOURCE_EXHAUSTED for a message larger
//! than the receiver accepts; tonic 0.14 rejects one with OUT_OF_RANGE
//! ("decoded message length too large"), which Brook reserves for offsets
//! outside a log. This rewrites that one status on the way out, so clients
//! can tell "shrink your request" from "seek elsewhere".

use http::HeaderValue;
use tonic::Code;

const TOO_LARGE: &str = "decoded message length too large";

/// Whether `status` is tonic's answer to a request over the size limit.
pub fn is_too_large(status: &tonic::Status) -> bool {
    status.code() == Code::OutOfRange && status.message().contains(TOO_LARGE)
}

/// The corrected status for [`is_too_large`] statuses met inside a stream handler.
pub fn correct(status: tonic::Status) -> tonic::Status {
    if is_too_large(&status) {
        tonic::Status::resource_exhausted(status.message().to_string())
    } else {
        status
    }
}

/// Rewrites a trailers-only OUT_OF_RANGE "too large" response to RESOURCE_EXHAUSTED.
pub fn correct_response<B>(mut resp: http::Response<B>) -> http::Response<B> {
    let headers = resp.headers_mut();
    let out_of_range = headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes() == b"11");
    let too_large = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .is_some_and(|m| m.replace("%20", " ").contains(TOO_LARGE));
    if out_of_range && too_large {
        headers.insert("grpc-status", HeaderValue::from_static("8"));
    }
    resp
}
