//! `opsdash serve` with its NDJSON route, the real binary on a real PostgreSQL: records are
//! stored (committed) before the 200, bad records are counted and the good ones of the same
//! request kept, tokens are checked, and a decompression bomb is refused without being expanded.

mod common;

use std::io::Write;

use common::serve::Server;
use opsdash::db::testkit::TestDb;
use sha2::{Digest, Sha256};

async fn count(pool: &sqlx::PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ndjson_records_are_committed_before_the_answer() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(&t.url().unwrap(), dir.path(), "", &[]);
    let http = reqwest::Client::new();

    let health = http.get(server.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let ready = http.get(server.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 200, "{}", server.log());

    let body = concat!(
        r#"{"ts":"2026-12-07T10:00:00Z","level":"error","service":"checkout","msg":"payment declined","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736"}"#,
        "\n",
        "time=2026-12-07T10:00:01Z level=warn service=cart msg=\"slow cart\"\n",
        "\n",
        r#"{"ts":"2026-12-07T10:00:02Z","level":"info","service":"checkout","msg":"password=hunter2 accepted"}"#,
        "\n"
    );
    let resp = http
        .post(server.url("/ingest"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{}", server.log());
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(answer["accepted"], 3, "{answer}");
    assert_eq!(answer["rejected"], 0, "{answer}");
    // Committed before the answer: no waiting here.
    let pool = &t.db.write;
    assert_eq!(
        count(pool, "SELECT count(*) FROM opsdash.log_event").await,
        3
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM opsdash.log_event WHERE service = 'checkout' AND level = 4 \
             AND trace_id = '4bf92f3577b34da6a3ce929d0e0e4736'"
        )
        .await,
        1
    );
    assert_eq!(
        count(
            pool,
            "SELECT count(*) FROM opsdash.log_event WHERE message LIKE '%hunter2%'"
        )
        .await,
        0,
        "the secret is redacted as in file ingest"
    );

    // A JSON array, one element of which is no log line at all.
    let resp = http
        .post(server.url("/ingest"))
        .header("content-type", "application/json")
        .body(r#"[{"level":"info","service":"web","msg":"array one"}, 42, "plain text line"]"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let answer: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(
        answer["accepted"].as_u64().unwrap() + answer["rejected"].as_u64().unwrap(),
        3,
        "{answer}"
    );
    assert!(
        count(
            pool,
            "SELECT count(*) FROM opsdash.log_event WHERE message = 'array one'"
        )
        .await
            == 1
    );

    // Not JSON at all where JSON was promised.
    let resp = http
        .post(server.url("/ingest"))
        .body("[not json")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_and_bombs() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let digest = hex::encode(Sha256::digest(b"s3cret-token"));
    let config = format!(
        "[server]\ndecompressed_limit = 1048576\n\n[[server.token]]\nname = \"web1\"\nsha256 = \"{digest}\"\nscopes = [\"ingest\"]\n"
    );
    let server = Server::start(&t.url().unwrap(), dir.path(), &config, &[]);
    let http = reqwest::Client::new();
    let line = r#"{"level":"info","service":"web","msg":"hello"}"#;

    let none = http
        .post(server.url("/ingest"))
        .body(line)
        .send()
        .await
        .unwrap();
    assert_eq!(none.status(), 401);
    let wrong = http
        .post(server.url("/ingest"))
        .bearer_auth("guess")
        .body(line)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    assert_eq!(
        count(&t.db.write, "SELECT count(*) FROM opsdash.log_event").await,
        0
    );
    let ok = http
        .post(server.url("/ingest"))
        .bearer_auth("s3cret-token")
        .body(line)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200, "{}", server.log());
    assert_eq!(
        count(&t.db.write, "SELECT count(*) FROM opsdash.log_event").await,
        1
    );
    assert_eq!(
        count(
            &t.db.write,
            "SELECT count(*) FROM opsdash.ingest_stat WHERE source = 'serve:web1'"
        )
        .await,
        1
    );

    // 64 MiB of zeros in a few kilobytes of gzip: refused, not expanded.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..64 {
        gz.write_all(&zeros).unwrap();
    }
    let bomb = gz.finish().unwrap();
    let resp = http
        .post(server.url("/ingest"))
        .bearer_auth("s3cret-token")
        .header("content-encoding", "gzip")
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 413);
    assert!(!server.log().contains("s3cret-token"));
}

/// Requests that arrive while a commit is under way are parsed meanwhile and committed
/// together, but a commit never holds more than `ingest.batch_size` rows, and every request is
/// answered only once its own rows are committed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_requests_share_commits_of_at_most_one_batch() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        &t.url().unwrap(),
        dir.path(),
        "[ingest]\nbatch_size = 250\n",
        &[],
    );
    let http = reqwest::Client::new();
    let pool = sqlx::PgPool::connect(&t.url().unwrap()).await.unwrap();
    let requests: i64 = 12;
    let per_request: i64 = 100;
    let mut sent = Vec::new();
    for r in 0..requests {
        let body: String = (0..per_request)
            .map(|i| {
                format!(
                    "{{\"ts\":\"2026-12-07T10:00:00Z\",\"level\":\"info\",\"service\":\"batch\",\"msg\":\"request {r} record {i}\"}}\n"
                )
            })
            .collect();
        let (http, url, pool) = (http.clone(), server.url("/ingest"), pool.clone());
        sent.push(tokio::spawn(async move {
            let resp = http
                .post(url)
                .header("content-type", "application/x-ndjson")
                .body(body)
                .send()
                .await
                .unwrap();
            let status = resp.status();
            // Answered only after its own rows are committed.
            let stored = count(
                &pool,
                &format!(
                    "SELECT count(*) FROM opsdash.log_event WHERE message LIKE 'request {r} record %'"
                ),
            )
            .await;
            (status, stored)
        }));
    }
    for s in sent {
        let (status, stored) = s.await.unwrap();
        assert_eq!(status, 200, "{}", server.log());
        assert_eq!(stored, per_request);
    }
    let commits: Vec<i64> = sqlx::query_scalar(
        "SELECT log_rows FROM opsdash.ingest_stat WHERE source = 'serve:ingest' AND log_rows > 0",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(commits.iter().sum::<i64>(), requests * per_request);
    assert!(
        commits.iter().all(|&rows| rows <= 250),
        "a commit over the batch size: {commits:?}"
    );
}
