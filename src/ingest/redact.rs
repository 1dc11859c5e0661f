//! Redaction, applied before anything is stored: values of secret-looking keys (in JSON fields
//! at any depth and in `key=value` / `key: value` text), card numbers (Luhn-checked), US social
//! security numbers, and the custom rules of the config.

use std::borrow::Cow;

use anyhow::{Context, Result};
use regex::Regex;
use serde_json::Value;

use crate::config::IngestConfig;

pub const MASK: &str = "[REDACTED]";
pub const CARD_MASK: &str = "[REDACTED:card]";
pub const SSN_MASK: &str = "[REDACTED:ssn]";

pub struct Redactor {
    /// Secret key names, lower-case with `_`, `-` and `.` removed ("api_key" -> "apikey").
    keys: Vec<String>,
    /// `key<sep>value` in free text.
    key_value: Option<Regex>,
    cards: bool,
    ssn: Option<Regex>,
    rules: Vec<(Regex, String)>,
}

fn squash(key: &str) -> String {
    key.chars()
        .filter(|c| !matches!(c, '_' | '-' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

impl Redactor {
    pub fn new(cfg: &IngestConfig) -> Result<Redactor> {
        let keys: Vec<String> = cfg
            .redact_keys
            .iter()
            .map(|k| squash(k))
            .filter(|k| !k.is_empty())
            .collect();
        let key_value = if keys.is_empty() {
            None
        } else {
            // Each key matches with or without its separators ("api_key", "api-key", "apikey").
            let alternatives: Vec<String> = cfg
                .redact_keys
                .iter()
                .filter(|k| !squash(k).is_empty())
                .map(|k| {
                    let parts: Vec<String> = k
                        .split(['_', '-', '.'])
                        .filter(|p| !p.is_empty())
                        .map(regex::escape)
                        .collect();
                    parts.join("[_.-]?")
                })
                .collect();
            let pattern = format!(
                r#"(?i)((?:{})["']?[ \t]*[:=][ \t]*)((?:(?:bearer|basic|digest|token)[ \t]+)?(?:"(?:[^"\\]|\\.)*"|'[^']*'|["']?[^\s,;&"'<>{{}}\[\]()]+))"#,
                alternatives.join("|")
            );
            Some(Regex::new(&pattern).context("building the redaction pattern")?)
        };
        let ssn = if cfg.redact_ssn {
            Some(Regex::new(r"(?-u:\b)(\d{3})-(\d{2})-(\d{4})(?-u:\b)").context("ssn pattern")?)
        } else {
            None
        };
        let rules = cfg
            .redact
            .iter()
            .map(|r| {
                Regex::new(&r.pattern)
                    .with_context(|| format!("redaction rule {:?}", r.name))
                    .map(|re| (re, r.replacement.clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Redactor {
            keys,
            key_value,
            cards: cfg.redact_card_numbers,
            ssn,
            rules,
        })
    }

    /// Whether a field of this name holds a secret: the name is a secret key or ends with one
    /// ("db_password", "X-Api-Key", "accessToken").
    pub fn is_secret_key(&self, key: &str) -> bool {
        if self.keys.is_empty() {
            return false;
        }
        let k = squash(key);
        self.keys.iter().any(|s| k.ends_with(s.as_str()))
    }

    /// Redacts free text.
    pub fn text<'a>(&self, s: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(s);
        // Every key=value needs a '=' or ':'; most log text has neither, so skip the regex.
        let has_separator = memchr::memchr2(b'=', b':', s.as_bytes()).is_some();
        if let Some(re) = self.key_value.as_ref().filter(|_| has_separator) {
            if let Cow::Owned(o) = re.replace_all(&out, |c: &regex::Captures| {
                let value = &c[2];
                let masked = if value.starts_with('"') {
                    format!("\"{MASK}\"")
                } else if value.starts_with('\'') {
                    format!("'{MASK}'")
                } else {
                    MASK.to_string()
                };
                format!("{}{masked}", &c[1])
            }) {
                out = Cow::Owned(o);
            }
        }
        // Cards and SSNs need at least 9 digits; most lines have far fewer.
        if (self.cards || self.ssn.is_some())
            && out.bytes().filter(u8::is_ascii_digit).take(9).count() >= 9
        {
            if self.cards {
                if let Some(o) = redact_cards(&out) {
                    out = Cow::Owned(o);
                }
            }
            if let Some(re) = self.ssn.as_ref().filter(|_| out.contains('-')) {
                if let Cow::Owned(o) = re.replace_all(&out, |c: &regex::Captures| {
                    if valid_ssn(&c[1], &c[2], &c[3]) {
                        SSN_MASK.to_string()
                    } else {
                        c[0].to_string()
                    }
                }) {
                    out = Cow::Owned(o);
                }
            }
        }
        for (re, replacement) in &self.rules {
            if let Cow::Owned(o) = re.replace_all(&out, replacement.as_str()) {
                out = Cow::Owned(o);
            }
        }
        out
    }

    /// Redacts a string in place.
    pub fn string(&self, s: &mut String) {
        if let Cow::Owned(o) = self.text(s) {
            *s = o;
        }
    }

    pub fn opt_string(&self, s: &mut Option<String>) {
        if let Some(s) = s {
            self.string(s);
        }
    }

    /// Redacts a JSON value at any depth: secret keys lose their value, strings are redacted
    /// as text.
    pub fn json(&self, v: &mut Value) {
        match v {
            Value::String(s) => self.string(s),
            Value::Array(items) => items.iter_mut().for_each(|i| self.json(i)),
            Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if self.is_secret_key(k) && !v.is_null() {
                        *v = Value::String(MASK.into());
                    } else {
                        self.json(v);
                    }
                }
            }
            _ => {}
        }
    }

    pub fn object(&self, map: &mut serde_json::Map<String, Value>) {
        for (k, v) in map.iter_mut() {
            if self.is_secret_key(k) && !v.is_null() {
                *v = Value::String(MASK.into());
            } else {
                self.json(v);
            }
        }
    }
}

fn valid_ssn(area: &str, group: &str, serial: &str) -> bool {
    area != "000" && area != "666" && !area.starts_with('9') && group != "00" && serial != "0000"
}

fn luhn(digits: &[u8]) -> bool {
    let mut sum = 0u32;
    for (i, d) in digits.iter().rev().enumerate() {
        let mut v = u32::from(*d);
        if i % 2 == 1 {
            v *= 2;
            if v > 9 {
                v -= 9;
            }
        }
        sum += v;
    }
    sum.is_multiple_of(10)
}

/// A run of digit groups joined by single spaces or dashes, with byte offsets.
struct Run {
    /// (start, end) byte offsets of each group.
    groups: Vec<(usize, usize)>,
}

fn is_card(s: &[u8], groups: &[(usize, usize)]) -> bool {
    let digits: Vec<u8> = groups
        .iter()
        .flat_map(|&(a, b)| s[a..b].iter().map(|c| c - b'0'))
        .collect();
    // Issuer numbers start with 2-6 (Mastercard 2/5, Amex/Diners/JCB 3, Visa 4, Discover/
    // UnionPay 6); this keeps epoch milliseconds and other long ids from being masked.
    (13..=19).contains(&digits.len()) && (2..=6).contains(&digits[0]) && luhn(&digits)
}

/// Masks Luhn-valid card numbers, written plain or in groups separated by spaces or dashes.
fn redact_cards(text: &str) -> Option<String> {
    let s = text.as_bytes();
    let mut runs = Vec::new();
    let mut i = 0;
    while i < s.len() {
        if !s[i].is_ascii_digit() {
            i += 1;
            continue;
        }
        let mut groups = Vec::new();
        loop {
            let start = i;
            while i < s.len() && s[i].is_ascii_digit() {
                i += 1;
            }
            groups.push((start, i));
            if i + 1 < s.len() && (s[i] == b' ' || s[i] == b'-') && s[i + 1].is_ascii_digit() {
                i += 1;
            } else {
                break;
            }
        }
        runs.push(Run { groups });
    }
    let mut spans: Vec<(usize, usize)> = Vec::new();
    for run in &runs {
        let g = &run.groups;
        let total: usize = g.iter().map(|(a, b)| b - a).sum();
        if total < 13 {
            continue;
        }
        // The whole run, else the longest stretch of whole groups that is a card (a card next
        // to other numbers: "order 12 card 4111 1111 1111 1111").
        let mut i = 0;
        while i < g.len() {
            let mut found = None;
            for j in (i..g.len()).rev() {
                if (j > i || g[i].1 - g[i].0 <= 19) && is_card(s, &g[i..=j]) {
                    found = Some(j);
                    break;
                }
            }
            match found {
                Some(j) => {
                    spans.push((g[i].0, g[j].1));
                    i = j + 1;
                }
                None => i += 1,
            }
        }
    }
    if spans.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for (a, b) in spans {
        out.push_str(&text[last..a]);
        out.push_str(CARD_MASK);
        last = b;
    }
    out.push_str(&text[last..]);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RedactRule;
    use proptest::prelude::*;

    fn redactor() -> Redactor {
        Redactor::new(&IngestConfig::default()).unwrap()
    }

    #[test]
    fn key_value_text() {
        let r = redactor();
        assert_eq!(
            r.text("login password=hunter2 ok"),
            "login password=[REDACTED] ok"
        );
        assert_eq!(
            r.text("Authorization: Bearer abc.def.ghi"),
            "Authorization: [REDACTED]"
        );
        assert_eq!(
            r.text(r#"{"api_key": "k-123"}"#),
            r#"{"api_key": "[REDACTED]"}"#
        );
        assert_eq!(r.text("DB_PASSWORD='x y'"), "DB_PASSWORD='[REDACTED]'");
        assert_eq!(
            r.text("X-Api-Key: abc&next=1"),
            "X-Api-Key: [REDACTED]&next=1"
        );
        assert_eq!(
            r.text("tokens_used=5 secretary=bob"),
            "tokens_used=5 secretary=bob"
        );
        assert_eq!(r.text("nothing to see"), "nothing to see");
    }

    #[test]
    fn cards_and_ssn() {
        let r = redactor();
        assert_eq!(r.text("card 4111 1111 1111 1111."), "card [REDACTED:card].");
        assert_eq!(r.text("card 4111-1111-1111-1111"), "card [REDACTED:card]");
        assert_eq!(r.text("amex 378282246310005"), "amex [REDACTED:card]");
        // Not Luhn-valid, and an epoch in milliseconds: untouched.
        assert_eq!(r.text("n 4111111111111112"), "n 4111111111111112");
        assert_eq!(r.text("at 1700000000000"), "at 1700000000000");
        assert_eq!(r.text("ssn 123-45-6789"), "ssn [REDACTED:ssn]");
        assert_eq!(r.text("id 000-45-6789"), "id 000-45-6789");
        assert_eq!(r.text("date 2024-01-15"), "date 2024-01-15");
    }

    #[test]
    fn json_at_any_depth() {
        let r = redactor();
        let mut v = serde_json::json!({
            "user": {"Password": "p", "name": "bob", "headers": {"Set-Cookie": "s=1", "x": ["token=abc"]}},
            "accessToken": 5,
            "note": "card 4111111111111111"
        });
        r.json(&mut v);
        assert_eq!(v["user"]["Password"], "[REDACTED]");
        assert_eq!(v["user"]["name"], "bob");
        assert_eq!(v["user"]["headers"]["Set-Cookie"], "[REDACTED]");
        assert_eq!(v["user"]["headers"]["x"][0], "token=[REDACTED]");
        assert_eq!(v["accessToken"], "[REDACTED]");
        assert_eq!(v["note"], "card [REDACTED:card]");
    }

    #[test]
    fn custom_rules() {
        let mut cfg = IngestConfig::default();
        cfg.redact.push(RedactRule {
            name: "acme".into(),
            pattern: "ACME-[0-9]{4}".into(),
            replacement: "[ACME]".into(),
        });
        let r = Redactor::new(&cfg).unwrap();
        assert_eq!(r.text("ref ACME-1234 done"), "ref [ACME] done");
    }

    /// A Luhn-valid 16-digit number starting with 4.
    fn card_from(body: &[u8]) -> String {
        let mut digits: Vec<u8> = std::iter::once(4)
            .chain(body.iter().map(|d| d % 10))
            .collect();
        digits.truncate(15);
        for check in 0..10 {
            let mut d = digits.clone();
            d.push(check);
            if luhn(&d) {
                return d.iter().map(|d| (b'0' + d) as char).collect();
            }
        }
        unreachable!("one check digit always satisfies Luhn")
    }

    fn grouped(card: &str, sep: &str) -> String {
        card.as_bytes()
            .chunks(4)
            .map(|c| std::str::from_utf8(c).unwrap_or(""))
            .collect::<Vec<_>>()
            .join(sep)
    }

    proptest! {
        #[test]
        fn planted_secret_never_survives(
            before in "[a-zA-Z0-9 ,.!?()\\[\\]{}:=\"'-]{0,40}",
            after in "[a-zA-Z0-9 ,.!?()\\[\\]{}:=\"'-]{0,40}",
            key_idx in 0usize..10,
            upper in any::<bool>(),
            sep in prop::sample::select(vec!["=", ": ", ":", " = ", "\":\"", "\": "]),
            secret in "[A-Za-z0-9]{6,24}",
            quoted in any::<bool>(),
        ) {
            let r = redactor();
            let key = crate::config::DEFAULT_REDACT_KEYS[key_idx];
            let key = if upper { key.to_uppercase() } else { key.to_string() };
            let secret = format!("Zq{secret}");
            // A separator ending in a quote (`":"`) already opened the value.
            let value = if quoted && !sep.ends_with('"') { format!("\"{secret}\"") } else { secret.clone() };
            let text = format!("{before} {key}{sep}{value} {after}");
            let out = r.text(&text);
            prop_assert!(!out.contains(&secret), "{text:?} -> {out:?}");
        }

        #[test]
        fn planted_card_never_survives(
            before in "[a-zA-Z0-9 ,.:-]{0,30}",
            after in "[a-zA-Z0-9 ,.:-]{0,30}",
            body in prop::collection::vec(0u8..10, 15),
            sep in prop::sample::select(vec!["", " ", "-"]),
        ) {
            let r = redactor();
            let card = card_from(&body);
            let text = format!("{before} {} {after}", grouped(&card, sep));
            let out = r.text(&text);
            let digits: String = out.chars().filter(char::is_ascii_digit).collect();
            prop_assert!(!digits.contains(&card), "{text:?} -> {out:?}");
        }

        #[test]
        fn text_without_secrets_is_unchanged(text in "[a-zA-Z ,.!?()\\[\\]{}:=\"'/_-]{0,120}", n in 0u32..100_000_000) {
            let r = redactor();
            let text = format!("{text} {n}");
            let lower = text.to_lowercase();
            prop_assume!(!["password", "passwd", "token", "secret", "api", "authorization", "cookie"]
                .iter().any(|k| lower.contains(k)));
            let out = r.text(&text).into_owned();
            prop_assert_eq!(out, text);
        }
    }
}
