//! PostgreSQL's own server log, in its three destinations: `stderr` (any `log_line_prefix`
//! made of the usual escapes: `%m [%p] `, `%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h `,
//! `%u@%d`...), `csvlog` and PG 15's `jsonlog`.
//!
//! - `duration: N ms  statement: ...` and `duration: N ms  execute <name>: ...` become a
//!   `query_log` row (text normalized: literals become `$n`; fingerprint; database; the
//!   application, else the user, as service) and no log row: with
//!   `log_min_duration_statement = 0` every statement is one, and they belong to the slow-query
//!   views, not to the Logs tab.
//! - Everything else is a log row at its severity, with user, database, application, pid and
//!   SQLSTATE (when the log carries it: csvlog, jsonlog, `%e` in the prefix, or
//!   `log_error_verbosity = verbose`) in attrs and the condition name as error_type.
//! - Deadlocks (`deadlock detected`, SQLSTATE 40P01) get error_type `deadlock_detected`; lock
//!   waits (`log_lock_waits`: `process N still waiting for ShareLock ... after X ms`) get
//!   attrs `pg_event: lock_wait` and `lock_wait_ms`.
//! - DETAIL, HINT, CONTEXT, STATEMENT lines of stderr are prefixed lines of their own and stay
//!   events of their own (tagged `pg_part`); csvlog and jsonlog carry them in the same record.
//!   A statement's continuation lines (a multi-line query in stderr) have no prefix: they are
//!   for the multi-line joiner.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::fields::{LineContext, Val};
use super::record::{LogRecord, Parsed, QueryRecord};
use super::{text, timestamp};
use crate::model::Level;

/// One entry of the log, whatever its destination.
#[derive(Debug, Default)]
struct Entry<'a> {
    ts: Option<DateTime<Utc>>,
    severity: &'a str,
    message: Cow<'a, str>,
    user: Option<Cow<'a, str>>,
    database: Option<Cow<'a, str>>,
    app: Option<Cow<'a, str>>,
    client: Option<Cow<'a, str>>,
    pid: Option<i64>,
    sqlstate: Option<Cow<'a, str>>,
    /// csvlog/jsonlog: detail, hint, context, the statement of an error.
    extra: Vec<(&'static str, Cow<'a, str>)>,
}

const SEVERITIES: &[&str] = &[
    "LOG",
    "ERROR",
    "WARNING",
    "FATAL",
    "PANIC",
    "NOTICE",
    "INFO",
    "DEBUG",
    "DEBUG1",
    "DEBUG2",
    "DEBUG3",
    "DEBUG4",
    "DEBUG5",
    "DETAIL",
    "HINT",
    "STATEMENT",
    "CONTEXT",
    "QUERY",
    "LOCATION",
];

fn level_of(severity: &str) -> Level {
    match severity {
        "ERROR" => Level::Error,
        "WARNING" => Level::Warn,
        "FATAL" | "PANIC" => Level::Fatal,
        s if s.starts_with("DEBUG") => Level::Debug,
        _ => Level::Info,
    }
}

/// Condition names of the SQLSTATEs an operator meets most (Appendix A of the manual).
fn condition(code: &str) -> Option<&'static str> {
    Some(match code {
        "40P01" => "deadlock_detected",
        "40001" => "serialization_failure",
        "55P03" => "lock_not_available",
        "57014" => "query_canceled",
        "57P01" => "admin_shutdown",
        "53300" => "too_many_connections",
        "53100" => "disk_full",
        "53200" => "out_of_memory",
        "23505" => "unique_violation",
        "23503" => "foreign_key_violation",
        "23502" => "not_null_violation",
        "23514" => "check_violation",
        "42P01" => "undefined_table",
        "42703" => "undefined_column",
        "42883" => "undefined_function",
        "42601" => "syntax_error",
        "42501" => "insufficient_privilege",
        "28P01" => "invalid_password",
        "28000" => "invalid_authorization_specification",
        "3D000" => "invalid_catalog_name",
        "22P02" => "invalid_text_representation",
        "22012" => "division_by_zero",
        "22001" => "string_data_right_truncation",
        "25P02" => "in_failed_sql_transaction",
        "08006" => "connection_failure",
        "08P01" => "protocol_violation",
        "XX000" => "internal_error",
        _ => return None,
    })
}

