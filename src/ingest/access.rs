//! nginx and Apache access logs in the common and combined formats, optionally followed by a
//! request time. Each line becomes a `request_log` row and a `log_event` row.
//!
//! Why a log row too (rather than the Logs tab reading `request_log`): everything an operator
//! does with log lines (the Logs tab and its service/level/host filters, `e`/`E` to jump between
//! errors, error grouping and alerts on it, `opsdash export`) reads `log_event`, as it does for
//! a JSON request line, which has both rows already. The log row says what the server wrote in
//! a line: the request as the client sent it and the status (`GET /users/17?x=1 503`); its level
//! follows the status (5xx error, 4xx warn, else info), and a 5xx is grouped by its status
//! (`HTTP 503` as the error type) and the request's shape. The request's columns (route,
//! method, status, duration, client address, user agent, user) are filled as for JSON lines;
//! the referer, which has no column, is kept in attrs.
//!
//! The unit of the trailing request time is decided by how it is written, in every mode: nginx
//! `$request_time` is seconds and always printed with a decimal point (`0.125`, `0.000`), while
//! `%D` (Apache, or an nginx `log_format` emulating it) is whole microseconds (`2500`). So a
//! number with a decimal point is seconds and an integer microseconds.

use std::sync::OnceLock;

use regex::Regex;

use serde_json::{Map, Value};

use super::fields::LineContext;
use super::record::{Direction, LogRecord, Parsed, RequestRecord};
use super::{route, timestamp};
use crate::model::Level;

/// Which server wrote the log (the `--format` asked for, or auto-detection). The request
/// time's unit is read from the number itself (see the module doc), whatever the flavor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    Nginx,
    Apache,
    Either,
}

fn pattern() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        Regex::new(
            r#"^(\S+) \S+ (\S+) \[([^\]]+)\] "((?:[^"\\]|\\.)*)" (\d{3}) (\d+|-)(?: "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)")?(?: (\d+(?:\.\d+)?|-))?"#,
        )
        .unwrap_or_else(|e| panic!("access log pattern: {e}"))
    })
}

fn dash(s: &str) -> Option<String> {
    (!s.is_empty() && s != "-").then(|| s.replace("\\\"", "\""))
}

/// The log row of a request read from an access log (see the module doc): `request` is the
/// request line as the client sent it.
pub fn log_row(req: &RequestRecord, request: &str, referer: Option<String>) -> LogRecord {
    let level = match req.status {
        500.. => Level::Error,
        400..=499 => Level::Warn,
        _ => Level::Info,
    };
    // The protocol adds nothing a reader of the Logs tab needs.
    let shown = request
        .rsplit_once(" HTTP/")
        .map_or(request, |(head, _)| head)
        .replace("\\\"", "\"");
    let shown = if shown.is_empty() { "-" } else { &shown };
    let mut log = LogRecord::new(
        req.ts,
        level,
        req.service.clone(),
        format!("{shown} {}", req.status),
    );
    if level == Level::Error {
        log.error_type = Some(format!("HTTP {}", req.status));
    }
    if !req.route.is_empty() {
        log.route = Some(req.route.clone());
    }
    if req.method != "-" {
        log.method = Some(req.method.clone());
    }
    log.status = Some(req.status);
    log.duration_ms = Some(req.duration_ms);
    log.ip.clone_from(&req.ip);
    log.user_agent.clone_from(&req.user_agent);
    log.user_id.clone_from(&req.user_id);
    log.request_id.clone_from(&req.request_id);
    if let Some(r) = referer {
        let mut attrs = Map::new();
        attrs.insert("referer".into(), Value::String(r));
        log.attrs = Some(Value::Object(attrs));
    }
    log
}

/// The capture groups of `pattern()` (index 0 unused), as slices of the line.
type Groups<'a> = [Option<&'a str>; 10];

/// `pattern()`'s captures, through the regex.
fn by_regex(line: &str) -> Option<Groups<'_>> {
    let c = pattern().captures(line)?;
    let mut g: Groups = [None; 10];
    for (i, slot) in g.iter_mut().enumerate().skip(1) {
        *slot = c.get(i).map(|m| m.as_str());
    }
    Some(g)
}

