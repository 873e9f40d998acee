//! The shape of W3C Trace Context's `traceparent` header, which Brook's
//! broker and client read from record headers and gRPC metadata (the
//! OpenTelemetry SDK parses it; this is the check its parser leaves out).

/// Whether `value` has traceparent's shape: `version-traceid-parentid-flags`
/// in lower-case hex of 2, 32, 16 and 2 digits (a later version may append
/// fields). The SDK's parser takes shorter ids (it reads them as numbers);
/// W3C says a malformed traceparent is ignored.
pub fn traceparent_is_well_formed(value: &str) -> bool {
    let mut parts = value.split('-');
    let shape_ok = [2, 32, 16, 2].iter().all(|&len| {
        parts.next().is_some_and(|p| {
            p.len() == len
                && p.bytes()
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
    });
    shape_ok && (parts.next().is_none() || !value.starts_with("00-"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_w3c_shape_passes() {
        assert!(traceparent_is_well_formed(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(traceparent_is_well_formed(
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-later"
        ));
        for bad in [
            "",
            "00-1-2-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902g7-01",
        ] {
            assert!(!traceparent_is_well_formed(bad), "{bad}");
        }
    }
}
