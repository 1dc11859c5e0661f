//! Three real `opsdash worker` processes on one database with a real HTTP receiver: a firing
//! condition gives one alert and one delivery per channel; killing the leading process hands the
//! work to another; two operators acknowledging at once through the real CLI.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::receiver::Receiver;
use opsdash::db::testkit::TestDb;

fn write_config(dir: &Path, hook_url: &str, command_out: &Path) -> std::path::PathBuf {
    let cfg = format!(
        r#"
[worker]
lease_ttl_ms = 600

[alert]
tick_ms = 200
group_wait = "200ms"
retry_initial = "100ms"

[[alert.channel]]
name = "hook"
url = "{hook_url}"
timeout = "2s"

[[alert.channel]]
name = "script"
kind = "command"
command = ["sh", "-c", "cat >> '{}'; echo >> '{}'"]

[[alert.rule]]
name = "errors"
measure = "error_rate"
threshold = 10.0
interval = "1s"
channels = ["hook", "script"]
"#,
        command_out.display(),
        command_out.display()
    );
    let p = dir.join("config.toml");
    std::fs::write(&p, cfg).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

/// The real binary. `OPSDASH_TEST_BIN` may name another build of it: engineers sharing one
/// target directory overwrite each other's `target/debug/opsdash`.
fn opsdash(url: &str, config: &Path) -> Command {
    let bin = std::env::var("OPSDASH_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_opsdash").to_string());
    let mut c = Command::new(bin);
    c.arg("--database-url").arg(url).arg("--config").arg(config);
    c
}

fn logs(dir: &Path) -> String {
    (0..3)
        .map(|i| std::fs::read_to_string(dir.join(format!("worker{i}.log"))).unwrap_or_default())
        .collect::<Vec<_>>()
        .join("\n---\n")
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

async fn errors(t: &TestDb, service: &str) {
    sqlx::query(
        "INSERT INTO opsdash.request_log (ts, service, route, status, duration_ms)
         SELECT now(), $1, '/pay', 500, 5 FROM generate_series(1, 20)",
    )
    .bind(service)
    .execute(&t.db.write)
    .await
    .unwrap();
}

async fn wait_for(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn leader(t: &TestDb) -> Option<String> {
    sqlx::query_scalar(
        "SELECT holder FROM opsdash.worker_lease WHERE job = 'alerts.evaluate' AND expires_at > now()",
    )
    .fetch_optional(&t.db.write)
    .await
    .unwrap()
    .flatten()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_workers_one_alert_one_delivery_per_channel_and_takeover() {
    let t = TestDb::new().await.unwrap();
    let url = t.url().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let rx = Receiver::start(vec![]).await;
    let out = dir.path().join("command.out");
    let cfg = write_config(dir.path(), &rx.url, &out);
    let mut workers = Workers(Vec::new());
    for i in 0..3 {
        let log = std::fs::File::create(dir.path().join(format!("worker{i}.log"))).unwrap();
        let child = opsdash(&url, &cfg)
            .arg("worker")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        workers.0.push(child);
    }
    let start = Instant::now();
    while leader(&t).await.is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "no worker took the lease: {}",
            logs(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    errors(&t, "pay").await;
    let command_lines = || {
        std::fs::read_to_string(&out)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.trim().is_empty())
            .count()
    };
    wait_for("the webhook delivery", Duration::from_secs(15), || {
        rx.delivered().len() == 1
    })
    .await;
    wait_for("the command delivery", Duration::from_secs(15), || {
        command_lines() == 1
    })
    .await;
    // Several more evaluation rounds in all three processes: still one alert, one message each.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(rx.received().len(), 1);
    assert_eq!(command_lines(), 1);
    let alerts: Vec<(i64, String)> = sqlx::query_as("SELECT id, state FROM opsdash.alert")
        .fetch_all(&t.db.write)
        .await
        .unwrap();
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].1, "firing");
    let body = &rx.delivered()[0].body;
    assert_eq!(body["alerts"][0]["labels"]["service"], "pay");

    // Kill the leading process outright (no lease release).
    let holder = leader(&t).await.unwrap();
    let pid: u32 = holder.split(':').nth(1).unwrap().parse().unwrap();
    let idx = workers
        .0
        .iter()
        .position(|c| c.id() == pid)
        .expect("leader is one of ours");
    let mut dead = workers.0.remove(idx);
    dead.kill().unwrap();
    dead.wait().unwrap();
    let killed = Instant::now();
    loop {
        if let Some(h) = leader(&t).await {
            if h != holder {
                break;
            }
        }
        // Two evaluation intervals (1 s each) plus scheduling slack on a loaded machine.
        assert!(
            killed.elapsed() < Duration::from_secs(4),
            "nobody took over"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The new leader evaluates: a second service failing gives a second alert and message.
    errors(&t, "search").await;
    wait_for("delivery after takeover", Duration::from_secs(15), || {
        rx.delivered().len() == 2
    })
    .await;
    assert_eq!(
        rx.delivered()[1].body["alerts"][0]["labels"]["service"],
        "search"
    );

    // Two operators acknowledge at once through the CLI: one wins, the other is told who.
    let id = alerts[0].0.to_string();
    let a = opsdash(&url, &cfg)
        .args(["alerts", "ack", &id, "--note", "mine"])
        .output();
    let b = opsdash(&url, &cfg)
        .args(["alerts", "ack", &id, "--note", "no, mine"])
        .output();
    let (a, b) = (a.unwrap(), b.unwrap());
    let ok = [&a, &b].iter().filter(|o| o.status.success()).count();
    assert_eq!(ok, 1, "{a:?} {b:?}");
    let loser = if a.status.success() { &b } else { &a };
    let msg = String::from_utf8_lossy(&loser.stderr);
    assert!(msg.contains("already acknowledged by"), "{msg}");
    let list = opsdash(&url, &cfg)
        .args(["alerts", "list"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("acknowledged") && text.contains("service=pay"),
        "{text}"
    );
    drop(workers);
}
