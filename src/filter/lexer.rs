//! Splits a filter string into terms: `[-]key:value`, `[-]word`, `[-]"quoted phrase"`, and
//! comparisons `[-]field>=value` of the numeric fields and JSON attributes (`status>=500`,
//! `attrs.latency>100`). Positions are character offsets so the UI can put the cursor on the
//! mistake.

use super::{CmpOp, FilterError};

/// Names a comparison may start with: other `a>b` words stay text to search (a hint explains).
const COMPARABLE: [&str; 6] = [
    "status",
    "duration",
    "dur",
    "duration_ms",
    "repeat",
    "repeat_count",
];

/// `attrs.` starts a JSON attribute path, whose names keep their case and may hold digits,
/// `-` and `_` (`attrs.http.status_code`, `attrs.x-request-id`).
pub const ATTRS_PREFIX: &str = "attrs.";

/// One whitespace-separated piece of a filter, before its meaning is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawTerm {
    /// Character offset of the term's first character (the `-` when negated).
    pub pos: usize,
    pub negated: bool,
    /// `key` of `key:value`, lower-cased, with its character offset.
    pub key: Option<(String, usize)>,
    pub value: String,
    /// Character offset of the value's first character.
    pub value_pos: usize,
    /// The value was written in double quotes (a phrase, never a wildcard).
    pub quoted: bool,
    /// `key>=value` rather than `key:value`.
    pub op: Option<CmpOp>,
}

pub fn lex(input: &str) -> Result<Vec<RawTerm>, FilterError> {
    let chars: Vec<char> = input.chars().collect();
    let mut terms = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        if chars[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let mut negated = false;
        if chars[i] == '-' {
            negated = true;
            i += 1;
            if i >= chars.len() || chars[i].is_whitespace() {
                return Err(FilterError::new(
                    start,
                    "nothing after '-' (write -word to exclude)",
                ));
            }
        }
        // A key is a run of letters/underscore followed by ':' (never inside quotes), or an
        // `attrs.` path; a comparable name followed by `>`/`<` is a comparison.
        let mut key = None;
        let mut op = None;
        let key_start = i;
        let mut j = i;
        while j < chars.len() && (chars[j].is_ascii_alphabetic() || chars[j] == '_') {
            j += 1;
        }
        let mut name: String = chars[key_start..j].iter().collect::<String>();
        name.make_ascii_lowercase();
        let mut is_path = false;
        if name == "attrs" && chars.get(j) == Some(&'.') {
            is_path = true;
            j += 1;
            while j < chars.len()
                && (chars[j].is_alphanumeric() || matches!(chars[j], '_' | '-' | '.'))
            {
                j += 1;
            }
            name = format!(
                "{ATTRS_PREFIX}{}",
                chars[key_start + ATTRS_PREFIX.len()..j]
                    .iter()
                    .collect::<String>()
            );
        }
        if j > key_start && j < chars.len() && chars[j] == ':' {
            key = Some((name, key_start));
            i = j + 1;
        } else if j > key_start
            && matches!(chars.get(j), Some('<' | '>'))
            && (is_path || COMPARABLE.contains(&name.as_str()))
        {
            let or_equal = chars.get(j + 1) == Some(&'=');
            op = Some(match (chars[j], or_equal) {
                ('>', false) => CmpOp::Gt,
                ('>', true) => CmpOp::Ge,
                ('<', false) => CmpOp::Lt,
                _ => CmpOp::Le,
            });
            key = Some((name, key_start));
            i = j + if or_equal { 2 } else { 1 };
        }
        let value_pos = i;
        let (value, quoted, end) = if i < chars.len() && chars[i] == '"' {
            let (text, end) = quoted_string(&chars, i)?;
            if end < chars.len() && !chars[end].is_whitespace() {
                return Err(FilterError::new(
                    end,
                    "expected a space after the closing quote",
                ));
            }
            (text, true, end)
        } else {
            let mut end = i;
            while end < chars.len() && !chars[end].is_whitespace() {
                if chars[end] == '"' {
                    return Err(FilterError::new(
                        end,
                        "a quote must start the value (write \"...\" around the whole text)",
                    ));
                }
                end += 1;
            }
            (chars[i..end].iter().collect::<String>(), false, end)
        };
        if value.is_empty() && !quoted {
            let what = match (&key, op) {
                (Some(_), Some(_)) => format!(
                    "missing value after '{}'",
                    chars[key_start..value_pos].iter().collect::<String>()
                ),
                (Some((k, _)), None) => format!("missing value after '{k}:'"),
                (None, _) => "empty term".to_string(),
            };
            return Err(FilterError::new(value_pos, what));
        }
        terms.push(RawTerm {
            pos: start,
            negated,
            key,
            value,
            value_pos,
            quoted,
            op,
        });
        i = end;
    }
    Ok(terms)
}

