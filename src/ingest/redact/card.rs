//! Card numbers (Luhn-checked) and US social security numbers in free text and JSON numbers, in
//! one forward pass. A number counts only as a whole token: digit groups of card lengths with
//! one consistent separator (none, single spaces, or single dashes in the 4-4-4-4 / 4-6-5
//! shapes), with a word boundary on both sides, so digits inside a longer id (`blk_-6952...`,
//! a UUID's parts, `id123456...`, `1.5`) are left alone.
//!
//! The old detector collected every digit run joined by spaces or dashes and then tried every
//! start against every end, building the digits of each candidate anew: cubic in the number of
//! groups, so a line of space-separated integers took minutes. Here each group is visited a
//! bounded number of times: a card has at most five groups, so only the few shapes starting at
//! each group are tried.

use super::{Span, CARD_MASK, SSN_MASK};

/// A maximal run of digit groups joined by single dashes ("2024-01-15", "4111-1111-...", or
/// one group), with whether it stands as a whole word.
#[derive(Clone, Copy)]
struct Token {
    start: usize,
    end: usize,
    /// Groups (start, end), at most `MAX_GROUPS` kept; `groups` counts them all.
    g: [(usize, usize); MAX_GROUPS],
    groups: usize,
    whole: bool,
}

const MAX_GROUPS: usize = 5;

/// Before a number: not part of a word, a decimal, a signed or dashed id.
fn clean_before(b: &[u8], start: usize) -> bool {
    start == 0 || {
        let c = b[start - 1];
        !(c.is_ascii_alphanumeric() || c >= 0x80 || matches!(c, b'_' | b'-' | b'.' | b'+' | b'@'))
    }
}

/// After a number: not followed by a word byte, nor by `-`, `.`, `+` or `@` that joins it to more.
fn clean_after(b: &[u8], end: usize) -> bool {
    match b.get(end) {
        None => true,
        Some(&c) if c.is_ascii_alphanumeric() || c >= 0x80 || c == b'_' || c == b'@' => false,
        Some(b'-' | b'.' | b'+') => !b
            .get(end + 1)
            .is_some_and(|n| n.is_ascii_alphanumeric() || *n >= 0x80 || *n == b'_'),
        Some(_) => true,
    }
}

fn digits_of(b: &[u8], groups: &[(usize, usize)], out: &mut [u8; 19]) -> Option<usize> {
    let mut n = 0;
    for &(a, e) in groups {
        for &c in &b[a..e] {
            if n == 19 {
                return None;
            }
            out[n] = c - b'0';
            n += 1;
        }
    }
    Some(n)
}

