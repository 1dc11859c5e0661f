//! OTLP log records to log rows: an ExportLogsServiceRequest in, one `Parsed` per record out.
//!
//! The record's fields are read by the same field mapping as a structured log line
//! (`ingest::fields`), so an OTLP attribute lands in the column it would from a JSON line
//! (`http.route`, `http.request.method`, `http.response.status_code`, `user.id`,
//! `exception.type` -> error_type...). Then what OTLP says precisely wins: the resource's
//! `service.name` and `host.name`, the severity number (else its text), the time (else the
//! observed time), and the trace and span ids (bytes to hex).
//!
//! Decisions:
//! - attributes without a column stay in attrs under their own names; the resource's stay
//!   under `resource` (they repeat on every record of the service), the scope's name under
//!   `otel.scope.name`.
//! - a string body is the message. A map body is read like a JSON line when it names a
//!   message (`message`, `msg`...): its fields feed the columns and attrs; otherwise the whole
//!   map, as JSON, is the message (nothing of it is lost). Any other body is its JSON text.
//! - a record with a span context is part of a trace: its request-like fields stay on the log
//!   row but make no request row, because the trace's SERVER span is that request (counting
//!   both would double the endpoint's traffic). A record without one (an access log forwarded
//!   by a Collector) makes a request row as the same line would from a file.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use opentelemetry_proto::tonic::logs::v1::LogRecord as OtlpRecord;
use prost::Message;
use serde_json::{Map, Value};

use super::{any_to_json, attributes, hex_id, time, Decoded, MAX_RECORD, UNKNOWN_SERVICE};
use crate::ingest::fields::{self, LineContext, Val};
use crate::ingest::record::Parsed;
use crate::model::Level;

/// Keys that name a message in a map body (as in a JSON line).
const MESSAGE_KEYS: &[&str] = &["message", "msg", "@m", "@message", "body", "event"];

/// The format counted for these rows in ingest statistics.
pub const FORMAT: &str = "otlp";

/// Every record of the request; records that cannot be stored are counted and named.
pub fn decode(req: ExportLogsServiceRequest, now: DateTime<Utc>) -> Decoded {
    let mut out = Decoded::default();
    let total: usize = req
        .resource_logs
        .iter()
        .flat_map(|rl| &rl.scope_logs)
        .map(|sl| sl.log_records.len())
        .sum();
    out.rows.reserve_exact(total);
    let mut n = 0u64;
    for rl in req.resource_logs {
        let resource = rl
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        let shared = Shared::of(&resource, now);
        for sl in rl.scope_logs {
            let scope = sl.scope.map(|s| s.name).unwrap_or_default();
            for rec in sl.log_records {
                n += 1;
                match record(rec, &resource, &shared, &scope, now) {
                    Ok(p) => out.rows.push(p),
                    Err(why) => out.reject(format!("log record {n}: {why}")),
                }
            }
        }
    }
    out
}

/// What every record of one resource gets, worked out once for all of them: the resource's
/// attributes that stay in attrs (`resource`), when reading the resource fills no column that
/// OTLP's own `service.name` and `host.name` would not overwrite anyway. None otherwise: each
/// record then reads the resource with its own fields, as a JSON line's `resource` would be.
struct Shared {
    rest: Option<Option<Value>>,
}

impl Shared {
    fn of(resource: &Map<String, Value>, now: DateTime<Utc>) -> Shared {
        if resource.is_empty() {
            return Shared { rest: Some(None) };
        }
        let overwritten = |k: &str| {
            matches!(k, "service.name" | "host.name")
                && resource
                    .get(k)
                    .and_then(Value::as_str)
                    .is_some_and(|v| !v.is_empty())
        };
        let ctx = LineContext {
            service: UNKNOWN_SERVICE,
            now,
            level: None,
            zone: &crate::ingest::timestamp::UTC,
        };
        let alone = [(
            Cow::Borrowed("resource"),
            Val::Nested(Value::Object(resource.clone())),
        )];
        let Ok(parsed) = fields::build(alone, &ctx) else {
            return Shared { rest: None };
        };
        let rest = parsed
            .log
            .as_ref()
            .and_then(|l| l.attrs.as_ref())
            .and_then(|a| a.get("resource"))
            .cloned();
        let kept = rest.as_ref().and_then(Value::as_object);
        let taken_only_overwritten = resource
            .keys()
            .filter(|k| !kept.is_some_and(|m| m.contains_key(*k)))
            .all(|k| overwritten(k));
        Shared {
            rest: taken_only_overwritten.then_some(rest),
        }
    }
}

