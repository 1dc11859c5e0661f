//! Gives each lexed term its meaning: which column, which comparison, which values. Every
//! mistake is reported with the character offset of the offending text.

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, TimeZone, Utc};

use super::lexer::{lex, RawTerm};
use super::{Cond, FilterError, Pattern, Term, TextColumn, TimeBound};
use crate::model::Level;

pub const KNOWN_KEYS: &str =
    "level, service, host, route, method, status, trace, span, request, user, type, fp, since, until, msg";

pub fn parse_terms(input: &str) -> Result<Vec<Term>, FilterError> {
    lex(input)?.into_iter().map(term).collect()
}

fn term(raw: RawTerm) -> Result<Term, FilterError> {
    let cond = match &raw.key {
        None => text_cond(&raw),
        Some((key, key_pos)) => keyed(key, *key_pos, &raw)?,
    };
    if raw.negated && matches!(cond, Cond::Since(_) | Cond::Until(_)) {
        return Err(FilterError::new(
            raw.pos,
            "since:/until: cannot be negated (use the other one)",
        ));
    }
    Ok(Term {
        negated: raw.negated,
        cond,
    })
}

/// A bare word or phrase searches the message text.
fn text_cond(raw: &RawTerm) -> Cond {
    if raw.quoted {
        return Cond::Phrase(raw.value.clone());
    }
    let v = &raw.value;
    if let Some(stem) = v.strip_suffix('*') {
        if !stem.is_empty() && stem.chars().all(char::is_alphanumeric) {
            return Cond::Prefix(stem.to_string());
        }
    }
    if v.contains('*') {
        Cond::Wildcard(v.clone())
    } else {
        Cond::Word(v.clone())
    }
}

fn keyed(key: &str, key_pos: usize, raw: &RawTerm) -> Result<Cond, FilterError> {
    let column = match key {
        "level" | "lvl" => return level(raw),
        "status" => return status(raw),
        "since" | "from" => return Ok(Cond::Since(time_bound(raw)?)),
        "until" | "to" => return Ok(Cond::Until(time_bound(raw)?)),
        "msg" | "message" => return Ok(text_cond(raw)),
        "service" | "svc" => TextColumn::Service,
        "host" => TextColumn::Host,
        "route" | "path" => TextColumn::Route,
        "method" => TextColumn::Method,
        "trace" | "trace_id" => TextColumn::TraceId,
        "span" | "span_id" => TextColumn::SpanId,
        "request" | "request_id" | "req" => TextColumn::RequestId,
        "user" | "user_id" => TextColumn::UserId,
        "type" | "error_type" => TextColumn::ErrorType,
        "fp" | "fingerprint" => TextColumn::Fingerprint,
        "ts" | "time" | "timestamp" | "date" => {
            return Err(FilterError::new(
                key_pos,
                format!(
                    "unknown field '{key}': bound the time with since: and until: (since:15m, since:2026-11-21T10:00)"
                ),
            ))
        }
        _ => {
            return Err(FilterError::new(
                key_pos,
                format!(
                    "unknown field '{key}' (known: {KNOWN_KEYS}); put text with ':' in quotes to search for it"
                ),
            ))
        }
    };
    let patterns = if raw.quoted {
        vec![Pattern::Exact(raw.value.clone())]
    } else {
        list(raw)?
            .into_iter()
            .map(|(v, _)| {
                if v.contains('*') {
                    Pattern::Glob(v)
                } else {
                    Pattern::Exact(v)
                }
            })
            .collect()
    };
    Ok(Cond::Field { column, patterns })
}

/// Splits `a,b,c` into values with their offsets; an empty item is an error.
fn list(raw: &RawTerm) -> Result<Vec<(String, usize)>, FilterError> {
    let mut out = Vec::new();
    let mut pos = raw.value_pos;
    for part in raw.value.split(',') {
        if part.is_empty() {
            return Err(FilterError::new(pos, "empty value in a comma list"));
        }
        out.push((part.to_string(), pos));
        pos += part.chars().count() + 1;
    }
    Ok(out)
}

fn level(raw: &RawTerm) -> Result<Cond, FilterError> {
    let parse = |s: &str, pos: usize| {
        Level::parse_loose(s).ok_or_else(|| {
            FilterError::new(
                pos,
                format!("unknown level '{s}' (trace, debug, info, warn, error, fatal)"),
            )
        })
    };
    if let Some(v) = raw.value.strip_suffix('+') {
        return Ok(Cond::LevelAtLeast(parse(v, raw.value_pos)?));
    }
    let levels = list(raw)?
        .into_iter()
        .map(|(v, pos)| parse(&v, pos))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Cond::LevelIn(levels))
}

fn status(raw: &RawTerm) -> Result<Cond, FilterError> {
    let mut ranges = Vec::new();
    for (v, pos) in list(raw)? {
        let bad = || {
            FilterError::new(
                pos,
                format!("bad status '{v}' (a code like 404, or a class like 5xx)"),
            )
        };
        let lower = v.to_ascii_lowercase();
        let range = if let Some(class) = lower.strip_suffix("xx") {
            let d: i16 = class.parse().map_err(|_| bad())?;
            if !(1..=9).contains(&d) || class.len() != 1 {
                return Err(bad());
            }
            (d * 100, d * 100 + 99)
        } else {
            let code: i16 = lower.parse().map_err(|_| bad())?;
            if !(100..=999).contains(&code) {
                return Err(bad());
            }
            (code, code)
        };
        ranges.push(range);
    }
    Ok(Cond::Status(ranges))
}

