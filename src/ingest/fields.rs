//! Maps the field names structured loggers use (bunyan, pino, zap, logrus, structlog, ECS,
//! OpenTelemetry...) onto our columns. JSON and logfmt lines both arrive here as a list of
//! (key, value) pairs; fields without a column of their own go to `attrs`.
//!
//! Decisions on odd lines (each keeps the value it does not use visible in attrs):
//! - several level fields (two `level` keys, or `level` and `severity`): the most severe one
//!   gives the column, so a duplicated key can never hide an error; the others stay in attrs
//!   under their key. Heroku's `at=error` gives the level when no level field does.
//! - a service-name field whose value is a duration (Heroku router `service=30000ms`) is the
//!   request's duration, not a name.
//! - `service`/`app`/`logger`/`name`/`component` name the service of a line; a `--service`
//!   given by the user wins over all of them (see `pipeline::Options::force_service`).
//! - durations are read by field name: `*_ms` milliseconds, `request_time`/`*_s` seconds
//!   (nginx `$request_time`), `*_us`/`request_time_us` microseconds (nginx/Apache `%D`-style),
//!   `*_ns` nanoseconds; a name with no unit takes text with a unit, or a number in ms.
//! - nested objects of the ECS and OpenTelemetry namespaces (`{"log":{"level":..}}`,
//!   `{"service":{"name":..}}`, `{"http":{"request":{"method":..}}}`) are read as their dotted
//!   names (`log.level`); OTel's `resource` and `attributes` hold names that are already
//!   dotted. What has no column stays in attrs under the outer key.
//! - Serilog CLEF: `@m` is the message; without it `@mt` rendered with the event's properties
//!   is; no `@l` means Information (even with an `@x` exception, whose type gives error_type).
//! - structlog names the message `event` (used when there is no `msg`/`message`); loguru's
//!   `serialize=True` nests everything under `record` (its `text` rendering is then dropped).
//!
//! Long because it is the field-name table of every dialect plus the decisions below; split by
//! dialect, the precedence rules that must be read together would scatter.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde_json::{Map, Number, Value};

use super::record::{Direction, LogRecord, Parsed, RequestRecord};
use super::{route, timestamp};
use crate::model::Level;

/// A field value, borrowed from the input line when it needs no unescaping.
#[derive(Debug, Clone, PartialEq)]
pub enum Val<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    UInt(u64),
    Float(f64),
    Bool(bool),
    Null,
    /// Objects and arrays, kept whole.
    Nested(Value),
}

impl Val<'_> {
    fn as_str(&self) -> Option<&str> {
        match self {
            Val::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Text form of a scalar (ids are sometimes numbers).
    fn to_text(&self) -> Option<String> {
        match self {
            Val::Str(s) if s.is_empty() => None,
            Val::Str(s) => Some(s.to_string()),
            Val::Int(n) => Some(n.to_string()),
            Val::UInt(n) => Some(n.to_string()),
            Val::Float(n) => Some(n.to_string()),
            Val::Bool(b) => Some(b.to_string()),
            Val::Null | Val::Nested(_) => None,
        }
    }

    fn to_f64(&self) -> Option<f64> {
        let v = match self {
            Val::Int(n) => *n as f64,
            Val::UInt(n) => *n as f64,
            Val::Float(n) => *n,
            Val::Str(s) => s.trim().parse::<f64>().ok()?,
            _ => return None,
        };
        v.is_finite().then_some(v)
    }

    pub fn into_json(self) -> Value {
        match self {
            Val::Str(s) => Value::String(s.into_owned()),
            Val::Int(n) => Value::Number(n.into()),
            Val::UInt(n) => Value::Number(n.into()),
            Val::Float(n) => Number::from_f64(n)
                .map(Value::Number)
                .unwrap_or(Value::Null),
            Val::Bool(b) => Value::Bool(b),
            Val::Null => Value::Null,
            Val::Nested(v) => v,
        }
    }
}

/// The column a field name feeds, with the unit of durations.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Slot {
    Ts,
    Level,
    Message,
    Service(u8),
    Host,
    TraceId,
    SpanId,
    RequestId,
    UserId,
    Route,
    Path,
    Method,
    Status,
    /// Duration with the factor that converts it to milliseconds.
    DurationMs,
    DurationS,
    DurationUs,
    DurationNs,
    /// A duration with no unit in its name: milliseconds when a number, any unit when text.
    DurationAny,
    Ip,
    UserAgent,
    ErrorType,
    ErrorObject,
    Bytes,
    ErrorCode,
    Direction,
    Integration,
    /// Nested objects that carry request or response fields (pino-http `req`/`res`, ECS `http`).
    HttpObject,
    /// Heroku's `at=info|error`: the level when the line has no level field.
    At,
    /// structlog's message field (a message only when the line has no `msg`/`message`).
    Event,
    /// Serilog's message template, rendered when there is no `@m`.
    Template,
    /// Serilog's exception text (`@x`).
    Exception,
    /// OpenTelemetry's 1-24 severity.
    SeverityNumber,
}

/// Outer keys whose object value is read as dotted names (ECS, OTel); `true`: the names
/// inside are complete already (OTel's `resource` and `attributes`).
fn namespace(key: &str) -> Option<bool> {
    Some(match key {
        "log" | "service" | "trace" | "span" | "host" | "url" | "event" | "user" | "client"
        | "source" | "http" => false,
        "resource" | "attributes" | "Resource" | "Attributes" => true,
        _ => return None,
    })
}