/// Reads `"..."` starting at `open` (the quote); `\"` and `\\` are escapes. Returns the text and
/// the index just past the closing quote.
fn quoted_string(chars: &[char], open: usize) -> Result<(String, usize), FilterError> {
    let mut out = String::new();
    let mut k = open + 1;
    while k < chars.len() {
        match chars[k] {
            '"' => return Ok((out, k + 1)),
            '\\' if k + 1 < chars.len() && matches!(chars[k + 1], '"' | '\\') => {
                out.push(chars[k + 1]);
                k += 2;
            }
            c => {
                out.push(c);
                k += 1;
            }
        }
    }
    Err(FilterError::new(open, "unterminated quote"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_terms_with_positions() {
        let t = lex(r#"level:warn+ -"conn reset" pay* -debug service:"my api""#).unwrap();
        assert_eq!(t.len(), 5);
        assert_eq!(t[0].key.as_ref().map(|k| k.0.as_str()), Some("level"));
        assert_eq!(t[0].value, "warn+");
        assert!(t[1].negated && t[1].quoted);
        assert_eq!(t[1].value, "conn reset");
        assert_eq!(t[1].pos, 12);
        assert_eq!(t[2].value, "pay*");
        assert!(t[3].negated);
        assert_eq!(t[4].value, "my api");
    }

    #[test]
    fn reports_positions() {
        assert_eq!(lex("ok \"open").unwrap_err().pos, 3);
        assert_eq!(lex("a - b").unwrap_err().pos, 2);
        assert_eq!(lex("level:").unwrap_err().pos, 6);
        assert_eq!(lex("ab\"c\"").unwrap_err().pos, 2);
        // Offsets are in characters, not bytes.
        assert_eq!(lex("é \"x").unwrap_err().pos, 2);
        let e = lex("a status>=").unwrap_err();
        assert_eq!(
            (e.pos, e.message.as_str()),
            (10, "missing value after 'status>='")
        );
    }

    #[test]
    fn comparisons_and_attribute_paths() {
        let t = lex("status>=500 -duration>250ms attrs.http.Method:POST attrs.n<3 a>b").unwrap();
        assert_eq!(t[0].key.as_ref().map(|k| k.0.as_str()), Some("status"));
        assert_eq!((t[0].op, t[0].value.as_str()), (Some(CmpOp::Ge), "500"));
        assert!(t[1].negated);
        assert_eq!((t[1].op, t[1].value.as_str()), (Some(CmpOp::Gt), "250ms"));
        // Attribute names keep their case; the value starts after the colon.
        assert_eq!(
            t[2].key.as_ref().map(|k| k.0.as_str()),
            Some("attrs.http.Method")
        );
        assert_eq!((t[2].value.as_str(), t[2].value_pos), ("POST", 46));
        assert_eq!((t[3].op, t[3].value.as_str()), (Some(CmpOp::Lt), "3"));
        // A name that is not a number field stays a word.
        assert_eq!((t[4].key.clone(), t[4].op), (None, None));
        assert_eq!(t[4].value, "a>b");
    }
}
