//! The config loader: `config::Config::parse` on any UTF-8 text.
//!
//! It must answer every text with a config or a list of errors, never a
//! panic or a hang. Secrets written `env:NAME` and `file:PATH` are resolved
//! as they would be at start, so the loader itself has to refuse what could
//! block or never end (a FIFO, `/dev/zero`) and read only a bounded amount.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use sessiongate::config::Config;

fuzz_target!(|text: &str| {
    match Config::parse(Path::new("fuzz.toml"), text) {
        Ok(config) => {
            assert!(!config.routes.is_empty());
            let _ = config.summary();
        }
        Err(errors) => {
            assert!(!errors.0.is_empty());
            let _ = errors.to_string();
            for e in &errors.0 {
                assert!(e.line >= 1 && e.col >= 1, "{e:?}");
            }
        }
    }
});
