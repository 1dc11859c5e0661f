//! `opsdash serve`'s OTLP/HTTP routes with the real client: the real binary on a free port
//! against a throwaway database, and the OpenTelemetry Python SDK's own exporters (logs with a
//! trace context, a SERVER span with a CLIENT child and a database child) sending to it. Then
//! the other encodings and the failures: OTLP JSON, gzip, a malformed body (400, nothing
//! stored), a wrong content type (415), and partial success counts.
//!
//! The SDK lives in a venv made by `.ci/setup` (/opt/opsdash-venv, or OPSDASH_OTEL_VENV).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceResponse;
use opentelemetry_proto::tonic::common::v1::{any_value::Value as Any, AnyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use opsdash::db::testkit::TestDb;
use opsdash::query::trace::{self, TraceKind};
use prost::Message;
use sqlx::PgPool;

mod common;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/otlp")
        .join(name)
}

/// The venv's python, or a failure saying how to make it (never a silent skip).
fn sdk_python() -> PathBuf {
    let venv = std::env::var("OPSDASH_OTEL_VENV").unwrap_or_else(|_| "/opt/opsdash-venv".into());
    let python = Path::new(&venv).join("bin/python");
    let ok = Command::new(&python)
        .args([
            "-c",
            "import opentelemetry.sdk, opentelemetry.exporter.otlp.proto.http",
        ])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "the OpenTelemetry Python SDK is missing from {venv}: run `bash .ci/setup` (it makes \
         the venv with opentelemetry-sdk and opentelemetry-exporter-otlp-proto-http)"
    );
    python
}

struct Server {
    serve: common::serve::Server,
    tdb: TestDb,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> anyhow::Result<Server> {
        let tdb = TestDb::new().await?;
        let dir = tempfile::tempdir()?;
        let serve = common::serve::Server::start(&tdb.url()?, dir.path(), "", &[]);
        Ok(Server {
            serve,
            tdb,
            _dir: dir,
        })
    }

    fn pool(&self) -> &PgPool {
        &self.tdb.db.write
    }

    async fn post(
        &self,
        path: &str,
        content_type: &str,
        encoding: Option<&str>,
        body: Vec<u8>,
    ) -> reqwest::Response {
        let mut req = http()
            .post(self.serve.url(path))
            .header("Content-Type", content_type)
            .body(body);
        if let Some(e) = encoding {
            req = req.header("Content-Encoding", e);
        }
        req.send().await.expect("the server answers")
    }

    /// Runs the SDK script against the server; returns the ids it printed.
    fn send_with_sdk(&self, extra: &[&str]) -> serde_json::Value {
        let out = Command::new(sdk_python())
            .arg(fixture("send.py"))
            .arg(&self.serve.base)
            .args(extra)
            .output()
            .expect("python runs");
        assert!(
            out.status.success(),
            "send.py failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr),
            self.serve.log()
        );
        // The exporters log refusals on stderr and carry on: a refusal is a failure here.
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!err.contains("Failed to export"), "{err}");
        serde_json::from_slice(&out.stdout).expect("send.py prints its ids")
    }
}

/// An HTTP client whose requests cannot hang the test.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

