//! journald's JSON export parser (`journalctl -o json`/`json-seq` lines): an envelope or a
//! reason, never a panic; whatever it opens, the text inside reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opsdash::ingest::fields::LineContext;
use opsdash::ingest::{envelope, journald, Format};

fuzz_target!(|data: &[u8]| {
    let line = String::from_utf8_lossy(data);
    let _ = journald::looks_like(&line);
    if let Ok(env) = journald::open(&line) {
        let ctx = LineContext {
            service: "fuzz",
            now: chrono::Utc::now(),
            level: None,
            zone: &opsdash::ingest::timestamp::UTC,
        };
        let _ = envelope::read(Format::Journald, env, &ctx);
    }
});
