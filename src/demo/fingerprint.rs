//! Grouping keys for the demo's errors and queries, computed the way an error grouper does it:
//! the message with its variable parts (numbers, UUIDs, hex ids, quoted strings) replaced by
//! placeholders, plus service and error type, hashed. Two messages that differ only in an order
//! id therefore share one fingerprint and one `error_group` row.

use std::sync::OnceLock;

use regex::Regex;
use sha2::{Digest, Sha256};

fn patterns() -> &'static [(Regex, &'static str)] {
    static P: OnceLock<Vec<(Regex, &'static str)>> = OnceLock::new();
    P.get_or_init(|| {
        [
            (r#""[^"]*"|'[^']*'"#, "<str>"),
            (
                r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b",
                "<uuid>",
            ),
            (
                r"\b(?:0x)?[0-9a-fA-F]*[0-9][0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*\b",
                "<hex>",
            ),
            (
                r"\b(?:0x)?[0-9a-fA-F]*[a-fA-F][0-9a-fA-F]*[0-9][0-9a-fA-F]*\b",
                "<hex>",
            ),
            (r"\d+(?:\.\d+)?", "<n>"),
        ]
        .into_iter()
        .filter_map(|(re, rep)| Regex::new(re).ok().map(|r| (r, rep)))
        .collect()
    })
}

/// The message with its variable parts replaced by placeholders.
pub fn normalize_message(msg: &str) -> String {
    let mut s = msg.to_string();
    for (re, rep) in patterns() {
        if re.is_match(&s) {
            s = re.replace_all(&s, *rep).into_owned();
        }
    }
    s
}

fn short_hash(parts: &[&str]) -> String {
    let mut h = Sha256::new();
    for p in parts {
        h.update(p.as_bytes());
        h.update([0u8]);
    }
    hex::encode(&h.finalize()[..8])
}

/// Error fingerprint: service, error type and normalized message, hashed.
pub fn error_fingerprint(service: &str, error_type: &str, message: &str) -> String {
    short_hash(&[service, error_type, &normalize_message(message)])
}

/// Query fingerprint of an already normalized statement.
pub fn query_fingerprint(sql: &str) -> String {
    short_hash(&[sql])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_parts_do_not_change_the_fingerprint() {
        let a = error_fingerprint(
            "checkout",
            "E",
            "could not reserve stock for order 48213: item 77 locked",
        );
        let b = error_fingerprint(
            "checkout",
            "E",
            "could not reserve stock for order 9: item 12345 locked",
        );
        assert_eq!(a, b);
        assert_ne!(
            a,
            error_fingerprint(
                "payments",
                "E",
                "could not reserve stock for order 9: item 1 locked"
            )
        );
        assert_ne!(
            a,
            error_fingerprint("checkout", "E", "payments did not answer for order 9")
        );
    }

    #[test]
    fn normalizes_ids() {
        assert_eq!(
            normalize_message(
                "user 'bob' session 3f2a9c1e-0b7d-4c1e-9f3a-1b2c3d4e5f60 took 12.5ms"
            ),
            "user <str> session <uuid> took <n>ms"
        );
        assert_eq!(normalize_message("intent pi_3141"), "intent pi_<n>");
        assert_eq!(normalize_message("deadbeef42 and 42"), "<hex> and <n>");
    }
}
