//! Plain-text line reader (a leading timestamp in its many forms, a level word, ids and a
//! logger name): a log row for any line, never a panic; the offsets it finds lie inside the
//! line, and a time-less line keeps the context's time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opsdash::ingest::fields::LineContext;
use opsdash::ingest::text;
use opsdash::ingest::timestamp::{Zone, Zoneless};

fuzz_target!(|data: &[u8]| {
    let Ok(line) = std::str::from_utf8(data) else {
        return;
    };
    // A zone with daylight saving time, so gaps and folds are reached too.
    let zone = Zoneless::new(Zone::parse("Europe/Berlin").unwrap_or_default());
    let ctx = LineContext {
        service: "fuzz",
        now: chrono::Utc::now(),
        level: None,
        zone: &zone,
    };
    let h = text::head(line, &ctx);
    assert!(h.message_at <= line.len() && h.after_ts <= line.len());
    for (s, e) in h.ids.iter().chain(h.logger.iter()) {
        assert!(s <= e && *e <= line.len());
    }
    let p = text::parse(line, &ctx);
    assert!(p.log.is_some() || p.query.is_some());
});
