//! Secret key names and their values in free text: a key is secret when a configured key
//! appears in it as whole words (`secret_key`, `X-Api-Key`, `clientSecret`), and `key=value`,
//! `key: value`, `"key": "value"` in text lose their value. One forward pass over the text.

use super::{Span, MASK};

/// Longest key a free-text scan walks back over; longer runs of key characters are not keys,
/// and the bound keeps the walk (and so the pass) linear on long key-like text.
const MAX_KEY: usize = 128;

/// The configured secret keys, each as its words run together in lower case
/// ("set-cookie" -> "setcookie").
pub struct Keys {
    squashed: Vec<Vec<u8>>,
    /// First bytes of the squashed keys: a word starting otherwise starts no match.
    first: [bool; 256],
    /// Length of the shortest squashed key: shorter key names are never secret.
    shortest: usize,
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b >= 0x80
}

/// The next word of a key at or after `from`: a run of letters and digits (any non-ASCII byte
/// counts as a letter), split again at camelCase boundaries (`clientSecret` -> client, Secret;
/// `APIKey` -> API, Key). Everything else (`_ - . :` space...) separates words.
fn next_word(key: &[u8], mut from: usize) -> Option<(usize, usize)> {
    while from < key.len() && !is_word(key[from]) {
        from += 1;
    }
    if from >= key.len() {
        return None;
    }
    let mut i = from + 1;
    while i < key.len() && is_word(key[i]) {
        let (p, c) = (key[i - 1], key[i]);
        let lower_to_upper =
            (p.is_ascii_lowercase() || p.is_ascii_digit()) && c.is_ascii_uppercase();
        let acronym_end = p.is_ascii_uppercase()
            && c.is_ascii_uppercase()
            && key.get(i + 1).is_some_and(u8::is_ascii_lowercase);
        if lower_to_upper || acronym_end {
            break;
        }
        i += 1;
    }
    Some((from, i))
}

/// Whether whole words of `key` from `at` on spell `s` (ASCII case ignored).
fn spells(key: &[u8], mut at: usize, s: &[u8]) -> bool {
    let mut matched = 0;
    while let Some((a, b)) = next_word(key, at) {
        let word = &key[a..b];
        let rest = &s[matched..];
        if word.len() > rest.len() || !word.eq_ignore_ascii_case(&rest[..word.len()]) {
            return false;
        }
        matched += word.len();
        if matched == s.len() {
            return true;
        }
        at = b;
    }
    false
}

/// A key's words run together in lower case, with where each word starts (bit i: a word
/// starts at byte i of `bytes`), for keys whose squashed form fits in 64 bytes.
struct Squashed {
    bytes: [u8; 64],
    len: usize,
    starts: u64,
}

impl Squashed {
    /// The words `next_word` finds, in one pass; None when they do not fit.
    fn of(key: &[u8]) -> Option<Squashed> {
        let mut sq = Squashed {
            bytes: [0; 64],
            len: 0,
            starts: 0,
        };
        let mut prev: Option<u8> = None;
        for (i, &c) in key.iter().enumerate() {
            if !is_word(c) {
                prev = None;
                continue;
            }
            let start = match prev {
                None => true,
                Some(p) => {
                    let lower_to_upper =
                        (p.is_ascii_lowercase() || p.is_ascii_digit()) && c.is_ascii_uppercase();
                    let acronym_end = p.is_ascii_uppercase()
                        && c.is_ascii_uppercase()
                        && key.get(i + 1).is_some_and(u8::is_ascii_lowercase);
                    lower_to_upper || acronym_end
                }
            };
            if sq.len == 64 {
                return None;
            }
            if start {
                sq.starts |= 1u64 << sq.len;
            }
            sq.bytes[sq.len] = c.to_ascii_lowercase();
            sq.len += 1;
            prev = Some(c);
        }
        Some(sq)
    }
}

