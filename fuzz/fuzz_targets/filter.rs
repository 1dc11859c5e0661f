//! The Logs filter language: accepted (and compiled to SQL) or refused with a column inside
//! the input, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sqlx::{Postgres, QueryBuilder};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match opsdash::filter::parse(text) {
        Ok(f) => {
            let mut qb = QueryBuilder::<Postgres>::new("SELECT 1 FROM opsdash.log_event");
            f.push_where(&mut qb);
            let _ = f.since();
            let _ = f.message_terms();
        }
        Err(e) => assert!(e.pos <= text.chars().count(), "{text:?}: {e}"),
    }
});
