//! Splits a filter string into terms: `[-]key:value`, `[-]word`, `[-]"quoted phrase"`.
//! Positions are character offsets so the UI can put the cursor on the mistake.

use super::FilterError;

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
        // A key is a run of letters/underscore followed by ':' (never inside quotes).
        let mut key = None;
        let key_start = i;
        let mut j = i;
        while j < chars.len() && (chars[j].is_ascii_alphabetic() || chars[j] == '_') {
            j += 1;
        }
        if j > key_start && j < chars.len() && chars[j] == ':' {
            let name: String = chars[key_start..j].iter().collect();
            key = Some((name.to_ascii_lowercase(), key_start));
            i = j + 1;
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
            let what = match &key {
                Some((k, _)) => format!("missing value after '{k}:'"),
                None => "empty term".to_string(),
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
    }
}
