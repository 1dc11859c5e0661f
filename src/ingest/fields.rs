//! Maps the field names structured loggers use (bunyan, pino, zap, logrus, structlog, ECS,
//! OpenTelemetry...) onto our columns. JSON and logfmt lines both arrive here as a list of
//! (key, value) pairs; fields without a column of their own go to `attrs`.

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
}

/// Service name candidates, best first: `service` beats `app` beats `logger`.
fn slot(key: &str) -> Option<Slot> {
    Some(match key {
        "timestamp" | "ts" | "time" | "@timestamp" | "datetime" | "@t" => Slot::Ts,
        "level" | "severity" | "lvl" | "loglevel" | "log.level" | "levelname" | "@l"
        | "severity_text" | "SeverityText" => Slot::Level,
        "message" | "msg" | "@message" | "@m" | "@mt" => Slot::Message,
        "service" | "service.name" | "service_name" | "serviceName" => Slot::Service(0),
        "app" | "application" | "app_name" | "appName" => Slot::Service(1),
        "logger" | "logger_name" | "loggerName" | "log.logger" | "name" | "component" => {
            Slot::Service(2)
        }
        "host" | "hostname" | "host.name" => Slot::Host,
        "trace_id" | "traceId" | "traceid" | "trace.id" | "correlation_id" | "correlationId"
        | "dd.trace_id" | "TraceId" => Slot::TraceId,
        "span_id" | "spanId" | "span.id" | "dd.span_id" | "SpanId" => Slot::SpanId,
        "request_id" | "requestId" | "req_id" | "reqId" | "x_request_id" | "http.request.id" => {
            Slot::RequestId
        }
        "user_id" | "userId" | "user.id" | "uid" | "usr.id" => Slot::UserId,
        "route" | "http.route" | "endpoint" => Slot::Route,
        "path" | "url" | "uri" | "http.path" | "http.target" | "http.url" | "url.path"
        | "request_uri" | "request_path" => Slot::Path,
        "method" | "http_method" | "http.method" | "http.request.method" | "verb" => Slot::Method,
        "status"
        | "status_code"
        | "statusCode"
        | "http.status_code"
        | "http.response.status_code"
        | "http_status" => Slot::Status,
        "duration_ms" | "elapsed_ms" | "latency_ms" | "response_time_ms" | "took_ms"
        | "responseTime" | "response_time" | "durationMs" | "elapsedMs" => Slot::DurationMs,
        "duration_s" | "duration_seconds" | "elapsed_s" | "request_time" | "latency_s" => {
            Slot::DurationS
        }
        "duration_us" | "duration_micros" | "latency_us" => Slot::DurationUs,
        "duration_ns" | "event.duration" | "latency_ns" => Slot::DurationNs,
        "duration" | "elapsed" | "latency" | "took" => Slot::DurationAny,
        "ip" | "client_ip" | "clientIp" | "remote_addr" | "remoteAddr" | "remote_ip"
        | "client.ip" | "source.ip" | "ip_address" => Slot::Ip,
        "user_agent" | "userAgent" | "http.user_agent" | "user_agent.original" | "ua" => {
            Slot::UserAgent
        }
        "error_type" | "errorType" | "error.type" | "error.kind" | "exc_type"
        | "exception_type" | "exception.type" => Slot::ErrorType,
        "error" | "err" | "exception" | "exc_info" => Slot::ErrorObject,
        "bytes"
        | "bytes_sent"
        | "response_size"
        | "size"
        | "content_length"
        | "http.response.body.bytes" => Slot::Bytes,
        "error_code" | "errorCode" => Slot::ErrorCode,
        "direction" => Slot::Direction,
        "integration" | "peer.service" | "upstream" => Slot::Integration,
        "req" | "request" | "res" | "response" | "http" => Slot::HttpObject,
        _ => return None,
    })
}

/// Context a line is parsed in.
pub struct LineContext<'a> {
    /// Service for lines that name none (`--service`, else the input's name).
    pub service: &'a str,
    /// Timestamp for lines that carry none.
    pub now: DateTime<Utc>,
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
struct Builder {
    ts: Option<DateTime<Utc>>,
    level: Option<Level>,
    message: Option<String>,
    service: Option<(u8, String)>,
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
    bytes: Option<i64>,
    error_code: Option<String>,
    direction: Option<Direction>,
    integration: Option<String>,
    attrs: Map<String, Value>,
}

fn set_once<T>(slot: &mut Option<T>, v: Option<T>) -> bool {
    if slot.is_none() && v.is_some() {
        *slot = v;
        true
    } else {
        false
    }
}

impl Builder {
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

    /// Stores the value in its column; returns the value back when it belongs in attrs.
    fn take<'a>(&mut self, key: &str, v: Val<'a>) -> Result<Option<Val<'a>>, String> {
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
                        Val::Str(s) => timestamp::parse(s),
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
            Slot::Level => set_once(&mut self.level, level_of(&v)),
            Slot::Message => set_once(&mut self.message, v.to_text()),
            Slot::Service(rank) => match (v.to_text(), &self.service) {
                (Some(s), None) => {
                    self.service = Some((rank, s));
                    true
                }
                (Some(s), Some((r, _))) if rank < *r => {
                    // A better-ranked name arrived; the weaker one is still worth keeping.
                    let (_, old) = self.service.replace((rank, s)).unwrap_or_default();
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
                        // pino puts the message only in err.message when msg is absent.
                        if self.message.is_none() {
                            self.message = obj
                                .get("message")
                                .and_then(Value::as_str)
                                .map(str::to_string);
                        }
                    }
                    Val::Str(s) if self.message.is_none() => {
                        self.message = Some(s.to_string());
                        return Ok(None);
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
        let level = self.level.unwrap_or(if self.saw_error {
            Level::Error
        } else {
            Level::Info
        });
        let service = self
            .service
            .map(|(_, s)| s)
            .unwrap_or_else(|| ctx.service.to_string());
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
        }
    }
}

/// Builds the records of one structured line from its fields, in input order. Fails only on a
/// timestamp that cannot be read (the line would otherwise be filed at the wrong time).
pub fn build<'a>(
    fields: impl IntoIterator<Item = (Cow<'a, str>, Val<'a>)>,
    ctx: &LineContext,
) -> Result<Parsed, String> {
    let mut b = Builder::default();
    for (key, v) in fields {
        if let Some(rest) = b.take(&key, v)? {
            b.attrs.insert(key.into_owned(), rest.into_json());
        }
    }
    Ok(b.finish(ctx))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ctx() -> LineContext<'static> {
        LineContext {
            service: "default-svc",
            now: DateTime::<Utc>::from_timestamp(0, 0).unwrap(),
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