/// The exception type at the head of an exception's text: .NET/Java `System.IO.IOException:
/// msg` (first line), Python `Traceback ...` (last line `ValueError: msg`).
fn exception_type(text: &str) -> Option<String> {
    let line = if text.starts_with("Traceback") {
        text.lines().rev().find(|l| !l.trim().is_empty())?
    } else {
        text.lines().next()?
    };
    let name = line.split(':').next()?.trim();
    let looks_like_type = !name.is_empty()
        && name.len() <= 200
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'$' | b'+'))
        && name.bytes().next().is_some_and(|b| b.is_ascii_alphabetic())
        && (name.contains('.')
            || name.ends_with("Error")
            || name.ends_with("Exception")
            || name.ends_with("Interrupt")
            || name.ends_with("Exit"));
    looks_like_type.then(|| name.to_string())
}

/// Serilog's message template with the event's properties: `{Name}`, `{@Name}`, `{$Name}`,
/// `{Name:format}`, `{Name,width}`; `{{` and `}}` are literal braces. A property the event
/// lacks stays as written.
fn render_template(template: &str, props: &Map<String, Value>) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut rest = template;
    while let Some(i) = rest.find(['{', '}']) {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if tail.starts_with("{{") || tail.starts_with("}}") {
            out.push_str(&tail[..1]);
            rest = &tail[2..];
            continue;
        }
        if let Some(after) = tail.strip_prefix('}') {
            out.push('}');
            rest = after;
            continue;
        }
        let Some(close) = tail.find('}') else {
            out.push_str(tail);
            return out;
        };
        let hole = &tail[1..close];
        let name = hole.trim_start_matches(['@', '$']);
        let name = name.split([':', ',']).next().unwrap_or(name);
        match props.get(name) {
            Some(Value::String(s)) => out.push_str(s),
            Some(v) => out.push_str(&v.to_string()),
            None => out.push_str(&tail[..=close]),
        }
        rest = &tail[close + 1..];
    }
    out.push_str(rest);
    out
}

/// A JSON value as a field value.
fn from_json(v: Value) -> Val<'static> {
    match v {
        Value::String(s) => Val::Str(Cow::Owned(s)),
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => Val::Int(i),
            (None, Some(u)) => Val::UInt(u),
            _ => Val::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::Bool(b) => Val::Bool(b),
        Value::Null => Val::Null,
        other => Val::Nested(other),
    }
}

