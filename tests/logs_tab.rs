//! The Logs tab on ratatui's TestBackend with real data from a throwaway PostgreSQL: live
//! lines arrive through the tail engine, pause counts waiting lines, filters (and their
//! mistakes) show inline, the trace view and the error groups render, and no escape byte from
//! hostile log lines ever reaches the screen buffer.

use std::time::Duration;

use crossterm::event::KeyCode;
use opsdash::config::Config;
use opsdash::db::testkit::TestDb;
use opsdash::sanitize::is_unsafe;
use opsdash::tui::app::{update, App};
use opsdash::tui::event::Event;
use ratatui::buffer::Buffer;

mod common;
use common::tui::{buffer_text, press as send, render};

async fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        send(app, KeyCode::Char(c)).await;
    }
}

/// Ticks (which drain the tail) until the screen satisfies `ok`.
async fn until(app: &mut App, what: &str, ok: impl Fn(&str) -> bool) -> String {
    common::tui::until_screen(app, (100, 30), Duration::from_secs(15), what, ok).await
}

const HOSTILE: &[&str] = &[
    "\x1b[2J\x1b[H cleared the screen",
    "\x1b]0;owned title\x07 title",
    "\x1b]8;;http://evil.example\x1b\\click me\x1b]8;;\x1b\\",
    "\x1b]52;c;ZXZpbA==\x07 clipboard",
    "\x1bP+q544e\x1b\\ dcs",
    "\u{9b}31m C1 CSI",
    "split escape at the end \x1b",
    "[31m continues after a newline\nsecond \x1b[1mline",
    "bidi \u{202e}gnp.exe\u{202c} \u{2066}isolate\u{2069}",
];

async fn app_on_logs_tab(tdb: &TestDb) -> App {
    let mut app = common::tui::open(&tdb.db, Config::default(), "logs-test:1:x", false, 2).await;
    send(&mut app, KeyCode::Char('2')).await;
    app
}

