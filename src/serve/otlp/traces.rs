//! OTLP spans to rows: every span is kept as a span row (the trace view's waterfall); spans
//! that are requests or queries also become the rows the Performance tab reads.
//!
//! - SERVER and CONSUMER spans: an inbound request of the resource's service. Route from
//!   `http.route`, else the templated `url.path` (`/orders/42` -> `/orders/:id`), else the
//!   span's name; method from `http.request.method` (older `http.method`), else the kind of
//!   work (`RPC`, `CONSUME`); status from `http.response.status_code`, else 500 for a span
//!   whose status is ERROR and 200 otherwise (a non-HTTP operation that ended without error).
//! - CLIENT and PRODUCER spans with a statement (`db.query.text`, older `db.statement`): a
//!   query row (statement normalized as the PostgreSQL log's, database from `db.namespace`).
//! - other CLIENT and PRODUCER spans that name whom they call (`peer.service`,
//!   `server.address`, the host of `url.full`): an outbound request to that integration.
//! - INTERNAL spans: span rows only.
//!
//! A span without a valid trace id, span id or start time cannot be placed in a trace: it is
//! rejected (counted in the response's partial success) while the request's other spans are
//! stored.

use chrono::{DateTime, Utc};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::span::SpanKind;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use opentelemetry_proto::tonic::trace::v1::Span;
use prost::Message;
use serde_json::{Map, Value};

use super::{attributes, hex_id, service_name, time, Decoded, MAX_RECORD, UNKNOWN_SERVICE};
use crate::ingest::pglog;
use crate::ingest::record::{Direction, Parsed, QueryRecord, RequestRecord};
use crate::ingest::route;
use crate::query::spans::SpanRow;

/// The format counted for these rows in ingest statistics.
pub const FORMAT: &str = "otlp-span";

/// Every span of the request.
pub fn decode(req: ExportTraceServiceRequest) -> Decoded {
    let mut out = Decoded::default();
    let mut n = 0u64;
    for rs in req.resource_spans {
        let resource = rs
            .resource
            .map(|r| attributes(&r.attributes))
            .unwrap_or_default();
        let service = service_name(&resource).unwrap_or_else(|| UNKNOWN_SERVICE.to_string());
        for ss in rs.scope_spans {
            let scope = ss.scope.map(|s| s.name).unwrap_or_default();
            for span in ss.spans {
                n += 1;
                match read_span(span, &service, &scope) {
                    Ok((row, parsed)) => {
                        out.spans.push(row);
                        if let Some(p) = parsed {
                            out.rows.push(p);
                        }
                    }
                    Err(why) => out.reject(format!("span {n}: {why}")),
                }
            }
        }
    }
    out
}

fn text<'a>(attrs: &'a Map<String, Value>, keys: &[&str]) -> Option<&'a str> {
    keys.iter()
        .find_map(|k| attrs.get(*k).and_then(Value::as_str))
        .filter(|s| !s.is_empty())
}

fn int(attrs: &Map<String, Value>, keys: &[&str]) -> Option<i64> {
    keys.iter().find_map(|k| match attrs.get(*k)? {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    })
}

fn kind_name(kind: i32) -> &'static str {
    match SpanKind::try_from(kind) {
        Ok(SpanKind::Internal) => "internal",
        Ok(SpanKind::Server) => "server",
        Ok(SpanKind::Client) => "client",
        Ok(SpanKind::Producer) => "producer",
        Ok(SpanKind::Consumer) => "consumer",
        _ => "unspecified",
    }
}

