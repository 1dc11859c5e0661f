//! Events that span or carry more than one line's worth, end to end through PostgreSQL: stack
//! traces written by real runtimes (Python logging, Java, Node, Rust; a Go panic in the
//! runtime's format) stored as one error event each and grouped by exception and frames,
//! `--follow` storing a slowly written trace within a second of its last line, checkpoints
//! that never pass a pending trace, and audit events from application JSON lines and sshd
//! auth.log lines, down to the shipped brute-force rule firing in a real worker.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::procs::{write_config, Children};
use opsdash::config::IngestConfig;
use opsdash::db::testkit::TestDb;
use opsdash::ingest::{self, AtEof, Format, Options, Pipeline, Summary};

const LIMIT: Duration = Duration::from_secs(30);

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/sources")
        .join(name)
}

fn opts(service: &str) -> Options {
    Options {
        format: Format::Auto,
        service: service.into(),
        source: "test".into(),
        ..Options::default()
    }
}

async fn ingest(t: &TestDb, o: Options, input: &[u8]) -> Summary {
    let p = Pipeline::new(t.db.clone(), &IngestConfig::default(), o).unwrap();
    let s = ingest::run(input, p, AtEof::Stop, std::future::pending()).await;
    assert!(s.error.is_none(), "{s:?}");
    assert_eq!(
        s.lines,
        s.events + s.joined + s.folded + s.rejected + s.blank,
        "{s:?}"
    );
    s
}

/// Message, whether the level is error or above, error type, fingerprint.
async fn messages(t: &TestDb) -> Vec<(String, bool, Option<String>, Option<String>)> {
    sqlx::query_as(
        "SELECT message, level >= 4, error_type, fingerprint FROM opsdash.log_event ORDER BY id",
    )
    .fetch_all(&t.db.write)
    .await
    .unwrap()
}

/// The fixture's events: each line that does not continue the one before starts one.
async fn check_traces(file: &str, want_events: usize, want_errors: usize) {
    let t = TestDb::new().await.unwrap();
    let input = std::fs::read(fixture(file)).unwrap();
    let s = ingest(&t, opts("app"), &input).await;
    let rows = messages(&t).await;
    // Repeated one-line events ("next request") are folded into one row.
    assert_eq!(
        (s.events + s.folded) as usize,
        want_events,
        "{file}: {s:?}\n{rows:#?}"
    );
    assert_eq!(rows.len(), s.events as usize, "{file}: {rows:#?}");
    assert_eq!(s.rejected, 0, "{file}: {s:?}");
    // Nothing lost: the stored texts and the blank lines give back the file.
    let text = String::from_utf8(input).unwrap();
    let non_blank: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let stored: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
    let joined = stored.join("\n");
    // The first line of an event loses its time and level to their columns: its tail remains.
    for l in &non_blank {
        let l = l.trim_end();
        let tail = &l[l.char_indices().rev().nth(11).map_or(0, |(i, _)| i)..];
        assert!(joined.contains(tail), "{file}: line {l:?} not stored");
    }
    let errors: Vec<_> = rows.iter().filter(|r| r.0.contains('\n')).collect();
    assert_eq!(errors.len(), want_errors, "{file}: {rows:#?}");
    for e in &errors {
        assert!(e.1, "{file}: a trace is an error: {e:?}");
        assert!(e.2.is_some(), "{file}: exception type of {e:?}");
        assert!(e.3.is_some(), "{file}: fingerprint of {e:?}");
    }
}

#[tokio::test]
async fn python_tracebacks_are_one_event_each_and_group_by_exception() {
    check_traces("multiline/python_logging.log", 5, 3).await;
    let t = TestDb::new().await.unwrap();
    let input = std::fs::read(fixture("multiline/python_logging.log")).unwrap();
    ingest(&t, opts("billing"), &input).await;
    let rows = messages(&t).await;
    let value_errors: Vec<_> = rows
        .iter()
        .filter(|r| r.2.as_deref() == Some("ValueError"))
        .collect();
    assert_eq!(value_errors.len(), 2, "{rows:#?}");
    assert_eq!(
        value_errors[0].3, value_errors[1].3,
        "one exception from two orders is one group"
    );
    let chained = rows
        .iter()
        .find(|r| r.0.contains("During handling"))
        .unwrap();
    assert_eq!(chained.2.as_deref(), Some("RuntimeError"), "{chained:?}");
    assert_ne!(chained.3, value_errors[0].3);
    let groups: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.error_group")
        .fetch_one(&t.db.write)
        .await
        .unwrap();
    assert_eq!(groups, 2);
}

