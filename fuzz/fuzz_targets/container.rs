//! Container log parsers: Docker json-file and CRI lines, log file paths, and the joining of
//! split lines: an envelope or a reason, never a panic; joined pieces keep every byte.
#![no_main]

use libfuzzer_sys::fuzz_target;
use opsdash::ingest::container::{self, Partials};
use opsdash::ingest::envelope::Envelope;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = container::looks_like_docker(&text);
    let _ = container::looks_like_cri(&text);
    let _ = container::open_docker(&text);
    let _ = container::open_cri(&text);
    let _ = container::path_meta(std::path::Path::new(text.as_ref()));
    // Every line of the input as a piece (odd lines partial): the joined output holds them all.
    let mut partials = Partials::new(64);
    let mut total = 0usize;
    let mut out = 0usize;
    for (i, piece) in text.split('\n').enumerate() {
        total += piece.len();
        let env = Envelope {
            text: piece.into(),
            partial: i % 2 == 0,
            stream: Some(String::new()),
            ..Envelope::default()
        };
        let pushed = partials.push(if i % 3 == 0 { "a" } else { "b" }, env, false, false);
        out += pushed.cut.map_or(0, |j| j.env.text.len());
        out += pushed.done.map_or(0, |j| j.env.text.len());
    }
    out += partials.drain().iter().map(|j| j.env.text.len()).sum::<usize>();
    assert_eq!(out, total);
});
