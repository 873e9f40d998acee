//! What this binary is: its version and the commit it was built from.

/// The `brook` package's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The git commit the binary was built from (12 hex digits), or "unknown"
/// (see `broker/build.rs`).
pub const COMMIT: &str = env!("BROOK_COMMIT");
