//! Error grouping key: the message with its variable parts replaced by placeholders (numbers,
//! UUIDs, hex, quoted strings, ids in paths, e-mail and IP addresses), plus the service and the
//! error type, hashed. "timeout after 3012 ms for user 'bob'" and "timeout after 15 ms for user
//! 'eve'" land in one group. A multi-line event holding a stack trace groups by its exception
//! type(s) and top frames instead, so one exception from many requests is one group whatever
//! each request's message said.

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

/// The grouping key: 16 hex digits of SHA-256 over service, error type and normalized message
/// (or, for a stack trace, its signature).
pub fn fingerprint(service: &str, error_type: Option<&str>, message: &str) -> String {
    let mut h = Sha256::new();
    h.update(service.as_bytes());
    h.update([0]);
    h.update(error_type.unwrap_or("").as_bytes());
    h.update([0]);
    match stack_signature(message) {
        Some(sig) => {
            h.update(b"stack\0");
            h.update(sig.as_bytes());
        }
        None => h.update(normalize(message).as_bytes()),
    }
    hex::encode(&h.finalize()[..8])
}

/// Frames of a trace that make its signature: deeper ones are the framework's.
const TOP_FRAMES: usize = 5;

/// What identifies a stack trace: its exception types (outermost first) and its top frames with
/// line numbers and addresses masked. None when `message` has no trace.
pub fn stack_signature(message: &str) -> Option<String> {
    if !message.contains('\n') {
        return None;
    }
    let trace = Trace::read(message);
    if trace.frames.is_empty() {
        return None;
    }
    let mut sig = trace.types.join("|");
    for f in trace.frames.iter().take(TOP_FRAMES) {
        sig.push('\n');
        mask_frame(&mut sig, f);
    }
    Some(sig)
}

/// The exception type a stack trace names first (`java.lang.IllegalStateException`, Python's
/// raised `ValueError`, a Go panic's message shape).
pub fn exception_type(message: &str) -> Option<String> {
    if !message.contains('\n') {
        return None;
    }
    let t = Trace::read(message);
    if t.frames.is_empty() {
        return None;
    }
    t.types.into_iter().next()
}

struct Trace<'a> {
    types: Vec<String>,
    frames: Vec<&'a str>,
}

impl<'a> Trace<'a> {
    fn read(message: &'a str) -> Trace<'a> {
        let mut types = Vec::new();
        let mut python = Vec::new();
        let mut frames = Vec::new();
        let mut in_python = false;
        let mut before_frame: Option<&str> = None;
        for line in message.lines() {
            let t = line.trim_start();
            let indented = t.len() != line.len();
            if t.starts_with("at ")
                || t.starts_with("File \"")
                || (indented && t.contains(".go:"))
                || is_numbered_frame(t)
            {
                if frames.is_empty() {
                    if let Some(name) = before_frame.and_then(js_error_name) {
                        types.push(name.to_string());
                    }
                }
                frames.push(t);
                continue;
            }
            if indented {
                continue;
            }
            before_frame = Some(t);
            if t.starts_with("Traceback (most recent call last):") {
                in_python = true;
                continue;
            }
            if in_python {
                if let Some(name) = exception_name(t, false) {
                    python.push(name.to_string());
                    in_python = false;
                    continue;
                }
            }
            let rest = t.strip_prefix("Caused by: ").unwrap_or(t);
            let rest = match rest.strip_prefix("Exception in thread \"") {
                Some(r) => r.split_once("\" ").map_or(r, |(_, e)| e),
                None => rest,
            };
            if let Some(name) = exception_name(rest, true) {
                types.push(name.to_string());
            } else if t.starts_with("panic: ") || t.starts_with("fatal error: ") {
                types.push(normalize(t.trim_end_matches(" [recovered]")));
            } else if let Some(at) = t.find(" panicked at ") {
                if t.starts_with("thread '") {
                    types.push(format!("panicked at {}", normalize(&t[at + 13..])));
                }
            }
        }
        // Python prints the raised exception last; the chained ones before it are its causes.
        python.reverse();
        types.extend(python);
        // A Go panic whose `panic: ` the text's level went to: its first line is the message.
        if types.is_empty() && message.contains("\ngoroutine ") {
            let first = message.lines().next().unwrap_or("");
            types.push(format!("panic: {}", normalize(first)));
        }
        Trace { types, frames }
    }
}

/// `0: rust_begin_unwind` (a Rust backtrace frame).
fn is_numbered_frame(t: &str) -> bool {
    let digits = t.bytes().take_while(u8::is_ascii_digit).count();
    digits > 0 && t[digits..].starts_with(": ")
}

/// `TypeError: x` before a Node frame (also after a log line's prefix): the first word ending
/// in Error/Exception that a `: ` follows.
fn js_error_name(line: &str) -> Option<&str> {
    line.match_indices(": ").find_map(|(i, _)| {
        let head = &line[..i];
        let start = head
            .rfind(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(0, |j| j + 1);
        let name = &head[start..];
        (!name.is_empty() && (name.ends_with("Error") || name.ends_with("Exception")))
            .then_some(name)
    })
}

/// The dotted name before `:` (or the whole line): Java asks for a package and an
/// Exception/Error/Throwable suffix, Python for any identifier.
fn exception_name(text: &str, java: bool) -> Option<&str> {
    let name = text.split(':').next().unwrap_or(text);
    let ok = !name.is_empty()
        && name.as_bytes()[0].is_ascii_alphabetic()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'$'));
    if !ok {
        return None;
    }
    if java {
        let last = name.rsplit('.').next().unwrap_or(name);
        let java_like = name.contains('.')
            && (last.ends_with("Exception") || last.ends_with("Error") || last == "Throwable");
        return java_like.then_some(name);
    }
    Some(name)
}

