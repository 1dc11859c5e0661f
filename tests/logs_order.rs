//! The Logs tab's list on ratatui's TestBackend over a real PostgreSQL: lines in event-time
//! order whatever their commit order (sequential inserts stamped backwards, two transactions
//! committing out of order, a late line while following), only lines inside the range, counts
//! and export that describe exactly those lines, dates when the range spans days, and no LIVE
//! over a stream of old lines (a backfill).

use std::time::Duration;

use chrono::{DateTime, Utc};
use crossterm::event::KeyCode;
use opsdash::config::Config;
use opsdash::db::testkit::TestDb;
use opsdash::tui::app::App;

mod common;
use common::tui::press;

async fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c)).await;
    }
}

async fn command(app: &mut App, cmd: &str) {
    press(app, KeyCode::Char(':')).await;
    type_text(app, cmd).await;
    press(app, KeyCode::Enter).await;
}

/// Ticks (which drain the tail and refresh the counts when due) until the screen satisfies
/// `ok`.
async fn until(app: &mut App, what: &str, ok: impl Fn(&str) -> bool) -> String {
    common::tui::until_screen(app, (120, 30), Duration::from_secs(30), what, ok).await
}

/// The screen row holding `needle` (panics when absent).
fn row(text: &str, needle: &str) -> usize {
    text.lines()
        .position(|l| l.contains(needle))
        .unwrap_or_else(|| panic!("{needle} is not on screen:\n{text}"))
}

async fn insert(pool: &sqlx::PgPool, ts: DateTime<Utc>, level: i16, msg: &str) {
    sqlx::query(
        "INSERT INTO opsdash.log_event (ts, level, service, message) VALUES ($1, $2, 'api', $3)",
    )
    .bind(ts)
    .bind(level)
    .bind(msg)
    .execute(pool)
    .await
    .expect("insert");
}

