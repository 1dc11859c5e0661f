//! The log filter language shared by the Logs tab, `opsdash export` and alert rules:
//!
//! (`FILTER_HELP` is the same for people.)
//! `level:warn+` `level:error,fatal` `service:api` `route:/api/pay*` `status:5xx` `trace:ID`
//! `user:42` `host:` `method:` `span:` `request:` `type:` `fp:` `since:15m`
//! `until:2026-11-21T10:00` `-term` (exclude) `"quoted phrase"` `pay*` (word prefix) and bare
//! words (full-text search on the message); comparisons `status>=500` `duration>250ms`
//! `repeat>10`; JSON attributes `attrs.http.method:POST` `attrs.latency>100` `has:attrs.user`;
//! `ip:10.1.0.0/16`; `re:"regex"` on the message. Terms are ANDed.
//!
//! `parse` never panics; a mistake comes back as `FilterError { pos, message }` with `pos` the
//! character offset of the offending text. `Filter::push_where` appends a parameterized WHERE
//! clause over `opsdash.log_event` (unqualified column names) to a `QueryBuilder`.

pub mod audit;
mod hint;
mod lexer;
mod parser;
mod probes;
mod sql;

pub use hint::hint;

/// The filter language for people, one form per line: an example, two spaces or more, what it
/// selects. The one text shown by the `?` overlay (`tui::help`), `opsdash export --help` and
/// the README, so the three never disagree.
pub const FILTER_HELP: &str = "\
Terms are separated by spaces and must all hold; a list a,b matches any.
level:error               that level: trace debug info warn error fatal
level:warn+               that level and above
level:error,fatal         any of these levels
service:api,web           any of these services (svc: too)
service:pay*              * matches any run of characters
host:web-1  method:POST   the host; the HTTP method
route:/api/pay*           the route (path: too)
status:5xx                a status class; status:404,503 a list
trace:ID  span:ID         the trace id; the span id
request:ID  user:42       the request id (req:); the user id
type:Timeout  fp:HASH     the error type; the error group
status>=500  repeat>10    compare a number: > >= < <=
duration>250ms            slower than (us ms s m h; bare number: ms)
attrs.order_id:123        a JSON attribute (attrs.http.method:POST)
attrs.latency>100         a JSON attribute compared as a number
has:attrs.x  has:trace    the attribute exists; the field is set
ip:10.1.0.0/16            the client address is in the network
re:\"timeout after \\d+\"    regex on the message (5 s budget)
since:15m                 stamped in the last 15 min (30s 2h 7d 1w)
since:2026-11-21T10:00    stamped at or after that time (UTC)
until:2026-11-21          stamped before that day's midnight (UTC)
since:2026-11-21T10:00:00+01:00   with a zone (RFC 3339)
timeout                   the message has the word (any case)
pay*                      a word of the message starts with pay
\"connection reset\"        the message has the phrase
msg:\"a:b\"                 message text with a colon, a quote...
-timeout  -service:auth   exclude (any term but since:/until:)
Not supported: OR AND NOT ( ) ! = (a hint says what to write;
ts>03:00 is since:2026-11-21T03:00, service!=auth is -service:auth).
";

use std::fmt;

use chrono::{DateTime, Utc};
use sqlx::{Postgres, QueryBuilder};

use crate::model::Level;

pub use parser::KNOWN_KEYS;

/// `key:value` as the filter language reads it back exactly: the value is quoted (with `\"`
/// and `\\` escaped) when it holds a space, a quote, a comma or a `*`, which would otherwise
/// split it or make it a pattern. For filters written by the program (jumps between tabs).
pub fn field_term(key: &str, value: &str) -> String {
    let plain = !value.is_empty()
        && !value
            .chars()
            .any(|c| c.is_whitespace() || matches!(c, '"' | ',' | '*' | '\\'));
    if plain {
        format!("{key}:{value}")
    } else {
        let escaped = value.replace('\\', "\\\\").replace('"', "\\\"");
        format!("{key}:\"{escaped}\"")
    }
}

/// A filter that was understood; build SQL from it with `push_where` / `push_conditions`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Filter {
    source: String,
    terms: Vec<Term>,
}

/// Why a filter was refused, and where (character offset into the input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at column {}: {message}", pos + 1)]
pub struct FilterError {
    pub pos: usize,
    pub message: String,
}

