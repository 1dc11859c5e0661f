//! OTLP/HTTP receiver: `POST /v1/logs` and `POST /v1/traces` as the OpenTelemetry SDKs and the
//! Collector's `otlphttp` exporter send them (protobuf or OTLP's JSON encoding, gzip), answered
//! as the OTLP specification says: 200 with an Export*ServiceResponse in the request's own
//! encoding, `partial_success` counting the records that could not be stored, 400 for a body
//! that cannot be decoded, 429/503 with Retry-After when the database cannot take the rows now;
//! every refusal carries a `google.rpc.Status` body in the request's encoding.
//!
//! Decoding (`logs`, `traces`) is pure: bytes in, records out. Log records and the request and
//! query rows made from spans go through the sink (the same pipeline as file ingest); the spans
//! themselves are written here, before the sink, with an insert that ignores spans already
//! stored, so a client retrying after a 503 stores each span once.

pub mod logs;
pub mod traces;

use std::sync::OnceLock;

use axum::body::Bytes;
use axum::extract::State as Extract;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Extension, Router};
use base64::Engine;
use chrono::{DateTime, Utc};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::any_value::Value as Any;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue};
use prost::Message as _;
use serde_json::{Map, Value};

use super::auth::Client;
use super::reply::Reject;
use super::{body, State};
use crate::ingest::record::Parsed;
use crate::ingest::record::{strip_nul, strip_nul_json};
use crate::ingest::redact::Redactor;
use crate::query::spans::SpanRow;

/// Service of records whose resource names none (OpenTelemetry's own default).
pub const UNKNOWN_SERVICE: &str = "unknown_service";

/// Largest single log record or span taken (its protobuf size): as large as a line `opsdash
/// ingest` reads, so one giant record is refused alone while the rest of its request is stored.
pub const MAX_RECORD: usize = crate::ingest::reader::MAX_LINE;

/// Source name of rows received without a token.
const SOURCE: &str = "otlp";

/// What one request's body decoded into.
#[derive(Debug, Default)]
pub struct Decoded {
    /// One per record or span that becomes rows (log, request or query).
    pub rows: Vec<Parsed>,
    /// Spans to keep for the trace view (traces only).
    pub spans: Vec<SpanRow>,
    /// Records or spans refused (bad ids, too large), with why for the first few.
    pub rejected: u64,
    pub errors: Vec<String>,
}

impl Decoded {
    fn reject(&mut self, what: String) {
        self.rejected += 1;
        if self.errors.len() < crate::ingest::pipeline::REPORTED_REJECTS {
            self.errors.push(what);
        }
    }
}

/// The two encodings OTLP/HTTP allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

impl Encoding {
    pub fn from_content_type(media: &str) -> Result<Encoding, Reject> {
        match media {
            "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
            "application/json" => Ok(Encoding::Json),
            other => Err(Reject::Unsupported(format!(
                "Content-Type {other:?} is not OTLP (application/x-protobuf or application/json)"
            ))),
        }
    }

    fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => "application/x-protobuf",
            Encoding::Json => "application/json",
        }
    }
}

/// Reads a request body in its encoding. A body that is not the message is a 400: the OTLP
/// specification says a client must not retry it.
pub fn decode_message<T>(enc: Encoding, bytes: &[u8]) -> Result<T, Reject>
where
    T: prost::Message + Default + serde::de::DeserializeOwned,
{
    match enc {
        Encoding::Protobuf => T::decode(bytes)
            .map_err(|e| Reject::BadRequest(format!("undecodable OTLP protobuf body: {e}"))),
        Encoding::Json => serde_json::from_slice(bytes)
            .map_err(|e| Reject::BadRequest(format!("undecodable OTLP JSON body: {e}"))),
    }
}

/// `google.rpc.Status`, the body OTLP/HTTP gives every 4xx and 5xx answer to a request it could
/// read the encoding of (its `details` are left empty).
#[derive(Clone, PartialEq, prost::Message, serde::Serialize, serde::Deserialize)]
pub struct RpcStatus {
    /// A gRPC status code (`google.rpc.Code`).
    #[prost(int32, tag = "1")]
    pub code: i32,
    #[prost(string, tag = "2")]
    pub message: String,
}

