//! One input line through every ingest format: records or a reason, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opsdash::ingest::detect::parse_line;
use opsdash::ingest::fields::LineContext;
use opsdash::ingest::Format;

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    let ctx = LineContext {
        service: "fuzz",
        now: chrono::Utc::now(),
        level: None,
        zone: &opsdash::ingest::timestamp::UTC,
    };
    for f in [
        Format::Auto,
        Format::Json,
        Format::Logfmt,
        Format::Nginx,
        Format::Apache,
        Format::Journald,
        Format::Docker,
        Format::Cri,
        Format::Syslog,
    ] {
        let _ = parse_line(f, line, &ctx);
    }
});