impl Keys {
    pub fn new<S: AsRef<str>>(configured: &[S]) -> Keys {
        let mut squashed: Vec<Vec<u8>> = Vec::new();
        for k in configured {
            let k = k.as_ref().as_bytes();
            let mut s = Vec::new();
            let mut at = 0;
            while let Some((a, b)) = next_word(k, at) {
                s.extend(k[a..b].iter().map(u8::to_ascii_lowercase));
                at = b;
            }
            if !s.is_empty() && !squashed.contains(&s) {
                squashed.push(s);
            }
        }
        let mut first = [false; 256];
        for s in &squashed {
            first[usize::from(s[0])] = true;
        }
        let shortest = squashed.iter().map(Vec::len).min().unwrap_or(0);
        Keys {
            squashed,
            first,
            shortest,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.squashed.is_empty()
    }

    /// Length of the shortest configured key's squashed form (None: no keys). A key name is
    /// at least that long.
    pub fn shortest(&self) -> Option<usize> {
        (!self.squashed.is_empty()).then_some(self.shortest)
    }

    /// Whether a key of this name holds a secret: some run of its whole words, joined, is a
    /// configured key. `db_password`, `x-api-key`, `apiKey`, `aws_secret_access_key` match;
    /// `wtoken`, `tokenizer`, `secretary` do not, and neither do plurals (`tokens_used`,
    /// `passwords_reset`): a plural key names a count or a list far more often than it holds a
    /// secret, and a config that wants one lists it.
    pub fn is_secret(&self, key: &str) -> bool {
        let key = key.as_bytes();
        if self.squashed.is_empty() || key.len() < self.shortest {
            return false;
        }
        match Squashed::of(key) {
            Some(sq) => self.matches_squashed(&sq),
            None => self.is_secret_by_words(key),
        }
    }

    /// `is_secret` on a key squashed in one pass: a configured key matches at a word start when
    /// the squashed text goes on with it and a word ends right after it (whole words from that
    /// start spell it; the words of a key are contiguous in its squashed form).
    fn matches_squashed(&self, sq: &Squashed) -> bool {
        let text = &sq.bytes[..sq.len];
        let mut starts = sq.starts;
        while starts != 0 {
            let p = starts.trailing_zeros() as usize;
            starts &= starts - 1;
            if !self.first[usize::from(text[p])] {
                continue;
            }
            for s in &self.squashed {
                let end = p + s.len();
                if end <= sq.len
                    && text[p..end] == s[..]
                    && (end == sq.len || sq.starts & (1u64 << end) != 0)
                {
                    return true;
                }
            }
        }
        false
    }

    /// `is_secret` word by word, for keys too long to squash on the stack.
    fn is_secret_by_words(&self, key: &[u8]) -> bool {
        let mut at = 0;
        while let Some((a, b)) = next_word(key, at) {
            if self.first[usize::from(key[a].to_ascii_lowercase())]
                && self
                    .squashed
                    .iter()
                    .any(|s| s[0] == key[a].to_ascii_lowercase() && spells(key, a, s))
            {
                return true;
            }
            at = b;
        }
        false
    }

    /// Spans of the values of secret keys in free text, in order and disjoint.
    pub fn text_spans(&self, s: &str, spans: &mut Vec<Span>) {
        if self.squashed.is_empty() {
            return;
        }
        let b = s.as_bytes();
        let mut cursor = 0;
        // Once a closing quote of a kind is not found, none is found later either: remembering
        // it keeps unclosed quotes from making each later value scan to the end of the line.
        let mut no_close = [false; 3];
        for p in memchr::memchr2_iter(b'=', b':', b) {
            if p < cursor {
                continue;
            }
            let Some(key) = key_before(b, p) else {
                continue;
            };
            if !self.is_secret(&s[key.0..key.1]) {
                continue;
            }
            let Some((vs, ve, quote)) = value_after(b, p + 1, &mut no_close) else {
                continue;
            };
            let masked = match quote {
                Quote::None => MASK.to_string(),
                Quote::Double => format!("\"{MASK}\""),
                Quote::Single => format!("'{MASK}'"),
                Quote::Escaped => format!("\\\"{MASK}\\\""),
            };
            spans.push(Span {
                start: vs,
                end: ve,
                with: masked.into(),
            });
            cursor = ve;
        }
    }
}

fn is_key_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'_' | b'-' | b'.')
}

/// The key ending just before the separator at `p`: `key=`, `key = `, `"key":`, `\"key\":`.
fn key_before(b: &[u8], p: usize) -> Option<(usize, usize)> {
    let mut e = p;
    while e > 0 && matches!(b[e - 1], b' ' | b'\t') {
        e -= 1;
    }
    if e > 0 && matches!(b[e - 1], b'"' | b'\'') {
        e -= 1;
        if e > 0 && b[e - 1] == b'\\' {
            e -= 1;
        }
    }
    let mut k = e;
    while k > 0 && e - k <= MAX_KEY && is_key_byte(b[k - 1]) {
        k -= 1;
    }
    (k < e && e - k <= MAX_KEY).then_some((k, e))
}

#[derive(Clone, Copy)]
enum Quote {
    None,
    Double,
    Single,
    Escaped,
}

fn is_value_byte(c: u8) -> bool {
    !c.is_ascii_whitespace()
        && !matches!(
            c,
            b',' | b';'
                | b'&'
                | b'"'
                | b'\''
                | b'<'
                | b'>'
                | b'{'
                | b'}'
                | b'['
                | b']'
                | b'('
                | b')'
        )
}