fn time_bound(raw: &RawTerm) -> Result<TimeBound, FilterError> {
    let v = raw.value.trim();
    if let Some(t) = absolute_time(v) {
        // PostgreSQL's timestamptz starts in 4713 BC (year -4712); an earlier bound would make
        // every query of the filter fail. Found by fault_parsers: `since:-5000-1-1`.
        if t.year() <= -4712 {
            return Err(FilterError::new(
                raw.value_pos,
                format!("time '{v}' is before 4712 BC, earlier than PostgreSQL stores"),
            ));
        }
        return Ok(TimeBound::At(t));
    }
    if v.eq_ignore_ascii_case("now") {
        return Ok(TimeBound::Ago(std::time::Duration::ZERO));
    }
    match humantime::parse_duration(v) {
        // Beyond ~100 years a duration is a typo, and intervals that large overflow timestamptz.
        Ok(d) if d.as_secs() <= 100 * 365 * 86_400 => Ok(TimeBound::Ago(d)),
        _ => Err(FilterError::new(
            raw.value_pos,
            format!(
                "bad time '{v}' (a duration like 15m, 2h, 7d, or a time like 2026-11-21T10:00)"
            ),
        )),
    }
}

/// Absolute times without a zone are UTC.
fn absolute_time(v: &str) -> Option<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(v) {
        return Some(t.with_timezone(&Utc));
    }
    for fmt in [
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%dT%H:%M",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d %H:%M",
    ] {
        if let Ok(t) = NaiveDateTime::parse_from_str(v, fmt) {
            return Some(Utc.from_utc_datetime(&t));
        }
    }
    NaiveDate::parse_from_str(v, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Utc.from_utc_datetime(&t))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> Term {
        let mut t = parse_terms(s).unwrap();
        assert_eq!(t.len(), 1, "{s}");
        t.remove(0)
    }

    #[test]
    fn times_before_postgres_range_are_refused_at_the_value() {
        let e = parse_terms("level:error since:-5000-1-1").unwrap_err();
        assert_eq!(e.pos, 18, "{e}");
        assert!(matches!(
            one("since:-4000-01-01").cond,
            Cond::Since(TimeBound::At(_))
        ));
    }

    #[test]
    fn understands_every_documented_form() {
        assert_eq!(one("level:warn+").cond, Cond::LevelAtLeast(Level::Warn));
        assert_eq!(one("level:error").cond, Cond::LevelIn(vec![Level::Error]));
        assert_eq!(
            one("service:api").cond,
            Cond::Field {
                column: TextColumn::Service,
                patterns: vec![Pattern::Exact("api".into())]
            }
        );
        assert_eq!(
            one("route:/api/pay*").cond,
            Cond::Field {
                column: TextColumn::Route,
                patterns: vec![Pattern::Glob("/api/pay*".into())]
            }
        );
        assert_eq!(one("status:5xx").cond, Cond::Status(vec![(500, 599)]));
        assert_eq!(
            one("status:404,5xx").cond,
            Cond::Status(vec![(404, 404), (500, 599)])
        );
        assert!(matches!(
            one("trace:abc").cond,
            Cond::Field {
                column: TextColumn::TraceId,
                ..
            }
        ));
        assert!(matches!(
            one("user:42").cond,
            Cond::Field {
                column: TextColumn::UserId,
                ..
            }
        ));
        assert_eq!(
            one("since:15m").cond,
            Cond::Since(TimeBound::Ago(std::time::Duration::from_secs(900)))
        );
        assert_eq!(
            one("until:2026-11-21T10:00").cond,
            Cond::Until(TimeBound::At(
                Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap()
            ))
        );
        let t = one("-timeout");
        assert!(t.negated);
        assert_eq!(t.cond, Cond::Word("timeout".into()));
        assert_eq!(
            one("\"conn reset\"").cond,
            Cond::Phrase("conn reset".into())
        );
        assert_eq!(one("pay*").cond, Cond::Prefix("pay".into()));
        assert_eq!(one("*pay*").cond, Cond::Wildcard("*pay*".into()));
    }

    #[test]
    fn errors_point_at_the_mistake() {
        let e = parse_terms("level:warn level:loud").unwrap_err();
        assert_eq!(e.pos, 17);
        assert!(e.message.contains("unknown level"));
        let e = parse_terms("x bogus:1").unwrap_err();
        assert_eq!(e.pos, 2);
        assert!(e.message.contains("unknown field"));
        assert_eq!(parse_terms("status:6x").unwrap_err().pos, 7);
        assert_eq!(parse_terms("status:200,abc").unwrap_err().pos, 11);
        assert_eq!(parse_terms("since:soon").unwrap_err().pos, 6);
        assert_eq!(parse_terms("a -since:1h").unwrap_err().pos, 2);
    }
}
