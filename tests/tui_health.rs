//! Health: the health-check job against real listeners (HTTP on 127.0.0.1, TCP, Postgres) and
//! the Health tab rendered on TestBackend from what the job stored.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opsdash::config::{Config, ServiceCheck};
use opsdash::db::testkit::TestDb;
use opsdash::tui::app::App;
use ratatui::crossterm::event::KeyCode;
use sqlx::Connection;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod common;
use common::tui;

const INSTANCE: &str = "health-test:1:beef";

/// A tiny HTTP server: /ok -> 200, /bad -> 500, /flaky -> 500 the first time then 200,
/// /slow -> 200 after 300 ms.
async fn http_server() -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let flaky = Arc::new(AtomicUsize::new(0));
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                return;
            };
            let flaky = flaky.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 2048];
                let n = sock.read(&mut buf).await.unwrap_or(0);
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let path = req.split_whitespace().nth(1).unwrap_or("/").to_string();
                let code = match path.as_str() {
                    "/ok" => 200,
                    "/slow" => {
                        tokio::time::sleep(Duration::from_millis(300)).await;
                        200
                    }
                    "/flaky" if flaky.fetch_add(1, Ordering::SeqCst) == 0 => 500,
                    "/flaky" => 200,
                    _ => 500,
                };
                let resp = format!(
                    "HTTP/1.1 {code} X\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok"
                );
                let _ = sock.write_all(resp.as_bytes()).await;
            });
        }
    });
    addr
}

fn check(name: &str, kind: &str, target: String) -> ServiceCheck {
    ServiceCheck {
        name: name.into(),
        kind: kind.into(),
        target,
        expected_status: 200,
        interval_s: 30,
        timeout_ms: 2000,
        retries: 1,
        degraded_ms: 200,
        query: "SELECT 1".into(),
        ca_file: String::new(),
    }
}

fn pg_url(opts: &sqlx::postgres::PgConnectOptions) -> String {
    match opts.get_socket() {
        Some(dir) => format!(
            "postgresql://{}@/{}?host={}&port={}",
            opts.get_username(),
            opts.get_database().unwrap_or("postgres"),
            dir.display(),
            opts.get_port()
        ),
        None => format!(
            "postgresql://{}@{}:{}/{}",
            opts.get_username(),
            opts.get_host(),
            opts.get_port(),
            opts.get_database().unwrap_or("postgres")
        ),
    }
}

async fn closed_port() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    l.local_addr().unwrap().port()
}

