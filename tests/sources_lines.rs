//! The line formats of issue 14 end to end through a real PostgreSQL: plain-text layouts with
//! their time and level, JSON dialects (pino, structlog, loguru, Serilog CLEF, ECS, OTel),
//! Heroku's router, and PostgreSQL's own log (stderr, csvlog, jsonlog) into query_log and
//! log_event. Fixtures under tests/fixtures/sources/ were written by the real tools where this
//! machine has them (see each directory).

use std::path::Path;

use opsdash::config::IngestConfig;
use opsdash::db::testkit::TestDb;
use opsdash::ingest::{self, AtEof, Format, Options, Pipeline, Summary};
use sqlx::Row;

fn fixture(rel: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sources")
        .join(rel);
    std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

async fn ingest(t: &TestDb, format: Format, input: &[u8]) -> Summary {
    let o = Options {
        format,
        service: "svc".into(),
        source: "test".into(),
        ..Options::default()
    };
    let p = Pipeline::new(t.db.clone(), &IngestConfig::default(), o).unwrap();
    ingest::run(input, p, AtEof::Stop, std::future::pending()).await
}

async fn rows(t: &TestDb, sql: &str) -> Vec<sqlx::postgres::PgRow> {
    sqlx::query(sql).fetch_all(&t.db.write).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_text_layouts_keep_time_and_level() {
    let t = TestDb::new().await.unwrap();
    let input = fixture("text/samples.log");
    let s = ingest(&t, Format::Auto, &input).await;
    let lines = input
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .count() as u64;
    assert_eq!((s.events, s.rejected), (lines, 0), "{}", s.line());
    // Every line but the last (a sentence with no time) carries its own time.
    let r = rows(
        &t,
        "SELECT count(*) FILTER (WHERE ts > now() - interval '1 hour') AS now_ts,
                count(*) FILTER (WHERE level = 4) AS errors,
                count(*) FILTER (WHERE level = 3) AS warns
           FROM opsdash.log_event",
    )
    .await;
    assert_eq!(
        r[0].get::<i64, _>("now_ts"),
        1,
        "only the line without a time"
    );
    assert_eq!(r[0].get::<i64, _>("errors"), 9);
    assert_eq!(r[0].get::<i64, _>("warns"), 2);
    let r = rows(
        &t,
        "SELECT to_char(ts AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.MS') AS t, level, message
           FROM opsdash.log_event WHERE message LIKE 'executor.Executor:%'",
    )
    .await;
    assert_eq!(r[0].get::<String, _>("t"), "2017-06-09 20:11:11.000");
    assert_eq!(r[0].get::<i16, _>("level"), 4);
    // Error lines are grouped.
    let groups: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.error_group")
        .fetch_one(&t.db.write)
        .await
        .unwrap();
    assert_eq!(groups, 9);
    // The sentence with "error" in it stays info.
    let r = rows(
        &t,
        "SELECT level FROM opsdash.log_event WHERE message LIKE 'the user saw%'",
    )
    .await;
    assert_eq!(r[0].get::<i16, _>("level"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_logging_structlog_loguru_pino() {
    let t = TestDb::new().await.unwrap();
    for f in [
        "python/logging.log",
        "structlog/structlog.json",
        "loguru/loguru.json",
        "pino/pino.json",
    ] {
        let s = ingest(&t, Format::Auto, &fixture(f)).await;
        assert_eq!(s.rejected, 0, "{f}: {}", s.line());
    }
    let r = rows(
        &t,
        "SELECT level, count(*) AS n FROM opsdash.log_event GROUP BY level ORDER BY level",
    )
    .await;
    let by: Vec<(i16, i64)> = r.iter().map(|r| (r.get("level"), r.get("n"))).collect();
    // trace: pino 1; debug: logging 1 + pino 1; info: logging, structlog, loguru, pino 1 each;
    // warn: 1 each; error: logging, structlog, loguru, pino; fatal: logging CRITICAL, pino 60.
    assert_eq!(by, vec![(0, 1), (1, 2), (2, 4), (3, 4), (4, 4), (5, 2)]);
    let r = rows(
        &t,
        "SELECT message, error_type, attrs FROM opsdash.log_event WHERE level = 4 ORDER BY message",
    )
    .await;
    let got: Vec<(String, Option<String>)> = r
        .iter()
        .map(|r| (r.get("message"), r.get("error_type")))
        .collect();
    assert_eq!(
        got,
        vec![
            ("charge failed".into(), Some("ZeroDivisionError".into())),
            ("lookup failed".into(), Some("KeyError".into())),
            ("payment failed".into(), Some("Error".into())),
            ("pool exhausted after 3 waits".into(), None),
        ]
    );
    // loguru's bound context reaches its column; its rendering is not kept twice.
    let r = rows(
        &t,
        "SELECT request_id, attrs FROM opsdash.log_event WHERE message = 'user logged in'",
    )
    .await;
    assert_eq!(r[0].get::<String, _>("request_id"), "rq-1");
    let attrs: serde_json::Value = r[0].get("attrs");
    assert!(attrs.get("text").is_none(), "{attrs}");
    assert_eq!(attrs["record"]["function"], "<module>");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clef_ecs_otel_and_heroku() {
    let t = TestDb::new().await.unwrap();
    for f in [
        "clef/clef.json",
        "ecs/ecs.json",
        "otel/otel.json",
        "heroku/router.log",
    ] {
        let s = ingest(&t, Format::Auto, &fixture(f)).await;
        assert_eq!(s.rejected, 0, "{f}: {}", s.line());
    }
    let one = |sql: &'static str| {
        let t = &t;
        async move { rows(t, sql).await.remove(0) }
    };
    let r =
        one("SELECT level, message FROM opsdash.log_event WHERE message LIKE 'Processed%'").await;
    assert_eq!(
        r.get::<String, _>("message"),
        "Processed {\"Latitude\":25,\"Longitude\":134} in 34 ms."
    );
    assert_eq!(r.get::<i16, _>("level"), 2);
    let r = one(
        "SELECT message FROM opsdash.log_event WHERE ts = '2024-01-02T03:04:06Z' AND attrs ? '@mt'",
    )
    .await;
    assert_eq!(
        r.get::<String, _>("message"),
        "Order 17 shipped to {warehouse} north"
    );
    let r = one(
        "SELECT level, error_type FROM opsdash.log_event WHERE message = 'Payment for 18 failed'",
    )
    .await;
    assert_eq!(r.get::<i16, _>("level"), 4);
    assert_eq!(
        r.get::<String, _>("error_type"),
        "System.InvalidOperationException"
    );
    // No @l is Information, even with an exception.
    let r =
        one("SELECT level, error_type FROM opsdash.log_event WHERE message = 'Retry scheduled'")
            .await;
    assert_eq!(r.get::<i16, _>("level"), 2);
    assert_eq!(r.get::<String, _>("error_type"), "System.TimeoutException");
    // ECS, flat and nested.
    let r = one("SELECT level, service, trace_id, error_type FROM opsdash.log_event WHERE message = 'upstream timed out'").await;
    assert_eq!(r.get::<i16, _>("level"), 4);
    assert_eq!(r.get::<String, _>("service"), "checkout");
    assert_eq!(
        r.get::<String, _>("trace_id"),
        "4bf92f3577b34da6a3ce929d0e0e4736"
    );
    assert_eq!(r.get::<String, _>("error_type"), "TimeoutError");
    let r = one(
        "SELECT level, service, host, trace_id FROM opsdash.log_event WHERE message = 'slow query'",
    )
    .await;
    assert_eq!(r.get::<i16, _>("level"), 3);
    assert_eq!(r.get::<String, _>("service"), "orders");
    assert_eq!(r.get::<String, _>("host"), "web-2");
    assert_eq!(
        r.get::<String, _>("trace_id"),
        "0af7651916cd43dd8448eb211c80319c"
    );
    let r = one(
        "SELECT method, route, status, duration_ms FROM opsdash.request_log WHERE service = 'api'",
    )
    .await;
    assert_eq!(r.get::<String, _>("method"), "GET");
    assert_eq!(r.get::<String, _>("route"), "/api/users/:id");
    assert_eq!(r.get::<i16, _>("status"), 200);
    assert_eq!(r.get::<f64, _>("duration_ms"), 12.5);
    // OTel.
    let r = one("SELECT level, service, host, span_id FROM opsdash.log_event WHERE message = 'payment declined'").await;
    assert_eq!(r.get::<i16, _>("level"), 4);
    assert_eq!(r.get::<String, _>("service"), "payments");
    assert_eq!(r.get::<String, _>("host"), "node-7");
    assert_eq!(r.get::<String, _>("span_id"), "eee19b7ec3c1b174");
    let r =
        one("SELECT level, ts::text AS ts FROM opsdash.log_event WHERE message = 'retrying'").await;
    assert_eq!(r.get::<i16, _>("level"), 3);
    assert_eq!(r.get::<String, _>("ts"), "2024-01-02 03:04:06+00");
    // Heroku router: requests, `service=` is the duration.
    let r = rows(&t, "SELECT status, duration_ms, service FROM opsdash.request_log WHERE route LIKE '/checkout%' OR route = '/' ORDER BY status").await;
    let got: Vec<(i16, f64, String)> = r
        .iter()
        .map(|r| (r.get("status"), r.get("duration_ms"), r.get("service")))
        .collect();
    assert_eq!(
        got,
        vec![(200, 18.0, "svc".into()), (503, 30000.0, "svc".into())]
    );
}

/// The same server activity in its three destinations gives the same query rows and errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_server_log_in_each_destination() {
    for (file, format, app) in [
        ("postgres/default.log", Format::Auto, false),
        ("postgres/prefixed.log", Format::Auto, true),
        ("postgres/default.csv", Format::Auto, true),
        ("postgres/default.json", Format::Auto, true),
        ("postgres/prefixed.log", Format::Postgres, true),
    ] {
        let t = TestDb::new().await.unwrap();
        let s = ingest(&t, format, &fixture(file)).await;
        assert_eq!(s.rejected, 0, "{file}: {}", s.line());
        let formats = s.formats_line();
        assert!(formats.contains("postgres"), "{file}: {formats}");
        let q = rows(
            &t,
            "SELECT service, database, query, fingerprint, duration_ms FROM opsdash.query_log ORDER BY ts, query",
        )
        .await;
        let insert = q
            .iter()
            .find(|r| {
                r.get::<String, _>("query")
                    .starts_with("INSERT INTO orders")
            })
            .unwrap_or_else(|| panic!("{file}: no INSERT in query_log"));
        assert_eq!(
            insert.get::<String, _>("query"),
            "INSERT INTO orders VALUES ($1, $2, $3), ($4, $5, $6);",
            "{file}"
        );
        assert!(insert.get::<f64, _>("duration_ms") > 0.0);
        if app {
            assert_eq!(insert.get::<String, _>("service"), "billing", "{file}");
            assert_eq!(
                insert.get::<Option<String>, _>("database").as_deref(),
                Some("shop"),
                "{file}"
            );
        }
        let select = q
            .iter()
            .find(|r| r.get::<String, _>("query").starts_with("SELECT *"))
            .unwrap_or_else(|| panic!("{file}: no SELECT in query_log"));
        // A statement written over three lines: jsonlog keeps it in one line, stderr continues
        // it on tab-indented lines and csvlog inside a quoted field; the joiner makes one event.
        assert_eq!(
            select.get::<String, _>("query"),
            "SELECT * FROM orders WHERE id = $1;",
            "{file}"
        );
        let parts: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM opsdash.log_event WHERE attrs->>'pg_part' = 'continuation'",
        )
        .fetch_one(&t.db.write)
        .await
        .unwrap();
        assert_eq!(parts, 0, "{file}: continuation lines are joined, not rows");
        // The deadlock is recognisable, its message kept.
        let d = rows(&t, "SELECT level, message, attrs FROM opsdash.log_event WHERE error_type = 'deadlock_detected'").await;
        assert_eq!(d.len(), 1, "{file}");
        assert_eq!(d[0].get::<i16, _>("level"), 4);
        assert_eq!(d[0].get::<String, _>("message"), "deadlock detected");
        // The missing table is an error row; where the log has the SQLSTATE, it is named.
        let e = rows(&t, "SELECT error_type, attrs FROM opsdash.log_event WHERE message LIKE 'relation \"missing_table\" does not exist%'").await;
        assert_eq!(e.len(), 1, "{file}");
        if file.ends_with(".csv") || file.ends_with(".json") {
            assert_eq!(
                e[0].get::<Option<String>, _>("error_type").as_deref(),
                Some("undefined_table")
            );
            let attrs: serde_json::Value = e[0].get("attrs");
            assert_eq!(attrs["sqlstate"], "42P01");
            assert_eq!(attrs["statement"], "SELECT * FROM missing_table;");
        }
        // Statements are query rows, not log rows.
        let n: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM opsdash.log_event WHERE message LIKE 'duration:%statement:%'",
        )
        .fetch_one(&t.db.write)
        .await
        .unwrap();
        assert_eq!(n, 0, "{file}");
    }
}

/// `ingest.timezone` reads times written without a zone, and the summary line says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_without_a_zone_are_read_in_the_configured_zone() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    std::fs::write(&config, "[ingest]\ntimezone = \"+02:00\"\n").unwrap();
    let input = dir.path().join("app.log");
    std::fs::write(
        &input,
        "2024-01-02 03:04:05,678 - app.db - ERROR - pool exhausted\n\
         2024-01-02T03:04:06Z INFO with its own zone\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_opsdash"))
        .env_remove("OPSDASH_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .arg("--config")
        .arg(&config)
        .args(["--database-url", &t.url().unwrap(), "ingest"])
        .arg(&input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("times without a zone read as UTC+02:00 (ingest.timezone)"),
        "{stderr}"
    );
    let ts: Vec<String> = sqlx::query_scalar(
        "SELECT to_char(ts AT TIME ZONE 'UTC', 'HH24:MI:SS.MS') FROM opsdash.log_event ORDER BY ts",
    )
    .fetch_all(&t.db.write)
    .await
    .unwrap();
    assert_eq!(ts, vec!["01:04:05.678", "03:04:06.000"]);
}

/// `--format 'nginx:<log_format>'` reads a custom layout (durations from $request_time) and
/// rejects the lines it does not match.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_nginx_layout_from_the_command_line() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("access.log");
    std::fs::write(
        &input,
        "10.0.0.1 [2024-01-02T03:04:05+00:00] \"GET /orders/17 HTTP/1.1\" 200 512 rt=0.125 uct=0.001\n\
         10.0.0.2 [2024-01-02T03:04:06+00:00] \"POST /orders HTTP/1.1\" 503 0 rt=2.000 uct=-\n\
         not an access line\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_opsdash"))
        .env_remove("OPSDASH_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env("XDG_CONFIG_HOME", dir.path())
        .args(["--database-url", &t.url().unwrap(), "ingest", "--format"])
        .arg("nginx:$remote_addr [$time_iso8601] \"$request\" $status $body_bytes_sent rt=$request_time uct=$upstream_connect_time")
        .arg(&input)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "one line rejected: {stderr}");
    assert!(
        stderr.contains("line 3: does not match the layout"),
        "{stderr}"
    );
    let r = rows(
        &t,
        "SELECT method, route, status, duration_ms, ip FROM opsdash.request_log ORDER BY ts",
    )
    .await;
    let got: Vec<(String, String, i16, f64, String)> = r
        .iter()
        .map(|r| {
            (
                r.get("method"),
                r.get("route"),
                r.get("status"),
                r.get("duration_ms"),
                r.get("ip"),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "GET".into(),
                "/orders/:id".into(),
                200,
                125.0,
                "10.0.0.1".into()
            ),
            (
                "POST".into(),
                "/orders".into(),
                503,
                2000.0,
                "10.0.0.2".into()
            ),
        ]
    );
}

