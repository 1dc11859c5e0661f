//! The error groups view for triage: on a real PostgreSQL (fabricated groups and log lines),
//! the regressed group is marked without colour, `s` sorts by count, users, first seen and
//! back (the header marks the column), the filter line narrows by service, status and type
//! (a mistake shows with its column), `n` resolves with a note recorded in the group and the
//! audit trail, and Enter lists the group's own log lines. Also the view's snapshots at 80x24
//! and 160x45, rendered from fabricated groups at a fixed clock.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use crossterm::event::KeyCode;
use opsdash::config::Config;
use opsdash::db::testkit::TestDb;
use opsdash::query::error_groups::{ErrorGroup, GroupStatus};
use opsdash::tui::app::{update, App, AppOptions};
use opsdash::tui::event::Event;
use opsdash::tui::msg::{Data, LogsData, Owner, QueryDone, Tab};

mod common;
use common::tui::{buffer_text, key, lazy_db, press, render};

const SIZE: (u16, u16) = (160, 30);

async fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c)).await;
    }
}

async fn until(app: &mut App, what: &str, ok: impl Fn(&str) -> bool) -> String {
    common::tui::until_screen(app, SIZE, Duration::from_secs(20), what, ok).await
}

/// Applies a filter on the view's filter line.
async fn filter(app: &mut App, text: &str) {
    press(app, KeyCode::Char('/')).await;
    // The line opens with the applied filter selected: Backspace empties it.
    press(app, KeyCode::Backspace).await;
    type_text(app, text).await;
    press(app, KeyCode::Enter).await;
}

/// The screen's rows that name a group (by its sample message), top to bottom.
fn order(text: &str) -> Vec<&'static str> {
    let mut found: Vec<(usize, &'static str)> = ["card declined", "gateway timeout", "db timeout"]
        .into_iter()
        .filter_map(|m| text.find(m).map(|i| (i, m)))
        .collect();
    found.sort();
    found.into_iter().map(|(_, m)| m).collect()
}

fn row_of<'a>(text: &'a str, what: &str) -> &'a str {
    text.lines().find(|l| l.contains(what)).unwrap_or("")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_groups_filter_sort_take_notes_and_list_their_lines() -> anyhow::Result<()> {
    let tdb = TestDb::new().await?;
    let pool = tdb.db.write.clone();
    sqlx::raw_sql(
        "INSERT INTO opsdash.error_group
            (fingerprint, service, error_type, sample_message, first_seen, last_seen, count,
             affected_users, status, regressed)
         VALUES ('fpcard', 'api', 'CardDeclined', 'card declined by issuer',
                 now() - interval '2 days', now() - interval '1 minute', 50, 5, 'new', false),
                ('fpgate', 'web', 'Timeout', 'gateway timeout upstream',
                 now() - interval '1 hour', now() - interval '10 minutes', 200, 2, 'acknowledged', false),
                ('fpdb', 'api', 'Timeout', 'db timeout on orders',
                 now() - interval '3 days', now() - interval '30 minutes', 10, 40, 'new', true);
         INSERT INTO opsdash.log_event (ts, level, service, message, fingerprint, error_type)
         SELECT now() - g * interval '1 minute', 4, 'api', 'card declined by issuer #' || g,
                'fpcard', 'CardDeclined'
           FROM generate_series(1, 3) g;
         INSERT INTO opsdash.log_event (ts, level, service, message, fingerprint, error_type)
         SELECT now() - g * interval '1 minute', 4, 'web', 'gateway timeout upstream #' || g,
                'fpgate', 'Timeout'
           FROM generate_series(1, 3) g;",
    )
    .execute(&pool)
    .await?;

    let mut app = common::tui::open(&tdb.db, Config::default(), "logs-groups:1:x", true, 2).await;
    press(&mut app, KeyCode::Char('2')).await;
    press(&mut app, KeyCode::Char('v')).await;
    let text = until(&mut app, "the three groups", |t| order(t).len() == 3).await;
    // Triage order: the regressed group first, then the most recently seen; the regressed one
    // is marked with a glyph and a word (this screen has no colour).
    assert_eq!(
        order(&text),
        ["db timeout", "card declined", "gateway timeout"],
        "{text}"
    );
    let regressed = row_of(&text, "db timeout");
    assert!(
        regressed.contains('▲') && regressed.contains("regressed"),
        "{regressed}"
    );
    assert!(!row_of(&text, "card declined").contains('▲'), "{text}");
    assert!(
        text.contains("LAST SEEN▼") && text.contains("STATUS"),
        "{text}"
    );

    // s: by count, then by users affected, then by first seen (newest first), then back.
    press(&mut app, KeyCode::Char('s')).await;
    let text = until(&mut app, "by count", |t| {
        t.contains("sort: count") && order(t) == ["gateway timeout", "card declined", "db timeout"]
    })
    .await;
    assert!(text.contains("COUNT▼"), "{text}");
    press(&mut app, KeyCode::Char('s')).await;
    until(&mut app, "by users", |t| {
        t.contains("USERS▼") && order(t) == ["db timeout", "card declined", "gateway timeout"]
    })
    .await;
    press(&mut app, KeyCode::Char('s')).await;
    until(&mut app, "by first seen", |t| {
        t.contains("FIRST SEEN▼") && order(t) == ["gateway timeout", "card declined", "db timeout"]
    })
    .await;
    press(&mut app, KeyCode::Char('s')).await;
    until(&mut app, "back to last seen", |t| t.contains("LAST SEEN▼")).await;

    // The filter line: by service, by status, by type and status together.
    filter(&mut app, "service:api").await;
    until(&mut app, "the api groups", |t| {
        order(t) == ["db timeout", "card declined"]
    })
    .await;
    filter(&mut app, "status:acknowledged").await;
    until(&mut app, "the acknowledged group", |t| {
        order(t) == ["gateway timeout"]
    })
    .await;
    filter(&mut app, "type:Timeout status:regressed").await;
    until(&mut app, "the regressed timeout", |t| {
        order(t) == ["db timeout"]
    })
    .await;
    // A mistake shows with its column; the previous filter stays.
    press(&mut app, KeyCode::Char('/')).await;
    press(&mut app, KeyCode::Backspace).await;
    type_text(&mut app, "service:api stat:new").await;
    let text = buffer_text(&render(&app, SIZE.0, SIZE.1));
    assert!(
        text.contains("at column") && text.contains("stat"),
        "{text}"
    );
    press(&mut app, KeyCode::Esc).await;
    filter(&mut app, "card").await;
    until(&mut app, "the card group", |t| {
        order(t) == ["card declined"]
    })
    .await;

    // n: a transition with a note (the prompt starts with "resolve ").
    press(&mut app, KeyCode::Char('n')).await;
    type_text(&mut app, "fixed by deploy 42").await;
    press(&mut app, KeyCode::Enter).await;
    until(&mut app, "the resolution", |t| {
        t.contains("fpcard is now resolved (note: fixed by deploy 42)")
    })
    .await;
    let (status, note): (String, Option<String>) =
        sqlx::query_as("SELECT status, note FROM opsdash.error_group WHERE fingerprint = 'fpcard'")
            .fetch_one(&pool)
            .await?;
    assert_eq!(status, GroupStatus::Resolved.as_str());
    assert_eq!(note.as_deref(), Some("fixed by deploy 42"));
    let audited: Option<String> = sqlx::query_scalar(
        "SELECT changes->>'note' FROM opsdash.audit_event
          WHERE action = 'error_group.resolved' AND resource_id = 'fpcard'",
    )
    .fetch_optional(&pool)
    .await?;
    assert_eq!(audited.as_deref(), Some("fixed by deploy 42"));

    // Enter: the group's own log lines in the list, filtered by its fingerprint.
    press(&mut app, KeyCode::Enter).await;
    let text = until(&mut app, "the group's lines", |t| {
        t.contains("card declined by issuer #1")
            && t.contains("card declined by issuer #3")
            && t.contains("filter: fp:fpcard")
    })
    .await;
    // The range reaches back to the group's first line (two days ago: 7d).
    assert!(text.contains("range 7d"), "{text}");
    assert!(!text.contains("gateway timeout upstream #"), "{text}");
    Ok(())
}