/// The gRPC code OTLP/gRPC would give for the same refusal.
fn grpc_code(r: &Reject) -> i32 {
    match r {
        Reject::BadRequest(_) | Reject::Unsupported(_) => 3, // INVALID_ARGUMENT
        Reject::TooLarge(_) | Reject::RateLimited { .. } | Reject::Busy { .. } => 8, // RESOURCE_EXHAUSTED
        Reject::Unauthorized => 16,       // UNAUTHENTICATED
        Reject::Unavailable { .. } => 14, // UNAVAILABLE
    }
}

/// A refusal as the OTLP/HTTP specification says: its status code and Retry-After as for any
/// route, and a `google.rpc.Status` body in the request's encoding (protobuf or JSON) so that
/// exporters can log why.
pub fn refuse(enc: Encoding, r: Reject) -> Response {
    let status = RpcStatus {
        code: grpc_code(&r),
        message: r.message(),
    };
    let body = match enc {
        Encoding::Protobuf => status.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(&status).unwrap_or_else(|_| b"{}".to_vec()),
    };
    let mut resp = (r.status(), body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(enc.content_type()),
    );
    if let Some(secs) = r.retry_after() {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// A 200 with the response message in the request's encoding.
fn answer<T: prost::Message + serde::Serialize>(enc: Encoding, msg: &T) -> Response {
    let body = match enc {
        Encoding::Protobuf => msg.encode_to_vec(),
        Encoding::Json => serde_json::to_vec(msg).unwrap_or_else(|_| b"{}".to_vec()),
    };
    let mut resp = (StatusCode::OK, body).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(enc.content_type()),
    );
    resp
}

/// An AnyValue as JSON: maps and arrays nested, bytes as base64 (as OTLP's JSON writes them).
pub fn any_to_json(v: &AnyValue) -> Value {
    match &v.value {
        Some(Any::StringValue(s)) => Value::String(s.clone()),
        Some(Any::BoolValue(b)) => Value::Bool(*b),
        Some(Any::IntValue(n)) => Value::from(*n),
        Some(Any::DoubleValue(d)) => serde_json::Number::from_f64(*d)
            .map(Value::Number)
            // NaN and infinities have no JSON number; their name keeps them visible.
            .unwrap_or_else(|| Value::String(d.to_string())),
        Some(Any::ArrayValue(a)) => Value::Array(a.values.iter().map(any_to_json).collect()),
        Some(Any::KvlistValue(kv)) => Value::Object(attributes(&kv.values)),
        Some(Any::BytesValue(b)) => {
            Value::String(base64::engine::general_purpose::STANDARD.encode(b))
        }
        // Dictionary references belong to the profiles signal; logs and traces never use them.
        Some(Any::StringValueStrindex(_)) | None => Value::Null,
    }
}

/// Attributes as a JSON object (a repeated key keeps its last value, as the SDKs do).
pub fn attributes(kvs: &[KeyValue]) -> Map<String, Value> {
    kvs.iter()
        .map(|kv| {
            let v = kv.value.as_ref().map_or(Value::Null, any_to_json);
            (kv.key.clone(), v)
        })
        .collect()
}

/// A trace or span id as lowercase hex: None when absent or all zero (OTLP's "no id"), an error
/// when it has the wrong length.
pub fn hex_id(bytes: &[u8], len: usize, what: &str) -> Result<Option<String>, String> {
    if bytes.is_empty() || (bytes.len() == len && bytes.iter().all(|b| *b == 0)) {
        return Ok(None);
    }
    if bytes.len() != len {
        return Err(format!("{what} of {} bytes ({len} expected)", bytes.len()));
    }
    Ok(Some(hex::encode(bytes)))
}

/// A time in Unix nanoseconds; None for 0 (unset).
pub fn time(nanos: u64) -> Option<DateTime<Utc>> {
    if nanos == 0 {
        return None;
    }
    let secs = (nanos / 1_000_000_000) as i64;
    DateTime::from_timestamp(secs, (nanos % 1_000_000_000) as u32)
}

/// The resource's `service.name`, when it has a non-empty one.
pub fn service_name(resource: &Map<String, Value>) -> Option<String> {
    resource
        .get("service.name")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
}

/// A span row as it may be stored: the same redaction as every ingested row, and no NUL
/// (PostgreSQL text and jsonb cannot hold one).
pub fn clean_span(s: &mut SpanRow, redactor: &Redactor) {
    strip_nul(&mut s.name);
    strip_nul(&mut s.service);
    redactor.string(&mut s.name);
    if let Some(m) = &mut s.status_message {
        strip_nul(m);
        redactor.string(m);
    }
    if let Some(a) = &mut s.attrs {
        strip_nul_json(a);
        redactor.json(a);
    }
}

/// The redaction rules for span rows (log, request and query rows are redacted by the
/// pipeline), made once from the config the server started with.
fn redactor(cfg: &crate::config::Config) -> Result<&'static Redactor, Reject> {
    static REDACTOR: OnceLock<Result<Redactor, String>> = OnceLock::new();
    REDACTOR
        .get_or_init(|| Redactor::new(&cfg.ingest).map_err(|e| format!("{e:#}")))
        .as_ref()
        .map_err(|e| Reject::Unavailable {
            retry_after: 60,
            why: format!("redaction rules: {e}"),
        })
}