#[tokio::test]
async fn java_node_rust_and_go_traces_are_one_event_each() {
    check_traces("multiline/java.log", 4, 2).await;
    check_traces("multiline/node.log", 4, 2).await;
    check_traces("multiline/rust.log", 3, 1).await;
    check_traces("multiline/go_panic.log", 3, 1).await;
    let t = TestDb::new().await.unwrap();
    ingest(
        &t,
        opts("shop"),
        &std::fs::read(fixture("multiline/java.log")).unwrap(),
    )
    .await;
    let rows = messages(&t).await;
    let traces: Vec<_> = rows.iter().filter(|r| r.0.contains('\n')).collect();
    assert_eq!(traces[0].2.as_deref(), Some("java.lang.RuntimeException"));
    assert_eq!(
        traces[0].3, traces[1].3,
        "same exception, two requests: one group"
    );
}

#[tokio::test]
async fn joined_lines_are_accounted_for_in_the_summary_and_ingest_stat() {
    let t = TestDb::new().await.unwrap();
    let input = std::fs::read(fixture("multiline/go_panic.log")).unwrap();
    let s = ingest(&t, opts("worker"), &input).await;
    // 15 lines: 3 events, 10 continuation lines, 2 blank.
    assert_eq!(
        (s.lines, s.events, s.joined, s.blank),
        (15, 3, 10, 2),
        "{s:?}"
    );
    assert!(
        s.line()
            .contains("15 lines read = 3 events stored + 10 lines joined into them + 0 folded"),
        "{}",
        s.line()
    );
    let (lines, events, joined, blank): (i64, i64, i64, i64) = sqlx::query_as(
        "SELECT sum(lines)::int8, sum(events)::int8, sum(joined)::int8, sum(blank)::int8
           FROM opsdash.ingest_stat",
    )
    .fetch_one(&t.db.write)
    .await
    .unwrap();
    assert_eq!((lines, events, joined, blank), (15, 3, 10, 2));
}

fn bin() -> Command {
    let bin = std::env::var("OPSDASH_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_opsdash").to_string());
    let mut c = Command::new(bin);
    c.env_remove("OPSDASH_DATABASE_URL")
        .env_remove("DATABASE_URL")
        .env(
            "XDG_CONFIG_HOME",
            std::env::temp_dir().join("opsdash-events-test-noconfig"),
        );
    c
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn follow(t: &TestDb, file: &Path, err: &Path) -> Running {
    Running(
        bin()
            .args(["--database-url", &t.url().unwrap(), "ingest", "--follow"])
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(err).unwrap())
            .spawn()
            .unwrap(),
    )
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

async fn stored(t: &TestDb) -> Vec<String> {
    messages(t).await.into_iter().map(|r| r.0).collect()
}