/// The fixed "now" of the snapshots.
fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap()
}

/// A group: (fingerprint, service, type, sample message), (first seen hours ago, last seen
/// minutes ago), (count, users), its status and whether it regressed.
fn group(
    (fp, service, ty, msg): (&str, &str, Option<&str>, &str),
    (first_h, last_min): (i64, i64),
    (count, users): (i64, i64),
    status: GroupStatus,
    regressed: bool,
) -> ErrorGroup {
    ErrorGroup {
        fingerprint: fp.into(),
        service: service.into(),
        error_type: ty.map(str::to_string),
        sample_message: msg.into(),
        first_seen: t0() - chrono::Duration::hours(first_h),
        last_seen: t0() - chrono::Duration::minutes(last_min),
        count,
        affected_users: users,
        status,
        regressed,
        assignee: None,
        note: None,
        sparkline: (0..24).map(|i| (i * 7 + count as u64) % 9).collect(),
    }
}

fn groups() -> Vec<ErrorGroup> {
    vec![
        group(
            ("fpdb", "api", Some("Timeout"), "db timeout on orders"),
            (72, 30),
            (10, 40),
            GroupStatus::New,
            true,
        ),
        group(
            (
                "fpcard",
                "api",
                Some("CardDeclined"),
                "card declined by issuer",
            ),
            (48, 1),
            (1_250, 5),
            GroupStatus::New,
            false,
        ),
        group(
            ("fpgate", "web", None, "gateway timeout upstream"),
            (1, 10),
            (200, 2),
            GroupStatus::Acknowledged,
            false,
        ),
    ]
}

fn deliver(app: &mut App, data: LogsData) {
    let _ = update(
        app,
        Event::Query(QueryDone {
            owner: Owner::Tab(Tab::Logs),
            panel: "snapshot",
            generation: 0,
            data: Data::Logs(data),
        }),
    );
}

// Current-thread runtime: nothing but the fabricated results reaches the tab.
#[tokio::test]
async fn error_groups_view_snapshots() {
    let mut app = App::new(
        lazy_db(),
        Arc::new(Config::default()),
        AppOptions {
            no_color: true,
            instance: "snapshot-test:1:abcd".into(),
            config_dir: None,
        },
    );
    let _ = update(&mut app, Event::Tick(t0()));
    let _ = key(&mut app, KeyCode::Char('2'));
    let _ = key(&mut app, KeyCode::Char('v'));
    deliver(&mut app, LogsData::Groups(Ok(groups())));
    let _ = update(&mut app, Event::Tick(t0()));
    for (w, h) in [(80, 24), (160, 45)] {
        let text = buffer_text(&render(&app, w, h));
        insta::assert_snapshot!(format!("error_groups_{w}x{h}"), text);
    }
}
