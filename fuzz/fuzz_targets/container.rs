//! Container log parsers: Docker json-file and CRI lines and log file paths: an envelope or a
//! reason, never a panic (joining split lines is the multiline target's).
#![no_main]

use libfuzzer_sys::fuzz_target;
use opsdash::ingest::container;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = container::looks_like_docker(&text);
    let _ = container::looks_like_cri(&text);
    let _ = container::open_docker(&text);
    let _ = container::open_cri(&text);
    let _ = container::path_meta(std::path::Path::new(text.as_ref()));
});
