//! SASL PLAIN over the Kafka listener (SaslHandshake v1, then
//! SaslAuthenticate): the password is one of the broker's tokens (the
//! tokens file, `brook token create`) and the user name its principal, so
//! a Kafka client is the same principal, under the same ACLs and quotas,
//! as a gRPC client with that token. With `--auth required`, a connection
//! may send nothing but ApiVersions and the SASL exchange until it has
//! authenticated.

use kafka_protocol::ResponseError;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

use super::connection::Session;
use crate::auth::Caller;

/// The one mechanism offered.
const PLAIN: &str = "PLAIN";

pub(super) fn handshake(
    s: &mut Session,
    req: SaslHandshakeRequest,
    version: i16,
) -> SaslHandshakeResponse {
    let resp =
        SaslHandshakeResponse::default().with_mechanisms(vec![StrBytes::from_static_str(PLAIN)]);
    if req.mechanism.as_str() != PLAIN {
        return resp.with_error_code(ResponseError::UnsupportedSaslMechanism.code());
    }
    s.sasl_started = true;
    // After v0 the client sends the PLAIN message as a bare frame.
    s.raw_sasl_next = version == 0;
    resp
}

/// The bare PLAIN frame that follows a v0 handshake: an empty frame
/// answers success; a failure closes the connection (there is no error
/// field to carry it).
pub(super) fn authenticate_raw(s: &mut Session, frame: bytes::Bytes) -> Result<(), String> {
    s.raw_sasl_next = false;
    let resp = authenticate(s, SaslAuthenticateRequest::default().with_auth_bytes(frame));
    match resp.error_code {
        0 => Ok(()),
        _ => Err(resp.error_message.map_or_else(
            || "SASL authentication failed".to_string(),
            |m| m.to_string(),
        )),
    }
}

pub(super) fn authenticate(
    s: &mut Session,
    req: SaslAuthenticateRequest,
) -> SaslAuthenticateResponse {
    let fail = |code: ResponseError, message: &str| {
        SaslAuthenticateResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(StrBytes::from_string(message.to_string())))
    };
    if !s.sasl_started {
        return fail(
            ResponseError::IllegalSaslState,
            "SaslHandshake (PLAIN) must come first",
        );
    }
    // PLAIN (RFC 4616): [authzid] NUL authcid NUL passwd.
    let parts: Vec<&[u8]> = req.auth_bytes.split(|b| *b == 0).collect();
    let [authzid, user, password] = parts.as_slice() else {
        return fail(
            ResponseError::SaslAuthenticationFailed,
            "malformed PLAIN message",
        );
    };
    let (Ok(authzid), Ok(user), Ok(password)) = (
        std::str::from_utf8(authzid),
        std::str::from_utf8(user),
        std::str::from_utf8(password),
    ) else {
        return fail(
            ResponseError::SaslAuthenticationFailed,
            "PLAIN fields must be UTF-8",
        );
    };
    let Some(principal) = s.broker.auth.principal_of_token(password) else {
        return fail(
            ResponseError::SaslAuthenticationFailed,
            "unknown token: the password must be a token from the broker's tokens file",
        );
    };
    if user != principal || !(authzid.is_empty() || authzid == principal) {
        return fail(
            ResponseError::SaslAuthenticationFailed,
            "the user name must be the token's principal",
        );
    }
    tracing::debug!(peer = %s.peer, principal = %principal, "Kafka client authenticated");
    s.caller = Caller {
        principal: Some(principal.into()),
        token: Some(crate::auth::tokens::hash(password)),
    };
    s.sasl_started = false;
    SaslAuthenticateResponse::default().with_error_message(None)
}
