//! The audit view's mass-delete view and export on a real PostgreSQL: `m` lists each actor
//! and action with more than 10 deletes in 5 minutes (a slow deleter is not one), Enter lists
//! those deletes in the trail, and `:export FILE` writes every row the trail's filter selects
//! (as `opsdash audit search --format json` prints them: one object a line), the same rows a
//! query of the database gives.

use std::time::Duration;

use crossterm::event::KeyCode;
use opsdash::config::Config;
use opsdash::db::testkit::TestDb;
use opsdash::tui::app::App;

mod common;
use common::tui::press;

const SIZE: (u16, u16) = (140, 40);

async fn type_text(app: &mut App, text: &str) {
    for c in text.chars() {
        press(app, KeyCode::Char(c)).await;
    }
}

async fn until(app: &mut App, what: &str, ok: impl Fn(&str) -> bool) -> String {
    common::tui::until_screen(app, SIZE, Duration::from_secs(20), what, ok).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mass_deletes_are_one_key_away_and_the_trail_exports() -> anyhow::Result<()> {
    let tdb = TestDb::new().await?;
    let pool = tdb.db.write.clone();
    // mallory: 12 file deletes within 2 minutes and 3 user deletes; trent: 12 file deletes
    // over an hour (never more than 1 in 5 minutes); alice: updates.
    sqlx::raw_sql(
        "INSERT INTO opsdash.audit_event (ts, actor, action, resource_type, resource_id, outcome)
         SELECT now() - interval '20 minutes' + g * interval '10 seconds', 'mallory',
                'file.deleted', 'file', 'f-' || g, 'success'
           FROM generate_series(1, 12) g;
         INSERT INTO opsdash.audit_event (ts, actor, action, resource_type, resource_id, outcome)
         SELECT now() - interval '15 minutes' + g * interval '10 seconds', 'mallory',
                'user.delete', 'user', 'u-' || g, 'success'
           FROM generate_series(1, 3) g;
         INSERT INTO opsdash.audit_event (ts, actor, action, resource_type, resource_id, outcome)
         SELECT now() - interval '70 minutes' + g * interval '5 minutes', 'trent',
                'file.deleted', 'file', 't-' || g, 'success'
           FROM generate_series(1, 12) g;
         INSERT INTO opsdash.audit_event (ts, actor, action, resource_type, resource_id, outcome)
         SELECT now() - g * interval '1 minute', 'alice', 'user.update', 'user', 'a-' || g, 'success'
           FROM generate_series(1, 5) g;",
    )
    .execute(&pool)
    .await?;

    let mut app = common::tui::open(&tdb.db, Config::default(), "logs-mass:1:x", true, 2).await;
    // Every row of the trail, ours and any opsdash wrote itself.
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM opsdash.audit_event")
        .fetch_one(&pool)
        .await?;
    assert!(total >= 32, "{total}");
    let whole = format!("audit trail: {total} rows");
    press(&mut app, KeyCode::Char('2')).await;
    press(&mut app, KeyCode::Char('v')).await;
    press(&mut app, KeyCode::Char('v')).await;
    until(&mut app, "the trail", |t| t.contains(&whole)).await;

    // m: the mass deletes, by actor and action.
    press(&mut app, KeyCode::Char('m')).await;
    let text = until(&mut app, "the mass deletes", |t| {
        t.contains("mass deletes") && t.contains("12 deletes in 5 min")
    })
    .await;
    let rows: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("deletes in 5 min"))
        .collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert!(
        rows[0].contains("mallory") && rows[0].contains("file.deleted"),
        "{text}"
    );
    assert!(!text.contains("trent"), "{text}");

    // Enter: those deletes in the trail, and only those.
    press(&mut app, KeyCode::Enter).await;
    let text = until(&mut app, "mallory's file deletes", |t| {
        t.contains("audit trail: 12 rows")
    })
    .await;
    assert!(
        !text.contains("user.delete") && !text.contains("trent"),
        "{text}"
    );

    // :export FILE writes every row of that filter.
    let dir = tempfile::tempdir()?;
    let target = dir.path().join("deletes.jsonl");
    press(&mut app, KeyCode::Char(':')).await;
    type_text(&mut app, &format!("export {}", target.display())).await;
    press(&mut app, KeyCode::Enter).await;
    until(&mut app, "the export", |t| {
        t.contains("exported 12 audit rows")
    })
    .await;
    let written = std::fs::read_to_string(&target)?;
    let mut ids: Vec<i64> = written
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l)?;
            assert_eq!(v["actor"], "mallory", "{l}");
            assert_eq!(v["action"], "file.deleted", "{l}");
            Ok(v["id"].as_i64().unwrap_or(-1))
        })
        .collect::<anyhow::Result<_>>()?;
    ids.sort();
    let want: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM opsdash.audit_event
          WHERE actor = 'mallory' AND action = 'file.deleted' ORDER BY id",
    )
    .fetch_all(&pool)
    .await?;
    assert_eq!(ids, want);

    // The empty filter: the whole trail again, and its export holds every row.
    press(&mut app, KeyCode::Char('/')).await;
    press(&mut app, KeyCode::Backspace).await;
    press(&mut app, KeyCode::Enter).await;
    until(&mut app, "the whole trail", |t| t.contains(&whole)).await;
    let all = dir.path().join("all.jsonl");
    press(&mut app, KeyCode::Char(':')).await;
    type_text(&mut app, &format!("export {}", all.display())).await;
    press(&mut app, KeyCode::Enter).await;
    let said = format!("exported {total} audit rows");
    until(&mut app, "the second export", |t| t.contains(&said)).await;
    assert_eq!(std::fs::read_to_string(&all)?.lines().count() as i64, total);
    Ok(())
}
