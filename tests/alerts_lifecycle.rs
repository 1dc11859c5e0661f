//! Alerts that end, with real `opsdash worker` processes on one database: a new service's few
//! nginx 5xx lines fire a rule, and once they leave the window the alert resolves exactly one
//! window plus one resolve period after the last line, while a second worker runs; a rule in
//! testing mode fires from the same lines but nothing of it reaches the outbox or the receiver.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use common::procs::{write_config, Children};
use common::receiver::Receiver;
use opsdash::db::testkit::TestDb;

/// The real binary. `OPSDASH_TEST_BIN` may name another build of it: engineers sharing one
/// target directory overwrite each other's `target/debug/opsdash`.
fn opsdash(url: &str, config: &Path) -> std::process::Command {
    let bin = std::env::var("OPSDASH_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_opsdash").to_string());
    let mut c = std::process::Command::new(bin);
    c.arg("--database-url").arg(url).arg("--config").arg(config);
    c
}

const WINDOW_S: i64 = 4;
const RESOLVE_S: i64 = 3;

fn config(dir: &Path, hook: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            r#"
[worker]
lease_ttl_ms = 800

[alert]
tick_ms = 100
group_wait = "100ms"
retry_initial = "100ms"

[[alert.channel]]
name = "hook"
url = "{hook}"
timeout = "2s"

[[alert.rule]]
name = "edge-errors"
severity = "critical"
measure = "error_rate"
threshold = 5.0
window = "{WINDOW_S}s"
interval = "1s"
resolve_after = "{RESOLVE_S}s"
min_count = 2
channels = ["hook"]

[[alert.rule]]
name = "edge-errors-trial"
status = "testing"
severity = "critical"
measure = "error_rate"
threshold = 5.0
window = "{WINDOW_S}s"
interval = "1s"
resolve_after = "{RESOLVE_S}s"
min_count = 2
channels = ["hook"]
"#
        ),
    )
}

type AlertState = (
    i64,
    String,
    String,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
);

async fn alert_of(t: &TestDb, rule: &str) -> Option<AlertState> {
    sqlx::query_as(
        "SELECT id, state, summary, fired_at, condition_false_since, resolved_at
           FROM opsdash.alert WHERE rule_name = $1 ORDER BY id DESC LIMIT 1",
    )
    .bind(rule)
    .fetch_optional(&t.db.write)
    .await
    .unwrap()
}

async fn wait_alert(
    t: &TestDb,
    rule: &str,
    what: &str,
    limit: Duration,
    workers: &Children,
    done: impl Fn(&AlertState) -> bool,
) -> AlertState {
    let start = Instant::now();
    loop {
        if let Some(a) = alert_of(t, rule).await.filter(|a| done(a)) {
            return a;
        }
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {what}: {:?}\n{}",
            alert_of(t, rule).await,
            workers.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_services_few_errors_resolve_one_window_and_one_resolve_period_after_they_stop() {
    let t = TestDb::new().await.unwrap();
    let url = t.url().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(vec![]).await;
    let cfg = config(dir.path(), &rx.url);
    let mut workers = Children::new(dir.path());
    for name in ["worker1", "worker2"] {
        let mut cmd = opsdash(&url, &cfg);
        cmd.arg("worker");
        workers.spawn(name, cmd);
    }
    let start = Instant::now();
    loop {
        let rules: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.alert_rule")
            .fetch_one(&t.db.write)
            .await
            .unwrap();
        if rules == 2 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the workers never synced the rules\n{}",
            workers.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Four nginx lines of a new service, two of them 5xx, stamped with the database's clock
    // (whole seconds, as nginx writes them), through the real `opsdash ingest`.
    let last: DateTime<Utc> = sqlx::query_scalar("SELECT date_trunc('second', now())")
        .fetch_one(&t.db.write)
        .await
        .unwrap();
    let stamp = last.format("%d/%b/%Y:%H:%M:%S +0000");
    let lines: String = [200, 502, 200, 503]
        .iter()
        .map(|status| {
            format!(
                "203.0.113.9 - - [{stamp}] \"GET /checkout HTTP/1.1\" {status} 12 \"-\" \"curl/8\" 0.010\n"
            )
        })
        .collect();
    let file = dir.path().join("access.log");
    std::fs::write(&file, lines).unwrap();
    let out = opsdash(&url, &cfg)
        .args(["ingest", "--format", "nginx", "--service", "edge"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");

    let fired = wait_alert(
        &t,
        "edge-errors",
        "the alert to fire",
        Duration::from_secs(15),
        &workers,
        |a| a.1 == "firing",
    )
    .await;
    assert!(fired.2.contains("50 > 5"), "{}", fired.2);
    let trial = wait_alert(
        &t,
        "edge-errors-trial",
        "the testing rule's alert to fire",
        Duration::from_secs(15),
        &workers,
        |a| a.1 == "firing",
    )
    .await;

    let resolved = wait_alert(
        &t,
        "edge-errors",
        "the alert to resolve",
        Duration::from_secs(30),
        &workers,
        |a| a.1 == "resolved",
    )
    .await;
    let since = resolved.4.expect("the time the condition turned false");
    let at = resolved.5.expect("resolved_at");
    // The lines leave the window WINDOW_S after their time: the first evaluation after that
    // (interval 1 s) finds the label set gone, and the one RESOLVE_S later resolves it.
    let left = (since - last).num_milliseconds();
    assert!(
        (WINDOW_S * 1000..=WINDOW_S * 1000 + 2500).contains(&left),
        "condition false {left} ms after the last line (window {WINDOW_S} s)"
    );
    let took = (at - last).num_milliseconds();
    let expected = (WINDOW_S + RESOLVE_S) * 1000;
    assert!(
        (expected..=expected + 3000).contains(&took),
        "resolved {took} ms after the last line, expected window + resolve period = {expected} ms"
    );
    assert!(resolved.2.contains("no data"), "{}", resolved.2);
    let hist: Vec<(String, String, Option<String>)> = sqlx::query_as(
        "SELECT to_state, actor, note FROM opsdash.alert_history WHERE alert_id = $1 ORDER BY id",
    )
    .bind(resolved.0)
    .fetch_all(&t.db.write)
    .await
    .unwrap();
    assert_eq!(
        hist.iter().map(|h| h.0.as_str()).collect::<Vec<_>>(),
        ["firing", "resolved"]
    );
    assert_eq!(hist[1].1, "worker");

    // The testing rule's alert resolved as well, and never reached the outbox or the receiver,
    // while the real rule's firing and resolved messages went out on the same channel.
    wait_alert(
        &t,
        "edge-errors-trial",
        "the testing alert to resolve",
        Duration::from_secs(15),
        &workers,
        |a| a.1 == "resolved",
    )
    .await;
    let start = Instant::now();
    while rx.delivered().len() < 2 {
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the real rule's messages: {:?}\n{}",
            rx.received().len(),
            workers.logs()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let kinds: Vec<(String, i64)> =
        sqlx::query_as("SELECT kind, alert_id FROM opsdash.notification ORDER BY id")
            .fetch_all(&t.db.write)
            .await
            .unwrap();
    assert_eq!(
        kinds,
        [
            ("firing".to_string(), fired.0),
            ("resolved".to_string(), fired.0)
        ]
    );
    for r in rx.received() {
        assert_eq!(
            r.body["alerts"][0]["labels"]["alertname"], "edge-errors",
            "a testing-mode alert reached the receiver: {}",
            r.body
        );
    }
    assert_ne!(trial.0, fired.0);
    assert!(workers.exited().is_empty(), "{}", workers.logs());
}
