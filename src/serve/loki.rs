//! Loki's push API (`POST /loki/api/v1/push`): the request bodies Promtail, Grafana Alloy,
//! Vector's and Fluent Bit's `loki` outputs and Docker's loki driver send, decoded into the
//! same records file ingest builds.
//!
//! Two encodings, as Loki accepts them: protobuf (`PushRequest` of Loki's `pkg/push/push.proto`)
//! compressed with snappy's block format, and JSON (`{"streams":[{"stream":{labels},"values":
//! [["<unix ns>","line",{metadata}?]]}]}`, or the older `{"labels":"{..}","entries":[{"ts":
//! "<RFC 3339>","line":".."}]}` that `python-logging-loki` sends by default).
//!
//! A stream's labels say what the line itself may not: the service is the first of
//! `service_name`, `service`, `app`, `application` (python-logging-loki's examples), `job`,
//! `container`, `container_name` (Docker's driver) present; the level the first of `level`,
//! `detected_level`, `severity` that names one; the host the first of `host`, `hostname`,
//! `instance`, `node`. The other labels and the entry's
//! structured metadata (which wins over a label of the same name) go into attrs, except
//! `trace_id` and `span_id` in the metadata, which fill those columns. Each line is then read
//! like a line of a file (a JSON or logfmt line keeps its fields), the labels filling only what
//! the line lacks (see `ingest::envelope::read`).
//!
//! One bad entry (a line that is not UTF-8, a timestamp out of range) is rejected alone; the
//! rest of its batch is stored. A body that cannot be decoded at all is rejected whole.

use std::borrow::Cow;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};

use axum::body::Bytes;
use axum::extract::State as AxState;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::post;
use axum::{Extension, Router};

use super::auth::Client;
use super::body;
use super::reply::Reject;
use super::State;
use crate::ingest::detect::Format;
use crate::ingest::envelope::{self, Envelope};
use crate::ingest::fields::LineContext;
use crate::ingest::record::Parsed;
use crate::model::Level;

/// Labels naming the service, most specific first.
const SERVICE_LABELS: [&str; 7] = [
    "service_name",
    "service",
    "app",
    "application",
    "job",
    "container",
    "container_name",
];
const LEVEL_LABELS: [&str; 3] = ["level", "detected_level", "severity"];
const HOST_LABELS: [&str; 4] = ["host", "hostname", "instance", "node"];

/// Loki's own placeholder when it could not find a service name: not a name.
const UNKNOWN_SERVICE: &str = "unknown_service";

/// At most this many reasons are reported back (all are counted).
const REPORTED_REJECTS: usize = 10;

