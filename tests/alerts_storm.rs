//! The Alerts tab in an alert storm, on ratatui's TestBackend against a throwaway PostgreSQL:
//! a brute-force burst (15 users failing to log in, evaluated by the real engine) shows as one
//! group line, expands, takes marks; acknowledging the marked and resolving the group run as
//! one transaction each, audited per alert; the silence editor's live count agrees with SQL
//! and with the engine's own suppression; the history view shows MTTA/MTTR and a timeline.

mod common;

use std::collections::BTreeMap;

use common::tui::{buffer_text, open, press, render};
use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use opsdash::alerts::{engine, RuleConfig};
use opsdash::config::Config;
use opsdash::db::testkit::TestDb;
use opsdash::model::{AlertState, Severity};
use opsdash::query::alerts as q;
use opsdash::query::rules;
use opsdash::tui::app::{update, App};
use opsdash::tui::event::Event;
use opsdash::tui::widgets::human_secs;

fn screen(app: &App) -> String {
    buffer_text(&render(app, 80, 24))
}

fn big(app: &App) -> String {
    buffer_text(&render(app, 160, 45))
}

/// Lines of the list showing one alert of the storm (the detail pane's lines never hold both).
fn member_lines(text: &str) -> usize {
    text.lines()
        .filter(|l| l.contains("firing") && l.contains("actor=user"))
        .count()
}

async fn ctrl(app: &mut App, c: char) {
    let fx = update(
        app,
        Event::Input(TermEvent::Key(KeyEvent::new(
            KeyCode::Char(c),
            KeyModifiers::CONTROL,
        ))),
    );
    opsdash::tui::settle(app, fx).await;
}

async fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c)).await;
    }
}

/// Empties the focused line (Ctrl-A home, Ctrl-K to the end) and types `text`.
async fn retype(app: &mut App, text: &str) {
    ctrl(app, 'a').await;
    ctrl(app, 'k').await;
    type_text(app, text).await;
}

fn brute_force_rule() -> RuleConfig {
    RuleConfig {
        name: "brute-force-user".into(),
        severity: Severity::Error,
        measure: "audit_events".into(),
        scope: BTreeMap::from([
            ("action".into(), "%login%".into()),
            ("outcome".into(), "failure".into()),
            ("by".into(), "actor".into()),
        ]),
        operator: "gt".into(),
        threshold: 5.0,
        ..RuleConfig::default()
    }
}

/// A fresh database where 15 users each failed to log in 6 times, the brute-force rule
/// evaluated once (15 firing alerts), and the dashboard open on its Alerts tab.
async fn storm() -> (TestDb, Config, App) {
    let t = TestDb::new().await.unwrap();
    sqlx::query(
        "INSERT INTO opsdash.audit_event (ts, actor, action, resource_type, outcome)
         SELECT now() - interval '1 minute', format('user%s', lpad(u::text, 2, '0')),
                'user.login', 'session', 'failure'
           FROM generate_series(1, 15) u, generate_series(1, 6)",
    )
    .execute(&t.db.write)
    .await
    .unwrap();
    let mut cfg = Config::default();
    cfg.alert.rules = vec![brute_force_rule()];
    rules::sync_config_rules(&t.db.write, &engine::config_specs(&cfg))
        .await
        .unwrap();
    let rule = rules::rule_by_name(&t.db.write, "brute-force-user")
        .await
        .unwrap()
        .unwrap();
    engine::evaluate_rule(&t.db, &cfg, &rule, None)
        .await
        .unwrap();
    let open_alerts = q::list_alerts(&t.db.read, false, 100).await.unwrap();
    assert_eq!(open_alerts.len(), 15);
    assert!(open_alerts.iter().all(|a| a.state == AlertState::Firing));
    let mut app = open(&t.db, cfg.clone(), "tui-test:1:x", false, 2).await;
    press(&mut app, KeyCode::Char('3')).await;
    (t, cfg, app)
}

/// The open alerts' ids, smallest first (the order of a group's members: same severity,
/// state and firing time, then id).
async fn open_ids(t: &TestDb) -> Vec<i64> {
    let mut ids: Vec<i64> = q::list_alerts(&t.db.read, false, 100)
        .await
        .unwrap()
        .iter()
        .map(|a| a.id)
        .collect();
    ids.sort();
    ids
}