/// Field names and the column each feeds. Service name candidates, best first: `service`
/// beats `app` beats `logger`.
const SLOTS: &[(&str, Slot)] = &[
    ("timestamp", Slot::Ts),
    ("ts", Slot::Ts),
    ("time", Slot::Ts),
    ("@timestamp", Slot::Ts),
    ("datetime", Slot::Ts),
    ("@t", Slot::Ts),
    ("time_unix_nano", Slot::Ts),
    ("timeUnixNano", Slot::Ts),
    ("TimeUnixNano", Slot::Ts),
    ("Timestamp", Slot::Ts),
    ("level", Slot::Level),
    ("severity", Slot::Level),
    ("lvl", Slot::Level),
    ("loglevel", Slot::Level),
    ("log.level", Slot::Level),
    ("levelname", Slot::Level),
    ("@l", Slot::Level),
    ("severity_text", Slot::Level),
    ("SeverityText", Slot::Level),
    ("message", Slot::Message),
    ("msg", Slot::Message),
    ("@message", Slot::Message),
    ("@m", Slot::Message),
    ("body", Slot::Message),
    ("Body", Slot::Message),
    ("event", Slot::Event),
    ("@mt", Slot::Template),
    ("@x", Slot::Exception),
    ("severity_number", Slot::SeverityNumber),
    ("severityNumber", Slot::SeverityNumber),
    ("SeverityNumber", Slot::SeverityNumber),
    ("service", Slot::Service(0)),
    ("service.name", Slot::Service(0)),
    ("service_name", Slot::Service(0)),
    ("serviceName", Slot::Service(0)),
    ("app", Slot::Service(1)),
    ("application", Slot::Service(1)),
    ("app_name", Slot::Service(1)),
    ("appName", Slot::Service(1)),
    ("logger", Slot::Service(2)),
    ("logger_name", Slot::Service(2)),
    ("loggerName", Slot::Service(2)),
    ("log.logger", Slot::Service(2)),
    ("name", Slot::Service(2)),
    ("component", Slot::Service(2)),
    ("host", Slot::Host),
    ("hostname", Slot::Host),
    ("host.name", Slot::Host),
    ("host.hostname", Slot::Host),
    ("trace_id", Slot::TraceId),
    ("traceId", Slot::TraceId),
    ("traceid", Slot::TraceId),
    ("trace.id", Slot::TraceId),
    ("correlation_id", Slot::TraceId),
    ("correlationId", Slot::TraceId),
    ("dd.trace_id", Slot::TraceId),
    ("TraceId", Slot::TraceId),
    ("@tr", Slot::TraceId),
    ("span_id", Slot::SpanId),
    ("spanId", Slot::SpanId),
    ("span.id", Slot::SpanId),
    ("dd.span_id", Slot::SpanId),
    ("SpanId", Slot::SpanId),
    ("@sp", Slot::SpanId),
    ("request_id", Slot::RequestId),
    ("requestId", Slot::RequestId),
    ("req_id", Slot::RequestId),
    ("reqId", Slot::RequestId),
    ("x_request_id", Slot::RequestId),
    ("http.request.id", Slot::RequestId),
    ("user_id", Slot::UserId),
    ("userId", Slot::UserId),
    ("user.id", Slot::UserId),
    ("uid", Slot::UserId),
    ("usr.id", Slot::UserId),
    ("route", Slot::Route),
    ("http.route", Slot::Route),
    ("endpoint", Slot::Route),
    ("path", Slot::Path),
    ("url", Slot::Path),
    ("uri", Slot::Path),
    ("http.path", Slot::Path),
    ("http.target", Slot::Path),
    ("http.url", Slot::Path),
    ("url.path", Slot::Path),
    ("request_uri", Slot::Path),
    ("request_path", Slot::Path),
    ("method", Slot::Method),
    ("http_method", Slot::Method),
    ("http.method", Slot::Method),
    ("http.request.method", Slot::Method),
    ("verb", Slot::Method),
    ("status", Slot::Status),
    ("status_code", Slot::Status),
    ("statusCode", Slot::Status),
    ("http.status_code", Slot::Status),
    ("http.response.status_code", Slot::Status),
    ("http_status", Slot::Status),
    ("duration_ms", Slot::DurationMs),
    ("elapsed_ms", Slot::DurationMs),
    ("latency_ms", Slot::DurationMs),
    ("response_time_ms", Slot::DurationMs),
    ("took_ms", Slot::DurationMs),
    ("responseTime", Slot::DurationMs),
    ("response_time", Slot::DurationMs),
    ("durationMs", Slot::DurationMs),
    ("elapsedMs", Slot::DurationMs),
    ("duration_s", Slot::DurationS),
    ("duration_seconds", Slot::DurationS),
    ("elapsed_s", Slot::DurationS),
    ("request_time", Slot::DurationS),
    ("latency_s", Slot::DurationS),
    ("duration_us", Slot::DurationUs),
    ("duration_micros", Slot::DurationUs),
    ("latency_us", Slot::DurationUs),
    ("request_time_us", Slot::DurationUs),
    ("time_us", Slot::DurationUs),
    ("request_duration_us", Slot::DurationUs),
    ("duration_usec", Slot::DurationUs),
    ("duration_ns", Slot::DurationNs),
    ("event.duration", Slot::DurationNs),
    ("latency_ns", Slot::DurationNs),
    ("duration", Slot::DurationAny),
    ("elapsed", Slot::DurationAny),
    ("latency", Slot::DurationAny),
    ("took", Slot::DurationAny),
    ("ip", Slot::Ip),
    ("client_ip", Slot::Ip),
    ("clientIp", Slot::Ip),
    ("remote_addr", Slot::Ip),
    ("remoteAddr", Slot::Ip),
    ("remote_ip", Slot::Ip),
    ("client.ip", Slot::Ip),
    ("source.ip", Slot::Ip),
    ("ip_address", Slot::Ip),
    ("fwd", Slot::Ip),
    ("user_agent", Slot::UserAgent),
    ("userAgent", Slot::UserAgent),
    ("http.user_agent", Slot::UserAgent),
    ("user_agent.original", Slot::UserAgent),
    ("ua", Slot::UserAgent),
    ("error_type", Slot::ErrorType),
    ("errorType", Slot::ErrorType),
    ("error.type", Slot::ErrorType),
    ("error.kind", Slot::ErrorType),
    ("exc_type", Slot::ErrorType),
    ("exception_type", Slot::ErrorType),
    ("exception.type", Slot::ErrorType),
    ("error", Slot::ErrorObject),
    ("err", Slot::ErrorObject),
    ("exception", Slot::ErrorObject),
    ("exc_info", Slot::ErrorObject),
    ("bytes", Slot::Bytes),
    ("bytes_sent", Slot::Bytes),
    ("response_size", Slot::Bytes),
    ("size", Slot::Bytes),
    ("content_length", Slot::Bytes),
    ("http.response.body.bytes", Slot::Bytes),
    ("error_code", Slot::ErrorCode),
    ("errorCode", Slot::ErrorCode),
    ("direction", Slot::Direction),
    ("integration", Slot::Integration),
    ("peer.service", Slot::Integration),
    ("upstream", Slot::Integration),
    ("req", Slot::HttpObject),
    ("request", Slot::HttpObject),
    ("res", Slot::HttpObject),
    ("response", Slot::HttpObject),
    ("http", Slot::HttpObject),
    ("at", Slot::At),
];

/// The column a field name feeds. A hash lookup: a `match` over these names compiled to a
/// chain of string comparisons, run for every field of every line.
fn slot(key: &str) -> Option<Slot> {
    type Table = std::collections::HashMap<&'static str, Slot, foldhash::fast::FixedState>;
    static TABLE: std::sync::OnceLock<Table> = std::sync::OnceLock::new();
    TABLE
        .get_or_init(|| SLOTS.iter().copied().collect())
        .get(key)
        .copied()
}