/// A frame with its line numbers, columns and addresses masked (they move between builds).
fn mask_frame(out: &mut String, frame: &str) {
    for (i, token) in frame.split(' ').enumerate() {
        if i > 0 {
            out.push(' ');
        }
        if token.starts_with("+0x") || token.starts_with("0x") {
            out.push_str("<hex>");
        } else {
            push_digits_masked(out, token);
        }
    }
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
    fn one_exception_from_many_requests_is_one_group() {
        let trace = |req: &str, line: u32, exc: &str| {
            format!(
                "request {req} failed\n{exc}: order {req} not found\n\
                 \tat com.shop.Orders.load(Orders.java:{line})\n\
                 \tat com.shop.Api.get(Api.java:88)\n\t... 40 more"
            )
        };
        let a = trace("ab12-x", 10, "java.lang.IllegalStateException");
        let b = trace("zz99-q", 10, "java.lang.IllegalStateException");
        assert_eq!(fingerprint("api", None, &a), fingerprint("api", None, &b));
        let c = trace("ab12-x", 10, "java.util.NoSuchElementException");
        assert_ne!(fingerprint("api", None, &a), fingerprint("api", None, &c));
        assert_eq!(
            exception_type(&a).as_deref(),
            Some("java.lang.IllegalStateException")
        );
        let py = "Traceback (most recent call last):\n  File \"app.py\", line 3, in <module>\n\
                  \x20   f()\nKeyError: 'k1'";
        let py2 = py.replace("'k1'", "'other'");
        assert_eq!(exception_type(py).as_deref(), Some("KeyError"));
        assert_eq!(fingerprint("w", None, py), fingerprint("w", None, &py2));
        let node = "Error: boom\n    at f (/app/a.js:3:11)";
        let node2 = "TypeError: boom\n    at f (/app/a.js:3:11)";
        assert_ne!(fingerprint("w", None, node), fingerprint("w", None, node2));
        let go =
            "panic: runtime error: index out of range [5] with length 3\ngoroutine 1 [running]:\n\
                  main.main()\n\t/tmp/x/main.go:8 +0x1d";
        assert_eq!(
            exception_type(go).as_deref(),
            Some("panic: runtime error: index out of range [<n>] with length <n>")
        );
        let go_level_taken = go.trim_start_matches("panic: ");
        assert_eq!(exception_type(go_level_taken), exception_type(go));
        assert_eq!(stack_signature("one line"), None);
        assert_eq!(stack_signature("two\nplain lines"), None);
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
