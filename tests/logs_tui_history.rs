//! The Logs tab over all of history, on ratatui's TestBackend against a real PostgreSQL: a
//! range days back (`since:`/`until:`) lists its lines with the header's count equal to
//! `count(*)`; paging down from its first line and back up from its last shows every line once
//! and in order across day partitions while the list holds at most its capacity; `:goto`
//! lands on the first line at or after the instant; and with a range that reaches now the
//! live tail joins the same list, also after scrolling back into history and returning.

use std::collections::BTreeSet;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use crossterm::event::KeyCode;
use opsdash::config::Config;
use opsdash::db::testkit::TestDb;
use opsdash::tui::app::App;
use opsdash::tui::widgets::fmt_count;

mod common;
use common::tui::{buffer_text, press, render};

const SIZE: (u16, u16) = (100, 30);
const LINES: i64 = 2400;

async fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c)).await;
    }
}

async fn until(app: &mut App, what: &str, ok: impl Fn(&str) -> bool) -> String {
    common::tui::until_screen(app, SIZE, Duration::from_secs(20), what, ok).await
}

fn screen(app: &App) -> String {
    buffer_text(&render(app, SIZE.0, SIZE.1))
}

/// The `seq NNNN` numbers on screen, top to bottom.
fn seqs(text: &str) -> Vec<i64> {
    text.match_indices("seq ")
        .filter_map(|(i, _)| text.get(i + 4..i + 8)?.parse().ok())
        .collect()
}

