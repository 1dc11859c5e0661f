//! Credentials recognised by their shape wherever they stand, with no key naming them: URL
//! userinfo passwords, PEM private key blocks, JWTs, AWS access key ids, vendor tokens with a
//! known prefix (GitHub, GitLab, Slack, Stripe, Google API keys) and `Bearer`/`Basic`
//! credentials in free text. Each detector is one forward pass; none rescans what it passed.

use memchr::memmem;

use super::{Span, MASK};

/// The shortest text any detector here changes, but for a URL password (which holds a `:`):
/// `Basic ` or `Bearer ` and 8 credential bytes (14), a JWT (`eyJ` + 7, a dot, 4: 15), a vendor
/// token or AWS key id (15, 20), a PEM header (27).
pub const SHORTEST: usize = 14;

/// Whether `b` is only lower-case hex digits, `;`, `=`, `-` and the letters `s i m t x`
/// (journal cursors such as `s=…;i=…;b=…;m=…;t=…;x=…`, boot and invocation ids, UUIDs,
/// hashes): no shape here can be found in such text. Each shape needs some other byte:
/// `://`, the PEM armour's `BEGIN`, a JWT's `eyJ`, a letter of every vendor prefix
/// (`g o k r w I`), an AWS key id's upper-case prefix, the `r` of `Bearer`, and `Basic` the
/// space or tab after it.
pub fn cannot_hold(b: &[u8]) -> bool {
    /// The bytes that text may be made of, as a table.
    const SHAPELESS: [bool; 256] = {
        let mut t = [false; 256];
        let mut c = 0;
        while c < 256 {
            let b = c as u8;
            t[c] = b.is_ascii_digit()
                || matches!(
                    b,
                    b'a'..=b'f' | b's' | b'i' | b'm' | b't' | b'x' | b';' | b'=' | b'-'
                );
            c += 1;
        }
        t
    };
    b.iter().all(|&c| SHAPELESS[usize::from(c)])
}

/// All shape detectors over `s`, spans in order and disjoint.
pub fn spans(s: &str, out: &mut Vec<Span>) {
    let b = s.as_bytes();
    let mut found = Vec::new();
    pem_blocks(b, &mut found);
    url_passwords(b, &mut found);
    words(b, &mut found);
    found.sort_unstable_by_key(|&(a, _)| a);
    let mut last = 0;
    for (a, e) in found {
        // Detectors may overlap (a JWT inside a PEM body): the first span wins.
        if a < last {
            continue;
        }
        out.push(Span {
            start: a,
            end: e,
            with: MASK.into(),
        });
        last = e;
    }
}

/// `-----BEGIN ... PRIVATE KEY-----` up to `-----END`: the body goes, the armour lines stay so
/// the reader sees what was there. Bodies may hold real newlines (a JSON string decoded) or
/// `\n` escapes (a JSON line read as text). A block with no END loses the rest of its base64.
fn pem_blocks(b: &[u8], out: &mut Vec<(usize, usize)>) {
    const BEGIN: &[u8] = b"-----BEGIN ";
    const TAIL: &[u8] = b"PRIVATE KEY-----";
    // Built once: `memmem::find` would build its searcher for every string redacted.
    static FIND_BEGIN: std::sync::LazyLock<memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memmem::Finder::new(BEGIN));
    let mut from = 0;
    let mut no_end = false;
    while let Some(i) = FIND_BEGIN.find(&b[from..]).map(|i| from + i) {
        let mut h = i + BEGIN.len();
        // Label words: "RSA ", "EC ", "OPENSSH ", "ENCRYPTED "; bounded, so the header check is
        // constant work per BEGIN.
        while h < b.len() && h - i < 48 && (b[h].is_ascii_uppercase() || b[h] == b' ') {
            if b[h..].starts_with(TAIL) {
                break;
            }
            h += 1;
        }
        if !b[h..].starts_with(TAIL) {
            from = i + BEGIN.len();
            continue;
        }
        let body = h + TAIL.len();
        static FIND_END: std::sync::LazyLock<memmem::Finder<'static>> =
            std::sync::LazyLock::new(|| memmem::Finder::new(b"-----END "));
        let end = if no_end {
            None
        } else {
            FIND_END.find(&b[body..]).map(|e| body + e)
        };
        let stop = match end {
            Some(e) => e,
            None => {
                no_end = true;
                let mut e = body;
                while e < b.len()
                    && (b[e].is_ascii_alphanumeric()
                        || matches!(b[e], b'+' | b'/' | b'=' | b'\\' | b':' | b',' | b'-')
                        || b[e].is_ascii_whitespace())
                {
                    e += 1;
                }
                e
            }
        };
        if stop > body {
            out.push((body, stop));
        }
        from = stop.max(body);
    }
}