/// The messages of Loki's `push.proto` (package `logproto`), written out by hand so that no
/// protoc is needed to build. Fields declared `string` there are `bytes` here (the same wire
/// type): prost refuses a whole message for one string that is not UTF-8, and one bad line
/// must not cost its batch.
pub mod proto {
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct PushRequest {
        #[prost(message, repeated, tag = "1")]
        pub streams: Vec<StreamAdapter>,
        /// `loki` or `otlp`: how the streams were ingested (informational).
        #[prost(bytes = "vec", tag = "2")]
        pub format: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StreamAdapter {
        /// Prometheus label syntax: `{job="x", level="error"}`.
        #[prost(bytes = "vec", tag = "1")]
        pub labels: Vec<u8>,
        #[prost(message, repeated, tag = "2")]
        pub entries: Vec<EntryAdapter>,
        #[prost(uint64, tag = "3")]
        pub hash: u64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LabelPairAdapter {
        #[prost(bytes = "vec", tag = "1")]
        pub name: Vec<u8>,
        #[prost(bytes = "vec", tag = "2")]
        pub value: Vec<u8>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct EntryAdapter {
        #[prost(message, optional, tag = "1")]
        pub timestamp: Option<Timestamp>,
        #[prost(bytes = "vec", tag = "2")]
        pub line: Vec<u8>,
        #[prost(message, repeated, tag = "3")]
        pub structured_metadata: Vec<LabelPairAdapter>,
        // Field 4 (`parsed`) is for query responses only; prost skips it.
    }

    /// `google.protobuf.Timestamp`.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Timestamp {
        #[prost(int64, tag = "1")]
        pub seconds: i64,
        #[prost(int32, tag = "2")]
        pub nanos: i32,
    }
}

/// What a body holds: the rows to store, and the entries rejected on their own.
#[derive(Debug, Default)]
pub struct Decoded {
    pub rows: Vec<Parsed>,
    /// Entries in the body (stored or not).
    pub entries: u64,
    /// Entries with nothing to store (an empty line): neither rows nor rejects.
    pub blank: u64,
    pub rejected: u64,
    /// The first reasons (see `REPORTED_REJECTS`).
    pub rejects: Vec<String>,
}

impl Decoded {
    fn reject(&mut self, reason: String) {
        self.rejected += 1;
        if self.rejects.len() < REPORTED_REJECTS {
            self.rejects.push(reason);
        }
    }
}

pub fn routes() -> Router<State> {
    Router::new().route("/loki/api/v1/push", post(push))
}

/// `POST /loki/api/v1/push`: 204 once every entry is committed; 400 naming the entries that
/// were rejected (the others are committed, as Loki does: its clients do not resend a 4xx).
async fn push(
    AxState(state): AxState<State>,
    Extension(client): Extension<Client>,
    headers: HeaderMap,
    raw: Bytes,
) -> Result<StatusCode, Reject> {
    let limit = state.cfg.server.decompressed_limit;
    let source = client.source("loki");
    let decoded = match body::content_type(&headers).as_str() {
        "application/json" => decode_json(&body::decode(&headers, &raw, limit)?, &source)?,
        // Loki takes a body without a type as protobuf too.
        "" | "application/x-protobuf" => {
            let encoding = headers
                .get(header::CONTENT_ENCODING)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase();
            // The snappy block is the protobuf body's own format; a `Content-Encoding: snappy`
            // only says so again. Anything else (gzip) is around it.
            let packed = match encoding.as_str() {
                "" | "identity" | "snappy" => Cow::Borrowed(&raw[..]),
                _ => Cow::Owned(body::decode(&headers, &raw, limit)?),
            };
            decode_protobuf(&body::snappy(&packed, limit)?, &source)?
        }
        other => {
            return Err(Reject::Unsupported(format!(
                "Content-Type {:?}: Loki's push takes application/x-protobuf (snappy) or \
                 application/json",
                clip(other)
            )))
        }
    };
    let Decoded {
        rows,
        entries,
        rejected,
        mut rejects,
        ..
    } = decoded;
    let stored = state.sink.submit_parsed(&source, rows).await?;
    let rejected = rejected + stored.rejected;
    if rejected == 0 {
        return Ok(StatusCode::NO_CONTENT);
    }
    rejects.extend(stored.rejects);
    rejects.truncate(REPORTED_REJECTS);
    tracing::info!(source = %source, entries, rejected, "loki push: entries rejected");
    Err(Reject::BadRequest(format!(
        "{rejected} of {entries} entries rejected (the others are stored): {}",
        rejects.join("; ")
    )))
}

/// Decodes a protobuf `PushRequest` (already uncompressed). `service` names the rows of
/// streams whose labels and lines name none.
pub fn decode_protobuf(body: &[u8], service: &str) -> Result<Decoded, Reject> {
    use prost::Message;
    let req = proto::PushRequest::decode(body)
        .map_err(|e| Reject::BadRequest(format!("not a Loki PushRequest: {e}")))?;
    let mut out = Decoded::default();
    let now = Utc::now();
    for stream in req.streams {
        out.entries += stream.entries.len() as u64;
        let labels = match std::str::from_utf8(&stream.labels)
            .map_err(|_| "labels are not valid UTF-8".to_string())
            .and_then(parse_labels)
        {
            Ok(l) => StreamLabels::new(l),
            Err(why) => {
                let shown = String::from_utf8_lossy(&stream.labels);
                for _ in &stream.entries {
                    out.reject(format!("stream {}: {why}", clip(&shown)));
                }
                continue;
            }
        };
        for (i, e) in stream.entries.into_iter().enumerate() {
            let at = || format!("stream {} entry {i}", clip(&labels.raw));
            let ts = match e.timestamp {
                None => now,
                Some(t) => match u32::try_from(t.nanos)
                    .ok()
                    .and_then(|n| DateTime::from_timestamp(t.seconds, n))
                {
                    Some(ts) => ts,
                    None => {
                        out.reject(format!("{}: timestamp out of range", at()));
                        continue;
                    }
                },
            };
            let Ok(line) = std::str::from_utf8(&e.line) else {
                out.reject(format!("{}: line is not valid UTF-8", at()));
                continue;
            };
            let mut metadata = Vec::with_capacity(e.structured_metadata.len());
            let mut bad_meta = false;
            for pair in e.structured_metadata {
                match (String::from_utf8(pair.name), String::from_utf8(pair.value)) {
                    (Ok(n), Ok(v)) => metadata.push((n, v)),
                    _ => bad_meta = true,
                }
            }
            if bad_meta {
                out.reject(format!("{}: structured metadata is not valid UTF-8", at()));
                continue;
            }
            out.push(&labels, ts, line, metadata, service, &at);
        }
    }
    Ok(out)
}

/// A JSON push body: Loki's current shape or the older one, stream by stream.
#[derive(Deserialize)]
struct JsonPush {
    streams: Vec<JsonStream>,
}

#[derive(Deserialize)]
struct JsonStream {
    /// Current shape: labels as an object, entries as `[ts, line, metadata?]` arrays.
    stream: Option<Map<String, Value>>,
    values: Option<Vec<Value>>,
    /// Older shape: labels as a label string, entries as objects.
    labels: Option<String>,
    entries: Option<Vec<Value>>,
}

/// Decodes a JSON push body (already uncompressed).
pub fn decode_json(body: &[u8], service: &str) -> Result<Decoded, Reject> {
    let req: JsonPush = serde_json::from_slice(body)
        .map_err(|e| Reject::BadRequest(format!("not a Loki JSON push body: {e}")))?;
    let mut out = Decoded::default();
    for (n, stream) in req.streams.into_iter().enumerate() {
        let pairs = match (&stream.stream, &stream.labels) {
            (Some(map), _) => map
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => Ok((k.clone(), s.clone())),
                    Value::Number(x) => Ok((k.clone(), x.to_string())),
                    _ => Err(format!("label {k:?} is not a string")),
                })
                .collect::<Result<Vec<_>, _>>(),
            (None, Some(text)) => parse_labels(text),
            (None, None) => Ok(Vec::new()),
        };
        let count = stream.values.as_ref().map_or(0, Vec::len)
            + stream.entries.as_ref().map_or(0, Vec::len);
        out.entries += count as u64;
        let labels = match pairs {
            Ok(p) => StreamLabels::new(p),
            Err(why) => {
                for _ in 0..count {
                    out.reject(format!("stream {n}: {why}"));
                }
                continue;
            }
        };
        let entries = stream.values.into_iter().flatten().map(json_value_entry);
        let old = stream.entries.into_iter().flatten().map(json_old_entry);
        for (i, entry) in entries.chain(old).enumerate() {
            let at = || format!("stream {} entry {i}", clip(&labels.raw));
            match entry {
                Ok((ts, line, metadata)) => out.push(&labels, ts, &line, metadata, service, &at),
                Err(why) => out.reject(format!("{}: {why}", at())),
            }
        }
    }
    Ok(out)
}