fn checks(addr: std::net::SocketAddr, closed: u16, pg: String) -> Vec<ServiceCheck> {
    vec![
        check("api-ok", "http", format!("http://{addr}/ok")),
        check("api-bad", "http", format!("http://{addr}/bad")),
        check("api-flaky", "http", format!("http://{addr}/flaky")),
        check("api-slow", "http", format!("http://{addr}/slow")),
        check("tcp-open", "tcp", addr.to_string()),
        check("tcp-closed", "tcp", format!("127.0.0.1:{closed}")),
        check("pg", "postgres", pg),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_job_runs_http_tcp_and_postgres_checks_and_stores_them() {
    let tdb = TestDb::new().await.unwrap();
    let addr = http_server().await;
    let checks = checks(addr, closed_port().await, pg_url(&tdb.options));
    let cfg = Config {
        service: checks.clone(),
        ..Config::default()
    };
    // Through the job, as the scheduler will run it.
    let job = opsdash::worker::health::job();
    (job.run)(opsdash::worker::JobContext {
        db: tdb.db.clone(),
        cfg: Arc::new(cfg),
        instance: INSTANCE.into(),
        epoch: 1,
    })
    .await
    .unwrap();
    let rows: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT s.name, s.status, s.last_detail FROM opsdash.service s ORDER BY s.name",
    )
    .fetch_all(&tdb.db.read)
    .await
    .unwrap();
    let status = |n: &str| {
        rows.iter()
            .find(|r| r.0 == n)
            .map(|r| (r.1.clone(), r.2.clone().unwrap_or_default()))
            .unwrap_or_else(|| panic!("{n} missing: {rows:?}"))
    };
    assert_eq!(status("api-ok").0, "healthy");
    let (s, d) = status("api-bad");
    assert_eq!(s, "down");
    assert!(d.contains("HTTP 500"), "{d}");
    assert_eq!(status("api-flaky").0, "degraded", "succeeded only on retry");
    assert_eq!(status("api-slow").0, "degraded", "slower than degraded_ms");
    assert_eq!(status("tcp-open").0, "healthy");
    assert_eq!(status("tcp-closed").0, "down");
    assert_eq!(status("pg").0, "healthy");
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.health_check")
        .fetch_one(&tdb.db.read)
        .await
        .unwrap();
    assert_eq!(n, 7);
    // Nothing is due again before the interval has passed.
    opsdash::worker::health::run_due(&tdb.db, &checks)
        .await
        .unwrap();
    let n2: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.health_check")
        .fetch_one(&tdb.db.read)
        .await
        .unwrap();
    assert_eq!(n2, 7);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_tab_renders_services_integrations_database_and_worker() {
    let tdb = TestDb::new().await.unwrap();
    let addr = http_server().await;
    let checks = checks(addr, closed_port().await, pg_url(&tdb.options));
    opsdash::worker::health::run_due(&tdb.db, &checks)
        .await
        .unwrap();
    for sql in [
        "INSERT INTO opsdash.request_log (ts, service, route, status, duration_ms, direction, integration)
         SELECT now() - (i || ' seconds')::interval, 'shop', '/v1/charges',
                CASE WHEN i % 4 = 0 THEN 502 ELSE 200 END, 120, 'outbound', 'stripe'
           FROM generate_series(1, 400) i",
        "INSERT INTO opsdash.worker_lease (job, holder, expires_at, last_run_at, next_run_at, last_error)
         VALUES ('health_checks', 'health-test:1:beef', now() + interval '1 minute', now(),
                 now() + interval '5 seconds', NULL),
                ('retention', 'other:2:cafe', now() - interval '1 minute', now() - interval '2 hours',
                 now() - interval '1 hour', 'disk full')",
    ] {
        sqlx::query(sql).execute(&tdb.db.write).await.unwrap();
    }
    // A blocked session: one transaction holds a lock another waits for.
    let mut holder = sqlx::PgConnection::connect_with(&tdb.options)
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut holder).await.unwrap();
    sqlx::query("LOCK TABLE opsdash.silence IN ACCESS EXCLUSIVE MODE")
        .execute(&mut holder)
        .await
        .unwrap();
    let opts = tdb.options.clone();
    let waiter = tokio::spawn(async move {
        let mut c = sqlx::PgConnection::connect_with(&opts).await.unwrap();
        let _ = sqlx::query("SELECT count(*) FROM opsdash.silence")
            .execute(&mut c)
            .await;
    });
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut app = tui::open(&tdb.db, Config::default(), INSTANCE, false, 1).await;
    tui::press(&mut app, KeyCode::Char('5')).await;
    let draw = |app: &App| {
        let t = tui::buffer_text(&tui::render(app, 80, 24));
        eprintln!("{t}");
        t
    };
    let text = draw(&app);
    assert!(text.contains(" 5 Health "), "{text}");
    assert!(text.contains("Services"), "{text}");
    // Worst first: down services on top, with their status and uptime.
    let down_line = text.lines().position(|l| l.contains("api-bad")).unwrap();
    let ok_line = text.lines().position(|l| l.contains("api-ok")).unwrap();
    assert!(down_line < ok_line, "{text}");
    assert!(text.contains("degraded"), "{text}");
    assert!(text.contains("100%"), "{text}");
    assert!(text.contains("✕"), "failed check in the history:\n{text}");

    tui::press(&mut app, KeyCode::Char('l')).await;
    let text = draw(&app);
    assert!(text.contains("stripe"), "{text}");
    assert!(text.contains("75.0%"), "success rate of stripe:\n{text}");

    tui::press(&mut app, KeyCode::Char('l')).await;
    let text = draw(&app);
    assert!(text.contains("PostgreSQL"), "{text}");
    assert!(text.contains("connections"), "{text}");
    assert!(text.contains("request_log"), "largest tables:\n{text}");
    assert!(text.contains("blocked"), "{text}");
    assert!(text.contains("SELECT count(*) FROM"), "{text}");

    tui::press(&mut app, KeyCode::Char('l')).await;
    let text = draw(&app);
    assert!(text.contains("health_checks"), "{text}");
    assert!(text.contains("this instance"), "{text}");
    assert!(text.contains("expired"), "{text}");
    assert!(text.contains("disk full"), "{text}");

    tui::press(&mut app, KeyCode::Char('l')).await;
    let text = draw(&app);
    assert!(text.contains("Retention"), "{text}");
    assert!(text.contains("audit_event"), "{text}");
    assert!(text.contains("365d"), "{text}");

    sqlx::query("ROLLBACK").execute(&mut holder).await.unwrap();
    let _ = waiter.await;
}
