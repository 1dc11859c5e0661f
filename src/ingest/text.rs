//! Plain text lines (auto-detection's last resort): an optional leading timestamp, an optional
//! level word (`ERROR`, `[warn]`, `level:`), and the rest as the message.

use super::fields::LineContext;
use super::record::{LogRecord, Parsed};
use super::timestamp;
use crate::model::Level;

fn level_word(token: &str) -> Option<Level> {
    let t = token.trim_matches(|c: char| matches!(c, '[' | ']' | '(' | ')' | ':' | '<' | '>'));
    if t.is_empty() || !t.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    Level::parse_loose(t)
}

/// Parses a free-text line; never fails.
pub fn parse(line: &str, ctx: &LineContext) -> Parsed {
    let mut rest = line.trim();
    let mut ts = None;
    // "2024-03-01T10:00:00Z msg", "2024-03-01 10:00:00.123 msg"
    let mut words = rest.splitn(3, ' ');
    if let (Some(a), b) = (words.next(), words.next()) {
        let a_clean = a.trim_matches(|c| c == '[' || c == ']');
        if let Some(t) = timestamp::parse(a_clean).filter(|_| a_clean.contains('-')) {
            ts = Some(t);
            rest = rest[a.len()..].trim_start();
        } else if let Some(b) = b {
            let both = format!("{a_clean} {}", b.trim_matches(|c| c == '[' || c == ']'));
            if a_clean.contains('-') {
                if let Some(t) = timestamp::parse(&both) {
                    ts = Some(t);
                    rest = rest[a.len()..].trim_start()[b.len()..].trim_start();
                }
            }
        }
    }
    let mut level = None;
    if let Some(first) = rest.split(' ').next() {
        if let Some(l) = level_word(first) {
            level = Some(l);
            rest = rest[first.len()..].trim_start();
        }
    }
    let log = LogRecord::new(
        ts.unwrap_or(ctx.now),
        level.or(ctx.level).unwrap_or(Level::Info),
        ctx.service.to_string(),
        rest.to_string(),
    );
    Parsed {
        log: Some(log),
        format: "text",
        ..Parsed::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    #[test]
    fn timestamp_level_message() {
        let ctx = LineContext {
            service: "svc",
            now: DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
            level: None,
        };
        let log = parse("2024-03-01 10:00:00.5 [ERROR] disk full", &ctx)
            .log
            .unwrap();
        assert_eq!(log.level, Level::Error);
        assert_eq!(log.message, "disk full");
        assert_eq!(log.ts.to_rfc3339(), "2024-03-01T10:00:00.500+00:00");
        let log = parse("WARN: low memory", &ctx).log.unwrap();
        assert_eq!(
            (log.level, log.message.as_str()),
            (Level::Warn, "low memory")
        );
        let log = parse("hello world", &ctx).log.unwrap();
        assert_eq!(
            (log.level, log.message.as_str()),
            (Level::Info, "hello world")
        );
        assert_eq!(log.ts, ctx.now);
    }
}