/// The field names that name a service, as `'static` (see `Slot::Service`).
const SERVICE_KEYS: &[&str] = &[
    "service",
    "service.name",
    "service_name",
    "serviceName",
    "app",
    "application",
    "app_name",
    "appName",
    "logger",
    "logger_name",
    "loggerName",
    "log.logger",
    "name",
    "component",
];

fn static_key(key: &str) -> &'static str {
    SERVICE_KEYS
        .iter()
        .find(|k| **k == key)
        .copied()
        .unwrap_or("service")
}

/// Context a line is parsed in.
pub struct LineContext<'a> {
    /// Service for lines that name none (`--service`, else the input's name).
    pub service: &'a str,
    /// Timestamp for lines that carry none.
    pub now: DateTime<Utc>,
    /// Level for lines that name none (an envelope's: journald's PRIORITY, syslog's severity,
    /// a container's stderr); info when None.
    pub level: Option<Level>,
    /// The zone of times written without one, and their count (per pipeline).
    pub zone: &'a timestamp::Zoneless,
}

/// Text that is a number with a duration unit ("30000ms", "1.5s"), in milliseconds.
fn duration_with_unit_ms(s: &str) -> Option<f64> {
    let t = s.trim();
    let starts_with_digit = t.as_bytes().first().is_some_and(u8::is_ascii_digit);
    let has_unit = t.as_bytes().last().is_some_and(u8::is_ascii_alphabetic)
        || t.ends_with('\u{b5}')
        || t.ends_with('\u{3bc}');
    if !(starts_with_digit && has_unit) {
        return None;
    }
    duration_text_ms(t)
}

/// Duration text such as "12.5", "12ms", "1.5s", "250us", "2m".
fn duration_text_ms(s: &str) -> Option<f64> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.' || c == '-' || c == '+' || c == 'e'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: f64 = num.parse().ok()?;
    let factor = match unit.trim() {
        "" | "ms" => 1.0,
        "s" | "sec" => 1e3,
        "us" | "µs" | "μs" => 1e-3,
        "ns" => 1e-6,
        "m" | "min" => 60e3,
        "h" => 3600e3,
        _ => return None,
    };
    let v = n * factor;
    v.is_finite().then_some(v)
}

fn status_of(v: &Val) -> Option<i16> {
    let n = match v {
        Val::Int(n) => *n,
        Val::UInt(n) => i64::try_from(*n).ok()?,
        Val::Str(s) => s.trim().parse().ok()?,
        _ => return None,
    };
    (0..=999).contains(&n).then_some(n as i16)
}

fn level_of(v: &Val) -> Option<Level> {
    match v {
        Val::Str(s) => Level::parse_loose(s),
        Val::Int(n) => Level::parse_loose(&n.to_string()),
        Val::UInt(n) => Level::parse_loose(&n.to_string()),
        _ => None,
    }
}

