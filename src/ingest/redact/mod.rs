//! Redaction, applied before anything is stored: values of secret keys (in JSON fields at any
//! depth and in `key=value` / `key: value` text, matched on whole words of the key), credentials
//! recognised by their shape (URL passwords, JWTs, PEM private keys, AWS key ids, vendor tokens,
//! `Bearer`/`Basic` credentials), card numbers (Luhn-checked, also as JSON numbers), US social
//! security numbers, and the custom rules of the config.
//!
//! Every built-in detector is a single forward pass over the text (`keys`, `tokens`, `card`),
//! so redaction is linear in the line's length whatever the line holds; custom rules are
//! bounded regexes (`rules`).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

use anyhow::{Context, Result};
use regex::Regex;
use serde_json::Value;

use crate::config::IngestConfig;

mod card;
mod keys;
pub mod rules;
mod tokens;

pub const MASK: &str = "[REDACTED]";
pub const CARD_MASK: &str = "[REDACTED:card]";
pub const SSN_MASK: &str = "[REDACTED:ssn]";

/// A byte range of the text to replace.
struct Span {
    start: usize,
    end: usize,
    with: Cow<'static, str>,
}

/// `s` with the spans (in order, disjoint, on char boundaries) replaced; None when there are none.
fn splice(s: &str, spans: &[Span]) -> Option<String> {
    if spans.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(s.len());
    let mut last = 0;
    for sp in spans {
        out.push_str(&s[last..sp.start]);
        out.push_str(&sp.with);
        last = sp.end;
    }
    out.push_str(&s[last..]);
    Some(out)
}

/// Numbers the redactors, so that a thread's memo of key names (`SECRET_KEYS`) never answers
/// for another redactor's keys.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Key names longer than this are not memoised (asked directly each time).
const MEMO_KEY_LEN: usize = 64;
/// Names memoised per thread at most; a full memo is emptied (names beyond it are not worth
/// keeping: a log's field names are a few dozen, repeated on every line).
const MEMO_KEYS: usize = 1024;

/// Field names, with whether they are secret, of the redactor numbered `.0`, per thread. The
/// same dozen or so names come with every journald entry or JSON line, and telling a name's
/// words apart cost more than looking it up (a fifth of a journald line's redaction).
type KeyMemo = (u64, HashMap<Box<str>, bool, foldhash::fast::RandomState>);

thread_local! {
    static SECRET_KEYS: RefCell<KeyMemo> = RefCell::new((0, HashMap::default()));
}

/// JSON string values up to this long are remembered when redaction left them unchanged.
const MEMO_VALUE_LEN: usize = 48;
/// Slots of that memo per thread (a power of two).
const MEMO_VALUES: usize = 1024;

/// Text known to need no redaction (a value, or a whole member): `len` bytes of `text` (`len`
/// 0: an empty slot).
#[derive(Clone, Copy)]
struct CleanSlot<const N: usize> {
    len: u8,
    text: [u8; N],
}

impl<const N: usize> CleanSlot<N> {
    const EMPTY: CleanSlot<N> = CleanSlot {
        len: 0,
        text: [0; N],
    };
}

thread_local! {
    /// Clean values of the redactor numbered `.0`, direct-mapped: a value's slot is fixed by a
    /// fast hash of its bytes and a newcomer takes the slot over, so the memo never grows and a
    /// lookup is one compare. The same unit names, paths, hosts and invocation ids come with
    /// every journald entry (and a JSON log's enum-like values with every line); running each
    /// detector over them again was most of an entry's redaction.
    static CLEAN_VALUES: RefCell<(u64, Vec<CleanSlot<MEMO_VALUE_LEN>>)> = const { RefCell::new((0, Vec::new())) };
}

/// Plain JSON members (`"key":"value"`) up to this long are remembered when redaction leaves
/// them as they are.
const MEMO_MEMBER_LEN: usize = 128;
/// Slots of that memo per thread (a power of two).
const MEMO_MEMBERS: usize = 512;

type MemberSlot = CleanSlot<MEMO_MEMBER_LEN>;

