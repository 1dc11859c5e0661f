//! Hints for syntax the filter language does not have but people guess from other tools
//! (`OR`, `NOT`, `ts>03:00`, `status=500`, `status:>=500`, `!word`, parentheses): such words would otherwise
//! be searched as plain text without a word of warning. `hint` says what to write instead;
//! the filter still means what it says (the hint never changes it).

use super::lexer::lex;

/// A hint for the first guessed operator in `input`, or None when there is none (or the filter
/// does not lex: its error says more).
pub fn hint(input: &str) -> Option<String> {
    let terms = lex(input).ok()?;
    terms.iter().find_map(|t| {
        if t.quoted {
            return None;
        }
        match &t.key {
            None => bare(&t.value),
            Some((key, _)) => keyed(key, &t.value),
        }
    })
}

fn bare(word: &str) -> Option<String> {
    match word {
        "OR" | "||" | "|" => {
            return Some(
                "OR is not supported: use service:a,b (a comma list matches any of its values); \
                 terms are all required"
                    .into(),
            )
        }
        "AND" | "&&" | "&" => {
            return Some(format!(
            "{word} is not needed: terms are all required already (here it is searched as a word)"
        ))
        }
        "NOT" => {
            return Some(
                "NOT is not supported: put - before a term to exclude it (-service:auth, -timeout)"
                    .into(),
            )
        }
        _ => {}
    }
    if word.starts_with('(') || word.ends_with(')') {
        return Some(
            "parentheses are not supported: terms are all required; a comma list gives \
             alternatives (service:a,b)"
                .into(),
        );
    }
    if let Some(rest) = word.strip_prefix('!').filter(|r| !r.is_empty()) {
        return Some(format!(
            "! is not supported: put - before a term to exclude it (-{rest})"
        ));
    }
    comparison(word)
}

/// `name<op>value` written as one word: `ts>03:00`, `status>=500`, `service=api`.
fn comparison(word: &str) -> Option<String> {
    let at = word.find(['>', '<', '=', '!'])?;
    let (name, rest) = word.split_at(at);
    if name.is_empty()
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '@' || c == '.')
    {
        return None;
    }
    let op_len = rest
        .chars()
        .take_while(|c| matches!(c, '>' | '<' | '=' | '!'))
        .count();
    let (op, value) = rest.split_at(op_len);
    let name = name.to_ascii_lowercase();
    let value = if value.is_empty() { "VALUE" } else { value };
    let what = format!("{word}: '{op}' is not supported");
    Some(match name.trim_start_matches('@') {
        "ts" | "time" | "timestamp" | "date" | "t" => {
            let bound = if op.starts_with('<') {
                "until"
            } else {
                "since"
            };
            let today = chrono::Utc::now().format("%Y-%m-%d");
            let at = if value.contains('-') {
                value.to_string()
            } else {
                format!("{today}T{value}")
            };
            format!(
                "{what}: use {bound}:{at} (times without a zone are UTC) or {bound}:15m; \
                 since: and until: bound the time"
            )
        }
        "status" | "code" => {
            format!("{what}: use status:5xx (a class), status:500,502,503 (a list) or status>=500")
        }
        "level" | "lvl" | "severity" => {
            format!("{what}: use level:warn+ (that level and above) or level:error,fatal")
        }
        n if known(n) && (op == "!=" || op == "!") => {
            format!("{what}: use -{n}:{value} to exclude")
        }
        n if known(n) && (op == "=" || op == "==") => format!("{what}: use {n}:{value}"),
        _ if op.contains(['>', '<']) => format!(
            "{what}: fields are key:value (level:warn+, status:5xx), times since:/until:; \
             numbers compare as status>=500, duration>250ms, repeat>10, attrs.NAME>N"
        ),
        // `duration=5` in a logfmt line is text worth searching for.
        _ => return None,
    })
}

/// A field of the language (`service`, `svc`, `user`...).
fn known(name: &str) -> bool {
    super::parse(&format!("{name}:x"))
        .map_or_else(|e| !e.message.starts_with("unknown field"), |_| true)
}

/// A field term whose value looks like an exclusion or comparison (`service:-auth`,
/// `status:>=500`).
fn keyed(key: &str, value: &str) -> Option<String> {
    if let Some(rest) = value.strip_prefix('-').filter(|r| !r.is_empty()) {
        return Some(format!(
            "{key}:{value} matches the value '{value}': to exclude, write -{key}:{rest}"
        ));
    }
    let comparable = matches!(key, "status" | "duration" | "repeat") || key.starts_with("attrs.");
    if comparable && value.starts_with(['>', '<']) {
        return Some(format!(
            "{key}:{value} is searched as text: to compare, write {key}{value} (no colon)"
        ));
    }
    if let Some(rest) = value.strip_prefix(['>', '<', '=', '!']) {
        let rest = rest.trim_start_matches(['>', '<', '=']);
        return comparison(&format!(
            "{key}{}{rest}",
            &value[..value.len() - rest.len()]
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guessed_operators_get_a_hint_saying_what_to_write() {
        let h = |s: &str| hint(s).unwrap_or_else(|| panic!("no hint for {s}"));
        assert!(h("service:api OR service:web").starts_with("OR is not supported: use service:a,b"));
        assert!(h("ts>03:00").contains("since:"), "{}", h("ts>03:00"));
        assert!(h("ts<2026-12-04T03:00").contains("until:2026-12-04T03:00"));
        assert!(h("status=500").contains("status:5xx"));
        assert!(h("level>=warn").contains("level:warn+"));
        assert!(h("service!=auth").contains("-service:auth"));
        assert!(h("service=auth").contains("use service:auth"));
        assert!(h("NOT timeout").contains("-service:auth"));
        assert!(h("!timeout").contains("-timeout"));
        assert!(h("(a b)").starts_with("parentheses"));
        assert!(h("a AND b").starts_with("AND is not needed"));
        assert!(h("service:-auth").contains("-service:auth"));
        assert!(h("status:>=500").contains("write status>=500 (no colon)"));
        assert!(h("latency>100").contains("attrs.NAME>N"));
    }

    #[test]
    fn the_language_itself_gets_no_hint() {
        for ok in [
            "",
            "level:warn+ service:api,web -service:auth",
            "\"a OR b\" or and",
            "-timeout route:/api/pay* status:5xx since:15m until:2026-11-21T10:00",
            "user:42 trace:abc-def msg:\"x=1\"",
            "duration=5 http://x/?a=b",
            "status>=500 duration>250ms -repeat>10 attrs.n<=3 attrs.http.method:POST",
            "has:attrs.user ip:10.1.0.0/16 re:\"timeout after \\d+\"",
        ] {
            // A logfmt pair of an unknown field, or '=' inside a URL, is text to search.
            assert_eq!(hint(ok), None, "unexpected hint for {ok}");
        }
    }
}
