//! The producers of the TUI's one event channel (the `Event`s themselves live in `msg`):
//! terminal input, the database ping, ticks and signals each run as a task and send `Event`s
//! (query results come from the runner, wake-ups from the live tail); the main loop is the only
//! consumer and the only place state changes (through `app::update`).

use std::time::{Duration, Instant};

use chrono::Utc;
use futures::StreamExt;

use crate::db::Db;
pub use crate::tui::msg::{one_line, Event, Sender};

/// Terminal input, read by crossterm's async event stream.
pub fn spawn_input(tx: Sender) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut stream = ratatui::crossterm::event::EventStream::new();
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