/// An access log (real nginx, stock `combined` format) shows in the Logs tab: a log row per
/// request beside its request row, at a level its status gives, read by the Logs tab's own
/// query and filters, with 5xx grouped as errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_combined_lines_are_log_rows_too() {
    let t = TestDb::new().await.unwrap();
    let input = fixture("nginx/combined.log");
    let o = Options {
        format: Format::Auto,
        service: "web".into(),
        source: "test".into(),
        ..Options::default()
    };
    let p = Pipeline::new(t.db.clone(), &IngestConfig::default(), o).unwrap();
    let s = ingest::run(&input[..], p, AtEof::Stop, std::future::pending()).await;
    // 10 requests; the two identical 503s of one second are one log row seen twice.
    assert_eq!(
        (s.rejected, s.requests, s.logs, s.folded),
        (0, 10, 9, 1),
        "{}",
        s.line()
    );
    assert!(s.formats_line().contains("access 9"), "{}", s.line());
    let filter = |f: &str| opsdash::filter::parse(f).unwrap();
    let page = |f: &str| {
        let f = filter(f);
        let pool = t.db.write.clone();
        async move {
            opsdash::query::logs::page(&pool, &f, None, 100)
                .await
                .unwrap()
        }
    };
    // The Logs tab's query with its filters: errors are the 5xx, warnings the 4xx.
    let errors = page("service:web level:error").await;
    let mut got: Vec<(String, Option<i16>, i32, Option<String>)> = errors
        .iter()
        .map(|l| {
            (
                l.message.clone(),
                l.status,
                l.repeat_count,
                l.error_type.clone(),
            )
        })
        .collect();
    got.sort();
    assert_eq!(
        got,
        vec![
            (
                "GET /checkout 503".into(),
                Some(503),
                2,
                Some("HTTP 503".into())
            ),
            (
                "GET /upstream/payments/99 502".into(),
                Some(502),
                1,
                Some("HTTP 502".into())
            ),
        ]
    );
    let warns = page("level:warn status:4xx").await;
    assert_eq!(warns.len(), 3, "404, 405 and the TLS handshake's 400");
    assert_eq!(page("level:info").await.len(), 4);
    // The request's columns are filled as for a JSON request line.
    let users = page("route:/api/users").await;
    assert_eq!(users.len(), 1);
    let u = &users[0];
    assert_eq!(u.method.as_deref(), Some("GET"));
    assert_eq!(u.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(u.status, Some(200));
    assert!(
        u.message.starts_with("GET /api/users?page=2&token="),
        "{}",
        u.message
    );
    assert!(!u.message.contains("abc123"), "redacted: {}", u.message);
    let attrs = u.attrs.clone().unwrap_or_default();
    assert_eq!(attrs["referer"], "http://127.0.0.1:18089/");
    let alice = page("user:alice").await;
    assert_eq!(alice.len(), 1);
    assert_eq!(alice[0].message, "GET /index.html 200");
    // 5xx are error groups, one per status and request shape.
    let groups: Vec<(String, i64)> = sqlx::query_as(
        "SELECT error_type, count::bigint FROM opsdash.error_group ORDER BY error_type",
    )
    .fetch_all(&t.db.write)
    .await
    .unwrap();
    assert_eq!(groups, vec![("HTTP 502".into(), 1), ("HTTP 503".into(), 2)]);
}

