//! PostgreSQL server-log reader (stderr with any usual log_line_prefix, csvlog, jsonlog) and
//! the SQL normalizer behind query fingerprints: records or a reason, never a panic; a query
//! row's text is never longer than the statement it came from allows (no runaway output).
#![no_main]

use libfuzzer_sys::fuzz_target;
use opsdash::ingest::fields::LineContext;
use opsdash::ingest::pglog;

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
    if let Ok(p) = pglog::parse(line, &ctx) {
        if let Some(q) = p.query {
            // Each literal becomes `$n`: at most a few bytes more than the literal it replaces.
            assert!(q.query.len() <= line.len() * 4 + 16);
        }
    }
    let _ = pglog::from_csv(line, &ctx);
    let _ = pglog::query_fingerprint(&pglog::normalize(line));
});
