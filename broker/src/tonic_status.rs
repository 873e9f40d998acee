//! The statuses tonic answers with by itself, before a handler runs,
//! corrected to what the gRPC status-code guide names for them:
//!
//! - a message larger than the receiver accepts: RESOURCE_EXHAUSTED (tonic
//!   0.14 says OUT_OF_RANGE, "decoded message length too large", which Brook
//!   reserves for offsets outside a log), so clients can tell "shrink your
//!   request" from "seek elsewhere";
//! - a message that does not decode (bad protobuf, a string field that is
//!   not UTF-8): INVALID_ARGUMENT, the caller's fault (tonic says INTERNAL,
//!   "failed to decode Protobuf message", which tells a client the broker
//!   broke).
//!
//! Both get the `ErrorInfo` detail every Brook error carries
//! (`REQUEST_TOO_LARGE`, `MALFORMED_REQUEST`).
//!
//! Unary and server-streaming calls fail before their handler, trailers
//! only: [`correct_response`] rewrites those headers on the way out. A
//! client stream's later messages fail inside its handler, which passes the
//! status through [`correct`].

use tonic::Code;

use crate::error::{ApiError, Reason};

const TOO_LARGE: &str = "decoded message length too large";
const UNDECODABLE: &str = "failed to decode Protobuf message";

/// The corrected status, for statuses met inside a stream handler.
pub fn correct(status: tonic::Status) -> tonic::Status {
    match reason_for(status.code(), status.message()) {
        Some(reason) => ApiError::new(reason, status.message()).into(),
        None => status,
    }
}

/// The reason of a status tonic made by itself, if `code` and `message` are one.
fn reason_for(code: Code, message: &str) -> Option<Reason> {
    match code {
        Code::OutOfRange if message.contains(TOO_LARGE) => Some(Reason::RequestTooLarge),
        Code::Internal if message.contains(UNDECODABLE) => Some(Reason::MalformedRequest),
        _ => None,
    }
}

/// Rewrites a trailers-only answer of tonic's own: OUT_OF_RANGE "too large"
/// to RESOURCE_EXHAUSTED, INTERNAL "failed to decode" to INVALID_ARGUMENT.
pub fn correct_response<B>(mut resp: http::Response<B>) -> http::Response<B> {
    let headers = resp.headers_mut();
    // Brook's own statuses carry their details already: only tonic's are read.
    if !headers.contains_key("grpc-status") || headers.contains_key("grpc-status-details-bin") {
        return resp;
    }
    let Some(status) = tonic::Status::from_header_map(headers) else {
        return resp;
    };
    let Some(reason) = reason_for(status.code(), status.message()) else {
        return resp;
    };
    let corrected: tonic::Status = ApiError::new(reason, status.message()).into();
    for (name, value) in corrected.into_http::<()>().headers() {
        if name.as_str().starts_with("grpc-") {
            headers.insert(name.clone(), value.clone());
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use http::HeaderValue;
    use tonic_types::StatusExt;

    use super::*;

    fn answer(code: &'static str, message: &'static str) -> http::Response<()> {
        let mut r = http::Response::new(());
        r.headers_mut()
            .insert("grpc-status", HeaderValue::from_static(code));
        r.headers_mut()
            .insert("grpc-message", HeaderValue::from_static(message));
        r
    }

    fn code(r: &http::Response<()>) -> &[u8] {
        r.headers()["grpc-status"].as_bytes()
    }

    #[test]
    fn tonics_own_answers_get_the_guides_codes_and_others_stay() {
        let too_large = answer("11", "decoded%20message%20length%20too%20large");
        assert_eq!(code(&correct_response(too_large)), b"8");
        let bad = answer(
            "13",
            "failed%20to%20decode%20Protobuf%20message:%20invalid%20varint",
        );
        let bad = correct_response(bad);
        assert_eq!(code(&bad), b"3");
        let status = tonic::Status::from_header_map(bad.headers()).unwrap();
        assert_eq!(
            status.get_details_error_info().unwrap().reason,
            "MALFORMED_REQUEST"
        );
        let ours = answer("13", "disk%20on%20fire");
        assert_eq!(code(&correct_response(ours)), b"13");
        let offset = answer("11", "offset%2099%20is%20past%20the%20end");
        assert_eq!(code(&correct_response(offset)), b"11");

        let inside =
            tonic::Status::internal("failed to decode Protobuf message: invalid wire type");
        assert_eq!(correct(inside).code(), Code::InvalidArgument);
        assert_eq!(
            correct(tonic::Status::internal("other")).code(),
            Code::Internal
        );
    }
}
