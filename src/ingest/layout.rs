//! Custom access-log layouts: an nginx `log_format` or an Apache `LogFormat` string, compiled
//! once into a list of literals and fields, then matched left to right against each line (each
//! field runs to the next literal; a quoted field skips `\"` escapes). The fields give the
//! request row: `$request`/`%r`, `$status`/`%>s`, `$body_bytes_sent`/`%b`, and the duration
//! from `$request_time` (s), `$upstream_response_time` (s, when there is no request time;
//! several upstreams are summed), `%D` (µs) or `%T` (s). Fields without a column go to attrs.

use super::fields::LineContext;
use super::record::{Direction, Parsed, RequestRecord};
use super::{route, timestamp};

/// What a field of the layout feeds.
#[derive(Debug, Clone, PartialEq)]
enum Field {
    Ip,
    User,
    /// `[10/Oct/2000:13:55:36 -0700]` or without its brackets, ISO 8601, or epoch seconds.
    Time,
    Request,
    Method,
    Path,
    Status,
    Bytes,
    Seconds,
    UpstreamSeconds,
    Micros,
    UserAgent,
    RequestId,
    /// Kept in attrs under this name.
    Attr(String),
}

#[derive(Debug, Clone, PartialEq)]
enum Part {
    Lit(String),
    Field(Field),
}

/// A compiled layout.
#[derive(Debug, Clone, PartialEq)]
pub struct Layout {
    parts: Vec<Part>,
    pub source: String,
}

fn nginx_field(name: &str) -> Field {
    match name {
        "remote_addr" | "realip_remote_addr" | "binary_remote_addr" => Field::Ip,
        "remote_user" => Field::User,
        "time_local" | "time_iso8601" | "msec" => Field::Time,
        "request" => Field::Request,
        "request_method" => Field::Method,
        "request_uri" | "uri" | "document_uri" => Field::Path,
        "status" => Field::Status,
        "body_bytes_sent" | "bytes_sent" => Field::Bytes,
        "request_time" => Field::Seconds,
        "upstream_response_time" => Field::UpstreamSeconds,
        "http_user_agent" => Field::UserAgent,
        "request_id" | "http_x_request_id" => Field::RequestId,
        other => Field::Attr(other.to_string()),
    }
}

fn apache_field(directive: char, arg: Option<&str>) -> Result<Field, String> {
    Ok(match (directive, arg) {
        ('h' | 'a', _) => Field::Ip,
        ('u', _) => Field::User,
        ('t', _) => Field::Time,
        ('r', _) => Field::Request,
        ('m', _) => Field::Method,
        ('U', _) => Field::Path,
        ('s', _) => Field::Status,
        ('b' | 'B' | 'O', _) => Field::Bytes,
        ('D', _) => Field::Micros,
        ('T', Some("ms")) => Field::Attr("duration_ms".into()),
        ('T', Some("us")) => Field::Micros,
        ('T', _) => Field::Seconds,
        ('i', Some(h)) if h.eq_ignore_ascii_case("user-agent") => Field::UserAgent,
        ('i', Some(h)) if h.eq_ignore_ascii_case("x-request-id") => Field::RequestId,
        ('i', Some(h)) => Field::Attr(h.to_ascii_lowercase()),
        ('l', _) => Field::Attr("ident".into()),
        ('v' | 'V', _) => Field::Attr("server_name".into()),
        ('q', _) => Field::Attr("query".into()),
        ('H', _) => Field::Attr("protocol".into()),
        ('p', _) => Field::Attr("port".into()),
        ('P', _) => Field::Attr("pid".into()),
        ('I', _) => Field::Attr("bytes_received".into()),
        (d, _) => return Err(format!("unsupported LogFormat directive %{d}")),
    })
}

fn push_lit(parts: &mut Vec<Part>, c: char) {
    if let Some(Part::Lit(s)) = parts.last_mut() {
        s.push(c);
    } else {
        parts.push(Part::Lit(c.to_string()));
    }
}

