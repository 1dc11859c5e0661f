//! `opsdash serve` as Prometheus's Alertmanager, with the real clients: Debian's Prometheus
//! fires a rule on a synthetic condition and sends it to opsdash; the dashboard (real binary in
//! tmux) shows it as an external alert and an operator acknowledges it from the keyboard;
//! amtool lists it, silences it and lists the silence; a command channel receives it; and it
//! resolves when the rule stops firing (rule file changed, SIGHUP).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::procs::wait_until;
use common::serve::Server;
use common::tmux::{start_cluster, Tmux};
use opsdash::db::testkit::TestCluster;

const ALERT: &str = "OpsdashTestFire";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The status code of a plain GET, None when nothing answers yet.
fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    out.split_whitespace().nth(1)?.parse().ok()
}

/// One row of the alert table, as text, by a query returning (state, acknowledged_by,
/// received_count).
fn alert_row(cluster: &TestCluster) -> Option<(String, Option<String>, i64, Option<String>)> {
    let opts = cluster
        .cluster
        .connect_options(opsdash::db::embedded::DATABASE);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().ok()?;
        rt.block_on(async {
            let pool = sqlx::PgPool::connect_with(opts).await.ok()?;
            let row = sqlx::query_as(
                "SELECT state, acknowledged_by, received_count, resolved_by FROM opsdash.alert
                  WHERE source = 'prometheus' AND rule_name = $1 ORDER BY id DESC LIMIT 1",
            )
            .bind(ALERT)
            .fetch_optional(&pool)
            .await
            .ok()?;
            pool.close().await;
            row
        })
    })
    .join()
    .ok()?
}

fn rules(dir: &Path, expr: &str) {
    std::fs::write(
        dir.join("rules.yml"),
        format!(
            "groups:\n  - name: opsdash-test\n    interval: 1s\n    rules:\n      - alert: {ALERT}\n        \
             expr: {expr}\n        labels:\n          severity: critical\n          team: e2e\n        \
             annotations:\n          summary: synthetic alert of the serve test\n"
        ),
    )
    .expect("rules written");
}

