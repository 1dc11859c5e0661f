//! opsdash through a real PgBouncer (1.24, built by `.ci/setup`, started by the test in front
//! of a throwaway cluster): session mode with one URL, and transaction mode with
//! max_prepared_statements and a direct URL (ingest and the dashboard's reads through the
//! pooler, the live tail woken by LISTEN, alerts fired and delivered exactly once by two
//! workers); transaction mode refused in one line when the pooler passes sqlx's prepared
//! statements through (max_prepared_statements = 0, as PgBouncer before 1.21); and the
//! degraded mode through the pooler with no direct URL, in which the tail polls and still
//! delivers every line.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::pgbouncer::PgBouncer;
use crossterm::event::KeyCode;
use opsdash::config::{Config, Secret};
use opsdash::db::testkit::TestCluster;
use opsdash::db::topology::{Pooling, NO_LISTEN_NOTE};
use opsdash::db::Db;
use opsdash::tail::{self, TailEvent, TailOptions, LISTENER_APP_NAME};
use sqlx::Connection;
use tokio::sync::mpsc::Receiver;

fn config(url: &str, direct: Option<&str>) -> Config {
    let mut cfg = Config::default();
    cfg.database.url = Secret::new(url.to_string());
    if let Some(d) = direct {
        cfg.database.direct_url = Secret::new(d.to_string());
    }
    cfg
}

fn opsdash(url: &str, config: &Path) -> Command {
    let bin = std::env::var("OPSDASH_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_opsdash").to_string());
    let mut c = Command::new(bin);
    c.arg("--database-url").arg(url).arg("--config").arg(config);
    c
}

fn write_config(dir: &Path, command_out: &Path) -> std::path::PathBuf {
    let body = format!(
        r#"
[worker]
lease_ttl_ms = 600

[alert]
tick_ms = 200
group_wait = "200ms"
retry_initial = "100ms"

[[alert.channel]]
name = "script"
kind = "command"
command = ["sh", "-c", "cat >> '{out}'; echo >> '{out}'"]

[[alert.rule]]
name = "edge-errors"
measure = "error_rate"
threshold = 10.0
interval = "1s"
channels = ["script"]
"#,
        out = command_out.display()
    );
    common::procs::write_config(dir, &body)
}

struct Workers(Vec<Child>);

