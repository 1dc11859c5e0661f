//! Custom access-log layouts: the first input line is an nginx `log_format` or an Apache
//! `LogFormat` (a compile error is a reason, never a panic), the rest are lines read with it.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opsdash::ingest::fields::LineContext;
use opsdash::ingest::layout::Layout;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut lines = text.split('\n');
    let spec = lines.next().unwrap_or_default();
    let layouts = [Layout::nginx(spec), Layout::apache(spec)];
    let ctx = LineContext {
        service: "fuzz",
        now: chrono::Utc::now(),
        level: None,
        zone: &opsdash::ingest::timestamp::UTC,
    };
    for line in lines {
        for layout in layouts.iter().flatten() {
            if let Ok(p) = layout.read(line, &ctx) {
                assert!(p.request.is_some(), "a line a layout reads is a request");
            }
        }
    }
});