impl Layout {
    /// `nginx:<log_format>` or `apache:<LogFormat>`.
    pub fn parse_spec(spec: &str) -> Result<Layout, String> {
        if let Some(f) = spec.strip_prefix("nginx:") {
            Layout::nginx(f)
        } else if let Some(f) = spec.strip_prefix("apache:") {
            Layout::apache(f)
        } else {
            Err(format!(
                "{spec:?}: a custom layout is nginx:'<log_format>' or apache:'<LogFormat>'"
            ))
        }
    }

    pub fn nginx(format: &str) -> Result<Layout, String> {
        let mut parts = Vec::new();
        let mut chars = format.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '$' {
                push_lit(&mut parts, c);
                continue;
            }
            let braced = chars.peek() == Some(&'{');
            if braced {
                chars.next();
            }
            let mut name = String::new();
            while let Some(&n) = chars.peek() {
                if n.is_ascii_alphanumeric() || n == '_' {
                    name.push(n);
                    chars.next();
                } else {
                    break;
                }
            }
            if braced && chars.next() != Some('}') {
                return Err(format!("log_format: unclosed ${{{name}"));
            }
            if name.is_empty() {
                push_lit(&mut parts, '$');
                continue;
            }
            parts.push(Part::Field(nginx_field(&name)));
        }
        Layout::checked(parts, format)
    }

    pub fn apache(format: &str) -> Result<Layout, String> {
        let mut parts = Vec::new();
        let mut chars = format.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '\\' {
                // LogFormat strings are written in quotes: `\"` is a quote, `\t` a tab.
                match chars.next() {
                    Some('t') => push_lit(&mut parts, '\t'),
                    Some('n') => push_lit(&mut parts, '\n'),
                    Some(o) => push_lit(&mut parts, o),
                    None => push_lit(&mut parts, '\\'),
                }
                continue;
            }
            if c != '%' {
                push_lit(&mut parts, c);
                continue;
            }
            // `%>s`, `%<s`, `%{Referer}i`, `%400,501{User-agent}i`: modifiers are skipped.
            while chars
                .peek()
                .is_some_and(|c| matches!(c, '<' | '>' | '!' | ',') || c.is_ascii_digit())
            {
                chars.next();
            }
            let mut arg = None;
            if chars.peek() == Some(&'{') {
                chars.next();
                let mut a = String::new();
                for n in chars.by_ref() {
                    if n == '}' {
                        break;
                    }
                    a.push(n);
                }
                arg = Some(a);
            }
            match chars.next() {
                Some('%') => push_lit(&mut parts, '%'),
                Some(d) => parts.push(Part::Field(apache_field(d, arg.as_deref())?)),
                None => return Err("LogFormat ends with %".into()),
            }
        }
        Layout::checked(parts, format)
    }

    fn checked(parts: Vec<Part>, source: &str) -> Result<Layout, String> {
        for w in parts.windows(2) {
            if let [Part::Field(_), Part::Field(_)] = w {
                return Err(format!(
                    "{source:?}: two fields with nothing between them cannot be told apart"
                ));
            }
        }
        if !parts
            .iter()
            .any(|p| matches!(p, Part::Field(Field::Status)))
        {
            return Err(format!(
                "{source:?}: the layout has no status ($status or %>s)"
            ));
        }
        Ok(Layout {
            parts,
            source: source.to_string(),
        })
    }

    /// Reads one line with this layout.
    pub fn read(&self, line: &str, ctx: &LineContext) -> Result<Parsed, String> {
        let mut at = 0;
        let mut r = RequestRecord {
            ts: ctx.now,
            service: ctx.service.to_string(),
            method: "-".into(),
            route: String::new(),
            status: 0,
            duration_ms: 0.0,
            bytes: None,
            user_id: None,
            trace_id: None,
            request_id: None,
            ip: None,
            user_agent: None,
            error_code: None,
            direction: Direction::Inbound,
            integration: None,
        };
        let mut status = None;
        // The request as the client sent it, for the log row (see `access::log_row`).
        let mut request_line = None;
        let mut raw_path = None;
        let mut referer = None;
        let mut request_s = None;
        let mut upstream_s = None;
        let miss = || {
            format!(
                "does not match the layout {}",
                super::pipeline::clip(&self.source, 60)
            )
        };
        for (i, part) in self.parts.iter().enumerate() {
            match part {
                Part::Lit(l) => {
                    if !line[at..].starts_with(l.as_str()) {
                        return Err(miss());
                    }
                    at += l.len();
                }
                Part::Field(f) => {
                    let end = match self.parts.get(i + 1) {
                        Some(Part::Lit(next)) => field_end(line, at, next).ok_or_else(miss)?,
                        _ => line.len(),
                    };
                    let v = &line[at..end];
                    at = end;
                    let val = (!v.is_empty() && v != "-").then_some(v);
                    let Some(v) = val else { continue };
                    match f {
                        Field::Ip => r.ip = Some(v.to_string()),
                        Field::User => r.user_id = Some(v.to_string()),
                        Field::Time => {
                            let t = v.trim_start_matches('[').trim_end_matches(']');
                            r.ts = timestamp::parse(t, ctx.zone)
                                .ok_or_else(|| format!("unparseable timestamp {t:?}"))?;
                        }
                        Field::Request => {
                            request_line = Some(v);
                            let mut p = v.split(' ');
                            if let (Some(m), Some(path)) = (p.next(), p.next()) {
                                if !m.is_empty()
                                    && m.len() <= 16
                                    && m.bytes().all(|b| b.is_ascii_alphabetic())
                                {
                                    r.method = m.to_ascii_uppercase();
                                    r.route = route::template(path);
                                }
                            }
                        }
                        Field::Method => r.method = v.to_ascii_uppercase(),
                        Field::Path => {
                            raw_path = Some(v);
                            r.route = route::template(v);
                        }
                        Field::Status => status = v.parse::<i16>().ok(),
                        Field::Bytes => r.bytes = v.parse().ok(),
                        Field::Seconds => request_s = v.parse::<f64>().ok(),
                        Field::UpstreamSeconds => {
                            // `0.010, 0.020` (tried upstreams) or `0.010 : 0.020` (internal
                            // redirect): the time spent upstream is their sum.
                            let sum: f64 = v
                                .split([',', ':'])
                                .filter_map(|x| x.trim().parse::<f64>().ok())
                                .sum();
                            upstream_s = Some(sum);
                        }
                        Field::Micros => request_s = v.parse::<f64>().ok().map(|us| us / 1e6),
                        Field::UserAgent => r.user_agent = Some(v.replace("\\\"", "\"")),
                        Field::RequestId => r.request_id = Some(v.to_string()),
                        Field::Attr(name) if name == "http_referer" || name == "referer" => {
                            referer = Some(v.replace("\\\"", "\""));
                        }
                        Field::Attr(name) => {
                            // Other fields are matched past: request_log has no column for them.
                            if name == "duration_ms" {
                                request_s = v.parse::<f64>().ok().map(|ms| ms / 1e3);
                            }
                        }
                    }
                }
            }
        }
        r.status = status
            .filter(|s| (0..=999).contains(s))
            .ok_or_else(|| "no status".to_string())?;
        r.duration_ms = request_s.or(upstream_s).map_or(0.0, |s| s * 1e3);
        let request = match (request_line, raw_path) {
            (Some(l), _) => l.to_string(),
            (None, Some(p)) => format!("{} {p}", r.method),
            (None, None) => r.method.clone(),
        };
        Ok(Parsed {
            log: Some(super::access::log_row(&r, &request, referer)),
            request: Some(r),
            format: "access",
            ..Parsed::default()
        })
    }
}

