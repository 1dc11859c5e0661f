//! Error grouping key: the message with its variable parts replaced by placeholders (numbers,
//! UUIDs, hex, quoted strings, ids in paths, e-mail and IP addresses), plus the service and the
//! error type, hashed. "timeout after 3012 ms for user 'bob'" and "timeout after 15 ms for user
//! 'eve'" land in one group.

use sha2::{Digest, Sha256};

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'@' | b':' | b'%' | b'+')
}

fn is_uuid(t: &[u8]) -> bool {
    t.len() == 36
        && t.iter().enumerate().all(|(i, &c)| match i {
            8 | 13 | 18 | 23 => c == b'-',
            _ => c.is_ascii_hexdigit(),
        })
}

fn is_ipv4(t: &str) -> bool {
    let host = t.split(':').next().unwrap_or(t);
    let parts: Vec<&str> = host.split('.').collect();
    parts.len() == 4
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.len() <= 3 && p.bytes().all(|b| b.is_ascii_digit()))
}

fn is_ipv6(t: &str) -> bool {
    t.matches(':').count() >= 2
        && t.bytes()
            .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
        && t.bytes().any(|b| b.is_ascii_hexdigit())
}

fn is_email(t: &str) -> bool {
    match t.find('@') {
        Some(at) => at > 0 && t[at + 1..].contains('.'),
        None => false,
    }
}

fn is_hex(t: &[u8]) -> bool {
    let body = t.strip_prefix(b"0x").or_else(|| t.strip_prefix(b"0X"));
    match body {
        Some(b) => !b.is_empty() && b.iter().all(u8::is_ascii_hexdigit),
        None => {
            t.len() >= 8 && t.iter().all(u8::is_ascii_hexdigit) && t.iter().any(u8::is_ascii_digit)
        }
    }
}

/// Replaces every digit run in a token with `<n>` ("user123" -> "user<n>", "v1.2" -> "v<n>.<n>").
fn push_digits_masked(out: &mut String, token: &str) {
    let mut in_digits = false;
    for c in token.chars() {
        if c.is_ascii_digit() {
            if !in_digits {
                out.push_str("<n>");
                in_digits = true;
            }
        } else {
            in_digits = false;
            out.push(c);
        }
    }
}

fn push_token(out: &mut String, token: &str) {
    let b = token.as_bytes();
    if is_uuid(b) {
        out.push_str("<uuid>");
    } else if is_email(token) {
        out.push_str("<email>");
    } else if is_ipv4(token) || is_ipv6(token) {
        out.push_str("<ip>");
    } else if is_hex(b) {
        out.push_str("<hex>");
    } else {
        push_digits_masked(out, token);
    }
}

/// The message with its variable parts replaced by placeholders.
pub fn normalize(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let b = message.as_bytes();
    let mut i = 0;
    while i < b.len() {
        let c = b[i];
        if matches!(c, b'"' | b'\'' | b'`') {
            // A quoted string is a value; an apostrophe without a closing quote is just text.
            if let Some(len) = message[i + 1..].find(c as char) {
                out.push_str("<str>");
                i += len + 2;
                continue;
            }
        }
        if is_word_byte(c) {
            let start = i;
            while i < b.len() && is_word_byte(b[i]) {
                i += 1;
            }
            // Trailing sentence punctuation is not part of the value ("failed for 10.0.0.1.").
            let mut end = i;
            while end > start + 1 && matches!(b[end - 1], b'.' | b':') {
                end -= 1;
            }
            push_token(&mut out, &message[start..end]);
            out.push_str(&message[end..i]);
            continue;
        }
        // Not ASCII word material: copy the whole UTF-8 character.
        let ch_len = message[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&message[i..i + ch_len]);
        i += ch_len;
    }
    out
}

/// The grouping key: 16 hex digits of SHA-256 over service, error type and normalized message.
pub fn fingerprint(service: &str, error_type: Option<&str>, message: &str) -> String {
    let mut h = Sha256::new();
    h.update(service.as_bytes());
    h.update([0]);
    h.update(error_type.unwrap_or("").as_bytes());
    h.update([0]);
    h.update(normalize(message).as_bytes());
    hex::encode(&h.finalize()[..8])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variable_parts_become_placeholders() {
        assert_eq!(
            normalize("timeout after 3012 ms for user 'bob' at /users/42/cart"),
            "timeout after <n> ms for user <str> at /users/<n>/cart"
        );
        assert_eq!(
            normalize("order 550e8400-e29b-41d4-a716-446655440000 failed: \"card declined\""),
            "order <uuid> failed: <str>"
        );
        assert_eq!(
            normalize("mail to bob@example.com from 10.0.0.1:5432 and fe80::1."),
            "mail to <email> from <ip> and <ip>."
        );
        assert_eq!(
            normalize("ptr 0x7ffd1234 sha deadbeef12"),
            "ptr <hex> sha <hex>"
        );
        assert_eq!(normalize("don't panic – ünïcode"), "don't panic – ünïcode");
    }

    #[test]
    fn same_shape_same_group() {
        let a = fingerprint("api", Some("Timeout"), "timeout after 3012 ms for 'bob'");
        let b = fingerprint("api", Some("Timeout"), "timeout after 15 ms for 'eve'");
        assert_eq!(a, b);
        assert_eq!(a.len(), 16);
        assert_ne!(
            a,
            fingerprint("web", Some("Timeout"), "timeout after 1 ms for 'x'")
        );
        assert_ne!(a, fingerprint("api", None, "timeout after 1 ms for 'x'"));
    }
}
