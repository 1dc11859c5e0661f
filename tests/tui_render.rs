//! Render tests of the shell and the KPI tab on ratatui's TestBackend, with real data from a
//! throwaway PostgreSQL: the queries run for real (through `tui::settle`), the results go
//! through `update`, and the buffer is checked.

mod common;

use std::time::Duration;

use common::tui::{buffer_text, key, open, render};
use opsdash::config::Config;
use opsdash::db::testkit::TestDb;
use opsdash::tui::app::{update, App};
use opsdash::tui::event::Event;
use ratatui::crossterm::event::KeyCode;
use ratatui::style::Color;

const INSTANCE: &str = "render-test:1:abcd";

async fn seed(db: &opsdash::db::Db) {
    for sql in [
        // 2 400 inbound requests over the last 40 minutes, every 8th a 503 on /checkout.
        "INSERT INTO opsdash.request_log (ts, service, method, route, status, duration_ms, user_id)
         SELECT now() - (i || ' seconds')::interval, 'shop', 'POST',
                CASE WHEN i % 8 = 0 THEN '/checkout' ELSE '/cart' END,
                CASE WHEN i % 8 = 0 THEN 503 ELSE 200 END,
                CASE WHEN i % 100 = 0 THEN 1500 ELSE 40 END,
                'u' || (i % 37)
           FROM generate_series(1, 2400) i",
        // A hostile route: an escape sequence must never reach the terminal.
        "INSERT INTO opsdash.request_log (ts, service, method, route, status, duration_ms)
         VALUES (now() - interval '1 minute', 'evil', 'GET', E'/x\\u001b[2J\\u202e', 500, 5)",
        "INSERT INTO opsdash.log_event (ts, level, service, message)
         SELECT now() - (i || ' minutes')::interval, 4, 'shop', 'payment failed'
           FROM generate_series(1, 30) i",
        "INSERT INTO opsdash.query_log (ts, service, query, fingerprint, duration_ms)
         SELECT now() - (i || ' minutes')::interval, 'shop', 'SELECT 1', 'f1', 900
           FROM generate_series(1, 7) i",
        "INSERT INTO opsdash.alert_rule (id, name, metric) VALUES (1, 'checkout errors', 'error_rate')",
        "INSERT INTO opsdash.alert (rule_id, rule_name, severity, state, fired_at)
         VALUES (1, 'checkout errors', 'critical', 'firing', now())",
        "INSERT INTO opsdash.service (name, status) VALUES ('api', 'healthy'), ('db', 'down')",
        "INSERT INTO opsdash.worker_lease (job, holder, expires_at)
         VALUES ('alerts', 'render-test:1:abcd', now() + interval '1 minute'),
                ('retention', 'someone-else', now() + interval '1 minute')",
    ] {
        sqlx::query(sql).execute(&db.write).await.unwrap();
    }
}