/// The password of `scheme://user:password@host`: everything after the first `:` of the
/// userinfo up to its last `@`.
fn url_passwords(b: &[u8], out: &mut Vec<(usize, usize)>) {
    // Built once: `memmem::find_iter` builds a searcher on every call, which cost more than
    // the search itself on the short strings (most attrs values) redaction sees.
    static FIND_SCHEME_END: std::sync::LazyLock<memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memmem::Finder::new(b"://"));
    for p in FIND_SCHEME_END.find_iter(b) {
        // A scheme: a letter, then letters, digits, `+ - .`.
        let mut k = p;
        while k > 0
            && p - k < 32
            && (b[k - 1].is_ascii_alphanumeric() || matches!(b[k - 1], b'+' | b'-' | b'.'))
        {
            k -= 1;
        }
        if k == p || !b[k].is_ascii_alphabetic() {
            continue;
        }
        let start = p + 3;
        let mut colon = None;
        let mut at = None;
        let mut e = start;
        // The authority ends at `/ ? #`, whitespace or quoting: the scan stops at the next
        // `://` at the latest, so no byte is passed twice.
        while e < b.len()
            && !b[e].is_ascii_whitespace()
            && !matches!(
                b[e],
                b'/' | b'?'
                    | b'#'
                    | b'"'
                    | b'\''
                    | b'<'
                    | b'>'
                    | b'\\'
                    | b'['
                    | b']'
                    | b'{'
                    | b'}'
                    | b'`'
            )
        {
            match b[e] {
                b':' if colon.is_none() && at.is_none() => colon = Some(e),
                b'@' => at = Some(e),
                _ => {}
            }
            e += 1;
        }
        if let (Some(c), Some(a)) = (colon, at) {
            if a > c + 1 {
                out.push((c + 1, a));
            }
        }
    }
}