fn read_span(span: Span, service: &str, scope: &str) -> Result<(SpanRow, Option<Parsed>), String> {
    let size = span.encoded_len();
    if size > MAX_RECORD {
        return Err(format!("{size} bytes, over the {MAX_RECORD}-byte limit"));
    }
    let trace_id = hex_id(&span.trace_id, 16, "trace_id")?.ok_or("no trace_id")?;
    let span_id = hex_id(&span.span_id, 8, "span_id")?.ok_or("no span_id")?;
    let parent_span_id = hex_id(&span.parent_span_id, 8, "parent_span_id")?;
    let start = time(span.start_time_unix_nano).ok_or("no start time")?;
    let duration_ms = span
        .end_time_unix_nano
        .saturating_sub(span.start_time_unix_nano) as f64
        / 1e6;
    let (status, status_message) = match &span.status {
        Some(s) => (
            match StatusCode::try_from(s.code) {
                Ok(StatusCode::Ok) => "ok",
                Ok(StatusCode::Error) => "error",
                _ => "unset",
            },
            (!s.message.is_empty()).then(|| s.message.clone()),
        ),
        None => ("unset", None),
    };
    let attrs = attributes(&span.attributes);
    let kind = kind_name(span.kind);
    let parsed = rows_of(
        &attrs,
        kind,
        &span.name,
        start,
        duration_ms,
        status == "error",
        service,
        &trace_id,
    );
    let mut kept = attrs;
    // The statement's literals (ids, emails, tokens) are not kept: the query row has the
    // normalized text, and so does the span.
    for key in ["db.query.text", "db.statement"] {
        if let Some(Value::String(stmt)) = kept.get_mut(key) {
            *stmt = pglog::normalize(stmt);
        }
    }
    if !scope.is_empty() {
        kept.insert("otel.scope.name".into(), Value::String(scope.to_string()));
    }
    if !span.events.is_empty() {
        // Span events (an exception recorded on the span, above all) with their offset.
        let events = span
            .events
            .iter()
            .map(|e| {
                let mut ev = Map::new();
                ev.insert("name".into(), Value::String(e.name.clone()));
                let at = e.time_unix_nano.saturating_sub(span.start_time_unix_nano) as f64 / 1e6;
                ev.insert("offset_ms".into(), Value::from(at));
                if !e.attributes.is_empty() {
                    ev.insert(
                        "attributes".into(),
                        Value::Object(attributes(&e.attributes)),
                    );
                }
                Value::Object(ev)
            })
            .collect();
        kept.insert("events".into(), Value::Array(events));
    }
    let row = SpanRow {
        ts: start,
        trace_id,
        span_id,
        parent_span_id,
        name: span.name,
        kind,
        service: service.to_string(),
        duration_ms,
        status,
        status_message,
        attrs: (!kept.is_empty()).then_some(Value::Object(kept)),
    };
    Ok((row, parsed))
}

