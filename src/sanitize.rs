//! Makes text from data safe to print on a terminal. Log lines are attacker-controlled: raw
//! escape sequences can clear the screen, rewrite the title, plant hyperlinks (OSC 8), write the
//! clipboard (OSC 52) or reorder text (bidi overrides). Everything from the database passes
//! through `sanitize` before it reaches the terminal, after JSON decoding (where "\u001b" has
//! become a real ESC).

use std::borrow::Cow;

/// True for characters that must never reach the terminal as themselves.
pub fn is_unsafe(c: char) -> bool {
    matches!(c,
        '\u{0}'..='\u{8}' | '\u{a}'..='\u{1f}' | '\u{7f}'..='\u{9f}'
        | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}'
        | '\u{061c}' | '\u{feff}')
}

/// Replaces control characters with visible stand-ins: C0 as `^X` (tab becomes a space so
/// column layout survives), DEL and C1 and bidi controls as `<U+XXXX>`. An ESC sequence thus
/// shows as `^[[2J` instead of clearing the screen; nothing is silently dropped so an operator
/// can still see that a line was hostile.
pub fn sanitize(s: &str) -> Cow<'_, str> {
    if !s.chars().any(|c| c == '\t' || is_unsafe(c)) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\t' => out.push(' '),
            '\u{0}'..='\u{1f}' => {
                out.push('^');
                out.push((b'@' + c as u8) as char);
            }
            c if is_unsafe(c) => {
                out.push_str(&format!("<U+{:04X}>", c as u32));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Sanitizes into an owned String.
pub fn clean(s: &str) -> String {
    sanitize(s).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hostile_corpus_is_defused() {
        let corpus = [
            "\x1b[2J\x1b[H cleared",
            "\x1b]0;owned title\x07",
            "\x1b]8;;http://evil\x1b\\click\x1b]8;;\x1b\\",
            "\x1b]52;c;ZXZpbA==\x07",
            "\x1bP+q544e\x1b\\",
            "\u{9b}31m C1 CSI",
            "safe \u{202e}txt.exe\u{202c} \u{2066}x\u{2069}",
            "nul\0byte del\x7f",
        ];
        for line in corpus {
            let out = sanitize(line);
            assert!(!out.chars().any(is_unsafe), "{out:?}");
            assert!(!out.contains('\x1b'));
        }
        assert_eq!(sanitize("\x1b[2J"), "^[[2J");
        assert_eq!(sanitize("plain"), "plain");
    }

    proptest! {
        #[test]
        fn output_never_has_controls(s in any::<String>()) {
            let out = sanitize(&s);
            prop_assert!(!out.chars().any(|c| is_unsafe(c) || c == '\t'));
        }
    }
}