async fn notify(pool: &sqlx::PgPool) {
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(opsdash::db::LOGS_CHANNEL)
        .execute(pool)
        .await
        .expect("notify");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_is_in_time_order_inside_the_range_and_export_writes_what_the_header_counts(
) -> anyhow::Result<()> {
    let tdb = TestDb::new().await?;
    let pool = tdb.db.write.clone();
    let now = Utc::now();
    let min = chrono::Duration::minutes;
    // Outside the 1 h range: never in the list, the counts or the export.
    insert(
        &pool,
        now - chrono::Duration::hours(7),
        4,
        "seven hours ago",
    )
    .await;
    // Committed newest first: the commit order is the reverse of the time order.
    insert(&pool, now - min(5), 4, "stamped 5m ago").await;
    insert(&pool, now - min(20), 4, "stamped 20m ago").await;
    // Two transactions committing out of order: A writes first (lower tx and id), B commits
    // first.
    let mut a = pool.begin().await?;
    sqlx::query("INSERT INTO opsdash.log_event (ts, level, service, message) VALUES ($1, 4, 'api', 'stamped 8m ago')")
        .bind(now - min(8))
        .execute(&mut *a)
        .await?;
    insert(&pool, now - min(12), 4, "stamped 12m ago").await;
    a.commit().await?;

    let mut app = common::tui::open(&tdb.db, Config::default(), "logs-order:1:x", true, 2).await;
    press(&mut app, KeyCode::Char('2')).await;
    // The `?` overlay says how the list is made and documents the filter language, with
    // the same text `opsdash export --help` and the README use.
    let help = opsdash::tui::help::lines(&app);
    let has = |k: &str, h: &str| help.iter().any(|(a, b)| a == k && b.contains(h));
    assert!(
        has("late lines", "placed where their time says"),
        "{help:?}"
    );
    assert!(has("OR ", "") || help.iter().any(|(_, b)| b.contains("Not supported: OR")));
    for line in opsdash::filter::FILTER_HELP.lines() {
        if let Some((k, _)) = line.split_once("   ") {
            assert!(
                help.iter().any(|(a, _)| a == k.trim()),
                "{k} missing from the overlay"
            );
        }
    }
    let text = until(&mut app, "the four lines of the range", |t| {
        t.contains("stamped 5m ago") && t.contains("stamped 20m ago") && t.contains("4 in 1h")
    })
    .await;
    assert!(
        !text.contains("seven hours ago"),
        "outside the range:\n{text}"
    );
    let order = [
        "stamped 20m ago",
        "stamped 12m ago",
        "stamped 8m ago",
        "stamped 5m ago",
    ];
    let rows: Vec<usize> = order.iter().map(|m| row(&text, m)).collect();
    assert!(rows.windows(2).all(|w| w[0] < w[1]), "{rows:?}:\n{text}");
    assert!(text.contains("E4 W0 I0"), "{text}");

    // The list above may have come from the history page alone: the tail's own first fill
    // runs on its task and, under load, can come after the late line below is committed, and
    // would then hold it as an ordinary line. A probe line seen on screen proves the fill
    // is in (it comes through the fill or after it); it is deleted again so the counts below
    // stay those of the five lines.
    insert(&pool, now - min(1), 2, "probe of the tail").await;
    notify(&pool).await;
    until(&mut app, "the tail's probe", |t| {
        t.contains("probe of the tail")
    })
    .await;
    sqlx::query("DELETE FROM opsdash.log_event WHERE message = 'probe of the tail'")
        .execute(&pool)
        .await?;

    // While following: a late line goes where its time says and is counted as late; a late
    // line stamped before the range never shows.
    insert(&pool, now - min(15), 4, "late, stamped 15m ago").await;
    insert(
        &pool,
        now - chrono::Duration::hours(2),
        4,
        "late and out of range",
    )
    .await;
    notify(&pool).await;
    let text = until(&mut app, "the late line", |t| {
        t.contains("late, stamped 15m ago")
    })
    .await;
    let late = row(&text, "late, stamped 15m ago");
    assert!(
        row(&text, "stamped 20m ago") < late && late < row(&text, "stamped 12m ago"),
        "{text}"
    );
    assert!(text.contains("1 late"), "{text}");
    assert!(!text.contains("late and out of range"), "{text}");
    assert!(!text.contains("seven hours ago"), "{text}");

    // Export writes exactly the lines the header counts (filter and range), and the header
    // is read again with the export's range.
    let dir = tempfile::tempdir()?;
    let target = dir.path().join("range.csv");
    command(&mut app, &format!("export {}", target.display())).await;
    let text = until(&mut app, "the export", |t| t.contains("exported 5 lines")).await;
    let csv = std::fs::read_to_string(&target)?;
    assert_eq!(csv.lines().count(), 1 + 5, "{csv}");
    assert!(!csv.contains("seven hours ago") && !csv.contains("out of range"));
    until(&mut app, "the counts of the export's range", |t| {
        t.contains("5 in 1h")
    })
    .await;
    drop(text);

    // A wider range refills: the 2 h and 7 h lines are inside 24 h, in their place, and the
    // range now spans two calendar days, so every line shows its date.
    command(&mut app, "range 24h").await;
    let text = until(&mut app, "the 24 h range", |t| {
        t.contains("seven hours ago") && t.contains("7 in 24h")
    })
    .await;
    assert!(row(&text, "seven hours ago") < row(&text, "late and out of range"));
    assert!(row(&text, "late and out of range") < row(&text, "stamped 20m ago"));
    let seven = now - chrono::Duration::hours(7);
    let dated = seven.format("%m-%d %H:%M:%S").to_string();
    assert!(
        text.lines()
            .nth(row(&text, "seven hours ago"))
            .is_some_and(|l| l.contains(&dated)),
        "{dated} missing:\n{text}"
    );
    // Back to 1 h: the old lines leave the list at once, and while the whole hour is today
    // the time of day alone is shown.
    command(&mut app, "range 1h").await;
    let text = until(&mut app, "the 1 h range again", |t| {
        !t.contains("seven hours ago") && t.contains("stamped 5m ago")
    })
    .await;
    let five = (now - min(5)).format("%H:%M:%S").to_string();
    let line = text.lines().nth(row(&text, "stamped 5m ago")).unwrap_or("");
    assert!(line.contains(&five), "{text}");
    if (Utc::now() - chrono::Duration::hours(1)).date_naive() == Utc::now().date_naive() {
        let day = (now - min(5)).format("%m-%d ").to_string();
        assert!(!line.contains(&day), "no date needed today:\n{text}");
    }
    Ok(())
}

/// The demo's backfill writes yesterday's lines while the tab follows: the status line says how
/// old they are, never LIVE; LIVE comes back with a line of now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_old_lines_is_not_called_live() -> anyhow::Result<()> {
    let tdb = TestDb::new().await?;
    let pool = tdb.db.write.clone();
    let mut cfg = Config::default();
    cfg.ui.range = "24h".into();
    let mut app = common::tui::open(&tdb.db, cfg, "logs-order:1:y", true, 2).await;
    press(&mut app, KeyCode::Char('2')).await;
    let yesterday = Utc::now() - chrono::Duration::minutes(20 * 60 + 5);
    for i in 0..3 {
        insert(
            &pool,
            yesterday + chrono::Duration::seconds(i),
            2,
            &format!("backfilled {i}"),
        )
        .await;
    }
    notify(&pool).await;
    let text = until(&mut app, "the backfilled lines", |t| {
        t.contains("backfilled 2")
    })
    .await;
    assert!(!text.contains("LIVE"), "{text}");
    assert!(text.contains("FOLLOWING · newest line 20h ago"), "{text}");
    // The counts catch up with the lines the list shows.
    until(&mut app, "the counts", |t| t.contains("3 in 24h")).await;
    insert(&pool, Utc::now(), 2, "a line of now").await;
    notify(&pool).await;
    let text = until(&mut app, "the live line", |t| t.contains("a line of now")).await;
    assert!(text.contains("LIVE"), "{text}");
    Ok(())
}
