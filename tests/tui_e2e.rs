//! End-to-end: the real `opsdash` binary in a real terminal (tmux) against a private cluster.
//! Switches tabs, opens and closes help, quits and checks the terminal is restored; stops the
//! database under the running dashboard and checks the banner and the recovery.

use std::process::Command;
use std::time::Instant;

use opsdash::db::testkit::TestCluster;

/// A tmux session running an interactive shell; killed on drop, even when the test fails.
mod common;

use common::tmux::{start_cluster, Tmux, PROMPT};

fn seed(cluster: &TestCluster) {
    let opts = cluster
        .cluster
        .connect_options(opsdash::db::embedded::DATABASE);
    std::thread::spawn(move || {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let pool = sqlx::PgPool::connect_with(opts).await.unwrap();
            sqlx::query(
                "INSERT INTO opsdash.request_log (ts, service, method, route, status, duration_ms)
                 SELECT now() - (i || ' seconds')::interval, 'api', 'GET', '/orders/:id',
                        CASE WHEN i % 10 = 0 THEN 503 ELSE 200 END, 20 + i % 200
                   FROM generate_series(1, 3000) i",
            )
            .execute(&pool)
            .await
            .unwrap();
            pool.close().await;
        })
    })
    .join()
    .unwrap();
}

#[test]
fn dashboard_switches_tabs_shows_help_quits_and_restores_terminal() {
    let cluster = start_cluster("e2e");
    seed(&cluster);
    let t = Tmux::start("tabs", 100, 30);
    t.start_dashboard(&cluster.url(), "");
    let s = t.wait_for(
        |s| s.contains("1 KPI") && s.contains("Requests/min"),
        "KPI tab",
    );
    assert!(
        t.alternate_screen_on(),
        "dashboard uses the alternate screen"
    );
    assert!(s.contains("5 Health"), "{s}");
    // Data arrives: the top failing endpoint of the seed.
    t.wait_for(|s| s.contains("/orders/:id"), "top failing endpoint");
    t.wait_for(|s| s.contains("● "), "connected indicator");
    // Help overlay opens and closes.
    t.send(&["?"]);
    t.wait_for(|s| s.contains("Help") && s.contains("quit"), "help overlay");
    t.send(&["Escape"]);
    t.wait_for(|s| !s.contains("esc or ? closes"), "help closed");
    // Health tab (5), then back with Tab.
    t.send(&["5"]);
    t.wait_for(
        |s| s.contains("Services") || s.contains("not part of this build"),
        "tab 5",
    );
    t.send(&["Tab"]);
    t.wait_for(|s| s.contains("Requests/min"), "KPI again");
    // The command line changes the range.
    t.send_literal(":range 24h");
    t.send(&["Enter"]);
    t.wait_for(|s| s.contains("range 24h"), "range 24h in the header");
    // Quit: the shell prompt is back and the alternate screen left.
    t.send(&["q"]);
    t.wait_for(
        |s| s.trim_end().ends_with(PROMPT) || s.lines().any(|l| l.trim() == PROMPT),
        "shell prompt after quit",
    );
    assert!(!t.alternate_screen_on(), "alternate screen left after quit");
}

#[test]
fn database_outage_shows_banner_keys_keep_working_and_recovers() {
    let cluster = start_cluster("e2e-down");
    let t = Tmux::start("down", 100, 30);
    // Record every byte the dashboard writes, to check --no-color emits no colour codes.
    let log = t.home.path().join("pane.out");
    let ok = Command::new("tmux")
        .args([
            "pipe-pane",
            "-o",
            "-t",
            &t.name,
            &format!("cat >> {}", log.display()),
        ])
        .status()
        .expect("tmux pipe-pane");
    assert!(ok.success());
    t.start_dashboard(&cluster.url(), "--no-color");
    t.wait_for(|s| s.contains("● "), "connected");
    cluster.cluster.stop("immediate").expect("stop");
    let stopped = Instant::now();
    t.wait_for(|s| s.contains("DATABASE UNREACHABLE"), "the outage banner");
    eprintln!("banner after {:?}", stopped.elapsed());
    // Keys keep working while the database is away.
    t.send(&["?"]);
    t.wait_for(|s| s.contains("esc or ? closes"), "help during outage");
    t.send(&["Escape"]);
    t.wait_for(|s| !s.contains("esc or ? closes"), "help closed");
    cluster.cluster.restart_stopped().expect("restart");
    t.wait_for(
        |s| !s.contains("DATABASE UNREACHABLE") && s.contains("● "),
        "recovery",
    );
    // Queries resumed by themselves: KPI data is shown again.
    t.wait_for(|s| s.contains("Requests/min"), "KPI after recovery");
    t.send(&["q"]);
    t.wait_for(
        |s| s.lines().any(|l| l.trim() == PROMPT),
        "prompt after quit",
    );
    assert!(!t.alternate_screen_on());
    let bytes = std::fs::read(&log).expect("pane output");
    let out = String::from_utf8_lossy(&bytes);
    assert!(out.len() > 1000, "output recorded");
    let colour = regex::Regex::new(
        r"\x1b\[(?:[0-9;]*;)?(?:3[0-7]|4[0-7]|9[0-7]|10[0-7]|38|48)(?:;[0-9;]*)?m",
    )
    .expect("regex");
    if let Some(m) = colour.find(&out) {
        panic!("colour code {:?} in --no-color output", m.as_str());
    }
}

#[test]
fn unreachable_database_is_one_line_and_terminal_untouched() {
    let t = Tmux::start("nodb", 100, 30);
    t.start_dashboard(
        "postgresql://nobody@/nothing?host=/nonexistent-dir&port=5999",
        "",
    );
    // The error line, then the shell prompt back on a line of its own (the process exited).
    let s = t.wait_for(
        |s| s.contains("opsdash:") && s.lines().any(|l| l.trim() == PROMPT),
        "the error line and the prompt",
    );
    assert!(!t.alternate_screen_on());
    assert_eq!(
        s.lines().filter(|l| l.starts_with("opsdash:")).count(),
        1,
        "{s}"
    );
}

/// The opsdash process started by the pane's shell.
fn dashboard_pid(t: &Tmux) -> i32 {
    let out = Command::new("tmux")
        .args(["display-message", "-p", "-t", &t.name, "#{pane_pid}"])
        .output()
        .expect("tmux display");
    let shell = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let children =
        std::fs::read_to_string(format!("/proc/{shell}/task/{shell}/children")).unwrap_or_default();
    children
        .split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no dashboard process under shell {shell}"))
}

#[test]
fn sigterm_restores_the_terminal() {
    let cluster = start_cluster("e2e-term");
    let t = Tmux::start("term", 80, 24);
    t.start_dashboard(&cluster.url(), "");
    t.wait_for(
        |s| s.contains("Requests/min") && s.contains("● "),
        "KPI tab",
    );
    assert!(t.alternate_screen_on());
    let pid = dashboard_pid(&t);
    // SAFETY: sending SIGTERM to the process this test started.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    t.wait_for(
        |s| s.lines().any(|l| l.trim() == PROMPT),
        "prompt after SIGTERM",
    );
    assert!(
        !t.alternate_screen_on(),
        "alternate screen left after SIGTERM"
    );
    // Raw mode is off: a typed command echoes and runs normally.
    t.send_literal("echo restored-$((40+2))");
    t.send(&["Enter"]);
    t.wait_for(|s| s.contains("restored-42"), "a working shell");
}
