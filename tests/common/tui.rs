//! The dashboard on ratatui's TestBackend for render tests: an `App` opened on a test database
//! with its first queries settled, key presses, and the screen as text.

use std::sync::Arc;
use std::time::Duration;

use crossterm::event::{Event as TermEvent, KeyCode, KeyEvent, KeyModifiers};
use opsdash::config::Config;
use opsdash::db::Db;
use opsdash::tui::app::{update, App, AppOptions, Effect};
use opsdash::tui::event::Event;
use ratatui::backend::TestBackend;
use ratatui::buffer::Buffer;
use ratatui::Terminal;

/// The dashboard as the runner opens it: started, its first queries answered, and the
/// database seen reachable (a ping of `ping_ms`).
pub async fn open(db: &Db, cfg: Config, instance: &str, no_color: bool, ping_ms: u64) -> App {
    let mut app = App::new(
        db.clone(),
        Arc::new(cfg),
        AppOptions {
            no_color,
            instance: instance.into(),
            config_dir: None,
        },
    );
    let fx = app.start();
    opsdash::tui::settle(&mut app, fx).await;
    let fx = update(&mut app, Event::Ping(Ok(Duration::from_millis(ping_ms))));
    opsdash::tui::settle(&mut app, fx).await;
    app
}

/// One frame of the whole dashboard at `w`×`h`.
pub fn render(app: &App, w: u16, h: u16) -> Buffer {
    let mut term = Terminal::new(TestBackend::new(w, h)).expect("terminal");
    term.draw(|f| opsdash::tui::draw::draw(app, f))
        .expect("draw");
    term.backend().buffer().clone()
}

/// The buffer's symbols, one line per row.
pub fn buffer_text(buf: &Buffer) -> String {
    let width = buf.area.width.max(1) as usize;
    buf.content()
        .chunks(width)
        .map(|row| row.iter().map(|cell| cell.symbol()).collect::<String>() + "\n")
        .collect()
}

/// A key as the terminal reports it (an upper-case letter comes with Shift); the effects are
/// the caller's to run.
pub fn key(app: &mut App, code: KeyCode) -> Vec<Effect> {
    let mods = match code {
        KeyCode::Char(c) if c.is_ascii_uppercase() => KeyModifiers::SHIFT,
        _ => KeyModifiers::NONE,
    };
    update(app, Event::Input(TermEvent::Key(KeyEvent::new(code, mods))))
}

/// A key press and the queries it started, settled.
pub async fn press(app: &mut App, code: KeyCode) {
    let fx = key(app, code);
    opsdash::tui::settle(app, fx).await;
}

/// A `Db` whose pools never connect until used, for render tests fed fabricated query results:
/// nothing runs the effects `update` returns, so no query reaches it. Port 1 on loopback
/// refuses at once, should anything try.
pub fn lazy_db() -> Db {
    use opsdash::db::pool::DbTarget;
    use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
    let opts = PgConnectOptions::new()
        .host("127.0.0.1")
        .port(1)
        .username("nobody")
        .database("none");
    let pool = || {
        PgPoolOptions::new()
            .max_connections(1)
            .connect_lazy_with(opts.clone())
    };
    Db {
        write: pool(),
        read: pool(),
        target: DbTarget::External {
            redacted_url: "postgres://nobody@127.0.0.1:1/none".into(),
        },
        write_options: opts.clone(),
        direct_options: opts.clone(),
        topology: Arc::new(opsdash::db::topology::Topology::new(false, None)),
        query_timeout: Duration::from_secs(1),
        access: opsdash::db::access::Access::unchecked(),
    }
}

/// Ticks the dashboard (each tick drains the tail and refreshes what is due) until its screen
/// at `size` satisfies `ok`, for at most `limit`; fails the test with `what` and the last screen.
pub async fn until_screen(
    app: &mut App,
    size: (u16, u16),
    limit: Duration,
    what: &str,
    ok: impl Fn(&str) -> bool,
) -> String {
    let end = tokio::time::Instant::now() + limit;
    loop {
        let text = buffer_text(&render(app, size.0, size.1));
        if ok(&text) {
            return text;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "waited for {what}:\n{text}"
        );
        let fx = update(app, Event::Tick(chrono::Utc::now()));
        opsdash::tui::settle(app, fx).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