/// Finds `SEVERITY:  ` (PostgreSQL writes two spaces after it) in the first bytes after the
/// prefix; returns (severity, start of the severity, start of the message).
fn severity_in(b: &[u8], from: usize) -> Option<(&'static str, usize, usize)> {
    let limit = b.len().min(from + 400);
    let mut i = from;
    while let Some(k) = memchr::memchr(b':', &b[i..limit]) {
        let colon = i + k;
        if b.get(colon + 1) == Some(&b' ') && b.get(colon + 2) == Some(&b' ') {
            let mut start = colon;
            while start > from && b[start - 1].is_ascii_alphanumeric() {
                start -= 1;
            }
            let word = std::str::from_utf8(&b[start..colon]).ok()?;
            if start == from || b[start - 1] == b' ' {
                if let Some(s) = SEVERITIES.iter().find(|s| **s == word) {
                    return Some((s, start, colon + 3));
                }
            }
        }
        i = colon + 1;
    }
    None
}

/// The prefix between the time and the severity: `[123]`, `[123-1]`, `user=u,db=d,app=a,
/// client=h`, `u@d`.
fn read_prefix<'a>(p: &'a str, e: &mut Entry<'a>) {
    for tok in p.split([' ', ',']) {
        let tok = tok.trim_matches(|c| c == ':' || c == ';');
        if tok.is_empty() {
            continue;
        }
        if let Some(inner) = tok.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            let pid = inner.split('-').next().unwrap_or(inner);
            if e.pid.is_none() {
                e.pid = pid.parse().ok();
            }
            continue;
        }
        if let Some((k, v)) = tok.split_once('=') {
            let v = (!v.is_empty() && v != "[unknown]").then_some(Cow::Borrowed(v));
            match k {
                "user" | "usr" | "u" => e.user = v,
                "db" | "database" | "d" => e.database = v,
                "app" | "application" | "application_name" | "a" => e.app = v,
                "client" | "host" | "remote" | "h" | "r" => e.client = v,
                "pid" | "p" => e.pid = v.and_then(|v| v.parse().ok()),
                "sqlstate" | "e" => e.sqlstate = v,
                _ => {}
            }
            continue;
        }
        if let Some((u, d)) = tok.split_once('@') {
            if !u.is_empty() && e.user.is_none() {
                e.user = Some(Cow::Borrowed(u));
            }
            if !d.is_empty() && e.database.is_none() {
                e.database = Some(Cow::Borrowed(d));
            }
            continue;
        }
        if tok.len() == 5
            && tok
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
        {
            // `%e` alone in the prefix.
            if tok.bytes().any(|c| c.is_ascii_digit()) {
                e.sqlstate = Some(Cow::Borrowed(tok));
            }
        } else if e.pid.is_none() && tok.bytes().all(|c| c.is_ascii_digit()) {
            e.pid = tok.parse().ok();
        }
    }
}

/// A stderr line whose head `text` already read: Some when it has PostgreSQL's shape (a
/// time, a short prefix, then `SEVERITY:  `).
pub fn from_text(line: &str, head: &text::Head, ctx: &LineContext) -> Option<Parsed> {
    let ts = head.ts?;
    let b = line.as_bytes();
    let (severity, sev_at, msg_at) = severity_in(b, head.after_ts)?;
    let mut e = Entry {
        ts: Some(ts),
        severity,
        ..Entry::default()
    };
    read_prefix(&line[head.after_ts..sev_at], &mut e);
    let mut message = &line[msg_at..];
    // log_error_verbosity = verbose: `ERROR:  42P01: relation "x" does not exist`
    if let Some(code) = message.get(..5) {
        if message.as_bytes().get(5) == Some(&b':')
            && code
                .bytes()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit())
            && code.bytes().any(|c| c.is_ascii_digit())
            && e.sqlstate.is_none()
        {
            e.sqlstate = Some(Cow::Borrowed(code));
            message = message[6..].trim_start();
        }
    }
    e.message = Cow::Borrowed(message.trim_end());
    Some(build(e, ctx, "postgres"))
}