/// `pattern()`'s captures read by hand, for ASCII lines (None: let the regex decide). Every
/// part of the pattern has one way to match (runs end at the first space, quoted strings at the
/// first unescaped quote, the optional tails match when present), so a left-to-right read gives
/// the regex's groups; a test holds the two to that. The regex's `\S` and `\d` are Unicode
/// classes, hence ASCII only here.
fn by_hand(line: &str) -> Option<Groups<'_>> {
    if !line.is_ascii() {
        return None;
    }
    let b = line.as_bytes();
    let mut g: Groups = [None; 10];
    let mut at = 0;
    // `\S+` followed by a space.
    let token = |at: &mut usize| -> Option<(usize, usize)> {
        let start = *at;
        while *at < b.len() && !b[*at].is_ascii_whitespace() && b[*at] != 0x0b {
            *at += 1;
        }
        (*at > start).then_some((start, *at))
    };
    let eat = |at: &mut usize, c: u8| -> Option<()> { (b.get(*at) == Some(&c)).then(|| *at += 1) };
    // `"((?:[^"\\]|\\.)*)"`: the group without its quotes.
    let quoted = |at: &mut usize| -> Option<(usize, usize)> {
        eat(at, b'"')?;
        let start = *at;
        loop {
            match b.get(*at)? {
                b'"' => break,
                b'\\' => {
                    if *b.get(*at + 1)? == b'\n' {
                        return None;
                    }
                    *at += 2;
                }
                _ => *at += 1,
            }
        }
        let end = *at;
        *at += 1;
        Some((start, end))
    };
    let digits = |at: &mut usize| -> usize {
        let start = *at;
        while *at < b.len() && b[*at].is_ascii_digit() {
            *at += 1;
        }
        *at - start
    };
    let (s, e) = token(&mut at)?;
    g[1] = Some(&line[s..e]);
    eat(&mut at, b' ')?;
    token(&mut at)?;
    eat(&mut at, b' ')?;
    let (s, e) = token(&mut at)?;
    g[2] = Some(&line[s..e]);
    eat(&mut at, b' ')?;
    eat(&mut at, b'[')?;
    let close = at + memchr::memchr(b']', &b[at..])?;
    if close == at {
        return None;
    }
    g[3] = Some(&line[at..close]);
    at = close + 1;
    eat(&mut at, b' ')?;
    let (s, e) = quoted(&mut at)?;
    g[4] = Some(&line[s..e]);
    eat(&mut at, b' ')?;
    let s = at;
    if digits(&mut at) < 3 {
        return None;
    }
    // `\d{3}` then a space: a fourth digit fails the pattern.
    at = s + 3;
    g[5] = Some(&line[s..at]);
    eat(&mut at, b' ')?;
    let s = at;
    if digits(&mut at) == 0 {
        eat(&mut at, b'-')?;
    }
    g[6] = Some(&line[s..at]);
    // ` "referer" "user agent"`, when both are there.
    let mut k = at;
    if eat(&mut k, b' ').is_some() {
        if let Some((rs, re)) = quoted(&mut k) {
            if eat(&mut k, b' ').is_some() {
                if let Some((us, ue)) = quoted(&mut k) {
                    g[7] = Some(&line[rs..re]);
                    g[8] = Some(&line[us..ue]);
                    at = k;
                }
            }
        }
    }
    // ` 0.125`, ` 2500` or ` -`.
    let mut k = at;
    if eat(&mut k, b' ').is_some() {
        let s = k;
        if digits(&mut k) > 0 {
            let mut f = k;
            if eat(&mut f, b'.').is_some() && digits(&mut f) > 0 {
                k = f;
            }
            g[9] = Some(&line[s..k]);
        } else if eat(&mut k, b'-').is_some() {
            g[9] = Some(&line[s..k]);
        }
    }
    Some(g)
}