async fn count(pool: &PgPool, sql: &str, trace_id: &str) -> i64 {
    sqlx::query_scalar(sql)
        .bind(trace_id)
        .fetch_one(pool)
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_logs_and_spans_arrive_and_nest() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let pool = server.pool();
    let ids = server.send_with_sdk(&[]);
    let trace_id = ids["trace_id"].as_str().expect("trace id");
    let id = |k: &str| ids[k].as_str().expect("span id").to_string();

    // A 2xx means committed: the SDK's shutdown waited for it, so the rows are there now.
    type LogRow = (
        i16,
        String,
        String,
        Option<String>,
        Option<String>,
        Option<String>,
    );
    let logs: Vec<LogRow> = sqlx::query_as(
        "SELECT level, service, message, host, span_id, error_type
           FROM opsdash.log_event WHERE trace_id = $1 ORDER BY ts",
    )
    .bind(trace_id)
    .fetch_all(pool)
    .await?;
    assert_eq!(logs.len(), 3, "{logs:?}\n{}", server.serve.log());
    let levels: Vec<i16> = logs.iter().map(|l| l.0).collect();
    assert_eq!(levels, [2, 3, 4]);
    let messages: Vec<&str> = logs.iter().map(|l| l.2.as_str()).collect();
    assert_eq!(
        messages,
        [
            "order 42 loaded",
            "payment gateway slow",
            "coupon lookup failed"
        ]
    );
    assert!(logs
        .iter()
        .all(|l| l.1 == "checkout" && l.3.as_deref() == Some("web-7")));
    assert_eq!(logs[0].4, Some(id("server")));
    assert_eq!(logs[1].4, Some(id("client")));
    assert_eq!(logs[2].5.as_deref(), Some("KeyError"));
    // The error made an error group, as from a file.
    let groups: i64 =
        sqlx::query_scalar("SELECT count(*) FROM opsdash.error_group WHERE service = 'checkout'")
            .fetch_one(pool)
            .await?;
    assert_eq!(groups, 1);

    type ReqRow = (String, String, String, i16, String, Option<String>);
    let reqs: Vec<ReqRow> = sqlx::query_as(
        "SELECT service, method, route, status, direction, integration
           FROM opsdash.request_log WHERE trace_id = $1 ORDER BY direction",
    )
    .bind(trace_id)
    .fetch_all(pool)
    .await?;
    assert_eq!(
        reqs,
        [
            (
                "checkout".into(),
                "GET".into(),
                "/orders/{id}".into(),
                200,
                "inbound".into(),
                None
            ),
            (
                "checkout".into(),
                "POST".into(),
                "/v1/charges".into(),
                502,
                "outbound".into(),
                Some("payments.internal".into())
            ),
        ]
    );
    let queries: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT service, database, query FROM opsdash.query_log WHERE trace_id = $1",
    )
    .bind(trace_id)
    .fetch_all(pool)
    .await?;
    assert_eq!(
        queries,
        [(
            "checkout".into(),
            Some("shop".into()),
            "SELECT * FROM orders WHERE id = $1".into()
        )]
    );

    // The trace view: the SERVER span at the root, its two children under it, each log line
    // under the span it was written in.
    let items = trace::trace(pool, trace_id, 100).await?;
    let shape: Vec<(TraceKind, &str, u16)> = items
        .iter()
        .map(|i| (i.kind, i.summary.as_str(), i.depth))
        .collect();
    assert_eq!(
        shape,
        [
            (TraceKind::Span, "GET /orders/{id}", 0),
            (TraceKind::Log, "order 42 loaded", 1),
            (TraceKind::Span, "POST", 1),
            (TraceKind::Log, "payment gateway slow", 2),
            (TraceKind::Span, "SELECT shop.orders", 1),
            (TraceKind::Log, "coupon lookup failed", 1),
        ],
        "{items:#?}"
    );
    assert!(items[2].failed, "the CLIENT span's status is ERROR");
    let (bars, total) = trace::waterfall(&items);
    assert!(bars[0].duration_ms > 0.0 && (total - bars[0].duration_ms).abs() < 1e-6);
    assert!(bars[2].offset_ms > 0.0 && bars[4].offset_ms > bars[2].offset_ms);

    // The same script with gzip bodies.
    let ids = server.send_with_sdk(&["--gzip", "--service", "billing"]);
    let gz_trace = ids["trace_id"].as_str().expect("trace id");
    let n = count(
        pool,
        "SELECT count(*) FROM opsdash.log_event WHERE trace_id = $1 AND service = 'billing'",
        gz_trace,
    )
    .await;
    assert_eq!(n, 3);
    let n = count(
        pool,
        "SELECT count(*) FROM opsdash.span WHERE trace_id = $1",
        gz_trace,
    )
    .await;
    assert_eq!(n, 3);
    Ok(())
}

fn record(message: &str, trace_id: Vec<u8>) -> LogRecord {
    LogRecord {
        time_unix_nano: 1_800_000_000_000_000_000,
        severity_number: 13,
        body: Some(AnyValue {
            value: Some(Any::StringValue(message.into())),
        }),
        trace_id,
        ..Default::default()
    }
}

