//! The Alerts tab on ratatui's TestBackend with real alerts from a throwaway PostgreSQL:
//! list, detail, acknowledging with a note typed into the prompt, the rules view's "evaluate
//! now", and hostile label text kept off the terminal.

mod common;

use common::tui::{buffer_text, open, press, render};
use opsdash::alerts::{engine, RuleConfig};
use opsdash::config::Config;
use opsdash::db::testkit::TestDb;
use opsdash::model::AlertState;
use opsdash::query::alerts as q;
use opsdash::query::rules;
use opsdash::tui::app::{update, App};
use opsdash::tui::event::Event;
use ratatui::crossterm::event::KeyCode;

fn screen(app: &App) -> String {
    buffer_text(&render(app, 80, 24))
}

/// A fresh database where `seed` ran and `rule` (from the config) was evaluated once, and the
/// dashboard open on its Alerts tab.
async fn alerts_tab_after(rule: RuleConfig, seed: &[&str]) -> (TestDb, App) {
    let t = TestDb::new().await.unwrap();
    for sql in seed {
        sqlx::query(sql).execute(&t.db.write).await.unwrap();
    }
    let mut cfg = Config::default();
    let name = rule.name.clone();
    cfg.alert.rules = vec![rule];
    rules::sync_config_rules(&t.db.write, &engine::config_specs(&cfg))
        .await
        .unwrap();
    let rule = rules::rule_by_name(&t.db.write, &name)
        .await
        .unwrap()
        .unwrap();
    engine::evaluate_rule(&t.db, &cfg, &rule, None)
        .await
        .unwrap();
    let mut app = open(&t.db, cfg, "tui-test:1:x", false, 2).await;
    press(&mut app, KeyCode::Char('3')).await;
    (t, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_tab_lists_details_and_acknowledges_with_a_note() {
    let rule = RuleConfig {
        name: "api-errors".into(),
        severity: opsdash::model::Severity::Critical,
        measure: "error_rate".into(),
        threshold: 10.0,
        runbook_url: "https://runbooks/api".into(),
        // A handful of requests: no minimum volume.
        min_count: Some(1),
        ..RuleConfig::default()
    };
    let (t, mut app) = alerts_tab_after(
        rule,
        &[
            "INSERT INTO opsdash.request_log (ts, service, route, status)
           SELECT now() - interval '5 seconds', s, '/x', 500
             FROM unnest(ARRAY['api', E'evil\\u001b[2J\\u202e']) s, generate_series(1, 5)",
        ],
    )
    .await;
    let text = screen(&app);
    assert!(text.contains("Alerts open 2: C2 E0 W0 I0"), "{text}");
    assert!(
        text.contains("api-errors") && text.contains("firing"),
        "{text}"
    );
    assert!(text.contains("service=api"), "{text}");
    assert!(
        text.contains("runbook https://runbooks/api"),
        "detail pane:\n{text}"
    );
    assert!(
        text.contains("· -> firing by worker"),
        "history in the detail:\n{text}"
    );
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{202e}'),
        "{text}"
    );

    // Which alert is selected: the list is sorted by severity, state, age, id.
    let alerts = q::list_alerts(&t.db.read, false, 10).await.unwrap();
    let first = alerts.iter().min_by_key(|a| (a.fired_at, a.id)).unwrap().id;

    // `a`, type a note (digits and q go to the prompt, not to the shell), Enter.
    press(&mut app, KeyCode::Char('a')).await;
    for c in "on it q3".chars() {
        press(&mut app, KeyCode::Char(c)).await;
    }
    assert!(
        screen(&app).contains("Acknowledge alert"),
        "{}",
        screen(&app)
    );
    press(&mut app, KeyCode::Enter).await;
    let a = q::alert(&t.db.read, first).await.unwrap().unwrap();
    assert_eq!(a.state, AlertState::Acknowledged);
    assert_eq!(a.ack_note.as_deref(), Some("on it q3"));
    assert!(a.acknowledged_by.is_some());
    let text = screen(&app);
    assert!(
        text.contains(&format!("alert {first} acknowledged")),
        "{text}"
    );
    assert!(text.contains("acknowledged by"), "{text}");

    // Acknowledging it again is refused with who was first.
    press(&mut app, KeyCode::Char('a')).await;
    assert!(screen(&app).contains("not firing"), "{}", screen(&app));

    // Rules view: evaluate now shows values without sending or writing anything.
    press(&mut app, KeyCode::Char('l')).await;
    let text = screen(&app);
    assert!(
        text.contains("Rules") && text.contains("api-errors"),
        "{text}"
    );
    let before: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.alert_history")
        .fetch_one(&t.db.read)
        .await
        .unwrap();
    press(&mut app, KeyCode::Char('T')).await;
    let text = screen(&app);
    assert!(text.contains("Evaluated now: api-errors"), "{text}");
    assert!(text.contains("service=api = 100 would fire"), "{text}");
    let after: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.alert_history")
        .fetch_one(&t.db.read)
        .await
        .unwrap();
    assert_eq!(before, after);
}

/// Enter on an alert: the Logs tab, filtered to the alert's scope (its service and route
/// labels) and time window (from a few minutes before it started; still open, so up to now).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn enter_on_an_alert_opens_its_log_lines() {
    let rule = RuleConfig {
        name: "pay-errors".into(),
        severity: opsdash::model::Severity::Critical,
        measure: "error_rate".into(),
        threshold: 10.0,
        scope: [
            ("service".to_string(), "api".to_string()),
            ("by".to_string(), "route".to_string()),
        ]
        .into(),
        // A handful of requests: no minimum volume.
        min_count: Some(1),
        ..RuleConfig::default()
    };
    let (_t, mut app) = alerts_tab_after(
        rule,
        &[
            "INSERT INTO opsdash.request_log (ts, service, route, status)
             SELECT now() - interval '5 seconds', 'api', '/pay', 500 FROM generate_series(1, 5)",
            "INSERT INTO opsdash.log_event (ts, level, service, route, message) VALUES
               (now() - interval '1 minute', 4, 'api', '/pay', 'card declined upstream'),
               (now() - interval '1 minute', 4, 'api', '/cart', 'cart line of the same service'),
               (now() - interval '1 minute', 4, 'web', '/pay', 'line of another service'),
               (now() - interval '3 hours', 4, 'api', '/pay', 'long before the alert')",
        ],
    )
    .await;
    assert!(screen(&app).contains("pay-errors"), "{}", screen(&app));

    press(&mut app, KeyCode::Enter).await;
    assert_eq!(app.active_id(), Some(opsdash::tui::tabs::Tab::Logs));
    let filter = app.active_tab().unwrap().filter().to_string();
    assert!(
        filter.starts_with("route:/pay service:api since:"),
        "{filter}"
    );
    // The tail reads on its own task: give it a moment, as the event loop would.
    let mut text = String::new();
    for _ in 0..50 {
        let fx = update(&mut app, Event::Tick(chrono::Utc::now()));
        opsdash::tui::settle(&mut app, fx).await;
        text = screen(&app);
        if text.contains("card declined upstream") {
            break;
        }
    }
    eprintln!("{text}");
    assert!(text.contains("card declined upstream"), "{text}");
    assert!(text.contains("filter: route:/pay"), "{text}");
    assert!(!text.contains("cart line of the same service"), "{text}");
    assert!(!text.contains("line of another service"), "{text}");
    assert!(!text.contains("long before the alert"), "{text}");
    // Up in the filter line brings the jump's filter back, to edit it.
    assert_eq!(app.filter_history.last(), Some(&filter));
}