/// `POST /v1/logs` and `POST /v1/traces`.
pub fn routes() -> Router<State> {
    Router::new()
        .route("/v1/logs", post(post_logs))
        .route("/v1/traces", post(post_traces))
}

/// The encoding of an OTLP request from its content type; a content type that is not OTLP is
/// refused (415) in plain text, since no encoding for a Status body is known.
fn encoding(headers: &HeaderMap) -> Result<Encoding, Reject> {
    Encoding::from_content_type(&body::content_type(headers))
}

/// An OTLP request's message, read from its body (decompressed as its Content-Encoding says).
fn read<T>(state: &State, enc: Encoding, headers: &HeaderMap, raw: Bytes) -> Result<T, Reject>
where
    T: prost::Message + Default + serde::de::DeserializeOwned,
{
    let limit = state.cfg.server.decompressed_limit;
    let plain = matches!(
        headers
            .get(header::CONTENT_ENCODING)
            .and_then(|v| v.to_str().ok())
            .map(str::trim),
        None | Some("") | Some("identity")
    );
    if plain {
        // Read in place: no copy of the body.
        if raw.len() > limit {
            return Err(Reject::TooLarge(format!(
                "body larger than {limit} bytes (server.decompressed_limit)"
            )));
        }
        return decode_message(enc, &raw);
    }
    let bytes = body::decode(headers, &raw, limit)?;
    // The compressed body is not needed once expanded.
    drop(raw);
    decode_message(enc, &bytes)
}

/// `record 3: why; record 7: why` for the partial-success message.
fn error_message(errors: &[String], sink_rejects: &[String]) -> String {
    errors
        .iter()
        .chain(sink_rejects)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join("; ")
}

async fn post_logs(
    Extract(state): Extract<State>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let enc = match encoding(&headers) {
        Ok(e) => e,
        Err(r) => return r.into_response(),
    };
    let req: ExportLogsServiceRequest = match read(&state, enc, &headers, raw) {
        Ok(r) => r,
        Err(r) => return refuse(enc, r),
    };
    let decoded = logs::decode(req, Utc::now());
    let source = client.source(SOURCE);
    let stored = match state.sink.submit_parsed(&source, decoded.rows).await {
        Ok(s) => s,
        Err(r) => return refuse(enc, r),
    };
    let rejected = decoded.rejected + stored.rejected;
    let partial_success = (rejected > 0).then(|| ExportLogsPartialSuccess {
        rejected_log_records: rejected as i64,
        error_message: error_message(&decoded.errors, &stored.rejects),
    });
    answer(enc, &ExportLogsServiceResponse { partial_success })
}

