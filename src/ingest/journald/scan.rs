//! A reader of the one JSON layout `journalctl -o json` prints: an object of `"KEY":"value"`
//! members with no whitespace, the values strings or byte arrays. It gives what the serde
//! reader of `open` gives (a key and a `Field` per member) in fewer instructions (`open` of
//! the ingest bench's generated journald lines: 19.5k to 15.7k a line, callgrind; the rest is
//! the attrs' copy and sort): serde spends much of an entry on
//! its generic machinery (calls per token, a visitor per string), while here a member is two
//! searches for the next quote and a few byte compares, and a member standing whole in the
//! line is copied into the attrs as one piece.
//!
//! It never decides anything serde would decide otherwise: whatever it does not know (spaces,
//! numbers, null, nested values, surrogate escapes, control bytes, an empty object) makes it
//! give up (`None`) and `open` reads the line with serde from the start, so malformed lines
//! get serde's errors and odd ones serde's values.

use std::borrow::Cow;

use serde_json::Value;

use super::Field;

pub(super) struct Scanner<'a> {
    json: &'a str,
    /// The next byte to read.
    pos: usize,
    /// Where the current member's key starts (its opening quote), and whether the key was
    /// taken from the line as is.
    member_start: usize,
    key_plain: bool,
}

/// Whether any byte is an ASCII control byte: JSON strings cannot hold them raw (serde
/// rejects them) and between tokens they are whitespace, which this layout has none of.
/// Chunked so the test compiles to wide compares rather than a branch per byte.
fn has_control(b: &[u8]) -> bool {
    let mut chunks = b.chunks_exact(32);
    for c in &mut chunks {
        if c.iter().fold(false, |any, &x| any | (x < 0x20)) {
            return true;
        }
    }
    chunks.remainder().iter().any(|&x| x < 0x20)
}

/// The first `"` or `\\` of `b` at or after `from`. Most keys and values are short: they are
/// searched 8 bytes at a time here (a call of `memchr2` costs more than such a string's
/// search), and the rest of a long one with `memchr2`.
#[inline]
fn quote_or_backslash(b: &[u8], from: usize) -> Option<usize> {
    const ONES: u64 = u64::MAX / 255;
    let mut at = from;
    while at + 8 <= b.len() && at - from < 32 {
        let word = u64::from_le_bytes(b[at..at + 8].try_into().ok()?);
        let (q, s) = (
            word ^ (ONES * u64::from(b'"')),
            word ^ (ONES * u64::from(b'\\')),
        );
        // The high bit of each zero byte of q or s (and maybe of bytes after the first one,
        // which the lowest set bit never is).
        let hits = (q.wrapping_sub(ONES) & !q | s.wrapping_sub(ONES) & !s) & (ONES << 7);
        if hits != 0 {
            return Some(at + hits.trailing_zeros() as usize / 8);
        }
        at += 8;
    }
    memchr::memchr2(b'"', b'\\', &b[at..]).map(|i| at + i)
}

impl<'a> Scanner<'a> {
    /// A scanner of `json`, or None when the line is not in journalctl's layout at a glance.
    pub fn new(json: &'a str) -> Option<Scanner<'a>> {
        let b = json.as_bytes();
        if b.first() != Some(&b'{') || b.get(1) != Some(&b'"') || has_control(b) {
            return None;
        }
        Some(Scanner {
            json,
            pos: 1,
            member_start: 1,
            key_plain: false,
        })
    }

    /// The next member's key: Some(None) after the last member (and nothing but spaces after
    /// the object), None to give up.
    pub fn key(&mut self) -> Option<Option<Cow<'a, str>>> {
        let b = self.json.as_bytes();
        if self.pos > 1 {
            match b.get(self.pos)? {
                b',' => self.pos += 1,
                b'}' => {
                    // Trailing whitespace is allowed (serde's `end`); other control bytes
                    // than the ones `new` turned away are the only other whitespace.
                    let rest = &b[self.pos + 1..];
                    return rest.iter().all(|&c| c == b' ').then_some(None);
                }
                _ => return None,
            }
        }
        if b.get(self.pos) != Some(&b'"') {
            return None;
        }
        self.member_start = self.pos;
        let key = self.string()?;
        if b.get(self.pos) != Some(&b':') {
            return None;
        }
        self.pos += 1;
        self.key_plain = matches!(key, Cow::Borrowed(_));
        Some(Some(key))
    }