type Entry = (DateTime<Utc>, String, Vec<(String, String)>);

/// `["<unix ns>", "line", {metadata}?]`.
fn json_value_entry(v: Value) -> Result<Entry, String> {
    let Value::Array(items) = v else {
        return Err("entry is not an array [timestamp, line]".into());
    };
    let mut items = items.into_iter();
    let ts = match items.next() {
        Some(Value::String(s)) => s.trim().parse::<i64>().ok(),
        Some(Value::Number(n)) => n.as_i64(),
        _ => None,
    }
    .map(DateTime::from_timestamp_nanos)
    .ok_or("timestamp is not a number of nanoseconds")?;
    let Some(Value::String(line)) = items.next() else {
        return Err("line is not a string".into());
    };
    let mut metadata = Vec::new();
    match items.next() {
        None | Some(Value::Null) => {}
        Some(Value::Object(map)) => {
            // A query response's shape nests it; a push's is flat (Loki reads both).
            let map = match map.get("structuredMetadata") {
                Some(Value::Object(inner)) => inner.clone(),
                _ => map,
            };
            for (k, v) in map {
                match v {
                    Value::String(s) => metadata.push((k, s)),
                    Value::Number(x) => metadata.push((k, x.to_string())),
                    Value::Object(_) => {}
                    _ => return Err(format!("structured metadata {k:?} is not a string")),
                }
            }
        }
        Some(_) => return Err("structured metadata is not an object".into()),
    }
    Ok((ts, line, metadata))
}