/// A line read with `--format postgres`: stderr, csvlog or jsonlog.
pub fn parse(line: &str, ctx: &LineContext) -> Result<Parsed, String> {
    let t = line.trim();
    if t.starts_with('{') {
        return super::json::parse(t, ctx);
    }
    let head = text::head(t, ctx);
    if head.ts.is_some() && t.as_bytes().get(head.after_ts) == Some(&b',') {
        if let Some(p) = from_csv(t, ctx) {
            return Ok(p);
        }
    }
    if line.starts_with([' ', '\t']) {
        // A statement's or a DETAIL's continuation line (no prefix): an event of its own
        // until the multi-line joiner puts it back with the line it continues.
        let mut p = text::parse(line, ctx);
        p.format = "postgres";
        if let Some(log) = &mut p.log {
            log.attrs = Some(serde_json::json!({"pg_part": "continuation"}));
        }
        return Ok(p);
    }
    from_text(t, &head, ctx).ok_or_else(|| {
        "not a PostgreSQL log line (a time, a prefix, then LOG:/ERROR:/...; a csvlog record \
         cut by a newline inside a quoted field is not read)"
            .to_string()
    })
}

/// Splits one CSV record (RFC 4180: `""` is a quote inside a quoted field). A quoted field that
/// does not end on this line (a statement with newlines) ends the record with what the line
/// holds: the entry is still read, its message cut where the line ends.
fn csv_fields(line: &str) -> Option<Vec<Cow<'_, str>>> {
    let b = line.as_bytes();
    let mut out = Vec::with_capacity(26);
    let mut i = 0;
    loop {
        if b.get(i) == Some(&b'"') {
            let mut j = i + 1;
            let mut owned: Option<String> = None;
            let mut seg = j;
            loop {
                let Some(k) = memchr::memchr(b'"', &b[j..]).map(|k| k + j) else {
                    let mut s = owned.unwrap_or_default();
                    s.push_str(&line[seg..]);
                    out.push(Cow::Owned(s));
                    return Some(out);
                };
                if b.get(k + 1) == Some(&b'"') {
                    owned
                        .get_or_insert_with(String::new)
                        .push_str(&line[seg..=k]);
                    j = k + 2;
                    seg = j;
                    continue;
                }
                let field = match owned {
                    Some(mut s) => {
                        s.push_str(&line[seg..k]);
                        Cow::Owned(s)
                    }
                    None => Cow::Borrowed(&line[i + 1..k]),
                };
                out.push(field);
                i = k + 1;
                break;
            }
        } else {
            let end = memchr::memchr(b',', &b[i..]).map_or(b.len(), |k| i + k);
            out.push(Cow::Borrowed(&line[i..end]));
            i = end;
        }
        match b.get(i) {
            Some(b',') => i += 1,
            None => return Some(out),
            Some(_) => return None,
        }
    }
}

/// A csvlog record (columns of PG 13-17: log_time, user_name, database_name, process_id,
/// connection_from, session_id, session_line_num, command_tag, session_start_time,
/// virtual_transaction_id, transaction_id, error_severity, sql_state_code, message, detail,
/// hint, internal_query, internal_query_pos, context, query, query_pos, location,
/// application_name, ...).
pub fn from_csv(line: &str, ctx: &LineContext) -> Option<Parsed> {
    let f = csv_fields(line)?;
    if f.len() < 14 {
        return None;
    }
    let severity = SEVERITIES.iter().find(|s| **s == f[11])?;
    let opt = |i: usize| {
        f.get(i)
            .filter(|v| !v.is_empty())
            .map(|v| Cow::Owned(v.to_string()))
    };
    let mut e = Entry {
        ts: timestamp::parse(&f[0], ctx.zone),
        severity,
        message: Cow::Owned(f[13].trim_end().to_string()),
        user: opt(1),
        database: opt(2),
        app: opt(22),
        client: opt(4),
        pid: f[3].parse().ok(),
        sqlstate: opt(12),
        extra: Vec::new(),
    };
    for (name, i) in [
        ("detail", 14),
        ("hint", 15),
        ("context", 18),
        ("statement", 19),
    ] {
        if let Some(v) = opt(i) {
            e.extra.push((name, v));
        }
    }
    Some(build(e, ctx, "postgres-csv"))
}

