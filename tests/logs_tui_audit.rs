//! The audit view on ratatui's TestBackend against a real PostgreSQL: the filter line
//! (`filter::audit`) selects the rows `opsdash audit search` would, paging down reaches every
//! one of them past the first page, a mistake in the filter shows with its column, and
//! `:who-deleted TABLE ID` lists the deletes of that row with a readable before/after.

use std::collections::BTreeSet;
use std::time::Duration;

use crossterm::event::KeyCode;
use opsdash::config::Config;
use opsdash::db::testkit::TestDb;
use opsdash::tui::app::App;

mod common;
use common::tui::{buffer_text, press, render};

const SIZE: (u16, u16) = (120, 30);

async fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c)).await;
    }
}

fn screen(app: &App) -> String {
    buffer_text(&render(app, SIZE.0, SIZE.1))
}

/// The `r-NNNN` resource ids on screen.
fn resources(text: &str) -> Vec<i64> {
    text.match_indices("r-")
        .filter_map(|(i, _)| text.get(i + 2..i + 6)?.parse().ok())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_audit_view_filters_pages_and_answers_who_deleted() -> anyhow::Result<()> {
    let tdb = TestDb::new().await?;
    let pool = tdb.db.write.clone();
    // 1,800 rows over the last hours: alice, bob and carol in turn, deletes and updates.
    sqlx::raw_sql(
        "INSERT INTO opsdash.audit_event (ts, actor, action, resource_type, resource_id, outcome)
         SELECT now() - g * interval '10 seconds', (ARRAY['alice', 'bob', 'carol'])[1 + g % 3],
                (ARRAY['user.delete', 'user.update'])[1 + (g / 3) % 2], 'user',
                'r-' || lpad(g::text, 4, '0'), 'success'
           FROM generate_series(0, 1799) g;
         INSERT INTO opsdash.audit_event (ts, actor, action, resource_type, resource_id, before, outcome, source)
         VALUES (now() - interval '1 minute', 'dave', 'DELETE', 'public.orders', '42',
                 '{\"total\": 99, \"status\": \"paid\"}', 'success', 'trigger');",
    )
    .execute(&pool)
    .await?;
    let want: Vec<String> = sqlx::query_scalar(
        "SELECT resource_id FROM opsdash.audit_event
          WHERE actor = 'alice' AND action LIKE '%delete%' ORDER BY ts DESC, id DESC",
    )
    .fetch_all(&pool)
    .await?;
    assert!(want.len() > 200, "more than one page: {}", want.len());

    let mut app = common::tui::open(&tdb.db, Config::default(), "logs-audit:1:x", false, 2).await;
    press(&mut app, KeyCode::Char('2')).await;
    // v: error groups, v again: the audit trail.
    press(&mut app, KeyCode::Char('v')).await;
    press(&mut app, KeyCode::Char('v')).await;
    common::tui::until_screen(&mut app, SIZE, Duration::from_secs(20), "the trail", |t| {
        t.contains("audit trail: 200 rows+")
    })
    .await;

    // A mistake: shown with its column; nothing changes.
    press(&mut app, KeyCode::Char('/')).await;
    type_text(&mut app, "actr:alice").await;
    let text = screen(&app);
    assert!(text.contains("at column"), "{text}");
    for _ in 0.."actr:alice".len() {
        press(&mut app, KeyCode::Backspace).await;
    }
    type_text(&mut app, "actor:alice action:*delete*").await;
    press(&mut app, KeyCode::Enter).await;
    let text = screen(&app);
    assert!(!text.contains(" bob "), "only alice's rows:\n{text}");

    // Down through every row: past the first page, each of alice's deletes once.
    let mut seen = BTreeSet::new();
    for _ in 0..want.len() + 10 {
        let text = screen(&app);
        assert!(
            !text.contains(" bob ") && !text.contains("user.update"),
            "{text}"
        );
        seen.extend(resources(&text));
        press(&mut app, KeyCode::Down).await;
    }
    let want_ids: BTreeSet<i64> = want
        .iter()
        .filter_map(|r| r.strip_prefix("r-")?.parse().ok())
        .collect();
    assert_eq!(seen, want_ids);
    let text = screen(&app);
    assert!(
        text.contains(&format!("audit trail: {} rows ", want.len())),
        "every row paged in, no more to read:\n{text}"
    );

    // Who deleted order 42: dave, with what the row held (`-` lines: readable without colour).
    press(&mut app, KeyCode::Char(':')).await;
    type_text(&mut app, "who-deleted orders 42").await;
    press(&mut app, KeyCode::Enter).await;
    press(&mut app, KeyCode::Enter).await;
    let text = screen(&app);
    assert!(text.contains("who deleted orders 42"), "{text}");
    assert!(text.contains("dave"), "{text}");
    assert!(
        text.contains("- total: 99"),
        "the row's values before:\n{text}"
    );
    Ok(())
}
