//! The tokens file (`--tokens-file`, broker/src/auth/tokens.rs
//! `Tokens::parse`): principals and the SHA-256 of their bearer tokens, read
//! at start and on SIGHUP.
//!
//! The file is read with `read_to_string`: only UTF-8 reaches the parser.
#![no_main]

use brook_broker::auth::tokens::Tokens;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(tokens) = Tokens::parse(text) {
        // Lookups hash whatever a caller sends.
        let _ = tokens.principal("");
        let _ = tokens.principal(text);
        assert_eq!(tokens.is_empty(), tokens.len() == 0);
    }
});
