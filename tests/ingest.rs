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
    assert_eq!((s.requests, s.logs, s.rejected), (2, 0, 0), "{s:?}");
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
    assert_eq!((s.logs, s.requests, s.rejected), (3, 1, 1), "{s:?}");
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
    input.extend(b"{\"msg\":\"bad \xff\xfe utf8\"}\n"); // 3 invalid UTF-8
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
    assert_eq!(s.rejected, 5, "{:?}", s.first_rejects);
    let lines: Vec<u64> = s.first_rejects.iter().map(|r| r.line).collect();
    assert_eq!(lines, vec![2, 3, 4, 5, 8]);
    assert!(
        s.first_rejects[0].reason.starts_with("invalid JSON"),
        "{:?}",
        s.first_rejects
    );
    assert!(s.first_rejects[1].reason.contains("UTF-8"));
    assert!(s.first_rejects[2].reason.contains("longer than"));
    assert!(s.first_rejects[3].reason.contains("timestamp"));
    let msgs: Vec<String> = sqlx::query_scalar("SELECT message FROM opsdash.log_event ORDER BY id")
        .fetch_all(&t.db.write)
        .await
        .unwrap();
    assert_eq!(
        msgs,
        vec![
            "good 1",
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
    assert_eq!(stat, (5, 5));
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
    assert_eq!((s.logs, s.requests, s.rejected), (3, 1, 0), "{s:?}");
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
    // Request-only batches do not wake the log tail.
    ingest(
        &t,
        Format::Nginx,
        "1.1.1.1 - - [10/Oct/2023:13:55:36 +0000] \"GET / HTTP/1.1\" 200 1\n",
    )
    .await;
    let none = tokio::time::timeout(Duration::from_millis(300), listener.recv()).await;
    assert!(none.is_err(), "unexpected notification");
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
    assert!(stderr.contains("3 rows stored"), "{stderr}");
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
    assert!(stderr.contains("5 rows stored"), "{stderr}");
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
    assert!(lines[1].contains("2 rows stored"), "{stderr}");
    assert!(lines[1].contains("1 lines rejected"), "{stderr}");
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
