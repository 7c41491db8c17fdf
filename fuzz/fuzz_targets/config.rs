//! The config parser (`wsvisor::config`, the daemon's own) on arbitrary
//! text: a `Config` or a `file:line:col: message` error pointing inside
//! the text, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use wsvisor::config;

fuzz_target!(|text: &str| {
    // The parser reads the files a config names: token_file whole, with
    // no size limit (src/config/files.rs), and ca_file. A path such as
    // /dev/zero would never end and would eat memory without bound; that
    // is a property of those reads, not of parsing, so keep the fuzzer off
    // devices and kernel files rather than let it stumble on them.
    if ["/dev", "/proc", "/sys"].iter().any(|p| text.contains(p)) {
        return;
    }
    match config::parse(Path::new("fuzz.toml"), text) {
        Ok(config) => {
            for session in &config.sessions {
                assert!(!session.name.is_empty());
            }
        }
        Err(err) => {
            let shown = err.to_string();
            assert!(shown.starts_with("fuzz.toml:"), "{shown}");
            let lines = text.split('\n').count().max(1);
            assert!(
                err.line >= 1 && err.line <= lines,
                "line {} of {lines}: {shown}",
                err.line
            );
            assert!(err.col >= 1, "{shown}");
        }
    }
});
