//! End-to-end: the real dashboard in tmux, its in-process worker firing an alert from real
//! data, an operator acknowledging it with a note from the keyboard, then Enter on it opening
//! the Logs tab filtered to the alert.

use opsdash::db::testkit::TestCluster;

/// A tmux session running an interactive shell; killed on drop, even when the test fails.
mod common;

use common::tmux::{start_cluster, Tmux, PROMPT};

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
    sql(
        &cluster,
        "WITH i AS (INSERT INTO opsdash.log_event (ts, level, service, message) VALUES
                      (now(), 4, 'checkout', 'payment gateway answered 502'),
                      (now(), 2, 'search', 'search index warmed up'))
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
    // Enter: the Logs tab, filtered to the alert's service from before it started.
    t.send(&["Enter"]);
    let s = t.wait_for(
        |s| {
            s.contains("filter: service:checkout since:")
                && s.contains("payment gateway answered 502")
        },
        "the Logs tab filtered to the alert",
    );
    eprintln!("{s}");
    assert!(!s.contains("search index warmed up"), "{s}");
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