    /// The current member's value.
    pub fn value(&mut self) -> Option<Field<'a>> {
        match self.json.as_bytes().get(self.pos)? {
            b'"' => self.string().map(Field::Str),
            b'[' => self.byte_array().map(Field::Other),
            _ => None,
        }
    }

    /// Passes over the current member's value.
    pub fn skip_value(&mut self) -> Option<()> {
        let b = self.json.as_bytes();
        if b.get(self.pos) == Some(&b'"') {
            let start = self.pos + 1;
            let end = quote_or_backslash(b, start)?;
            if b[end] == b'"' {
                self.pos = end + 1;
                return Some(());
            }
        }
        self.value().map(drop)
    }

    /// The current member as the line has it (`"KEY":"value"`), when its key and its string
    /// value were both taken from the line as they are (no escapes), just after `value`.
    pub fn whole_member(&self) -> Option<&'a str> {
        self.key_plain
            .then(|| &self.json[self.member_start..self.pos])
    }

    /// The string at `pos` (on its opening quote), borrowed when it has no escapes.
    fn string(&mut self) -> Option<Cow<'a, str>> {
        let b = self.json.as_bytes();
        let start = self.pos + 1;
        let mut at = quote_or_backslash(b, start)?;
        if b[at] == b'"' {
            self.pos = at + 1;
            return Some(Cow::Borrowed(&self.json[start..at]));
        }
        // The closing quote first (the byte after a backslash is never it), for the room the
        // text needs at most: an escape is never shorter than what it stands for.
        let mut end = at;
        while b[end] == b'\\' {
            end = quote_or_backslash(b, (end + 2).min(b.len()))?;
        }
        let mut out = String::with_capacity(end - start);
        out.push_str(&self.json[start..at]);
        loop {
            // `at` is on a backslash.
            let c = match *b.get(at + 1)? {
                b'"' => '"',
                b'\\' => '\\',
                b'/' => '/',
                b'b' => '\x08',
                b'f' => '\x0c',
                b'n' => '\n',
                b'r' => '\r',
                b't' => '\t',
                b'u' => {
                    let hex = std::str::from_utf8(b.get(at + 2..at + 6)?).ok()?;
                    if !hex.bytes().all(|h| h.is_ascii_hexdigit()) {
                        return None;
                    }
                    // A surrogate (half of a pair, or a lone one) is not a char: serde
                    // decides what to make of it.
                    let c = char::from_u32(u32::from_str_radix(hex, 16).ok()?)?;
                    at += 4;
                    c
                }
                _ => return None,
            };
            out.push(c);
            let from = at + 2;
            at = quote_or_backslash(b, from)?;
            out.push_str(&self.json[from..at]);
            if b[at] == b'"' {
                self.pos = at + 1;
                // The value no longer stands as is in the line.
                self.key_plain = false;
                return Some(Cow::Owned(out));
            }
        }
    }

    /// `[n,n,...]` of integers 0 to 999 written plainly (a field that is not printable UTF-8),
    /// as serde's `Value` reads it.
    fn byte_array(&mut self) -> Option<Value> {
        let b = self.json.as_bytes();
        let mut at = self.pos + 1;
        let mut items = Vec::new();
        loop {
            let digits = b[at..].iter().take_while(|c| c.is_ascii_digit()).count();
            // No number at all, a leading zero (invalid JSON) or beyond the byte range.
            if digits == 0 || digits > 3 || (digits > 1 && b[at] == b'0') {
                return None;
            }
            let n = b[at..at + digits]
                .iter()
                .fold(0u64, |n, &d| n * 10 + u64::from(d - b'0'));
            items.push(Value::from(n));
            at += digits;
            match b.get(at)? {
                b',' => at += 1,
                b']' => break,
                _ => return None,
            }
        }
        self.pos = at + 1;
        self.key_plain = false;
        Some(Value::Array(items))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_word_search_finds_the_first_quote_or_backslash() {
        for len in 0..80 {
            for at in 0..=len {
                for stop in [b'"', b'\\'] {
                    for noise in [b'a', 0xc3, b'!', b'#', b'[', b']', 0xa2, 0xdc] {
                        let mut b = vec![noise; len];
                        if at < len {
                            b[at] = stop;
                            // A later one must not be taken for it.
                            if at + 1 < len {
                                b[len - 1] = b'"';
                            }
                        }
                        for from in [0, 1, 7, 9].into_iter().filter(|&f| f <= len) {
                            let want = b[from..]
                                .iter()
                                .position(|&c| c == b'"' || c == b'\\')
                                .map(|i| from + i);
                            assert_eq!(quote_or_backslash(&b, from), want, "{len} {at} {from}");
                        }
                    }
                }
            }
        }
    }
}
