//! End-to-end: the real binary in tmux against a private cluster: the Logs tab tails a line
//! written while it runs, filters, pauses and resumes, opens a trace and exports to a file.

/// A tmux session running an interactive shell; killed on drop, even when the test fails.
mod common;

use common::tmux::{run_sql, start_cluster, Tmux, PROMPT};

#[test]
fn logs_tab_tails_filters_pauses_traces_and_exports() {
    let cluster = start_cluster("logs-e2e");
    run_sql(&cluster,
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
    run_sql(&cluster,
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

    // Pause, a line arrives and is counted, resume shows it. The count shows once the tail
    // engine has taken the pause (until then a line it was reading may still be delivered).
    t.send(&["Space"]);
    t.wait_for(|s| s.contains("PAUSED (0 waiting)"), "the pause");
    run_sql(&cluster,
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

/// The row of the screen holding `needle`.
fn row(screen: &str, needle: &str) -> Option<usize> {
    screen.lines().position(|l| l.contains(needle))
}

/// The real binary: the list is in time order whatever the commit order and holds only the
/// range (1 h); the filter line applies on Enter only, Esc keeps the applied filter, `/`
/// reopens with it selected (typing replaces it), and a guessed `OR` gets a hint.
#[test]
fn logs_order_range_and_filter_line_keys() {
    let cluster = start_cluster("logs-keys");
    // Committed newest first: commit order is the reverse of time order.
    run_sql(
        &cluster,
        "INSERT INTO opsdash.log_event (ts, level, service, message)
           VALUES (now() - interval '5 minutes', 4, 'api', 'newest by time');
         INSERT INTO opsdash.log_event (ts, level, service, message)
           VALUES (now() - interval '20 minutes', 2, 'api', 'oldest by time');
         INSERT INTO opsdash.log_event (ts, level, service, message)
           VALUES (now() - interval '7 hours', 4, 'api', 'seven hours before');",
    );
    let t = Tmux::start("logs-keys", 100, 30);
    t.start_dashboard(&cluster.url(), "--no-color");
    t.wait_for(|s| s.contains("1 KPI"), "the dashboard");
    t.send(&["2"]);
    let s = t.wait_for(
        |s| s.contains("newest by time") && s.contains("oldest by time"),
        "the tail",
    );
    assert!(
        row(&s, "oldest by time") < row(&s, "newest by time"),
        "time order:\n{s}"
    );
    assert!(
        !s.contains("seven hours before"),
        "outside the 1h range:\n{s}"
    );

    // Enter applies.
    t.send(&["/"]);
    t.send_literal("level:error");
    t.send(&["Enter"]);
    t.wait_for(
        |s| s.contains("filter: level:error") && !s.contains("oldest by time"),
        "the filtered tail",
    );

    // `/` reopens with the filter selected: typing replaces it; Esc keeps the applied one.
    t.send(&["/"]);
    t.send_literal("service:web");
    let s = t.wait_for(|s| s.contains("/service:web"), "the replaced text");
    assert!(!s.contains("level:errorservice"), "{s}");
    t.send(&["Escape"]);
    let s = t.wait_for(
        |s| !s.contains("/service:web") && s.contains("filter: level:error"),
        "the cancelled edit",
    );
    assert!(
        s.contains("newest by time") && !s.contains("oldest by time"),
        "{s}"
    );

    // Emptying the line (Ctrl-A Ctrl-K) applies nothing; a guessed OR gets a hint.
    t.send(&["/"]);
    t.send(&["End"]);
    t.send(&["C-a"]);
    t.send(&["C-k"]);
    t.send_literal("api OR web");
    let s = t.wait_for(|s| s.contains("OR is not supported"), "the hint");
    assert!(s.contains("use service:a,b"), "{s}");
    assert!(
        s.contains("filter: level:error") && !s.contains("oldest by time"),
        "the emptied line was not applied:\n{s}"
    );
    t.send(&["Escape"]);
    t.wait_for(
        |s| !s.contains("OR is not supported") && s.contains("filter: level:error"),
        "the applied filter after Esc",
    );

    // Enter on an emptied line applies the empty filter.
    t.send(&["/"]);
    t.send(&["BSpace"]);
    t.send(&["Enter"]);
    let s = t.wait_for(
        |s| s.contains("oldest by time") && !s.contains("filter: level:error"),
        "the unfiltered tail",
    );
    assert!(row(&s, "oldest by time") < row(&s, "newest by time"), "{s}");

    t.send(&["q"]);
    // The prompt may wrap at the screen's edge after the long command line.
    t.wait_for(
        |s| s.replace('\n', "").contains(PROMPT),
        "the shell after quitting",
    );
}
