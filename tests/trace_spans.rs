//! The Logs tab's trace view (`t`) over received spans, on ratatui's TestBackend with a real
//! database: spans stored through the receiver's own insert, then drawn as a waterfall with
//! children indented under their parent, bars placed by start offset and sized by duration,
//! and each log line under the span it was written in. Without spans the view stays the
//! row-based one (tests/logs_tab.rs).

use std::time::Duration;

use chrono::Utc;
use crossterm::event::KeyCode;
use opsdash::config::Config;
use opsdash::db::testkit::TestDb;
use opsdash::query::spans::{self, SpanRow};
use opsdash::tui::app::App;

mod common;
use common::tui::press;
#[path = "common/retention.rs"]
mod retention;

async fn until(app: &mut App, what: &str, ok: impl Fn(&str) -> bool) -> String {
    common::tui::until_screen(app, (120, 30), Duration::from_secs(15), what, ok).await
}

const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

fn span(id: &str, parent: Option<&str>, name: &str, start_ms: i64, ms: f64) -> SpanRow {
    SpanRow {
        ts: Utc::now() - chrono::Duration::seconds(5) + chrono::Duration::milliseconds(start_ms),
        trace_id: TRACE.into(),
        span_id: id.into(),
        parent_span_id: parent.map(str::to_string),
        name: name.into(),
        kind: if parent.is_none() { "server" } else { "client" },
        service: "shop".into(),
        duration_ms: ms,
        status: if name.starts_with("charge") {
            "error"
        } else {
            "ok"
        },
        status_message: None,
        attrs: None,
    }
}

/// Column of `needle` in the screen line holding it.
fn column(text: &str, needle: &str) -> usize {
    let line = text
        .lines()
        .find(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle:?} not on screen:\n{text}"));
    line[..line.find(needle).unwrap_or(0)].chars().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trace_view_draws_the_span_tree() -> anyhow::Result<()> {
    let tdb = TestDb::new().await?;
    let pool = &tdb.db.write;
    let rows = vec![
        span("00000000000000a1", None, "checkout-root", 0, 400.0),
        span(
            "00000000000000b2",
            Some("00000000000000a1"),
            "charge-card",
            100,
            200.0,
        ),
        span(
            "00000000000000c3",
            Some("00000000000000b2"),
            "token-lookup",
            120,
            50.0,
        ),
        span(
            "00000000000000d4",
            Some("00000000000000a1"),
            "save-order",
            320,
            60.0,
        ),
    ];
    assert_eq!(spans::insert(pool, &rows).await?, 4);
    // Inserting the same spans again (a retried export) stores nothing new.
    assert_eq!(spans::insert(pool, &rows).await?, 0);
    sqlx::query(
        "INSERT INTO opsdash.log_event (ts, level, service, message, trace_id, span_id)
         VALUES ($1, 4, 'shop', 'card declined', $2, '00000000000000b2')",
    )
    .bind(rows[1].ts + chrono::Duration::milliseconds(150))
    .bind(TRACE)
    .execute(pool)
    .await?;

    let mut app = common::tui::open(&tdb.db, Config::default(), "spans-test:1:x", false, 2).await;
    press(&mut app, KeyCode::Char('2')).await;
    until(&mut app, "the log line", |t| t.contains("card declined")).await;
    press(&mut app, KeyCode::Char('t')).await;
    let text = until(&mut app, "the span tree", |t| t.contains("save-order")).await;
    assert!(text.contains(&format!("trace {TRACE}")), "{text}");

    // Nesting: two columns a level, the log line under its span.
    let root = column(&text, "shop checkout-root");
    assert_eq!(column(&text, "shop charge-card"), root + 2, "{text}");
    assert_eq!(column(&text, "shop token-lookup"), root + 4, "{text}");
    assert_eq!(column(&text, "shop card declined"), root + 4, "{text}");
    assert_eq!(column(&text, "shop save-order"), root + 2, "{text}");
    let order: Vec<usize> = [
        "checkout-root",
        "charge-card",
        "token-lookup",
        "card declined",
        "save-order",
    ]
    .iter()
    .map(|n| text.find(n).unwrap_or(usize::MAX))
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "tree order:\n{text}");

    // Bars: the root spans the whole width of the waterfall; a child starts later and is
    // shorter; the log line is a point.
    let bar = |needle: &str| {
        let line = text
            .lines()
            .find(|l| l.contains(needle))
            .unwrap_or_default();
        // Past the panel's left border (a '│' itself).
        let cells: Vec<char> = line.chars().skip(1).collect();
        let first = cells.iter().position(|c| *c == '█' || *c == '│');
        let len = cells.iter().filter(|c| **c == '█').count();
        (first, len)
    };
    let (root_start, root_len) = bar("checkout-root");
    let (charge_start, charge_len) = bar("charge-card");
    let (save_start, save_len) = bar("save-order");
    assert!(root_len > 0 && charge_len > 0 && save_len > 0, "{text}");
    assert!(
        charge_start > root_start && save_start > charge_start,
        "{text}"
    );
    assert!(charge_len < root_len && save_len < charge_len, "{text}");
    assert_eq!(bar("card declined").1, 0, "a log line is a point:\n{text}");
    assert!(text.contains("400ms"), "{text}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_old_span_days_and_keeps_recent_ones() -> anyhow::Result<()> {
    let f = retention::Fixture::new().await;
    let pool = f.pool();
    let at = |days: i64| SpanRow {
        ts: retention::day_start(f.d(days)) + chrono::Duration::hours(12),
        ..span(
            &format!("{days:016x}"),
            None,
            &format!("day-{days}"),
            0,
            5.0,
        )
    };
    // Old days get their partition as the spans arrive (as the receiver's insert makes them).
    spans::insert(pool, &[at(1), at(10), at(20)]).await?;
    for d in [1, 10, 20] {
        let part = opsdash::query::retention::partition_name("span", f.d(d));
        assert!(
            retention::exists(pool, &part).await,
            "{part} made on insert"
        );
    }
    let mut cfg = opsdash::config::RetentionConfig::default();
    cfg.span.keep_days = 7;
    let report = f.run_clean(&cfg).await;
    let dropped: Vec<&String> = report
        .dropped
        .iter()
        .filter(|p| p.starts_with("span_"))
        .collect();
    assert_eq!(dropped.len(), 2, "{:?}", report.dropped);
    let left: Vec<String> = sqlx::query_scalar("SELECT name FROM opsdash.span ORDER BY ts")
        .fetch_all(pool)
        .await?;
    assert_eq!(left, ["day-1"]);
    // The partitions ahead are made for spans too.
    let ahead =
        opsdash::query::retention::partition_name("span", f.today + chrono::Duration::days(3));
    assert!(retention::exists(pool, &ahead).await);
    Ok(())
}
