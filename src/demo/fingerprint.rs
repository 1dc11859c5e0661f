//! Grouping keys for the demo's errors and queries. Errors use the ingest pipeline's grouper
//! (normalized message + service + error type, hashed), so a demo error and the same error
//! ingested from a log file land in one `error_group`, and messages that differ only in an
//! order id share a group.

use sha2::{Digest, Sha256};

/// Error fingerprint, exactly as `opsdash ingest` computes it.
pub fn error_fingerprint(service: &str, error_type: &str, message: &str) -> String {
    crate::ingest::fingerprint::fingerprint(service, Some(error_type), message)
}

/// Query fingerprint of an already normalized statement (placeholders `$1`, as
/// pg_stat_statements shows it): 16 hex digits of its SHA-256.
pub fn query_fingerprint(sql: &str) -> String {
    hex::encode(&Sha256::digest(sql.as_bytes())[..8])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::catalog::SERVICES;

    #[test]
    fn variable_parts_do_not_change_the_fingerprint() {
        for svc in SERVICES {
            for kind in svc.errors {
                let one = kind.message.replace("{id}", "48213").replace("{n}", "7");
                let two = kind.message.replace("{id}", "9").replace("{n}", "12345");
                assert_eq!(
                    error_fingerprint(svc.name, kind.error_type, &one),
                    error_fingerprint(svc.name, kind.error_type, &two),
                    "{one}"
                );
            }
        }
        let a = error_fingerprint("checkout", "E", "order 1 locked");
        assert_ne!(a, error_fingerprint("payments", "E", "order 1 locked"));
        assert_ne!(a, error_fingerprint("checkout", "F", "order 1 locked"));
        assert_ne!(a, error_fingerprint("checkout", "E", "order 1 lost"));
    }

    #[test]
    fn queries_differ_by_text() {
        assert_eq!(query_fingerprint("SELECT 1"), query_fingerprint("SELECT 1"));
        assert_ne!(query_fingerprint("SELECT 1"), query_fingerprint("SELECT 2"));
        assert_eq!(query_fingerprint("SELECT 1").len(), 16);
    }
}
