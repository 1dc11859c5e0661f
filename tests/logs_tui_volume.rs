//! The Logs tab's volume histogram on ratatui's TestBackend against a real PostgreSQL: over a
//! two-hour range each bucket's line count and its errors / warnings / the rest, as the widget
//! states them under the cursor, equal `count(*)` per bucket and level; the burst of errors
//! stands as a full column of the error glyph (readable without colour); Enter on it moves the
//! list to the bucket's first line.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::{DateTime, DurationRound, SecondsFormat, Utc};
use crossterm::event::KeyCode;
use opsdash::config::Config;
use opsdash::db::testkit::TestDb;
use opsdash::tui::app::App;

mod common;
use common::tui::{buffer_text, press, render};

const SIZE: (u16, u16) = (100, 34);

async fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c)).await;
    }
}

fn screen(app: &App) -> String {
    buffer_text(&render(app, SIZE.0, SIZE.1))
}

/// The cursor bucket's label: (total, errors, warnings, the rest).
fn label(text: &str) -> Option<(String, [i64; 4])> {
    let line = text.lines().find(|l| l.contains(" lines · █ E"))?;
    let (head, rest) = line.split_once(": ")?;
    let start = head.split(" +").next()?.trim().to_string();
    let total = rest.split(' ').next()?.parse().ok()?;
    let num =
        |tag: &str| -> Option<i64> { rest.split(tag).nth(1)?.split(' ').next()?.parse().ok() };
    Some((start, [total, num("█ E")?, num("▒ W")?, num("░ I")?]))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn histogram_buckets_match_count_per_bucket_and_enter_goes_there() -> anyhow::Result<()> {
    let tdb = TestDb::new().await?;
    let pool = tdb.db.write.clone();
    let t0: DateTime<Utc> =
        (Utc::now() - chrono::Duration::hours(5)).duration_trunc(chrono::Duration::hours(1))?;
    opsdash::query::retention::ensure_partitions(
        &pool,
        t0.date_naive(),
        Utc::now().date_naive() + chrono::Duration::days(1),
    )
    .await?;
    // 600 lines every 11 s over 110 minutes, levels 0-4 in turn; then a burst of 60 errors in
    // the minute 50 minutes in.
    sqlx::query(
        "INSERT INTO opsdash.log_event (ts, level, service, message)
         SELECT $1 + g * interval '11 seconds', (g % 5)::smallint, 'api', 'v ' || lpad(g::text, 4, '0')
           FROM generate_series(0, 599) g ORDER BY g",
    )
    .bind(t0)
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO opsdash.log_event (ts, level, service, message)
         SELECT $1 + interval '50 minutes' + g * interval '1 second', 4, 'api', 'v ' || (1000 + g)
           FROM generate_series(0, 59) g ORDER BY g",
    )
    .bind(t0)
    .execute(&pool)
    .await?;
    let until_t = t0 + chrono::Duration::hours(2);
    // The reference: count(*) per two-minute bucket (bucket_for(2 h, 60)) on the same grid.
    let rows: Vec<(DateTime<Utc>, i64, i64, i64, i64)> = sqlx::query_as(
        "SELECT date_bin(interval '120 seconds', ts, '2000-01-03T00:00:00Z'), count(*),
                count(*) FILTER (WHERE level >= 4), count(*) FILTER (WHERE level = 3),
                count(*) FILTER (WHERE level < 3)
           FROM opsdash.log_event WHERE ts >= $1 AND ts < $2 GROUP BY 1",
    )
    .bind(t0)
    .bind(until_t)
    .fetch_all(&pool)
    .await?;
    let reference: BTreeMap<String, [i64; 4]> = rows
        .into_iter()
        .map(|(b, n, e, w, i)| (b.format("%m-%d %H:%M:%S").to_string(), [n, e, w, i]))
        .collect();

    let mut app = common::tui::open(&tdb.db, Config::default(), "logs-volume:1:x", false, 2).await;
    press(&mut app, KeyCode::Char('2')).await;
    let rfc = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    press(&mut app, KeyCode::Char('/')).await;
    type_text(
        &mut app,
        &format!("since:{} until:{}", rfc(t0), rfc(until_t)),
    )
    .await;
    press(&mut app, KeyCode::Enter).await;
    press(&mut app, KeyCode::Char('i')).await;
    common::tui::until_screen(
        &mut app,
        SIZE,
        Duration::from_secs(20),
        "the histogram",
        |t| label(t).is_some(),
    )
    .await;

    // Every bucket under the cursor, from the first: the widget's figures are count(*)'s.
    for _ in 0..70 {
        press(&mut app, KeyCode::Left).await;
    }
    let mut seen = BTreeMap::new();
    let mut burst_at = None;
    for _ in 0..60 {
        let text = screen(&app);
        let (start, figures) = label(&text).expect("the cursor's label");
        let want = reference.get(&start).copied().unwrap_or([0; 4]);
        assert_eq!(figures, want, "bucket {start}:\n{text}");
        if figures[1] >= 60 {
            burst_at = Some(start.clone());
            // The burst is the tallest bucket: a full column, errors at the bottom.
            let rows: Vec<&str> = text.lines().collect();
            let axis = rows.iter().position(|l| l.trim() == "^").expect("axis");
            let col = rows[axis].chars().position(|c| c == '^').unwrap();
            let cells: Vec<char> = rows[axis - 5..axis]
                .iter()
                .map(|l| l.chars().nth(col).unwrap_or(' '))
                .collect();
            assert!(cells.iter().all(|c| *c != ' ' && *c != '·'), "{text}");
            assert_eq!(cells[4], '█', "errors at the bottom:\n{text}");
        }
        seen.insert(start, figures);
        press(&mut app, KeyCode::Right).await;
    }
    assert_eq!(seen.len(), 60, "sixty buckets across two hours");
    for (start, want) in &reference {
        assert_eq!(seen.get(start), Some(want), "bucket {start} shown");
    }

    // Back to the burst's bucket; Enter moves the list to its first line.
    let burst = burst_at.expect("the burst's bucket");
    for _ in 0..70 {
        press(&mut app, KeyCode::Left).await;
    }
    while label(&screen(&app)).map(|l| l.0) != Some(burst.clone()) {
        press(&mut app, KeyCode::Right).await;
    }
    let start = t0 + chrono::Duration::minutes(50);
    let first: String = sqlx::query_scalar(
        "SELECT message FROM opsdash.log_event WHERE ts >= $1 ORDER BY ts, id LIMIT 1",
    )
    .bind(start.duration_trunc(chrono::Duration::minutes(2))?)
    .fetch_one(&pool)
    .await?;
    press(&mut app, KeyCode::Enter).await;
    let text =
        common::tui::until_screen(&mut app, SIZE, Duration::from_secs(20), "the jump", |t| {
            t.contains(&first)
        })
        .await;
    let last_list_line = text
        .lines()
        .rfind(|l| l.contains(" v "))
        .unwrap_or_default();
    assert!(
        last_list_line.contains(&first),
        "the cursor on the bucket's first line {first}:\n{text}"
    );
    Ok(())
}
