//! End-to-end: the Alerts tab's history view (`h` from the alerts) honours the tab's `/`
//! filter, by label and by severity as the open-alert list does, in the real dashboard in tmux.

mod common;

use common::tmux::{run_sql, start_cluster, Tmux, PROMPT};

/// The line of the screen holding the history list's title.
fn history_title(s: &str) -> &str {
    s.lines().find(|l| l.contains("History 7d:")).unwrap_or("")
}

#[test]
fn history_view_keeps_only_the_alerts_the_filter_matches() {
    let cluster = start_cluster("alerts-hist-filter");
    // Disabled rules: the in-process worker leaves their past alerts as they are.
    run_sql(
        &cluster,
        "INSERT INTO opsdash.alert_rule (id, name, metric, severity, status, source) VALUES
           (1, 'checkout-errors', 'error_rate', 'warning', 'disabled', 'cli'),
           (2, 'disk-full', 'error_rate', 'critical', 'disabled', 'cli');
         INSERT INTO opsdash.alert (rule_id, rule_name, severity, labels, label_key, state,
                                    pending_since, fired_at, acknowledged_at, resolved_at)
         VALUES
           (1, 'checkout-errors', 'warning', '{\"host\": \"web-1\"}', 'host=web-1', 'resolved',
            now() - interval '3 hours', now() - interval '3 hours',
            now() - interval '170 minutes', now() - interval '2 hours'),
           (2, 'disk-full', 'critical', '{\"host\": \"db-1\"}', 'host=db-1', 'resolved',
            now() - interval '90 minutes', now() - interval '90 minutes', NULL,
            now() - interval '80 minutes'),
           (2, 'disk-full', 'critical', '{\"host\": \"db-2\"}', 'host=db-2', 'resolved',
            now() - interval '60 minutes', now() - interval '60 minutes',
            now() - interval '55 minutes', now() - interval '40 minutes');",
    );
    let t = Tmux::start("alerts-hist-filter", 120, 34);
    t.start_dashboard(&cluster.url(), "");
    t.wait_for(|s| s.contains("1 KPI"), "the dashboard");
    t.send(&["3"]);
    t.wait_for(|s| s.contains("Alerts open"), "the Alerts tab");
    // From the alerts, `h` goes round to the history view.
    t.send(&["h"]);
    let s = t.wait_for(
        |s| {
            history_title(s).contains("3 resolved")
                && s.contains("host=web-1")
                && s.contains("host=db-2")
        },
        "the history, unfiltered",
    );
    eprintln!("{s}");

    // A label: one past alert, and the response times of its rule only.
    t.send(&["/"]);
    t.send_literal("db-2");
    t.send(&["Enter"]);
    let s = t.wait_for(
        |s| history_title(s).contains("1 resolved, acknowledged or silenced match the filter"),
        "the history filtered on a label",
    );
    eprintln!("{s}");
    assert!(s.contains("host=db-2"), "{s}");
    assert!(!s.contains("host=db-1"), "{s}");
    assert!(!s.contains("host=web-1"), "{s}");
    assert!(!s.contains("checkout-errors"), "{s}");
    assert!(s.contains("disk-full"), "{s}");

    // A severity, as the open-alert list reads it: both of disk-full's alerts.
    // `/` reopens the applied filter selected: typing replaces it.
    t.send(&["/"]);
    t.send_literal("critical");
    t.send(&["Enter"]);
    let s = t.wait_for(
        |s| history_title(s).contains("2 resolved, acknowledged or silenced match the filter"),
        "the history filtered on a severity",
    );
    eprintln!("{s}");
    assert!(s.contains("host=db-1") && s.contains("host=db-2"), "{s}");
    assert!(!s.contains("host=web-1"), "{s}");
    assert!(!s.contains("checkout-errors"), "{s}");

    t.send(&["q"]);
    t.wait_for(
        |s| s.lines().any(|l| l.trim() == PROMPT),
        "shell prompt after quit",
    );
}