/// A jsonlog record (PG 15+): its fields as the JSON reader split them.
pub fn from_json_fields<'a>(
    fields: Vec<(Cow<'a, str>, Val<'a>)>,
    ctx: &LineContext,
) -> Result<Parsed, String> {
    let mut e = Entry::default();
    let mut severity = Cow::Borrowed("");
    for (k, v) in fields {
        // Only the fields read below become text: the rest of a record (session id and start,
        // line number, backend type, query id...) is skipped without an allocation, and a
        // string stays borrowed from the line.
        let wanted = matches!(
            k.as_ref(),
            "timestamp"
                | "error_severity"
                | "message"
                | "user"
                | "dbname"
                | "application_name"
                | "remote_host"
                | "pid"
                | "state_code"
                | "detail"
                | "hint"
                | "context"
                | "statement"
        );
        if !wanted {
            continue;
        }
        let text: Cow<'a, str> = match v {
            Val::Str(s) => s,
            Val::Int(n) => Cow::Owned(n.to_string()),
            Val::UInt(n) => Cow::Owned(n.to_string()),
            _ => continue,
        };
        match k.as_ref() {
            "timestamp" => {
                e.ts = Some(
                    timestamp::parse(&text, ctx.zone)
                        .ok_or_else(|| format!("unparseable timestamp {text:?}"))?,
                )
            }
            "error_severity" => severity = text,
            "message" => e.message = text,
            "user" => e.user = Some(text),
            "dbname" => e.database = Some(text),
            "application_name" if !text.is_empty() => e.app = Some(text),
            "remote_host" => e.client = Some(text),
            "pid" => e.pid = text.parse().ok(),
            "state_code" => e.sqlstate = Some(text),
            "detail" => e.extra.push(("detail", text)),
            "hint" => e.extra.push(("hint", text)),
            "context" => e.extra.push(("context", text)),
            "statement" => e.extra.push(("statement", text)),
            _ => {}
        }
    }
    e.severity = SEVERITIES
        .iter()
        .find(|s| **s == severity)
        .copied()
        .unwrap_or("LOG");
    Ok(build(e, ctx, "postgres-json"))
}

/// `duration: 1.234 ms  statement: SELECT ...` / `execute <name>: ...`: (ms, statement).
fn timed_statement(msg: &str) -> Option<(f64, &str)> {
    let rest = msg.strip_prefix("duration: ")?;
    let (num, rest) = rest.split_once(" ms")?;
    let ms: f64 = num.trim().parse().ok()?;
    let rest = rest.trim_start();
    if let Some(s) = rest.strip_prefix("statement: ") {
        return Some((ms, s));
    }
    // `execute <unnamed>: SELECT ...`, `execute S_1: ...`; parse and bind steps are not runs.
    let s = rest.strip_prefix("execute ")?;
    let (_, stmt) = s.split_once(": ")?;
    Some((ms, stmt))
}

/// The statement with its literals replaced: strings, numbers, `E'...'` and dollar-quoted
/// strings become `$1`, `$2`...; parameters already numbered keep their numbers' place in the
/// count; whitespace runs become one space. One statement shape is one text.
pub fn normalize(sql: &str) -> String {
    let b = sql.as_bytes();
    let mut out = String::with_capacity(sql.len());
    let mut n = 0u32;
    let mut i = 0;
    let mut space = false;
    let push_param = |out: &mut String, n: &mut u32| {
        *n += 1;
        out.push('$');
        out.push_str(&n.to_string());
    };
    while i < b.len() {
        let c = b[i];
        if c.is_ascii_whitespace() {
            space = true;
            i += 1;
            continue;
        }
        if space && !out.is_empty() {
            out.push(' ');
        }
        space = false;
        let prev_word = i > 0 && (b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'_');
        if c == b'\'' || ((c == b'E' || c == b'e') && b.get(i + 1) == Some(&b'\'') && !prev_word) {
            let mut j = if c == b'\'' { i + 1 } else { i + 2 };
            while j < b.len() {
                if b[j] == b'\\' && c != b'\'' {
                    j += 2;
                    continue;
                }
                if b[j] == b'\'' {
                    if b.get(j + 1) == Some(&b'\'') {
                        j += 2;
                        continue;
                    }
                    break;
                }
                j += 1;
            }
            push_param(&mut out, &mut n);
            i = (j + 1).min(b.len());
            continue;
        }
        if c == b'$' {
            // `$1` parameter, or `$tag$ ... $tag$` string.
            let mut j = i + 1;
            while j < b.len() && b[j].is_ascii_digit() {
                j += 1;
            }
            if j > i + 1 {
                push_param(&mut out, &mut n);
                i = j;
                continue;
            }
            let mut k = i + 1;
            while k < b.len() && (b[k].is_ascii_alphanumeric() || b[k] == b'_') {
                k += 1;
            }
            if b.get(k) == Some(&b'$') {
                let tag = &sql[i..=k];
                if let Some(end) = sql[k + 1..].find(tag) {
                    push_param(&mut out, &mut n);
                    i = k + 1 + end + tag.len();
                    continue;
                }
            }
        }
        if c.is_ascii_digit() && !prev_word {
            let mut j = i;
            while j < b.len() && (b[j].is_ascii_digit() || b[j] == b'.' || b[j] == b'e') {
                j += 1;
            }
            push_param(&mut out, &mut n);
            i = j;
            continue;
        }
        if c == b'"' {
            // A quoted identifier is part of the shape: copied whole.
            let end = sql[i + 1..].find('"').map_or(b.len(), |k| i + 2 + k);
            out.push_str(&sql[i..end]);
            i = end;
            continue;
        }
        let ch = sql[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&sql[i..i + ch]);
        i += ch;
    }
    out
}