fn rfc(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Walks the list with `key` until `done` shows, checking every screen holds consecutive
/// lines in order; returns every line seen.
async fn walk(app: &mut App, key: KeyCode, done: &str) -> BTreeSet<i64> {
    let mut seen = BTreeSet::new();
    for _ in 0..1000 {
        let text = screen(app);
        let s = seqs(&text);
        assert!(
            s.windows(2).all(|w| w[1] == w[0] + 1),
            "a screen skips or repeats a line:\n{text}"
        );
        seen.extend(s);
        if text.contains(done) {
            return seen;
        }
        press(app, key).await;
    }
    panic!("never reached {done}:\n{}", screen(app));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_list_pages_through_days_of_history_and_the_tail_joins_it() -> anyhow::Result<()> {
    let tdb = TestDb::new().await?;
    let pool = tdb.db.write.clone();
    // 2,400 lines a minute apart (two per timestamp) starting three days ago: about 20 hours
    // over two or three daily partitions, all before the tail's 24 h floor.
    let now = Utc::now();
    let base = chrono::DurationRound::duration_trunc(
        now - chrono::Duration::days(3),
        chrono::Duration::minutes(1),
    )?;
    opsdash::query::retention::ensure_partitions(
        &pool,
        base.date_naive(),
        now.date_naive() + chrono::Duration::days(1),
    )
    .await?;
    sqlx::query(
        "INSERT INTO opsdash.log_event (ts, level, service, message)
         SELECT $1 + (g / 2) * interval '1 minute', (g % 5)::smallint, 'api',
                'seq ' || lpad(g::text, 4, '0')
           FROM generate_series(0, $2 - 1) g ORDER BY g",
    )
    .bind(base)
    .bind(LINES)
    .execute(&pool)
    .await?;
    sqlx::query("ANALYZE opsdash.log_event")
        .execute(&pool)
        .await?;

    let mut cfg = Config::default();
    // The list holds at most 1,000 lines (its floor): less than half the range.
    cfg.ui.tail_buffer = 100;
    let mut app = common::tui::open(&tdb.db, cfg, "logs-history:1:x", false, 2).await;
    press(&mut app, KeyCode::Char('2')).await;

    // A range two days back, whatever the shared range (1 h): its newest line at the bottom,
    // the count in the header.
    let since = base - chrono::Duration::hours(1);
    let until_t = base + chrono::Duration::hours(21);
    press(&mut app, KeyCode::Char('/')).await;
    type_text(
        &mut app,
        &format!("since:{} until:{}", rfc(since), rfc(until_t)),
    )
    .await;
    press(&mut app, KeyCode::Enter).await;
    let exact: i64 =
        sqlx::query_scalar("SELECT count(*) FROM opsdash.log_event WHERE ts >= $1 AND ts < $2")
            .bind(since)
            .bind(until_t)
            .fetch_one(&pool)
            .await?;
    assert_eq!(exact, LINES);
    let text = until(&mut app, "the range's newest line and its count", |t| {
        t.contains("seq 2399") && t.contains(&format!(" {} in ", fmt_count(exact as f64)))
    })
    .await;
    assert!(!text.contains("~2"), "a count this small is exact:\n{text}");

    // From the first line of the range down to its last, then back up: every line once, in
    // order, while the list never holds more than its 1,000 lines.
    press(&mut app, KeyCode::Home).await;
    until(&mut app, "the range's first line", |t| {
        t.contains("seq 0000")
    })
    .await;
    let down = walk(&mut app, KeyCode::PageDown, "seq 2399").await;
    assert_eq!(down, (0..LINES).collect::<BTreeSet<_>>());
    // The status line's end, at a width that shows it past the long filter.
    let wide = buffer_text(&render(&app, 220, 30));
    assert!(
        wide.contains("buffer 1.0k/1.0k"),
        "memory is bounded:\n{wide}"
    );
    let up = walk(&mut app, KeyCode::PageUp, "seq 0000").await;
    assert_eq!(up, (0..LINES).collect::<BTreeSet<_>>());

    // `:goto` the minute of lines 1234 and 1235: the cursor (the list's last row) on 1234.
    let at = base + chrono::Duration::minutes(617);
    press(&mut app, KeyCode::Char(':')).await;
    type_text(&mut app, &format!("goto {}", rfc(at))).await;
    press(&mut app, KeyCode::Enter).await;
    let text = until(&mut app, "the lines around the instant", |t| {
        t.contains("seq 1234")
    })
    .await;
    let s = seqs(&text);
    assert_eq!(
        s.last(),
        Some(&1234),
        "the cursor is on the instant's first line:\n{text}"
    );

    // A range that reaches now: the tail's new lines join the same list.
    press(&mut app, KeyCode::Char('/')).await;
    for _ in 0..200 {
        press(&mut app, KeyCode::Backspace).await;
    }
    type_text(&mut app, &format!("since:{}", rfc(since))).await;
    press(&mut app, KeyCode::Enter).await;
    until(&mut app, "the newest history line", |t| {
        t.contains("seq 2399")
    })
    .await;
    sqlx::raw_sql(
        "INSERT INTO opsdash.log_event (ts, level, service, message) VALUES (now(), 2, 'api', 'live joins');
         SELECT pg_notify('opsdash_logs', '')",
    )
    .execute(&pool)
    .await?;
    let text = until(&mut app, "the live line below history", |t| {
        t.contains("live joins")
    })
    .await;
    assert!(
        text.contains("seq 2399"),
        "history and the tail in one list:\n{text}"
    );

    // Back to the range's first line (the newest lines leave memory); a line arriving
    // meanwhile waits, and G brings the newest lines back with it.
    press(&mut app, KeyCode::Home).await;
    until(&mut app, "the range's first line", |t| {
        t.contains("seq 0000") && t.contains("HISTORY")
    })
    .await;
    sqlx::raw_sql(
        "INSERT INTO opsdash.log_event (ts, level, service, message) VALUES (now(), 2, 'api', 'arrived while back');
         SELECT pg_notify('opsdash_logs', '')",
    )
    .execute(&pool)
    .await?;
    until(&mut app, "the waiting line counted", |t| {
        t.contains("HISTORY · 1 new")
    })
    .await;
    press(&mut app, KeyCode::Char('G')).await;
    let text = until(&mut app, "the newest lines again", |t| {
        t.contains("arrived while back") && t.contains("live joins")
    })
    .await;
    assert!(!text.contains("HISTORY"), "{text}");
    Ok(())
}
