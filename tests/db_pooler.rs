//! opsdash through a real PgBouncer (Debian's, started by the test in front of a throwaway
//! cluster): session mode with one URL (ingest through the pooler, the live tail woken by
//! LISTEN through it, alerts fired and delivered exactly once by two workers); transaction mode
//! detected, and refused in one line when the pooler cannot carry prepared statements (PgBouncer
//! before 1.21: sqlx prepares in one round trip and binds in the next); and the degraded mode
//! (no LISTEN) in which the tail polls and still delivers every line.

mod common;

use std::collections::HashMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::pgbouncer::PgBouncer;
use crossterm::event::KeyCode;
use opsdash::config::{Config, Secret};
use opsdash::db::testkit::{TestCluster, TestDb};
use opsdash::db::topology::{Pooling, NO_LISTEN_NOTE};
use opsdash::db::Db;
use opsdash::tail::{self, TailEvent, TailOptions, LISTENER_APP_NAME};
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

async fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_mode_works_with_one_url() {
    let cluster = TestCluster::start("bouncer-session").unwrap();
    let bouncer = PgBouncer::start(&cluster.cluster, "session");
    let url = bouncer.url("opsdash");
    let db = Db::open(&config(&url, None)).await.unwrap();
    assert_eq!(db.topology.pooling(), Pooling::Session);
    assert!(!db.topology.degraded() && db.topology.note().is_none());

    // The safety-net poll is far longer than the test waits: lines come by NOTIFY, through the
    // pooler, or not at all.
    let mut opts = TailOptions::new(10_000);
    opts.poll = Duration::from_secs(60);
    let (_tail, mut rx) = tail::spawn(&db, opts);
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
    let mut workers = Workers(Vec::new());
    for i in 0..2 {
        let log = std::fs::File::create(dir.path().join(format!("worker{i}.log"))).unwrap();
        workers.0.push(
            opsdash(&url, &cfg)
                .arg("worker")
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
        let o = opsdash(&url, &cfg)
            .args(["ingest", "--format", "json"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(o.status.success(), "ingest through PgBouncer: {o:?}");
    }
    collect(&mut rx, &mut counts, 600, Duration::from_secs(20)).await;
    assert_eq!(counts.len(), 600, "the tail missed lines");
    assert!(counts.values().all(|&n| n == 1), "a line came twice");

    // Errors through the pooler: one alert, one delivery, whichever worker leads.
    let stamp = chrono::Utc::now().format("%d/%b/%Y:%H:%M:%S +0000");
    let access: String = (0..20)
        .map(|i| {
            format!("203.0.113.9 - - [{stamp}] \"GET /pay/{i} HTTP/1.1\" 502 12 \"-\" \"curl/8\" 0.010\n")
        })
        .collect();
    let file = dir.path().join("access.log");
    std::fs::write(&file, access).unwrap();
    let o = opsdash(&url, &cfg)
        .args(["ingest", "--format", "nginx", "--service", "edge"])
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
    wait_for("the alert's delivery", Duration::from_secs(30), || {
        deliveries() >= 1
    })
    .await;
    // More evaluation rounds in both workers: still one alert and one message.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(deliveries(), 1);
    let alerts: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.alert")
        .fetch_one(&db.write)
        .await
        .unwrap();
    assert_eq!(alerts, 1);
    drop(workers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transaction_mode_is_detected_and_refused_without_prepared_statements() {
    let cluster = TestCluster::start("bouncer-tx").unwrap();
    let bouncer = PgBouncer::start(&cluster.cluster, "transaction");
    let url = bouncer.url("opsdash");
    let direct = cluster.url();
    let err = Db::connect(&config(&url, Some(&direct)))
        .await
        .expect_err("PgBouncer 1.18 in transaction mode cannot carry sqlx's statements");
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
        stderr.contains("does not keep prepared statements"),
        "{stderr}"
    );
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");

    // The same server in session mode is accepted: the refusal is about the pooling mode.
    let session = PgBouncer::start(&cluster.cluster, "session");
    let db = Db::connect(&config(&session.url("opsdash"), Some(&direct)))
        .await
        .unwrap();
    assert_eq!(db.topology.pooling(), Pooling::Session);
}

/// Degraded mode as the probe leaves it behind a transaction pooler with no direct URL
/// (set here by hand: Debian's PgBouncer 1.18 is refused before this point, see above): no
/// listener at all, and the tail still delivers every line, by polling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn degraded_mode_tail_polls_without_listen_and_delivers_everything() {
    let t = TestDb::new().await.unwrap();
    t.db.topology.set_pooling(Pooling::Transaction);
    assert!(t.db.topology.degraded());
    assert!(t
        .db
        .topology
        .note()
        .is_some_and(|n| n.starts_with(NO_LISTEN_NOTE)));
    let health = opsdash::query::health::database(&t.db).await.unwrap();
    assert!(health
        .pooler_note
        .is_some_and(|n| n.contains("no LISTEN through the pooler")));

    // Were the 60 s poll in force, nothing would arrive within the test's limits.
    let mut opts = TailOptions::new(10_000);
    opts.poll = Duration::from_secs(60);
    let (_tail, mut rx) = tail::spawn(&t.db, opts);
    let mut counts = HashMap::new();
    for batch in 0..5 {
        sqlx::query(
            "INSERT INTO opsdash.log_event (ts, level, service, message)
             SELECT now(), 2, 'api', 'batch ' || $1 || ' row ' || g FROM generate_series(1, 100) g",
        )
        .bind(batch)
        .execute(&t.db.write)
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    collect(&mut rx, &mut counts, 500, Duration::from_secs(10)).await;
    assert_eq!(counts.len(), 500);
    assert!(counts.values().all(|&n| n == 1));
    let listeners: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_stat_activity WHERE application_name = $1 AND datname = current_database()",
    )
    .bind(LISTENER_APP_NAME)
    .fetch_one(&t.db.write)
    .await
    .unwrap();
    assert_eq!(listeners, 0, "a listener started in degraded mode");

    // The Health tab's database panel says so, at 80x24.
    let mut app = common::tui::open(&t.db, Config::default(), "pooler-test", true, 1).await;
    common::tui::press(&mut app, KeyCode::Char('5')).await;
    common::tui::press(&mut app, KeyCode::Char('l')).await;
    common::tui::press(&mut app, KeyCode::Char('l')).await;
    let text = common::tui::buffer_text(&common::tui::render(&app, 80, 24));
    assert!(text.contains("PostgreSQL"), "{text}");
    assert!(text.contains("no LISTEN through the pooler"), "{text}");
    assert!(text.contains("polling every 250 ms"), "{text}");
}