thread_local! {
    /// Clean members of the redactor numbered `.0`, direct-mapped as `CLEAN_VALUES`. A
    /// journald entry's kept fields come as such members, nearly all of them the same from
    /// entry to entry: one lookup of the whole member replaces the key's and the value's (and
    /// takes values too long for `CLEAN_VALUES`, such as command lines).
    static CLEAN_MEMBERS: RefCell<(u64, Vec<MemberSlot>)> = const { RefCell::new((0, Vec::new())) };
}

/// A member's slot in `CLEAN_MEMBERS`: a multiply-xor hash of its 8-byte words (cheaper than
/// a general hasher's set-up on such short text), its top bits.
fn member_slot(m: &[u8]) -> usize {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut h = m.len() as u64;
    let mut words = m.chunks_exact(8);
    for w in &mut words {
        let mut b = [0u8; 8];
        b.copy_from_slice(w);
        h = (h ^ u64::from_le_bytes(b)).wrapping_mul(K);
    }
    let mut b = [0u8; 8];
    b[..words.remainder().len()].copy_from_slice(words.remainder());
    h = (h ^ u64::from_le_bytes(b)).wrapping_mul(K);
    (h >> 40) as usize & (MEMO_MEMBERS - 1)
}

/// A redactor with its thread's memo of clean members (`Redactor::with_members`).
pub struct Members<'a> {
    r: &'a Redactor,
    memo: &'a mut [MemberSlot],
}

impl Members<'_> {
    /// Whether a field given as its JSON member `"key":"value"` (key and value plain, the key
    /// `key_len` bytes) stays as it is: its key is not secret and redaction leaves its value
    /// unchanged (`is_secret_key`, `json_str`).
    pub fn unchanged(&mut self, member: &str, key_len: usize) -> bool {
        let ask = || {
            let key = &member[1..=key_len];
            let value = &member[key_len + 4..member.len() - 1];
            !self.r.is_secret_key(key) && self.r.json_str(value).is_none()
        };
        let len = member.len();
        if len > MEMO_MEMBER_LEN {
            return ask();
        }
        let slot = &self.memo[member_slot(member.as_bytes())];
        if usize::from(slot.len) == len && slot.text[..len] == *member.as_bytes() {
            return true;
        }
        if !ask() {
            return false;
        }
        let slot = &mut self.memo[member_slot(member.as_bytes())];
        slot.len = len as u8;
        slot.text[..len].copy_from_slice(member.as_bytes());
        true
    }
}

pub struct Redactor {
    /// This redactor's number for `SECRET_KEYS`.
    id: u64,
    keys: keys::Keys,
    cards: bool,
    ssn: bool,
    rules: Vec<(Regex, String)>,
    /// Text shorter than this holds nothing to redact (see `Redactor::new`): most field values
    /// (pids, ids, unit names, levels) are, and skip every detector.
    min_len: usize,
}

impl Redactor {
    pub fn new(cfg: &IngestConfig) -> Result<Redactor> {
        let rules = cfg
            .redact
            .iter()
            .map(|r| {
                rules::build(&r.pattern)
                    .with_context(|| format!("ingest.redact rule {:?}: bad pattern", r.name))
                    .map(|re| (re, r.replacement.clone()))
            })
            .collect::<Result<Vec<_>>>()?;
        let keys = keys::Keys::new(&cfg.redact_keys);
        // The shortest text each detector can change: a secret key, a separator and one value
        // byte; `a://:p@` (a URL password); every shape of `tokens` (JWTs, vendor tokens, AWS
        // key ids, `Bearer`/`Basic` credentials, PEM armour) and of `card` (9 digits at least)
        // is longer. Custom rules may match anything.
        let min_len = match (rules.is_empty(), keys.shortest()) {
            (false, _) => 0,
            (true, Some(k)) => (k + 2).min(7),
            (true, None) => 7,
        };
        Ok(Redactor {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            keys,
            cards: cfg.redact_card_numbers,
            ssn: cfg.redact_ssn,
            rules,
            min_len,
        })
    }

