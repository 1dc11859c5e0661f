//! The words of a log message as the word search indexes them: runs of ASCII letters and
//! digits, lower-cased, each stored as a 32-bit hash in `log_event.search_tokens` (GIN-indexed,
//! migration 0027). The writer computes them at ingest, the filter computes the searched text's
//! the same way, and `opsdash.search_tokens(text)` in SQL (for rows written by anything else)
//! gives the same numbers: the test `tests/logs_filter.rs` compares the two.
//!
//! Why hashes of ASCII runs: PostgreSQL's `to_tsvector` per row and a GIN over its text
//! lexemes cost ten times the row itself at ingest; 4-byte keys computed here cost a third of
//! that. Only ASCII letters and digits make a token, so upper and lower case fold the same way
//! in Rust and in SQL whatever the database's locale; any other character separates tokens.
//! A hash only narrows the candidates: the search still checks each row's text with `ILIKE`,
//! so a collision or a non-ASCII letter never changes what matches, only how fast.

use sha2::{Digest, Sha256};

/// The hash of one token (already lower-cased): the first 4 bytes of its SHA-256, big-endian,
/// as SQL reads them (`('x' || left(encode(sha256(..), 'hex'), 8))::bit(32)::int4`).
fn hash(token: &[u8]) -> i32 {
    let d = Sha256::digest(token);
    i32::from_be_bytes([d[0], d[1], d[2], d[3]])
}

/// The tokens of `text` as lower-cased byte runs, in order of appearance (repeats kept).
fn runs(text: &str) -> impl Iterator<Item = &[u8]> {
    text.as_bytes()
        .split(|b| !b.is_ascii_alphanumeric())
        .filter(|t| !t.is_empty())
}

/// Sorted, distinct token hashes of `text` (empty when it has no ASCII letter or digit).
pub fn search_tokens(text: &str) -> Vec<i32> {
    let mut lower = [0u8; 64];
    let mut out: Vec<i32> = runs(text)
        .map(|t| {
            if t.len() <= lower.len() {
                let l = &mut lower[..t.len()];
                l.copy_from_slice(t);
                l.make_ascii_lowercase();
                hash(l)
            } else {
                hash(&t.to_ascii_lowercase())
            }
        })
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Writes `tokens` as a PostgreSQL array literal (`{1,-2,3}`), COPY text format needing no
/// escaping.
pub fn write_array(out: &mut Vec<u8>, tokens: &[i32]) {
    use std::io::Write;
    out.push(b'{');
    for (i, t) in tokens.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        // Writing to a Vec cannot fail.
        let _ = write!(out, "{t}");
    }
    out.push(b'}');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_ascii_runs_folded_to_lower_case() {
        assert_eq!(
            search_tokens("GET /api/Users/42"),
            search_tokens("users 42 api get get")
        );
        assert_eq!(
            search_tokens("db.pool_size=7"),
            search_tokens("7 size pool db")
        );
        // Non-ASCII letters separate tokens: `café` is the token `caf`.
        assert_eq!(search_tokens("café"), search_tokens("caf"));
        assert!(search_tokens("ошибка — !").is_empty());
        assert_ne!(search_tokens("order"), search_tokens("orders"));
        let long = "x".repeat(200);
        assert_eq!(search_tokens(&long), search_tokens(&long.to_uppercase()));
    }

    #[test]
    fn the_hash_is_the_first_four_bytes_of_sha256() {
        // `printf a | sha256sum` starts with ca978112.
        assert_eq!(hash(b"a"), 0xca978112_u32 as i32);
        let mut out = Vec::new();
        write_array(&mut out, &[-5, 7]);
        assert_eq!(out, b"{-5,7}");
        out.clear();
        write_array(&mut out, &[]);
        assert_eq!(out, b"{}");
    }
}
