//! `GET /metrics` of the real `opsdash serve` on a real PostgreSQL: after known requests the
//! record and request counters say what happened, per route and source; the database figures
//! (outbox, jobs, alerts) are there; and the whole page is valid Prometheus text format
//! (checked by `promtool check metrics` when Debian's prometheus package is installed, and by
//! this file's own reading of the format in any case).

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::serve::Server;
use opsdash::db::testkit::TestDb;
use sha2::{Digest, Sha256};

/// The samples of a text-format page by series (`name{labels}`), checking as it reads that
/// each line is a comment, or a sample of a family whose TYPE came first, with a number.
fn parse(page: &str) -> BTreeMap<String, f64> {
    let mut typed: BTreeSet<String> = BTreeSet::new();
    let mut samples = BTreeMap::new();
    for line in page.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split(' ');
            let name = parts.next().unwrap().to_string();
            let kind = parts.next().unwrap();
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(typed.insert(name), "family typed twice: {line}");
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        assert!(!line.starts_with('#'), "stray comment: {line}");
        let (series, value) = line.rsplit_once(' ').expect("series and value");
        let name = series.split('{').next().unwrap();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|f| typed.contains(*f)))
            .unwrap_or(name);
        assert!(typed.contains(family), "no TYPE before {line}");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "{line}"
        );
        if let Some(labels) = series.strip_prefix(name) {
            assert!(
                labels.is_empty() || (labels.starts_with('{') && labels.ends_with('}')),
                "{line}"
            );
        }
        let v: f64 = value.parse().unwrap_or_else(|_| panic!("value of {line}"));
        assert!(
            samples.insert(series.to_string(), v).is_none(),
            "twice: {line}"
        );
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_after_known_requests() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let digest = hex::encode(Sha256::digest(b"metrics-token-1"));
    let config = format!(
        "[[server.token]]\nname = \"web1\"\nsha256 = \"{digest}\"\nscopes = [\"ingest\"]\n"
    );
    let server = Server::start(&t.url().unwrap(), dir.path(), &config, &[]);
    let http = reqwest::Client::new();

    // Two requests: 3 good records, then 2 good and one that is no log record at all.
    let good = "{\"level\":\"info\",\"service\":\"m\",\"msg\":\"one\"}\n\
                {\"level\":\"warn\",\"service\":\"m\",\"msg\":\"two\"}\n\
                {\"level\":\"error\",\"service\":\"m\",\"msg\":\"three\"}\n";
    let r = http
        .post(server.url("/ingest"))
        .bearer_auth("metrics-token-1")
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "{}", server.log());
    let r = http
        .post(server.url("/ingest"))
        .bearer_auth("metrics-token-1")
        .header("content-type", "application/json")
        .body(r#"[{"level":"info","service":"m","msg":"four"}, 42, {"level":"info","service":"m","msg":"five"}]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let answer: serde_json::Value = r.json().await.unwrap();
    let rejected = answer["rejected"].as_u64().unwrap();
    // No token: 401, no records counted.
    let r = http
        .post(server.url("/ingest"))
        .body(good)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    let page = http.get(server.url("/metrics")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(page.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let page = page.text().await.unwrap();
    let m = parse(&page);
    let get = |k: &str| -> f64 { *m.get(k).unwrap_or_else(|| panic!("no {k} in\n{page}")) };
    let series = |kind: &str| {
        format!("opsdash_serve_records_{kind}_total{{route=\"/ingest\",source=\"web1\"}}")
    };
    assert_eq!(get(&series("received")), 6.0);
    assert_eq!(get(&series("rejected")), rejected as f64);
    assert_eq!(get(&series("stored")), 6.0 - rejected as f64);
    assert_eq!(get(&series("refused")), 0.0);
    assert_eq!(
        get("opsdash_serve_requests_total{route=\"/ingest\",code=\"200\"}"),
        2.0
    );
    assert_eq!(
        get("opsdash_serve_requests_total{route=\"/ingest\",code=\"401\"}"),
        1.0
    );
    assert_eq!(
        get("opsdash_serve_request_duration_seconds_count{route=\"/ingest\"}"),
        3.0
    );
    assert_eq!(
        get("opsdash_serve_request_duration_seconds_bucket{route=\"/ingest\",le=\"+Inf\"}"),
        3.0
    );
    assert_eq!(get("opsdash_serve_database_up"), 1.0);
    assert_eq!(get("opsdash_serve_queue_requests"), 0.0);
    assert_eq!(get("opsdash_metrics_database_read"), 1.0);
    assert_eq!(get("opsdash_outbox_messages{status=\"dead\"}"), 0.0);
    assert_eq!(get("opsdash_outbox_dead_letters"), 0.0);
    assert_eq!(get("opsdash_alerts{state=\"firing\"}"), 0.0);
    assert!(m.contains_key("opsdash_jobs_failing"));
    // The rows the counters speak of are in the database (a bare `42` is read as a plain line
    // of the token's default service, so rows are counted by the token that sent them).
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM opsdash.log_event WHERE attrs->>'opsdash.source' = 'web1'",
    )
    .fetch_one(&t.db.write)
    .await
    .unwrap();
    assert_eq!(stored as f64, get(&series("stored")));

    // A dead letter in the outbox shows at the next scrape.
    sqlx::query(
        "INSERT INTO opsdash.notification (channel, idempotency_key, status, attempts)
         VALUES ('hook', 'metrics-test-dead', 'dead', 5)",
    )
    .execute(&t.db.write)
    .await
    .unwrap();
    let page = http
        .get(server.url("/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let m = parse(&page);
    assert_eq!(m.get("opsdash_outbox_dead_letters"), Some(&1.0), "{page}");
    assert_eq!(
        m.get("opsdash_serve_requests_total{route=\"/metrics\",code=\"200\"}"),
        Some(&1.0)
    );

    // The real parser, where installed.
    if let Ok(out) = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(page.as_bytes())?;
            child.wait_with_output()
        })
    {
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // promtool's lint warnings (naming advice) are not format errors: only "error" fails.
        assert!(
            !text.to_lowercase().contains("error"),
            "promtool check metrics: {text}\n{page}"
        );
    }
}