fn assert_no_escapes(buf: &Buffer) {
    for cell in buf.content() {
        let s = cell.symbol();
        assert!(
            !s.chars().any(|c| is_unsafe(c) || c == '\t'),
            "unsafe character {s:?} reached the screen buffer"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tail_pause_filter_trace_and_hostile_lines() -> anyhow::Result<()> {
    let tdb = TestDb::new().await?;
    let pool = tdb.db.write.clone();
    sqlx::query(
        "INSERT INTO opsdash.log_event (ts, level, service, message, trace_id, attrs)
         VALUES (now() - interval '2 seconds', 2, 'api', 'request served', 'tr-9', NULL),
                (now() - interval '1 second', 4, 'api', 'payment failed', 'tr-9',
                 '{\"stack\": \"at pay()\\nat main()\", \"esc\": \"\\u001b[2J\"}')",
    )
    .execute(&pool)
    .await?;
    sqlx::query(
        "INSERT INTO opsdash.request_log (ts, service, method, route, status, duration_ms, trace_id)
         VALUES (now() - interval '3 seconds', 'api', 'POST', '/api/pay', 502, 1800, 'tr-9')",
    )
    .execute(&pool)
    .await?;
    // The JSON-decoded form of "\u001b" is a real ESC: store the corpus as such.
    for line in HOSTILE {
        sqlx::query("INSERT INTO opsdash.log_event (ts, level, service, message, trace_id) VALUES (now(), 3, $1, $1, $1)")
            .bind(line)
            .execute(&pool)
            .await?;
    }
    let mut app = app_on_logs_tab(&tdb).await;
    let text = until(&mut app, "the initial lines", |t| {
        t.contains("payment failed")
    })
    .await;
    assert!(text.contains("LIVE"), "{text}");
    assert!(
        text.contains("^[[2J"),
        "hostile text is shown defanged:\n{text}"
    );
    assert_no_escapes(&render(&app, 100, 30));
    assert_no_escapes(&render(&app, 80, 24));

    // New lines arrive live.
    sqlx::query("INSERT INTO opsdash.log_event (ts, level, service, message) VALUES (now(), 2, 'api', 'fresh live line')")
        .execute(&pool)
        .await?;
    sqlx::query("SELECT pg_notify('opsdash_logs', '')")
        .execute(&pool)
        .await?;
    until(&mut app, "a live line", |t| t.contains("fresh live line")).await;

    // Space pauses: new lines are counted, not shown; G resumes and shows them.
    send(&mut app, KeyCode::Char(' ')).await;
    until(&mut app, "the pause", |t| t.contains("PAUSED (0 waiting)")).await;
    sqlx::query("INSERT INTO opsdash.log_event (ts, level, service, message) SELECT now(), 2, 'api', 'while paused ' || g FROM generate_series(1, 3) g")
        .execute(&pool)
        .await?;
    let text = until(&mut app, "the waiting count", |t| {
        t.contains("PAUSED (3 waiting)")
    })
    .await;
    assert!(!text.contains("while paused"), "{text}");
    send(&mut app, KeyCode::Char('G')).await;
    until(&mut app, "the resumed lines", |t| {
        t.contains("while paused 3") && t.contains("LIVE")
    })
    .await;

    // A filter with a mistake: shown with its position, the previous filter stays.
    send(&mut app, KeyCode::Char('/')).await;
    type_text(&mut app, "level:loud").await;
    let text = buffer_text(&render(&app, 100, 30));
    assert!(text.contains("at column 7"), "{text}");
    assert!(
        text.contains("while paused 3"),
        "nothing was filtered:\n{text}"
    );
    // Fixing it applies it.
    for _ in 0.."loud".len() {
        send(&mut app, KeyCode::Backspace).await;
    }
    type_text(&mut app, "error+").await;
    send(&mut app, KeyCode::Enter).await;
    let text = until(&mut app, "the filtered tail", |t| {
        t.contains("payment failed") && !t.contains("while paused")
    })
    .await;
    assert!(text.contains("filter: level:error+"), "{text}");

    // Details of the selected (newest) line: fields, attributes, the stack trace line by line.
    send(&mut app, KeyCode::Enter).await;
    let buf = render(&app, 100, 40);
    let text = buffer_text(&buf);
    assert!(
        text.contains("at pay()") && text.contains("at main()"),
        "{text}"
    );
    assert!(text.contains("tr-9"), "{text}");
    assert_no_escapes(&buf);
    send(&mut app, KeyCode::Esc).await;

    // The trace of the line: the request and both log lines, with a waterfall.
    send(&mut app, KeyCode::Char('t')).await;
    let text = until(&mut app, "the trace", |t| t.contains("POST /api/pay")).await;
    assert!(text.contains("trace tr-9"), "{text}");
    assert!(text.contains("1.80s"), "{text}");
    assert!(text.contains('█'), "{text}");
    send(&mut app, KeyCode::Esc).await;

    // Error groups view.
    sqlx::query("INSERT INTO opsdash.error_group (fingerprint, service, sample_message, first_seen, last_seen, count, affected_users) VALUES ('fpX', 'api', 'payment failed', now(), now(), 12, 3)")
        .execute(&pool)
        .await?;
    send(&mut app, KeyCode::Char('v')).await;
    let text = until(&mut app, "the error groups", |t| t.contains("error groups")).await;
    assert!(
        text.contains("new") && text.contains("payment failed"),
        "{text}"
    );
    send(&mut app, KeyCode::Char('a')).await;
    until(&mut app, "the acknowledgement", |t| {
        t.contains("fpX is now acknowledged")
    })
    .await;
    // Audit view shows the acknowledgement the tab just made.
    send(&mut app, KeyCode::Char('v')).await;
    until(&mut app, "the audit trail", |t| {
        t.contains("error_group.ackn")
    })
    .await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_key_writes_the_filtered_lines() -> anyhow::Result<()> {
    let tdb = TestDb::new().await?;
    sqlx::query("INSERT INTO opsdash.log_event (ts, level, service, message) SELECT now(), (g % 5)::smallint, 'api', 'row ' || g FROM generate_series(1, 50) g")
        .execute(&tdb.db.write)
        .await?;
    let dir = tempfile::tempdir()?;
    let target = dir.path().join("errors.json");
    let mut app = app_on_logs_tab(&tdb).await;
    until(&mut app, "lines", |t| t.contains("row 50")).await;
    // A saved filter from the config (`errors = "level:error+"` by default).
    send(&mut app, KeyCode::Char(':')).await;
    type_text(&mut app, "f errors").await;
    send(&mut app, KeyCode::Enter).await;
    until(&mut app, "the saved filter", |t| {
        t.contains("filter: level:error+")
    })
    .await;
    send(&mut app, KeyCode::Char(':')).await;
    type_text(&mut app, &format!("export {}", target.display())).await;
    send(&mut app, KeyCode::Enter).await;
    until(&mut app, "the export", |t| t.contains("exported 10 lines")).await;
    let rows: Vec<opsdash::export::ExportRow> =
        serde_json::from_str(&std::fs::read_to_string(&target)?)?;
    assert_eq!(rows.len(), 10);
    assert!(rows.iter().all(|r| r.level == "error"));
    // Again: the file exists, nothing is overwritten.
    send(&mut app, KeyCode::Char(':')).await;
    type_text(&mut app, &format!("export {}", target.display())).await;
    send(&mut app, KeyCode::Enter).await;
    until(&mut app, "the refusal", |t| t.contains("already exists")).await;
    Ok(())
}

/// After a quiet spell the tail engine wakes the tab itself (`Event::Wake`): no tick is sent
/// here, so the line can only reach the screen through that wake-up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_line_after_a_quiet_spell_wakes_the_tab_without_a_tick() -> anyhow::Result<()> {
    let tdb = TestDb::new().await?;
    let mut app = common::tui::open(&tdb.db, Config::default(), "logs-test:1:w", false, 2).await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    app.env.events = Some(tx);
    // Opening the tab starts the engine; its drains go idle once nothing comes.
    send(&mut app, KeyCode::Char('2')).await;

    sqlx::query(
        "WITH ins AS (INSERT INTO opsdash.log_event (ts, level, service, message)
                      VALUES (now(), 2, 'api', 'woken by the tail'))
         SELECT pg_notify($1, '')",
    )
    .bind(opsdash::db::LOGS_CHANNEL)
    .execute(&tdb.db.write)
    .await?;

    let end = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = buffer_text(&render(&app, 100, 30));
        if text.contains("woken by the tail") {
            return Ok(());
        }
        let left = end.saturating_duration_since(tokio::time::Instant::now());
        let ev = tokio::time::timeout(left, rx.recv())
            .await
            .map_err(|_| anyhow::anyhow!("no wake-up and the line never showed:\n{text}"))?
            .ok_or_else(|| anyhow::anyhow!("event channel closed"))?;
        assert!(matches!(ev, Event::Wake(_)), "unexpected event {ev:?}");
        let fx = update(&mut app, ev);
        opsdash::tui::settle(&mut app, fx).await;
    }
}

/// `R` resolves the error group shown selected, even when a refresh re-sorted the groups
/// (newest first) under the cursor between the look and the key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_on_an_error_group_applies_to_the_group_selected_across_a_resort(
) -> anyhow::Result<()> {
    let tdb = TestDb::new().await?;
    let pool = tdb.db.write.clone();
    sqlx::query(
        "INSERT INTO opsdash.error_group (fingerprint, service, sample_message, first_seen, last_seen, count, affected_users)
         VALUES ('fpBig', 'api', 'big group', now(), now(), 20, 1),
                ('fpSmall', 'api', 'small group', now(), now() - interval '5 minutes', 10, 1)",
    )
    .execute(&pool)
    .await?;
    let mut app = app_on_logs_tab(&tdb).await;
    send(&mut app, KeyCode::Char('v')).await;
    let text = until(&mut app, "both groups", |t| {
        t.contains("big group") && t.contains("small group")
    })
    .await;
    assert!(text.find("big group") < text.find("small group"), "{text}");
    // Select the small group; then it happens again (newest first: it moves to the top) and
    // the list is refreshed.
    send(&mut app, KeyCode::Char('j')).await;
    sqlx::query("UPDATE opsdash.error_group SET count = 11, last_seen = now() + interval '1 second' WHERE fingerprint = 'fpSmall'")
        .execute(&pool)
        .await?;
    send(&mut app, KeyCode::Char('r')).await;
    until(&mut app, "the re-sort", |t| {
        t.find("small group") < t.find("big group")
    })
    .await;
    send(&mut app, KeyCode::Char('R')).await;
    until(&mut app, "the resolution", |t| {
        t.contains("is now resolved")
    })
    .await;
    let statuses: Vec<(String, String)> =
        sqlx::query_as("SELECT fingerprint, status FROM opsdash.error_group ORDER BY fingerprint")
            .fetch_all(&pool)
            .await?;
    assert_eq!(
        statuses,
        vec![
            ("fpBig".to_string(), "new".to_string()),
            ("fpSmall".to_string(), "resolved".to_string())
        ]
    );
    Ok(())
}