/// Two pipelines of one process with different `ingest.timezone`s (a test binary, `opsdash
/// serve` beside an ingest): each reads zone-less times in its own zone and counts its own,
/// whichever was made last.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_pipeline_reads_times_in_its_own_zone() {
    let t = TestDb::new().await.unwrap();
    let pipeline = |zone: &str, service: &str| {
        let cfg = IngestConfig {
            timezone: zone.into(),
            ..IngestConfig::default()
        };
        let o = Options {
            service: service.into(),
            source: service.into(),
            ..Options::default()
        };
        Pipeline::new(t.db.clone(), &cfg, o).unwrap()
    };
    let mut berlin = pipeline("Europe/Berlin", "berlin");
    berlin
        .push_line(b"2024-07-01 12:00:00 INFO first")
        .await
        .unwrap();
    // Made after the Berlin one: it used to set the zone of the whole process.
    let mut utc = pipeline("UTC", "utc");
    utc.push_line(b"2024-07-01 12:00:00 INFO first")
        .await
        .unwrap();
    berlin
        .push_line(b"2024-07-01 12:00:01 INFO second")
        .await
        .unwrap();
    berlin
        .push_line(b"2024-07-01T12:00:02Z INFO with its own zone")
        .await
        .unwrap();
    let (b, u) = (berlin.finish().await, utc.finish().await);
    assert_eq!(
        (b.zoneless, b.zone.as_str()),
        (2, "Europe/Berlin"),
        "{}",
        b.line()
    );
    assert_eq!((u.zoneless, u.zone.as_str()), (1, "UTC"), "{}", u.line());
    let got: Vec<(String, String)> = sqlx::query_as(
        "SELECT service, to_char(ts AT TIME ZONE 'UTC', 'HH24:MI:SS') FROM opsdash.log_event
          ORDER BY service, ts",
    )
    .fetch_all(&t.db.write)
    .await
    .unwrap();
    let got: Vec<(&str, &str)> = got.iter().map(|(s, t)| (s.as_str(), t.as_str())).collect();
    assert_eq!(
        got,
        vec![
            ("berlin", "10:00:00"),
            ("berlin", "10:00:01"),
            ("berlin", "12:00:02"),
            ("utc", "12:00:00"),
        ]
    );
}
