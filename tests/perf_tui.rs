//! Render tests of the Performance tab on ratatui's TestBackend with real data: raw rows in a
//! throwaway PostgreSQL, the real rollup job, the tab's real queries through `tui::settle`.

mod common;

use chrono::Utc;
use common::tui::{buffer_text, open, press, render};
use crossterm::event::KeyCode;
use opsdash::config::Config;
use opsdash::db::testkit::TestDb;
use opsdash::tui::app::App;

async fn seed(tdb: &TestDb) -> anyhow::Result<()> {
    let pool = &tdb.db.write;
    for sql in [
        // /checkout: every 8th request a 503, every 50th takes 1.2-2 s; /cart: fast and healthy.
        "INSERT INTO opsdash.request_log (ts, service, method, route, status, duration_ms, trace_id)
         SELECT now() - make_interval(secs => i), 'shop', 'POST', '/checkout',
                CASE WHEN i % 8 = 0 THEN 503 ELSE 200 END,
                CASE WHEN i % 50 = 0 THEN 1200 + i % 800 ELSE 40 + i % 20 END,
                'trace-' || i
           FROM generate_series(1, 1800) i",
        "INSERT INTO opsdash.request_log (ts, service, method, route, status, duration_ms)
         SELECT now() - make_interval(secs => i), 'shop', 'GET', '/cart', 200, 5 + i % 5
           FROM generate_series(1, 1800) i",
        // The slowest request of all, and what its trace logged.
        "INSERT INTO opsdash.request_log (ts, service, method, route, status, duration_ms, trace_id)
         VALUES (now() - interval '10 minutes', 'shop', 'POST', '/checkout', 504, 9000, 'trace-slowest')",
        "INSERT INTO opsdash.log_event (ts, level, service, message, trace_id)
         VALUES (now() - interval '10 minutes', 4, 'payments', 'gateway timeout after 9 s', 'trace-slowest')",
        // A hostile route must reach the screen defanged.
        "INSERT INTO opsdash.request_log (ts, service, method, route, status, duration_ms)
         VALUES (now() - interval '2 minutes', 'evil', 'GET', E'/x\\u001b[2J\\u202e', 500, 3)",
        "INSERT INTO opsdash.query_log (ts, service, query, fingerprint, duration_ms, rows)
         SELECT now() - make_interval(mins => i), 'shop', 'SELECT * FROM orders WHERE id = $1',
                'fp-orders', 750, 1
           FROM generate_series(1, 9) i",
    ] {
        sqlx::query(sql).execute(pool).await?;
    }
    opsdash::db::testkit::wait_for_snapshot_xmin(pool).await?;
    opsdash::worker::rollup::run_once(&tdb.db, Utc::now()).await?;
    Ok(())
}

fn screen(app: &App, w: u16, h: u16) -> String {
    buffer_text(&render(app, w, h))
}

