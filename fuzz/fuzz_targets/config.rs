//! config.toml text: a Config or an error naming file:line:column, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opsdash::config::{Config, ConfigError};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Err(ConfigError::Invalid { line, column, .. }) =
        Config::parse(text, std::path::Path::new("fuzz.toml"))
    {
        assert!(line >= 1 && column >= 1);
        assert!(line <= text.lines().count() + 1);
    }
});