/// `{"ts": "<RFC 3339>", "line": "..."}` (the older shape).
fn json_old_entry(v: Value) -> Result<Entry, String> {
    let Value::Object(mut map) = v else {
        return Err("entry is not an object {ts, line}".into());
    };
    let ts = match map.get("ts") {
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| format!("timestamp {s:?} is not RFC 3339"))?,
        None => Utc::now(),
        Some(_) => return Err("timestamp is not a string".into()),
    };
    let Some(Value::String(line)) = map.remove("line") else {
        return Err("line is not a string".into());
    };
    Ok((ts, line, Vec::new()))
}

/// A stream's labels, sorted into what they say.
#[derive(Debug, Default)]
struct StreamLabels {
    service: Option<String>,
    level: Option<Level>,
    host: Option<String>,
    attrs: Map<String, Value>,
    /// The labels as text, for reasons.
    raw: String,
}

impl StreamLabels {
    fn new(pairs: Vec<(String, String)>) -> StreamLabels {
        let mut s = StreamLabels {
            raw: format!(
                "{{{}}}",
                pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={v:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            ..StreamLabels::default()
        };
        let mut rest: Map<String, Value> = Map::new();
        for (k, v) in pairs {
            rest.insert(k, Value::String(v));
        }
        let take = |rest: &mut Map<String, Value>, names: &[&str], ok: &dyn Fn(&str) -> bool| {
            names.iter().find_map(|n| match rest.get(*n) {
                Some(Value::String(v)) if ok(v) => {
                    let v = v.clone();
                    rest.remove(*n);
                    Some(v)
                }
                _ => None,
            })
        };
        s.service = take(&mut rest, &SERVICE_LABELS, &|v| {
            !v.is_empty() && v != UNKNOWN_SERVICE
        });
        s.level = take(&mut rest, &LEVEL_LABELS, &|v| {
            Level::parse_loose(v).is_some()
        })
        .and_then(|v| Level::parse_loose(&v));
        s.host = take(&mut rest, &HOST_LABELS, &|v| !v.is_empty());
        s.attrs = rest;
        s
    }
}

impl Decoded {
    /// Reads one entry's line under its stream's labels and metadata.
    fn push(
        &mut self,
        labels: &StreamLabels,
        ts: DateTime<Utc>,
        line: &str,
        metadata: Vec<(String, String)>,
        service: &str,
        at: &dyn Fn() -> String,
    ) {
        let line = line.strip_suffix('\n').unwrap_or(line);
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() {
            self.blank += 1;
            return;
        }
        let mut attrs = labels.attrs.clone();
        let (mut trace_id, mut span_id) = (None, None);
        for (k, v) in metadata {
            match k.as_str() {
                "trace_id" if trace_id.is_none() => trace_id = Some(v),
                "span_id" if span_id.is_none() => span_id = Some(v),
                _ => {
                    attrs.insert(k, Value::String(v));
                }
            }
        }
        let env = Envelope {
            format: "loki",
            text: Cow::Borrowed(line),
            ts: Some(ts),
            level: labels.level,
            service: labels.service.clone(),
            host: labels.host.clone(),
            attrs,
            stream: None,
            partial: false,
            ..Envelope::default()
        };
        let ctx = LineContext {
            service,
            now: ts,
            level: None,
            // Loki entries carry their own time; a line's zone-less time is read as UTC.
            zone: &crate::ingest::timestamp::UTC,
        };
        match envelope::read(Format::Auto, env, &ctx) {
            Ok(mut parsed) => {
                if let Some(log) = &mut parsed.log {
                    fill_or_keep(log, "trace_id", trace_id, |l| &mut l.trace_id);
                    fill_or_keep(log, "span_id", span_id, |l| &mut l.span_id);
                }
                self.rows.push(parsed);
            }
            Err(why) => self.reject(format!("{}: {why}", at())),
        }
    }
}

/// Puts a metadata id into its column when the line gave none, else keeps it in attrs.
fn fill_or_keep(
    log: &mut crate::ingest::record::LogRecord,
    key: &str,
    value: Option<String>,
    column: impl Fn(&mut crate::ingest::record::LogRecord) -> &mut Option<String>,
) {
    let Some(value) = value else { return };
    let col = column(log);
    if col.is_none() {
        *col = Some(value);
        return;
    }
    if col.as_deref() == Some(value.as_str()) {
        return;
    }
    let attrs = log.attrs.get_or_insert_with(|| Value::Object(Map::new()));
    if let Some(map) = attrs.as_object_mut() {
        map.entry(key.to_string()).or_insert(Value::String(value));
    }
}

fn clip(s: &str) -> String {
    crate::ingest::pipeline::clip(s, 80)
}

/// Parses a stream's labels in Prometheus's syntax: `{job="x", level="error"}` (names bare
/// or quoted, values quoted with `"`, `'` or backticks, Go's escapes inside the first two).
pub fn parse_labels(text: &str) -> Result<Vec<(String, String)>, String> {
    let bad = |why: &str| format!("labels {}: {why}", clip(text));
    let mut rest = text.trim();
    rest = rest
        .strip_prefix('{')
        .ok_or_else(|| bad("do not start with '{'"))?;
    let mut out = Vec::new();
    loop {
        rest = rest.trim_start();
        if let Some(after) = rest.strip_prefix('}') {
            if !after.trim().is_empty() {
                return Err(bad("text after the closing '}'"));
            }
            return Ok(out);
        }
        let name;
        if rest.starts_with(['"', '\'', '`']) {
            let (n, after) = quoted(rest).map_err(|w| bad(&w))?;
            name = n;
            rest = after;
        } else {
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':' || c == '.'))
                .unwrap_or(rest.len());
            if end == 0 || rest.as_bytes()[0].is_ascii_digit() {
                return Err(bad("expected a label name"));
            }
            name = rest[..end].to_string();
            rest = &rest[end..];
        }
        rest = rest
            .trim_start()
            .strip_prefix('=')
            .ok_or_else(|| bad(&format!("expected '=' after {name}")))?;
        if rest.starts_with(['~', '=']) {
            return Err(bad("only '=' is allowed in a stream's labels"));
        }
        let (value, after) = quoted(rest.trim_start()).map_err(|w| bad(&w))?;
        out.push((name, value));
        rest = after.trim_start();
        if let Some(after) = rest.strip_prefix(',') {
            rest = after;
        } else if !rest.starts_with('}') {
            return Err(bad("expected ',' or '}'"));
        }
    }
}

