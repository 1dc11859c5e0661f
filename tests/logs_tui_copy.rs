//! End-to-end copy out: the real binary in tmux (with `set-clipboard on`) against a private
//! cluster goes back a day with `:goto`, opens the trace of the line there and copies its id
//! with `y`: the pane's raw output carries the OSC 52 sequence with the id in base64, tmux puts
//! the id in its paste buffer, and the status line says what was copied.

use std::process::Command;

use base64::Engine as _;
use chrono::{DurationRound, Utc};

mod common;
use common::tmux::{run_sql, start_cluster, Tmux};

fn tmux(args: &[&str]) -> String {
    let out = Command::new("tmux").args(args).output().expect("tmux");
    assert!(out.status.success(), "tmux {args:?}: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn a_trace_id_from_a_day_ago_is_copied_with_osc_52() {
    let cluster = start_cluster("logs-copy");
    let id = "trace-day-old-7f3a91";
    // The minute a day ago the test goes to; the line with the trace 10 s into it, others
    // before and after.
    let minute = (Utc::now() - chrono::Duration::days(1))
        .duration_trunc(chrono::Duration::minutes(1))
        .expect("minute");
    let at = minute.format("%Y-%m-%d %H:%M").to_string();
    let ts = |secs: i64| (minute + chrono::Duration::seconds(secs)).to_rfc3339();
    run_sql(&cluster,
        format!(
            "SELECT opsdash.ensure_partitions(current_date - 2, current_date + 1);
             INSERT INTO opsdash.log_event (ts, level, service, message, trace_id) VALUES
               ('{}', 2, 'api', 'before the minute', 'trace-before'),
               ('{}', 4, 'api', 'card declined a day ago', '{id}'),
               ('{}', 2, 'api', 'after the minute', 'trace-after');
             INSERT INTO opsdash.request_log (ts, service, method, route, status, duration_ms, trace_id)
               VALUES ('{}', 'api', 'POST', '/checkout', 402, 900, '{id}');",
            ts(-30),
            ts(10),
            ts(40),
            ts(9),
        ),
    );
    let t = Tmux::start("logs-copy", 110, 30);
    tmux(&["set-option", "-s", "set-clipboard", "on"]);
    let raw = t.home.path().join("pane.raw");
    tmux(&[
        "pipe-pane",
        "-o",
        "-t",
        &t.name,
        &format!("cat >> '{}'", raw.display()),
    ]);
    t.start_dashboard(&cluster.url(), "");
    t.wait_for(|s| s.contains("1 KPI"), "the dashboard");
    t.send(&["2"]);
    t.wait_for(|s| s.contains("LIVE"), "the Logs tab");

    // A day back: the cursor on the minute's first line; its trace; copy the id.
    t.send(&[":"]);
    t.send_literal(&format!("goto {at}"));
    t.send(&["Enter"]);
    t.wait_for(
        |s| s.contains("card declined a day ago") && s.contains("before the minute"),
        "the lines a day back",
    );
    t.send(&["t"]);
    t.wait_for(|s| s.contains(&format!("trace {id}")), "the trace view");
    t.send(&["y"]);
    t.wait_for(
        |s| s.contains(&format!("copied trace id {id}")),
        "the status line saying what was copied",
    );

    let b64 = base64::engine::general_purpose::STANDARD.encode(id);
    let sequence = format!("\x1b]52;c;{b64}\x07");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let got = std::fs::read(&raw).unwrap_or_default();
        if String::from_utf8_lossy(&got).contains(&sequence) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the pane never received {sequence:?}; it received {} bytes",
            got.len()
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    // tmux took it as a copy: its newest paste buffer is the id.
    assert_eq!(tmux(&["show-buffer"]), id);
    t.send(&["q"]);
}