fn amtool(port: u16, args: &[&str]) -> (bool, String) {
    let out = Command::new("amtool")
        .arg(format!("--alertmanager.url=http://127.0.0.1:{port}"))
        .args(args)
        .output()
        .expect("amtool runs (installed by .ci/setup)");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

#[test]
fn prometheus_alert_is_shown_acknowledged_silenced_by_amtool_and_resolved() {
    let cluster = start_cluster("serve-am");
    let dir = tempfile::tempdir().expect("temp dir");
    let sent = dir.path().join("sent.jsonl");
    let config = format!(
        "[alert]\ntick_ms = 200\ngroup_wait = \"0s\"\n\n[[alert.channel]]\nname = \"ops-log\"\n\
         kind = \"command\"\ncommand = [\"sh\", \"-c\", \"cat >> '{}'; echo >> '{}'\"]\n",
        sent.display(),
        sent.display()
    );
    let mut server = Server::start(&cluster.url(), dir.path(), &config, &[]);
    let cfg = dir.path().join("config.toml");
    let port: u16 = server
        .base
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("a port in {}", server.base));
    assert_eq!(
        http_status(port, "/api/v2/status"),
        Some(200),
        "{}",
        server.log()
    );

    // The dashboard, whose in-process worker sweeps external alerts and delivers messages.
    let t = Tmux::start("serve-am", 120, 30);
    t.start_dashboard(&cluster.url(), &format!("--config '{}'", cfg.display()));
    t.wait_for(|s| s.contains("1 KPI"), "the dashboard");
    t.send(&["3"]);

    let prom_dir = dir.path().join("prometheus");
    std::fs::create_dir_all(&prom_dir).expect("prometheus dir");
    rules(&prom_dir, "vector(1) > 0");
    std::fs::write(
        prom_dir.join("prometheus.yml"),
        format!(
            "global:\n  evaluation_interval: 1s\nrule_files:\n  - rules.yml\nalerting:\n  \
             alertmanagers:\n    - api_version: v2\n      static_configs:\n        - targets: \
             ['127.0.0.1:{port}']\n"
        ),
    )
    .expect("prometheus config written");
    let mut prom = Command::new("prometheus");
    prom.current_dir(&prom_dir).args([
        "--config.file=prometheus.yml".to_string(),
        format!("--storage.tsdb.path={}", prom_dir.join("data").display()),
        format!("--web.listen-address=127.0.0.1:{}", free_port()),
        // Re-send every second (default a minute), so re-sends are exercised.
        "--rules.alert.resend-delay=1s".to_string(),
    ]);
    let prom_pid = server.children.spawn("prometheus", prom);

    wait_until(
        "Prometheus's alert to be stored and re-sent",
        Duration::from_secs(60),
        || alert_row(&cluster).is_some_and(|r| r.0 == "firing" && r.2 >= 2),
        || server.children.logs(),
    );
    t.wait_for(
        |s| {
            s.contains(ALERT)
                && s.contains("firing")
                && s.contains("external alert from prometheus")
        },
        "the external alert in the Alerts tab",
    );
    t.send(&["a"]);
    t.wait_for(|s| s.contains("Acknowledge alert"), "the note prompt");
    t.send_literal("looking at it");
    t.send(&["Enter"]);
    t.wait_for(
        |s| s.contains("acknowledged") && s.contains("looking at it"),
        "the acknowledgement",
    );
    let row = alert_row(&cluster).expect("the alert row");
    assert_eq!(row.0, "acknowledged");
    assert!(row.1.is_some(), "acknowledged by the operator: {row:?}");
    // Re-sends go on refreshing the same alert and keep the acknowledgement.
    let seen = row.2;
    wait_until(
        "a re-send after the acknowledgement",
        Duration::from_secs(30),
        || alert_row(&cluster).is_some_and(|r| r.2 > seen && r.0 == "acknowledged"),
        || server.children.logs(),
    );

    // amtool lists it (filter by alert name, as `amtool alert query NAME` sends it).
    let (ok, out) = amtool(port, &["-o", "json", "alert", "query", ALERT]);
    assert!(ok, "amtool alert query: {out}");
    let json_start = out.find('[').unwrap_or(0);
    let alerts: serde_json::Value =
        serde_json::from_str(out[json_start..].lines().next().unwrap_or(""))
            .unwrap_or_else(|e| panic!("amtool json ({e}): {out}"));
    let listed = alerts.as_array().expect("an array of alerts");
    assert_eq!(listed.len(), 1, "{out}");
    assert_eq!(listed[0]["labels"]["alertname"], ALERT);
    assert_eq!(listed[0]["labels"]["team"], "e2e");
    assert_eq!(listed[0]["status"]["state"], "active");
    let fp = listed[0]["fingerprint"].as_str().unwrap_or_default();
    assert_eq!(fp.len(), 16, "{out}");
    let (ok, out) = amtool(port, &["alert", "query", "alertname=NoSuchAlert"]);
    assert!(ok && !out.contains(ALERT), "{out}");

    // amtool silences it and lists the silence.
    let (ok, out) = amtool(
        port,
        &[
            "silence",
            "add",
            &format!("alertname={ALERT}"),
            "--comment=silenced by the serve test",
            "--author=e2e",
            "--duration=1h",
        ],
    );
    assert!(ok, "amtool silence add: {out}");
    let id = out
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && l.chars().all(|c| c.is_ascii_digit()))
        .unwrap_or_else(|| panic!("a silence id: {out}"))
        .to_string();
    let (ok, out) = amtool(port, &["silence", "query"]);
    assert!(ok, "amtool silence query: {out}");
    assert!(
        out.contains(&id) && out.contains(&format!("alertname=\"{ALERT}\"")),
        "{out}"
    );
    assert!(
        out.contains("silenced by the serve test") && out.contains("e2e"),
        "{out}"
    );
    let (ok, out) = amtool(port, &["-o", "json", "alert", "query", "--silenced"]);
    assert!(
        ok && out.contains(&format!("\"{id}\"")),
        "silencedBy: {out}"
    );

    // The command channel got the firing message.
    wait_until(
        "the firing message on the command channel",
        Duration::from_secs(30),
        || {
            std::fs::read_to_string(&sent)
                .is_ok_and(|s| s.contains(ALERT) && s.contains("\"firing\""))
        },
        || server.children.logs(),
    );

    // The rule stops firing: Prometheus sends the alert with endsAt in the past.
    rules(&prom_dir, "vector(1) > 1");
    // SAFETY: signalling the Prometheus child this test spawned.
    unsafe { libc::kill(prom_pid as i32, libc::SIGHUP) };
    wait_until(
        "the alert to resolve when the rule stops firing",
        Duration::from_secs(60),
        || alert_row(&cluster).is_some_and(|r| r.0 == "resolved"),
        || server.children.logs(),
    );
    // Prometheus sends the alert with endsAt in the past once the rule is evaluated false;
    // when the reload drops the alert's state instead, it is never re-sent and its endsAt
    // (4 s ahead, from the 1 s resend delay) passes: the sweep resolves it. Either is right.
    let row = alert_row(&cluster).expect("the alert row");
    assert!(
        matches!(row.3.as_deref(), Some("prometheus" | "worker")),
        "resolved by its sender or at its endsAt: {row:?}"
    );
    let (ok, out) = amtool(port, &["-o", "json", "alert", "query"]);
    assert!(
        ok && !out.contains(ALERT),
        "resolved alerts are not listed: {out}"
    );
    t.wait_for(|s| !s.contains(ALERT), "the alert gone from the open list");
    wait_until(
        "the resolved message on the command channel",
        Duration::from_secs(30),
        || std::fs::read_to_string(&sent).is_ok_and(|s| s.contains("\"resolved\"")),
        || server.children.logs(),
    );
    t.send(&["q"]);
}
