//! logfmt lines (`ts=... level=info msg="user logged in" user_id=42`), as written by logrus,
//! go-kit, Heroku and friends. Values are text; the field mapping converts what it needs.

use std::borrow::Cow;

use super::fields::{self, LineContext, Val};
use super::record::Parsed;

fn is_key_byte(b: u8) -> bool {
    b > b' ' && b != b'=' && b != b'"' && b != 0x7f
}

/// Splits a logfmt line into (key, value) pairs. A bare key means `true`.
pub fn pairs(line: &str) -> Result<Vec<(Cow<'_, str>, Val<'_>)>, String> {
    let b = line.as_bytes();
    let mut out = Vec::with_capacity(8);
    let mut i = 0;
    let mut with_value = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        let start = i;
        while i < b.len() && is_key_byte(b[i]) {
            i += 1;
        }
        if i == start {
            return Err(format!(
                "invalid logfmt: expected a key at column {}",
                i + 1
            ));
        }
        let mut key = &line[start..i];
        // `x-api-key: value` (a header written into the line): the value is the next token and
        // must not become a key of its own (redaction looks at keys' values, never at key names).
        let colon_pair = key.len() > 1
            && key.ends_with(':')
            && b[i..]
                .iter()
                .find(|c| !c.is_ascii_whitespace())
                .is_some_and(|&c| is_key_byte(c) || c == b'"');
        if colon_pair {
            key = &key[..key.len() - 1];
            while b[i].is_ascii_whitespace() {
                i += 1;
            }
        } else if i >= b.len() || b[i] != b'=' {
            if i < b.len() && !b[i].is_ascii_whitespace() {
                return Err(format!(
                    "invalid logfmt: unexpected '\"' at column {}",
                    i + 1
                ));
            }
            out.push((Cow::Borrowed(key), Val::Bool(true)));
            continue;
        } else {
            i += 1;
            with_value += 1;
        }
        if i < b.len() && b[i] == b'"' {
            i += 1;
            let vstart = i;
            let mut escaped = false;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    escaped = true;
                    i += 1;
                }
                i += 1;
            }
            if i >= b.len() {
                return Err(format!(
                    "invalid logfmt: unterminated quoted value of {key:?}"
                ));
            }
            let raw = &line[vstart..i];
            i += 1;
            let value = if escaped {
                Cow::Owned(unescape(raw))
            } else {
                Cow::Borrowed(raw)
            };
            out.push((Cow::Borrowed(key), Val::Str(value)));
        } else {
            let vstart = i;
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
            out.push((
                Cow::Borrowed(key),
                Val::Str(Cow::Borrowed(&line[vstart..i])),
            ));
        }
    }
    if with_value == 0 {
        return Err("invalid logfmt: no key=value pair".into());
    }
    Ok(out)
}

fn unescape(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => out.push('\\'),
        }
    }
    out
}

pub fn parse(line: &str, ctx: &LineContext) -> Result<Parsed, String> {
    let mut parsed = fields::build(pairs(line)?, ctx)?;
    parsed.format = "logfmt";
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Level;
    use chrono::{DateTime, Utc};

    #[test]
    fn logrus_line() {
        let ctx = LineContext {
            service: "svc",
            now: DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
            level: None,
            zone: &crate::ingest::timestamp::UTC,
        };
        let p = parse(
            r#"time="2024-03-01T10:00:00Z" level=error msg="payment \"failed\"" user_id=7 retry"#,
            &ctx,
        )
        .unwrap();
        let log = p.log.unwrap();
        assert_eq!(log.level, Level::Error);
        assert_eq!(log.message, "payment \"failed\"");
        assert_eq!(log.user_id.as_deref(), Some("7"));
        assert_eq!(log.attrs.unwrap()["retry"], serde_json::Value::Bool(true));
    }

    #[test]
    fn a_header_pair_keeps_its_value_as_a_value() {
        let p = pairs("level=info x-api-key: abc123XYZ msg=hi").unwrap();
        assert_eq!(
            p[1],
            (Cow::Borrowed("x-api-key"), Val::Str("abc123XYZ".into()))
        );
        assert_eq!(p.len(), 3);
        // Only key=value pairs make a line logfmt.
        assert!(pairs("x-api-key: abc").is_err());
    }

    #[test]
    fn rejects_what_is_not_logfmt() {
        assert!(pairs("just some words").is_err());
        assert!(pairs("a=\"open").is_err());
        assert!(pairs("=x").is_err());
        assert_eq!(pairs("a= b=1").unwrap().len(), 2);
    }
}
