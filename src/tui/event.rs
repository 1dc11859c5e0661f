//! The one event channel of the TUI. Producers (terminal input, query results, LISTEN
//! notifications, the database ping, ticks, signals) each run as a task and send `Event`s; the
//! main loop is the only consumer and the only place state changes (through `app::update`).

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
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
    /// A NOTIFY arrived on `channel`; `reconnected` is set after the listener came back from a
    /// lost connection (notifications sent meanwhile are gone: catch up by cursor).
    Notify {
        channel: String,
        payload: String,
        reconnected: bool,
    },
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

/// LISTENs on `channels` on a dedicated connection, reconnecting with backoff. Notifications are
/// coalesced per channel: while one is waiting in the queue (its channel is in `pending` until the
/// main loop takes it out), more on the same channel are not queued (they
/// only wake a reader that reads by cursor anyway), so a flood cannot fill memory.
pub fn spawn_listener(
    tx: Sender,
    db: Db,
    channels: Vec<String>,
    pending: Arc<Mutex<HashSet<String>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        if channels.is_empty() {
            return;
        }
        let mut first = true;
        let mut backoff = Duration::from_millis(250);
        loop {
            let listener = async {
                let mut l = sqlx::postgres::PgListener::connect_with(&db.write).await?;
                let names: Vec<&str> = channels.iter().map(|s| s.as_str()).collect();
                l.listen_all(names).await?;
                Ok::<_, sqlx::Error>(l)
            };
            match tokio::time::timeout(Duration::from_secs(5), listener).await {
                Ok(Ok(mut l)) => {
                    backoff = Duration::from_millis(250);
                    if !first {
                        for c in &channels {
                            let _ = tx.send(Event::Notify {
                                channel: c.clone(),
                                payload: String::new(),
                                reconnected: true,
                            });
                        }
                    }
                    first = false;
                    // try_recv returns None when the connection was lost; recv would reconnect
                    // silently and lose the "reconnected" signal.
                    while let Ok(Some(n)) = l.try_recv().await {
                        let newly_pending = pending
                            .lock()
                            .map(|mut p| p.insert(n.channel().to_string()))
                            .unwrap_or(true);
                        if newly_pending
                            && tx
                                .send(Event::Notify {
                                    channel: n.channel().to_string(),
                                    payload: n.payload().to_string(),
                                    reconnected: false,
                                })
                                .is_err()
                        {
                            return;
                        }
                    }
                }
                _ => {
                    first = false;
                }
            }
            if tx.is_closed() {
                return;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    })
}

/// Error text for a one-line status bar.
pub fn one_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    // sqlx prefixes every server error with this; the server's message is what matters.
    let line = line.replace("error returned from database: ", "");
    crate::sanitize::sanitize(&line).into_owned()
}