async fn perf_app(no_color: bool) -> anyhow::Result<(TestDb, App)> {
    let tdb = TestDb::new().await?;
    seed(&tdb).await?;
    let mut app = open(&tdb.db, Config::default(), "perf-test:1:abcd", no_color, 2).await;
    press(&mut app, KeyCode::Char('4')).await;
    Ok((tdb, app))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn endpoint_table_chart_and_heatmap_at_80x24() -> anyhow::Result<()> {
    let (_tdb, app) = perf_app(false).await?;
    let text = screen(&app, 80, 24);
    eprintln!("{text}");
    assert!(text.contains("Performance"), "{text}");
    assert!(text.contains("Endpoints 1h"), "{text}");
    // Sorted by p99, slowest first: /checkout (its slow tail) above /cart.
    let checkout = text.find("shop POST /checkout").expect("checkout row");
    let cart = text.find("shop GET /cart").expect("cart row");
    assert!(checkout < cart, "{text}");
    // /checkout: 1 in 8 fails (12.5%), plus the 504: the error column says so.
    assert!(text.contains("12."), "{text}");
    // p99 of /checkout lies in its 1.2-2 s tail.
    let row = text
        .lines()
        .find(|l| l.contains("shop POST /checkout"))
        .unwrap_or("");
    assert!(
        row.contains('s') && row.contains("1."),
        "p99 in seconds: {row}"
    );
    // Heatmap: the /checkout row shades at >=5% errors, /cart shows requests without errors.
    assert!(text.contains('▓') || text.contains('█'), "{text}");
    assert!(text.contains('·'), "{text}");
    assert!(text.contains("Latency shop POST /checkout"), "{text}");
    assert!(text.contains("p95"), "{text}");
    // The hostile route is defanged.
    assert!(
        !text.contains('\u{1b}') && !text.contains('\u{202e}'),
        "{text}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_down_exact_toggle_and_slow_view() -> anyhow::Result<()> {
    let (_tdb, mut app) = perf_app(true).await?;

    // x: the selected row (/checkout) recomputed exactly from raw rows, marked with '='.
    press(&mut app, KeyCode::Char('x')).await;
    let text = screen(&app, 80, 24);
    assert!(text.contains("=shop POST /checkout"), "{text}");
    press(&mut app, KeyCode::Char('x')).await;
    assert!(!screen(&app, 80, 24).contains("=shop"));

    // Enter: the endpoint's slowest requests, the 9 s one first.
    press(&mut app, KeyCode::Enter).await;
    let text = screen(&app, 80, 24);
    eprintln!("{text}");
    assert!(text.contains("slowest requests"), "{text}");
    let first = text.find("9.00s").expect("the 9 s request");
    let second = text.find("trace-").expect("trace ids");
    assert!(first < second || text.contains("trace-slowest"), "{text}");

    // Enter again: the Logs tab shows its trace (a cross-tab jump), with the log line written
    // under it and the request itself, and the tail is filtered to the trace.
    press(&mut app, KeyCode::Enter).await;
    assert_eq!(app.active_id(), Some(opsdash::tui::tabs::Tab::Logs));
    let text = screen(&app, 80, 24);
    eprintln!("{text}");
    assert!(text.contains("trace trace-slowest"), "{text}");
    assert!(text.contains("request shop POST /checkout"), "{text}");
    assert!(text.contains("payments gateway timeo"), "{text}");
    assert!(text.contains("filter: trace:trace-sl"), "{text}");

    // Back on the Performance tab the drill-down is where it was; Esc: back to the table.
    press(&mut app, KeyCode::Char('4')).await;
    assert!(screen(&app, 80, 24).contains("slowest requests"));
    press(&mut app, KeyCode::Esc).await;
    assert!(screen(&app, 80, 24).contains("Endpoints 1h"));

    // v: slow requests and slow queries.
    press(&mut app, KeyCode::Char('v')).await;
    let text = screen(&app, 80, 24);
    eprintln!("{text}");
    assert!(text.contains("Slow requests"), "{text}");
    assert!(text.contains("9.00s"), "{text}");
    assert!(text.contains("Slow queries"), "{text}");
    assert!(text.contains("SELECT * FROM orders"), "{text}");
    Ok(())
}

/// The selection follows the endpoint, not the row number: a refresh that re-sorts the table
/// under the cursor must leave the same endpoint selected, and `x` must act on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selection_follows_the_endpoint_when_a_refresh_resorts_the_table() -> anyhow::Result<()> {
    let (tdb, mut app) = perf_app(true).await?;
    // Sorted by p99: /checkout first. Select /cart (the second row).
    press(&mut app, KeyCode::Char('j')).await;
    let before = screen(&app, 120, 40);
    assert!(before.find("shop POST /checkout") < before.find("shop GET /cart"));
    // Now /cart gets a slow tail far above /checkout's, so the refresh sorts it first.
    sqlx::query(
        "INSERT INTO opsdash.request_log (ts, service, method, route, status, duration_ms)
         SELECT now() - make_interval(secs => i), 'shop', 'GET', '/cart', 200, 30000
           FROM generate_series(1, 200) i",
    )
    .execute(&tdb.db.write)
    .await?;
    opsdash::db::testkit::wait_for_snapshot_xmin(&tdb.db.write).await?;
    opsdash::worker::rollup::run_once(&tdb.db, Utc::now()).await?;
    press(&mut app, KeyCode::Char('r')).await;
    let after = screen(&app, 120, 40);
    assert!(
        after.find("shop GET /cart") < after.find("shop POST /checkout"),
        "the refresh re-sorted: {after}"
    );
    // x marks the selected row as exact: it must be /cart, the endpoint that was selected.
    press(&mut app, KeyCode::Char('x')).await;
    let text = screen(&app, 120, 40);
    assert!(
        text.contains("=shop GET /cart"),
        "x acted on another row: {text}"
    );
    assert!(!text.contains("=shop POST /checkout"), "{text}");
    Ok(())
}

/// Columns grow with the terminal: at 160 columns a W3C trace id (32 hex digits) is shown
/// whole in the slow-request list, where fixed widths used to cut it at 16.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wide_terminals_show_whole_trace_ids() -> anyhow::Result<()> {
    let (tdb, mut app) = perf_app(true).await?;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    sqlx::query(
        "INSERT INTO opsdash.request_log (ts, service, method, route, status, duration_ms, trace_id)
         VALUES (now() - interval '3 minutes', 'shop', 'POST', '/checkout', 200, 12000, $1)",
    )
    .bind(trace)
    .execute(&tdb.db.write)
    .await?;
    press(&mut app, KeyCode::Char('v')).await;
    press(&mut app, KeyCode::Char('r')).await;
    let wide = screen(&app, 160, 45);
    assert!(wide.contains(trace), "{wide}");
    let narrow = screen(&app, 80, 24);
    assert!(
        !narrow.contains(trace) && narrow.contains("4bf92f35"),
        "{narrow}"
    );
    Ok(())
}
