//! A tmux session driving the real `opsdash` binary, for end-to-end tests; and a private
//! cluster for it.

use std::process::Command;
use std::time::{Duration, Instant};

use opsdash::db::testkit::TestCluster;

pub struct Tmux {
    pub name: String,
    pub home: tempfile::TempDir,
}

pub const PROMPT: &str = "E2E-PROMPT$";

impl Tmux {
    pub fn start(tag: &str, width: u16, height: u16) -> Tmux {
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
        let t = Tmux { name, home };
        t.wait_for(|s| s.contains(PROMPT), "the shell prompt");
        t
    }

    pub fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", &self.name];
        args.extend_from_slice(keys);
        let ok = Command::new("tmux").args(&args).status().expect("tmux");
        assert!(ok.success());
    }

    pub fn send_literal(&self, text: &str) {
        let ok = Command::new("tmux")
            .args(["send-keys", "-t", &self.name, "-l", text])
            .status()
            .expect("tmux");
        assert!(ok.success());
    }

    pub fn capture(&self) -> String {
        let out = Command::new("tmux")
            .args(["capture-pane", "-p", "-t", &self.name])
            .output()
            .expect("tmux capture");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    pub fn alternate_screen_on(&self) -> bool {
        let out = Command::new("tmux")
            .args(["display-message", "-p", "-t", &self.name, "#{alternate_on}"])
            .output()
            .expect("tmux display");
        String::from_utf8_lossy(&out.stdout).trim() == "1"
    }

    /// Waits (up to 20 s) until the screen satisfies `pred`; panics with the screen otherwise.
    pub fn wait_for(&self, pred: impl Fn(&str) -> bool, what: &str) -> String {
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

    pub fn start_dashboard(&self, url: &str, extra: &str) {
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
pub fn start_cluster(tag: &str) -> TestCluster {
    let mut last = None;
    for _ in 0..3 {
        match TestCluster::start(tag) {
            Ok(c) => return c,
            Err(e) => last = Some(e),
        }
    }
    panic!("cluster: {:#}", last.unwrap());
}

/// Runs `statement` (one or several SQL statements) on `cluster`'s database from a test's
/// plain thread: a runtime and a connection of its own, closed before it returns.
pub fn run_sql(cluster: &TestCluster, statement: impl Into<String>) {
    let statement = statement.into();
    let opts = cluster
        .cluster
        .connect_options(opsdash::db::embedded::DATABASE);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let pool = sqlx::PgPool::connect_with(opts).await.expect("connect");
            sqlx::raw_sql(&statement).execute(&pool).await.expect("sql");
            pool.close().await;
        })
    })
    .join()
    .expect("sql thread");
}