/// A quoted string at the start of `s` and what follows it.
fn quoted(s: &str) -> Result<(String, &str), String> {
    let mut chars = s.char_indices();
    let Some((_, q @ ('"' | '\'' | '`'))) = chars.next() else {
        return Err("expected a quoted value".into());
    };
    let mut out = String::new();
    while let Some((i, c)) = chars.next() {
        if c == q {
            return Ok((out, &s[i + 1..]));
        }
        if c != '\\' || q == '`' {
            out.push(c);
            continue;
        }
        let Some((_, e)) = chars.next() else { break };
        let hex = |chars: &mut std::str::CharIndices, n: usize| -> Result<char, String> {
            let digits: String = chars.by_ref().take(n).map(|(_, c)| c).collect();
            u32::from_str_radix(&digits, 16)
                .ok()
                .filter(|_| digits.len() == n)
                .and_then(char::from_u32)
                .ok_or_else(|| format!("bad escape \\{e}{digits}"))
        };
        out.push(match e {
            'a' => '\u{7}',
            'b' => '\u{8}',
            'f' => '\u{c}',
            'n' => '\n',
            'r' => '\r',
            't' => '\t',
            'v' => '\u{b}',
            '\\' | '"' | '\'' => e,
            'x' => hex(&mut chars, 2)?,
            'u' => hex(&mut chars, 4)?,
            'U' => hex(&mut chars, 8)?,
            other => return Err(format!("unknown escape \\{other}")),
        });
    }
    Err("unterminated quoted value".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;

    fn entry(secs: i64, line: &[u8], meta: &[(&str, &str)]) -> proto::EntryAdapter {
        proto::EntryAdapter {
            timestamp: Some(proto::Timestamp {
                seconds: secs,
                nanos: 5,
            }),
            line: line.to_vec(),
            structured_metadata: meta
                .iter()
                .map(|(n, v)| proto::LabelPairAdapter {
                    name: n.as_bytes().to_vec(),
                    value: v.as_bytes().to_vec(),
                })
                .collect(),
        }
    }

    fn push(streams: Vec<(&str, Vec<proto::EntryAdapter>)>) -> Vec<u8> {
        let req = proto::PushRequest {
            streams: streams
                .into_iter()
                .map(|(l, e)| proto::StreamAdapter {
                    labels: l.as_bytes().to_vec(),
                    entries: e,
                    hash: 0,
                })
                .collect(),
            format: Vec::new(),
        };
        snap::raw::Encoder::new()
            .compress_vec(&req.encode_to_vec())
            .unwrap()
    }

    fn log(p: &Parsed) -> &crate::ingest::record::LogRecord {
        p.log.as_ref().unwrap()
    }

    #[test]
    fn labels_parse_like_prometheus() {
        let l = parse_labels(
            r#"{job="varlogs", level="error",filename="/var/log/a\"b\\c\n",  "k.8s"='x'}"#,
        )
        .unwrap();
        assert_eq!(
            l,
            vec![
                ("job".into(), "varlogs".into()),
                ("level".into(), "error".into()),
                ("filename".into(), "/var/log/a\"b\\c\n".into()),
                ("k.8s".into(), "x".into()),
            ]
        );
        assert_eq!(parse_labels("{}").unwrap(), vec![]);
        assert_eq!(
            parse_labels(" { a = `r\\aw` , } ").unwrap(),
            vec![("a".into(), "r\\aw".into())]
        );
        assert_eq!(
            parse_labels(r#"{a="\u00e9\x41"}"#).unwrap(),
            vec![("a".into(), "éA".into())]
        );
        for bad in [
            "job=\"x\"",
            "{job=\"x\"",
            "{job=~\"x\"}",
            "{job=\"x\" level=\"y\"}",
            "{=\"x\"}",
            "{1a=\"x\"}",
            "{a=\"\\q\"}",
            "{a=\"x\"} tail",
        ] {
            assert!(parse_labels(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn protobuf_streams_become_rows_with_labels_under_the_line() {
        let body = push(vec![(
            r#"{job="varlogs", app="checkout", level="warn", hostname="web-1", filename="/var/log/app.log"}"#,
            vec![
                entry(
                    1_700_000_000,
                    b"payment retried",
                    &[
                        ("trace_id", "4bf92f3577b34da6a3ce929d0e0e4736"),
                        ("user", "u1"),
                    ],
                ),
                entry(
                    1_700_000_001,
                    br#"{"level":"error","msg":"card declined","service":"payments","order":7}"#,
                    &[],
                ),
                entry(
                    1_700_000_002,
                    b"level=debug msg=\"cache miss\" key=k1\n",
                    &[],
                ),
            ],
        )]);
        let raw = body::snappy(&body, 1 << 20).unwrap();
        let d = decode_protobuf(&raw, "loki").unwrap();
        assert_eq!((d.entries, d.rejected, d.rows.len()), (3, 0, 3));

        let a = log(&d.rows[0]);
        assert_eq!(a.ts, DateTime::from_timestamp(1_700_000_000, 5).unwrap());
        assert_eq!(a.service, "checkout", "app comes before job");
        assert_eq!(a.level, Level::Warn);
        assert_eq!(a.host.as_deref(), Some("web-1"));
        assert_eq!(a.message, "payment retried");
        assert_eq!(
            a.trace_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        let attrs = a.attrs.as_ref().unwrap();
        assert_eq!(attrs["job"], "varlogs");
        assert_eq!(attrs["filename"], "/var/log/app.log");
        assert_eq!(attrs["user"], "u1");
        assert!(attrs.get("app").is_none() && attrs.get("level").is_none());
        assert_eq!(d.rows[0].format, "loki");

        // The JSON line's own fields win; the labels fill the rest.
        let b = log(&d.rows[1]);
        assert_eq!((b.level, b.service.as_str()), (Level::Error, "payments"));
        assert_eq!(b.message, "card declined");
        assert_eq!(b.host.as_deref(), Some("web-1"));
        assert_eq!(b.attrs.as_ref().unwrap()["order"], 7);

        let c = log(&d.rows[2]);
        assert_eq!((c.level, c.message.as_str()), (Level::Debug, "cache miss"));
        assert_eq!(c.attrs.as_ref().unwrap()["key"], "k1");
    }

    #[test]
    fn one_bad_entry_is_rejected_alone() {
        let body = push(vec![
            (
                r#"{service_name="api"}"#,
                vec![
                    entry(1_700_000_000, b"good one", &[]),
                    entry(1_700_000_000, b"bad \xff\xfe line", &[]),
                    entry(1_700_000_000, b"", &[]),
                    proto::EntryAdapter {
                        timestamp: Some(proto::Timestamp {
                            seconds: 1,
                            nanos: -1,
                        }),
                        ..entry(0, b"x", &[])
                    },
                    entry(1_700_000_001, b"good two", &[]),
                ],
            ),
            ("{broken", vec![entry(1, b"lost", &[])]),
        ]);
        let d = decode_protobuf(&body::snappy(&body, 1 << 20).unwrap(), "loki").unwrap();
        assert_eq!((d.entries, d.rows.len(), d.blank, d.rejected), (6, 2, 1, 3));
        assert!(d.rejects[0].contains("not valid UTF-8"), "{:?}", d.rejects);
        assert!(d.rejects[1].contains("timestamp out of range"));
        assert!(d.rejects[2].contains("{broken"));
        assert_eq!(log(&d.rows[1]).message, "good two");
        assert_eq!(log(&d.rows[1]).service, "api");
    }

    #[test]
    fn bodies_that_are_not_push_requests_are_refused() {
        assert!(matches!(
            decode_protobuf(b"\x0a\xff\x01garbage", "l"),
            Err(Reject::BadRequest(_))
        ));
        assert!(matches!(
            decode_json(b"{\"streams\":", "l"),
            Err(Reject::BadRequest(_))
        ));
        assert!(matches!(
            decode_json(b"{\"streams\":[{\"values\":[[\"1\",\"\xff\"]]}]}", "l"),
            Err(Reject::BadRequest(_))
        ));
    }

    #[test]
    fn json_push_with_metadata_and_the_older_shape() {
        let body = br#"{"streams":[
            {"stream":{"job":"batch","severity":"error","instance":"10.0.0.5:9100"},
             "values":[["1700000000000000123","export failed",{"trace_id":"abc","tenant":"t1"}],
                       ["1700000000000000124","second"],
                       [1700000000000000125,"numeric ts"],
                       ["soon","bad ts"],
                       "not an array"]},
            {"labels":"{severity=\"info\", logger=\"app.db\"}",
             "entries":[{"ts":"2024-05-01T10:00:00.5Z","line":"connected"},{"ts":"yesterday","line":"x"}]}]}"#;
        let d = decode_json(body, "loki").unwrap();
        assert_eq!(
            (d.entries, d.rows.len(), d.rejected),
            (7, 4, 3),
            "{:?}",
            d.rejects
        );
        let a = log(&d.rows[0]);
        assert_eq!(
            a.ts,
            DateTime::from_timestamp_nanos(1_700_000_000_000_000_123)
        );
        assert_eq!((a.service.as_str(), a.level), ("batch", Level::Error));
        assert_eq!(a.host.as_deref(), Some("10.0.0.5:9100"));
        assert_eq!(a.trace_id.as_deref(), Some("abc"));
        assert_eq!(a.attrs.as_ref().unwrap()["tenant"], "t1");
        let old = log(&d.rows[3]);
        assert_eq!(old.message, "connected");
        assert_eq!(old.service, "loki", "no service label: the default");
        assert_eq!(old.level, Level::Info);
        assert_eq!(old.attrs.as_ref().unwrap()["logger"], "app.db");
        assert_eq!(old.ts.timestamp_millis(), 1_714_557_600_500);
    }
}
