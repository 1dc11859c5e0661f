//! One fixture of alerts in mixed states and severities, some of a rule in testing mode: the
//! TUI header, the KPI card and the Alerts tab (TestBackend renders of the real dashboard) and
//! the real `opsdash alerts list` all count the same open alerts, and the testing-mode ones
//! apart. Then removing a rule from the CLI keeps its alerts and their history.

mod common;

use std::path::Path;

use common::procs::write_config;
use common::tui::{buffer_text, open, press, render};
use opsdash::config::Config;
use opsdash::db::testkit::TestDb;
use opsdash::model::AlertState;
use opsdash::query::alerts as q;
use opsdash::query::rules;
use ratatui::crossterm::event::KeyCode;

/// The real binary. `OPSDASH_TEST_BIN` may name another build of it: engineers sharing one
/// target directory overwrite each other's `target/debug/opsdash`.
fn opsdash(url: &str, config: &Path) -> std::process::Command {
    let bin = std::env::var("OPSDASH_TEST_BIN")
        .unwrap_or_else(|_| env!("CARGO_BIN_EXE_opsdash").to_string());
    let mut c = std::process::Command::new(bin);
    c.arg("--database-url").arg(url).arg("--config").arg(config);
    c
}

/// Open alerts of real rules: critical 2 (firing, acknowledged), error 3 (pending, suppressed,
/// firing), warning 1, info 1; two resolved ones; two open alerts of a testing-mode rule.
const FIXTURE: &[&str] = &[
    "INSERT INTO opsdash.alert_rule (id, name, metric, status, source) VALUES
       (1, 'real', 'error_rate', 'enabled', 'cli'),
       (2, 'trial', 'error_rate', 'testing', 'cli')",
    "INSERT INTO opsdash.alert (rule_id, rule_name, severity, state, label_key, fired_at, resolved_at)
     VALUES (1, 'real', 'critical', 'firing',       'service=a', now(), NULL),
            (1, 'real', 'critical', 'acknowledged', 'service=b', now(), NULL),
            (1, 'real', 'error',    'pending',      'service=c', NULL,  NULL),
            (1, 'real', 'error',    'suppressed',   'service=d', now(), NULL),
            (1, 'real', 'error',    'firing',       'service=e', now(), NULL),
            (1, 'real', 'warning',  'firing',       'service=f', now(), NULL),
            (1, 'real', 'info',     'firing',       'service=g', now(), NULL),
            (1, 'real', 'critical', 'resolved',     'service=a', now(), now()),
            (1, 'real', 'error',    'resolved',     'service=h', now(), now()),
            (2, 'trial', 'critical', 'firing',      'service=a', now(), NULL),
            (2, 'trial', 'warning',  'pending',     'service=b', NULL,  NULL)",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_kpi_card_alerts_tab_and_alerts_list_count_the_same_open_alerts() {
    let t = TestDb::new().await.unwrap();
    for sql in FIXTURE {
        sqlx::query(sql).execute(&t.db.write).await.unwrap();
    }
    let counts = q::open_counts(&t.db.read).await.unwrap();
    assert_eq!(
        (counts.by_severity(), counts.total(), counts.testing),
        ("C2 E3 W1 I1".to_string(), 7, 2)
    );

    let mut cfg = Config::default();
    cfg.alert.rules.clear();
    let mut app = open(&t.db, cfg, "counts-test:1:x", false, 2).await;
    let kpi = buffer_text(&render(&app, 120, 40));
    assert!(
        kpi.contains("alerts open: C2 E3 W1 I1 +2 testing"),
        "header:\n{kpi}"
    );
    let card = kpi
        .lines()
        .skip_while(|l| !l.contains("Open alerts"))
        .take(4)
        .collect::<Vec<_>>()
        .join("\n");
    // Value and detail: the open alerts of real rules (testing-mode ones are left out).
    assert!(card.contains(" 7 C2 E3 W1 I1 "), "KPI card:\n{kpi}");

    press(&mut app, KeyCode::Char('3')).await;
    let tab = buffer_text(&render(&app, 120, 60));
    assert!(
        tab.contains("Alerts open 7: C2 E3 W1 I1 +2 testing"),
        "Alerts tab:\n{tab}"
    );
    assert!(tab.contains("alerts open: C2 E3 W1 I1"), "{tab}");
    // The seven alerts of one rule are folded into one group line with their count (the
    // Alerts tab groups by rule from four alerts up); Enter on it lists them one by one.
    assert!(
        tab.lines()
            .any(|l| l.contains(" real ") && l.contains("▸ 7 alerts")),
        "Alerts tab:\n{tab}"
    );
    press(&mut app, KeyCode::Enter).await;
    let tab = buffer_text(&render(&app, 120, 60));
    let listed = tab
        .lines()
        .filter(|l| l.contains(" real ") && !l.contains(" alerts "))
        .count();
    let trial = tab
        .lines()
        .filter(|l| l.contains(" trial ") && l.contains("[test]"))
        .count();
    assert_eq!((listed, trial), (7, 2), "Alerts tab rows:\n{tab}");

    // `opsdash alerts list`: the same open alerts, the testing-mode ones marked.
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = write_config(dir.path(), "[alert]\nrule = []\n");
    let out = opsdash(&t.url().unwrap(), &cfg_path)
        .args(["alerts", "list"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    let rows: Vec<&str> = text.lines().skip(1).collect();
    let real: Vec<&str> = rows
        .iter()
        .copied()
        .filter(|l| l.contains(" real ") && !l.contains("[test]"))
        .collect();
    let mut by_severity = [0; 4];
    for l in &real {
        for (i, s) in ["critical", "error", "warning", "info"].iter().enumerate() {
            if l.split_whitespace().nth(1) == Some(s) {
                by_severity[i] += 1;
            }
        }
    }
    assert_eq!(by_severity, [2, 3, 1, 1], "{text}");
    let testing = rows.iter().filter(|l| l.contains("[test]")).count();
    assert_eq!((real.len(), testing, rows.len()), (7, 2, 9), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removing_a_rule_keeps_its_alerts_and_their_history() {
    let t = TestDb::new().await.unwrap();
    let url = t.url().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg_path = write_config(dir.path(), "[alert]\nrule = []\n");
    let run = |args: &[&str]| {
        let out = opsdash(&url, &cfg_path).args(args).output().unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    run(&[
        "alerts",
        "rules",
        "add",
        "--name",
        "pay-errors",
        "--measure",
        "error_rate",
        "--threshold",
        "5",
        "--severity",
        "critical",
    ]);
    sqlx::query(
        "INSERT INTO opsdash.request_log (ts, service, route, status)
         SELECT now() - interval '1 second', 'pay', '/x', 500 FROM generate_series(1, 30)",
    )
    .execute(&t.db.write)
    .await
    .unwrap();
    let rule = rules::rule_by_name(&t.db.read, "pay-errors")
        .await
        .unwrap()
        .unwrap();
    opsdash::alerts::engine::evaluate_rule(&t.db, &Config::default(), &rule, None)
        .await
        .unwrap();
    let alert = q::list_alerts(&t.db.read, false, 10).await.unwrap();
    assert_eq!(alert.len(), 1);
    let id = alert[0].id;
    assert_eq!(alert[0].state, AlertState::Firing);

    let said = run(&["alerts", "rules", "remove", "pay-errors"]);
    assert!(said.contains("rule pay-errors removed"), "{said}");

    // The alert and its history are still there; it was resolved, saying why and by whom.
    let a = q::alert(&t.db.read, id).await.unwrap().expect("alert kept");
    assert_eq!(a.state, AlertState::Resolved);
    assert_eq!(a.resolve_note.as_deref(), Some("rule removed"));
    let hist: Vec<AlertState> = q::history(&t.db.read, id)
        .await
        .unwrap()
        .into_iter()
        .map(|h| h.to_state)
        .collect();
    assert_eq!(hist, [AlertState::Firing, AlertState::Resolved]);
    let shown = run(&["alerts", "show", &id.to_string()]);
    assert!(shown.contains("pay-errors"), "{shown}");
    // The rule is gone from the rule list and never evaluated again, but still on record.
    let rules = run(&["alerts", "rules", "list"]);
    assert!(!rules.contains("pay-errors"), "{rules}");
    assert!(rules::due_rules(&t.db.read).await.unwrap().is_empty());
    let (removed, status): (bool, String) = sqlx::query_as(
        "SELECT removed_at IS NOT NULL, status FROM opsdash.alert_rule WHERE name = 'pay-errors'",
    )
    .fetch_one(&t.db.read)
    .await
    .unwrap();
    assert_eq!((removed, status.as_str()), (true, "disabled"));
    // The audit event says what was done: removed, with the definition and the alerts kept.
    let (action, changes): (String, serde_json::Value) = sqlx::query_as(
        "SELECT action, changes FROM opsdash.audit_event
          WHERE resource_type = 'alert_rule' ORDER BY id DESC LIMIT 1",
    )
    .fetch_one(&t.db.read)
    .await
    .unwrap();
    assert_eq!(action, "alert_rule.remove");
    assert_eq!(changes["alerts_kept"], 1);
    assert_eq!(changes["alerts_resolved"], serde_json::json!([id]));
    assert_eq!(changes["removed"]["metric"], "error_rate");
    // Nothing can delete the alerts with their rule any more.
    let err = sqlx::query("DELETE FROM opsdash.alert_rule WHERE name = 'pay-errors'")
        .execute(&t.db.write)
        .await;
    assert!(err.is_err(), "a rule with alerts was deleted");
}
