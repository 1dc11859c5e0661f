//! Snapshot tests of the Alerts tab's storm and history views at 80x24 and 160x45, from
//! fabricated state (no database: an `App` on a pool that never connects, fed query results at
//! a fixed clock): a 15-alert burst folded into one group line, the group expanded with two
//! alerts marked, the silence editor prefilled from the marks with its match count, and the
//! history view (MTTA/MTTR per rule, past alerts, one alert's timeline). A layout change shows
//! as a reviewable diff (`cargo insta review`, or INSTA_UPDATE=always).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use common::tui::{buffer_text, key, lazy_db, render};
use opsdash::config::Config;
use opsdash::model::rule::RuleSpec;
use opsdash::model::{AlertState, Severity};
use opsdash::query::alert_history::{AlertHistory, RuleTimes};
use opsdash::query::alerts::{AlertRow, HistoryRow};
use opsdash::query::rules::Rule;
use opsdash::tui::app::{update, App, AppOptions};
use opsdash::tui::event::Event;
use opsdash::tui::msg::{AlertsData, Data, Owner, QueryDone, Tab};
use ratatui::crossterm::event::KeyCode;

const SIZES: [(u16, u16); 2] = [(80, 24), (160, 45)];

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap()
}

fn ago(secs: i64) -> DateTime<Utc> {
    t0() - chrono::Duration::seconds(secs)
}

fn feed(app: &mut App, data: AlertsData) {
    let _ = update(
        app,
        Event::Query(QueryDone {
            owner: Owner::Tab(Tab::Alerts),
            panel: "snapshot",
            generation: 0,
            data: Data::Alerts(data),
        }),
    );
}

fn alert(id: i64, rule_id: i64, rule: &str, labels: &[(&str, &str)], age: i64) -> AlertRow {
    let mut l: BTreeMap<String, String> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    l.insert("alertname".into(), rule.into());
    l.insert("severity".into(), "error".into());
    AlertRow {
        id,
        rule_id,
        rule_name: rule.into(),
        severity: Severity::Error,
        label_key: String::new(),
        labels: sqlx::types::Json(l),
        state: AlertState::Firing,
        value: Some(6.0),
        threshold: Some(5.0),
        summary: format!("{rule}: 6 > 5"),
        pending_since: ago(age),
        fired_at: Some(ago(age)),
        acknowledged_at: None,
        acknowledged_by: None,
        ack_note: None,
        resolved_at: None,
        resolved_by: None,
        resolve_note: None,
        condition_false_since: None,
        last_notified_at: None,
        testing: false,
        source: None,
        ends_at: None,
    }
}

/// The brute-force burst: 15 users, one alert each, fired together; and two alerts of
/// another rule, too few to fold.
fn open_alerts() -> Vec<AlertRow> {
    let mut v: Vec<AlertRow> = (1..=15)
        .map(|u| {
            alert(
                100 + u,
                7,
                "brute-force-user",
                &[("actor", &format!("user{u:02}"))],
                120,
            )
        })
        .collect();
    v.push(alert(201, 8, "mass-delete", &[("actor", "batch")], 600));
    v.push(alert(202, 8, "mass-delete", &[("actor", "cron")], 900));
    v
}

fn rule(id: i64, name: &str) -> Rule {
    Rule {
        id,
        spec: RuleSpec {
            name: name.into(),
            description: String::new(),
            severity: Severity::Error,
            status: "enabled".into(),
            metric: "audit_events".into(),
            scope: BTreeMap::new(),
            filter: None,
            query: None,
            operator: "gt".into(),
            threshold: 5.0,
            window_s: 300,
            for_s: 0,
            eval_interval_s: 30,
            labels: BTreeMap::new(),
            group_by: Vec::new(),
            channels: Vec::new(),
            repeat_interval_s: 3600,
            max_per_hour: 10,
            auto_resolve: true,
            resolve_after_s: 300,
            runbook_url: None,
            min_count: 0,
        },
        source: "config".into(),
        last_eval_at: Some(ago(10)),
        last_value: Some(6.0),
        last_error: None,
    }
}

fn app() -> App {
    let mut app = App::new(
        lazy_db(),
        Arc::new(Config::default()),
        AppOptions {
            no_color: true,
            instance: "snapshot-test:1:abcd".into(),
            config_dir: None,
        },
    );
    let _ = update(&mut app, Event::Tick(t0()));
    let _ = update(&mut app, Event::Ping(Ok(Duration::from_millis(3))));
    let _ = key(&mut app, KeyCode::Char('3'));
    feed(
        &mut app,
        AlertsData::Rules(Ok(vec![
            rule(7, "brute-force-user"),
            rule(8, "mass-delete"),
        ])),
    );
    feed(&mut app, AlertsData::Alerts(Ok(open_alerts())));
    app
}