async fn post_traces(
    Extract(state): Extract<State>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    raw: Bytes,
) -> Response {
    let enc = match encoding(&headers) {
        Ok(e) => e,
        Err(r) => return r.into_response(),
    };
    let redactor = match redactor(&state.cfg) {
        Ok(r) => r,
        Err(r) => return refuse(enc, r),
    };
    let req: ExportTraceServiceRequest = match read(&state, enc, &headers, raw) {
        Ok(r) => r,
        Err(r) => return refuse(enc, r),
    };
    let mut decoded = traces::decode(req);
    for s in &mut decoded.spans {
        clean_span(s, redactor);
    }
    // Spans first: their insert skips spans already stored, so when the rows below fail and the
    // client retries, nothing is stored twice.
    if let Err(e) = crate::query::spans::insert(&state.db.write, &decoded.spans).await {
        tracing::warn!("otlp: storing {} spans: {e:#}", decoded.spans.len());
        let r = Reject::Unavailable {
            retry_after: 2,
            why: "spans could not be stored".into(),
        };
        return refuse(enc, r);
    }
    let stored = match state
        .sink
        .submit_parsed(&client.source(SOURCE), decoded.rows)
        .await
    {
        Ok(s) => s,
        Err(r) => return refuse(enc, r),
    };
    let rejected = decoded.rejected + stored.rejected;
    let partial_success = (rejected > 0).then(|| ExportTracePartialSuccess {
        rejected_spans: rejected as i64,
        error_message: error_message(&decoded.errors, &stored.rejects),
    });
    answer(enc, &ExportTraceServiceResponse { partial_success })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_lowercase_hex_and_zero_means_none() {
        assert_eq!(
            hex_id(&[0xAB; 8], 8, "span_id").unwrap(),
            Some("abababababababab".into())
        );
        assert_eq!(hex_id(&[], 16, "trace_id").unwrap(), None);
        assert_eq!(hex_id(&[0; 16], 16, "trace_id").unwrap(), None);
        let err = hex_id(&[1, 2, 3], 16, "trace_id").unwrap_err();
        assert_eq!(err, "trace_id of 3 bytes (16 expected)");
        assert!(hex_id(&[0; 3], 16, "trace_id").is_err());
    }

    #[test]
    fn any_values_become_json() {
        use opentelemetry_proto::tonic::common::v1::{ArrayValue, KeyValueList};
        let s = |t: &str| AnyValue {
            value: Some(Any::StringValue(t.into())),
        };
        let kv = |k: &str, v: AnyValue| KeyValue {
            key: k.into(),
            value: Some(v),
            ..Default::default()
        };
        let v = AnyValue {
            value: Some(Any::KvlistValue(KeyValueList {
                values: vec![
                    kv("a", s("x")),
                    kv(
                        "b",
                        AnyValue {
                            value: Some(Any::ArrayValue(ArrayValue {
                                values: vec![
                                    AnyValue {
                                        value: Some(Any::IntValue(-3)),
                                    },
                                    AnyValue {
                                        value: Some(Any::DoubleValue(f64::NAN)),
                                    },
                                ],
                            })),
                        },
                    ),
                    kv(
                        "c",
                        AnyValue {
                            value: Some(Any::BytesValue(vec![0xff, 0])),
                        },
                    ),
                ],
            })),
        };
        assert_eq!(
            any_to_json(&v),
            serde_json::json!({"a": "x", "b": [-3, "NaN"], "c": "/wA="})
        );
    }

    #[test]
    fn refusals_carry_a_status_in_the_request_encoding() {
        let r = refuse(
            Encoding::Protobuf,
            Reject::BadRequest("undecodable OTLP protobuf body: x".into()),
        );
        assert_eq!(r.status(), StatusCode::BAD_REQUEST);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/x-protobuf");
        let r = refuse(
            Encoding::Json,
            Reject::Unavailable {
                retry_after: 2,
                why: "down".into(),
            },
        );
        assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(r.headers()[header::RETRY_AFTER], "2");
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        let round = RpcStatus {
            code: 3,
            message: "why".into(),
        };
        assert_eq!(RpcStatus::decode(&*round.encode_to_vec()).unwrap(), round);
        assert_eq!(
            serde_json::to_value(&round).unwrap(),
            serde_json::json!({"code": 3, "message": "why"})
        );
    }

    #[test]
    fn content_types() {
        assert_eq!(
            Encoding::from_content_type("application/x-protobuf").unwrap(),
            Encoding::Protobuf
        );
        assert_eq!(
            Encoding::from_content_type("application/json").unwrap(),
            Encoding::Json
        );
        assert!(matches!(
            Encoding::from_content_type("text/plain"),
            Err(Reject::Unsupported(_))
        ));
    }

    #[test]
    fn times_are_unix_nanos() {
        assert_eq!(time(0), None);
        let t = time(1_796_614_604_362_813_440).unwrap();
        assert_eq!(t.timestamp(), 1_796_614_604);
        assert_eq!(t.timestamp_subsec_nanos(), 362_813_440);
    }
}