pub fn luhn(digits: &[u8]) -> bool {
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

/// 13 to 19 digits, an issuer's first digit (2-6: Mastercard 2/5, Amex/Diners/JCB 3, Visa 4,
/// Discover/UnionPay 6; this keeps epoch milliseconds and other long ids out), Luhn-valid.
pub fn is_card_digits(d: &[u8]) -> bool {
    (13..=19).contains(&d.len()) && (2..=6).contains(&d[0]) && luhn(d)
}

/// Group lengths of a card written in groups: 4-4-4-4 (and 4-4-4-1..3, 4-4-4-4-1..3 for 13-15
/// and 17-19 digits), 4-6-5 (Amex), 4-6-4 (Diners).
fn card_shape(lens: &[usize]) -> bool {
    match lens {
        [4, 6, 5] | [4, 6, 4] => true,
        [4, 4, 4, last] | [4, 4, 4, 4, last] => (1..=4).contains(last),
        _ => false,
    }
}

fn is_card(b: &[u8], groups: &[(usize, usize)]) -> bool {
    if groups.len() > 1 {
        let mut lens = [0; MAX_GROUPS];
        for (l, &(a, e)) in lens.iter_mut().zip(groups) {
            *l = e - a;
        }
        if !card_shape(&lens[..groups.len()]) {
            return false;
        }
    }
    let mut d = [0; 19];
    matches!(digits_of(b, groups, &mut d), Some(n) if is_card_digits(&d[..n]))
}

fn is_ssn(b: &[u8], t: &Token) -> bool {
    if t.groups != 3 {
        return false;
    }
    let part = |i: usize| &b[t.g[i].0..t.g[i].1];
    let (area, group, serial) = (part(0), part(1), part(2));
    area.len() == 3
        && group.len() == 2
        && serial.len() == 4
        && area != b"000"
        && area != b"666"
        && area[0] != b'9'
        && group != b"00"
        && serial != b"0000"
}

/// The next dash-joined digit token at or after `i`.
fn next_token(b: &[u8], mut i: usize) -> Option<Token> {
    while i < b.len() && !b[i].is_ascii_digit() {
        i += 1;
    }
    if i >= b.len() {
        return None;
    }
    let start = i;
    let mut t = Token {
        start,
        end: start,
        g: [(0, 0); MAX_GROUPS],
        groups: 0,
        whole: false,
    };
    loop {
        let gs = i;
        while i < b.len() && b[i].is_ascii_digit() {
            i += 1;
        }
        if t.groups < MAX_GROUPS {
            t.g[t.groups] = (gs, i);
        }
        t.groups += 1;
        if i + 1 < b.len() && b[i] == b'-' && b[i + 1].is_ascii_digit() {
            i += 1;
        } else {
            break;
        }
    }
    t.end = i;
    t.whole = clean_before(b, start) && clean_after(b, i);
    Some(t)
}

/// Whether `b` may hold a card or an SSN: every candidate `spans` looks at (digit groups joined
/// by single dashes or spaces) lies within one stretch of digits, spaces and dashes, and has 9
/// digits at least (an SSN; a card 13). Text without such a stretch needs no `spans`.
pub fn may_hold(b: &[u8]) -> bool {
    let mut digits = 0;
    for &c in b {
        if c.is_ascii_digit() {
            digits += 1;
            if digits >= 9 {
                return true;
            }
        } else if c != b' ' && c != b'-' {
            digits = 0;
        }
    }
    false
}

/// Card and SSN spans of `s`, in order and disjoint.
pub fn spans(s: &str, cards: bool, ssn: bool, out: &mut Vec<Span>) {
    let b = s.as_bytes();
    // Single-group whole tokens joined by single spaces: a card written in space groups (or
    // a plain one) is a stretch of such a run.
    let mut run: Vec<(usize, usize)> = Vec::new();
    let mut at = 0;
    let mut push = |a: usize, e: usize, with: &'static str| {
        out.push(Span {
            start: a,
            end: e,
            with: with.into(),
        })
    };
    let flush = |run: &mut Vec<(usize, usize)>,
                 push: &mut dyn FnMut(usize, usize, &'static str)| {
        let mut i = 0;
        while i < run.len() {
            // Grouped cards start with a group of four, longest shape first (five groups,
            // four, three); a plain one is one group of 13 to 19 digits.
            let first = run[i].1 - run[i].0;
            let found = if first == 4 {
                [5usize, 4, 3]
                    .into_iter()
                    .filter(|n| i + n <= run.len())
                    .find(|&n| is_card(b, &run[i..i + n]))
            } else {
                ((13..=19).contains(&first) && is_card(b, &run[i..i + 1])).then_some(1)
            };
            match found {
                Some(n) => {
                    push(run[i].0, run[i + n - 1].1, CARD_MASK);
                    i += n;
                }
                None => i += 1,
            }
        }
        run.clear();
    };
    while let Some(t) = next_token(b, at) {
        at = t.end;
        let single = t.groups == 1 && t.whole;
        if !single
            || run
                .last()
                .is_some_and(|&(_, e)| !(e + 1 == t.start && b[e] == b' '))
        {
            if cards {
                flush(&mut run, &mut push);
            }
            run.clear();
        }
        if single {
            run.push((t.start, t.end));
            continue;
        }
        if !t.whole || t.groups > MAX_GROUPS {
            continue;
        }
        if cards && is_card(b, &t.g[..t.groups]) {
            push(t.start, t.end, CARD_MASK);
        } else if ssn && is_ssn(b, &t) {
            push(t.start, t.end, SSN_MASK);
        }
    }
    if cards {
        flush(&mut run, &mut push);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(s: &str) -> String {
        let mut v = Vec::new();
        spans(s, true, true, &mut v);
        super::super::splice(s, &v).unwrap_or_else(|| s.to_string())
    }

    #[test]
    fn whole_tokens_only() {
        assert_eq!(masked("card 4111 1111 1111 1111."), "card [REDACTED:card].");
        assert_eq!(masked("card 4111-1111-1111-1111"), "card [REDACTED:card]");
        assert_eq!(
            masked("amex 3782-822463-10005 ok"),
            "amex [REDACTED:card] ok"
        );
        assert_eq!(
            masked("order 12 card 4111 1111 1111 1111"),
            "order 12 card [REDACTED:card]"
        );
        assert_eq!(
            masked("{\"n\":4111111111111111}"),
            "{\"n\":[REDACTED:card]}"
        );
        for s in [
            "blk_-6952295868487656571 replicated",
            "blk_4111111111111111",
            "id4111111111111111",
            "x-4111-1111-1111-1111",
            "4111-1111-1111-1111-9",
            "4111 1111-1111 1111",
            "v=0.4111111111111111",
            "550e8400-e29b-41d4-a716-446655440000 4111",
            "2024-01-15 10:00:00.123",
            "ssn 123-45-6789-1",
        ] {
            assert_eq!(masked(s), s);
        }
        assert_eq!(masked("ssn 123-45-6789"), "ssn [REDACTED:ssn]");
    }

    proptest::proptest! {
        /// Text `may_hold` passes over has no span: the pre-check never hides a card or an SSN.
        #[test]
        fn may_hold_never_hides_a_number(
            s in "([0-9]{1,5}|[ -]|[a-f.x;=_+@]){0,24}",
            card in proptest::sample::select(vec!["", "4111 1111 1111 1111", "378282246310005", "123-45-6789"]),
            at in 0usize..24,
        ) {
            let mut s = s;
            let at = (0..=at.min(s.len())).rev().find(|&i| s.is_char_boundary(i)).unwrap_or(0);
            s.insert_str(at, card);
            let mut v = Vec::new();
            spans(&s, true, true, &mut v);
            proptest::prop_assert!(may_hold(s.as_bytes()) || v.is_empty(), "{:?}", s);
        }
    }
}
