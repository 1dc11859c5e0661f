//! End-to-end: the real dashboard in tmux, its in-process worker firing an alert from real
//! data, and an operator acknowledging it with a note from the keyboard.

use std::process::Command;
use std::time::{Duration, Instant};

use opsdash::db::testkit::TestCluster;

/// A tmux session running an interactive shell; killed on drop, even when the test fails.
struct Tmux {
    name: String,
    _home: tempfile::TempDir,
}

const PROMPT: &str = "E2E-PROMPT$";

impl Tmux {
    fn start(tag: &str, width: u16, height: u16) -> Tmux {
        let name = format!("opsdash-e2e-{tag}-{}", std::process::id());
        let home = tempfile::tempdir().expect("temp home");
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &name])
            .output();
        let status = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
                "env",
                "-i",
                &format!("HOME={}", home.path().display()),
                "PATH=/usr/local/bin:/usr/bin:/bin",
                "TERM=xterm-256color",
                &format!("PS1={PROMPT} "),
                "bash",
                "--norc",
                "--noprofile",
            ])
            .status()
            .expect("tmux runs");
        assert!(status.success(), "tmux new-session failed");
        let t = Tmux { name, _home: home };
        t.wait_for(|s| s.contains(PROMPT), "the shell prompt");
        t
    }

    fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.name];
        args.extend_from_slice(keys);
        let ok = Command::new("tmux").args(&args).status().expect("tmux");
        assert!(ok.success());
    }

    fn send_literal(&self, text: &str) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, "-l", text])
            .status()
            .expect("tmux");
        assert!(ok.success());
    }

    fn capture(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux capture");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn alternate_screen_on(&self) -> bool {
        let out = Command::new("tmux")
            .args(["display-message", "-p", "-t", &self.name, "#{alternate_on}"])
            .output()
            .expect("tmux display");
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    /// Waits (up to 20 s) until the screen satisfies `pred`; panics with the screen otherwise.
    fn wait_for(&self, pred: impl Fn(&str) -> bool, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.capture();
            if pred(&s) {
                return s;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; screen:\n{s}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn start_dashboard(&self, url: &str, extra: &str) {
        let bin = env!("CARGO_BIN_EXE_opsdash");
        self.send_literal(&format!("{bin} --database-url '{url}' {extra}"));
        self.send(&["Enter"]);
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .output();
    }
}

/// Other test processes sweep stale clusters in the temp dir; one may catch ours between the
/// creation of its directory and its owner file, so try again.
fn start_cluster(tag: &str) -> TestCluster {
    let mut last = None;
    for _ in 0..3 {
        match TestCluster::start(tag) {
            Ok(c) => return c,
            Err(e) => last = Some(e),
        }
    }
    panic!("cluster: {:#}", last.unwrap());
}

fn sql(cluster: &TestCluster, q: &'static str) -> Vec<(String, Option<String>, Option<String>)> {
    let opts = cluster
        .cluster
        .connect_options(opsdash::db::embedded::DATABASE);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let pool = sqlx::PgPool::connect_with(opts).await.unwrap();
            let rows = sqlx::query_as(q).fetch_all(&pool).await.unwrap();
            pool.close().await;
            rows
        })
    })
    .join()
    .unwrap()
}

#[test]
fn dashboard_worker_fires_and_operator_acknowledges_with_a_note() {
    let cluster = start_cluster("alerts-e2e");
    sql(
        &cluster,
        "WITH i AS (INSERT INTO opsdash.request_log (ts, service, route, status)
                    SELECT now(), 'checkout', '/pay', 502 FROM generate_series(1, 30))
         SELECT ''::text, NULL::text, NULL::text",
    );
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("config.toml");
    std::fs::write(
        &cfg,
        "[alert]\ntick_ms = 200\n\n[[alert.rule]]\nname = \"checkout-errors\"\nseverity = \"critical\"\n\
         measure = \"error_rate\"\nthreshold = 5.0\nwindow = \"10m\"\ninterval = \"1s\"\n",
    )
    .unwrap();
    let t = Tmux::start("alerts", 100, 30);
    t.start_dashboard(&cluster.url(), &format!("--config '{}'", cfg.display()));
    t.wait_for(|s| s.contains("1 KPI"), "the dashboard");
    assert!(t.alternate_screen_on());
    t.send(&["3"]);
    t.wait_for(
        |s| s.contains("checkout-errors") && s.contains("firing"),
        "the alert fired by the in-process worker",
    );
    t.send(&["a"]);
    t.wait_for(|s| s.contains("Acknowledge alert"), "the note prompt");
    t.send_literal("rolling back 1.4.2");
    t.send(&["Enter"]);
    let s = t.wait_for(
        |s| s.contains("acknowledged") && s.contains("rolling back 1.4.2"),
        "the acknowledgement with its note",
    );
    eprintln!("{s}");
    t.send(&["q"]);
    t.wait_for(
        |s| s.lines().any(|l| l.trim() == PROMPT),
        "shell prompt after quit",
    );
    let rows = sql(
        &cluster,
        "SELECT state, ack_note, acknowledged_by FROM opsdash.alert",
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].0, "acknowledged");
    assert_eq!(rows[0].1.as_deref(), Some("rolling back 1.4.2"));
    let audit = sql(
        &cluster,
        "SELECT action, actor, host FROM opsdash.audit_event WHERE source = 'opsdash'",
    );
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].0, "alert.acknowledge");
}