async fn app_with_data(cfg: Config, no_color: bool) -> (TestDb, App) {
    let tdb = TestDb::new().await.unwrap();
    seed(&tdb.db).await;
    let app = open(&tdb.db, cfg, INSTANCE, no_color, 3).await;
    (tdb, app)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kpi_tab_shows_real_numbers_at_80x24() {
    let (_tdb, app) = app_with_data(Config::default(), false).await;
    let text = buffer_text(&render(&app, 80, 24));
    eprintln!("{text}");
    // Header: tab bar, connection, firing alerts by severity, leadership, range.
    assert!(text.contains(" 1 KPI "), "{text}");
    for tab in ["2 Logs", "3 Alerts", "4 Performance", "5 Health"] {
        assert!(text.contains(tab), "tab {tab} missing:\n{text}");
    }
    assert!(text.contains("● 3ms"), "{text}");
    assert!(text.contains("C1"), "one critical alert firing:\n{text}");
    assert!(text.contains("leader 1/2"), "{text}");
    assert!(text.contains("range 1h"), "{text}");
    // Counters: 2401 requests in the last hour window => 40/min; 301 5xx => 12.5%.
    assert!(text.contains("Requests/min"), "{text}");
    assert!(text.contains("12.5%"), "{text}");
    assert!(text.contains("Errors 24h"), "{text}");
    assert!(
        text.contains("30 ▲ new"),
        "30 error lines, none before:\n{text}"
    );
    assert!(text.contains("1/0/1"), "services up/degraded/down:\n{text}");
    // Top failing endpoints, the worst first.
    assert!(text.contains("shop POST /checkout"), "{text}");
    // The hostile route is shown defanged, never raw.
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{202e}'),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_color_draws_no_colour_at_all() {
    let (_tdb, mut app) = app_with_data(Config::default(), true).await;
    for view in [None, Some('?')] {
        if let Some(c) = view {
            key(&mut app, KeyCode::Char(c));
        }
        let buf = render(&app, 100, 30);
        for y in 0..buf.area.height {
            for x in 0..buf.area.width {
                let cell = &buf[(x, y)];
                assert_eq!(cell.fg, Color::Reset, "fg at {x},{y}");
                assert_eq!(cell.bg, Color::Reset, "bg at {x},{y}");
            }
        }
    }
    // Emphasis survives without colour: the active tab is reversed.
    let buf = render(&app, 100, 30);
    assert!(buf[(1, 0)]
        .modifier
        .contains(ratatui::style::Modifier::REVERSED));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shell_banner_help_command_line_and_bad_bindings() {
    let mut cfg = Config::default();
    cfg.keys.0.insert("quit".into(), "hyper-q".into());
    let (_tdb, mut app) = app_with_data(cfg, false).await;
    // A bad binding is reported in the status bar, not fatal; q still quits (default kept).
    let text = buffer_text(&render(&app, 80, 24));
    assert!(text.contains("keys.quit"), "{text}");

    // Database lost: banner, keys keep working.
    update(&mut app, Event::Ping(Err("connection refused".into())));
    let text = buffer_text(&render(&app, 80, 24));
    assert!(text.contains("DATABASE UNREACHABLE"), "{text}");
    assert!(text.contains("reconnecting"), "{text}");
    key(&mut app, KeyCode::Char('?'));
    let text = buffer_text(&render(&app, 80, 24));
    assert!(text.contains("Help") && text.contains("quit"), "{text}");
    key(&mut app, KeyCode::Esc);
    // Back: the banner goes and the tab refreshes by itself.
    let fx = update(&mut app, Event::Ping(Ok(Duration::from_millis(2))));
    assert!(!fx.is_empty(), "queries resume after reconnect");
    opsdash::tui::settle(&mut app, fx).await;
    let text = buffer_text(&render(&app, 80, 24));
    assert!(!text.contains("DATABASE UNREACHABLE"), "{text}");
    assert!(text.contains("reachable again"), "{text}");

    // Command line: range and theme.
    key(&mut app, KeyCode::Char(':'));
    for c in "range 24h".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    let text = buffer_text(&render(&app, 80, 24));
    assert!(text.contains(":range 24h"), "{text}");
    let fx = key(&mut app, KeyCode::Enter);
    assert!(!fx.is_empty(), "range change refreshes the tab");
    opsdash::tui::settle(&mut app, fx).await;
    let text = buffer_text(&render(&app, 80, 24));
    assert!(text.contains("range 24h"), "{text}");
    key(&mut app, KeyCode::Char(':'));
    for c in "theme nope".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    key(&mut app, KeyCode::Enter);
    let text = buffer_text(&render(&app, 80, 24));
    assert!(text.contains("unknown theme"), "{text}");

    // Filter narrows the top failing endpoints.
    key(&mut app, KeyCode::Char('/'));
    for c in "evil".chars() {
        key(&mut app, KeyCode::Char(c));
    }
    key(&mut app, KeyCode::Enter);
    let text = buffer_text(&render(&app, 80, 24));
    assert!(!text.contains("/checkout"), "{text}");
    assert!(text.contains("evil GET"), "{text}");

    // Quit.
    key(&mut app, KeyCode::Char('q'));
    assert!(app.quit);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_sql_is_read_only_and_cut_off() {
    let tdb = TestDb::new().await.unwrap();
    let err = opsdash::query::kpi::custom(
        &tdb.db,
        "SELECT nextval('opsdash.alert_id_seq')",
        Duration::from_secs(5),
        10,
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("read-only"), "{err:#}");
    let err = opsdash::query::kpi::custom(
        &tdb.db,
        "SELECT pg_sleep(5)",
        Duration::from_millis(200),
        10,
    )
    .await
    .unwrap_err();
    assert!(format!("{err:#}").contains("statement timeout"), "{err:#}");
    // Any column types come back as text, in column order; a trailing ; is fine.
    let rows = opsdash::query::kpi::custom(
        &tdb.db,
        "SELECT 'b' AS zz, 2.50::numeric AS aa, NULL::int AS n, now() > '2000-01-01' AS t;",
        Duration::from_secs(5),
        10,
    )
    .await
    .unwrap();
    assert_eq!(rows.columns, vec!["zz", "aa", "n", "t"]);
    assert_eq!(
        rows.rows[0],
        vec![
            Some("b".to_string()),
            Some("2.5".to_string()),
            None,
            Some("true".to_string())
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn custom_widgets_render_every_kind() {
    let text = r#"
[[kpi.widget]]
title = "Revenue today"
kind = "counter"
unit = "EUR"
query = "SELECT 12345.5"

[[kpi.widget]]
title = "Disk"
kind = "gauge"
max = 200
query = "SELECT 50"

[[kpi.widget]]
title = "Signups"
kind = "sparkline"
query = "SELECT g, g * 2 FROM generate_series(1, 20) g"

[[kpi.widget]]
title = "Orders by country"
kind = "bar"
query = "SELECT c, n FROM (VALUES ('DE', 5), ('FR', 3)) v(c, n)"

[[kpi.widget]]
title = "Arrears"
kind = "table"
query = "SELECT 'acme' AS customer, 1200 AS owed"

[[kpi.widget]]
title = "Alerts now"
kind = "alerts"

[[kpi.widget]]
title = "Broken"
kind = "counter"
query = "SELECT * FROM no_such_table"
"#;
    let cfg = Config::parse(text, std::path::Path::new("t.toml")).unwrap();
    let (_tdb, mut app) = app_with_data(cfg, false).await;
    key(&mut app, KeyCode::Char('v'));
    let text = buffer_text(&render(&app, 120, 60));
    eprintln!("{text}");
    for needle in [
        "Revenue today",
        "12.3k EUR",
        "50 / 200",
        "Signups",
        "40",
        "DE",
        "FR",
        "acme",
        "1200",
        "checkout errors",
        "no_such_table",
    ] {
        assert!(text.contains(needle), "{needle} missing:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filter_line_walks_its_history_with_up_and_down() {
    use opsdash::tui::app::Mode;
    let (_tdb, mut app) = app_with_data(Config::default(), false).await;
    let type_filter = |app: &mut App, text: &str| {
        key(app, KeyCode::Char('/'));
        key(app, KeyCode::Esc);
        key(app, KeyCode::Char('/'));
        for c in text.chars() {
            key(app, KeyCode::Char(c));
        }
        key(app, KeyCode::Enter);
    };
    type_filter(&mut app, "first");
    type_filter(&mut app, "second");
    type_filter(&mut app, "first");
    assert_eq!(app.filter_history, vec!["second", "first"]);

    key(&mut app, KeyCode::Char('/'));
    key(&mut app, KeyCode::Esc);
    key(&mut app, KeyCode::Char('/'));
    let line = |app: &App| match &app.mode {
        Mode::Filter(i) => i.text().to_string(),
        _ => panic!("filter line closed"),
    };
    // Reopened with the applied filter (selected: typing replaces it).
    assert_eq!(line(&app), "first");
    for (code, want) in [
        (KeyCode::Up, "first"),
        (KeyCode::Up, "second"),
        (KeyCode::Up, "second"),
        (KeyCode::Down, "first"),
        (KeyCode::Down, ""),
    ] {
        key(&mut app, code);
        assert_eq!(line(&app), want, "after {code:?}");
    }
}