/// Bytes of a bearer credential (RFC 6750 b64token) and of JWT segments' joins.
fn is_b64token_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// One pass over runs of `[A-Za-z0-9_.-]`: JWTs whole, else each dot-separated word for a
/// vendor prefix or an AWS key id, and `Bearer`/`Basic` followed by a credential.
fn words(b: &[u8], out: &mut Vec<(usize, usize)>) {
    /// Letters, digits, `_`, `-` and `.`, as a table: this loop visits every byte of every
    /// redacted string.
    const RUN: [bool; 256] = {
        let mut t = [false; 256];
        let mut c = 0;
        while c < 256 {
            let b = c as u8;
            t[c] = b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || b == b'.';
            c += 1;
        }
        t
    };
    let in_run = |c: u8| RUN[usize::from(c)];
    let mut i = 0;
    while i < b.len() {
        if !in_run(b[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < b.len() && in_run(b[i]) {
            i += 1;
        }
        let mut end = i;
        while end > start && b[end - 1] == b'.' {
            end -= 1;
        }
        let run = &b[start..end];
        if is_jwt(run) {
            out.push((start, end));
            continue;
        }
        // An unsigned JWT ends in its dot (`header.payload.`).
        if end < i && is_jwt(&b[start..end + 1]) {
            out.push((start, end + 1));
            continue;
        }
        let mut w = start;
        while w < end {
            let mut we = w;
            while we < end && b[we] != b'.' {
                we += 1;
            }
            let word = &b[w..we];
            // The shortest vendor token or key id is 15 bytes; `Basic`/`Bearer` 5 or 6.
            if word.len() >= 15 && (is_vendor_token(word) || is_aws_key_id(word)) {
                out.push((w, we));
            } else if let Some(cred) = (matches!(word.len(), 5 | 6)
                && matches!(word[0], b'b' | b'B'))
            .then(|| auth_credential(b, w, we))
            .flatten()
            {
                out.push(cred);
                // The credential may run past this run (`+ / =`): carry on after it.
                if cred.1 > i {
                    i = cred.1;
                    break;
                }
            }
            w = we + 1;
        }
    }
}

/// `header.payload.signature`, base64url, header and payload JSON objects (`eyJ` is `{"`);
/// an empty signature (`alg: none`) still counts, and so do JWE's five parts.
fn is_jwt(run: &[u8]) -> bool {
    if !run.starts_with(b"eyJ") {
        return false;
    }
    let mut parts = run.split(|&c| c == b'.');
    let (Some(header), Some(payload)) = (parts.next(), parts.next()) else {
        return false;
    };
    let rest = parts.count();
    header.len() >= 10
        && payload.len() >= 4
        && (rest == 1 || rest == 3)
        && run
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.'))
}

/// Vendor token prefixes and the least length of what follows each.
const PREFIXES: &[(&[u8], usize)] = &[
    (b"ghp_", 30),
    (b"gho_", 30),
    (b"ghu_", 30),
    (b"ghs_", 30),
    (b"ghr_", 30),
    (b"github_pat_", 20),
    (b"glpat-", 20),
    (b"xoxb-", 10),
    (b"xoxp-", 10),
    (b"xoxa-", 10),
    (b"xoxr-", 10),
    (b"xoxs-", 10),
    (b"xoxe-", 10),
    (b"sk_live_", 16),
    (b"rk_live_", 16),
    (b"sk_test_", 16),
    (b"rk_test_", 16),
    (b"whsec_", 24),
    (b"AIza", 30),
];

/// Vendor tokens by prefix, with the length of what follows so a bare prefix or a short word
/// (`sk_live_mode`) is not taken.
fn is_vendor_token(w: &[u8]) -> bool {
    // The prefixes' first bytes (a test checks the list): most words (ids, hex, paths) start
    // otherwise and skip the prefix compares.
    if !matches!(w.first(), Some(b'g' | b'x' | b's' | b'r' | b'w' | b'A')) {
        return false;
    }
    PREFIXES.iter().any(|&(p, min)| {
        // Real tokens are random: some digit or capital among what follows the prefix.
        w.strip_prefix(p).is_some_and(|rest| {
            rest.len() >= min
                && rest
                    .iter()
                    .any(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
        })
    })
}

/// `AKIA` (long-term) or `ASIA` (temporary) and 16 upper-case letters or digits.
fn is_aws_key_id(w: &[u8]) -> bool {
    w.len() == 20
        && (w.starts_with(b"AKIA")
            || w.starts_with(b"ASIA")
            || w.starts_with(b"ABIA")
            || w.starts_with(b"ACCA"))
        && w[4..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
}

/// After a word `Bearer` or `Basic` (any case) and spaces, a credential: at least 8 token bytes
/// and not a plain lower-case word ("Bearer token expired", "basic authentication").
fn auth_credential(b: &[u8], w: usize, we: usize) -> Option<(usize, usize)> {
    let word = &b[w..we];
    let basic = word.eq_ignore_ascii_case(b"basic");
    if !(basic || word.eq_ignore_ascii_case(b"bearer")) {
        return None;
    }
    // The word itself must stand alone: not `x-bearer`, not `bearer.x`.
    if (w > 0 && is_b64token_byte(b[w - 1])) || b.get(we).is_some_and(|&c| c != b' ' && c != b'\t')
    {
        return None;
    }
    let mut c = we;
    while c < b.len() && c - we < 8 && matches!(b[c], b' ' | b'\t') {
        c += 1;
    }
    let cs = c;
    while c < b.len() && is_b64token_byte(b[c]) {
        c += 1;
    }
    let mut ce = c;
    while ce > cs && b[ce - 1] == b'.' {
        ce -= 1;
    }
    let cred = &b[cs..ce];
    let plain_word = cred.iter().all(u8::is_ascii_lowercase)
        || (cred[..cred.len().min(1)].iter().all(u8::is_ascii_uppercase)
            && cred.iter().skip(1).all(u8::is_ascii_lowercase));
    let shaped = if basic {
        cred.iter()
            .all(|&c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'='))
    } else {
        true
    };
    (cs > we && cred.len() >= 8 && !plain_word && shaped).then_some((cs, ce))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn masked(s: &str) -> String {
        let mut v = Vec::new();
        spans(s, &mut v);
        super::super::splice(s, &v).unwrap_or_else(|| s.to_string())
    }

    #[test]
    fn every_vendor_prefix_passes_the_first_byte_test() {
        for (p, min) in PREFIXES {
            let mut w = p.to_vec();
            w.extend(std::iter::repeat_n(b'A', *min));
            assert!(is_vendor_token(&w), "{}", String::from_utf8_lossy(p));
        }
    }

    proptest::proptest! {
        #[test]
        fn shapeless_text_holds_no_shape(
            s in "(basic|[0-9a-fsimtx;=-]){0,60}",
            t in "(basic |bearer |[0-9a-fA-Fsimtxyz;=: /._-]){0,60}",
        ) {
            for s in [&s, &t] {
                let mut v = Vec::new();
                spans(s, &mut v);
                proptest::prop_assert!(!cannot_hold(s.as_bytes()) || v.is_empty(), "{}", s);
            }
            proptest::prop_assert!(cannot_hold(s.as_bytes()));
        }
    }

    #[test]
    fn shapes() {
        assert_eq!(
            masked("connect postgres://admin:S3cret@db:5432/app failed"),
            "connect postgres://admin:[REDACTED]@db:5432/app failed"
        );
        assert_eq!(
            masked("git@github.com:x/y ssh://git@host/r"),
            "git@github.com:x/y ssh://git@host/r"
        );
        assert_eq!(
            masked("t=eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl ok"),
            "t=[REDACTED] ok"
        );
        assert_eq!(
            masked("key AKIAIOSFODNN7EXAMPLE used"),
            "key [REDACTED] used"
        );
        assert_eq!(
            masked("auth=\"Bearer abcDEF123456.x\""),
            "auth=\"Bearer [REDACTED]\""
        );
        assert_eq!(masked("Bearer token expired"), "Bearer token expired");
        assert_eq!(masked("Bearer Bearer Bearer"), "Bearer Bearer Bearer");
        assert_eq!(
            masked(
                "-----BEGIN RSA PRIVATE KEY-----\\nMIIEow\\nabc=\\n-----END RSA PRIVATE KEY-----"
            ),
            "-----BEGIN RSA PRIVATE KEY-----[REDACTED]-----END RSA PRIVATE KEY-----"
        );
        assert_eq!(
            masked("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"),
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----"
        );
    }
}