/// A JSON value as a field value.
fn val(v: Value) -> Val<'static> {
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

/// An attribute's value as a field value, taking its strings rather than copying them; the
/// same value [`val`] gives for its JSON form.
fn owned_val(v: Option<AnyValue>) -> Val<'static> {
    match v.and_then(|v| v.value) {
        Some(Any::StringValue(s)) => Val::Str(Cow::Owned(s)),
        Some(Any::BoolValue(b)) => Val::Bool(b),
        Some(Any::IntValue(i)) => Val::Int(i),
        Some(Any::DoubleValue(d)) if d.is_finite() => Val::Float(d),
        Some(other) => val(any_to_json(&AnyValue { value: Some(other) })),
        None => Val::Null,
    }
}

/// Whether two attributes share a key (then the last one wins, as in [`attributes`]).
fn repeats_a_key(kvs: &[KeyValue]) -> bool {
    if kvs.len() > 32 {
        let mut seen = std::collections::HashSet::with_capacity(kvs.len());
        return !kvs.iter().all(|kv| seen.insert(kv.key.as_str()));
    }
    kvs.iter()
        .enumerate()
        .any(|(i, kv)| kvs[..i].iter().any(|k| k.key == kv.key))
}

fn record(
    mut rec: OtlpRecord,
    resource: &Map<String, Value>,
    shared: &Shared,
    scope: &str,
    now: DateTime<Utc>,
) -> Result<Parsed, String> {
    let size = rec.encoded_len();
    if size > MAX_RECORD {
        return Err(format!("{size} bytes, over the {MAX_RECORD}-byte limit"));
    }
    let trace_id = hex_id(&rec.trace_id, 16, "trace_id")?;
    let span_id = hex_id(&rec.span_id, 8, "span_id")?;
    let mut fields: Vec<(Cow<'static, str>, Val<'static>)> =
        Vec::with_capacity(rec.attributes.len() + 2);
    let mut body_message = None;
    match rec.body.take().and_then(|b| b.value) {
        Some(Any::StringValue(s)) => fields.push(("body".into(), Val::Str(Cow::Owned(s)))),
        Some(Any::KvlistValue(kv)) => {
            let map = attributes(&kv.values);
            if MESSAGE_KEYS
                .iter()
                .any(|k| map.get(*k).is_some_and(Value::is_string))
            {
                fields.extend(map.into_iter().map(|(k, v)| (Cow::Owned(k), val(v))));
            } else {
                body_message = Some(Value::Object(map).to_string());
            }
        }
        Some(other) => {
            body_message = Some(match any_to_json(&AnyValue { value: Some(other) }) {
                Value::String(s) => s,
                other => other.to_string(),
            });
        }
        None => {}
    }
    let attrs = std::mem::take(&mut rec.attributes);
    if repeats_a_key(&attrs) {
        for (k, v) in attributes(&attrs) {
            fields.push((Cow::Owned(k), val(v)));
        }
    } else {
        for kv in attrs {
            fields.push((Cow::Owned(kv.key), owned_val(kv.value)));
        }
    }
    if shared.rest.is_none() && !resource.is_empty() {
        fields.push((
            "resource".into(),
            Val::Nested(Value::Object(resource.clone())),
        ));
    }
    let ctx = LineContext {
        service: UNKNOWN_SERVICE,
        now,
        level: None,
        // OTLP times are Unix nanoseconds: nothing here is zone-less.
        zone: &crate::ingest::timestamp::UTC,
    };
    let mut parsed = fields::build(fields, &ctx)?;
    let Some(log) = parsed.log.as_mut() else {
        return Err("no log row".into());
    };
    if let Some(Some(rest)) = &shared.rest {
        let attrs = log.attrs.get_or_insert_with(|| Value::Object(Map::new()));
        if let Some(map) = attrs.as_object_mut() {
            map.insert("resource".into(), rest.clone());
        }
    }
    if let Some(m) = body_message {
        log.message = m;
    }
    log.ts = time(rec.time_unix_nano)
        .or_else(|| time(rec.observed_time_unix_nano))
        .unwrap_or(now);
    if let Some(level) = Level::from_otel_number(rec.severity_number.into())
        .or_else(|| Level::parse_loose(&rec.severity_text))
    {
        log.level = level;
    }
    if let Some(s) = super::service_name(resource) {
        log.service = s;
    }
    if let Some(h) = resource
        .get("host.name")
        .and_then(Value::as_str)
        .filter(|h| !h.is_empty())
    {
        log.host = Some(h.to_string());
    }
    let in_trace = trace_id.is_some() || span_id.is_some();
    if trace_id.is_some() {
        log.trace_id = trace_id;
    }
    if span_id.is_some() {
        log.span_id = span_id;
    }
    let mut extra = Vec::new();
    if !scope.is_empty() {
        extra.push(("otel.scope.name", Value::String(scope.to_string())));
    }
    if !rec.event_name.is_empty() {
        extra.push((
            "event.name",
            Value::String(std::mem::take(&mut rec.event_name)),
        ));
    }
    if !extra.is_empty() {
        let attrs = log.attrs.get_or_insert_with(|| Value::Object(Map::new()));
        if let Some(map) = attrs.as_object_mut() {
            for (k, v) in extra {
                map.entry(k).or_insert(v);
            }
        }
    }
    if in_trace {
        parsed.request = None;
    } else if let Some(req) = parsed.request.as_mut() {
        let log = parsed.log.as_ref();
        if let Some(log) = log {
            req.ts = log.ts;
            req.service.clone_from(&log.service);
        }
    }
    parsed.format = FORMAT;
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::otlp::{decode_message, Encoding};
    use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, KeyValueList};
    use opentelemetry_proto::tonic::logs::v1::{ResourceLogs, ScopeLogs};
    use opentelemetry_proto::tonic::resource::v1::Resource;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/otlp/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn ids() -> Value {
        serde_json::from_slice(&fixture("ids.json")).unwrap()
    }

    fn logs_of(req: ExportLogsServiceRequest) -> Vec<crate::ingest::record::LogRecord> {
        let d = decode(req, Utc::now());
        assert_eq!(d.rejected, 0, "{:?}", d.errors);
        d.rows.into_iter().map(|p| p.log.unwrap()).collect()
    }

    /// What the Python SDK's exporter posted (captured by send.py against a plain HTTP server).
    fn check_sdk_records(logs: &[crate::ingest::record::LogRecord]) {
        let ids = ids();
        let trace = ids["trace_id"].as_str().unwrap();
        assert_eq!(logs.len(), 3);
        let levels: Vec<Level> = logs.iter().map(|l| l.level).collect();
        assert_eq!(levels, [Level::Info, Level::Warn, Level::Error]);
        assert_eq!(logs[0].message, "order 42 loaded");
        assert_eq!(logs[1].message, "payment gateway slow");
        assert_eq!(logs[2].message, "coupon lookup failed");
        for l in logs {
            assert_eq!(l.service, "checkout");
            assert_eq!(l.host.as_deref(), Some("web-7"));
            assert_eq!(l.trace_id.as_deref(), Some(trace));
            assert_eq!(l.attrs.as_ref().unwrap()["otel.scope.name"], "shop.orders");
            assert_eq!(
                l.attrs.as_ref().unwrap()["resource"]["deployment.environment.name"],
                "staging"
            );
        }
        assert_eq!(logs[0].span_id.as_deref(), ids["server"].as_str());
        assert_eq!(logs[1].span_id.as_deref(), ids["client"].as_str());
        let attrs = logs[1].attrs.as_ref().unwrap();
        assert_eq!(attrs["gateway"], "stripe");
        assert_eq!(attrs["attempt"], 2);
        assert_eq!(logs[2].error_type.as_deref(), Some("KeyError"));
        assert!(logs[2].attrs.as_ref().unwrap()["exception.stacktrace"]
            .as_str()
            .unwrap()
            .contains("Traceback"));
        // The SDK stamps the records a few hundred microseconds apart, in order.
        assert!(logs[0].ts <= logs[1].ts && logs[1].ts <= logs[2].ts);
        assert!(logs[0].ts.timestamp_subsec_nanos() != 0);
    }

    #[test]
    fn sdk_protobuf_records() {
        let req = decode_message(Encoding::Protobuf, &fixture("logs.pb")).unwrap();
        check_sdk_records(&logs_of(req));
    }

    #[test]
    fn sdk_records_in_otlp_json_read_the_same() {
        let pb: ExportLogsServiceRequest =
            decode_message(Encoding::Protobuf, &fixture("logs.pb")).unwrap();
        let json: ExportLogsServiceRequest =
            decode_message(Encoding::Json, &fixture("logs.json")).unwrap();
        assert_eq!(pb, json);
        check_sdk_records(&logs_of(json));
    }

    #[test]
    fn gzip_capture_is_the_same_protocol() {
        use std::io::Read;
        let mut raw = Vec::new();
        flate2::read::GzDecoder::new(&fixture("logs.pb.gz")[..])
            .read_to_end(&mut raw)
            .unwrap();
        let req = decode_message(Encoding::Protobuf, &raw).unwrap();
        let logs = logs_of(req);
        assert_eq!(logs.len(), 3);
        assert!(logs.iter().all(|l| l.service == "billing"));
    }

    #[test]
    fn undecodable_bodies_are_bad_requests() {
        let r = decode_message::<ExportLogsServiceRequest>(Encoding::Protobuf, b"\x0a\xff\xff");
        assert!(matches!(r, Err(crate::serve::reply::Reject::BadRequest(_))));
        let r = decode_message::<ExportLogsServiceRequest>(Encoding::Json, b"{\"resourceLogs\":");
        assert!(matches!(r, Err(crate::serve::reply::Reject::BadRequest(_))));
    }

    fn kv(k: &str, v: Any) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    fn request(records: Vec<OtlpRecord>, resource: Vec<KeyValue>) -> ExportLogsServiceRequest {
        ExportLogsServiceRequest {
            resource_logs: vec![ResourceLogs {
                resource: Some(Resource {
                    attributes: resource,
                    ..Default::default()
                }),
                scope_logs: vec![ScopeLogs {
                    log_records: records,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn severity_ranges_and_text() {
        let rec = |n: i32, text: &str| OtlpRecord {
            severity_number: n,
            severity_text: text.into(),
            body: Some(AnyValue {
                value: Some(Any::StringValue("x".into())),
            }),
            ..Default::default()
        };
        let cases = [
            (1, "", Level::Trace),
            (4, "", Level::Trace),
            (5, "", Level::Debug),
            (8, "", Level::Debug),
            (9, "", Level::Info),
            (12, "", Level::Info),
            (13, "", Level::Warn),
            (16, "", Level::Warn),
            (17, "", Level::Error),
            (20, "", Level::Error),
            (21, "", Level::Fatal),
            (24, "", Level::Fatal),
            // Unspecified number: the text decides; neither: info.
            (0, "WARNING", Level::Warn),
            (0, "", Level::Info),
            // The number wins over a text that disagrees.
            (17, "info", Level::Error),
        ];
        let logs = logs_of(request(
            cases.iter().map(|(n, t, _)| rec(*n, t)).collect(),
            vec![],
        ));
        for (l, (n, t, want)) in logs.iter().zip(cases) {
            assert_eq!(l.level, want, "severity {n} {t:?}");
            assert_eq!(l.service, UNKNOWN_SERVICE);
        }
    }

    #[test]
    fn known_attributes_fill_columns_and_map_bodies_are_read() {
        let rec = OtlpRecord {
            time_unix_nano: 1_700_000_000_000_000_000,
            severity_number: 9,
            body: Some(AnyValue {
                value: Some(Any::KvlistValue(KeyValueList {
                    values: vec![
                        kv("msg", Any::StringValue("login ok".into())),
                        kv("tenant", Any::StringValue("acme".into())),
                    ],
                })),
            }),
            attributes: vec![
                kv("http.route", Any::StringValue("/login".into())),
                kv("http.request.method", Any::StringValue("post".into())),
                kv("http.response.status_code", Any::IntValue(302)),
                kv("user.id", Any::StringValue("u-7".into())),
                kv("exception.type", Any::StringValue("x.Err".into())),
            ],
            ..Default::default()
        };
        let map_only = OtlpRecord {
            observed_time_unix_nano: 1_700_000_001_000_000_000,
            body: Some(AnyValue {
                value: Some(Any::KvlistValue(KeyValueList {
                    values: vec![kv("cart", Any::IntValue(3))],
                })),
            }),
            ..Default::default()
        };
        let d = decode(
            request(
                vec![rec, map_only],
                vec![
                    kv("service.name", Any::StringValue("auth".into())),
                    kv("host.name", Any::StringValue("h1".into())),
                ],
            ),
            Utc::now(),
        );
        assert_eq!(d.rejected, 0);
        let first = d.rows[0].log.as_ref().unwrap();
        assert_eq!(first.message, "login ok");
        assert_eq!(first.route.as_deref(), Some("/login"));
        assert_eq!(first.method.as_deref(), Some("POST"));
        assert_eq!(first.status, Some(302));
        assert_eq!(first.user_id.as_deref(), Some("u-7"));
        assert_eq!(first.error_type.as_deref(), Some("x.Err"));
        assert_eq!(first.attrs.as_ref().unwrap()["tenant"], "acme");
        assert_eq!(first.service, "auth");
        assert_eq!(first.host.as_deref(), Some("h1"));
        assert_eq!(first.ts.timestamp(), 1_700_000_000);
        // No span context: the request-like record is a request, as from a file.
        let req = d.rows[0].request.as_ref().unwrap();
        assert_eq!((req.service.as_str(), req.status), ("auth", 302));
        let second = d.rows[1].log.as_ref().unwrap();
        assert_eq!(second.message, r#"{"cart":3}"#);
        assert_eq!(second.ts.timestamp(), 1_700_000_001);
    }

    #[test]
    fn bad_records_are_rejected_alone() {
        let good = |m: &str| OtlpRecord {
            body: Some(AnyValue {
                value: Some(Any::StringValue(m.into())),
            }),
            ..Default::default()
        };
        let bad_trace = OtlpRecord {
            trace_id: vec![1, 2, 3],
            ..good("bad")
        };
        let huge = good(&"x".repeat(MAX_RECORD + 1));
        let d = decode(
            request(vec![good("a"), bad_trace, huge, good("b")], vec![]),
            Utc::now(),
        );
        assert_eq!(d.rows.len(), 2);
        assert_eq!(d.rejected, 2);
        assert!(
            d.errors[0].starts_with("log record 2: trace_id of 3 bytes"),
            "{:?}",
            d.errors
        );
        assert!(d.errors[1].starts_with("log record 3: "), "{:?}", d.errors);
        // A span context makes the request-like fields stay on the log row only.
        let traced = OtlpRecord {
            trace_id: vec![7; 16],
            span_id: vec![0; 8],
            attributes: vec![
                kv("http.route", Any::StringValue("/a".into())),
                kv("http.request.method", Any::StringValue("GET".into())),
                kv("http.response.status_code", Any::IntValue(200)),
            ],
            ..good("served")
        };
        let d = decode(request(vec![traced], vec![]), Utc::now());
        let p = &d.rows[0];
        assert!(p.request.is_none());
        let log = p.log.as_ref().unwrap();
        assert_eq!(
            log.trace_id.as_deref(),
            Some("07070707070707070707070707070707")
        );
        assert_eq!(log.span_id, None);
        assert_eq!(log.status, Some(200));
    }
}
