//! The log filter language shared by the Logs tab, `opsdash export` and alert rules:
//!
//! `level:warn+` `level:error,fatal` `service:api` `route:/api/pay*` `status:5xx` `trace:ID`
//! `user:42` `host:` `method:` `span:` `request:` `type:` `fp:` `since:15m`
//! `until:2026-11-21T10:00` `-term` (exclude) `"quoted phrase"` `pay*` (word prefix) and bare
//! words (full-text search on the message). Terms are ANDed.
//!
//! `parse` never panics; a mistake comes back as `FilterError { pos, message }` with `pos` the
//! character offset of the offending text. `Filter::push_where` appends a parameterized WHERE
//! clause over `opsdash.log_event` (unqualified column names) to a `QueryBuilder`.

mod lexer;
mod parser;
mod sql;

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
