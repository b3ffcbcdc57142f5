//! Any bytes given to the config parsers produce a config or a located error, never a panic,
//! a hang or unbounded memory (serde-saphyr's budgets bound aliases and nesting).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        if let Err(e) = throome::config::parse_cluster(text) {
            assert!(e.line >= 1 && e.column >= 1);
        }
        let _ = throome::config::parse_gateway(text);
        let _ = throome::config::types::expand_env(text, |_| Some(String::new()));
    }
});
