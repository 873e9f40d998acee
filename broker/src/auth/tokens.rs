//! The tokens file: which bearer token belongs to which principal.
//!
//! ```toml
//! # made by `brook token create alice --tokens-file tokens.toml`
//! [[tokens]]
//! principal = "alice"
//! sha256 = "3a1f…"   # SHA-256 of the token, hex
//! ```
//!
//! It may also set byte rates per principal, over the broker's
//! `--quota-*-bytes-per-sec` defaults:
//!
//! ```toml
//! [quotas.billing]
//! fetch_bytes_per_sec = 10485760
//! ```
//!
//! Only hashes are stored: a copy of the file does not let anyone call the
//! broker. Tokens are 256 random bits, so a plain SHA-256 is enough (a slow
//! password hash protects guessable secrets, which these are not), and a
//! lookup by hash compares no secret byte by byte.

use std::collections::HashMap;
use std::path::Path;

use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::quota::Rates;

/// What every generated token starts with, so that secret scanners and
/// people recognise one.
pub const TOKEN_PREFIX: &str = "brook_";

/// Longest principal name.
pub const MAX_PRINCIPAL: usize = 256;

/// The principals of the tokens file, by token hash.
#[derive(Debug, Default, Clone)]
pub struct Tokens {
    by_hash: HashMap<[u8; 32], String>,
    quotas: HashMap<String, Rates>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(default)]
    tokens: Vec<Entry>,
    /// Byte rates of principals that differ from the broker's defaults.
    #[serde(default)]
    quotas: HashMap<String, Rates>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    principal: String,
    sha256: String,
}

impl Tokens {
    /// Parses a tokens file's text; the error names the entry that is wrong.
    pub fn parse(text: &str) -> Result<Tokens, String> {
        let file: File = toml::from_str(text).map_err(|e| e.to_string())?;
        let mut by_hash = HashMap::new();
        for (i, e) in file.tokens.into_iter().enumerate() {
            let n = i + 1;
            check_principal(&e.principal).map_err(|why| format!("token {n}: {why}"))?;
            let hash = parse_hash(&e.sha256).ok_or_else(|| {
                format!("token {n} ({}): sha256 must be 64 hex digits", e.principal)
            })?;
            if let Some(other) = by_hash.insert(hash, e.principal.clone()) {
                return Err(format!(
                    "token {n} ({}): the same token is already given to {other:?}",
                    e.principal
                ));
            }
        }
        for (principal, rates) in &file.quotas {
            check_principal(principal).map_err(|why| format!("quotas: {why}"))?;
            rates
                .check()
                .map_err(|why| format!("quotas.{principal}: {why}"))?;
        }
        Ok(Tokens {
            by_hash,
            quotas: file.quotas,
        })
    }

    /// The byte rates the file sets for `principal`, if any.
    pub fn quotas(&self, principal: &str) -> Option<Rates> {
        self.quotas.get(principal).copied()
    }

    /// Whether the file sets rates for some principal.
    pub fn has_quotas(&self) -> bool {
        !self.quotas.is_empty()
    }

    /// Reads and parses the tokens file at `path`.
    pub fn load(path: &Path) -> Result<Tokens, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("reading tokens file {}: {e}", path.display()))?;
        Tokens::parse(&text).map_err(|e| format!("tokens file {}: {e}", path.display()))
    }

    /// The principal `token` belongs to, if any.
    pub fn principal(&self, token: &str) -> Option<&str> {
        self.principal_of_hash(&hash(token))
    }

    /// The principal of the token whose hash is `hash`, if any.
    pub fn principal_of_hash(&self, hash: &[u8; 32]) -> Option<&str> {
        self.by_hash.get(hash).map(String::as_str)
    }

    /// How many tokens the file holds.
    pub fn len(&self) -> usize {
        self.by_hash.len()
    }

    /// Whether the file holds no token.
    pub fn is_empty(&self) -> bool {
        self.by_hash.is_empty()
    }
}

/// A principal name: 1 to 256 printable characters, no control characters.
pub fn check_principal(name: &str) -> Result<(), String> {
    if name == "*" {
        return Err("\"*\" means every principal in ACLs: it cannot be one".into());
    }
    if name.is_empty() || name.len() > MAX_PRINCIPAL {
        return Err(format!(
            "principal {name:?} must be 1 to {MAX_PRINCIPAL} bytes long"
        ));
    }
    if name.chars().any(char::is_control) {
        return Err(format!("principal {name:?} contains control characters"));
    }
    Ok(())
}

/// SHA-256 of a token.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

fn parse_hash(text: &str) -> Option<[u8; 32]> {
    let mut out = [0u8; 32];
    hex::decode_to_slice(text, &mut out).ok()?;
    Some(out)
}

/// A new token: the prefix and 256 bits from the operating system's
/// random source, in hex.
pub fn generate() -> Result<String, String> {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).map_err(|e| format!("no random source: {e}"))?;
    Ok(format!("{TOKEN_PREFIX}{}", hex::encode(bytes)))
}

/// The tokens-file entry for `token` given to `principal`.
pub fn entry(principal: &str, token: &str) -> String {
    let name = toml::Value::String(principal.to_string());
    format!(
        "[[tokens]]\nprincipal = {name}\nsha256 = \"{}\"\n",
        hex::encode(hash(token))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_made_for_a_token_lets_that_token_in_and_no_other() {
        let token = generate().unwrap();
        assert!(token.starts_with(TOKEN_PREFIX) && token.len() == TOKEN_PREFIX.len() + 64);
        let text = format!("# ops\n{}\n{}", entry("alice", &token), entry("b\"ob", "x"));
        let tokens = Tokens::parse(&text).unwrap();
        assert_eq!(tokens.principal(&token), Some("alice"));
        assert_eq!(tokens.principal("x"), Some("b\"ob"));
        assert_eq!(tokens.principal(&generate().unwrap()), None);
        assert_eq!(tokens.len(), 2);
    }

    #[test]
    fn bad_files_are_refused_with_the_entry_named() {
        for (text, says) in [
            (
                "[[tokens]]\nprincipal = \"a\"\nsha256 = \"zz\"\n",
                "token 1 (a): sha256",
            ),
            ("[[tokens]]\nprincipal = \"\"\nsha256 = \"\"\n", "token 1"),
            ("[[tokens]]\nprincipal = \"a\"\n", "sha256"),
            ("[[tokens]]\nwho = \"a\"\n", "who"),
            ("tokens = 3", "invalid type"),
        ] {
            let e = Tokens::parse(text).unwrap_err();
            assert!(e.contains(says), "{text:?}: {e}");
        }
        let twice = format!("{}{}", entry("a", "t"), entry("b", "t"));
        assert!(Tokens::parse(&twice).unwrap_err().contains("already given"));
        assert!(Tokens::parse("").unwrap().is_empty());
        let q = Tokens::parse("[quotas.alice]\nproduce_bytes_per_sec = 5\n").unwrap();
        assert_eq!(q.quotas("alice").unwrap().produce_bytes_per_sec, Some(5));
        assert!(q.quotas("bob").is_none());
        assert!(Tokens::parse("[quotas.alice]\nspeed = 5\n").is_err());
    }
}