/// Parses one access-log line.
pub fn parse(line: &str, _flavor: Flavor, ctx: &LineContext) -> Result<Parsed, String> {
    let c = by_hand(line)
        .or_else(|| by_regex(line))
        .ok_or_else(|| "not a common/combined access log line".to_string())?;
    let get = |i: usize| c[i].unwrap_or("");
    let ts = timestamp::parse(get(3), ctx.zone)
        .ok_or_else(|| format!("unparseable timestamp {:?}", get(3)))?;
    // The request line is client-controlled: garbage (a TLS handshake on the HTTP port) is
    // still a request worth counting, with what can be read of it.
    let mut parts = get(4).split(' ');
    let (method, path) = match (parts.next(), parts.next()) {
        (Some(m), Some(p))
            if !m.is_empty() && m.len() <= 16 && m.bytes().all(|b| b.is_ascii_alphabetic()) =>
        {
            (m.to_ascii_uppercase(), route::template(p))
        }
        _ => ("-".to_string(), String::new()),
    };
    let status: i16 = get(5).parse().map_err(|_| "bad status".to_string())?;
    let bytes = get(6).parse::<i64>().ok();
    let duration_ms = match c[9] {
        Some(t) if t != "-" => {
            let v: f64 = t.parse().unwrap_or(0.0);
            if t.contains('.') {
                v * 1e3
            } else {
                v / 1e3
            }
        }
        _ => 0.0,
    };
    let request = RequestRecord {
        ts,
        service: ctx.service.to_string(),
        method,
        route: path,
        status,
        duration_ms,
        bytes,
        user_id: dash(get(2)),
        trace_id: None,
        request_id: None,
        ip: dash(get(1)),
        user_agent: c[8].and_then(dash),
        error_code: None,
        direction: Direction::Inbound,
        integration: None,
    };
    Ok(Parsed {
        log: Some(log_row(&request, get(4), c[7].and_then(dash))),
        request: Some(request),
        format: "access",
        ..Parsed::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn ctx() -> LineContext<'static> {
        LineContext {
            service: "web",
            now: DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
            level: None,
            zone: &crate::ingest::timestamp::UTC,
        }
    }

    #[test]
    fn combined_with_request_time() {
        let line = r#"203.0.113.9 - alice [10/Oct/2023:13:55:36 +0000] "GET /api/users/42?x=1 HTTP/1.1" 404 512 "-" "curl/8.0 \"x\"" 0.125"#;
        let r = parse(line, Flavor::Nginx, &ctx()).unwrap().request.unwrap();
        assert_eq!(r.method, "GET");
        assert_eq!(r.route, "/api/users/:id");
        assert_eq!(r.status, 404);
        assert_eq!(r.bytes, Some(512));
        assert_eq!(r.duration_ms, 125.0);
        assert_eq!(r.user_id.as_deref(), Some("alice"));
        assert_eq!(r.ip.as_deref(), Some("203.0.113.9"));
        assert_eq!(r.user_agent.as_deref(), Some("curl/8.0 \"x\""));
        assert_eq!(r.service, "web");
    }

    #[test]
    fn common_format_and_garbage_request() {
        let line = r#"::1 - - [10/Oct/2023:13:55:36 -0700] "\x16\x03\x01" 400 0"#;
        let r = parse(line, Flavor::Apache, &ctx())
            .unwrap()
            .request
            .unwrap();
        assert_eq!(r.method, "-");
        assert_eq!(r.status, 400);
        assert_eq!(r.ts.to_rfc3339(), "2023-10-10T20:55:36+00:00");
        let apache =
            r#"1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "POST /x HTTP/1.1" 200 - "-" "ua" 2500"#;
        let r = parse(apache, Flavor::Apache, &ctx())
            .unwrap()
            .request
            .unwrap();
        assert_eq!(r.duration_ms, 2.5);
        assert_eq!(r.bytes, None);
        assert!(parse("hello", Flavor::Either, &ctx()).is_err());
    }

    proptest::proptest! {
        /// The hand reader gives the regex's groups on every ASCII line, access-log shaped or
        /// nearly (odd spaces, escapes, brackets, missing or extra parts).
        #[test]
        fn hand_reader_agrees_with_the_regex(
            parts in proptest::collection::vec("[-a-z0-9. \"\\\\\\[\\]\t\x0b\n/:]{0,8}", 12),
            status in "[0-9]{2,4}|-",
            bytes in "[0-9]{0,3}|-",
            time in "[0-9]{0,3}(\\.[0-9]{0,3})?|-|x",
            shape in 0usize..4,
        ) {
            let p = |i: usize| parts[i].as_str();
            let line = match shape {
                0 => format!(
                    "{} - {} [{}] \"{}\" {status} {bytes} \"{}\" \"{}\" {time}{}",
                    p(0), p(1), p(2), p(3), p(4), p(5), p(6)
                ),
                1 => format!("{} {} {} [{}] \"{}\" {status} {bytes}{}", p(0), p(1), p(2), p(3), p(4), p(5)),
                2 => format!(
                    "{}{}{}{}[{}]{}\"{}\"{}{status}{}{bytes}{}",
                    p(0), p(1), p(2), p(3), p(4), p(5), p(6), p(7), p(8), p(9)
                ),
                _ => parts.concat(),
            };
            proptest::prop_assert_eq!(by_hand(&line), by_regex(&line), "{:?}", line);
        }
    }

    #[test]
    fn hand_reader_reads_every_group() {
        let line = r#"203.0.113.9 - alice [10/Oct/2023:13:55:36 +0000] "GET /a?x=\"1\" HTTP/1.1" 404 512 "-" "curl \"x\"" 0.125 extra"#;
        let g = by_hand(line).unwrap();
        assert_eq!(g, by_regex(line).unwrap());
        assert_eq!(g[3], Some("10/Oct/2023:13:55:36 +0000"));
        assert_eq!(g[8], Some(r#"curl \"x\""#));
        assert_eq!(g[9], Some("0.125"));
        // Not ASCII: the regex reads it.
        assert!(by_hand("1.2.3.4 - - [x] \"é\" 200 1").is_none());
    }

    /// `%D` (integer microseconds) in an nginx log is not seconds; `$request_time` in an
    /// Apache-mode read is not microseconds.
    #[test]
    fn request_time_unit_follows_how_it_is_written() {
        let line = |t: &str| {
            format!(
                r#"1.2.3.4 - - [10/Oct/2023:13:55:36 +0000] "GET /x HTTP/1.1" 200 5 "-" "ua" {t}"#
            )
        };
        for flavor in [Flavor::Nginx, Flavor::Apache, Flavor::Either] {
            let d = |t: &str| {
                parse(&line(t), flavor, &ctx())
                    .unwrap()
                    .request
                    .unwrap()
                    .duration_ms
            };
            assert_eq!(d("2500"), 2.5, "{flavor:?}");
            assert_eq!(d("0.125"), 125.0, "{flavor:?}");
            assert_eq!(d("0.000"), 0.0, "{flavor:?}");
        }
    }
}