/// Operator audit events of `action`: (resource id, transaction id as text).
async fn audited(t: &TestDb, action: &str) -> Vec<(String, String)> {
    sqlx::query_as(
        "SELECT resource_id, tx::text FROM opsdash.audit_event
          WHERE source = 'opsdash' AND action = $1 ORDER BY resource_id::bigint",
    )
    .bind(action)
    .fetch_all(&t.db.read)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_is_one_group_marked_alerts_act_together_and_history_shows_mtta_mttr() {
    let (t, _cfg, mut app) = storm().await;
    let ids = open_ids(&t).await;

    // One group line with the count, not 15 lines.
    let text = screen(&app);
    assert!(text.contains("▸ 15 alerts"), "{text}");
    assert_eq!(member_lines(&text), 0, "collapsed:\n{text}");
    assert!(text.contains("Alerts open 15: C0 E15 W0 I0"), "{text}");

    // Enter expands it: the members under the group line.
    press(&mut app, KeyCode::Enter).await;
    let text = big(&app);
    assert!(text.contains("▾ 15 alerts"), "{text}");
    assert_eq!(member_lines(&text), 15, "expanded:\n{text}");

    // Space on the first three members marks them; the title counts them.
    press(&mut app, KeyCode::Char('j')).await;
    for _ in 0..3 {
        press(&mut app, KeyCode::Char(' ')).await;
    }
    let text = screen(&app);
    assert!(text.contains("3 marked"), "{text}");

    // `a` acknowledges the marked ones with one note, in one transaction, one audit each.
    press(&mut app, KeyCode::Char('a')).await;
    assert!(
        screen(&app).contains("Acknowledge 3 alerts"),
        "{}",
        screen(&app)
    );
    type_text(&mut app, "storm").await;
    press(&mut app, KeyCode::Enter).await;
    let text = screen(&app);
    assert!(text.contains("3 alerts acknowledged"), "{text}");
    assert!(!text.contains("marked"), "marks cleared:\n{text}");
    for (i, id) in ids.iter().enumerate() {
        let a = q::alert(&t.db.read, *id).await.unwrap().unwrap();
        let want = if i < 3 {
            AlertState::Acknowledged
        } else {
            AlertState::Firing
        };
        assert_eq!(a.state, want, "alert {id}");
        if i < 3 {
            assert_eq!(a.ack_note.as_deref(), Some("storm"));
        }
    }
    let acks = audited(&t, "alert.acknowledge").await;
    let acked: Vec<String> = ids[..3].iter().map(i64::to_string).collect();
    assert_eq!(
        acks.iter().map(|(id, _)| id.clone()).collect::<Vec<_>>(),
        acked
    );
    assert!(
        acks.iter().all(|(_, tx)| *tx == acks[0].1),
        "one transaction: {acks:?}"
    );

    // Meanwhile someone else resolves one of the group (the screen still shows it open).
    let other = opsdash::alerts::operator::Operator {
        user: "colleague".into(),
        ip: None,
        host: "elsewhere".into(),
    };
    opsdash::alerts::operator::resolve(&t.db, &Config::default(), &other, ids[14], None)
        .await
        .unwrap();

    // `R` on the group line resolves the whole group: those still open, the one already
    // resolved is skipped and said.
    press(&mut app, KeyCode::Char('g')).await;
    press(&mut app, KeyCode::Char('R')).await;
    assert!(
        screen(&app).contains("Resolve 15 alerts"),
        "{}",
        screen(&app)
    );
    press(&mut app, KeyCode::Enter).await;
    let text = screen(&app);
    assert!(
        text.contains("14 alerts resolved, 1 skipped (alert"),
        "{text}"
    );
    assert!(open_ids(&t).await.is_empty());
    let resolves = audited(&t, "alert.resolve").await;
    assert_eq!(
        resolves.len(),
        15,
        "14 here + the colleague's: {resolves:?}"
    );
    let mine: Vec<&(String, String)> = resolves
        .iter()
        .filter(|(id, _)| *id != ids[14].to_string())
        .collect();
    assert!(
        mine.iter().all(|(_, tx)| *tx == mine[0].1),
        "one transaction"
    );

    // History: make the response times measurable (fired 10 minutes before the actions).
    sqlx::query("UPDATE opsdash.alert SET fired_at = fired_at - interval '10 minutes'")
        .execute(&t.db.write)
        .await
        .unwrap();
    let all = q::list_alerts(&t.db.read, true, 100).await.unwrap();
    let mean = |f: &dyn Fn(&q::AlertRow) -> Option<f64>| {
        let v: Vec<f64> = all.iter().filter_map(f).collect();
        v.iter().sum::<f64>() / v.len() as f64
    };
    let secs = |a: Option<chrono::DateTime<chrono::Utc>>,
                b: Option<chrono::DateTime<chrono::Utc>>| {
        Some((a? - b?).num_milliseconds() as f64 / 1000.0)
    };
    let mtta = human_secs(mean(&|a| secs(a.acknowledged_at, a.fired_at)));
    let mttr = human_secs(mean(&|a| secs(a.resolved_at, a.fired_at)));
    for _ in 0..3 {
        press(&mut app, KeyCode::Char('l')).await;
    }
    let text = big(&app);
    assert!(
        text.contains("Response times, alerts fired in 7d"),
        "{text}"
    );
    assert!(text.contains("History 7d: 15 resolved"), "{text}");
    let rule_line = text
        .lines()
        .find(|l| l.contains("brute-force-user") && l.contains(&mtta))
        .unwrap_or_else(|| panic!("MTTA {mtta} MTTR {mttr}:\n{text}"));
    let cells: Vec<&str> = rule_line
        .trim_matches(|c: char| c == '│' || c.is_whitespace())
        .split_whitespace()
        .collect();
    assert_eq!(
        cells,
        [
            "15",
            "3",
            mtta.as_str(),
            "15",
            mttr.as_str(),
            "brute-force-user"
        ],
        "{text}"
    );

    // The list is newest change first: the colleague's resolution last, above it the 14
    // resolved together by id, descending; so G then k selects the first acknowledged one.
    // Its timeline shows each transition, with the note.
    press(&mut app, KeyCode::Char('G')).await;
    press(&mut app, KeyCode::Char('k')).await;
    assert!(
        big(&app).contains(&format!("Timeline of alert {}", ids[0])),
        "{}",
        big(&app)
    );
    let text = big(&app);
    assert!(text.contains("firing -> acknowledged"), "{text}");
    assert!(text.contains("\"storm\""), "{text}");
    assert!(text.contains("acknowledged -> resolved"), "{text}");
    // `w` cycles the window.
    press(&mut app, KeyCode::Char('w')).await;
    assert!(big(&app).contains("alerts fired in 30d"), "{}", big(&app));
}

async fn open_count_sql(t: &TestDb, cond: &str) -> i64 {
    sqlx::query_scalar(&format!(
        "SELECT count(*) FROM opsdash.alert WHERE state <> 'resolved' AND {cond}"
    ))
    .fetch_one(&t.db.read)
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_editor_prefills_from_the_marks_counts_live_and_matches_like_the_engine() {
    let (t, cfg, mut app) = storm().await;

    // Two members marked: the editor opens with what they share, the differing actor as a
    // regex of exactly theirs, and counts 2.
    press(&mut app, KeyCode::Enter).await;
    press(&mut app, KeyCode::Char('j')).await;
    press(&mut app, KeyCode::Char(' ')).await;
    press(&mut app, KeyCode::Char(' ')).await;
    press(&mut app, KeyCode::Char('s')).await;
    let ids = open_ids(&t).await;
    let mut actors = Vec::new();
    for id in &ids[..2] {
        let a = q::alert(&t.db.read, *id).await.unwrap().unwrap();
        actors.push(a.labels.0["actor"].clone());
    }
    actors.sort();
    let text = screen(&app);
    assert!(text.contains("alertname=brute-force-user"), "{text}");
    assert!(
        text.contains(&format!("actor=~{}|{}", actors[0], actors[1])),
        "{actors:?}\n{text}"
    );
    assert!(text.contains("matches 2 open alerts now"), "{text}");

    // Edited: each form of matcher, the count against SQL over the same labels.
    for (line, reference) in [
        ("actor=~user0[1-3]", "labels->>'actor' ~ '^(?:user0[1-3])$'"),
        (
            "alertname=brute-force-user actor!~user1.*",
            "labels->>'alertname' = 'brute-force-user' AND labels->>'actor' !~ '^(?:user1.*)$'",
        ),
        (
            "alertname!=brute-force-user",
            "labels->>'alertname' <> 'brute-force-user'",
        ),
    ] {
        retype(&mut app, line).await;
        let want = open_count_sql(&t, reference).await;
        let text = screen(&app);
        assert!(
            text.contains(&format!(
                "matches {want} open alert{} now",
                if want == 1 { "" } else { "s" }
            )),
            "{line}: want {want}\n{text}"
        );
    }
    // A bad regex is said, and Enter keeps the editor open.
    retype(&mut app, "actor=~(").await;
    press(&mut app, KeyCode::Enter).await;
    let text = screen(&app);
    assert!(text.contains("bad regex"), "{text}");
    assert!(text.contains("Silence · Tab"), "{text}");

    // The silence made: matchers, duration, comment.
    retype(&mut app, "alertname=brute-force-user, actor!=user15").await;
    assert!(
        screen(&app).contains("matches 14 open alerts now (2 selected)"),
        "{}",
        screen(&app)
    );
    press(&mut app, KeyCode::Tab).await;
    retype(&mut app, "2h").await;
    press(&mut app, KeyCode::Tab).await;
    type_text(&mut app, "login storm").await;
    press(&mut app, KeyCode::Enter).await;
    let text = screen(&app);
    assert!(text.contains("active for 2h"), "{text}");
    let (matchers, comment, secs): (serde_json::Value, String, f64) = sqlx::query_as(
        "SELECT matchers, comment, extract(epoch FROM ends_at - starts_at)::float8
           FROM opsdash.silence",
    )
    .fetch_one(&t.db.read)
    .await
    .unwrap();
    assert_eq!(
        matchers,
        serde_json::json!([
            {"name": "alertname", "op": "=", "value": "brute-force-user"},
            {"name": "actor", "op": "!=", "value": "user15"}
        ])
    );
    assert_eq!(comment, "login storm");
    assert_eq!(secs, 7200.0);
    assert_eq!(audited(&t, "silence.create").await.len(), 1);

    // The engine suppresses exactly the 14 the preview counted.
    let rule = rules::rule_by_name(&t.db.write, "brute-force-user")
        .await
        .unwrap()
        .unwrap();
    engine::evaluate_rule(&t.db, &cfg, &rule, None)
        .await
        .unwrap();
    let states: Vec<AlertState> = q::list_alerts(&t.db.read, false, 100)
        .await
        .unwrap()
        .iter()
        .map(|a| a.state)
        .collect();
    assert_eq!(
        states
            .iter()
            .filter(|s| **s == AlertState::Suppressed)
            .count(),
        14,
        "{states:?}"
    );
    assert_eq!(
        states.iter().filter(|s| **s == AlertState::Firing).count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn group_by_labels_split_a_rule_into_groups() {
    let t = TestDb::new().await.unwrap();
    sqlx::query(
        "INSERT INTO opsdash.request_log (ts, service, route, status)
         SELECT now() - interval '5 seconds', s, r, 500
           FROM unnest(ARRAY['api', 'web']) s, unnest(ARRAY['/a', '/b', '/c', '/d']) r,
                generate_series(1, 3)
         UNION ALL
         SELECT now() - interval '5 seconds', 'db', r, 500
           FROM unnest(ARRAY['/a', '/b']) r, generate_series(1, 3)",
    )
    .execute(&t.db.write)
    .await
    .unwrap();
    let mut cfg = Config::default();
    cfg.alert.rules = vec![RuleConfig {
        name: "route-errors".into(),
        severity: Severity::Critical,
        measure: "error_rate".into(),
        scope: BTreeMap::from([("by".into(), "route".into())]),
        threshold: 10.0,
        min_count: Some(1),
        group_by: vec!["service".into()],
        ..RuleConfig::default()
    }];
    rules::sync_config_rules(&t.db.write, &engine::config_specs(&cfg))
        .await
        .unwrap();
    let rule = rules::rule_by_name(&t.db.write, "route-errors")
        .await
        .unwrap()
        .unwrap();
    engine::evaluate_rule(&t.db, &cfg, &rule, None)
        .await
        .unwrap();
    assert_eq!(
        q::list_alerts(&t.db.read, false, 100).await.unwrap().len(),
        10
    );
    let mut app = open(&t.db, cfg, "tui-test:1:x", false, 2).await;
    press(&mut app, KeyCode::Char('3')).await;
    let text = big(&app);
    assert_eq!(text.matches("▸ 4 alerts").count(), 2, "{text}");
    assert!(text.contains("service=api · 4 firing"), "{text}");
    assert!(text.contains("service=web · 4 firing"), "{text}");
    // Fewer than GROUP_FROM: their own lines.
    let db_lines = text
        .lines()
        .filter(|l| l.contains("firing") && l.contains("service=db"))
        .count();
    assert_eq!(db_lines, 2, "{text}");
}