/// The value starting at `v` (after the separator): a quoted string (quotes included) or a
/// bare run, with a leading `Bearer `/`Basic `/`Digest `/`Token ` taken with it.
fn value_after(b: &[u8], mut v: usize, no_close: &mut [bool; 3]) -> Option<(usize, usize, Quote)> {
    while v < b.len() && matches!(b[v], b' ' | b'\t') {
        v += 1;
    }
    let start = v;
    // An auth scheme word and its spaces belong to the value.
    let mut w = v;
    while w < b.len() && b[w].is_ascii_alphabetic() && w - v < 7 {
        w += 1;
    }
    let scheme = &b[v..w];
    if ["bearer", "basic", "digest", "token"]
        .iter()
        .any(|s| scheme.eq_ignore_ascii_case(s.as_bytes()))
        && w < b.len()
        && matches!(b[w], b' ' | b'\t')
    {
        v = w;
        while v < b.len() && matches!(b[v], b' ' | b'\t') {
            v += 1;
        }
    }
    let quote = match (b.get(v), b.get(v + 1)) {
        (Some(b'"'), _) if v == start => Some((Quote::Double, 0usize)),
        (Some(b'\''), _) if v == start => Some((Quote::Single, 1)),
        (Some(b'\\'), Some(b'"')) if v == start => Some((Quote::Escaped, 2)),
        _ => None,
    };
    if let Some((q, slot)) = quote {
        if !no_close[slot] {
            let open = if matches!(q, Quote::Escaped) { 2 } else { 1 };
            if let Some(close) = closing(b, v + open, q) {
                // The span takes the quotes; the mask puts them back.
                return Some((v, close + open, q)).filter(|_| close > v + open);
            }
            no_close[slot] = true;
        }
        // Unclosed: mask what follows the quote as a bare value.
        let vs = v + if matches!(q, Quote::Escaped) { 2 } else { 1 };
        let mut e = vs;
        while e < b.len() && is_value_byte(b[e]) && b[e] != b'\\' {
            e += 1;
        }
        return (e > vs).then_some((vs, e, Quote::None));
    }
    let mut e = v;
    while e < b.len() && is_value_byte(b[e]) {
        e += 1;
    }
    // A scheme word with nothing after it is the value itself.
    if e == v && v > start {
        e = w;
    }
    (e > start).then_some((start, e, Quote::None))
}

/// Where the quoted string opened before `from` closes (the index of its closing quote).
fn closing(b: &[u8], from: usize, q: Quote) -> Option<usize> {
    match q {
        Quote::Escaped => memchr::memmem::find(&b[from..], b"\\\"").map(|i| from + i),
        Quote::Single => memchr::memchr(b'\'', &b[from..]).map(|i| from + i),
        Quote::Double | Quote::None => {
            let mut i = from;
            while let Some(j) = memchr::memchr2(b'"', b'\\', &b[i..]) {
                let at = i + j;
                if b[at] == b'"' {
                    return Some(at);
                }
                i = at + 2;
                if i >= b.len() {
                    return None;
                }
            }
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn keys() -> Keys {
        Keys::new(crate::config::DEFAULT_REDACT_KEYS)
    }

    #[test]
    fn whole_words_of_the_key() {
        let k = keys();
        for key in [
            "password",
            "db_password",
            "secret_key",
            "aws_secret_access_key",
            "AWS_SECRET_ACCESS_KEY",
            "private-key",
            "private_key",
            "privateKey",
            "x-api-key",
            "X-Api-Key",
            "apiKey",
            "APIKey",
            "apikey",
            "clientSecret",
            "accessToken",
            "access_token",
            "accesstoken",
            "Set-Cookie",
            "x-auth-token",
            "Authorization",
            "user.password",
        ] {
            assert!(k.is_secret(key), "{key} should be secret");
        }
        for key in [
            "wtoken",
            "tokenizer",
            "tokens_used",
            "secretary",
            "api",
            "key",
            "cache_key",
            "passwords_reset",
            "mytoken",
            "apikeys",
            "",
        ] {
            assert!(!k.is_secret(key), "{key} should not be secret");
        }
    }

    proptest! {
        /// The one-pass check answers as the word-by-word walk does, on keys built from the
        /// configured words, their pieces and near misses in any case and with any separators.
        #[test]
        fn squashed_check_agrees_with_the_word_walk(
            parts in prop::collection::vec(
                prop_oneof![
                    prop::sample::select(vec![
                        "password", "Passwd", "TOKEN", "access", "Token", "refresh", "secret",
                        "Secret", "api", "API", "Key", "key", "private", "authorization",
                        "cookie", "Set", "set", "tokens", "x", "db", "aws", "pass", "word",
                        "é", "Ü", "9",
                    ]).prop_map(str::to_string),
                    "[a-zA-Z0-9_.: -]{0,6}",
                ],
                0..8,
            ),
            seps in prop::collection::vec(
                prop::sample::select(vec!["", "", "_", "-", ".", " ", ":"]), 8),
        ) {
            let k = keys();
            let mut key = String::new();
            for (i, p) in parts.iter().enumerate() {
                key.push_str(p);
                key.push_str(seps[i]);
            }
            let expect = key.len() >= k.shortest && k.is_secret_by_words(key.as_bytes());
            prop_assert_eq!(k.is_secret(&key), expect, "{:?}", key);
        }
    }

    #[test]
    fn long_keys_fall_back_to_the_word_walk() {
        let k = keys();
        let long = format!("{}_api_key", "a".repeat(80));
        assert!(k.is_secret(&long));
        assert!(!k.is_secret(&format!("{}_apikeys", "a".repeat(80))));
    }

    #[test]
    fn long_key_like_text_is_no_key() {
        let k = keys();
        let long = format!("{}token=abc", "a".repeat(MAX_KEY + 10));
        let mut spans = Vec::new();
        k.text_spans(&long, &mut spans);
        assert!(spans.is_empty());
    }
}