/// The request or query row a span stands for, if any (see the module doc).
#[allow(clippy::too_many_arguments)]
fn rows_of(
    attrs: &Map<String, Value>,
    kind: &str,
    name: &str,
    ts: DateTime<Utc>,
    duration_ms: f64,
    failed: bool,
    service: &str,
    trace_id: &str,
) -> Option<Parsed> {
    let outbound = match kind {
        "server" | "consumer" => false,
        "client" | "producer" => true,
        _ => return None,
    };
    if outbound {
        if let Some(stmt) = text(attrs, &["db.query.text", "db.statement"]) {
            let query = pglog::normalize(stmt);
            return Some(Parsed {
                query: Some(QueryRecord {
                    ts,
                    service: service.to_string(),
                    database: text(attrs, &["db.namespace", "db.name"]).map(str::to_string),
                    fingerprint: pglog::query_fingerprint(&query),
                    query,
                    duration_ms,
                    rows: int(attrs, &["db.response.returned_rows"]),
                    trace_id: Some(trace_id.to_string()),
                }),
                format: FORMAT,
                ..Parsed::default()
            });
        }
    }
    let url_full = text(attrs, &["url.full", "http.url"]);
    let integration = if outbound {
        let host = url_full.and_then(|u| url::Url::parse(u).ok()?.host_str().map(str::to_string));
        Some(
            text(attrs, &["peer.service", "server.address", "net.peer.name"])
                .map(str::to_string)
                .or(host)?,
        )
    } else {
        None
    };
    let method = text(attrs, &["http.request.method", "http.method"])
        .map(str::to_ascii_uppercase)
        .filter(|m| m.len() <= 16)
        .unwrap_or_else(|| {
            if attrs.contains_key("rpc.system") {
                "RPC".into()
            } else if kind == "consumer" {
                "CONSUME".into()
            } else if kind == "producer" {
                "PUBLISH".into()
            } else {
                kind.to_ascii_uppercase()
            }
        });
    let path = text(attrs, &["url.path", "http.target"])
        .map(str::to_string)
        .or_else(|| url_full.and_then(|u| Some(url::Url::parse(u).ok()?.path().to_string())));
    let route = text(attrs, &["http.route", "url.template"])
        .map(str::to_string)
        .or_else(|| path.as_deref().map(route::template))
        .unwrap_or_else(|| name.to_string());
    let status = int(attrs, &["http.response.status_code", "http.status_code"])
        .filter(|s| (0..=999).contains(s))
        .map(|s| s as i16)
        .unwrap_or(if failed { 500 } else { 200 });
    Some(Parsed {
        request: Some(RequestRecord {
            ts,
            service: service.to_string(),
            method,
            route,
            status,
            duration_ms,
            bytes: int(attrs, &["http.response.body.size"]),
            user_id: text(attrs, &["user.id", "enduser.id"]).map(str::to_string),
            trace_id: Some(trace_id.to_string()),
            request_id: None,
            ip: text(attrs, &["client.address", "http.client_ip"]).map(str::to_string),
            user_agent: text(attrs, &["user_agent.original", "http.user_agent"])
                .map(str::to_string),
            error_code: text(attrs, &["error.type"]).map(str::to_string),
            direction: if outbound {
                Direction::Outbound
            } else {
                Direction::Inbound
            },
            integration,
        }),
        format: FORMAT,
        ..Parsed::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::serve::otlp::{decode_message, Encoding};
    use opentelemetry_proto::tonic::common::v1::{any_value::Value as Any, AnyValue, KeyValue};
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/otlp/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn check_sdk_spans(d: &Decoded) {
        let ids: Value = serde_json::from_slice(&fixture("ids.json")).unwrap();
        let id = |k: &str| ids[k].as_str().unwrap().to_string();
        assert_eq!(d.rejected, 0, "{:?}", d.errors);
        assert_eq!(d.spans.len(), 3);
        let by_id = |s: &str| d.spans.iter().find(|r| r.span_id == s).unwrap();
        let server = by_id(&id("server"));
        let client = by_id(&id("client"));
        let db = by_id(&id("db"));
        assert!(d.spans.iter().all(|s| s.trace_id == id("trace_id")));
        assert!(d.spans.iter().all(|s| s.service == "checkout"));
        assert_eq!(server.parent_span_id, None);
        assert_eq!(client.parent_span_id, Some(id("server")));
        assert_eq!(db.parent_span_id, Some(id("server")));
        assert_eq!(
            (server.kind, client.kind, db.kind),
            ("server", "client", "client")
        );
        assert_eq!(server.name, "GET /orders/{id}");
        assert_eq!(client.status, "error");
        // Children start after and end before their parent.
        for child in [client, db] {
            assert!(child.ts >= server.ts);
            let end =
                |s: &SpanRow| s.ts + chrono::Duration::microseconds((s.duration_ms * 1e3) as i64);
            assert!(end(child) <= end(server) + chrono::Duration::microseconds(1));
        }
        assert!(server.duration_ms > 0.0);
        // One inbound request, one outbound call, one query.
        let requests: Vec<&RequestRecord> =
            d.rows.iter().filter_map(|p| p.request.as_ref()).collect();
        let queries: Vec<&QueryRecord> = d.rows.iter().filter_map(|p| p.query.as_ref()).collect();
        assert_eq!(requests.len(), 2);
        assert_eq!(queries.len(), 1);
        let inbound = requests
            .iter()
            .find(|r| r.direction == Direction::Inbound)
            .unwrap();
        assert_eq!(
            (
                inbound.method.as_str(),
                inbound.route.as_str(),
                inbound.status
            ),
            ("GET", "/orders/{id}", 200)
        );
        assert_eq!(inbound.user_id.as_deref(), Some("u-1001"));
        assert_eq!(inbound.trace_id, Some(id("trace_id")));
        assert_eq!(inbound.duration_ms, server.duration_ms);
        let outbound = requests
            .iter()
            .find(|r| r.direction == Direction::Outbound)
            .unwrap();
        assert_eq!(
            (
                outbound.method.as_str(),
                outbound.route.as_str(),
                outbound.status
            ),
            ("POST", "/v1/charges", 502)
        );
        assert_eq!(outbound.integration.as_deref(), Some("payments.internal"));
        let q = queries[0];
        assert_eq!(q.query, "SELECT * FROM orders WHERE id = $1");
        assert_eq!(q.database.as_deref(), Some("shop"));
        assert_eq!(q.rows, Some(1));
        assert_eq!(q.service, "checkout");
    }

    #[test]
    fn sdk_protobuf_spans() {
        let req = decode_message(Encoding::Protobuf, &fixture("traces.pb")).unwrap();
        check_sdk_spans(&decode(req));
    }

    #[test]
    fn sdk_spans_in_otlp_json_read_the_same() {
        let pb: ExportTraceServiceRequest =
            decode_message(Encoding::Protobuf, &fixture("traces.pb")).unwrap();
        let json: ExportTraceServiceRequest =
            decode_message(Encoding::Json, &fixture("traces.json")).unwrap();
        assert_eq!(pb, json);
        check_sdk_spans(&decode(json));
    }

    fn kv(k: &str, v: Any) -> KeyValue {
        KeyValue {
            key: k.into(),
            value: Some(AnyValue { value: Some(v) }),
            ..Default::default()
        }
    }

    #[test]
    fn bad_spans_are_rejected_alone_and_kinds_map() {
        let span = |kind: SpanKind, attrs: Vec<KeyValue>| Span {
            trace_id: vec![1; 16],
            span_id: vec![2; 8],
            start_time_unix_nano: 1_700_000_000_000_000_000,
            end_time_unix_nano: 1_700_000_000_250_000_000,
            kind: kind as i32,
            name: "work".into(),
            attributes: attrs,
            ..Default::default()
        };
        let no_trace = Span {
            trace_id: vec![],
            ..span(SpanKind::Server, vec![])
        };
        let short_span = Span {
            span_id: vec![1, 2],
            ..span(SpanKind::Server, vec![])
        };
        let no_start = Span {
            start_time_unix_nano: 0,
            ..span(SpanKind::Server, vec![])
        };
        let consumer = span(
            SpanKind::Consumer,
            vec![kv("messaging.system", Any::StringValue("kafka".into()))],
        );
        let failed_rpc = Span {
            status: Some(opentelemetry_proto::tonic::trace::v1::Status {
                code: StatusCode::Error as i32,
                message: "deadline".into(),
            }),
            ..span(
                SpanKind::Server,
                vec![
                    kv("rpc.system", Any::StringValue("grpc".into())),
                    kv("url.path", Any::StringValue("/users/123/cart".into())),
                ],
            )
        };
        let internal = span(SpanKind::Internal, vec![]);
        let anonymous_client = span(SpanKind::Client, vec![]);
        let req = ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans: vec![
                        no_trace,
                        short_span,
                        no_start,
                        consumer,
                        failed_rpc,
                        internal,
                        anonymous_client,
                    ],
                    ..Default::default()
                }],
                ..Default::default()
            }],
        };
        let d = decode(req);
        assert_eq!(d.rejected, 3);
        assert_eq!(
            d.errors,
            [
                "span 1: no trace_id",
                "span 2: span_id of 2 bytes (8 expected)",
                "span 3: no start time"
            ]
        );
        assert_eq!(d.spans.len(), 4);
        assert!(d.spans.iter().all(|s| s.service == UNKNOWN_SERVICE));
        assert_eq!(d.spans[0].duration_ms, 250.0);
        assert_eq!(d.spans[1].status, "error");
        assert_eq!(d.spans[1].status_message.as_deref(), Some("deadline"));
        // Consumer and RPC server spans are requests; internal and unnamed client calls are not.
        let reqs: Vec<&RequestRecord> = d.rows.iter().filter_map(|p| p.request.as_ref()).collect();
        assert_eq!(reqs.len(), 2);
        assert_eq!(
            (
                reqs[0].method.as_str(),
                reqs[0].route.as_str(),
                reqs[0].status
            ),
            ("CONSUME", "work", 200)
        );
        assert_eq!(
            (
                reqs[1].method.as_str(),
                reqs[1].route.as_str(),
                reqs[1].status
            ),
            ("RPC", "/users/:id/cart", 500)
        );
    }
}
