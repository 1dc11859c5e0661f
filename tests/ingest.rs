//! Ingest against a real PostgreSQL: every format, bad input, extreme timestamps, redaction,
//! de-duplication, error groups, concurrency, NOTIFY, and the real binary with --follow.

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use opsdash::config::IngestConfig;
use opsdash::db::testkit::TestDb;
use opsdash::ingest::{self, AtEof, Format, Options, Pipeline, Summary};
use sqlx::Row;

fn opts(format: Format, service: &str) -> Options {
    Options {
        format,
        service: service.into(),
        source: "test".into(),
        print_rejects: false,
        ..Options::default()
    }
}

async fn ingest_with(t: &TestDb, cfg: &IngestConfig, o: Options, input: &[u8]) -> Summary {
    let p = Pipeline::new(t.db.clone(), cfg, o).unwrap();
    ingest::run(input, p, AtEof::Stop, std::future::pending()).await
}

async fn ingest(t: &TestDb, format: Format, input: &str) -> Summary {
    ingest_with(
        t,
        &IngestConfig::default(),
        opts(format, "svc"),
        input.as_bytes(),
    )
    .await
}

async fn count(t: &TestDb, sql: &str) -> i64 {
    sqlx::query_scalar::<_, i64>(sql)
        .fetch_one(&t.db.write)
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_fill_every_column() {
    let t = TestDb::new().await.unwrap();
    let line = r#"{"@timestamp":"2024-03-01T10:00:00.250Z","severity":"ERROR","msg":"payment failed for order 17","service":"billing","hostname":"web-1","traceId":"tr-1","span_id":"sp-1","request_id":"rq-1","userId":42,"method":"post","path":"/orders/17/pay?x=1","status":502,"duration_ms":12.5,"client_ip":"10.0.0.9","user_agent":"curl/8","error":{"type":"GatewayError","stack":"at pay()"},"bytes":99,"shard":3}"#;
    let s = ingest(&t, Format::Json, line).await;
    assert_eq!((s.logs, s.requests, s.rejected), (1, 1, 0), "{s:?}");
    assert!(s.error.is_none());
    let r = sqlx::query(
        "SELECT ts::text, level, service, host, message, trace_id, span_id, request_id, user_id,
                route, method, status, duration_ms, ip, user_agent, error_type, attrs, fingerprint,
                repeat_count
           FROM opsdash.log_event",
    )
    .fetch_one(&t.db.write)
    .await
    .unwrap();
    assert_eq!(r.get::<String, _>("ts"), "2024-03-01 10:00:00.25+00");
    assert_eq!(r.get::<i16, _>("level"), 4);
    assert_eq!(r.get::<String, _>("service"), "billing");
    assert_eq!(r.get::<String, _>("host"), "web-1");
    assert_eq!(r.get::<String, _>("message"), "payment failed for order 17");
    assert_eq!(r.get::<String, _>("trace_id"), "tr-1");
    assert_eq!(r.get::<String, _>("span_id"), "sp-1");
    assert_eq!(r.get::<String, _>("request_id"), "rq-1");
    assert_eq!(r.get::<String, _>("user_id"), "42");
    assert_eq!(r.get::<String, _>("route"), "/orders/:id/pay");
    assert_eq!(r.get::<String, _>("method"), "POST");
    assert_eq!(r.get::<i16, _>("status"), 502);
    assert_eq!(r.get::<f64, _>("duration_ms"), 12.5);
    assert_eq!(r.get::<String, _>("ip"), "10.0.0.9");
    assert_eq!(r.get::<String, _>("user_agent"), "curl/8");
    assert_eq!(r.get::<String, _>("error_type"), "GatewayError");
    let attrs: serde_json::Value = r.get("attrs");
    assert_eq!(attrs["shard"], 3);
    assert_eq!(attrs["path"], "/orders/17/pay?x=1");
    assert_eq!(attrs["error"]["stack"], "at pay()");
    assert_eq!(r.get::<String, _>("fingerprint").len(), 16);
    assert_eq!(r.get::<i32, _>("repeat_count"), 1);

    let q = sqlx::query(
        "SELECT service, method, route, status, duration_ms, bytes, user_id, trace_id, request_id,
                ip, user_agent, direction
           FROM opsdash.request_log",
    )
    .fetch_one(&t.db.write)
    .await
    .unwrap();
    assert_eq!(q.get::<String, _>("service"), "billing");
    assert_eq!(q.get::<String, _>("method"), "POST");
    assert_eq!(q.get::<String, _>("route"), "/orders/:id/pay");
    assert_eq!(q.get::<i16, _>("status"), 502);
    assert_eq!(q.get::<f64, _>("duration_ms"), 12.5);
    assert_eq!(q.get::<i64, _>("bytes"), 99);
    assert_eq!(q.get::<String, _>("user_id"), "42");
    assert_eq!(q.get::<String, _>("trace_id"), "tr-1");
    assert_eq!(q.get::<String, _>("request_id"), "rq-1");
    assert_eq!(q.get::<String, _>("ip"), "10.0.0.9");
    assert_eq!(q.get::<String, _>("user_agent"), "curl/8");
    assert_eq!(q.get::<String, _>("direction"), "inbound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_epoch_and_pino_levels() {
    let t = TestDb::new().await.unwrap();
    let input = concat!(
        r#"{"level":30,"time":1700000000123,"name":"api","msg":"a"}"#,
        "\n",
        r#"{"lvl":"warning","ts":1700000000.5,"app":"web","message":"b"}"#,
        "\n",
        r#"{"level":"debug","timestamp":"2023-11-14 22:13:20","logger":"db","msg":"c"}"#,
        "\n",
    );
    let s = ingest(&t, Format::Json, input).await;
    assert_eq!((s.logs, s.rejected), (3, 0), "{s:?}");
    let rows: Vec<(String, i16, String, i64)> = sqlx::query_as(
        "SELECT message, level, service, (extract(epoch FROM ts) * 1000)::bigint
           FROM opsdash.log_event ORDER BY message",
    )
    .fetch_all(&t.db.write)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            ("a".into(), 2, "api".into(), 1_700_000_000_123),
            ("b".into(), 3, "web".into(), 1_700_000_000_500),
            ("c".into(), 1, "db".into(), 1_700_000_000_000),
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logfmt_lines() {
    let t = TestDb::new().await.unwrap();
    let input = "time=2024-03-01T10:00:00Z level=warn msg=\"disk \\\"almost\\\" full\" service=store pct=91\nts=2024-03-01T10:00:01Z level=info msg=ok\n";
    let s = ingest(&t, Format::Logfmt, input).await;
    assert_eq!((s.logs, s.rejected), (2, 0), "{s:?}");
    let (msg, level, service, attrs): (String, i16, String, serde_json::Value) = sqlx::query_as(
        "SELECT message, level, service, attrs FROM opsdash.log_event WHERE level = 3",
    )
    .fetch_one(&t.db.write)
    .await
    .unwrap();
    assert_eq!(msg, "disk \"almost\" full");
    assert_eq!((level, service.as_str()), (3, "store"));
    assert_eq!(attrs["pct"], "91");
    // A line with no key=value pair is not logfmt.
    let s = ingest(&t, Format::Logfmt, "just words\nlevel=info msg=x\n").await;
    assert_eq!((s.logs, s.rejected), (1, 1));
    assert_eq!(s.first_rejects[0].line, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_and_apache_access_logs() {
    let t = TestDb::new().await.unwrap();
    let nginx = r#"203.0.113.9 - alice [10/Oct/2023:13:55:36 +0000] "GET /api/users/42?x=1 HTTP/1.1" 404 512 "https://ref/" "Mozilla/5.0" 0.125
203.0.113.10 - - [10/Oct/2023:13:55:37 +0000] "POST /api/login HTTP/1.1" 200 20 "-" "curl/8"
"#;
    let s = ingest(&t, Format::Nginx, nginx).await;
    // Each request is a log row too (the Logs tab reads log_event): a 404 is a warning.
    assert_eq!((s.requests, s.logs, s.rejected), (2, 2, 0), "{s:?}");
    let levels: Vec<(String, i16)> =
        sqlx::query_as("SELECT message, level FROM opsdash.log_event ORDER BY ts")
            .fetch_all(&t.db.write)
            .await
            .unwrap();
    assert_eq!(
        levels,
        vec![
            ("GET /api/users/42?x=1 404".into(), 3),
            ("POST /api/login 200".into(), 2)
        ]
    );
    let apache = r#"198.51.100.1 - bob [10/Oct/2023:13:55:36 -0700] "DELETE /items/9 HTTP/1.0" 500 - "-" "ua" 2500
not an access log line
"#;
    let s = ingest(&t, Format::Apache, apache).await;
    assert_eq!((s.requests, s.rejected), (1, 1), "{s:?}");
    type Row = (
        String,
        String,
        i16,
        f64,
        Option<i64>,
        Option<String>,
        Option<String>,
        String,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT method, route, status, duration_ms, bytes, user_id, ip, service
               FROM opsdash.request_log ORDER BY ts, method",
    )
    .fetch_all(&t.db.write)
    .await
    .unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[0],
        (
            "GET".into(),
            "/api/users/:id".into(),
            404,
            125.0,
            Some(512),
            Some("alice".into()),
            Some("203.0.113.9".into()),
            "svc".into()
        )
    );
    assert_eq!(rows[1].0, "POST");
    assert_eq!(
        (rows[2].0.as_str(), rows[2].2, rows[2].3),
        ("DELETE", 500, 2.5)
    );
    assert_eq!(rows[2].5.as_deref(), Some("bob"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_detects_each_line() {
    let t = TestDb::new().await.unwrap();
    let input = r#"{"level":"info","msg":"json line"}
level=warn msg="logfmt line"
10.1.1.1 - - [10/Oct/2023:13:55:36 +0000] "GET /health HTTP/1.1" 200 2 "-" "kube-probe"
2024-03-01T10:00:00Z ERROR plain text line
{"broken json
"#;
    let s = ingest(&t, Format::Auto, input).await;
    // The access line is a request row and, for the Logs tab, a log row too.
    assert_eq!((s.logs, s.requests, s.rejected), (4, 1, 1), "{s:?}");
    assert_eq!(s.first_rejects[0].line, 5);
    assert!(s.first_rejects[0].reason.starts_with("invalid JSON"));
    let rows: Vec<(String, i16)> =
        sqlx::query_as("SELECT message, level FROM opsdash.log_event ORDER BY message")
            .fetch_all(&t.db.write)
            .await
            .unwrap();
    assert_eq!(
        rows,
        vec![
            ("GET /health 200".into(), 2),
            ("json line".into(), 2),
            ("logfmt line".into(), 3),
            ("plain text line".into(), 4)
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_lines_are_counted_and_good_lines_kept() {
    let t = TestDb::new().await.unwrap();
    let mut input: Vec<u8> = Vec::new();
    input.extend(b"{\"msg\":\"good 1\"}\n"); // 1
    input.extend(b"{\"msg\": oops}\n"); // 2 invalid JSON
                                        // 3 invalid UTF-8: stored with U+FFFD since issue 12 (it was rejected, losing the line)
    input.extend(b"{\"msg\":\"bad \xff\xfe utf8\"}\n");
    input.extend(b"{\"msg\":\""); // 4 over 1 MiB
    input.extend(std::iter::repeat_n(b'a', (1 << 20) + 10));
    input.extend(b"\"}\n");
    input.extend(b"{\"msg\":\"t\",\"time\":\"half past nine\"}\n"); // 5 bad timestamp
    input.extend(b"\n"); // 6 blank: skipped, not rejected
    input.extend(b"{\"msg\":\"nul \\u0000 escaped\",\"k\":\"v\\u0000\"}\n"); // 7
    input.extend(b"{\"msg\":\"raw nul \x00 byte\"}\n"); // 8: raw NUL inside a JSON string is invalid JSON
    input.extend(b"{\"msg\":\"good 2\"}\r\n"); // 9
    input.extend(b"{\"msg\":\"backslash-u text\",\"k\":\"\\\\u0000\"}\n"); // 10: not a NUL
    input.extend(b"{\"msg\":\"no newline at end\"}"); // 11
    let s = ingest_with(
        &t,
        &IngestConfig::default(),
        opts(Format::Json, "svc"),
        &input,
    )
    .await;
    assert!(s.error.is_none(), "{s:?}");
    assert_eq!(s.lines, 11);
    assert_eq!(s.rejected, 4, "{:?}", s.first_rejects);
    let lines: Vec<u64> = s.first_rejects.iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![2, 4, 5, 8]);
    assert!(
        s.first_rejects[0].reason.starts_with("invalid JSON"),
        "{:?}",
        s.first_rejects
    );
    assert!(s.first_rejects[1].reason.contains("longer than"));
    assert!(s.first_rejects[2].reason.contains("timestamp"));
    let msgs: Vec<String> = sqlx::query_scalar("SELECT message FROM opsdash.log_event ORDER BY id")
        .fetch_all(&t.db.write)
        .await
        .unwrap();
    assert_eq!(
        msgs,
        vec![
            "good 1",
            "bad \u{fffd}\u{fffd} utf8",
            "nul  escaped",
            "good 2",
            "backslash-u text",
            "no newline at end"
        ]
    );
    let k: String = sqlx::query_scalar(
        "SELECT attrs->>'k' FROM opsdash.log_event WHERE message = 'backslash-u text'",
    )
    .fetch_one(&t.db.write)
    .await
    .unwrap();
    assert_eq!(k, "\\u0000");
    let k: String = sqlx::query_scalar(
        "SELECT attrs->>'k' FROM opsdash.log_event WHERE message = 'nul  escaped'",
    )
    .fetch_one(&t.db.write)
    .await
    .unwrap();
    assert_eq!(k, "v");
    let stat: (i64, i64) =
        sqlx::query_as("SELECT sum(rows)::bigint, sum(rejected)::bigint FROM opsdash.ingest_stat")
            .fetch_one(&t.db.write)
            .await
            .unwrap();
    assert_eq!(stat, (6, 4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_first_ten_rejects_are_reported() {
    let t = TestDb::new().await.unwrap();
    let mut input = String::new();
    for i in 0..25 {
        input.push_str(&format!("{{bad {i}\n{{\"msg\":\"ok {i}\"}}\n"));
    }
    let s = ingest(&t, Format::Json, &input).await;
    assert_eq!((s.logs, s.rejected), (25, 25));
    assert_eq!(s.first_rejects.len(), 10);
    assert_eq!(s.first_rejects[9].line, 19);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_timestamp_is_accepted() {
    let t = TestDb::new().await.unwrap();
    let now = chrono::Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let old = (chrono::Utc::now() - chrono::Duration::days(30))
        .format("%Y-%m-%dT%H:%M:%SZ")
        .to_string();
    let input = format!(
        "{{\"ts\":\"0001-01-01T00:00:00Z\",\"msg\":\"year one\"}}\n\
         {{\"ts\":\"9999-12-31T23:59:59Z\",\"msg\":\"year 9999\"}}\n\
         {{\"ts\":\"{now}\",\"msg\":\"now\"}}\n\
         {{\"ts\":\"{old}\",\"msg\":\"a month ago\"}}\n\
         {{\"ts\":\"1969-07-20T20:17:00Z\",\"msg\":\"moon\"}}\n"
    );
    let s = ingest(&t, Format::Json, &input).await;
    assert_eq!((s.logs, s.rejected), (5, 0), "{s:?}");
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT message, tableoid::regclass::text FROM opsdash.log_event ORDER BY ts",
    )
    .fetch_all(&t.db.write)
    .await
    .unwrap();
    let part = |m: &str| rows.iter().find(|r| r.0 == m).map(|r| r.1.clone()).unwrap();
    assert_eq!(part("year one"), "opsdash.log_event_default");
    assert_eq!(part("year 9999"), "opsdash.log_event_default");
    assert_eq!(part("moon"), "opsdash.log_event_default");
    // Days within the window get their own partition, made on the fly.
    assert_ne!(part("a month ago"), "opsdash.log_event_default");
    assert_ne!(part("now"), "opsdash.log_event_default");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_never_reach_the_database() {
    let t = TestDb::new().await.unwrap();
    let input = r#"{"msg":"login user=bob password=Hunter2Secret ok","headers":{"Authorization":"Bearer TokXyz123","Cookie":"sid=CookieVal9"},"card":"4111 1111 1111 1111","nested":[{"api_key":"KeyAbc987"}],"note":"ssn 123-45-6789"}
level=info msg="charge 5555-5555-5555-4444 done" token=LogfmtTok55
10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] "GET /cb?access_token=QueryTok77&x=1 HTTP/1.1" 200 2 "-" "ua"
"#;
    let mut cfg = IngestConfig::default();
    cfg.redact.push(opsdash::config::RedactRule {
        name: "employee".into(),
        pattern: "EMP-[0-9]{6}".into(),
        replacement: "[EMP]".into(),
    });
    let more = "{\"msg\":\"badge EMP-123456 scanned\"}\n";
    let s = ingest_with(
        &t,
        &cfg,
        opts(Format::Auto, "svc"),
        format!("{input}{more}").as_bytes(),
    )
    .await;
    assert_eq!((s.logs, s.requests, s.rejected), (4, 1, 0), "{s:?}");
    let everything: String = sqlx::query_scalar(
        "SELECT coalesce(string_agg(e::text, ' '), '') FROM opsdash.log_event e",
    )
    .fetch_one(&t.db.write)
    .await
    .unwrap();
    let requests: String = sqlx::query_scalar(
        "SELECT coalesce(string_agg(r::text, ' '), '') FROM opsdash.request_log r",
    )
    .fetch_one(&t.db.write)
    .await
    .unwrap();
    let all = format!("{everything} {requests}");
    for secret in [
        "Hunter2Secret",
        "TokXyz123",
        "CookieVal9",
        "4111 1111 1111 1111",
        "KeyAbc987",
        "123-45-6789",
        "5555-5555-5555-4444",
        "LogfmtTok55",
        "QueryTok77",
        "EMP-123456",
    ] {
        assert!(!all.contains(secret), "{secret} stored: {all}");
    }
    assert!(all.contains("[REDACTED]"));
    assert!(all.contains("[REDACTED:card]"));
    assert!(all.contains("[EMP]"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeats_fold_into_one_row_across_batches() {
    let t = TestDb::new().await.unwrap();
    // Tiny batches: most repeats land after their row was already written.
    let cfg = IngestConfig {
        batch_size: 3,
        ..Default::default()
    };
    let base = chrono::Utc::now() - chrono::Duration::minutes(5);
    let mut input = String::new();
    let mut n = 0;
    for i in 0..60 {
        // Every 2 s: "tick" repeats within 10 s windows, "unique i" never repeats.
        let ts = (base + chrono::Duration::seconds(i * 2)).to_rfc3339();
        input.push_str(&format!(
            "{{\"ts\":\"{ts}\",\"service\":\"a\",\"msg\":\"tick\"}}\n"
        ));
        input.push_str(&format!(
            "{{\"ts\":\"{ts}\",\"service\":\"a\",\"msg\":\"unique {i}\"}}\n"
        ));
        n += 2;
    }
    let s = ingest_with(&t, &cfg, opts(Format::Json, "svc"), input.as_bytes()).await;
    assert!(s.error.is_none(), "{s:?}");
    let total = count(
        &t,
        "SELECT sum(repeat_count)::bigint FROM opsdash.log_event",
    )
    .await;
    assert_eq!(total, n);
    let ticks: Vec<(chrono::DateTime<chrono::Utc>, i32)> = sqlx::query_as(
        "SELECT ts, repeat_count FROM opsdash.log_event WHERE message = 'tick' ORDER BY ts",
    )
    .fetch_all(&t.db.write)
    .await
    .unwrap();
    // 120 s of ticks every 2 s, one row per 10 s window of 5 ticks.
    assert_eq!(ticks.len(), 12, "{ticks:?}");
    assert!(ticks.iter().all(|(_, c)| *c == 5), "{ticks:?}");
    for w in ticks.windows(2) {
        assert!(w[1].0 - w[0].0 >= chrono::Duration::seconds(10));
    }
    assert_eq!(s.folded, 48);
    assert_eq!(s.logs, 72);
    let folded = count(&t, "SELECT sum(folded)::bigint FROM opsdash.ingest_stat").await;
    assert_eq!(folded, 48);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_groups_count_users_and_regress() {
    let t = TestDb::new().await.unwrap();
    let line = |user: u32, ms: u32| {
        format!("{{\"level\":\"error\",\"service\":\"pay\",\"msg\":\"timeout after {ms} ms talking to 10.0.0.{user}\",\"error_type\":\"Timeout\",\"user_id\":\"u{user}\"}}\n")
    };
    let mut input = String::new();
    for i in 0..10 {
        input.push_str(&line(i % 3, 100 + i));
    }
    input.push_str("{\"level\":\"info\",\"msg\":\"not an error\"}\n");
    let s = ingest(&t, Format::Json, &input).await;
    assert_eq!(s.logs, 11);
    let (fp, count_, users, status, sample): (String, i64, i64, String, String) = sqlx::query_as(
        "SELECT fingerprint, count, affected_users, status, sample_message FROM opsdash.error_group",
    )
    .fetch_one(&t.db.write)
    .await
    .unwrap();
    assert_eq!((count_, users, status.as_str()), (10, 3, "new"));
    assert!(sample.starts_with("timeout after"));
    let with_fp = count(
        &t,
        &format!("SELECT count(*) FROM opsdash.log_event WHERE fingerprint = '{fp}'"),
    )
    .await;
    assert_eq!(with_fp, 10);
    assert_eq!(
        count(
            &t,
            "SELECT count(*) FROM opsdash.log_event WHERE fingerprint IS NULL"
        )
        .await,
        1
    );

    // Resolved, then it happens again (one new user): regression.
    sqlx::query("UPDATE opsdash.error_group SET status = 'resolved', resolved_at = now() - interval '1 second'")
        .execute(&t.db.write)
        .await
        .unwrap();
    let s = ingest(&t, Format::Json, &format!("{}{}", line(1, 5), line(7, 6))).await;
    assert_eq!(s.logs, 2);
    let (count_, users, status, regressed): (i64, i64, String, bool) =
        sqlx::query_as("SELECT count, affected_users, status, regressed FROM opsdash.error_group")
            .fetch_one(&t.db.write)
            .await
            .unwrap();
    assert_eq!(
        (count_, users, status.as_str(), regressed),
        (12, 4, "new", true)
    );
    // An ignored group stays ignored.
    sqlx::query("UPDATE opsdash.error_group SET status = 'ignored', regressed = false")
        .execute(&t.db.write)
        .await
        .unwrap();
    ingest(&t, Format::Json, &line(2, 1)).await;
    let (status, regressed): (String, bool) =
        sqlx::query_as("SELECT status, regressed FROM opsdash.error_group")
            .fetch_one(&t.db.write)
            .await
            .unwrap();
    assert_eq!((status.as_str(), regressed), ("ignored", false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_concurrent_ingests_both_complete() {
    let t = TestDb::new().await.unwrap();
    // Both runs cover the same ten days of last month: they create partitions concurrently.
    let base = chrono::Utc::now() - chrono::Duration::days(40);
    let make = |tag: &str| {
        let mut s = String::new();
        for i in 0..3000 {
            let ts = (base + chrono::Duration::minutes(i * 5)).to_rfc3339();
            if i % 10 == 0 {
                // Shared error groups and users: both runs update the same rows.
                s.push_str(&format!("{{\"ts\":\"{ts}\",\"level\":\"error\",\"service\":\"api\",\"msg\":\"db error {i}\",\"user_id\":\"u{}\"}}\n", i % 7));
            } else {
                s.push_str(&format!("{{\"ts\":\"{ts}\",\"service\":\"{tag}\",\"msg\":\"line {i}\",\"method\":\"GET\",\"path\":\"/x/{i}\",\"status\":200}}\n"));
            }
        }
        s
    };
    let cfg = IngestConfig {
        batch_size: 250,
        ..Default::default()
    };
    let (a, b) = (make("a"), make("b"));
    let (sa, sb) = tokio::join!(
        ingest_with(&t, &cfg, opts(Format::Json, "svc"), a.as_bytes()),
        ingest_with(&t, &cfg, opts(Format::Json, "svc"), b.as_bytes())
    );
    assert!(sa.error.is_none() && sb.error.is_none(), "{sa:?} {sb:?}");
    // The two runs' identical error lines are folded within each run only.
    assert_eq!(sa.logs + sa.folded, 3000);
    assert_eq!(sb.logs + sb.folded, 3000);
    assert_eq!(
        count(
            &t,
            "SELECT sum(repeat_count)::bigint FROM opsdash.log_event"
        )
        .await,
        6000
    );
    assert_eq!(
        count(&t, "SELECT count(*) FROM opsdash.request_log").await,
        5400
    );
    assert_eq!(
        count(&t, "SELECT sum(count)::bigint FROM opsdash.error_group").await,
        600
    );
    assert_eq!(
        count(&t, "SELECT max(affected_users) FROM opsdash.error_group").await,
        7
    );
    assert_eq!(
        count(
            &t,
            "SELECT count(*) FROM opsdash.log_event WHERE tableoid = 'opsdash.log_event_default'::regclass"
        )
        .await,
        0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn survives_a_database_restart() {
    use opsdash::db::{Db, DbTarget};
    let tc = opsdash::db::testkit::TestCluster::start("ingest-restart").unwrap();
    let options = tc.cluster.connect_options(opsdash::db::embedded::DATABASE);
    let db = Db::from_options(
        options,
        None,
        DbTarget::External {
            redacted_url: "restart test".into(),
        },
        2,
        Duration::from_secs(2),
        Duration::from_secs(5),
    )
    .await
    .unwrap();
    let mut p = Pipeline::new(
        db.clone(),
        &IngestConfig::default(),
        opts(Format::Json, "svc"),
    )
    .unwrap();
    for i in 0..100 {
        p.push_line(format!("{{\"msg\":\"before {i}\"}}").as_bytes())
            .await
            .unwrap();
    }
    p.flush().await.unwrap();
    // "fast", not "immediate": the throwaway cluster runs with synchronous_commit off, so a
    // crash may lose the last commits (the server's choice, not ours to test here).
    tc.cluster.stop("fast").unwrap();
    for i in 0..100 {
        p.push_line(format!("{{\"msg\":\"during {i}\"}}").as_bytes())
            .await
            .unwrap();
    }
    let cluster = tc.cluster.clone();
    let restart = tokio::task::spawn_blocking(move || {
        std::thread::sleep(Duration::from_millis(800));
        cluster.restart_stopped()
    });
    // The batch written while the server is down is retried until it is back.
    p.flush().await.unwrap();
    restart.await.unwrap().unwrap();
    let s = p.finish().await;
    assert!(s.error.is_none(), "{s:?}");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.log_event")
        .fetch_one(&db.write)
        .await
        .unwrap();
    assert_eq!(n, 200);
    assert_eq!(s.logs, 200, "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_notify_per_batch_with_log_rows() {
    let t = TestDb::new().await.unwrap();
    let mut listener = sqlx::postgres::PgListener::connect_with(&t.db.write)
        .await
        .unwrap();
    listener.listen(opsdash::db::LOGS_CHANNEL).await.unwrap();
    let cfg = IngestConfig {
        batch_size: 100,
        ..Default::default()
    };
    let mut input = String::new();
    for i in 0..250 {
        input.push_str(&format!("{{\"msg\":\"m{i}\"}}\n"));
    }
    let s = ingest_with(&t, &cfg, opts(Format::Json, "svc"), input.as_bytes()).await;
    assert_eq!(s.logs, 250);
    let mut got = Vec::new();
    while let Ok(Ok(n)) = tokio::time::timeout(Duration::from_millis(500), listener.recv()).await {
        got.push(n.payload().to_string());
    }
    assert_eq!(got, vec!["100", "100", "50"]);
    // An access line is a log row too (the Logs tab shows requests): its batch wakes the tail
    // once, like any batch with log rows.
    ingest(
        &t,
        Format::Nginx,
        "1.1.1.1 - - [10/Oct/2023:13:55:36 +0000] \"GET / HTTP/1.1\" 200 1\n",
    )
    .await;
    let woke = tokio::time::timeout(Duration::from_secs(10), listener.recv()).await;
    assert_eq!(woke.expect("a notification").unwrap().payload(), "1");
    assert_eq!(
        count(&t, "SELECT count(*) FROM opsdash.ingest_stat").await,
        4
    );
}

fn binary() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_opsdash"));
    // Never pick up a developer's config file or environment.
    c.env_remove("OPSDASH_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env(
            "XDG_CONFIG_HOME",
            std::env::temp_dir().join("opsdash-ingest-test-noconfig"),
        );
    c
}

async fn wait_for_rows(t: &TestDb, n: i64, within: Duration) -> i64 {
    let start = Instant::now();
    loop {
        let c = count(t, "SELECT count(*) FROM opsdash.log_event").await;
        if c >= n || start.elapsed() > within {
            return c;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_flushes_a_growing_pipe() {
    let t = TestDb::new().await.unwrap();
    let mut child = binary()
        .args(["--database-url", &t.url().unwrap(), "ingest", "--follow"])
        .args(["--service", "piped"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{{\"msg\":\"first\"}}").unwrap();
    writeln!(stdin, "level=warn msg=second").unwrap();
    stdin.flush().unwrap();
    // The pipe stays open: rows must arrive by the flush interval, not at EOF.
    assert_eq!(wait_for_rows(&t, 2, Duration::from_secs(20)).await, 2);
    writeln!(stdin, "{{\"msg\":\"third\"}}").unwrap();
    stdin.flush().unwrap();
    assert_eq!(wait_for_rows(&t, 3, Duration::from_secs(10)).await, 3);
    drop(stdin);
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("3 rows stored: log_event 3"), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    let services: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT service FROM opsdash.log_event")
            .fetch_all(&t.db.write)
            .await
            .unwrap();
    assert_eq!(services, vec!["piped"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_writes_what_is_buffered() {
    let t = TestDb::new().await.unwrap();
    let mut child = binary()
        .args([
            "--database-url",
            &t.url().unwrap(),
            "ingest",
            "--follow",
            "-",
        ])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    for i in 0..5 {
        writeln!(stdin, "{{\"msg\":\"m{i}\"}}").unwrap();
    }
    stdin.flush().unwrap();
    assert_eq!(wait_for_rows(&t, 5, Duration::from_secs(20)).await, 5);
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGINT) };
    let out = tokio::task::spawn_blocking(move || child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("5 rows stored: log_event 5"), "{stderr}");
    drop(stdin);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn binary_reads_a_file_and_reports_bad_lines() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("checkout.log");
    std::fs::write(
        &path,
        "{\"msg\":\"ok\"}\n{\"msg\":\n{\"msg\":\"ok 2\",\"level\":\"error\"}\n",
    )
    .unwrap();
    let out = binary()
        .args([
            "--database-url",
            &t.url().unwrap(),
            "ingest",
            "--format",
            "json",
        ])
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    // Some lines rejected: the documented status 3 (see `opsdash ingest --help`).
    assert_eq!(out.status.code(), Some(3), "{stderr}");
    let lines: Vec<&str> = stderr.trim().lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(lines[0].starts_with("line 2: invalid JSON"), "{stderr}");
    assert!(lines[1].contains("2 rows stored: log_event 2"), "{stderr}");
    assert!(
        lines[1].contains("3 lines read = 2 events stored + 0 folded + 1 rejected + 0 blank"),
        "{stderr}"
    );
    let services: Vec<String> =
        sqlx::query_scalar("SELECT DISTINCT service FROM opsdash.log_event")
            .fetch_all(&t.db.write)
            .await
            .unwrap();
    assert_eq!(services, vec!["checkout"]);
    let source: String = sqlx::query_scalar("SELECT source FROM opsdash.ingest_stat LIMIT 1")
        .fetch_one(&t.db.write)
        .await
        .unwrap();
    assert!(source.ends_with("checkout.log"));

    // Nothing storable: non-zero exit.
    let bad = dir.path().join("bad.log");
    std::fs::write(&bad, "{{{\n").unwrap();
    let out = binary()
        .args([
            "--database-url",
            &t.url().unwrap(),
            "ingest",
            "--format",
            "json",
        ])
        .arg(&bad)
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreachable_database_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "postgresql://postgres@/nope?host={}&port=5432",
        dir.path().display()
    );
    let mut child = binary()
        .args(["--database-url", &url, "ingest"])
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdin.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(stderr.contains("opsdash:"), "{stderr}");
}

// ---------------------------------------------------------------------------------------------
// Issue 12: exact de-duplication, line accounting, invalid UTF-8, old lines, odd fields
// ---------------------------------------------------------------------------------------------

/// Only events identical in everything but their time are folded. On the old key (service,
/// level, message) the Docker lines became a few rows, the logfmt lines one, the nginx JSON lines
/// one: their text and fields were lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_identical_events_are_folded() {
    let t = TestDb::new().await.unwrap();
    // Tiny batches: repeats land both in their row's batch and after it was written.
    let cfg = IngestConfig {
        batch_size: 4,
        ..Default::default()
    };
    let base = chrono::Utc::now() - chrono::Duration::minutes(5);
    let at = |ms: i64| (base + chrono::Duration::milliseconds(ms)).to_rfc3339();
    let mut input = String::new();
    let mut distinct = 0;
    // 20 Docker json-file lines: the text is in `log`, none has a message field.
    for i in 0..20 {
        let stream = if i % 3 == 0 { "stderr" } else { "stdout" };
        input.push_str(&format!(
            "{{\"log\":\"worker {i} started\\n\",\"stream\":\"{stream}\",\"time\":\"{}\"}}\n",
            at(i)
        ));
        distinct += 1;
    }
    // logfmt without msg, differing only in op/user; all at the same time.
    for (op, user) in [("get", "a"), ("get", "b"), ("put", "a"), ("put", "b")] {
        input.push_str(&format!("ts={} level=info op={op} user={user}\n", at(100)));
        distinct += 1;
    }
    // nginx JSON lines differing only in one field each (request-like: log + request rows).
    for (addr, bytes) in [("10.0.0.1", 10), ("10.0.0.2", 10), ("10.0.0.1", 11)] {
        input.push_str(&format!(
            "{{\"time\":\"{}\",\"remote_addr\":\"{addr}\",\"method\":\"GET\",\"path\":\"/\",\"status\":200,\"body_bytes_sent\":{bytes},\"request_time\":\"0.001\"}}\n",
            at(200)
        ));
        distinct += 1;
    }
    // True repeats: 3 of one, 5 of another that differs from it only by an attribute, at the
    // same times, spread over batches.
    for i in 0..5 {
        for (k, n) in [("x", 3), ("y", 5)] {
            if i < n {
                input.push_str(&format!(
                    "{{\"ts\":\"{}\",\"msg\":\"retrying\",\"k\":\"{k}\"}}\n",
                    at(300 + i * 1000)
                ));
            }
        }
    }
    distinct += 2;
    let s = ingest_with(&t, &cfg, opts(Format::Auto, "svc"), input.as_bytes()).await;
    assert!(s.error.is_none(), "{s:?}");
    assert_eq!(s.rejected, 0, "{s:?}");
    assert_eq!(s.folded, 6, "{s:?}");
    assert_eq!(
        count(&t, "SELECT count(*) FROM opsdash.log_event").await,
        distinct
    );
    assert_eq!(
        count(
            &t,
            "SELECT sum(repeat_count)::bigint FROM opsdash.log_event"
        )
        .await,
        s.lines as i64
    );
    // The Docker envelope's text is the message (it used to sit in attrs.log, the message empty).
    assert_eq!(
        count(
            &t,
            "SELECT count(DISTINCT message) FROM opsdash.log_event WHERE message LIKE 'worker % started'"
        )
        .await,
        20
    );
    assert_eq!(
        count(&t, "SELECT count(*) FROM opsdash.request_log").await,
        3
    );
    let repeats: Vec<(String, i32, Option<chrono::DateTime<chrono::Utc>>)> = sqlx::query_as(
        "SELECT attrs->>'k', repeat_count, last_seen FROM opsdash.log_event
          WHERE message = 'retrying' ORDER BY 1",
    )
    .fetch_all(&t.db.write)
    .await
    .unwrap();
    let last = |i: i64| (base + chrono::Duration::milliseconds(300 + i * 1000)).timestamp_micros();
    assert_eq!(repeats.len(), 2, "{repeats:?}");
    assert_eq!((repeats[0].1, repeats[1].1), (3, 5), "{repeats:?}");
    assert_eq!(repeats[0].2.map(|t| t.timestamp_micros()), Some(last(2)));
    assert_eq!(repeats[1].2.map(|t| t.timestamp_micros()), Some(last(4)));
    // A row never folded has no last time.
    assert_eq!(
        count(
            &t,
            "SELECT count(*) FROM opsdash.log_event WHERE last_seen IS NOT NULL"
        )
        .await,
        2
    );
}

/// `lines read = events stored + folded + rejected + blank`, in the summary and in
/// `ingest_stat`; a request-like line is one event with a row in each table.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_line_is_accounted_for() {
    let t = TestDb::new().await.unwrap();
    let cfg = IngestConfig {
        batch_size: 3,
        ..Default::default()
    };
    let ts = chrono::Utc::now().to_rfc3339();
    let input = format!(
        "{{\"ts\":\"{ts}\",\"msg\":\"a\"}}\n\
         \n\
         {{\"ts\":\"{ts}\",\"msg\":\"a\"}}\n\
         \x20\t \n\
         {{\"ts\":\"{ts}\",\"msg\":\n\
         level=warn msg=b\n\
         {{\"ts\":\"{ts}\",\"method\":\"GET\",\"path\":\"/x\",\"status\":200}}\n\
         10.0.0.1 - - [10/Oct/2023:13:55:36 +0000] \"GET / HTTP/1.1\" 200 5\n\
         plain text\n\
         \r\n\
         {{\"ts\":\"{ts}\",\"method\":\"GET\",\"path\":\"/x\",\"status\":200}}\n\
         {{broken\n"
    );
    let s = ingest_with(&t, &cfg, opts(Format::Auto, "svc"), input.as_bytes()).await;
    assert!(s.error.is_none(), "{s:?}");
    assert_eq!(s.lines, 12);
    assert_eq!(
        (s.events, s.folded, s.rejected, s.blank),
        (5, 2, 2, 3),
        "{s:?}"
    );
    assert_eq!(s.lines, s.events + s.folded + s.rejected + s.blank);
    // a, b, the request-like line, the access line, plain text: log rows; two JSON requests
    // + the access line.
    assert_eq!((s.logs, s.requests), (5, 3), "{s:?}");
    let line = s.line();
    assert!(
        line.contains("12 lines read = 5 events stored + 2 folded + 2 rejected + 3 blank; 8 rows stored: log_event 5, request_log 3"),
        "{line}"
    );
    let row = sqlx::query(
        "SELECT sum(lines)::bigint, sum(events)::bigint, sum(folded)::bigint,
                sum(rejected)::bigint, sum(blank)::bigint, sum(log_rows)::bigint,
                sum(request_rows)::bigint, sum(rows)::bigint
           FROM opsdash.ingest_stat",
    )
    .fetch_one(&t.db.write)
    .await
    .unwrap();
    let got: Vec<i64> = (0..8).map(|i| row.get::<i64, _>(i)).collect();
    assert_eq!(got, vec![12, 5, 2, 2, 3, 5, 3, 8]);
    assert_eq!(count(&t, "SELECT count(*) FROM opsdash.log_event").await, 5);
    assert_eq!(
        count(&t, "SELECT count(*) FROM opsdash.request_log").await,
        3
    );
}

/// Bytes that are not UTF-8 are replaced and the row says so; nothing is rejected for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_utf8_is_stored_replaced_and_marked() {
    let t = TestDb::new().await.unwrap();
    let mut input = Vec::new();
    input.extend_from_slice(b"ERROR disk \xff full\n");
    input.extend_from_slice(b"{\"msg\":\"caf\xe9\",\"service\":\"api\"}\n");
    input.extend_from_slice(b"level=warn msg=\"bad \xc3\x28 seq\"\n");
    input.extend_from_slice(b"all good\n");
    let s = ingest_with(
        &t,
        &IngestConfig::default(),
        opts(Format::Auto, "svc"),
        &input,
    )
    .await;
    assert!(s.error.is_none(), "{s:?}");
    assert_eq!((s.logs, s.rejected), (4, 0), "{s:?}");
    let rows: Vec<(String, i16, Option<bool>)> = sqlx::query_as(
        "SELECT message, level, (attrs->>'opsdash.invalid_utf8')::bool FROM opsdash.log_event
          ORDER BY id",
    )
    .fetch_all(&t.db.write)
    .await
    .unwrap();
    assert_eq!(
        rows,
        vec![
            ("disk \u{fffd} full".to_string(), 4, Some(true)),
            ("caf\u{fffd}".to_string(), 2, Some(true)),
            ("bad \u{fffd}( seq".to_string(), 3, Some(true)),
            ("all good".to_string(), 2, None),
        ]
    );
    // A line its format cannot read is still rejected.
    let s = ingest_with(
        &t,
        &IngestConfig::default(),
        opts(Format::Json, "svc"),
        b"{\"msg\":\xff\n",
    )
    .await;
    assert_eq!((s.logs, s.rejected), (0, 1), "{s:?}");
}

/// A `--service` given by the user wins over logger/name/component fields, which stay in
/// attrs; without it the line's name is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_given_by_the_user_wins() {
    let t = TestDb::new().await.unwrap();
    let input = "{\"logger\":\"db.pool\",\"msg\":\"a\"}\n\
                 {\"name\":\"http\",\"msg\":\"b\",\"method\":\"GET\",\"path\":\"/\",\"status\":200}\n\
                 {\"component\":\"cache\",\"msg\":\"c\"}\n\
                 {\"msg\":\"d\"}\n";
    let mut o = opts(Format::Json, "checkout");
    o.force_service = true;
    let s = ingest_with(&t, &IngestConfig::default(), o, input.as_bytes()).await;
    assert!(s.error.is_none(), "{s:?}");
    let rows: Vec<(String, String, Option<serde_json::Value>)> =
        sqlx::query_as("SELECT message, service, attrs FROM opsdash.log_event ORDER BY message")
            .fetch_all(&t.db.write)
            .await
            .unwrap();
    assert!(rows.iter().all(|r| r.1 == "checkout"), "{rows:?}");
    assert_eq!(rows[0].2.as_ref().unwrap()["logger"], "db.pool");
    assert_eq!(rows[1].2.as_ref().unwrap()["name"], "http");
    assert_eq!(rows[2].2.as_ref().unwrap()["component"], "cache");
    let req: String = sqlx::query_scalar("SELECT service FROM opsdash.request_log")
        .fetch_one(&t.db.write)
        .await
        .unwrap();
    assert_eq!(req, "checkout");
    let out = binary().args(["ingest", "--help"]).output().unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    assert!(help.contains("wins over the line's own"), "{help}");
}

/// Rows older than the retention period are counted; `--keep` holds their days, the real
/// retention job keeps a held day and drops an unheld one, `retention status` lists the hold.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_lines_are_reported_and_held_with_keep() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let held = dir.path().join("apache2015.log");
    let unheld = dir.path().join("apache2016.log");
    let mut a = String::new();
    let mut b = String::new();
    for i in 0..10 {
        a.push_str(&format!(
            "10.0.0.{i} - - [12/Mar/2015:10:00:0{i} +0000] \"GET /a HTTP/1.1\" 200 5\n"
        ));
        b.push_str(&format!(
            "10.0.0.{i} - - [12/Mar/2016:10:00:0{i} +0000] \"GET /b HTTP/1.1\" 200 5\n"
        ));
    }
    a.push_str(&format!(
        "{{\"ts\":\"{}\",\"msg\":\"new\"}}\n",
        chrono::Utc::now().to_rfc3339()
    ));
    // An info line of a held day: neither dropped nor compacted away (errors-only) while held.
    a.push_str("{\"ts\":\"2015-03-12T10:00:00Z\",\"msg\":\"old info\"}\n");
    std::fs::write(&held, a).unwrap();
    std::fs::write(&unheld, b).unwrap();
    let url = t.url().unwrap();
    let run = |file: &std::path::Path, keep: bool| {
        let mut c = binary();
        c.args(["--database-url", &url, "ingest"]);
        if keep {
            c.arg("--keep");
        }
        let out = c.arg(file).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(out.status.success(), "{stderr}");
        stderr
    };
    let e = run(&held, true);
    assert!(
        e.contains("21 stored rows are older than the retention period"),
        "{e}"
    );
    assert!(e.contains("held from retention until"), "{e}");
    let e = run(&unheld, false);
    assert!(
        e.contains("20 stored rows are older than the retention period"),
        "{e}"
    );
    assert!(
        e.contains("will be dropped by the next retention run"),
        "{e}"
    );
    let holds: Vec<(String, String)> =
        sqlx::query_as("SELECT table_name, partition FROM opsdash.retention_hold ORDER BY 1")
            .fetch_all(&t.db.write)
            .await
            .unwrap();
    assert_eq!(
        holds,
        vec![
            ("log_event".to_string(), "log_event_p20150312".to_string()),
            (
                "request_log".to_string(),
                "request_log_p20150312".to_string()
            )
        ]
    );
    let stat = count(&t, "SELECT sum(old_rows)::bigint FROM opsdash.ingest_stat").await;
    assert_eq!(stat, 41);
    // The real retention job, as the worker runs it.
    let cfg = opsdash::config::RetentionConfig::default();
    let report = opsdash::worker::retention::run_once(&t.db, &cfg, dir.path())
        .await
        .unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(
        count(
            &t,
            "SELECT count(*) FROM opsdash.request_log WHERE ts < '2016-01-01'"
        )
        .await,
        10
    );
    assert_eq!(
        count(&t, "SELECT count(*) FROM opsdash.request_log WHERE ts >= '2016-01-01' AND ts < '2017-01-01'").await,
        0
    );
    // The held day's info rows (the old line and the ten access lines' log rows) survived
    // compaction (log_non_error_keep_days 7); the unheld day's are gone; the new line stays.
    assert_eq!(
        count(&t, "SELECT count(*) FROM opsdash.log_event").await,
        12
    );
    let out = binary()
        .args(["--database-url", &url, "retention", "status"])
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{status}");
    assert!(
        status
            .lines()
            .any(|l| l.contains("request_log_p20150312") && l.contains("--keep")),
        "{status}"
    );
}

/// Heroku router logfmt: `service=` is the duration, `at=error` the level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heroku_router_lines_keep_their_service_and_duration() {
    let t = TestDb::new().await.unwrap();
    let line = r#"at=error code=H12 desc="Request timeout" method=GET path="/" host=x.herokuapp.com request_id=8601b555-6a83-4c12-8269-97c8e32cdb22 fwd="1.2.3.4" dyno=web.1 connect=1ms service=30000ms status=503 bytes=0"#;
    let s = ingest(&t, Format::Logfmt, line).await;
    assert_eq!((s.logs, s.requests), (1, 1), "{s:?}");
    let (service, level, duration): (String, i16, f64) =
        sqlx::query_as("SELECT service, level, duration_ms FROM opsdash.log_event")
            .fetch_one(&t.db.write)
            .await
            .unwrap();
    assert_eq!((service.as_str(), level, duration), ("svc", 4, 30000.0));
    let (service, duration): (String, f64) =
        sqlx::query_as("SELECT service, duration_ms FROM opsdash.request_log")
            .fetch_one(&t.db.write)
            .await
            .unwrap();
    assert_eq!((service.as_str(), duration), ("svc", 30000.0));
}
