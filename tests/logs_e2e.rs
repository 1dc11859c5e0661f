//! End-to-end: the real binary in tmux against a private cluster: the Logs tab tails a line
//! written while it runs, filters, pauses and resumes, opens a trace and exports to a file.

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

fn sql(cluster: &TestCluster, statement: &'static str) {
    let opts = cluster
        .cluster
        .connect_options(opsdash::db::embedded::DATABASE);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().expect("runtime");
        rt.block_on(async {
            let pool = sqlx::PgPool::connect_with(opts).await.expect("connect");
            sqlx::raw_sql(statement).execute(&pool).await.expect("sql");
            pool.close().await;
        })
    })
    .join()
    .expect("sql thread");
}

#[test]
fn logs_tab_tails_filters_pauses_traces_and_exports() {
    let cluster = start_cluster("logs-e2e");
    sql(
        &cluster,
        "INSERT INTO opsdash.log_event (ts, level, service, message, trace_id)
           VALUES (now() - interval '5 seconds', 2, 'api', 'checkout started', 'trace-e2e'),
                  (now() - interval '4 seconds', 4, 'api', 'card declined', 'trace-e2e');
         INSERT INTO opsdash.request_log (ts, service, method, route, status, duration_ms, trace_id)
           VALUES (now() - interval '5 seconds', 'api', 'POST', '/checkout', 402, 1200, 'trace-e2e');",
    );
    let out_dir = tempfile::tempdir().expect("temp dir");
    let export = out_dir.path().join("declined.csv");
    let t = Tmux::start("logs", 100, 30);
    t.start_dashboard(&cluster.url(), "");
    t.wait_for(|s| s.contains("1 KPI"), "the dashboard");
    t.send(&["2"]);
    t.wait_for(
        |s| s.contains("LIVE") && s.contains("card declined"),
        "the tail",
    );

    // A line written now appears live.
    sql(
        &cluster,
        "INSERT INTO opsdash.log_event (ts, level, service, message) VALUES (now(), 3, 'worker', 'queue is backing up');
         SELECT pg_notify('opsdash_logs', '');",
    );
    t.wait_for(|s| s.contains("queue is backing up"), "the live line");

    // Filter; a typo first: the error shows with its column and the tail keeps going.
    t.send(&["/"]);
    t.send_literal("level:errro+");
    t.wait_for(|s| s.contains("at column"), "the filter error");
    t.send(&["BSpace", "BSpace", "BSpace", "BSpace"]);
    t.send_literal("ror+");
    t.send(&["Enter"]);
    t.wait_for(
        |s| s.contains("filter: level:error+") && !s.contains("queue is backing up"),
        "the filtered tail",
    );

    // Pause, a line arrives and is counted, resume shows it.
    t.send(&["Space"]);
    t.wait_for(|s| s.contains("PAUSED (0 waiting)"), "the pause");
    sql(
        &cluster,
        "INSERT INTO opsdash.log_event (ts, level, service, message) VALUES (now(), 4, 'api', 'second decline');
         SELECT pg_notify('opsdash_logs', '');",
    );
    t.wait_for(|s| s.contains("PAUSED (1 waiting)"), "the waiting count");
    t.send(&["G"]);
    t.wait_for(
        |s| s.contains("LIVE") && s.contains("second decline"),
        "the resume",
    );

    // The trace of the first decline: move up to it, open the waterfall.
    t.send(&["k"]);
    t.send(&["t"]);
    t.wait_for(
        |s| s.contains("trace trace-e2e") && s.contains("POST /checkout"),
        "the trace",
    );
    t.send(&["Escape"]);

    // Export what the filter selects.
    t.send(&[":"]);
    t.send_literal(&format!("export {}", export.display()));
    t.send(&["Enter"]);
    t.wait_for(|s| s.contains("exported 2 lines"), "the export");
    let csv = std::fs::read_to_string(&export).expect("export file");
    assert_eq!(csv.lines().count(), 3, "{csv}");
    assert!(csv.contains("card declined") && csv.contains("second decline"));

    t.send(&["q"]);
    t.wait_for(|s| s.contains(PROMPT), "the shell after quitting");
    assert!(!t.alternate_screen_on(), "the terminal was restored");
}
