//! No two texts ever overlap: every tab, view and pane of the dashboard, on real demo data in a
//! throwaway PostgreSQL, rendered at 80x24, 120x40 and 200x50, with `tui::paint` recording which
//! widget wrote each cell. A cell written by two text widgets is text cut into other text.

mod common;

use std::time::Duration;

use common::tui::{open, press, render};
use opsdash::config::Config;
use opsdash::db::testkit::TestDb;
use opsdash::demo::{self, DemoOptions, Phase};
use opsdash::tui::app::App;
use opsdash::tui::paint;
use ratatui::crossterm::event::KeyCode;
use ratatui::layout::Rect;

const SIZES: [(u16, u16); 3] = [(80, 24), (120, 40), (200, 50)];

/// The collisions of one frame at every size, described for the failure message.
fn check(app: &App, state: &str, found: &mut Vec<String>) {
    for (w, h) in SIZES {
        paint::start(Rect::new(0, 0, w, h));
        let _ = render(app, w, h);
        for c in paint::finish() {
            found.push(format!(
                "{state} at {w}x{h}: {} and {} both write ({}, {})",
                c.first, c.second, c.x, c.y
            ));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_two_widgets_write_the_same_cell_on_any_tab_at_any_size() -> anyhow::Result<()> {
    let t = TestDb::new().await?;
    let handle = demo::start(
        t.db.clone(),
        DemoOptions {
            rate: 40.0,
            backfill_window: Duration::from_secs(30 * 60),
            backfill_requests: 6_000,
            incident_cycle: Duration::from_secs(300),
            first_incident: Some(Duration::ZERO),
        },
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while handle.stats().phase != Phase::Live {
        assert!(tokio::time::Instant::now() < deadline, "demo backfill");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    handle.stop().await?;
    // Open alerts for the Alerts tab and the KPI card: the shipped rules on the demo's data.
    let cfg = Config::default();
    use opsdash::alerts::engine;
    use opsdash::query::rules;
    rules::sync_config_rules(&t.db.write, &engine::config_specs(&cfg)).await?;
    for name in [
        "mass-delete",
        "brute-force-ip",
        "brute-force-user",
        "high-error-rate",
    ] {
        if let Some(rule) = rules::rule_by_name(&t.db.write, name).await? {
            engine::evaluate_rule(&t.db, &cfg, &rule, None).await?;
        }
    }
    opsdash::worker::rollup::run_once(&t.db, chrono::Utc::now()).await?;

    let mut app = open(&t.db, cfg, "layout-test:1:x", false, 2).await;
    let mut found = Vec::new();
    // Each state is reached by its keys from the one before; every one is checked.
    let steps: &[(&str, &[KeyCode])] = &[
        ("KPI", &[KeyCode::Char('1')]),
        ("KPI custom widgets", &[KeyCode::Char('v')]),
        ("Logs tail", &[KeyCode::Char('v'), KeyCode::Char('2')]),
        ("Logs detail pane", &[KeyCode::Enter]),
        ("Logs trace", &[KeyCode::Esc, KeyCode::Char('t')]),
        ("Logs error groups", &[KeyCode::Esc, KeyCode::Char('v')]),
        ("Logs audit", &[KeyCode::Char('v')]),
        ("Alerts", &[KeyCode::Char('v'), KeyCode::Char('3')]),
        ("Alerts rules", &[KeyCode::Char('l')]),
        ("Alerts silences", &[KeyCode::Char('l')]),
        ("Performance", &[KeyCode::Char('l'), KeyCode::Char('4')]),
        ("Performance drill-down", &[KeyCode::Enter]),
        ("Performance slow view", &[KeyCode::Esc, KeyCode::Char('v')]),
        ("Health", &[KeyCode::Char('v'), KeyCode::Char('5')]),
        ("Health database", &[KeyCode::Char('l'), KeyCode::Char('l')]),
        ("help overlay", &[KeyCode::Char('?')]),
    ];
    for (state, keys) in steps {
        for k in *keys {
            press(&mut app, *k).await;
        }
        check(&app, state, &mut found);
    }
    assert!(found.is_empty(), "overlapping texts:\n{}", found.join("\n"));
    Ok(())
}