impl Drop for Workers {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Takes tail events until every message in `want` arrived (or `limit` passed); counts each.
async fn collect(
    rx: &mut Receiver<TailEvent>,
    counts: &mut HashMap<String, usize>,
    want: usize,
    limit: Duration,
) {
    let end = tokio::time::Instant::now() + limit;
    while counts.len() < want {
        match tokio::time::timeout_at(end, rx.recv()).await {
            Ok(Some(TailEvent::Lines(lines))) | Ok(Some(TailEvent::Reset(lines))) => {
                for l in lines {
                    *counts.entry(l.message).or_default() += 1;
                }
            }
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
}

fn json_lines(from: usize, to: usize) -> String {
    (from..to)
        .map(|i| {
            format!(
                "{{\"ts\":\"{}\",\"level\":\"info\",\"service\":\"api\",\"message\":\"line {i}\"}}\n",
                chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.6fZ")
            )
        })
        .collect()
}

/// The whole of opsdash through `url` (sessions that need a backend of their own on `direct`
/// when given): the live tail, woken by LISTEN, delivers every ingested line exactly once; two
/// workers fire and deliver one alert; the dashboard's Alerts tab, read through the pooler,
/// shows it.
async fn everything_works(db: &Db, url: &str, direct: Option<&str>, bouncer: &PgBouncer) {
    // The safety-net poll is far longer than the test waits: lines come by NOTIFY or not at all.
    let mut opts = TailOptions::new(10_000);
    opts.poll = Duration::from_secs(60);
    let (_tail, mut rx) = tail::spawn(db, opts);
    let mut counts = HashMap::new();
    let start = Instant::now();
    loop {
        match tokio::time::timeout(Duration::from_secs(20), rx.recv()).await {
            Ok(Some(TailEvent::Listening { .. })) => break,
            Ok(Some(_)) => {}
            other => panic!("the tail never listened: {other:?} {}", bouncer.log()),
        }
        assert!(start.elapsed() < Duration::from_secs(20));
    }

    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("command.out");
    let cfg = write_config(dir.path(), &out);
    let cli = |args: &[&str]| {
        let mut c = opsdash(url, &cfg);
        if let Some(d) = direct {
            c.arg("--direct-url").arg(d);
        }
        c.args(args);
        c
    };
    let mut workers = Workers(Vec::new());
    for i in 0..2 {
        let log = std::fs::File::create(dir.path().join(format!("worker{i}.log"))).unwrap();
        workers.0.push(
            cli(&["worker"])
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .unwrap(),
        );
    }

    // Ingest through the pooler, in two runs.
    for (n, range) in [(0, 0..300), (1, 300..600)] {
        let file = dir.path().join(format!("app{n}.log"));
        std::fs::write(&file, json_lines(range.start, range.end)).unwrap();
        let o = cli(&["ingest", "--format", "json"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(o.status.success(), "ingest through PgBouncer: {o:?}");
    }
    collect(&mut rx, &mut counts, 600, Duration::from_secs(20)).await;
    assert_eq!(counts.len(), 600, "the tail missed lines");
    assert!(counts.values().all(|&n| n == 1), "a line came twice");
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.log_event")
        .fetch_one(&db.write)
        .await
        .unwrap();
    assert_eq!(stored, 600);

    // Errors through the pooler: one alert, one delivery, whichever worker leads.
    let stamp = chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S +0000");
    let access: String = (0..20)
        .map(|i| {
            format!("203.0.113.9 - - [{stamp}] \"GET /pay/{i} HTTP/1.1\" 502 12 \"-\" \"curl/8\" 0.010\n")
        })
        .collect();
    let file = dir.path().join("access.log");
    std::fs::write(&file, access).unwrap();
    let o = cli(&["ingest", "--format", "nginx", "--service", "edge"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(o.status.success(), "{o:?}");
    let deliveries = || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    };
    let logs = || {
        (0..2)
            .map(|i| {
                std::fs::read_to_string(dir.path().join(format!("worker{i}.log")))
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    let start = Instant::now();
    while deliveries() < 1 {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no alert delivered: {}",
            logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // More evaluation rounds in both workers (tick 200 ms): still one alert and one message.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(deliveries(), 1, "{}", logs());
    let alerts: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.alert")
        .fetch_one(&db.write)
        .await
        .unwrap();
    assert_eq!(alerts, 1);
    drop(workers);

    // The dashboard reads through the pooler: the Alerts tab shows the alert.
    let mut app = common::tui::open(db, Config::default(), "pooler-test", true, 1).await;
    common::tui::press(&mut app, KeyCode::Char('3')).await;
    let text = common::tui::buffer_text(&common::tui::render(&app, 120, 30));
    assert!(text.contains("edge-errors"), "{text}");
    assert!(text.contains("Alerts open 1"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_works_with_one_url() {
    let cluster = TestCluster::start("bouncer-session").unwrap();
    let bouncer = PgBouncer::start(&cluster.cluster, "session", 0);
    let url = bouncer.url("opsdash");
    let db = Db::open(&config(&url, None)).await.unwrap();
    assert_eq!(db.topology.pooling(), Pooling::Session);
    assert!(!db.topology.degraded() && db.topology.note().is_none());
    everything_works(&db, &url, None, &bouncer).await;
}

/// PgBouncer 1.21+ with max_prepared_statements keeps sqlx's prepared statements in
/// transaction mode: reads and ingest through it, LISTEN and the workers' sessions on the
/// direct URL.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_mode_with_prepared_statements_and_a_direct_url_works() {
    let cluster = TestCluster::start("bouncer-tx-ps").unwrap();
    let bouncer = PgBouncer::start(&cluster.cluster, "transaction", 200);
    let url = bouncer.url("opsdash");
    let direct = cluster.url();
    let db = Db::open(&config(&url, Some(&direct))).await.unwrap();
    assert_eq!(db.topology.pooling(), Pooling::Transaction);
    assert!(!db.topology.degraded() && db.topology.note().is_none());
    everything_works(&db, &url, Some(&direct), &bouncer).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_mode_is_detected_and_refused_without_prepared_statements() {
    let cluster = TestCluster::start("bouncer-tx").unwrap();
    let bouncer = PgBouncer::start(&cluster.cluster, "transaction", 0);
    let url = bouncer.url("opsdash");
    let direct = cluster.url();
    let err = Db::connect(&config(&url, Some(&direct)))
        .await
        .expect_err("max_prepared_statements = 0 passes sqlx's statement names through");
    let msg = format!("{err:#}");
    assert!(msg.contains("transaction-mode pooler"), "{msg}");
    assert!(msg.contains("max_prepared_statements"), "{msg}");

    // The real CLI says the same in one line instead of failing at random later.
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::procs::write_config(dir.path(), "");
    let o = opsdash(&url, &cfg)
        .arg("--direct-url")
        .arg(&direct)
        .args(["alerts", "list"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "{stderr}");
    assert!(
        stderr.contains("pooler that does not keep prepared statements"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    // The same server in session mode is accepted: the refusal is about the pooling mode.
    let session = PgBouncer::start(&cluster.cluster, "session", 0);
    let db = Db::connect(&config(&session.url("opsdash"), Some(&direct)))
        .await
        .unwrap();
    assert_eq!(db.topology.pooling(), Pooling::Session);
}

/// Degraded mode, really through the transaction pooler (1.24 with max_prepared_statements)
/// and no direct URL: no listener at all, ingest through the pooler, and the tail still
/// delivers every line exactly once by polling; the Health tab says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degraded_mode_through_the_pooler_polls_and_delivers_everything() {
    let cluster = TestCluster::start("bouncer-degraded").unwrap();
    let bouncer = PgBouncer::start(&cluster.cluster, "transaction", 200);
    let url = bouncer.url("opsdash");
    let db = Db::open(&config(&url, None)).await.unwrap();
    assert_eq!(db.topology.pooling(), Pooling::Transaction);
    assert!(db.topology.degraded());
    assert!(db
        .topology
        .note()
        .is_some_and(|n| n.starts_with(NO_LISTEN_NOTE)));
    let health = opsdash::query::health::database(&db).await.unwrap();
    assert!(health
        .pooler_note
        .is_some_and(|n| n.contains("no LISTEN through the pooler")));

    // Were the 60 s poll in force, nothing would arrive within the test's limits.
    let mut opts = TailOptions::new(10_000);
    opts.poll = Duration::from_secs(60);
    let (_tail, mut rx) = tail::spawn(&db, opts);
    let dir = tempfile::tempdir().unwrap();
    let cfg = common::procs::write_config(dir.path(), "");
    for (n, range) in [(0, 0..250), (1, 250..500)] {
        let file = dir.path().join(format!("app{n}.log"));
        std::fs::write(&file, json_lines(range.start, range.end)).unwrap();
        let o = opsdash(&url, &cfg)
            .args(["ingest", "--format", "json"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(o.status.success(), "ingest through PgBouncer: {o:?}");
    }
    let mut counts = HashMap::new();
    collect(&mut rx, &mut counts, 500, Duration::from_secs(15)).await;
    assert_eq!(counts.len(), 500, "{}", bouncer.log());
    assert!(counts.values().all(|&n| n == 1));
    // Asked of the server itself: through the pooler pg_stat_activity would show the same,
    // but the question is whether any backend listens.
    let mut direct = sqlx::PgConnection::connect(&cluster.url()).await.unwrap();
    let listeners: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
    )
    .bind(LISTENER_APP_NAME)
    .fetch_one(&mut direct)
    .await
    .unwrap();
    assert_eq!(listeners, 0, "a listener started in degraded mode");

    // The Health tab's database panel says so, at 80x24.
    let mut app = common::tui::open(&db, Config::default(), "pooler-test", true, 1).await;
    common::tui::press(&mut app, KeyCode::Char('5')).await;
    common::tui::press(&mut app, KeyCode::Char('l')).await;
    common::tui::press(&mut app, KeyCode::Char('l')).await;
    let text = common::tui::buffer_text(&common::tui::render(&app, 80, 24));
    assert!(text.contains("PostgreSQL"), "{text}");
    assert!(text.contains("no LISTEN through the pooler"), "{text}");
    assert!(text.contains("polling every 250 ms"), "{text}");
}