/// Error type from an error object: `{"type": ...}`, `{"name": ...}`, `{"kind": ...}`...
fn error_type_in(obj: &Map<String, Value>) -> Option<String> {
    ["type", "name", "kind", "class", "exception_class"]
        .iter()
        .find_map(|k| obj.get(*k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

#[derive(Default)]
struct Builder<'a> {
    ts: Option<DateTime<Utc>>,
    level: Option<Level>,
    /// The field the level came from, to keep it in attrs if a more severe one arrives
    /// (borrowed: most lines have one level field, and this costs them nothing).
    level_field: Option<(Cow<'a, str>, Val<'a>)>,
    at_level: Option<(Level, Val<'a>)>,
    message: Option<String>,
    /// Rank, name, and the field it came from.
    service: Option<(u8, String, &'static str)>,
    host: Option<String>,
    trace_id: Option<String>,
    span_id: Option<String>,
    request_id: Option<String>,
    user_id: Option<String>,
    route: Option<String>,
    path: Option<String>,
    method: Option<String>,
    status: Option<i16>,
    duration_ms: Option<f64>,
    ip: Option<String>,
    user_agent: Option<String>,
    error_type: Option<String>,
    saw_error: bool,
    /// Serilog CLEF (an `@`-field): no `@l` means Information, even with an exception.
    clef: bool,
    event: Option<Val<'a>>,
    /// An error given as text (`"error":"connection refused"`, structlog's traceback).
    error_text: Option<(String, String)>,
    /// The message of an error object (`err.message`), the message of a line without one.
    error_message: Option<String>,
    template: Option<String>,
    bytes: Option<i64>,
    error_code: Option<String>,
    direction: Option<Direction>,
    integration: Option<String>,
    attrs: Map<String, Value>,
    /// The line's zone for times written without one, and how many such times it had.
    zone: timestamp::Zone,
    zoneless: u64,
}

fn set_once<T>(slot: &mut Option<T>, v: Option<T>) -> bool {
    if slot.is_none() && v.is_some() {
        *slot = v;
        true
    } else {
        false
    }
}

impl<'a> Builder<'a> {
    /// Takes request/response fields out of a nested HTTP object (the object itself is kept in
    /// attrs: headers and the like are still worth seeing).
    fn http_object(&mut self, obj: &Map<String, Value>) {
        let text = |k: &str| obj.get(k).and_then(Value::as_str).map(str::to_string);
        set_once(&mut self.method, text("method"));
        set_once(&mut self.route, text("route"));
        if self.path.is_none() {
            self.path = text("url").or_else(|| text("path")).or_else(|| text("uri"));
        }
        if self.status.is_none() {
            self.status = ["statusCode", "status_code", "status"]
                .iter()
                .find_map(|k| obj.get(*k).and_then(Value::as_i64))
                .filter(|n| (0..=999).contains(n))
                .map(|n| n as i16);
        }
        if self.ip.is_none() {
            self.ip = text("remoteAddress").or_else(|| text("ip"));
        }
    }

    /// A level field: the most severe of the line's level fields wins (see the module doc).
    // A `&Cow`, not a `&str`: cloning it keeps a key borrowed from the line borrowed.
    #[allow(clippy::ptr_arg)]
    fn level(&mut self, key: &Cow<'a, str>, v: &Val<'a>) -> bool {
        let Some(l) = level_of(v) else {
            return false;
        };
        match self.level {
            Some(cur) if l <= cur => false,
            _ => {
                if let Some((k, old)) = self.level_field.take() {
                    self.attrs.insert(k.into_owned(), old.into_json());
                }
                self.level = Some(l);
                self.level_field = Some((key.clone(), v.clone()));
                true
            }
        }
    }

    /// Stores the value in its column; returns the value back when it belongs in attrs.
    #[allow(clippy::ptr_arg)] // see `level`
    fn take(&mut self, key: &Cow<'a, str>, v: Val<'a>) -> Result<Option<Val<'a>>, String> {
        let Some(slot) = slot(key) else {
            return Ok(Some(v));
        };
        if matches!(v, Val::Null) {
            return Ok(None);
        }
        let used = match slot {
            Slot::Ts => {
                if self.ts.is_some() {
                    false
                } else {
                    let t = match &v {
                        Val::Str(s) => timestamp::parse_zoned(s, self.zone).map(|(t, z)| {
                            self.zoneless += u64::from(z);
                            t
                        }),
                        Val::Int(n) => timestamp::from_epoch(*n as f64),
                        Val::UInt(n) => timestamp::from_epoch(*n as f64),
                        Val::Float(n) => timestamp::from_epoch(*n),
                        _ => None,
                    };
                    match t {
                        Some(t) => self.ts = Some(t),
                        None => {
                            let shown = v.clone().into_json().to_string();
                            return Err(format!(
                                "unparseable timestamp {}",
                                super::pipeline::clip(&shown, 60)
                            ));
                        }
                    }
                    true
                }
            }
            Slot::Level => self.level(key, &v),
            Slot::SeverityNumber => {
                let l = match &v {
                    Val::Int(n) => Level::from_otel_number(*n),
                    Val::UInt(n) => i64::try_from(*n).ok().and_then(Level::from_otel_number),
                    Val::Str(s) => s.trim().parse().ok().and_then(Level::from_otel_number),
                    _ => None,
                };
                match l {
                    // Only when no severity text names the level (it is the same level).
                    Some(l) if self.level.is_none() => {
                        self.level = Some(l);
                        self.level_field = Some((key.clone(), v.clone()));
                        true
                    }
                    _ => false,
                }
            }
            Slot::Event => {
                if self.event.is_none() && matches!(v, Val::Str(_)) {
                    self.event = Some(v);
                    return Ok(None);
                }
                false
            }
            Slot::Template => {
                self.clef = true;
                if self.template.is_none() {
                    self.template = v.as_str().map(str::to_string);
                }
                // Kept in attrs: the template is the event's shape, the best grouping key.
                false
            }
            Slot::Exception => {
                self.clef = true;
                self.saw_error = true;
                if self.error_type.is_none() {
                    self.error_type = v.as_str().and_then(exception_type);
                }
                false
            }
            Slot::At => match level_of(&v) {
                Some(l) if self.at_level.is_none() => {
                    self.at_level = Some((l, v.clone()));
                    true
                }
                _ => false,
            },
            Slot::Service(_) if v.as_str().and_then(duration_with_unit_ms).is_some() => {
                // Heroku router: `service=30000ms` is how long the dyno took.
                set_once(
                    &mut self.duration_ms,
                    v.as_str().and_then(duration_with_unit_ms),
                )
            }
            Slot::Message => {
                if key.starts_with('@') {
                    self.clef = true;
                }
                let text = match &v {
                    Val::Nested(Value::Object(o)) => o
                        .get("stringValue")
                        .and_then(Value::as_str)
                        .map(str::to_string),
                    other => other.to_text(),
                };
                set_once(&mut self.message, text)
            }
            Slot::Service(rank) => match (v.to_text(), &self.service) {
                (Some(s), None) => {
                    self.service = Some((rank, s, static_key(key)));
                    true
                }
                (Some(s), Some((r, _, _))) if rank < *r => {
                    // A better-ranked name arrived; the weaker one is still worth keeping.
                    let (_, old, _) = self
                        .service
                        .replace((rank, s, static_key(key)))
                        .unwrap_or_default();
                    self.attrs.insert("logger".into(), Value::String(old));
                    true
                }
                _ => false,
            },
            Slot::Host => set_once(&mut self.host, v.to_text()),
            Slot::TraceId => set_once(&mut self.trace_id, v.to_text()),
            Slot::SpanId => set_once(&mut self.span_id, v.to_text()),
            Slot::RequestId => set_once(&mut self.request_id, v.to_text()),
            Slot::UserId => set_once(&mut self.user_id, v.to_text()),
            Slot::Route => set_once(&mut self.route, v.as_str().map(str::to_string)),
            Slot::Path => set_once(&mut self.path, v.as_str().map(str::to_string)),
            Slot::Method => set_once(
                &mut self.method,
                v.as_str()
                    .filter(|m| !m.is_empty() && m.len() <= 16)
                    .map(str::to_ascii_uppercase),
            ),
            Slot::Status => set_once(&mut self.status, status_of(&v)),
            Slot::DurationMs => set_once(&mut self.duration_ms, v.to_f64()),
            Slot::DurationS => set_once(&mut self.duration_ms, v.to_f64().map(|s| s * 1e3)),
            Slot::DurationUs => set_once(&mut self.duration_ms, v.to_f64().map(|s| s * 1e-3)),
            Slot::DurationNs => set_once(&mut self.duration_ms, v.to_f64().map(|s| s * 1e-6)),
            Slot::DurationAny => {
                let ms = match &v {
                    Val::Str(s) => duration_text_ms(s),
                    other => other.to_f64(),
                };
                set_once(&mut self.duration_ms, ms)
            }
            Slot::Ip => set_once(&mut self.ip, v.to_text()),
            Slot::UserAgent => set_once(&mut self.user_agent, v.to_text()),
            Slot::ErrorType => {
                self.saw_error = true;
                set_once(&mut self.error_type, v.to_text())
            }
            Slot::ErrorObject => {
                self.saw_error = true;
                match &v {
                    Val::Nested(Value::Object(obj)) => {
                        if self.error_type.is_none() {
                            self.error_type = error_type_in(obj);
                        }
                        // pino puts the message only in err.message when msg is absent (and
                        // may write `err` before `msg`: decided at the end).
                        if self.error_message.is_none() {
                            self.error_message = obj
                                .get("message")
                                .and_then(Value::as_str)
                                .map(str::to_string);
                        }
                    }
                    Val::Str(s) => {
                        if self.error_type.is_none() {
                            self.error_type = exception_type(s);
                        }
                        // The message when the line has none (decided at the end: structlog
                        // writes `event` before `exception`, others the other way round).
                        if self.error_text.is_none() {
                            self.error_text = Some((key.to_string(), s.to_string()));
                            return Ok(None);
                        }
                    }
                    _ => {}
                }
                false
            }
            Slot::Bytes => set_once(
                &mut self.bytes,
                v.to_f64().filter(|b| *b >= 0.0).map(|b| b as i64),
            ),
            Slot::ErrorCode => set_once(&mut self.error_code, v.to_text()),
            Slot::Direction => set_once(
                &mut self.direction,
                match v.as_str() {
                    Some("outbound") | Some("client") => Some(Direction::Outbound),
                    Some("inbound") | Some("server") => Some(Direction::Inbound),
                    _ => None,
                },
            ),
            Slot::Integration => set_once(&mut self.integration, v.to_text()),
            Slot::HttpObject => {
                if let Val::Nested(Value::Object(obj)) = &v {
                    self.http_object(obj);
                }
                false
            }
        };
        Ok(if used { None } else { Some(v) })
    }

    fn finish(mut self, ctx: &LineContext) -> Parsed {
        let ts = self.ts.unwrap_or(ctx.now);
        let at_level = match self.at_level.take() {
            Some((l, _)) if self.level.is_none() => Some(l),
            Some((_, raw)) => {
                self.attrs.insert("at".into(), raw.into_json());
                None
            }
            None => None,
        };
        if let Some(ev) = self.event.take() {
            if self.message.is_none() {
                self.message = ev.to_text();
            } else {
                self.attrs.insert("event".into(), ev.into_json());
            }
        }
        if let Some((key, text)) = self.error_text.take() {
            if self.message.is_none() {
                self.message = Some(text);
            } else {
                self.attrs.insert(key, Value::String(text));
            }
        }
        if self.message.is_none() {
            self.message = self.error_message.take();
        }
        if self.message.is_none() {
            if let Some(t) = &self.template {
                self.message = Some(render_template(t, &self.attrs));
            }
        }
        let level = self
            .level
            .or(at_level)
            .unwrap_or(if self.saw_error && !self.clef {
                Level::Error
            } else {
                ctx.level.unwrap_or(Level::Info)
            });
        let (service, service_from) = match self.service {
            Some((_, s, key)) => (s, Some(key)),
            None => (ctx.service.to_string(), None),
        };
        let route = match (self.route.take(), &self.path) {
            (Some(r), _) => Some(r),
            (None, Some(p)) => {
                let r = route::template(p);
                if r != *p {
                    self.attrs.insert("path".into(), Value::String(p.clone()));
                }
                Some(r)
            }
            (None, None) => None,
        };
        let request = match (&self.method, &route, self.status) {
            (Some(method), Some(route), Some(status)) => Some(RequestRecord {
                ts,
                service: service.clone(),
                method: method.clone(),
                route: route.clone(),
                status,
                duration_ms: self.duration_ms.unwrap_or(0.0),
                bytes: self.bytes,
                user_id: self.user_id.clone(),
                trace_id: self.trace_id.clone(),
                request_id: self.request_id.clone(),
                ip: self.ip.clone(),
                user_agent: self.user_agent.clone(),
                error_code: self.error_code.clone(),
                direction: self.direction.unwrap_or(Direction::Inbound),
                integration: self.integration.clone(),
            }),
            _ => {
                // Request-only fields of a line that is not a request stay visible in attrs.
                if let Some(b) = self.bytes {
                    self.attrs.insert("bytes".into(), Value::from(b));
                }
                if let Some(c) = self.error_code.take() {
                    self.attrs.insert("error_code".into(), Value::String(c));
                }
                if let Some(i) = self.integration.take() {
                    self.attrs.insert("integration".into(), Value::String(i));
                }
                None
            }
        };
        let mut log = LogRecord::new(ts, level, service, self.message.unwrap_or_default());
        log.host = self.host;
        log.trace_id = self.trace_id;
        log.span_id = self.span_id;
        log.request_id = self.request_id;
        log.user_id = self.user_id;
        log.route = route;
        log.method = self.method;
        log.status = self.status;
        log.duration_ms = self.duration_ms;
        log.ip = self.ip;
        log.user_agent = self.user_agent;
        log.error_type = self.error_type;
        log.attrs = (!self.attrs.is_empty()).then_some(Value::Object(self.attrs));
        Parsed {
            log: Some(log),
            request,
            service_from,
            ..Parsed::default()
        }
    }
}

/// Builds the records of one structured line from its fields, in input order. Fails only on a
/// timestamp that cannot be read (the line would otherwise be filed at the wrong time).
pub fn build<'a>(
    fields: impl IntoIterator<Item = (Cow<'a, str>, Val<'a>)>,
    ctx: &LineContext,
) -> Result<Parsed, String> {
    let mut b = Builder {
        zone: ctx.zone.zone(),
        ..Builder::default()
    };
    for (key, v) in fields {
        let v = match v {
            Val::Nested(Value::Object(obj)) => {
                if let Some(whole) = namespace(&key) {
                    let rest = b.nested(&key, whole, obj, 0)?;
                    if !rest.is_empty() {
                        b.attrs.insert(key.into_owned(), Value::Object(rest));
                    }
                    continue;
                }
                if key == "record" && obj.get("level").is_some_and(Value::is_object) {
                    b.loguru(obj)?;
                    continue;
                }
                Val::Nested(Value::Object(obj))
            }
            other => other,
        };
        if let Some(rest) = b.take(&key, v)? {
            b.attrs.insert(key.into_owned(), rest.into_json());
        }
    }
    ctx.zone.add(b.zoneless);
    Ok(b.finish(ctx))
}

impl Builder<'_> {
    /// Reads the fields of a namespace object (`{"log":{"level":..}}`) by their dotted names;
    /// returns what has no column.
    fn nested(
        &mut self,
        prefix: &str,
        whole: bool,
        obj: Map<String, Value>,
        depth: u8,
    ) -> Result<Map<String, Value>, String> {
        let mut rest = Map::new();
        for (k, v) in obj {
            let name = if whole {
                k.clone()
            } else {
                format!("{prefix}.{k}")
            };
            match v {
                Value::Object(inner) if depth < 3 && !whole => {
                    let r = self.nested(&name, false, inner, depth + 1)?;
                    if !r.is_empty() {
                        rest.insert(k, Value::Object(r));
                    }
                }
                v if slot(&name).is_some() => {
                    let key = Cow::Owned(name);
                    if let Some(unused) = self.take(&key, from_json(v))? {
                        rest.insert(k, unused.into_json());
                    }
                }
                v => {
                    rest.insert(k, v);
                }
            }
        }
        Ok(rest)
    }

    /// loguru's `serialize=True` record: level and time are objects, the bound context is
    /// `extra`; its `text` (the same event rendered) is dropped.
    fn loguru(&mut self, mut rec: Map<String, Value>) -> Result<(), String> {
        if self.attrs.get("text").is_some_and(Value::is_string) {
            self.attrs.remove("text");
        }
        let level = rec.remove("level");
        if let Some(name) = level.as_ref().and_then(|l| l.get("name")).cloned() {
            self.take(&Cow::Borrowed("level"), from_json(name))?;
        }
        if let Some(t) = rec.remove("time") {
            let v = t.get("timestamp").or_else(|| t.get("repr")).cloned();
            if let Some(v) = v {
                self.take(&Cow::Borrowed("time"), from_json(v))?;
            }
        }
        if let Some(m) = rec.remove("message") {
            self.take(&Cow::Borrowed("message"), from_json(m))?;
        }
        if let Some(Value::Object(exc)) = rec.remove("exception") {
            self.saw_error = true;
            if self.error_type.is_none() {
                self.error_type = exc.get("type").and_then(Value::as_str).map(str::to_string);
            }
            self.attrs.insert("exception".into(), Value::Object(exc));
        }
        if let Some(Value::Object(extra)) = rec.remove("extra") {
            for (k, v) in extra {
                let key = Cow::Owned(k);
                if let Some(unused) = self.take(&key, from_json(v))? {
                    self.attrs.insert(key.into_owned(), unused.into_json());
                }
            }
        }
        rec.remove("elapsed");
        self.attrs.insert("record".into(), Value::Object(rec));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> LineContext<'static> {
        LineContext {
            service: "default-svc",
            now: DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
            level: None,
            zone: &crate::ingest::timestamp::UTC,
        }
    }

    fn s(v: &str) -> Val<'_> {
        Val::Str(Cow::Borrowed(v))
    }

    #[test]
    fn maps_common_names_and_keeps_the_rest() {
        let p = build(
            vec![
                ("ts".into(), Val::Int(1_700_000_000_000)),
                ("severity".into(), s("WARNING")),
                ("msg".into(), s("slow")),
                ("logger".into(), s("db.pool")),
                ("app".into(), s("billing")),
                ("traceId".into(), s("t1")),
                ("user_id".into(), Val::Int(42)),
                ("duration".into(), s("1.5s")),
                ("shard".into(), Val::Int(3)),
            ],
            &ctx(),
        )
        .unwrap();
        let log = p.log.unwrap();
        assert_eq!(log.level, Level::Warn);
        assert_eq!(log.service, "billing");
        assert_eq!(log.message, "slow");
        assert_eq!(log.trace_id.as_deref(), Some("t1"));
        assert_eq!(log.user_id.as_deref(), Some("42"));
        assert_eq!(log.duration_ms, Some(1500.0));
        let attrs = log.attrs.unwrap();
        assert_eq!(attrs["shard"], Value::from(3));
        assert_eq!(attrs["logger"], Value::from("db.pool"));
        assert!(p.request.is_none());
    }

    #[test]
    fn request_lines_make_a_request_row() {
        let p = build(
            vec![
                ("method".into(), s("get")),
                ("path".into(), s("/users/17?x=1")),
                ("status".into(), s("503")),
                ("duration_ms".into(), Val::Float(12.5)),
            ],
            &ctx(),
        )
        .unwrap();
        let r = p.request.unwrap();
        assert_eq!(
            (r.method.as_str(), r.route.as_str(), r.status),
            ("GET", "/users/:id", 503)
        );
        assert_eq!(r.service, "default-svc");
        assert_eq!(r.duration_ms, 12.5);
        let log = p.log.unwrap();
        assert_eq!(log.attrs.unwrap()["path"], Value::from("/users/17?x=1"));
    }

    /// Heroku router: `service=` is the dyno's time, `at=error` the level, `fwd` the client.
    #[test]
    fn heroku_router_line() {
        let line = r#"at=error code=H12 desc="Request timeout" method=GET path="/" host=x.herokuapp.com request_id=8601b555-6a83-4c12-8269-97c8e32cdb22 fwd="1.2.3.4" dyno=web.1 connect=1ms service=30000ms status=503 bytes=0"#;
        let p = super::super::logfmt::parse(line, &ctx()).unwrap();
        let log = p.log.unwrap();
        assert_eq!(log.level, Level::Error);
        assert_eq!(log.service, "default-svc");
        assert_eq!(log.duration_ms, Some(30000.0));
        assert_eq!(log.host.as_deref(), Some("x.herokuapp.com"));
        assert_eq!(log.ip.as_deref(), Some("1.2.3.4"));
        let attrs = log.attrs.unwrap();
        assert_eq!(attrs["code"], Value::from("H12"));
        assert_eq!(attrs["connect"], Value::from("1ms"));
        assert!(attrs.get("at").is_none(), "{attrs}");
        let r = p.request.unwrap();
        assert_eq!((r.status, r.duration_ms, r.bytes), (503, 30000.0, Some(0)));
        assert_eq!(r.service, "default-svc");
        assert!(p.service_from.is_none());
        // A name is still a name, and `at` yields to a level field (kept in attrs).
        let p = super::super::logfmt::parse("service=billing at=info level=warn msg=x", &ctx())
            .unwrap();
        let log = p.log.unwrap();
        assert_eq!((log.service.as_str(), log.level), ("billing", Level::Warn));
        assert_eq!(log.attrs.unwrap()["at"], Value::from("info"));
        assert_eq!(p.service_from, Some("service"));
    }

    /// Two level fields: the most severe gives the column, the other stays in attrs.
    #[test]
    fn the_most_severe_of_two_levels_wins_and_the_other_stays_visible() {
        for line in [
            r#"{"level":"info","msg":"x","level":"error"}"#,
            r#"{"level":"error","msg":"x","level":"info"}"#,
        ] {
            let log = super::super::json::parse(line, &ctx())
                .unwrap()
                .log
                .unwrap();
            assert_eq!(log.level, Level::Error, "{line}");
            assert_eq!(log.attrs.unwrap()["level"], Value::from("info"), "{line}");
        }
        let log = super::super::json::parse(r#"{"severity":"warning","level":"debug"}"#, &ctx())
            .unwrap()
            .log
            .unwrap();
        assert_eq!(log.level, Level::Warn);
        assert_eq!(log.attrs.unwrap()["level"], Value::from("debug"));
    }

    #[test]
    fn bad_timestamp_is_an_error() {
        let e = build(vec![("time".into(), s("not a time"))], &ctx()).unwrap_err();
        assert!(e.contains("unparseable timestamp"), "{e}");
    }

    #[test]
    fn error_objects_give_type_and_level() {
        let err = serde_json::json!({"type": "TimeoutError", "message": "boom", "stack": "at x"});
        let p = build(vec![("err".into(), Val::Nested(err))], &ctx()).unwrap();
        let log = p.log.unwrap();
        assert_eq!(log.level, Level::Error);
        assert_eq!(log.error_type.as_deref(), Some("TimeoutError"));
        assert_eq!(log.message, "boom");
        assert!(log.attrs.unwrap().get("err").is_some());
    }
}
