//! End-to-end: `opsdash demo` without --headless in a real terminal (tmux): the dashboard opens
//! over the running demo and shows its traffic; quitting stops the traffic, restores the
//! terminal and prints the summary.

use std::process::Command;
use std::time::{Duration, Instant};

use opsdash::db::testkit::TestDb;

const PROMPT: &str = "DEMO-E2E$";

struct Tmux {
    name: String,
    _home: tempfile::TempDir,
}

impl Tmux {
    fn start() -> Tmux {
        let name = format!("opsdash-demo-e2e-{}", std::process::id());
        let home = tempfile::tempdir().expect("temp home");
        let status = Command::new("tmux")
            .args([
                "new-session",
                "-d",
                "-s",
                &name,
                "-x",
                "100",
                "-y",
                "30",
                "env",
                "-i",
            ])
            .arg(format!("HOME={}", home.path().display()))
            .args(["PATH=/usr/local/bin:/usr/bin:/bin", "TERM=xterm-256color"])
            .arg(format!("PS1={PROMPT} "))
            .args(["bash", "--norc", "--noprofile"])
            .status()
            .expect("tmux runs");
        assert!(status.success(), "tmux new-session failed");
        let t = Tmux { name, _home: home };
        t.wait_for(|s| s.contains(PROMPT), "the shell prompt");
        t
    }

    fn send(&self, args: &[&str]) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.name])
            .args(args)
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

    fn wait_for(&self, pred: impl Fn(&str) -> bool, what: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let s = self.capture();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{s}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["kill-session", "-t", &self.name])
            .output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_opens_the_dashboard_over_live_traffic() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let url = t.url()?;
    let tmux = Tmux::start();
    let bin = env!("CARGO_BIN_EXE_opsdash");
    tmux.send(&[
        "-l",
        &format!(
            "{bin} --database-url '{url}' demo --backfill 10m --backfill-requests 2000 --incident-cycle 5m"
        ),
    ]);
    tmux.send(&["Enter"]);
    // The KPI tab lists the demo's failing endpoints (a 10-minute history holds two loops of
    // incidents, so 5xx are there).
    tmux.wait_for(
        |s| s.contains("Requests/min") && (s.contains("recommendations") || s.contains("checkout")),
        "the dashboard showing demo traffic",
    );
    assert!(tmux.alternate_screen_on());
    tmux.send(&["q"]);
    let screen = tmux.wait_for(
        |s| s.contains("demo: rows written:") && s.trim_end().ends_with(PROMPT),
        "the summary after quitting",
    );
    assert!(!tmux.alternate_screen_on(), "terminal restored");
    let requests: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.request_log")
        .fetch_one(&t.db.write)
        .await?;
    assert!(requests > 1_500, "{requests}");
    assert!(
        screen.contains(&format!("request_log {}", thousands(requests))),
        "{screen}"
    );
    Ok(())
}

fn thousands(n: i64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}