async fn wait_rows(t: &TestDb, what: &str, err: &Path, done: impl Fn(&[String]) -> bool) {
    let start = Instant::now();
    loop {
        let rows = stored(t).await;
        if done(&rows) {
            return;
        }
        assert!(
            start.elapsed() < LIMIT,
            "timed out waiting for {what}: {rows:#?}\n{}",
            std::fs::read_to_string(err).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_stores_a_slowly_written_trace_as_one_event_within_a_second() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("app.log");
    let err = dir.path().join("ingest.stderr");
    append(&file, "2026-12-07 01:00:00,000 INFO app: up\n");
    let _run = follow(&t, &file, &err);
    wait_rows(&t, "the first line", &err, |r| r.len() == 1).await;
    let trace = [
        "2026-12-07 01:00:01,000 ERROR app: request failed\n",
        "Traceback (most recent call last):\n",
        "  File \"/srv/app.py\", line 10, in handle\n",
        "    charge(order)\n",
        "  File \"/srv/app.py\", line 6, in charge\n",
        "    raise ValueError(\"over limit\")\n",
        "ValueError: over limit\n",
    ];
    // Pieces 100 ms apart, one line cut in two writes: none of it may be stored alone.
    for piece in &trace[..6] {
        append(&file, piece);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    append(&file, "ValueError: ");
    tokio::time::sleep(Duration::from_millis(100)).await;
    append(&file, "over limit\n");
    let last = Instant::now();
    // The first line's time and level have their own columns; the rest is the message.
    let body: String = trace[1..].concat();
    let whole = format!("request failed\n{}", body.trim_end());
    wait_rows(&t, "the trace", &err, |r| r.len() >= 2).await;
    let took = last.elapsed();
    let rows = stored(&t).await;
    assert_eq!(rows.len(), 2, "{rows:#?}");
    assert!(rows[1].ends_with(&whole), "{:?}", rows[1]);
    assert!(
        took <= Duration::from_secs(1),
        "the trace was stored {took:?} after its last line"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_kill_does_not_lose_a_pending_trace() {
    let t = TestDb::new().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("svc.log");
    let err = dir.path().join("ingest.stderr");
    let run = follow(&t, &file, &err);
    append(&file, "first event\n");
    append(&file, "second event\n    at frame.one(A.java:1)\n");
    // "first event" is stored once the second starts; its batch must not claim the second.
    wait_rows(&t, "the first event", &err, |r| !r.is_empty()).await;
    drop(run);
    let _run = follow(&t, &file, &err);
    append(&file, "    at frame.two(A.java:2)\nthird event\n");
    wait_rows(&t, "all three events", &err, |r| r.len() >= 3).await;
    // Let a wrong duplicate show up if there is one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let rows = stored(&t).await;
    assert_eq!(rows[0], "first event");
    let second: Vec<&String> = rows.iter().filter(|r| r.starts_with("second")).collect();
    assert_eq!(second.len(), 1, "{rows:#?}");
    assert!(rows.iter().any(|r| r == "third event"), "{rows:#?}");
    // Whether the kill came before or after the second event was stored, no line is lost
    // and none is stored twice.
    let all = rows.join("\n");
    for part in ["frame.one", "frame.two", "third event"] {
        assert_eq!(all.matches(part).count(), 1, "{rows:#?}");
    }
}

type Audit = (String, String, String, Option<String>, Option<String>);

async fn audits(t: &TestDb) -> Vec<Audit> {
    sqlx::query_as(
        "SELECT actor, action, outcome, resource_id, ip FROM opsdash.audit_event ORDER BY id",
    )
    .fetch_all(&t.db.write)
    .await
    .unwrap()
}

#[tokio::test]
async fn application_json_lines_become_audit_events_besides_their_log_rows() {
    let t = TestDb::new().await.unwrap();
    let input = std::fs::read(fixture("auth/app_audit.jsonl")).unwrap();
    let s = ingest(&t, opts("app"), &input).await;
    assert_eq!((s.logs, s.audits), (5, 4), "{s:?}");
    let a = audits(&t).await;
    assert_eq!(
        a[0],
        (
            "u-17".into(),
            "invoice.delete".into(),
            "success".into(),
            Some("INV-1001".into()),
            Some("10.20.0.4".into())
        )
    );
    assert_eq!((a[2].0.as_str(), a[2].2.as_str()), ("mallory", "failure"));
    let (changes, ts): (Option<serde_json::Value>, chrono::DateTime<chrono::Utc>) =
        sqlx::query_as("SELECT changes, ts FROM opsdash.audit_event WHERE action = 'user.update'")
            .fetch_one(&t.db.write)
            .await
            .unwrap();
    assert_eq!(
        changes,
        Some(serde_json::json!({"email": {"before": "a@old.example", "after": "a@new.example"}}))
    );
    assert_eq!(ts.to_rfc3339(), "2026-12-07T01:21:02+00:00");

    // `--kind audit`: audit rows only, the line without an action rejected.
    let t = TestDb::new().await.unwrap();
    let o = Options {
        audit_only: true,
        ..opts("app")
    };
    let s = ingest(&t, o, &input).await;
    assert_eq!((s.logs, s.audits, s.rejected), (0, 4, 1), "{s:?}");
    assert!(s.first_rejects[0].reason.contains("no action"), "{s:?}");
}

#[tokio::test]
async fn sshd_lines_become_login_audit_events() {
    let t = TestDb::new().await.unwrap();
    let input = std::fs::read(fixture("auth/auth.log")).unwrap();
    let s = ingest(&t, opts("auth"), &input).await;
    assert_eq!(s.audits, 10, "{s:?}");
    let a = audits(&t).await;
    let failed_root = a
        .iter()
        .filter(|x| x.0 == "root" && x.2 == "failure" && x.1 == "ssh.login")
        .count();
    // Six "Failed password" lines and the one rsyslog folded into "message repeated".
    assert_eq!(failed_root, 7, "{a:#?}");
    let oracle: Vec<_> = a.iter().filter(|x| x.0 == "oracle").collect();
    assert_eq!(oracle.len(), 2, "{a:#?}");
    assert!(a
        .iter()
        .any(|x| x.0 == "deploy" && x.2 == "success" && x.4.as_deref() == Some("192.0.2.10")));
    assert_eq!(a.len(), 10, "{a:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_brute_force_rule_fires_on_sshd_lines() {
    let t = TestDb::new().await.unwrap();
    let url = t.url().unwrap();
    let dir = tempfile::tempdir().unwrap();
    // The shipped rule (src/alerts/config.rs), evaluated every second instead of every minute.
    let cfg = write_config(
        dir.path(),
        r#"
[worker]
lease_ttl_ms = 800

[alert]
tick_ms = 100

[[alert.rule]]
name = "brute-force-user"
severity = "error"
measure = "audit_events"
scope = { action = "%login%", outcome = "failure", by = "actor" }
threshold = 5.0
interval = "1s"
"#,
    );
    let mut workers = Children::new(dir.path());
    let mut cmd = common::procs::opsdash(&url, &cfg);
    cmd.arg("worker");
    workers.spawn("worker", cmd);
    // Six failed passwords for one user, stamped now the way sshd's syslog lines are.
    let now = chrono::Utc::now().format("%b %e %H:%M:%S");
    let lines: String = (0..6)
        .map(|i| {
            format!(
                "{now} bastion sshd[{}]: Failed password for admin from 203.0.113.{i} port 4{i}022 ssh2\n",
                5000 + i
            )
        })
        .collect();
    let file = dir.path().join("auth.log");
    std::fs::write(&file, lines).unwrap();
    let out = common::procs::opsdash(&url, &cfg)
        .args(["ingest", "--service", "sshd"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let start = Instant::now();
    loop {
        let fired: Option<(String, String)> = sqlx::query_as(
            "SELECT state::text, labels::text FROM opsdash.alert WHERE rule_name = 'brute-force-user'",
        )
        .fetch_optional(&t.db.write)
        .await
        .unwrap();
        if let Some((state, labels)) = fired {
            assert!(labels.contains("admin"), "{labels}");
            assert_ne!(state, "resolved");
            break;
        }
        assert!(
            start.elapsed() < LIMIT,
            "the brute-force rule never fired\n{}",
            workers.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_stat_statements_samples_reach_the_slow_query_view() {
    use opsdash::db::{Db, DbTarget};
    use opsdash::worker::statements::Sampler;
    let tc = opsdash::db::testkit::TestCluster::start("pgss").unwrap();
    let connect = || async {
        Db::from_options(
            tc.cluster.connect_options(opsdash::db::embedded::DATABASE),
            None,
            DbTarget::External {
                redacted_url: "pg_stat_statements test".into(),
            },
            2,
            Duration::from_secs(5),
            Duration::from_secs(10),
        )
        .await
        .unwrap()
    };
    let db = connect().await;
    let mut sampler = Sampler::default();
    // Without the extension the job has nothing to do.
    assert_eq!(sampler.sample(&db).await.unwrap(), 0);
    sqlx::query("ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'")
        .execute(&db.write)
        .await
        .unwrap();
    db.write.close().await;
    db.read.close().await;
    tc.cluster.stop("fast").unwrap();
    tc.cluster.restart_stopped().unwrap();
    let db = connect().await;
    sqlx::query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        .execute(&db.write)
        .await
        .unwrap();
    assert_eq!(
        sampler.sample(&db).await.unwrap(),
        0,
        "the first sample is the baseline"
    );
    // A slow statement run 3 times, a fast one 20 times, between two samples.
    for _ in 0..3 {
        sqlx::query("SELECT pg_sleep(0.12), 'slow' AS tag")
            .execute(&db.write)
            .await
            .unwrap();
    }
    for i in 0..20 {
        sqlx::query("SELECT $1::int + 1 AS fast")
            .bind(i)
            .execute(&db.write)
            .await
            .unwrap();
    }
    assert!(sampler.sample(&db).await.unwrap() >= 2);
    let (calls, avg_ms, sample): (i64, f64, String) = sqlx::query_as(
        "SELECT calls, avg_ms, sample FROM opsdash.slow_queries(100, now() - interval '1 hour',
                                                               now() + interval '1 minute')
          WHERE strpos(sample, 'pg_' || 'sleep') > 0",
    )
    .fetch_one(&db.write)
    .await
    .unwrap();
    assert_eq!(calls, 3, "{sample}");
    assert!((120.0..1000.0).contains(&avg_ms), "{avg_ms}");
    let fast: (i64, f64) = sqlx::query_as(
        "SELECT calls, avg_ms FROM opsdash.slow_queries(0, now() - interval '1 hour',
                                                       now() + interval '1 minute')
          WHERE strpos(sample, 'AS ' || 'fast') > 0",
    )
    .fetch_one(&db.write)
    .await
    .unwrap();
    assert_eq!(fast.0, 20);
    // The slow statement did not run again: the next sample stores no row of it (the
    // queries here spell its name in two pieces so that they are not it).
    let count = "SELECT count(*) FROM opsdash.query_log WHERE strpos(query, 'pg_' || 'sleep') > 0";
    let before: i64 = sqlx::query_scalar(count)
        .fetch_one(&db.write)
        .await
        .unwrap();
    sampler.sample(&db).await.unwrap();
    let after: i64 = sqlx::query_scalar(count)
        .fetch_one(&db.write)
        .await
        .unwrap();
    assert_eq!(before, after);
}