/// The detail pane of an alert whose condition turned false: since when, when it resolves if
/// nothing changes, why it is false (too few requests for the rule's `min_count`), and the
/// comparison as it stands (`1 < 5`, not the rule's `>` printed whatever the value).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_detail_says_since_when_the_condition_is_false_when_it_resolves_and_why() {
    let t = TestDb::new().await.unwrap();
    let mut cfg = Config::default();
    cfg.alert.rules = vec![RuleConfig {
        name: "edge-errors".into(),
        severity: opsdash::model::Severity::Critical,
        measure: "error_rate".into(),
        threshold: 5.0,
        window: "5m".into(),
        resolve_after: "5m".into(),
        ..RuleConfig::default()
    }];
    rules::sync_config_rules(&t.db.write, &engine::config_specs(&cfg))
        .await
        .unwrap();
    let rule = rules::rule_by_name(&t.db.write, "edge-errors")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(rule.spec.min_count, 20, "the default minimum volume");
    let requests = |total: i32, failed: i32| {
        let db = t.db.clone();
        async move {
            sqlx::query("DELETE FROM opsdash.request_log")
                .execute(&db.write)
                .await
                .unwrap();
            sqlx::query(
                "INSERT INTO opsdash.request_log (ts, service, route, status)
                 SELECT now() - interval '5 seconds', 'edge', '/x',
                        CASE WHEN g <= $2 THEN 502 ELSE 200 END
                   FROM generate_series(1, $1) g",
            )
            .bind(total)
            .bind(failed)
            .execute(&db.write)
            .await
            .unwrap();
        }
    };
    // Four requests, two failed: 50%, but below min_count: nothing fires.
    requests(4, 2).await;
    engine::evaluate_rule(&t.db, &cfg, &rule, None)
        .await
        .unwrap();
    assert!(q::list_alerts(&t.db.read, true, 10)
        .await
        .unwrap()
        .is_empty());
    // Enough requests: it fires. Then back to four: false, and the detail says why and when.
    requests(40, 20).await;
    engine::evaluate_rule(&t.db, &cfg, &rule, None)
        .await
        .unwrap();
    requests(4, 2).await;
    engine::evaluate_rule(&t.db, &cfg, &rule, None)
        .await
        .unwrap();
    let a = &q::list_alerts(&t.db.read, false, 10).await.unwrap()[0];
    assert_eq!(a.state, AlertState::Firing);
    let since = a.condition_false_since.expect("false since");
    let mut app = open(&t.db, cfg.clone(), "tui-test:1:x", false, 2).await;
    press(&mut app, KeyCode::Char('3')).await;
    let text = buffer_text(&render(&app, 120, 40));
    assert!(
        text.contains("4 requests in 5m, below min_count 20 (condition false)"),
        "{text}"
    );
    let hms = |t: chrono::DateTime<chrono::Utc>| t.format("%H:%M:%S").to_string();
    assert!(
        text.contains(&format!("condition false since {}", hms(since))),
        "{text}"
    );
    let at = since + chrono::Duration::minutes(5);
    assert!(
        text.contains(&format!("resolves at {} (in ", hms(at)))
            && text.contains("if it stays false"),
        "{text}"
    );

    // Plenty of requests, one failed: 1%, and the text says 1 < 5.
    requests(100, 1).await;
    engine::evaluate_rule(&t.db, &cfg, &rule, None)
        .await
        .unwrap();
    let mut app = open(&t.db, cfg, "tui-test:1:x", false, 2).await;
    press(&mut app, KeyCode::Char('3')).await;
    let text = buffer_text(&render(&app, 120, 40));
    assert!(text.contains("error_rate 1 < 5  fires when > 5"), "{text}");
    assert!(
        text.contains("edge-errors service=edge: 1 < 5 (condition false; fires when > 5)"),
        "{text}"
    );
    assert!(
        !text.contains("1 > 5") && !text.contains("1.00 > 5"),
        "{text}"
    );
    // Still false since the same time: the resolve period runs from the first false look.
    assert!(
        text.contains(&format!("condition false since {}", hms(since))),
        "{text}"
    );
}
