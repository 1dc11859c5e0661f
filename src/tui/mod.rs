//! The terminal dashboard. `run` owns the terminal and the event loop: one channel merges
//! input, query results, the live tail's wake-ups, the database ping and ticks; `app::update` is
//! the only place state changes; `draw::draw` is a pure function of state, called only when
//! something changed: at once after a key (or mouse, resize), otherwise at most `ui.max_fps`
//! times a second, and at most once per `FRAME_WHILE_STREAMING` while the active tab's data
//! streams faster than anyone reads (the Logs tab's live tail at thousands of lines a second).

pub mod app;
pub mod clipboard;
pub mod command;
pub mod draw;
pub mod event;
pub mod help;
pub mod keymap;
pub mod layout;
pub mod line_input;
pub mod msg;
pub mod paint;
pub mod runner;
pub mod tabs;
pub mod terminal;
pub mod theme;
pub mod view;
pub mod widgets;

// The Health tab's retention section, where tests and tools have always found it.
pub use tabs::health::retention_section;

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::mpsc::unbounded_channel;
use tokio::time::Instant;

use crate::config::Config;
use crate::db::Db;
pub use app::Background;
use app::{update, App, AppOptions, Effect};
use event::Event;
use runner::QueryRunner;

pub use view::FRAME_WHILE_STREAMING;

/// How the dashboard is started.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// No colour codes at all (also when `NO_COLOR` is set).
    pub no_color: bool,
    /// This process's worker instance id (the worker and the header must agree on it).
    pub instance: Option<String>,
    /// Background work of the process that runs the dashboard, shown as a banner.
    pub background: Option<Background>,
}

/// Runs the dashboard until the operator quits (or SIGTERM/SIGHUP). The terminal is restored on
/// every way out.
pub async fn run(db: Db, cfg: Arc<Config>, opts: Options) -> Result<()> {
    let no_color = opts.no_color || theme::no_color_requested();
    let instance = opts
        .instance
        .clone()
        .unwrap_or_else(crate::worker::instance_id);
    let mut app = App::new(
        db.clone(),
        cfg.clone(),
        AppOptions {
            no_color,
            instance,
            config_dir: crate::config::config_dir(),
        },
    );
    app.background = opts.background.clone();
    let max_fps = cfg.ui.max_fps.clamp(1, 120);
    let frame_interval = Duration::from_secs_f64(1.0 / max_fps as f64);

    let mut guard = terminal::enter().context("cannot set up the terminal")?;
    let size = guard.terminal.size()?;
    app.size = (size.width, size.height);

    let (tx, mut rx) = unbounded_channel::<Event>();
    let tasks = [
        event::spawn_input(tx.clone()),
        event::spawn_ticks(tx.clone()),
        event::spawn_ping(tx.clone(), db.clone()),
        event::spawn_signals(tx.clone()),
    ];
    let mut runner = QueryRunner::new(tx.clone(), db.query_timeout);
    app.env.events = Some(tx.clone());
    let start_effects = app.start();
    let mut clear = false;
    apply(&mut runner, start_effects, &mut clear);

    let mut last_draw: Option<Instant> = None;
    let result: Result<()> = async {
        loop {
            if app.dirty {
                let pace = if app.urgent {
                    Duration::ZERO
                } else {
                    app.frame_interval(frame_interval)
                };
                let due = last_draw.map(|t| t + pace).unwrap_or_else(Instant::now);
                if Instant::now() >= due {
                    if clear {
                        guard.terminal.clear()?;
                        clear = false;
                    }
                    guard.terminal.draw(|f| draw::draw(&app, f))?;
                    app.dirty = false;
                    app.urgent = false;
                    last_draw = Some(Instant::now());
                } else {
                    // Wait for the frame slot, but keep taking events meanwhile.
                    tokio::select! {
                        _ = tokio::time::sleep_until(due) => continue,
                        ev = rx.recv() => match ev {
                            Some(ev) => handle(&mut app, &mut runner, ev, &mut clear),
                            None => break,
                        },
                    }
                    if app.quit {
                        break;
                    }
                    continue;
                }
            }
            // Input that changed nothing visible must not hurry a later data frame.
            app.urgent = false;
            let Some(ev) = rx.recv().await else { break };
            handle(&mut app, &mut runner, ev, &mut clear);
            // Drain what is already queued so a burst of events costs one frame.
            while let Ok(ev) = rx.try_recv() {
                handle(&mut app, &mut runner, ev, &mut clear);
                if app.quit {
                    break;
                }
            }
            if app.quit {
                break;
            }
        }
        Ok(())
    }
    .await;
    for t in tasks {
        t.abort();
    }
    drop(guard);
    result
}

fn handle(app: &mut App, runner: &mut QueryRunner, ev: Event, clear: &mut bool) {
    let ev = match ev {
        Event::Query(done) => match runner.complete(done) {
            Some(done) => Event::Query(done),
            None => return,
        },
        other => other,
    };
    let effects = update(app, ev);
    apply(runner, effects, clear);
}

fn apply(runner: &mut QueryRunner, effects: Vec<Effect>, clear: &mut bool) {
    for e in effects {
        match e {
            Effect::Query(q) => runner.submit(q),
            Effect::ClearScreen => *clear = true,
            // The status line already says what was copied; a terminal that refuses OSC 52
            // simply ignores it, and a failed write shows up as the next frame's error.
            Effect::Copy(text) => {
                let _ = clipboard::copy(&text);
            }
            Effect::Quit | Effect::Say { .. } | Effect::Jump(_) => {}
        }
    }
}

/// Test support: applies effects by running their queries inline and feeding the results back
/// through `update`, until no query is left. Lets render tests show real data without the event
/// loop.
pub async fn settle(app: &mut App, effects: Vec<Effect>) {
    let mut queue: std::collections::VecDeque<Effect> = effects.into();
    let timeout = app.env.db.query_timeout;
    let mut rounds = 0;
    while let Some(e) = queue.pop_front() {
        rounds += 1;
        if rounds > 1000 {
            break;
        }
        if let Effect::Query(q) = e {
            let done = runner::run_inline(q, timeout).await;
            queue.extend(update(app, Event::Query(done)));
        }
    }
}