    /// Whether a field of this name holds a secret: some run of its whole words is a secret key
    /// ("db_password", "X-Api-Key", "accessToken", "secret_key"; not "wtoken", "tokenizer").
    pub fn is_secret_key(&self, key: &str) -> bool {
        let short = self.keys.shortest().is_none_or(|n| key.len() < n);
        if short || key.len() > MEMO_KEY_LEN {
            return !short && self.keys.is_secret(key);
        }
        SECRET_KEYS.with_borrow_mut(|(id, memo)| {
            if *id != self.id {
                memo.clear();
                *id = self.id;
            }
            if let Some(&secret) = memo.get(key) {
                return secret;
            }
            let secret = self.keys.is_secret(key);
            if memo.len() >= MEMO_KEYS {
                memo.clear();
            }
            memo.insert(key.into(), secret);
            secret
        })
    }

    /// Redacts free text.
    pub fn text<'a>(&self, s: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(s);
        if s.len() < self.min_len {
            return out;
        }
        let mut spans = Vec::new();
        // Keys first: `Authorization: Bearer eyJ...` loses its whole value in one mask.
        if !self.keys.is_empty() && memchr::memchr2(b'=', b':', s.as_bytes()).is_some() {
            self.keys.text_spans(&out, &mut spans);
            if let Some(o) = splice(&out, &spans) {
                out = Cow::Owned(o);
            }
        }
        spans.clear();
        // Every shape `tokens` finds without a `:` (URL passwords have one) is at least
        // `tokens::SHORTEST` bytes long: most field values (unit names, paths, short ids) are
        // shorter and skip the pass.
        if (out.len() >= tokens::SHORTEST || memchr::memchr(b':', out.as_bytes()).is_some())
            && !tokens::cannot_hold(out.as_bytes())
        {
            tokens::spans(&out, &mut spans);
            if let Some(o) = splice(&out, &spans) {
                out = Cow::Owned(o);
            }
        }
        // Cards and SSNs need at least 9 digits in one stretch of digits, spaces and dashes;
        // most text has none (ids in hex, journal cursors, times).
        if (self.cards || self.ssn) && card::may_hold(out.as_bytes()) {
            spans.clear();
            card::spans(&out, self.cards, self.ssn, &mut spans);
            if let Some(o) = splice(&out, &spans) {
                out = Cow::Owned(o);
            }
        }
        for (re, replacement) in &self.rules {
            if let Cow::Owned(o) = re.replace_all(&out, replacement.as_str()) {
                out = Cow::Owned(o);
            }
        }
        out
    }

    /// Redacts a JSON string value in place: as `string`, but a short value this thread saw
    /// come out unchanged a moment ago is not looked at again (`CLEAN_VALUES`).
    fn value_string(&self, s: &mut String) {
        if let Some(o) = self.json_str(s) {
            *s = o;
        }
    }

    /// A JSON string value redacted (None: unchanged), as `text`, but a short value this
    /// thread saw come out unchanged a moment ago is not looked at again (`CLEAN_VALUES`).
    pub fn json_str(&self, s: &str) -> Option<String> {
        let len = s.len();
        if len == 0 || len < self.min_len || len > MEMO_VALUE_LEN {
            return match self.text(s) {
                Cow::Owned(o) => Some(o),
                Cow::Borrowed(_) => None,
            };
        }
        use std::hash::BuildHasher;
        let at = foldhash::fast::FixedState::with_seed(0).hash_one(s.as_bytes()) as usize
            & (MEMO_VALUES - 1);
        let clean = CLEAN_VALUES.with_borrow_mut(|(id, memo)| {
            if *id != self.id || memo.is_empty() {
                memo.clear();
                memo.resize(MEMO_VALUES, CleanSlot::EMPTY);
                *id = self.id;
            }
            let slot = &memo[at];
            usize::from(slot.len) == len && slot.text[..len] == *s.as_bytes()
        });
        if clean {
            return None;
        }
        if let Cow::Owned(o) = self.text(s) {
            return Some(o);
        }
        CLEAN_VALUES.with_borrow_mut(|(_, memo)| {
            let slot = &mut memo[at];
            slot.len = len as u8;
            slot.text[..len].copy_from_slice(s.as_bytes());
        });
        None
    }

    /// Runs `f` with this thread's memo of clean members (`CLEAN_MEMBERS`) at hand, taken
    /// once for all the fields of an entry.
    pub fn with_members<T>(&self, f: impl FnOnce(&mut Members<'_>) -> T) -> T {
        CLEAN_MEMBERS.with_borrow_mut(|(id, memo)| {
            if *id != self.id || memo.is_empty() {
                memo.clear();
                memo.resize(MEMO_MEMBERS, CleanSlot::EMPTY);
                *id = self.id;
            }
            f(&mut Members { r: self, memo })
        })
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

    /// Whether a JSON number is a card number (`{"card": 4111111111111111}`).
    fn is_card_number(&self, n: &serde_json::Number) -> bool {
        self.cards
            // A card has 13 digits at least: smaller numbers (ids, counts, pids, the
            // most common) need no digits written out.
            && n.as_u64().is_some_and(|u| {
                if u < 1_000_000_000_000 {
                    return false;
                }
                let text = u.to_string();
                let digits: Vec<u8> = text.bytes().map(|c| c - b'0').collect();
                card::is_card_digits(&digits)
            })
    }

    /// Redacts a JSON value at any depth: secret keys lose their value, strings are redacted
    /// as text, numbers that are card numbers become the card mask.
    pub fn json(&self, v: &mut Value) {
        match v {
            Value::String(s) => self.value_string(s),
            Value::Number(n) if self.is_card_number(n) => *v = Value::String(CARD_MASK.into()),
            Value::Array(items) => items.iter_mut().for_each(|i| self.json(i)),
            Value::Object(map) => self.object(map),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RedactRule;
    use proptest::prelude::*;

    fn redactor() -> Redactor {
        Redactor::new(&IngestConfig::default()).unwrap()
    }

    #[test]
    fn remembered_clean_values_are_per_redactor_and_never_wrong() {
        let plain = redactor();
        let mut cfg = IngestConfig::default();
        cfg.redact.push(RedactRule {
            name: "unit".into(),
            pattern: "ssh\\.service".into(),
            replacement: "[UNIT]".into(),
        });
        let ruled = Redactor::new(&cfg).unwrap();
        let card = "4111 1111 1111 1111";
        let entry = || {
            serde_json::json!({
                "_SYSTEMD_UNIT": "ssh.service",
                "_SYSTEMD_INVOCATION_ID": "5b0a6e1c2d3f4a5b6c7d8e9f0a1b2c3d",
                "note": card,
                "long": "x".repeat(MEMO_VALUE_LEN + 1),
            })
        };
        // Twice each, alternating: the second read of a value may come from the memo.
        for _ in 0..2 {
            let mut a = entry();
            plain.json(&mut a);
            assert_eq!(a["_SYSTEMD_UNIT"], "ssh.service");
            assert_eq!(
                a["_SYSTEMD_INVOCATION_ID"],
                "5b0a6e1c2d3f4a5b6c7d8e9f0a1b2c3d"
            );
            assert_ne!(a["note"], card, "a card is masked every time");
            let mut b = entry();
            ruled.json(&mut b);
            assert_eq!(
                b["_SYSTEMD_UNIT"], "[UNIT]",
                "another redactor's memo is not used"
            );
            assert_eq!(b["note"], a["note"]);
        }
    }

    #[test]
    fn remembered_members_are_per_redactor_and_never_wrong() {
        let plain = redactor();
        let mut cfg = IngestConfig::default();
        cfg.redact.push(RedactRule {
            name: "unit".into(),
            pattern: "ssh\\.service".into(),
            replacement: "[UNIT]".into(),
        });
        let ruled = Redactor::new(&cfg).unwrap();
        let long = format!("\"_CMDLINE\":\"{}\"", "x ".repeat(MEMO_MEMBER_LEN));
        let members = [
            "\"_SYSTEMD_UNIT\":\"ssh.service\"",
            "\"_PID\":\"812\"",
            "\"DB_PASSWORD\":\"x\"",
            "\"api_key\":\"\"",
            "\"NOTE\":\"card 4111 1111 1111 1111\"",
            "\"_CMDLINE\":\"/usr/bin/app --config /etc/app/app.toml --verbose --log-level info\"",
            "\"__CURSOR\":\"s=dc28c875a9f9456c8f662f51641dd37c;i=4111111111111111\"",
            &long,
        ];
        for _ in 0..2 {
            for r in [&plain, &ruled] {
                for m in members {
                    let key_len = m[1..].find('"').unwrap();
                    let key = &m[1..=key_len];
                    let value = &m[key_len + 4..m.len() - 1];
                    let want = !r.is_secret_key(key) && r.json_str(value).is_none();
                    assert_eq!(r.with_members(|c| c.unchanged(m, key_len)), want, "{m}");
                }
            }
        }
        assert!(plain.with_members(|c| c.unchanged(members[0], 13)));
        assert!(!ruled.with_members(|c| c.unchanged(members[0], 13)));
    }

    proptest! {
        #[test]
        fn remembered_values_redact_as_text_does(v in "[a-zA-Z0-9 .:=_@/-]{0,60}") {
            let r = redactor();
            for _ in 0..2 {
                let mut j = Value::String(v.clone());
                r.json(&mut j);
                prop_assert_eq!(j, Value::String(r.text(&v).into_owned()));
            }
        }
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

    /// The shortest text each detector changes is at least `min_len` long: one byte shorter
    /// is below it, so the early return skips nothing the detectors would have found.
    #[test]
    fn the_shortest_redactable_texts_are_not_skipped() {
        let r = redactor();
        assert_eq!(r.min_len, 7);
        assert_eq!(r.text("a://:p@"), "a://:[REDACTED]@");
        assert_eq!(r.text("token=x"), "token=[REDACTED]");
        // The shortest shape without a `:` (tokens::SHORTEST bytes) still goes through it.
        let basic = "Basic QWxhZGRp";
        assert_eq!(basic.len(), tokens::SHORTEST);
        assert_eq!(r.text(basic), "Basic [REDACTED]");
        let mut cfg = IngestConfig {
            redact_keys: vec!["pw".into()],
            ..IngestConfig::default()
        };
        let short = Redactor::new(&cfg).unwrap();
        assert_eq!(short.min_len, 4);
        assert_eq!(short.text("pw=x"), "pw=[REDACTED]");
        cfg.redact.push(RedactRule {
            name: "one".into(),
            pattern: "q".into(),
            replacement: "Q".into(),
        });
        assert_eq!(Redactor::new(&cfg).unwrap().text("q"), "Q");
    }

    /// The per-thread memo of key names answers for the redactor that asked: two redactors
    /// with different keys, used in turn on one thread, each keep their own answer.
    #[test]
    fn key_memo_is_per_redactor() {
        let plain = redactor();
        let pw = Redactor::new(&IngestConfig {
            redact_keys: vec!["pw".into()],
            ..IngestConfig::default()
        })
        .unwrap();
        for _ in 0..3 {
            assert!(pw.is_secret_key("db_pw"));
            assert!(!plain.is_secret_key("db_pw"));
            assert!(plain.is_secret_key("db_password"));
            assert!(!pw.is_secret_key("db_password"));
        }
        let long = format!("{}_password", "x".repeat(MEMO_KEY_LEN));
        assert!(plain.is_secret_key(&long));
        assert!(!plain.is_secret_key("pwd"));
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

    #[test]
    fn a_rule_too_large_to_build_is_one_error_naming_it() {
        let mut cfg = IngestConfig::default();
        cfg.redact.push(RedactRule {
            name: "huge".into(),
            pattern: r"\w{1000}{1000}".into(),
            replacement: "x".into(),
        });
        let e = format!("{:#}", Redactor::new(&cfg).err().expect("refused"));
        assert!(e.contains("\"huge\"") && e.contains("size limit"), "{e}");
    }

    #[test]
    fn card_numbers_as_json_numbers() {
        let r = redactor();
        let mut v = serde_json::json!({"card": 4111111111111111u64, "n": [5555555555554444u64], "id": 1700000000000u64, "neg": -4111111111111111i64});
        r.json(&mut v);
        assert_eq!(v["card"], CARD_MASK);
        assert_eq!(v["n"][0], CARD_MASK);
        assert_eq!(v["id"], 1700000000000u64);
        assert_eq!(v["neg"], -4111111111111111i64);
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
            if card::luhn(&d) {
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
