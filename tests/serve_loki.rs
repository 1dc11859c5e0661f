//! `opsdash serve`'s Loki push route, the real binary on a real PostgreSQL, with pushes as the
//! clients make them: protobuf encoded by protoc's classes for Loki's own `push.proto` and
//! snappy-compressed (as Promtail and Alloy send), JSON from `python-logging-loki` (PyPI) in
//! both of its shapes, gzip'd JSON; and bad input: a malformed protobuf, a wrong content type,
//! a snappy bomb and a line that is not UTF-8, each with its status code and counted, the good
//! entries of the same batch stored.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

use common::serve::Server;
use opsdash::db::testkit::TestDb;
use opsdash::model::Level;
use opsdash::serve::loki::proto;
use prost::Message;
use serde_json::{json, Value};

/// The venv `.ci/setup` makes (python-logging-loki, grpcio-tools).
const VENV_PYTHON: &str = "/opt/opsdash-venv/bin/python";

fn fixtures() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/loki"))
}

/// A PushRequest encoded from `spec` by `encode_push.py` (protoc + Google's runtime), then
/// compressed with snappy's block format as Loki's clients do.
fn encode_with_protoc(spec: &Value) -> Vec<u8> {
    let mut child = Command::new(VENV_PYTHON)
        .arg(fixtures().join("encode_push.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the venv's python (run .ci/setup)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(spec.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "encode_push.py: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    snap::raw::Encoder::new().compress_vec(&out.stdout).unwrap()
}

type Row = (
    String,
    i16,
    Option<String>,
    String,
    Option<String>,
    Option<Value>,
);

async fn row(pool: &sqlx::PgPool, message_like: &str) -> Row {
    sqlx::query_as(
        "SELECT service, level, host, message, trace_id, attrs FROM opsdash.log_event \
         WHERE message LIKE $1",
    )
    .bind(message_like)
    .fetch_one(pool)
    .await
    .unwrap_or_else(|e| panic!("no row like {message_like:?}: {e}"))
}

async fn count(pool: &sqlx::PgPool) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM opsdash.log_event")
        .fetch_one(pool)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_push_encoded_from_lokis_push_proto() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&t.url().unwrap(), dir.path(), "", &[]);
    let spec = json!({"streams": [
        {"labels": "{job=\"varlogs\", app=\"checkout\", level=\"warn\", hostname=\"web-1\", filename=\"/var/log/checkout.log\"}",
         "entries": [
            {"seconds": 1_780_000_000, "nanos": 250_000_000, "line": "payment retried for order 7",
             "metadata": {"trace_id": "4bf92f3577b34da6a3ce929d0e0e4736", "pod": "checkout-5d9"}},
            {"seconds": 1_780_000_001, "nanos": 0,
             "line": "{\"level\":\"error\",\"msg\":\"card declined\",\"service\":\"payments\",\"order\":7}"},
            {"seconds": 1_780_000_002, "nanos": 0, "line": "level=debug msg=\"cache miss\" key=k1 password=hunter2"}
         ]},
        {"labels": "{service_name=\"auth\", detected_level=\"error\", instance=\"10.0.0.5:9100\"}",
         "entries": [{"seconds": 1_780_000_003, "nanos": 0, "line": "login failed"}]}
    ]});
    let body = encode_with_protoc(&spec);
    let http = reqwest::Client::new();
    let resp = http
        .post(server.url("/loki/api/v1/push"))
        .header("content-type", "application/x-protobuf")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 204, "{}", server.log());
    // Committed before the answer.
    let pool = &t.db.write;
    assert_eq!(count(pool).await, 4);

    let (service, level, host, _, trace, attrs) = row(pool, "payment retried%").await;
    assert_eq!(service, "checkout", "app is preferred to job");
    assert_eq!(level, Level::Warn.as_i16());
    assert_eq!(host.as_deref(), Some("web-1"));
    assert_eq!(trace.as_deref(), Some("4bf92f3577b34da6a3ce929d0e0e4736"));
    let attrs = attrs.unwrap();
    assert_eq!(attrs["job"], "varlogs");
    assert_eq!(attrs["filename"], "/var/log/checkout.log");
    assert_eq!(attrs["pod"], "checkout-5d9", "structured metadata kept");
    let ts: chrono::DateTime<chrono::Utc> = sqlx::query_scalar(
        "SELECT ts FROM opsdash.log_event WHERE message LIKE 'payment retried%'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(ts.timestamp_millis(), 1_780_000_000_250);

    // The JSON line keeps its own fields; the labels fill in the host.
    let (service, level, host, _, _, attrs) = row(pool, "card declined").await;
    assert_eq!(
        (service.as_str(), level),
        ("payments", Level::Error.as_i16())
    );
    assert_eq!(host.as_deref(), Some("web-1"));
    assert_eq!(attrs.unwrap()["order"], 7);

    // logfmt too, and redaction as in file ingest.
    let (_, level, _, message, _, attrs) = row(pool, "cache miss").await;
    assert_eq!(level, Level::Debug.as_i16());
    assert_eq!(message, "cache miss");
    let attrs = attrs.unwrap();
    assert_eq!(attrs["key"], "k1");
    assert!(
        !attrs.to_string().contains("hunter2"),
        "redacted before storing: {attrs}"
    );

    let (service, level, host, ..) = row(pool, "login failed").await;
    assert_eq!(
        (service.as_str(), level, host.as_deref()),
        ("auth", Level::Error.as_i16(), Some("10.0.0.5:9100"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_logging_loki_pushes_json_in_both_shapes() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&t.url().unwrap(), dir.path(), "", &[]);
    for version in ["1", "0"] {
        let out = Command::new(VENV_PYTHON)
            .arg(fixtures().join("python_logging_loki.py"))
            .arg(server.url("/loki/api/v1/push"))
            .arg(version)
            .output()
            .expect("the venv's python (run .ci/setup)");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success() && !stderr.contains("Traceback"),
            "python-logging-loki v{version}: {stderr}\n{}",
            server.log()
        );
    }
    let pool = &t.db.write;
    assert_eq!(count(pool).await, 6, "{}", server.log());
    for version in ["1", "0"] {
        let (service, level, _, message, _, attrs) =
            row(pool, &format!("invoice INV-7 failed v{version}")).await;
        assert_eq!(service, "billing", "the `application` tag");
        assert_eq!(level, Level::Error.as_i16(), "the `severity` tag");
        assert_eq!(message, format!("invoice INV-7 failed v{version}"));
        let attrs = attrs.unwrap();
        assert_eq!(attrs["logger"], "billing.invoices");
        assert_eq!(attrs["tenant"], "acme", "a record's extra tags");

        let (_, level, _, _, _, attrs) =
            row(pool, &format!("json line from python v{version}")).await;
        assert_eq!(level, Level::Warn.as_i16());
        assert_eq!(attrs.unwrap()["order"], 12, "the JSON line's own fields");
    }
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM opsdash.log_event WHERE message LIKE '%hunter2%' \
         OR attrs::text LIKE '%hunter2%'",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(leaked, 0, "redaction as in file ingest");
}

fn entry(seconds: i64, line: &[u8]) -> proto::EntryAdapter {
    proto::EntryAdapter {
        timestamp: Some(proto::Timestamp { seconds, nanos: 0 }),
        line: line.to_vec(),
        structured_metadata: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_pushes_get_their_status_and_good_entries_are_kept() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A small decompressed limit, so a bomb is easy to make.
    let server = Server::start(
        &t.url().unwrap(),
        dir.path(),
        "[server]\ndecompressed_limit = 1048576\n",
        &[],
    );
    let http = reqwest::Client::new();
    let url = server.url("/loki/api/v1/push");
    let pool = &t.db.write;

    // Valid snappy around bytes that are no PushRequest.
    let garbage = snap::raw::Encoder::new()
        .compress_vec(b"\x0a\xff\xff\xff\x0fnot a protobuf")
        .unwrap();
    let resp = http
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(garbage)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp.text().await.unwrap().contains("PushRequest"));

    // Protobuf that is not snappy-compressed at all.
    let raw = proto::PushRequest {
        streams: vec![proto::StreamAdapter {
            labels: b"{job=\"x\"}".to_vec(),
            entries: vec![entry(1_780_000_000, b"uncompressed")],
            hash: 0,
        }],
        format: Vec::new(),
    }
    .encode_to_vec();
    let resp = http
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(raw)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);

    let resp = http
        .post(&url)
        .header("content-type", "text/plain")
        .body("hello")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 415);

    // 8 MiB of one byte: a few hundred KB compressed, refused from snappy's length header.
    let bomb = snap::raw::Encoder::new()
        .compress_vec(&vec![b'a'; 8 << 20])
        .unwrap();
    assert!(bomb.len() < 1 << 20);
    let resp = http
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert_eq!(count(pool).await, 0, "nothing stored from refused bodies");

    // One line is not UTF-8: it alone is refused, counted in the answer; the rest is stored.
    let mixed = proto::PushRequest {
        streams: vec![
            proto::StreamAdapter {
                labels: b"{service=\"api\"}".to_vec(),
                entries: vec![
                    entry(1_780_000_000, b"good before"),
                    entry(1_780_000_001, b"broken \xff\xfe bytes"),
                    entry(1_780_000_002, b"good after"),
                ],
                hash: 0,
            },
            proto::StreamAdapter {
                labels: b"{service=\"api\"".to_vec(),
                entries: vec![entry(1_780_000_003, b"labels never closed")],
                hash: 0,
            },
        ],
        format: Vec::new(),
    };
    let body = snap::raw::Encoder::new()
        .compress_vec(&mixed.encode_to_vec())
        .unwrap();
    let resp = http
        .post(&url)
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "snappy")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    let text = resp.text().await.unwrap();
    assert!(text.contains("2 of 4 entries rejected"), "{text}");
    assert!(text.contains("not valid UTF-8"), "{text}");
    assert_eq!(count(pool).await, 2);
    row(pool, "good before").await;
    row(pool, "good after").await;

    // JSON, gzip'd as Fluent Bit and Vector may send it.
    let json_body = json!({"streams": [{"stream": {"container": "worker", "level": "info"},
        "values": [["1780000010000000000", "gzip json line", {"trace_id": "abc123"}],
                   ["not a time", "bad ts"]]}]});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json_body.to_string().as_bytes()).unwrap();
    let resp = http
        .post(&url)
        .header("content-type", "application/json")
        .header("content-encoding", "gzip")
        .body(gz.finish().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
    assert!(resp
        .text()
        .await
        .unwrap()
        .contains("1 of 2 entries rejected"));
    let (service, _, _, _, trace, _) = row(pool, "gzip json line").await;
    assert_eq!(
        (service.as_str(), trace.as_deref()),
        ("worker", Some("abc123"))
    );

    let resp = http
        .post(&url)
        .header("content-type", "application/json")
        .body(b"{\"streams\":[{\"stream\":{},\"values\":[[\"1\",\"\xff\"]]}]}".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400, "JSON that is not UTF-8 is no JSON");
    assert_eq!(count(pool).await, 3);
}