/// Where a field starting at `at` ends: at the next occurrence of the literal that follows it.
/// A field inside quotes (the literal starts with `"`) skips backslash-escaped characters.
fn field_end(line: &str, at: usize, next: &str) -> Option<usize> {
    let b = line.as_bytes();
    if next.starts_with('"') {
        let mut i = at;
        while i < b.len() {
            if b[i] == b'\\' {
                i += 2;
                continue;
            }
            // Compared as bytes: `i` may sit inside a multi-byte character after an escape.
            if b[i..].starts_with(next.as_bytes()) {
                return Some(i);
            }
            i += 1;
        }
        return None;
    }
    line[at..].find(next).map(|k| at + k)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{DateTime, Utc};

    fn ctx() -> LineContext<'static> {
        LineContext {
            service: "web",
            now: DateTime::<Utc>::from_timestamp(0, 0).unwrap_or_default(),
            level: None,
            zone: &crate::ingest::timestamp::UTC,
        }
    }

    #[test]
    fn nginx_log_format_with_request_and_upstream_times() {
        let l = Layout::parse_spec(
            r#"nginx:$remote_addr - $remote_user [$time_local] "$request" $status $body_bytes_sent "$http_referer" "$http_user_agent" $request_time $upstream_response_time"#,
        )
        .unwrap();
        let line = r#"203.0.113.9 - alice [10/Oct/2023:13:55:36 +0000] "GET /api/users/42?x=1 HTTP/1.1" 502 157 "-" "curl/8.0 \"x\"" 0.250 0.120, 0.100"#;
        let r = l.read(line, &ctx()).unwrap().request.unwrap();
        assert_eq!(
            (r.method.as_str(), r.route.as_str(), r.status),
            ("GET", "/api/users/:id", 502)
        );
        assert_eq!((r.bytes, r.duration_ms), (Some(157), 250.0));
        assert_eq!(r.user_agent.as_deref(), Some("curl/8.0 \"x\""));
        assert_eq!(r.ts.to_rfc3339(), "2023-10-10T13:55:36+00:00");
        // No request time: the upstream times, summed.
        let l = Layout::nginx(
            r#"$remote_addr [$time_iso8601] "$request" $status $upstream_response_time"#,
        )
        .unwrap();
        let r = l
            .read(
                r#"10.0.0.1 [2024-01-02T03:04:05+00:00] "POST /x HTTP/2.0" 200 0.120, 0.100"#,
                &ctx(),
            )
            .unwrap()
            .request
            .unwrap();
        assert!((r.duration_ms - 220.0).abs() < 1e-9);
        assert!(l.read("garbage", &ctx()).is_err());
    }

    #[test]
    fn apache_log_format_with_d_and_t() {
        let l = Layout::parse_spec(r#"apache:%h %l %u %t \"%r\" %>s %b %D"#).unwrap();
        let r = l
            .read(
                r#"1.2.3.4 - - [10/Oct/2023:13:55:36 -0700] "DELETE /items/9 HTTP/1.1" 204 - 2500"#,
                &ctx(),
            )
            .unwrap()
            .request
            .unwrap();
        assert_eq!(
            (r.method.as_str(), r.status, r.bytes, r.duration_ms),
            ("DELETE", 204, None, 2.5)
        );
        assert_eq!(r.ts.to_rfc3339(), "2023-10-10T20:55:36+00:00");
        let l = Layout::apache(r#"%a %T %>s %{User-Agent}i|%{X-Request-Id}i"#).unwrap();
        let r = l
            .read("::1 2 500 Mozilla/5.0 (X11)|rq-9", &ctx())
            .unwrap()
            .request
            .unwrap();
        assert_eq!((r.duration_ms, r.status), (2000.0, 500));
        assert_eq!(r.user_agent.as_deref(), Some("Mozilla/5.0 (X11)"));
        assert_eq!(r.request_id.as_deref(), Some("rq-9"));
    }

    proptest::proptest! {
        /// No line makes the matcher panic (escapes before multi-byte characters included).
        #[test]
        fn any_line_is_read_or_refused(line in "[\\\\\"a-zé€ 0-9\\[\\]:./-]{0,80}") {
            let l = Layout::parse_spec(r#"nginx:$remote_addr "$request" $status "$http_user_agent" $request_time"#).unwrap();
            let _ = l.read(&line, &ctx());
        }
    }

    #[test]
    fn layouts_that_cannot_work_are_refused() {
        assert!(Layout::parse_spec("nginx:$remote_addr$status").is_err());
        assert!(Layout::parse_spec("nginx:$remote_addr [$time_local]").is_err());
        assert!(Layout::parse_spec("apache:%h %Z %>s").is_err());
        assert!(Layout::parse_spec("caddy:{x}").is_err());
    }
}
