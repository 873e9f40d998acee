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
//! Unary and server-streaming calls fail before their handler, trailers
//! only: [`correct_response`] rewrites those headers on the way out. A
//! client stream's later messages fail inside its handler, which passes the
//! status through [`correct`].

use http::HeaderValue;
use tonic::Code;

const TOO_LARGE: &str = "decoded message length too large";
const UNDECODABLE: &str = "failed to decode Protobuf message";

/// Whether `status` is tonic's answer to a request over the size limit.
pub fn is_too_large(status: &tonic::Status) -> bool {
    status.code() == Code::OutOfRange && status.message().contains(TOO_LARGE)
}

/// The corrected status, for statuses met inside a stream handler.
pub fn correct(status: tonic::Status) -> tonic::Status {
    if is_too_large(&status) {
        tonic::Status::resource_exhausted(status.message().to_string())
    } else if status.code() == Code::Internal && status.message().contains(UNDECODABLE) {
        tonic::Status::invalid_argument(status.message().to_string())
    } else {
        status
    }
}

/// Rewrites a trailers-only answer of tonic's own: OUT_OF_RANGE "too large"
/// to RESOURCE_EXHAUSTED, INTERNAL "failed to decode" to INVALID_ARGUMENT.
pub fn correct_response<B>(mut resp: http::Response<B>) -> http::Response<B> {
    let headers = resp.headers_mut();
    let Some(code) = headers.get("grpc-status").map(|v| v.as_bytes().to_vec()) else {
        return resp;
    };
    let says = |text: &str| {
        headers
            .get("grpc-message")
            .and_then(|m| m.to_str().ok())
            .is_some_and(|m| m.replace("%20", " ").contains(text))
    };
    let corrected = match code.as_slice() {
        b"11" if says(TOO_LARGE) => Some("8"),
        b"13" if says(UNDECODABLE) => Some("3"),
        _ => None,
    };
    if let Some(code) = corrected {
        headers.insert("grpc-status", HeaderValue::from_static(code));
    }
    resp
}

#[cfg(test)]
mod tests {
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
        assert_eq!(code(&correct_response(bad)), b"3");
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