fn logs_request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn all_rows(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM opsdash.log_event) + (SELECT count(*) FROM opsdash.span)
              + (SELECT count(*) FROM opsdash.request_log) + (SELECT count(*) FROM opsdash.query_log)",
    )
    .fetch_one(pool)
    .await
    .expect("counts")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_gzip_bad_bodies_and_partial_success() -> anyhow::Result<()> {
    let server = Server::start().await?;
    let pool = server.pool();
    let ids: serde_json::Value = serde_json::from_slice(&std::fs::read(fixture("ids.json"))?)?;
    let trace_id = ids["trace_id"].as_str().expect("trace id");

    // OTLP JSON (the SDK's capture in OTLP's JSON encoding): answered in JSON.
    let r = server
        .post(
            "/v1/logs",
            "application/json",
            None,
            std::fs::read(fixture("logs.json"))?,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let body: ExportLogsServiceResponse = serde_json::from_slice(&r.bytes().await?)?;
    assert_eq!(body.partial_success, None);
    let n = count(
        pool,
        "SELECT count(*) FROM opsdash.log_event WHERE trace_id = $1",
        trace_id,
    )
    .await;
    assert_eq!(n, 3);
    let traces = std::fs::read(fixture("traces.json"))?;
    let r = server
        .post("/v1/traces", "application/json", None, traces.clone())
        .await;
    assert_eq!(r.status(), 200);
    let body: ExportTraceServiceResponse = serde_json::from_slice(&r.bytes().await?)?;
    assert_eq!(body.partial_success, None);
    // A retried export stores no span twice.
    let r = server
        .post("/v1/traces", "application/json", None, traces)
        .await;
    assert_eq!(r.status(), 200);
    let n = count(
        pool,
        "SELECT count(*) FROM opsdash.span WHERE trace_id = $1",
        trace_id,
    )
    .await;
    assert_eq!(n, 3);

    // gzip protobuf (the SDK's own gzip capture): answered in protobuf.
    let r = server
        .post(
            "/v1/logs",
            "application/x-protobuf",
            Some("gzip"),
            std::fs::read(fixture("logs.pb.gz"))?,
        )
        .await;
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/x-protobuf");
    let body = ExportLogsServiceResponse::decode(r.bytes().await?)?;
    assert_eq!(body.partial_success, None);
    let billing: i64 =
        sqlx::query_scalar("SELECT count(*) FROM opsdash.log_event WHERE service = 'billing'")
            .fetch_one(pool)
            .await?;
    assert_eq!(billing, 3);

    // Malformed protobuf and JSON: 400, nothing stored.
    let before = all_rows(pool).await;
    for (path, ct, body) in [
        (
            "/v1/logs",
            "application/x-protobuf",
            b"\x0a\xff\xff\xff\x0f".to_vec(),
        ),
        (
            "/v1/traces",
            "application/x-protobuf",
            b"\x0a\x05\x0a\x03\x0a".to_vec(),
        ),
        (
            "/v1/logs",
            "application/json",
            b"{\"resourceLogs\": [".to_vec(),
        ),
    ] {
        let r = server.post(path, ct, None, body).await;
        assert_eq!(r.status(), 400, "{path} {ct}");
        // The OTLP/HTTP specification: a google.rpc.Status in the request's own encoding.
        assert_eq!(r.headers()["content-type"], ct, "{path}");
        let bytes = r.bytes().await?;
        let status = if ct == "application/json" {
            serde_json::from_slice::<opsdash::serve::otlp::RpcStatus>(&bytes)?
        } else {
            opsdash::serve::otlp::RpcStatus::decode(bytes)?
        };
        assert_eq!(status.code, 3, "INVALID_ARGUMENT for {path} {ct}");
        assert!(
            status.message.contains("undecodable OTLP"),
            "{}",
            status.message
        );
    }
    // A gzip header over garbage is as bad as garbage.
    let r = server
        .post(
            "/v1/logs",
            "application/x-protobuf",
            Some("gzip"),
            b"\x1f\x8b\x08\x00junk".to_vec(),
        )
        .await;
    assert_eq!(r.status(), 400);
    let r = server
        .post("/v1/logs", "text/plain", None, b"hello".to_vec())
        .await;
    assert_eq!(r.status(), 415);
    assert_eq!(
        all_rows(pool).await,
        before,
        "a refused body stored nothing"
    );

    // Partial success: the bad record is counted and named, the good ones stored.
    let req = logs_request(vec![
        record("partial one", vec![]),
        record("partial bad", vec![1, 2, 3]),
        record("partial two", vec![9; 16]),
    ]);
    let r = server
        .post(
            "/v1/logs",
            "application/x-protobuf",
            None,
            req.encode_to_vec(),
        )
        .await;
    assert_eq!(r.status(), 200);
    let body = ExportLogsServiceResponse::decode(r.bytes().await?)?;
    let partial = body.partial_success.expect("a partial success");
    assert_eq!(partial.rejected_log_records, 1);
    assert!(
        partial
            .error_message
            .contains("log record 2: trace_id of 3 bytes"),
        "{}",
        partial.error_message
    );
    let stored: Vec<String> = sqlx::query_scalar(
        "SELECT message FROM opsdash.log_event WHERE message LIKE 'partial %' ORDER BY message",
    )
    .fetch_all(pool)
    .await?;
    assert_eq!(stored, ["partial one", "partial two"]);

    // The same in JSON for spans: a span without a trace id is rejected alone.
    let spans = serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [
        {"traceId": "", "spanId": "0102030405060708", "name": "lost",
         "startTimeUnixNano": "1800000000000000000", "endTimeUnixNano": "1800000000100000000"},
        {"traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
         "name": "kept", "kind": 2, "startTimeUnixNano": "1800000000000000000",
         "endTimeUnixNano": "1800000000100000000"}
    ]}]}]});
    let r = server
        .post(
            "/v1/traces",
            "application/json",
            None,
            serde_json::to_vec(&spans)?,
        )
        .await;
    assert_eq!(r.status(), 200);
    let body: ExportTraceServiceResponse = serde_json::from_slice(&r.bytes().await?)?;
    let partial = body.partial_success.expect("a partial success");
    assert_eq!(partial.rejected_spans, 1);
    assert!(
        partial.error_message.contains("span 1: no trace_id"),
        "{}",
        partial.error_message
    );
    let kept: Vec<(String, f64)> = sqlx::query_as(
        "SELECT name, duration_ms FROM opsdash.span WHERE trace_id = '5b8efff798038103d269b633813fc60c'",
    )
    .fetch_all(pool)
    .await?;
    assert_eq!(kept, [("kept".to_string(), 100.0)]);
    Ok(())
}
