//! The config's own redaction rules (`[[ingest.redact]]`): regexes built with size limits, so a
//! rule can neither stall ingest nor take unbounded memory.
//!
//! The regex crate runs in time linear in the text for one search (no backtracking), and the
//! limits below bound the compiled program and the lazy DFA's cache. A rule whose program would
//! be larger (`\w{1000}{1000}`) fails to build, and the config is refused with one error naming
//! the rule. One caveat stays, documented by the crate: replacing all matches searches again
//! after each match, so a rule that matches many times *and* needs to look far ahead of each
//! match can cost more than one pass; lines are at most `reader::MAX_LINE` bytes long.

use regex::{Regex, RegexBuilder};

/// Compiled program size a rule may take (the crate's default is 10 MiB).
pub const SIZE_LIMIT: usize = 1 << 20;
/// Lazy DFA cache a rule may take, per search thread.
pub const DFA_SIZE_LIMIT: usize = 2 << 20;

/// Builds one rule's regex, or says why it cannot be used.
pub fn build(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern)
        .size_limit(SIZE_LIMIT)
        .dfa_size_limit(DFA_SIZE_LIMIT)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_rule_fails_to_build() {
        let e = build(r"\w{1000}{1000}").unwrap_err();
        assert!(e.to_string().contains("size limit"), "{e}");
        assert!(build(r"ACME-[0-9]{4}").is_ok());
    }
}
