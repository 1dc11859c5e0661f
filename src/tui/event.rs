//! The one event channel of the TUI. Producers (terminal input, query results, the live tail
//! waking its tab, the database ping, ticks, signals) each run as a task and send `Event`s; the
//! main loop is the only consumer and the only place state changes (through `app::update`).

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::StreamExt;
use tokio::sync::mpsc::UnboundedSender;

use crate::db::Db;
use crate::tui::runner::QueryDone;

#[derive(Debug)]
pub enum Event {
    /// Key, mouse, resize, paste.
    Input(crossterm::event::Event),
    /// The terminal input stream failed or ended: nothing more will come from the keyboard.
    InputClosed(String),
    /// Once a second: the clock, periodic refreshes.
    Tick(DateTime<Utc>),
    /// Result of the database ping: round-trip time or the error.
    Ping(Result<Duration, String>),
    /// A query finished (already filtered for staleness by the runner).
    Query(QueryDone),
    /// A tab's background source (the live tail) has news after a quiet spell: the tab reads
    /// it (`TabView::on_wake`).
    Wake(crate::tui::tabs::Tab),
    /// SIGTERM / SIGHUP: leave cleanly.
    Signal(&'static str),
}

pub type Sender = UnboundedSender<Event>;

/// Terminal input, read by crossterm's async event stream.
pub fn spawn_input(tx: Sender) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stream = crossterm::event::EventStream::new();
        loop {
            match stream.next().await {
                Some(Ok(ev)) => {
                    if tx.send(Event::Input(ev)).is_err() {
                        return;
                    }
                }
                Some(Err(e)) => {
                    let _ = tx.send(Event::InputClosed(e.to_string()));
                    return;
                }
                None => {
                    let _ = tx.send(Event::InputClosed("end of input".into()));
                    return;
                }
            }
        }
    })
}

/// A tick at each wall-clock second, so the header clock turns over on time.
pub fn spawn_ticks(tx: Sender) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            let now = Utc::now();
            if tx.send(Event::Tick(now)).is_err() {
                return;
            }
            let into_second = now.timestamp_subsec_millis() as u64;
            tokio::time::sleep(Duration::from_millis(1000 - into_second.min(999))).await;
        }
    })
}

/// Pings the database every second with a short timeout, so a lost database is shown within
/// two seconds and its return noticed as quickly.
pub fn spawn_ping(tx: Sender, db: Db) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(Duration::from_secs(1));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let started = Instant::now();
            let res = tokio::time::timeout(
                Duration::from_millis(900),
                crate::query::status::ping(&db.read),
            )
            .await;
            let ev = match res {
                Ok(Ok(_)) => Ok(started.elapsed()),
                Ok(Err(e)) => Err(one_line(&e.to_string())),
                Err(_) => Err("no answer within 0.9 s".into()),
            };
            if tx.send(Event::Ping(ev)).is_err() {
                return;
            }
        }
    })
}

/// SIGTERM and SIGHUP end the loop like `q` does, so the terminal is restored.
pub fn spawn_signals(tx: Sender) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::signal::unix::{signal, SignalKind};
        let (Ok(mut term), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::hangup()),
        ) else {
            return;
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = hup.recv() => "SIGHUP",
        };
        let _ = tx.send(Event::Signal(name));
    })
}

/// Error text for a one-line status bar.
pub fn one_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    // sqlx prefixes every server error with this; the server's message is what matters.
    let line = line.replace("error returned from database: ", "");
    crate::sanitize::sanitize(&line).into_owned()
}