fn check(app: &App, name: &str) {
    for (w, h) in SIZES {
        let text = buffer_text(&render(app, w, h));
        insta::assert_snapshot!(format!("{name}_{w}x{h}"), text);
    }
}

// Current-thread runtime: nothing the tab asks for runs while the test never yields, so only
// the fabricated results reach it.
#[tokio::test]
async fn storm_folded_into_one_group_line() {
    let app = app();
    check(&app, "alerts_storm_grouped");
}

#[tokio::test]
async fn storm_expanded_with_two_marked() {
    let mut app = app();
    // The group line is last (its alerts are the newest); G, Enter expands it.
    for k in [
        KeyCode::Char('G'),
        KeyCode::Enter,
        KeyCode::Char('j'),
        KeyCode::Char(' '),
        KeyCode::Char(' '),
    ] {
        let _ = key(&mut app, k);
    }
    check(&app, "alerts_storm_marked");
}

#[tokio::test]
async fn silence_editor_prefilled_from_the_marks() {
    let mut app = app();
    for k in [
        KeyCode::Char('G'),
        KeyCode::Enter,
        KeyCode::Char('j'),
        KeyCode::Char(' '),
        KeyCode::Char(' '),
        KeyCode::Char('s'),
    ] {
        let _ = key(&mut app, k);
    }
    // The count the database would answer for the prefilled line.
    let line = "actor=~user01|user02, alertname=brute-force-user".to_string();
    feed(&mut app, AlertsData::SilencePreview(Ok((line, 2))));
    check(&app, "alerts_silence_editor");
}

#[tokio::test]
async fn history_view_with_response_times_and_a_timeline() {
    let mut app = app();
    for _ in 0..3 {
        let _ = key(&mut app, KeyCode::Char('l'));
    }
    let mut past = Vec::new();
    for (i, (state, acked)) in [
        (AlertState::Resolved, true),
        (AlertState::Resolved, false),
        (AlertState::Acknowledged, true),
        (AlertState::Suppressed, false),
    ]
    .into_iter()
    .enumerate()
    {
        let i = i as i64;
        let mut a = alert(
            300 + i,
            7,
            "brute-force-user",
            &[("actor", &format!("old{i}"))],
            7200 + 600 * i,
        );
        a.state = state;
        if acked {
            a.acknowledged_at = Some(ago(7200 + 600 * i - 240));
            a.acknowledged_by = Some("ops".into());
        }
        if state == AlertState::Resolved {
            a.resolved_at = Some(ago(7200 + 600 * i - 1500));
            a.resolved_by = Some("worker".into());
        }
        past.push(a);
    }
    feed(
        &mut app,
        AlertsData::History(Ok(AlertHistory {
            window: Duration::from_secs(7 * 86_400),
            alerts: past,
            rules: vec![
                RuleTimes {
                    rule_name: "brute-force-user".into(),
                    fired: 4,
                    acknowledged: 2,
                    mtta_s: Some(240.0),
                    resolved: 2,
                    mttr_s: Some(1500.0),
                },
                RuleTimes {
                    rule_name: "mass-delete".into(),
                    fired: 1,
                    acknowledged: 0,
                    mtta_s: None,
                    resolved: 0,
                    mttr_s: None,
                },
            ],
        })),
    );
    let step =
        |secs: i64, from: Option<AlertState>, to: AlertState, actor: &str, note: Option<&str>| {
            HistoryRow {
                ts: ago(secs),
                from_state: from,
                to_state: to,
                actor: actor.into(),
                note: note.map(str::to_string),
                value: Some(6.0),
            }
        };
    feed(
        &mut app,
        AlertsData::Timeline(Ok((
            300,
            vec![
                step(7200, None, AlertState::Firing, "worker", None),
                step(
                    6960,
                    Some(AlertState::Firing),
                    AlertState::Acknowledged,
                    "ops",
                    Some("on it"),
                ),
                step(
                    5700,
                    Some(AlertState::Acknowledged),
                    AlertState::Resolved,
                    "worker",
                    None,
                ),
            ],
        ))),
    );
    check(&app, "alerts_history");
}
