//! Syslog header parser (RFC 3164 and RFC 5424, with or without <PRI>): an envelope or a
//! reason, never a panic; the text inside is a tail of the line.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opsdash::ingest::syslog::{self, Clock};

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let _ = syslog::looks_like(line);
    if let Ok(env) = syslog::open(line, &Clock::utc()) {
        assert!(line.ends_with(env.text.as_ref()));
    }
});
