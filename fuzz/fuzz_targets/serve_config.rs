//! The `brook serve` config file (`--config`, broker/src/config.rs): TOML
//! into `ServeArgs`, then `ServeArgs::resolve` (defaults, ranges, the
//! consistency checks).
//!
//! `resolve` reads the file with `read_file`, which is
//! `toml::from_str::<ServeArgs>` on its text; the target does the same
//! itself, so that it can drop the TLS file paths before resolving: those
//! name files that `resolve` reads whole, and an input naming /dev/zero
//! would only measure the machine's memory.
#![no_main]

use brook_broker::config::ServeArgs;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut args) = toml::from_str::<ServeArgs>(text) else {
        return;
    };
    args.config = None;
    args.tls_cert = None;
    args.tls_key = None;
    args.tls_client_ca = None;
    if let Ok(config) = args.resolve() {
        if let Err(e) = config.topic_defaults.validate() {
            panic!(
                "resolve accepted invalid topic defaults {:?}: {e}",
                config.topic_defaults
            );
        }
    }
});