/// 16 hex digits of SHA-256 over the normalized statement.
pub fn query_fingerprint(normalized: &str) -> String {
    let h = Sha256::digest(normalized.as_bytes());
    hex::encode(&h[..8])
}

fn build(e: Entry, ctx: &LineContext, format: &'static str) -> Parsed {
    let ts = e.ts.unwrap_or(ctx.now);
    if e.severity == "LOG" {
        if let Some((ms, stmt)) = timed_statement(&e.message) {
            let query = normalize(stmt);
            let service = e
                .app
                .as_deref()
                .or(e.user.as_deref())
                .unwrap_or(ctx.service)
                .to_string();
            return Parsed {
                query: Some(QueryRecord {
                    ts,
                    service,
                    database: e.database.map(Cow::into_owned),
                    fingerprint: query_fingerprint(&query),
                    query,
                    duration_ms: ms,
                    rows: None,
                    trace_id: None,
                }),
                format,
                ..Parsed::default()
            };
        }
    }
    let mut attrs = Map::new();
    let mut put = |k: &str, v: Option<Cow<str>>| {
        if let Some(v) = v {
            attrs.insert(k.into(), Value::String(v.into_owned()));
        }
    };
    put("user", e.user);
    put("database", e.database);
    put("application", e.app);
    put("client", e.client);
    if let Some(p) = e.pid {
        attrs.insert("pid".into(), Value::from(p));
    }
    let mut level = level_of(e.severity);
    if !matches!(e.severity, "LOG" | "ERROR" | "WARNING" | "FATAL" | "PANIC") {
        attrs.insert("pg_part".into(), Value::from(e.severity));
    }
    let mut error_type = e
        .sqlstate
        .as_deref()
        .filter(|c| !c.starts_with("00"))
        .map(|c| condition(c).map_or_else(|| c.to_string(), str::to_string));
    // 00000 (successful_completion) is what every LOG line of csvlog carries: no news.
    if let Some(code) = e.sqlstate.filter(|c| !c.starts_with("00")) {
        attrs.insert("sqlstate".into(), Value::String(code.into_owned()));
    }
    let message = e.message.into_owned();
    if message.starts_with("deadlock detected") && error_type.is_none() {
        error_type = Some("deadlock_detected".into());
    }
    if message.starts_with("process ") && message.contains(" still waiting for ") {
        attrs.insert("pg_event".into(), Value::from("lock_wait"));
        if let Some(ms) = message
            .rsplit_once(" after ")
            .and_then(|(_, t)| t.trim_end_matches('.').strip_suffix(" ms"))
            .and_then(|t| t.trim().parse::<f64>().ok())
        {
            attrs.insert("lock_wait_ms".into(), Value::from(ms));
        }
        level = level.max(Level::Warn);
    }
    if message.starts_with("process ") && message.contains(" detected deadlock while waiting") {
        attrs.insert("pg_event".into(), Value::from("deadlock"));
    }
    if error_type.as_deref() == Some("deadlock_detected") {
        attrs.insert("pg_event".into(), Value::from("deadlock"));
    }
    for (k, v) in e.extra {
        attrs.insert(k.into(), Value::String(v.into_owned()));
    }
    let mut log = LogRecord::new(ts, level, ctx.service.to_string(), message);
    log.error_type = error_type;
    log.attrs = (!attrs.is_empty()).then_some(Value::Object(attrs));
    Parsed {
        log: Some(log),
        format,
        ..Parsed::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> LineContext<'static> {
        LineContext {
            service: "pg",
            now: DateTime::<Utc>::from_timestamp(0, 0).unwrap_or_default(),
            level: None,
            zone: &crate::ingest::timestamp::UTC,
        }
    }

    #[test]
    fn literals_become_numbered_parameters() {
        assert_eq!(
            normalize("SELECT * FROM t WHERE a = 'x''y' AND b IN (1, 2.5) AND c = E'q\\'r'"),
            "SELECT * FROM t WHERE a = $1 AND b IN ($2, $3) AND c = $4"
        );
        assert_eq!(
            normalize("select  $$body$$ ,\n\t $tag$a$b$tag$, col1, t2.x3 from \"T 1\" where id=$1"),
            "select $1 , $2, col1, t2.x3 from \"T 1\" where id=$3"
        );
        assert_eq!(normalize("SELECT 'open"), "SELECT $1");
        assert_eq!(
            query_fingerprint(&normalize("SELECT 1")),
            query_fingerprint(&normalize("SELECT  42"))
        );
    }

    #[test]
    fn stderr_lines_with_common_prefixes() {
        let p = parse(
            "2024-01-02 03:04:05.678 UTC [123] LOG:  duration: 0.123 ms  statement: SELECT 1",
            &ctx(),
        )
        .unwrap();
        let q = p.query.unwrap();
        assert_eq!((q.query.as_str(), q.duration_ms), ("SELECT $1", 0.123));
        assert!(p.log.is_none());
        let p = parse(
            "2024-01-02 03:04:05 UTC [77]: [3-1] user=app,db=shop,app=api,client=10.0.0.2 LOG:  duration: 12.5 ms  execute <unnamed>: UPDATE t SET a = $1 WHERE id = 5",
            &ctx(),
        )
        .unwrap();
        let q = p.query.unwrap();
        assert_eq!(q.query, "UPDATE t SET a = $1 WHERE id = $2");
        assert_eq!(
            (q.service.as_str(), q.database.as_deref()),
            ("api", Some("shop"))
        );
        let p = parse(
            "2024-01-02 03:04:05.1 CET [9] app@shop ERROR:  40P01: deadlock detected",
            &ctx(),
        )
        .unwrap();
        let log = p.log.unwrap();
        assert_eq!(log.level, Level::Error);
        assert_eq!(log.error_type.as_deref(), Some("deadlock_detected"));
        assert_eq!(log.message, "deadlock detected");
        assert_eq!(log.ts.to_rfc3339(), "2024-01-02T02:04:05.100+00:00");
        let attrs = log.attrs.unwrap();
        assert_eq!(
            (attrs["user"].as_str(), attrs["database"].as_str()),
            (Some("app"), Some("shop"))
        );
        let p = parse(
            "2024-01-02 03:04:05.678 UTC [5] LOG:  process 5 still waiting for ShareLock on transaction 731 after 1000.172 ms",
            &ctx(),
        )
        .unwrap();
        let log = p.log.unwrap();
        assert_eq!(log.level, Level::Warn);
        let attrs = log.attrs.unwrap();
        assert_eq!(attrs["pg_event"], "lock_wait");
        assert_eq!(attrs["lock_wait_ms"], 1000.172);
        assert!(parse("hello world", &ctx()).is_err());
        // "LOG:" in a message is not a severity unless it has PostgreSQL's two spaces.
        assert!(parse("2024-01-02 03:04:05 UTC see LOG: here", &ctx()).is_err());
    }

    #[test]
    fn csv_records_and_cut_records() {
        let f = csv_fields(r#"a,"b ""q"", c",,"d"#).unwrap();
        assert_eq!(f, vec!["a", "b \"q\", c", "", "d"]);
        let f = csv_fields(r#"a,"open"#).unwrap();
        assert_eq!(f, vec!["a", "open"]);
        assert!(csv_fields(r#"a,"x"y"#).is_none());
    }
}