impl FilterError {
    pub(crate) fn new(pos: usize, message: impl Into<String>) -> Self {
        FilterError {
            pos,
            message: message.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Term {
    pub negated: bool,
    pub cond: Cond,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Cond {
    LevelAtLeast(Level),
    LevelIn(Vec<Level>),
    /// Inclusive status ranges (`5xx` is 500..=599).
    Status(Vec<(i16, i16)>),
    Field {
        column: TextColumn,
        patterns: Vec<Pattern>,
    },
    Since(TimeBound),
    Until(TimeBound),
    /// A bare word: the message contains it (case-insensitive), found through the text index.
    Word(String),
    /// A quoted phrase: the message contains it verbatim (case-insensitive).
    Phrase(String),
    /// `pay*`: a word starting with the stem.
    Prefix(String),
    /// Any other `*` pattern on the message (no index).
    Wildcard(String),
    /// `attrs.http.method:POST`: the JSON attribute at the path, as text (a string's value,
    /// a number's digits), equals one of the exact patterns or matches a glob.
    Attr {
        path: Vec<String>,
        patterns: Vec<Pattern>,
    },
    /// `has:attrs.user`: the attribute exists (JSON null counts as present).
    HasAttr(Vec<String>),
    /// `has:trace`: the column is set.
    Has(TextColumn),
    /// `status>=500`, `duration>250ms`, `repeat>10`.
    Compare {
        field: NumField,
        op: CmpOp,
        value: f64,
    },
    /// `attrs.latency>100`: a JSON number at the path compared (strings never match).
    AttrCompare {
        path: Vec<String>,
        op: CmpOp,
        value: f64,
    },
    /// `ip:10.1.0.0/16,2001:db8::/32`: the client address is inside one of the networks
    /// (canonical CIDR text; an address alone is a /32 or /128).
    IpIn(Vec<String>),
    /// `re:"timeout after \d+"`: a PostgreSQL regular expression on the message (case-
    /// sensitive; `(?i)` at the start ignores case). A scan, run under `REGEX_BUDGET`.
    Regex(String),
}

/// A numeric column a comparison may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumField {
    Status,
    /// Milliseconds (`duration>250ms`, `duration>1.5s`; a bare number is milliseconds).
    DurationMs,
    /// How many times a line was seen in the dedup window (`repeat>10`).
    Repeat,
}

impl NumField {
    fn sql(self) -> &'static str {
        match self {
            NumField::Status => "status",
            NumField::DurationMs => "duration_ms",
            NumField::Repeat => "repeat_count",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CmpOp {
    Gt,
    Ge,
    Lt,
    Le,
}

impl CmpOp {
    fn sql(self) -> &'static str {
        match self {
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
        }
    }
}

/// How long a filter with a regular expression may run before the server stops it: a regex is
/// a scan of every line in the range, and one slow scan must not hold a backend (or the
/// operator) for minutes. The queries of the Logs history, the histogram and the counts set it
/// as `statement_timeout` for their transaction (`query::history::apply_budget`).
pub const REGEX_BUDGET: std::time::Duration = std::time::Duration::from_secs(5);

/// One clear line for a database error caused by what the filter asked for (the regular
/// expression ran out of its budget, or PostgreSQL refused it), or None for other errors.
pub fn explain_error(filter: &Filter, err: &sqlx::Error) -> Option<String> {
    let db = err.as_database_error()?;
    let code = db.code()?;
    let re = filter.terms.iter().find_map(|t| match &t.cond {
        Cond::Regex(r) => Some(r.as_str()),
        _ => None,
    })?;
    match code.as_ref() {
        // query_canceled: statement_timeout fired.
        "57014" => Some(format!(
            "re:{re:?} ran out of its {} s budget: narrow the time range or add a word, a \
             service: or a level: term so fewer lines are scanned",
            REGEX_BUDGET.as_secs()
        )),
        // invalid_regular_expression, and "too complex" (program_limit_exceeded).
        "2201B" | "54000" => Some(format!(
            "re:{re:?} is not a regular expression PostgreSQL accepts: {}",
            db.message()
        )),
        _ => None,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pattern {
    Exact(String),
    /// `*` matches any run of characters.
    Glob(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeBound {
    /// Relative to the moment the query runs, so a live view slides with time.
    Ago(std::time::Duration),
    At(DateTime<Utc>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextColumn {
    Service,
    Host,
    Route,
    Method,
    TraceId,
    SpanId,
    RequestId,
    UserId,
    ErrorType,
    Fingerprint,
}

impl TextColumn {
    fn sql(self) -> &'static str {
        match self {
            TextColumn::Service => "service",
            TextColumn::Host => "host",
            TextColumn::Route => "route",
            TextColumn::Method => "method",
            TextColumn::TraceId => "trace_id",
            TextColumn::SpanId => "span_id",
            TextColumn::RequestId => "request_id",
            TextColumn::UserId => "user_id",
            TextColumn::ErrorType => "error_type",
            TextColumn::Fingerprint => "fingerprint",
        }
    }
}

/// Parses a filter. The empty string (or only spaces) is the filter that selects everything.
pub fn parse(input: &str) -> Result<Filter, FilterError> {
    Ok(Filter {
        source: input.trim().to_string(),
        terms: parser::parse_terms(input)?,
    })
}

impl Filter {
    /// The filter as the user wrote it (trimmed).
    pub fn source(&self) -> &str {
        &self.source
    }

    pub fn terms(&self) -> &[Term] {
        &self.terms
    }

    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// Whether the filter holds a regular expression (run it under `REGEX_BUDGET`).
    pub fn has_regex(&self) -> bool {
        self.terms.iter().any(|t| matches!(t.cond, Cond::Regex(_)))
    }

    /// Appends ` WHERE <conditions>`.
    pub fn push_where(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        qb.push(" WHERE ");
        self.push_conditions(qb);
    }

    /// Appends the conditions alone (`TRUE` for the empty filter), to combine with others:
    /// `... WHERE ts >= $1 AND ` then `push_conditions`.
    pub fn push_conditions(&self, qb: &mut QueryBuilder<'_, Postgres>) {
        sql::push_terms(&self.terms, qb);
    }

    /// The time window the filter's `since:` and `until:` terms set, as of `now` (the latest
    /// `since:` and the earliest `until:` when several are given): the Logs tab's list reads
    /// history inside it rather than inside the shared range.
    pub fn time_bounds(
        &self,
        now: DateTime<Utc>,
    ) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
        let at = |b: &TimeBound| match b {
            TimeBound::At(t) => Some(*t),
            TimeBound::Ago(d) => chrono::Duration::from_std(*d)
                .ok()
                .and_then(|d| now.checked_sub_signed(d)),
        };
        let mut since: Option<DateTime<Utc>> = None;
        let mut until: Option<DateTime<Utc>> = None;
        for t in &self.terms {
            match &t.cond {
                Cond::Since(b) => since = since.max(at(b)),
                Cond::Until(b) => {
                    if let Some(u) = at(b) {
                        until = Some(until.map_or(u, |x| x.min(u)));
                    }
                }
                _ => {}
            }
        }
        (since, until)
    }

    /// The lower time bound the filter sets, if any (for choosing partitions and stats ranges).
    pub fn since(&self) -> Option<DateTime<Utc>> {
        self.terms.iter().find_map(|t| match t.cond {
            Cond::Since(TimeBound::At(at)) => Some(at),
            Cond::Since(TimeBound::Ago(d)) => chrono::Duration::from_std(d)
                .ok()
                .and_then(|d| Utc::now().checked_sub_signed(d)),
            _ => None,
        })
    }

    /// The positive message-search texts (words, phrases, prefixes), for highlighting.
    pub fn message_terms(&self) -> Vec<String> {
        self.terms
            .iter()
            .filter(|t| !t.negated)
            .filter_map(|t| match &t.cond {
                Cond::Word(w) | Cond::Phrase(w) | Cond::Prefix(w) => Some(w.clone()),
                _ => None,
            })
            .collect()
    }
}

impl fmt::Display for Filter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Every example line of the help parses, and means what it says it means.
    #[test]
    fn every_example_of_the_help_is_the_language() {
        let examples: Vec<&str> = FILTER_HELP
            .lines()
            .skip(1)
            .filter(|l| l.contains("   "))
            .map(|l| l.split("   ").next().unwrap_or("").trim())
            .collect();
        assert!(examples.len() > 15, "{examples:?}");
        for e in examples {
            let f = parse(e).unwrap_or_else(|err| panic!("{e}: {err}"));
            assert!(!f.is_empty(), "{e}");
            assert_eq!(hint(e), None, "{e}");
        }
        // The negated field the help shows is an exclusion of that field, not text.
        assert_eq!(
            parse("-service:auth").unwrap().terms,
            vec![Term {
                negated: true,
                cond: Cond::Field {
                    column: TextColumn::Service,
                    patterns: vec![Pattern::Exact("auth".into())],
                },
            }]
        );
        assert!(parse("ts:03:00").unwrap_err().message.contains("since:"));
    }

    /// The README shows the same text, word for word.
    #[test]
    fn the_readme_shows_the_filter_help() {
        assert!(include_str!("../../README.md").contains(FILTER_HELP));
    }

    #[test]
    fn empty_filter_selects_everything() {
        let f = parse("   ").unwrap();
        assert!(f.is_empty());
        let mut qb = QueryBuilder::<Postgres>::new("SELECT 1");
        f.push_where(&mut qb);
        assert_eq!(qb.sql(), "SELECT 1 WHERE TRUE");
    }

    #[test]
    fn error_display_is_one_line_with_column() {
        let e = parse("level:nope").unwrap_err();
        assert_eq!(e.to_string().lines().count(), 1);
        assert!(e.to_string().starts_with("at column 7:"));
    }

    proptest! {
        #[test]
        fn never_panics_on_any_input(s in any::<String>()) {
            if let Ok(f) = parse(&s) {
                let mut qb = QueryBuilder::<Postgres>::new("SELECT 1 FROM opsdash.log_event");
                f.push_where(&mut qb);
            }
        }

        #[test]
        fn field_term_reads_back_as_the_exact_value(v in any::<String>()) {
            let f = parse(&field_term("service", &v)).unwrap();
            prop_assert_eq!(
                &f.terms,
                &vec![Term {
                    negated: false,
                    cond: Cond::Field {
                        column: TextColumn::Service,
                        patterns: vec![Pattern::Exact(v.clone())],
                    },
                }]
            );
        }

        #[test]
        fn error_positions_are_inside_the_input(s in "[ a-z:\"\\-*+,0-9/]{0,40}") {
            if let Err(e) = parse(&s) {
                prop_assert!(e.pos <= s.chars().count());
            }
        }
    }
}
