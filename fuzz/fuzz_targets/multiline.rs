//! Lines through the multi-line joiner, then the joined events' stack signature and audit
//! readers: every line comes back once, in order, and nothing panics.
#![no_main]

use std::sync::Arc;
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use opsdash::config::AuditFields;
use opsdash::ingest::audit::AuditReader;
use opsdash::ingest::envelope::Envelope;
use opsdash::ingest::fingerprint::{exception_type, stack_signature};
use opsdash::ingest::multiline::{Joined, Joiner};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(mut joiner) = Joiner::new(&[], 7, 4096, Duration::from_millis(1)) else {
        return;
    };
    let audit = AuditReader::new(&AuditFields::default());
    let src: Arc<str> = Arc::from("");
    let now = Instant::now();
    let lines: Vec<&str> = text.split('\n').filter(|l| !l.trim().is_empty()).collect();
    let mut out = Vec::new();
    for (n, l) in lines.iter().enumerate() {
        let one = Joined::single(Envelope::bare(l), n as u64 + 1, false, false);
        for ev in joiner.push(&src, "fuzz", one, None, now).into_iter().flatten() {
            out.push(ev.env.text.into_owned());
        }
    }
    out.extend(joiner.drain(now, true).into_iter().map(|e| e.env.text.into_owned()));
    let back: Vec<&str> = out.iter().flat_map(|e| e.split('\n')).collect();
    assert_eq!(back, lines);
    for e in &out {
        let _ = stack_signature(e);
        let _ = exception_type(e);
        let _ = audit.from_sshd(e, "sshd", chrono::Utc::now());
        if audit.may_be_audit(e) {
            let _ = audit.from_json(e, chrono::Utc::now());
        }
    }
});
